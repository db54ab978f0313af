"""Weight transfer: a reference model's parameters and buffers onto an archdsl module, and
an archdsl module's weights written in a reference's key layout.

Layers are paired in the order a forward pass calls them, so the two models may name and
nest their layers differently. A module that holds tensors of its own besides children with
weights (torchvision's ConvNeXt CNBlock and its `layer_scale`) is placed where a forward
pass first reads one of those tensors, and an nn.Linear run on channels-last tensors (more
than two dimensions, features last: CNBlock's pointwise layers) pairs with a 1x1
convolution, its (out, in) weight copied as (out, in, 1, 1). A reference is a live model
(paired in call order, each pair compared by kind, hyperparameters and tensor shapes), a
state_dict or a checkpoint file in the reference's key layout (paired in key order,
compared by tensor names and shapes). Imports torch (through the lowering's back end only).
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

import torch
from torch import nn
from torch.overrides import TorchFunctionMode


class WeightMismatch(ValueError):
    """The reference model's layers do not line up with the archdsl module's."""


class CheckpointError(ValueError):
    """A file that is no checkpoint of tensors (or holds pickled objects, which are not read)."""


#: what :func:`load_weights` and :func:`convert_state_dict` take as the reference: a model,
#: a state_dict in its key layout, or the path of a checkpoint holding one
Reference = Union[nn.Module, Mapping[str, Any], str, "os.PathLike[str]"]


@dataclass
class _Layer:
    """One layer with weights: its qualified name, its own tensors in state_dict order
    (persistent state only) and, when it comes from a live model, the module itself."""

    name: str
    tensors: "OrderedDict[str, torch.Tensor]"
    module: nn.Module | None = field(default=None, repr=False)
    #: an nn.Linear the forward pass called on an input of more than two dimensions: a
    #: per-position linear map over the last (channel) dimension, which is a 1x1 convolution
    pointwise: bool = False
    #: the tensors of a module that also has children with weights (CNBlock's layer_scale):
    #: the module is no layer of a kind to compare, only its tensors' names and shapes are
    container: bool = False


def _own_state(m: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """A module's own persistent tensors, as its state_dict holds them (children excluded).
    A non-persistent buffer (`select`'s index) is no weight: it is not in any checkpoint."""
    own = OrderedDict((k, p) for k, p in m._parameters.items() if p is not None)
    skip = m._non_persistent_buffers_set
    own.update((k, b) for k, b in m._buffers.items() if b is not None and k not in skip)
    return own


class _FirstRead(TorchFunctionMode):
    """Calls `found(owner)` the first time a torch function reads one of `tensors` (tensor
    id -> the module that holds it): how a module's own parameters, used by its forward
    between or after its children (CNBlock's ``self.layer_scale * self.block(input)``), are
    placed in call order."""

    def __init__(self, tensors: dict[int, nn.Module], found) -> None:
        super().__init__()
        self.tensors = tensors
        self.found = found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.tensors:
            for a in (*args, *kwargs.values()):
                for t in (a if isinstance(a, (list, tuple)) else (a,)):
                    owner = self.tensors.get(id(t)) if isinstance(t, torch.Tensor) else None
                    if owner is not None:
                        self.found(owner)
        return func(*args, **kwargs)


def _layers_in_call_order(model: nn.Module, example: torch.Tensor) -> list[_Layer]:
    """The modules that own parameters or persistent buffers, in the order a forward pass
    calls them (those the pass does not call follow, in registration order).

    A leaf module is placed when it is called. A module that also has children with weights
    holds tensors its forward uses around theirs (CNBlock's `layer_scale`, applied to its
    block's output): it is placed where one of its own tensors is first read by a torch
    function, or at the end of its forward if none is; so CNBlock's layer_scale comes after
    the layers of its block, as archdsl's `layerscale` comes after the layers before it.

    The model runs once in training mode (so that aux heads run too) under no_grad, on a
    copy of `example`. Everything the pass changes is put back in place: every module's
    training flag, every buffer's values (batch-norm running statistics, including
    non-persistent buffers) and the random number generator's state (dropout draws from
    it); nothing is reloaded through load_state_dict, so a model's state_dict metadata and
    its own loading hooks are not involved.
    """
    names = {m: n for n, m in model.named_modules()}
    owners = [m for m in model.modules() if _own_state(m)]
    mixed = {m for m in owners if any(_own_state(c) for c in m.modules() if c is not m)}
    order: list[nn.Module] = []
    seen: set[int] = set()
    pointwise: set[int] = set()

    def place(mod):
        if id(mod) not in seen:
            seen.add(id(mod))
            order.append(mod)

    def pre_hook(mod, inp):
        x = inp[0] if inp else None
        if isinstance(mod, nn.Linear) and isinstance(x, torch.Tensor) and x.dim() > 2 and \
                x.shape[-1] == mod.in_features and id(mod) not in seen:
            pointwise.add(id(mod))
        place(mod)

    def post_hook(mod, _inp, _out):
        place(mod)

    own_tensors = {id(t): m for m in mixed for t in _own_state(m).values()}
    modes = [(m, m.training) for m in model.modules()]
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    devices = [example.device.index or 0] if example.is_cuda else []
    handles = [m.register_forward_hook(post_hook) if m in mixed else m.register_forward_pre_hook(pre_hook)
               for m in owners]
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            model.train()
            if own_tensors:
                with _FirstRead(own_tensors, place):
                    model(example.clone())
            else:
                model(example.clone())
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)
        for m, mode in modes:
            m.training = mode
    missing = [m for m in owners if id(m) not in seen]
    return [_Layer(names[m], _own_state(m), m, id(m) in pointwise, m in mixed) for m in order + missing]


