"""Parameter-free shortcuts: He et al. 2016's option A ("Deep Residual Learning for Image
Recognition", CVPR 2016, §3.3 and §4.2).

Option A keeps every shortcut an identity, except where a stage halves the grid and widens
the channels: there the shortcut "performs identity mapping, with extra zero entries
padded for increasing dimensions", and "when the shortcuts go across feature maps of two
sizes, they are performed with a stride of 2". The CIFAR-10 networks of §4.2 (ResNet-20
to ResNet-110, 0.27M to 1.7M parameters) use it throughout. It is two kinds here:

* ``decimate S``: keep every S-th row and column, ``x[:, :, ::S, ::S]``;
* ``padc -> C``: zero channels added to reach C, split evenly before and after the
  input's channels, as the widely used CIFAR implementation does
  (``F.pad(x, (0, 0, 0, 0, planes // 4, planes // 4))`` when the channels double).

Both lower to stock torch layers: a 1x1 max pool with stride S is exactly the strided
slice, and ``nn.ConstantPad3d`` pads the channel axis of an (N, C, H, W) tensor.
"""

from __future__ import annotations


from ..frozen import frozen
from .base import KEEPS_NOTHING, RF, Args, Kind, Params, Saved, Shape, ShapeError, chw, register, short


@frozen
class DecimateParams(Params):
    stride: tuple[int, int] = (2, 2)


@register
class Decimate(Kind):
    name = "decimate"
    category = "pool"
    summary = "keep every S-th row and column, x[:, :, ::S, ::S] (option-A shortcut, He et al. 2016)"
    example = "decimate 2"
    Params = DecimateParams

    def bind(self, a: Args) -> DecimateParams:
        window = a.window("stride", required=False)
        if window is None:
            return DecimateParams()
        size, stride, span = window
        if stride is not None:
            raise a.fail("E207", "decimate takes one stride, e.g. `decimate 2`", span,
                         expected="a stride such as 2 or 1x2", found="a window with a stride")
        return DecimateParams(stride=size)

    def infer(self, p: DecimateParams, x: Shape) -> Shape:
        # a slice with step s keeps ceil(n / s) of n positions
        return chw(x.c, -(-x.h // p.stride[0]), -(-x.w // p.stride[1]))

    def rf(self, p: DecimateParams, x: Shape, y: Shape) -> RF:
        return RF((1, 1), p.stride, (0, 0))

    def label(self, p: DecimateParams) -> str:
        return f"decimate {short(p.stride)}"

    def hyper(self, p: DecimateParams) -> dict:
        return {"stride": short(p.stride)}

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        return Saved(input=True, extra=8 * y.numel)  # a 1x1 max pool: its input and int64 indices

    def lower(self, p: DecimateParams, x: Shape, y: Shape, lib):
        # floor((n - 1) / s) + 1 == ceil(n / s): a 1x1 window with stride s is x[..., ::s, ::s]
        return lib.nn.MaxPool2d(1, p.stride)


@frozen
class PadChannelsParams(Params):
    out: int


@register
class PadChannels(Kind):
    name = "padc"
    aliases = ("pad_channels",)
    category = "other"
    summary = "zero channels added to reach C, split evenly before and after (option-A shortcut)"
    example = "padc -> 32"
    Params = PadChannelsParams

    def bind(self, a: Args) -> PadChannelsParams:
        return PadChannelsParams(out=a.out("output channels"))

    def infer(self, p: PadChannelsParams, x: Shape) -> Shape:
        if p.out < x.c:
            raise ShapeError("E303", f"padc: cannot pad {x.c} channels down to {p.out}",
                             expected=f"at least {x.c} output channels", found=str(p.out))
        return chw(p.out, x.h, x.w)

    def label(self, p: PadChannelsParams) -> str:
        return f"padc -> {p.out}"

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING  # constant padding's backward is a slice

    def lower(self, p: PadChannelsParams, x: Shape, y: Shape, lib):
        extra = p.out - x.c
        before = extra // 2
        # ConstantPad3d pads the last three axes of (N, C, H, W): W, H, then C
        return lib.nn.ConstantPad3d((0, 0, 0, 0, before, extra - before), 0.0)
