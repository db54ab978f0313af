"""A ``torch.nn.Module`` -> archdsl spec text: the importer (``archdsl import``, :func:`import_module`).

Tracing is torch.fx's symbolic tracing (a Tracer whose leaves are torch.nn's own layers),
not torch.export, because a spec is written in layers and fx keeps them:

* every torch.nn layer stays one ``call_module`` node under its qualified name, with the
  module object itself (an ``nn.Conv2d`` with its kernel, stride, padding, groups) and the
  stack of module calls it was made in (``nn_module_stack``): one statement per layer,
  and the nesting, labels and blocks come from that stack. torch.export lowers to ATen
  operators (``aten.convolution``, ``aten._native_batch_norm_legit``) with parameters
  lifted to inputs and batch norm decomposed, from which the layers must be guessed back;
* fx runs no kernel: tracing resnet152 takes about a second at any input size;
* the module is traced in training mode, so that aux heads (GoogLeNet, Inception-v3) are
  called and imported; the checks below then run it in eval mode.

The cost is fx's limit: Python control flow on tensor values cannot be traced; such a
module is an ImportFailure with torch's message.

The op -> kind mapping is three tables (``MODULES`` by class, ``FUNCTIONS`` and
``METHODS`` by name) of small converters returning :class:`archdsl.rebuild_types.Op`; a new
kind is one entry. An op with no entry is an ImportFailure naming the op, the module
path and the source line that calls it. After rebuilding, the spec is compiled and its
parameters, MACs (against torch's FlopCounterMode) and output shape are compared with
the module's: any difference is an ImportFailure, never a silent approximation.
"""

from __future__ import annotations

import operator
import re

import torch
from torch import fx, nn

from . import rebuild as R
from . import write_spec as W
from .torch_ops import (FUNCTIONS, MERGES, METHODS, SPLITS, Layout, Unsupported, _arg, _name, converter, layer_scale,
                        module_ops, on_channels_last, split_part)

_GENERIC = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class ImportFailure(ValueError):
    """The module cannot be written as a spec (an op without a kind, a graph a spec cannot
    express), or the spec written does not count what the module does."""


# ---------------------------------------------------------------- tracing


class _Tracer(fx.Tracer):
    def __init__(self):
        super().__init__()
        self.record_stack_traces = True

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return converter(m) != "missing" or super().is_leaf_module(m, qualname)


def _source_line(node: fx.Node) -> str:
    """The innermost frame of the node's stack outside torch: the model's own line."""
    frames = re.findall(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)', node.stack_trace or "")
    for path, line, _fn, code in reversed(frames):
        if "/torch/" not in path.replace("\\", "/"):
            return f"{path}:{line}: {code.strip()}"
    return "(no source line recorded)"


