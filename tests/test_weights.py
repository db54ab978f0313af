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


# ---- the reference is left exactly as it was (issue 14, 3a)

def test_the_reference_keeps_its_mode_buffers_metadata_and_the_random_state():
    """torchvision's MNASNet refuses a state_dict without its `version` metadata, which a
    probe that restored the reference through state_dict()/load_state_dict() lost; the
    probe pass also runs the reference in training mode, which moves batch-norm running
    statistics, and draws dropout masks from the global generator."""
    models = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    theirs = _scramble(models.mnasnet0_5(weights=None), seed=3).eval()
    theirs.layers[1].train()  # a mixed mode, module by module, is kept as it is
    modes = [m.training for m in theirs.modules()]
    buffers = [b.clone() for b in theirs.buffers()]
    ours = archdsl.build(SPECS / "mnasnet.arch", "mnasnet0_5", init=False).to_empty(device="cpu")
    example = torch.randn(2, 3, 32, 32)
    rng = torch.get_rng_state()
    archdsl.load_weights(ours, theirs, example=example)
    assert torch.equal(torch.get_rng_state(), rng)  # dropout ran in training mode, on a forked generator
    assert [m.training for m in theirs.modules()] == modes
    assert all(torch.equal(a, b) for a, b in zip(theirs.buffers(), buffers))
    assert theirs.state_dict()._metadata[""]["version"] == 2  # MNASNet's own _version
    theirs.load_state_dict(theirs.state_dict())  # still loads: the metadata is intact
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), theirs.eval()(x))


# ---- a non-persistent buffer is no weight (3b)

def test_a_select_layer_is_not_paired_as_a_layer_with_weights():
    """`select` keeps its channel indices in a non-persistent buffer: no checkpoint holds
    it, and pairing it with the reference's next layer shifted every pair after it."""
    text = ("network n { input 6x8x8; concat { select 0,2,4; conv 3x3 p1 -> 4 | select 1,3,5; conv 3x3 p1 -> 4 }"
            "; conv 1x1 -> 2 }")
    ours = archdsl.build(text)
    assert any(True for _ in ours.buffers()) and not ours.state_dict().keys() & {"index"}

    class Ref(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(8, 2, 1)

        def forward(self, x):
            return self.c(torch.cat([self.a(x[:, 0::2]), self.b(x[:, 1::2])], 1))

    ref = _scramble(Ref(), seed=4)
    archdsl.load_weights(ours, ref)
    x = torch.randn(2, 6, 8, 8)
    with torch.no_grad():
        assert torch.equal(ours(x), ref(x))


# ---- pairs are compared by hyperparameters too (3c)

def test_equal_shapes_with_another_stride_padding_or_groups_are_a_mismatch():
    """A convolution's stride, padding, dilation and groups (groups=1 with in = out / groups
    channels has the weight shape of groups=g with g times the input), batch norm's eps and
    momentum change no tensor shape: each is compared, and the message names both layers."""
    def ref(conv=None, bn=None):
        return nn.Sequential(conv or nn.Conv2d(4, 8, 3, padding=1, bias=False), bn or nn.BatchNorm2d(8),
                             nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False))

    spec = "network n { input 4x16x16; norm bn; act relu; conv 3x3 p1 -> 8; conv 3x3 p1 g2 -> 8 noact nonorm nobias }"
    archdsl.load_weights(archdsl.build(spec), ref())  # the same: no error
    cases = [
        (ref(conv=nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)),
         r"layer #1 differs in stride: archdsl 'body\.conv1\.conv' has stride=\(1, 1\), "
         r"the reference's '0' has stride=\(2, 2\)"),
        (ref(conv=nn.Conv2d(4, 8, 3, padding=2, dilation=2, bias=False)),
         r"layer #1 differs in padding: archdsl 'body\.conv1\.conv' has padding=\(1, 1\), the reference's '0'"),
        (ref(bn=nn.BatchNorm2d(8, eps=1e-3)), r"layer #2 differs in eps: archdsl 'body\.conv1\.bn' has eps=1e-05, "
                                              r"the reference's '1' has eps=0\.001"),
        (ref(bn=nn.BatchNorm2d(8, momentum=0.01)), r"layer #2 differs in momentum"),
    ]
    for reference, message in cases:
        with pytest.raises(WeightMismatch, match=message):
            archdsl.load_weights(archdsl.build(spec), reference)
    # groups: a 4-group conv on 16 channels holds the weight shape of a dense one on 4 of them
    dense = archdsl.build("network n { input 16x8x8; select 0,1,2,3; conv 3x3 -> 8 }")
    grouped = nn.Sequential(nn.Conv2d(16, 8, 3, groups=4))
    assert grouped[0].weight.shape == dense.body.conv1.weight.shape
    with pytest.raises(WeightMismatch, match=r"layer #1 differs in groups: archdsl 'body\.conv1' has groups=1, "
                                             r"the reference's '0' has groups=4"):
        archdsl.load_weights(dense, grouped)


