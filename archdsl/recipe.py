"""The training recipe in the spec: `train { ... }`, read and checked without torch.

A network (or a block it calls) states how the paper trained it::

    train {
      optimizer sgd lr=0.01 momentum=0.9 weight_decay=5e-4
      batch 128
      epochs 90
      schedule plateau factor=0.1
      loss cross_entropy label_smoothing=0.1 aux_weight=0.3
    }

Every statement is read like a layer's arguments (:class:`archdsl.layers.base.Args`), so
its values are expressions (``lr=0.1 * batch / 256``) and a mistake is a located
diagnostic. :mod:`archdsl.optim` turns a :class:`Recipe` into torch objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import syntax as P
from .diagnostics import ArchError, Diagnostic, Note, did_you_mean
from .layers.base import Args

#: optimizer -> its hyperparameters as torch.optim names them (and their defaults there)
OPTIMIZERS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": None, "momentum": 0.0, "weight_decay": 0.0, "dampening": 0.0, "nesterov": False},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2, "amsgrad": False},
    "rmsprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0, "centered": False},
}
SCHEDULES = ("constant", "step", "multistep", "exponential", "plateau", "cosine", "poly")
STATEMENTS = ("optimizer", "batch", "epochs", "iterations", "schedule", "warmup", "loss")
LOSSES = ("cross_entropy",)


@dataclass
class Recipe:
    """A network's training recipe. Lengths count epochs unless `unit` says iterations."""

    optimizer: str = "sgd"
    hyper: dict[str, Any] = field(default_factory=dict)
    batch: int | None = None
    epochs: int | None = None
    iterations: int | None = None
    schedule: str = "constant"
    schedule_args: dict[str, Any] = field(default_factory=dict)
    #: "epoch" or "iteration": what the schedule's and the warm-up's numbers count
    unit: str = "epoch"
    warmup: int = 0
    warmup_start: float = 0.0
    #: "linear" (from warmup_start x lr up to lr) or "constant" (warmup_start x lr, then lr)
    warmup_shape: str = "linear"
    #: what the warm-up's length counts: the schedule's unit unless it says `iterations`
    warmup_unit: str = "epoch"
    loss: str = "cross_entropy"
    label_smoothing: float = 0.0
    #: one weight per aux head, in the spec's order (a single weight is repeated)
    aux_weights: tuple[float, ...] = ()
    span: P.Span | None = None
    spans: dict[str, P.Span] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimizer": {"name": self.optimizer, **{k: list(v) if isinstance(v, tuple) else v
                                                    for k, v in self.hyper.items()}},
            "batch": self.batch, "epochs": self.epochs, "iterations": self.iterations,
            "schedule": {"name": self.schedule, "unit": self.unit, **{
                k: list(v) if isinstance(v, tuple) else v for k, v in self.schedule_args.items()}},
            "warmup": {"length": self.warmup, "unit": self.warmup_unit, "start_factor": self.warmup_start,
                       "shape": self.warmup_shape}
            if self.warmup else None,
            "loss": {"name": self.loss, "label_smoothing": self.label_smoothing, "aux_weights": list(self.aux_weights)},
        }

    def lines(self) -> list[str]:
        """The report's training section, one statement a line."""
        kv = lambda d: " ".join(f"{k}={_show(v)}" for k, v in d.items())  # noqa: E731
        unit = "iterations" if self.unit == "iteration" else "epochs"
        out = [f"optimizer  {self.optimizer} {kv(self.hyper)}".rstrip()]
        length = f"{self.epochs} epochs" if self.epochs else (f"{self.iterations:,} iterations" if self.iterations
                                                              else "not stated")
        out.append(f"batch      {self.batch if self.batch else 'not stated'}   length {length}")
        out.append(f"schedule   {self.schedule} {kv(self.schedule_args)}".rstrip()
                   + (f" (in {unit})" if self.schedule_args and self.schedule not in ("plateau",) else ""))
        if self.warmup:
            how = "linear from" if self.warmup_shape == "linear" else "constant at"
            wunit = "iterations" if self.warmup_unit == "iteration" else "epochs"
            out.append(f"warmup     {self.warmup} {wunit}, {how} {self.warmup_start:g} x lr")
        loss = f"loss       {self.loss}"
        if self.label_smoothing:
            loss += f" label_smoothing={self.label_smoothing:g}"
        if self.aux_weights:
            loss += f" aux_weight={','.join(f'{w:g}' for w in self.aux_weights)}"
        out.append(loss)
        return out


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return ",".join(_show(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _fail(message: str, span: P.Span | None, code: str = "E711", **kw) -> ArchError:
    return ArchError(Diagnostic(code, message, span, **kw))


def read(merge: P.Merge, evaluate: Callable[[P.Expr], Any], previous: Recipe | None) -> Recipe:
    """The recipe of a `train { ... }` statement."""
    if previous is not None:
        raise _fail("the network already has a training recipe", merge.kind_span, "E204",
                    notes=(Note("the first one is here", previous.span),),
                    hint="a network has one `train { }`: merge the two")
    if merge.options or len(merge.branches) != 1:
        bad = merge.options[0].span if merge.options else merge.branches[1].span
        raise _fail("`train` takes one body of statements", bad, "E207", hint="write `train { optimizer sgd lr=0.1; ... }`")
    r = Recipe(span=merge.kind_span)
    for s in merge.branches[0].stmts:
        if type(s) is P.Invocation and s.name not in STATEMENTS:
            raise _fail(f"unknown training statement '{s.name}'", s.name_span, "E711",
                        hint=did_you_mean(s.name, STATEMENTS) or "its statements: " + ", ".join(STATEMENTS))
        if type(s) is not P.Invocation or s.label or s.call is not None or s.out is not None:
            span = s.name_span if type(s) is P.Invocation else s.span
            raise _fail("a training recipe holds statements such as `optimizer sgd lr=0.1`", span, "E711",
                        hint="its statements: " + ", ".join(STATEMENTS))
        if s.name in r.spans:
            raise _fail(f"`{s.name}` is given twice", s.name_span, "E204",
                        notes=(Note("first given here", r.spans[s.name]),))
        r.spans[s.name] = s.span
        a = Args(s.name, s.span, [x for x in s.args if type(x) is not P.KwArg],
                 {x.key: x for x in s.args if type(x) is P.KwArg}, None, None, evaluate)
        _READERS[s.name](r, a, s)
        a.finish()
    if r.epochs and r.iterations:
        raise _fail("give the training length once: `epochs` or `iterations`", r.spans["iterations"], "E713",
                    notes=(Note("epochs given here", r.spans["epochs"]),))
    if r.warmup and r.schedule == "plateau":
        raise _fail("a warm-up cannot precede a plateau schedule (torch's SequentialLR cannot chain it)",
                    r.spans["warmup"], "E713", hint="use a step or multistep schedule after a warm-up")
    return r


def _word(a: Args, s: P.Invocation, choices, what: str) -> tuple[str, P.Span]:
    first = s.args[0] if s.args else None
    word = first.bare_word() if type(first) is P.Window else None
    if word is None:
        raise _fail(f"{s.name}: missing {what}", s.span if first is None else first.span, "E208",
                    expected=f"one of {', '.join(choices)}", found="nothing" if first is None else "a value")
    if word not in choices:
        raise _fail(f"unknown {what} '{word}'", first.span, "E711",
                    hint=did_you_mean(word, choices) or f"{what}s: " + ", ".join(choices))
    a.flag(word)
    return word, first.span


def _positive(v: float, what: str, a: Args, key: str, strict: bool = True, below: float | None = None) -> None:
    ok = (v > 0 if strict else v >= 0) and (below is None or v < below)
    if not ok:
        rng = f"{'above' if strict else 'at least'} 0" + (f" and below {below:g}" if below is not None else "")
        raise _fail(f"{a.kind}: {what} must be {rng}", a.kw_span(key) or a.span, "E303",
                    expected=rng, found=f"{v:g}")


def _optimizer(r: Recipe, a: Args, s: P.Invocation) -> None:
    name, _ = _word(a, s, tuple(OPTIMIZERS), "optimizer")
    r.optimizer = name
    defaults = OPTIMIZERS[name]
    hyper: dict[str, Any] = {}
    for key, default in defaults.items():
        span = a.kw_span(key)
        if isinstance(default, bool):
            if a.flag(key):
                hyper[key] = True
            continue
        if key == "alpha" and span is None and a.kw_span("decay"):  # the papers' (TensorFlow's) name
            key, span = "decay", a.kw_span("decay")
        if key == "betas":
            v = a.kw("betas", integer=False, count=2)
        else:
            v = a.kw(key, integer=False)
        if v is None:
            continue
        key = "alpha" if key == "decay" else key
        for x in (v if isinstance(v, tuple) else (v,)):
            if key in ("momentum", "dampening", "betas", "alpha"):
                _positive(x, key, a, key, strict=False, below=1 if key != "dampening" else 1.000001)
            elif key == "lr" or key == "eps":
                _positive(x, key, a, key)
            else:
                _positive(x, key, a, key, strict=False)
        hyper[key] = v
    if "lr" not in hyper:
        a.finish()  # a misspelt lr= is reported as such (E202, did you mean)
        raise _fail(f"optimizer {name}: the learning rate is missing", s.span, "E208", expected="lr=...",
                    hint=f"write e.g. `optimizer {name} lr=0.1`")
    if hyper.get("nesterov") and not hyper.get("momentum"):
        raise _fail("sgd: nesterov needs a momentum", s.span, "E713", hint="add momentum=0.9")
    r.hyper = {"lr": hyper.pop("lr"), **hyper}


def _count(r: Recipe, a: Args, s: P.Invocation) -> None:
    setattr(r, s.name, a.number(s.name, minimum=1))


def _schedule(r: Recipe, a: Args, s: P.Invocation) -> None:
    name, _ = _word(a, s, SCHEDULES, "schedule")
    r.schedule = name
    if a.flag("iterations"):
        r.unit = "iteration"
    args: dict[str, Any] = {}
    if name == "step":
        args["every"] = a.kw("every", minimum=1)
        if args["every"] is None:
            raise _fail("schedule step: missing every=N (epochs between decays)", s.span, "E208", expected="every=N")
        args["gamma"] = a.kw("gamma", integer=False, default=0.1)
    elif name == "multistep":
        if a.has_positional():
            milestones, span = a.int_list("milestones")
        else:
            raise _fail("schedule multistep: missing the milestones", s.span, "E208", expected="e.g. 30,60,80")
        if list(milestones) != sorted(set(milestones)):
            raise _fail("schedule multistep: the milestones must increase", span, "E303",
                        found=",".join(map(str, milestones)))
        args["milestones"] = milestones
        args["gamma"] = a.kw("gamma", integer=False, default=0.1)
    elif name == "exponential":
        args["gamma"] = a.kw("gamma", integer=False)
        if args["gamma"] is None:
            raise _fail("schedule exponential: missing gamma=G (the factor per decay)", s.span, "E208")
        args["every"] = a.kw("every", minimum=1, default=1)
    elif name == "plateau":
        args["factor"] = a.kw("factor", integer=False, default=0.1)
        args["patience"] = a.kw("patience", minimum=0, default=10)
        args["threshold"] = a.kw("threshold", integer=False, default=1e-4)
        args["cooldown"] = a.kw("cooldown", minimum=0, default=0)
        args["min_lr"] = a.kw("min_lr", integer=False, default=0.0)
        _positive(args["factor"], "factor", a, "factor", below=1)
    elif name == "cosine":
        args["min_lr"] = a.kw("min_lr", integer=False, default=0.0)
    elif name == "poly":  # Caffe's "poly" policy: lr (1 - t/T)^power
        args["power"] = a.kw("power", integer=False, default=1.0)
        _positive(args["power"], "power", a, "power")
    if "gamma" in args:
        _positive(args["gamma"], "gamma", a, "gamma", below=1.000001)
    r.schedule_args = args


def _warmup(r: Recipe, a: Args, s: P.Invocation) -> None:
    r.warmup = a.number("warm-up length", minimum=1)
    r.warmup_start = a.kw("start", integer=False, default=0.0)
    _positive(r.warmup_start, "start", a, "start", strict=False, below=1)
    if a.flag("constant"):
        r.warmup_shape = "constant"
        if not 0 < r.warmup_start < 1:
            raise _fail("warmup constant: start=F (the factor of the warm-up's rate) must be above 0",
                        a.kw_span("start") or s.span, "E303", found=f"{r.warmup_start:g}")
    if a.flag("iterations"):
        r.warmup_unit = "iteration"


def _loss(r: Recipe, a: Args, s: P.Invocation) -> None:
    r.loss, _ = _word(a, s, LOSSES, "loss")
    r.label_smoothing = a.kw("label_smoothing", integer=False, default=0.0)
    _positive(r.label_smoothing, "label_smoothing", a, "label_smoothing", strict=False, below=1)
    span = a.kw_span("aux_weight")
    if span is not None:
        arg = a._kw["aux_weight"]
        weights = tuple(a.eval_float(e, "aux_weight") for e in arg.values)
        a._kw.pop("aux_weight")
        for w in weights:
            if w < 0:
                raise _fail("loss: aux_weight must be at least 0", span, "E303", found=f"{w:g}")
        r.aux_weights = weights
        r.spans["aux_weight"] = span


_READERS = {"optimizer": _optimizer, "batch": _count, "epochs": _count, "iterations": _count,
            "schedule": _schedule, "warmup": _warmup, "loss": _loss}


def finish(r: Recipe, aux_heads: list[str]) -> Recipe:
    """Checks that need the whole network: one aux weight, or one per head."""
    if r.unit == "iteration" and "warmup" in r.spans:
        r.warmup_unit = "iteration"  # a schedule in iterations counts its warm-up in them too
    if r.aux_weights:
        span = r.spans["aux_weight"]
        if not aux_heads:
            raise _fail("aux_weight is given but the network has no aux heads", span, "E713",
                        hint="remove aux_weight, or add `aux NAME { ... }` heads")
        if len(r.aux_weights) == 1:
            r.aux_weights = r.aux_weights * len(aux_heads)
        elif len(r.aux_weights) != len(aux_heads):
            raise _fail(f"{len(r.aux_weights)} aux weights for {len(aux_heads)} aux heads", span, "E713",
                        expected=f"1 or {len(aux_heads)} weights ({', '.join(aux_heads)})",
                        found=f"{len(r.aux_weights)}")
    return r
