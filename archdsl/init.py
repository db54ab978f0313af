"""Initialisation in the spec: fillers, read and checked without torch.

A filler says how one parameter tensor (a layer's ``weight`` or ``bias``) starts. Specs
write them as expressions, in the names of the papers and of ``torch.nn.init``:

* per kind and scoped like ``act``/``norm``: ``init conv weight=he_normal(fan_out, relu) bias=0``
  (the rest of the body, and the bodies nested in it, block calls included);
* per layer: ``conv2: conv 5x5 p2 -> 256 bias_init=1 weight_init=normal(0, 0.01)``;
* ``init last_bn weight=0``: the batch norm that ends the residual function of every
  ``add`` (its first branch) and ``residual`` (Goyal et al. 2017, §5.1; torchvision's
  ``zero_init_residual``), so that each residual unit starts as the identity.

The fillers and the conventions they follow (fan_in and fan_out as torch.nn.init computes
them: a conv weight (out, in/groups, kh, kw) has fan_in = in/groups*kh*kw and fan_out =
out*kh*kw; a bias takes the fans of its layer's weight):

=================================  =============================================================
``0``, ``1``, ``constant(v)``      every value v (Caffe's "constant" filler)
``normal(mean, std)``              N(mean, std^2) (Caffe's "gaussian"; Krizhevsky et al. 2012)
``uniform(a, b)``                  U(a, b)
``trunc_normal(mean, std)``        N(mean, std^2) redrawn outside mean +- 2 std (TensorFlow's
                                   truncated_normal); ``trunc_normal(mean, std, a, b)``: the
                                   absolute bounds of torch.nn.init.trunc_normal_
``xavier_uniform([gain])``         U(-g sqrt(6/(fan_in+fan_out)), +...) (Glorot & Bengio 2010)
``xavier_normal([gain])``          N(0, g^2 2/(fan_in+fan_out)) (Glorot & Bengio 2010)
``he_normal([mode, act, a])``      N(0, gain^2/fan) with gain = calculate_gain(act, a), mode
                                   fan_in (default) or fan_out, act relu by default (He et al.
                                   2015, "Delving deep into rectifiers", §2.2); alias
                                   ``kaiming_normal``; ``msra`` is Caffe's MSRA filler,
                                   he_normal(fan_in, relu)
``he_uniform([mode, act, a])``     U(-gain sqrt(3/fan), +...); ``he_uniform(fan_in, linear)``
                                   is Caffe's "xavier" filler (variance_norm FAN_IN)
``fan_in_uniform(s)``              U(-s/fan_in, s/fan_in) (LeCun et al. 1998, Appendix A: s = 2.4)
``orthogonal([gain])``             a (semi-)orthogonal matrix (Saxe et al. 2014)
``torch``                          what torch's layer constructor gives (its reset_parameters)
=================================  =============================================================
"""

from __future__ import annotations

from typing import Any, Callable

from . import syntax as P
from .diagnostics import ArchError, Diagnostic, did_you_mean
from .frozen import frozen

#: the parameters each kind's module holds, where it has any (kinds not listed: a weight when
#: the layer has parameters, a bias when the kind has one)
TARGETS: dict[str, tuple[str, ...]] = {
    "conv": ("weight", "bias"), "fc": ("weight", "bias"), "bn": ("weight", "bias"), "prelu": ("weight",),
    "subsample": ("weight", "bias"),
}
#: the selector of `init last_bn`: not a kind, the batch norm ending a residual function
LAST_BN = "last_bn"
#: torch.nn.init.calculate_gain's nonlinearities (leaky_relu takes its slope as a third argument)
GAINS = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
         "sigmoid", "tanh", "relu", "leaky_relu", "selu")
MODES = ("fan_in", "fan_out")

