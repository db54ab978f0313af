"""The spec's fillers (:mod:`archdsl.init`) applied to a lowered module, with torch.nn.init.

Every filler is one call of torch.nn.init on one parameter, in the order of the module's
``named_modules()`` (the order torchvision's models run their own init loops), drawing from
torch's global generator: a network built under ``torch.manual_seed(s)`` (``build(...,
seed=s)``) gets the same weights as a torchvision model built and initialised the same way
under the same seed. Parameters without a filler keep what their constructor gave them
(torch's default, ``reset_parameters``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .init import Filler
from .network import CompiledNetwork


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    """torch.nn.init's fan_in and fan_out: dim 1 and dim 0 times the receptive field (the
    trailing dims); a 1-D tensor (a bias, a BN gamma) counts its length for both."""
    if weight.dim() < 2:
        return weight.numel(), weight.numel()
    return nn.init._calculate_fan_in_and_fan_out(weight)


def fill(t: torch.Tensor, f: Filler, weight: torch.Tensor | None = None) -> None:
    """Fill `t` in place; `weight` lends its fans to a bias (torch's default does the same)."""
    name, a = f.name, f.args
    init = nn.init
    with torch.no_grad():
        if name == "torch":
            return
        if name == "constant":
            init.constant_(t, float(a[0]))
        elif name == "normal":
            init.normal_(t, float(a[0]), float(a[1]))
        elif name == "uniform":
            init.uniform_(t, float(a[0]), float(a[1]))
        elif name == "trunc_normal":
            mean, std = float(a[0]), float(a[1])
            lo, hi = (float(a[2]), float(a[3])) if len(a) == 4 else (mean - 2 * std, mean + 2 * std)
            init.trunc_normal_(t, mean, std, lo, hi)
        elif name in ("xavier_uniform", "xavier_normal", "he_normal", "he_uniform", "fan_in_uniform") and (
                t.dim() < 2 and weight is not None):
            _fan_based_bias(t, f, weight)
        elif name == "xavier_uniform":
            init.xavier_uniform_(t, gain=float(a[0]) if a else 1.0)
        elif name == "xavier_normal":
            init.xavier_normal_(t, gain=float(a[0]) if a else 1.0)
        elif name in ("he_normal", "he_uniform"):
            mode, act = (a[0], a[1]) if len(a) >= 2 else ((a[0] if a else "fan_in"), "relu")
            slope = float(a[2]) if len(a) > 2 else 0.0
            fn = init.kaiming_normal_ if name == "he_normal" else init.kaiming_uniform_
            if t.dim() < 2:  # a 1-D parameter on its own: its length is its fan
                std = init.calculate_gain(act, slope) / math.sqrt(t.numel())
                (t.normal_(0, std) if name == "he_normal" else t.uniform_(-std * math.sqrt(3), std * math.sqrt(3)))
            else:
                fn(t, a=slope, mode=mode, nonlinearity=act)
        elif name == "fan_in_uniform":
            bound = float(a[0]) / _fans(t)[0]
            init.uniform_(t, -bound, bound)
        elif name == "orthogonal":
            init.orthogonal_(t, gain=float(a[0]) if a else 1.0)
        else:  # pragma: no cover - archdsl.init admits no other
            raise ValueError(f"unknown filler {f}")


def _fan_based_bias(t: torch.Tensor, f: Filler, weight: torch.Tensor) -> None:
    """A fan-based filler on a bias: the formula of its weight's fans, drawn for the bias."""
    fan_in, fan_out = _fans(weight)
    a = f.args
    if f.name.startswith("xavier"):
        gain = float(a[0]) if a else 1.0
        std = gain * math.sqrt(2.0 / (fan_in + fan_out))
        uniform = f.name == "xavier_uniform"
    elif f.name == "fan_in_uniform":
        bound = float(a[0]) / fan_in
        t.uniform_(-bound, bound)
        return
    else:
        mode = a[0] if a else "fan_in"
        act = a[1] if len(a) > 1 else "relu"
        std = nn.init.calculate_gain(act, float(a[2]) if len(a) > 2 else 0) / math.sqrt(
            fan_in if mode == "fan_in" else fan_out)
        uniform = f.name == "he_uniform"
    if uniform:
        t.uniform_(-math.sqrt(3.0) * std, math.sqrt(3.0) * std)
    else:
        t.normal_(0, std)


def _op_modules(module: nn.Module, count: int) -> list[nn.Module]:
    """The modules of a node's ops: a layer with attached ops is a Sequential of them, in order."""
    if count == 1:
        return [module]
    return list(module.children())[:count]


def _params(module: nn.Module, target: str) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """(parameter, the weight beside it) for each parameter named `target` in an op's module
    (itself, or a submodule: subsample's scale)."""
    out = []
    for m in module.modules():
        p = m._parameters.get(target)
        if p is not None:
            out.append((p, m._parameters.get("weight")))
    return out


def apply(net: CompiledNetwork, model: nn.Module) -> nn.Module:
    """Apply every filler of `net` to `model` (built from it), in named_modules() order."""
    if not net.init:
        return model
    body = model.body
    by_module: dict[str, str] = {}
    for node in net.init:
        by_module[node] = node
    for name, module in body.named_modules():
        node = by_module.get(name)
        if node is None:
            continue
        info = net.node(node)
        mods = _op_modules(module, 1 + len(info.post))
        # weights before biases, op by op: the order torchvision's loops call torch.nn.init in
        for i, target, f in sorted(net.init[node], key=lambda x: (x[0], x[1] != "weight")):
            for p, w in _params(mods[i], target):
                fill(p, f, w if target != "weight" else None)
    return model
