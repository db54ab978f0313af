"""The single-path classics (LeNet-5, AlexNet, ZFNet, VGG, OverFeat, SPP-net, NIN's seed line):
their parameter counts, MACs and shapes against the published figures, their receptive
fields, and the layers LeNet-5 (1998) needs."""

from __future__ import annotations

import pytest

import archdsl
from conftest import SPECS

# (file, network, params, MACs or None where none is published, output shape, source)
PUBLISHED = [
    ("lenet5.arch", "lenet5", 60_000, None, (10,),
     "LeCun et al. 1998, §II-B: 60,000 trainable free parameters"),
    ("lenet5.arch", "lenet5_modern", 61_706, None, (10,),
     "the common dense-C3 form; reference/figures.md"),
    ("alexnet.arch", "alexnet", 62_378_344, 1_135_256_096, (1000,),
     "Krizhevsky et al. 2012, Fig. 2 as one tower; reference/figures.md"),
    ("alexnet.arch", "alexnet_grouped", 60_965_224, 724_406_816, (1000,),
     "Krizhevsky et al. 2012, two groups = Caffe bvlc_alexnet; reference/figures.md"),
    ("alexnet.arch", "alexnet_torchvision", 61_100_840, 714_188_480, (1000,),
     "torchvision AlexNet_Weights.IMAGENET1K_V1: num_params 61,100,840, 0.714 GFLOPS"),
    ("zfnet.arch", "zfnet", 62_357_608, 1_168_032_896, (1000,),
     "Zeiler & Fergus 2014, Fig. 3 with the SPP-net ZF-5 paddings; reference/figures.md"),
    ("vgg.arch", "vgg11", 132_863_336, 7_609_090_048, (1000,), "torchvision VGG11_Weights: 132,863,336, 7.609 GFLOPS"),
    ("vgg.arch", "vgg11_lrn", 132_863_336, 7_609_090_048, (1000,), "Simonyan & Zisserman 2015, Table 1 A-LRN"),
    ("vgg.arch", "vgg13", 133_047_848, 11_308_466_176, (1000,), "torchvision VGG13_Weights: 133,047,848, 11.308 GFLOPS"),
    ("vgg.arch", "vgg16_c", 133_638_952, 11_770_888_192, (1000,), "Simonyan & Zisserman 2015, Table 1 C"),
    ("vgg.arch", "vgg16", 138_357_544, 15_470_264_320, (1000,), "torchvision VGG16_Weights: 138,357,544, 15.47 GFLOPS"),
    ("vgg.arch", "vgg19", 143_667_240, 19_632_062_464, (1000,), "torchvision VGG19_Weights: 143,667,240, 19.632 GFLOPS"),
    ("vgg.arch", "vgg11_bn", 132_868_840, 7_609_090_048, (1000,), "torchvision VGG11_BN_Weights: 132,868,840"),
    ("vgg.arch", "vgg13_bn", 133_053_736, 11_308_466_176, (1000,), "torchvision VGG13_BN_Weights: 133,053,736"),
    ("vgg.arch", "vgg16_bn", 138_365_992, 15_470_264_320, (1000,), "torchvision VGG16_BN_Weights: 138,365,992"),
    ("vgg.arch", "vgg19_bn", 143_678_248, 19_632_062_464, (1000,), "torchvision VGG19_BN_Weights: 143,678,248"),
    ("overfeat.arch", "overfeat_fast", 145_920_872, 2_801_403_904, (1000, 1, 1),
     "Sermanet et al. 2014, Table 1 (fast model); reference/figures.md"),
    ("overfeat.arch", "overfeat_accurate", 144_656_488, 5_355_446_784, (1000, 1, 1),
     "Sermanet et al. 2014, Table 3 (accurate model); reference/figures.md"),
    ("sppnet.arch", "sppnet", 77_037_672, None, (1000,),
     "He et al. 2014, ZF-5 + 4-level pyramid; reference/figures.md"),
]


@pytest.mark.parametrize("file,name,params,macs,output,source", PUBLISHED, ids=[p[1] for p in PUBLISHED])
def test_published_figures(file, name, params, macs, output, source):
    net = archdsl.compile(SPECS / file, name)
    assert net.params == params, source
    if macs is not None:
        assert net.macs == macs, source
        assert net.flops == 2 * macs
    assert net.output_shape.dims == output


TORCHVISION_EQUIVALENTS = ["alexnet_torchvision", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn",
                           "vgg19", "vgg19_bn"]


