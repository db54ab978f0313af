"""The registry of layer kinds. Importing this package registers every kind."""

from . import act, conv, lenet, linear, merge, misc, norm, pool, shortcut  # noqa: F401  (registration side effect)
from .base import REGISTRY, RF, Args, Kind, MergeKind, Params, Shape, ShapeError, chw, flat, kinds, lookup, register

__all__ = ["REGISTRY", "RF", "Args", "Kind", "MergeKind", "Params", "Shape", "ShapeError", "chw", "flat", "kinds",
           "lookup", "register"]
