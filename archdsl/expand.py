"""Stage 5, expansion: program -> compiled network. The interpreter.

One network of a :class:`~archdsl.sources.Unit` is run statement by statement: block calls
are expanded, repeats unrolled, `if` chosen, names resolved against the layer registry and
the blocks in scope, and every node inferred (:mod:`archdsl.infer`) as it is added, so
that `in.c` can read the shape of the tensor a statement follows. Nothing is remembered
between compiles or between calls: a block called a hundred times is interpreted a
hundred times, at a few tens of microseconds a layer.

After a statement fails, the build goes on as if it were absent, so that one run reports
every independent mistake (:meth:`Builder._recover`); limits stop a network at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from . import init as I
from . import recipe as R
from . import syntax as P
from .binding import GENERIC_FLAGS, arg_span, bind_block_args, bind_params, split_flags
from .budget import MAX_CALL_DEPTH, MAX_NODES, MAX_REPEAT, MAX_STEPS, Costs
from .diagnostics import ArchError, Diagnostic, Note, Suggestion
from .evaluate import POISON, Env, as_int, evaluate
from .infer import NodeInfo, Op, infer_info
from .layers import REGISTRY, Kind, MergeKind, Shape, ShapeError, lookup
from .names import Namer as _Namer
from .network import EXPECTABLE, CompiledNetwork, Expectation, TAux, TLayer, TMerge, TSeq, output_of
from .sources import Unit


@dataclass(slots=True)
class Defaults:
    """The scoped settings in force: `act`, `norm`, `bias`, `init` (inherited by nested bodies)."""

    act: Op | None = None
    norm: Op | None = None
    bias: str = "auto"  # "auto" | "on" | "off"
    init: I.Scope | None = None  # kind -> {parameter: filler} (archdsl.init), replaced, never changed


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


#: errors that stop a network at once: limits (going on could only take longer)
_FATAL = frozenset({"E304", "E410"})
#: errors that cannot be the consequence of an earlier one in the same network (whereas a
#: shape or value error may just follow from a statement that failed before it)
_INDEPENDENT = frozenset({"E201", "E202", "E204", "E205", "E206", "E207", "E208", "E209",
                          "E701", "E702", "E703", "E711", "E713"})


class Builder:
    """Expands one network of a :class:`Unit` into a :class:`CompiledNetwork`."""

    def __init__(self, unit: Unit, network: P.Network, input_override: tuple[int, ...] | None = None,
                 overrides: dict[str, Any] | None = None):
        self.unit = unit
        self.network = network
        self.input_override = input_override
        self.overrides = overrides or {}
        self.infos: dict[str, NodeInfo] = {}
        self.expectations: list[Expectation] = []
        self.aux_outputs: dict[str, str] = {}
        self.input_node: str | None = None
        #: every error found, in source order (see :meth:`_recover`)
        self.errors: list[Diagnostic] = []
        self._seen: set[tuple] = set()
        #: the number of nodes at the first error: the partial network shown with the errors
        self._partial_at: int | None = None
        self._steps = 0
        self.costs = Costs(unit)
        self.genv = Env()
        #: node -> its fillers (archdsl.init); the network's `train { }` (archdsl.recipe)
        self.inits: dict[str, I.NodeInit] = {}
        self.recipe: R.Recipe | None = None
        self._figures: dict = {}  # a layer's figures by (kind, params, attached ops, input shape): infer_info

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
        absent. Limits stop the network at once (False: the caller re-raises)."""
        if err.diagnostics and err.code in _FATAL:
            return False
        self._record(err)
        return True

    def _record(self, err: ArchError) -> None:
        if self._partial_at is None:
            self._partial_at = len(self.infos)
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
        ids = list(self.infos)[: self._partial_at]
        if self.input_node is None or not ids:
            return []
        return [CompiledNetwork(
            name=self.network.name, file=self.unit.program.file, infos={n: self.infos[n] for n in ids},
            tree=TSeq(name=self.network.name), input=self.input_node, output=ids[-1],
            aux_outputs={k: v for k, v in self.aux_outputs.items() if v in ids},
            expectations=[], sources=self.unit.sources, span=self.network.span, complete=False)]

    def _step(self, n: int, span: P.Span) -> None:
        self._steps += n
        if self._steps > MAX_STEPS:
            raise ArchError(Diagnostic("E304", f"the network takes more than {MAX_STEPS:,} steps to expand", span,
                                       hint="check the repetition counts and nested block calls"))

    def _check_budget(self, times: int, body: P.Body, span: P.Span, what: str) -> None:
        self.costs.check(times, body, span, what, len(self.infos), self._steps)

    def _build(self) -> CompiledNetwork:
        genv = self.genv
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
        self.costs.check_network(self.network)
        cur = self.body(self.network.body, None, ctx)
        if cur is None:
            raise ArchError(Diagnostic("E407", f"network '{self.network.name}' has no input", self.network.span,
                                       hint="start the body with `input CxHxW`"))
        if self.recipe is not None:
            R.finish(self.recipe, list(self.aux_outputs))
        return CompiledNetwork(
            name=self.network.name, file=self.unit.program.file, infos=self.infos, tree=root,
            input=self.input_node, output=cur, aux_outputs=self.aux_outputs,
            expectations=self.expectations, sources=self.unit.sources, span=self.network.span,
            init=self.inits, recipe=self.recipe,
        )

    # -- graph helpers
    def _path(self, ctx: _Ctx, local: str) -> str:
        return f"{ctx.seq.path}.{local}" if ctx.seq.path else local

    def _shape(self, node: str | None) -> Shape | None:
        return self.infos[node].shape if node is not None else None

    def _add(self, info: NodeInfo, span: P.Span | None, blame: P.Span | None = None,
             inv: P.Invocation | None = None) -> str:
        infos = self.infos
        if len(infos) >= MAX_NODES:
            raise ArchError(Diagnostic("E304", f"the network expands to more than {MAX_NODES:,} nodes", span,
                                       hint="check the repetition counts"))
        try:
            infer_info(info, [infos[i] for i in info.inputs], self._figures)
        except ShapeError as e:
            # the network keeps only what inferred: the partial network
            notes = tuple(Note(f"its input {s} comes from '{i}'", infos[i].span)
                          for i, s in zip(info.inputs, info.in_shapes) if infos[i].span is not None)
            if e.arg and inv is not None:  # underline the argument to blame (`g2`), not the statement
                blame = blame or arg_span(inv, e.arg)
            raise ArchError(Diagnostic(e.code, e.message, blame or span, expected=e.expected, found=e.found,
                                       hint=e.hint, notes=notes[:1] if len(notes) == 1 else ())) from None
        infos[info.id] = info
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
        # most statements are layers and block calls: test for them first (the same outcome
        # as the chain below, where an `init` statement and a missing input come first)
        if t is P.Invocation and cur is not None and (s.name != "init" or "init" in self.unit.blocks):
            return self.invocation(s, cur, ctx, nxt)
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
        if t is P.Invocation and s.name == "init" and "init" not in self.unit.blocks:  # archdsl.init
            ctx.defaults.init = I.scoped(s, ctx.defaults.init or {}, lambda e: evaluate(e, ctx.env, self._shape(cur)),
                                         lookup)
            return cur
        if t is P.Merge and s.kind == "train":  # the training recipe (archdsl.recipe)
            self.recipe = R.read(s, lambda e: evaluate(e, ctx.env, self._shape(cur)), self.recipe)
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
        if t is P.Merge:
            return self.merge(s, cur, ctx)
        if t is P.Aux:
            return self.aux(s, cur, ctx)
        raise TypeError(f"unknown statement {s!r}")

    def _sub(self, ctx: _Ctx, **changes) -> _Ctx:
        """A nested body in the same module scope: a child Env, a copy of the defaults."""
        d = ctx.defaults
        new = _Ctx(Env(None, ctx.env), Defaults(d.act, d.norm, d.bias, d.init), ctx.seq, ctx.namer, ctx.scope, ctx.aux,
                   ctx.calls, ctx.label_suffix)
        for key, value in changes.items():
            setattr(new, key, value)
        return new

    # -- statements
    def input(self, s: P.Input, cur: str | None, ctx: _Ctx) -> str:
        if cur is not None:
            raise ArchError(Diagnostic("E407", "`input` must come before every layer", s.span,
                                       notes=(Note("the network already started here", self.infos[cur].span),)))
        if ctx.seq.path or ctx.calls:
            raise ArchError(Diagnostic("E407", "`input` may only appear in a network's body", s.span))
        if self.input_override is not None:
            dims = tuple(self.input_override)
        else:
            dims = tuple(as_int(evaluate(d, ctx.env, None), d, "input size") for d in s.dims)
        if len(dims) not in (1, 3) or any(d < 1 for d in dims):
            bad = [d.span for d, v in zip(s.dims, dims) if v < 1] if self.input_override is None else []
            raise ArchError(Diagnostic("E303", f"bad input shape {'x'.join(map(str, dims))}", (bad or [s.span])[0],
                                       expected="CxHxW with every size at least 1",
                                       found="x".join(map(str, dims))))
        identity = REGISTRY["identity"]
        info = NodeInfo(id="input", op=Op(identity, identity.Params()), span=s.span, shape=Shape(dims))
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
        if kind is None or isinstance(kind, MergeKind) or (s.setting == "act" and not kind.is_activation):
            choices = [k.name for k in REGISTRY.values()
                       if (k.is_activation or s.setting == "norm") and not isinstance(k, MergeKind)]
            raise ArchError(Diagnostic("E201", f"unknown {'activation' if s.setting == 'act' else 'layer'} "
                                       f"'{inv.name}'", inv.name_span,
                                       hint=Suggestion(inv.name, choices, f"write `{s.setting} none` to clear it")))
        params = bind_params(kind, inv, ctx.env, None, list((*inv.args, *inv.post)))
        setattr(ctx.defaults, s.setting, Op(kind, params))

    def expect(self, s: P.Expect, cur: str | None, ctx: _Ctx) -> None:
        if s.what not in EXPECTABLE:
            raise ArchError(Diagnostic("E202", f"unknown expectation '{s.what}'", s.span,
                                       hint=Suggestion(s.what, EXPECTABLE, "expectations: " + ", ".join(EXPECTABLE))))
        shape = self._shape(cur)
        sized = s.what in ("output", "shape")
        if isinstance(s.value, tuple):
            if not sized:
                raise ArchError(Diagnostic("E207", f"`expect {s.what}` takes a number, not a size", s.value[0].span,
                                           expected="a number", found="x".join("…" for _ in s.value),
                                           hint="sizes such as 64x56x56 are for `expect output` and `expect shape`"))
            expected: Any = tuple(as_int(evaluate(d, ctx.env, shape), d, "size") for d in s.value)
        else:
            expected = evaluate(s.value, ctx.env, shape)
            if isinstance(expected, bool) or not isinstance(expected, (int, float)):
                raise ArchError(Diagnostic("E207", f"`expect {s.what}` takes a number", s.value.span,
                                           found=f"{str(expected).lower()} (a truth value, not a number)"))
            if sized:
                expected = (as_int(expected, s.value, "size"),)
        found = shape if s.what == "shape" else None
        if s.what == "shape" and cur is None:
            raise ArchError(Diagnostic("E407", "`expect shape` before the input", s.span))
        self.expectations.append(Expectation(s, expected, found))

    def invocation(self, inv: P.Invocation, cur: str, ctx: _Ctx, nxt) -> str:
        block = self.unit.blocks.get(inv.name)
        if block is not None:
            return self.call(inv, block, cur, ctx)
        kind = lookup(inv.name)
        if kind is None:
            def choices() -> set[str]:
                return {k for k, v in REGISTRY.items() if not isinstance(v, MergeKind)} | set(self.unit.blocks)
            raise ArchError(Diagnostic("E201", f"unknown layer or block '{inv.name}'", inv.name_span,
                                       hint=Suggestion(inv.name, choices)))
        if isinstance(kind, MergeKind):
            raise ArchError(Diagnostic("E201", f"'{inv.name}' takes branches: write `{inv.name} {{ A | B }}`",
                                       inv.name_span))
        inv, own_init = I.split_layer(inv)
        rest, flags = split_flags(inv, kind)
        params = bind_params(kind, inv, ctx.env, self._shape(cur), rest)
        expansion = kind.expand(params)
        if expansion is not None:  # a macro kind (mlpconv): one layer per expanded op
            local = self._local(inv, kind.name, ctx)
            sub = TSeq(name=local, path=self._path(ctx, local))
            ctx.seq.items.append(sub)
            sub_ctx = _Ctx(ctx.env, ctx.defaults, sub, _Namer(), ctx.scope, ctx.aux, ctx.calls)
            for kname, kparams in expansion:
                cur = self._layer(REGISTRY[kname], kparams, flags, inv, cur, sub_ctx, None, None, own_init)
            return cur
        return self._layer(kind, params, flags, inv, cur, ctx, nxt, self._local(inv, kind.name, ctx), own_init)

    def _local(self, s: P.Stmt, base: str, ctx: _Ctx) -> str:
        if s.label:
            return ctx.namer.label(s.label + ctx.label_suffix, s.label_span)
        return ctx.namer.auto(base)

    def _layer(self, kind: Kind, params, flags: frozenset[str], inv: P.Invocation, cur: str, ctx: _Ctx, nxt,
               local: str | None, own_init: tuple = ()) -> str:
        post: list[Op] = []
        norm = ctx.defaults.norm if kind.takes_norm and "nonorm" not in flags else None
        if norm is not None:
            post.append(norm)
        if kind.takes_act:
            act_flags = sorted(f for f in flags if f not in GENERIC_FLAGS) if flags else None
            if act_flags:
                act = lookup(act_flags[0])
                post.append(Op(act, act.Params()))
            elif "noact" not in flags and ctx.defaults.act is not None:
                post.append(ctx.defaults.act)
        if kind.has_bias:
            if "bias" in flags or "nobias" in flags:
                bias = "bias" in flags
            elif ctx.defaults.bias != "auto":
                bias = ctx.defaults.bias == "on"
            else:
                # no bias before a norm that cancels it (batch norm subtracts the per-channel
                # mean), attached (`norm bn`) or as the next statement; layer norm does not
                nxt_kind = lookup(nxt.name) if type(nxt) is P.Invocation else None
                bias = not (norm is not None and norm.kind.cancels_bias) and not (
                    nxt_kind is not None and nxt_kind.cancels_bias)
            params = kind.with_bias(params, bias)
        local = local or ctx.namer.auto(kind.name)
        info = NodeInfo(id=self._path(ctx, local), op=Op(kind, params), post=post, span=inv.span, scope=ctx.scope,
                        aux=ctx.aux, inputs=[cur])
        node = self._add(info, inv.span, inv=inv)
        scope = ctx.defaults.init or {}
        if own_init or kind.name in scope or (post and any(op.kind.name in scope for op in post)):  # else none
            x = info.in_shapes[0]  # the layer's own output: the node's, unless attached ops follow it
            weight = kind.count_params(params, x, kind.infer(params, x) if post else info.shape) > 0
            if fillers := I.node_init(kind, params, post, scope, own_init,
                                      lambda e: evaluate(e, ctx.env, self._shape(cur)), weight):
                self.inits[node] = fillers
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
        seq = TSeq(name=local, block=block.name, args=values, path=self._path(ctx, local))
        ctx.seq.items.append(seq)
        d = ctx.defaults
        sub = _Ctx(Env(values, self.genv), Defaults(d.act, d.norm, d.bias, d.init), seq,
                   _Namer(), ctx.scope + ((local, block.name),), ctx.aux, ctx.calls + ((block.name, inv.span),))
        return self.body(block.body, cur, sub)

    def _bind_call(self, inv: P.Invocation, block: P.Block, ctx: _Ctx, cur: str) -> dict[str, Any]:
        return bind_block_args(inv, block, ctx.env, self.genv, self._shape(cur))

    def repeat(self, s: P.Repeat, cur: str, ctx: _Ctx) -> str:
        n = as_int(evaluate(s.count, ctx.env, self._shape(cur)), s.count, "repeat count")
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

    def merge(self, s: P.Merge, cur: str, ctx: _Ctx) -> str:
        kind = lookup(s.kind)
        if not isinstance(kind, MergeKind):
            merges = [k.name for k in REGISTRY.values() if isinstance(k, MergeKind)]
            what = "a layer" if kind is not None else ("a block" if s.kind in self.unit.blocks else None)
            raise ArchError(Diagnostic(
                "E201", f"'{s.kind}' is {what}, not a merge: it takes no branches" if what else
                f"unknown merge '{s.kind}'", s.kind_span,
                hint=Suggestion(s.kind, merges if not what else (), "merges: " + ", ".join(sorted(merges)))))
        branches: Sequence[P.Body] = s.branches
        need = kind.min_branches
        if len(branches) < need or (kind.identity_branch and len(branches) != need):
            raise ArchError(Diagnostic("E206", f"{kind.name} takes {'exactly' if kind.identity_branch else 'at least'} "
                                       f"{need} branch{'es' * (need != 1)}, {len(branches)} given", s.span,
                                       hint=f"write `{kind.example}`" if kind.example else None))
        params = bind_params(kind, s, ctx.env, self._shape(cur), list(s.options))
        if kind.identity_branch:
            branches = (*branches, P.Body(span=s.span, stmts=()))
        local = self._local(s, kind.name, ctx)
        path = self._path(ctx, local)
        outs: list[str] = []
        seqs: list[TSeq] = []
        for k, br in enumerate(branches, 1):
            seq = TSeq(name=f"branch{k}", path=f"{path}.branch{k}")
            out = self.body(br, cur, self._sub(ctx, seq=seq, namer=_Namer(), label_suffix=""))
            seqs.append(seq)
            outs.append(out)
        info = NodeInfo(id=path, op=Op(kind, params), span=s.span, scope=ctx.scope, aux=ctx.aux, inputs=outs)
        try:
            node = self._add(info, s.span)
        except ArchError as err:
            # point at the branch to blame, show every branch's shape
            shapes = [self._shape(o) for o in outs]
            odd = kind.odd_branch(params, shapes)
            d = err.diagnostics[0]
            if d.code in _FATAL:
                raise
            notes = tuple(Note(f"branch {k + 1} gives {sh}", _stmts_span(branches[k])) for k, sh in enumerate(shapes))
            raise ArchError(Diagnostic(d.code, d.message, _stmts_span(branches[odd]) if odd < len(branches) else s.span,
                                       expected=d.expected, found=d.found, hint=d.hint, notes=notes)) from None
        ctx.seq.items.append(TMerge(local, seqs, node))
        if ctx.defaults.init and I.LAST_BN in ctx.defaults.init and kind.name in ("add", "residual"):
            I.last_bn(self.infos, self.inits, output_of(seqs[0]), ctx.defaults.init[I.LAST_BN])
        return node

    def aux(self, s: P.Aux, cur: str, ctx: _Ctx) -> str:
        # an aux head's name is scoped like a label: `aux1` in a block called twice is
        # `inception4a.aux1` and `inception4d.aux1`
        path = self._path(ctx, s.name + ctx.label_suffix)
        if path in self.aux_outputs:
            raise ArchError(Diagnostic("E204", f"aux head '{path}' is defined twice", s.span))
        local = ctx.namer.label(s.name + ctx.label_suffix, s.span)
        seq = TSeq(name=local, path=path)
        sub = self._sub(ctx, seq=seq, namer=_Namer(), aux=seq.path)
        self.aux_outputs[seq.path] = self.body(s.body, cur, sub)
        ctx.seq.items.append(TAux(local, seq))
        return cur


def _stmts_span(body: P.Body) -> P.Span:
    """From a body's first statement to its last: a branch's own span runs on over the
    separator after it, trailing comment included."""
    if not body.stmts:
        return body.span
    first, last = body.stmts[0].span, body.stmts[-1].span
    return P.replace(first, end_line=last.end_line, end_column=last.end_column)
