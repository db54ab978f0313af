"""Compiled graph -> ``torch.nn.Module``. With init_torch, optim and train, the only modules
of archdsl that import torch.

The module mirrors the spec's structure: a body is a sequence of named children, a block
call a named submodule, a merge (concat, add, residual, mul) a module whose children are
its branches (``branch1``, ``branch2``, ... in the order written) and whose merge kind
combines their outputs, an aux head a named child that runs only in training mode. A layer with an attached norm and activation is a small sequential
module (``conv1.conv``, ``conv1.bn``, ``conv1.relu``); a bare layer is the torch layer itself.

Aux contract: in eval mode ``model(x)`` returns the main output; in training mode, when the
network has aux heads, it returns ``(main, {"aux1": ..., "aux2": ...})`` with the heads in
the order they appear in the spec.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any, Callable, List

import torch
import torch.nn.functional as F
from torch import nn

from .diagnostics import ArchError, Diagnostic
from .infer import NodeInfo
from .memory import attached_in_place, overwrites_input, readers as count_readers
from .network import CompiledNetwork, TAux, TLayer, TMerge, TSeq, walk

#: building a module with more parameters than this is refused unless `max_params` is raised
DEFAULT_MAX_PARAMS = 2_000_000_000
#: ... with more buffer values (batch-norm statistics, rbf codes, select indices) than this
DEFAULT_MAX_BUFFERS = 2**24
#: ... whose forward pass at batch 1 makes a tensor of more values than this (a layer's
#: output, or what torch makes on the way: a padded input, conv's im2col columns, LRN's padded squares)
DEFAULT_MAX_ACTIVATION = 2**30


# ---------------------------------------------------------------- helper modules used by kinds


class FlatLinear(nn.Linear):
    """nn.Linear that flattens a (N, C, H, W) input first, as torchvision's classifiers do.

    It stays a class of its own (rather than a Flatten and a Linear in a Sequential) so
    that the layer's weights keep torchvision's keys (``fc.weight``, not ``fc.1.weight``);
    it is an nn.Linear to every tool (isinstance) and to the weight transfer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(torch.flatten(x, 1), self.weight, self.bias)


