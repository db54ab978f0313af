"""Layers that reshape, select or regularise: dropout, droppath, flatten, identity, select,
split, shuffle."""

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


@dataclass(frozen=True)
class DropPathParams(Params):
    p: float
    #: "row": one draw per sample; "batch": one draw for the whole batch
    mode: str = "row"


@register
class DropPath(Kind):
    """Stochastic depth (Huang et al. 2016), as torchvision.ops.StochasticDepth applies it:
    in training, each sample's ("row") or the whole batch's ("batch") input is zeroed with
    probability p and otherwise scaled by 1 / (1 - p); in eval mode it is the identity.
    Written last in a residual branch, `residual { ...; droppath 0.1 }` is torchvision's
    `input + stochastic_depth(block(input))` (EfficientNet's MBConv, ConvNeXt's CNBlock)."""

    name = "droppath"
    aliases = ("stochastic_depth",)
    category = "other"
    summary = "stochastic depth: drop the whole input per sample (`row`, default) or per batch (`batch`)"
    example = "droppath 0.2 row"
    accepts_flat = True
    Params = DropPathParams

    def bind(self, a: Args) -> DropPathParams:
        row, batch = a.flag("row"), a.flag("batch")
        if row and batch:
            raise a.fail("E207", "droppath: give one mode, row or batch", a.span)
        span = a.kw_span("p") or a.next_span()
        p = a.kw("p", "drop probability", integer=False)
        if p is None:
            p = a.number("drop probability", integer=False)
        if not 0.0 <= p <= 1.0:
            raise a.fail("E303", "droppath: the probability must lie in [0, 1]", span,
                         expected="0 <= p <= 1", found=f"{p:g}")
        return DropPathParams(p=p, mode="batch" if batch else "row")

    def label(self, p: DropPathParams) -> str:
        return f"droppath {p.p:g}" + (" batch" if p.mode == "batch" else "")

    def hyper(self, p: DropPathParams) -> dict:
        return {"p": p.p, "mode": p.mode}

    def lower(self, p: DropPathParams, x, y, lib):
        return lib.StochasticDepth(p.p, p.mode)


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
