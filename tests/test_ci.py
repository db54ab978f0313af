"""CI the way a team runs it (docs/ci.md): `archdsl diff BASE_DIR HEAD_DIR`, GitHub
annotations, the workflow's steps on a scratch git repository with a base branch and a pull
request, and the pre-commit hooks through `pre-commit try-repo`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from archdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ZOO = ["inception_v4.arch", "inception_resnet.arch", "vgg.arch", "nin.arch"]
REDUCTION_A = "conv 1x1 -> k; conv 3x3 p1 -> l; conv 3x3/2 -> m"


def _zoo(d: Path) -> Path:
    d.mkdir(parents=True)
    for name in ZOO:
        shutil.copy(SPECS / name, d / name)
    return d


def test_a_change_through_an_include_lists_every_network_it_reaches(tmp_path):
    base, head = _zoo(tmp_path / "base"), _zoo(tmp_path / "head")
    v4 = head / "inception_v4.arch"
    assert REDUCTION_A in v4.read_text()
    v4.write_text(v4.read_text().replace(REDUCTION_A, REDUCTION_A + " + 1"))
    result = CliRunner().invoke(main, ["diff", str(base), str(head), "--format", "markdown", "--exit-code"])
    assert result.exit_code == 1
    out = result.output
    assert str(tmp_path) not in out  # names are the trees' own: no temporary folders
    assert out.startswith("### archdsl: 3 changed; ")
    changed = re.findall(r"^\| changed \| `([^`]+)` \|", out, re.M)
    assert changed == ["inception_resnet.arch:inception_resnet_v1", "inception_resnet.arch:inception_resnet_v2",
                       "inception_v4.arch:inception_v4"]
    assert "42,679,816 → 42,682,730 (+0.01%)" in out
    layers = CliRunner().invoke(main, ["diff", str(base), str(head), "--format", "markdown", "--layers"]).output
    assert layers.count("<details>") == 3 and str(tmp_path) not in layers


def test_a_one_line_change_to_vgg_writes_a_short_summary(tmp_path):
    base, head = _zoo(tmp_path / "base"), _zoo(tmp_path / "head")
    vgg = head / "vgg.arch"
    vgg.write_text(vgg.read_text().replace("stage3: vgg_stage(n3, 256, last)", "stage3: vgg_stage(n3, 320, last)"))
    out = CliRunner().invoke(main, ["diff", str(base), str(head), "--format", "markdown"]).output
    assert len(out.splitlines()) <= 14  # a heading, a table of the ten VGGs (was 277 lines)
    assert out.count("| changed |") == 10
    same = CliRunner().invoke(main, ["diff", str(base), str(base), "--exit-code"])
    assert same.exit_code == 0 and "no network changed" in same.output


def test_added_removed_broken_and_fixed_networks(tmp_path):
    base, head = tmp_path / "base", tmp_path / "head"
    base.mkdir()
    head.mkdir()
    (base / "a.arch").write_text("network gone { input 3x8x8; conv 3x3 -> 4 }\n"
                                 "network breaks { input 3x8x8; conv 3x3 -> 4 }\n"
                                 "network mends { input 3x8x8; conv 9x9 -> 4 }\n")
    (head / "a.arch").write_text("network new { input 3x8x8; conv 3x3 -> 4 }\n"
                                 "network breaks { input 3x8x8; conv 9x9 -> 4 }\n"
                                 "network mends { input 3x8x8; conv 3x3 -> 4 }\n")
    out = CliRunner().invoke(main, ["diff", str(base), str(head)]).output
    assert re.search(r"^added +a\.arch:new", out, re.M) and re.search(r"^removed +a\.arch:gone", out, re.M)
    assert re.search(r"^broken +a\.arch:breaks +error\[E402\] at a\.arch:2:", out, re.M)
    assert re.search(r"^fixed +a\.arch:mends", out, re.M)


def test_check_format_github_annotates_each_error():
    result = CliRunner().invoke(main, ["check", str(ROOT / "tests" / "data" / "check"), "--format", "github"])
    assert result.exit_code == 1
    notes = [line for line in result.output.splitlines() if line.startswith("::error ")]
    assert len(notes) == 3
    assert re.match(r"::error file=[^,]*broken\.arch,line=6,col=5,endLine=6,title=archdsl E403::concat: ", notes[0])
    assert "%0Aexpected: 432%0Afound: 448" in notes[1]


# ---------------------------------------------------------------- the workflow, end to end


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout


def _workflow_steps() -> tuple[dict, dict[str, str]]:
    text = (ROOT / "docs" / "ci.md").read_text()
    block = re.search(r"```yaml\n(name: architectures\n.*?)```", text, re.S).group(1)
    flow = yaml.safe_load(block)
    steps = {s["name"]: s["run"] for s in flow["jobs"]["check"]["steps"] if "name" in s and "run" in s}
    return flow["env"], steps


def test_the_workflow_on_a_scratch_repository(tmp_path):
    """The recipe's steps, as GitHub Actions runs them on a pull request: on a clone whose
    origin has the base branch, with archdsl on PATH (installed here from this checkout;
    the recipe's own install step pins a release)."""
    env_vars, steps = _workflow_steps()
    assert {"Install archdsl", "Check every spec", "Check the layout",
            "Diff every network against the base branch"} <= set(steps)
    origin = tmp_path / "origin"
    _zoo(origin / "specs")
    _git(origin, "init", "-q", "-b", "main")
    _git(origin, "add", ".")
    _git(origin, "commit", "-qm", "the zoo")
    work = tmp_path / "work"
    _git(tmp_path, "clone", "-q", str(origin), str(work))
    _git(work, "checkout", "-q", "-b", "pr")
    v4 = work / "specs" / "inception_v4.arch"
    v4.write_text(v4.read_text().replace(REDUCTION_A, REDUCTION_A + " + 1"))
    _git(work, "commit", "-qam", "a wider reduction_a")

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "archdsl"
    shim.write_text(f"#!/bin/sh\nPYTHONPATH={ROOT} exec {sys.executable} -c "
                    f"'import sys; from archdsl.cli import run; sys.argv[0] = \"archdsl\"; run()' \"$@\"\n")
    shim.chmod(0o755)
    summary = tmp_path / "summary.md"
    env = {**os.environ, **env_vars, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "GITHUB_BASE_REF": "main", "GITHUB_STEP_SUMMARY": str(summary)}

    def step(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "-eo", "pipefail", "-c", steps[name]], cwd=work, env=env,
                              capture_output=True, text=True, timeout=300)

    check = step("Check every spec")
    assert check.returncode == 1  # the wider reduction_a breaks the expect lines that state its figures
    assert re.search(r"^::error file=specs/inception_v4\.arch,line=\d+", check.stdout, re.M)
    layout = step("Check the layout")
    assert layout.returncode == 0, layout.stderr
    diff = step("Diff every network against the base branch")
    assert diff.returncode == 0, diff.stderr
    out = summary.read_text()
    assert out.startswith("### archdsl: 3 changed; ") and "inception_resnet.arch:inception_resnet_v2" in out
    assert "/tmp" not in out and str(tmp_path) not in out
    assert "base" not in _git(work, "worktree", "list")  # the step cleaned up after itself


