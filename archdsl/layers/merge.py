"""Kinds with several inputs, made by `concat { }`, `add { }` and `residual { }`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .base import MergeKind, Params, Shape, ShapeError, chw, flat, register


@dataclass(frozen=True)
class AddParams(Params):
    #: the factor on each input: `residual scale=S` is x + S * f(x)
    scales: tuple[float, ...] = ()


@register
class Concat(MergeKind):
    name = "concat"
    summary = "concatenation of branches along channels"

    def infer_many(self, p, xs: Sequence[Shape]) -> Shape:
        first = xs[0]
        if all(x.spatial for x in xs):
            if len({(x.h, x.w) for x in xs}) > 1:
                raise ShapeError("E403", "concat: the branches' spatial sizes differ",
                                 expected=f"every branch at {first.h}x{first.w}",
                                 found=", ".join(str(x) for x in xs))
            return chw(sum(x.c for x in xs), first.h, first.w)
        if any(x.spatial for x in xs):
            raise ShapeError("E403", "concat: some branches are flat and some are not",
                             expected="all flat or all CxHxW", found=", ".join(str(x) for x in xs))
        return flat(sum(x.c for x in xs))


@register
class Add(MergeKind):
    name = "add"
    summary = "element-wise sum of branches (scaled for `residual scale=S`)"
    Params = AddParams

    def infer_many(self, p, xs: Sequence[Shape]) -> Shape:
        if len({x.dims for x in xs}) > 1:
            raise ShapeError("E404", "add: the branches' shapes differ",
                             expected=f"every branch at {xs[0]}", found=", ".join(str(x) for x in xs))
        return xs[0]

    def label(self, p: AddParams) -> str:
        scaled = [s for s in p.scales if s != 1.0]
        return f"add (scale {scaled[0]:g})" if scaled else "add"
