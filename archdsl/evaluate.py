"""Stage 4, expressions: names in scope and the values of expressions.

Every value a spec computes is an int, a float or a bool, bounded in size (MAX_VALUE) and
in the work it takes: `**` has a bounded exponent, the built-in functions a bounded
result, and a complex number (``(-8) ** 0.5``) is an error where it is computed, so that
nothing downstream (a channel count, a residual's scale, the JSON report) ever sees one.
"""

from __future__ import annotations

import itertools
import math
import operator
from typing import Any, Callable

from . import syntax as P
from .diagnostics import ArchError, Diagnostic, Suggestion
from .layers.base import Shape

#: the largest value an expression may produce (beyond it, a typo such as 10**100 is assumed)
MAX_VALUE = 10**15
#: the largest |exponent| of `**`
MAX_EXPONENT = 64


class Env:
    """Lexical scope of names: block parameters, lets, repeat indices, file constants."""

    def __init__(self, values: dict[str, Any] | None = None, parent: "Env | None" = None):
        self.values: dict[str, Any] = dict(values or {})
        self.parent = parent

    def lookup(self, name: str) -> Any:
        env: Env | None = self
        while env is not None:
            if name in env.values:
                return env.values[name]
            env = env.parent
        raise KeyError(name)

    def names_so_far(self) -> Callable[[], set[str]]:
        """The names in scope now, listed only when the returned function is called (for a
        hint that is most likely never shown). A scope only ever gains names, in order, so
        the first n names it has then are the n it has now: this costs a length per scope."""
        sizes: list[tuple[dict[str, Any], int]] = []
        env: Env | None = self
        while env is not None:
            sizes.append((env.values, len(env.values)))
            env = env.parent
        return lambda: {name for values, n in sizes for name in itertools.islice(values, n)}

    def child(self, values: dict[str, Any] | None = None) -> "Env":
        return Env(values, self)


#: the value of a name whose `let` failed (that error is reported; uses of the name are not)
POISON = object()


_BIN: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}

_FUNCS: dict[str, Callable[..., Any]] = {
    "min": min, "max": max, "int": int, "abs": abs, "round": round,
    "floor": math.floor, "ceil": math.ceil,
}


