"""The importer's items, their names and their templates, shared by its stages.

Torch-free. archdsl/trace_torch.py records a traced module as these items (an ``Op`` per
layer, a ``Merge`` where branches meet, an ``Aux`` for a side head, each with the stack of
``Frame`` module calls it was made in); archdsl/rebuild.py turns them into ``Call``,
``Repeat``, ``Block``, ``Ref`` and ``Cond`` items, and archdsl/write_spec.py writes them out.
A ``template`` is an item's structure apart from its numbers (the slots a block may turn
into parameters): the calls whose templates are equal may be one block. The names a spec
may use (``identifier``) are here too, since every stage of the importer makes some.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .names import RESERVED_NAMES

#: words of the grammar a block or label cannot be
KEYWORDS = frozenset({"include", "let", "block", "network", "input", "repeat", "as", "if", "else", "aux", "expect",
                      "true", "false", "and", "or", "not", "in", "within", "x"})
#: scoped settings: labels may take these words (`norm: bn`), blocks may not
SCOPED = frozenset({"act", "norm", "bias"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NUMBERED = re.compile(r"(.*?)(\d+)\Z")


def identifier(name: str | None) -> bool:
    return bool(name) and bool(_IDENT.match(name)) and name not in KEYWORDS and name not in RESERVED_NAMES


def snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.strip("_")).lower()
    return re.sub(r"[^a-z0-9_]", "_", s) or "module"


# ---------------------------------------------------------------- the items


@dataclass(eq=False)
class Frame:
    """One module call: ``key`` tells calls apart (torch's nn_module_stack key), ``path``
    is the module's qualified name, ``cls`` its class (qualified) and ``generic`` whether
    it is a plain container (Sequential, ModuleList, ModuleDict)."""

    key: str
    path: str
    cls: str
    generic: bool = False

    @property
    def cls_name(self) -> str:
        return self.cls.rsplit(".", 1)[-1]


@dataclass(eq=False)
class Op:
    """One layer statement. ``fields``: (name, value, family) in the kind's order; numbers
    are the slots a block may turn into parameters (``family`` says which numbers may stand
    for each other: channels, kernels, strides...), anything else is structure."""

    kind: str
    fields: list[tuple[str, Any, str]]
    scope: tuple[Frame, ...] = ()
    label: str | None = None
    where: str = ""
    in_c: int | None = None  # the channels it reads, where its module says (a conv's in_channels)


@dataclass(eq=False)
class Merge:
    kind: str
    branches: list[list]
    scope: tuple[Frame, ...] = ()


@dataclass(eq=False)
class Aux:
    name: str
    body: list
    scope: tuple[Frame, ...] = ()


@dataclass(eq=False)
class Call:
    frame: Frame
    body: list
    label: str | None = None


@dataclass(eq=False)
class Repeat:
    count: int
    body: list


@dataclass(eq=False)
class Block:
    name: str
    params: list[tuple[str, str, Any]]  # (name, family, default or None)
    body: list  # the first call's items, with ``Bound`` values
    frames: list[Frame] = field(default_factory=list)
    bindings: list = field(default_factory=list)  # per slot: ("lit", v) | ("expr", text)


@dataclass(eq=False)
class Ref:
    block: Block
    args: list[Any]
    label: str | None = None
    in_c: int | None = None  # the channels of this call's input, where known (see in_channels)


@dataclass(eq=False)
class Cond:
    """`if COND { body }`: a merge branch only some calls of a block have (ResNet's
    projection shortcut); where COND is false the branch is an identity."""

    text: str
    body: list


#: (kind, field) -> the name a parameter made from that field takes
HINTS = {("conv", "out"): "c", ("fc", "out"): "n", ("maxpool", "kh"): "pool_kh", ("maxpool", "kw"): "pool_kw",
         ("avgpool", "kh"): "pool_kh", ("avgpool", "kw"): "pool_kw", ("maxpool", "sh"): "pool_sh",
         ("maxpool", "sw"): "pool_sw", ("avgpool", "sh"): "pool_sh", ("avgpool", "sw"): "pool_sw"}
#: a parameter standing for both sizes of a pair takes the pair's name
PAIRS = {"kh": ("kw", "k"), "sh": ("sw", "stride"), "ph": ("pw", "pad"), "dh": ("dw", "dilation"),
         "pool_kh": ("pool_kw", "pool"), "pool_sh": ("pool_sw", "pool_stride"), "pool_ph": ("pool_pw", "pool_pad")}


def _is_slot(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ---------------------------------------------------------------- templates: structure and numbers


def _norm_label(label: str | None) -> str | None:
    if label is None:
        return None
    m = _NUMBERED.match(label)
    return f"{m.group(1)}#" if m else label


def template(it, numbered: bool = False) -> tuple[Any, list[tuple[Any, str, str]]]:
    """(structure, slots) of an item: equal structures differ only in their slots, the
    numbers (value, family, name hint). `numbered` compares numbered labels by their stem."""
    lab = (lambda x: _norm_label(x)) if numbered else (lambda x: x)
    if isinstance(it, Op):
        skel = ("op", it.kind, lab(it.label), tuple((n, v) for n, v, _ in it.fields if not _is_slot(v)))
        return skel, [(v, fam, HINTS.get((it.kind, n), n)) for n, v, fam in it.fields if _is_slot(v)]
    if isinstance(it, Ref):
        return ("ref", it.block.name, lab(it.label)), [(v, fam, n) for v, (n, fam, _) in zip(it.args, it.block.params)]
    if isinstance(it, Repeat):
        skel, slots = _seq_template(it.body, numbered)
        return ("repeat", skel), [(it.count, "n", "n")] + slots
    if isinstance(it, Merge):
        parts = [_seq_template(b, numbered) for b in it.branches]
        return ("merge", it.kind, tuple(p[0] for p in parts)), [s for p in parts for s in p[1]]
    if isinstance(it, Aux):
        skel, slots = _seq_template(it.body, numbered)
        return ("aux", it.name, skel), slots
    if isinstance(it, Cond):
        skel, slots = _seq_template(it.body, numbered)
        return ("if", it.text, skel), slots
    raise TypeError(type(it).__name__)


def _seq_template(items: list, numbered: bool = False):
    parts = [template(i, numbered) for i in items]
    return tuple(p[0] for p in parts), [s for p in parts for s in p[1]]
