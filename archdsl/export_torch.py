"""A compiled network -> one plain PyTorch file (``archdsl export --to pytorch``) and ONNX.

The file imports only torch. Its module tree is archdsl's: the network's class holds
``body``, and every module below has the spec's name, so ``state_dict`` keys are equal
and a checkpoint moves between archdsl and the file in both directions. Each block of
the spec is a class named after it (``bottleneck`` -> ``Bottleneck``) whose ``__init__``
takes the numbers that differ between its calls (named after the block's parameters where
they are equal to one, else after the torch argument); calls of one block whose
structures differ (a projection shortcut present or not) are classes of their own
(``Bottleneck``, ``BottleneckB``). Layers with an attached norm and activation are an
``nn.Sequential`` (``conv1.conv``, ``conv1.bn``, ``conv1.relu``), merges small classes
(``Concat``, ``Add``, ``Mul``), aux heads an ``AuxBody``/``AuxHead`` pair as archdsl builds
them. A spec comment on a layer's line, or the lines above a block, go with it. The
network's class takes no arguments.

The module is built on the meta device to read each torch layer's settings; nothing is
allocated.
"""

from __future__ import annotations

import inspect
import keyword
import re
from typing import Any

from .network import CompiledNetwork, TAux, TLayer, TMerge, TSeq
from .rebuild_join import _parametrise
from .rebuild_types import _is_slot


class ExportFailure(ValueError):
    """The network has a layer or merge the chosen target cannot express."""

_HEADER = '''from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
'''

_MERGES = '''

class Concat(nn.Sequential):
    """Runs its branches on the same input and concatenates their outputs along channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for b in self:
            ys.append(b(x))
        return torch.cat(ys, 1)


class Add(nn.Sequential):
    """Runs its branches on the same input and sums their outputs, each times its scale."""

    def __init__(self, branches: "OrderedDict[str, nn.Module]", scales: Optional[List[float]] = None):
        super().__init__(branches)
        self.scales: List[float] = list(scales) if scales is not None else [1.0] * len(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for b in self:
            ys.append(b(x))
        out = ys[0] * self.scales[0] if self.scales[0] != 1.0 else ys[0]
        for k in range(1, len(ys)):
            y = ys[k] * self.scales[k] if self.scales[k] != 1.0 else ys[k]
            out = out + y
        return out


class Mul(nn.Sequential):
    """Runs its branches on the same input and multiplies their outputs (a Cx1x1 gate broadcasts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for b in self:
            ys.append(b(x))
        out = ys[0]
        for k in range(1, len(ys)):
            out = out * ys[k]
        return out
'''

_AUX = '''

class AuxHead(nn.Sequential):
    """An aux head: its result goes into the aux dict under ``arch_name``."""

    def __init__(self, arch_name: str, layers: "OrderedDict[str, nn.Module]"):
        super().__init__(layers)
        self.arch_name = arch_name

    def forward(self, x: torch.Tensor, aux: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        for m in self:
            x = m(x)
        return x


class AuxBody(nn.Sequential):
    """A body holding aux heads: each head runs on the current tensor (in training mode)."""

    def __init__(self, layers: "OrderedDict[str, nn.Module]"):
        super().__init__(layers)
        self.roles = ("aux",)

    def forward(self, x: torch.Tensor, aux: Optional[Dict[str, torch.Tensor]] = None) -> torch.Tensor:
        for m in self:
            if hasattr(m, "arch_name"):
                if aux is not None:
                    aux[m.arch_name] = m(x, aux)
            elif hasattr(m, "roles"):
                x = m(x, aux)
            else:
                x = m(x)
        return x
'''


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"_+", name) if p) or "Block"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return repr(v)


# ---------------------------------------------------------------- leaf layers -> constructor calls


