"""The examples in examples/ run as users run them (a subprocess, from another directory)
and print figures that agree with the specs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    # this checkout's archdsl, whichever one the environment has installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    assert proc.returncode == 0, f"{name} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


def test_quickstart(tmp_path):
    pytest.importorskip("torch")
    out = run_example("quickstart.py", cwd=tmp_path).stdout
    # the inline network: 896 + 9,248 + 18,496 + 36,928 + 650 parameters
    assert "analytic params: 66,218   module numel: 66,218   equal: True" in out
    assert "expect params: ok" in out and "expect output: ok" in out and "FAILED" not in out
    assert "forward: input (4, 3, 32, 32) -> output (4, 10) (inferred 10)" in out
    assert "body.conv_block1.conv1.conv.weight" in out
    # NIN with the figures of the authors' release (reference/figures.md)
    assert "nin: params 966,986, MACs 222,486,528, output (1, 10, 1, 1), module numel 966,986" in out


def test_train_lenet_digits_quick(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    proc = run_example("train_lenet_digits.py", "--quick", "--min-accuracy", "0.8", cwd=tmp_path)
    out = proc.stdout
    assert "lenet5_modern: 61,706 parameters; 1,347 training and 450 validation samples; batch 32, 3 epochs" in out
    assert "adam lr 0.002, cosine schedule" in out  # the recipe of specs/lenet5.arch
    epochs = re.findall(r"epoch +(\d+)/3: train loss ([\d.]+) +val loss [\d.]+ +val accuracy ([\d.]+)%", out)
    assert [int(e) for e, _, _ in epochs] == [1, 2, 3]
    losses = [float(loss) for _, loss, _ in epochs]
    assert losses[-1] < losses[0] / 3, f"the training loss barely fell: {losses}"
    m = re.search(r"final test accuracy: ([\d.]+)% \((\d+)/450\)", out)
    assert m, out
    assert float(m.group(1)) > 80.0
    assert re.search(r"time: [\d.]+ s", out)
    assert (tmp_path / "runs" / "lenet5_modern" / "metrics.csv").is_file()
    assert (tmp_path / "runs" / "lenet5_modern" / "last.pt").is_file()


def test_train_resnet_on_an_image_folder_quick(tmp_path):
    pytest.importorskip("torchvision")
    proc = run_example("train_resnet_folder.py", "--quick", cwd=tmp_path)
    out = proc.stdout
    assert "image folder textures: 4 classes, 24 training and 8 validation images each" in out
    assert "resnet20: compiled with classes=4 for the data" in out
    assert "resnet20: 269,332 parameters; 96 training and 32 validation samples; batch 32, 1 epochs" in out
    assert re.search(r"epoch +1/1: train loss [\d.]+ ", out)
    assert sorted(p.name for p in (tmp_path / "textures" / "train").iterdir()) == [
        "checker", "diagonal", "horizontal", "vertical"]
