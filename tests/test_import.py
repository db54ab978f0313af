"""archdsl import: a torchvision module in, a spec out that counts and computes what it does.

For each model: import it (traced with torch.fx at a small input), compile the spec, and
check its params against the module's, its MACs against torch's FlopCounterMode (twice
the MACs, as figures.md counts), its output shape, and, after archdsl.load_weights of the
module onto archdsl.build(spec) (built uninitialised: a tensor left uncopied holds garbage),
equal outputs. The biases and batch-norm statistics are randomised (conftest.torchvision_model).
ARCHDSL_ALL_MODELS=1 adds the deeper and wider members of each family.
"""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys

import pytest

import archdsl
from conftest import ROOT, torchvision_model

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from archdsl.trace_torch import ImportFailure  # noqa: E402

#: one or two of every family of torchvision's CNNs the kinds cover, at small inputs
MODELS = [("alexnet", "3x64x64"), ("vgg11_bn", "3x32x32"), ("resnet18", "3x64x64"), ("resnet50", "3x64x64"),
          ("resnext50_32x4d", "3x64x64"), ("wide_resnet50_2", "3x64x64"), ("googlenet", "3x64x64"),
          ("inception_v3", "3x299x299"), ("densenet121", "3x64x64"), ("squeezenet1_0", "3x64x64"),
          ("squeezenet1_1", "3x64x64"), ("mobilenet_v2", "3x64x64"), ("mnasnet0_5", "3x64x64"),
          ("regnet_x_400mf", "3x64x64"), ("mobilenet_v3_small", "3x64x64"), ("mobilenet_v3_large", "3x64x64"),
          ("efficientnet_b0", "3x64x64"), ("efficientnet_v2_s", "3x64x64"), ("shufflenet_v2_x0_5", "3x64x64"),
          ("shufflenet_v2_x1_0", "3x64x64"), ("regnet_y_400mf", "3x64x64"), ("convnext_tiny", "3x64x64")]
MORE = [("vgg11", "3x32x32"), ("vgg13", "3x32x32"), ("vgg16", "3x32x32"), ("vgg19", "3x32x32"),
        ("vgg13_bn", "3x32x32"), ("vgg16_bn", "3x32x32"), ("vgg19_bn", "3x32x32"), ("resnet34", "3x64x64"),
        ("resnet101", "3x64x64"), ("resnet152", "3x64x64"), ("resnext101_32x8d", "3x64x64"),
        ("resnext101_64x4d", "3x64x64"), ("wide_resnet101_2", "3x64x64"), ("densenet161", "3x64x64"),
        ("densenet169", "3x64x64"), ("densenet201", "3x64x64"), ("mnasnet0_75", "3x64x64"),
        ("mnasnet1_0", "3x64x64"), ("mnasnet1_3", "3x64x64"), ("regnet_x_800mf", "3x64x64"),
        ("regnet_x_1_6gf", "3x64x64"), ("regnet_x_3_2gf", "3x64x64"), ("regnet_x_8gf", "3x64x64"),
        ("regnet_x_16gf", "3x64x64"), ("regnet_x_32gf", "3x64x64"), ("efficientnet_b1", "3x64x64"),
        ("efficientnet_b2", "3x64x64"), ("efficientnet_b3", "3x64x64"), ("efficientnet_b4", "3x64x64"),
        ("efficientnet_b5", "3x64x64"), ("efficientnet_b6", "3x64x64"), ("efficientnet_b7", "3x64x64"),
        ("efficientnet_v2_m", "3x64x64"), ("efficientnet_v2_l", "3x64x64"), ("shufflenet_v2_x1_5", "3x64x64"),
        ("shufflenet_v2_x2_0", "3x64x64"), ("regnet_y_800mf", "3x64x64"), ("regnet_y_1_6gf", "3x64x64"),
        ("regnet_y_3_2gf", "3x64x64"), ("regnet_y_8gf", "3x64x64"), ("regnet_y_16gf", "3x64x64"),
        ("regnet_y_32gf", "3x64x64"), ("regnet_y_128gf", "3x64x64"), ("convnext_small", "3x64x64"),
        ("convnext_base", "3x64x64"), ("convnext_large", "3x64x64")]