@pytest.mark.slow
def test_pre_commit_try_repo_accepts_the_hooks(tmp_path):
    """`pre-commit try-repo` installs archdsl from this repository into an environment of its
    own (as a package, not editable) and runs both hooks on a scratch repository."""
    pytest.importorskip("pre_commit")
    repo = tmp_path / "zoo"
    (repo / "specs").mkdir(parents=True)
    (repo / "specs" / "n.arch").write_text("network n{input 3x8x8;conv 3x3->4\nexpect params = 112}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "a spec")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    source = tmp_path / "archdsl"
    # try-repo reads the hooks from a commit: a copy of this tree, committed
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", ".hypothesis"))
    _git(source, "init", "-q")
    _git(source, "add", ".")
    _git(source, "commit", "-qm", "archdsl")
    run = subprocess.run([sys.executable, "-m", "pre_commit", "try-repo", str(source), "--all-files"], cwd=repo,
                         env=env, capture_output=True, text=True, timeout=900)
    assert "archdsl fmt" in run.stdout and "files were modified by this hook" in run.stdout, run.stdout + run.stderr
    assert re.search(r"archdsl check\.+Passed", run.stdout), run.stdout
    assert (repo / "specs" / "n.arch").read_text() == "network n {\n  input 3x8x8; conv 3x3 -> 4\n  expect params = 112\n}\n"


def test_check_format_junit_and_sarif():
    import json
    import xml.etree.ElementTree as ET

    data = ROOT / "tests" / "data" / "check"
    junit = CliRunner().invoke(main, ["check", str(data), "--format", "junit"])
    assert junit.exit_code == 1
    suites = ET.fromstring(junit.stdout)
    assert (suites.get("tests"), suites.get("failures")) == ("4", "2")
    cases = {c.get("name"): c for c in suites.iter("testcase")}
    assert set(cases) == {"mismatch", "off_by_bias", "small", "wider"}
    assert [f.get("type") for f in cases["off_by_bias"].iter("failure")] == ["E501", "E501"]
    assert "expected 432, found 448" in cases["off_by_bias"].find("failure").get("message")
    assert "expected 16x16x16, found 16x32x32" in ET.tostring(cases["off_by_bias"], encoding="unicode")
    assert cases["small"].find("failure") is None

    sarif = CliRunner().invoke(main, ["check", str(data), "--format", "sarif"])
    assert sarif.exit_code == 1
    doc = json.loads(sarif.stdout)
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == ["E403", "E501", "E501"]
    loc = results[0]["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"]["uri"].endswith("broken.arch") and loc["region"] == {"startLine": 6, "startColumn": 5}
    assert {r["id"] for r in doc["runs"][0]["tool"]["driver"]["rules"]} == {"E403", "E501"}
    ok = CliRunner().invoke(main, ["check", str(SPECS / "nin.arch"), "--format", "sarif"])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["runs"][0]["results"] == []
