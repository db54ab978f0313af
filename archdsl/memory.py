"""Training memory, analytically: what one training step holds at a batch size.

Four parts, all float32 (4 bytes a value):

* the activations saved for backward: every tensor autograd keeps from the forward pass
  until the backward pass reads it, each counted once however many ops keep it;
* the parameters, and as much again for their gradients (every parameter is trainable);
* the optimizer's state, in parameter-sized slots (torch.optim: SGD's momentum buffer,
  Adam's two moment estimates, RMSprop's square average);
* the buffers (batch-norm running statistics, fixed codes).

The saved activations follow torch's storage model. Each layer kind says what its op keeps
(:meth:`~archdsl.layers.base.Kind.saved`: its input, its output, tensors of its own); which
tensors share one storage is decided here, in one place that the lowering uses too: a view
(flatten, a channel slice) shares its input's storage, and an activation run in place
(torchvision's ``ReLU(inplace=True)``) overwrites the tensor before it. A tensor kept by
several ops (a convolution's input that the ReLU before it keeps as its output) is held
once. The figure is checked against ``torch.autograd.graph.saved_tensors_hooks`` on the
built module of every spec in specs/ (tests/test_memory.py): the bytes of the distinct
storages that autograd packs, parameters and buffers left out.

Where it differs from a real run, by design: CUDA's fused dropout keeps a 1-byte mask
where the CPU keeps a float one (4 bytes a value, the figure here); the optimizer's `step`
counters (one value per parameter tensor for Adam and RMSprop), torch's int64
num_batches_tracked (8 bytes, counted as 4) and the allocator's rounding are left out; and
the transient tensors of one op (im2col columns, the gradient being computed) are not
part of what is held between the passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .infer import NodeInfo
from .layers.base import MergeKind, Saved

if TYPE_CHECKING:
    from .network import CompiledNetwork

BYTES = 4  # float32

#: optimizer -> parameter-sized tensors of state it keeps per parameter, from its
#: hyperparameters (torch.optim's implementations: which buffers `step` allocates)
OPTIMIZER_SLOTS = {
    "sgd": lambda h: 1 if h.get("momentum", 0.0) else 0,  # momentum_buffer
    "adam": lambda h: 3 if h.get("amsgrad") else 2,  # exp_avg, exp_avg_sq (and max_exp_avg_sq)
    "adamw": lambda h: 3 if h.get("amsgrad") else 2,
    # square_avg, and momentum_buffer with momentum, grad_avg when centered
    "rmsprop": lambda h: 1 + bool(h.get("momentum", 0.0)) + bool(h.get("centered")),
}


def readers(net: "CompiledNetwork") -> dict[str, int]:
    """How many nodes read each node's output."""
    count: dict[str, int] = {}
    for n in net.nodes():
        for i in n.inputs:
            count[i] = count.get(i, 0) + 1
    return count


def overwrites_input(net: "CompiledNetwork", info: NodeInfo, reads: dict[str, int]) -> bool:
    """Does a standalone activation overwrite its input? Only when its kind's module can
    (``Kind.inplace``) and that input is a fresh output (``Kind.fresh_output``, its attached
    ops too: no attached activation whose backward reads its own output) that nothing else
    reads: not the network's input, not a tensor shared by branches or an aux head."""
    if not (info.kind.is_activation and info.kind.inplace) or len(info.inputs) != 1:
        return False
    src = net.node(info.inputs[0])
    if not src.kind.fresh_output or not all(op.kind.fresh_output for op in src.post):
        return False
    return reads.get(src.id, 0) == 1


def attached_in_place(before, op) -> bool:
    """Does an attached op (`conv ... relu`) overwrite the output of the op before it? An
    activation that can, after a fresh output (conv, fc, bn)."""
    return op.kind.is_activation and op.kind.inplace and before.fresh_output


@dataclass(frozen=True)
class TrainingMemory:
    """One training step's memory at `batch` with `optimizer` (bytes)."""

    batch: int
    optimizer: str
    #: the optimizer's parameter-sized state tensors
    slots: int
    #: saved activations per sample, and those that do not grow with the batch
    saved_per_sample: int
    saved_fixed: int
    #: per node: the bytes per sample of its tensors kept for backward (its own storages,
    #: and what only its ops keep)
    per_node: dict[str, int]
    params: int
    buffers: int

    @property
    def saved(self) -> int:
        return self.batch * self.saved_per_sample + self.saved_fixed

    @property
    def gradients(self) -> int:
        return self.params

    @property
    def optimizer_state(self) -> int:
        return self.slots * self.params

    @property
    def total(self) -> int:
        return self.saved + self.params + self.gradients + self.optimizer_state + self.buffers

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "optimizer": self.optimizer, "saved_activation_bytes": self.saved,
                "saved_bytes_per_sample": self.saved_per_sample, "saved_fixed_bytes": self.saved_fixed,
                "param_bytes": self.params, "gradient_bytes": self.gradients,
                "optimizer_state_bytes": self.optimizer_state, "buffer_bytes": self.buffers,
                "total_bytes": self.total}


