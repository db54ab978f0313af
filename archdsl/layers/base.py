"""The layer-kind protocol and the registry.

A layer kind is one class in one place. It owns:

* its parameters (a frozen dataclass derived from ``Params``) and how they are read from
  the statement's arguments (``bind``);
* its output shape (``infer``), parameter count (``count_params``), multiply-accumulates
  (``macs``) and receptive-field step (``rf``);
* its lowering to PyTorch (``lower``, which is handed the ``torch.nn`` namespace by
  :mod:`archdsl.lower_torch`, so that no kind ever imports torch itself);
* its label in reports and diagrams (``label``).

Adding a kind means adding a class decorated with :func:`register`; neither the grammar
nor any pipeline stage changes.
"""

from __future__ import annotations

import math
from dataclasses import fields
from typing import Any, Callable, ClassVar, Iterable, NamedTuple, Sequence

from ..diagnostics import ArchError, Diagnostic, Suggestion
from ..frozen import frozen
from ..syntax import Expr, KwArg, ListArg, Num, Span, Window


# ---------------------------------------------------------------- shapes


@frozen
class Shape:
    """A tensor shape without the batch dimension: (C, H, W) for maps, (N,) when flat."""

    dims: tuple[int, ...]

    @property
    def spatial(self) -> bool:
        return len(self.dims) == 3

    @property
    def c(self) -> int:
        return self.dims[0]

    @property
    def h(self) -> int:
        return self.dims[1] if self.spatial else 1

    @property
    def w(self) -> int:
        return self.dims[2] if self.spatial else 1

    @property
    def numel(self) -> int:
        return math.prod(self.dims)

    def __str__(self) -> str:
        return "x".join(str(d) for d in self.dims)

    def as_list(self) -> list[int]:
        return list(self.dims)


def chw(c: int, h: int, w: int) -> Shape:
    return Shape((c, h, w))


def flat(n: int) -> Shape:
    return Shape((n,))


class ShapeError(Exception):
    """Raised by a kind's ``infer``; the graph stage attaches the statement's span."""

    def __init__(self, code: str, message: str, expected: str | None = None, found: str | None = None,
                 hint: str | None = None, arg: str | None = None):
        super().__init__(message)
        self.code, self.message, self.expected, self.found, self.hint = code, message, expected, found, hint
        self.arg = arg  # the argument to underline, when one is to blame


@frozen
class RF:
    """One layer's receptive-field step per axis: effective kernel, stride and padding.

    The recurrence is the standard one (Araujo et al., "Computing Receptive Fields of
    Convolutional Neural Networks", Distill 2019): r_out = r_in + (k - 1) * j_in,
    j_out = j_in * s, start_out = start_in + ((k - 1) / 2 - p) * j_in.

    An upsampling layer (convt, upsample) has a stride below one, given as an exact
    fractions.Fraction (1/s, n/m), and fractional paddings: the jump, and the sizes of the
    layers after it, are then exact fractions of an input pixel.
    """

    k: tuple[int, int] = (1, 1)
    s: tuple[int, int] = (1, 1)
    p: tuple[float, float] = (0, 0)


IDENTITY_RF = RF()


class Field(NamedTuple):
    """Receptive field of a tensor, per axis (H, W), in input pixels: its size, its jump
    (the distance between neighbouring outputs) and the centre of its first window.

    A named tuple rather than a frozen dataclass: one is made per node, and a frozen
    dataclass's constructor costs several times as much."""

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    start: tuple[float, float] = (0.5, 0.5)


#: the network input's field: one pixel
INPUT_FIELD = Field()


class Saved(NamedTuple):
    """What one op keeps for its backward pass in training: torch's autograd formulas
    (tools/autograd/derivatives.yaml) say which tensors each op saves. Bytes, not values:
    max-pool indices are int64.

    ``input`` and ``output`` name tensors that other ops may keep too (a convolution keeps
    its input, which is the ReLU's output that the ReLU keeps as well): the storage model in
    :mod:`archdsl.memory` counts each such tensor once. ``extra`` is tensors only this op
    holds, per sample; ``fixed`` those whose size does not grow with the batch."""

    input: bool = False
    output: bool = False
    extra: int = 0
    fixed: int = 0


#: an op that keeps its input (a convolution, a linear layer, average pooling: the weight
#: gradient or the backward kernel reads it)
KEEPS_INPUT = Saved(input=True)
KEEPS_NOTHING = Saved()


