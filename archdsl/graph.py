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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from . import cache as _cache
from . import program as P
from .diagnostics import ArchError, Collector, Diagnostic, Note, did_you_mean
from .infer import NodeInfo, Op, advance, infer_info, infer_merge, widest
from .layers import REGISTRY, Args, Kind, MergeKind, Shape, ShapeError, lookup
from .layers.base import flat
from .cache import parse, read_source  # Lark is imported only on a cache miss

if TYPE_CHECKING:
    import networkx as nx

# ---------------------------------------------------------------- limits

#: the most iterations one `repeat` may run
MAX_REPEAT = 10_000
#: the deepest chain of block calls
MAX_CALL_DEPTH = 64
#: the most nodes one network may expand to: six times the largest classic network (the
#: CIFAR ResNet-1001, 3,339 nodes); at ~0.1 ms a node this also bounds the time a runaway
#: spec can take to a few seconds
MAX_NODES = 20_000
#: the most statements and bodies one network may execute while expanding (ResNet-1001:
#: 7,021); bodies without layers, `repeat 10000 { repeat 10000 { let x = 1 } }`, add no
#: nodes but still take time
MAX_STEPS = 50_000
#: the largest value an expression may produce (beyond it, a typo such as 10**100 is assumed)
MAX_VALUE = 10**15
#: the deepest chain of includes
MAX_INCLUDE_DEPTH = 32


# ---------------------------------------------------------------- the structural tree


@dataclass(slots=True)
class TLayer:
    name: str
    node: str  # graph node id


@dataclass(slots=True)
class TSeq:
    """A body: its items run in order. `block` is set for block calls."""

    name: str
    items: list = field(default_factory=list)
    block: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    path: str = ""


@dataclass(slots=True)
class TMerge:
    """concat / add / residual: branches on the same input, merged by the graph node `node`."""

    name: str
    mode: str  # "concat" | "add"
    branches: list[TSeq]
    node: str
    scales: tuple[float, ...] = ()


@dataclass(slots=True)
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
    #: mistakes that need not stop the networks' build (blocks defined twice: the last one is
    #: used meanwhile); :func:`check_duplicates` reports them
    deferred: list[Diagnostic] = field(default_factory=list)
    #: ids of the networks whose size bound (Builder._check_network_budget, a function of the
    #: text alone) has passed: checked once per unit, not once per compile
    within_budget: set[int] = field(default_factory=set, repr=False, compare=False)

    @property
    def networks(self) -> list[str]:
        """The names of the file's networks, in the order written."""
        return [n.name for n in self.program.networks]

    def compile(self, network: str | None = None, input: "str | Sequence[int] | None" = None,
                **params: Any) -> "CompiledNetwork":
        """Compile one network of this file, as :func:`archdsl.compile` does once the text
        is parsed: `network` picks one (required when the file holds several), `input`
        overrides the spec's input shape, keyword arguments override network parameters."""
        nets = select_networks(self, network)
        if len(nets) > 1:
            raise ArchError(Diagnostic("E203", f"{self.program.file} holds {len(nets)} networks; name one",
                                       hint="networks: " + ", ".join(n.name for n in nets)), self.sources)
        return build_graph(self, nets[0], parse_input(input), params or None)


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

    def _unit(self, program: P.Program, base_dir: Path, stack: list[str], vias: tuple[P.Span, ...] = ()) -> Unit:
        blocks: dict[str, P.Block] = {}
        lets: list[P.Let] = []
        errors = Collector()
        deferred: list[Diagnostic] = []

        def add_block(b: P.Block) -> None:
            if b.name in blocks and blocks[b.name] is not b:
                prev = blocks[b.name]
                deferred.append(Diagnostic(
                    "E204", f"block '{b.name}' is defined twice", _head(b, "block"),
                    notes=(Note("first defined here", _head(prev, "block")),)))
            elif b.name in REGISTRY:
                deferred.append(Diagnostic(
                    "E204", f"block '{b.name}' has the name of a layer kind", _head(b, "block"),
                    hint="choose another name: layer kinds cannot be redefined"))
            blocks[b.name] = b

        for item in program.items:
            if isinstance(item, P.Include):
                target = (base_dir / item.path).resolve()
                key = str(target)
                if key in stack or any(Path(s).resolve() == target for s in stack):
                    cycle = " -> ".join([Path(s).name for s in stack] + [target.name])
                    notes = tuple(Note(f"{Path(via.file).name} includes {Path(s).name} here", via)
                                  for s, via in zip(stack[1:], vias))
                    errors.add(ArchError(Diagnostic("E211", f"include cycle: {cycle}", item.span, notes=notes)))
                    continue
                if len(stack) > MAX_INCLUDE_DEPTH:
                    errors.add(ArchError(Diagnostic("E211", "includes nest too deeply", item.span)))
                    continue
                if not target.is_file():
                    errors.add(ArchError(Diagnostic(
                        "E210", f"include not found: \"{item.path}\"", item.span,
                        hint=f"paths are relative to the folder of the including file ({base_dir})")))
                    continue
                if key not in self._units:
                    shown = _display_path(target)  # diagnostics name included files as the user would
                    src = read_source(shown)
                    self.sources[shown] = src
                    try:
                        sub_prog = parse(src, shown)
                    except ArchError as e:
                        errors.add(e)
                        continue
                    self._units[key] = self._unit(sub_prog, target.parent, stack + [key], vias + (item.span,))
                sub = self._units[key]
                deferred.extend(d for d in sub.deferred if d not in deferred)
                for b in sub.blocks.values():
                    add_block(b)
                lets.extend(sub.lets)
            elif isinstance(item, P.Block):
                add_block(item)
            elif isinstance(item, P.Let):
                lets.append(item)
        errors.raise_if_any(self.sources)
        return Unit(program, blocks, lets, self.sources, deferred)


