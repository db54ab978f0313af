"""MobileNetV3 and EfficientNet (V1 and V2) compute exactly torchvision's functions.

As in tests/test_equivalence_torchvision.py: torchvision's model (weights=None, fixed seed,
biases, batch-norm scales and running statistics randomised, see
conftest.torchvision_model), its weights copied onto the built archdsl module with
archdsl.load_weights, and both outputs compared in eval mode on the same input, at the
spec's input size (torchvision's crop size: 240 for efficientnet_b1 up to 600 for
efficientnet_b7, 384 and 480 for the V2s). The same forward pass of torchvision's model runs
under torch.utils.flop_counter, whose count must be exactly twice the analytic MACs.

The smallest member of each family runs in every test run (mobilenet_v3_small,
efficientnet_b0, efficientnet_v2_s: about 3 s on one thread); the others are marked slow
(all thirteen together: about 30 s on one thread, efficientnet_v2_l and efficientnet_b7 at
600x600 the longest at 5 s each on an idle machine).
"""

from __future__ import annotations

import gc

import pytest

import archdsl
from conftest import SPECS, assert_same_outputs, family_cases, torchvision_model

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision.models")

FAMILIES = (
    ("mobilenet_v3.arch", ("mobilenet_v3_small", "mobilenet_v3_large")),
    ("efficientnet.arch", tuple(f"efficientnet_b{i}" for i in range(8))),
    ("efficientnet.arch", ("efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l")),
)
CASES = family_cases(FAMILIES)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("file,name", CASES)
def test_same_outputs_as_torchvision(file, name):
    net = archdsl.compile(SPECS / file, name)
    diff = assert_same_outputs(net, torchvision_model(name))
    print(f"{name}: max abs diff {diff:g}")
    gc.collect()


@pytest.mark.parametrize("file,name", [("efficientnet.arch", "efficientnet_b3"), ("efficientnet.arch", "efficientnet_v2_s")],
                         ids=["efficientnet_b3", "efficientnet_v2_s"])
def test_stochastic_depth_rates_grow_as_torchvision(file, name):
    """0.2 * i / N for the i-th block of N, on exactly the residual blocks torchvision calls it on."""
    ours = archdsl.build(archdsl.compile(SPECS / file, name), init=False)
    theirs = torchvision_model(name)
    expected = [m.stochastic_depth.p for m in theirs.modules() if getattr(m, "use_res_connect", False)]
    got = [m.p for m in ours.modules() if type(m).__name__ == "StochasticDepth"]
    assert got == expected and len(got) > 0


@pytest.mark.parametrize("file,name", [("mobilenet_v3.arch", "mobilenet_v3_small"), ("efficientnet.arch", "efficientnet_b0")],
                         ids=["mobilenet_v3_small", "efficientnet_b0"])
def test_init_lines_initialise_as_torchvision(file, name):
    """The spec's `init` lines are torchvision's __init__: built with seed N, every tensor equals
    torchvision's model made after torch.manual_seed(N)."""
    from torchvision import models

    ours = archdsl.build(archdsl.compile(SPECS / file, name), seed=3)
    torch.manual_seed(3)
    theirs = models.get_model(name, weights=None)
    a, b = list(ours.state_dict().values()), list(theirs.state_dict().values())
    assert len(a) == len(b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
