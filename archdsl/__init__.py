"""archdsl: a language and compiler for convolutional network architectures.

The pipeline's stages are modules, each importing only those before it: ``syntax`` (the
typed program), ``parse`` (Lark), ``sources`` (files and includes), ``evaluate``
(expressions), ``expand`` (the interpreter) with ``infer`` (shapes and counts through the
layer registry, ``layers/``), ``network`` (the compiled result and its walker), then the
back ends ``check``, ``report``, ``diagram``, ``diff`` and ``lower_torch`` (which, with
``init_torch``, ``optim`` and ``train``, are the only ones that import torch). This package is the public API over them:

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

from .diagnostics import ArchError, Diagnostic
from .spec import Spec
from .network import CompiledNetwork
from .parser import parse
from .sources import Loader, check_duplicates


if TYPE_CHECKING:
    import torch

    from .zoo import ZooNetwork

__version__ = "0.1.0"
__all__ = ["ArchError", "CompiledNetwork", "Diagnostic", "Spec", "build", "compile", "compile_all",
           "convert_state_dict", "import_module", "list_networks", "load", "load_weights", "parse", "recipe", "render",
           "__version__"]


def _looks_like_path(source: Any) -> bool:
    if isinstance(source, os.PathLike):
        return True
    return isinstance(source, str) and "\n" not in source and "{" not in source and source.strip() != ""


def load(source: "str | os.PathLike[str]", network: str | None = None) -> Spec:
    """Parse a spec (text, or the path of a `.arch` file) and its includes.

    The :class:`~archdsl.spec.Spec` returned compiles any of its networks
    (:meth:`Spec.compile <archdsl.spec.Spec.compile>`) without reading or parsing again:
    the way to compile one spec many times (input sizes, parameter sweeps). With
    `network`, only that network's statements are built, the file's other networks
    checked but not built (what :func:`compile` does): the spec then compiles that network
    at once, and reads the file again, whole, if asked for another.

    >>> spec = load("network n(w=8) { input 3x32x32; conv 3x3 -> w }")
    >>> [spec.compile(w=w).params for w in (8, 16)]
    [224, 448]
    """
    spec = _load(source, network)
    check_duplicates(spec._unit)  # a network defined twice is an error either way
    return spec


def _load(source: "str | os.PathLike[str] | Spec", only: str | None = None) -> Spec:
    if isinstance(source, Spec):  # parsed already (the CLI's standard input)
        return source
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("source must be spec text (str) or a path, not bytes: decode it first (spec files are UTF-8)")
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"source must be spec text (str) or a path (str or os.PathLike), not {type(source).__name__}")
    loader = Loader()
    # loaded for one network, the spec loads itself whole when asked for more
    whole = (lambda: _load(source).unit) if only is not None else None
    if isinstance(source, str) and source.startswith("zoo:"):  # `zoo:resnet.arch`: a file of the packaged zoo
        from . import zoo

        return Spec(loader.load_file(zoo.file_path(source), source, only), whole=whole)
    if _looks_like_path(source):
        path = Path(source)
        if not path.is_file():
            if isinstance(source, str):  # `resnet50`: a network of the zoo (a file of that name wins)
                from . import zoo

                real, shown = zoo.resolve_name(source)
                if only not in (None, source):  # Spec.compile says what is wrong
                    return Spec(loader.load_file(real, shown), default=source)
                return Spec(loader.load_file(real, shown, source), default=source, whole=lambda: _load(source).unit)
            raise ArchError(Diagnostic("E602", f"no such file: {path}"))
        return Spec(loader.load_file(path, only=only), whole=whole)
    return Spec(loader.load_text(str(source), "<string>", Path.cwd(), only=only), whole=whole)


def compile(source: "str | os.PathLike[str]", network: str | None = None,
            input: "str | Sequence[int] | None" = None, **params: Any) -> CompiledNetwork:
    """Compile one network: the validated, fully inferred layer graph.

    `source` is spec text or a path; `network` picks one network of the file (required
    when the file holds several); `input` (``"3x299x299"`` or ``(3, 299, 299)``) overrides
    the spec's `input` line; keyword arguments override network parameters.

    >>> compile("network n { input 1x28x28; conv 5x5 -> 6 }").output_shape.dims
    (6, 24, 24)
    """
    return load(source, network).compile(network, input, **params)


def compile_all(source: "str | os.PathLike[str] | Spec", input: "str | Sequence[int] | None" = None,
                **params: Any) -> list[CompiledNetwork]:
    """Compile every network of a file, in the order written (keyword arguments override
    network parameters of each; every network must have them).

    Every network is built even when another fails: the ArchError then holds the errors of
    all of them, in source order, and its ``partial`` the networks built (a failing one up
    to its first error). `source` may also be a Spec that :func:`load` (or the CLI, from
    standard input) has parsed.
    """
    spec = source if isinstance(source, Spec) else _load(source)
    errors: list = []
    try:
        check_duplicates(spec.unit)
    except ArchError as e:
        errors.extend(e.diagnostics)
    built: list[CompiledNetwork] = []
    try:
        built = spec.compile_all(input, **params)
    except ArchError as e:
        errors.extend(e.diagnostics)
        built = getattr(e, "partial", [])
        if not errors:
            raise
    if errors:
        main = spec.file  # report in source order, the file's own errors first
        ordered = sorted(errors, key=lambda d: (d.span is None, d.span is not None and d.span.file != main,
                                                *((d.span.line, d.span.column) if d.span else (0, 0))))
        err = ArchError(ordered, spec.unit.sources)
        err.partial = built
        raise err
    return built


def build(source: "str | os.PathLike[str] | CompiledNetwork", network: str | None = None,
          input: "str | Sequence[int] | None" = None, device: str = "cpu", **kw: Any) -> "torch.nn.Module":
    """Lower a network to a ``torch.nn.Module`` on `device`.

    Submodule names follow the spec's names, so ``state_dict`` keys are stable; the
    parameter count equals :attr:`CompiledNetwork.params`. The weights start as the spec's
    `init` lines say (torch's defaults elsewhere); ``seed=N`` makes them a function of N alone,
    without touching torch's global generator. Keyword arguments are passed to
    :func:`archdsl.lower_torch.lower` (``seed``, ``max_params``, ``max_buffers``,
    ``max_activation``, ``dtype``, ``init=False`` for meta tensors); any other is a network
    parameter, as :func:`compile` takes them (``build("nin", classes=100)``; a name the network
    does not declare is E603, with the closest names).
    """
    from .lower_torch import lower

    options = {k: kw.pop(k) for k in _LOWER_OPTIONS & kw.keys()}
    if isinstance(source, CompiledNetwork):
        if kw:
            raise TypeError(f"build() got network parameters ({', '.join(kw)}) for a network compiled already: "
                            "give them to compile(), or build from the spec")
        net = source
    else:
        net = compile(source, network, input, **kw)
    return lower(net, device=device, **options)


#: build()'s keyword arguments that go to the lowering; the others are network parameters
_LOWER_OPTIONS = frozenset({"seed", "max_params", "max_buffers", "max_activation", "dtype", "init"})


def recipe(net: CompiledNetwork, model: "torch.nn.Module", steps_per_epoch: int = 1, **kw: Any):
    """The spec's training recipe (`train { }`) for `model` as torch objects: an
    :class:`archdsl.optim.Training` with ``optimizer``, ``scheduler`` (step it as its
    ``interval`` says), ``loss`` (aux heads weighted) and the ``recipe`` itself. Schedules
    in epochs are converted with `steps_per_epoch` (1: step the scheduler once per epoch)."""
    from .optim import recipe as _recipe

    return _recipe(net, model, steps_per_epoch, **kw)


def load_weights(module: "torch.nn.Module", reference: Any, **kw: Any) -> "torch.nn.Module":
    """Copy a reference's parameters and buffers onto an archdsl module of the same
    architecture: a model (torchvision's, timm's), a state_dict in its key layout or a
    checkpoint path (see :func:`archdsl.weights.load_weights`)."""
    from .lower_torch import load_weights as _load

    return _load(module, reference, **kw)


def convert_state_dict(module: Any, reference: Any, **kw: Any) -> "dict[str, torch.Tensor]":
    """An archdsl module's weights (or its state_dict) as a state_dict in a reference's key
    layout, which the reference's model loads (see :func:`archdsl.weights.convert_state_dict`)."""
    from .weights import convert_state_dict as _convert

    return _convert(module, reference, **kw)


def list_networks(pattern: "str | Sequence[str] | None" = None, exclude: "str | Sequence[str] | None" = None
                  ) -> "list[ZooNetwork]":
    """The networks of the packaged zoo whose names match `pattern` (fnmatch-style, as timm's
    ``list_models``: ``"resnet*"``; a list matches any of its patterns; all without one) and
    none of `exclude`, in natural order, each with its file, parameters, MACs and shapes.

    >>> [(n.name, n.params, n.file) for n in list_networks("resnet1?")]
    [('resnet18', 11689512, 'zoo:resnet.arch')]
    """
    from .zoo import list_networks as _list

    return _list(pattern, exclude)


def render(source: "str | os.PathLike[str] | CompiledNetwork", network: str | None = None, output: str | None = None,
           **kw: Any) -> str:
    """Draw a network with Graphviz; returns the DOT text (and writes `output` if given)."""
    from .diagram import render as _render

    net = source if isinstance(source, CompiledNetwork) else compile(source, network, kw.pop("input", None))
    return _render(net, output, **kw)


def import_module(module: "torch.nn.Module", input: "str | Sequence[int]" = "3x224x224", name: str | None = None,
                  **kw: Any) -> str:
    """The spec text of a PyTorch module, traced with torch.fx at `input`: its layers as
    statements, its submodules as blocks with parameters, repeats and labels rebuilt, and
    ``expect`` lines for its params, MACs and output (see :mod:`archdsl.trace_torch`).
    Raises :class:`archdsl.trace_torch.ImportFailure` for an op without a kind."""
    from .trace_torch import import_module as _import

    return _import(module, input, name=name, **kw)