def _layers_of_state_dict(state: Mapping[str, Any]) -> list[_Layer]:
    """A state_dict's tensors grouped by the module that owns them, in key order (the order
    in which the model registered its layers): ``layer1.0.conv1.weight`` belongs to
    ``layer1.0.conv1``."""
    groups: "OrderedDict[str, OrderedDict[str, torch.Tensor]]" = OrderedDict()
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightMismatch(f"the state_dict's '{key}' is a {type(value).__name__}, not a tensor")
        prefix, _, local = key.rpartition(".")
        groups.setdefault(prefix, OrderedDict())[local] = value
    return [_Layer(name, tensors) for name, tensors in groups.items()]


#: the keys under which training scripts store the model's state_dict in a checkpoint
#: (torchvision's references: "model"; timm's train.py: "state_dict", and "state_dict_ema")
CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "module")


def read_checkpoint(path: "str | os.PathLike[str]", map_location: Any = "cpu") -> "OrderedDict[str, torch.Tensor]":
    """A state_dict from a checkpoint file, read with ``torch.load(weights_only=True)``: only
    tensors and plain containers are unpickled, never arbitrary objects or code (anything
    else is a :class:`CheckpointError`). A training
    checkpoint that holds the state_dict under one of :data:`CHECKPOINT_KEYS` is unwrapped;
    a ``module.`` prefix (DataParallel, DistributedDataParallel) is removed."""
    try:
        state = torch.load(os.fspath(path), map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch.load's errors for a file that is no checkpoint vary
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{os.fspath(path)} cannot be read as a checkpoint of tensors: {first}") from e
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{os.fspath(path)} holds a {type(state).__name__}, not a state_dict")
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        inner = next((state[k] for k in CHECKPOINT_KEYS if isinstance(state.get(k), Mapping)), None)
        if inner is None:
            raise CheckpointError(f"{os.fspath(path)} holds no tensors and none of the keys {list(CHECKPOINT_KEYS)} "
                                 f"(it has {sorted(map(str, state))[:8]})")
        state = inner
    if state and all(k.startswith("module.") for k in state):
        stripped = OrderedDict((k[len("module."):], v) for k, v in state.items())
        meta = getattr(state, "_metadata", None)
        if meta is not None:
            stripped._metadata = OrderedDict(  # type: ignore[attr-defined]
                (k[len("module."):] if k.startswith("module.") else ("" if k == "module" else k), v)
                for k, v in meta.items())
        state = stripped
    return state if isinstance(state, OrderedDict) else OrderedDict(state)


def _example_for(module: nn.Module, example: torch.Tensor | None) -> torch.Tensor:
    if example is not None:
        return example
    shape = getattr(module, "input_shape", None)
    if shape is None:
        raise ValueError("pass example= (an input tensor) for a module not built by archdsl")
    param = next(module.parameters(), None)
    return torch.randn(2, *shape, device=param.device if param is not None else "cpu")


def _device_of(model: nn.Module) -> torch.device | None:
    held = next(model.parameters(), None)
    if held is None:
        held = next(model.buffers(), None)
    return None if held is None else held.device


def _reference_layers(reference: Reference, example: torch.Tensor, layout: nn.Module | None) -> list[_Layer]:
    """The reference's layers in the order they are paired: a live model's (or `layout`'s)
    call order, else a state_dict's key order."""
    if isinstance(reference, nn.Module):
        if layout is not None:
            raise TypeError("layout= goes with a state_dict or a checkpoint; a model is its own layout")
        device = _device_of(reference)
        return _layers_in_call_order(reference, example if device is None else example.to(device))
    state = read_checkpoint(reference) if isinstance(reference, (str, os.PathLike)) else reference
    if not isinstance(state, Mapping):
        raise TypeError(f"the reference is a model, a state_dict or a checkpoint path, not a {type(state).__name__}")
    groups = _layers_of_state_dict(state)
    if layout is None:
        return groups
    # the layout model's call order, its layers' tensors taken from the state_dict
    device = _device_of(layout)
    called = _layers_in_call_order(layout, example if device is None else example.to(device))
    by_name = {g.name: g for g in groups}
    ordered = []
    for layer in called:
        group = by_name.pop(layer.name, None)
        if group is None:
            raise WeightMismatch(f"the state_dict holds no tensors of the layout's '{layer.name}' "
                                 f"(it holds {list(layer.tensors)} there)")
        ordered.append(_Layer(layer.name, group.tensors, layer.module, layer.pointwise, layer.container))
    if by_name:
        extra = next(iter(by_name))
        raise WeightMismatch(f"the state_dict's '{extra}' ({', '.join(by_name[extra].tensors)}) is no layer "
                             f"of the layout model")
    return ordered


#: layer classes that pair with each other's subclasses: a LayerNorm2d (archdsl's, torchvision's
#: ConvNeXt stem) with the nn.LayerNorm that CNBlock applies between permutes
_FAMILIES = (nn.modules.conv._ConvNd, nn.modules.batchnorm._BatchNorm, nn.Linear, nn.PReLU,
             nn.modules.normalization.LocalResponseNorm, nn.LayerNorm)

#: the hyperparameters compared between two paired layers of a family: what changes the
#: function a layer computes (or, for batch norm's momentum, how it trains) without
#: changing the shape of any tensor it holds
_HYPER = {
    "ConvNd": ("stride", "padding", "dilation", "groups", "padding_mode", "transposed", "output_padding"),
    "BatchNorm": ("eps", "momentum", "affine", "track_running_stats"),
    "LocalResponseNorm": ("size", "alpha", "beta", "k"),
    "LayerNorm": ("eps", "elementwise_affine"),
}


def _family(m: nn.Module) -> str:
    for fam in _FAMILIES:
        if isinstance(m, fam):
            return fam.__name__.lstrip("_")
    return type(m).__name__


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _is_1x1(m: nn.Module) -> bool:
    """A plain 1x1 convolution: one position in, one position out, every channel to every
    channel (stride 1, no padding, no dilation, one group)."""
    return (isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1) and tuple(m.stride) == (1, 1)
            and m.padding in ((0, 0), "valid") and tuple(m.dilation) == (1, 1) and m.groups == 1)


