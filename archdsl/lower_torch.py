"""Compiled graph -> ``torch.nn.Module``. The only module of archdsl that imports torch.

The module mirrors the spec's structure: a body is a sequence of named children, a block
call a named submodule, a merge (concat, add, residual, mul) a module whose children are
its branches (``branch1``, ``branch2``, ... in the order written) and whose merge kind
combines their outputs, an aux head a named child that runs only in training mode. A layer with an attached norm and activation is a small sequential
module (``conv1.conv``, ``conv1.bn``, ``conv1.relu``); a bare layer is the torch layer itself.

Aux contract: in eval mode ``model(x)`` returns the main output; in training mode, when the
network has aux heads, it returns ``(main, {"aux1": ..., "aux2": ...})`` with the heads in
the order they appear in the spec.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .diagnostics import ArchError, Diagnostic
from .infer import NodeInfo
from .network import CompiledNetwork, TAux, TLayer, TMerge, TSeq, walk

#: building a module with more parameters than this is refused unless `max_params` is raised
DEFAULT_MAX_PARAMS = 2_000_000_000


# ---------------------------------------------------------------- helper modules used by kinds


class FlatLinear(nn.Linear):
    """nn.Linear that flattens a (N, C, H, W) input first, as torchvision's classifiers do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(torch.flatten(x, 1))


class SpatialPyramidPool(nn.Module):
    """He et al. 2014: adaptive max pooling into n x n bins per level, flattened and concatenated."""

    def __init__(self, levels):
        super().__init__()
        self.levels = tuple(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.flatten(F.adaptive_max_pool2d(x, n), 1) for n in self.levels], 1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


class Select(nn.Module):
    """Keeps the listed channels; a contiguous run is a plain slice."""

    def __init__(self, channels):
        super().__init__()
        self.channels = tuple(channels)
        c = self.channels
        self.run = (c[0], c[-1] + 1) if list(c) == list(range(c[0], c[-1] + 1)) else None
        self.register_buffer("index", torch.tensor(c, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.run is not None:
            return x[:, self.run[0]:self.run[1]]
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a): LeCun et al. 1998's squashing function (Appendix A: A = 1.7159, S = 2/3)."""

    def __init__(self, amplitude: float, slope: float):
        super().__init__()
        self.amplitude, self.slope = float(amplitude), float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude:g}, slope={self.slope:g}"


class RadialBasis(nn.Module):
    """LeNet-5's output layer (LeCun et al. 1998, §II-B): y_i = sum_j (x_j - w_ij)^2 with
    fixed codes w, kept as a buffer so that they are saved but never trained."""

    def __init__(self, codes):
        super().__init__()
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.get_default_dtype()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) - self.codes).pow(2).sum(-1)

    def extra_repr(self) -> str:
        return f"in_features={self.codes.shape[1]}, out_features={self.codes.shape[0]}"


#: the namespace handed to every kind's ``lower``: torch.nn plus the helpers above
LIB = types.SimpleNamespace(nn=nn, F=F, torch=torch, FlatLinear=FlatLinear, SpatialPyramidPool=SpatialPyramidPool,
                            Select=Select, ScaledTanh=ScaledTanh, RadialBasis=RadialBasis)


# ---------------------------------------------------------------- containers


class Layer(nn.Sequential):
    """A layer and its attached normalisation and activation."""


class Body(nn.Sequential):
    """A body without aux heads: a plain sequence."""


class AuxBody(nn.Module):
    """A body that holds aux heads (or contains something that does)."""

    def __init__(self, children: list[tuple[str, nn.Module, str]]):
        super().__init__()
        for name, m, _ in children:
            self.add_module(name, m)
        #: per child: "main", "aux" (a head: runs on the current tensor, result collected) or
        #: "pass" (a container that needs the aux dict)
        self.roles = tuple(role for _, _, role in children)
        self.names = tuple(name for name, _, _ in children)

    def forward(self, x: torch.Tensor, aux: dict | None = None) -> torch.Tensor:
        for name, role, m in zip(self.names, self.roles, self.children()):
            if role == "main":
                x = m(x)
            elif role == "aux":
                if aux is not None:
                    aux[name] = m(x)
            else:
                x = m(x, aux)
        return x


class Merge(nn.Module):
    """Runs its branches on the same input; its merge kind combines their outputs
    (``MergeKind.combine``: concatenation, a scaled sum, a product)."""

    def __init__(self, branches: list[tuple[str, nn.Module]], kind, params):
        super().__init__()
        for name, m in branches:
            self.add_module(name, m)
        self.kind, self.params = kind, params

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.kind.combine(self.params, [b(x) for b in self.children()], LIB)

    def extra_repr(self) -> str:
        return self.kind.label(self.params)


