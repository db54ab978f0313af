"""Normalisation: batch norm and local response normalisation."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Args, Kind, Params, Shape, register


@dataclass(frozen=True)
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

    def label(self, p: BnParams) -> str:
        return "bn" if p.eps == 1e-5 else f"bn eps={p.eps:g}"

    def lower(self, p: BnParams, x, y, lib):
        cls = lib.nn.BatchNorm2d if x.spatial else lib.nn.BatchNorm1d
        return cls(x.c, eps=p.eps, momentum=p.momentum)


@dataclass(frozen=True)
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

    def lower(self, p: LrnParams, x, y, lib):
        return lib.nn.LocalResponseNorm(p.size, alpha=p.alpha, beta=p.beta, k=p.k)
