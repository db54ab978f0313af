"""Agreement: MACs and params from archdsl, from every peer tool, and as published.

archdsl must equal the published figures exactly. The peers differ, each for reasons of
its own; rather than assert those reasons, this module *checks* them. Each peer gets a
formula written from its documentation and source (``HYPOTHESES``), in terms of counts
taken two ways:

* analytic terms, from archdsl's compiled graph: bias additions, batch-norm values and
  channels, activation values, pooling inputs and outputs (the reference's own
  conventions: a bias adds one value per output, and so on);
* module terms, from one forward pass of the torchvision/timm model with a hook on
  every module: which of those operations the model runs as modules (visible to hooks)
  and which as ``torch.nn.functional`` calls (invisible to hook-based tools), and which
  modules are of a type a tool does not know (timm's ``BatchNormAct2d``).

A formula that reproduces a peer's measured figure to the unit explains it; the report
prints each formula's verdict per model, never an explanation that did not check out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .models import Model
from .peers import Count, Peer

# ---------------------------------------------------------------- analytic terms (archdsl)

_POOLS = ("maxpool", "avgpool", "gap", "gmp", "adaptive_avgpool", "adaptive_maxpool")


def analytic_terms(net, without_aux: bool) -> Counter:
    """Per-operation counts of the compiled network (main path only when `without_aux`)."""
    t: Counter = Counter()
    for info in net.nodes():
        if not info.inputs or (without_aux and info.aux is not None):
            continue
        kind, p = info.kind, info.op.params
        x, y = info.in_shapes[0], info.shape
        # the node's main op, then its attached norm and activation (which act on y)
        post_in = y
        if info.post:
            post_in = kind.infer(p, x)
        ops = [(kind, p, x, post_in)] + [(op.kind, op.params, post_in, post_in) for op in info.post]
        for k, kp, xi, yo in ops:
            name = k.name
            if name in ("conv", "fc") and getattr(kp, "bias", False):
                t["bias"] += yo.numel  # one addition per output value
            if name == "bn":
                t["bn"] += yo.numel
                t["bn_channels"] += yo.c
            if k.is_activation:
                t["act"] += yo.numel
            if name in _POOLS:
                t["pool_in"] += xi.numel
            if name in ("gap", "adaptive_avgpool"):
                t["adaptive_in"] += xi.numel
            if name == "add":
                t["add"] += yo.numel * (len(info.inputs) - 1)
    return t


# ---------------------------------------------------------------- module terms (the reference)

_ACT_TYPES = ("ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Hardswish", "PReLU", "Sigmoid", "Tanh")


def module_terms(model, shape) -> Counter:
    """What hooks on the reference's modules can see during one eval forward pass."""
    import torch
    from torch import nn

    t: Counter = Counter()
    exact = {nn.BatchNorm2d: "bn", nn.MaxPool2d: "pool", nn.AvgPool2d: "pool", nn.AdaptiveAvgPool2d: "pool",
             nn.AdaptiveMaxPool2d: "pool"}

    def hook(m, inputs, out):
        typ = type(m)
        x = inputs[0] if inputs else None
        if exact.get(typ) == "bn":
            t["bn_module"] += out.numel()
        if typ.__module__.startswith("torch.nn") and typ.__name__ in _ACT_TYPES:
            t["act_module"] += out.numel()
        if exact.get(typ) == "pool" and x is not None:
            t["pool_module_in"] += x.numel()
        if typ is nn.AvgPool2d:
            t["avgpool_module_out"] += out.numel()
        if typ is nn.AdaptiveAvgPool2d and x is not None:
            t["adaptive_module_in"] += x.numel()
            t["adaptive_module_out"] += out.numel()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(True for _ in m.children()):
            t["bn_leaf_channels"] += m.num_features

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.randn(1, *shape))
    finally:
        for h in handles:
            h.remove()
    # parameters held directly by modules from outside torch.nn (timm's BatchNormAct2d):
    # tools that look modules up by exact type find no rule for them
    for m in model.modules():
        if not type(m).__module__.startswith("torch.nn"):
            t["foreign_params"] += sum(p.numel() for p in m.parameters(recurse=False))
    return t


# ---------------------------------------------------------------- the peers' conventions


@dataclass(frozen=True)
class Hypothesis:
    """A peer's convention: its MACs = archdsl's MACs + sum(coef x term), and its params =
    archdsl's params + sum(coef x term), each term with what it stands for."""

    macs: tuple[tuple[int, str, str], ...]  # (coefficient, term key, meaning)
    summary: str
    params: tuple[tuple[int, str, str], ...] = ()

    def predict(self, t: Counter) -> Count:
        return Count(t["macs"] + sum(c * t[k] for c, k, _ in self.macs),
                     t["params"] + sum(c * t[k] for c, k, _ in self.params))