def _pointwise_pair(o: _Layer, t: _Layer) -> bool:
    """One layer a 1x1 convolution, the other an nn.Linear called on channels-last tensors:
    the same function, the linear's (out, in) weight the convolution's (out, in, 1, 1)."""
    om, tm = o.module, t.module
    if om is None or tm is None:
        return False
    return (o.pointwise and isinstance(om, nn.Linear) and _is_1x1(tm)) or \
        (t.pointwise and isinstance(tm, nn.Linear) and _is_1x1(om))


def _pair(ours: list[_Layer], theirs: list[_Layer], strict_types: bool) -> None:
    """Raise WeightMismatch at the first pair that differs in kind, hyperparameters, tensor
    names or tensor shapes, or when the counts differ. A 1x1 convolution and a channels-last
    nn.Linear (see :func:`_pointwise_pair`) are the same kind; their weights differ only in
    the convolution's two trailing 1s. A container's own tensors (CNBlock's layer_scale) have
    no kind: only their names and shapes are compared."""
    for i, (o, t) in enumerate(zip(ours, theirs)):
        om, tm = o.module, t.module
        pointwise = _pointwise_pair(o, t)
        kinds = om is not None and tm is not None and not (o.container or t.container)
        if strict_types and kinds and _family(om) != _family(tm) and not pointwise:
            raise WeightMismatch(f"layer #{i + 1} differs in kind: archdsl '{o.name}' is {type(om).__name__}, "
                                 f"the reference's '{t.name}' is {type(tm).__name__}")
        if list(o.tensors) != list(t.tensors):
            raise WeightMismatch(f"layer #{i + 1}: archdsl '{o.name}' holds {sorted(o.tensors)}, "
                                 f"the reference's '{t.name}' holds {sorted(t.tensors)}")
        for key, value in o.tensors.items():
            theirs_shape = t.tensors[key].shape
            if pointwise and value.numel() == t.tensors[key].numel() and \
                    value.shape[:2] == theirs_shape[:2] and 1 == value.shape[2:].numel() == theirs_shape[2:].numel():
                continue
            if value.shape != theirs_shape:
                raise WeightMismatch(f"layer #{i + 1}: archdsl '{o.name}.{key}' has shape {tuple(value.shape)}, "
                                     f"the reference's '{t.name}.{key}' has shape {tuple(t.tensors[key].shape)}")
        if kinds and _family(om) == _family(tm):
            for attr in _HYPER.get(_family(om), ()):
                a, b = getattr(om, attr, None), getattr(tm, attr, None)
                if not _same(a, b):
                    raise WeightMismatch(f"layer #{i + 1} differs in {attr}: archdsl '{o.name}' has {attr}={a!r}, "
                                         f"the reference's '{t.name}' has {attr}={b!r}")
    if len(ours) != len(theirs):
        longer, name = (ours, "archdsl") if len(ours) > len(theirs) else (theirs, "the reference")
        extra = longer[min(len(ours), len(theirs))].name
        raise WeightMismatch(f"archdsl has {len(ours)} layers with weights, the reference {len(theirs)}; "
                             f"the first unmatched is {name}'s '{extra}'")


