"""Whole commands, interpreter start included: `archdsl compile` against the one-liners people
run today (build the torchvision model, print torchinfo's summary; count it with torch's own
FlopCounterMode on the meta device), and where archdsl's start-up time goes
(``python -X importtime``), optionally against an earlier revision.

Every measured process gets the environment of :func:`measured_env`: this checkout's archdsl first on
``PYTHONPATH``, no ``ARCHDSL_*`` setting inherited from the caller, and ``XDG_CACHE_HOME`` in a
folder the benchmark owns: a fresh empty one for a *cold* run (:func:`fresh_cache`), or one
that earlier runs have used for a *warm* one. Whatever archdsl, Lark or anything else keeps
there between runs is then part of what is measured, and nothing of the user's cache is.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .models import ROOT
from .timing import Stats

PYTHON = sys.executable

#: `archdsl compile` as a user runs it (the console script of this environment)
ARCHDSL = str(Path(PYTHON).with_name("archdsl")) if Path(PYTHON).with_name("archdsl").exists() else None

TORCHINFO_ONE_LINER = (
    "import torchvision; from torchinfo import summary; "
    "print(summary(torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False), "
    "input_size=(1, 3, 224, 224)))"
)
#: the same without any third-party counter: torch's own FLOP counter (2 x MACs), on the meta
#: device (shapes only: no weights initialised, no arithmetic done)
FLOPCOUNTER_ONE_LINER = (
    "import torch, torchvision; from torch.utils.flop_counter import FlopCounterMode\n"
    "with torch.device('meta'):\n"
    "    m = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False).eval()\n"
    "    c = FlopCounterMode(display=False)\n"
    "    with c, torch.no_grad(): m(torch.empty(1, 3, 224, 224))\n"
    "print(sum(p.numel() for p in m.parameters()), c.get_total_flops() // 2)"
)


@dataclass
class Run:
    wall: float
    cpu: float  # user + system, of the child
    rss_kib: int  # peak resident set, of the child
    returncode: int


#: Runs a command and reports its wall time, CPU time and peak RSS. A process forked from this
#: one would start with this one's memory high-water mark (Linux carries it across exec, and
#: the benchmark has torch loaded), so a small fresh interpreter forks the command instead.
_REAPER = """\
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    fd = os.open(os.devnull, os.O_RDWR)
    for i in (0, 1, 2):
        os.dup2(fd, i)
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, ru = os.wait4(pid, 0)
print(time.perf_counter() - t0, os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime, ru.ru_maxrss)
"""


def run_once(argv: list[str], env=None, cwd: Path = ROOT) -> Run:
    """Run a command to completion: its wall time (from its fork to its exit), CPU time
    (user + system) and peak resident memory (KiB), as the operating system accounts them.
    `env`: a dict, a function returning one for each run (a fresh cache folder every time), or
    None for a cold run's (:func:`cold_env`)."""
    env = cold_env() if env is None else env() if callable(env) else env
    out = subprocess.run([PYTHON, "-c", _REAPER, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    return Run(float(out[0]), float(out[2]), int(out[3]), int(out[1]))


def time_commands(commands: dict[str, tuple], repeat: int, warmup: int = 1) -> dict[str, dict[str, Stats]]:
    """Run the commands, each (argv, env) or (argv, env, cwd) (`env` as :func:`run_once` takes
    it), in turn (a b c a b c ...) `repeat` times after `warmup` rounds: per command, Stats of
    wall and CPU seconds and of peak RSS (KiB, as Stats of numbers)."""
    for _ in range(warmup):
        for argv, env, *cwd in commands.values():
            run_once(argv, env, *cwd)
    runs: dict[str, list[Run]] = {k: [] for k in commands}
    for _ in range(repeat):
        for name, (argv, env, *cwd) in commands.items():
            r = run_once(argv, env, *cwd)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(argv)} exited with {r.returncode}")
            runs[name].append(r)
    return {k: {"wall": Stats(tuple(r.wall for r in v)), "cpu": Stats(tuple(r.cpu for r in v)),
                "rss": Stats(tuple(float(r.rss_kib) for r in v))} for k, v in runs.items()}


_CACHES: Path | None = None


def fresh_cache() -> Path:
    """A new empty folder, to be a process's XDG_CACHE_HOME (all removed when the benchmark ends)."""
    global _CACHES
    if _CACHES is None:
        _CACHES = Path(tempfile.mkdtemp(prefix="archdsl-bench-caches-"))
        atexit.register(shutil.rmtree, _CACHES, True)
    return Path(tempfile.mkdtemp(dir=_CACHES))


def measured_env(cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of a measured process: this one, with this checkout's archdsl first on
    PYTHONPATH (the console script, unlike ``python -c`` run here, would otherwise import
    whichever archdsl is installed), no ARCHDSL_* setting of the caller's, XDG_CACHE_HOME set to
    `cache` (a fresh empty folder when None), and bytecode caching on. An installed package runs
    from its cached bytecode (pip compiles it; Python caches what it imports), as torch and the
    other libraries here do; an environment with PYTHONDONTWRITEBYTECODE set would make archdsl
    alone recompile its source on every run."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("ARCHDSL_")}
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([out["PYTHONPATH"]] if out.get("PYTHONPATH") else []))
    out["XDG_CACHE_HOME"] = str(cache if cache is not None else fresh_cache())
    out.update(extra)
    return out


def cold_env() -> dict[str, str]:
    """A cold run's environment: nothing left by an earlier run in its cache folder."""
    return measured_env()


def compile_argv(spec: str, *args: str) -> list[str]:
    if ARCHDSL is not None:
        return [ARCHDSL, "compile", spec, *args]
    return [PYTHON, "-m", "archdsl.cli", "compile", spec, *args]


# ---------------------------------------------------------------- import time


def import_profile(env: dict[str, str] | None = None, repeat: int = 5, code: str = "import archdsl.cli",
                   cwd: Path = ROOT) -> tuple[Counter, set[str]]:
    """Median self import time (ms) per top-level package over `repeat` runs of
    ``python -X importtime -c CODE`` (after one untimed run that caches the bytecode), and
    the set of modules imported."""
    env = env if env is not None else cold_env()
    subprocess.run([PYTHON, "-c", code], cwd=cwd, env=env, capture_output=True)
    samples: dict[str, list[float]] = {}
    modules: set[str] = set()
    for _ in range(repeat):
        out = subprocess.run([PYTHON, "-X", "importtime", "-c", code], cwd=cwd, env=env, capture_output=True,
                             text=True, check=True).stderr
        per: Counter = Counter()
        for line in out.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
            if m:
                per[m.group(4).split(".")[0]] += int(m.group(1)) / 1000
                modules.add(m.group(4))
        for k, v in per.items():
            samples.setdefault(k, []).append(v)
    med: Counter = Counter()
    for k, v in samples.items():
        v = sorted(v) + [0.0] * (repeat - len(v))
        med[k] = sorted(v)[len(v) // 2]
    return med, modules


def modules_of_compile(spec: str, env: dict[str, str] | None = None) -> set[str]:
    """Every module `archdsl compile SPEC` imports (to show that torch is not among them)."""
    # cli.main, not the command's cli.run: that ends the process before the modules are listed
    code = ("import sys; sys.argv = ['archdsl', 'compile', %r]\n"
            "from archdsl import cli\n"
            "try:\n    cli.main()\n"
            "except SystemExit:\n    pass\n"
            "sys.stderr.write('\\nMODULES ' + ' '.join(sorted(sys.modules)))") % spec
    out = subprocess.run([PYTHON, "-c", code], cwd=ROOT, env=env if env is not None else cold_env(),
                         capture_output=True, text=True).stderr
    tail = out.rsplit("MODULES ", 1)
    return set(tail[1].split()) if len(tail) == 2 else set()


# ---------------------------------------------------------------- an earlier revision


def checkout_revision(rev: str) -> Path:
    """The tree of `rev` (a commit of this repository) in a temporary folder, via git archive:
    running from there with PYTHONPATH pointing there measures that revision's archdsl (run
    from the repository, `python -c` would find this checkout's archdsl first)."""
    out = Path(tempfile.mkdtemp(prefix="archdsl-baseline-"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def baseline_env(tree: Path, cache: Path | None = None) -> dict[str, str]:
    """The environment of a run of the revision checked out in `tree` (cold unless `cache` is given)."""
    return measured_env(cache, PYTHONPATH=str(tree))


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