class Network(nn.Module):
    """The lowered network. ``input_shape``/``output_shape`` are the analytic shapes."""

    def __init__(self, body: nn.Module, name: str, input_shape, output_shape, aux_names: tuple[str, ...]):
        super().__init__()
        self.body = body
        self.arch_name = name
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.aux_names = aux_names

    def forward(self, x: torch.Tensor):
        if self.aux_names:
            if self.training:
                aux: dict[str, torch.Tensor] = {}
                y = self.body(x, aux)
                return y, aux
            return self.body(x, None)
        return self.body(x)

    def extra_repr(self) -> str:
        return f"name={self.arch_name!r}, input={self.input_shape}, output={self.output_shape}"


# ---------------------------------------------------------------- lowering


def _in_place(module: nn.Module) -> nn.Module:
    if isinstance(getattr(module, "inplace", None), bool):
        module.inplace = True
    return module


def _readers(net: CompiledNetwork) -> dict[str, int]:
    readers: dict[str, int] = {}
    for n in net.nodes():
        for i in n.inputs:
            readers[i] = readers.get(i, 0) + 1
    return readers


def _overwritable(net: CompiledNetwork, info: NodeInfo, readers: dict[str, int]) -> bool:
    """May a standalone activation overwrite its input? Only when that input is a fresh
    output (``Kind.fresh_output``, its attached ops too: no attached activation whose
    backward reads its own output) that nothing else reads: not the network's input, not a
    tensor shared by branches or an aux head."""
    if len(info.inputs) != 1:
        return False
    src = net.node(info.inputs[0])
    if not src.kind.fresh_output or not all(op.kind.fresh_output for op in src.post):
        return False
    return readers.get(src.id, 0) == 1


def _layer_module(info: NodeInfo, net: CompiledNetwork, readers: dict[str, int]) -> nn.Module:
    x = info.in_shapes[0]
    y = info.kind.infer(info.op.params, x)
    main = info.kind.lower(info.op.params, x, y, LIB)
    if not info.post:
        if info.kind.is_activation and _overwritable(net, info, readers):
            _in_place(main)
        return main
    parts: list[tuple[str, nn.Module]] = [(info.kind.name, main)]
    before = info.kind
    for op in info.post:
        name = op.kind.name
        if any(n == name for n, _ in parts):
            name = f"{name}{sum(1 for n, _ in parts if n.startswith(op.kind.name)) + 1}"
        m = op.kind.lower(op.params, y, y, LIB)
        # an attached activation overwrites the fresh output of the op before it (conv, fc, bn)
        if op.kind.is_activation and before.fresh_output:
            _in_place(m)
        parts.append((name, m))
        before = op.kind
    layer = Layer()
    for name, m in parts:
        layer.add_module(name, m)
    return layer


def _holding_aux(net: CompiledNetwork) -> set[int]:
    """The ids of the bodies and merges that hold an aux head at any depth."""
    holding: set[int] = set()
    open_: list = []
    for v in walk(net.tree):
        t = type(v.item)
        if t is TLayer:
            continue
        if v.leaving:
            open_.pop()
            continue
        if t is TAux:
            holding.update(id(c) for c in open_)
        open_.append(v.item)
    return holding


def _body(children: list[tuple[str, nn.Module, str]]) -> nn.Module:
    if any(role != "main" for _, _, role in children):
        return AuxBody(children)
    body = Body()
    for name, m, _ in children:
        body.add_module(name, m)
    return body


def _lower_tree(net: CompiledNetwork) -> nn.Module:
    """The network's modules, built bottom-up along the tree's walk (no recursion, so any
    nesting that compiles lowers): a container's children are collected between its entry
    and its exit, then wrapped."""
    readers = _readers(net)
    aux_inside = _holding_aux(net) if net.aux_outputs else set()
    #: per open container: its children as (name, module, role)
    stack: list[list[tuple[str, nn.Module, str]]] = []
    result: nn.Module | None = None
    for v in walk(net.tree):
        it, t = v.item, type(v.item)
        if t is TLayer:
            stack[-1].append((it.name, _layer_module(net.node(it.node), net, readers), "main"))
            continue
        if not v.leaving:
            stack.append([])
            continue
        children = stack.pop()
        if t is TSeq:
            module = _body(children) if (children or type(v.parent) is not TMerge) else nn.Identity()
        elif t is TMerge:
            if id(it) in aux_inside:
                raise ArchError(Diagnostic("E412", "aux heads inside merge branches cannot be lowered",
                                           net.node(it.node).span,
                                           hint="start the aux head on the main path, before or after the merge"))
            info = net.node(it.node)
            module = Merge([(name, m) for name, m, _ in children], info.kind, info.op.params)
        else:  # TAux: its body, run for its result
            module = children[0][1]
        if not stack:
            result = module
            break
        role = "aux" if t is TAux else ("pass" if id(it) in aux_inside else "main")
        stack[-1].append((it.name, module, role))
    assert result is not None
    return result


