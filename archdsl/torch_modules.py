"""The containers of a built network (imports torch): the modules archdsl.lower_torch
assembles a network from, and that TorchScript compiles (``torch.jit.script`` of a built
module, aux heads and deep nesting included).

Every container is an nn.Sequential (so that torch.jit.script unrolls the loop over its
children, and tools list them in order) whose children are named as the spec names them:
the state_dict keys are the spec's names. ``Layer`` and ``Body`` add nothing to
nn.Sequential but their class: they tell a layer with its attached norm and activation
(whose output is the layer's) from a body (a sequence of layers), for forward_shapes and
for anyone reading ``print(model)``; torchinfo's ``row_settings=("var_names",)`` shows
the spec's names beside them. A body holding aux heads is an ``AuxBody``; a merge lowers
to ``Concat``, ``Add`` or ``Mul`` (a merge kind of one's own: ``Merge``, which runs its
``combine`` and does not script).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import nn


class Layer(nn.Sequential):
    """A layer and its attached normalisation and activation."""


class Body(nn.Sequential):
    """A body without aux heads: a plain sequence."""


class AuxBody(nn.Sequential):
    """A body that holds aux heads (or contains something that does): an ``AuxHead`` child
    runs on the current tensor and its result goes into the aux dict; an AuxBody child
    passes the dict on; any other child is a step of the main path."""

    def __init__(self, children: list[tuple[str, nn.Module, str]]):
        super().__init__()
        for name, m, _ in children:
            self.add_module(name, m)
        #: per child: "main", "aux" (a head: runs on the current tensor, result collected) or
        #: "pass" (a container that needs the aux dict)
        self.roles = tuple(role for _, _, role in children)
        self.names = tuple(name for name, _, _ in children)

    def forward(self, x: torch.Tensor, aux: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        for m in self:  # hasattr on a submodule is decided when TorchScript compiles (isinstance is not, reliably)
            if hasattr(m, "arch_name"):  # an AuxHead
                if aux is not None:
                    aux[m.arch_name] = m(x, aux)
            elif hasattr(m, "roles"):  # an AuxBody
                x = m(x, aux)
            else:
                x = m(x)
        return x


class AuxHead(nn.Sequential):
    """An aux head's body; ``arch_name`` is the head's name (the key of its output). Its own
    class, not an AuxBody's subclass, so that TorchScript tells the two apart."""

    def __init__(self, name: str, body: nn.Module):
        super().__init__()
        children = list(body.named_children()) if isinstance(body, (Body, AuxBody)) else [("head", body)]
        for n, m in children:
            self.add_module(n, m)
        self.arch_name = name

    def forward(self, x: torch.Tensor, aux: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        for m in self:  # hasattr on a submodule is decided when TorchScript compiles (isinstance is not, reliably)
            if hasattr(m, "arch_name"):  # an AuxHead
                if aux is not None:
                    aux[m.arch_name] = m(x, aux)
            elif hasattr(m, "roles"):  # an AuxBody
                x = m(x, aux)
            else:
                x = m(x)
        return x


class Merge(nn.Sequential):
    """Runs its branches on the same input; its merge kind combines their outputs
    (``MergeKind.combine``: concatenation, a scaled sum, a product). The kinds archdsl ships
    lower to the subclasses below, whose forward TorchScript compiles; a merge kind of
    one's own runs its ``combine`` here."""

    def __init__(self, branches: list[tuple[str, nn.Module]], kind, params):
        super().__init__()
        for name, m in branches:
            self.add_module(name, m)
        self.kind, self.params = kind, params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from .lower_torch import LIB

        return self.kind.combine(self.params, [b(x) for b in self], LIB)

    def extra_repr(self) -> str:
        return self.kind.label(self.params)


class Concat(Merge):
    """The branches' outputs concatenated along channels (dim 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for b in self:
            ys.append(b(x))
        return torch.cat(ys, 1)


class Add(Merge):
    """The sum of the branches' outputs, each times its scale (``residual scale=S``)."""

    def __init__(self, branches: list[tuple[str, nn.Module]], kind, params):
        super().__init__(branches, kind, params)
        scales = list(getattr(params, "scales", ()) or ())
        self.scales: List[float] = [float(s) for s in scales] + [1.0] * (len(branches) - len(scales))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for b in self:
            ys.append(b(x))
        out = ys[0] * self.scales[0] if self.scales[0] != 1.0 else ys[0]
        for k in range(1, len(ys)):
            y = ys[k] * self.scales[k] if self.scales[k] != 1.0 else ys[k]
            out = out + y
        return out


class Mul(Merge):
    """The element-wise product of the branches' outputs (a Cx1x1 gate broadcast)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for b in self:
            ys.append(b(x))
        out = ys[0]
        for k in range(1, len(ys)):
            out = out * ys[k]
        return out


#: merge kind -> the module it lowers to (others: Merge, which runs the kind's combine)
MERGE_MODULES = {"concat": Concat, "add": Add, "residual": Add, "mul": Mul}


class Network(nn.Module):
    """The lowered network. ``input_shape``/``output_shape`` are the analytic shapes."""

    def __init__(self, body: nn.Module, name: str, input_shape, output_shape, aux_names: tuple[str, ...],
                 depth: int = 0):
        super().__init__()
        self.body = body
        self.arch_name = name
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.aux_names = aux_names
        #: how deeply its modules nest (a deep network runs its forward pass on a deep stack)
        self.depth = depth

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, torch.Tensor]]]:
        if torch.jit.is_scripting():
            return self._forward(x)
        return self._on_deep_stack(x)

    @torch.jit.unused
    def _on_deep_stack(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, torch.Tensor]]]:
        from .lower_torch import on_deep_stack

        return on_deep_stack(self.depth, self._forward, x)

    def _forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, torch.Tensor]]]:
        body = self.body
        if hasattr(body, "roles"):  # an AuxBody
            if self.training and len(self.aux_names) > 0:
                aux: Dict[str, torch.Tensor] = {}
                y = body(x, aux)
                return y, aux
            return body(x, None)
        return body(x)

    def extra_repr(self) -> str:
        return f"name={self.arch_name!r}, input={self.input_shape}, output={self.output_shape}"
