"""The residual, dense and fire specs compute exactly torchvision's functions.

For each of torchvision's ResNet, DenseNet and SqueezeNet models: build it (weights=None,
fixed seed), randomise its biases and batch-norm statistics (torchvision sets them to 0
and 1, which would let a misplaced or dropped tensor go unnoticed), copy its weights into
the archdsl module with archdsl.load_weights, and compare both outputs on the same input.
The same forward pass of torchvision's model runs under torch.utils.flop_counter, whose
count must be exactly twice the analytic MACs (it counts 2 FLOPs per conv and linear
multiply-accumulate, and nothing else, the convention of figures.md).

The option-A shortcut kinds of the CIFAR ResNets have no torchvision counterpart; they are
compared with the tensor expression they stand for.
"""

from __future__ import annotations

import gc

import pytest

import archdsl
from conftest import SPECS, assert_same_outputs, torchvision_model

torch = pytest.importorskip("torch")
models = pytest.importorskip("torchvision.models")

#: slow: real torch work (equivalence with torchvision/timm, or inductor); the README's test
#: command still runs it
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

# the deepest and widest ones take a few seconds each on two cores
_SLOW = {"resnet101", "resnet152", "densenet169", "densenet201", "densenet161"}
CASES = [
    pytest.param(file, name, marks=[pytest.mark.slow] if name in _SLOW else [], id=name)
    for file, names in (
        ("resnet.arch", ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")),
        ("densenet.arch", ("densenet121", "densenet169", "densenet201", "densenet161")),
        ("squeezenet.arch", ("squeezenet1_0", "squeezenet1_1")),
    )
    for name in names
]


@pytest.mark.parametrize("file,name", CASES)
def test_same_outputs_as_torchvision(file, name):
    net = archdsl.compile(SPECS / file, name)
    assert_same_outputs(net, torchvision_model(name))
    gc.collect()


def test_option_a_shortcut_is_strided_slice_and_even_zero_padding():
    """resnet20's stage-2 shortcut is F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8)): the
    16 input channels in the middle of 32, zeros on either side (He et al. 2016, §3.3)."""
    net = archdsl.compile(SPECS / "resnet.arch", "resnet20")
    model = archdsl.build(net)
    unit = model.body.resnet_cifar1.layer2.basic1
    shortcut = unit.add1.branch2
    x = torch.randn(2, 16, 32, 32)
    want = torch.nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 8, 8))
    got = shortcut(x)
    assert got.shape == (2, 32, 16, 16)
    assert torch.equal(got, want)
    # odd sizes: a slice keeps ceil(n / 2) rows, and uneven padding puts the extra zero last
    odd = archdsl.build("network n { input 3x7x5; decimate 2; padc -> 6 }")
    y = torch.randn(1, 3, 7, 5)
    assert torch.equal(odd.eval()(y), torch.nn.functional.pad(y[:, :, ::2, ::2], (0, 0, 0, 0, 1, 2)))
    # parameter-free: every parameter of the unit belongs to its two convolutions and BNs
    assert sum(p.numel() for p in shortcut.parameters()) == 0
    assert sum(p.numel() for p in unit.parameters()) == (16 * 32 * 9 + 2 * 32) + (32 * 32 * 9 + 2 * 32)


def test_preact_projection_unit_reads_the_preactivated_input():
    """The first unit of a pre-activation stage applies BN-ReLU once, before the split
    (the authors' resnet-pre-act.lua): the unit equals add(f(a), proj(a)) with a = relu(bn(x))."""
    net = archdsl.compile(SPECS / "preact_resnet.arch", "preact_resnet164")
    model = archdsl.build(net).eval()
    unit = model.body.preact_resnet_cifar1.layer2.preact_bottleneck1
    names = [n for n, _ in unit.named_children()]
    assert names == ["bn1", "relu1", "add1"]
    x = torch.randn(2, 64, 32, 32)
    with torch.no_grad():
        torch.nn.init.uniform_(unit.bn1.weight, 0.5, 1.5)
        torch.nn.init.normal_(unit.bn1.bias)
        a = torch.relu(unit.bn1(x))
        want = unit.add1.branch1(a) + unit.add1.branch2(a)
        got = unit(x)
    assert got.shape == (2, 128, 16, 16)
    assert torch.allclose(got, want, atol=1e-6)
    # the stride is on the first 1x1 convolution, as in the authors' code
    assert unit.add1.branch1.conv1.stride == (2, 2)
    assert unit.add1.branch2.shortcut.stride == (2, 2)
