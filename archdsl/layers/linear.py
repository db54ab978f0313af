"""Fully connected layers."""

from __future__ import annotations


from ..frozen import frozen
from .base import RF, Args, Kind, Params, Shape, flat, register


@frozen
class FcParams(Params):
    out: int
    bias: bool = True


@register
class Fc(Kind):
    """`fc N`: a linear layer that flattens a CxHxW input first (as torchvision's classifiers
    do with torch.flatten(x, 1))."""

    name = "fc"
    fresh_output = True
    aliases = ("linear",)
    category = "fc"
    summary = "fully connected; flattens a CxHxW input first"
    example = "fc 4096"
    takes_act = True
    has_bias = True
    accepts_flat = True
    Params = FcParams

    def bind(self, a: Args) -> FcParams:
        n = a.number("output features", required=not a.has_out(), minimum=1)
        if n is None:
            n = a.out("output features")
        return FcParams(out=n)

    def with_bias(self, p: FcParams, bias: bool) -> FcParams:
        return p if p.bias is bias else p.but(bias=bias)

    def infer(self, p: FcParams, x: Shape) -> Shape:
        return flat(p.out)

    def count_params(self, p: FcParams, x: Shape, y: Shape) -> int:
        return x.numel * p.out + (p.out if p.bias else 0)

    def macs(self, p: FcParams, x: Shape, y: Shape) -> int:
        return x.numel * p.out

    def rf(self, p: FcParams, x: Shape, y: Shape) -> RF:
        # an fc layer on a CxHxW map sees all of it: a convolution with an HxW kernel
        return RF((x.h, x.w), (x.h, x.w), (0, 0))

    def label(self, p: FcParams) -> str:
        return f"fc {p.out}"

    def hyper(self, p: FcParams) -> dict:
        return {"bias": p.bias}

    def lower(self, p: FcParams, x: Shape, y: Shape, lib):
        cls = lib.nn.Linear if not x.spatial else lib.FlatLinear
        return cls(x.numel, p.out, bias=p.bias)
