"""The tools people use today to size a PyTorch model, each called the way its README shows.

Every adapter takes a built model (eval mode) and a (C, H, W) input, runs the tool once
and returns its (MACs, params). Each tool is optional: a tool that is not installed (or
cannot be imported) is skipped, with the reason kept for the report.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Count:
    macs: int
    params: int


def _quiet():
    """Silence a tool's prints, warnings and log lines (they would flood the benchmark)."""
    stack = contextlib.ExitStack()
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    stack.enter_context(contextlib.redirect_stderr(io.StringIO()))
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    return stack


def _fvcore(model, shape) -> Count:
    import torch
    from fvcore.nn import FlopCountAnalysis, parameter_count

    x = torch.randn(1, *shape)
    with _quiet():
        fca = FlopCountAnalysis(model, x)
        fca.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        macs = fca.total()  # fvcore's "flops" are multiply-accumulates (one per fused multiply-add)
    return Count(int(macs), int(parameter_count(model)[""]))


def _ptflops(model, shape) -> Count:
    from ptflops import get_model_complexity_info

    with _quiet():
        macs, params = get_model_complexity_info(model, tuple(shape), as_strings=False, print_per_layer_stat=False,
                                                 verbose=False)
    return Count(int(macs), int(params))


def _thop(model, shape) -> Count:
    import torch
    from thop import profile

    x = torch.randn(1, *shape)
    with _quiet():
        macs, params = profile(model, inputs=(x,), verbose=False)
    return Count(int(macs), int(params))


def _torchinfo(model, shape) -> Count:
    from torchinfo import summary

    with _quiet():
        stats = summary(model, input_size=(1, *shape), verbose=0, device="cpu")
    return Count(int(stats.total_mult_adds), int(stats.total_params))


def _calflops(model, shape) -> Count:
    from calflops import calculate_flops

    with _quiet():
        _flops, macs, params = calculate_flops(model, input_shape=(1, *shape), output_as_string=False,
                                               print_results=False, print_detailed=False)
    return Count(int(macs), int(params))


@dataclass(frozen=True)
class Peer:
    name: str
    module: str  # what to import to use it
    run: Callable[[Any, tuple[int, ...]], Count]
    #: how the tool finds and counts operations, from its documentation and source
    method: str

    def status(self) -> tuple[bool, str]:
        """(usable, version or the reason it is not)."""
        logging.getLogger(self.module).setLevel(logging.ERROR)
        try:
            with _quiet():
                mod = importlib.import_module(self.module)
        except Exception as err:  # noqa: BLE001 - any import failure means "not usable here"
            return False, f"cannot be imported: {type(err).__name__}: {err}"
        try:
            from importlib.metadata import version

            return True, version(self.module)
        except Exception:  # noqa: BLE001
            return True, getattr(mod, "__version__", "?")


PEERS: tuple[Peer, ...] = (
    Peer("fvcore", "fvcore", _fvcore, "traces the model with torch.jit and counts aten ops by handler"),
    Peer("ptflops", "ptflops", _ptflops, "forward hooks on modules, plus patched torch.nn.functional calls"),
    Peer("thop", "thop", _thop, "forward hooks on modules with a known rule"),
    Peer("torchinfo", "torchinfo", _torchinfo, "forward hooks on every module; mult-adds from parameter counts"),
    Peer("calflops", "calflops", _calflops, "patches torch.nn.functional and tensor ops during a forward pass"),
)


def usable() -> tuple[list[Peer], dict[str, str]]:
    """The peers that import here, and a note (version, or why not) for every peer."""
    ok, notes = [], {}
    for p in PEERS:
        good, note = p.status()
        notes[p.name] = note
        if good:
            ok.append(p)
    return ok, notes
