"""The `archdsl` command, run as users run it: in a subprocess, checking exit codes,
what goes to stdout and stderr, and that user mistakes never show a traceback.

Exit codes (archdsl/cli.py): 0 success, 1 a mistake in a spec, 2 a usage mistake,
3 an internal error.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NIN = "specs/nin.arch"


def run(*args: str, cwd: Path = ROOT, timeout: float = 120) -> subprocess.CompletedProcess:
    """`archdsl ARGS` through `python -m archdsl.cli` with this interpreter."""
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "archdsl.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int) -> None:
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}\nstdout:\n{proc.stdout}\n" \
                                    f"stderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr


# ---------------------------------------------------------------- compile


def test_compile_prints_the_report_and_exits_0():
    proc = run("compile", NIN)
    assert proc.returncode == 0, proc.stderr
    # both networks of the file, with their published figures (figures.md)
    assert "params: 966,986" in proc.stdout
    assert "MACs: 222,486,528" in proc.stdout
    assert "params: 7,595,176" in proc.stdout
    assert "mlpconv1.conv1" in proc.stdout


def test_the_console_script_is_installed_and_works():
    exe = shutil.which("archdsl", path=str(Path(sys.executable).parent)) or shutil.which("archdsl")
    if exe is None:
        pytest.skip("the archdsl console script is not on PATH")
    proc = subprocess.run([exe, "compile", NIN, "-n", "nin"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "params: 966,986" in proc.stdout


@pytest.mark.parametrize("args", [("compile", "specs/resnet.arch"), ("compile", "specs/preact_resnet.arch")])
def test_a_reader_that_stops_early_stops_the_command_quietly(args):
    """`archdsl compile x.arch | head`: the command stops with 141 (128 + SIGPIPE, what a
    shell reports for a command stopped by a closed pipe), says nothing, and is no bug.
    (Both reports are written network by network and are larger than a pipe holds, so the
    command is still writing when the reader stops.)"""
    proc = subprocess.Popen([sys.executable, "-m", "archdsl.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141, err
    assert first.strip() and err == ""


def test_compile_json_parses_and_holds_the_figures():
    proc = run("compile", NIN, "-n", "nin", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["network"] == "nin"
    assert report["params"] == 966_986
    assert report["macs"] == 222_486_528
    assert report["flops"] == 2 * 222_486_528
    assert report["output"] == [10, 1, 1]
    assert sum(layer["params"] for layer in report["layers"]) == report["params"]


def test_compile_json_of_a_file_with_several_networks_is_a_list():
    proc = run("compile", NIN, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert [r["network"] for r in reports] == ["nin", "nin_imagenet"]


def test_compile_csv_has_a_row_per_layer_with_the_json_figures():
    import csv
    import io

    proc = run("compile", NIN, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    reports = json.loads(run("compile", NIN, "--format", "json").stdout)
    assert [(r["network"], r["layer"]) for r in rows] == [
        (rep["network"], layer["name"]) for rep in reports for layer in rep["layers"]]
    assert sum(int(r["params"]) for r in rows if r["network"] == "nin") == 966_986
    for rep in reports:
        mine = [r for r in rows if r["network"] == rep["network"]]
        assert sum(int(r["params"]) for r in mine) == rep["params"]
        assert sum(int(r["macs"]) for r in mine) == rep["macs"]
        assert [r["output"] for r in mine] == ["x".join(map(str, layer["output"])) for layer in rep["layers"]]
        assert [(int(r["rf_h"]), int(r["rf_w"])) for r in mine] == [tuple(layer["receptive_field"])
                                                                   for layer in rep["layers"]]


def _stdin(args: tuple[str, ...], data: bytes, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", *args], cwd=cwd, input=data, capture_output=True,
                          timeout=120, env=env)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def test_compile_dash_reads_the_spec_from_standard_input():
    from_file = run("compile", NIN, "-n", "nin", "--format", "json")
    piped = _stdin(("compile", "-", "-n", "nin", "--format", "json"), (ROOT / NIN).read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout) == {**json.loads(from_file.stdout), "file": "<stdin>"}
    table = _stdin(("compile", "-"), (ROOT / NIN).read_bytes())
    assert table.returncode == 0 and "nin  (<stdin>)" in table.stdout and "nin_imagenet  (<stdin>)" in table.stdout


def test_render_and_build_read_standard_input_too(tmp_path):
    spec = (ROOT / "specs" / "alexnet.arch").read_bytes()
    many = _stdin(("render", "-", "-o", str(tmp_path / "a.svg")), spec)
    assert_clean_failure(many, 2)
    assert "<stdin> holds 3 networks; pick one with -n NAME: alexnet, alexnet_grouped" in many.stderr
    drawn = _stdin(("render", "-", "-n", "alexnet", "-o", str(tmp_path / "a.dot")), spec)
    assert drawn.returncode == 0, drawn.stderr
    assert "conv1" in (tmp_path / "a.dot").read_text()


def test_errors_in_standard_input_are_located_there(tmp_path):
    bad = _stdin(("compile", "-"), b"network n { input 3x8x8; conv 3x3 -> 4; foo 3 }\n")
    assert_clean_failure(bad, 1)
    assert "<stdin>:1:41: error[E201]: unknown layer or block 'foo'" in bad.stderr
    binary = _stdin(("compile", "-"), b"\xff\xfe network")
    assert_clean_failure(binary, 1)
    assert "<stdin>:1:1: error[E107]" in binary.stderr
    huge = _stdin(("compile", "-"), b"#" * 1_100_000)
    assert_clean_failure(huge, 1)
    assert "error[E106]" in huge.stderr
    # includes resolve from the current folder and stay inside it
    (tmp_path / "inner").mkdir()
    (tmp_path / "unit.arch").write_text("block unit(c) { conv 3x3 p1 -> c; relu }\n")
    (tmp_path / "inner" / "secret.arch").write_text("network secret { input 1x4x4 }\n")
    ok = _stdin(("compile", "-", "--format", "json"),
                b'include "unit.arch"\nnetwork n { input 3x8x8; unit(4) }\n', cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["params"] == 3 * 9 * 4 + 4
    out = _stdin(("compile", "-"), b'include "../unit.arch"\nnetwork n { input 3x8x8 }\n', cwd=tmp_path / "inner")
    assert_clean_failure(out, 1)
    assert "<stdin>:1:1: error[E212]" in out.stderr


def test_compile_markdown_is_a_table():
    proc = run("compile", NIN, "-n", "nin", "--format", "markdown")
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("|")]
    widths = {line.count("|") for line in rows}
    assert len(widths) == 1, "every markdown row has the same number of cells"
    assert any("conv 5x5 p2 -> 192" in r for r in rows)


def test_compile_with_an_input_override():
    proc = run("compile", NIN, "-n", "nin", "--input", "3x64x64", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["input"] == [3, 64, 64]
    assert report["params"] == 966_986  # no fc layer: the weights do not depend on the input size


def test_compile_never_imports_torch():
    """The analytic path must stay light: no torch import for compile (or check)."""
    code = (
        "import sys\n"
        "from archdsl import cli\n"
        "sys.argv = ['archdsl', 'compile', %r, '--format', 'json']\n"
        "try:\n"
        "    cli.main()  # cli.run(), the command, would end the process before the print below\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('TORCH' if any(m == 'torch' or m.startswith('torch.') for m in sys.modules) else 'NO TORCH',"
        " file=sys.stderr)\n" % NIN
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "NO TORCH"
    # and the import-time log agrees (a module imported at any depth shows up there)
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "archdsl.cli", "compile", NIN], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")]
    assert "archdsl.report" in imported  # the log is the one we think it is
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def _imported(*args: str) -> set[str]:
    """The modules a command imports, at any depth (its import-time log)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "archdsl.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert "archdsl.expand" in imported, proc.stderr[-2000:]  # the log is the one we think it is
    return imported