def advance(f: Field, step: RF) -> Field:
    """The field after a layer with receptive-field step `step` (the recurrence of :class:`RF`)."""
    (r0, r1), (j0, j1), (s0, s1) = f
    (k0, k1), (t0, t1), (p0, p1) = step.k, step.s, step.p
    return Field((r0 + (k0 - 1) * j0, r1 + (k1 - 1) * j1), (j0 * t0, j1 * t1),
                 (s0 + ((k0 - 1) / 2 - p0) * j0, s1 + ((k1 - 1) / 2 - p1) * j1))


def widest(fields: Sequence[Field]) -> Field:
    """Where branches merge: the largest field (by area, then by size), the first of equals.
    A merge's output depends on every branch, so its field is the union of theirs; with the
    branches' windows centred alike (as in every classic network) that is the largest."""
    rf = fields[0]
    for f in fields[1:]:
        (a0, a1), (b0, b1) = f.size, rf.size
        if (a0 * a1, a0, a1) > (b0 * b1, b0, b1):
            rf = f
    return rf


# ---------------------------------------------------------------- argument reading


Value = Any  # what an evaluated expression gives: int, float or bool


class Args:
    """The arguments of one layer statement, read by a kind's ``bind``.

    Every accessor consumes what it reads; :meth:`finish` then reports whatever the kind
    did not understand, with a "did you mean" over the names it does understand.
    """

    def __init__(self, kind: str, span: Span, positional: list, keywords: dict[str, KwArg],
                 out: Expr | None, out_span: Span | None, evaluate: Callable[[Expr], Value]):
        self.kind = kind
        self.span = span
        self._pos = positional  # Window | ListArg | Expr (from the call form); consumed, as the keywords
        self._kw = keywords
        self._out = out
        self._out_span = out_span
        self._eval = evaluate
        self._known_kw: set[str] = set()
        self._known_flags: set[str] = set()

    # -- errors
    def fail(self, code: str, message: str, span: Span | None = None, **kw) -> ArchError:
        return ArchError(Diagnostic(code, message, span or self.span, **kw))

    # -- evaluation helpers
    def eval_int(self, expr: Expr, what: str, minimum: int | None = 0) -> int:
        v = expr.value if type(expr) is Num else self._eval(expr)  # a literal, most often
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail("E207", f"{self.kind}: {what} must be a number", expr.span,
                            found=f"{str(v).lower()} (a truth value, not a number)")
        if isinstance(v, float):
            if not v.is_integer():
                raise self.fail("E302", f"{self.kind}: {what} must be an integer", expr.span,
                                expected="an integer", found=f"{v:g}", hint="use // for integer division")
            v = int(v)
        if minimum is not None and v < minimum:
            raise self.fail("E303", f"{self.kind}: {what} must be at least {minimum}", expr.span,
                            expected=f">= {minimum}", found=str(v))
        return v

    def eval_float(self, expr: Expr, what: str) -> float:
        v = expr.value if type(expr) is Num else self._eval(expr)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail("E207", f"{self.kind}: {what} must be a number", expr.span,
                            found=f"{str(v).lower()} (a truth value, not a number)")
        return float(v)

    # -- positional arguments
    def has_positional(self) -> bool:
        return bool(self._pos)

    def next_span(self) -> Span:
        """The span of the next positional argument (the statement's when there is none), so
        that a kind's own range check underlines the value at fault."""
        return self._pos[0].span if self._pos else self.span

    def window(self, what: str = "kernel", required: bool = True, ndims: int = 2
               ) -> tuple[tuple[int, ...], tuple[int, ...] | None, Span] | None:
        """`KxK[/S]`, `K[/S]`: a square size is repeated to `ndims`. Returns (size, stride, span)."""
        if not self._pos or not isinstance(self._pos[0], (Window,)) and not _is_expr(self._pos[0]):
            if required:
                raise self.fail("E208", f"{self.kind}: missing {what}", self.span,
                                expected=f"a {what} such as 3x3 or 3/2", found="nothing")
            return None
        w = self._pos.pop(0)
        if _is_expr(w):
            return (self._square(( self.eval_int(w, what, 1),), ndims, w.span, what), None, w.span)
        size = self._square(tuple([self.eval_int(d, what, 1) for d in w.dims]), ndims, w.span, what)
        stride = None
        if w.stride is not None:
            stride = self._square(tuple([self.eval_int(d, "stride", 1) for d in w.stride]), ndims, w.span, "stride")
        return size, stride, w.span

    def _square(self, dims: tuple[int, ...], ndims: int, span: Span, what: str) -> tuple[int, ...]:
        if len(dims) == 1:
            return dims * ndims
        if len(dims) != ndims:
            raise self.fail("E207", f"{self.kind}: a {what} has 1 or {ndims} sizes", span,
                            expected=f"{ndims} sizes", found=f"{len(dims)} sizes")
        return dims

    def number(self, what: str, required: bool = True, integer: bool = True, minimum: int | None = 0):
        """A single positional number: `fc 4096`, `dropout 0.5`, `lrelu 0.1`."""
        if not self._pos:
            if required:
                raise self.fail("E208", f"{self.kind}: missing {what}", self.span, expected=what, found="nothing")
            return None
        a = self._pos[0]
        if isinstance(a, Window):
            if a.stride is not None or len(a.dims) != 1:
                raise self.fail("E207", f"{self.kind}: expected a single number for {what}", a.span,
                                expected=what, found="a window")
            expr = a.dims[0]
        elif _is_expr(a):
            expr = a
        else:
            raise self.fail("E207", f"{self.kind}: expected a single number for {what}", a.span,
                            expected=what, found="a list")
        self._pos.pop(0)
        return self.eval_int(expr, what, minimum) if integer else self.eval_float(expr, what)

    def int_list(self, what: str, minimum: int = 1) -> tuple[tuple[int, ...], Span]:
        """`160,96` (or a single number)."""
        if not self._pos:
            raise self.fail("E208", f"{self.kind}: missing {what}", self.span, expected=what, found="nothing")
        a = self._pos.pop(0)
        if isinstance(a, ListArg):
            return tuple(self.eval_int(e, what, minimum) for e in a.items), a.span
        if isinstance(a, Window) and a.stride is None and len(a.dims) == 1:
            return (self.eval_int(a.dims[0], what, minimum),), a.span
        if _is_expr(a):
            return (self.eval_int(a, what, minimum),), a.span
        raise self.fail("E207", f"{self.kind}: expected a list of numbers for {what}", a.span,
                        expected="a list such as 160,96", found="a window")

    # -- flags and keywords
    def flag(self, word: str) -> bool:
        self._known_flags.add(word)
        for i, a in enumerate(self._pos):
            if isinstance(a, Window) and a.bare_word() == word:
                del self._pos[i]
                return True
        return False

    def kw(self, key: str, what: str | None = None, *, integer: bool = True, minimum: int | None = 0,
           count: int = 1, default=None):
        """`key=value` (or `key=a,b` when count == 2, a single value then repeats)."""
        self._known_kw.add(key)
        arg = self._kw.pop(key, None)
        if arg is None:
            return default
        what = what or key
        conv = (lambda e: self.eval_int(e, what, minimum)) if integer else (lambda e: self.eval_float(e, what))
        vals = tuple(conv(e) for e in arg.values)
        if count == 1:
            if len(vals) != 1:
                raise self.fail("E207", f"{self.kind}: {key} takes one value", arg.span,
                                expected="one value", found=f"{len(vals)} values")
            return vals[0]
        if len(vals) == 1:
            return vals * count
        if len(vals) != count:
            raise self.fail("E207", f"{self.kind}: {key} takes 1 or {count} values", arg.span,
                            expected=f"{count} values", found=f"{len(vals)} values")
        return vals

    def kw_span(self, key: str) -> Span | None:
        a = self._kw.get(key)
        return a.span if a else None

    def out(self, what: str = "output channels", required: bool = True) -> int | None:
        """The `-> C` part."""
        if self._out is None:
            if required:
                raise self.fail("E208", f"{self.kind}: missing the number of {what}", self.span,
                                expected=f"`-> N` with the number of {what}", found="nothing",
                                hint=f"write e.g. `{self.kind} ... -> 64`")
            return None
        out, self._out = self._out, None
        return self.eval_int(out, what, 1)

    def has_out(self) -> bool:
        return self._out is not None

    def finish(self) -> None:
        """Reject anything the kind did not consume."""
        if self._out is not None:
            raise self.fail("E202", f"{self.kind} takes no `->` output", self._out_span or self.span,
                            hint=f"{self.kind} keeps its input's channels")
        for a in self._pos:
            word = a.bare_word() if isinstance(a, Window) else None
            if word is not None:
                raise self.fail("E202", f"{self.kind} has no option '{word}'", a.span,
                                found=word, hint=Suggestion(
                                    word, self._known_flags | self._known_kw,
                                    f"{self.kind} options: " + ", ".join(sorted(self._known_flags | self._known_kw))
                                    if self._known_flags or self._known_kw else f"{self.kind} takes no options"))
            raise self.fail("E206", f"{self.kind}: too many arguments", a.span, found="an extra argument")
        for key, a in self._kw.items():
            raise self.fail("E202", f"{self.kind} has no parameter '{key}'", a.span, found=key,
                            hint=Suggestion(key, self._known_kw | self._known_flags,
                                            f"{self.kind} parameters: " + ", ".join(sorted(self._known_kw))
                                            if self._known_kw else f"{self.kind} takes no parameters"))