# ---- checkpoints: a state_dict or a file in the reference's key layout (deliverable 5)

def _tv(name: str):
    pytest.importorskip("torchvision.models")
    from conftest import torchvision_model

    return torchvision_model(name)


def test_loads_a_torchvision_state_dict_and_a_checkpoint_file(tmp_path):
    theirs = _tv("mnasnet0_5")
    path = tmp_path / "mnasnet0_5.pth"
    torch.save(theirs.state_dict(), path)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = theirs(x)
    for source in (theirs.state_dict(), path, str(path), {"model": theirs.state_dict(), "epoch": 3}):
        if isinstance(source, dict) and "model" in source:
            torch.save(source, tmp_path / "training.pth")
            source = tmp_path / "training.pth"
        ours = archdsl.build(SPECS / "mnasnet.arch", "mnasnet0_5", init=False).to_empty(device="cpu")
        assert archdsl.load_weights(ours, source) is ours
        with torch.no_grad():
            assert torch.equal(ours.eval()(x), want), source
    # a DataParallel checkpoint's "module." prefix
    torch.save({f"module.{k}": v for k, v in theirs.state_dict().items()}, tmp_path / "dp.pth")
    ours = archdsl.build(SPECS / "mnasnet.arch", "mnasnet0_5", init=False).to_empty(device="cpu")
    archdsl.load_weights(ours, tmp_path / "dp.pth")
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), want)


def test_a_checkpoint_is_read_without_unpickling_objects(tmp_path):
    """torch.load(weights_only=True): a pickled object (here a module) is refused."""
    path = tmp_path / "whole_model.pth"
    torch.save(nn.Linear(2, 2), path)
    from archdsl.weights import CheckpointError

    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint of tensors: Weights only load failed"):
        archdsl.load_weights(archdsl.build("network n { input 2; fc 2 }"), path)
    torch.save({"epoch": 3}, path)
    with pytest.raises(CheckpointError, match="holds no tensors"):
        archdsl.load_weights(archdsl.build("network n { input 2; fc 2 }"), path)


def test_a_state_dict_mismatch_names_both_layers():
    theirs = _tv("mnasnet0_5").state_dict()
    ours = archdsl.build(SPECS / "mnasnet.arch", "mnasnet0_75", init=False).to_empty(device="cpu")
    with pytest.raises(WeightMismatch, match=r"layer #1: archdsl 'body\.mnasnet_b11\.conv1\.conv\.weight' has shape "
                                             r"\(24, 3, 3, 3\), the reference's 'layers\.0\.weight' has shape "
                                             r"\(16, 3, 3, 3\)"):
        archdsl.load_weights(ours, theirs)


