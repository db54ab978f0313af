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
from typing import TYPE_CHECKING, NamedTuple

from .cache import memo
from .layers.base import RF, Kind, MergeKind, Params, Shape, ShapeError

if TYPE_CHECKING:
    import networkx as nx

    from .program import Span

#: no tensor may hold more values than this (per sample); checked before anything is allocated
MAX_TENSOR_ELEMENTS = 2**32

#: (kind, params, attached ops, input dims) -> (output shape, params, MACs, rf step, ...). A kind's
#: infer/count_params/macs/rf are pure functions of these, and networks repeat the same layer
#: on the same shape many times (ResNet's bottlenecks, DenseNet's layers), so each is
#: computed once per process. Bounded: cleared when full. A kind instance with attributes
#: of its own (a method replaced on it, as tests do) is not memoised.
_MEMO: dict = memo()
_MEMO_LIMIT = 100_000


class Field(NamedTuple):
    """Receptive field of a node's output, per axis (H, W), in input pixels.

    A named tuple rather than a frozen dataclass: one is made per node, and a frozen
    dataclass's constructor costs several times as much."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[float, float] = (0.5, 0.5)


#: the network input's field: one pixel
INPUT_FIELD = Field()
#: Field's constructor without the Python-level __new__ a NamedTuple has (half the cost)
_new_field = tuple.__new__


@dataclass(slots=True)
class Op:
    """A layer kind with bound parameters; a node holds one main op and its attached ops."""

    kind: Kind
    params: Params


@dataclass(slots=True)
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
    rf: Field = INPUT_FIELD
    #: the receptive-field step of this node's ops (None for the input and merges)
    step: RF | None = None

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
    nodes = g.nodes
    info: NodeInfo = nodes[node]["info"]
    return infer_info(info, [nodes[i]["info"] for i in info.inputs])


def infer_info(info: NodeInfo, ins: list[NodeInfo]) -> NodeInfo:
    """Infer `info` from the infos of its inputs (in order). Raises ShapeError on a mismatch.

    This runs once per node of every network compiled, so it is written for speed: the
    per-kind work (shape, counts, receptive-field step) is memoised in :data:`_MEMO`, and a
    memo hit costs one tuple of small ints to hash.
    """
    kind, p = info.op.kind, info.op.params
    if not ins:  # the input node: its shape was set by the graph stage
        y = info.shape
        info.in_shapes, info.params, info.macs, info.rf = [], 0, 0, INPUT_FIELD
        _check_size(y)
        return info
    if isinstance(kind, MergeKind):
        xs = [i.shape for i in ins]
        info.in_shapes = xs
        info.shape = infer_merge(kind, p, xs)
        info.params, info.macs = 0, 0
        info.rf = widest([i.rf for i in ins])
        return info
    (src,) = ins
    x = src.shape
    info.in_shapes = [x]
    post = info.post
    # The memo is keyed by the identity of the kind and parameter objects, not their value:
    # bound parameters are shared between the statements that bind alike (graph._BIND_MEMO),
    # and hashing a pydantic model field by field on every node costs more than the rest of
    # the lookup. The entry holds those objects, so no other object can take their ids while
    # it exists. A kind with attributes of its own (a method replaced, as tests do) is never
    # memoised.
    if post:
        key: tuple | None = (id(kind), id(p), x.dims, *[(id(o.kind), id(o.params)) for o in post])
        for o in post:
            if o.kind.__dict__:
                key = None
    else:
        key = (id(kind), id(p), x.dims)
    if kind.__dict__:
        key = None
    hit = _MEMO.get(key) if key is not None else None
    if hit is None:
        _check_input_rank(kind, x)
        y = kind.infer(p, x)
        params, macs = kind.count_params(p, x, y), kind.macs(p, x, y)
        step = kind.rf(p, x, y)
        for op in post:
            _check_input_rank(op.kind, y)
            y2 = op.kind.infer(op.params, y)
            params += op.kind.count_params(op.params, y, y2)
            macs += op.kind.macs(op.params, y, y2)
            y = y2
        _check_size(y)
        hit = (y, params, macs, step, kind, p, post and tuple(post))
        if key is not None:
            if len(_MEMO) >= _MEMO_LIMIT:
                _MEMO.clear()
            _MEMO[key] = hit
    info.shape, info.params, info.macs, info.step = hit[0], hit[1], hit[2], hit[3]
    info.rf = advance(src.rf, hit[3])
    return info


def advance(f: Field, step: RF) -> Field:
    """The field after a layer with receptive-field step `step`."""
    # r_out = r_in + (k - 1) j_in, j_out = j_in s, start_out = start_in + ((k - 1) / 2 - p) j_in
    # (Araujo et al., Distill 2019), per axis, written out for the two axes: this runs per node
    (r0, r1), (j0, j1), (s0, s1) = f
    (k0, k1), (t0, t1), (p0, p1) = step.k, step.s, step.p
    return _new_field(Field, ((r0 + (k0 - 1) * j0, r1 + (k1 - 1) * j1), (j0 * t0, j1 * t1),
                              (s0 + ((k0 - 1) / 2 - p0) * j0, s1 + ((k1 - 1) / 2 - p1) * j1)))


def widest(fields: list[Field]) -> Field:
    """Where branches merge: the largest field (by area, then by size), the first of equals."""
    rf = fields[0]
    for f in fields[1:]:
        (a0, a1), (b0, b1) = f.size, rf.size
        if (a0 * a1, a0, a1) > (b0 * b1, b0, b1):
            rf = f
    return rf


def infer_merge(kind: MergeKind, p: Params, xs: list[Shape]) -> Shape:
    """kind.infer_many, memoised like single-input layers (see _MEMO)."""
    if kind.__dict__:
        y = kind.infer_many(p, xs)
        _check_size(y)
        return y
    key = (id(kind), id(p), *[x.dims for x in xs])
    hit = _MEMO.get(key)
    if hit is None:
        y = kind.infer_many(p, xs)
        _check_size(y)
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        hit = _MEMO[key] = (y, kind, p)
    return hit[0]


def _check_size(y: Shape) -> None:
    if y.numel > MAX_TENSOR_ELEMENTS:
        raise ShapeError("E410", f"the output {y} holds {y.numel:,} values per sample",
                         expected=f"at most {MAX_TENSOR_ELEMENTS:,}", found=f"{y.numel:,}")


def _check_input_rank(kind: Kind, x: Shape) -> None:
    if not x.spatial and not kind.accepts_flat:
        raise ShapeError("E408", f"{kind.name} needs a CxHxW input, but its input is flat ({x})",
                         expected="a CxHxW input", found=f"a flat input of {x.c}",
                         hint=f"{kind.name} cannot follow fc, flatten or spp")


def infer(g: nx.DiGraph) -> nx.DiGraph:
    """Re-run inference over a whole graph in topological order (nodes already hold ops)."""
    import networkx as nx  # only here: the compile path never needs networkx (see graph.LayerGraph)

    for node in nx.topological_sort(g):
        infer_node(g, node)
    return g