def _is_expr(a) -> bool:
    return not isinstance(a, (Window, ListArg, KwArg))


# ---------------------------------------------------------------- the kind protocol


@frozen
class Params:
    """A kind's parameters: a frozen dataclass, compared and hashed by value.

    Each kind declares its own as ``@frozen class XParams(Params)``. Two
    layers written alike give equal params, whatever the spelling (the diff and the
    diagrams compare them): ``__post_init__`` makes an
    int given for a ``float`` field a float and any sequence given for a ``tuple`` field a
    tuple. They are plain dataclasses rather than pydantic models because a compile makes
    thousands of them and, in a short command, building pydantic's validators for them cost
    more than the compile itself.
    """

    def __post_init__(self) -> None:
        cls = type(self)
        todo = cls.__dict__.get("_coercions")
        if todo is None:
            todo = cls._coercions = tuple((f.name, *conv) for f in fields(cls) if (conv := _coercion(f.type)))
        for name, conv, done in todo:
            v = getattr(self, name)
            if type(v) is not done:  # the usual case: already a float or a tuple, nothing to set
                object.__setattr__(self, name, conv(v))

    def but(self, **changes: Any) -> "Params":
        """A copy with `changes`, each value already of its field's type (``bias=False``):
        :func:`dataclasses.replace` without running ``__init__`` again, as a compile does for
        nearly every convolution."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__, **changes)
        return new


def _float(v: Any) -> Any:
    return float(v) if type(v) is int else v


def _floats(v: Any) -> tuple:
    return tuple(_float(x) for x in v)


def _coercion(declared: str) -> tuple[Callable[[Any], Any], type | None] | None:
    """The coercion for a field declared `declared` (a string: these modules postpone
    annotations), as pydantic's lax mode would make it, and the type of the values it leaves
    as they are (None: it looks at every value); None when the value is kept as given."""
    if declared == "float":
        return _float, float
    if declared.startswith("tuple[float"):
        return _floats, None
    if declared.startswith("tuple["):
        return tuple, tuple
    return None


class Kind:
    """Base class of layer kinds. Subclasses set the class variables and override methods."""

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    #: colour group in diagrams and the legend
    category: ClassVar[str] = "other"
    #: one line for docs and `archdsl kinds`
    summary: ClassVar[str] = ""
    example: ClassVar[str] = ""
    #: receives the scoped default activation (`act relu`) after it
    takes_act: ClassVar[bool] = False
    #: receives the scoped default normalisation (`norm bn`) between it and its activation
    takes_norm: ClassVar[bool] = False
    #: is an activation function (usable after `act` and as a per-layer override)
    is_activation: ClassVar[bool] = False
    #: has a bias that `bias on|off|auto` and the flags `bias`/`nobias` control
    has_bias: ClassVar[bool] = False
    #: accepts a flat (N,) input
    accepts_flat: ClassVar[bool] = False
    #: its output is a new tensor that its own backward pass does not read, so an activation
    #: that is its only reader may overwrite it in place (torchvision's ReLU(inplace=True))
    fresh_output: ClassVar[bool] = False
    #: its torch module can overwrite its input (``inplace=True``), which the lowering uses
    #: where the input is a fresh output read by nothing else
    inplace: ClassVar[bool] = False
    #: subtracts a per-channel mean (batch norm): a bias just before it is redundant (Ioffe
    #: and Szegedy 2015, §3.2), so `bias auto` drops it from the layer before
    cancels_bias: ClassVar[bool] = False

    Params: ClassVar[type[Params]] = Params

    def bind(self, a: Args) -> Params:
        return self.Params()

    def with_bias(self, p: Params, bias: bool) -> Params:
        return p

    def infer(self, p: Params, x: Shape) -> Shape:
        return x

    def count_params(self, p: Params, x: Shape, y: Shape) -> int:
        return 0

    def macs(self, p: Params, x: Shape, y: Shape) -> int:
        return 0

    def count_buffers(self, p: Params, x: Shape, y: Shape) -> int:
        """Values the kind's module keeps that are saved with it but not trained (running
        statistics, fixed codes, indices): torch's ``buffers()``, not its ``parameters()``."""
        return 0

    def rf(self, p: Params, x: Shape, y: Shape) -> RF:
        return IDENTITY_RF

    def saved(self, p: Params, x: Shape, y: Shape, in_place: bool) -> Saved:
        """What the kind's lowered op keeps for backward in training, when it runs in place
        (`in_place`) or not. Most ops with weights or windows keep their input."""
        return KEEPS_INPUT

    def is_view(self, p: Params) -> bool:
        """Is the output a view of the input (the same storage: flatten, a channel slice)?"""
        return False

    def label(self, p: Params) -> str:
        return self.name

    def lower(self, p: Params, x: Shape, y: Shape, nn) -> Any:
        raise NotImplementedError(f"{self.name} cannot be lowered to torch")

    def expand(self, p: Params) -> list[tuple[str, Params]] | None:
        """Macro kinds (mlpconv) return the layers they stand for; others return None."""
        return None

    def hyper(self, p: Params) -> dict[str, Any]:
        """Hyperparameters for the markdown report (kernel, stride, padding, ...)."""
        return {}


