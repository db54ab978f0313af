"""What differs between two compiled networks: totals, blocks and layers, matched by name.

Layers are matched by their module path (``features.stage3.conv4``), blocks (block calls,
named groups and aux heads) by theirs, so a diff reads like a review of the spec change:
what was added, what was removed, and for what is in both, which of op, output shape,
parameters and MACs changed. Output as text (terminals), markdown (pull requests) or a
dict (JSON).

>>> from archdsl import compile
>>> a = compile("network a { input 3x32x32; conv 3x3 p1 -> 16; gap }")
>>> b = compile("network b { input 3x32x32; conv 3x3 p1 -> 32; gap }")
>>> d = diff(a, b)
>>> [(c.status, c.name, c.fields) for c in d.changes]
[('changed', 'conv1', ('op', 'output', 'params', 'macs')), ('changed', 'gap1', ('output',))]
>>> d.params_delta
448
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from .network import TAux, call_text, groups, nodes_under, output_of

if TYPE_CHECKING:
    from .network import CompiledNetwork

FIELDS = ("op", "output", "params", "macs")


@dataclass(frozen=True)
class Side:
    """One layer or block as one of the two networks has it."""

    op: str
    output: str
    params: int
    macs: int


@dataclass(frozen=True)
class Change:
    status: str  # "added" | "removed" | "changed"
    level: str  # "block" | "layer"
    name: str
    a: Side | None
    b: Side | None

    @property
    def fields(self) -> tuple[str, ...]:
        """Which of op, output, params, macs differ (all of them for an added or removed one)."""
        if self.a is None or self.b is None:
            return FIELDS
        return tuple(f for f in FIELDS if getattr(self.a, f) != getattr(self.b, f))

    @property
    def params_delta(self) -> int:
        return (self.b.params if self.b else 0) - (self.a.params if self.a else 0)

    @property
    def macs_delta(self) -> int:
        return (self.b.macs if self.b else 0) - (self.a.macs if self.a else 0)


@dataclass(frozen=True)
class Summary:
    """A network's totals."""

    name: str
    file: str
    input: str
    output: str
    params: int
    params_without_aux: int
    macs: int
    layers: int
    aux_outputs: tuple[tuple[str, str], ...]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.name}"

    @classmethod
    def of(cls, net: "CompiledNetwork") -> "Summary":
        return cls(net.name, net.file, str(net.input_shape), str(net.output_shape), net.params,
                   net.params_without_aux, net.macs,
                   # every node but the input (whose shape is compared on its own), merges included;
                   # counted without net.graph, whose networkx copy a diff does not need
                   sum(1 for _ in net.nodes()) - 1,
                   tuple((k, str(net.node(v).shape)) for k, v in net.aux_outputs.items()))


