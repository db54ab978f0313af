"""The importer's last step: rebuilt items and blocks (archdsl.rebuild) -> spec text.

Torch-free. A block's body is written from its first call's items with the slot bindings
of :func:`archdsl.rebuild_join._parametrise` (a literal, or an expression over the block's
parameters); a statement is written in its shortest form (`conv 3x3/2 p1 -> 64`, `maxpool
3/2 ceil`), with `bias`/`nobias` only where the scoped default (`bias auto`: none before a
`bn`) would differ from the module. A layer's norm and activation join its line.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterator

from .rebuild_types import _IDENT, _NUMBERED, Aux, Block, Cond, Merge, Op, Ref, Repeat, _is_slot, identifier, snake


def lit(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e6:
            return f"{v:.1f}"
        return repr(v)
    return str(v)


class Val:
    """A slot as written: a literal or an expression over the block's parameters."""

    def __init__(self, binding: tuple[str, Any]):
        self.lit = binding[1] if binding[0] == "lit" else None
        self.text = lit(binding[1]) if binding[0] == "lit" else binding[1]

    @property
    def atom(self) -> bool:  # usable in a window or a short option
        return self.lit is not None and isinstance(self.lit, int) or _IDENT.match(self.text) is not None

    def __str__(self) -> str:
        return self.text


def _pair(a: Val, b: Val, one_if_equal=True) -> str:
    if a.text == b.text:
        return a.text
    return f"{a.text}x{b.text}" if a.lit is not None and b.lit is not None else f"{a.text} x {b.text}"


def _window(kh: Val, kw: Val) -> str:
    if kh.lit is not None and kw.lit is not None:
        return f"{kh.lit}x{kw.lit}"
    return f"{kh.text} x {kw.text}"


def _opt(name: str, short: str | None, a: Val, b: Val, default: int) -> str:
    """`p1`, `p0,3` for literals; `pad=E` / `pad=E1,E2` for expressions; '' at the default."""
    if a.lit is not None and b.lit is not None:
        if a.lit == b.lit == default:
            return ""
        if short:
            return f" {short}{a.lit}" if a.lit == b.lit else f" {short}{a.lit},{b.lit}"
    return f" {name}={a.text}" if a.text == b.text else f" {name}={a.text},{b.text}"


def _stride(sh: Val, sw: Val, default: tuple | None = (1, 1), kh: Val | None = None, kw: Val | None = None) -> str:
    if sh.lit is not None and sw.lit is not None:
        if default is not None and (sh.lit, sw.lit) == default:
            return ""
        if kh is not None and kh.text == sh.text and kw.text == sw.text:
            return ""
        return f"/{sh.lit}" if sh.lit == sw.lit else f"/{sh.lit}x{sw.lit}"
    if sh.text == sw.text and sh.atom:
        return f"/{sh.text}"
    return ""