class MergeKind(Kind):
    """Kinds with several inputs, written `NAME [options] { A | B | ... }`: every branch runs
    on the same input and the kind combines their outputs.

    A merge kind owns, in one place: its options (``bind``, read like a layer's arguments),
    its shape rule over the branches (``infer_many``, raising ShapeError; ``odd_branch``
    names the branch to blame), its counts (``count_params_many``, ``macs_many``), its
    receptive-field rule (``field``), its lowering (``combine``: the merged tensor from the
    branches' outputs, with torch handed in as for ``lower``) and its label.
    """

    category = "merge"
    fresh_output = True
    #: the statement's own branches, at least
    min_branches: ClassVar[int] = 2
    #: the identity is added as a last branch (`residual { F }` is x + S * F(x))
    identity_branch: ClassVar[bool] = False

    def infer_many(self, p: Params, xs: Sequence[Shape]) -> Shape:
        raise NotImplementedError

    def odd_branch(self, p: Params, xs: Sequence[Shape]) -> int:
        """The index of the branch a shape error blames: the first unlike the first."""
        return next((k for k in range(1, len(xs)) if xs[k] != xs[0]), 1)

    def count_params_many(self, p: Params, xs: Sequence[Shape], y: Shape) -> int:
        return 0

    def macs_many(self, p: Params, xs: Sequence[Shape], y: Shape) -> int:
        return 0

    def saved_many(self, p: Params, xs: Sequence[Shape], y: Shape) -> Saved:
        """What the merge keeps for backward (``input``: every branch's output). A sum or a
        concatenation keeps nothing: its backward needs only the shapes."""
        return KEEPS_NOTHING

    def field(self, p: Params, fields: Sequence[Field]) -> Field:
        return widest(fields)

    def combine(self, p: Params, ys: list, lib) -> Any:
        raise NotImplementedError(f"{self.name} cannot be lowered to torch")

    def caption(self, p: Params) -> str:
        """The merge node's text in diagrams."""
        return self.name

    def branch_note(self, p: Params, k: int) -> str | None:
        """What a diagram writes on the edge of branch `k` besides its shape (a scale)."""
        return None