class SpatialPyramidPool(nn.Module):
    """He et al. 2014: adaptive max pooling into n x n bins per level, flattened and concatenated."""

    def __init__(self, levels):
        super().__init__()
        self.levels = tuple(levels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys: List[torch.Tensor] = []
        for n in self.levels:
            ys.append(torch.flatten(F.adaptive_max_pool2d(x, n), 1))
        return torch.cat(ys, 1)

    def extra_repr(self) -> str:
        return f"levels={self.levels}"


class Select(nn.Module):
    """Keeps the listed channels; a contiguous run is a plain slice."""

    def __init__(self, channels):
        super().__init__()
        self.channels = tuple(channels)
        c = self.channels
        self.run = (c[0], c[-1] + 1) if list(c) == list(range(c[0], c[-1] + 1)) else None
        self.register_buffer("index", torch.tensor(c, dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.run is not None:
            return x[:, self.run[0]:self.run[1]]
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class ChannelSlice(nn.Module):
    """Channels [start, stop): a view, no buffer (so that weight pairing never sees it)."""

    def __init__(self, start: int, stop: int):
        super().__init__()
        self.start, self.stop = start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, self.start:self.stop]

    def extra_repr(self) -> str:
        return f"start={self.start}, stop={self.stop}"


class ChannelShuffle(nn.Module):
    """Channel shuffle with G groups (nn.ChannelShuffle's permutation) as reshape, transpose,
    reshape: ops that TorchScript, torch.export and ONNX all have (ONNX has no channel_shuffle)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w = x.size(0), x.size(2), x.size(3)
        return x.reshape(n, self.groups, -1, h, w).transpose(1, 2).reshape(n, -1, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class ScaledTanh(nn.Module):
    """f(a) = A tanh(S a): LeCun et al. 1998's squashing function (Appendix A: A = 1.7159, S = 2/3)."""

    def __init__(self, amplitude: float, slope: float):
        super().__init__()
        self.amplitude, self.slope = float(amplitude), float(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude:g}, slope={self.slope:g}"


class RadialBasis(nn.Module):
    """LeNet-5's output layer (LeCun et al. 1998, §II-B): y_i = sum_j (x_j - w_ij)^2 with
    fixed codes w, kept as a buffer so that they are saved but never trained."""

    def __init__(self, codes):
        super().__init__()
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.get_default_dtype()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.unsqueeze(1) - self.codes).pow(2).sum(-1)

    def extra_repr(self) -> str:
        return f"in_features={self.codes.shape[1]}, out_features={self.codes.shape[0]}"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of (N, C, H, W) at every position: torchvision's
    convnext.LayerNorm2d, the same permutes and F.layer_norm call (so the same numbers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class LayerScale(nn.Module):
    """A learnt per-channel multiplier named and shaped as ConvNeXt's `layer_scale`
    (torchvision's CNBlock: torch.ones(C, 1, 1) * init, multiplied on the left)."""

    def __init__(self, shape: tuple[int, ...], init: float):
        super().__init__()
        self.init = float(init)  # kept for the export, which writes the constructor call again
        self.layer_scale = nn.Parameter(torch.ones(shape) * init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_scale * x


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth (Huang et al. 2016), the same computation and the
    same random draws: the identity in eval mode or at p = 0; in training, the input times
    a Bernoulli(1 - p) mask of shape (N, 1, ...) ("row") or (1, 1, ...) ("batch"), divided
    by 1 - p where 1 - p > 0. No torchvision import: the library needs only torch."""

    def __init__(self, p: float, mode: str):
        super().__init__()
        self.p, self.mode = float(p), mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        size = [x.shape[0] if self.mode == "row" else 1] + [1] * (x.ndim - 1)
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        if self.p < 1.0:
            noise.div_(1.0 - self.p)
        return x * noise

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode}"


#: the namespace handed to every kind's ``lower``: torch.nn plus the helpers above
LIB = types.SimpleNamespace(nn=nn, F=F, torch=torch, FlatLinear=FlatLinear, SpatialPyramidPool=SpatialPyramidPool,
                            Select=Select, ScaledTanh=ScaledTanh, RadialBasis=RadialBasis,
                            LayerNorm2d=LayerNorm2d, LayerScale=LayerScale, StochasticDepth=StochasticDepth,
                            ChannelSlice=ChannelSlice, ChannelShuffle=ChannelShuffle)


# ---------------------------------------------------------------- containers (archdsl/torch_modules.py)

from .torch_modules import (MERGE_MODULES, Add, AuxBody, AuxHead, Body, Concat, Layer, Merge,  # noqa: E402,F401
                            Mul, Network)


# ---------------------------------------------------------------- deep nesting

#: a network whose modules nest deeper than this is lowered and run on a thread with a deep stack
SHALLOW_DEPTH = 100
#: Python frames per level of nesting, with room to spare (a module call takes three)
_FRAMES_PER_LEVEL = 8
#: the stack of that thread: a level takes about 1.5 KiB of C stack (an 8 MiB stack overflows near 5,000)
_DEEP_STACK_BYTES = 256 << 20
#: deeper than this, even that stack could overflow: refused (E304)
MAX_DEPTH = 20_000

_deep = threading.local()
_limit_lock = threading.Lock()
_limit_state = {"users": 0, "saved": 0}


def nesting_depth(net: CompiledNetwork) -> int:
    """How deeply the module of `net` will nest: one level per body, merge, aux head and
    layer (two for a layer: its Layer and the torch layer), along the tree's walk."""
    deepest = depth = 0
    for v in walk(net.tree):
        if type(v.item) is TLayer:
            deepest = max(deepest, depth + 2)
        elif v.leaving:
            depth -= 1
        else:
            depth += 1
            deepest = max(deepest, depth)
    return deepest


class _RecursionRoom:
    """Raise the interpreter's recursion limit to at least `frames` while inside (the limit
    is the process's; the last one out restores it)."""

    def __init__(self, frames: int):
        self.frames = frames

    def __enter__(self):
        with _limit_lock:
            if _limit_state["users"] == 0:
                _limit_state["saved"] = sys.getrecursionlimit()
            _limit_state["users"] += 1
            sys.setrecursionlimit(max(sys.getrecursionlimit(), self.frames))

    def __exit__(self, *exc):
        with _limit_lock:
            _limit_state["users"] -= 1
            if _limit_state["users"] == 0:
                sys.setrecursionlimit(_limit_state["saved"])


def on_deep_stack(depth: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` where `depth` levels of module nesting fit.

    Lowering and running a module recurse once per level of the spec's nesting, a few
    Python frames each, and a network that compiles may nest deeper than the default
    recursion limit (1,000 frames) allows. A network up to SHALLOW_DEPTH levels (every
    network of the zoo) runs here, untouched; a deeper one runs on a helper thread with a
    256 MiB stack and the recursion limit raised for the time, with torch's grad and
    inference modes and the current CUDA device carried over. The caller waits for it.
    """
    frames = depth * _FRAMES_PER_LEVEL + 1000
    if depth <= SHALLOW_DEPTH or getattr(_deep, "frames", 0) >= frames:
        return fn(*args)
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()
    cuda = torch.cuda.current_device() if torch.cuda.is_initialized() else None
    outcome: dict[str, Any] = {}

    def work() -> None:
        _deep.frames = frames
        try:
            if cuda is not None:
                torch.cuda.set_device(cuda)
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                outcome["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = e

    with _RecursionRoom(frames):
        with _limit_lock:  # the stack size is the process's setting for new threads: set, start, restore
            old = threading.stack_size(_DEEP_STACK_BYTES)
            try:
                worker = threading.Thread(target=work, name="archdsl-deep-stack", daemon=True)
                worker.start()
            finally:
                threading.stack_size(old)
        worker.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# ---------------------------------------------------------------- allocation failures


def is_allocation_failure(e: BaseException) -> bool:
    """torch's ways of saying that memory ran out (CPU, CUDA, MPS), and Python's."""
    if isinstance(e, MemoryError):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and any(m in text for m in (
        "out of memory", "can't allocate memory", "Cannot allocate memory", "not enough memory"))


def allocation_failed(net: CompiledNetwork, e: BaseException, doing: str) -> ArchError:
    """The diagnostic (E415) for memory that ran out while `doing` (building, a forward pass)."""
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return ArchError(Diagnostic(
        "E415", f"{doing} {net.name} ran out of memory: {first[:200]}", net.span,
        hint="free memory, or build a smaller network or batch (the analytic report, archdsl compile, "
             "allocates no weights)"),
        net.sources)


# ---------------------------------------------------------------- what a build will allocate


def _conv_scratch(p, x, y) -> int:
    """The largest tensor torch's CPU convolution makes on its way: the zero-padded input,
    or the im2col columns of one group (both measured: torch allocates them)."""
    padded = x.c * (x.h + 2 * p.padding[0]) * (x.w + 2 * p.padding[1])
    columns = x.c // p.groups * p.kernel[0] * p.kernel[1] * y.h * y.w
    return max(padded, columns)


#: kind -> the largest tensor its forward pass makes per sample, where that exceeds its output
_SCRATCH: dict[str, Callable[[Any, Any, Any], int]] = {
    "conv": _conv_scratch,
    # CPU's transposed convolution: the columns it scatters from, (out/groups) kh kw x H_in W_in
    "convt": lambda p, x, y: p.out // p.groups * p.kernel[0] * p.kernel[1] * x.h * x.w,
    "lrn": lambda p, x, y: (x.c + p.size - 1) * x.h * x.w,  # the squares, padded along channels
    "rbf": lambda p, x, y: p.out * x.numel,  # x - codes, broadcast
}


def _ops(info: NodeInfo):
    """(kind name, params, input shape, output shape) of a node's main and attached ops."""
    if not info.in_shapes:
        return
    yield info.kind.name, info.op.params, info.in_shapes[0], info.shape
    for op in info.post:
        yield op.kind.name, op.params, info.shape, info.shape


def buffer_values(info: NodeInfo) -> int:
    """How many values the buffers of a node's module hold (each kind's count_buffers)."""
    return info.buffers


def largest_tensor(info: NodeInfo) -> int:
    """The values of the largest tensor a node's forward pass makes for one sample."""
    return max((info.shape.numel, *(_SCRATCH[k](p, x, y) for k, p, x, y in _ops(info) if k in _SCRATCH)))


def check_limits(net: CompiledNetwork, max_params: int = DEFAULT_MAX_PARAMS, max_buffers: int = DEFAULT_MAX_BUFFERS,
                 max_activation: int = DEFAULT_MAX_ACTIVATION, batch: int = 1) -> None:
    """Refuse, before anything is allocated, a network whose module would hold more than
    `max_params` parameters (E411) or `max_buffers` buffer values (E413), or whose forward
    pass at `batch` would make a tensor of more than `max_activation` values (E414)."""
    if net.params > max_params:
        raise ArchError(Diagnostic(
            "E411", f"{net.name} has {net.params:,} parameters, above the limit of {max_params:,}",
            net.span, hint="raise the limit with max_params=... (CLI: --max-params N) if this is intended"),
            net.sources)
    infos = list(net.nodes())
    buffers = [(buffer_values(i), i) for i in infos]
    total = sum(n for n, _ in buffers)
    if total > max_buffers:
        n, info = max(buffers, key=lambda b: b[0])
        raise ArchError(Diagnostic(
            "E413", f"{info.id}'s buffers would hold {total:,} values" if n == total else
            f"{net.name}'s buffers would hold {total:,} values, {n:,} of them in {info.id}",
            info.span or net.span, expected=f"at most {max_buffers:,}", found=f"{total:,}",
            hint="raise the limit with max_buffers=... (CLI: --max-buffers N) if this is intended"), net.sources)
    n, info = max(((largest_tensor(i), i) for i in infos), key=lambda t: t[0])
    if n * batch > max_activation:
        at = f" at batch {batch}" if batch != 1 else " for one sample"
        raise ArchError(Diagnostic(
            "E414", f"{info.id}'s forward pass would make a tensor of {n * batch:,} values{at} (its output: "
                    f"{info.shape})",
            info.span or net.span, expected=f"at most {max_activation:,}", found=f"{n * batch:,}",
            hint="raise the limit with max_activation=... (CLI: --max-activation N) if this is intended"),
            net.sources)


# ---------------------------------------------------------------- lowering


def _in_place(module: nn.Module) -> nn.Module:
    module.inplace = True  # the kind says its module can (Kind.inplace); memory.py says when
    return module


def _layer_module(info: NodeInfo, net: CompiledNetwork, readers: dict[str, int]) -> nn.Module:
    x = info.in_shapes[0]
    y = info.kind.infer(info.op.params, x)
    main = info.kind.lower(info.op.params, x, y, LIB)
    if not info.post:
        if overwrites_input(net, info, readers):
            _in_place(main)
        return main
    parts: list[tuple[str, nn.Module]] = [(info.kind.name, main)]
    before = info.kind
    for op in info.post:
        name = op.kind.name
        if any(n == name for n, _ in parts):
            name = f"{name}{sum(1 for n, _ in parts if n.startswith(op.kind.name)) + 1}"
        m = op.kind.lower(op.params, y, y, LIB)
        # an attached activation overwrites the fresh output of the op before it (conv, fc, bn)
        if attached_in_place(before, op):
            _in_place(m)
        parts.append((name, m))
        before = op.kind
    layer = Layer()
    for name, m in parts:
        layer.add_module(name, m)
    return layer


def _holding_aux(net: CompiledNetwork) -> set[int]:
    """The ids of the bodies and merges that hold an aux head at any depth."""
    holding: set[int] = set()
    open_: list = []
    for v in walk(net.tree):
        t = type(v.item)
        if t is TLayer:
            continue
        if v.leaving:
            open_.pop()
            continue
        if t is TAux:
            holding.update(id(c) for c in open_)
        open_.append(v.item)
    return holding


def _body(children: list[tuple[str, nn.Module, str]]) -> nn.Module:
    if any(role != "main" for _, _, role in children):
        return AuxBody(children)
    body = Body()
    for name, m, _ in children:
        body.add_module(name, m)
    return body


def _lower_tree(net: CompiledNetwork) -> nn.Module:
    """The network's modules, built bottom-up along the tree's walk (no recursion, so any
    nesting that compiles lowers): a container's children are collected between its entry
    and its exit, then wrapped."""
    readers = count_readers(net)
    aux_inside = _holding_aux(net) if net.aux_outputs else set()
    #: per open container: its children as (name, module, role)
    stack: list[list[tuple[str, nn.Module, str]]] = []
    result: nn.Module | None = None
    for v in walk(net.tree):
        it, t = v.item, type(v.item)
        if t is TLayer:
            stack[-1].append((it.name, _layer_module(net.node(it.node), net, readers), "main"))
            continue
        if not v.leaving:
            stack.append([])
            continue
        children = stack.pop()
        if t is TSeq:
            module = _body(children) if (children or type(v.parent) is not TMerge) else nn.Identity()
        elif t is TMerge:
            if id(it) in aux_inside:
                raise ArchError(Diagnostic("E412", "aux heads inside merge branches cannot be lowered",
                                           net.node(it.node).span,
                                           hint="start the aux head on the main path, before or after the merge"))
            info = net.node(it.node)
            cls = MERGE_MODULES.get(info.kind.name, Merge)
            module = cls([(name, m) for name, m, _ in children], info.kind, info.op.params)
        else:  # TAux: its body, run for its result
            module = AuxHead(it.body.path, children[0][1])  # its output's key: the head's path (`b1.head`)
        if not stack:
            result = module
            break
        role = it.body.path if t is TAux else ("pass" if id(it) in aux_inside else "main")
        stack[-1].append((it.name, module, role))
    assert result is not None
    return result


def lower(net: CompiledNetwork, device: str | torch.device = "cpu", max_params: int = DEFAULT_MAX_PARAMS,
          init: bool = True, dtype: torch.dtype | None = None, max_buffers: int = DEFAULT_MAX_BUFFERS,
          max_activation: int = DEFAULT_MAX_ACTIVATION, seed: int | None = None) -> Network:
    """Build the module for a compiled network, initialised as its spec says (archdsl.init).

    `seed` makes the weights a function of it alone: the module is built and filled on the
    CPU under ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` (the caller's
    generator is left as it was), then moved to `device`.

    `init=False` builds on the meta device: the structure and shapes without allocating or
    initialising any weight (for inspection, or to load a checkpoint with ``to_empty``).
    The limits (see :func:`check_limits`) are checked before anything is allocated; memory
    that runs out all the same is an ArchError (E415), as is nesting beyond MAX_DEPTH (E304).
    """
    check_limits(net, max_params, max_buffers, max_activation)
    depth = nesting_depth(net)
    if depth > MAX_DEPTH:
        raise ArchError(Diagnostic("E304", f"{net.name} nests {depth:,} levels deep, more than a build can "
                                   f"run ({MAX_DEPTH:,})", net.span, expected=f"at most {MAX_DEPTH:,}",
                                   found=f"{depth:,}"), net.sources)
    target = torch.device("meta") if not init else torch.device(device)
    if seed is not None and init:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, not {type(seed).__name__}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return lower(net, "cpu", max_params, True, dtype, max_buffers, max_activation).to(target)
    try:
        return on_deep_stack(depth, _lower_network, net, target, depth, dtype)
    except ArchError as e:  # E412: show the spec's line
        raise e.with_sources(net.sources) from None
    except (MemoryError, RuntimeError) as e:
        if not is_allocation_failure(e):
            raise
        raise allocation_failed(net, e, "building") from None
    except RecursionError:  # not expected below MAX_DEPTH: on_deep_stack makes the room
        raise ArchError(Diagnostic("E304", f"{net.name} nests too deeply to build ({depth:,} levels)", net.span),
                        net.sources) from None


def _lower_network(net: CompiledNetwork, target: torch.device, depth: int, dtype: torch.dtype | None) -> Network:
    with torch.device(target):
        body = _lower_tree(net)
        model = Network(body, net.name, net.input_shape.dims, net.output_shape.dims, tuple(net.aux_outputs), depth)
        if target.type != "meta":
            from .init_torch import apply

            apply(net, model)
    return model if dtype is None else model.to(dtype)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_shapes(model: Network, batch: int = 1, device: Any = "cpu") -> dict[str, tuple[int, ...]]:
    """Actual output shape of every layer module (by qualified name), from one forward pass:
    the tests compare these with the analytic shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []
    for name, m in model.named_modules():
        if name and not isinstance(m, (Body, AuxBody, AuxHead, Network)) and not name.endswith(tuple(
                f".{c}" for c in ())):
            handles.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape[1:]))
                if isinstance(out, torch.Tensor) else None))
    try:
        with torch.no_grad():
            model.eval()
            model(torch.randn(batch, *model.input_shape, device=device))
    finally:
        for h in handles:
            h.remove()
    return shapes


# the weight transfer is its own back end (archdsl.weights); its names stay importable here
from .weights import CheckpointError, WeightMismatch, load_weights, read_checkpoint  # noqa: E402,F401