def evaluate(expr: P.Expr, env: Env, shape: Shape | None) -> Any:
    """Evaluate an expression; `shape` is the current tensor's, for `in.c`, `in.h`, `in.w`."""
    t = type(expr)
    if t is P.Num or t is P.Bool:
        return expr.value
    if t is P.Name:
        try:
            v = env.lookup(expr.id)
        except KeyError:
            raise ArchError(Diagnostic("E205", f"undefined name '{expr.id}'", expr.span,
                                       hint=Suggestion(expr.id, env.names_so_far()))) from None
        if v is POISON:  # its `let` failed and was reported: fail silently, no second error
            raise ArchError(())
        return v
    if t is P.Attr:
        if expr.obj != "in" or expr.attr not in ("c", "h", "w", "numel"):
            raise ArchError(Diagnostic("E205", f"unknown attribute '{expr.obj}.{expr.attr}'", expr.span,
                                       expected="in.c, in.h, in.w or in.numel"))
        if shape is None:
            raise ArchError(Diagnostic("E407", f"'in.{expr.attr}' used before the input's shape is known",
                                       expr.span, hint="declare `input CxHxW` first"))
        if expr.attr == "numel":
            return shape.numel
        if not shape.spatial and expr.attr != "c":
            raise ArchError(Diagnostic("E408", f"'in.{expr.attr}': the current tensor is flat ({shape})", expr.span))
        return getattr(shape, expr.attr)
    if t is P.BinOp:
        if expr.op == "and":
            return bool(evaluate(expr.left, env, shape)) and bool(evaluate(expr.right, env, shape))
        if expr.op == "or":
            return bool(evaluate(expr.left, env, shape)) or bool(evaluate(expr.right, env, shape))
        a, b = evaluate(expr.left, env, shape), evaluate(expr.right, env, shape)
        for v, side in ((a, expr.left), (b, expr.right)):
            if not isinstance(v, (int, float)):
                raise ArchError(Diagnostic("E207", f"'{expr.op}' needs numbers", side.span,
                                           found=f"{str(v).lower()} (a truth value, not a number)"))
        if expr.op in ("/", "//", "%") and b == 0:
            raise ArchError(Diagnostic("E301", "division by zero", expr.span,
                                       found="the right-hand side is 0"))
        if expr.op == "**" and (abs(b) > MAX_EXPONENT or abs(a) > MAX_VALUE):
            raise ArchError(Diagnostic("E304", "exponent too large", expr.span,
                                       expected=f"|exponent| <= {MAX_EXPONENT}", found=str(b)))
        try:
            v = _BIN[expr.op](a, b)
        except (OverflowError, ZeroDivisionError, ValueError) as err:
            raise ArchError(Diagnostic("E304", f"arithmetic error: {err}", expr.span)) from None
        _check_size(v, expr)
        return v
    if t is P.Neg:
        v = evaluate(expr.operand, env, shape)
        if not isinstance(v, (int, float)):
            raise ArchError(Diagnostic("E207", "'-' needs a number", expr.span,
                                       found=f"{str(v).lower()} (a truth value, not a number)"))
        return -v
    if t is P.Not:
        return not evaluate(expr.operand, env, shape)
    if t is P.Cond:
        return evaluate(expr.body if evaluate(expr.test, env, shape) else expr.orelse, env, shape)
    if t is P.Func:
        fn = _FUNCS.get(expr.name)
        if fn is None:
            raise ArchError(Diagnostic("E205", f"unknown function '{expr.name}'", expr.span,
                                       hint=Suggestion(expr.name, _FUNCS, "functions: " + ", ".join(sorted(_FUNCS)))))
        args = [evaluate(a, env, shape) for a in expr.args]
        if any(type(a) is not bool and not isinstance(a, (int, float)) for a in args):
            raise ArchError(Diagnostic("E207", f"{expr.name}() takes numbers", expr.span))
        if expr.name == "round" and len(args) == 2 and not (isinstance(args[1], int) and abs(args[1]) <= 20):
            # round(x, -10**15) would compute 10**(10**15)
            raise ArchError(Diagnostic("E304", "round(): the number of digits is out of range", expr.args[1].span,
                                       expected="an integer from -20 to 20", found=_shown(args[1])))
        try:
            v = fn(*args)
        except (TypeError, ValueError, OverflowError) as err:
            raise ArchError(Diagnostic("E206", f"{expr.name}(): {err}", expr.span)) from None
        _check_size(v, expr)
        return v
    raise TypeError(f"not an expression: {expr!r}")


def _shown(v: Any) -> str:
    return big(abs(v)) if isinstance(v, int) and not isinstance(v, bool) else str(v)


def _check_size(v: Any, expr: P.Node) -> None:
    if isinstance(v, complex):  # (-8) ** 0.5
        raise ArchError(Diagnostic("E304", "the value is a complex number", expr.span,
                                   expected="a real number", found=f"{v:g}",
                                   hint="a negative number has no real fractional power"))
    if isinstance(v, (int, float)) and not isinstance(v, bool) and (abs(v) > MAX_VALUE or v != v):
        shown = big(abs(v)) if isinstance(v, int) else f"{v:g}"  # an int may be too large for a float
        raise ArchError(Diagnostic("E304", f"the value {'-' if v < 0 else ''}{shown} is absurdly large", expr.span,
                                   expected=f"at most {MAX_VALUE:,}", found=shown))


def big(n: int) -> str:
    # bit_length, not str(): Python refuses to print ints of more than 4,300 digits
    return f"{n:,}" if n < 10**30 else f"about 10^{int(n.bit_length() * 0.30103)}"


def as_int(v: Any, expr: P.Node, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArchError(Diagnostic("E207", f"{what} must be a number", expr.span,
                                   found=f"{str(v).lower()} (a truth value, not a number)"))
    if isinstance(v, float):
        if not v.is_integer():
            raise ArchError(Diagnostic("E302", f"{what} must be an integer", expr.span, expected="an integer",
                                       found=f"{v:g}", hint="use // for integer division"))
        v = int(v)
    return v


