"""The benchmark harness (bench/), run small, and the speed-ups it measures kept honest.

Asserts figures, never timings: archdsl's params and MACs equal the published ones for
every benchmarked model; each peer tool (when installed: the CI test extra has none of
them) differs from them exactly as its documented convention says; the harness runs end
to end and writes its report. The speed-ups themselves (the parse cache, the memoised
binding and inference) must not change any result: checked here too.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import archdsl
from archdsl import cache

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import agreement  # noqa: E402
from bench.models import BY_NAME, MODELS  # noqa: E402
from bench.peers import usable  # noqa: E402

AVAILABLE = [m for m in MODELS if m.available()]


# ---------------------------------------------------------------- agreement


@pytest.mark.parametrize("model", AVAILABLE, ids=lambda m: m.name)
def test_archdsl_equals_the_published_figures(model):
    params, macs = model.archdsl_figures()
    assert (params, macs) == (model.params, model.macs)


def test_every_benchmarked_model_has_a_spec():
    missing = [m.name for m in MODELS if not m.available()]
    assert not missing, f"specs not found for {missing}"


def _squeezenet():
    m = BY_NAME["squeezenet1_0"]
    if not m.available():
        pytest.skip("specs/squeezenet.arch is not there")
    pytest.importorskip("torchvision")
    return m


def test_analytic_terms_equal_what_torch_runs():
    """The terms that explain the peers' figures, computed from archdsl's graph, against the
    same sums taken from the torchvision model's forward pass."""
    import torch
    from torch import nn

    m = _squeezenet()
    terms = agreement.analytic_terms(m.compile(), without_aux=False)
    ref = m.reference(init=False)
    seen = {"bias": 0, "act": 0, "pool_in": 0}

    def hook(mod, inputs, out):
        if isinstance(mod, (nn.Conv2d, nn.Linear)) and mod.bias is not None:
            seen["bias"] += out.numel()
        if isinstance(mod, nn.ReLU):
            seen["act"] += out.numel()
        if isinstance(mod, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)):
            seen["pool_in"] += inputs[0].numel()

    handles = [mod.register_forward_hook(hook) for mod in ref.modules()]
    with torch.no_grad():
        ref(torch.randn(1, *m.input))
    for h in handles:
        h.remove()
    assert seen["bias"] > 0
    assert {k: terms[k] for k in seen} == seen
    module = agreement.module_terms(ref, m.input)
    assert module["act_module"] == terms["act"] and module["pool_module_in"] == terms["pool_in"]


def test_each_installed_peer_differs_exactly_as_its_convention_says():
    m = _squeezenet()
    peers, notes = usable()
    if not peers:
        pytest.skip("no peer tool installed (" + "; ".join(f"{k}: {v}" for k, v in notes.items()) + ")")
    a = agreement.agree(m, peers)
    assert a.exact
    for r in a.peers:
        assert r.error is None, (r.peer, r.error)
        assert r.explained, (r.peer, r.count, r.predicted)
        assert r.count.params == m.params  # every tool counts squeezenet's params right
        assert "formula holds" in agreement.why(r.peer, a) or agreement.why(r.peer, a) == "equal"


# ---------------------------------------------------------------- the harness end to end


