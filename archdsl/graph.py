"""Program -> layer graph: includes loaded, blocks and repetitions expanded, names resolved.

The result of compiling one network is a :class:`CompiledNetwork`:

* ``graph``: a networkx DiGraph whose nodes are named by their module path
  (``inception3a.branch2.conv1``) and carry a :class:`~archdsl.infer.NodeInfo`;
* ``tree``: the same network as nested bodies, branches, block calls and aux heads, which
  :mod:`archdsl.lower_torch` turns into nested modules with the same names.

Names are a pure function of the spec (labels, or the kind and its count in the enclosing
body), so the same spec gives the same graph, module names and state_dict keys every time.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import networkx as nx

from . import program as P
from .diagnostics import ArchError, Collector, Diagnostic, Note, did_you_mean
from .infer import NodeInfo, Op, infer_node
from .layers import REGISTRY, Args, Kind, MergeKind, Shape, ShapeError, lookup
from .layers.base import flat
from .parser import parse, read_source

# ---------------------------------------------------------------- limits

#: the most iterations one `repeat` may run
MAX_REPEAT = 10_000
#: the deepest chain of block calls
MAX_CALL_DEPTH = 64
#: the most nodes one network may expand to
MAX_NODES = 200_000
#: the largest value an expression may produce (beyond it, a typo such as 10**100 is assumed)
MAX_VALUE = 10**15
#: the deepest chain of includes
MAX_INCLUDE_DEPTH = 32


# ---------------------------------------------------------------- the structural tree


@dataclass
class TLayer:
    name: str
    node: str  # graph node id


@dataclass
class TSeq:
    """A body: its items run in order. `block` is set for block calls."""

    name: str
    items: list = field(default_factory=list)
    block: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass
class TMerge:
    """concat / add / residual: branches on the same input, merged by the graph node `node`."""

    name: str
    mode: str  # "concat" | "add"
    branches: list[TSeq]
    node: str
    scales: tuple[float, ...] = ()


@dataclass
class TAux:
    name: str
    body: TSeq


# ---------------------------------------------------------------- files and scopes


@dataclass
class Unit:
    """Everything visible in one file: its own items plus what its includes bring."""

    program: P.Program
    blocks: dict[str, P.Block]
    lets: list[P.Let]  # in order, includes first
    sources: dict[str, str]


class Loader:
    """Parses a file and its includes (relative to the including file), once each."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}
        self._units: dict[str, Unit] = {}

    def load_text(self, source: str, file: str, base_dir: Path | None = None) -> Unit:
        self.sources[file] = source
        try:
            program = parse(source, file)
        except ArchError as e:
            raise e.with_sources(self.sources)
        return self._unit(program, base_dir or Path(file).parent, stack=[file])

    def load_file(self, path: str | Path) -> Unit:
        path = Path(path)
        source = read_source(path)
        return self.load_text(source, str(path), path.parent)

    def _unit(self, program: P.Program, base_dir: Path, stack: list[str]) -> Unit:
        blocks: dict[str, P.Block] = {}
        lets: list[P.Let] = []
        errors = Collector()

        def add_block(b: P.Block) -> None:
            if b.name in blocks and blocks[b.name] is not b:
                prev = blocks[b.name]
                errors.add(ArchError(Diagnostic(
                    "E204", f"block '{b.name}' is defined twice", b.span,
                    notes=(Note("first defined here", prev.span),))))
            elif b.name in REGISTRY:
                errors.add(ArchError(Diagnostic(
                    "E204", f"block '{b.name}' has the name of a layer kind", b.span,
                    hint="choose another name: layer kinds cannot be redefined")))
            blocks[b.name] = b

        for item in program.items:
            if isinstance(item, P.Include):
                target = (base_dir / item.path).resolve()
                key = str(target)
                if key in stack or any(Path(s).resolve() == target for s in stack):
                    cycle = " -> ".join([Path(s).name for s in stack] + [target.name])
                    errors.add(ArchError(Diagnostic("E211", f"include cycle: {cycle}", item.span)))
                    continue
                if len(stack) > MAX_INCLUDE_DEPTH:
                    errors.add(ArchError(Diagnostic("E211", "includes nest too deeply", item.span)))
                    continue
                if not target.is_file():
                    errors.add(ArchError(Diagnostic(
                        "E210", f"include not found: \"{item.path}\"", item.span,
                        hint=f"paths are relative to the including file, here {base_dir}")))
                    continue
                if key not in self._units:
                    src = read_source(target)
                    self.sources[key] = src
                    try:
                        sub_prog = parse(src, key)
                    except ArchError as e:
                        errors.add(e)
                        continue
                    self._units[key] = self._unit(sub_prog, target.parent, stack + [key])
                sub = self._units[key]
                for b in sub.blocks.values():
                    add_block(b)
                lets.extend(sub.lets)
            elif isinstance(item, P.Block):
                add_block(item)
            elif isinstance(item, P.Let):
                lets.append(item)
        errors.raise_if_any(self.sources)
        return Unit(program, blocks, lets, self.sources)