def _render_op(op: Op, v: dict[str, Val], bias_auto: bool) -> str:
    k = op.kind
    f = {n: val for n, val, _ in op.fields if not _is_slot(val)}
    if k == "conv":
        s = "conv " + _window(v["kh"], v["kw"])
        st = _stride(v["sh"], v["sw"])
        s += st
        if not st and not (v["sh"].lit == v["sw"].lit == 1):
            s += _opt("stride", None, v["sh"], v["sw"], 1)
        s += _opt("pad", "p", v["ph"], v["pw"], 0) + _opt("dilation", "d", v["dh"], v["dw"], 1)
        g = v["groups"]
        if g.lit != 1:
            s += f" g{g.lit}" if g.lit is not None else f" groups={g.text}"
        s += f" -> {v['out']}"
        return s + _bias(f["bias"], bias_auto)
    if k == "fc":
        n = v["out"]
        return (f"fc {n}" if n.atom else f"fc -> {n}") + _bias(f["bias"], bias_auto)
    if k == "bn":
        s = "bn"
        if v["eps"].lit != 1e-5:
            s += f" eps={v['eps']}"
        if v["momentum"].lit != 0.1:
            s += f" momentum={v['momentum']}"
        return s
    if k in ("maxpool", "avgpool"):
        s = f"{k} " + (str(v["kh"]) if v["kh"].text == v["kw"].text and v["kh"].atom else _window(v["kh"], v["kw"]))
        st = _stride(v["sh"], v["sw"], None, v["kh"], v["kw"])
        s += st
        if not st and not (v["sh"].text == v["kh"].text and v["sw"].text == v["kw"].text):
            s += f" stride={v['sh']}" if v["sh"].text == v["sw"].text else f" stride={v['sh']},{v['sw']}"
        s += _opt("pad", "p", v["ph"], v["pw"], 0)
        if f.get("ceil"):
            s += " ceil"
        if k == "avgpool" and not f.get("count_pad", True):
            s += " exclude_pad"
        return s
    if k in ("adaptive_avgpool", "adaptive_maxpool"):
        return f"{k} " + _window(v["h"], v["w"])
    if k == "dropout":
        p = v["p"]
        return "dropout" if p.lit == 0.5 else (f"dropout {p}" if p.lit is not None else f"dropout({p})")
    if k == "lrelu":
        return f"lrelu {v['slope']}" if v["slope"].lit is not None else f"lrelu({v['slope']})"
    if k == "lrn":
        return f"lrn {v['size']} alpha={v['alpha']} beta={v['beta']} k={v['k']}"
    if k == "droppath":
        p = v["p"]
        return (f"droppath {p}" if p.lit is not None else f"droppath p={p}") + (" batch" if f["mode"] == "batch" else "")
    if k == "layernorm":
        return "layernorm" if v["eps"].lit == 1e-5 else f"layernorm eps={v['eps']}"
    if k == "split":
        return f"split {','.join(map(str, f['parts']))} part={v['part']}"
    # a kind without arguments, or a generic one: positional slots, then key=value
    parts = [k] + [str(v[n]) for n, val, _ in op.fields if _is_slot(val)]
    return " ".join(parts)


def _bias(bias: bool, auto: bool) -> str:
    if bias == auto:
        return ""
    return " bias" if bias else " nobias"


#: kinds that join the line of the statement before them (conv; bn; relu)
_TRAILING = {"bn", "relu", "relu6", "tanh", "sigmoid", "elu", "gelu", "silu", "hardswish", "hardsigmoid", "lrelu", "prelu",
             "softmax", "dropout", "flatten"}


