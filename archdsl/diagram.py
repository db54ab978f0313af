"""Compiled network -> Graphviz diagram (DOT text, and SVG / PNG / PDF through `dot`).

The diagram follows the spec's structure, not just its graph:

* one node per layer: its name, its op as the report prints it (the kind's ``label()``,
  e.g. ``conv 7x7/2 p3 -> 64 +bn +relu``) and its output shape, coloured by the kind's
  ``category`` (a legend lists the categories drawn);
* a block call is a cluster labelled with the call (``inception3a: inception(c1=64, ...)``);
  named groups (``mlpconv``, a labelled ``repeat``) and aux heads are clusters as well;
* with ``depth=N`` a group nested N or more groups deep becomes one node with its output
  shape, parameters and MACs, and a run of identical consecutive block calls (same block,
  same arguments) becomes one node marked ``xN``;
* concat / add / residual are merge nodes; the edges into a merge carry the tensor shape
  of each branch (a residual's scaled branch shows its factor, its identity is dashed), as
  do edges that enter or leave a cluster;
* the title gives the network's totals: input -> output, parameters, MACs;
* ``only=PATH`` draws one block call or group (``inception3a``), the tensors it reads
  drawn as its inputs.

Node identifiers are the graph's node names (module paths), clusters are named after the
group's path, and everything is emitted in build order: the same spec always gives the
same DOT text. This module never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .network import TAux, TLayer, TMerge, TSeq, call_text, groups, is_branch, nodes_under, output_of

if TYPE_CHECKING:
    from .network import CompiledNetwork

#: fill colour of each layer category, in legend order
CATEGORY_COLOURS: dict[str, str] = {
    "conv": "#c9daf8",
    "fc": "#d9d2e9",
    "pool": "#d9ead3",
    "norm": "#fff2cc",
    "act": "#fce5cd",
    "merge": "#eeeeee",
    "other": "#ffffff",
    "block": "#f4cccc",  # a collapsed group
}
INPUT_COLOUR = "#ffffff"
FONT = "Helvetica"
FORMATS = ("svg", "png", "pdf", "dot")
INSTALL_HINT = ("the Graphviz `dot` program is not on PATH: install Graphviz (apt-get install graphviz, "
                "brew install graphviz) or write .dot output")


class GraphvizNotFound(RuntimeError):
    """Raised when SVG, PNG or PDF output is asked for and the `dot` program is missing."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


def si(n: int | float) -> str:
    """3 significant digits with K / M / G / T: 25,557,032 -> 25.6M."""
    n = float(n)
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.3g}{suffix}" if v < 1000 else f"{v:.0f}{suffix}"
    return f"{n:.0f}"


# ---------------------------------------------------------------- layout: what is drawn where


@dataclass
class _Cluster:
    id: str
    label: str
    style: str  # "block" | "group" | "aux"
    items: list = field(default_factory=list)  # visible node ids and nested _Cluster


@dataclass
class _Node:
    id: str
    label: str  # an HTML-like label, without the outer <>
    attrs: dict[str, str]
    category: str


