"""The importer's op table: torch.nn layers and functions -> archdsl kinds (imports torch).

Three tables of small converters, each returning the :class:`archdsl.rebuild_types.Op` items a
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

import torch
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


def _layernorm(m: nn.LayerNorm) -> list[R.Op]:
    if len(m.normalized_shape) != 1:
        raise Unsupported(f"layer norm over the last {len(m.normalized_shape)} dims (archdsl's is over the channels)")
    if not m.elementwise_affine or m.bias is None:
        raise Unsupported("layer norm without its affine weight and bias")
    return [R.Op("layernorm", [("eps", float(m.eps), "eps")])]


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
    nn.Hardsigmoid: _act("hardsigmoid"),
    nn.LeakyReLU: lambda m: [R.Op("lrelu", [("slope", float(m.negative_slope), "slope")])],
    nn.PReLU: _prelu,
    nn.Softmax: _softmax,
    nn.LocalResponseNorm: _lrn,
    nn.Flatten: _flatten_module,
    nn.LayerNorm: _layernorm,
    nn.ChannelShuffle: lambda m: [R.Op("shuffle", [("groups", int(m.groups), "groups")])],
    nn.Identity: None,
}

#: kinds that act on each value alone or on each position's channels: the same function on a
#: channels-last tensor, once the Linear among them is the 1x1 convolution it is there
_POSITIONWISE = frozenset({"relu", "relu6", "tanh", "sigmoid", "elu", "gelu", "silu", "hardswish", "hardsigmoid",
                           "lrelu", "dropout", "layernorm"})


def on_channels_last(ops: list[R.Op], what: str) -> list[R.Op]:
    """The ops of a layer called on a channels-last map, as they are on the channels-first
    map a spec has: an fc (nn.Linear over the channels) is a 1x1 convolution with bias."""
    out = []
    for op in ops:
        if op.kind == "fc":
            f = dict((n, v) for n, v, _ in op.fields)
            op = R.Op("conv", [("out", f["out"], "ch"), ("kh", 1, "k"), ("kw", 1, "k"), ("sh", 1, "s"), ("sw", 1, "s"),
                               ("ph", 0, "p"), ("pw", 0, "p"), ("dh", 1, "d"), ("dw", 1, "d"), ("groups", 1, "ch"),
                               ("bias", f["bias"], "")])
        elif op.kind not in _POSITIONWISE:
            raise Unsupported(f"{what} on a channels-last tensor (after a permute); archdsl's maps are channels-first")
        out.append(op)
    return out


class Layout:
    """What a permute converts to: no layer, a change between channels-first (NCHW) and
    channels-last (NHWC), which the tracer follows (see ``on_channels_last``)."""

    def __init__(self, to_last: bool):
        self.to_last = to_last


def _f_permute(node) -> Layout:
    dims = list(node.args[1:]) if len(node.args) > 2 else _arg(node, 1, "dims")
    dims = [int(d) % 4 for d in dims] if isinstance(dims, (list, tuple)) and len(dims) == 4 else dims
    if dims == [0, 2, 3, 1]:
        return Layout(True)
    if dims == [0, 3, 1, 2]:
        return Layout(False)
    raise Unsupported(f"permute to {dims!r} (only NCHW <-> NHWC, (0, 2, 3, 1) and (0, 3, 1, 2), have a meaning)")


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


def _name(n) -> str:
    return n.target if isinstance(n.target, str) else getattr(n.target, "__name__", "")


def _only_user(n: fx.Node) -> fx.Node | None:
    users = list(n.users)
    return users[0] if len(users) == 1 else None


def _view_shape(node: fx.Node) -> list:
    return list(node.args[1:]) if len(node.args) > 2 or not isinstance(node.args[1], (list, tuple)) \
        else list(node.args[1])


def _shuffle_from(first: fx.Node) -> tuple[int, list[fx.Node]] | None:
    """(groups, the nodes) when `first` starts a channel shuffle as torch code writes it (Zhang
    et al.'s reshape, transpose, flatten; torchvision's shufflenetv2.channel_shuffle):
    x.view(n, G, C // G, h, w), transpose(1, 2), [contiguous()], view(n, C, h, w)."""
    if first.op not in ("call_method", "call_function") or _name(first) not in ("view", "reshape"):
        return None
    shape = _view_shape(first)
    if len(shape) != 5 or not isinstance(shape[1], int) or isinstance(shape[1], bool):
        return None
    t = _only_user(first)
    if t is None or _name(t) != "transpose" or t.args[0] is not first or \
            sorted(int(d) for d in t.args[1:3] if isinstance(d, int)) != [1, 2]:
        return None
    nodes, last = [first, t], _only_user(t)
    if last is not None and _name(last) == "contiguous":
        nodes.append(last)
        last = _only_user(last)
    if last is None or _name(last) not in ("view", "reshape") or len(_view_shape(last)) != 4:
        return None
    return shape[1], nodes + [last]


def _f_shuffle_part(node: fx.Node, fallback):
    """A view, transpose or contiguous: the channel shuffle that starts at it, the identity
    inside one (its later nodes), else `fallback`."""
    own = _shuffle_from(node)
    if own is not None:
        return [R.Op("shuffle", [("groups", own[0], "groups")])]
    back = node
    for _ in range(3):  # the first view is at most three nodes back
        back = back.args[0] if back.args and isinstance(back.args[0], fx.Node) else None
        found = _shuffle_from(back) if back is not None else None
        if found is not None and node in found[1]:
            return None
    return fallback(node)


def _f_transpose(node):
    raise Unsupported("a transpose outside a channel shuffle (view(n, G, C // G, h, w), transpose(1, 2), view)")


def _f_channel_shuffle(node):
    return [R.Op("shuffle", [("groups", int(_arg(node, 1, "groups")), "groups")])]


#: chunk(x, N, dim=1) and split(x, sizes, dim=1): a tuple of parts, each read by a getitem
SPLITS = ("chunk", "split")


def split_part(source: fx.Node, index: int) -> list[R.Op]:
    """The part `index` of the chunk or split node `source`: archdsl's split keeps one part."""
    what = _name(source)
    dim = _arg(source, 2, "dim", 0)
    if dim not in (1, -3):
        raise Unsupported(f"{what} along dim {dim} (archdsl's split cuts the channels, dim 1)")
    n = _arg(source, 1, "chunks" if what == "chunk" else "split_size_or_sections")
    if what == "chunk" and isinstance(n, int):
        parts = (n,)  # N equal parts, as torch.chunk (and archdsl's `split N`) means
    elif what == "split" and isinstance(n, (list, tuple)) and all(isinstance(v, int) for v in n):
        parts = tuple(n)
    else:
        raise Unsupported(f"{what} into {n!r} (a number of chunks, or a split's list of sizes, has a kind)")
    if not isinstance(index, int) or not 0 <= index < (parts[0] if len(parts) == 1 else len(parts)):
        raise Unsupported(f"part {index!r} of a {what}")
    return [R.Op("split", [("parts", parts, ""), ("part", index + 1, "part")])]


def _droppath(p, mode, training=True) -> list[R.Op] | None:
    if mode not in ("row", "batch"):
        raise Unsupported(f"stochastic depth with mode={mode!r}")
    if not training:
        return None  # stochastic depth with training=False: the identity
    return [R.Op("droppath", [("p", float(p), "p"), ("mode", mode, "")])]


def layer_scale(t) -> list[R.Op]:
    """A parameter of shape (C, 1, 1) times a map: archdsl's layerscale (ConvNeXt's CNBlock).
    Its initial value is the tensor's, where all its values are equal (a fresh module); a
    trained one's is lost, which only matters to a spec trained from scratch."""
    if t.dim() != 3 or tuple(t.shape[1:]) != (1, 1):
        raise Unsupported(f"a product with a parameter of shape {tuple(t.shape)} (layerscale's is (C, 1, 1))")
    t = t.detach()
    first = t.flatten()[0]
    init = 1e-6
    if bool((t == first).all()) and first != 0:
        for digits in range(1, 18):  # the shortest decimal that is this float32 (1e-6, not 9.99999997e-07)
            init = float(f"{float(first):.{digits}g}")
            if torch.tensor(init, dtype=t.dtype) == first:
                break
    return [R.Op("layerscale", [("init", init, "init")])]


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
    "dropout": _f_dropout, "flatten": _f_flatten(0), "mean": _f_mean, "hardsigmoid": _act("hardsigmoid"),
    "permute": _f_permute, "transpose": lambda n: _f_shuffle_part(n, _f_transpose),
    "channel_shuffle": _f_channel_shuffle, "native_channel_shuffle": _f_channel_shuffle,
    "stochastic_depth": lambda n: _droppath(_arg(n, 1, "p"), _arg(n, 2, "mode"), _arg(n, 3, "training", True)),
}
METHODS: dict[str, Callable[[fx.Node], list[R.Op] | None]] = {
    "relu": _act("relu"), "relu_": _act("relu"), "sigmoid": _act("sigmoid"), "tanh": _act("tanh"),
    "flatten": _f_flatten(0), "mean": _f_mean, "view": lambda n: _f_shuffle_part(n, _f_view),
    "reshape": lambda n: _f_shuffle_part(n, _f_view), "permute": _f_permute,
    "transpose": lambda n: _f_shuffle_part(n, _f_transpose), "contiguous": lambda n: None, "clone": lambda n: None,
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
    # torchvision.ops.StochasticDepth: stochastic depth in training, the identity in eval mode
    "torchvision.ops.stochastic_depth.StochasticDepth": lambda m: _droppath(m.p, m.mode),
    # ConvNeXt's LayerNorm2d: nn.LayerNorm over the channels of a channels-first map (its
    # forward permutes to channels-last and back), archdsl's layernorm on a map
    "torchvision.models.convnext.LayerNorm2d": _layernorm,
}


def module_ops(m: nn.Module, conv, what: str, last: bool, fed_by: str | None) -> list[R.Op] | None:
    """The ops of module `m` (`conv` its converter) on an input in channels-last layout or
    not, made by a layer of kind `fed_by`. nn.LayerNorm and nn.Linear act on the last dim:
    on a channels-first map that is the width, which no kind is (an fc flattens its input);
    a class of NAMED that applies one to the channels itself (LayerNorm2d) is not such."""
    ops = conv(m) if conv is not None else None
    if ops and last:
        return on_channels_last(ops, what)
    if ops:  # what the module reads, for the conditions of a block's optional branches (rebuild_join.in_channels)
        c = getattr(m, "in_channels", None) or getattr(m, "num_features", None)
        ops[0].in_c = c if isinstance(c, int) else None
    t = type(m)
    if isinstance(m, nn.LayerNorm) and f"{t.__module__}.{t.__qualname__}" not in NAMED and \
            fed_by not in ("fc", "flatten"):
        raise Unsupported("nn.LayerNorm on a channels-first map normalises its width (archdsl's layernorm "
                          "normalises the channels, as ConvNeXt's LayerNorm2d does)")
    return ops


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