class Writer:
    """Renders items with the slot bindings of the block being written."""

    def __init__(self, bindings: list | None = None, blocks_named: dict | None = None):
        self.vals: Iterator[Val] | None = iter([Val(b) for b in bindings]) if bindings is not None else None

    def _take(self, value: Any) -> Val:
        if self.vals is None:
            return Val(("lit", value))
        return next(self.vals)

    def body(self, items: list, indent: str) -> list[str]:
        lines: list[list[str]] = []
        used: set[str] = set()
        counts: Counter = Counter()
        for i, it in enumerate(items):
            nxt = items[i + 1] if i + 1 < len(items) else None
            text = self.item(it, indent, nxt)
            label = getattr(it, "label", None)
            base = self._base(it)
            if label and label not in used and not (base and _auto_clash(label, base, counts)):
                used.add(label)
                text = f"{label}: {text}"
            elif base:
                counts[base] += 1
                while f"{base}{counts[base]}" in used:
                    counts[base] += 1
                used.add(f"{base}{counts[base]}")
            joins = isinstance(it, Op) and it.kind in _TRAILING and lines and lines[-1] and "\n" not in lines[-1][-1] \
                and isinstance(items[i - 1], Op) and items[i - 1].kind in ("conv", "fc", "bn", *_TRAILING)
            if joins and len("; ".join(lines[-1] + [text])) < 100:
                lines[-1].append(text)
            else:
                lines.append([text])
        return [indent + "; ".join(parts) for parts in lines]

    @staticmethod
    def _base(it) -> str | None:
        if isinstance(it, Op):
            return it.kind
        if isinstance(it, Ref):
            return it.block.name
        if isinstance(it, Merge):
            return it.kind
        return None

    def item(self, it, indent: str, nxt=None) -> str:
        if isinstance(it, Op):
            vals = {}
            for n, val, _ in it.fields:
                if _is_slot(val):
                    vals[n] = self._take(val)
            auto = not (isinstance(nxt, Op) and nxt.kind == "bn")
            return _render_op(it, vals, auto)
        if isinstance(it, Ref):
            args = [self._take(a) for a in it.args]
            pos, kw = [], []
            for (name, _, default), a in zip(it.block.params, args):
                if default is None:
                    pos.append(a.text)
                elif a.lit is None or a.lit != default:
                    kw.append(f"{name}={a.text}")
            return f"{it.block.name}({', '.join(pos + kw)})"
        if isinstance(it, Repeat):
            n = self._take(it.count)
            inner = self.body(it.body, indent + "  ")
            if len(inner) == 1 and "\n" not in inner[0] and len(inner[0]) < 90:
                return f"repeat {n} {{ {inner[0].strip()} }}"
            return f"repeat {n} {{\n" + "\n".join(inner) + f"\n{indent}}}"
        if isinstance(it, Merge):
            parts = []
            for b in it.branches:
                inner = self.body(b, indent + "  ") if b else [indent + "  identity"]
                parts.append("\n".join(inner))
            if all("\n" not in p for p in parts) and sum(len(p.strip()) + 3 for p in parts) < 80:
                return f"{it.kind} {{ " + " | ".join(p.strip() for p in parts) + " }"
            text = f"{it.kind} {{\n" + parts[0]
            for p in parts[1:]:
                text += f"\n{indent}| " + p[len(indent) + 2:]
            return text + f"\n{indent}}}"
        if isinstance(it, (Aux, Cond)):
            head = f"aux {it.name}" if isinstance(it, Aux) else f"if {it.text}"
            inner = self.body(it.body, indent + "  ")
            if len(inner) == 1 and "\n" not in inner[0]:
                return f"{head} {{ {inner[0].strip()} }}"
            return f"{head} {{\n" + "\n".join(inner) + f"\n{indent}}}"
        raise TypeError(type(it).__name__)


def _auto_clash(label: str, base: str, counts: Counter) -> bool:
    """Would `label` repeat an automatic name given earlier in the body?"""
    m = _NUMBERED.match(label)
    return bool(m) and m.group(1) in counts and int(m.group(2)) <= counts[m.group(1)]


def _count(n: int) -> str:
    return f"{n:_}"


def render_block(block: Block) -> list[str]:
    sig = ", ".join(name if default is None else f"{name}={lit(default)}" for name, _, default in block.params)
    paths = [f.path for f in block.frames]
    shown = ", ".join(paths[:4]) + (f", ... ({len(paths)} calls)" if len(paths) > 4 else "")
    cls = re.sub(r"^torch\.nn\.modules\.\w+\.", "torch.nn.", block.frames[0].cls)
    lines = [f"# {cls}: {shown}", f"block {block.name}({sig}) {{"]
    lines += Writer(block.bindings).body(block.body, "  ")
    return lines + ["}"]


def render(name: str, input_shape: tuple[int, ...], body: list, blocks: list[Block], header: list[str],
           expects: list[tuple[str, str]] = ()) -> str:
    out = [f"# {h}" if h else "#" for h in header]
    for b in blocks:
        out.append("")
        out += render_block(b)
    out += ["", f"network {name} {{", "  input " + "x".join(map(str, input_shape))]
    out += Writer().body(body, "  ")
    for what, value in expects:
        out.append(f"  expect {what} = {value}")
    out.append("}")
    return "\n".join(out) + "\n"


def network_name(text: str) -> str:
    name = snake(text) if not re.fullmatch(r"[a-z0-9_]+", text) else text
    name = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not name or name[0].isdigit():
        name = f"net_{name}"
    return name if identifier(name) else f"{name}_net"
