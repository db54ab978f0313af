"""Merge kinds: `concat { A | B }`, `add { A | B }`, `residual [scale=S] { F }`, `mul { A | B }`.

Every branch runs on the merge's input; the kind combines the branches' outputs. A merge
adds no parameters and no MACs (the papers and torchvision count conv and fc weights only).
Its receptive field is the widest of its branches' (``MergeKind.field``).
"""

from __future__ import annotations

from typing import Sequence

from ..frozen import frozen
from .base import Args, MergeKind, Params, Saved, Shape, ShapeError, chw, flat, register


def _shapes(xs: Sequence[Shape]) -> str:
    return ", ".join(str(x) for x in xs)


@register
class Concat(MergeKind):
    name = "concat"
    summary = "concatenation of branches along channels"
    example = "concat { conv 1x1 -> 64 | conv 3x3 p1 -> 128 }"

    def infer_many(self, p, xs: Sequence[Shape]) -> Shape:
        first = xs[0]
        if all(x.spatial for x in xs):
            if len({(x.h, x.w) for x in xs}) > 1:
                raise ShapeError("E403", "concat: the branches' spatial sizes differ",
                                 expected=f"every branch at {first.h}x{first.w}", found=_shapes(xs))
            return chw(sum(x.c for x in xs), first.h, first.w)
        if any(x.spatial for x in xs):
            raise ShapeError("E403", "concat: some branches are flat and some are not",
                             expected="all flat or all CxHxW", found=_shapes(xs))
        return flat(sum(x.c for x in xs))

    def odd_branch(self, p, xs: Sequence[Shape]) -> int:  # channels may differ; the rest may not
        return next((k for k in range(1, len(xs)) if xs[k].dims[1:] != xs[0].dims[1:]), 1)

    def combine(self, p, ys, lib):
        return lib.torch.cat(ys, 1)


@frozen
class AddParams(Params):
    #: the factor on each input (the identity's, for a residual, is last): x + S * f(x)
    scales: tuple[float, ...] = ()


@register
class Add(MergeKind):
    name = "add"
    summary = "element-wise sum of branches of one shape"
    example = "add { conv 3x3 p1 -> 64 | identity }"
    Params = AddParams

    def infer_many(self, p, xs: Sequence[Shape]) -> Shape:
        if len({x.dims for x in xs}) > 1:
            raise ShapeError("E404", "add: the branches' shapes differ",
                             expected=f"every branch at {xs[0]}", found=_shapes(xs))
        return xs[0]

    def combine(self, p: AddParams, ys, lib):
        out = None
        for k, y in enumerate(ys):
            s = p.scales[k] if k < len(p.scales) else 1.0
            if s != 1.0:
                y = y * s
            out = y if out is None else out + y
        return out

    def label(self, p: AddParams) -> str:
        scaled = [s for s in p.scales if s != 1.0]
        return f"add (scale {scaled[0]:g})" if scaled else "add"

    def branch_note(self, p: AddParams, k: int) -> str | None:
        return f"x{p.scales[k]:g}" if k < len(p.scales) and p.scales[k] != 1.0 else None


@register
class Residual(Add):
    """He et al. 2016: x + F(x); Szegedy et al. 2017 (Inception-ResNet, §3.3) scale the
    residual F before the sum, x + S * F(x), to keep very wide networks stable."""

    name = "residual"
    summary = "x + S * F(x): the branch plus the identity (scale=S, default 1)"
    example = "residual scale=0.2 { conv 3x3 p1 -> 64 }"
    min_branches = 1
    identity_branch = True

    def bind(self, a: Args) -> AddParams:
        scale = a.kw("scale", integer=False, default=1.0)
        return AddParams(scales=(scale, 1.0))

    def caption(self, p: AddParams) -> str:
        s = p.scales[0]  # branch 1 is f, branch 2 the identity
        return "residual: x + f(x)" if s == 1.0 else f"residual: x + {s:g} f(x)"


@register
class Mul(MergeKind):
    """The element-wise product, with a Cx1x1 (or flat C) branch broadcast over CxHxW: the
    gate of squeeze-and-excitation (Hu et al. 2018, §3.2: x * sigmoid(W2 relu(W1 gap(x))))."""

    name = "mul"
    summary = "element-wise product of branches; a Cx1x1 gate is broadcast over CxHxW"
    example = "mul { identity | gap; conv 1x1 -> 16 relu; conv 1x1 -> 64 sigmoid }"

    def infer_many(self, p, xs: Sequence[Shape]) -> Shape:
        full = max(xs, key=lambda x: x.numel)
        for x in xs:
            if x.dims != full.dims and not (full.spatial and x.c == full.c and x.h == x.w == 1):
                raise ShapeError("E404", "mul: the branches' shapes differ",
                                 expected=f"every branch at {full}, or {full.c}x1x1 to broadcast",
                                 found=_shapes(xs))
        return full

    def odd_branch(self, p, xs: Sequence[Shape]) -> int:
        full = max(xs, key=lambda x: x.numel)
        return next((k for k, x in enumerate(xs) if x.dims != full.dims and not (x.c == full.c and x.h == x.w == 1)), 1)

    def saved_many(self, p, xs: Sequence[Shape], y: Shape) -> Saved:
        # each product keeps both factors: the branches, and the partial products past two
        return Saved(input=True, extra=4 * y.numel * (len(xs) - 2))

    def combine(self, p, ys, lib):
        out = ys[0]
        for y in ys[1:]:
            out = out * y
        return out
