"""Pooling (windowed, global, adaptive and spatial-pyramid) and its reverse, upsampling."""

from __future__ import annotations

from fractions import Fraction

from ..frozen import frozen
from .base import KEEPS_NOTHING, RF, Args, Kind, Params, Saved, Shape, ShapeError, chw, flat, pair, register, short
from .conv import spatial_out


@frozen
class PoolParams(Params):
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    ceil: bool = False
    count_pad: bool = True


class _Pool(Kind):
    category = "pool"
    Params = PoolParams
    #: takes the flag `exclude_pad` (padding left out of an average's divisor)
    averages: bool = False

    def bind(self, a: Args) -> PoolParams:
        ceil = a.flag("ceil")
        exclude = a.flag("exclude_pad") if self.averages else False
        kernel, stride, span = a.window("window")
        # stride defaults to the window, as in PyTorch's MaxPool2d/AvgPool2d (Caffe defaults to 1)
        stride = stride or a.kw("stride", count=2, minimum=1) or kernel
        pad_span = a.kw_span("pad")  # read before kw() consumes the argument
        padding = a.kw("pad", "padding", count=2) or (0, 0)
        if any(2 * p > k for p, k in zip(padding, kernel)):
            raise a.fail("E207", f"{self.name}: padding must be at most half the window", pad_span or span,
                         expected=f"padding <= {kernel[0] // 2}", found=short(padding),
                         hint="PyTorch's pooling layers refuse a padding above half the kernel")
        return PoolParams(kernel=kernel, stride=stride, padding=padding, ceil=ceil, count_pad=not exclude)

    def infer(self, p: PoolParams, x: Shape) -> Shape:
        return chw(x.c, *spatial_out(self.name, x, p.kernel, p.stride, p.padding, (1, 1), p.ceil))

    def rf(self, p: PoolParams, x: Shape, y: Shape) -> RF:
        return RF(p.kernel, p.stride, p.padding)

    def label(self, p: PoolParams) -> str:
        s = f"{self.name} {short(p.kernel) if p.kernel[0] == p.kernel[1] else pair(p.kernel)}"
        if p.stride != p.kernel:
            s += f"/{short(p.stride)}"
        if p.padding != (0, 0):
            s += f" p{short(p.padding)}"
        if p.ceil:
            s += " ceil"
        if not p.count_pad:
            s += " exclude_pad"
        return s

    def hyper(self, p: PoolParams) -> dict:
        return {"kernel": pair(p.kernel), "stride": short(p.stride), "padding": short(p.padding), "ceil": p.ceil}


@register
class MaxPool(_Pool):
    name = "maxpool"
    fresh_output = True
    summary = "max pooling; `ceil` rounds the output size up as Caffe does"
    example = "maxpool 3/2 ceil"

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        return Saved(input=True, extra=8 * y.numel)  # and the argmax of each window, as int64

    def lower(self, p, x, y, lib):
        return lib.nn.MaxPool2d(p.kernel, p.stride, p.padding, ceil_mode=p.ceil)


@register
class AvgPool(_Pool):
    name = "avgpool"
    fresh_output = True
    averages = True
    summary = "average pooling; `exclude_pad` leaves padding out of the divisor"
    example = "avgpool 3/1 p1 exclude_pad"

    def lower(self, p, x, y, lib):
        return lib.nn.AvgPool2d(p.kernel, p.stride, p.padding, ceil_mode=p.ceil, count_include_pad=p.count_pad)


class _Global(Kind):
    category = "pool"

    def infer(self, p, x: Shape) -> Shape:
        if not x.spatial:
            raise ShapeError("E408", f"{self.name} needs a CxHxW input, but its input is flat ({x})",
                             expected="a CxHxW input", found=f"a flat input of {x.c}")
        return chw(x.c, 1, 1)

    def rf(self, p, x: Shape, y: Shape) -> RF:
        return RF((x.h, x.w), (x.h, x.w), (0, 0))


@register
class GlobalAvgPool(_Global):
    name = "gap"
    fresh_output = True
    summary = "global average pooling to Cx1x1"
    example = "gap"

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING  # AdaptiveAvgPool2d(1) is a mean, whose backward needs only the shape

    def lower(self, p, x, y, lib):
        return lib.nn.AdaptiveAvgPool2d(1)


