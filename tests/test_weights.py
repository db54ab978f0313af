"""archdsl.load_weights: what it copies, how it pairs layers, how it fails; and the aux
training example that relies on the aux contract."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

import archdsl
from conftest import ROOT, SPECS

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from archdsl.lower_torch import WeightMismatch  # noqa: E402  (after the torch importorskip)

# conv-bn-relu, an aux head, conv-bn-relu, global pool, fc: every kind of state (weights,
# biases, BN gamma/beta and the running-statistics buffers) and an aux head
SMALL = """
network small(classes=5) {
  input 3x16x16
  act relu
  norm bn
  conv1: conv 3x3 p1 -> 8
  aux side { gap; fc classes noact }
  conv2: conv 3x3/2 p1 -> 16
  gap
  fc: fc classes noact
}
"""


def _scramble(model: nn.Module, seed: int) -> nn.Module:
    """Random values in every tensor: BN gamma and beta start at 1 and 0, the running
    statistics at 0 and 1, and a tensor left at its initial value would hide a missed copy."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 100, (1,), generator=g)))
    return model


def test_copies_parameters_and_buffers():
    torch.manual_seed(0)
    reference = _scramble(archdsl.build(SMALL), seed=1)
    torch.manual_seed(1)
    ours = archdsl.build(SMALL)
    ref_state = {k: v.clone() for k, v in reference.state_dict().items()}
    buffers = {k for k, _ in reference.named_buffers()}
    assert {"body.conv1.bn.running_mean", "body.conv1.bn.running_var", "body.conv1.bn.num_batches_tracked"} <= buffers
    # before: every tensor differs, so equality after the copy means something
    assert all(not torch.equal(ours.state_dict()[k], v) for k, v in ref_state.items())

    archdsl.load_weights(ours, reference)

    for key, value in ref_state.items():
        assert torch.equal(ours.state_dict()[key], value), key
    # the pairing pass runs both models in training mode; it leaves the reference as it was
    for key, value in reference.state_dict().items():
        assert torch.equal(value, ref_state[key]), f"the reference's {key} changed"
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), reference.eval()(x))


class Reordered(nn.Module):
    """SMALL written by hand, its layers registered in an order unrelated to the order in
    which forward calls them (classifier first, then the aux head, then the trunk
    backwards), as torchvision's GoogLeNet registers its aux heads after inception5b."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.classifier = nn.Linear(16, classes)
        self.aux_classifier = nn.Linear(8, classes)
        self.bn_b = nn.BatchNorm2d(16)
        self.conv_b = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(8)
        self.conv_a = nn.Conv2d(3, 8, 3, padding=1, bias=False)

    def forward(self, x):
        x = F.relu(self.bn_a(self.conv_a(x)))
        aux = self.aux_classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)) if self.training else None
        x = F.relu(self.bn_b(self.conv_b(x)))
        y = self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return (y, aux) if self.training else y


class Longer(Reordered):
    """Reordered with one more layer after the classifier."""

    def __init__(self):
        super().__init__()
        self.extra = nn.Linear(5, 5)

    def forward(self, x):
        y = super().forward(x)
        return self.extra(y[0] if self.training else y)


def _owners(model: nn.Module) -> list[str]:
    return [type(m).__name__ for m in model.modules() if list(m.parameters(recurse=False))]


def test_pairs_layers_in_call_order_not_registration_order():
    torch.manual_seed(0)
    reference = _scramble(Reordered(), seed=2)
    ours = archdsl.build(SMALL)
    # pairing by registration order would put a Linear against a Conv2d
    assert _owners(reference) != _owners(ours)
    archdsl.load_weights(ours, reference)
    assert torch.equal(ours.state_dict()["body.conv1.conv.weight"], reference.conv_a.weight)
    assert torch.equal(ours.state_dict()["body.side.fc1.bias"], reference.aux_classifier.bias)
    assert torch.equal(ours.state_dict()["body.conv2.bn.running_var"], reference.bn_b.running_var)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), reference.eval()(x), atol=1e-6)
        (main, aux), (ref_main, ref_aux) = ours.train()(x), reference.train()(x)
    assert torch.allclose(main, ref_main, atol=1e-6)
    assert torch.allclose(aux["side"], ref_aux, atol=1e-6)


def test_mismatch_names_the_first_layer_that_differs():
    """The paper's GoogLeNet does not take torchvision's weights: its conv1 has a bias and
    no batch norm, torchvision's conv1 the opposite."""
    models = pytest.importorskip("torchvision.models")
    ours = archdsl.build(SPECS / "googlenet.arch", "googlenet", init=False).to_empty(device="cpu")
    theirs = models.googlenet(weights=None, aux_logits=True, init_weights=False)
    with pytest.raises(WeightMismatch) as err:
        archdsl.load_weights(ours, theirs)
    assert str(err.value) == ("layer #1: archdsl 'body.conv1.conv' holds ['bias', 'weight'], "
                              "the reference's 'conv1.conv' holds ['weight']")


