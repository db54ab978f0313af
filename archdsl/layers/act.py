"""Activation functions. Each can be the scoped default (`act relu`) or a layer of its own."""

from __future__ import annotations


from ..frozen import frozen
from .base import Args, Kind, Params, Saved, Shape, register


class _Act(Kind):
    category = "act"
    is_activation = True
    accepts_flat = True
    #: the torch.nn class name
    module: str = ""
    #: its backward reads its output (ReLU, tanh, sigmoid, softmax: derivatives.yaml's
    #: `result`), not its input
    keeps_output: bool = False
    #: in place, it keeps its result instead of its input (elu_, leaky_relu_)
    result_in_place: bool = False

    def lower(self, p, x, y, lib):
        return getattr(lib.nn, self.module)()

    def saved(self, p, x: Shape, y: Shape, in_place: bool) -> Saved:
        if self.keeps_output or (in_place and self.result_in_place):
            return Saved(output=True)
        if in_place:  # the input it reads is overwritten: autograd keeps a copy of it
            return Saved(extra=4 * x.numel)
        return Saved(input=True)


def _simple(name: str, module: str, summary: str, aliases: tuple[str, ...] = (), inplace: bool = False,
            keeps_output: bool = False, result_in_place: bool = False):
    cls = type(name.capitalize(), (_Act,), {"name": name, "module": module, "summary": summary,
                                            "example": name, "aliases": aliases, "inplace": inplace,
                                            "keeps_output": keeps_output, "result_in_place": result_in_place})
    register(cls)
    return cls


Relu = _simple("relu", "ReLU", "rectified linear unit", inplace=True, keeps_output=True)
Relu6 = _simple("relu6", "ReLU6", "ReLU clipped at 6", inplace=True)
Tanh = _simple("tanh", "Tanh", "hyperbolic tangent", keeps_output=True)
Sigmoid = _simple("sigmoid", "Sigmoid", "logistic sigmoid", keeps_output=True)
Elu = _simple("elu", "ELU", "exponential linear unit", inplace=True, result_in_place=True)
Gelu = _simple("gelu", "GELU", "Gaussian error linear unit")
Silu = _simple("silu", "SiLU", "sigmoid-weighted linear unit (swish)", ("swish",), inplace=True)
Hardswish = _simple("hardswish", "Hardswish", "hard swish, x * relu6(x + 3) / 6 (Howard et al. 2019, MobileNetV3)",
                    inplace=True)
Hardsigmoid = _simple("hardsigmoid", "Hardsigmoid",
                      "hard sigmoid, relu6(x + 3) / 6 (MobileNetV3's squeeze-excitation gate)", inplace=True)


@frozen
class SlopeParams(Params):
    slope: float = 0.01


@register
class LeakyRelu(_Act):
    name = "lrelu"
    aliases = ("leaky_relu",)
    summary = "leaky ReLU with the given negative slope (default 0.01)"
    example = "lrelu 0.1"
    Params = SlopeParams
    inplace = True
    result_in_place = True

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
    keeps_output = True

    def lower(self, p, x, y, lib):
        return lib.nn.Softmax(dim=1)