#: torchvision's classification models that are not CNNs, and so no case of the two lists:
#: each needs an op no archdsl kind is (attention over tokens), not merely a new layer;
#: `archdsl import` refuses each with an ImportFailure at the first such op
NOT_CNNS = {
    # Vision Transformers (Dosovitskiy et al.): the image cut into patches, then multi-head
    # self-attention over the patch tokens and a class token (nn.MultiheadAttention)
    "vit_b_16": "vision transformer", "vit_b_32": "vision transformer", "vit_l_16": "vision transformer",
    "vit_l_32": "vision transformer", "vit_h_14": "vision transformer",
    # Swin Transformers (v1 and v2): self-attention within shifted windows (torch.roll, window
    # partitions by view/permute, a relative position bias table indexed per window)
    "swin_t": "swin transformer", "swin_s": "swin transformer", "swin_b": "swin transformer",
    "swin_v2_t": "swin transformer", "swin_v2_s": "swin transformer", "swin_v2_b": "swin transformer",
    # MaxViT: MBConv blocks, but each followed by block and grid self-attention over
    # partitioned windows (with a relative position bias), which is the same obstacle
    "maxvit_t": "multi-axis vision transformer",
}
_ALL = os.environ.get("ARCHDSL_ALL_MODELS") == "1"
CASES = [pytest.param(n, i, id=n) for n, i in MODELS] + [
    pytest.param(n, i, id=n, marks=pytest.mark.skipif(not _ALL, reason="ARCHDSL_ALL_MODELS=1 runs it"))
    for n, i in MORE]


def test_every_torchvision_classification_model_is_a_case_or_excluded():
    """MODELS and MORE cover torchvision's whole list of classification models, but for the
    non-CNNs of NOT_CNNS: a model torchvision adds fails here until it is listed."""
    import torchvision

    listed = set(torchvision.models.list_models(module=torchvision.models))
    cases = [n for n, _ in MODELS + MORE]
    assert len(cases) == len(set(cases)), "a model is in MODELS or MORE twice"
    assert not set(cases) & set(NOT_CNNS)
    assert sorted(set(cases) - listed) == [], "cases torchvision does not list"
    assert sorted(listed - set(cases) - set(NOT_CNNS)) == [], "torchvision models neither a case nor excluded"
    assert sorted(set(NOT_CNNS) - listed) == [], "excluded models torchvision no longer has"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _model(name: str):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # GoogLeNet's and Inception's weight initialisation notice
        return torchvision_model(name)


@pytest.mark.slow
@pytest.mark.parametrize("name,size", CASES)
def test_round_trip(name, size):
    module = _model(name)
    text = archdsl.import_module(module, size, name=name)
    net = archdsl.compile(text)
    dims = tuple(int(d) for d in size.split("x"))
    assert net.params == sum(p.numel() for p in module.parameters())
    x = torch.randn(1, *dims, generator=torch.Generator().manual_seed(3))
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        expected = module(x)
    assert counter.get_total_flops() == 2 * net.macs_without_aux
    assert tuple(expected.shape[1:]) == net.output_shape.dims
    ours = archdsl.build(net, init=False).to_empty(device="cpu")
    archdsl.load_weights(ours, module, example=torch.randn(2, *dims))
    with torch.no_grad():
        got = ours.eval()(x)
    peak = expected.abs().max().item()
    assert peak > 1e-3
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4 * max(1.0, peak), f"max abs diff {diff:g} at peak {peak:g}"
    # the expect lines hold (compile checks them: a failed one is an error)
    assert re.search(r"expect params = [\d_]+", text) and "expect output" in text
    del module, ours
    gc.collect()