# ---------------------------------------------------------------- expressions


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

    def names(self) -> set[str]:
        out: set[str] = set()
        env: Env | None = self
        while env is not None:
            out |= set(env.values)
            env = env.parent
        return out

    def child(self, values: dict[str, Any] | None = None) -> "Env":
        return Env(values, self)


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
            return env.lookup(expr.id)
        except KeyError:
            hint = did_you_mean(expr.id, env.names())
            raise ArchError(Diagnostic("E205", f"undefined name '{expr.id}'", expr.span, hint=hint)) from None
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
                raise ArchError(Diagnostic("E207", f"'{expr.op}' needs numbers", side.span, found=repr(v)))
        if expr.op in ("/", "//", "%") and b == 0:
            raise ArchError(Diagnostic("E301", "division by zero", expr.span,
                                       found=f"the right-hand side is 0"))
        if expr.op == "**" and (abs(b) > 64 or abs(a) > MAX_VALUE):
            raise ArchError(Diagnostic("E304", "exponent too large", expr.span, expected="|exponent| <= 64",
                                       found=str(b)))
        try:
            v = _BIN[expr.op](a, b)
        except (OverflowError, ZeroDivisionError, ValueError) as err:
            raise ArchError(Diagnostic("E304", f"arithmetic error: {err}", expr.span)) from None
        _check_size(v, expr)
        return v
    if t is P.Neg:
        v = evaluate(expr.operand, env, shape)
        if not isinstance(v, (int, float)):
            raise ArchError(Diagnostic("E207", "'-' needs a number", expr.span, found=repr(v)))
        return -v
    if t is P.Not:
        return not evaluate(expr.operand, env, shape)
    if t is P.Cond:
        return evaluate(expr.body if evaluate(expr.test, env, shape) else expr.orelse, env, shape)
    if t is P.Func:
        fn = _FUNCS.get(expr.name)
        if fn is None:
            raise ArchError(Diagnostic("E205", f"unknown function '{expr.name}'", expr.span,
                                       hint=did_you_mean(expr.name, _FUNCS) or
                                       "functions: " + ", ".join(sorted(_FUNCS))))
        args = [evaluate(a, env, shape) for a in expr.args]
        try:
            return fn(*args)
        except (TypeError, ValueError, OverflowError) as err:
            raise ArchError(Diagnostic("E206", f"{expr.name}(): {err}", expr.span)) from None
    raise TypeError(f"not an expression: {expr!r}")


def _check_size(v: Any, expr: P.Node) -> None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and (abs(v) > MAX_VALUE or v != v):
        raise ArchError(Diagnostic("E304", f"the value {v:g} is absurdly large", expr.span,
                                   expected=f"at most {MAX_VALUE:.0e}", found=f"{v:g}"))


# ---------------------------------------------------------------- the compiled network


@dataclass
class Expectation:
    stmt: P.Expect
    expected: Any
    #: for `expect shape` (checked where it stands) the shape found there
    found_here: Any = None


