"""The report's plain-text table, laid out as rich lays it out, without going through rich.

:meth:`archdsl.report.Report.to_table` describes its table to rich (no box, no padding at
the outer edges, one space either side between columns, cells folded when too long), and
rich's layout is the reference. But rich measures and wraps every cell through its general
renderable machinery, which takes some fifteen times longer than compiling the network:
most of `archdsl compile`'s time. This module computes the same layout directly, for text
that needs none of rich's generality (printable ASCII without markup), and returns None
otherwise, so that the report falls back to rich. tests/test_bench_smoke.py checks that the
two agree, character for character, on every spec at several widths.

The rules, as rich applies them to such a table:

* a cell's width range is (its longest word, its whole length) plus its padding, each
  capped at the table width; a column's is the widest range of its cells (header included);
* columns start at their maximum; while the table is too wide, the widest columns that may
  wrap shrink toward the next widest, and if that is not enough, every column gives up a
  share of the excess in turn (rounding half to even, as Python's round does);
* a cell's text then wraps at spaces to its column's inner width, a word longer than that
  folding across lines; it is left- or right-justified; a row is as tall as its tallest
  cell (cells top-aligned, header cells bottom-aligned).
"""

from __future__ import annotations

import re
from typing import Sequence

_PLAIN = re.compile(r"[ -Z\\^-~]*")  # printable ASCII without "[" and "]" (rich markup)
_WORD = re.compile(r"\s*\S+\s*")


def _plain(text: str) -> bool:
    return _PLAIN.fullmatch(text) is not None and ":" not in text  # ":name:" would be an emoji code


def _column_width(cells: Sequence[str], extra: int, limit: int) -> int:
    """A column's maximum width when `limit` columns are available: its widest padded cell.

    rich measures each cell as a range, (its longest word, its whole length) plus padding,
    each capped at the limit, and starts a column at the largest maximum. The longest word
    never exceeds the whole length, so the maximum is simply the length plus padding, capped;
    a limit that leaves no room inside the padding gives the limit itself.
    """
    if limit < 1:
        return 0
    if limit - extra < 1:
        return limit
    return min(max(map(len, cells)) + extra, limit) if cells else limit


def _reduce(total: int, ratios: list[int], maximums: list[int], values: list[int]) -> list[int]:
    """Take `total` away from `values` in proportion to `ratios`, at most `maximums` each."""
    ratios = [r if m else 0 for r, m in zip(ratios, maximums)]
    total_ratio = sum(ratios)
    if not total_ratio:
        return list(values)
    remaining, out = total, []
    for ratio, maximum, value in zip(ratios, maximums, values):
        if ratio and total_ratio > 0:
            taken = min(maximum, round(ratio * remaining / total_ratio))
            out.append(value - taken)
            remaining -= taken
            total_ratio -= ratio
        else:
            out.append(value)
    return out


def _collapse(widths: list[int], wrapable: list[bool], limit: int) -> list[int]:
    """Shrink the widest wrapable columns toward the next widest until the table fits."""
    total = sum(widths)
    excess = total - limit
    if not any(wrapable):
        return widths
    while total and excess > 0:
        widest = max(w for w, ok in zip(widths, wrapable) if ok)
        second = max(w if ok and w != widest else 0 for w, ok in zip(widths, wrapable))
        ratios = [1 if (w == widest and ok) else 0 for w, ok in zip(widths, wrapable)]
        if not any(ratios) or not widest - second:
            break
        widths = _reduce(excess, ratios, [min(excess, widest - second)] * len(widths), widths)
        total = sum(widths)
        excess = total - limit
    return widths


def _wrap(text: str, width: int) -> list[str]:
    """Break a line at spaces to `width` columns; a longer word folds across lines."""
    if width < 1 or len(text) <= width:  # most cells: the loop below would find no break
        return [text]
    breaks: list[int] = []
    offset = 0
    for m in _WORD.finditer(text):
        start, word = m.start(), m.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            pieces = [word[i:i + width] for i in range(0, len(word), width)]
            for k, piece in enumerate(pieces):
                if start:
                    breaks.append(start)
                if k == len(pieces) - 1:
                    offset = len(piece)
                else:
                    start += len(piece)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    lines, prev = [], 0
    for b in breaks:
        lines.append(text[prev:b])
        prev = b
    lines.append(text[prev:])
    out = []
    for line in lines:
        if len(line) > width:  # trailing spaces past the width go (rich's rstrip_end)
            stripped = line.rstrip()
            line = line[:max(width, len(stripped))]
        out.append(line)
    return out


def render(title: str, headers: Sequence[str], justify: Sequence[str], no_wrap: Sequence[bool],
           rows: Sequence[Sequence[str]], width: int) -> str | None:
    """The table's text (title line first, lines not yet right-stripped), or None when
    the cells hold anything this layout does not reproduce (then use rich)."""
    n = len(headers)
    table = [list(headers)] + [list(r) for r in rows]
    if not _plain(title) or any(len(r) != n or not all(_plain(c) for c in r) for r in table):
        return None
    pads = [(0 if i == 0 else 1, 0 if i == n - 1 else 1) for i in range(n)]
    columns = [[r[i] for r in table] for i in range(n)]
    widths = [_column_width(columns[i], sum(pads[i]), width) or 1 for i in range(n)]
    if sum(widths) > width:
        widths = _collapse(widths, [not nw for nw in no_wrap], width)
        if sum(widths) > width:
            widths = _reduce(sum(widths) - width, [1] * n, widths, widths)
        widths = [_column_width(columns[i], sum(pads[i]), widths[i]) for i in range(n)]
    table_width = sum(widths)
    if len(title) > table_width or any(w - sum(p) < (1 if nw else 4) for w, p, nw in zip(widths, pads, no_wrap)):
        # a title wider than the table, or columns squeezed to a few characters: rich's own
        # rendering of such tables is the reference, and not worth imitating
        return None
    out = [title] if title else []  # rich draws no line for an empty title
    for index, row in enumerate(table):
        cells = []
        for text, w, (left, right), how, nw in zip(row, widths, pads, justify, no_wrap):
            inner = w - left - right
            lines = [text] if nw else _wrap(text, inner)  # a no-wrap cell too long is cropped below
            if how == "right":
                lines = [line.rstrip()[:inner].rjust(inner) for line in lines]
            else:
                lines = [line[:inner].ljust(inner) for line in lines]
            cells.append([" " * left + line + " " * right for line in lines])
        height = max(len(c) for c in cells)
        for c, w in zip(cells, widths):
            blank = [" " * w] * (height - len(c))
            c[:] = (blank + c) if index == 0 else (c + blank)  # the header row is bottom-aligned
        out.extend("".join(parts) for parts in zip(*cells))
    return "\n".join(out) + "\n"
