"""Normalisation: batch norm, local response normalisation, layer norm, and layer scale."""

from __future__ import annotations


from ..frozen import frozen
from .base import Args, Kind, Params, Saved, Shape, register


@frozen
class BnParams(Params):
    eps: float = 1e-5
    momentum: float = 0.1


@register
class BatchNorm(Kind):
    """Batch normalisation (Ioffe & Szegedy 2015) over channels; BatchNorm1d on flat input.
    `eps` defaults to PyTorch's 1e-5; torchvision's Inception and GoogLeNet use 1e-3."""

    name = "bn"
    fresh_output = True
    cancels_bias = True
    aliases = ("batchnorm",)
    category = "norm"
    summary = "batch normalisation (gamma and beta are parameters, running stats are buffers)"
    example = "bn eps=1e-3"
    accepts_flat = True
    Params = BnParams

    def bind(self, a: Args) -> BnParams:
        eps = a.kw("eps", integer=False, default=1e-5)
        momentum = a.kw("momentum", integer=False, default=0.1)
        return BnParams(eps=eps, momentum=momentum)

    def count_params(self, p, x: Shape, y: Shape) -> int:
        return 2 * x.c  # gamma and beta; running mean/var are buffers, not parameters

    def count_buffers(self, p, x: Shape, y: Shape) -> int:
        return 2 * x.c + 1  # running mean and variance, and torch's num_batches_tracked

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        # native_batch_norm keeps its input and the batch's mean and inverse std (C each)
        return Saved(input=True, fixed=4 * 2 * x.c)

    def label(self, p: BnParams) -> str:
        return "bn" if p.eps == 1e-5 else f"bn eps={p.eps:g}"

    def lower(self, p: BnParams, x, y, lib):
        cls = lib.nn.BatchNorm2d if x.spatial else lib.nn.BatchNorm1d
        return cls(x.c, eps=p.eps, momentum=p.momentum)


@frozen
class LrnParams(Params):
    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0


@register
class Lrn(Kind):
    """Local response normalisation across channels.

    Follows Caffe and torch.nn.LocalResponseNorm: b = a / (k + alpha/n * sum a^2)^beta,
    i.e. alpha is divided by the window size n. AlexNet's paper writes the same layer
    without the 1/n and with k = 2 (Krizhevsky et al. 2012, §3.3): its alpha = 1e-4 is
    `alpha=5e-4` here for n = 5.
    """

    name = "lrn"
    fresh_output = True
    category = "norm"
    summary = "local response normalisation across channels (Caffe / PyTorch convention)"
    example = "lrn 5 alpha=1e-4 beta=0.75 k=2"
    Params = LrnParams

    def bind(self, a: Args) -> LrnParams:
        size = a.number("window size", minimum=1)
        return LrnParams(size=size, alpha=a.kw("alpha", integer=False, default=1e-4),
                         beta=a.kw("beta", integer=False, default=0.75), k=a.kw("k", integer=False, default=1.0))

    def label(self, p: LrnParams) -> str:
        return f"lrn {p.size}"

    def hyper(self, p: LrnParams) -> dict:
        return {"size": p.size, "alpha": p.alpha, "beta": p.beta, "k": p.k}

    def saved(self, p: LrnParams, x: Shape, y: Shape, in_place: bool) -> Saved:
        # torch.nn.functional.local_response_norm: the squares (input.mul(input) keeps the
        # input), padded along channels for avg_pool3d (which keeps them), then pow keeps
        # k + alpha * mean and the final division keeps the input and the power
        padded = (x.c + p.size - 1) * x.h * x.w
        return Saved(input=True, extra=4 * (padded + 2 * x.numel))

    def lower(self, p: LrnParams, x, y, lib):
        return lib.nn.LocalResponseNorm(p.size, alpha=p.alpha, beta=p.beta, k=p.k)


@frozen
class LnParams(Params):
    eps: float = 1e-5


@register
class LayerNorm(Kind):
    """Layer normalisation (Ba et al. 2016) over the channels. On a CxHxW map it normalises
    the C values at each position, as ConvNeXt's LayerNorm2d does (torchvision.models.
    convnext: permute to channels-last, nn.LayerNorm over C, permute back; Liu et al. 2022
    use eps 1e-6); on flat features it is nn.LayerNorm. It normalises across channels, not
    per channel, so a bias before it is not redundant (``cancels_bias`` stays False)."""

    name = "layernorm"
    fresh_output = True
    aliases = ("ln",)
    category = "norm"
    summary = "layer norm over the channels at each position (ConvNeXt's LayerNorm2d), or over flat features"
    example = "layernorm eps=1e-6"
    accepts_flat = True
    Params = LnParams

    def bind(self, a: Args) -> LnParams:
        return LnParams(eps=a.kw("eps", integer=False, default=1e-5))

    def count_params(self, p, x: Shape, y: Shape) -> int:
        return 2 * x.c  # nn.LayerNorm's elementwise affine weight and bias, (C,) each

    def label(self, p: LnParams) -> str:
        return "layernorm" if p.eps == 1e-5 else f"layernorm eps={p.eps:g}"

    def hyper(self, p: LnParams) -> dict:
        return {"eps": p.eps}

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        # native_layer_norm keeps its input and a mean and an inverse std per position
        return Saved(input=True, extra=4 * 2 * (x.numel // x.c))

    def lower(self, p: LnParams, x, y, lib):
        cls = lib.LayerNorm2d if x.spatial else lib.nn.LayerNorm
        return cls(x.c, eps=p.eps)


@frozen
class ScaleParams(Params):
    init: float = 1e-6


@register
class LayerScale(Kind):
    """A learnt per-channel multiplier on a residual branch (Touvron et al. 2021, "Going
    deeper with Image Transformers", §2.1). ConvNeXt's `layer_scale` (torchvision.models.
    convnext.CNBlock): a parameter of shape (C, 1, 1) initialised to 1e-6 (Liu et al. 2022),
    multiplied in before the stochastic depth and the sum. The module's parameter keeps
    that name and shape, so that its state_dict key is `...layer_scale`."""

    name = "layerscale"
    aliases = ("layer_scale",)
    category = "norm"
    summary = "a learnt per-channel multiplier, initialised to INIT (default 1e-6, ConvNeXt's layer scale)"
    example = "layerscale 1e-6"
    accepts_flat = True
    Params = ScaleParams

    def bind(self, a: Args) -> ScaleParams:
        init = a.number("initial value", required=False, integer=False)
        return ScaleParams(init=1e-6 if init is None else init)

    def count_params(self, p, x: Shape, y: Shape) -> int:
        return x.c

    def label(self, p: ScaleParams) -> str:
        return f"layerscale {p.init:g}"

    def lower(self, p: ScaleParams, x, y, lib):
        return lib.LayerScale((x.c, 1, 1) if x.spatial else (x.c,), p.init)
