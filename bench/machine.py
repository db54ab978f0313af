"""The machine and software a benchmark ran on, for the report's header."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata

from .models import ROOT

PACKAGES = ("archdsl", "torch", "torchvision", "timm", "pydantic", "lark", "networkx", "click", "rich",
            "fvcore", "ptflops", "thop", "torchinfo", "calflops")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def load_average() -> str:
    try:
        return " / ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


def versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "archdsl"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return rev + (" (with uncommitted changes in archdsl/)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def describe() -> dict[str, str]:
    import torch

    mem = memory_gib()
    return {
        "CPU": f"{cpu_model()}, {os.cpu_count()} logical cores",
        "memory": f"{mem:.0f} GiB" if mem else "?",
        "OS": platform.platform(),
        "Python": sys.version.split()[0] + f" ({platform.python_implementation()})",
        "torch threads": str(torch.get_num_threads()),
        "CUDA": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device",
        "archdsl revision": git_revision(),
    }