REGISTRY: dict[str, Kind] = {}


def register(cls: type[Kind]) -> type[Kind]:
    """Class decorator: add a kind to the registry under its name and aliases."""
    inst = cls()
    for key in (cls.name, *cls.aliases):
        if key in REGISTRY:
            raise RuntimeError(f"layer kind {key!r} registered twice")
        REGISTRY[key] = inst
    return cls


def lookup(name: str) -> Kind | None:
    return REGISTRY.get(name)


def kinds() -> Iterable[Kind]:
    seen = set()
    for k in REGISTRY.values():
        if id(k) not in seen:
            seen.add(id(k))
            yield k


def pair(v: tuple[int, ...]) -> str:
    """`3x3` for (3, 3) and `1x7` for (1, 7), as the papers print sizes."""
    return "x".join(str(x) for x in v)


def short(v: tuple[int, ...]) -> str:
    """`2` for (2, 2), `1x2` for (1, 2): strides and paddings are printed compactly."""
    return str(v[0]) if len(set(v)) == 1 else "x".join(str(x) for x in v)


def pool_out(size: int, k: int, s: int, p: int, d: int = 1, ceil: bool = False) -> int:
    """Output length of a convolution or pooling window along one axis.

    floor((n + 2p - d(k-1) - 1) / s) + 1, the formula of PyTorch's Conv2d and MaxPool2d
    docs. In ceil mode (Caffe's pooling, PyTorch's ceil_mode=True) the division rounds up,
    but, as in PyTorch, a last window that would start entirely in the right padding is
    dropped.
    """
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        return 0
    if ceil:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + p:
            out -= 1
        return out
    return span // s + 1