HYPOTHESES: dict[str, Hypothesis] = {
    "fvcore": Hypothesis(
        macs=((2, "bn", "2 per batch-norm value (eval: scale and shift)"),
              (1, "adaptive_in", "1 per input value of adaptive/global average pools")),
        summary="conv/fc weights, plus 2 per batch-norm value and 1 per adaptive-average-pool input value "
                "(its handlers for aten::batch_norm and aten::adaptive_avg_pool2d); no bias, activation, "
                "max/avg pool or addition; it traces, so functional calls count like modules"),
    "ptflops": Hypothesis(
        macs=((1, "bias", "1 per bias addition"),
              (2, "bn_module", "2 per value of nn.BatchNorm2d modules"),
              (1, "act", "1 per activation value"),
              (1, "act_module", "1 more per value of activation modules (the module hook and the patched "
                                "functional call inside the module both fire)"),
              (1, "pool_in", "1 per pooling input value"),
              (1, "pool_module_in", "1 more per input value of pooling modules (counted twice likewise)")),
        summary="module hooks plus patched torch.nn.functional: bias adds, batch norm (exact nn.BatchNorm2d only), "
                "activations and pooling inputs; an activation or pool run by a module is counted twice "
                "(the hook, then the functional call inside the module), one the model calls functionally once"),
    "thop": Hypothesis(
        macs=((4, "bn_module", "4 per value of nn.BatchNorm2d modules (2 per value, doubled when affine)"),
              (1, "avgpool_module_out", "1 per output of nn.AvgPool2d modules"),
              (1, "adaptive_module_in", "1 per input of nn.AdaptiveAvgPool2d modules (the kernel's adds)"),
              (1, "adaptive_module_out", "1 per output of nn.AdaptiveAvgPool2d modules (the divide)")),
        params=((-1, "foreign_params", "params held by module types it has no rule for are dropped"),),
        summary="module hooks looked up by exact type: batch norm at 4 per value, average pools; "
                "no bias, activation or max pool; functional calls unseen; modules of a type it has no rule "
                "for (timm's BatchNormAct2d) are skipped, their MACs and params dropped"),
    "torchinfo": Hypothesis(
        macs=((1, "bias", "1 per bias addition (conv: bias params x output positions)"),
              (2, "bn_leaf_channels", "2 per channel of leaf batch-norm modules (gamma and beta x batch)")),
        summary="leaf modules' parameter counts times output positions (conv) or batch (others): "
                "conv/fc weights and bias adds, and batch norm's gamma and beta once per sample; "
                "timm's BatchNormAct2d has children, so it is no leaf and not counted"),
    "calflops": Hypothesis(
        macs=(),
        summary="conv/fc weight multiply-accumulates (bias, batch norm, activations and pools go to its "
                "FLOPs, not its MACs); it patches torch.nn.functional, so functional calls are seen"),
}


# ---------------------------------------------------------------- one model's agreement


@dataclass
class PeerResult:
    peer: str
    count: Count | None = None
    error: str | None = None
    predicted: Count | None = None

    @property
    def explained(self) -> bool | None:
        if self.count is None or self.predicted is None:
            return None
        return self.count == self.predicted


@dataclass
class Agreement:
    model: Model
    archdsl: Count
    published: Count
    terms: Counter
    peers: list[PeerResult] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.archdsl == self.published


def agree(model: Model, peers: list[Peer], reference=None) -> Agreement:
    """Compile the spec, run every usable peer on the reference, and check each peer's formula."""
    net = model.compile()
    params, macs = model.archdsl_figures(net)
    terms = analytic_terms(net, without_aux=model.has_aux)
    terms["macs"], terms["params"] = macs, params
    result = Agreement(model, Count(macs, params), Count(model.macs, model.params), terms)
    if not peers:
        return result
    ref = reference if reference is not None else model.reference(aux=False, init=False)
    terms.update(module_terms(ref, model.input))
    for peer in peers:
        r = PeerResult(peer.name)
        try:
            r.count = peer.run(ref, model.input)
        except Exception as err:  # noqa: BLE001 - a tool failing on a model is a result to report
            r.error = f"{type(err).__name__}: {err}"
        h = HYPOTHESES.get(peer.name)
        if h is not None:
            r.predicted = h.predict(terms)
        result.peers.append(r)
    return result


def why(peer: str, a: Agreement) -> str:
    """The peer's difference from the published figures and the terms of its formula that
    are non-zero for this model, with the formula's verdict."""
    h = HYPOTHESES[peer]
    r = next(p for p in a.peers if p.peer == peer)
    if r.count is None:
        return r.error or "-"
    dm = r.count.macs - a.published.macs
    dp = r.count.params - a.published.params
    parts = [f"{'+' if c > 0 else '-'}{abs(c) if abs(c) != 1 else ''}{'x' if abs(c) != 1 else ''}{k} {a.terms[k]:,}"
             for c, k, _ in (*h.macs, *h.params) if a.terms.get(k)]
    if r.explained:
        verdict = "formula holds"
    else:
        off = [f"{r.count.macs - r.predicted.macs:+,} MACs"] if r.count.macs != r.predicted.macs else []
        off += [f"{r.count.params - r.predicted.params:+,} params"] if r.count.params != r.predicted.params else []
        verdict = "formula off by " + ", ".join(off)
    head = "equal" if dm == 0 and dp == 0 else (f"{dm:+,} MACs" + (f", {dp:+,} params" if dp else ""))
    return head + (f" ({verdict}: {' '.join(parts)})" if parts or not r.explained else "")
