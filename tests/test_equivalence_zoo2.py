"""RegNetY, ShuffleNetV2 and ConvNeXt compute exactly torchvision's functions.

As in tests/test_equivalence_torchvision.py: torchvision's model (weights=None, fixed seed,
biases, batch-norm scales and running statistics randomised, see conftest.torchvision_model;
here also ConvNeXt's layer scales and layer-norm scales, which torchvision starts at 1e-6
and 1, so that a scale left behind by the weight transfer shows), its weights copied onto
the built archdsl module with archdsl.load_weights, and both outputs compared in eval mode
on the same input. The same forward pass of torchvision's model runs under
torch.utils.flop_counter, whose count must be exactly twice the analytic MACs.

The smallest member of each family runs in every test run (the three: about 3 s on one
thread); the others are marked slow (all sixteen together: about 45 s on one thread).
regnet_y_128gf (644M parameters) is the longest: about 18 s, and 9 GB of memory at its
peak (both models and a copy of the reference's state_dict). The smallest of each family
also builds, from a seed, exactly torchvision's initial weights.
"""

from __future__ import annotations

import gc

import pytest

import archdsl
from conftest import SPECS, assert_same_outputs, family_cases, torchvision_model

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision.models")

FAMILIES = (
    ("convnext.arch", ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")),
    ("regnet.arch", ("regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
                     "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf")),
    ("shufflenet.arch", ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")),
)
CASES = family_cases(FAMILIES)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def reference(name: str):
    model = torchvision_model(name)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            scale = getattr(m, "layer_scale", None)
            if isinstance(scale, torch.nn.Parameter):
                scale.copy_(torch.rand(scale.shape, generator=g) * 0.2 + 0.1)
    return model


@pytest.mark.parametrize("file,name", CASES)
def test_same_outputs_as_torchvision(file, name):
    net = archdsl.compile(SPECS / file, name)
    diff = assert_same_outputs(net, reference(name), probe=64)
    print(f"{name}: max abs diff {diff:g}")
    gc.collect()


@pytest.mark.parametrize("file,name", [("regnet.arch", "regnet_y_400mf"), ("shufflenet.arch", "shufflenet_v2_x0_5"),
                                       ("convnext.arch", "convnext_tiny")])
def test_seeded_build_is_torchvisions_initialisation(file, name):
    """The specs' `init` lines are torchvision's: built with seed N, every tensor equals the
    one torchvision's model holds when made after torch.manual_seed(N) (ShuffleNetV2 has no
    `init`: torch's defaults, as torchvision keeps)."""
    from torchvision import models

    ours = archdsl.build(archdsl.compile(SPECS / file, name), seed=5)
    torch.manual_seed(5)
    theirs = models.get_model(name, weights=None)
    converted = archdsl.convert_state_dict(ours, theirs)
    state = theirs.state_dict()
    assert list(converted) == list(state)
    assert all(torch.equal(converted[k], v) for k, v in state.items())