def _head(item: P.Block | P.Network, keyword: str) -> P.Span:
    """The span of `network NAME` / `block NAME`: the whole item would underline its body too."""
    sp = item.span
    return sp.model_copy(update={"end_line": sp.line, "end_column": sp.column + len(keyword) + 1 + len(item.name)})


def _stmts_span(body: P.Body) -> P.Span:
    """From a body's first statement to its last: a branch's own span runs on over the
    separator after it, trailing comment included."""
    if not body.stmts:
        return body.span
    first, last = body.stmts[0].span, body.stmts[-1].span
    return first.model_copy(update={"end_line": last.end_line, "end_column": last.end_column})


def _display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if rel.startswith("..") else rel


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
            hint = did_you_mean(expr.id, env.names())
            raise ArchError(Diagnostic("E205", f"undefined name '{expr.id}'", expr.span, hint=hint)) from None
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
                                       hint=did_you_mean(expr.name, _FUNCS) or
                                       "functions: " + ", ".join(sorted(_FUNCS))))
        args = [evaluate(a, env, shape) for a in expr.args]
        try:
            v = fn(*args)
        except (TypeError, ValueError, OverflowError) as err:
            raise ArchError(Diagnostic("E206", f"{expr.name}(): {err}", expr.span)) from None
        _check_size(v, expr)
        return v
    raise TypeError(f"not an expression: {expr!r}")


def _check_size(v: Any, expr: P.Node) -> None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and (abs(v) > MAX_VALUE or v != v):
        shown = _big(abs(v)) if isinstance(v, int) else f"{v:g}"  # an int may be too large for a float
        raise ArchError(Diagnostic("E304", f"the value {'-' if v < 0 else ''}{shown} is absurdly large", expr.span,
                                   expected=f"at most {MAX_VALUE:,}", found=shown))


# ---------------------------------------------------------------- memoised binding

# Binding a layer statement's arguments (evaluating them, reading them into the kind's
# Params) depends only on the statement, the values of the names it mentions and, when it
# says `in.c`/`in.h`/`in.w`, the input's shape. A block called many times (every ResNet
# bottleneck, every DenseNet layer) binds the same statements with the same values over and
# over, so each binding is kept, keyed by exactly those inputs. Errors are never kept.
#
# A statement is known by its text (Builder._stmt_key): two statements written alike, at
# different places, bind alike. A spec written out layer by layer, without blocks, repeats
# a handful of statements thousands of times, and its first compile then binds each once.

_UNBOUND = object()
_MEMO_LIMIT = 100_000
#: id(statement) -> (statement, its key: see Builder._stmt_key)
_KEYS: dict[int, tuple[P.Invocation, Any]] = _cache.memo()
#: id(source) -> (source, the offset where each of its lines starts)
_LINE_STARTS: dict[int, tuple[str, list[int]]] = _cache.memo()
#: statement key -> (names it mentions, whether it reads the input's shape)
_FREE: dict[Any, tuple[tuple[str, ...], bool]] = _cache.memo()
#: (kind, statement key, values of those names, input dims or None) -> params
_BIND_MEMO: dict[tuple, Any] = _cache.memo()


def _line_starts(source: str) -> list[int]:
    hit = _LINE_STARTS.get(id(source))
    if hit is None or hit[0] is not source:
        starts, at = [0], source.find("\n")
        while at >= 0:
            starts.append(at + 1)
            at = source.find("\n", at + 1)
        if len(_LINE_STARTS) >= 64:
            _LINE_STARTS.clear()
        hit = _LINE_STARTS[id(source)] = (source, starts)
    return hit[1]


def _free_names(inv: P.Invocation, key: Any) -> tuple[tuple[str, ...], bool]:
    hit = _FREE.get(key)
    if hit is not None:
        return hit
    names: list[str] = []
    reads_input = False
    todo: list[Any] = [inv.call, inv.args, inv.out, inv.post]
    while todo:
        x = todo.pop()
        if isinstance(x, tuple):
            todo.extend(x)
        elif isinstance(x, P.Name):
            if x.id not in names:
                names.append(x.id)
        elif isinstance(x, P.Attr):
            reads_input = True
        elif isinstance(x, P.Node):
            todo.extend(v for k, v in x.__dict__.items() if k != "span")
    if len(_FREE) >= _MEMO_LIMIT:
        _FREE.clear()
    _FREE[key] = (tuple(names), reads_input)
    return tuple(names), reads_input


#: id(params) -> (params, {bias: params with that bias})
_BIAS_MEMO: dict[int, tuple[Any, dict[bool, Any]]] = _cache.memo()


def _with_bias(kind: Kind, params: Any, bias: bool) -> Any:
    """kind.with_bias, once per (bound params, bias): the params of a memoised binding are
    shared, and so is their biased or unbiased copy."""
    if kind.__dict__:  # a kind with a method replaced on it (tests do): no memo
        return kind.with_bias(params, bias)
    hit = _BIAS_MEMO.get(id(params))
    if hit is None or hit[0] is not params:
        if len(_BIAS_MEMO) >= _MEMO_LIMIT:
            _BIAS_MEMO.clear()
        hit = _BIAS_MEMO[id(params)] = (params, {})
    out = hit[1].get(bias)
    if out is None:
        out = hit[1][bias] = kind.with_bias(params, bias)
    return out


#: statement key -> (statement, kind, flags, the positions of its arguments that are not
#: flags, those arguments of that statement): see Builder._flags
_FLAGS: dict[Any, tuple[P.Invocation, Kind, frozenset[str], tuple[int, ...], list]] = _cache.memo()
#: an activation given as a flag (`conv 3x3 -> 64 relu6`): one shared Op per activation kind,
#: so that per-layer inference is memoised by its identity (infer._MEMO)
_FLAG_OPS: dict[str, Op] = {}


def _flag_op(name: str) -> Op:
    k = lookup(name)
    op = _FLAG_OPS.get(name)
    if op is None or op.kind is not k:
        op = _FLAG_OPS[name] = Op(k, k.Params())
    return op