def _ctor(m) -> tuple[str, list[tuple[str | None, Any, str]]]:
    """(constructor, [(keyword or None, value, family)]) of a torch layer archdsl builds."""
    from torch import nn

    from . import lower_torch as L

    t = type(m)
    if t is nn.Conv2d:
        return "nn.Conv2d", [(None, m.in_channels, "ch"), (None, m.out_channels, "ch"), ("kernel_size", m.kernel_size, "k"),
                             ("stride", m.stride, "s"), ("padding", m.padding, "p"), ("dilation", m.dilation, "d"),
                             ("groups", m.groups, "ch"), ("bias", m.bias is not None, "")]
    if t in (nn.Linear, L.FlatLinear):
        return ("FlatLinear" if t is L.FlatLinear else "nn.Linear"), [
            (None, m.in_features, "ch"), (None, m.out_features, "ch"), ("bias", m.bias is not None, "")]
    if t in (nn.BatchNorm2d, nn.BatchNorm1d):
        return f"nn.{t.__name__}", [(None, m.num_features, "ch"), ("eps", m.eps, "eps"), ("momentum", m.momentum, "mom")]
    if t in (nn.MaxPool2d,):
        return "nn.MaxPool2d", [(None, m.kernel_size, "k"), (None, m.stride, "s"), (None, m.padding, "p"),
                                ("ceil_mode", m.ceil_mode, "")]
    if t is nn.AvgPool2d:
        args = [(None, m.kernel_size, "k"), (None, m.stride, "s"), (None, m.padding, "p"), ("ceil_mode", m.ceil_mode, ""),
                ("count_include_pad", m.count_include_pad, "")]
        if m.divisor_override is not None:
            args.append(("divisor_override", m.divisor_override, "div"))
        return "nn.AvgPool2d", args
    if t in (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d):
        return f"nn.{t.__name__}", [(None, m.output_size, "size")]
    if t is nn.Dropout:
        return "nn.Dropout", [(None, m.p, "p")]
    if t is nn.LocalResponseNorm:
        return "nn.LocalResponseNorm", [(None, m.size, "k"), ("alpha", m.alpha, "a"), ("beta", m.beta, "b"), ("k", m.k, "kk")]
    if t is nn.LeakyReLU:
        return "nn.LeakyReLU", [(None, m.negative_slope, "slope"), ("inplace", m.inplace, "")]
    if t is nn.PReLU:
        return "nn.PReLU", [(None, m.num_parameters, "ch")]
    if t is nn.Softmax:
        return "nn.Softmax", [("dim", m.dim, "dim")]
    if t is nn.ConstantPad3d:
        return "nn.ConstantPad3d", [(None, tuple(m.padding), "pad"), (None, float(m.value), "v")]
    if t in (nn.LayerNorm, L.LayerNorm2d):
        return ("LayerNorm2d" if t is L.LayerNorm2d else "nn.LayerNorm"), [(None, m.normalized_shape[0], "ch"),
                                                                            ("eps", m.eps, "eps")]
    if t is L.LayerScale:
        return "LayerScale", [(None, tuple(m.layer_scale.shape), "ch"), (None, m.init, "init")]
    if t is L.StochasticDepth:
        return "StochasticDepth", [(None, m.p, "p"), (None, m.mode, "")]
    if t is L.ChannelShuffle:
        return "ChannelShuffle", [(None, m.groups, "g")]
    if t is L.ChannelSlice:
        return "ChannelSlice", [(None, m.start, "ch"), (None, m.stop, "ch")]
    if t in (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.ELU):
        return f"nn.{t.__name__}", [("inplace", True, "")] if getattr(m, "inplace", False) else []
    if t in (nn.Tanh, nn.Sigmoid, nn.GELU, nn.Flatten, nn.Identity):
        return f"nn.{t.__name__}", []
    if t is L.SpatialPyramidPool:
        return "SpatialPyramidPool", [(None, tuple(m.levels), "lv")]
    if t is L.Select:
        return "Select", [(None, tuple(m.channels), "sel")]
    if t is L.ScaledTanh:
        return "ScaledTanh", [(None, m.amplitude, "amp"), (None, m.slope, "sl")]
    if t is L.RadialBasis:
        return "RadialBasis", [(None, m.codes.tolist() if m.codes.device.type != "meta" else None, "codes")]
    raise TypeError(t.__name__)


#: archdsl helper layers whose class the file carries (their source is lower_torch's)
_HELPERS = ("FlatLinear", "SpatialPyramidPool", "Select", "ScaledTanh", "RadialBasis", "LayerNorm2d", "LayerScale",
            "StochasticDepth", "ChannelShuffle", "ChannelSlice")


# ---------------------------------------------------------------- the module tree as templates


class _Ex:
    """One node of the exported tree: ('leaf', ctor, args) | ('seq', kind, children) |
    ('block', TSeq, children) | ('merge', kind, scales, branches) | ('aux', name, children)."""

    def __init__(self, what: str, **kw):
        self.what, self.__dict__ = what, {**kw, "what": what}


