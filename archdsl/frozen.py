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
from operator import attrgetter

__all__ = ["frozen"]


def frozen(cls=None, /, **options):
    """``@frozen`` or ``@frozen(slots=True, kw_only=True)``: a frozen dataclass compared,
    hashed and shown by all its fields, in order. `options` are dataclass's (not eq, repr,
    frozen, which this sets)."""

    def wrap(c):
        c = dataclass(c, frozen=True, eq=False, repr=False, **options)
        c._fields = names = tuple(c.__dataclass_fields__)
        c._values = _getter(names)
        c.__eq__, c.__hash__, c.__repr__ = _eq, _hash, _repr
        return c

    return wrap if cls is None else wrap(cls)


def _getter(names: tuple[str, ...]):
    """A class attribute, called as ``node._values(node)``: the tuple of the fields' values."""
    if len(names) > 1:
        return attrgetter(*names)  # not a function: not bound as a method
    if names:
        one = attrgetter(names[0])
        return staticmethod(lambda node: (one(node),))
    return staticmethod(lambda node: ())


def _eq(self, other):
    if other.__class__ is self.__class__:
        return self._values(self) == other._values(other)
    return NotImplemented


def _hash(self) -> int:
    return hash(self._values(self))


def _repr(self) -> str:
    return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self._fields)})"