@dataclass
class CompiledNetwork:
    """A validated, fully inferred network: the graph, its structure, and its checks."""

    name: str
    file: str
    graph: nx.DiGraph
    tree: TSeq
    input: str
    output: str
    aux_outputs: dict[str, str]
    expectations: list[Expectation]
    sources: dict[str, str]
    span: P.Span | None = None

    # -- convenience views
    def nodes(self) -> Iterator[NodeInfo]:
        """Every node in topological (build) order."""
        for n in self.graph.nodes:
            yield self.graph.nodes[n]["info"]

    def node(self, name: str) -> NodeInfo:
        return self.graph.nodes[name]["info"]

    @property
    def input_shape(self) -> Shape:
        return self.node(self.input).shape

    @property
    def output_shape(self) -> Shape:
        return self.node(self.output).shape

    @property
    def params(self) -> int:
        return sum(i.params for i in self.nodes())

    @property
    def params_without_aux(self) -> int:
        return sum(i.params for i in self.nodes() if i.aux is None)

    @property
    def macs(self) -> int:
        return sum(i.macs for i in self.nodes())

    @property
    def macs_without_aux(self) -> int:
        return sum(i.macs for i in self.nodes() if i.aux is None)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def report(self):
        """The analytic report (:class:`archdsl.report.Report`)."""
        from .report import Report

        return Report.of(self)

    def check(self):
        """Evaluate every `expect` line: a list of :class:`archdsl.check.Outcome`."""
        from .check import evaluate_expectations

        return evaluate_expectations(self)

    def _repr_mimebundle_(self, include=None, exclude=None):  # Jupyter: show the diagram
        try:
            from .render import to_svg

            return {"image/svg+xml": to_svg(self), "text/plain": repr(self)}
        except Exception:  # noqa: BLE001 - no Graphviz: fall back to text
            return {"text/plain": repr(self)}

    def __repr__(self) -> str:
        return (f"<CompiledNetwork {self.name}: {self.input_shape} -> {self.output_shape}, "
                f"{self.params:,} params, {self.macs:,} MACs>")


# ---------------------------------------------------------------- the builder


@dataclass
class Defaults:
    """The scoped settings in force: `act`, `norm`, `bias` (inherited by nested bodies)."""

    act: Op | None = None
    norm: Op | None = None
    bias: str = "auto"  # "auto" | "on" | "off"