class _Graph:
    """The traced graph as tensor nodes: an op (one input), a merge, or the input."""

    def __init__(self, module: nn.Module, gm: fx.Graph):
        self.module = module
        self.calls = {}  # module path -> how many times it is called
        self.items: dict[fx.Node, list[R.Op]] = {}
        self.merge: dict[fx.Node, str] = {}
        self.inputs: dict[fx.Node, list[fx.Node]] = {}
        self.alias: dict[fx.Node, fx.Node] = {}
        self.outputs: list[fx.Node] = []
        self.order: dict[fx.Node, int] = {}
        self.placeholder: fx.Node | None = None
        self.meta: set[fx.Node] = set()
        self.frames: dict[str, R.Frame] = {}
        self.attrs: dict[fx.Node, torch.Tensor] = {}  # parameters read directly, each by products only
        self.last: set[fx.Node] = set()  # tensors in channels-last layout (NHWC, after a permute)
        for i, n in enumerate(gm.nodes):
            self.order[n] = i
            if n.op == "call_module":
                self.calls[n.target] = self.calls.get(n.target, 0) + 1
        for n in gm.nodes:
            self._node(n)

    def fail(self, node: fx.Node, what: str, why: str = "") -> ImportFailure:
        scope = self.scope(node, leaf=False)
        path = node.target if node.op == "call_module" else (scope[-1].path if scope else "(the top module)")
        return ImportFailure(f"no archdsl kind for {what}{': ' + why if why else ''}\n  module: {path or '(top)'}\n"
                             f"  at {_source_line(node)}")

    def scope(self, node: fx.Node, leaf: bool) -> tuple[R.Frame, ...]:
        stack = list((node.meta.get("nn_module_stack") or {}).items())
        if node.op == "call_module" and stack and stack[-1][1][0] == node.target:
            stack = stack[:-1]
        out = []
        for key, (path, cls) in stack:
            if key not in self.frames:
                typ = cls if isinstance(cls, type) else None
                name = f"{typ.__module__}.{typ.__qualname__}" if typ else str(cls)
                generic = typ in _GENERIC if typ else False
                self.frames[key] = R.Frame(key, path, name, generic)
            out.append(self.frames[key])
        return tuple(out)

    def _resolve(self, n):
        while n in self.alias:
            n = self.alias[n]
        return n

    def _is_last(self, node: fx.Node) -> bool:
        """Is the tensor `node` reads channels-last? (Of the argument unresolved: a permute aliases its input.)"""
        raw = [a for a in node.args if isinstance(a, fx.Node) and a not in self.meta]
        return bool(raw) and raw[0] in self.last

    def _tensor_args(self, node: fx.Node) -> list[fx.Node]:
        return [self._resolve(a) for a in node.args if isinstance(a, fx.Node) and a not in self.meta]

    def _is_meta(self, n: fx.Node) -> bool:
        """Is `n` about shapes rather than values: a tensor's size, ndim, shape or dtype, a
        computation on those alone, or an assertion on one?"""
        if n.op == "call_method" and n.target in ("size", "dim"):
            return True
        if n.op == "call_function" and n.target is getattr and len(n.args) > 1 and \
                n.args[1] in ("shape", "ndim", "dtype", "device"):
            return True
        nodes = [a for a in (*n.args, *n.kwargs.values()) if isinstance(a, fx.Node)]
        return n.op == "call_function" and bool(nodes) and all(a in self.meta for a in nodes)

    def _node(self, n: fx.Node) -> None:
        if n.op == "placeholder":
            if self.placeholder is not None:
                raise ImportFailure(f"the module takes more than one input ('{self.placeholder.name}', '{n.name}'); "
                                    "a spec has one")
            self.placeholder = n
            return
        if n.op == "get_attr":
            try:
                t = self.module.get_parameter(n.target)
            except AttributeError:  # a buffer, a constant
                t = None
            if t is not None and n.users and all(_name(u) in ("mul", "imul") for u in n.users):
                self.attrs[n] = t  # a learnt scale (ConvNeXt's layer_scale): the product is its layer
                return
            raise self.fail(n, f"the direct use of the tensor '{n.target}'",
                            "a spec's layers own their weights; use the layer's module")
        if n.op == "output":
            self._outputs(n.args[0])
            return
        if n.op == "call_module":
            m = self.module.get_submodule(n.target)
            conv = converter(m)
            what = f"{type(m).__module__}.{type(m).__qualname__}"
            if conv == "missing":
                raise self.fail(n, what)
            try:
                src = self._tensor_args(n)
                fed_by = self.items[src[0]][-1].kind if src and src[0] in self.items else None
                ops = module_ops(m, conv, what, self._is_last(n), fed_by)
            except Unsupported as e:
                raise self.fail(n, what, str(e)) from None
            label = n.target.rsplit(".", 1)[-1]
            if ops and (self.calls[n.target] > 1 or not R.identifier(label)):
                label = None
            self._unary(n, ops, label)
            return
        name = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
        if n.op == "call_function" and (n.target in (tuple,) or (isinstance(n.target, type) and
                                                                  issubclass(n.target, tuple))):
            return  # packs the outputs (a named tuple); read at the output node
        if self._is_meta(n):
            self.meta.add(n)
            return  # shape arithmetic and checks (x.size(0), x.ndim == 4, _assert): no layer
        if n.op == "call_function" and n.target is operator.getitem:
            src = n.args[0]
            if isinstance(src, fx.Node) and src.op in ("call_method", "call_function") and _name(src) in SPLITS:
                try:
                    ops = split_part(src, n.args[1])
                except Unsupported as e:
                    raise self.fail(src, f"{_name(src)}", str(e)) from None
                self._unary(n, ops, None, src.args[0])
            return  # else read by its user (view), or an error there
        if _name(n) in SPLITS and n.op in ("call_method", "call_function"):
            return  # a tuple of parts: each getitem of it is a split
        if name in MERGES:
            self._merge(n, MERGES[name], name)
            return
        table = METHODS if n.op == "call_method" else FUNCTIONS
        what = f"Tensor.{name}" if n.op == "call_method" else f"{getattr(n.target, '__module__', '')}.{name}"
        if name not in table:
            raise self.fail(n, what)
        try:
            ops = table[name](n)
        except Unsupported as e:
            raise self.fail(n, what, str(e)) from None
        last = self._is_last(n)
        if isinstance(ops, Layout):
            if ops.to_last == last:
                raise self.fail(n, what, "a permute to the layout the tensor already has")
            if ops.to_last:
                self.last.add(n)
            self.alias[n] = self._tensor_args(n)[0]
            return
        if ops and last:
            try:
                ops = on_channels_last(ops, what)
            except Unsupported as e:
                raise self.fail(n, what, str(e)) from None
        self._unary(n, ops, None)

    def _unary(self, n: fx.Node, ops, label, source: fx.Node | None = None) -> None:
        args = self._tensor_args(n) if source is None else [self._resolve(source)]
        if len(args) != 1:
            raise self.fail(n, f"{n.target} on {len(args)} tensors", "a layer takes one")
        if (source in self.last) if source is not None else self._is_last(n):
            self.last.add(n)  # a channels-last tensor stays one through positionwise layers
        if not ops:
            self.alias[n] = args[0]
            return
        scope = self.scope(n, leaf=True)
        where = n.target if n.op == "call_module" else str(n.target)
        for op in ops:
            op.scope, op.where, op.order = scope, where, self.order[n]
        ops[0].label = label
        self.items[n], self.inputs[n] = ops, args

    def _merge(self, n: fx.Node, kind: str, name: str) -> None:
        if kind == "mul" and len(n.args) == 2 and sum(a in self.attrs for a in n.args) == 1:
            self._scale(n, name)
            return
        if kind == "concat":
            tensors = n.args[0] if n.args else n.kwargs.get("tensors")
            dim = _arg(n, 1, "dim", 0)
            if dim not in (1, -3):
                raise self.fail(n, f"torch.{name} along dim {dim}", "concat joins channels (dim 1)")
            if not isinstance(tensors, (list, tuple)) or not all(isinstance(t, fx.Node) for t in tensors):
                raise self.fail(n, f"torch.{name} of {tensors!r}")
        else:
            tensors = n.args[:2]
            if len(tensors) != 2 or not all(isinstance(a, fx.Node) for a in tensors) or n.kwargs.get("alpha", 1) != 1:
                raise self.fail(n, f"{name} of a tensor and a constant ({n.args!r})",
                                "archdsl adds and multiplies branches, not constants")
        if any(t in self.last for t in tensors):
            raise self.fail(n, f"torch.{name} of channels-last tensors", "archdsl's merges join channels-first maps")
        args = [self._resolve(t) for t in tensors]
        if len(args) == 1:
            self.alias[n] = args[0]
            return
        self.merge[n], self.inputs[n] = kind, args

    def _scale(self, n: fx.Node, name: str) -> None:
        """parameter * tensor: a layer of its own (layerscale), labelled by the parameter's name."""
        attr = next(a for a in n.args if a in self.attrs)
        try:
            ops = layer_scale(self.attrs[attr])
        except Unsupported as e:
            raise self.fail(n, f"{name} by the parameter '{attr.target}'", str(e)) from None
        label = attr.target.rsplit(".", 1)[-1]
        self._unary(n, ops, label if R.identifier(label) else None, next(a for a in n.args if a is not attr))

    def _outputs(self, arg) -> None:
        def flat(a):
            if isinstance(a, fx.Node) and a.op == "call_function" and isinstance(a.target, type) \
                    and issubclass(a.target, tuple):
                for x in a.args:
                    yield from flat(x)
            elif isinstance(a, (list, tuple)):
                for x in a:
                    yield from flat(x)
            elif isinstance(a, dict):
                for x in a.values():
                    yield from flat(x)
            elif isinstance(a, fx.Node):
                if a in self.last:
                    raise ImportFailure("the module returns a channels-last tensor (after a permute); a spec's "
                                        "maps are channels-first")
                yield self._resolve(a)
        self.outputs = [o for o in flat(arg) if o is not None]


