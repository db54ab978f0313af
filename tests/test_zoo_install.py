"""The zoo from an installed archdsl: a wheel (and an editable install) in a fresh virtual
environment, run from outside the repository. Skipped only when pip cannot install the
dependencies (no index reachable); any other failure of the build or the install fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: what pip prints when it cannot reach an index: the one reason to skip
OFFLINE = ("No matching distribution found", "Could not find a version that satisfies", "NewConnectionError",
           "Failed to establish a new connection", "Temporary failure in name resolution", "ProxyError",
           "Network is unreachable", "Max retries exceeded")

USER_SPEC = """\
include "zoo:resnet.arch"
include "zoo:inception_resnet.arch"   # which includes inception_v4.arch, inside the zoo

network resnet26(classes=10) {
  input 3x224x224; act relu; norm bn
  resnet_imagenet(true, 2, 2, 2, 2, classes)
  expect output = 10
}
"""


def _sources(dest: Path) -> Path:
    """A copy of what a wheel is built from, without the checkout's build leftovers."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    shutil.copytree(ROOT / "archdsl", dest / "archdsl", ignore=ignore)
    shutil.copytree(ROOT / "specs", dest / "specs", ignore=ignore)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / f, dest / f)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["wheel", "editable"])
def test_the_installed_zoo(tmp_path, editable):
    src = _sources(tmp_path / "src")
    venv = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300)
    if made.returncode:
        pytest.skip(f"cannot create a virtual environment here: {made.stderr.strip()[-300:]}")
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", NO_COLOR="1")
    install = [str(python), "-m", "pip", "install", "-q", *(["-e"] if editable else []), str(src)]
    got = subprocess.run(install, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    if got.returncode:
        out = got.stdout + got.stderr
        if any(s in out for s in OFFLINE):
            pytest.skip("pip cannot install archdsl's dependencies without an index: " + out.strip()[-500:])
        pytest.fail(f"pip install failed:\n{out}")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mine.arch").write_text(USER_SPEC)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bindir / "archdsl"), *args], capture_output=True, text=True, timeout=300,
                              env=env, cwd=elsewhere)

    where = subprocess.run([str(python), "-c", "import archdsl, archdsl.zoo as z; print(archdsl.__file__); "
                                               "print(z.root())"], capture_output=True, text=True, env=env,
                           cwd=elsewhere, timeout=120)
    package, zoo_root = where.stdout.split()
    if editable:
        assert Path(zoo_root) == (src / "specs").resolve()
    else:
        assert Path(package).resolve().is_relative_to(venv.resolve()), package
        assert Path(zoo_root).resolve() == Path(package).resolve().parent / "specs"
        assert (Path(zoo_root) / "resnet.arch").is_file()

    r = run("compile", "resnet50")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("resnet50  (zoo:resnet.arch)\n")
    assert "expect params = 25,557,032: ok" in r.stdout and "expect macs = 4,089,184,256: ok" in r.stdout

    r = run("list", "resnet*")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines()[1:]}
    assert rows["resnet50"][1:3] == ["25,557,032", "4,089,184,256"] and rows["resnet50"][-1] == "zoo:resnet.arch"
    assert all(name.startswith("resnet") for name in rows)

    r = run("compile", "mine.arch", "-p", "classes=100", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert '"output": [\n    100\n  ]' in r.stdout
    r = run("check", "mine.arch")
    assert r.returncode == 0 and "ok    mine.arch:resnet26" in r.stdout, r.stdout + r.stderr

    r = run("compile", "resnet5O")
    assert r.returncode == 2 and "no such file or zoo network: resnet5O" in r.stderr
    r = run("compile", "zoo:../pyproject.arch")
    assert r.returncode == 2 and "leads outside the zoo" in r.stderr
