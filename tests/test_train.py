"""`archdsl train` (archdsl.train): digits and ImageFolder data, metrics and checkpoints,
--resume continuing bit for bit, and data-parallel training under torchrun (gloo, 2 CPU
processes) equal to one process with the combined batch."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

import archdsl  # noqa: E402
from archdsl.cli import main  # noqa: E402
from archdsl.train import Config, fit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

#: a network small enough to train in a second on the 8x8 digits; no dropout or batch norm,
#: so that one process and two see exactly the same computation
TINY = """
network tiny(classes=10) {
  input 1x8x8
  act relu
  conv 3x3 p1 -> 8
  maxpool 2
  fc classes noact
  train { optimizer sgd lr=0.1 momentum=0.9; batch 32; epochs 2; schedule cosine; warmup 5 iterations }
}
"""


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _steps(path: Path) -> list[float]:
    with open(path / "steps.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_resume_continues_bit_for_bit(tmp_path, one_thread):
    net = archdsl.compile(TINY)
    whole = fit(net, Config(out=tmp_path / "a", progress=False), log=lambda s: None)
    # stop in the middle of the second epoch (43 steps an epoch), then resume
    fit(net, Config(out=tmp_path / "b", max_steps=50, progress=False), log=lambda s: None)
    resumed = fit(net, Config(out=tmp_path / "b", resume=True, progress=False), log=lambda s: None)
    assert len(whole["losses"]) == 86 and len(resumed["losses"]) == 36
    assert whole["losses"][50:] == resumed["losses"]           # the same next-step losses, exactly
    assert _steps(tmp_path / "a") == _steps(tmp_path / "b")
    a, b = whole["model"].state_dict(), resumed["model"].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert whole["val_accuracy"] > 0.8
    with open(tmp_path / "b" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "43"), ("2", "50"), ("2", "86")]


def test_cli_trains_on_digits_with_checkpoints_and_metrics(tmp_path, one_thread):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(spec), "--out", str(out), "--epochs", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "tiny: 1,370 parameters; 1,347 training and 450 validation samples; batch 32, 1 epochs" in r.output
    assert "epoch   1/1: train loss" in r.output and "val accuracy" in r.output
    with open(out / "metrics.csv") as f:
        row = next(csv.DictReader(f))
    assert set(row) == {"epoch", "step", "train_loss", "val_loss", "val_accuracy", "lr", "images_per_second",
                        "seconds"}
    state = torch.load(out / "last.pt", weights_only=False)
    assert state["epoch"] == 1 and state["step"] == 43 and set(state) >= {"model", "optimizer", "scheduler", "rng"}
    # --resume of a finished run trains nothing more; a missing checkpoint is a usage error
    r = CliRunner().invoke(main, ["train", str(spec), "--out", str(tmp_path / "none"), "--resume"])
    assert r.exit_code == 2 and "no checkpoint" in r.output


def test_cli_trains_on_an_image_folder(tmp_path, one_thread):
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("val", 4)):
        for c, colour in enumerate(((200, 30, 30), (30, 30, 200), (30, 200, 30))):
            folder = tmp_path / "data" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                noise = torch.randint(0, 40, (12, 12, 3), generator=gen)
                pixels = (torch.tensor(colour) + noise).clamp(0, 255).to(torch.uint8).numpy()
                Image.fromarray(pixels).save(folder / f"{i}.png")
    spec = tmp_path / "rgb.arch"
    spec.write_text(TINY.replace("input 1x8x8", "input 3x8x8").replace("batch 32", "batch 8"))
    r = CliRunner().invoke(main, ["train", str(spec), "--data", str(tmp_path / "data"), "--out",
                                  str(tmp_path / "run"), "--epochs", "3", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "compiled with classes=3 for the data" in r.output
    assert "36 training and 12 validation samples" in r.output
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert float(list(csv.DictReader(f))[-1]["val_accuracy"]) == 1.0  # three colours: easy


def test_mixed_precision_on_the_cpu(tmp_path, one_thread):
    # bfloat16 autocast (no grad scaler: float16 scaling is for CUDA); the weights stay float32
    net = archdsl.compile(TINY)
    r = fit(net, Config(out=tmp_path / "bf16", max_steps=3, precision="bf16", progress=False), log=lambda s: None)
    assert len(r["losses"]) == 3 and all(v == v for v in r["losses"])  # no NaN
    assert all(p.dtype == torch.float32 for p in r["model"].parameters())


def test_a_spec_without_a_recipe_cannot_train(tmp_path):
    spec = tmp_path / "plain.arch"
    spec.write_text("network plain { input 1x8x8; conv 3x3 -> 4; gap; fc 10 }")
    r = CliRunner().invoke(main, ["train", str(spec), "--out", str(tmp_path / "run")])
    assert r.exit_code == 1 and "error[E713]" in r.output and "states no training recipe" in r.output


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun is not installed")
def test_torchrun_two_processes_equal_one_process_with_the_combined_batch(tmp_path, one_thread):
    spec = tmp_path / "tiny.arch"
    spec.write_text(TINY)
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "archdsl", "train", str(spec),
                           "--out", str(tmp_path / "ddp"), "--max-steps", "6", "--no-progress", "--threads", "1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "batch 32 (16 on each of 2 processes)" in out
    assert "weights identical on all 2 processes: yes" in out          # rank 1 holds rank 0's weights, exactly
    assert out.count("epoch   1/2") == 1                               # rank 0 alone prints
    single = fit(archdsl.compile(spec), Config(out=tmp_path / "one", max_steps=6, progress=False), log=lambda s: None)
    ddp = _steps(tmp_path / "ddp")
    assert len(ddp) == 6
    # the mean of the two halves' losses is the loss of the combined batch: equal up to the
    # order of float32 sums
    assert ddp == pytest.approx(single["losses"], rel=1e-5, abs=1e-6)
    a = torch.load(tmp_path / "ddp" / "last.pt", weights_only=False)["model"]
    b = single["model"].state_dict()
    assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a)


def test_python_dash_m_archdsl_is_the_command(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "archdsl", "train", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and "--resume" in proc.stdout and "torchrun" in proc.stdout