def _dense_prefixes(g: _Graph) -> None:
    """cat(a1..ak, b) where cat(a1..ak) was made earlier -> cat(that, b): DenseNet's growing
    concatenations become one concat { identity | new } per layer."""
    made: dict[tuple, fx.Node] = {}
    for n in sorted(g.merge, key=g.order.get):
        if g.merge[n] != "concat":
            continue
        ins = tuple(g._resolve(a) for a in g.inputs[n])
        if ins in made:
            g.alias[n] = made[ins]
            del g.merge[n], g.inputs[n]
            continue
        for k in range(len(ins) - 1, 1, -1):
            if ins[:k] in made:
                g.inputs[n] = [made[ins[:k]], *ins[k:]]
                break
        made[ins] = n
    for n in list(g.inputs):  # re-point users of removed duplicates
        g.inputs[n] = [g._resolve(a) for a in g.inputs[n]]
    g.outputs = [g._resolve(o) for o in g.outputs]


# ---------------------------------------------------------------- series-parallel structure


class _Structure:
    """The tensor graph -> items: a chain of ops, with a Merge wherever paths fork and meet
    again (the fork's immediate post-dominator must be the merge), and an Aux where a path
    leaves the main one for an extra output."""

    def __init__(self, g: _Graph):
        self.g = g
        self.users: dict[fx.Node, list[fx.Node]] = {}
        for n, ins in g.inputs.items():
            for a in ins:
                self.users.setdefault(a, []).append(n)
        if not g.outputs:
            raise ImportFailure("the module returns no tensor")
        self.main = self._ancestors(g.outputs[0]) | {g.outputs[0]}
        if g.placeholder not in self.main:
            raise ImportFailure("the module's output does not depend on its input")
        self.aux_at: dict[fx.Node, list[tuple[fx.Node, set]]] = {}
        for o in g.outputs[1:]:
            if o in self.main:
                continue
            region = (self._ancestors(o) | {o}) - self.main
            anchors = {a for n in region for a in g.inputs.get(n, ()) if a in self.main}
            if len(anchors) != 1:
                raise ImportFailure(f"the extra output '{o.name}' reads {len(anchors)} tensors of the main path; "
                                    "an aux head reads one")
            self.aux_at.setdefault(anchors.pop(), []).append((o, region))

    def _ancestors(self, n: fx.Node) -> set:
        seen, todo = set(), [n]
        while todo:
            for a in self.g.inputs.get(todo.pop(), ()):
                if a not in seen:
                    seen.add(a)
                    todo.append(a)
        return seen

    def _descendants(self, n: fx.Node, region: set) -> set:
        seen, todo = set(), [n]
        while todo:
            for u in self.users.get(todo.pop(), ()):
                if u in region and u not in seen:
                    seen.add(u)
                    todo.append(u)
        return seen

    def items(self) -> list:
        return self.chain(self.g.placeholder, self.g.outputs[0], self.main, main=True)

    def _aux(self, cur: fx.Node, out: list) -> None:
        for o, region in self.aux_at.get(cur, ()):
            body = self.chain(cur, o, region | {cur}, main=False)
            out.append(R.Aux("", body, ()))

    def chain(self, cur: fx.Node, stop: fx.Node, region: set, main: bool) -> list:
        items: list = []
        if main:
            self._aux(cur, items)
        while cur is not stop:
            users = [u for u in self.users.get(cur, ()) if u in region]
            if not users:
                raise ImportFailure(f"'{cur.name}' leads nowhere on the way to '{stop.name}'")
            if len(users) == 1 and users[0] in self.g.items:
                cur = users[0]
                items.extend(self.g.items[cur])
            else:
                join = self._join(cur, stop, region)
                if join not in self.g.merge:
                    raise ImportFailure(f"the paths that fork at '{cur.name}' meet at '{join.name}', which is not a "
                                        "concatenation, sum or product: a spec cannot express this graph")
                branches, seen = [], set()
                for a in self.g.inputs[join]:
                    if a is cur:
                        branches.append([])
                        continue
                    sub = self._descendants(cur, region) & (self._ancestors(a) | {a})
                    if sub & seen or cur not in self._ancestors(a):
                        raise ImportFailure(f"the branches merged at '{join.name}' share layers or read other tensors "
                                            "than the fork's: a spec's branches run on one input")
                    seen |= sub
                    if any(n in self.aux_at for n in sub):
                        raise ImportFailure(f"an extra output leaves from inside the branches merged at '{join.name}'")
                    branches.append(self.chain(cur, a, sub | {cur}, main=False))
                if self.g.merge[join] != "concat":  # a sum or product: branches in the order torch calls them
                    order = [min((op.order for op in _walk_ops(b)), default=1 << 60) for b in branches]
                    branches = [b for _, b in sorted(zip(order, branches), key=lambda t: t[0])]
                items.append(R.Merge(self.g.merge[join], branches, self.g.scope(join, leaf=True)))
                cur = join
            if main:
                self._aux(cur, items)
        return items

    def _join(self, cur: fx.Node, stop: fx.Node, region: set) -> fx.Node:
        """The first node every path from `cur` to `stop` passes through (path counting)."""
        inside = (self._descendants(cur, region) & (self._ancestors(stop) | {stop}))
        nodes = sorted(inside, key=self.g.order.get)
        down = {cur: 1}
        for n in nodes:
            down[n] = sum(down.get(a, 0) for a in self.g.inputs.get(n, ()))
        up = {stop: 1}
        for n in reversed(nodes):
            if n is not stop:
                up[n] = sum(up.get(u, 0) for u in self.users.get(n, ()) if u in inside)
        total = down[stop]
        return next(n for n in nodes if down[n] * up.get(n, 0) == total)