class _Namer:
    """Unique, readable local names within one body: labels, else kind + count."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.used: dict[str, P.Span | None] = {}

    def auto(self, base: str) -> str:
        while True:
            self.counts[base] = self.counts.get(base, 0) + 1
            name = f"{base}{self.counts[base]}"
            if name not in self.used:
                self.used[name] = None
                return name

    def label(self, name: str, span: P.Span | None) -> str:
        if name in self.used:
            prev = self.used[name]
            raise ArchError(Diagnostic("E204", f"the name '{name}' is used twice in this body", span,
                                       notes=(Note("first used here", prev),) if prev else ()))
        self.used[name] = span
        return name


@dataclass
class _Ctx:
    """Where a statement is being built."""

    env: Env
    defaults: Defaults
    seq: TSeq
    namer: _Namer
    scope: tuple[tuple[str, str], ...]
    aux: str | None
    calls: tuple[tuple[str, P.Span], ...]  # block-call stack, for recursion errors
    label_suffix: str = ""


class Builder:
    """Expands one network of a :class:`Unit` into a :class:`CompiledNetwork`."""

    def __init__(self, unit: Unit, network: P.Network, input_override: tuple[int, ...] | None = None,
                 overrides: dict[str, Any] | None = None):
        self.unit = unit
        self.network = network
        self.input_override = input_override
        self.overrides = overrides or {}
        self.g = nx.DiGraph()
        self.expectations: list[Expectation] = []
        self.aux_outputs: dict[str, str] = {}
        self.input_node: str | None = None

    # -- entry point
    def build(self) -> CompiledNetwork:
        genv = Env()
        for let in self.unit.lets:
            genv.values[let.name] = evaluate(let.value, genv, None)
        nenv = genv.child()
        for prm in self.network.params:
            if prm.name in self.overrides:
                nenv.values[prm.name] = self.overrides[prm.name]
            elif prm.default is None:
                raise ArchError(Diagnostic("E208", f"network parameter '{prm.name}' has no default", prm.span,
                                           hint=f"give it one: `{prm.name}=...`"))
            else:
                nenv.values[prm.name] = evaluate(prm.default, nenv, None)
        root = TSeq(name=self.network.name, path="")
        ctx = _Ctx(nenv, Defaults(), root, _Namer(), (), None, ())
        cur = self.body(self.network.body, None, ctx)
        if cur is None:
            raise ArchError(Diagnostic("E407", f"network '{self.network.name}' has no input", self.network.span,
                                       hint="start the body with `input CxHxW`"))
        return CompiledNetwork(
            name=self.network.name, file=self.unit.program.file, graph=self.g, tree=root,
            input=self.input_node, output=cur, aux_outputs=self.aux_outputs,
            expectations=self.expectations, sources=self.unit.sources, span=self.network.span,
        )

    # -- graph helpers
    def _path(self, ctx: _Ctx, local: str) -> str:
        return f"{ctx.seq.path}.{local}" if ctx.seq.path else local

    def _shape(self, node: str | None) -> Shape | None:
        return self.g.nodes[node]["info"].shape if node is not None else None

    def _add(self, info: NodeInfo, span: P.Span | None, blame: P.Span | None = None) -> str:
        if self.g.number_of_nodes() >= MAX_NODES:
            raise ArchError(Diagnostic("E304", f"the network expands to more than {MAX_NODES:,} nodes", span,
                                       hint="check the repetition counts"))
        self.g.add_node(info.id, info=info)
        for i in info.inputs:
            self.g.add_edge(i, info.id)
        try:
            infer_node(self.g, info.id)
        except ShapeError as e:
            notes = tuple(Note(f"its input {s} comes from '{i}'", self.g.nodes[i]["info"].span)
                          for i, s in zip(info.inputs, info.in_shapes) if self.g.nodes[i]["info"].span is not None)
            raise ArchError(Diagnostic(e.code, e.message, blame or span, expected=e.expected, found=e.found,
                                       hint=e.hint, notes=notes[:1] if len(notes) == 1 else ())) from None
        return info.id

    # -- bodies
    def body(self, body: P.Body, cur: str | None, ctx: _Ctx) -> str | None:
        stmts = body.stmts
        for i, stmt in enumerate(stmts):
            nxt = stmts[i + 1] if i + 1 < len(stmts) else None
            cur = self.stmt(stmt, cur, ctx, nxt)
        return cur

    def stmt(self, s: P.AnyStmt, cur: str | None, ctx: _Ctx, nxt: P.AnyStmt | None) -> str | None:
        t = type(s)
        if t is P.Let:
            ctx.env.values[s.name] = evaluate(s.value, ctx.env, self._shape(cur))
            return cur
        if t is P.Input:
            return self.input(s, cur, ctx)
        if t is P.Scoped:
            self.scoped(s, ctx)
            return cur
        if t is P.Expect:
            self.expect(s, cur, ctx)
            return cur
        if cur is None:
            raise ArchError(Diagnostic("E407", "a layer before the network's input", s.span,
                                       hint="start the body with `input CxHxW`"))
        if t is P.Invocation:
            return self.invocation(s, cur, ctx, nxt)
        if t is P.Repeat:
            return self.repeat(s, cur, ctx)
        if t is P.If:
            test = evaluate(s.test, ctx.env, self._shape(cur))
            chosen = s.then if test else s.orelse
            if chosen is None:
                return cur
            return self.body(chosen, cur, self._sub(ctx))
        if t is P.Concat or t is P.Add:
            return self.merge(s, "concat" if t is P.Concat else "add", s.branches, cur, ctx)
        if t is P.Residual:
            return self.residual(s, cur, ctx)
        if t is P.Aux:
            return self.aux(s, cur, ctx)
        raise TypeError(f"unknown statement {s!r}")

    def _sub(self, ctx: _Ctx, **changes) -> _Ctx:
        """A nested body in the same module scope: a child Env, a copy of the defaults."""
        base = dict(env=ctx.env.child(), defaults=Defaults(ctx.defaults.act, ctx.defaults.norm, ctx.defaults.bias),
                    seq=ctx.seq, namer=ctx.namer, scope=ctx.scope, aux=ctx.aux, calls=ctx.calls,
                    label_suffix=ctx.label_suffix)
        base.update(changes)
        return _Ctx(**base)

    # -- statements
    def input(self, s: P.Input, cur: str | None, ctx: _Ctx) -> str:
        if cur is not None:
            raise ArchError(Diagnostic("E407", "`input` must come before every layer", s.span,
                                       notes=(Note("the network already started here",
                                                   self.g.nodes[cur]["info"].span),)))
        if ctx.seq.path or ctx.calls:
            raise ArchError(Diagnostic("E407", "`input` may only appear in a network's body", s.span))
        if self.input_override is not None:
            dims = tuple(self.input_override)
        else:
            dims = tuple(_as_int(evaluate(d, ctx.env, None), d, "input size") for d in s.dims)
        if len(dims) not in (1, 3) or any(d < 1 for d in dims):
            raise ArchError(Diagnostic("E303", f"bad input shape {'x'.join(map(str, dims))}", s.span,
                                       expected="CxHxW with every size at least 1",
                                       found="x".join(map(str, dims))))
        info = NodeInfo(id="input", op=Op(REGISTRY["identity"], REGISTRY["identity"].Params()), span=s.span,
                        shape=Shape(dims))
        self.input_node = self._add(info, s.span)
        return self.input_node

    def scoped(self, s: P.Scoped, ctx: _Ctx) -> None:
        inv = s.value
        if s.setting == "bias":
            if inv.name not in ("on", "off", "auto") or inv.args or inv.call or inv.out:
                raise ArchError(Diagnostic("E207", "`bias` takes on, off or auto", inv.span,
                                           expected="on, off or auto", found=inv.name))
            ctx.defaults.bias = inv.name
            return
        if inv.name == "none" and not inv.args and inv.call is None and inv.out is None:
            setattr(ctx.defaults, s.setting, None)
            return
        kind = lookup(inv.name)
        if kind is None or (s.setting == "act" and not kind.is_activation):
            choices = [k.name for k in REGISTRY.values() if (k.is_activation or s.setting == "norm")]
            raise ArchError(Diagnostic("E201", f"unknown {'activation' if s.setting == 'act' else 'layer'} "
                                       f"'{inv.name}'", inv.name_span,
                                       hint=did_you_mean(inv.name, choices) or f"write `{s.setting} none` to clear it"))
        params = self._bind(kind, inv, ctx, None)
        setattr(ctx.defaults, s.setting, Op(kind, params))

    def expect(self, s: P.Expect, cur: str | None, ctx: _Ctx) -> None:
        shape = self._shape(cur)
        if isinstance(s.value, tuple):
            expected: Any = tuple(_as_int(evaluate(d, ctx.env, shape), d, "size") for d in s.value)
        else:
            expected = evaluate(s.value, ctx.env, shape)
            if s.what in ("output", "shape") and isinstance(expected, (int, float)):
                expected = (_as_int(expected, s.value, "size"),)
        from .check import EXPECTABLE

        if s.what not in EXPECTABLE:
            raise ArchError(Diagnostic("E202", f"unknown expectation '{s.what}'", s.span,
                                       hint=did_you_mean(s.what, EXPECTABLE) or
                                       "expectations: " + ", ".join(EXPECTABLE)))
        found = shape if s.what == "shape" else None
        if s.what == "shape" and cur is None:
            raise ArchError(Diagnostic("E407", "`expect shape` before the input", s.span))
        self.expectations.append(Expectation(s, expected, found))

    def _flags(self, inv: P.Invocation) -> tuple[list, set[str], dict[str, P.Span]]:
        """Split the generic flags (noact, nonorm, bias, nobias, an activation) from the rest."""
        rest, flags, spans = [], set(), {}
        for a in (*inv.args, *inv.post):
            word = a.bare_word() if isinstance(a, P.Window) else None
            if word is not None and (word in ("noact", "nonorm", "bias", "nobias") or
                                     (lookup(word) is not None and lookup(word).is_activation)):
                flags.add(word)
                spans[word] = a.span
            else:
                rest.append(a)
        return rest, flags, spans

    def _bind(self, kind: Kind, inv: P.Invocation, ctx: _Ctx, cur: str | None, args: list | None = None):
        shape = self._shape(cur)
        positional: list = []
        keywords: dict[str, P.KwArg] = {}
        for c in inv.call or ():
            if isinstance(c, P.CallKw):
                keywords[c.key] = P.KwArg(span=c.span, key=c.key, values=(c.value,))
            else:
                positional.append(c)
        for a in (args if args is not None else (*inv.args, *inv.post)):
            if isinstance(a, P.KwArg):
                if a.key in keywords:
                    raise ArchError(Diagnostic("E204", f"'{a.key}' is given twice", a.span))
                keywords[a.key] = a
            else:
                positional.append(a)
        reader = Args(kind.name, inv.span, positional, keywords, inv.out, inv.out.span if inv.out else None,
                      lambda e: evaluate(e, ctx.env, shape))
        params = kind.bind(reader)
        reader.finish()
        return params

    def invocation(self, inv: P.Invocation, cur: str, ctx: _Ctx, nxt) -> str:
        block = self.unit.blocks.get(inv.name)
        if block is not None:
            return self.call(inv, block, cur, ctx)
        kind = lookup(inv.name)
        if kind is None:
            choices = set(REGISTRY) | set(self.unit.blocks)
            raise ArchError(Diagnostic("E201", f"unknown layer or block '{inv.name}'", inv.name_span,
                                       hint=did_you_mean(inv.name, choices)))
        if isinstance(kind, MergeKind):
            raise ArchError(Diagnostic("E201", f"'{inv.name}' takes branches: write `{inv.name} {{ A | B }}`",
                                       inv.name_span))
        rest, flags, fspans = self._flags(inv)
        for f in flags:
            if f in ("noact",) or (f not in ("nonorm", "bias", "nobias") and f != "noact"):
                if not kind.takes_act:
                    raise ArchError(Diagnostic("E202", f"{kind.name} has no activation to change with '{f}'",
                                               fspans[f], hint="write the activation as its own statement"))
            if f == "nonorm" and not kind.takes_norm:
                raise ArchError(Diagnostic("E202", f"{kind.name} has no normalisation to remove", fspans[f]))
            if f in ("bias", "nobias") and not kind.has_bias:
                raise ArchError(Diagnostic("E202", f"{kind.name} has no bias", fspans[f]))
        params = self._bind(kind, inv, ctx, cur, rest)
        expansion = kind.expand(params)
        if expansion is not None:  # a macro kind (mlpconv): one layer per expanded op
            local = self._local(inv, kind.name, ctx)
            sub = TSeq(name=local, path=self._path(ctx, local))
            ctx.seq.items.append(sub)
            sub_ctx = _Ctx(ctx.env, ctx.defaults, sub, _Namer(), ctx.scope, ctx.aux, ctx.calls)
            for kname, kparams in expansion:
                k = REGISTRY[kname]
                cur = self._layer(k, kparams, flags, inv, cur, sub_ctx, None, None)
            return cur
        return self._layer(kind, params, flags, inv, cur, ctx, nxt, self._local(inv, kind.name, ctx))

    def _local(self, s: P.Stmt, base: str, ctx: _Ctx) -> str:
        if s.label:
            return ctx.namer.label(s.label + ctx.label_suffix, s.label_span)
        return ctx.namer.auto(base)

    def _layer(self, kind: Kind, params, flags: set[str], inv: P.Invocation, cur: str, ctx: _Ctx, nxt,
               local: str | None) -> str:
        post: list[Op] = []
        norm = ctx.defaults.norm if kind.takes_norm and "nonorm" not in flags else None
        if norm is not None:
            post.append(norm)
        if kind.takes_act:
            act_flags = [f for f in flags if f not in ("noact", "nonorm", "bias", "nobias")]
            if act_flags:
                k = lookup(act_flags[0])
                post.append(Op(k, k.Params()))
            elif "noact" not in flags and ctx.defaults.act is not None:
                post.append(ctx.defaults.act)
        if kind.has_bias:
            if "bias" in flags or "nobias" in flags:
                bias = "bias" in flags
            elif ctx.defaults.bias != "auto":
                bias = ctx.defaults.bias == "on"
            else:
                # bias is redundant before batch norm (Ioffe & Szegedy 2015, §3.2): drop it when
                # this layer gets a norm or the next statement is one
                followed_by_bn = (isinstance(nxt, P.Invocation) and nxt.label is None and
                                  lookup(nxt.name) is not None and lookup(nxt.name).name == "bn")
                bias = norm is None and not followed_by_bn
            params = kind.with_bias(params, bias)
        local = local or ctx.namer.auto(kind.name)
        info = NodeInfo(id=self._path(ctx, local), op=Op(kind, params), post=post, span=inv.span, scope=ctx.scope,
                        aux=ctx.aux, inputs=[cur])
        node = self._add(info, inv.span)
        ctx.seq.items.append(TLayer(local, node))
        return node

    def call(self, inv: P.Invocation, block: P.Block, cur: str, ctx: _Ctx) -> str:
        if inv.args or inv.out is not None or inv.post:
            bad = (inv.args or inv.post or (inv.out,))[0]
            raise ArchError(Diagnostic("E206", f"block '{block.name}' takes its arguments in parentheses",
                                       bad.span, hint=f"write `{block.name}(...)`"))
        for name, span in ctx.calls:
            if name == block.name:
                chain = " -> ".join([n for n, _ in ctx.calls] + [block.name])
                raise ArchError(Diagnostic("E209", f"block recursion: {chain}", inv.span,
                                           notes=tuple(Note(f"'{n}' is called here", sp) for n, sp in ctx.calls)))
        if len(ctx.calls) >= MAX_CALL_DEPTH:
            raise ArchError(Diagnostic("E304", f"block calls nest deeper than {MAX_CALL_DEPTH}", inv.span))
        values = self._bind_call(inv, block, ctx, cur)
        local = self._local(inv, block.name, ctx)
        path = self._path(ctx, local)
        seq = TSeq(name=local, block=block.name, args=values, path=path)
        ctx.seq.items.append(seq)
        env = Env(values, self._global_env(ctx))
        sub = _Ctx(env, Defaults(ctx.defaults.act, ctx.defaults.norm, ctx.defaults.bias), seq, _Namer(),
                   ctx.scope + ((local, block.name),), ctx.aux, ctx.calls + ((block.name, inv.span),))
        out = self.body(block.body, cur, sub)
        return out

    def _global_env(self, ctx: _Ctx) -> Env:
        env = ctx.env
        while env.parent is not None:
            env = env.parent
        return env

    def _bind_call(self, inv: P.Invocation, block: P.Block, ctx: _Ctx, cur: str) -> dict[str, Any]:
        shape = self._shape(cur)
        names = [p.name for p in block.params]
        values: dict[str, Any] = {}
        positional = [c for c in inv.call or () if not isinstance(c, P.CallKw)]
        keywords = [c for c in inv.call or () if isinstance(c, P.CallKw)]
        if len(positional) > len(names):
            raise ArchError(Diagnostic(
                "E206", f"block '{block.name}' takes {len(names)} argument{'s' * (len(names) != 1)}, "
                f"{len(positional)} given", positional[len(names)].span,
                expected=f"{block.name}({', '.join(names)})", found=f"{len(positional)} arguments",
                notes=(Note("defined here", block.span),)))
        for prm, expr in zip(block.params, positional):
            values[prm.name] = evaluate(expr, ctx.env, shape)
        for kw in keywords:
            if kw.key not in names:
                raise ArchError(Diagnostic("E202", f"block '{block.name}' has no parameter '{kw.key}'", kw.span,
                                           hint=did_you_mean(kw.key, names) or
                                           f"its parameters: {', '.join(names) or 'none'}",
                                           notes=(Note("defined here", block.span),)))
            if kw.key in values:
                raise ArchError(Diagnostic("E204", f"argument '{kw.key}' is given twice", kw.span))
            values[kw.key] = evaluate(kw.value, ctx.env, shape)
        genv = self._global_env(ctx)
        for prm in block.params:
            if prm.name not in values:
                if prm.default is None:
                    raise ArchError(Diagnostic(
                        "E208", f"block '{block.name}' needs argument '{prm.name}'", inv.span,
                        expected=f"{block.name}({', '.join(names)})",
                        found=f"{len(positional) + len(keywords)} arguments",
                        notes=(Note("defined here", block.span),)))
                values[prm.name] = evaluate(prm.default, Env(values, genv), shape)
        return values

    def repeat(self, s: P.Repeat, cur: str, ctx: _Ctx) -> str:
        n = _as_int(evaluate(s.count, ctx.env, self._shape(cur)), s.count, "repeat count")
        if n < 0 or n > MAX_REPEAT:
            raise ArchError(Diagnostic("E304", f"repeat count {n} is out of range", s.count.span,
                                       expected=f"0 to {MAX_REPEAT:,}", found=str(n)))
        if s.label:
            local = ctx.namer.label(s.label + ctx.label_suffix, s.label_span)
            seq = TSeq(name=local, path=self._path(ctx, local))
            ctx.seq.items.append(seq)
            outer = self._sub(ctx, seq=seq, namer=_Namer())
        else:
            outer = ctx
        for i in range(n):
            sub = self._sub(outer, label_suffix=f"{outer.label_suffix}_{i + 1}")
            if s.var:
                sub.env.values[s.var] = i
            cur = self.body(s.body, cur, sub)
        return cur

    def merge(self, s: P.Stmt, mode: str, branches: Sequence[P.Body], cur: str, ctx: _Ctx,
              scales: tuple[float, ...] = (), local: str | None = None) -> str:
        local = local or self._local(s, mode, ctx)
        path = self._path(ctx, local)
        outs: list[str] = []
        seqs: list[TSeq] = []
        for k, br in enumerate(branches, 1):
            seq = TSeq(name=f"branch{k}", path=f"{path}.branch{k}")
            sub = self._sub(ctx, seq=seq, namer=_Namer(), label_suffix="")
            out = self.body(br, cur, sub)
            seqs.append(seq)
            outs.append(out)
        kind = REGISTRY[mode]
        params = kind.Params(scales=scales) if mode == "add" else kind.Params()
        info = NodeInfo(id=path, op=Op(kind, params), span=s.span, scope=ctx.scope, aux=ctx.aux, inputs=outs)
        blame = None
        try:
            kind.infer_many(params, [self._shape(o) for o in outs])
        except ShapeError as e:
            # point at the first branch that disagrees with the first, show every branch's shape
            shapes = [self._shape(o) for o in outs]
            odd = next((k for k in range(1, len(shapes)) if
                        (shapes[k].dims[1:] != shapes[0].dims[1:] if mode == "concat" else shapes[k] != shapes[0])), 1)
            notes = tuple(Note(f"branch {k + 1} gives {sh}", branches[k].span) for k, sh in enumerate(shapes))
            raise ArchError(Diagnostic(e.code, e.message, branches[odd].span if odd < len(branches) else s.span,
                                       expected=e.expected, found=e.found, hint=e.hint, notes=notes)) from None
        node = self._add(info, s.span, blame)
        ctx.seq.items.append(TMerge(local, mode, seqs, node, scales))
        return node

    def residual(self, s: P.Residual, cur: str, ctx: _Ctx) -> str:
        scale = 1.0
        for opt in s.options:
            if opt.key != "scale" or len(opt.values) != 1:
                raise ArchError(Diagnostic("E202", f"residual has no option '{opt.key}'", opt.span,
                                           hint="residual takes scale=S"))
            scale = float(evaluate(opt.values[0], ctx.env, self._shape(cur)))
        ident = P.Body(span=s.span, stmts=())
        # branch 1 is the residual function f, branch 2 the identity: x + S * f(x)
        return self.merge(s, "add", (s.body, ident), cur, ctx, scales=(scale, 1.0),
                          local=self._local(s, "residual", ctx))

    def aux(self, s: P.Aux, cur: str, ctx: _Ctx) -> str:
        if s.name in self.aux_outputs:
            raise ArchError(Diagnostic("E204", f"aux head '{s.name}' is defined twice", s.span))
        local = ctx.namer.label(s.name, s.span)
        seq = TSeq(name=local, path=self._path(ctx, local))
        sub = self._sub(ctx, seq=seq, namer=_Namer(), aux=s.name)
        out = self.body(s.body, cur, sub)
        self.aux_outputs[s.name] = out
        ctx.seq.items.append(TAux(local, seq))
        return cur


def _as_int(v: Any, expr: P.Node, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArchError(Diagnostic("E207", f"{what} must be a number", expr.span, found=repr(v)))
    if isinstance(v, float):
        if not v.is_integer():
            raise ArchError(Diagnostic("E302", f"{what} must be an integer", expr.span, expected="an integer",
                                       found=f"{v:g}", hint="use // for integer division"))
        v = int(v)
    return v


# ---------------------------------------------------------------- public entry points


def select_networks(unit: Unit, network: str | None) -> list[P.Network]:
    nets = unit.program.networks
    if network is None:
        if not nets:
            raise ArchError(Diagnostic("E203", "no network in this file", P.Span(
                file=unit.program.file, line=1, column=1, end_line=1, end_column=2),
                hint="a file must hold at least one `network NAME { ... }`"), unit.sources)
        return nets
    chosen = [n for n in nets if n.name == network]
    if not chosen:
        raise ArchError(Diagnostic("E203", f"no network named '{network}' in {unit.program.file}",
                                   hint=did_you_mean(network, [n.name for n in nets]) or
                                   "networks: " + ", ".join(n.name for n in nets)), unit.sources)
    return chosen


def build_graph(unit: Unit, network: P.Network, input: tuple[int, ...] | None = None,
                overrides: dict[str, Any] | None = None) -> CompiledNetwork:
    """Expand and infer one network. Raises ArchError (with sources) on any mistake."""
    try:
        return Builder(unit, network, input, overrides).build()
    except ArchError as e:
        raise e.with_sources(unit.sources)
    except RecursionError:
        raise ArchError(Diagnostic("E304", "the spec nests too deeply to expand", network.span),
                        unit.sources) from None


def check_duplicates(unit: Unit) -> None:
    seen: dict[str, P.Network] = {}
    errors = Collector()
    for n in unit.program.networks:
        if n.name in seen:
            errors.add(ArchError(Diagnostic("E204", f"network '{n.name}' is defined twice", n.span,
                                            notes=(Note("first defined here", seen[n.name].span),))))
        seen[n.name] = n
    errors.raise_if_any(unit.sources)


def flat_shape(n: int) -> Shape:
    return flat(n)
