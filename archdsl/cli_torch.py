"""The commands that build a network in PyTorch (`archdsl build` and `archdsl train`): torch
imported on demand, with a usage error saying how to install it when it is missing, the
device checked against what the machine has, and a network built and run on a deep enough
stack. Kept apart from :mod:`archdsl.cli` so that the commands that never touch torch stay
short to read."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

#: the exit code of a usage mistake (as archdsl.cli's)
EXIT_USAGE = 2


def build_and_run(file: "Path | str", network: str | None, input_: str | None, device: str, batch: int,
                  max_params: int | None, out, max_buffers: int | None = None,
                  max_activation: int | None = None, params: dict | None = None,
                  weights: Path | None = None) -> None:
    from . import compile
    from .sources import select_networks

    if network is None:
        from . import load

        nets = select_networks(load(file).unit, None)
        if len(nets) > 1:
            raise click.UsageError(f"{file} holds {len(nets)} networks; pick one with -n: "
                                   + ", ".join(n.name for n in nets))
    net = compile(file, network, input_, **(params or {}))
    torch = import_torch()

    from . import lower_torch as L

    check_device(torch, device)
    limits = (L.DEFAULT_MAX_PARAMS if max_params is None else max_params,
              L.DEFAULT_MAX_BUFFERS if max_buffers is None else max_buffers,
              L.DEFAULT_MAX_ACTIVATION if max_activation is None else max_activation)
    L.check_limits(net, *limits, batch=batch)  # the forward passes' batch too, before anything is built
    try:
        state = None if weights is None else L.read_checkpoint(weights)
    except L.CheckpointError as e:
        raise click.UsageError(f"--weights: {e}") from None
    # lowering, running and counting recurse once per level of nesting: all of it on a deep
    # enough stack (a plain call for any network but a deeply nested one)
    model, y, n, t0, t1, t2, t3 = L.on_deep_stack(L.nesting_depth(net), _build_and_time, torch, L, net, device,
                                                  batch, limits, state, weights)
    if state is not None:
        out(f"weights: {len(state):,} tensors from {weights}")
    out(f"{net.name}: output {tuple(y.shape)} on {device}")
    out(f"parameters: {n:,} (analytic {net.params:,}: {'equal' if n == net.params else 'DIFFERENT'})")
    out(f"build {'and load ' if state is not None else ''}{1e3 * (t1 - t0):.1f} ms, "
        f"first forward {1e3 * (t2 - t1):.1f} ms, second forward {1e3 * (t3 - t2):.1f} ms (batch {batch})")
    if n != net.params or tuple(y.shape[1:]) != net.output_shape.dims:
        raise RuntimeError("the built module disagrees with the analytic report")


def _build_and_time(torch, L, net, device: str, batch: int, limits: tuple[int, int, int], state=None,
                    weights: Path | None = None):
    t0 = time.perf_counter()
    model = L.lower(net, device=device, max_params=limits[0], max_buffers=limits[1],
                    max_activation=limits[2]).eval()
    try:
        if state is not None:
            L.load_weights(model, state)
    except L.WeightMismatch as e:
        raise click.ClickException(f"the weights in {weights} do not fit {net.name}: {e}") from None
    t1 = time.perf_counter()
    try:
        x = torch.randn(batch, *net.input_shape.dims, device=device)
        with torch.inference_mode():
            y = model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            y = model(x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t3 = time.perf_counter()
    except (MemoryError, RuntimeError) as e:
        if not L.is_allocation_failure(e):
            raise
        raise L.allocation_failed(net, e, "a forward pass of") from None
    return model, y, L.count_parameters(model), t0, t1, t2, t3


def import_torch():
    """torch, or a usage error saying how to install it (it is an optional dependency)."""
    try:
        import torch
    except ImportError as e:
        click.echo(f"archdsl build needs PyTorch, which cannot be imported here ({e}).\n"
                  'Install it with: pip install "archdsl[torch]"', err=True)
        sys.exit(EXIT_USAGE)
    return torch


def check_device(torch, device: str) -> None:
    """--device must name a device this machine has: cpu, cuda[:N] with a GPU, mps on a Mac."""
    available = ["cpu"]
    if torch.cuda.is_available():
        available += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available += ["mps", "mps:0"]
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        parsed = None
    if parsed is not None and (str(parsed) in available or (parsed.type == "cpu" and parsed.index in (None, 0))):
        return
    if parsed is None:
        why = "not a device name"
    elif parsed.type == "cuda" and not torch.cuda.is_available():
        why = "no CUDA device is available (torch.cuda.is_available() is False)"
    else:
        why = "no such device on this machine"
    raise click.UsageError(f"--device {device}: {why}; devices: {', '.join(available)}")