def _walk_ops(items: list):
    for it in items:
        if isinstance(it, R.Op):
            yield it
        elif isinstance(it, R.Merge):
            for b in it.branches:
                yield from _walk_ops(b)
        elif isinstance(it, R.Aux):
            yield from _walk_ops(it.body)


# ---------------------------------------------------------------- the importer


def _anchor_aux(items: list) -> None:
    """An aux head sits where it leaves the main path: its scope is what it shares with
    the item before it; its name is the module its layers are called in (else auxN)."""
    k = 0
    for i, it in enumerate(items):
        if isinstance(it, R.Merge):
            for b in it.branches:
                _anchor_aux(b)
        if not isinstance(it, R.Aux):
            continue
        k += 1
        inner = R._common(R._inner_scopes(it.body))
        before = R.scope_of(items[i - 1]) if i else ()
        it.scope = R._common([inner, before]) if inner else before
        it.name = inner[len(it.scope)].path.rsplit(".", 1)[-1] if len(inner) > len(it.scope) else f"aux{k}"
        if not R.identifier(it.name):
            it.name = f"aux{k}"


def _labels(items: list, calls: dict[str, int]) -> None:
    for it in items:
        if isinstance(it, R.Call):
            name = it.frame.path.rsplit(".", 1)[-1]
            it.label = name if calls.get(it.frame.path, 0) == 1 and R.identifier(name) else None
            _labels(it.body, calls)
        elif isinstance(it, R.Merge):
            for b in it.branches:
                _labels(b, calls)
        elif isinstance(it, R.Aux):
            _labels(it.body, calls)
            for j, sub in enumerate(it.body):  # the head's own module call is named by `aux NAME`
                if isinstance(sub, R.Call) and sub.label == it.name:
                    sub.label = None