@dataclass
class NetworkDiff:
    a: Summary
    b: Summary
    changes: list[Change] = field(default_factory=list)
    unchanged: dict[str, int] = field(default_factory=dict)  # level -> count

    @property
    def params_delta(self) -> int:
        return self.b.params - self.a.params

    @property
    def macs_delta(self) -> int:
        return self.b.macs - self.a.macs

    @property
    def identical(self) -> bool:
        """No layer or block differs and the totals agree (the networks' names may differ)."""
        a, b = self.a, self.b
        return not self.changes and (a.input, a.output, a.params, a.macs, a.aux_outputs) == (
            b.input, b.output, b.params, b.macs, b.aux_outputs)

    @property
    def headers(self) -> tuple[str, str]:
        """Column titles: the networks' names, or before / after for one network in two versions."""
        return (self.a.name, self.b.name) if self.a.name != self.b.name else ("before", "after")

    def of_level(self, level: str) -> list[Change]:
        return [c for c in self.changes if c.level == level]

    def counts(self, level: str) -> dict[str, int]:
        out = {"added": 0, "removed": 0, "changed": 0}
        for c in self.of_level(level):
            out[c.status] += 1
        out["unchanged"] = self.unchanged.get(level, 0)
        return out

    # ---------------------------------------------------------------- text

    def to_text(self) -> str:
        a, b = self.a, self.b
        lines = [f"--- {a.where}", f"+++ {b.where}", ""]
        rows = [("", *self.headers, "change")]
        rows.append(("params", f"{a.params:,}", f"{b.params:,}", _delta(a.params, b.params)))
        if a.aux_outputs or b.aux_outputs:
            rows.append(("params without aux", f"{a.params_without_aux:,}", f"{b.params_without_aux:,}",
                         _delta(a.params_without_aux, b.params_without_aux)))
        rows.append(("MACs", f"{a.macs:,}", f"{b.macs:,}", _delta(a.macs, b.macs)))
        rows.append(("input", a.input, b.input, "" if a.input == b.input else "changed"))
        rows.append(("output", a.output, b.output, "" if a.output == b.output else "changed"))
        if a.aux_outputs or b.aux_outputs:
            rows.append(("aux outputs", _aux(a), _aux(b), "" if a.aux_outputs == b.aux_outputs else "changed"))
        rows.append(("layers", str(a.layers), str(b.layers), f"{b.layers - a.layers:+d}" if a.layers != b.layers
                     else ""))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            lines.append(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}".rstrip())
        if self.identical:
            lines += ["", "no differences"]
            return "\n".join(lines) + "\n"
        for level, title in (("block", "blocks"), ("layer", "layers")):
            changes = self.of_level(level)
            lines += ["", f"{title}: {_count_text(self.counts(level))}"]
            width = max((len(c.name) for c in changes if c.status != "changed"), default=0)
            for c in changes:
                lines += _text_change(c, width)
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- markdown

    def to_markdown(self) -> str:
        a, b = self.a, self.b
        an, bn = (_md(h) for h in self.headers)
        lines = [f"### `{_md(a.where)}` → `{_md(b.where)}`", "",
                 f"| | {an} | {bn} | change |", "|---|---:|---:|---:|",
                 f"| params | {a.params:,} | {b.params:,} | {_delta(a.params, b.params)} |"]
        if a.aux_outputs or b.aux_outputs:
            lines.append(f"| params without aux | {a.params_without_aux:,} | {b.params_without_aux:,} | "
                         f"{_delta(a.params_without_aux, b.params_without_aux)} |")
        lines.append(f"| MACs | {a.macs:,} | {b.macs:,} | {_delta(a.macs, b.macs)} |")
        lines.append(f"| input | {a.input} | {b.input} | {'' if a.input == b.input else 'changed'} |")
        lines.append(f"| output | {a.output} | {b.output} | {'' if a.output == b.output else 'changed'} |")
        if a.aux_outputs or b.aux_outputs:
            lines.append(f"| aux outputs | {_md(_aux(a))} | {_md(_aux(b))} | "
                         f"{'' if a.aux_outputs == b.aux_outputs else 'changed'} |")
        lines.append(f"| layers | {a.layers} | {b.layers} | "
                     f"{f'{b.layers - a.layers:+d}' if a.layers != b.layers else ''} |")
        if self.identical:
            return "\n".join(lines + ["", "No differences."]) + "\n"
        for level, title in (("block", "Blocks"), ("layer", "Layers")):
            changes = self.of_level(level)
            lines += ["", f"**{title}**: {_count_text(self.counts(level))}"]
            if not changes:
                continue
            lines += ["", f"| | name | {an} | {bn} | params | MACs |", "|---|---|---|---|---:|---:|"]
            for c in changes:
                lines.append(f"| {_MARK[c.status]} | `{_md(c.name)}` | {_md_side(c.a, c)} | {_md_side(c.b, c)} | "
                             f"{_signed(c.params_delta)} | {_signed(c.macs_delta)} |")
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        def summary(s: Summary) -> dict[str, Any]:
            return {"network": s.name, "file": s.file, "input": s.input, "output": s.output, "params": s.params,
                    "params_without_aux": s.params_without_aux, "macs": s.macs, "layers": s.layers,
                    "aux_outputs": dict(s.aux_outputs)}

        def side(s: Side | None) -> dict[str, Any] | None:
            return None if s is None else {"op": s.op, "output": s.output, "params": s.params, "macs": s.macs}

        return {
            "a": summary(self.a), "b": summary(self.b), "identical": self.identical,
            "params_delta": self.params_delta, "macs_delta": self.macs_delta,
            "counts": {"blocks": self.counts("block"), "layers": self.counts("layer")},
            "changes": [{"status": c.status, "level": c.level, "name": c.name, "fields": list(c.fields),
                         "a": side(c.a), "b": side(c.b), "params_delta": c.params_delta,
                         "macs_delta": c.macs_delta} for c in self.changes],
        }


# ---------------------------------------------------------------- computing the diff


def _layers(net: "CompiledNetwork") -> dict[str, Side]:
    """Every node but the input, by name: layers and merges."""
    return {info.id: Side(info.label(), str(info.shape), info.params, info.macs)
            for info in net.nodes() if info.id != net.input}


def _groups(net: "CompiledNetwork") -> dict[str, Side]:
    """Block calls, named groups and aux heads by path (merge branches are not groups)."""
    out: dict[str, Side] = {}
    for path, it in groups(net.tree, branches=False).items():
        seq = it.body if type(it) is TAux else it
        nodes = nodes_under(seq)
        last = output_of(seq)
        op = f"aux head {it.name}" if type(it) is TAux else call_text(seq)
        out[path] = Side(op, str(net.node(last).shape) if last else "(its input)",
                         sum(net.node(n).params for n in nodes), sum(net.node(n).macs for n in nodes))
    return out


