"""Module names: labels, or a kind and its count in the enclosing body.

Names are a pure function of the spec, so the same spec gives the same module names and
state_dict keys every time; a name a torch module already uses is refused.
"""

from __future__ import annotations

from . import syntax as P
from .diagnostics import ArchError, Diagnostic, Note

#: names a label or an aux head may not take: each becomes an attribute of a torch module
#: when the network is built, and these are already attributes of torch.nn.Module (its
#: methods and state) or of archdsl's containers (tests/test_expand.py checks the list
#: against torch's own). Automatic names always end in a digit and never collide.
RESERVED_NAMES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children", "compile",
    "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward", "get_buffer",
    "get_extra_state", "get_parameter", "get_submodule", "half", "ipu", "load_state_dict", "modules", "mtia",
    "named_buffers", "named_children", "named_modules", "named_parameters", "parameters",
    "register_backward_hook", "register_buffer", "register_forward_hook", "register_forward_pre_hook",
    "register_full_backward_hook", "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter", "register_state_dict_post_hook",
    "register_state_dict_pre_hook", "requires_grad_", "set_extra_state", "set_submodule", "share_memory",
    "state_dict", "to", "to_empty", "train", "training", "type", "xpu", "zero_grad",
    # archdsl's containers (lower_torch): Network, AuxBody, Merge
    "body", "arch_name", "input_shape", "output_shape", "aux_names", "depth", "roles", "names", "kind", "params",
    "scales",
})

class Namer:
    """Unique, readable local names within one body: labels, else kind + count."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.used: dict[str, P.Span | None] = {}

    def auto(self, base: str) -> str:
        while True:
            self.counts[base] = self.counts.get(base, 0) + 1
            name = f"{base}{self.counts[base]}"
            if name not in self.used:
                self.used[name] = None
                return name

    def label(self, name: str, span: P.Span | None) -> str:
        if name in RESERVED_NAMES:
            raise ArchError(Diagnostic("E204", f"the name '{name}' is reserved", span,
                                       hint="it is an attribute of the torch module the network is built as; "
                                            "choose another name"))
        if name in self.used:
            prev = self.used[name]
            raise ArchError(Diagnostic("E204", f"the name '{name}' is used twice in this body", span,
                                       notes=(Note("first used here", prev),) if prev else ()))
        self.used[name] = span
        return name
