"""The importer's op table: torch.nn layers and functions -> archdsl kinds (imports torch).

Three tables of small converters, each returning the :class:`archdsl.rebuild.Op` items a
module or call stands for (None: the identity, which is skipped):

* ``MODULES``: a torch.nn class -> f(module); a module of a class listed here is a leaf of
  the trace, its subclasses too (the nearest class in the MRO decides);
* ``FUNCTIONS``: a function's name (``torch.nn.functional.relu``, ``torch.flatten``) -> f(fx node);
* ``METHODS``: a Tensor method's name (``x.flatten(1)``, ``x.mean([2, 3])``) -> f(fx node).

A new layer kind is one entry here (and, where its statement takes arguments, a case in
archdsl.rebuild's renderer). A converter raises ``Unsupported(reason)`` for a setting the
kind cannot express (``padding_mode='reflect'``, ``PReLU(1)``); the importer reports it
with the module path and the source line.
"""

from __future__ import annotations

from typing import Any, Callable

from torch import fx, nn

from . import rebuild as R


def _two(v, what: str) -> tuple[int, int]:
    if isinstance(v, int):
        return (v, v)
    v = tuple(v)
    if len(v) == 1:
        return (v[0], v[0])
    if len(v) != 2 or not all(isinstance(x, int) for x in v):
        raise Unsupported(f"{what} {v!r} (not a 2-D size)")
    return v


class Unsupported(Exception):
    """A setting of a layer that its kind cannot express."""


def _conv(m: nn.Conv2d) -> list[R.Op]:
    if m.padding_mode != "zeros":
        raise Unsupported(f"padding_mode={m.padding_mode!r} (archdsl pads with zeros)")
    kh, kw = m.kernel_size
    dh, dw = m.dilation
    if m.padding == "same":
        if (dh * (kh - 1)) % 2 or (dw * (kw - 1)) % 2:
            raise Unsupported("padding='same' with an even kernel (uneven padding)")
        ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
    elif m.padding == "valid":
        ph = pw = 0
    else:
        ph, pw = m.padding
    sh, sw = m.stride
    return [R.Op("conv", [("out", m.out_channels, "ch"), ("kh", kh, "k"), ("kw", kw, "k"), ("sh", sh, "s"),
                          ("sw", sw, "s"), ("ph", ph, "p"), ("pw", pw, "p"), ("dh", dh, "d"), ("dw", dw, "d"),
                          ("groups", m.groups, "ch"), ("bias", m.bias is not None, "")])]


def _linear(m: nn.Linear) -> list[R.Op]:
    return [R.Op("fc", [("out", m.out_features, "ch"), ("bias", m.bias is not None, "")])]


def _bn(m) -> list[R.Op]:
    if not m.affine or not m.track_running_stats:
        raise Unsupported("batch norm without affine parameters or running statistics")
    if m.momentum is None:
        raise Unsupported("batch norm with momentum=None (a cumulative average)")
    return [R.Op("bn", [("eps", float(m.eps), "eps"), ("momentum", float(m.momentum), "momentum")])]


def _pool_op(kind: str, kernel, stride, padding, dilation=1, ceil=False, count_pad=True) -> list[R.Op]:
    kh, kw = _two(kernel, "kernel")
    sh, sw = _two(stride if stride not in (None, []) else kernel, "stride")
    ph, pw = _two(padding, "padding")
    if _two(dilation, "dilation") != (1, 1):
        raise Unsupported("pooling with dilation")
    fields = [("kh", kh, "k"), ("kw", kw, "k"), ("sh", sh, "s"), ("sw", sw, "s"), ("ph", ph, "p"), ("pw", pw, "p"),
              ("ceil", bool(ceil), "")]
    if kind == "avgpool":
        fields.append(("count_pad", bool(count_pad), ""))
    return [R.Op(kind, fields)]


def _maxpool(m: nn.MaxPool2d) -> list[R.Op]:
    if m.return_indices:
        raise Unsupported("max pooling that returns indices")
    return _pool_op("maxpool", m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)


def _avgpool(m: nn.AvgPool2d) -> list[R.Op]:
    if m.divisor_override is not None:
        raise Unsupported("average pooling with divisor_override")
    return _pool_op("avgpool", m.kernel_size, m.stride, m.padding, 1, m.ceil_mode, m.count_include_pad)


