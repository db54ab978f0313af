"""Stage 6, inference: a node's shape, parameters, MACs and receptive field, from its inputs.

The expansion stage adds nodes in topological order and infers each as it is added
(expressions such as ``in.c`` need the shape of the tensor they follow, so inference
cannot wait for the whole graph). Everything here goes through the node's kinds: a layer
kind's ``infer``/``count_params``/``macs``/``rf``, a merge kind's ``infer_many``/
``count_params_many``/``macs_many``/``field``. A layer's own figures (output shape, params,
MACs, receptive-field step) are a function of its kind, its params, its attached ops and its
input shape alone: the expansion of one network hands :func:`infer_info` a memo keyed by
those values, so that the hundredth call of a block infers nothing new.

Conventions, stated once here and in the report:

* params: every learnable tensor, as ``sum(p.numel() for p in model.parameters())``;
* MACs: multiply-accumulates of convolution and fully connected weights only, as the
  papers' "multiply-adds" and torchvision's documented GFLOPS; FLOPs = 2 x MACs, as
  ``torch.utils.flop_counter`` counts;
* receptive field: size and jump (distance between neighbouring outputs, in input
  pixels) per axis (Araujo et al., Distill 2019), merged by the merge kind's rule;
* activation elements: the number of values in a node's output, batch size 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .layers.base import INPUT_FIELD, RF, Field, Kind, MergeKind, Params, Shape, ShapeError, advance

if TYPE_CHECKING:
    from .syntax import Span

#: no tensor may hold more values than this (per sample); checked before anything is allocated
MAX_TENSOR_ELEMENTS = 2**32


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

    @property
    def buffers(self) -> int:
        """Values of the buffers of this node's ops (batch-norm statistics and the like)."""
        if not self.in_shapes:
            return 0
        x, y = self.in_shapes[0], self.shape
        return (self.op.kind.count_buffers(self.op.params, x, y)
                + sum(op.kind.count_buffers(op.params, y, y) for op in self.post))

    def label(self) -> str:
        text = self.op.kind.label(self.op.params)
        for op in self.post:
            text += f" +{op.kind.label(op.params)}"
        return text


def infer_info(info: NodeInfo, ins: list[NodeInfo], memo: dict | None = None) -> NodeInfo:
    """Fill in `info` from the infos of its inputs (in order). Raises ShapeError on a mismatch.
    `memo` holds the figures of the layers inferred before, by value (a mistake is not kept)."""
    kind, p = info.op.kind, info.op.params
    if not ins:  # the input node: its shape was set by the expansion stage
        info.in_shapes, info.params, info.macs, info.rf = [], 0, 0, INPUT_FIELD
        check_size(info.shape)
        return info
    if isinstance(kind, MergeKind):
        xs = info.in_shapes = [i.shape for i in ins]
        y = kind.infer_many(p, xs)
        check_size(y)
        info.shape = y
        info.params, info.macs = kind.count_params_many(p, xs, y), kind.macs_many(p, xs, y)
        info.rf = kind.field(p, [i.rf for i in ins])
        return info
    (src,) = ins
    x = src.shape
    info.in_shapes = [x]  # set first: an error message names the input's shape
    if memo is not None:
        key = (kind.name, p, x, *[(op.kind.name, op.params) for op in info.post])
        if (known := memo.get(key)) is not None:
            info.shape, info.params, info.macs, info.step = known
            info.rf = advance(src.rf, known[3])
            return info
    _check_input_rank(kind, x)
    y = kind.infer(p, x)
    params, macs = kind.count_params(p, x, y), kind.macs(p, x, y)
    step = kind.rf(p, x, y)
    for op in info.post:  # attached norm and activation: shape-preserving, counted with the layer
        _check_input_rank(op.kind, y)
        y2 = op.kind.infer(op.params, y)
        params += op.kind.count_params(op.params, y, y2)
        macs += op.kind.macs(op.params, y, y2)
        y = y2
    check_size(y)
    info.shape, info.params, info.macs, info.step = y, params, macs, step
    info.rf = advance(src.rf, step)
    if memo is not None:
        memo[key] = (y, params, macs, step)
    return info


def check_size(y: Shape) -> None:
    if y.numel > MAX_TENSOR_ELEMENTS:
        raise ShapeError("E410", f"the output {y} holds {y.numel:,} values per sample",
                         expected=f"at most {MAX_TENSOR_ELEMENTS:,}", found=f"{y.numel:,}")


def _check_input_rank(kind: Kind, x: Shape) -> None:
    if not x.spatial and not kind.accepts_flat:
        raise ShapeError("E408", f"{kind.name} needs a CxHxW input, but its input is flat ({x})",
                         expected="a CxHxW input", found=f"a flat input of {x.c}",
                         hint=f"{kind.name} cannot follow fc, flatten or spp")