@pytest.mark.slow
def test_quick_run_writes_its_sections(tmp_path):
    """`python -m bench --quick` end to end, on one small model with one timed run each (the
    whole-command section, which starts torch in several subprocesses, is exercised piecewise
    below to keep CI quick)."""
    pytest.importorskip("torchvision")
    out = tmp_path / "BENCHMARKS.md"
    env = dict(os.environ, ARCHDSL_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--repeat", "1", "--out", str(out),
                           "--sections", "analysis", "agreement", "forward", "scale", "memory"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for heading in ("## Summary", "## 1. Analysis speed", "## 3. Agreement", "## 4. Built modules", "## 5. Scale",
                    "## 6. Memory"):
        assert heading in text
    assert "| squeezenet1_0 | 818,924,576 | 818,924,576 ✓" in text
    diff = re.search(r"\| squeezenet1_0 \| (\d\.\de[+-]\d\d) \|", text)  # built modules: max |diff|
    assert diff and float(diff.group(1)) < 1e-4  # same weights, same outputs
    assert "CUDA" in text


def test_whole_command_pieces():
    from bench import command

    runs = command.time_commands({"nin": (command.compile_argv("specs/nin.arch"), None)}, repeat=1, warmup=0)
    assert runs["nin"]["rss"].median > 0 and runs["nin"]["wall"].median > 0
    mods = command.modules_of_compile("specs/nin.arch")
    assert "archdsl.graph" in mods and not any(m == "torch" or m.startswith("torch.") for m in mods)
    profile, imported = command.import_profile(repeat=1)
    assert profile["archdsl"] > 0 and "archdsl.cli" in imported


# ---------------------------------------------------------------- the speed-ups change nothing


def test_parse_cache_returns_the_same_program(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(tmp_path / "c"))
    spec = tmp_path / "n.arch"
    spec.write_text("network n { input 3x32x32; conv 3x3 p1 -> 8; gap; fc 10 }\n")
    cache.clear()
    first = archdsl.load(spec).program
    assert len(list((tmp_path / "c").glob("*.pickle"))) == 1
    cache.clear()  # memory forgotten: the next load comes from disk
    second = archdsl.load(spec).program
    with cache.disabled():
        fresh = archdsl.load(spec).program
    assert first == second == fresh and second is not fresh
    spec.write_text("network n { input 3x32x32; conv 3x3 p1 -> 16; gap; fc 10 }\n")  # an edit
    assert archdsl.compile(spec).params == 3 * 9 * 16 + 16 + 16 * 10 + 10
    archdsl.compile("network s { input 1x8x8; conv 3x3 -> 2 }")  # text: memory only, never on disk
    assert len(list((tmp_path / "c").glob("*.pickle"))) == 2


def test_parse_errors_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCHDSL_CACHE_DIR", str(tmp_path / "c"))
    spec = tmp_path / "bad.arch"
    spec.write_text("network n { input 3x8x8; conv 3x3 -> }\n")
    for _ in range(2):
        with pytest.raises(archdsl.ArchError) as err:
            archdsl.compile(spec)
        assert err.value.diagnostics[0].code.startswith("E1")
    assert not list((tmp_path / "c").glob("*.pickle")) if (tmp_path / "c").exists() else True


def test_memoised_binding_tells_a_bool_from_a_number():
    """The same statement bound twice with values that compare equal (1 == True) must not
    share a binding: a bool is no channel count."""
    src = "block b(c) { conv 1x1 -> c }\nnetwork n(k=1) { input 1x4x4; b(k) }"
    assert archdsl.compile(src).params == 2
    with pytest.raises(archdsl.ArchError) as err:
        archdsl.compile(src, k=True)
    assert err.value.diagnostics[0].code == "E207"


def test_memoised_binding_follows_the_input_shape():
    src = ("block half() { conv 1x1 -> in.c // 2 }\n"
           "network n { input 64x8x8; half(); half(); half() }")
    net = archdsl.compile(src)
    assert [i.shape.c for i in net.nodes()] == [64, 32, 16, 8]


def test_compiling_and_reporting_import_neither_torch_nor_networkx():
    code = ("import sys, archdsl; net = archdsl.compile('specs/nin.arch', 'nin'); net.report().to_table(); "
            "print(sorted(m for m in ('torch', 'networkx', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    net = archdsl.compile(ROOT / "specs" / "nin.arch", "nin")
    assert net.graph.number_of_nodes() == len(list(net.nodes()))  # networkx on demand
    assert {e for e in net.graph.edges} == {(i, n.id) for n in net.nodes() for i in n.inputs}


def test_a_kind_patched_on_its_instance_is_not_memoised(monkeypatch):
    """The memo tables assume kinds are pure; one whose method is replaced (as tests and
    debugging sessions do) is computed afresh every time."""
    from archdsl.layers import REGISTRY

    src = "network n { input 3x8x8; conv 3x3 -> 4; relu }"
    archdsl.compile(src)  # memoised now

    def broken(p, x):
        raise ZeroDivisionError("patched")

    monkeypatch.setattr(REGISTRY["relu"], "infer", broken)
    with pytest.raises(ZeroDivisionError):
        archdsl.compile(src)
