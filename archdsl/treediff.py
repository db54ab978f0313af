"""`archdsl diff BASE_DIR HEAD_DIR`: what a change did to every network of a tree of specs.

Both trees are compiled whole, every network of every `.arch` file, so a network changed
through an `include` (a shared block edited in another file) is found as surely as one whose
own file changed. Networks are matched by their path relative to the tree and their name
(`vgg.arch:vgg16`), the names every report shows: never the folders the trees were checked
out into. A network is changed when its totals (params, MACs, input, output, layers) or any
of its layers (name, op, shape, params, MACs) differ; one whose totals are the same but
whose layers differ is listed as `layers`, after those whose totals changed.

The summary is short by design: one line per changed, added, removed, broken or fixed
network, changed totals first; the layers of each changed network only with `--layers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diagnostics import ArchError
from .diff import Summary, diff
from .sources import Loader, read_source
from .spec import Spec


@dataclass
class Entry:
    """One network on one side: compiled, or the first error that stopped it."""

    net: Any = None
    error: str | None = None

    def fingerprint(self) -> tuple:
        n = self.net
        return (str(n.input_shape), str(n.output_shape), n.params, n.macs,
                tuple((i.id, i.label(), str(i.shape), i.params, i.macs) for i in n.nodes()))


@dataclass
class TreeDiff:
    changed: list[tuple[str, Entry, Entry]] = field(default_factory=list)
    added: list[tuple[str, Entry]] = field(default_factory=list)
    removed: list[tuple[str, Entry]] = field(default_factory=list)
    broken: list[tuple[str, Entry, Entry]] = field(default_factory=list)  # fails in head
    fixed: list[tuple[str, Entry, Entry]] = field(default_factory=list)  # failed in base, compiles in head
    unchanged: int = 0

    @property
    def identical(self) -> bool:
        return not (self.changed or self.added or self.removed or self.broken or self.fixed)

    def headline(self) -> str:
        parts = [f"{len(v)} {k}" for k, v in (("changed", self.changed), ("added", self.added),
                                             ("removed", self.removed), ("broken", self.broken),
                                             ("fixed", self.fixed)) if v]
        total = sum(len(v) for v in (self.changed, self.added, self.removed, self.broken, self.fixed))
        return (f"{', '.join(parts) or 'no network changed'}; {self.unchanged} unchanged"
                f" ({total + self.unchanged} networks)")

    # ---------------------------------------------------------------- reports

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(status, network, params, MACs, output), changed totals first, then by name."""
        changed = []
        for name, a, b in self.changed:
            sa, sb = Summary.of(a.net), Summary.of(b.net)
            same_totals = (sa.params, sa.macs, sa.output) == (sb.params, sb.macs, sb.output)
            changed.append((same_totals, name, _change(sa.params, sb.params), _change(sa.macs, sb.macs),
                            sa.output if sa.output == sb.output else f"{sa.output} → {sb.output}"))
        changed.sort(key=lambda r: (r[0], r[1]))  # changed totals first
        rows = [("changed" if not same else "layers", n, p, m, o) for same, n, p, m, o in changed]
        for name, e in self.added:
            rows.append(("added", name, f"{e.net.params:,}", f"{e.net.macs:,}", str(e.net.output_shape)))
        for name, e in self.removed:
            rows.append(("removed", name, f"{e.net.params:,}", f"{e.net.macs:,}", str(e.net.output_shape)))
        for name, _, b in self.broken:
            rows.append(("broken", name, b.error or "", "", ""))
        for name, _, b in self.fixed:
            rows.append(("fixed", name, f"{b.net.params:,}", f"{b.net.macs:,}", str(b.net.output_shape)))
        return rows

    def to_markdown(self, layers: bool = False) -> str:
        lines = [f"### archdsl: {self.headline()}", ""]
        if self.identical:
            return "\n".join(lines + ["No network changed."]) + "\n"
        lines += ["| | network | params | MACs | output |", "|---|---|---:|---:|---|"]
        lines += [f"| {s} | `{n}` | {p} | {m} | {o} |" for s, n, p, m, o in self.rows()]
        if layers:
            for name, a, b in self.changed:
                body = diff(a.net, b.net).to_markdown().split("\n", 2)[2]
                lines += ["", f"<details><summary><code>{name}</code></summary>", "", body.rstrip(), "", "</details>"]
        return "\n".join(lines) + "\n"

    def to_text(self, layers: bool = False) -> str:
        lines = [self.headline()]
        rows = self.rows()
        if rows:
            w = max(len(r[1]) for r in rows)
            lines += [""] + [f"{s:<8} {n:<{w}}  " + (p if s == "broken" else f"params {p}  MACs {m}  output {o}")
                             for s, n, p, m, o in rows]
        if layers:
            for name, a, b in self.changed:
                lines += ["", diff(a.net, b.net).to_text().rstrip()]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"identical": self.identical, "unchanged": self.unchanged,
                "networks": [{"status": s, "network": n, "params": p, "macs": m, "output": o}
                             for s, n, p, m, o in self.rows()]}


def _change(x: int, y: int) -> str:
    if x == y:
        return f"{y:,}"
    pct = f" ({100 * (y - x) / x:+.2f}%)" if x else ""
    return f"{x:,} → {y:,}{pct}"


def compile_tree(root: Path, label: str = "") -> dict[str, Entry]:
    """Every network of every spec under `root`, by `relative/path.arch:name`. A file that
    does not load gives one entry, `relative/path.arch`, with its error."""
    out: dict[str, Entry] = {}
    root = root.resolve()
    for path in sorted(root.rglob("*.arch")):
        real = path.resolve()
        if root not in real.parents or not real.is_file():
            continue  # a link out of the tree is not read
        rel = path.relative_to(root).as_posix()
        try:
            loader = Loader()
            loader.root = root
            unit = loader.load_text(read_source(path), rel, path.parent)
        except ArchError as e:
            out[rel] = Entry(error=_first(e))
            continue
        spec = Spec(unit)
        for name in spec.networks:
            try:
                out[f"{rel}:{name}"] = Entry(net=spec.compile(name))
            except ArchError as e:
                out[f"{rel}:{name}"] = Entry(error=_first(e))
    return out


def _first(e: Exception) -> str:
    if isinstance(e, ArchError):
        d = e.first
        return f"error[{d.code}] at {d.span.where() if d.span else '?'}: {d.message}"
    return f"cannot read: {e}"


def diff_trees(base: Path, head: Path) -> TreeDiff:
    a, b = compile_tree(base), compile_tree(head)
    out = TreeDiff()
    for name in sorted(set(a) | set(b)):
        ea, eb = a.get(name), b.get(name)
        if ea is None:
            (out.added.append((name, eb)) if eb.net is not None else out.broken.append((name, Entry(), eb)))
        elif eb is None:
            if ea.net is not None:
                out.removed.append((name, ea))
        elif eb.net is None:
            if ea.net is None and ea.error == eb.error:
                out.unchanged += 1
            else:
                out.broken.append((name, ea, eb))
        elif ea.net is None:
            out.fixed.append((name, ea, eb))
        elif ea.fingerprint() != eb.fingerprint():
            out.changed.append((name, ea, eb))
        else:
            out.unchanged += 1
    return out