def optimizer_name(name: str, hyper: dict[str, Any]) -> str:
    """`sgd`, `sgd with momentum`, `adam`, ...: the name a report prints."""
    if name == "sgd" and hyper.get("momentum", 0.0):
        return "sgd with momentum"
    return name


def training_memory(net: "CompiledNetwork", batch: int | None = None, optimizer: str | None = None,
                    hyper: dict[str, Any] | None = None) -> TrainingMemory:
    """The memory of one training step of `net`. The batch and the optimizer default to the
    spec's `train { }` recipe, else batch 1 and plain SGD."""
    recipe = net.recipe
    if optimizer is None:
        optimizer, hyper = (recipe.optimizer, recipe.hyper) if recipe is not None else ("sgd", {})
    hyper = hyper or {}
    if batch is None:
        batch = recipe.batch if recipe is not None and recipe.batch else 1
    per_sample, fixed, per_node = saved_activations(net)
    return TrainingMemory(batch=batch, optimizer=optimizer_name(optimizer, hyper),
                          slots=OPTIMIZER_SLOTS[optimizer](hyper), saved_per_sample=per_sample, saved_fixed=fixed,
                          per_node=per_node, params=net.params * BYTES, buffers=net.buffers * BYTES)


def saved_activations(net: "CompiledNetwork") -> tuple[int, int, dict[str, int]]:
    """(bytes per sample, fixed bytes, bytes per sample by node) that autograd keeps.

    Storages are numbered as the forward pass makes them: each has a size, the node that
    made it, and whether any op keeps it. A node's ops run in order (main op, then its
    attached norm and activation), each on the tensor the one before produced."""
    size: list[int] = []  # values per sample of each storage
    owner: list[str] = []
    kept: list[bool] = []
    grad: list[bool] = []  # does the tensor require grad (is it in the autograd graph)?
    storage: dict[str, int] = {}  # node -> the storage of its output
    extra: dict[str, int] = {}
    fixed = 0
    reads = readers(net)

    def new(node: str, values: int, requires_grad: bool) -> int:
        size.append(values)
        owner.append(node)
        kept.append(False)
        grad.append(requires_grad)
        return len(size) - 1

    for info in net.nodes():
        if not info.inputs:
            storage[info.id] = new(info.id, info.shape.numel, False)  # the input needs no gradient
            continue
        ins = [storage[i] for i in info.inputs]
        tracked = any(grad[s] for s in ins) or info.params > 0
        if isinstance(info.kind, MergeKind):
            out = new(info.id, info.shape.numel, tracked)
            rule = info.kind.saved_many(info.op.params, info.in_shapes, info.shape) if tracked else Saved()
            _keep(rule, ins, out, kept)
            extra[info.id] = rule.extra
            fixed += rule.fixed
            storage[info.id] = out
            continue
        x, y = info.in_shapes[0], info.shape
        cur = ins[0]
        own = 0
        ops = [(info.op, x, y, overwrites_input(net, info, reads))]
        before = info.kind
        for op in info.post:
            ops.append((op, y, y, attached_in_place(before, op)))
            before = op.kind
        for op, a, b, in_place in ops:
            tracked = grad[cur] or op.kind.count_params(op.params, a, b) > 0
            if in_place or op.kind.is_view(op.params):
                out = cur
                grad[out] = tracked
            else:
                out = new(info.id, b.numel, tracked)
            if tracked:  # an op outside the autograd graph keeps nothing
                rule = op.kind.saved(op.params, a, b, in_place)
                _keep(rule, [cur], out, kept)
                own += rule.extra
                fixed += rule.fixed
            cur = out
        storage[info.id] = cur
        extra[info.id] = own
    per_node = dict(extra)
    for s, values in enumerate(size):
        if kept[s]:
            per_node[owner[s]] = per_node.get(owner[s], 0) + BYTES * values
    return sum(per_node.values()), fixed, per_node


def _keep(rule: Saved, inputs: list[int], output: int, kept: list[bool]) -> None:
    if rule.input:
        for s in inputs:
            kept[s] = True
    if rule.output:
        kept[output] = True
