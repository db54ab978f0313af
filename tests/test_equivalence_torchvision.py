"""The later torchvision CNNs the language reaches compute exactly torchvision's functions:
ResNeXt, Wide ResNet, MobileNetV2, MNASNet and RegNetX.

For each: torchvision's model (weights=None, fixed seed, biases, batch-norm scales and
running statistics randomised, see conftest.torchvision_model), its weights copied onto
the built archdsl module with archdsl.load_weights, and both outputs compared in eval mode
on the same input. The same forward pass of torchvision's model runs under
torch.utils.flop_counter, whose count must be exactly twice the analytic MACs.

The smallest member of each family runs in every test run (the five: about 7 s on one
thread); the others are marked slow (all seventeen together: about 45 s on one thread,
wide_resnet101_2 the longest at 10 s).
"""

from __future__ import annotations

import gc

import pytest

import archdsl
from conftest import SPECS, assert_same_outputs, family_cases, torchvision_model

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision.models")

FAMILIES = (
    ("resnet.arch", ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d")),
    ("resnet.arch", ("wide_resnet50_2", "wide_resnet101_2")),
    ("mobilenet.arch", ("mobilenet_v2",)),
    ("mnasnet.arch", ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3")),
    ("regnet.arch", ("regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
                     "regnet_x_16gf", "regnet_x_32gf")),
)
CASES = family_cases(FAMILIES)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("file,name", CASES)
def test_same_outputs_as_torchvision(file, name):
    net = archdsl.compile(SPECS / file, name)
    diff = assert_same_outputs(net, torchvision_model(name))
    print(f"{name}: max abs diff {diff:g}")
    gc.collect()