@register
class GlobalMaxPool(_Global):
    name = "gmp"
    fresh_output = True
    summary = "global max pooling to Cx1x1"
    example = "gmp"

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        return Saved(input=True, extra=8 * y.numel)  # and the argmax of each window, as int64

    def lower(self, p, x, y, lib):
        return lib.nn.AdaptiveMaxPool2d(1)


@frozen
class AdaptiveParams(Params):
    size: tuple[int, int]


class _Adaptive(Kind):
    category = "pool"
    Params = AdaptiveParams

    def bind(self, a: Args) -> AdaptiveParams:
        size, stride, span = a.window("output size")
        if stride is not None:
            raise a.fail("E207", f"{self.name} takes an output size, not a stride", span)
        return AdaptiveParams(size=size)

    def infer(self, p: AdaptiveParams, x: Shape) -> Shape:
        if not x.spatial:
            raise ShapeError("E408", f"{self.name} needs a CxHxW input, but its input is flat ({x})",
                             expected="a CxHxW input", found=f"a flat input of {x.c}")
        return chw(x.c, *p.size)

    def rf(self, p: AdaptiveParams, x: Shape, y: Shape) -> RF:
        # PyTorch's adaptive bins span [floor(i*n/o), ceil((i+1)*n/o)): the widest is
        # ceil(n/o) (+1 where bins overlap), and neighbouring bins start floor(n/o) apart
        k = tuple(-(-n // o) + (1 if n % o else 0) for n, o in zip((x.h, x.w), p.size))
        s = tuple(max(n // o, 1) for n, o in zip((x.h, x.w), p.size))
        return RF(k, s, (0, 0))

    def label(self, p: AdaptiveParams) -> str:
        return f"{self.name} {pair(p.size)}"


@register
class AdaptiveAvgPool(_Adaptive):
    name = "adaptive_avgpool"
    fresh_output = True
    summary = "average pooling to a fixed output size (torchvision's AdaptiveAvgPool2d)"
    example = "adaptive_avgpool 7x7"

    def lower(self, p, x, y, lib):
        return lib.nn.AdaptiveAvgPool2d(p.size)


@register
class AdaptiveMaxPool(_Adaptive):
    name = "adaptive_maxpool"
    fresh_output = True
    summary = "max pooling to a fixed output size"
    example = "adaptive_maxpool 6x6"

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        return Saved(input=True, extra=8 * y.numel)  # and the argmax of each window, as int64

    def lower(self, p, x, y, lib):
        return lib.nn.AdaptiveMaxPool2d(p.size)


@frozen
class SppParams(Params):
    levels: tuple[int, ...]


@register
class Spp(Kind):
    """Spatial pyramid pooling (He et al., "Spatial Pyramid Pooling in Deep Convolutional
    Networks for Visual Recognition", ECCV 2014, §2.3): max pooling of the last feature map
    into n x n bins for every pyramid level n, concatenated into a fixed-length vector of
    C * sum(n^2) values whatever the input size. The bins are PyTorch's adaptive max
    pooling bins, which give exactly n x n bins for every input size a. The paper's window
    ceil(a/n) with stride floor(a/n) gives n bins for the sizes it uses (a = 13: window 3,
    stride 2, 6 bins) but not for every a (a = 7, n = 4 gives 6), so its bins are not used."""

    name = "spp"
    category = "pool"
    summary = "spatial pyramid max pooling to a fixed-length vector"
    example = "spp 6,3,2,1"
    Params = SppParams

    def bind(self, a: Args) -> SppParams:
        levels, _ = a.int_list("pyramid levels")
        return SppParams(levels=levels)

    def infer(self, p: SppParams, x: Shape) -> Shape:
        if not x.spatial:
            raise ShapeError("E408", f"spp needs a CxHxW input, but its input is flat ({x})",
                             expected="a CxHxW input", found=f"a flat input of {x.c}")
        return flat(x.c * sum(n * n for n in p.levels))

    def rf(self, p: SppParams, x: Shape, y: Shape) -> RF:
        return RF((x.h, x.w), (x.h, x.w), (0, 0))

    def saved(self, p: SppParams, x: Shape, y: Shape, in_place: bool) -> Saved:
        return Saved(input=True, extra=8 * y.numel)  # every level keeps the input and its argmaxes

    def label(self, p: SppParams) -> str:
        return "spp " + ",".join(map(str, p.levels))

    def lower(self, p, x, y, lib):
        return lib.SpatialPyramidPool(p.levels)


@frozen
class UpsampleParams(Params):
    #: an integer factor per axis, or () when the output size is given
    scale: tuple[int, ...] = ()
    #: the output size (H, W), or () when a factor is given
    size: tuple[int, ...] = ()
    mode: str = "nearest"
    align_corners: bool = False


@register
class Upsample(Kind):
    """nn.Upsample: nearest-neighbour or bilinear resampling, by an integer factor or to a
    size (FCN's and U-Net's decoders; Long et al. 2015, Ronneberger et al. 2015). No
    parameters and, as torch.utils.flop_counter counts it, no MACs."""

    name = "upsample"
    fresh_output = True
    category = "pool"
    summary = "nearest (default) or bilinear upsampling by an integer factor, or to size=H,W"
    example = "upsample 2 bilinear"
    Params = UpsampleParams

    def bind(self, a: Args) -> UpsampleParams:
        nearest, bilinear, corners = a.flag("nearest"), a.flag("bilinear"), a.flag("align_corners")
        if nearest and bilinear:
            raise a.fail("E207", "upsample: give one mode, nearest or bilinear", a.span)
        if corners and not bilinear:
            raise a.fail("E207", "upsample: align_corners is for bilinear upsampling", a.span,
                         hint="nn.Upsample refuses align_corners in nearest mode")
        factor = a.window("scale factor", required=False)
        size = a.kw("size", count=2, minimum=1)
        if (factor is None) == (size is None):
            raise a.fail("E208" if factor is None else "E207", "upsample: give a scale factor or size=H,W (one of them)",
                         a.span, expected="`upsample 2` or `upsample size=28,28`",
                         found="neither" if factor is None else "both")
        if factor is not None and factor[1] is not None:
            raise a.fail("E207", "upsample takes a scale factor, not a stride", factor[2])
        return UpsampleParams(scale=factor[0] if factor else (), size=size or (),
                              mode="bilinear" if bilinear else "nearest", align_corners=corners)

    def infer(self, p: UpsampleParams, x: Shape) -> Shape:
        return chw(x.c, *(p.size or (x.h * p.scale[0], x.w * p.scale[1])))

    def rf(self, p: UpsampleParams, x: Shape, y: Shape) -> RF:
        """Nearest: output o copies input floor(o * n / m) (PyTorch's nearest mode), one
        pixel, so the field keeps its size; bilinear: it blends the two pixels either side of
        its sample point, so the field grows by one input step. Neighbouring outputs are n/m
        input pixels apart: the jump is multiplied by n/m, kept as an exact fraction
        ((n - 1)/(m - 1) with align_corners). The start (Araujo et al.'s centre of output 0)
        moves to output 0's sample point, 0.5 n/m - 0.5 input pixels from input 0's centre
        (0 with align_corners), so that output o's centre is start + o * jump as for every
        other layer."""
        ks, steps, pads = [], [], []
        for n, m in zip((x.h, x.w), (y.h, y.w)):
            steps.append(Fraction(n - 1, m - 1) if p.align_corners and m > 1 else Fraction(n, m))
            offset = 0 if p.align_corners else Fraction(n, 2 * m) - Fraction(1, 2)
            k = 1 if p.mode == "nearest" else 2
            ks.append(k)
            pads.append(Fraction(k - 1, 2) - offset)  # advance(): start += ((k - 1) / 2 - p) * jump
        return RF(tuple(ks), tuple(steps), tuple(pads))

    def label(self, p: UpsampleParams) -> str:
        what = f"size={pair(p.size)}" if p.size else f"{short(p.scale)}"
        return f"upsample {what}" + (" bilinear" if p.mode == "bilinear" else "") + (
            " align_corners" if p.align_corners else "")

    def hyper(self, p: UpsampleParams) -> dict:
        return {"scale": short(p.scale) if p.scale else None, "size": pair(p.size) if p.size else None,
                "mode": p.mode, "align_corners": p.align_corners}

    def saved(self, p, x, y, in_place: bool) -> Saved:
        return KEEPS_NOTHING  # its backward needs only the sizes

    def lower(self, p: UpsampleParams, x, y, lib):
        return lib.nn.Upsample(size=p.size or None, scale_factor=tuple(float(f) for f in p.scale) or None,
                               mode=p.mode, align_corners=True if p.align_corners else None)
