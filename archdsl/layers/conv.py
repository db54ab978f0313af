"""Convolutions: `conv`, the transposed `convt`, and NIN's `mlpconv`."""

from __future__ import annotations

from fractions import Fraction

from ..frozen import frozen
from .base import RF, Args, Kind, Params, Shape, ShapeError, chw, pair, pool_out, register, short


@frozen
class ConvParams(Params):
    out: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = True


def read_padding(a: Args, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> tuple[int, int]:
    """`p2`, `p0,3`, `pad=k//2`, `same` (stride 1, odd effective kernel) or `valid` (= p0)."""
    same, valid = a.flag("same"), a.flag("valid")
    pad = a.kw("pad", "padding", count=2)
    chosen = [x for x in (same, valid, pad is not None) if x]
    if len(chosen) > 1:
        raise a.fail("E207", f"{a.kind}: give one padding (pN, same or valid)", a.span)
    if same:
        eff = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        if stride != (1, 1) or any(e % 2 for e in eff):
            raise a.fail("E207", f"{a.kind}: `same` padding needs stride 1 and an odd kernel", a.span,
                         expected="stride 1 and an odd kernel", found=f"kernel {pair(kernel)}, stride {short(stride)}",
                         hint="write the padding explicitly, e.g. p1")
        return (eff[0] // 2, eff[1] // 2)
    return pad if pad is not None else (0, 0)


@register
class Conv(Kind):
    name = "conv"
    fresh_output = True
    category = "conv"
    summary = "2-D convolution"
    example = "conv 7x7/2 p3 -> 64"
    takes_act = True
    takes_norm = True
    has_bias = True
    Params = ConvParams

    def bind(self, a: Args) -> ConvParams:
        kernel, stride, _ = a.window("kernel")
        stride = stride or a.kw("stride", count=2, minimum=1) or (1, 1)
        dilation = a.kw("dilation", count=2, minimum=1) or (1, 1)
        groups = a.kw("groups", minimum=1) or 1
        padding = read_padding(a, kernel, stride, dilation)
        out = a.out()
        return ConvParams(out=out, kernel=kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)

    def with_bias(self, p: ConvParams, bias: bool) -> ConvParams:
        return p if p.bias is bias else p.but(bias=bias)

    def infer(self, p: ConvParams, x: Shape) -> Shape:
        _check_groups(p.groups, x.c, p.out)
        return chw(p.out, *_spatial(self.name, x, p.kernel, p.stride, p.padding, p.dilation, False))

    def count_params(self, p: ConvParams, x: Shape, y: Shape) -> int:
        # PyTorch's Conv2d: weight (out, in/groups, kh, kw) and an optional bias (out,)
        return p.out * (x.c // p.groups) * p.kernel[0] * p.kernel[1] + (p.out if p.bias else 0)

    def macs(self, p: ConvParams, x: Shape, y: Shape) -> int:
        # one multiply-accumulate per weight per output position (the papers' "multiply-adds",
        # torchvision's documented GFLOPS); the bias add is not counted
        return y.c * y.h * y.w * (x.c // p.groups) * p.kernel[0] * p.kernel[1]

    def rf(self, p: ConvParams, x: Shape, y: Shape) -> RF:
        eff = tuple(d * (k - 1) + 1 for k, d in zip(p.kernel, p.dilation))
        return RF(eff, p.stride, p.padding)

    def label(self, p: ConvParams) -> str:
        s = f"conv {pair(p.kernel)}"
        if p.stride != (1, 1):
            s += f"/{short(p.stride)}"
        if p.padding != (0, 0):
            s += f" p{','.join(map(str, p.padding)) if p.padding[0] != p.padding[1] else p.padding[0]}"
        if p.groups != 1:
            s += f" g{p.groups}"
        if p.dilation != (1, 1):
            s += f" d{short(p.dilation)}"
        return s + f" -> {p.out}"

    def hyper(self, p: ConvParams) -> dict:
        return {"kernel": pair(p.kernel), "stride": short(p.stride), "padding": short(p.padding),
                "groups": p.groups, "dilation": short(p.dilation), "bias": p.bias}

    def lower(self, p: ConvParams, x: Shape, y: Shape, lib):
        return lib.nn.Conv2d(x.c, p.out, p.kernel, p.stride, p.padding, p.dilation, p.groups, bias=p.bias)


def _check_groups(groups: int, c_in: int, c_out: int) -> None:
    if c_in % groups:
        raise ShapeError("E405", f"groups={groups} does not divide the {c_in} input channels",
                         expected=f"input channels divisible by {groups}", found=f"{c_in} channels", arg="groups")
    if c_out % groups:
        raise ShapeError("E405", f"groups={groups} does not divide the {c_out} output channels",
                         expected=f"output channels divisible by {groups}", found=f"{c_out} channels", arg="groups")


@frozen
class ConvTParams(Params):
    out: int
    kernel: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    output_padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = True


@register
class ConvTranspose(Kind):
    """Transposed convolution (the gradient of a convolution with respect to its input;
    "deconvolution" in FCN, Long et al. 2015, §3.3), as nn.ConvTranspose2d computes it:
    every input pixel scatters its kernel, weighted, onto the output, stride S apart."""

    name = "convt"
    aliases = ("deconv", "conv_transpose")
    fresh_output = True
    category = "conv"
    summary = "2-D transposed convolution (nn.ConvTranspose2d): upsamples by its stride"
    example = "convt 4x4/2 p1 -> 64"
    takes_act = True
    takes_norm = True
    has_bias = True
    Params = ConvTParams

    def bind(self, a: Args) -> ConvTParams:
        kernel, stride, _ = a.window("kernel")
        stride = stride or a.kw("stride", count=2, minimum=1) or (1, 1)
        dilation = a.kw("dilation", count=2, minimum=1) or (1, 1)
        groups = a.kw("groups", minimum=1) or 1
        padding = a.kw("pad", "padding", count=2) or (0, 0)
        span = a.kw_span("outpad") or a.span
        outpad = a.kw("outpad", "output padding", count=2) or (0, 0)
        if any(o >= max(s, d) for o, s, d in zip(outpad, stride, dilation)):
            raise a.fail("E303", "convt: the output padding must be smaller than the stride or the dilation", span,
                         expected=f"outpad below {short(tuple(max(s, d) for s, d in zip(stride, dilation)))}",
                         found=short(outpad), hint="nn.ConvTranspose2d refuses it as well")
        return ConvTParams(out=a.out(), kernel=kernel, stride=stride, padding=padding, output_padding=outpad,
                           dilation=dilation, groups=groups)

    def with_bias(self, p: ConvTParams, bias: bool) -> ConvTParams:
        return p if p.bias is bias else p.but(bias=bias)

    def infer(self, p: ConvTParams, x: Shape) -> Shape:
        _check_groups(p.groups, x.c, p.out)
        out = []
        for axis, n, k, s, pd, op, d in zip("HW", (x.h, x.w), p.kernel, p.stride, p.padding, p.output_padding,
                                            p.dilation):
            # nn.ConvTranspose2d's docs: (n - 1) s - 2 p + d (k - 1) + output_padding + 1
            o = (n - 1) * s - 2 * pd + d * (k - 1) + op + 1
            if o <= 0:
                raise ShapeError("E401", f"convt: the output would be empty along {axis}: the padding {pd} "
                                 f"removes more than the {(n - 1) * s + d * (k - 1) + op + 1} values it makes",
                                 expected="an output size of at least 1", found=str(o), arg="pad")
            out.append(o)
        return chw(p.out, *out)

    def count_params(self, p: ConvTParams, x: Shape, y: Shape) -> int:
        # nn.ConvTranspose2d: weight (in, out/groups, kh, kw) and an optional bias (out,)
        return x.c * (p.out // p.groups) * p.kernel[0] * p.kernel[1] + (p.out if p.bias else 0)

    def macs(self, p: ConvTParams, x: Shape, y: Shape) -> int:
        # each input value meets out/groups kernels of kh x kw weights (torch.utils.flop_counter
        # counts a transposed convolution over its input positions the same way)
        return x.c * x.h * x.w * (p.out // p.groups) * p.kernel[0] * p.kernel[1]

    def rf(self, p: ConvTParams, x: Shape, y: Shape) -> RF:
        """Output o reads the input pixels i with i*s + t*d - p = o for a tap t < k. The
        field grows by the widest such run of inputs (exact: at most ceil(k_eff / s) with
        dilation 1, a single pixel when k <= s); neighbouring outputs are 1/s input pixels
        apart, so the jump divides by s (an exact fraction); the centre of output 0's
        inputs is (p - (k_eff - 1) / 2) / s pixels from input 0's."""
        spans, pads = [], []
        for k, s, pd, d in zip(p.kernel, p.stride, p.padding, p.dilation):
            span = 1
            if s <= d * (k - 1):  # otherwise no two taps land on input pixels for one output
                for c in range(s):
                    taps = [t for t in range(k) if (t * d - c) % s == 0]
                    if taps:
                        span = max(span, (taps[-1] - taps[0]) * d // s + 1)
            spans.append(span)
            pads.append(Fraction(span - 1, 2) - Fraction(2 * pd - d * (k - 1), 2 * s))
        return RF(tuple(spans), tuple(Fraction(1, s) for s in p.stride), tuple(pads))

    def label(self, p: ConvTParams) -> str:
        s = f"convt {pair(p.kernel)}"
        if p.stride != (1, 1):
            s += f"/{short(p.stride)}"
        if p.padding != (0, 0):
            s += f" p{','.join(map(str, p.padding)) if p.padding[0] != p.padding[1] else p.padding[0]}"
        if p.output_padding != (0, 0):
            s += f" outpad={short(p.output_padding)}"
        if p.groups != 1:
            s += f" g{p.groups}"
        if p.dilation != (1, 1):
            s += f" d{short(p.dilation)}"
        return s + f" -> {p.out}"

    def hyper(self, p: ConvTParams) -> dict:
        return {"kernel": pair(p.kernel), "stride": short(p.stride), "padding": short(p.padding),
                "output_padding": short(p.output_padding), "groups": p.groups, "dilation": short(p.dilation),
                "bias": p.bias}

    def lower(self, p: ConvTParams, x: Shape, y: Shape, lib):
        return lib.nn.ConvTranspose2d(x.c, p.out, p.kernel, p.stride, p.padding, p.output_padding, p.groups,
                                      bias=p.bias, dilation=p.dilation)


def _spatial(kind: str, x: Shape, kernel, stride, padding, dilation, ceil) -> tuple[int, int]:
    if not x.spatial:
        raise ShapeError("E408", f"{kind} needs a CxHxW input, but its input is flat ({x})",
                         expected="a CxHxW input", found=f"a flat input of {x.c}",
                         hint="a convolution or pooling cannot follow fc or flatten")
    out = []
    for axis, n, k, s, pd, d in zip("HW", (x.h, x.w), kernel, stride, padding, dilation):
        eff = d * (k - 1) + 1
        if eff > n + 2 * pd:
            raise ShapeError("E402", f"{kind}: the output would be empty: the {pair(tuple(kernel))} window spans "
                             f"{eff} along {axis}, the padded input only {n + 2 * pd} ({n} + 2x{pd})",
                             expected=f"a window of at most {n + 2 * pd} along {axis}", found=f"{eff}",
                             hint="check the input size and the strides before this layer")
        o = pool_out(n, k, s, pd, d, ceil)
        if o <= 0:
            raise ShapeError("E401", f"{kind}: the output would be empty along {axis}",
                             expected="an output size of at least 1", found=str(o))
        out.append(o)
    return out[0], out[1]


spatial_out = _spatial


@frozen
class MlpconvParams(Params):
    channels: tuple[int, ...]


@register
class Mlpconv(Kind):
    """Network In Network's micro network: a stack of 1x1 convolutions (Lin et al. 2014, §3.1).

    A macro: the graph stage expands it into one `conv 1x1` per channel count, each of
    which receives the scoped activation (and normalisation), as the paper's mlpconv layer
    puts a ReLU after every 1x1 ("cccp") layer.
    """

    name = "mlpconv"
    category = "conv"
    summary = "a stack of 1x1 convolutions, each followed by the activation (NIN)"
    example = "mlpconv 160,96"
    Params = MlpconvParams

    def bind(self, a: Args) -> MlpconvParams:
        channels, _ = a.int_list("channel counts")
        return MlpconvParams(channels=channels)

    def expand(self, p: MlpconvParams):
        return [("conv", ConvParams(out=c, kernel=(1, 1))) for c in p.channels]

    def label(self, p: MlpconvParams) -> str:
        return "mlpconv " + ",".join(map(str, p.channels))