def load_weights(module: nn.Module, reference: Reference, example: torch.Tensor | None = None,
                 strict_types: bool = True, layout: nn.Module | None = None) -> nn.Module:
    """Copy `reference`'s parameters and buffers onto `module` (an archdsl-built network).

    `reference` is a model (torchvision's, timm's, another archdsl module), a state_dict in
    such a model's key layout, or the path of a checkpoint file holding one (read with
    ``torch.load(weights_only=True)``, see :func:`read_checkpoint`).

    A model's layers are paired with `module`'s in the order a forward pass calls them, so
    the two may name and nest their layers differently (torchvision's
    ``inception3a.branch2.1.conv`` and archdsl's ``inception3a.branch2.conv2.conv``) and
    register them in a different order (torchvision's GoogLeNet registers its aux heads
    after inception5b). Each pair must agree in kind, in hyperparameters (a convolution's
    stride, padding, dilation and groups; batch norm's eps and momentum) and in the names
    and shapes of its tensors. The reference is left exactly as it was: its modes, its
    buffers and the random number generator's state.

    A state_dict's layers are paired in key order, which is the order its model registered
    them: the call order for most networks. Only tensor names and shapes can be compared
    then; pass the model it came from as `layout` (say torchvision's, built with
    ``weights=None``) to pair in that model's call order and compare hyperparameters too.

    Raises :class:`WeightMismatch` naming the first pair that differs, with both names.
    """
    example = _example_for(module, example)
    ours = _layers_in_call_order(module, example)
    theirs = _reference_layers(reference, example, layout)
    _pair(ours, theirs, strict_types)
    with torch.no_grad():
        for o, t in zip(ours, theirs):
            for key, tensor in o.tensors.items():
                # the shapes are equal, or (out, in) and (out, in, 1, 1) in a pointwise pair
                tensor.copy_(t.tensors[key].reshape(tensor.shape))
    return module


def convert_state_dict(module: "nn.Module | Mapping[str, Any]", reference: Reference,
                       example: torch.Tensor | None = None, strict_types: bool = True,
                       layout: nn.Module | None = None) -> "OrderedDict[str, torch.Tensor]":
    """`module`'s weights as a state_dict in `reference`'s key layout: the inverse of
    :func:`load_weights`. ``reference.load_state_dict(convert_state_dict(ours, reference))``
    gives the reference archdsl's weights, and ``torch.save`` of the result is a checkpoint
    that torchvision's (or timm's) model loads.

    `module` is an archdsl module (paired in call order) or its state_dict (in key order,
    which for an archdsl module is its call order). `reference` gives the layout: a model,
    a state_dict or a checkpoint path, paired as in :func:`load_weights` (`layout` too). The
    result's keys are the reference's, in its order; its tensors are detached copies of
    `module`'s; it carries the reference's state_dict metadata where the reference has it
    (torchvision's MNASNet needs its ``version`` to load).
    """
    if isinstance(module, nn.Module):
        example = _example_for(module, example)
        ours = _layers_in_call_order(module, example)
    else:
        ours = _layers_of_state_dict(module)
        if example is None and (isinstance(reference, nn.Module) or layout is not None):
            raise ValueError("pass example= (an input tensor) to pair a state_dict with a model's call order")
    if isinstance(reference, (str, os.PathLike)):
        reference = read_checkpoint(reference)
    theirs = _reference_layers(reference, example, layout)
    _pair(ours, theirs, strict_types)
    converted = {}
    for o, t in zip(ours, theirs):
        for key in t.tensors:
            converted[f"{t.name}.{key}" if t.name else key] = \
                o.tensors[key].detach().clone().reshape(t.tensors[key].shape)
    # the reference's own key order (a model's registration order, not its call order)
    state = reference.state_dict() if isinstance(reference, nn.Module) else reference
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict((k, converted[k]) for k in state if k in converted)
    meta = getattr(state, "_metadata", None)
    if meta is None and layout is not None:
        meta = getattr(layout.state_dict(), "_metadata", None)
    if meta is not None:
        out._metadata = OrderedDict(meta)  # type: ignore[attr-defined]
    return out
