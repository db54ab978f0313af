"""The compile entry points: a loaded spec, and one network of it compiled.

:class:`Spec` is what :func:`archdsl.load` returns: a file and its includes, parsed once,
from which any of its networks compiles with its own input shape and parameters.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from . import syntax as P
from .budget import check_command
from .diagnostics import ArchError, Collector, Diagnostic, Suggestion
from .evaluate import MAX_VALUE, big
from .expand import Builder
from .network import CompiledNetwork
from .sources import Unit, select_networks


def parse_input(input: "str | Sequence[int] | None") -> tuple[int, ...] | None:
    """An input shape given outside the spec (`--input 3x299x299`, ``input=(3, 299, 299)``)."""
    if input is None:
        return None
    if isinstance(input, str):
        parts = input.lower().replace(" ", "").split("x")
        if not all(p.isascii() and p.isdigit() and len(p) <= 7 for p in parts) or len(parts) not in (1, 3):
            raise ArchError(Diagnostic("E601", f"bad input shape '{input}'", expected="CxHxW, e.g. 3x224x224",
                                       found=input))
        dims = tuple(int(p) for p in parts)
    elif isinstance(input, (tuple, list)):
        # not a bool, not 8.5: sizes are whole numbers (8.0 is one)
        if any(isinstance(d, bool) or not isinstance(d, (int, float)) or (isinstance(d, float) and not d.is_integer())
               for d in input):
            shown = "x".join(repr(d)[:20] for d in input)[:100]
            raise ArchError(Diagnostic("E601", f"bad input shape ({shown})",
                                       expected="whole numbers, e.g. (3, 224, 224)", found=shown))
        dims = tuple(int(d) for d in input)
    else:
        raise TypeError(f"input must be a shape ('3x224x224' or (3, 224, 224)), not {type(input).__name__}")
    if len(dims) not in (1, 3) or any(d < 1 for d in dims) or any(d > 1_000_000 for d in dims):
        shown = "x".join(big(d) if d > 0 else str(d) for d in dims)
        raise ArchError(Diagnostic("E601", f"bad input shape '{shown}'",
                                   expected="CxHxW with every size between 1 and 1,000,000", found=shown))
    return dims


def parse_params(items: "Sequence[str]") -> dict[str, Any]:
    """Network parameters from the command line, `NAME=VALUE` each (`-p classes=100`): VALUE is
    an expression of the language (`100`, `0.5`, `true`, `2 * 32`), evaluated as a constant
    (without names, `in.c` or any file's `let`s), never by Python. A mistake is E604."""
    from .evaluate import Env, evaluate
    from .parser import parse

    out: dict[str, Any] = {}
    for item in items:
        name, eq, text = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier() or not name.isascii():
            raise ArchError(Diagnostic("E604", f"bad network parameter '{item[:100]}'", expected="NAME=VALUE, e.g. classes=100",
                                       found=item[:100]))
        if not text.strip() or "\n" in text or "\r" in text or len(text) > 1000:
            raise ArchError(Diagnostic("E604", f"bad value for network parameter {name}=",
                                       expected="a number, a truth value or an expression, e.g. 100 or 2 * 32",
                                       found=text[:100]))
        try:
            program = parse(f"let {name} = {text}\n", f"-p {name}")
            lets = [i for i in program.items if isinstance(i, P.Let)]
            if len(program.items) != 1 or len(lets) != 1:
                raise ArchError(Diagnostic("E604", "one expression expected"))
            value = evaluate(lets[0].value, Env(), None)
        except ArchError as e:
            d = e.first
            raise ArchError(Diagnostic("E604", f"bad value for network parameter {name}=: {d.message}",
                                       expected="a number, a truth value or an expression of them, e.g. 100 or 2 * 32",
                                       found=text.strip()[:100])) from None
        if isinstance(value, str) or not isinstance(value, (int, float)):
            raise ArchError(Diagnostic("E604", f"bad value for network parameter {name}=",
                                       expected="a number or a truth value", found=text.strip()[:100]))
        out[name] = value
    return out


def check_overrides(overrides: dict[str, Any], network: P.Network, sources: dict[str, str]) -> None:
    """Network parameters given from outside: each must name a parameter of the network
    (E603, with a did-you-mean) and be a number within the value bound, as an expression's
    value would be."""
    names = [p.name for p in network.params]
    for key, value in overrides.items():
        if key not in names:
            raise ArchError(Diagnostic("E603", f"network '{network.name}' has no parameter '{key}'",
                                       hint=Suggestion(key, names, f"its parameters: {', '.join(names) or 'none'}")),
                            sources)
        if not isinstance(value, (int, float)):
            raise TypeError(f"network parameter {key}= must be a number or a truth value (int, float or bool), "
                            f"not {type(value).__name__}")
        if not isinstance(value, bool) and not abs(value) <= MAX_VALUE:  # NaN fails this too
            shown = big(abs(value)) if isinstance(value, int) else f"{value:g}"
            raise ArchError(Diagnostic("E304", f"the value of {key}= is absurdly large or not a number",
                                       expected=f"at most {MAX_VALUE:,}", found=shown), sources)


def compile_network(unit: Unit, network: P.Network, input: tuple[int, ...] | None = None,
                    overrides: dict[str, Any] | None = None) -> CompiledNetwork:
    """Expand and infer one network. Raises ArchError (with sources) on any mistake."""
    if overrides:
        check_overrides(overrides, network, unit.sources)
    try:
        with P.gc_paused():
            return Builder(unit, network, input, overrides).build()
    except ArchError as e:
        raise e.with_sources(unit.sources)
    except RecursionError:
        raise ArchError(Diagnostic("E304", "the spec nests too deeply to expand", network.span),
                        unit.sources) from None


class Spec:
    """A loaded spec: a file and its includes, parsed once, from which any of its networks
    compiles (:func:`archdsl.load`).

    A spec loaded for one network (``load(path, network=name)``) has only that network's
    statements built (``unit.program.unbuilt`` names the others, checked but not built);
    `whole` loads the file again in full, which it does the first time anything else is
    asked of it (another network, :attr:`unit`, :attr:`program`)."""

    def __init__(self, unit: Unit, default: str | None = None, whole: "Callable[[], Unit] | None" = None):
        self._unit = unit
        self._whole = whole
        #: the network :meth:`compile` picks when none is named: the zoo network a spec was
        #: loaded by (``archdsl.load("resnet50")``), else None
        self.default = default

    @property
    def unit(self) -> Unit:
        """The file and its includes, every network built."""
        if self._unit.program.unbuilt:
            if self._whole is None:
                raise AssertionError("a spec loaded for one network cannot be loaded whole")
            self._unit, self._whole = self._whole(), None
        return self._unit

    @property
    def networks(self) -> list[str]:
        """The names of the file's networks, in the order written."""
        return self._unit.networks

    @property
    def file(self) -> str:
        return self._unit.program.file

    @property
    def program(self) -> P.Program:
        """The file's typed program, as parsed."""
        return self.unit.program

    def compile(self, network: str | None = None, input: "str | Sequence[int] | None" = None,
                **params: Any) -> CompiledNetwork:
        """Compile one network: `network` picks one (required when the file holds several),
        `input` overrides the spec's input shape, keyword arguments override network parameters."""
        if self.default is not None and network not in (None, self.default):
            raise ArchError(Diagnostic("E203", f"'{self.default}' names a network of the zoo; network='{network}' "
                                               "asks for another", hint=f"load {self.file} to pick any of its networks"),
                            self._unit.sources)
        name = network or self.default
        # the unit as loaded if it built that network, else the whole file
        unit = self._unit if name is not None and name not in self._unit.program.unbuilt else self.unit
        nets = select_networks(unit, name)
        if len(nets) > 1:
            raise ArchError(Diagnostic("E203", f"{self.file} holds {len(nets)} networks; name one",
                                       hint="networks: " + ", ".join(n.name for n in nets)), unit.sources)
        return compile_network(unit, nets[0], parse_input(input), params or None)

    def compile_all(self, input: "str | Sequence[int] | None" = None, **params: Any) -> list[CompiledNetwork]:
        """Every network, in the order written; every one is built even when another fails:
        the ArchError then holds the errors of all, and its ``partial`` the networks built.
        Keyword arguments override network parameters of every network (each must have them)."""
        dims = parse_input(input)
        errors = Collector()
        built: list[CompiledNetwork] = []
        nets = select_networks(self.unit, None)
        check_command(self.unit, nets)
        for n in nets:
            try:
                built.append(compile_network(self.unit, n, dims, params or None))
            except ArchError as e:
                errors.add(e)
                built.extend(e.partial)
        if errors.diagnostics:
            err = ArchError(errors.diagnostics, self.unit.sources)
            err.partial = built
            raise err
        return built

    def __repr__(self) -> str:
        return f"<Spec {self.file}: {', '.join(self.networks) or 'no networks'}>"

    def __str__(self) -> str:
        """The file's name, as messages show it (`<stdin>` for a spec read from standard input)."""
        return self.file