def _adaptive(kind: str, size) -> list[R.Op]:
    if size is None or (not isinstance(size, int) and None in tuple(size)):
        raise Unsupported(f"adaptive pooling to {size!r} (a size of None keeps the input's)")
    h, w = _two(size, "output size")
    if (h, w) == (1, 1):
        return [R.Op("gap" if kind == "avg" else "gmp", [])]
    return [R.Op(f"adaptive_{kind}pool", [("h", h, "size"), ("w", w, "size")])]


def _dropout(p: float) -> list[R.Op]:
    return [R.Op("dropout", [("p", float(p), "p")])]


def _act(kind: str) -> Callable[..., list[R.Op]]:
    return lambda *a, **k: [R.Op(kind, [])]


def _elu(m) -> list[R.Op]:
    if m.alpha != 1.0:
        raise Unsupported(f"ELU with alpha={m.alpha} (archdsl's elu has alpha 1)")
    return [R.Op("elu", [])]


def _gelu(m) -> list[R.Op]:
    if m.approximate != "none":
        raise Unsupported(f"GELU with approximate={m.approximate!r}")
    return [R.Op("gelu", [])]


def _prelu(m: nn.PReLU) -> list[R.Op]:
    if m.num_parameters == 1:
        raise Unsupported("PReLU with one slope shared by all channels (archdsl's prelu has one per channel)")
    return [R.Op("prelu", [])]


def _softmax(m) -> list[R.Op]:
    if m.dim != 1:
        raise Unsupported(f"softmax over dim={m.dim} (archdsl's is over channels, dim 1)")
    return [R.Op("softmax", [])]


def _lrn(m: nn.LocalResponseNorm) -> list[R.Op]:
    return [R.Op("lrn", [("size", m.size, "k"), ("alpha", float(m.alpha), "alpha"), ("beta", float(m.beta), "beta"),
                         ("k", float(m.k), "lrn_k")])]


def _flatten_module(m: nn.Flatten) -> list[R.Op]:
    if (m.start_dim, m.end_dim) != (1, -1):
        raise Unsupported(f"flatten from dim {m.start_dim} to {m.end_dim} (archdsl flattens dims 1 to -1)")
    return [R.Op("flatten", [])]


#: torch.nn class -> converter (the module object -> ops). None: the identity (skipped)
MODULES: dict[type, Callable[[nn.Module], list[R.Op]] | None] = {
    nn.Conv2d: _conv,
    nn.Linear: _linear,
    nn.BatchNorm2d: _bn,
    nn.BatchNorm1d: _bn,
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: lambda m: _adaptive("avg", m.output_size),
    nn.AdaptiveMaxPool2d: lambda m: _adaptive("max", m.output_size),
    nn.Dropout: lambda m: _dropout(m.p),
    nn.ReLU: _act("relu"),
    nn.ReLU6: _act("relu6"),
    nn.Tanh: _act("tanh"),
    nn.Sigmoid: _act("sigmoid"),
    nn.ELU: _elu,
    nn.GELU: _gelu,
    nn.SiLU: _act("silu"),
    nn.Hardswish: _act("hardswish"),
    nn.LeakyReLU: lambda m: [R.Op("lrelu", [("slope", float(m.negative_slope), "slope")])],
    nn.PReLU: _prelu,
    nn.Softmax: _softmax,
    nn.LocalResponseNorm: _lrn,
    nn.Flatten: _flatten_module,
    nn.Identity: None,
}


def _arg(node: fx.Node, i: int, name: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _f_pool(kind: str):
    def conv(node):
        if kind == "maxpool" and _arg(node, 6, "return_indices", False):
            raise Unsupported("max pooling that returns indices")
        if kind == "avgpool" and _arg(node, 6, "divisor_override") is not None:
            raise Unsupported("average pooling with divisor_override")
        k, s, p = _arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0)
        if kind == "maxpool":
            return _pool_op(kind, k, s, p, _arg(node, 4, "dilation", 1), _arg(node, 5, "ceil_mode", False))
        return _pool_op(kind, k, s, p, 1, _arg(node, 4, "ceil_mode", False), _arg(node, 5, "count_include_pad", True))
    return conv


def _f_dropout(node):
    if not _arg(node, 2, "training", True):
        return None  # dropout with training=False: the identity
    return _dropout(_arg(node, 1, "p", 0.5))


