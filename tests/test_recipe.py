"""The training recipe (`train { }`): read and checked without torch (archdsl.recipe), in the
report, and as torch objects (archdsl.recipe -> archdsl.optim)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import archdsl
from archdsl import ArchError

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def _net(recipe: str, aux: bool = False):
    head = "aux side { gap; fc 10 noact }" if aux else ""
    return archdsl.compile(f"network n {{\n  input 3x8x8\n  conv 3x3 p1 -> 4\n  {head}\n  gap; fc 10 noact\n"
                           f"  train {{\n{recipe}\n  }}\n}}")


# ---------------------------------------------------------------- the papers' recipes


def test_alexnet_recipe():
    r = archdsl.compile(SPECS / "alexnet.arch", "alexnet").recipe
    assert (r.optimizer, r.hyper, r.batch, r.epochs) == (
        "sgd", {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4}, 128, 90)
    assert r.schedule == "plateau" and r.schedule_args["factor"] == 0.1


def test_inception_v4_recipe():
    r = archdsl.compile(SPECS / "inception_v4.arch", "inception_v4").recipe
    assert (r.optimizer, r.hyper) == ("rmsprop", {"lr": 0.045, "alpha": 0.9, "eps": 1.0})
    assert (r.schedule, r.schedule_args) == ("exponential", {"gamma": 0.94, "every": 2})


def test_resnet_recipes_imagenet_and_cifar():
    r = archdsl.compile(SPECS / "resnet.arch", "resnet50").recipe
    assert (r.hyper, r.batch, r.iterations, r.schedule) == (
        {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4}, 256, 600_000, "plateau")
    c = archdsl.compile(SPECS / "resnet.arch", "resnet20").recipe
    assert (c.batch, c.iterations, c.unit, c.schedule_args) == (
        128, 64_000, "iteration", {"milestones": (32_000, 48_000), "gamma": 0.1})


def test_aux_weights_and_label_smoothing():
    g = archdsl.compile(SPECS / "googlenet.arch", "googlenet").recipe
    assert g.aux_weights == (0.3, 0.3)  # one weight, repeated for both heads
    v3 = archdsl.compile(SPECS / "inception_v3.arch", "inception_v3").recipe
    assert (v3.label_smoothing, v3.aux_weights) == (0.1, (0.4,))


def test_values_are_expressions():
    net = archdsl.compile("let batch = 512\nnetwork n { input 3x8x8; conv 3x3 -> 4; gap; fc 2\n"
                          "  train { optimizer sgd lr=0.1 * batch / 256; batch batch } }")
    assert net.recipe.hyper["lr"] == pytest.approx(0.2) and net.recipe.batch == 512


# ---------------------------------------------------------------- the report


def test_report_training_section_text_and_json():
    net = archdsl.compile(SPECS / "alexnet.arch", "alexnet")
    rep = net.report()
    text = rep.to_table()
    assert "training:\n  optimizer  sgd lr=0.01 momentum=0.9 weight_decay=0.0005\n" in text
    assert "  batch      128   length 90 epochs\n" in text
    assert "  conv.bias    1  (3 layers)" in text
    d = json.loads(rep.to_json())
    assert d["training"]["optimizer"] == {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0005}
    assert d["training"]["batch"] == 128 and d["training"]["schedule"]["name"] == "plateau"
    assert {"layer": "conv2", "op": "conv", "parameter": "bias", "filler": "1"} in d["init"]
    plain = json.loads(archdsl.compile("network n { input 3x8x8; conv 3x3 -> 4 }").report().to_json())
    assert plain["training"] is None and plain["init"] == []


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("body, code, line, text", [
    ("optimiser sgd lr=0.1", "E711", 7, "did you mean 'optimizer'"),
    ("optimizer sdg lr=0.1", "E711", 7, "did you mean 'sgd'"),
    ("optimizer sgd lr=0.1\nschedule cosin", "E711", 8, "did you mean 'cosine'"),
    ("optimizer sgd lrate=0.1", "E202", 7, "sgd"),  # an unknown hyperparameter, did you mean lr
    ("optimizer sgd momentum=0.9", "E208", 7, "the learning rate is missing"),
    ("optimizer sgd lr=0", "E303", 7, "lr must be above 0"),
    ("optimizer sgd lr=0.1 momentum=1.5", "E303", 7, "momentum must be at least 0 and below 1"),
    ("optimizer sgd lr=0.1\noptimizer adam lr=1e-3", "E204", 8, "`optimizer` is given twice"),
    ("optimizer sgd lr=0.1\nepochs 0", "E303", 8, "at least 1"),
    ("optimizer sgd lr=0.1\nepochs 10\niterations 100", "E713", 9, "`epochs` or `iterations`"),
    ("optimizer sgd lr=0.1\nschedule plateau\nwarmup 5", "E713", 9, "plateau"),
    ("optimizer sgd lr=0.1\nschedule multistep 60,30", "E303", 8, "must increase"),
    ("optimizer sgd lr=0.1\nschedule step", "E208", 8, "every=N"),
    ("optimizer sgd lr=0.1\nloss cross_entropy label_smoothing=1.5", "E303", 8, "label_smoothing"),
    ("optimizer sgd lr=0.1\nloss cross_entropy aux_weight=0.3", "E713", 8, "no aux heads"),
    ("optimizer sgd lr=0.1\nconv 3x3 -> 4", "E711", 8, "unknown training statement 'conv'"),
])
def test_recipe_errors_are_located(body, code, line, text):
    with pytest.raises(ArchError) as e:
        _net(body)
    d = e.value.diagnostics[0]
    assert (d.code, d.span.line) == (code, line) and text in e.value.render(), e.value.render()


def test_aux_weight_count_must_match_the_heads():
    with pytest.raises(ArchError) as e:
        _net("optimizer sgd lr=0.1\nloss cross_entropy aux_weight=0.3,0.3", aux=True)
    assert e.value.code == "E713" and "2 aux weights for 1 aux heads" in e.value.render()


def test_one_recipe_per_network():
    with pytest.raises(ArchError) as e:
        archdsl.compile("block b() { train { optimizer sgd lr=0.1 } }\n"
                        "network n { input 3x8x8; train { optimizer sgd lr=1 }; b() }")
    assert e.value.code == "E204" and "already has a training recipe" in e.value.render()


# ---------------------------------------------------------------- torch objects


torch = pytest.importorskip("torch")


def _lrs(net, steps_per_epoch: int, steps: int, metric=None) -> list[float]:
    model = archdsl.build(net, seed=0)
    t = archdsl.recipe(net, model, steps_per_epoch)
    out = []
    for _ in range(steps):
        out.append(t.optimizer.param_groups[0]["lr"])
        t.optimizer.step()
        t.step_scheduler(end_of_epoch=False)
    return out


def test_optimizers_are_torchs_with_the_recipes_values():
    net = archdsl.compile(SPECS / "inception_v4.arch", "inception_v4", input="3x75x75")
    model = archdsl.build(net, init=False)  # meta tensors: nothing allocated
    t = archdsl.recipe(net, model.to_empty(device="cpu"))
    assert isinstance(t.optimizer, torch.optim.RMSprop)
    g = t.optimizer.param_groups[0]
    assert (g["lr"], g["alpha"], g["eps"]) == (0.045, 0.9, 1.0)
    d = _net("optimizer sgd lr=0.1 momentum=0.9 nesterov weight_decay=1e-4")
    g = archdsl.recipe(d, archdsl.build(d)).optimizer.param_groups[0]
    assert (g["momentum"], g["nesterov"], g["weight_decay"]) == (0.9, True, 1e-4)
    a = _net("optimizer adamw lr=1e-3 betas=0.9,0.95")
    assert archdsl.recipe(a, archdsl.build(a)).optimizer.param_groups[0]["betas"] == (0.9, 0.95)


def test_schedules_in_epochs_are_stepped_every_step():
    # exponential 0.94 every 2 epochs, 3 steps an epoch: the rate changes after steps 6, 12
    net = _net("optimizer rmsprop lr=0.045\nschedule exponential gamma=0.94 every=2")
    lrs = _lrs(net, 3, 13)
    assert lrs[:6] == [0.045] * 6 and lrs[6] == pytest.approx(0.045 * 0.94) and lrs[12] == pytest.approx(
        0.045 * 0.94 ** 2)
    net = _net("optimizer sgd lr=0.1\nschedule multistep 1,2 gamma=0.1")
    assert _lrs(net, 2, 5) == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
    net = _net("optimizer sgd lr=0.1\nschedule step every=1 gamma=0.5")
    assert _lrs(net, 1, 3) == pytest.approx([0.1, 0.05, 0.025])


def test_warmup_cosine_and_poly():
    net = _net("optimizer sgd lr=1\nepochs 2\nschedule cosine\nwarmup 1 start=0.25")
    lrs = _lrs(net, 4, 8)
    assert lrs[:4] == pytest.approx([0.25, 0.4375, 0.625, 0.8125])  # linear from 0.25 to 1 over 4 steps
    assert lrs[4] == pytest.approx(1.0) and lrs[7] < lrs[6] < lrs[5] < 1
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 4)))
    net = _net("optimizer sgd lr=0.1\nschedule multistep 4 iterations\nwarmup 2 start=0.1 constant")
    assert _lrs(net, 100, 6) == pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01, 0.01])
    net = _net("optimizer sgd lr=1\niterations 4\nschedule poly power=1 iterations")
    assert _lrs(net, 1, 4) == pytest.approx([1, 0.75, 0.5, 0.25])


def test_plateau_is_stepped_per_epoch_with_the_metric():
    net = _net("optimizer sgd lr=0.1\nschedule plateau factor=0.5 patience=0")
    t = archdsl.recipe(net, archdsl.build(net))
    assert t.interval == "epoch"
    for err in (0.5, 0.6):  # no improvement after the first epoch: halved
        t.step_scheduler(end_of_epoch=False)  # nothing per step
        t.step_scheduler(end_of_epoch=True, metric=err)
    assert t.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_loss_weights_the_aux_heads():
    net = _net("optimizer sgd lr=0.1\nloss cross_entropy label_smoothing=0.1 aux_weight=0.3", aux=True)
    model = archdsl.build(net, seed=0).train()
    t = archdsl.recipe(net, model)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    main, aux = model(x)
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    assert torch.allclose(t.loss((main, aux), y), ce(main, y) + 0.3 * ce(aux["side"], y))
    assert torch.allclose(t.loss(main, y), ce(main, y))


def test_a_network_without_a_recipe():
    net = archdsl.compile("network n { input 3x8x8; conv 3x3 -> 4 }")
    with pytest.raises(ArchError) as e:
        archdsl.recipe(net, archdsl.build(net))
    assert e.value.code == "E713"