def _slots(args: list) -> list[tuple[Any, str, str]]:
    out = []
    for i, (kw, v, fam) in enumerate(args):
        if isinstance(v, tuple) and all(_is_slot(x) for x in v):
            out += [(x, fam, kw or fam) for x in v]
        elif _is_slot(v):
            out.append((v, fam, kw or {"ch": "in_channels" if i == 0 else "channels"}.get(fam, fam)))
    return out


def _skel(e: _Ex):
    if e.what == "leaf":
        return ("leaf", e.ctor, tuple((kw, v if not _is_slot(v) and not isinstance(v, tuple) else "#")
                                      for kw, v, _ in e.args))
    if e.what == "ref":
        return ("ref", e.cls.name)
    if e.what == "merge":
        return ("merge", e.kind, tuple(_skel_seq(b) for b in e.branches), e.scales)
    return (e.what, getattr(e, "kind", None), getattr(e, "name", None), _skel_seq(e.children))


def _skel_seq(children):
    return tuple((n, _skel(c)) for n, c in children)


def _slot_list(e: _Ex) -> list:
    if e.what == "leaf":
        return _slots(e.args)
    if e.what == "ref":
        return [(v, fam, name) for v, (name, fam, _) in zip(e.values, e.cls.params)]
    if e.what == "merge":
        return [s for b in e.branches for _, c in b for s in _slot_list(c)]
    return [s for _, c in e.children for s in _slot_list(c)]


class _Class:
    def __init__(self, name, params, children, bindings, seq: TSeq, calls: int):
        self.name, self.params, self.children, self.bindings, self.seq, self.calls = \
            name, params, children, bindings, seq, calls


class Exporter:
    def __init__(self, net: CompiledNetwork):
        from .lower_torch import lower

        self.net = net
        self.model = lower(net, init=False)
        self.classes: list[_Class] = []
        self.used: set[str] = set()
        self.names: set[str] = set()

    def comment(self, node_id: str) -> str | None:
        info = self.net.node(node_id)
        if info.span is None:
            return None
        lines = self.net.sources.get(info.span.file, "").splitlines()
        line = lines[info.span.line - 1] if 0 < info.span.line <= len(lines) else ""
        m = re.search(r"#\s*(.+)$", line)
        return m.group(1).strip() if m else None

    def tree(self, item, module) -> _Ex:
        t = type(item)
        if t is TLayer:
            if list(module.named_children()):  # a Layer: the op and its attached ones
                kids = [(n, self.leaf(c)) for n, c in module.named_children()]
                return _Ex("seq", kind="layer", children=kids, comment=self.comment(item.node))
            e = self.leaf(module)
            e.comment = self.comment(item.node)
            if e.ctor == "RadialBasis":  # the codes of a meta module are not there: made again from the spec
                from .layers.lenet import rbf_codes

                info = self.net.node(item.node)
                e.args = [(None, rbf_codes(info.op.params.out, info.in_shapes[0].numel, info.op.params.seed), "codes")]
            return e
        if t is TMerge:
            info = self.net.node(item.node)
            scales = tuple(getattr(module, "scales", ()) or ())
            if info.kind.name not in ("concat", "add", "residual", "mul"):
                raise ExportFailure(f"the merge kind '{info.kind.name}' has no PyTorch form here")
            branches = [self.seq_children(b, getattr(module, b.name)) for b in item.branches]
            kind = {"residual": "add"}.get(info.kind.name, info.kind.name)
            return _Ex("merge", kind=kind, branches=branches,
                       scales=scales if kind == "add" and any(s != 1.0 for s in scales) else None)
        if t is TAux:
            return _Ex("aux", name=module.arch_name, children=self.seq_children(item.body, module))
        # a body
        if item.block is not None and hasattr(module, "roles"):
            raise ExportFailure(f"block '{item.block}' ({item.path}) holds an aux head: the export writes aux heads "
                                "outside blocks only (write the `aux` in the network's body)")
        children = self.seq_children(item, module)
        if item.block is not None:
            return self.block(item, children)
        return _Ex("seq", kind="aux_body" if hasattr(module, "roles") else "body", children=children)

    def seq_children(self, seq: TSeq, module) -> list[tuple[str, _Ex]]:
        if not seq.items:
            return []
        return [(it.name, self.tree(it, getattr(module, it.name))) for it in seq.items]

    def leaf(self, m) -> _Ex:
        from torch import nn

        if type(m) is nn.Sequential:  # a kind lowered to a few torch layers (subsample: sum, scale)
            return _Ex("seq", kind="body", children=[(n, self.leaf(c)) for n, c in m.named_children()])
        try:
            ctor, args = _ctor(m)
        except TypeError:
            raise ExportFailure(f"no PyTorch source for the layer class {type(m).__name__}") from None
        if ctor in _HELPERS:
            self.used.add(ctor)
        return _Ex("leaf", ctor=ctor, args=args, comment=None)

    def block(self, seq: TSeq, children) -> _Ex:
        e = _Ex("call", seq=seq, children=children, name=seq.block)
        self.pending.append(e)
        return e

    def run(self):
        self.pending: list[_Ex] = []
        body = self.tree(self.net.tree, self.model.body)
        # innermost block calls first: a class's structure includes the classes it calls
        def height(e: _Ex) -> int:
            kids = [c for b in e.branches for _, c in b] if e.what == "merge" else \
                [c for _, c in getattr(e, "children", [])]
            return 1 + max((height(c) for c in kids), default=0) if e.what == "call" else \
                max((height(c) for c in kids), default=0)
        heights = {id(e): height(e) for e in self.pending}
        for level in sorted(set(heights.values())):
            groups: dict[Any, list[_Ex]] = {}
            for e in self.pending:
                if heights[id(e)] == level:
                    groups.setdefault((e.name, _skel_seq(e.children)), []).append(e)
            for (bname, _), calls in groups.items():
                self._make_class(bname, calls)
        return body

    def _make_class(self, bname: str, calls: list[_Ex]) -> None:
        spec_args = [(k, v) for k, v in calls[0].seq.args.items() if _is_slot(v)]
        pseudo = [[c.seq.args.get(k) for c in calls] for k, _ in spec_args]
        slot_rows = [[s for _, ch in c.children for s in _slot_list(ch)] for c in calls]
        first = slot_rows[0]
        columns = pseudo + [[row[j][0] for row in slot_rows] for j in range(len(first))]
        fams = ["arg"] * len(pseudo) + [s[1] for s in first]
        hints = [k for k, _ in spec_args] + [s[2] for s in first]
        for i in range(len(pseudo)):  # a block parameter takes the family of a torch argument equal to it
            fams[i] = next((fams[j] for j in range(len(pseudo), len(columns)) if columns[j] == columns[i]), "ch")
        bindings, params = _bind(columns, fams, hints, len(pseudo))
        name = _camel(bname)
        base, k = name, 0
        while name in self.names:
            k += 1
            name = f"{base}{chr(ord('A') + k)}"
        self.names.add(name)
        cls = _Class(name, [(p[0], p[1], p[2]) for p in params], calls[0].children, bindings[len(pseudo):],
                     calls[0].seq, len(calls))
        self.classes.append(cls)
        for k, c in enumerate(calls):
            c.what, c.cls, c.values = "ref", cls, [p[3][k] for p in params]


