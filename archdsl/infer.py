"""Shapes, parameters, MACs, receptive field and activation size: one topological pass.

The graph stage adds nodes in topological order and calls :func:`infer_node` on each as it
is added (expressions such as ``in.c`` need the shape of the tensor they follow, so shape
inference cannot wait for the whole graph). :func:`infer` runs the same pass over a whole
graph again, which is how the tests check that the incremental results are consistent.

Conventions, stated once here and in the report:

* params: every learnable tensor, as ``sum(p.numel() for p in model.parameters())``;
* MACs: multiply-accumulates of convolution and fully connected weights only, as the
  papers' "multiply-adds" and torchvision's documented GFLOPS; FLOPs = 2 x MACs, as
  ``torch.utils.flop_counter`` counts;
* receptive field: size and jump (distance between neighbouring outputs, in input
  pixels) per axis, the maximum over paths where branches meet;
* activation elements: the number of values in a node's output, batch size 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .cache import memo
from .layers.base import Kind, MergeKind, Params, Shape, ShapeError

if TYPE_CHECKING:
    import networkx as nx

    from .program import Span

#: no tensor may hold more values than this (per sample); checked before anything is allocated
MAX_TENSOR_ELEMENTS = 2**32

#: (kind, params, attached ops, input dims) -> (output shape, params, MACs, rf step). A kind's
#: infer/count_params/macs/rf are pure functions of these, and networks repeat the same layer
#: on the same shape many times (ResNet's bottlenecks, DenseNet's layers), so each is
#: computed once per process. Bounded: cleared when full. A kind instance with attributes
#: of its own (a method replaced on it, as tests do) is not memoised.
_MEMO: dict = memo()
_MEMO_LIMIT = 100_000


@dataclass(frozen=True)
class Field:
    """Receptive field of a node's output, per axis (H, W), in input pixels."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[float, float] = (0.5, 0.5)


@dataclass
class Op:
    """A layer kind with bound parameters; a node holds one main op and its attached ops."""

    kind: Kind
    params: Params


@dataclass
class NodeInfo:
    """Everything the pipeline knows about one node of the layer graph."""

    id: str
    op: Op
    #: attached normalisation and activation, applied in order after the main op
    post: list[Op] = field(default_factory=list)
    span: "Span | None" = None
    #: block-call path, outermost first: (("inception3a", "inception"), ...)
    scope: tuple[tuple[str, str], ...] = ()
    #: the aux head this node belongs to, if any
    aux: str | None = None
    inputs: list[str] = field(default_factory=list)
    in_shapes: list[Shape] = field(default_factory=list)
    shape: Shape | None = None
    params: int = 0
    macs: int = 0
    rf: Field = field(default_factory=Field)

    @property
    def kind(self) -> Kind:
        return self.op.kind

    @property
    def activations(self) -> int:
        return self.shape.numel if self.shape is not None else 0

    def label(self) -> str:
        text = self.op.kind.label(self.op.params)
        for op in self.post:
            text += f" +{op.kind.label(op.params)}"
        return text


def infer_node(g: nx.DiGraph, node: str) -> NodeInfo:
    """Infer one node from its (already inferred) inputs. Raises ShapeError on a mismatch."""
    info: NodeInfo = g.nodes[node]["info"]
    xs = [g.nodes[i]["info"].shape for i in info.inputs]
    info.in_shapes = xs
    kind, p = info.op.kind, info.op.params
    if isinstance(kind, MergeKind):
        y = infer_merge(kind, p, xs)
        info.params, info.macs = 0, 0
        fields = [g.nodes[i]["info"].rf for i in info.inputs]
        info.rf = max(fields, key=lambda f: (f.size[0] * f.size[1], f.size))
    elif not info.inputs:  # the input node: its shape was set by the graph stage
        y = info.shape
        info.rf = Field()
    else:
        (x,) = xs
        try:
            key = (kind, p, tuple((op.kind, op.params) for op in info.post), x.dims)
            if kind.__dict__ or any(op.kind.__dict__ for op in info.post):
                raise TypeError("not memoised")
            hit = _MEMO.get(key)
        except TypeError:  # a kind whose params do not hash, or one patched: no memo
            key = hit = None
        if hit is None:
            _check_input_rank(kind, x)
            y = kind.infer(p, x)
            params, macs = kind.count_params(p, x, y), kind.macs(p, x, y)
            step = kind.rf(p, x, y)
            for op in info.post:
                _check_input_rank(op.kind, y)
                y2 = op.kind.infer(op.params, y)
                params += op.kind.count_params(op.params, y, y2)
                macs += op.kind.macs(op.params, y, y2)
                y = y2
            hit = (y, params, macs, step)
            if key is not None:
                if len(_MEMO) >= _MEMO_LIMIT:
                    _MEMO.clear()
                _MEMO[key] = hit
        y, info.params, info.macs, step = hit
        info.rf = _advance(g.nodes[info.inputs[0]]["info"].rf, step)
    if y.numel > MAX_TENSOR_ELEMENTS:
        raise ShapeError("E410", f"the output {y} holds {y.numel:,} values per sample",
                         expected=f"at most {MAX_TENSOR_ELEMENTS:,}", found=f"{y.numel:,}")
    info.shape = y
    return info


def infer_merge(kind: MergeKind, p: Params, xs: list[Shape]) -> Shape:
    """kind.infer_many, memoised like single-input layers (see _MEMO)."""
    try:
        key = (kind, p, tuple(x.dims for x in xs))
        if kind.__dict__:
            raise TypeError("not memoised")
        y = _MEMO.get(key)
    except TypeError:
        return kind.infer_many(p, xs)
    if y is None:
        y = kind.infer_many(p, xs)
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = y
    return y


def _check_input_rank(kind: Kind, x: Shape) -> None:
    if not x.spatial and not kind.accepts_flat:
        raise ShapeError("E408", f"{kind.name} needs a CxHxW input, but its input is flat ({x})",
                         expected="a CxHxW input", found=f"a flat input of {x.c}",
                         hint=f"{kind.name} cannot follow fc, flatten or spp")


def _advance(f: Field, step) -> Field:
    # r_out = r_in + (k - 1) j_in, j_out = j_in s, start_out = start_in + ((k - 1) / 2 - p) j_in
    # (Araujo et al., Distill 2019), per axis, written out for the two axes: this runs per node
    (r0, r1), (j0, j1), (s0, s1) = f.size, f.jump, f.start
    (k0, k1), (t0, t1), (p0, p1) = step.k, step.s, step.p
    return Field((r0 + (k0 - 1) * j0, r1 + (k1 - 1) * j1), (j0 * t0, j1 * t1),
                 (s0 + ((k0 - 1) / 2 - p0) * j0, s1 + ((k1 - 1) / 2 - p1) * j1))


def infer(g: nx.DiGraph) -> nx.DiGraph:
    """Re-run inference over a whole graph in topological order (nodes already hold ops)."""
    import networkx as nx  # only here: the compile path never needs networkx (see graph.LayerGraph)

    for node in nx.topological_sort(g):
        infer_node(g, node)
    return g
