"""The analytic report: golden table, markdown and JSON text for several classic specs,
stable JSON keys, totals that agree with the rows, and determinism.

Goldens live in tests/golden/reports/; after an intended change, accept new output with

    ARCHDSL_ACCEPT=1 python -m pytest tests/test_report.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import archdsl
from archdsl.report import CONVENTIONS, SCHEMA

ROOT = Path(__file__).resolve().parent.parent

#: (spec file, network, formats with a golden)
GOLDEN_CASES = [
    ("nin.arch", "nin", ("table", "markdown", "json")),
    ("nin.arch", "nin_imagenet", ("table", "markdown", "json")),
    ("lenet5.arch", "lenet5_modern", ("table", "markdown", "json")),
    ("alexnet.arch", "alexnet", ("table", "markdown", "json")),
    ("vgg.arch", "vgg16", ("table", "markdown", "json")),
    ("googlenet.arch", "googlenet", ("table", "markdown")),
]


def compiled(file: str, network: str):
    """Compile with the path relative to the repository root, as `archdsl compile specs/...`
    run from the root does, so that the report's `file` does not depend on the machine."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return archdsl.compile(f"specs/{file}", network)
    finally:
        os.chdir(cwd)


def render(report, fmt: str) -> str:
    if fmt == "table":
        return report.to_table()
    if fmt == "markdown":
        return report.to_markdown()
    return report.to_json() + "\n"


_EXT = {"table": "txt", "markdown": "md", "json": "json"}


@pytest.mark.parametrize("file,network,fmt", [(f, n, fmt) for f, n, fmts in GOLDEN_CASES for fmt in fmts],
                         ids=lambda v: v if isinstance(v, str) and "." not in v else None)
def test_report_golden(file, network, fmt, golden):
    if not (ROOT / "specs" / file).exists():
        pytest.skip(f"specs/{file} is not there")
    report = compiled(file, network).report()
    golden(f"reports/{network}.{_EXT[fmt]}", render(report, fmt))


# ---------------------------------------------------------------- JSON schema


REQUIRED_KEYS = ["schema", "network", "file", "input", "output", "params", "params_without_aux", "macs",
                 "macs_without_aux", "flops", "activation_elements", "activation_bytes", "param_bytes",
                 "receptive_field", "aux_outputs", "conventions", "layers", "expectations"]
LAYER_KEYS = ["name", "kind", "op", "block", "aux", "inputs", "input", "output", "params", "macs", "receptive_field",
              "jump", "activations", "hyper"]


def test_json_keys_are_stable():
    d = compiled("nin.arch", "nin").report().to_dict()
    assert d["schema"] == SCHEMA == 1
    assert list(d) == REQUIRED_KEYS
    assert all(list(layer) == LAYER_KEYS for layer in d["layers"])
    assert list(d["receptive_field"]) == ["size", "jump"]
    assert d["conventions"] == CONVENTIONS
    assert list(d["expectations"][0]) == ["what", "expected", "found", "ok", "line"]


def test_json_round_trips_and_holds_only_plain_values():
    text = compiled("googlenet.arch", "googlenet").report().to_json()
    d = json.loads(text)
    assert json.dumps(d, indent=2) == text


@pytest.mark.parametrize("file,network", [("nin.arch", "nin"), ("googlenet.arch", "googlenet"),
                                          ("alexnet.arch", "alexnet_grouped"), ("lenet5.arch", "lenet5")])
def test_totals_agree_with_the_rows(file, network):
    net = compiled(file, network)
    d = net.report().to_dict()
    layers = d["layers"]
    assert sum(r["params"] for r in layers) == d["params"] == net.params
    assert sum(r["macs"] for r in layers) == d["macs"] == net.macs
    assert sum(r["params"] for r in layers if r["aux"] is None) == d["params_without_aux"]
    assert sum(r["macs"] for r in layers if r["aux"] is None) == d["macs_without_aux"]
    assert d["flops"] == 2 * d["macs"]
    assert d["activation_elements"] == sum(r["activations"] for r in layers if r["kind"] != "input")
    assert d["activation_bytes"] == 4 * d["activation_elements"] and d["param_bytes"] == 4 * d["params"]
    assert layers[0]["name"] == "input" and layers[0]["output"] == d["input"]
    assert all(e["ok"] for e in d["expectations"])
    # every row's inputs name earlier rows: the list is in topological order
    seen = set()
    for r in layers:
        assert set(r["inputs"]) <= seen
        seen.add(r["name"])


def test_aux_heads_are_marked_and_listed():
    d = compiled("googlenet.arch", "googlenet").report().to_dict()
    assert d["aux_outputs"] == {"aux1": [1000], "aux2": [1000]}
    assert d["params"] == 13_378_280 and d["params_without_aux"] == 6_998_552  # figures.md
    assert {r["aux"] for r in d["layers"]} == {None, "aux1", "aux2"}
    assert all(r["name"].startswith(r["aux"] + ".") for r in d["layers"] if r["aux"])


def test_table_totals_and_expectations_are_printed():
    text = compiled("googlenet.arch", "googlenet").report().to_table()
    assert "params: 13,378,280 (51.03 MiB as float32)" in text
    assert "params without aux heads (aux1, aux2): 6,998,552" in text
    assert "MACs without aux heads: 1,582,671,872" in text
    assert "expect params_without_aux = 6,998,552: ok" in text
    assert "FAILED" not in text


def test_failed_expectations_are_reported_as_failed():
    net = archdsl.compile("network t { input 3x8x8; conv 3x3 -> 4; expect params = 100 }")
    d = net.report().to_dict()
    assert d["expectations"] == [{"what": "params", "expected": 100, "found": 112, "ok": False, "line": 1}]
    assert "expect params = 100: FAILED (found 112)" in net.report().to_table()


def test_table_never_breaks_a_number():
    """With long qualified names (ResNet's bottlenecks) and a narrow table, the names fold
    and every figure stays on one line."""
    net = archdsl.compile("""
block deep_block_with_a_long_name(c) { concat { conv 1x1 -> c | conv 3x3 p1 -> c } }
network t {
  input 3x224x224
  a_rather_long_stage_label: repeat 1 { another_long_label: deep_block_with_a_long_name(64) }
  conv 7x7/2 p3 -> 64
}""")
    text = net.report().to_table(width=80)
    table = text.split("\n\n")[0]
    assert all(len(line) <= 80 for line in table.splitlines())
    for r in net.report().rows:
        for figure in (f"{r.macs:,}", f"{r.activations:,}", "x".join(map(str, r.output))):
            if figure != "0":
                assert figure in text, figure


def test_markdown_rows_have_the_header_s_cells():
    text = compiled("googlenet.arch", "googlenet").report().to_markdown()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    header = rows[0].count("|")
    assert all(r.replace("\\|", "").count("|") == header for r in rows)
    assert len(rows) == 2 + len(compiled("googlenet.arch", "googlenet").report().rows)


def test_reports_are_deterministic_across_processes():
    """The same spec gives byte-identical reports in another interpreter with another
    hash seed (no set or dict-order dependence)."""
    here = compiled("googlenet.arch", "googlenet").report().to_json()
    assert compiled("googlenet.arch", "googlenet").report().to_json() == here
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "compile", "specs/googlenet.arch", "-n",
                               "googlenet", "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED=seed), timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == here + "\n"
