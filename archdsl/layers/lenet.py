"""The layers of LeNet-5 as published (LeCun, Bottou, Bengio & Haffner, "Gradient-Based
Learning Applied to Document Recognition", Proc. IEEE 86(11), 1998), which modern
frameworks do not ship: trainable subsampling, the scaled tanh squashing function and the
Euclidean radial-basis output layer."""

from __future__ import annotations

import random
from collections import OrderedDict

from ..frozen import frozen
from .base import RF, Args, Kind, Params, Saved, Shape, ShapeError, flat, pair, register, short
from .conv import spatial_out


@frozen
class SubsampleParams(Params):
    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)


@register
class Subsample(Kind):
    """LeNet-5's subsampling layers S2 and S4 (§II-B): each unit sums a 2x2 window of its
    map, multiplies the sum by a trainable coefficient, adds a trainable bias and passes the
    result through the squashing function. One coefficient and one bias per map: 2 C
    parameters (S2: 12, S4: 32).

    Lowered as an exact sum (average pooling with ``divisor_override=1``) followed by a
    depthwise 1x1 convolution, whose weight and bias are the per-map coefficient and bias.
    MACs: one multiply by the coefficient per output value (the window sum is additions
    only, which pooling layers do not count either).
    """

    name = "subsample"
    category = "pool"
    summary = "LeNet-5 subsampling: window sum x trainable coefficient + trainable bias, per map"
    example = "subsample 2"
    takes_act = True
    Params = SubsampleParams

    def bind(self, a: Args) -> SubsampleParams:
        window = a.window("window", required=False)
        if window is None:
            return SubsampleParams()
        kernel, stride, _ = window
        return SubsampleParams(kernel=kernel, stride=stride or kernel)

    def infer(self, p: SubsampleParams, x: Shape) -> Shape:
        h, w = spatial_out(self.name, x, p.kernel, p.stride, (0, 0), (1, 1), False)
        return Shape((x.c, h, w))

    def count_params(self, p: SubsampleParams, x: Shape, y: Shape) -> int:
        return 2 * x.c

    def macs(self, p: SubsampleParams, x: Shape, y: Shape) -> int:
        return y.numel

    def rf(self, p: SubsampleParams, x: Shape, y: Shape) -> RF:
        return RF(p.kernel, p.stride, (0, 0))

    def label(self, p: SubsampleParams) -> str:
        s = f"subsample {short(p.kernel) if p.kernel[0] == p.kernel[1] else pair(p.kernel)}"
        return s if p.stride == p.kernel else s + f"/{short(p.stride)}"

    def hyper(self, p: SubsampleParams) -> dict:
        return {"kernel": pair(p.kernel), "stride": short(p.stride)}

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        # the sum pool keeps its input; the 1x1 depthwise scale keeps the sums
        return Saved(input=True, extra=4 * y.numel)

    def lower(self, p: SubsampleParams, x: Shape, y: Shape, lib):
        return lib.nn.Sequential(OrderedDict(
            sum=lib.nn.AvgPool2d(p.kernel, p.stride, divisor_override=1),
            scale=lib.nn.Conv2d(x.c, x.c, 1, groups=x.c),
        ))


@frozen
class ScaledTanhParams(Params):
    amplitude: float = 1.7159
    slope: float = 2 / 3