@pytest.mark.parametrize("name", TORCHVISION_EQUIVALENTS)
def test_counts_agree_with_the_figures_torchvision_records(name):
    """torchvision records num_params and GFLOPS (MACs / 1e9, three decimals) per model."""
    models = pytest.importorskip("torchvision.models")
    file = "alexnet.arch" if name.startswith("alexnet") else "vgg.arch"
    tv_name = name.removesuffix("_torchvision")
    meta = models.get_model_weights(tv_name).IMAGENET1K_V1.meta
    net = archdsl.compile(SPECS / file, name)
    assert net.params == meta["num_params"]
    assert round(net.macs / 1e9, 3) == pytest.approx(meta["_ops"], abs=1e-9)


def test_paper_lenet5_layer_by_layer():
    """§II-B gives every layer's trainable parameters and connections. A connection is a
    weight use or a bias add, so for the convolutional and fc layers it is MACs + outputs."""
    net = archdsl.compile(SPECS / "lenet5.arch", "lenet5")
    params = {n: net.node(n).params for n in ("c1", "s2", "s4", "c5", "f6", "output")}
    params["c3"] = sum(i.params for i in net.nodes() if i.id == "c3" or i.id.startswith("c3."))
    assert params == {"c1": 156, "s2": 12, "c3": 1_516, "s4": 32, "c5": 48_120, "f6": 10_164, "output": 0}
    connections = {n: net.node(n).macs + net.node(n).shape.numel for n in ("c1", "c5", "f6")}
    assert connections == {"c1": 122_304, "c5": 48_120, "f6": 10_164}
    c3_branches = [i for i in net.nodes() if i.id.startswith("c3.branch") and i.kind.name == "conv"]
    assert sum(i.macs + i.shape.numel for i in c3_branches) == 151_600
    # Table I: six C3 maps see 3 S2 maps, nine see 4, one sees all 6
    fan_in = sorted(i.in_shapes[0].c for i in c3_branches)
    assert fan_in == [3] * 6 + [4] * 9 + [6]
    assert [i.shape.dims for i in (net.node("c1"), net.node("s2"), net.node("c3"), net.node("s4"), net.node("c5"))] \
        == [(6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 5, 5), (120, 1, 1)]


def test_paper_lenet5_module_has_60000_trainable_parameters_and_fixed_codes():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = archdsl.build(SPECS / "lenet5.arch", "lenet5")
    assert sum(p.numel() for p in model.parameters()) == 60_000
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    codes = buffers["body.output.codes"]
    assert tuple(codes.shape) == (10, 84)
    assert not any(k.endswith("codes") for k in params)
    assert set(codes.unique().tolist()) == {-1.0, 1.0}
    assert "body.output.codes" in model.state_dict()  # saved with the model, never trained
    # the codes are a pure function of the spec
    again = archdsl.build(SPECS / "lenet5.arch", "lenet5")
    assert torch.equal(dict(again.named_buffers())["body.output.codes"], codes)

    x = torch.randn(2, 1, 32, 32)
    y = model(x)
    assert y.shape == (2, 10)
    y.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert codes.grad is None


def test_lenet5_layers_compute_the_paper_formulas():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = archdsl.build(SPECS / "lenet5.arch", "lenet5").eval()
    body = model.body
    a = 1.7159
    # f(a) = A tanh(S a): chosen so that f(1) = 1 and f(-1) = -1 (Appendix A)
    squash = body.c1.lecun_tanh
    t = torch.tensor([-1.0, 0.0, 1.0, 10.0])
    assert torch.allclose(squash(t), a * torch.tanh(2 / 3 * t))
    assert squash(torch.tensor(1.0)).item() == pytest.approx(1.0, abs=1e-3)
    # S2: (sum of each 2x2 window) * coefficient + bias, per map, then the squashing function
    s2 = body.s2
    coef = s2.subsample.scale.weight.view(6)
    bias = s2.subsample.scale.bias
    x = torch.randn(1, 6, 28, 28)
    window_sum = x.view(1, 6, 14, 2, 14, 2).sum((3, 5))
    expected = a * torch.tanh(2 / 3 * (window_sum * coef.view(1, 6, 1, 1) + bias.view(1, 6, 1, 1)))
    assert torch.allclose(s2(x), expected, atol=1e-6)
    # RBF: y_i = sum_j (x_j - w_ij)^2
    rbf = body.output
    f6 = torch.randn(3, 84)
    assert torch.allclose(rbf(f6), ((f6[:, None, :] - rbf.codes[None]) ** 2).sum(-1))
    # C3 branch 5 sees S2 maps 0, 4, 5 only (Table I, column 4)
    s2_out = torch.randn(1, 6, 14, 14)
    branch = body.c3.branch5
    poked = s2_out.clone()
    poked[:, [1, 2, 3]] += 1.0
    assert torch.equal(branch(s2_out), branch(poked))
    poked[:, 4] += 1.0
    assert not torch.equal(branch(s2_out), branch(poked))


