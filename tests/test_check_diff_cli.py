"""`archdsl check` and `archdsl diff`: outputs and exit codes on passing and failing specs,
run as a user runs them (a subprocess), with no traceback ever reaching stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import archdsl
from archdsl.cli import main
from archdsl.diff import diff

from conftest import ROOT, spec_networks

DATA = Path("tests") / "data" / "check"


def run(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "archdsl.cli", *args], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "COLUMNS": "200"})
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    return r


def invoke(*args: str):
    """The same command in-process (faster), for the cases that need no separate interpreter."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        r = CliRunner().invoke(main, list(args))
    finally:
        os.chdir(cwd)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r


def where(path: Path, needle: str) -> str:
    """file:line:col of the first line of `path` holding `needle`, found in the file itself."""
    for n, line in enumerate((ROOT / path).read_text().splitlines(), 1):
        if needle in line:
            return f"{path}:{n}:{line.index(needle) + 1}"
    raise AssertionError(f"{needle!r} not in {path}")


# ---------------------------------------------------------------- check


def test_check_specs_folder_passes():
    r = run("check", "specs")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    cases = spec_networks()
    rows = [line for line in lines if line.startswith(("ok ", "FAIL"))]
    # one line per network, named file:network, with its figures
    for path, name in cases:
        row = next(line for line in rows if f"{path.relative_to(ROOT)}:{name} " in line)
        assert row.startswith("ok ")
    nin = next(line for line in rows if "specs/nin.arch:nin " in line)
    assert "params       966,986" in nin and "MACs      222,486,528" in nin and "output 10x1x1" in nin
    n_files = len(list((ROOT / "specs").rglob("*.arch")))
    assert lines[-1] == f"{len(cases)} of {len(cases)} networks ok ({n_files} files)"


def test_check_folder_recursively_with_failures():
    r = run("check", str(DATA))
    assert r.returncode == 1
    out = r.stdout.splitlines()
    assert out[-1] == "2 of 4 networks ok, 2 failed (4 files)"
    row = {line.split()[1]: line for line in out if line.startswith(("ok ", "FAIL"))}
    # found recursively, and reported although it holds only blocks
    assert row[f"{DATA}/lib/blocks.arch"].startswith("ok ")
    assert row[f"{DATA}/passing.arch:small"].startswith("ok ")
    assert "params         2,938" in row[f"{DATA}/passing.arch:small"]
    assert row[f"{DATA}/passing.arch:wider"].startswith("ok ")
    # the failing expectation's location is on the line; both diagnostics go to stderr
    failing = row[f"{DATA}/failing.arch:off_by_bias"]
    assert failing.startswith("FAIL")
    params_at = where(DATA / "failing.arch", "expect params")
    assert f"expect params failed at {params_at} (+1 more)" in failing
    assert f"{params_at}: error[E501]: expectation failed: params" in r.stderr
    assert "found:    448" in r.stderr and "off by +16" in r.stderr
    assert f"{where(DATA / 'failing.arch', 'expect shape')}: error[E501]: expectation failed: shape" in r.stderr
    # a spec error: its code and location on the line, the rendered diagnostic on stderr
    broken = row[f"{DATA}/broken.arch:mismatch"]
    branch_at = where(DATA / "broken.arch", "conv 3x3/2")
    assert broken.startswith("FAIL") and f"error[E403] at {branch_at}" in broken
    assert f"{branch_at}: error[E403]" in r.stderr and "^^^" in r.stderr


def test_check_json():
    r = run("check", str(DATA), "--format", "json")
    assert r.returncode == 1
    assert r.stderr == ""
    report = json.loads(r.stdout)
    assert (report["ok"], report["networks"], report["failed"], report["files"]) == (False, 4, 2, 4)
    assert report["libraries"] == [f"{DATA}/lib/blocks.arch"]
    by_name = {x["network"]: x for x in report["results"]}
    assert by_name["small"]["ok"] and by_name["small"]["params"] == 2_938 and by_name["small"]["output"] == [10]
    bad = by_name["off_by_bias"]
    assert not bad["ok"] and [f["what"] for f in bad["failed"]] == ["params", "shape"]
    assert bad["failed"][0] == {"what": "params", "location": where(DATA / "failing.arch", "expect params"),
                                "expected": 432, "found": 448}
    assert by_name["mismatch"]["error"] == "E403"