def test_compile_imports_only_what_the_analysis_needs():
    """`archdsl compile` of a spec that parses imports click, and none of Lark, torch,
    networkx, pydantic or rich: the analytic path is plain Python over plain data (the parse
    runs the shipped tables: archdsl.lalr)."""
    imported = _imported("compile", str(ROOT / "specs" / "googlenet.arch"))
    assert "click" in imported
    heavy = {m.split(".")[0] for m in imported} & {"lark", "regex", "torch", "networkx", "pydantic", "rich", "numpy"}
    assert not heavy


def test_a_spec_with_a_syntax_error_is_reported_by_larks_parser(tmp_path):
    bad = tmp_path / "bad.arch"
    bad.write_text("network n {\n  input 3x8x8\n  conv 3x3 -> \n}\n")
    assert "lark" in _imported("compile", str(bad))
    proc = run("compile", str(bad))
    assert_clean_failure(proc, 1)
    assert "bad.arch:3:" in proc.stderr and "E10" in proc.stderr


# ---------------------------------------------------------------- usage errors: exit 2


@pytest.mark.parametrize("args", [
    ("compile", NIN, "--no-such-option"),
    ("compile", "specs/no_such_file.arch"),
    ("compile", NIN, "--input", "3x0x224"),
    ("compile", NIN, "--input", "3x224"),
    ("compile", NIN, "--format", "yaml"),
    ("frobnicate",),
], ids=["unknown-option", "missing-file", "zero-size-input", "two-dims-input", "unknown-format", "unknown-command"])
def test_usage_mistakes_exit_2(args):
    proc = run(*args)
    assert_clean_failure(proc, 2)
    assert proc.stderr.strip(), "a usage mistake says what is wrong"


def test_bad_input_names_the_expected_form():
    proc = run("compile", NIN, "--input", "3x0x224")
    assert_clean_failure(proc, 2)
    assert "E601" in proc.stderr and "CxHxW" in proc.stderr