def test_alexnet_lrn_is_the_papers_formula():
    """Krizhevsky et al. §3.3: b = a / (k + alpha * sum_{n neighbours} a^2)^beta with k = 2,
    n = 5, alpha = 1e-4, beta = 0.75; the spec writes alpha=5e-4 in PyTorch's convention."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = archdsl.build(SPECS / "alexnet.arch", "alexnet").eval()
    lrn = model.body.norm1
    x = torch.randn(1, 96, 5, 5) * 10
    sq = torch.nn.functional.pad(x.pow(2), (0, 0, 0, 0, 2, 2))
    window = sum(sq[:, i:i + 96] for i in range(5))
    assert torch.allclose(lrn(x), x / (2 + 1e-4 * window) ** 0.75, rtol=1e-5)


def test_alexnet_grouped_convolutions():
    net = archdsl.compile(SPECS / "alexnet.arch", "alexnet_grouped")
    groups = {n: net.node(n).op.params.groups for n in ("conv1", "conv2", "conv3", "conv4", "conv5")}
    assert groups == {"conv1": 1, "conv2": 2, "conv3": 1, "conv4": 2, "conv5": 2}


# ---------------------------------------------------------------- receptive fields


def test_three_stacked_3x3_convs_see_7x7():
    """Simonyan & Zisserman §2.3: a stack of three 3x3 stride-1 layers has a 7x7 field."""
    net = archdsl.compile("network n { input 3x32x32; conv 3x3 p1 -> 8; conv 3x3 p1 -> 8; conv 3x3 p1 -> 8 }")
    assert [net.node(f"conv{i}").rf.size for i in (1, 2, 3)] == [(3, 3), (5, 5), (7, 7)]
    assert net.node("conv3").rf.jump == (1, 1)
    vgg = archdsl.compile(SPECS / "vgg.arch", "vgg16")
    assert vgg.node("features.stage3.conv3").rf.size[0] - vgg.node("features.stage2.pool").rf.size[0] \
        == 3 * 2 * vgg.node("features.stage2.pool").rf.jump[0]


@pytest.mark.parametrize("name", ["alexnet", "alexnet_grouped", "alexnet_torchvision"])
def test_alexnet_pool5_sees_195_pixels(name):
    net = archdsl.compile(SPECS / "alexnet.arch", name)
    assert net.node("pool5").rf.size == (195, 195)
    assert net.node("pool5").rf.jump == (32, 32)


def test_vgg16_pool5_sees_212_pixels():
    """Araujo et al., "Computing Receptive Fields of CNNs", Distill 2019: VGG-16 pool5 = 212."""
    net = archdsl.compile(SPECS / "vgg.arch", "vgg16")
    assert net.node("features.stage5.pool").rf.size == (212, 212)


# ---------------------------------------------------------------- SPP-net


def test_sppnet_fc_sizes_do_not_depend_on_the_input_size():
    nets = {s: archdsl.compile(SPECS / "sppnet.arch", "sppnet", input=f"3x{s}x{s}") for s in (180, 224, 300)}
    assert {s: n.node("conv5").shape.dims for s, n in nets.items()} == \
        {180: (256, 10, 10), 224: (256, 13, 13), 300: (256, 17, 17)}
    for net in nets.values():
        assert net.node("spp").shape.dims == (256 * (36 + 9 + 4 + 1),)
        assert [net.node(f).params for f in ("fc6", "fc7", "fc8")] == [12_800 * 4096 + 4096, 4096 * 4096 + 4096,
                                                                       4096 * 1000 + 1000]
        assert net.params == 77_037_672


def test_sppnet_runs_at_every_input_size():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = archdsl.build(SPECS / "sppnet.arch", "sppnet").eval()
    with torch.no_grad():
        for s in (180, 300):
            assert model(torch.randn(1, 3, s, s)).shape == (1, 1000)


# ---------------------------------------------------------------- NIN's seed line

SEED = "network seed { input 3x32x32; act relu; conv 5x5/1 p2 -> 192; mlpconv 160,96; maxpool 3/2 }"


def test_nin_seed_line_means_what_network_in_network_means():
    net = archdsl.compile(SEED)
    layers = [i for i in net.nodes() if i.inputs]
    assert [i.id for i in layers] == ["conv1", "mlpconv1.conv1", "mlpconv1.conv2", "maxpool1"]
    conv, cccp1, cccp2, pool = layers
    # a 5x5 stride-1 pad-2 convolution to 192 channels, followed by the default ReLU
    assert conv.kind.name == "conv" and [op.kind.name for op in conv.post] == ["relu"]
    p = conv.op.params
    assert (p.kernel, p.stride, p.padding, p.out, p.bias) == ((5, 5), (1, 1), (2, 2), 192, True)
    assert conv.params == 5 * 5 * 3 * 192 + 192 and conv.shape.dims == (192, 32, 32)
    # two 1x1 convolutions, 160 then 96 channels, each followed by the ReLU
    for layer, c_in, c_out in ((cccp1, 192, 160), (cccp2, 160, 96)):
        assert layer.kind.name == "conv" and [op.kind.name for op in layer.post] == ["relu"]
        assert (layer.op.params.kernel, layer.op.params.stride, layer.op.params.padding) == ((1, 1), (1, 1), (0, 0))
        assert layer.params == c_in * c_out + c_out and layer.shape.dims == (c_out, 32, 32)
    # a 3x3 max pool with stride 2, no parameters
    assert pool.kind.name == "maxpool" and not pool.post
    assert (pool.op.params.kernel, pool.op.params.stride) == ((3, 3), (2, 2))
    assert pool.params == 0 and pool.shape.dims == (96, 15, 15)
    assert net.params == 14_592 + 30_880 + 15_456


def test_nin_seed_line_lowers_to_those_torch_layers():
    torch = pytest.importorskip("torch")
    model = archdsl.build(SEED)
    mods = [(n, type(m).__name__) for n, m in model.named_modules() if not list(m.children())]
    assert mods == [("body.conv1.conv", "Conv2d"), ("body.conv1.relu", "ReLU"),
                    ("body.mlpconv1.conv1.conv", "Conv2d"), ("body.mlpconv1.conv1.relu", "ReLU"),
                    ("body.mlpconv1.conv2.conv", "Conv2d"), ("body.mlpconv1.conv2.relu", "ReLU"),
                    ("body.maxpool1", "MaxPool2d")]
    c = model.body.conv1.conv
    assert (c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) == (3, 192, (5, 5), (1, 1), (2, 2))
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 96, 15, 15)


# ---------------------------------------------------------------- the VGG family's structure


@pytest.mark.parametrize("name,convs", [("vgg11", 8), ("vgg13", 10), ("vgg16_c", 13), ("vgg16", 13), ("vgg19", 16)])
def test_vgg_weight_layers(name, convs):
    """Table 1's names count weight layers: A has 11 (8 conv + 3 fc), ..., E has 19."""
    net = archdsl.compile(SPECS / "vgg.arch", name)
    kinds = [i.kind.name for i in net.nodes()]
    assert kinds.count("conv") == convs and kinds.count("fc") == 3
    one_by_one = [i.id for i in net.nodes() if i.kind.name == "conv" and i.op.params.kernel == (1, 1)]
    assert one_by_one == ([f"features.stage{s}.conv3" for s in (3, 4, 5)] if name == "vgg16_c" else [])


def test_vgg_bn_keeps_the_conv_bias_as_torchvision_does():
    net = archdsl.compile(SPECS / "vgg.arch", "vgg11_bn")
    convs = [i for i in net.nodes() if i.kind.name == "conv"]
    assert all(i.op.params.bias and [op.kind.name for op in i.post] == ["bn", "relu"] for i in convs)
    plain = archdsl.compile(SPECS / "vgg.arch", "vgg11")
    # BN adds gamma and beta per conv channel: 2 * (64 + 128 + 2*256 + 4*512)
    assert net.params - plain.params == 2 * (64 + 128 + 2 * 256 + 4 * 512) == 5_504


def test_vgg_a_lrn_has_one_lrn_after_the_first_conv():
    net = archdsl.compile(SPECS / "vgg.arch", "vgg11_lrn")
    order = [i.id for i in net.nodes()][1:4]
    assert order == ["features.stage1.conv1", "features.stage1.lrn1", "features.stage1.pool"]
    assert sum(1 for i in net.nodes() if i.kind.name == "lrn") == 1