def _bind(columns, families, hints, n_pseudo):
    """rebuild's parametrisation, the block's own parameters (the first `n_pseudo` columns)
    first, so that the torch arguments equal to one take its name; parameters no argument
    uses are left out."""
    bindings, params = _parametrise(columns, families, hints)
    used = {w for b in bindings[n_pseudo:] if b[0] == "expr" for w in re.findall(r"[A-Za-z_]\w*", b[1])}
    params = [p for p in params if p[0] in used]
    return bindings, params


# ---------------------------------------------------------------- writing the file


#: torch's defaults, left out of the constructor calls written
_DEFAULTS = {("nn.Conv2d", "stride"): "1", ("nn.Conv2d", "padding"): "0", ("nn.Conv2d", "dilation"): "1",
             ("nn.Conv2d", "groups"): "1", ("nn.BatchNorm2d", "eps"): "1e-05", ("nn.BatchNorm2d", "momentum"): "0.1",
             ("nn.BatchNorm1d", "eps"): "1e-05", ("nn.BatchNorm1d", "momentum"): "0.1",
             ("nn.MaxPool2d", "ceil_mode"): "False", ("nn.AvgPool2d", "ceil_mode"): "False",
             ("nn.AvgPool2d", "count_include_pad"): "True"}


class _Writer:
    def __init__(self, bindings=None):
        self.vals = iter([_Val(b) for b in bindings]) if bindings is not None else None

    def take(self, v):
        return next(self.vals).text if self.vals is not None else _fmt(v)

    def arg(self, v) -> str:
        if isinstance(v, tuple) and all(_is_slot(x) for x in v):
            parts = [self.take(x) for x in v]
            return parts[0] if len(set(parts)) == 1 else "(" + ", ".join(parts) + ")"
        if _is_slot(v):
            return self.take(v)
        return _fmt(v)

    def expr(self, e: _Ex, indent: str) -> str:
        if e.what == "leaf":
            parts = []
            for kw, v, _ in e.args:
                if kw in ("bias",) and v is True:
                    continue
                if kw == "inplace" and v is False:
                    continue
                text = self.arg(v)
                if kw is not None and _DEFAULTS.get((e.ctor, kw)) == text:
                    continue
                parts.append(text if kw is None else f"{kw}={text}")
            return f"{e.ctor}({', '.join(parts)})"
        if e.what == "ref":
            args = [self.take(v) for v in e.values]
            pos = [a for a, (_, _, d) in zip(args, e.cls.params) if d is None]
            kws = [f"{n}={a}" for a, (n, _, d) in zip(args, e.cls.params) if d is not None and a != _fmt(d)]
            return f"{e.cls.name}({', '.join(pos + kws)})"
        if e.what == "merge":
            inner = indent + "    "
            branches = []
            for k, b in enumerate(e.branches, 1):
                branches.append(f"{inner}branch{k}=" + (self.sequential(b, inner) if b else "nn.Identity()") + ",")
            cls = {"concat": "Concat", "add": "Add", "mul": "Mul"}[e.kind]
            scales = f", scales={list(e.scales)!r}" if e.scales else ""
            return f"{cls}(OrderedDict(\n" + "\n".join(branches) + f"\n{indent}){scales})"
        if e.what == "aux":
            return f"AuxHead({e.name!r}, " + self.ordered(e.children, indent) + ")"
        if e.kind == "aux_body":
            return "AuxBody(" + self.ordered(e.children, indent) + ")"
        return self.sequential(e.children, indent)

    def ordered(self, children, indent: str) -> str:
        inner = indent + "    "
        lines = []
        for name, c in children:
            text = self.expr(c, inner)
            note = getattr(c, "comment", None)
            key = name if name.isidentifier() and not keyword.iskeyword(name) else None
            lines.append(f"{inner}{key}={text}," if key else f"{inner}({name!r}, {text}),")
            if note:
                lines[-1] += f"  # {note}"
        if all(n.isidentifier() and not keyword.iskeyword(n) for n, _ in children):
            return "OrderedDict(\n" + "\n".join(lines) + f"\n{indent})"
        return "OrderedDict([\n" + "\n".join(lines) + f"\n{indent}])"

    def sequential(self, children, indent: str) -> str:
        return "nn.Sequential(" + self.ordered(children, indent) + ")"