def test_check_single_passing_file_and_fail_fast():
    r = invoke("check", str(DATA / "passing.arch"))
    assert r.exit_code == 0
    assert r.stdout.splitlines()[-1] == "2 of 2 networks ok (1 file)"
    # -x: stops at the first failing network (broken.arch comes first in sorted order)
    r = invoke("check", "-x", str(DATA))
    assert r.exit_code == 1
    assert r.stdout.splitlines()[-1] == "0 of 1 networks ok, 1 failed (4 files)"


@pytest.mark.parametrize("args,message", [
    (["check", "tests/data/check/nope"], "no such file or folder"),
    (["check", "tests/data/check/lib/none"], "no such file or folder"),
])
def test_check_usage_errors(args, message):
    r = invoke(*args)
    assert r.exit_code == 2 and message in r.stderr


def test_check_empty_folder_is_a_usage_error(tmp_path):
    r = invoke("check", str(tmp_path))
    assert r.exit_code == 2 and "no .arch files" in r.stderr


# ---------------------------------------------------------------- diff


def _torchvision_params(name: str) -> int:
    torch = pytest.importorskip("torch")
    models = pytest.importorskip("torchvision.models")
    with torch.device("meta"):  # shapes only: nothing allocated
        model = getattr(models, name)(**({"aux_logits": True, "init_weights": False} if name == "googlenet" else {}))
    return sum(p.numel() for p in model.parameters())


def test_diff_vgg16_vgg19_text():
    r = run("diff", "specs/vgg.arch:vgg16", "specs/vgg.arch:vgg19")
    assert r.returncode == 0 and r.stderr == ""
    text = r.stdout
    # figures.md: 138,357,544 -> 143,667,240 params, 15,470,264,320 -> 19,632,062,464 MACs
    assert "params     138,357,544     143,667,240  +5,309,696 (+3.84%)" in text
    assert "MACs    15,470,264,320  19,632,062,464  +4,161,798,144 (+26.9%)" in text
    # the difference torchvision's own models have
    assert _torchvision_params("vgg19") - _torchvision_params("vgg16") == 5_309_696
    added = [line.split()[1] for line in text.splitlines() if line.startswith("+ ")]
    assert added == ["features.stage3.conv4", "features.stage4.conv4", "features.stage5.conv4"]
    assert not [line for line in text.splitlines() if line.startswith("- ")]
    assert "layers              24              27  +3" in text
    assert "layers: 3 added, 24 unchanged" in text
    assert "~ features.stage3\n    call    - vgg_stage(n=3, c=256, last=3, lrn=false)\n" in text
    # conv 3x3 256 -> 256 with bias at 56x56: 590,080 params, 56*56*256*256*9 MACs
    assert "conv 3x3 p1 -> 256 +relu  256x56x56  params 590,080  MACs 1,849,688,064" in text