@register
class LecunTanh(Kind):
    """LeNet-5's squashing function f(a) = A tanh(S a) with A = 1.7159 and S = 2/3
    (§II-B and Appendix A): f(1) = 1 and f(-1) = -1, and the second derivative is largest
    at +-1. Usable as the scoped default (`act lecun_tanh`)."""

    name = "lecun_tanh"
    category = "act"
    summary = "scaled tanh A*tanh(S*a), A = 1.7159, S = 2/3 (LeCun et al. 1998)"
    example = "act lecun_tanh"
    is_activation = True
    accepts_flat = True
    Params = ScaledTanhParams

    def bind(self, a: Args) -> ScaledTanhParams:
        d = ScaledTanhParams()
        return ScaledTanhParams(amplitude=a.kw("amplitude", integer=False, default=d.amplitude),
                                slope=a.kw("slope", integer=False, default=d.slope))

    def label(self, p: ScaledTanhParams) -> str:
        d = ScaledTanhParams()
        return "lecun_tanh" if p == d else f"lecun_tanh amplitude={p.amplitude:g} slope={p.slope:g}"

    def hyper(self, p: ScaledTanhParams) -> dict:
        return {"amplitude": p.amplitude, "slope": p.slope}

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        return Saved(extra=4 * y.numel)  # A * tanh(S * x): tanh keeps its result, a tensor of its own

    def lower(self, p: ScaledTanhParams, x: Shape, y: Shape, lib):
        return lib.ScaledTanh(p.amplitude, p.slope)


@frozen
class RbfParams(Params):
    out: int
    seed: int = 1998


def rbf_codes(n_out: int, n_in: int, seed: int = 1998) -> tuple[tuple[float, ...], ...]:
    """The fixed +-1 codes of an `rbf` layer: one row of `n_in` values per output unit.

    LeCun et al. (§II-B, Fig. 3) drew each code as a 7x12 bitmap of a stylised character;
    those bitmaps are not reproduced here. These codes are +-1 with equal probability, the
    alternative the same section mentions, drawn deterministically: Python guarantees that
    ``random.Random(seed).random()`` yields the same sequence in every version, so the
    codes (and checkpoints holding them) are stable.
    """
    rng = random.Random(seed)
    return tuple(tuple(1.0 if rng.random() < 0.5 else -1.0 for _ in range(n_in)) for _ in range(n_out))


@register
class Rbf(Kind):
    """LeNet-5's output layer (§II-B): one Euclidean radial-basis unit per class,
    y_i = sum_j (x_j - w_ij)^2, whose parameter vectors w_i are fixed codes, "chosen by
    hand and kept fixed (at least initially)". The codes are buffers, not parameters, so
    the layer adds no trainable parameters. MACs: one squared difference accumulated per
    code entry, as an fc layer of the same shape counts one per weight."""

    name = "rbf"
    category = "fc"
    summary = "Euclidean RBF output units with fixed +-1 codes (LeNet-5 1998); no trainable parameters"
    example = "rbf 10"
    accepts_flat = True
    accepts_spatial = False
    Params = RbfParams

    def bind(self, a: Args) -> RbfParams:
        n = a.number("output units", required=not a.has_out(), minimum=1)
        if n is None:
            n = a.out("output units")
        seed = a.kw("seed", default=1998)
        return RbfParams(out=n, seed=seed)

    def infer(self, p: RbfParams, x: Shape) -> Shape:
        if x.spatial:
            raise ShapeError("E207", f"rbf needs a flat input, but its input is {x}", expected="a flat input",
                             found=str(x), hint="put an fc layer (LeNet-5's F6) before rbf")
        return flat(p.out)

    def macs(self, p: RbfParams, x: Shape, y: Shape) -> int:
        return x.numel * p.out

    def count_buffers(self, p: RbfParams, x: Shape, y: Shape) -> int:
        return p.out * x.numel  # the fixed codes: saved with the model, never trained

    def label(self, p: RbfParams) -> str:
        return f"rbf {p.out}"

    def hyper(self, p: RbfParams) -> dict:
        return {"seed": p.seed}

    def saved(self, p: RbfParams, x: Shape, y: Shape, in_place: bool) -> Saved:
        return Saved(extra=4 * p.out * x.numel)  # (x - codes) ** 2 keeps the broadcast differences

    def lower(self, p: RbfParams, x: Shape, y: Shape, lib):
        return lib.RadialBasis(rbf_codes(p.out, x.numel, p.seed))