def _f_flatten(start_default: int):
    def conv(node):
        start, end = _arg(node, 1, "start_dim", start_default), _arg(node, 2, "end_dim", -1)
        if (start, end) != (1, -1):
            raise Unsupported(f"flatten from dim {start} to {end} (archdsl flattens dims 1 to -1)")
        return [R.Op("flatten", [])]
    return conv


def _f_mean(node):
    dims, keep = _arg(node, 1, "dim"), _arg(node, 2, "keepdim", False)
    if dims is None or sorted(int(d) % 4 for d in (dims if isinstance(dims, (list, tuple)) else [dims])) != [2, 3]:
        raise Unsupported(f"mean over dims {dims!r} (archdsl's gap averages over H and W)")
    return [R.Op("gap", [])] + ([] if keep else [R.Op("flatten", [])])


def _f_view(node):
    shape = list(node.args[1:]) if len(node.args) > 2 or not isinstance(node.args[1], (list, tuple)) \
        else list(node.args[1])
    if len(shape) == 2 and shape[1] == -1:
        n = shape[0]
        if isinstance(n, fx.Node) and n.op == "call_method" and n.target == "size" and _arg(n, 1, "dim") == 0:
            return [R.Op("flatten", [])]
    raise Unsupported(f"{node.target} to {shape!r} (only x.{node.target}(x.size(0), -1), a flatten, has a kind)")


#: functions (and Tensor methods, below) by name -> converter (the fx node -> ops or None)
FUNCTIONS: dict[str, Callable[[fx.Node], list[R.Op] | None]] = {
    "relu": _act("relu"), "relu_": _act("relu"), "relu6": _act("relu6"), "sigmoid": _act("sigmoid"),
    "tanh": _act("tanh"), "silu": _act("silu"), "hardswish": _act("hardswish"),
    "gelu": lambda n: [R.Op("gelu", [])] if n.kwargs.get("approximate", "none") == "none"
    else (_ for _ in ()).throw(Unsupported("gelu with approximate='tanh'")),
    "leaky_relu": lambda n: [R.Op("lrelu", [("slope", float(_arg(n, 1, "negative_slope", 0.01)), "slope")])],
    "max_pool2d": _f_pool("maxpool"), "avg_pool2d": _f_pool("avgpool"),
    "adaptive_avg_pool2d": lambda n: _adaptive("avg", _arg(n, 1, "output_size")),
    "adaptive_max_pool2d": lambda n: _adaptive("max", _arg(n, 1, "output_size")),
    "dropout": _f_dropout, "flatten": _f_flatten(0), "mean": _f_mean,
}
METHODS: dict[str, Callable[[fx.Node], list[R.Op] | None]] = {
    "relu": _act("relu"), "relu_": _act("relu"), "sigmoid": _act("sigmoid"), "tanh": _act("tanh"),
    "flatten": _f_flatten(0), "mean": _f_mean, "view": _f_view, "reshape": _f_view,
    "contiguous": lambda n: None, "clone": lambda n: None,
}
MERGES = {"cat": "concat", "concat": "concat", "add": "add", "iadd": "add", "mul": "mul", "imul": "mul"}


def _bn_act(m) -> list[R.Op]:
    """timm's BatchNormAct2d: batch norm, then its `drop` and `act` modules (forward order)."""
    ops = _bn(m)
    for sub in (getattr(m, "drop", None), getattr(m, "act", None)):
        if sub is None or type(sub) is nn.Identity:
            continue
        conv = MODULES.get(type(sub), "missing")
        if conv == "missing":
            raise Unsupported(f"its {type(sub).__name__} has no kind")
        ops += conv(sub) or []
    return ops


#: classes outside torch.nn, by qualified name (their packages are not imported for this)
NAMED: dict[str, Callable[[nn.Module], list[R.Op] | None]] = {
    "timm.layers.norm_act.BatchNormAct2d": _bn_act,
}


def converter(m: nn.Module):
    """The converter of a module: its class's entry (or the nearest base class's in torch.nn
    whose forward it keeps), else "missing"."""
    t = type(m)
    named = NAMED.get(f"{t.__module__}.{t.__qualname__}")
    if named is not None:
        return named
    for base in t.__mro__:
        if base in MODULES:
            return MODULES[base] if base is t or t.forward is base.forward else "missing"
    return "missing"