def test_diff_googlenet_markdown_and_json():
    a, b = "specs/googlenet.arch:googlenet", "specs/googlenet.arch:googlenet_torchvision"
    r = run("diff", a, b, "--format", "markdown")
    assert r.returncode == 0
    md = r.stdout
    assert md.startswith(f"### `{a}` → `{b}`\n")
    # figures.md: 13,378,280 vs 13,004,888 with both aux heads, 6,998,552 vs 6,624,904 without
    assert "| params | 13,378,280 | 13,004,888 | -373,392 (-2.79%) |" in md
    assert "| params without aux | 6,998,552 | 6,624,904 | -373,648 (-5.34%) |" in md
    assert "| | name | googlenet | googlenet_torchvision | params | MACs |" in md
    assert "| ~ | `inception3a` | `inception(c1=64, c3r=96, c3=128, c5r=16, c5=32, pp=32, k5=5)` " in md
    r = invoke("diff", a, b, "--format", "json")
    d = json.loads(r.stdout)
    assert d["params_delta"] == 13_004_888 - 13_378_280
    assert d["a"]["params_without_aux"] == 6_998_552 and d["b"]["params_without_aux"] == 6_624_904
    assert _torchvision_params("googlenet") == d["b"]["params"]
    removed = {c["name"] for c in d["changes"] if c["status"] == "removed" and c["level"] == "layer"}
    assert {"norm1", "norm2", "conv2_reduce"} <= removed  # the LRNs torchvision dropped
    counts = d["counts"]["layers"]
    assert counts["unchanged"] + counts["changed"] + counts["removed"] == d["a"]["layers"]
    assert counts["unchanged"] + counts["changed"] + counts["added"] == d["b"]["layers"]
    # every MAC and parameter difference is accounted for by the layers listed
    layers = [c for c in d["changes"] if c["level"] == "layer"]
    assert sum(c["params_delta"] for c in layers) == d["params_delta"]
    assert sum(c["macs_delta"] for c in layers) == d["macs_delta"]


def test_diff_identical_and_exit_code():
    r = invoke("diff", "specs/nin.arch:nin", "specs/nin.arch:nin", "--exit-code")
    assert r.exit_code == 0 and r.stdout.rstrip().endswith("no differences")
    r = invoke("diff", "specs/vgg.arch:vgg11", "specs/vgg.arch:vgg11_lrn", "--exit-code")
    assert r.exit_code == 1
    assert "+ features.stage1.lrn1" in r.stdout  # A-LRN: the LRN after the first stage


def test_diff_single_network_file_needs_no_name(tmp_path):
    (tmp_path / "a.arch").write_text("network a { input 3x8x8; conv 3x3 -> 4 }\n")
    (tmp_path / "b.arch").write_text("network b { input 3x8x8; conv 3x3 -> 8 }\n")
    r = invoke("diff", str(tmp_path / "a.arch"), str(tmp_path / "b.arch"))
    assert r.exit_code == 0
    # 3*9*4+4 = 112 -> 3*9*8+8 = 224
    assert "params  112 -> 224 (+112)" in r.stdout


@pytest.mark.parametrize("args,code,message", [
    (["diff", "specs/vgg.arch", "specs/nin.arch:nin"], 2, "holds 10 networks"),
    (["diff", "specs/nope.arch:x", "specs/nin.arch:nin"], 2, "no such file"),
    # a network one side lacks is a difference of the specs (docs/ci.md): 1, as for other spec errors
    (["diff", "specs/nin.arch:nine", "specs/nin.arch:nin"], 1, "error[E203]: no network named 'nine'"),
    (["diff", "tests/data/check/broken.arch", "specs/nin.arch:nin"], 1, "error[E403]"),
])
def test_diff_errors(args, code, message):
    r = run(*args) if code == 1 else invoke(*args)
    rc = r.returncode if code == 1 else r.exit_code
    assert rc == code and message in r.stderr


def test_diff_api_matches_counts():
    a = archdsl.compile(ROOT / "specs" / "resnet.arch", "resnet50")
    b = archdsl.compile(ROOT / "specs" / "resnet.arch", "resnet50_original")
    d = diff(a, b)
    # figures.md discrepancy 5: same parameters, 4,089,184,256 vs 3,857,973,248 MACs
    assert d.params_delta == 0 and d.macs_delta == 3_857_973_248 - 4_089_184_256
    changed = {c.name for c in d.changes if c.level == "layer"}
    # the stride moves from the 3x3 to the first 1x1 in the first bottleneck of layers 2-4
    for stage in (2, 3, 4):
        base = f"resnet_imagenet1.layer{stage}.bottleneck1.add1.branch1"
        assert {f"{base}.conv1", f"{base}.conv2"} <= changed
    assert all(c.status == "changed" for c in d.changes)
