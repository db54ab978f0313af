"""The classic specs that torchvision also ships compute exactly torchvision's function:
after copying torchvision's weights with archdsl.load_weights, both give the same output
for the same input.

Before the transfer every bias and every batch-norm statistic of the torchvision model is
randomised: torchvision initialises them to 0 (biases, BN beta, running mean) and 1 (BN
gamma, running variance), which would let a misplaced or dropped tensor go unnoticed.
"""

from __future__ import annotations

import gc

import pytest

import archdsl
from conftest import SPECS, torchvision_model

#: slow: real torch work (equivalence with torchvision/timm, or inductor); the README's test
#: command still runs it
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
models = pytest.importorskip("torchvision.models")

# the VGGs hold 130M+ parameters each: about 4 s apiece on two cores, marked slow
CASES = [pytest.param("alexnet.arch", "alexnet_torchvision", "alexnet", id="alexnet_torchvision")] + [
    pytest.param("vgg.arch", name, name, marks=pytest.mark.slow, id=name)
    for name in ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
]


@pytest.mark.parametrize("file,name,tv_name", CASES)
def test_same_outputs_as_torchvision(file, name, tv_name):
    theirs = torchvision_model(tv_name)
    # ours is allocated without initialisation (meta, then uninitialised memory): skipping
    # the init of 130M+ weights keeps the test fast, and a tensor that load_weights failed
    # to copy would hold garbage and show up in the outputs
    ours = archdsl.build(SPECS / file, name, init=False).to_empty(device="cpu")
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    # layers are paired by one small training-mode pass (the adaptive pools accept 64x64)
    archdsl.load_weights(ours, theirs, example=torch.randn(2, 3, 64, 64))
    ours.eval()
    torch.manual_seed(2)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert got.shape == expected.shape == (1, 1000)
    peak = expected.abs().max().item()
    assert peak > 1e-2  # the outputs are not degenerate, so the tolerance below means something
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4 * max(1.0, peak)
    assert diff <= 1e-4 * peak
    del theirs, ours, expected, got
    gc.collect()


def test_load_weights_names_the_first_mismatch():
    """VGG-11 (A) weights do not fit VGG-13 (B): the second conv of B's first stage has 64
    output channels where A's second conv (the first of stage 2) has 128."""
    theirs = models.vgg11(weights=None)
    ours = archdsl.build(SPECS / "vgg.arch", "vgg13")
    with pytest.raises(ValueError) as err:
        archdsl.load_weights(ours, theirs, example=torch.randn(2, 3, 64, 64))
    message = str(err.value)
    assert "layer #2" in message
    assert "'body.features.stage1.conv2.conv.weight' has shape (64, 64, 3, 3)" in message
    assert "'features.3.weight' has shape (128, 64, 3, 3)" in message
    del theirs, ours
    gc.collect()