def lower(net: CompiledNetwork, device: str | torch.device = "cpu", max_params: int = DEFAULT_MAX_PARAMS,
          init: bool = True, dtype: torch.dtype | None = None) -> Network:
    """Build the module for a compiled network.

    `init=False` builds on the meta device: the structure and shapes without allocating or
    initialising any weight (for inspection, or to load a checkpoint with ``to_empty``).
    """
    if net.params > max_params:
        raise ArchError(Diagnostic(
            "E411", f"{net.name} has {net.params:,} parameters, above the limit of {max_params:,}",
            net.span, hint="raise the limit with max_params=... (CLI: --max-params N) if this is intended"),
            net.sources)
    target = torch.device("meta") if not init else torch.device(device)
    with torch.device(target):
        try:
            body = _lower_tree(net)
        except ArchError as e:  # E412: show the spec's line
            raise e.with_sources(net.sources) from None
        model = Network(body, net.name, net.input_shape.dims, net.output_shape.dims, tuple(net.aux_outputs))
    if dtype is not None:
        model = model.to(dtype)
    return model


# ---------------------------------------------------------------- weight transfer


class WeightMismatch(ValueError):
    """The reference model's layers do not line up with the archdsl module's."""


def _stateful_leaves_in_call_order(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The modules that own parameters or buffers, in the order a forward pass calls them.

    The model runs once in training mode (so that aux heads run too) under no_grad; its
    state (batch-norm running statistics) is restored afterwards.
    """
    names = {m: n for n, m in model.named_modules()}
    owners = [m for m in model.modules()
              if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False))]
    order: list[nn.Module] = []
    seen: set[int] = set()

    def hook(mod, _inp):
        if id(mod) not in seen:
            seen.add(id(mod))
            order.append(mod)

    handles = [m.register_forward_pre_hook(hook) for m in owners]
    snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        model.train()
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        model.load_state_dict(snapshot)
        model.train(was_training)
    missing = [m for m in owners if id(m) not in seen]
    return [(names[m], m) for m in order] + [(names[m], m) for m in missing]


_FAMILIES = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.Linear, nn.PReLU,
             nn.modules.normalization.LocalResponseNorm)


def _family(m: nn.Module) -> str:
    for fam in _FAMILIES:
        if isinstance(m, fam):
            return fam.__name__.lstrip("_")
    return type(m).__name__


def load_weights(module: nn.Module, reference: nn.Module, example: torch.Tensor | None = None,
                 strict_types: bool = True) -> nn.Module:
    """Copy `reference`'s parameters and buffers onto `module` (an archdsl-built network).

    Layers are paired in the order a forward pass calls them, so the two models may name
    and nest their layers differently (torchvision's ``inception3a.branch2.1.conv`` and
    archdsl's ``inception3a.branch2.conv2.conv``) and register them in a different order
    (torchvision's GoogLeNet registers its aux heads after inception5b). Raises
    :class:`WeightMismatch` naming the first pair whose kind or tensor shapes differ.
    """
    if example is None:
        shape = getattr(module, "input_shape", None)
        if shape is None:
            raise ValueError("pass example= (an input tensor) for a module not built by archdsl")
        param = next(module.parameters(), None)
        example = torch.randn(2, *shape, device=param.device if param is not None else "cpu")
    ours = _stateful_leaves_in_call_order(module, example)
    theirs = _stateful_leaves_in_call_order(reference, example.to(next(reference.parameters()).device))
    for i, ((on, om), (tn, tm)) in enumerate(zip(ours, theirs)):
        if strict_types and _family(om) != _family(tm):
            raise WeightMismatch(f"layer #{i + 1} differs in kind: archdsl '{on}' is {type(om).__name__}, "
                                 f"the reference's '{tn}' is {type(tm).__name__}")
        osd, tsd = om.state_dict(), tm.state_dict()
        if list(osd) != list(tsd):
            raise WeightMismatch(f"layer #{i + 1}: archdsl '{on}' holds {sorted(osd)}, "
                                 f"the reference's '{tn}' holds {sorted(tsd)}")
        for key in osd:
            if osd[key].shape != tsd[key].shape:
                raise WeightMismatch(f"layer #{i + 1}: archdsl '{on}.{key}' has shape {tuple(osd[key].shape)}, "
                                     f"the reference's '{tn}.{key}' has shape {tuple(tsd[key].shape)}")
    if len(ours) != len(theirs):
        longer, name = (ours, "archdsl") if len(ours) > len(theirs) else (theirs, "the reference")
        extra = longer[min(len(ours), len(theirs))][0]
        raise WeightMismatch(f"archdsl has {len(ours)} layers with weights, the reference {len(theirs)}; "
                             f"the first unmatched is {name}'s '{extra}'")
    with torch.no_grad():
        for (_, om), (_, tm) in zip(ours, theirs):
            tsd = tm.state_dict()
            for key, t in om.state_dict(keep_vars=True).items():
                t.copy_(tsd[key])
    return module


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_shapes(model: Network, batch: int = 1, device: Any = "cpu") -> dict[str, tuple[int, ...]]:
    """Actual output shape of every layer module (by qualified name), from one forward pass:
    the tests compare these with the analytic shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, m in model.named_modules():
        if name and not isinstance(m, (Body, AuxBody, Network)) and not name.endswith(tuple(
                f".{c}" for c in ())):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
                if isinstance(out, torch.Tensor) else None))
    try:
        with torch.no_grad():
            model.eval()
            model(torch.randn(batch, *model.input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return shapes
