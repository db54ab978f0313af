"""`archdsl check --update-expects`: rewrite the value of every failing `expect` line in place.

Only the value's own characters change: the rest of the line (its `within P%`, its comment,
its layout) and every other line stay as written. A value written with `_` separators is
written with them again; a size as `CxHxW`. An `expect` in a block that several calls reach
with different figures cannot hold one value for all: it is left alone and reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import syntax as P
from .diagnostics import ArchError
from .sources import read_source
from . import load


@dataclass
class Change:
    file: str
    line: int
    what: str
    old: str
    new: str


def _value_span(stmt: P.Expect) -> P.Span:
    v = stmt.value
    if isinstance(v, tuple):
        first, last = v[0].span, v[-1].span
        return P.Span(file=first.file, line=first.line, column=first.column, end_line=last.end_line,
                      end_column=last.end_column)
    return v.span


def _written(found, old: str) -> str:
    if isinstance(found, tuple):
        return "x".join(map(str, found))
    if isinstance(found, float) and found.is_integer():
        found = int(found)
    if isinstance(found, int):
        return f"{found:_}" if "_" in old else str(found)
    return repr(found)


def _offset(text: str, line: int, column: int) -> int:
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    return start + column - 1


def update_expects(files: list[Path], note) -> tuple[list[Change], int]:
    """Rewrite the failing `expect` values of the networks in `files`. Returns the changes
    made and the number of failing expects left alone; `note` takes a line for each."""
    wanted: dict[tuple, set] = {}  # (file, line, column, end_line, end_column) -> found values
    stmts: dict[tuple, P.Expect] = {}
    for path in files:
        try:
            nets = load(path).compile_all()
        except ArchError:
            continue  # a network that does not compile has no figures to write; check reports it
        for net in nets:
            for o in net.check():
                sp = _value_span(o.expectation.stmt)
                key = (sp.file, sp.line, sp.column, sp.end_line, sp.end_column)
                # every figure the line meets, passing or not: one that holds for one call and
                # fails for another has no single right value
                wanted.setdefault(key, set()).add(tuple(o.found) if isinstance(o.found, list) else o.found)
                if not o.ok:
                    stmts[key] = o.expectation.stmt
    wanted = {k: v for k, v in wanted.items() if k in stmts}
    changes: list[Change] = []
    skipped = 0
    by_file: dict[str, list] = {}
    for key, founds in wanted.items():
        if len(founds) > 1:
            skipped += 1
            note(f"not updated: {key[0]}:{key[1]}: expect {stmts[key].what} differs between the calls that reach it "
                 f"({', '.join(sorted(map(str, founds)))})")
            continue
        by_file.setdefault(key[0], []).append((key, next(iter(founds))))
    for file, items in by_file.items():
        text = read_source(file)
        for (f, line, col, end_line, end_col), found in sorted(items, reverse=True):
            a, b = _offset(text, line, col), _offset(text, end_line, end_col)
            old = text[a:b]
            new = _written(found, old)
            text = text[:a] + new + text[b:]
            changes.append(Change(file, line, stmts[(f, line, col, end_line, end_col)].what, old, new))
        with open(file, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    changes.sort(key=lambda c: (c.file, c.line))
    for c in changes:
        note(f"updated {c.file}:{c.line}: expect {c.what} = {c.old} -> {c.new}")
    return changes, skipped