@pytest.mark.slow
@pytest.mark.parametrize("name,reference,block", [("resnet50", "resnet.arch", "bottleneck"),
                                                  ("googlenet", "googlenet.arch", "inception")])
def test_imported_spec_reads_like_the_zoo(name, reference, block):
    """resnet50 and googlenet come out as blocks with parameters, as specs/ writes them,
    and under 80 lines (not 170 written-out layers)."""
    text = archdsl.import_module(_model(name), "3x224x224", name=name)
    lines = text.splitlines()
    assert len(lines) < 80, text
    assert re.search(rf"^block {block}\(c", text, re.M), text
    net = archdsl.compile(text)
    ref = archdsl.compile(ROOT / "specs" / reference, "resnet50" if name == "resnet50" else "googlenet_torchvision")
    assert (net.params, net.macs_without_aux, net.output_shape) == (ref.params, ref.macs_without_aux, ref.output_shape)
    if name == "resnet50":
        # one stage block for the four stages, its unit repeated
        assert re.search(r"^  layer1: layer\(64, 2, stride=1\)$", text, re.M), text
        assert "repeat n { bottleneck(c) }" in text
        # with and without the projection: one block, the projection under an `if`
        assert "block bottleneck(c, stride=1) {" in text and "bottleneck_b" not in text
        assert "| if stride != 1 or in.c != 4 * c { downsample: downsample(4 * c, stride=stride) }" in text
        assert "conv3: conv 1x1 -> 4 * c; bn3: bn" in text
    else:
        assert "inception3a: inception(64, 96, 128, 16, 32, 32)" in text
        assert "aux aux1 { inception_aux() }" in text


class _Rolls(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return torch.roll(self.conv(x), 1, 2)


class _Outer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 3, 1)
        self.inner = _Rolls()

    def forward(self, x):
        return self.inner(self.stem(x))


def test_an_op_without_a_kind_names_the_op_the_module_and_the_line():
    with pytest.raises(ImportFailure) as e:
        archdsl.import_module(_Outer(), "3x16x16")
    msg = str(e.value)
    assert "torch.roll" in msg
    assert "module: inner" in msg
    assert f"{__file__}:" in msg and "return torch.roll(self.conv(x), 1, 2)" in msg


def test_a_layer_without_a_kind_and_a_setting_without_one():
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.GroupNorm(2, 8))
    with pytest.raises(ImportFailure, match=r"torch\.nn\.modules\.normalization\.GroupNorm(.|\n)*module: 1"):
        archdsl.import_module(seq, "3x16x16")
    reflect = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(ImportFailure, match="padding_mode='reflect'"):
        archdsl.import_module(reflect, "3x16x16")


def test_a_small_module_round_trips_with_blocks_repeats_and_labels():
    class Unit(torch.nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
            self.bn = torch.nn.BatchNorm2d(c)

        def forward(self, x):
            return torch.relu(x + self.bn(self.conv(x)))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 16, 3, padding=1)
            self.units = torch.nn.Sequential(*[Unit(16) for _ in range(3)])
            self.head = torch.nn.Linear(16, 10)

        def forward(self, x):
            x = self.units(self.stem(x))
            return self.head(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(x, 1), 1))

    module = Net().eval()
    text = archdsl.import_module(module, "3x16x16", name="small")
    assert "block unit() {" in text and "repeat 3 { unit() }" in text and "stem: conv 3x3 p1 -> 16" in text
    assert "add { bn: bn | identity }" not in text  # the conv and bn are one branch
    ours = archdsl.build(text)
    archdsl.load_weights(ours, module)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), module(x), atol=1e-6)


class _Unit(torch.nn.Module):
    """A residual unit whose shortcut is a 1x1 projection in some calls only (`proj`)."""

    def __init__(self, cin, c, stride=1, proj=None):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, c, 3, stride, 1, bias=False)
        self.bn = torch.nn.BatchNorm2d(c)
        proj = (stride != 1 or cin != c) if proj is None else proj
        self.proj = torch.nn.Conv2d(cin, c, 1, stride, bias=False) if proj else None

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) + (x if self.proj is None else self.proj(x)))