# ---------------------------------------------------------------- memoised block calls

# A block call's expansion depends only on the block, its argument values, the input's shape,
# the scoped defaults in force, the aux head it stands in, the file's constants and the call
# depth (see Builder._call_key). ResNet's bottlenecks, Inception-v4's modules and every
# `repeat` of a block call the same block alike many times: the first call is expanded, the
# others copy its nodes under their own path (Builder._replay), which costs a fraction of
# interpreting the statements again. The objects a key names by id are held by its entry.


@dataclass(slots=True)
class _Expansion:
    path: str  # the call's path: every node it made is under `path.`
    #: per node made, in order: (its id under `path`, its inputs' ids under `path` (None: the
    #: call's input), the index of its scope below the call's in `tails`, then the NodeInfo
    #: fields a copy keeps: op, post, span, aux, in_shapes, shape, params, macs, step, and rf)
    nodes: list[tuple]
    input_rf: Field  # the receptive field of the call's input: the nodes' `rf` hold for it
    tails: list[tuple]  # the distinct scopes below the call's, each once
    output: str | None  # the id under `path` of the node it ended on; None: the call's input
    items: list  # its structural tree
    expectations: list
    steps: int
    kinds: tuple  # every kind its nodes use (a kind patched since is inferred afresh)
    keep: tuple  # the block and the default ops its key names by id: alive while the entry is

    @classmethod
    def of(cls, path: str, start: str, end: str, scope_len: int, infos: list[NodeInfo], **kw) -> "_Expansion":
        n = len(path)
        tails: dict[tuple, int] = {}
        nodes = [(i.id[n:], tuple(None if x == start else x[n:] for x in i.inputs),
                  tails.setdefault(i.scope[scope_len:], len(tails)),
                  i.op, i.post, i.span, i.aux, i.in_shapes, i.shape, i.params, i.macs, i.step, i.rf)
                 for i in infos]
        kinds = {id(k): k for i in infos for k in (i.op.kind, *(o.kind for o in i.post))}
        return cls(path=path, nodes=nodes, tails=list(tails), output=None if end == start else end[n:],
                   kinds=tuple(kinds.values()), **kw)


_CALLS: dict[tuple, _Expansion] = _cache.memo()
#: (block, call, values of the names its arguments mention, input dims, constants) -> (call,
#: block, the parameter values): see Builder._bind_call
_CALL_ARGS: dict[tuple, tuple] = _cache.memo()
#: _CALLS is emptied when it holds this many expansions or this many nodes in all (a process
#: that compiles many large networks keeps a bounded number of them alive)
_CALLS_LIMIT = 10_000
_CALLS_NODE_LIMIT = 50_000
#: the nodes _CALLS holds (an overcount after cache.clear(), corrected at the next store)
_calls_nodes = 0


@dataclass(slots=True)
class _Moved:
    """Structural-tree items made under a path of length `n`, standing for their copies under
    `base`. A replayed call leaves one in its TSeq instead of copying its subtree at once: the
    analysis never reads the tree, so the copies are made when CompiledNetwork.tree is first
    read (see _settle)."""

    items: list
    n: int
    base: str


def _retarget(item: Any, n: int, base: str) -> Any:
    """A copy of a tree item made under a path of length `n`, moved under `base`."""
    t = type(item)
    if t is TLayer:
        return TLayer(item.name, base + item.node[n:])
    if t is TSeq:
        return TSeq(item.name, _settle(item.items, n, base), item.block, item.args, base + item.path[n:])
    if t is TMerge:
        return TMerge(item.name, item.mode, [_retarget(b, n, base) for b in item.branches], base + item.node[n:],
                      item.scales)
    raise TypeError(f"cannot move {item!r}")  # aux heads are never memoised


def _settle(items: list, n: int = 0, base: str = "") -> list:
    """`items` moved from a path of length `n` to `base` (n = 0, base = "": where they are),
    every _Moved among them (at any depth) replaced by the copies it stands for."""
    out: list = []
    for item in items:
        if type(item) is _Moved:  # made under item.n, meant for item.base, which is under n
            out.extend(_settle(item.items, item.n, base + item.base[n:]))
        elif n == 0 and not base:
            if type(item) is TSeq:
                item.items = _settle(item.items)
            elif type(item) is TMerge:
                for b in item.branches:
                    b.items = _settle(b.items)
            elif type(item) is TAux:
                item.body.items = _settle(item.body.items)
            out.append(item)
        else:
            out.append(_retarget(item, n, base))
    return out


#: (merge kind, scales) -> its params: shared, so that infer_merge's memo hits by identity
_MERGE_PARAMS: dict[tuple[Kind, tuple[float, ...]], Any] = {}


def _merge_params(kind: Kind, scales: tuple[float, ...]) -> Any:
    key = (kind, scales)
    p = _MERGE_PARAMS.get(key)
    if p is None:
        p = kind.Params(scales=scales) if kind.name == "add" else kind.Params()
        if len(_MERGE_PARAMS) < 1_000:
            _MERGE_PARAMS[key] = p
    return p


def _bind_key(kind: Kind, inv: P.Invocation, stmt: Any, env: Env, shape: Shape | None) -> tuple | None:
    if kind.__dict__:  # a kind with a method replaced on it (tests do): no memo
        return None
    names, reads_input = _free_names(inv, stmt)
    values = []
    for name in names:
        try:
            v = env.lookup(name)
            values.append((type(v), v))  # True == 1, but a bool is no channel count
        except KeyError:  # a flag such as `ceil`, or an undefined name (an error, raised afresh)
            values.append(_UNBOUND)
    key = (kind, stmt, tuple(values), shape.dims if (reads_input and shape is not None) else None)
    try:
        hash(key)
    except TypeError:
        return None
    return key


# ---------------------------------------------------------------- the compiled network


