"""Stage 7, the compiled network: what every back end reads.

A :class:`CompiledNetwork` holds two views of one network:

* its nodes, in topological (build) order, each a :class:`~archdsl.infer.NodeInfo` named
  by its module path (``inception3a.branch2.conv1``), and, on first use of ``graph``, the
  same as a networkx DiGraph whose nodes carry them (``graph.nodes[n]["info"]``);
* its structure, ``tree``: nested bodies, block calls, merges and aux heads, which the
  back ends follow with the one walker here (:func:`walk`): the lowering nests modules
  as the tree nests, the diagram draws clusters, the diff compares groups.

Names are a pure function of the spec (labels, or the kind and its count in the enclosing
body), so the same spec gives the same nodes, module names and state_dict keys every time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Union

from . import syntax as P
from .infer import NodeInfo
from .layers.base import Shape

if TYPE_CHECKING:
    import networkx as nx


# ---------------------------------------------------------------- the structural tree


@dataclass(slots=True)
class TLayer:
    name: str
    node: str  # the node's id


@dataclass(slots=True)
class TSeq:
    """A body: its items run in order. `block` and `args` are set for block calls."""

    name: str
    items: list["Item"] = field(default_factory=list)
    block: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass(slots=True)
class TMerge:
    """A merge: branches run on the same input, combined by the node `node` (its kind and
    params are that node's op). An identity branch is an empty TSeq."""

    name: str
    branches: list[TSeq]
    node: str


@dataclass(slots=True)
class TAux:
    """An aux head: a body run on the current tensor, its result collected, the main path
    going on with the tensor it started from."""

    name: str
    body: TSeq


Item = Union[TLayer, TSeq, TMerge, TAux]


@dataclass(slots=True)
class Visit:
    """One step of :func:`walk`. Containers (TSeq, TMerge, TAux) are visited twice, on the
    way in (``leaving`` False) and on the way out, a layer once; `parent` is the container
    holding the item (None for the item the walk started from); `depth` counts the block
    calls and named groups around the item."""

    item: Item
    leaving: bool
    parent: Item | None
    depth: int


def walk(root: Item) -> Iterator[Visit]:
    """Every item under `root` (itself included), depth-first in the order written, without
    recursion: a tree nested as deeply as any spec that compiles is walked in constant stack."""
    stack: list[tuple[Item, Item | None, int, bool]] = [(root, None, 0, False)]
    while stack:
        item, parent, depth, leaving = stack.pop()
        t = type(item)
        if t is TLayer:
            yield Visit(item, False, parent, depth)
            continue
        yield Visit(item, leaving, parent, depth)
        if leaving:
            continue
        stack.append((item, parent, depth, True))
        if t is TSeq:
            inner = depth + (1 if item is not root and not _is_branch(item, parent) else 0)
            stack.extend((c, item, inner, False) for c in reversed(item.items))
        elif t is TMerge:
            stack.extend((b, item, depth, False) for b in reversed(item.branches))
        else:  # TAux
            stack.append((item.body, item, depth, False))


def _is_branch(seq: TSeq, parent: Item | None) -> bool:
    return type(parent) is TMerge


def nodes_under(root: Item) -> list[str]:
    """Every node inside a tree item, in build order (a merge's node after its branches)."""
    out = []
    for v in walk(root):
        t = type(v.item)
        if t is TLayer or (t is TMerge and v.leaving):
            out.append(v.item.node)
    return out


def output_of(seq: TSeq) -> str | None:
    """The node a body returns: its last node outside aux heads (None for a body without
    one, which passes its input on)."""
    out, in_aux = None, 0
    for v in walk(seq):
        t = type(v.item)
        if t is TAux:
            in_aux += -1 if v.leaving else 1
        elif not in_aux and (t is TLayer or (t is TMerge and v.leaving)):
            out = v.item.node
    return out


def groups(tree: TSeq, branches: bool = True) -> dict[str, Item]:
    """Block calls, named groups, aux heads and (unless `branches` is False) merge branches
    under `tree`, by path, in the order written."""
    out: dict[str, Item] = {}
    for v in walk(tree):
        it = v.item
        if v.leaving or it is tree:
            continue
        if type(it) is TSeq and type(v.parent) is not TAux and (branches or type(v.parent) is not TMerge):
            out[it.path] = it
        elif type(it) is TAux:
            out[it.body.path] = it
    return out


def is_branch(path_item: Item) -> bool:
    """A merge's branch (`inception3a.branch2`): an unnamed group of the merge's own."""
    return type(path_item) is TSeq and path_item.block is None and path_item.name.startswith("branch")


def format_value(v: Any) -> str:
    """A block argument as the spec would write it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def call_text(seq: TSeq) -> str:
    """`inception(c1=64, c3r=96, ...)` for a block call; the group's name otherwise."""
    if seq.block is None:
        return seq.name
    args = ", ".join(f"{k}={format_value(v)}" for k, v in seq.args.items())
    return f"{seq.block}({args})"


# ---------------------------------------------------------------- the compiled network


def _output(net: "CompiledNetwork") -> tuple[int, ...]:
    return net.output_shape.dims


#: what `expect NAME = ...` can name, and how the figure is read off a compiled network
EXPECTABLE: dict[str, Any] = {
    "params": lambda n: n.params,
    "params_without_aux": lambda n: n.params_without_aux,
    "macs": lambda n: n.macs,
    "macs_without_aux": lambda n: n.macs_without_aux,
    "flops": lambda n: n.flops,
    "output": _output,
    "shape": lambda n: None,  # checked where it stands: the current tensor's shape
    "rf": lambda n: n.node(n.output).rf.size[0],
    "layers": lambda n: sum(1 for i in n.nodes() if i.inputs and not i.kind.category == "merge"),
}


@dataclass
class Expectation:
    stmt: P.Expect
    expected: Any
    #: for `expect shape` (checked where it stands) the shape found there
    found_here: Any = None


@dataclass
class CompiledNetwork:
    """A validated, fully inferred network: its nodes, its structure, and its checks."""

    name: str
    file: str
    #: every node by id, in build (topological) order
    infos: dict[str, NodeInfo]
    tree: TSeq
    input: str
    output: str
    aux_outputs: dict[str, str]
    expectations: list[Expectation]
    sources: dict[str, str]
    span: P.Span | None = None
    #: False for the part of a failing network built before its first error (ArchError.partial)
    complete: bool = True
    #: node -> its fillers, (op index, parameter, archdsl.init.Filler): where the spec says more than torch's default
    init: dict[str, Any] = field(default_factory=dict)
    #: the `train { }` recipe (archdsl.recipe.Recipe), None when the spec states none
    recipe: Any = None
    _graph: "nx.DiGraph | None" = field(default=None, repr=False, compare=False)

    @property
    def graph(self) -> "nx.DiGraph":
        """The layer graph as a networkx DiGraph (node attribute ``info``), built on first use:
        importing networkx takes longer than compiling most networks, and the analysis never
        needs it."""
        if self._graph is None:
            import networkx as nx

            g = nx.DiGraph()
            for n, info in self.infos.items():
                g.add_node(n, info=info)
            g.add_edges_from((i, n) for n, info in self.infos.items() for i in info.inputs if i in self.infos)
            self._graph = g
        return self._graph

    # -- views
    def nodes(self) -> Iterator[NodeInfo]:
        """Every node in topological (build) order."""
        return iter(self.infos.values())

    def node(self, name: str) -> NodeInfo:
        return self.infos[name]

    @property
    def input_shape(self) -> Shape:
        return self.infos[self.input].shape

    @property
    def output_shape(self) -> Shape:
        return self.infos[self.output].shape

    @property
    def params(self) -> int:
        return sum(i.params for i in self.infos.values())

    @property
    def params_without_aux(self) -> int:
        return sum(i.params for i in self.infos.values() if i.aux is None)

    @property
    def buffers(self) -> int:
        """Values kept with the model but not trained: batch-norm statistics, fixed codes,
        indices (torch's ``buffers()``). Every parameter archdsl builds is trainable."""
        return sum(i.buffers for i in self.infos.values())

    @property
    def macs(self) -> int:
        return sum(i.macs for i in self.infos.values())

    @property
    def macs_without_aux(self) -> int:
        return sum(i.macs for i in self.infos.values() if i.aux is None)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    # -- the back ends, for convenience (each imports this module for its types only)
    def report(self, depth: int | None = None, batch: int | None = None, optimizer: str | None = None,
               hyper: dict[str, Any] | None = None):
        """The analytic report (:class:`archdsl.report.Report`); `depth` folds groups nested
        that deep into one row each; its training memory is at `batch` with `optimizer`
        (``sgd``, ``adam``, ... with torch.optim's `hyper`: the recipe's, else 1 and SGD)."""
        from .report import Report

        return Report.of(self, depth, batch, optimizer, hyper)

    def training_memory(self, batch: int | None = None, optimizer: str | None = None,
                        hyper: dict[str, Any] | None = None):
        """One training step's memory (:class:`archdsl.memory.TrainingMemory`), bytes."""
        from .memory import training_memory

        return training_memory(self, batch, optimizer, hyper)

    def check(self):
        """Evaluate every `expect` line: a list of :class:`archdsl.check.Outcome`."""
        from .check import evaluate_expectations

        return evaluate_expectations(self)

    def _repr_mimebundle_(self, include=None, exclude=None):  # Jupyter: show the diagram
        try:
            from .diagram import to_svg

            return {"image/svg+xml": to_svg(self), "text/plain": repr(self)}
        except Exception:  # noqa: BLE001 - no Graphviz: fall back to text
            return {"text/plain": repr(self)}

    def __repr__(self) -> str:
        return (f"<CompiledNetwork {self.name}: {self.input_shape} -> {self.output_shape}, "
                f"{self.params:,} params, {self.macs:,} MACs>")
