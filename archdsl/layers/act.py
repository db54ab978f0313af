"""Activation functions. Each can be the scoped default (`act relu`) or a layer of its own."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Args, Kind, Params, Shape, register


class _Act(Kind):
    category = "act"
    is_activation = True
    accepts_flat = True
    #: the torch.nn class name
    module: str = ""

    def lower(self, p, x, y, lib):
        return getattr(lib.nn, self.module)()


def _simple(name: str, module: str, summary: str, aliases: tuple[str, ...] = ()):
    cls = type(name.capitalize(), (_Act,), {"name": name, "module": module, "summary": summary,
                                            "example": name, "aliases": aliases})
    register(cls)
    return cls


Relu = _simple("relu", "ReLU", "rectified linear unit")
Relu6 = _simple("relu6", "ReLU6", "ReLU clipped at 6")
Tanh = _simple("tanh", "Tanh", "hyperbolic tangent")
Sigmoid = _simple("sigmoid", "Sigmoid", "logistic sigmoid")
Elu = _simple("elu", "ELU", "exponential linear unit")
Gelu = _simple("gelu", "GELU", "Gaussian error linear unit")
Silu = _simple("silu", "SiLU", "sigmoid-weighted linear unit (swish)", ("swish",))
Hardswish = _simple("hardswish", "Hardswish", "hard swish, x * relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3)")
Hardsigmoid = _simple("hardsigmoid", "Hardsigmoid", "hard sigmoid, relu6(x + 3) / 6 (MobileNetV3's squeeze-excitation gate)")


@dataclass(frozen=True)
class SlopeParams(Params):
    slope: float = 0.01


@register
class LeakyRelu(_Act):
    name = "lrelu"
    aliases = ("leaky_relu",)
    summary = "leaky ReLU with the given negative slope (default 0.01)"
    example = "lrelu 0.1"
    Params = SlopeParams

    def bind(self, a: Args) -> SlopeParams:
        slope = a.number("negative slope", required=False, integer=False)
        return SlopeParams(slope=0.01 if slope is None else slope)

    def label(self, p: SlopeParams) -> str:
        return f"lrelu {p.slope:g}"

    def lower(self, p, x, y, lib):
        return lib.nn.LeakyReLU(p.slope)


@register
class Prelu(_Act):
    name = "prelu"
    summary = "parametric ReLU with one learnt slope per channel (He et al. 2015)"
    example = "prelu"

    def count_params(self, p, x: Shape, y: Shape) -> int:
        return x.c

    def lower(self, p, x, y, lib):
        return lib.nn.PReLU(x.c)


@register
class Softmax(_Act):
    name = "softmax"
    summary = "softmax over the channel (or feature) dimension"
    example = "softmax"

    def lower(self, p, x, y, lib):
        return lib.nn.Softmax(dim=1)