def test_a_state_dict_registered_out_of_call_order_pairs_through_its_layout():
    """A state_dict's keys follow the order in which its model registered its layers
    (Reordered: classifier first). Paired in key order the kinds cannot be told apart, and
    the shapes differ; with the model as `layout=` the pairs follow its call order."""
    reference = _scramble(Reordered(), seed=6)
    ours = archdsl.build(SMALL)
    with pytest.raises(WeightMismatch, match=r"layer #1: archdsl 'body\.conv1\.conv' holds \['weight'\], "
                                             r"the reference's 'classifier' holds \['bias', 'weight'\]"):
        archdsl.load_weights(ours, reference.state_dict())
    archdsl.load_weights(ours, reference.state_dict(), layout=Reordered())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), reference.eval()(x))
    # and back: archdsl's weights under the reference's keys, in its key order
    converted = archdsl.convert_state_dict(ours, Reordered())
    assert list(converted) == list(reference.state_dict())
    assert all(torch.equal(converted[k], v) for k, v in reference.state_dict().items())
    again = archdsl.convert_state_dict(ours.state_dict(), reference.state_dict(), layout=Reordered(),
                                       example=torch.randn(2, 3, 16, 16))
    assert list(again) == list(converted) and all(torch.equal(again[k], converted[k]) for k in converted)


def test_convert_state_dict_writes_archdsl_weights_in_torchvision_layout(tmp_path):
    """archdsl's weights as a torchvision checkpoint: torchvision's model loads the file
    (MNASNet insists on its `version` metadata) and computes what the archdsl module does."""
    pytest.importorskip("torchvision.models")
    from torchvision import models

    torch.manual_seed(7)
    ours = _scramble(archdsl.build(SPECS / "mnasnet.arch", "mnasnet0_5"), seed=8).eval()
    layout = models.mnasnet0_5(weights=None)
    converted = archdsl.convert_state_dict(ours, layout)
    assert list(converted) == list(layout.state_dict())
    assert converted._metadata[""]["version"] == 2
    path = tmp_path / "from_archdsl.pth"
    torch.save(converted, path)
    fresh = models.mnasnet0_5(weights=None)
    fresh.load_state_dict(torch.load(path, weights_only=True))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), ours(x))
    # the layout may be a state_dict (or a file) as well; the source an archdsl state_dict
    again = archdsl.convert_state_dict(ours.state_dict(), path)
    assert list(again) == list(converted) and all(torch.equal(again[k], converted[k]) for k in converted)
    assert again._metadata[""]["version"] == 2
    # and back: archdsl loads what it wrote
    back = archdsl.build(SPECS / "mnasnet.arch", "mnasnet0_5", init=False).to_empty(device="cpu")
    archdsl.load_weights(back, path)
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(), ours.state_dict().values()))