def _module_calls(items: list, counts: dict[str, set]) -> None:
    for it in items:
        if isinstance(it, R.Call):
            counts.setdefault(it.frame.path, set()).add(it.frame.key)
            _module_calls(it.body, counts)
        elif isinstance(it, R.Merge):
            for b in it.branches:
                _module_calls(b, counts)
        elif isinstance(it, R.Aux):
            _module_calls(it.body, counts)


def parse_input(text: "str | tuple | list") -> tuple[int, ...]:
    if isinstance(text, str):
        parts = text.lower().split("x")
        if not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"input {text!r}: write CxHxW (e.g. 3x224x224) or N")
        dims = tuple(int(p) for p in parts)
    else:
        dims = tuple(int(d) for d in text)
    if len(dims) not in (1, 3) or not all(d > 0 for d in dims):
        raise ValueError(f"input {text!r}: write CxHxW (e.g. 3x224x224) or N")
    return dims


def import_module(module: nn.Module, input: "str | tuple" = "3x224x224", name: str | None = None,
                  source: str | None = None, verify: bool = True) -> str:
    """The spec of `module`: blocks, nesting, labels and repeats rebuilt from the traced
    module hierarchy, with ``expect`` lines for its params, MACs and output shape.

    `verify` (the default) compiles the spec and compares its parameters, its MACs (with
    torch's FlopCounterMode on an eval-mode forward pass at `input`) and its output shape
    with the module's; a difference is an :class:`ImportFailure`.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"import_module takes a torch.nn.Module, not {type(module).__name__}")
    dims = parse_input(input)
    was_training = module.training
    try:
        module.train()
        graph = _Tracer().trace(module)
    except ImportFailure:
        raise
    except Exception as e:  # noqa: BLE001 - torch.fx's own errors, reported as they are
        raise ImportFailure(f"torch.fx cannot trace {type(module).__name__}: {type(e).__name__}: "
                            f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}") from e
    finally:
        module.train(was_training)
    g = _Graph(module, graph)
    _dense_prefixes(g)
    _fold_flatten(g)
    items = _Structure(g).items()
    _anchor_aux(items)
    tree = R.nest(items)
    counts: dict[str, set] = {}
    _module_calls(tree, counts)
    _labels(tree, {p: len(k) for p, k in counts.items()})
    rb = R.Rebuilder()
    body = rb.run(tree)
    cls = f"{type(module).__module__}.{type(module).__qualname__}"
    net_name = W.network_name(name or snake_name(type(module).__name__))
    header = [f"{net_name}: imported from {source or cls} by `archdsl import`",
              f"({cls}, traced with torch.fx at input {'x'.join(map(str, dims))})"]
    text = W.render(net_name, dims, body, rb.blocks, header)
    if not verify:
        return text
    return _verified(text, module, dims, net_name, body, rb.blocks, header)


def snake_name(cls_name: str) -> str:
    return R.snake(cls_name)


def _fold_flatten(g: _Graph) -> None:
    """torch.flatten(x, 1) read only by an nn.Linear: archdsl's fc flattens its input itself."""
    users: dict[fx.Node, list] = {}
    for n, ins in g.inputs.items():
        for a in ins:
            users.setdefault(a, []).append(n)
    for n, ops in list(g.items.items()):
        if len(ops) == 1 and ops[0].kind == "flatten" and n not in g.outputs:
            us = users.get(n, [])
            if len(us) == 1 and us[0] in g.items and g.items[us[0]][0].kind == "fc" and us[0].op == "call_module":
                (src,) = g.inputs[n]
                g.inputs[us[0]] = [src if a is n else a for a in g.inputs[us[0]]]
                del g.items[n], g.inputs[n]