#: filler -> (canonical name, the number of arguments it takes: min, max)
FILLERS: dict[str, tuple[str, int, int]] = {
    "constant": ("constant", 1, 1), "normal": ("normal", 2, 2), "gaussian": ("normal", 2, 2),
    "uniform": ("uniform", 2, 2), "trunc_normal": ("trunc_normal", 2, 4),
    "xavier_uniform": ("xavier_uniform", 0, 1), "glorot_uniform": ("xavier_uniform", 0, 1),
    "xavier_normal": ("xavier_normal", 0, 1), "glorot_normal": ("xavier_normal", 0, 1),
    "he_normal": ("he_normal", 0, 3), "kaiming_normal": ("he_normal", 0, 3), "msra": ("he_normal", 0, 3),
    "he_uniform": ("he_uniform", 0, 3), "kaiming_uniform": ("he_uniform", 0, 3),
    "fan_in_uniform": ("fan_in_uniform", 1, 1), "orthogonal": ("orthogonal", 0, 1), "torch": ("torch", 0, 0),
}


@frozen
class Filler:
    """One filler: its canonical name and its arguments (numbers, or the words of he_*)."""

    name: str
    args: tuple = ()

    def __str__(self) -> str:
        if self.name == "constant":
            return _num(self.args[0])
        if not self.args:
            return self.name
        return f"{self.name}({', '.join(_num(a) if not isinstance(a, str) else a for a in self.args)})"