class _Val:
    """A slot as written: a literal, or an expression over the class's parameters."""

    def __init__(self, binding):
        self.text = _fmt(binding[1]) if binding[0] == "lit" else binding[1]


def _spec_block_comment(net: CompiledNetwork, name: str) -> list[str]:
    for file, text in net.sources.items():
        src = text.splitlines()
        for i, line in enumerate(src):
            if re.match(rf"\s*block\s+{re.escape(name)}\s*\(", line):
                notes = []
                j = i - 1
                while j >= 0 and src[j].lstrip().startswith("#"):
                    notes.insert(0, src[j].strip().lstrip("#").strip())
                    j -= 1
                return notes + [f"{line.strip().rstrip('{').strip()}  ({file}:{i + 1})"]
    return []


def _write_class(net: CompiledNetwork, cls: _Class) -> str:
    sig = ", ".join(["self"] + [f"{n}: {_typ(d, cls, n)}" + ("" if d is None else f" = {_fmt(d)}")
                                for n, _, d in cls.params])
    doc = _spec_block_comment(net, cls.seq.block)
    w = _Writer(cls.bindings)
    out = [f"class {cls.name}(nn.Module):"]
    if doc:
        out.append('    """' + doc[-1])
        if len(doc) > 1:
            out += [""] + [f"    {d}" if d else "" for d in doc[:-1]]
        out[-1] += '"""'
        out.append("")
    out += [f"    def __init__({sig}):", "        super().__init__()"]
    names = []
    for name, c in cls.children:
        text = w.expr(c, "        ")
        note = getattr(c, "comment", None)
        if note:
            out.append(f"        # {note}")
        out.append(f"        self.{name} = {text}" if name.isidentifier() and not keyword.iskeyword(name)
                   else f"        self.add_module({name!r}, {text})")
        names.append(name)
    out += ["", "    def forward(self, x: torch.Tensor) -> torch.Tensor:"]
    out += [f"        x = self.{n}(x)" if n.isidentifier() and not keyword.iskeyword(n) else
            f"        x = getattr(self, {n!r})(x)" for n in names]
    out.append("        return x")
    return "\n".join(out)