def _flops(module: nn.Module, dims: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    from torch.utils.flop_counter import FlopCounterMode

    was = module.training
    p = next(module.parameters(), None)
    x = torch.randn(1, *dims, device=p.device if p is not None else "cpu", dtype=p.dtype if p is not None else None)
    counter = FlopCounterMode(display=False)
    try:
        module.eval()
        with torch.no_grad(), counter:
            y = module(x)
    finally:
        module.train(was)
    return counter.get_total_flops() // 2, tuple(y.shape[1:])


def _verified(text: str, module: nn.Module, dims, net_name: str, body, blocks, header) -> str:
    from . import compile as compile_spec
    from .diagnostics import ArchError

    try:
        net = compile_spec(text)
    except ArchError as e:
        if all(d.code.startswith("E4") for d in e.diagnostics):  # shapes: a layer that does not fit this input
            raise ImportFailure(f"at input {'x'.join(map(str, dims))} the spec's shapes do not work out (is this "
                                f"the module's input size? --input CxHxW sets it):\n{e.render()}") from None
        raise ImportFailure(f"the spec written does not compile (a bug in archdsl's importer):\n{e.render()}\n"
                            f"{text}") from None
    params = sum(p.numel() for p in module.parameters())
    macs, out = _flops(module, dims)
    problems = []
    if net.params != params:
        problems.append(f"params: the spec {net.params:,}, the module {params:,}")
    if net.macs_without_aux != macs:
        problems.append(f"MACs: the spec {net.macs_without_aux:,}, the module {macs:,} (FlopCounterMode / 2)")
    if tuple(net.output_shape.dims) != out:
        problems.append(f"output: the spec {net.output_shape}, the module {'x'.join(map(str, out))}")
    if problems:
        raise ImportFailure("the spec written does not count what the module does (a bug in archdsl's importer):\n  "
                            + "\n  ".join(problems))
    expects = [("params", W._count(net.params)), ("macs", W._count(net.macs)), ("output", str(net.output_shape))]
    if net.aux_outputs:
        expects.insert(1, ("params_without_aux", W._count(net.params_without_aux)))
        expects.insert(3, ("macs_without_aux", W._count(net.macs_without_aux)))
    return W.render(net_name, dims, body, blocks, header, expects)
