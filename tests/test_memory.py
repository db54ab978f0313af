"""The training-memory estimate (archdsl.memory) against torch itself.

The saved activations: the analytic bytes equal the bytes of the distinct storages that
autograd packs (torch.autograd.graph.saved_tensors_hooks) in one training-mode forward pass
of the built module, parameters and buffers left out, at two batch sizes (so both the
per-sample part and the fixed part are pinned): on every spec in specs/, and on every layer
kind in a small network, run in place and not. The modules are built on the meta device:
autograd's choice of what to save does not depend on the values, and nothing is allocated.
The optimizer state and the gradients: equal to what torch.optim and backward allocate.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

import archdsl
from archdsl.layers.base import REGISTRY, kinds
from archdsl.memory import OPTIMIZER_SLOTS, saved_activations
from conftest import ROOT, spec_ids, spec_networks

torch = pytest.importorskip("torch")
from archdsl.lower_torch import lower  # noqa: E402

CASES = spec_networks()


def autograd_saved_bytes(model, x) -> int:
    """Bytes of the distinct storages autograd keeps for backward, parameters and buffers
    left out (a view and its base, or a tensor packed by two ops, count once)."""
    own = {t.untyped_storage()._cdata for t in (*model.parameters(), *model.buffers())}
    seen: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s._cdata not in own:
            seen.setdefault(s._cdata, s.nbytes())
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x)
    return sum(seen.values())


def _check(net):
    model = lower(net, init=False)  # meta tensors
    per_sample, fixed, per_node = saved_activations(net)
    assert sum(per_node.values()) == per_sample
    for batch in (2, 3):
        x = torch.empty(batch, *net.input_shape.dims, device="meta")
        assert autograd_saved_bytes(model, x) == batch * per_sample + fixed, f"batch {batch}"
    return per_sample


@pytest.mark.slow
@pytest.mark.parametrize("path,name", CASES, ids=spec_ids(CASES))
def test_saved_activations_equal_what_autograd_keeps(path, name):
    _check(archdsl.compile(path, name))


#: a statement per kind whose example needs a context (or has none)
STATEMENTS = {"fc": "fc 10", "rbf": "flatten; rbf 10", "spp": "spp 4,2,1", "softmax": "flatten; softmax",
              "mlpconv": "mlpconv 16,16", "concat": "concat { conv 1x1 -> 16 | identity }",
              "add": "add { conv 1x1 -> 16 | identity }", "residual": "residual scale=0.2 { conv 1x1 -> 16 }",
              "mul": "mul { identity | gap; conv 1x1 -> 4 relu; conv 1x1 -> 16 sigmoid }",
              "padc": "padc -> 32", "select": "select 0,1,2", "conv": "conv 3x3 p1 -> 16",
              "convt": "convt 4x4/2 p1 -> 16", "lecun_tanh": "lecun_tanh", "flatten": "flatten; fc 4",
              "adaptive_avgpool": "adaptive_avgpool 3x3", "adaptive_maxpool": "adaptive_maxpool 3x3"}
KINDS = sorted(k.name for k in kinds())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("context", ["fresh", "shared", "attached", "after_bn"])
def test_every_kind_keeps_what_autograd_keeps(kind, context):
    """Each kind after a fresh conv output (an activation then runs in place), after a
    tensor an aux head reads too (it cannot), and, for activations, attached to a conv and
    to the batch norm after a conv."""
    stmt = STATEMENTS.get(kind, REGISTRY[kind].example)
    if context in ("attached", "after_bn"):
        if not REGISTRY[kind].is_activation or " " in stmt:
            pytest.skip("an activation written by its name alone attaches to a layer")
        norm = "norm bn; " if context == "after_bn" else ""
        body = f"{norm}conv 1x1 -> 16 {stmt}; conv 1x1 -> 8"
    elif context == "shared":
        body = f"conv 1x1 -> 16; aux a {{ flatten; fc 2 }}; {stmt}"
    else:
        body = f"conv 1x1 -> 16; {stmt}"
    net = archdsl.compile(f"network t {{ input 16x8x8; {body} }}")
    assert _check(net) > 0


def test_three_branch_products_keep_their_partial_products():
    _check(archdsl.compile("network t { input 4x6x6; conv 1x1 -> 8; mul { identity | relu | conv 1x1 -> 8 } }"))


def test_the_input_needs_no_gradient_so_ops_on_it_alone_keep_nothing():
    net = archdsl.compile("network t { input 4x6x6; maxpool 2/2; relu; conv 1x1 -> 8 }")
    _check(net)
    _, _, per_node = saved_activations(net)
    # the conv's input only: the pool's output, which the ReLU overwrote in place; neither
    # the pool nor the ReLU is in the autograd graph, so neither keeps its own
    assert {n: per_node.get(n, 0) for n in ("input", "maxpool1", "relu1", "conv1")} == {
        "input": 0, "maxpool1": 4 * 4 * 3 * 3, "relu1": 0, "conv1": 0}


def test_an_in_place_kind_has_a_module_that_can_run_in_place():
    for kind in kinds():
        if not kind.is_activation or kind.name == "lecun_tanh" or "{" in kind.example:
            continue
        net = archdsl.compile(f"network t {{ input 4x4x4; conv 1x1 -> 4; {kind.example} }}")
        module = lower(net, init=False).body[-1]
        assert isinstance(getattr(module, "inplace", None), bool) == kind.inplace, kind.name
        assert module.inplace is kind.inplace if kind.inplace else True, kind.name


OPTIMIZERS = [("sgd", {}, torch.optim.SGD), ("sgd", {"momentum": 0.9}, torch.optim.SGD),
              ("adam", {}, torch.optim.Adam), ("adam", {"amsgrad": True}, torch.optim.Adam),
              ("adamw", {}, torch.optim.AdamW), ("rmsprop", {}, torch.optim.RMSprop),
              ("rmsprop", {"momentum": 0.9, "centered": True}, torch.optim.RMSprop)]


@pytest.mark.parametrize("name,hyper,cls", OPTIMIZERS, ids=[f"{n}{h}" for n, h, _ in OPTIMIZERS])
def test_gradients_and_optimizer_state_equal_torchs(name, hyper, cls):
    net = archdsl.compile(ROOT / "specs/lenet5.arch", "lenet5_modern")
    model = lower(net, seed=0).train()
    opt = cls(model.parameters(), lr=1e-3, **hyper)
    model(torch.randn(2, *net.input_shape.dims)).sum().backward()
    opt.step()
    memory = net.training_memory(batch=2, optimizer=name, hyper=hyper)
    assert memory.slots == OPTIMIZER_SLOTS[name](hyper)
    assert memory.gradients == sum(p.grad.nbytes for p in model.parameters())
    state = sum(t.nbytes for s in opt.state.values() for k, t in s.items() if k != "step" and torch.is_tensor(t))
    assert memory.optimizer_state == state
    assert memory.params == sum(p.nbytes for p in model.parameters())


def test_the_recipe_sets_the_batch_and_the_optimizer_and_the_command_line_overrides_them():
    net = archdsl.compile(ROOT / "specs/nin.arch", "nin")  # train { optimizer sgd momentum=0.9; batch 128 }
    m = net.training_memory()
    assert (m.batch, m.optimizer, m.slots) == (128, "sgd with momentum", 1)
    assert m.total == m.saved + 3 * m.params + m.buffers and m.saved == 128 * m.saved_per_sample + m.saved_fixed
    run = subprocess.run([sys.executable, "-m", "archdsl", "compile", "specs/nin.arch", "-n", "nin", "--batch", "256",
                          "--optimizer", "adam"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    adam = net.training_memory(256, "adam")
    lines = run.stdout.splitlines()
    at = lines.index(next(line for line in lines if line.startswith("training memory")))
    assert lines[at].startswith("training memory (batch 256, adam): ")
    assert lines[at + 1] == (f"  saved activations {adam.saved / 2**20:,.2f} MiB ({adam.saved_per_sample / 2**20:,.2f} "
                             f"MiB per sample), params 3.69 MiB, gradients 3.69 MiB, optimizer state 7.38 MiB")
    plain = archdsl.compile("network t { input 3x8x8; conv 3x3 -> 4 }").training_memory()
    assert (plain.batch, plain.optimizer, plain.optimizer_state) == (1, "sgd", 0)