@dataclass
class Expectation:
    stmt: P.Expect
    expected: Any
    #: for `expect shape` (checked where it stands) the shape found there
    found_here: Any = None


class LayerGraph:
    """The layer graph while it is built: nodes (with their attributes) and edges in insertion
    order, in plain dicts and lists.

    It offers the few networkx.DiGraph methods the builder uses.
    Importing networkx takes longer than compiling most networks, and checking or counting
    a network never needs it, so :attr:`CompiledNetwork.graph` turns this into a real
    ``networkx.DiGraph`` only when first asked for.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.edges: list[tuple[str, str]] = []
        #: node ids in the order added (the builder takes slices of it: the nodes of one call)
        self.order: list[str] = []

    def add_node(self, n: str, **attrs: Any) -> None:
        if n not in self.nodes:
            self.order.append(n)
        self.nodes.setdefault(n, {}).update(attrs)

    def add_edge(self, u: str, v: str) -> None:
        self.edges.append((u, v))

    def add_info(self, info: NodeInfo) -> None:
        """Add an inferred node and the edges from its inputs (the builder's fast path)."""
        node = info.id
        if node in self.nodes:
            self.nodes[node]["info"] = info
        else:
            self.nodes[node] = {"info": info}
            self.order.append(node)
        for i in info.inputs:
            self.edges.append((i, node))

    def add_edges_from(self, edges) -> None:
        self.edges.extend(edges)

    def remove_node(self, n: str) -> None:
        del self.nodes[n]
        self.order.remove(n)
        self.edges = [e for e in self.edges if n not in e]

    def number_of_nodes(self) -> int:
        return len(self.nodes)

    def __contains__(self, n: object) -> bool:
        return n in self.nodes

    def __iter__(self):
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def to_networkx(self) -> "nx.DiGraph":
        import networkx as nx

        g = nx.DiGraph()
        for n, attrs in self.nodes.items():
            g.add_node(n, **attrs)
        g.add_edges_from(self.edges)
        return g


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
    #: False for the part of a failing network built before its first error (ArchError.partial)
    complete: bool = True

    def __post_init__(self) -> None:
        # the builder hands over its LayerGraph: keep it, and build the networkx graph on
        # first access to `graph` (see __getattr__)
        if isinstance(self.__dict__.get("graph"), LayerGraph):
            self._layers = self.__dict__.pop("graph")
        # and the structural tree: replayed block calls leave placeholders in it (_Moved),
        # replaced by their copies on first access to `tree`
        self._unsettled = self.__dict__.pop("tree")

    def __getattr__(self, name: str) -> Any:
        if name == "graph" and "_layers" in self.__dict__:
            g = self.__dict__["graph"] = self._layers.to_networkx()
            return g
        if name == "tree" and "_unsettled" in self.__dict__:
            tree = self.__dict__.pop("_unsettled")
            tree.items = _settle(tree.items)
            self.__dict__["tree"] = tree
            return tree
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _table(self) -> dict[str, dict[str, Any]]:
        layers = self.__dict__.get("_layers")
        return layers.nodes if layers is not None else self.graph.nodes

    # -- convenience views
    def nodes(self) -> Iterator[NodeInfo]:
        """Every node in topological (build) order."""
        for attrs in self._table().values():
            yield attrs["info"]

    def node(self, name: str) -> NodeInfo:
        return self._table()[name]["info"]

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


@dataclass(slots=True)
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


@dataclass(slots=True)
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
        self.g = LayerGraph()
        self.expectations: list[Expectation] = []
        self.aux_outputs: dict[str, str] = {}
        self.input_node: str | None = None
        #: every error found, in source order (see :meth:`_recover`)
        self.errors: list[Diagnostic] = []
        self._seen: set[tuple] = set()
        #: the graph's size at the first error: the partial network shown with the errors
        self._partial_at: int | None = None
        self._steps = 0
        #: the file's constants (name, type, value), part of every block-call memo key; None
        #: (no memo) until they are evaluated, or when they are not hashable
        self._globals: tuple | None = None
        self._costs: dict[int, tuple[int, int]] = {}
        self._cost_depth = 0

    # -- entry point
    def build(self) -> CompiledNetwork:
        """Expand the network; raise one ArchError holding every error found, with
        ``err.partial`` the network as built up to the first of them."""
        try:
            net = self._build()
        except ArchError as err:  # a limit, or a mistake outside any body
            self._record(err)
            if not self.errors:
                raise
        if self.errors:
            err = ArchError(self.errors)
            err.partial = self._partial()
            raise err
        return net

    def _recover(self, err: ArchError) -> bool:
        """Record a statement's error so that the build can go on as if the statement were
        absent: one run then reports every independent mistake. Limits stop the network at
        once (False: the caller re-raises)."""
        if err.diagnostics and err.code in _FATAL:
            return False
        self._record(err)
        return True

    def _record(self, err: ArchError) -> None:
        if self._partial_at is None:
            self._partial_at = self.g.number_of_nodes()
        for d in err.diagnostics:
            # after the first error, shapes and values downstream of it are unreliable: keep only
            # the mistakes that cannot be its consequence (names, arguments, duplicates) and limits
            if self.errors and d.code not in _INDEPENDENT and d.code not in _FATAL:
                continue
            key = (d.code, d.message, d.span)  # a block called many times repeats its error
            if key not in self._seen:
                self._seen.add(key)
                self.errors.append(d)

    def _partial(self) -> list[CompiledNetwork]:
        nodes = list(self.g.nodes)[: self._partial_at]
        if self.input_node is None or not nodes:
            return []
        g = LayerGraph()
        for n in nodes:
            g.add_node(n, **self.g.nodes[n])
            g.add_edges_from((i, n) for i in self.g.nodes[n]["info"].inputs if i in g)
        return [CompiledNetwork(
            name=self.network.name, file=self.unit.program.file, graph=g, tree=TSeq(name=self.network.name),
            input=self.input_node, output=nodes[-1],
            aux_outputs={k: v for k, v in self.aux_outputs.items() if v in g},
            expectations=[], sources=self.unit.sources, span=self.network.span, complete=False)]

    def _step(self, n: int, span: P.Span) -> None:
        self._steps += n
        if self._steps > MAX_STEPS:
            raise ArchError(Diagnostic("E304", f"the network takes more than {MAX_STEPS:,} steps to expand", span,
                                       hint="check the repetition counts and nested block calls"))

    def _check_budget(self, times: int, body: P.Body, span: P.Span, what: str) -> None:
        """Refuse at once an expansion that cannot fit the limits, instead of building
        MAX_NODES nodes first: `repeat 10000 { repeat 10000 { relu } }` and blocks that call
        the next one twice, forty deep, fail here without expanding anything."""
        nodes, steps = self._cost(body)
        for used, cost, limit, unit, verb in ((self.g.number_of_nodes(), nodes, MAX_NODES, "nodes", "have"),
                                              (self._steps, steps, MAX_STEPS, "steps", "take")):
            need = used + times * cost
            if need > limit:
                raise ArchError(Diagnostic("E304", f"{what}: the network would {verb} at least {_big(need)} {unit}"
                                           + (" to expand" if unit == "steps" else ""),
                                           span, expected=f"at most {limit:,} {unit}", found=_big(need),
                                           hint="check the repetition counts and nested block calls"))

    def _check_network_budget(self) -> None:
        """Refuse at once a network whose statements add up beyond the limits (25,000 layers
        written out): blame the statement where the total crosses the limit. A statement over
        the limit on its own is left to its own check, which names it better (`repeat 10000`)."""
        if id(self.network) in self.unit.within_budget:
            return
        self._check_network_budget_afresh()
        self.unit.within_budget.add(id(self.network))

    def _check_network_budget_afresh(self) -> None:
        body = self.network.body
        totals = [self._cost_stmt(st) for st in body.stmts]
        all_nodes, all_steps = sum(t[0] for t in totals), 1 + len(body.stmts) + sum(t[1] for t in totals)
        nodes, steps = 0, 1 + len(body.stmts)
        for st, (n, k) in zip(body.stmts, totals):
            nodes, steps = nodes + n, steps + k
            if n > MAX_NODES or k > MAX_STEPS:
                return
            for total, count, limit, text in ((all_nodes, nodes, MAX_NODES, "have at least {} nodes"),
                                              (all_steps, steps, MAX_STEPS, "take at least {} steps to expand")):
                if count > limit:
                    raise ArchError(Diagnostic("E304", "the network would " + text.format(_big(total)), st.span,
                                               expected=f"at most {limit:,}", found=_big(total),
                                               hint="the limit is passed at this statement; "
                                                    "check the repetition counts and the network's length"))

    def _cost(self, body: P.Body) -> tuple[int, int]:
        """Lower bounds on the nodes and steps one expansion of `body` takes, from the text
        alone (repeat counts that are not literals count as 0)."""
        key = id(body)
        if key in self._costs:
            return self._costs[key]
        if self._cost_depth > 2 * MAX_CALL_DEPTH + 8:  # deeper call chains fail on their own (E304)
            return 0, 0
        self._costs[key] = (0, 0)  # a recursive call (an error of its own) counts as nothing
        nodes, steps = 0, 1 + len(body.stmts)
        self._cost_depth += 1
        try:
            for s in body.stmts:
                n, k = self._cost_stmt(s)
                nodes, steps = nodes + n, steps + k
        finally:
            self._cost_depth -= 1
        self._costs[key] = (nodes, steps)
        return nodes, steps

    def _cost_stmt(self, s: P.AnyStmt) -> tuple[int, int]:
        t = type(s)
        if t is P.Invocation:
            block = self.unit.blocks.get(s.name)
            if block is not None:
                return self._cost(block.body)
            return (1 if lookup(s.name) is not None else 0), 0
        if t is P.Repeat:
            c = s.count
            times = c.value if type(c) is P.Num and type(c.value) is int and 0 < c.value <= MAX_REPEAT else 0
            n, k = self._cost(s.body)
            return times * n, times * k
        if t is P.If:
            a, b = self._cost(s.then), self._cost(s.orelse) if s.orelse is not None else (0, 0)
            return min(a[0], b[0]), min(a[1], b[1])
        if t is P.Concat or t is P.Add:
            costs = [self._cost(b) for b in s.branches]
            return 1 + sum(c[0] for c in costs), sum(c[1] for c in costs)
        if t is P.Residual:
            n, k = self._cost(s.body)
            return 1 + n, k
        if t is P.Aux:
            return self._cost(s.body)
        return 0, 0

    def _build(self) -> CompiledNetwork:
        genv = Env()
        for let in self.unit.lets:
            genv.values[let.name] = evaluate(let.value, genv, None)
        consts = tuple((k, type(v), v) for k, v in genv.values.items())
        try:
            hash(consts)
            self._globals = consts
        except TypeError:
            self._globals = None
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
        self._check_network_budget()
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

    def _add(self, info: NodeInfo, span: P.Span | None, blame: P.Span | None = None,
             inv: P.Invocation | None = None) -> str:
        nodes = self.g.nodes
        if len(nodes) >= MAX_NODES:
            raise ArchError(Diagnostic("E304", f"the network expands to more than {MAX_NODES:,} nodes", span,
                                       hint="check the repetition counts"))
        try:
            infer_info(info, [nodes[i]["info"] for i in info.inputs])
        except ShapeError as e:
            # the graph keeps only what inferred: the partial network
            notes = tuple(Note(f"its input {s} comes from '{i}'", self.g.nodes[i]["info"].span)
                          for i, s in zip(info.inputs, info.in_shapes) if self.g.nodes[i]["info"].span is not None)
            if e.arg and inv is not None:  # underline the argument to blame (`g2`), not the statement
                blame = blame or _arg_span(inv, e.arg)
            raise ArchError(Diagnostic(e.code, e.message, blame or span, expected=e.expected, found=e.found,
                                       hint=e.hint, notes=notes[:1] if len(notes) == 1 else ())) from None
        self.g.add_info(info)
        return info.id

    # -- bodies
    def body(self, body: P.Body, cur: str | None, ctx: _Ctx) -> str | None:
        stmts = body.stmts
        self._step(1 + len(stmts), body.span)
        for i, stmt in enumerate(stmts):
            nxt = stmts[i + 1] if i + 1 < len(stmts) else None
            try:
                cur = self.stmt(stmt, cur, ctx, nxt)
            except ArchError as err:  # go on after the statement, as if it were absent
                if not self._recover(err):
                    raise
                if type(stmt) is P.Let:
                    ctx.env.values[stmt.name] = POISON
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
        d = ctx.defaults
        new = _Ctx(Env(None, ctx.env), Defaults(d.act, d.norm, d.bias), ctx.seq, ctx.namer, ctx.scope, ctx.aux,
                   ctx.calls, ctx.label_suffix)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

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
            bad = [d.span for d, v in zip(s.dims, dims) if v < 1] if self.input_override is None else []
            raise ArchError(Diagnostic("E303", f"bad input shape {'x'.join(map(str, dims))}", (bad or [s.span])[0],
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

    def _flags(self, inv: P.Invocation, kind: Kind, stmt: Any) -> tuple[list, frozenset[str]]:
        """Split the generic flags (noact, nonorm, bias, nobias, an activation) from the rest,
        and check that `kind` takes them. This depends on the statement alone, so it is done
        once per statement text (a block's statements run once per call)."""
        hit = _FLAGS.get(stmt)
        if hit is not None and hit[1] is kind:
            if hit[0] is inv:
                return hit[4], hit[2]
            args = (*inv.args, *inv.post)  # written alike elsewhere: the same positions of its arguments
            return [args[i] for i in hit[3]], hit[2]
        args = (*inv.args, *inv.post)
        rest, kept, flags, spans = [], [], set(), {}
        for i, a in enumerate(args):
            word = a.bare_word() if isinstance(a, P.Window) else None
            if word is not None and (word in ("noact", "nonorm", "bias", "nobias") or
                                     (lookup(word) is not None and lookup(word).is_activation)):
                flags.add(word)
                spans[word] = a.span
            else:
                rest.append(a)
                kept.append(i)
        for f in flags:
            if f in ("noact",) or (f not in ("nonorm", "bias", "nobias") and f != "noact"):
                if not kind.takes_act:
                    raise ArchError(Diagnostic("E202", f"{kind.name} has no activation to change with '{f}'",
                                               spans[f], hint="write the activation as its own statement"))
            if f == "nonorm" and not kind.takes_norm:
                raise ArchError(Diagnostic("E202", f"{kind.name} has no normalisation to remove", spans[f]))
            if f in ("bias", "nobias") and not kind.has_bias:
                raise ArchError(Diagnostic("E202", f"{kind.name} has no bias", spans[f]))
        if len(_FLAGS) >= _MEMO_LIMIT:
            _FLAGS.clear()
        _FLAGS[stmt] = (inv, kind, frozenset(flags), tuple(kept), rest)
        return rest, frozenset(flags)

    def _stmt_key(self, inv: P.Invocation) -> Any:
        """What a layer statement's binding is known by, besides the values of the names it
        mentions: its text as written, label included (read back from the source by its
        span), or, when the source is not at hand, the statement itself, compared by value."""
        hit = _KEYS.get(id(inv))
        if hit is not None and hit[0] is inv:
            return hit[1]
        span, key = inv.span, inv
        source = self.unit.sources.get(span.file)
        if source is not None:
            starts = _line_starts(source)
            if span.end_line <= len(starts):
                key = source[starts[span.line - 1] + span.column - 1:starts[span.end_line - 1] + span.end_column - 1]
        if len(_KEYS) >= _MEMO_LIMIT:
            _KEYS.clear()
        _KEYS[id(inv)] = (inv, key)
        return key

    def _bind(self, kind: Kind, inv: P.Invocation, ctx: _Ctx, cur: str | None, args: list | None = None,
              stmt: Any = None):
        shape = self._shape(cur)
        key = _bind_key(kind, inv, stmt if stmt is not None else self._stmt_key(inv), ctx.env, shape)
        hit = _BIND_MEMO.get(key) if key is not None else None
        if hit is not None:
            return hit
        params = self._bind_afresh(kind, inv, ctx, shape, args)
        if key is not None:
            if len(_BIND_MEMO) >= _MEMO_LIMIT:
                _BIND_MEMO.clear()
            _BIND_MEMO[key] = params
        return params

    def _bind_afresh(self, kind: Kind, inv: P.Invocation, ctx: _Ctx, shape: Shape | None, args: list | None):
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
        stmt = self._stmt_key(inv)
        rest, flags = self._flags(inv, kind, stmt)
        params = self._bind(kind, inv, ctx, cur, rest, stmt)
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

    def _layer(self, kind: Kind, params, flags: frozenset[str], inv: P.Invocation, cur: str, ctx: _Ctx, nxt,
               local: str | None) -> str:
        post: list[Op] = []
        norm = ctx.defaults.norm if kind.takes_norm and "nonorm" not in flags else None
        if norm is not None:
            post.append(norm)
        if kind.takes_act:
            act_flags = [f for f in flags if f not in ("noact", "nonorm", "bias", "nobias")]
            if act_flags:
                post.append(_flag_op(act_flags[0]))
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
                nxt_kind = lookup(nxt.name) if type(nxt) is P.Invocation else None
                followed_by_bn = nxt_kind is not None and nxt_kind.name == "bn"
                bias = norm is None and not followed_by_bn
            params = _with_bias(kind, params, bias)
        local = local or ctx.namer.auto(kind.name)
        info = NodeInfo(id=self._path(ctx, local), op=Op(kind, params), post=post, span=inv.span, scope=ctx.scope,
                        aux=ctx.aux, inputs=[cur])
        node = self._add(info, inv.span, inv=inv)
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
        self._check_budget(1, block.body, inv.span, f"calling '{block.name}'")
        values = self._bind_call(inv, block, ctx, cur)
        local = self._local(inv, block.name, ctx)
        path = self._path(ctx, local)
        seq = TSeq(name=local, block=block.name, args=values, path=path)
        ctx.seq.items.append(seq)
        scope = ctx.scope + ((local, block.name),)
        key = self._call_key(block, values, cur, ctx)
        done = _CALLS.get(key) if key is not None else None
        # near a limit, expand afresh: the limit is then reported where the expansion crosses it
        if (done is not None and self._steps + done.steps <= MAX_STEPS
                and len(self.g.nodes) + len(done.nodes) <= MAX_NODES):
            return self._replay(done, seq, cur, scope)
        env = Env(values, self._global_env(ctx))
        sub = _Ctx(env, Defaults(ctx.defaults.act, ctx.defaults.norm, ctx.defaults.bias), seq, _Namer(),
                   scope, ctx.aux, ctx.calls + ((block.name, inv.span),))
        marks = (len(self.g.order), len(self.errors), len(self.expectations), len(self.aux_outputs), self._steps)
        out = self.body(block.body, cur, sub)
        # keep the expansion for the next call alike, unless it reported a mistake or defined an
        # aux head (a second one of the same name is a mistake the replay would not see)
        if key is not None and len(self.errors) == marks[1] and len(self.aux_outputs) == marks[3]:
            global _calls_nodes
            made = len(self.g.order) - marks[0]
            if len(_CALLS) >= _CALLS_LIMIT or _calls_nodes + made > _CALLS_NODE_LIMIT:
                _CALLS.clear()
                _calls_nodes = 0
            _calls_nodes += made
            _CALLS[key] = _Expansion.of(
                path, cur, out, len(scope), [self.g.nodes[n]["info"] for n in self.g.order[marks[0]:]],
                input_rf=self.g.nodes[cur]["info"].rf, items=list(seq.items), expectations=self.expectations[marks[2]:], steps=self._steps - marks[4],
                keep=(block, ctx.defaults.act, ctx.defaults.norm))
        return out

    def _call_key(self, block: P.Block, values: dict[str, Any], cur: str, ctx: _Ctx) -> tuple | None:
        """What a block call's expansion depends on, apart from where it stands: the block, its
        arguments, the input's shape, the scoped defaults, the aux head it is in, the file's
        constants and how deep it is called (the depth limit). None: not memoisable."""
        if self._globals is None:
            return None
        d = ctx.defaults
        key = (id(block), tuple((k, type(v), v) for k, v in values.items()), self._shape(cur).dims,
               None if d.act is None else (id(d.act.kind), id(d.act.params)),
               None if d.norm is None else (id(d.norm.kind), id(d.norm.params)),
               d.bias, ctx.aux, len(ctx.calls), self._globals)
        try:
            hash(key)
        except TypeError:
            return None
        return key

    def _replay(self, done: "_Expansion", seq: TSeq, cur: str, scope: tuple) -> str:
        """Add a block call's nodes as an earlier call alike made them, under this call's path:
        node ids, inputs and scopes are rewritten. The call had the same input shape, so every
        node's shape and counts are the earlier ones. Its receptive field depends on what comes
        before the call as well: it is the earlier one if the call's input has the field the
        earlier call's input had, and is computed afresh otherwise."""
        self._steps += done.steps
        base = seq.path
        g = self.g
        nodes, order, edges = g.nodes, g.order, g.edges
        scopes = [scope + t for t in done.tails]
        if any(k.__dict__ for k in done.kinds):  # a kind patched since (tests do): infer again
            ids = {None: cur}
            for rel, ins, tail, op, post, span, aux, *_ in done.nodes:
                ids[rel] = self._add(NodeInfo(base + rel, op, post, span, scopes[tail], aux, [ids[i] for i in ins]),
                                     span)
        else:
            # ids: a node's id under the call -> its id here (one string object per node, so
            # that its hash is computed once); rfs: -> its receptive field, when the fields
            # differ from the earlier call's
            ids: dict = {None: cur}
            in_rf = nodes[cur]["info"].rf
            rfs: dict | None = None if in_rf == done.input_rf else {None: in_rf}
            for rel, ins, tail, op, post, span, aux, in_shapes, shape, params, macs, step, rf in done.nodes:
                node = ids[rel] = base + rel
                if len(ins) == 1:
                    src = ids[ins[0]]
                    inputs = [src]
                    edges.append((src, node))
                else:  # a merge
                    inputs = [ids[i] for i in ins]
                    edges.extend((i, node) for i in inputs)
                if rfs is not None:
                    rf = rfs[rel] = advance(rfs[ins[0]], step) if step is not None else widest([rfs[i] for i in ins])
                info = NodeInfo(node, op, post, span, scopes[tail], aux, inputs, in_shapes, shape, params, macs,
                                rf, step)
                if node in nodes:  # cannot happen (a call's path is new), but never lose a node
                    nodes[node]["info"] = info
                else:
                    nodes[node] = {"info": info}
                    order.append(node)
        seq.items.append(_Moved(done.items, len(done.path), base))
        self.expectations.extend(Expectation(e.stmt, e.expected, e.found_here) for e in done.expectations)
        return cur if done.output is None else ids[done.output]

    def _global_env(self, ctx: _Ctx) -> Env:
        env = ctx.env
        while env.parent is not None:
            env = env.parent
        return env

    def _bind_call(self, inv: P.Invocation, block: P.Block, ctx: _Ctx, cur: str) -> dict[str, Any]:
        """The block's parameter values for this call. Like a layer's binding (_bind_key), they
        depend only on the call, the values of the names its arguments mention, the input shape
        and, through the parameters' defaults, the file's constants: kept per such case."""
        shape = self._shape(cur)
        key = None
        if self._globals is not None:
            names, _ = _free_names(inv, self._stmt_key(inv))
            try:
                key = (id(block), id(inv), tuple((type(v), v) for v in map(ctx.env.lookup, names)),
                       shape.dims, self._globals)
                hit = _CALL_ARGS.get(key)
            except (KeyError, TypeError):  # an undefined name (an error, raised afresh), unhashable values
                key = hit = None
            if hit is not None and hit[0] is inv and hit[1] is block:
                return hit[2]
        values = self._bind_call_afresh(inv, block, ctx, shape)
        if key is not None:
            if len(_CALL_ARGS) >= _MEMO_LIMIT:
                _CALL_ARGS.clear()
            _CALL_ARGS[key] = (inv, block, values)
        return values

    def _bind_call_afresh(self, inv: P.Invocation, block: P.Block, ctx: _Ctx, shape: Shape) -> dict[str, Any]:
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
                        found=f"{len(positional) + len(keywords)} argument"
                              + "s" * (len(positional) + len(keywords) != 1),
                        notes=(Note("defined here", block.span),)))
                values[prm.name] = evaluate(prm.default, Env(values, genv), shape)
        return values

    def repeat(self, s: P.Repeat, cur: str, ctx: _Ctx) -> str:
        n = _as_int(evaluate(s.count, ctx.env, self._shape(cur)), s.count, "repeat count")
        if n < 0 or n > MAX_REPEAT:
            raise ArchError(Diagnostic("E304", f"repeat count {n} is out of range", s.count.span,
                                       expected=f"0 to {MAX_REPEAT:,}", found=str(n)))
        self._check_budget(n, s.body, s.count.span, f"repeat {n}")
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
        params = _merge_params(kind, scales)
        info = NodeInfo(id=path, op=Op(kind, params), span=s.span, scope=ctx.scope, aux=ctx.aux, inputs=outs)
        blame = None
        try:
            infer_merge(kind, params, [self._shape(o) for o in outs])
        except ShapeError as e:
            # point at the first branch that disagrees with the first, show every branch's shape
            shapes = [self._shape(o) for o in outs]
            odd = next((k for k in range(1, len(shapes)) if
                        (shapes[k].dims[1:] != shapes[0].dims[1:] if mode == "concat" else shapes[k] != shapes[0])), 1)
            notes = tuple(Note(f"branch {k + 1} gives {sh}", _stmts_span(branches[k])) for k, sh in enumerate(shapes))
            raise ArchError(Diagnostic(e.code, e.message, _stmts_span(branches[odd]) if odd < len(branches) else s.span,
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


#: errors that stop a network at once: limits (going on could only take longer)
_FATAL = frozenset({"E304", "E410"})
#: errors that cannot be the consequence of an earlier one in the same network (whereas a
#: shape or value error may just follow from a statement that failed before it)
_INDEPENDENT = frozenset({"E201", "E202", "E204", "E205", "E206", "E207", "E208", "E209"})


def _arg_span(inv: P.Invocation, key: str) -> P.Span | None:
    for a in (*inv.args, *inv.post):
        if isinstance(a, P.KwArg) and a.key == key:
            return a.span
    for c in inv.call or ():
        if isinstance(c, P.CallKw) and c.key == key:
            return c.span
    return None


def _big(n: int) -> str:
    # bit_length, not str(): Python refuses to print ints of more than 4,300 digits
    return f"{n:,}" if n < 10**30 else f"about 10^{int(n.bit_length() * 0.30103)}"


def _as_int(v: Any, expr: P.Node, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ArchError(Diagnostic("E207", f"{what} must be a number", expr.span,
                                   found=f"{str(v).lower()} (a truth value, not a number)"))
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


def parse_input(input: "str | Sequence[int] | None") -> tuple[int, ...] | None:
    """An input shape given outside the spec (`--input 3x299x299`, ``input=(3, 299, 299)``)."""
    if input is None:
        return None
    if isinstance(input, str):
        parts = input.lower().replace(" ", "").split("x")
        if not all(p.isdigit() for p in parts) or len(parts) not in (1, 3):
            raise ArchError(Diagnostic("E601", f"bad input shape '{input}'", expected="CxHxW, e.g. 3x224x224",
                                       found=input))
        dims = tuple(int(p) for p in parts)
    else:
        dims = tuple(int(d) for d in input)
    if len(dims) not in (1, 3) or any(d < 1 for d in dims) or any(d > 1_000_000 for d in dims):
        raise ArchError(Diagnostic("E601", f"bad input shape '{'x'.join(map(str, dims))}'",
                                   expected="CxHxW with every size between 1 and 1,000,000",
                                   found="x".join(map(str, dims))))
    return dims


def build_graph(unit: Unit, network: P.Network, input: tuple[int, ...] | None = None,
                overrides: dict[str, Any] | None = None) -> CompiledNetwork:
    """Expand and infer one network. Raises ArchError (with sources) on any mistake."""
    try:
        with _cache.collector_paused():
            return Builder(unit, network, input, overrides).build()
    except ArchError as e:
        raise e.with_sources(unit.sources)
    except RecursionError:
        raise ArchError(Diagnostic("E304", "the spec nests too deeply to expand", network.span),
                        unit.sources) from None


def check_duplicates(unit: Unit) -> None:
    seen: dict[str, P.Network] = {}
    errors = Collector(list(unit.deferred))
    for n in unit.program.networks:
        if n.name in seen:
            errors.add(ArchError(Diagnostic("E204", f"network '{n.name}' is defined twice", _head(n, "network"),
                                            notes=(Note("first defined here", _head(seen[n.name], "network")),))))
        seen[n.name] = n
    errors.raise_if_any(unit.sources)


def flat_shape(n: int) -> Shape:
    return flat(n)
