"""Layers that reshape, select or regularise: dropout, droppath, flatten, identity, select,
split, shuffle."""

from __future__ import annotations


from ..frozen import frozen
from .base import KEEPS_NOTHING, Args, Kind, Params, Saved, Shape, ShapeError, chw, flat, register


@frozen
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

    def saved(self, p: DropoutParams, x: Shape, y: Shape, in_place: bool) -> Saved:
        # off the GPU, torch's dropout is input * mask with a float mask (ATen's
        # _dropout_impl), which mul keeps; CUDA's fused native_dropout keeps a 1-byte mask
        return KEEPS_NOTHING if p.p == 0 else Saved(extra=4 * x.numel)

    def is_view(self, p: DropoutParams) -> bool:
        return p.p == 0  # torch returns its input as it is

    def lower(self, p, x, y, lib):
        return lib.nn.Dropout(p.p)


@frozen
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

    def saved(self, p: DropPathParams, x: Shape, y: Shape, in_place: bool) -> Saved:
        # input * noise keeps the (N, 1, ...) or (1, 1, ...) noise
        if p.p == 0:
            return KEEPS_NOTHING
        return Saved(extra=4) if p.mode == "row" else Saved(fixed=4)

    def is_view(self, p: DropPathParams) -> bool:
        return p.p == 0

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

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING

    def is_view(self, p) -> bool:
        return True

    def lower(self, p, x, y, lib):
        return lib.nn.Flatten()


@register
class Identity(Kind):
    name = "identity"
    summary = "passes its input through (an empty branch, an identity shortcut)"
    example = "identity"
    accepts_flat = True

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING

    def is_view(self, p) -> bool:
        return True

    def lower(self, p, x, y, lib):
        return lib.nn.Identity()


@frozen
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

    def count_buffers(self, p: SelectParams, x: Shape, y: Shape) -> int:
        return len(p.channels)  # the index tensor it gathers with

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING  # a slice, or index_select (which keeps only its index buffer)

    def is_view(self, p: SelectParams) -> bool:
        c = p.channels  # a contiguous run is a plain slice (the lowering's Select)
        return list(c) == list(range(c[0], c[-1] + 1))

    def lower(self, p, x, y, lib):
        return lib.Select(p.channels)


@frozen
class SplitParams(Params):
    #: one number: that many equal parts (torch.chunk); several: the parts' sizes (torch.split)
    parts: tuple[int, ...]
    #: which part is kept, from 1
    part: int = 1


@register
class Split(Kind):
    """Channel split (Ma et al. 2018, ShuffleNet V2, §4 and Fig. 3(c)): the input's channels
    cut into parts, of which this layer keeps one, so that `concat { split 2 part=1 |
    split 2 part=2; ... }` is torchvision's `x1, x2 = x.chunk(2, dim=1)`. A single number
    is the number of equal parts, as in torch.chunk (not a part's size, as in torch.split);
    a list gives the sizes, as torch.split does."""

    name = "split"
    summary = "cut the channels into N equal parts (or parts of the listed sizes) and keep part K (from 1)"
    example = "split 2 part=2"
    accepts_flat = True
    Params = SplitParams

    def bind(self, a: Args) -> SplitParams:
        parts, _ = a.int_list("number of parts or their sizes")
        span = a.kw_span("part") or a.span
        part = a.kw("part", minimum=1, default=1)
        count = parts[0] if len(parts) == 1 else len(parts)
        if part > count:
            raise a.fail("E303", f"split: part {part} of {count} does not exist", span,
                         expected=f"part between 1 and {count}", found=str(part))
        return SplitParams(parts=parts, part=part)

    def kept(self, p: SplitParams, c: int) -> tuple[int, int]:
        """The kept part's channels as [start, stop); raises ShapeError when the parts do not tile c."""
        if len(p.parts) == 1:
            n = p.parts[0]
            if c % n:
                raise ShapeError("E405", f"split: {n} equal parts do not divide the {c} input channels",
                                 expected=f"input channels divisible by {n}", found=f"{c} channels")
            return (p.part - 1) * (c // n), p.part * (c // n)
        if sum(p.parts) != c:
            raise ShapeError("E409", f"split: the parts' sizes sum to {sum(p.parts)}, the input has {c} channels",
                             expected=f"sizes summing to {c}", found="+".join(map(str, p.parts)))
        start = sum(p.parts[:p.part - 1])
        return start, start + p.parts[p.part - 1]

    def infer(self, p: SplitParams, x: Shape) -> Shape:
        start, stop = self.kept(p, x.c)
        return chw(stop - start, x.h, x.w) if x.spatial else flat(stop - start)

    def label(self, p: SplitParams) -> str:
        return f"split {','.join(map(str, p.parts))} part={p.part}"

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING

    def is_view(self, p) -> bool:
        return True  # a channel slice

    def lower(self, p: SplitParams, x, y, lib):
        return lib.ChannelSlice(*self.kept(p, x.c))


@frozen
class ShuffleParams(Params):
    groups: int


@register
class Shuffle(Kind):
    """Channel shuffle (Zhang et al. 2018, ShuffleNet, §3.1): with G groups of C/G
    channels, reshape to (G, C/G), transpose, flatten, so that channel g*C/G + i moves to
    i*G + g; torch's nn.ChannelShuffle (built as reshapes, which ONNX has), the same permutation as torchvision's
    shufflenetv2.channel_shuffle. No parameters, no MACs."""

    name = "shuffle"
    aliases = ("channel_shuffle",)
    summary = "channel shuffle with G groups (ShuffleNet): reshape to (G, C/G), transpose, flatten"
    example = "shuffle 2"
    Params = ShuffleParams

    def bind(self, a: Args) -> ShuffleParams:
        return ShuffleParams(groups=a.number("number of groups", minimum=1))

    def infer(self, p: ShuffleParams, x: Shape) -> Shape:
        if x.c % p.groups:
            raise ShapeError("E405", f"shuffle: {p.groups} groups do not divide the {x.c} input channels",
                             expected=f"input channels divisible by {p.groups}", found=f"{x.c} channels")
        return x

    def label(self, p: ShuffleParams) -> str:
        return f"shuffle {p.groups}"

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING  # a permuted copy: its backward is the inverse permutation

    def lower(self, p: ShuffleParams, x, y, lib):
        return lib.ChannelShuffle(p.groups)