class _Layout:
    """Decides which visible node stands for each graph node, and the cluster nesting."""

    def __init__(self, net: "CompiledNetwork", depth: int | None, collapse_repeats: bool, only: str | None = None):
        if depth is not None and depth < 0:
            raise ValueError(f"depth must be at least 0, not {depth}")
        self.net = net
        self.depth = depth
        self.collapse_repeats = collapse_repeats
        self.rep: dict[str, str] = {}  # graph node -> visible node
        self.nodes: dict[str, _Node] = {}
        self.cluster_of: dict[str, str | None] = {}
        self.merges: dict[str, Any] = {}  # merge graph node -> TMerge
        self.root = _Cluster("", "", "root")
        if only is None:
            self._node(net.input, self.root, "input", net.input)
            self._items(net.tree.items, self.root, 0)
            return
        # one group: the tensors it reads from outside are drawn as its inputs, and the depth
        # counts from the group's own body
        item = find_group(net, only)
        members = set(nodes_under(item))
        for n in net.graph.nodes:
            if n in members:
                for u in net.node(n).inputs:
                    if u not in members and u not in self.rep:
                        self._add(u, self.root, f"<b>{_esc(u)}</b><br/>{_shape(net.node(u).shape)}",
                                  {"shape": "oval", "fillcolor": INPUT_COLOUR}, "input")
                        self.rep[u] = u
        self._items([item], self.root, -1)

    # -- walking the tree
    def _items(self, items: list, container: _Cluster, level: int) -> None:
        i = 0
        while i < len(items):
            it = items[i]
            if isinstance(it, TLayer):
                self._node(it.node, container, it.name, it.node)
            elif isinstance(it, TMerge):
                for br in it.branches:  # a branch is drawn in the merge's own container
                    self._items(br.items, container, level)
                self.merges[it.node] = it
                self._node(it.node, container, it.name, it.node)
            elif isinstance(it, (TSeq, TAux)):
                seq = it.body if isinstance(it, TAux) else it
                aux = it.name if isinstance(it, TAux) else None
                if self.depth is not None and level >= self.depth and level >= 0:
                    run = [seq]
                    if self.collapse_repeats and seq.block is not None:
                        while (i + len(run) < len(items) and isinstance(items[i + len(run)], TSeq)
                               and items[i + len(run)].block == seq.block
                               and items[i + len(run)].args == seq.args
                               and self._signature(items[i + len(run)]) == self._signature(seq)):
                            run.append(items[i + len(run)])
                    self._collapsed(run, container, aux)
                    i += len(run)
                    continue
                style = "aux" if aux else ("block" if seq.block else "group")
                label = (f"aux head {aux}" if aux else
                         f"{seq.name}: {call_text(seq)}" if seq.block else seq.name)
                cluster = _Cluster(f"cluster_{seq.path}", label, style)
                container.items.append(cluster)
                self._items(seq.items, cluster, level + 1)
            else:  # pragma: no cover - the tree holds nothing else
                raise TypeError(f"unknown tree item {it!r}")
            i += 1

    def _signature(self, seq: "TSeq") -> tuple:
        """What a group builds, up to its position. Equal calls collapse into one `xN` node only
        when each builds the same layers: a stage's first block may add a projection that the
        others lack, although all are called with the same arguments."""
        cut = len(seq.path) + 1
        return tuple((n[cut:], self.net.node(n).label()) for n in nodes_under(seq))

    def _node(self, node: str, container: _Cluster, name: str, vid: str) -> None:
        info = self.net.node(node)
        if node == self.net.input:
            label = f"<b>input</b><br/>{_shape(info.shape)}"
            attrs = {"shape": "oval", "fillcolor": INPUT_COLOUR}
            category = "input"
        elif node in self.merges:
            label = f"<b>{_esc(name)}</b><br/>{_esc(_merge_text(self.merges[node], info))}<br/>{_shape(info.shape)}"
            attrs = {"shape": "oval", "fillcolor": CATEGORY_COLOURS["merge"]}
            category = "merge"
        else:
            category = info.kind.category if info.kind.category in CATEGORY_COLOURS else "other"
            label = f"<b>{_esc(name)}</b><br/>{_esc(info.label())}<br/>{_shape(info.shape)}"
            attrs = {"fillcolor": CATEGORY_COLOURS[category]}
        if info.aux is not None and category != "input":
            attrs["style"] = "rounded,filled,dashed"
        self._add(vid, container, label, attrs, category)
        self.rep[node] = vid

    def _collapsed(self, run: list["TSeq"], container: _Cluster, aux: str | None) -> None:
        first, last = run[0], run[-1]
        members = [n for seq in run for n in nodes_under(seq)]
        params = sum(self.net.node(n).params for n in members)
        macs = sum(self.net.node(n).macs for n in members)
        out = output_of(last)
        shape = self.net.node(out).shape if out is not None else None
        name = first.name if len(run) == 1 else f"{first.name} .. {last.name} x{len(run)}"
        title = f"aux head {aux}" if aux else name
        lines = [f"<b>{_esc(title)}</b>"]
        if first.block:
            lines.append(_esc(call_text(first)))
        lines.append(_shape(shape) if shape is not None else "(passes its input on)")
        lines.append(f'<font point-size="10">{si(params)} params, {si(macs)} MACs</font>')
        attrs = {"fillcolor": CATEGORY_COLOURS["block"], "peripheries": "2" if len(run) > 1 else "1"}
        if aux or any(self.net.node(n).aux is not None for n in members[:1]):
            attrs["style"] = "rounded,filled,dashed"
        self._add(first.path, container, "<br/>".join(lines), attrs, "block")
        for n in members:
            self.rep[n] = first.path

    def _add(self, vid: str, container: _Cluster, label: str, attrs: dict[str, str], category: str) -> None:
        self.nodes[vid] = _Node(vid, label, attrs, category)
        container.items.append(vid)
        self.cluster_of[vid] = container.id or None

    # -- edges
    def edges(self) -> list[tuple[str, str, dict[str, str]]]:
        out: list[tuple[str, str, dict[str, str]]] = []
        seen: set[tuple[str, str]] = set()
        for v in self.net.graph.nodes:
            info = self.net.node(v)
            merge = self.merges.get(v)
            for k, u in enumerate(info.inputs):
                ru, rv = self.rep.get(u), self.rep.get(v)
                if ru is None or rv is None or ru == rv or (ru, rv) in seen:
                    continue
                seen.add((ru, rv))
                attrs: dict[str, str] = {}
                shape = str(self.net.node(u).shape)
                if merge is not None and rv == v:
                    label = shape
                    if k < len(merge.branches) and not merge.branches[k].items:
                        attrs["style"] = "dashed"  # an empty branch: the identity
                        label += " (identity)"
                    note = info.kind.branch_note(info.op.params, k)
                    if note:
                        label += f" {note}"
                    attrs["label"] = label
                elif self.cluster_of.get(ru) != self.cluster_of.get(rv):
                    attrs["label"] = shape
                out.append((ru, rv, attrs))
        return out


