"""Layers that reshape, select or regularise: dropout, flatten, identity, select."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Args, Kind, Params, Shape, ShapeError, chw, flat, register


@dataclass(frozen=True)
class DropoutParams(Params):
    p: float = 0.5


@register
class Dropout(Kind):
    name = "dropout"
    category = "other"
    summary = "dropout with drop probability P (default 0.5)"
    example = "dropout 0.5"
    accepts_flat = True
    Params = DropoutParams

    def bind(self, a: Args) -> DropoutParams:
        span = a.next_span()
        p = a.number("drop probability", required=False, integer=False)
        p = 0.5 if p is None else p
        if not 0.0 <= p <= 1.0:
            raise a.fail("E303", "dropout: the probability must lie in [0, 1]", span,
                         expected="0 <= p <= 1", found=f"{p:g}")
        return DropoutParams(p=p)

    def label(self, p: DropoutParams) -> str:
        return f"dropout {p.p:g}"

    def lower(self, p, x, y, lib):
        return lib.nn.Dropout(p.p)


@register
class Flatten(Kind):
    name = "flatten"
    summary = "flatten CxHxW to C*H*W"
    example = "flatten"
    accepts_flat = True

    def infer(self, p, x: Shape) -> Shape:
        return flat(x.numel)

    def lower(self, p, x, y, lib):
        return lib.nn.Flatten()


@register
class Identity(Kind):
    name = "identity"
    summary = "passes its input through (an empty branch, an identity shortcut)"
    example = "identity"
    accepts_flat = True

    def lower(self, p, x, y, lib):
        return lib.nn.Identity()


@dataclass(frozen=True)
class SelectParams(Params):
    channels: tuple[int, ...]


@register
class Select(Kind):
    """Channel selection: the listed input channels, in order. LeNet-5's C3 connection table
    (LeCun et al. 1998, Table I) is a concat of convolutions over such selections."""

    name = "select"
    summary = "keep the listed input channels (0-based), in the order given"
    example = "select 0,1,2"
    Params = SelectParams

    def bind(self, a: Args) -> SelectParams:
        chans, _ = a.int_list("channel indices", minimum=0)
        return SelectParams(channels=chans)

    def infer(self, p: SelectParams, x: Shape) -> Shape:
        bad = [c for c in p.channels if c >= x.c]
        if bad:
            raise ShapeError("E409", f"select: channel {bad[0]} does not exist", expected=f"indices below {x.c}",
                             found=str(bad[0]))
        return chw(len(p.channels), x.h, x.w) if x.spatial else flat(len(p.channels))

    def label(self, p: SelectParams) -> str:
        return "select " + ",".join(map(str, p.channels))

    def lower(self, p, x, y, lib):
        return lib.Select(p.channels)
