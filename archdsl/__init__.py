"""archdsl: a language and compiler for convolutional network architectures.

The pipeline is ``parse -> graph (+ infer) -> report | lower_torch | render``; each stage
is its own module, and this package exposes it as a few functions:

>>> net = compile("network tiny { input 3x32x32; act relu; conv 3x3 p1 -> 16; gap; fc 10 noact }")
>>> net.params, net.macs, str(net.output_shape)
(618, 442528, '10')
>>> print(next(l for l in net.report().to_table().splitlines() if l.startswith("MACs")))
MACs: 442,528   FLOPs: 885,056  (FLOPs = 2 x MACs; conv and fc weights only)

:func:`build` lowers the same text to a ``torch.nn.Module`` (and is the only entry point
that imports torch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .diagnostics import ArchError, Collector, Diagnostic
from .graph import CompiledNetwork, Loader, Unit, build_graph, check_duplicates, select_networks
from .graph import parse_input as _parse_input
from .cache import parse, read_source
# Loaded here, before `def render` below, so that the function keeps the name `archdsl.render`:
# the first import of a submodule binds its name in the package.
from . import render as _render_module  # noqa: F401

if TYPE_CHECKING:
    import torch

__version__ = "0.1.0"
__all__ = ["ArchError", "CompiledNetwork", "Diagnostic", "build", "compile", "compile_all", "load", "load_weights",
           "parse", "render", "__version__"]

Source = "str | os.PathLike[str]"


def _check_source(source: Any) -> None:
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("source must be spec text (str) or a path, not bytes: decode it first "
                        "(spec files are UTF-8)")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be spec text (str) or a path (str or os.PathLike), not {type(source).__name__}")


def _check_network(network: Any) -> None:
    if network is not None and not isinstance(network, str):
        raise TypeError(f"network must be the name of a network (str) or None, not {type(network).__name__}")


def _bad_input(shown: str, expected: str = "CxHxW with every size between 1 and 1,000,000") -> ArchError:
    return ArchError(Diagnostic("E601", f"bad input shape '{shown}'", expected=expected, found=shown))


def _checked_input(input: Any) -> "str | tuple[int, ...] | None":
    """`input=` as graph.parse_input takes it, or E601 for what it would misread: sizes that
    are not ASCII digits (``'3x²x8'``), booleans, non-integral or non-numeric sizes
    (``(3, 8.5, 8)``, ``(True, 8, 8)``); TypeError for something that is not a shape at all."""
    import numbers
    import re

    if input is None:
        return None
    if isinstance(input, str):
        text = input.lower().replace(" ", "")
        if not re.fullmatch(r"[0-9]+(x[0-9]+)*", text):
            raise _bad_input(input[:100], "CxHxW, e.g. 3x224x224")
        if any(len(part.lstrip("0")) > 7 for part in text.split("x")):  # beyond 1,000,000 (and int()'s digit limit)
            raise _bad_input(input[:100])
        return input
    try:
        sizes = None if isinstance(input, (bytes, bytearray, dict)) else list(input)
    except TypeError:
        sizes = None
    if sizes is None:
        raise TypeError(f"input must be a shape ('3x224x224' or (3, 224, 224)), not {type(input).__name__} "
                        f"{input!r:.40}")
    if len(sizes) not in (1, 3):
        raise _bad_input("x".join(repr(x)[:20] for x in sizes)[:100])
    input = sizes
    dims = []
    for d in input:
        if isinstance(d, bool) or not isinstance(d, numbers.Real) or (
                not isinstance(d, numbers.Integral) and not float(d).is_integer()):
            raise _bad_input("x".join(repr(x)[:20] for x in input)[:100], "whole sizes (ints) between 1 and 1,000,000")
        dims.append(int(d))
    if any(not 1 <= d <= 1_000_000 for d in dims):
        raise _bad_input("x".join(str(d) if abs(d) < 10**18 else "(huge)" for d in dims)[:100])
    return tuple(dims)


def _checked_overrides(params: dict[str, Any]) -> dict[str, Any]:
    """Keyword overrides of network parameters: numbers and truth values within the limit
    every computed value has (graph.MAX_VALUE; E304 beyond it, as in a spec)."""
    import math
    import numbers

    from .graph import MAX_VALUE

    out: dict[str, Any] = {}
    for name, v in params.items():
        if isinstance(v, bool):
            out[name] = v
            continue
        if not isinstance(v, numbers.Real):
            raise TypeError(f"network parameter {name}= must be a number or a truth value (int, float or bool), "
                            f"not {type(v).__name__}")
        v = int(v) if isinstance(v, numbers.Integral) else float(v)
        if isinstance(v, float) and math.isnan(v):
            raise ArchError(Diagnostic("E304", f"the value of {name}= is not a number", expected="a number",
                                       found="nan"))
        if abs(v) > MAX_VALUE:
            shown = f"{v:g}" if isinstance(v, float) else (
                f"{v:,}" if abs(v) < 10**30 else f"about 10^{int(abs(v).bit_length() * 0.30103)}")
            raise ArchError(Diagnostic("E304", f"the value of {name}= is absurdly large",
                                       expected=f"at most {MAX_VALUE:,}", found=shown))
        out[name] = v
    return out


def _looks_like_path(source: Any) -> bool:
    if isinstance(source, os.PathLike):
        return True
    return isinstance(source, str) and "\n" not in source and "{" not in source and source.strip() != ""


def load(source: "str | os.PathLike[str]") -> Unit:
    """Parse a spec (text, or the path of a `.arch` file) and its includes.

    The :class:`~archdsl.graph.Unit` returned compiles any of its networks
    (:meth:`Unit.compile <archdsl.graph.Unit.compile>`) without reading or parsing again:
    the way to compile one spec many times (input sizes, parameter sweeps).

    >>> unit = load("network n(w=8) { input 3x32x32; conv 3x3 -> w }")
    >>> [unit.compile(w=w).params for w in (8, 16)]
    [224, 448]
    """
    unit = _load(source)
    check_duplicates(unit)
    return unit


def _load(source: "str | os.PathLike[str]") -> Unit:
    _check_source(source)
    loader = Loader()
    if _looks_like_path(source):
        path = Path(source)
        if not path.is_file():
            raise ArchError(Diagnostic("E602", f"no such file: {path}"))
        # Loader.load_file, less a UTF-8 byte order mark (as some Windows editors write)
        unit = loader.load_text(read_source(path).removeprefix(_BOM), str(path), path.parent)
    else:
        unit = loader.load_text(str(source).removeprefix(_BOM), "<string>", Path.cwd())
    return unit


_BOM = "\ufeff"


def compile(source: "str | os.PathLike[str]", network: str | None = None,
            input: "str | Sequence[int] | None" = None, **params: Any) -> CompiledNetwork:
    """Compile one network: the validated, fully inferred layer graph.

    `source` is spec text or a path; `network` picks one network of the file (required
    when the file holds several); `input` (``"3x299x299"`` or ``(3, 299, 299)``) overrides
    the spec's `input` line; keyword arguments override network parameters.

    >>> compile("network n { input 1x28x28; conv 5x5 -> 6 }").output_shape.dims
    (6, 24, 24)
    """
    _check_network(network)
    return load(source).compile(network, _checked_input(input), **_checked_overrides(params))


def compile_all(source: "str | os.PathLike[str]", input: "str | Sequence[int] | None" = None
                ) -> list[CompiledNetwork]:
    """Compile every network of a file, in the order written.

    Every network is built even when another fails: the ArchError then holds the errors of
    all of them, and its ``partial`` the networks built (a failing one up to its first error).
    """
    unit = _load(source)
    dims = _parse_input(_checked_input(input))
    errors = Collector()
    try:
        check_duplicates(unit)
    except ArchError as e:
        errors.add(e)
    built: list[CompiledNetwork] = []
    for n in select_networks(unit, None):
        try:
            built.append(build_graph(unit, n, dims))
        except ArchError as e:
            errors.add(e)
            built.extend(e.partial)
    if errors.diagnostics:
        main = unit.program.file  # report in source order, the file's own errors first
        ordered = sorted(errors.diagnostics, key=lambda d: (d.span is None, d.span is not None and d.span.file != main,
                                                            *((d.span.line, d.span.column) if d.span else (0, 0))))
        err = ArchError(ordered, unit.sources)
        err.partial = built
        raise err
    return built


def build(source: "str | os.PathLike[str] | CompiledNetwork", network: str | None = None,
          input: "str | Sequence[int] | None" = None, device: str = "cpu", **kw: Any) -> "torch.nn.Module":
    """Lower a network to a ``torch.nn.Module`` on `device`.

    Submodule names follow the spec's names, so ``state_dict`` keys are stable; the
    parameter count equals :attr:`CompiledNetwork.params`. Keyword arguments are passed to
    :func:`archdsl.lower_torch.lower` (e.g. ``max_params``, ``max_buffers``, ``max_activation``,
    ``init=False`` for meta tensors).
    """
    from .lower_torch import lower

    net = source if isinstance(source, CompiledNetwork) else compile(source, network, input)
    return lower(net, device=device, **kw)


def load_weights(module: "torch.nn.Module", reference: "torch.nn.Module", **kw: Any) -> "torch.nn.Module":
    """Copy a reference model's parameters and buffers onto an archdsl module of the same
    architecture (see :func:`archdsl.lower_torch.load_weights`)."""
    from .lower_torch import load_weights as _load

    return _load(module, reference, **kw)


def render(source: "str | os.PathLike[str] | CompiledNetwork", network: str | None = None, output: str | None = None,
           **kw: Any) -> str:
    """Draw a network with Graphviz; returns the DOT text (and writes `output` if given)."""
    from .render import render as _render

    net = source if isinstance(source, CompiledNetwork) else compile(source, network, kw.pop("input", None))
    return _render(net, output, **kw)
