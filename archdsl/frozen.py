"""Frozen value classes that are cheap to define: ``@frozen`` is ``@dataclass(frozen=True)``
with equality, hashing and repr shared by every class instead of generated for each.

dataclasses writes each method it adds as source text and compiles it, six for a frozen
class. Measured on this package's import (CPython 3.11), the ~30 syntax nodes took 38 ms to
define and the ~30 other frozen classes (the layer kinds' params, shapes, diagnostics) about
as long: a fifth of a whole ``archdsl compile`` run. Equality, hashing and repr do the same
thing for every class: compare, hash or show its fields in order, as dataclasses' own do
(same class required for ``==``, hash of the field values, ``Name(field=value, ...)``). So
they are written once here, and dataclasses still makes ``__init__`` and the frozen
``__setattr__`` and ``__delattr__``. A class may still be a plain ``@dataclass(frozen=True)``
(a kind defined outside the package): it only costs more to define.
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import getattr_static  # dataclasses imports inspect anyway
from operator import attrgetter

__all__ = ["frozen"]


def frozen(cls=None, /, **options):
    """``@frozen`` or ``@frozen(slots=True, kw_only=True)``: a frozen dataclass compared,
    hashed and shown by all its fields, in order. `options` are dataclass's (not eq, repr,
    frozen, which this sets)."""

    def wrap(c):
        c = dataclass(c, frozen=True, eq=False, repr=False, **options)
        names = tuple(c.__dataclass_fields__)
        c._values = _getter(names)
        c.__eq__ = _eq_dict if _plain_dict(c, names) else _eq
        c.__hash__, c.__repr__ = _hash, _repr
        return c

    return wrap if cls is None else wrap(cls)


def _getter(names: tuple[str, ...]):
    """A class attribute, called as ``node._values(node)``: what the node is compared and
    hashed by. An attrgetter (a C callable, never bound as a method): the tuple of the
    fields' values, the one field's value itself, or for a class without fields its class
    (every instance alike). Measured on preact_resnet1001's compile (3,339 layers, ~10,000
    hashes and comparisons of shapes and params), a Python function here cost 5% of it under
    the profiler."""
    return attrgetter(*names) if names else attrgetter("__class__")


def _plain_dict(c: type, names: tuple[str, ...]) -> bool:
    """Whether an instance's ``__dict__`` holds its fields and nothing else, as it is: the
    class and its bases have no slots and no field is a data descriptor (Diagnostic's hint is one). Then
    it is compared through ``__dict__``: an attrgetter reads each attribute through the
    generic lookup, and comparing two layer params that way took twice as long as
    dataclasses' own ``__eq__`` (the expansion's memo compares thousands of them)."""
    slotted = any("__slots__" in k.__dict__ for k in c.__mro__[:-1])  # a base's slots too
    return not slotted and not any(hasattr(type(getattr_static(c, n, None)), "__set__") for n in names)


def _eq_dict(self, other):
    if other.__class__ is self.__class__:
        return self.__dict__ == other.__dict__
    return NotImplemented


def _eq(self, other):
    if other.__class__ is self.__class__:
        return self._values(self) == other._values(other)
    return NotImplemented


def _hash(self) -> int:
    return hash(self._values(self))


def _repr(self) -> str:
    shown = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__dataclass_fields__)
    return f"{type(self).__qualname__}({shown})"