def test_build_command_loads_a_checkpoint(tmp_path):
    """`archdsl build NET --weights FILE`: a torchvision checkpoint loads; one of another
    network is a mismatch (exit 1, naming both layers); a pickled object is refused unread
    (exit 2); so is a file that is no checkpoint."""
    theirs = _tv("mnasnet0_5")
    path = tmp_path / "mnasnet0_5.pth"
    torch.save(theirs.state_dict(), path)
    spec = str(SPECS / "mnasnet.arch")

    def build(*args):
        return subprocess.run([sys.executable, "-m", "archdsl.cli", "build", spec, *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    ok = build("-n", "mnasnet0_5", "--weights", str(path))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"weights: 314 tensors from {path}\nmnasnet0_5: output (1, 1000) on cpu\n")
    assert "build and load" in ok.stdout
    wrong = build("-n", "mnasnet0_75", "--weights", str(path))
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr
    assert (f"Error: the weights in {path} do not fit mnasnet0_75: layer #1: archdsl "
            "'body.mnasnet_b11.conv1.conv.weight' has shape (24, 3, 3, 3), the reference's 'layers.0.weight' "
            "has shape (16, 3, 3, 3)") in wrong.stderr
    torch.save(nn.Linear(2, 2), tmp_path / "object.pth")
    (tmp_path / "junk.pth").write_text("not a checkpoint\n")
    spec = str(tmp_path / "tiny.arch")
    (tmp_path / "tiny.arch").write_text("network tiny { input 2; fc 2 }\n")
    for name in ("object.pth", "junk.pth"):
        bad = build("--weights", str(tmp_path / name))
        assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stderr
        assert f"--weights: {tmp_path / name} cannot be read as a checkpoint of tensors" in bad.stderr


# ---- ConvNeXt's block: a container's own tensor and channels-last nn.Linear layers

CNBLOCK = """
network cnblock(dim=8) {
  input 8x7x7
  residual {
    conv 7x7 p3 groups=dim -> dim
    layernorm eps=1e-6
    conv 1x1 -> 4 * dim gelu
    conv 1x1 -> dim
    layerscale 1e-6
    droppath p=0.1
  }
}
"""


def _cnblock():
    convnext = pytest.importorskip("torchvision.models.convnext")
    torch.manual_seed(3)
    return _scramble(convnext.CNBlock(8, layer_scale=1e-6, stochastic_depth_prob=0.1), seed=9).eval()


def test_convnext_block_pairs_with_torchvisions_cnblock():
    """torchvision's CNBlock holds `layer_scale` itself and applies it to its block's output:
    it pairs with archdsl's `layerscale` after the block's layers, where the forward pass
    first reads it; its nn.Linear layers run on channels-last tensors and pair with
    archdsl's 1x1 convolutions, the (out, in) weight copied as (out, in, 1, 1)."""
    reference = _cnblock()
    ours = archdsl.build(CNBLOCK, init=False).to_empty(device="cpu")
    archdsl.load_weights(ours, reference)
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), reference(x), atol=1e-5, rtol=1e-5)
    scale = ours.body.residual1.branch1.layerscale1.layer_scale
    assert torch.equal(scale, reference.layer_scale)
    assert torch.equal(ours.body.residual1.branch1.conv2.conv.weight, reference.block[3].weight[:, :, None, None])
    # and back, in CNBlock's layout: the Linear weights are (out, in) again
    converted = archdsl.convert_state_dict(ours, reference)
    assert list(converted) == list(reference.state_dict())
    assert converted["block.3.weight"].shape == (32, 8)
    assert all(torch.equal(converted[k], v) for k, v in reference.state_dict().items())
    # a state_dict of it pairs through its model as the layout (its keys put layer_scale first)
    assert list(reference.state_dict())[0] == "layer_scale"
    again = archdsl.build(CNBLOCK, init=False).to_empty(device="cpu")
    archdsl.load_weights(again, reference.state_dict(), layout=_cnblock())
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), ours.state_dict().values()))


def test_a_linear_pairs_with_a_1x1_convolution_only_on_channels_last_tensors():
    """An nn.Linear on flat features is an fc layer: a 1x1 convolution is another kind. On
    channels-last tensors it pairs with a plain 1x1 convolution only: not a strided one."""
    flat = nn.Sequential(nn.Flatten(), nn.Linear(4, 6))
    conv = archdsl.build("network n { input 4x1x1; conv 1x1 -> 6 }")
    with pytest.raises(WeightMismatch, match=r"layer #1 differs in kind: archdsl 'body\.conv1' is Conv2d, "
                                             r"the reference's '1' is Linear"):
        archdsl.load_weights(conv, flat)
    misc = pytest.importorskip("torchvision.ops.misc")
    channels_last = nn.Sequential(misc.Permute([0, 2, 3, 1]), nn.Linear(4, 6), misc.Permute([0, 3, 1, 2]))
    archdsl.load_weights(archdsl.build("network n { input 4x5x5; conv 1x1 -> 6 }"), channels_last)
    with pytest.raises(WeightMismatch, match=r"layer #1 differs in kind: archdsl 'body\.conv1' is Conv2d, "
                                             r"the reference's '1' is Linear"):
        archdsl.load_weights(archdsl.build("network n { input 4x5x5; conv 1x1/2 -> 6 }"), channels_last,
                             example=torch.randn(2, 4, 5, 5))