def _units(*units):
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), *[_Unit(*u) for u in units]).eval()


def test_calls_with_and_without_an_optional_branch_are_one_block_with_an_if():
    module = _units((8, 8), (8, 16, 2), (16, 16), (16, 16, 1, False), (16, 32))
    text = archdsl.import_module(module, "3x16x16", name="units")
    assert text.count("block unit") == 1, text
    assert "| if stride != 1 or in.c != c { proj: conv 1x1/stride -> c nobias }" in text, text
    ours = archdsl.build(text)
    archdsl.load_weights(ours, module)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), module(x), atol=1e-5)
    # a projection that neither the stride nor the channels call for: two blocks, no `if`
    text = archdsl.import_module(_units((8, 8), (8, 8, 1, True), (8, 8)), "3x16x16", name="units")
    assert text.count("block unit") == 2 and " if " not in text, text


def test_the_command_writes_a_spec_that_checks(tmp_path):
    out = tmp_path / "sq.arch"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "archdsl.cli", "import", "torchvision.models:squeezenet1_1",
                          "--input", "3x64x64", "-o", str(out)], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    check = subprocess.run([sys.executable, "-m", "archdsl.cli", "check", str(out)], capture_output=True, text=True,
                           env=env)
    assert check.returncode == 0, check.stdout + check.stderr
    bad = subprocess.run([sys.executable, "-m", "archdsl.cli", "import", "torchvision.models:no_such_model"],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "no attribute" in bad.stderr


def test_timm_layers_and_models():
    pytest.importorskip("timm")
    from timm.layers import BatchNormAct2d

    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, bias=False), BatchNormAct2d(8), torch.nn.Conv2d(8, 4, 1))
    text = archdsl.import_module(seq.eval(), "3x16x16", name="bn_act")
    assert "bn; relu" in text
    ours = archdsl.build(text)
    archdsl.load_weights(ours, seq)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(ours.eval()(x), seq(x))


@pytest.mark.slow
@pytest.mark.skipif(not _ALL, reason="ARCHDSL_ALL_MODELS=1 runs it")
def test_timm_inception_v4():
    timm = pytest.importorskip("timm")
    module = timm.create_model("inception_v4", pretrained=False).eval()
    text = archdsl.import_module(module, "3x299x299", name="inception_v4")
    ours = archdsl.build(text).eval()
    archdsl.load_weights(ours, module, example=torch.randn(2, 3, 96, 96))
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        assert (ours(x) - module(x)).abs().max().item() <= 1e-4


class _Last(torch.nn.Module):
    """A layer norm over the last dim of a channels-first map: over the width, which no kind is."""

    def __init__(self, permute: bool, back: bool = True):
        super().__init__()
        self.conv, self.norm, self.permute, self.back = torch.nn.Conv2d(3, 8, 3), torch.nn.LayerNorm(8), permute, back

    def forward(self, x):
        x = self.conv(x)
        if self.permute:
            x = self.norm(x.permute(0, 2, 3, 1))
            return x.permute(0, 3, 1, 2) if self.back else x
        return self.norm(x)


def test_a_layer_norm_and_a_linear_count_as_channel_layers_only_on_channels_last_maps():
    with pytest.raises(ImportFailure, match="normalises its width"):
        archdsl.import_module(_Last(False), "3x10x10")
    with pytest.raises(ImportFailure, match="returns a channels-last tensor"):
        archdsl.import_module(_Last(True, back=False), "3x10x10")
    text = archdsl.import_module(_Last(True), "3x10x10")
    assert "layernorm" in text and "permute" not in text


class _Transposes(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x).transpose(2, 3)


def test_a_transpose_is_a_layer_only_inside_a_channel_shuffle():
    with pytest.raises(ImportFailure, match="transpose outside a channel shuffle"):
        archdsl.import_module(_Transposes(), "3x16x16")