def _esc(text: str) -> str:
    import html  # here: `archdsl compile` imports this module and never escapes

    return html.escape(text, quote=False)


def _shape(shape) -> str:
    return f'<font color="#444444">{_esc(str(shape))}</font>'


def _merge_text(merge, info) -> str:
    return info.kind.caption(info.op.params)


# ---------------------------------------------------------------- DOT


def find_group(net: "CompiledNetwork", path: str):
    """The block call, named group, aux head or merge branch at `path` (``inception3a``,
    ``resnet_imagenet1.layer2``). Raises ValueError, naming the groups there are."""
    from .diagnostics import did_you_mean

    found = groups(net.tree)
    if path not in found:
        named = [p for p, g in found.items() if not is_branch(g)]
        tails = [p for p in found if p.endswith("." + path)]
        hint = ("did you mean " + " or ".join(f"'{p}'" for p in tails[:3]) + "?" if tails else None) or \
            did_you_mean(path, found) or ("groups: " + ", ".join(named[:12]) +
                                              (f", ... ({len(named)} in all)" if len(named) > 12 else "")
                                              if named else "it has no blocks or groups")
        raise ValueError(f"{net.name} has no block or group '{path}'; {hint}")
    return found[path]


def title(net: "CompiledNetwork", only: str | None = None) -> str:
    """The diagram's title: name, input -> output, parameters and MACs (of one group with `only`)."""
    if only is not None:
        item = find_group(net, only)
        nodes = list(nodes_under(item))
        first = net.node(nodes[0]) if nodes else None
        seq = item.body if hasattr(item, "body") else item
        out = output_of(seq)
        shape_in = first.in_shapes[0] if first is not None and first.in_shapes else "?"
        shape_out = net.node(out).shape if out is not None else shape_in
        params = sum(net.node(n).params for n in nodes)
        macs = sum(net.node(n).macs for n in nodes)
        return f"{net.name}.{only}: {shape_in} -> {shape_out}, {params:,} params, {macs:,} MACs"
    params = f"{net.params:,} params"
    if net.aux_outputs:
        params += f" ({net.params_without_aux:,} without aux)"
    return f"{net.name}: {net.input_shape} -> {net.output_shape}, {params}, {net.macs:,} MACs"


def to_dot(net: "CompiledNetwork", depth: int | None = None, rankdir: str = "TB",
           collapse_repeats: bool = True, only: str | None = None) -> str:
    """The diagram as DOT text (needs no Graphviz program). `only` draws one block call or
    group (by its path, e.g. ``inception3a``) with `depth` counted from its body.

    >>> from archdsl import compile
    >>> net = compile("network n { input 3x8x8; act relu; conv 3x3 p1 -> 4; gap; fc 2 noact }")
    >>> dot = to_dot(net)
    >>> dot.splitlines()[0], '"conv1"' in dot or "conv1 [" in dot
    ('digraph n {', True)
    """
    import graphviz

    rankdir = rankdir.upper()
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"rankdir must be TB, LR, BT or RL, not {rankdir!r}")
    layout = _Layout(net, depth, collapse_repeats, only)
    g = graphviz.Digraph(net.name)
    g.attr(rankdir=rankdir, label=_esc_plain(title(net, only)), labelloc="t", fontname=FONT, fontsize="16",
           newrank="true", nodesep="0.25", ranksep="0.3")
    g.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="11", margin="0.08,0.04")
    g.attr("edge", fontname=FONT, fontsize="9", color="#555555", arrowsize="0.6")

    outputs = {layout.rep.get(n) for n in (net.output, *net.aux_outputs.values())}

    def emit(container: _Cluster, target) -> None:
        for item in container.items:
            if isinstance(item, _Cluster):
                with target.subgraph(name=item.id) as sub:
                    sub.attr(label=_esc_plain(item.label), fontname=FONT, fontsize="11", labeljust="l",
                             **_CLUSTER_STYLE[item.style])
                    emit(item, sub)
            else:
                node = layout.nodes[item]
                attrs = dict(node.attrs)
                if item in outputs:
                    attrs["penwidth"] = "2"
                target.node(item, f"<{node.label}>", **attrs)

    emit(layout.root, g)
    for u, v, attrs in layout.edges():
        g.edge(u, v, **attrs)
    used = [c for c in CATEGORY_COLOURS if any(n.category == c for n in layout.nodes.values())]
    g.node("legend", f"<{_legend(used)}>", shape="plaintext", style="", margin="0")
    return g.source