def _merged_order(a: list[str], b: list[str]) -> Iterator[str]:
    """Every name of a and b once, in an order that follows both (b's additions after the
    name they follow in b).

    Names are matched with a dictionary. The names in both that keep their order (the
    longest such run, in O(n log n)) are anchors; between two anchors come a's other names,
    then b's. Where no name moved this is exactly the order of a longest-common-subsequence
    diff, without its quadratic time on long networks.
    """
    where_a = {name: i for i, name in enumerate(a)}
    common = [(where_a[name], j) for j, name in enumerate(b) if name in where_a]  # in b's order
    seen: set[str] = set()
    i = j = 0
    for ia, jb in (*(common[k] for k in _longest_increasing([ia for ia, _ in common])), (len(a), len(b))):
        for name in (*a[i:ia], *b[j:jb]):
            if name not in seen:
                seen.add(name)
                yield name
        if jb < len(b):
            seen.add(b[jb])
            yield b[jb]
        i, j = ia + 1, jb + 1


def _longest_increasing(xs: list[int]) -> list[int]:
    """The indices of a longest strictly increasing subsequence of xs (patience sorting)."""
    import bisect

    tails: list[int] = []  # tails[k]: the smallest last value of an increasing run of length k + 1
    tail_at: list[int] = []  # ... and its index in xs
    before = [-1] * len(xs)  # the index before i in the run that ends at xs[i]
    for i, x in enumerate(xs):
        k = bisect.bisect_left(tails, x)
        if k:
            before[i] = tail_at[k - 1]
        if k == len(tails):
            tails.append(x)
            tail_at.append(i)
        else:
            tails[k], tail_at[k] = x, i
    out: list[int] = []
    i = tail_at[-1] if tail_at else -1
    while i >= 0:
        out.append(i)
        i = before[i]
    return out[::-1]


def _compare(level: str, a: dict[str, Side], b: dict[str, Side], out: NetworkDiff) -> None:
    unchanged = 0
    for name in _merged_order(list(a), list(b)):
        sa, sb = a.get(name), b.get(name)
        if sa is None:
            out.changes.append(Change("added", level, name, None, sb))
        elif sb is None:
            out.changes.append(Change("removed", level, name, sa, None))
        elif sa != sb:
            out.changes.append(Change("changed", level, name, sa, sb))
        else:
            unchanged += 1
    out.unchanged[level] = unchanged


def diff(a: "CompiledNetwork", b: "CompiledNetwork") -> NetworkDiff:
    """Compare two networks: totals, then blocks and layers matched by name."""
    out = NetworkDiff(Summary.of(a), Summary.of(b))
    _compare("block", _groups(a), _groups(b), out)
    _compare("layer", _layers(a), _layers(b), out)
    return out


# ---------------------------------------------------------------- formatting helpers

_MARK = {"added": "+", "removed": "-", "changed": "~"}


def _signed(n: int) -> str:
    return f"{n:+,}" if n else "0"


def _delta(x: int, y: int) -> str:
    if x == y:
        return ""
    d = y - x
    return f"{d:+,} ({100 * d / x:+.3g}%)" if x else f"{d:+,}"


def _aux(s: Summary) -> str:
    return ", ".join(f"{k} {v}" for k, v in s.aux_outputs) or "none"


def _count_text(counts: dict[str, int]) -> str:
    parts = [f"{counts[k]} {k}" for k in ("added", "removed", "changed") if counts[k]]
    parts.append(f"{counts['unchanged']} unchanged")
    return ", ".join(parts)


def _side_text(s: Side) -> str:
    return f"{s.op}  {s.output}  params {s.params:,}  MACs {s.macs:,}"


def _text_change(c: Change, width: int) -> list[str]:
    mark = _MARK[c.status]
    if c.status != "changed":
        side = c.b if c.status == "added" else c.a
        return [f"{mark} {c.name:<{width}}  {_side_text(side)}"]
    lines = [f"{mark} {c.name}"]
    a, b = c.a, c.b
    for f in c.fields:
        x, y = getattr(a, f), getattr(b, f)
        label = {"op": "op" if c.level == "layer" else "call", "output": "output", "params": "params",
                 "macs": "MACs"}[f]
        if isinstance(x, int):
            lines.append(f"    {label:<7} {x:,} -> {y:,} ({_signed(y - x)})")
        elif f == "op":  # ops print arrows of their own (`conv 3x3 -> 64`): one line each
            lines.append(f"    {label:<7} - {x}")
            lines.append(f"    {'':<7} + {y}")
        else:
            lines.append(f"    {label:<7} {x} -> {y}")
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_side(s: Side | None, c: Change) -> str:
    if s is None:
        return "—"
    return f"`{_md(s.op)}` {s.output}, {s.params:,} params"
