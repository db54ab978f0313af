"""Weight transfer: a reference model's parameters and buffers onto an archdsl module.

Layers are paired in the order a forward pass calls them, so the two models may name and
nest their layers differently. Imports torch (through the lowering's back end only).
"""

from __future__ import annotations

import torch
from torch import nn

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
    state = model.state_dict()
    snapshot = type(state)((k, v.detach().clone()) for k, v in state.items())
    snapshot._metadata = getattr(state, "_metadata", None)  # versions (MNASNet's _load_from_state_dict needs it)
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
    held = next(reference.parameters(), None)
    if held is None:
        held = next(reference.buffers(), None)
    theirs = _stateful_leaves_in_call_order(reference, example if held is None else example.to(held.device))
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