def test_unknown_network_is_a_usage_error_with_a_suggestion():
    proc = run("compile", NIN, "-n", "nim")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "E203" in proc.stderr and "nin" in proc.stderr


# ---------------------------------------------------------------- spec errors: exit 1


BAD_SPECS = {
    # (text, code, line, column, underlined text)
    "unknown-layer": ("\nnetwork n {\n  input 3x32x32\n  convv 3x3 -> 8\n}\n", "E201", 4, 3, "convv"),
    "syntax": ("\nnetwork n {\n  input 3x32x32\n  conv 3x3 -> \n}\n", "E10", 4, None, None),
    "empty-output": ("\nnetwork n {\n  input 3x8x8\n  conv 3x3/2 -> 8\n  conv 5x5 -> 8\n}\n", "E402", 5, 3, None),
    "add-mismatch": ("\nnetwork n {\n  input 3x8x8\n  add { conv 1x1 -> 4 | identity }\n}\n", "E404", 4, None,
                     None),
    "failed-expect": ("\nnetwork n {\n  input 3x8x8\n  conv 3x3 -> 4\n  expect params = 100\n}\n", "E501", 5, 3,
                      None),
}


@pytest.mark.parametrize("name", list(BAD_SPECS))
def test_spec_errors_exit_1_with_location_and_caret(tmp_path, name):
    text, code, line, column, underlined = BAD_SPECS[name]
    path = tmp_path / f"{name}.arch"
    path.write_text(text)
    proc = run("check" if name == "failed-expect" else "compile", str(path))
    assert_clean_failure(proc, 1)
    err = proc.stderr
    m = re.search(rf"{re.escape(str(path))}:(\d+):(\d+): error\[({code}\d*)\]: ", err)
    assert m, f"no `file:line:col: error[{code}...]` header in:\n{err}"
    assert int(m.group(1)) == line
    if column is not None:
        assert int(m.group(2)) == column
    # the source line is quoted and a caret run sits under the offending column
    lines = err.splitlines()
    quoted = next(i for i, t in enumerate(lines) if re.match(rf"\s*{line} \| ", t))
    caret = lines[quoted + 1]
    gutter = lines[quoted].index("|") + 2
    col = int(m.group(2))
    assert caret.index("^") == gutter + col - 1
    if underlined is not None:
        n = len(caret.strip())
        assert lines[quoted][gutter + col - 1:gutter + col - 1 + n] == underlined


def test_check_passes_on_the_nin_specs():
    proc = run("check", NIN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nin" in proc.stdout and "nin_imagenet" in proc.stdout


def test_check_json_reports_each_network(tmp_path):
    bad = tmp_path / "bad.arch"
    bad.write_text("network n {\n  input 3x8x8\n  conv 3x3 -> 4\n  expect params = 100\n}\n")
    proc = run("check", NIN, str(bad), "--format", "json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["networks"] == 3 and out["failed"] == 1
    failed = [r for r in out["results"] if not r["ok"]]
    assert failed[0]["network"] == "n" and failed[0]["failed"][0]["found"] == 4 * 3 * 9 + 4


# ---------------------------------------------------------------- build


def test_build_prints_the_output_shape_and_equal_parameter_counts():
    proc = run("build", NIN, "-n", "nin")
    assert proc.returncode == 0, proc.stderr
    assert "output (1, 10, 1, 1)" in proc.stdout
    m = re.search(r"parameters: ([\d,]+) \(analytic ([\d,]+): equal\)", proc.stdout)
    assert m and m.group(1) == m.group(2) == "966,986"


def test_build_with_cuda_and_no_cuda_is_a_usage_error():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    proc = run("build", NIN, "-n", "nin", "--device", "cuda")
    assert_clean_failure(proc, 2)
    assert "cuda" in proc.stderr.lower()


def test_build_of_a_file_with_several_networks_needs_a_name():
    proc = run("build", NIN)
    assert_clean_failure(proc, 2)
    assert "nin_imagenet" in proc.stderr


# ---------------------------------------------------------------- kinds, version


def test_kinds_lists_every_registered_kind():
    from archdsl.layers import kinds

    proc = run("kinds")
    assert proc.returncode == 0
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert listed == {k.name for k in kinds()}


def test_version():
    import archdsl

    proc = run("--version")
    assert proc.returncode == 0 and archdsl.__version__ in proc.stdout




def test_check_of_a_folder_skips_links_that_lead_out_and_never_prints_them(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the secret line {\n")
    folder = tmp_path / "pr"
    folder.mkdir()
    (folder / "model.arch").symlink_to(secret)
    (folder / "ok.arch").write_text("network n { input 3x8x8; conv 3x3 -> 2 }\n")
    proc = run("check", str(folder))
    assert proc.returncode == 0, proc.stderr
    assert "secret" not in proc.stdout + proc.stderr.replace(str(secret), "")
    assert "skipped" in proc.stderr and "1 of 1 networks ok" in proc.stdout