def export_pytorch(net: CompiledNetwork, source: str | None = None) -> str:
    """The text of one Python file, importing only torch, that defines `net` as plain PyTorch."""
    ex = Exporter(net)
    body = ex.run()
    has_aux = bool(net.aux_outputs)
    cls_name = _camel(net.name)
    if cls_name in ex.names:
        cls_name += "Net"
    parts = [f'"""{net.name}: {source or "a spec"}, exported by `archdsl export --to pytorch`.',
             "",
             "Plain PyTorch (this file imports only torch). Module names are the spec's, so the state_dict",
             "keys equal the archdsl-built module's: a checkpoint of one loads into the other.",
             f"Input {'x'.join(map(str, net.input_shape.dims))} (without the batch), output "
             f"{'x'.join(map(str, net.output_shape.dims))}; {net.params:,} parameters, {net.macs:,} MACs.",
             '"""', "", _HEADER.rstrip("\n")]
    helpers = sorted(ex.used)
    if helpers:
        from . import lower_torch as L

        for h in helpers:
            parts += ["", "", inspect.getsource(getattr(L, h)).rstrip()]
    if any(_has_merge(e) for e in [body]):
        parts.append(_MERGES.rstrip())
    if has_aux:
        parts.append(_AUX.rstrip())
    for cls in ex.classes:
        parts += ["", "", _write_class(net, cls)]
    w = _Writer()
    body_text = w.expr(body, "        ")
    if has_aux:
        fwd = ['    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, Tuple[torch.Tensor, Dict[str, torch.Tensor]]]:',
               '        """Eval mode: the main output; training mode: (main, {aux head: output}), as archdsl builds it."""',
               '        if self.training:', '            aux: Dict[str, torch.Tensor] = {}',
               '            y = self.body(x, aux)', '            return y, aux', '        return self.body(x, None)']
    else:
        fwd = ["    def forward(self, x: torch.Tensor) -> torch.Tensor:", "        return self.body(x)"]
    parts += ["", "", f"class {cls_name}(nn.Module):",
              f'    """The network {net.name}: takes (N, {", ".join(map(str, net.input_shape.dims))})."""', "",
              "    def __init__(self):", "        super().__init__()", f"        self.body = {body_text}", "", *fwd,
              "", "", "#: the network's class, for `from model import Net`", f"Net = {cls_name}", ""]
    return "\n".join(parts)


def _has_merge(e: _Ex) -> bool:
    return True


def _typ(default, cls: _Class, name: str) -> str:
    return "float" if isinstance(default, float) else "int"


def export_onnx(net: CompiledNetwork, path, dynamic_batch: bool = False, opset: int = 17, model=None) -> None:
    """Write `net` (built in eval mode, the main output only; `model`: a module built from it,
    with its weights, instead of a fresh one) as ONNX and check it with the onnx checker. torch's TorchScript-based exporter (``dynamo=False``) is used: it needs
    only the onnx package, where the dynamo exporter also needs onnxscript."""
    import warnings

    import torch

    from .lower_torch import lower

    try:
        import onnx
    except ImportError:
        raise ExportFailure('--to onnx needs the onnx package: pip install "archdsl[onnx]"') from None
    model = (lower(net) if model is None else model).eval()
    for name, m in model.named_modules():  # torch's exporter would drop the setting, silently
        if isinstance(m, torch.nn.AvgPool2d) and m.divisor_override is not None:
            raise ExportFailure(f"--to onnx: '{name}' is an average pool with divisor_override (a window sum, "
                                "LeNet-5's subsample), which ONNX's AveragePool cannot express")
    x = torch.randn(1, *net.input_shape.dims)
    axes = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["output"],
                              dynamic_axes=axes, opset_version=opset, dynamo=False)
        except torch.onnx.errors.OnnxExporterError as e:
            raise ExportFailure(f"--to onnx: torch's exporter refuses {net.name}: "
                                f"{str(e).strip().splitlines()[0][:300]}") from None
    onnx.checker.check_model(onnx.load(str(path)))