_CLUSTER_STYLE = {
    "block": {"style": "rounded", "color": "#7f7f7f"},
    "group": {"style": "rounded,dotted", "color": "#7f7f7f"},
    "aux": {"style": "rounded,dashed", "color": "#b45f06"},
}


def _esc_plain(text: str) -> str:
    """A plain (quoted) DOT string: only backslashes need care, the package quotes the rest."""
    return text.replace("\\", "\\\\")


def _legend(categories: list[str]) -> str:
    rows = "".join(f'<tr><td bgcolor="{CATEGORY_COLOURS[c]}" width="14"></td><td align="left">'
                   f'{"collapsed block" if c == "block" else c}</td></tr>' for c in categories)
    return (f'<table border="0" cellborder="1" cellspacing="2" cellpadding="3">'
            f'<tr><td colspan="2"><b>legend</b></td></tr>{rows}</table>')


# ---------------------------------------------------------------- output files


def dot_available() -> bool:
    import shutil

    return shutil.which("dot") is not None


def pipe(dot_text: str, fmt: str) -> bytes:
    """Run `dot -T<fmt>` on DOT text. Raises :class:`GraphvizNotFound` without Graphviz."""
    import graphviz

    if not dot_available():
        raise GraphvizNotFound()
    try:
        return graphviz.Source(dot_text).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFound() from None


#: the most nodes `depth="auto"` draws: Graphviz lays out a thousand in seconds, but the 3,339
#: layers of ResNet-1001 take it a minute
AUTO_MAX_NODES = 1000


def auto_depth(net: "CompiledNetwork", max_nodes: int = AUTO_MAX_NODES) -> int | None:
    """None (every layer) when that draws at most `max_nodes` nodes, else the largest depth
    that does (0 at worst)."""
    if len(_Layout(net, None, True).nodes) <= max_nodes:
        return None
    depth = 0
    while len(_Layout(net, depth + 1, True).nodes) <= max_nodes:
        depth += 1
    return depth


def to_svg(net: "CompiledNetwork", depth: "int | None | str" = "auto", **kw: Any) -> str:
    """The diagram as SVG text (Jupyter shows a CompiledNetwork with it). The default depth,
    "auto", draws every layer unless that makes more than AUTO_MAX_NODES nodes."""
    if depth == "auto":
        depth = auto_depth(net)
    return pipe(to_dot(net, depth=depth, **kw), "svg").decode("utf-8")


def output_format(output: str | Path, format: str | None = None) -> str:
    """The format asked for: `format`, else the output's suffix (.gv counts as .dot)."""
    fmt = (format or Path(output).suffix.lstrip(".")).lower()
    fmt = "dot" if fmt == "gv" else fmt
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt or '(none)'!r} for {output}: use one of "
                         + ", ".join("." + f for f in FORMATS))
    return fmt


def render(net: "CompiledNetwork", output: str | Path | None = None, *, depth: int | None = None,
           rankdir: str = "TB", collapse_repeats: bool = True, only: str | None = None,
           format: str | None = None) -> str:
    """Draw `net`; write `output` (.svg, .png, .pdf or .dot) when given; return the DOT text.

    Writing .dot needs no Graphviz program; the other formats raise
    :class:`GraphvizNotFound` when `dot` is not on PATH.
    """
    text = to_dot(net, depth=depth, rankdir=rankdir, collapse_repeats=collapse_repeats, only=only)
    if output is not None:
        fmt = output_format(output, format)
        path = Path(output)
        if fmt == "dot":
            path.write_text(text)
        else:
            path.write_bytes(pipe(text, fmt))
    return text