def test_mismatch_names_the_tensor_whose_shape_differs():
    """torchvision's layout with the paper's 5x5 kernels: the first difference is the
    "5x5" convolution of inception3a: layer #15 in call order, after the convolutions and
    BNs of conv1-conv3, 3a's branch 1, branch 2's two and branch 3's 1x1 reduce (2 x 7)."""
    models = pytest.importorskip("torchvision.models")
    text = (SPECS / "googlenet.arch").read_text().replace(", k5=3)", ")")
    ours = archdsl.build(archdsl.compile(text, "googlenet_torchvision"), init=False).to_empty(device="cpu")
    theirs = models.googlenet(weights=None, aux_logits=True, init_weights=False)
    with pytest.raises(WeightMismatch) as err:
        archdsl.load_weights(ours, theirs, example=torch.randn(2, 3, 64, 64))
    assert str(err.value) == (
        "layer #15: archdsl 'body.inception3a.concat1.branch3.conv2.conv.weight' has shape (32, 16, 5, 5), "
        "the reference's 'inception3a.branch3.1.conv.weight' has shape (32, 16, 3, 3)")


def test_mismatch_in_kind_and_in_layer_count():
    ours = archdsl.build(SMALL)
    other_norm = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.GroupNorm(2, 8))
    with pytest.raises(WeightMismatch, match=r"layer #2 differs in kind: archdsl 'body\.conv1\.bn' is "
                                             r"BatchNorm2d, the reference's '1' is GroupNorm"):
        archdsl.load_weights(ours, other_norm)
    with pytest.raises(WeightMismatch, match=r"archdsl has 6 layers with weights, the reference 7; "
                                             r"the first unmatched is the reference's 'extra'"):
        archdsl.load_weights(ours, Longer())


def test_train_aux_step_example(tmp_path):
    """examples/train_aux_step.py: one SGD step on main + 0.3 x (aux1 + aux2), small."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_aux_step.py"), "--batch", "2", "--input", "3x64x64",
         "--classes", "10", "--steps", "2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout
    # 13,004,888 with 1000 classes; with 10: the main fc and both aux fc2 shrink by 990 x 1025
    assert f"googlenet_torchvision: {13_004_888 - 3 * 990 * 1025:,} parameters" in out
    assert "eval mode:     model(x) -> tensor (2, 10)" in out
    assert ("training mode: model(x) -> (tensor (2, 10), {'aux1': tensor (2, 10), 'aux2': tensor (2, 10)})"
            in out)
    steps = re.findall(r"step (\d): loss ([\d.]+) = main ([\d.]+) \+ 0\.3 x \(aux1 ([\d.]+)  aux2 ([\d.]+)\)", out)
    assert [s[0] for s in steps] == ["1", "2"]
    for _, total, main, aux1, aux2 in steps:
        assert float(total) == pytest.approx(float(main) + 0.3 * (float(aux1) + float(aux2)), abs=2e-4)
    # conv, its BN (gamma, beta), fc1 (weight, bias), fc2 (weight, bias): 7 tensors per head
    assert "aux parameters with a gradient: aux1 7, aux2 7" in out
