"""Shared fixtures: the spec zoo as parametrized cases, and golden-file comparison.

Golden files live in tests/golden/. When a golden differs (or is missing), the test fails
and prints the command that accepts the new output:

    ARCHDSL_ACCEPT=1 python -m pytest tests -k <test name>
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_configure(config):
    config.addinivalue_line("markers", "torch: builds torch modules (tests/test_hostile.py: quick, in the default run)")
    # Under pytest-xdist (`-n 2` in CI) each worker is a process of its own: one intra-op
    # thread per worker. With torch's default of one thread per core, the workers'
    # OpenMP threads oversubscribe the cores and spin-wait on each other, which made the
    # CPU forward passes of the larger specs 5-10x slower.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _plain_diagnostics(monkeypatch):
    """Outputs are compared as plain text: a FORCE_COLOR in the caller's environment must not
    colour the diagnostics (the colour tests set it where they want it)."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)


def spec_networks() -> list[tuple[Path, str]]:
    """Every (file, network) in specs/, in a stable order: each is a test case."""
    import archdsl

    cases = []
    for path in sorted(SPECS.rglob("*.arch")):
        unit = archdsl.load(path)
        for net in unit.unit.program.networks:
            cases.append((path, net.name))
    return cases


def spec_ids(cases) -> list[str]:
    return [f"{p.relative_to(SPECS)}:{n}" for p, n in cases]


@pytest.fixture
def golden(request):
    """golden(name, text): compare `text` with tests/golden/<name>, or accept it."""

    def check(name: str, text: str) -> None:
        path = GOLDEN / name
        accept = os.environ.get("ARCHDSL_ACCEPT") == "1"
        if accept:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.exists():
            pytest.fail(f"golden file {path.relative_to(ROOT)} is missing; to accept the current output run:\n"
                        f"  ARCHDSL_ACCEPT=1 python -m pytest {request.node.nodeid!r}")
        expected = path.read_text()
        if expected != text:
            import difflib

            diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                                f"golden/{name}", "actual"))
            pytest.fail(f"output differs from golden file {path.relative_to(ROOT)}:\n{diff}\n"
                        f"to accept the new output run:\n  ARCHDSL_ACCEPT=1 python -m pytest {request.node.nodeid!r}")

    return check


def torchvision_model(name: str):
    """torchvision's `name` (no pretrained weights), with its biases and batch-norm scales and
    statistics randomised: torchvision initialises them to 0 and 1, which would let a bias or
    running statistic left behind by a weight transfer go unnoticed."""
    import torch
    from torchvision import models

    torch.manual_seed(0)
    model = getattr(models, name)(weights=None)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if getattr(m, "bias", None) is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


def family_cases(families) -> list:
    """(file, name) cases of spec families, each family's smallest member first: that one runs
    in every test run, the others carry the `slow` mark."""
    return [pytest.param(file, name, marks=[pytest.mark.slow] if i else [], id=name)
            for file, names in families for i, name in enumerate(names)]


@pytest.fixture(scope="module")
def one_torch_thread():
    """CI runs two pytest-xdist workers on two cores: with torch's default of one intra-op
    thread per core each, the workers' threads contend and spin, which made the equivalence
    passes several times slower than on a single thread. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def assert_same_outputs(net, theirs, probe: int = 32) -> float:
    """The built archdsl module of `net`, given `theirs`'s weights with archdsl.load_weights,
    computes exactly `theirs`'s function in eval mode; the returned max abs difference is
    within 1e-4 of the output's scale. Also checked: equal parameter counts, the reference left
    as it was (eval mode, every tensor unchanged), and torch's FlopCounterMode on the same
    forward pass counting exactly twice the analytic MACs. `probe`: the side of the input of
    load_weights' pairing pass (a small training-mode pass, batch 2, so that batch norm stays
    defined on the last, smallest grid)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    import archdsl

    # built without initialisation (meta, then uninitialised memory): a tensor that
    # load_weights failed to copy holds garbage and shows up in the outputs
    ours = archdsl.build(net, init=False).to_empty(device="cpu")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == net.params
    before = {k: v.clone() for k, v in theirs.state_dict().items()}
    archdsl.load_weights(ours, theirs, example=torch.randn(2, net.input_shape.dims[0], probe, probe))
    assert not any(m.training for m in theirs.modules())
    after = theirs.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    del before, after
    ours.eval()
    torch.manual_seed(2)
    x = torch.randn(1, *net.input_shape.dims)
    counter = FlopCounterMode(display=False)
    with torch.no_grad():
        with counter:
            expected = theirs(x)
        got = ours(x)
    assert counter.get_total_flops() == 2 * net.macs
    assert got.shape == expected.shape == (1, *net.output_shape.dims)
    peak = expected.abs().max().item()
    assert peak > 1e-2  # not degenerate, so that the tolerance below means something
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4 * max(1.0, peak), f"max abs diff {diff:g} at peak {peak:g}"
    return diff
