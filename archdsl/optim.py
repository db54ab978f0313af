"""A spec's training recipe (:mod:`archdsl.recipe`) as torch objects: optimizer, scheduler, loss.

Conventions:

* The optimizer is torch.optim's, with the recipe's hyperparameters under torch's names
  (RMSProp's decay is torch's ``alpha``; torch adds ``eps`` outside the square root, as
  the paper's TensorFlow did not: eps = 1.0 there and here are close, not equal). Weight
  decay applies to every parameter, as the papers and Caffe's solvers do.
* The scheduler is torch.optim.lr_scheduler's and is stepped once per optimizer step
  (``interval == "step"``): a schedule in epochs is converted with `steps_per_epoch`
  (StepLR's step_size = every x steps_per_epoch, and so on), so a warm-up ramps every step
  (Goyal et al. 2017, §2.2) and a cosine decays smoothly. The one exception is ``plateau``
  (ReduceLROnPlateau), stepped once per epoch with the validation metric
  (``interval == "epoch"``). With steps_per_epoch=1 every schedule moves once per epoch.
* The loss is cross-entropy with the recipe's label smoothing (Szegedy et al. 2016,
  Inception-v3 §7); in training mode a network with aux heads adds each head's loss times
  its weight (Szegedy et al. 2015, GoogLeNet §5: 0.3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .diagnostics import ArchError, Diagnostic
from .network import CompiledNetwork
from .recipe import Recipe


class RecipeLoss(nn.Module):
    """Cross-entropy on the main output, plus the weighted aux losses when the model
    returns ``(main, {head: logits})`` (archdsl's training-mode aux contract)."""

    def __init__(self, label_smoothing: float = 0.0, aux_weights: dict[str, float] | None = None):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.aux_weights = dict(aux_weights or {})

    def forward(self, output: Any, target: torch.Tensor) -> torch.Tensor:
        if isinstance(output, tuple):
            main, aux = output
            loss = self.ce(main, target)
            for name, logits in aux.items():
                w = self.aux_weights.get(name, 0.0)
                if w:
                    loss = loss + w * self.ce(torch.flatten(logits, 1), target)
            return loss
        return self.ce(torch.flatten(output, 1), target)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.ce.label_smoothing}, aux_weights={self.aux_weights}"


@dataclass
class Training:
    """What :func:`archdsl.recipe` returns."""

    optimizer: torch.optim.Optimizer
    scheduler: Any  # an LRScheduler, or ReduceLROnPlateau
    loss: RecipeLoss
    #: "step": call scheduler.step() after every optimizer step; "epoch": once per epoch with the metric
    interval: str
    recipe: Recipe
    #: the total optimizer steps, when the recipe states a length
    total_steps: int | None

    def step_scheduler(self, end_of_epoch: bool, metric: float | None = None) -> None:
        if self.interval == "step" and not end_of_epoch:
            self.scheduler.step()
        elif self.interval == "epoch" and end_of_epoch and metric is not None:
            self.scheduler.step(metric)


def require_recipe(net: CompiledNetwork) -> Recipe:
    if net.recipe is None:
        raise ArchError(Diagnostic("E713", f"network '{net.name}' states no training recipe", net.span,
                                   hint="add `train { optimizer sgd lr=0.1; batch 128; epochs 90 }` to its body"),
                        net.sources)
    return net.recipe


def make_optimizer(r: Recipe, params) -> torch.optim.Optimizer:
    h = dict(r.hyper)
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop}[r.optimizer]
    if "betas" in h:
        h["betas"] = tuple(h["betas"])
    return cls(params, **h)


def make_scheduler(r: Recipe, opt: torch.optim.Optimizer, steps_per_epoch: int = 1) -> tuple[Any, str]:
    """The recipe's schedule (and warm-up) as torch schedulers, and how to step them."""
    sched = torch.optim.lr_scheduler
    a = r.schedule_args
    per = 1 if r.unit == "iteration" else steps_per_epoch
    if r.schedule == "plateau":
        return sched.ReduceLROnPlateau(opt, mode="min", factor=a["factor"], patience=a["patience"],
                                       threshold=a["threshold"], cooldown=a["cooldown"], min_lr=a["min_lr"]), "epoch"
    warm = r.warmup * (1 if r.warmup_unit == "iteration" else steps_per_epoch)
    if r.schedule == "step":
        main = sched.StepLR(opt, step_size=a["every"] * per, gamma=a["gamma"])
    elif r.schedule == "exponential":  # decayed by gamma every N epochs (Szegedy et al. 2016: 0.94 every 2)
        main = sched.StepLR(opt, step_size=a["every"] * per, gamma=a["gamma"])
    elif r.schedule == "multistep":
        main = sched.MultiStepLR(opt, milestones=[m * per - warm for m in a["milestones"]], gamma=a["gamma"])
    elif r.schedule in ("cosine", "poly"):
        total = total_steps(r, steps_per_epoch)
        if total is None:
            raise ArchError(Diagnostic("E713", f"a {r.schedule} schedule needs the training length",
                                       r.spans.get("schedule"), hint="add `epochs N` or `iterations N`"))
        if r.schedule == "cosine":  # Loshchilov & Hutter 2017, without restarts
            main = sched.CosineAnnealingLR(opt, T_max=max(1, total - warm), eta_min=a["min_lr"])
        else:  # Caffe's "poly": lr (1 - t/T)^power
            main = sched.PolynomialLR(opt, total_iters=max(1, total - warm), power=a["power"])
    else:
        main = sched.LambdaLR(opt, lambda step: 1.0)
    if not r.warmup:
        return main, "step"
    # linear warm-up from start x lr to lr over the first `warm` steps, then the schedule
    if r.warmup_shape == "constant":  # He et al. 2016b, §4.2: 0.01 for 400 iterations, then 0.1
        ramp = sched.ConstantLR(opt, factor=r.warmup_start, total_iters=warm)
    else:
        ramp = sched.LinearLR(opt, start_factor=max(r.warmup_start, 1e-8), end_factor=1.0, total_iters=warm)
    return sched.SequentialLR(opt, [ramp, main], milestones=[warm]), "step"


def total_steps(r: Recipe, steps_per_epoch: int) -> int | None:
    if r.iterations:
        return r.iterations
    return r.epochs * steps_per_epoch if r.epochs else None


def recipe(net: CompiledNetwork, model: nn.Module, steps_per_epoch: int = 1,
           parameters=None) -> Training:
    """The optimizer, scheduler and loss of `net`'s `train { }` for `model` (built from it).

    `steps_per_epoch` converts the schedule's epochs into optimizer steps (1: step the
    scheduler once per epoch); `parameters` defaults to ``model.parameters()``.
    """
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be a positive int, not {steps_per_epoch!r}")
    r = require_recipe(net)
    opt = make_optimizer(r, model.parameters() if parameters is None else parameters)
    scheduler, interval = make_scheduler(r, opt, steps_per_epoch)
    weights = dict(zip(net.aux_outputs, r.aux_weights))
    loss = RecipeLoss(r.label_smoothing, weights)
    return Training(opt, scheduler, loss, interval, r, total_steps(r, steps_per_epoch))