def _num(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


#: the fillers of one node: (op index: 0 for the layer, 1.. its attached ops, parameter, filler)
NodeInit = tuple[tuple[int, str, Filler], ...]
#: the scoped settings in force: selector (a kind's name or last_bn) -> {parameter: filler}
Scope = dict[str, dict[str, Filler]]


def _fail(message: str, span: P.Span, code: str = "E701", **kw) -> ArchError:
    return ArchError(Diagnostic(code, message, span, **kw))


def read_filler(expr: P.Expr, evaluate: Callable[[P.Expr], Any]) -> Filler:
    """A filler expression: a number (a constant), a filler's name, a filler call, or
    `A if COND else B` choosing between fillers when the spec is compiled."""
    if type(expr) is P.Cond:
        return read_filler(expr.body if evaluate(expr.test) else expr.orelse, evaluate)
    if type(expr) is P.Name and expr.id in FILLERS:
        expr = P.Func(span=expr.span, name=expr.id, args=())
    if type(expr) is P.Func and expr.name in FILLERS:
        name, lo, hi = FILLERS[expr.name]
        if not lo <= len(expr.args) <= hi:
            takes = f"{lo}" if lo == hi else f"{lo} to {hi}"
            raise _fail(f"{expr.name} takes {takes} argument{'s' * (hi != 1)}, {len(expr.args)} given", expr.span,
                        "E702", expected=_SIGNATURES[name], found=f"{len(expr.args)} arguments")
        if name in ("he_normal", "he_uniform"):
            args = _he_args(expr, evaluate)
        else:
            args = tuple(_number(a, evaluate, expr.name) for a in expr.args)
        return _checked(Filler(name, args), expr)
    if type(expr) in (P.Func, P.Name):
        word = expr.name if type(expr) is P.Func else expr.id
        try:  # a let or a parameter holding a number, min(...): a constant
            return _checked(Filler("constant", (_number(expr, evaluate, "constant"),)), expr)
        except ArchError:
            pass
        raise _fail(f"unknown initialiser '{word}'", expr.span,
                    hint=did_you_mean(word, FILLERS) or "initialisers: " + ", ".join(sorted(set(FILLERS))))
    return _checked(Filler("constant", (_number(expr, evaluate, "constant"),)), expr)


_SIGNATURES = {
    "constant": "constant(value)", "normal": "normal(mean, std)", "uniform": "uniform(low, high)",
    "trunc_normal": "trunc_normal(mean, std) or trunc_normal(mean, std, low, high)",
    "xavier_uniform": "xavier_uniform(gain=1)", "xavier_normal": "xavier_normal(gain=1)",
    "he_normal": "he_normal(fan_in|fan_out, nonlinearity, slope)", "he_uniform": "he_uniform(fan_in|fan_out, nonlinearity, slope)",
    "fan_in_uniform": "fan_in_uniform(scale)", "orthogonal": "orthogonal(gain=1)", "torch": "torch",
}


def _number(expr: P.Expr, evaluate, what: str) -> float | int:
    v = evaluate(expr)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail(f"{what}: expected a number", expr.span, "E702", found=str(v).lower())
    return v


def _he_args(expr: P.Func, evaluate) -> tuple:
    """he_normal(mode, nonlinearity, slope): the two words, then the number."""
    words = []
    for i, (a, allowed) in enumerate(zip(expr.args[:2], (MODES, GAINS))):
        if type(a) is not P.Name or a.id not in allowed:
            shown = a.id if type(a) is P.Name else "an expression"
            raise _fail(f"{expr.name}: {'the mode' if i == 0 else 'the nonlinearity'} must be one of "
                        f"{', '.join(allowed)}", a.span, "E702", found=shown,
                        hint=did_you_mean(shown, allowed) if type(a) is P.Name else None)
        words.append(a.id)
    mode = words[0] if words else "fan_in"
    act = words[1] if len(words) > 1 else "relu"
    slope = _number(expr.args[2], evaluate, expr.name) if len(expr.args) > 2 else 0
    if len(expr.args) > 2 and act != "leaky_relu":
        raise _fail(f"{expr.name}: only leaky_relu takes a slope", expr.args[2].span, "E702",
                    hint="write he_normal(fan_in, leaky_relu, 0.2)")
    return (mode, act, slope) if act == "leaky_relu" else (mode, act)


def _checked(f: Filler, expr: P.Expr) -> Filler:
    """Ranges: a std above 0, low below high, a gain or scale above 0."""
    a = f.args
    bad = None
    if f.name in ("normal", "trunc_normal") and not a[1] > 0:
        bad = ("the std must be above 0", a[1])
    elif f.name == "uniform" and not a[0] < a[1]:
        bad = ("the low bound must be below the high one", f"{_num(a[0])}, {_num(a[1])}")
    elif f.name == "trunc_normal" and len(a) == 3:
        bad = ("takes both bounds or neither", "one bound")
    elif f.name == "trunc_normal" and len(a) == 4 and not a[2] < a[0] < a[3]:
        bad = ("the bounds must enclose the mean", f"mean {_num(a[0])}, bounds {_num(a[2])}, {_num(a[3])}")
    elif f.name in ("xavier_uniform", "xavier_normal", "orthogonal", "fan_in_uniform") and a and not a[0] > 0:
        bad = ("the gain must be above 0" if f.name != "fan_in_uniform" else "the scale must be above 0", a[0])
    if bad is not None:
        raise _fail(f"{str(f).split('(')[0]}: {bad[0]}", expr.span, "E702", found=str(bad[1]))
    return f


# ---------------------------------------------------------------- the `init` statement


def scoped(inv: P.Invocation, scope: Scope, evaluate, kinds: Callable[[str], Any]) -> Scope:
    """The scope after `init SELECTOR weight=F bias=F` (or `init SELECTOR none`, `init none`)."""
    words = [a.bare_word() if type(a) is P.Window else None for a in (*inv.args, *inv.post)]
    if inv.call is not None or inv.out is not None:
        raise _fail("`init` takes a kind and weight=/bias= fillers", inv.span, "E207",
                    hint="write e.g. `init conv weight=he_normal(fan_out, relu) bias=0`")
    if words == ["none"]:
        return {}
    head = inv.args[0] if inv.args else None
    selector = words[0] if words else None
    if selector is None:
        raise _fail("`init` needs a layer kind to initialise", head.span if head else inv.span, "E208",
                    expected="init KIND weight=FILLER bias=FILLER", found="nothing" if head is None else "an expression",
                    hint="e.g. `init conv weight=normal(0, 0.01) bias=0`, or `init last_bn weight=0`")
    kind = kinds(selector) if selector != LAST_BN else None
    if selector != LAST_BN and kind is None:
        raise _fail(f"unknown layer kind '{selector}' to initialise", head.span, "E703",
                    hint=did_you_mean(selector, [*TARGETS, LAST_BN]) or f"kinds with parameters: "
                    f"{', '.join([*TARGETS, LAST_BN])}")
    name = LAST_BN if kind is None else kind.name
    rest = list(zip(words[1:], (*inv.args, *inv.post)[1:]))
    if [w for w, _ in rest] == ["none"]:
        return {k: v for k, v in scope.items() if k != name}
    allowed = TARGETS.get(name, ("weight", "bias") if kind is None or kind.has_bias else ("weight",))
    fillers = dict(scope.get(name, {}))
    for word, a in rest:
        if type(a) is not P.KwArg:
            raise _fail(f"init {name}: expected weight=FILLER or bias=FILLER", a.span, "E207",
                        found=word or "an expression")
        if a.key not in allowed:
            raise _fail(f"{name} has no parameter '{a.key}' to initialise", a.span, "E703", found=a.key,
                        hint=did_you_mean(a.key, allowed) or f"{name} holds: {', '.join(allowed)}")
        if len(a.values) != 1:
            raise _fail(f"init {name}: {a.key} takes one filler", a.span, "E702")
        fillers[a.key] = _matrix_only(read_filler(a.values[0], evaluate), name, a.key, a)
    if not rest:
        raise _fail(f"init {name}: no filler given", inv.span, "E208", expected="weight=FILLER and/or bias=FILLER",
                    found="nothing")
    return {**scope, name: fillers}


def _matrix_only(f: Filler, kind: str, target: str, a: P.KwArg) -> Filler:
    """orthogonal fills matrices: not a bias, a batch norm's gamma or beta, PReLU's slopes."""
    if f.name == "orthogonal" and (target == "bias" or kind in ("bn", "prelu", LAST_BN)):
        raise _fail(f"orthogonal needs a matrix, and {kind}'s {target} is a vector", a.span, "E702")
    return f


#: the per-layer keys
LAYER_KEYS = {"weight_init": "weight", "bias_init": "bias"}


def split_layer(inv: P.Invocation) -> tuple[P.Invocation, tuple[P.KwArg, ...]]:
    """A layer statement without its `weight_init=`/`bias_init=` arguments, and those."""
    if not inv.args and not inv.post:  # most statements: no arguments to look through
        return inv, ()
    own = tuple(a for a in (*inv.args, *inv.post) if type(a) is P.KwArg and a.key in LAYER_KEYS)
    if not own:
        return inv, ()
    keep = lambda args: tuple(a for a in args if not (type(a) is P.KwArg and a.key in LAYER_KEYS))  # noqa: E731
    return P.replace(inv, args=keep(inv.args), post=keep(inv.post)), own


def node_init(kind, params, post, scope: Scope, own: tuple[P.KwArg, ...], evaluate, has_weight: bool) -> NodeInit:
    """The fillers of one layer: the scoped ones of its kind and of its attached ops, the
    layer's own `weight_init=`/`bias_init=` over them."""
    out: list[tuple[int, str, Filler]] = []
    if kind.name in ("bn", "subsample"):  # gamma and beta; the scale's weight and bias
        held = {"weight": has_weight, "bias": has_weight}
    else:
        held = {"weight": has_weight, "bias": bool(kind.has_bias and getattr(params, "bias", True))}
    mine = dict(scope.get(kind.name, {}))
    for a in own:
        target = LAYER_KEYS[a.key]
        if not held[target]:
            raise _fail(f"{kind.name} here has no {target} to initialise", a.span, "E703",
                        hint="remove `nobias`, or the filler" if target == "bias" and kind.has_bias else None)
        if len(a.values) != 1:
            raise _fail(f"{a.key} takes one filler", a.span, "E702")
        mine[target] = _matrix_only(read_filler(a.values[0], evaluate), kind.name, target, a)
    out.extend((0, t, f) for t, f in mine.items() if held[t])
    for i, op in enumerate(post, 1):
        for t, f in scope.get(op.kind.name, {}).items():
            out.append((i, t, f))
    return tuple(out)


def last_bn(infos: dict, inits: dict[str, NodeInit], node: str | None, fillers: dict[str, Filler]) -> None:
    """`init last_bn`: the fillers of the batch norm ending a residual function `node` (the
    layer itself, or the norm attached to it), over any it had."""
    if node is None:
        return
    ops = [infos[node].op, *infos[node].post]
    at = next((i for i in range(len(ops) - 1, -1, -1) if ops[i].kind.name == "bn"), None)
    if at is not None:
        kept = tuple(f for f in inits.get(node, ()) if not (f[0] == at and f[1] in fillers))
        inits[node] = kept + tuple((at, t, f) for t, f in fillers.items())
