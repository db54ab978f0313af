"""The residual, dense and fire families against their published figures: parameters,
MACs and output shapes, the depths their names state, receptive fields, and that the
stage blocks keep their identity in the compiled graph."""

from __future__ import annotations

import pytest

import archdsl
from conftest import SPECS

# (file, network, params, MACs or None where none is published, output shape, source)
PUBLISHED = [
    ("resnet.arch", "resnet18", 11_689_512, 1_814_073_344, (1000,),
     "torchvision ResNet18_Weights: num_params 11,689,512, 1.814 GFLOPS; reference/figures.md"),
    ("resnet.arch", "resnet34", 21_797_672, 3_663_761_408, (1000,),
     "torchvision ResNet34_Weights: 21,797,672, 3.664 GFLOPS; reference/figures.md"),
    ("resnet.arch", "resnet50", 25_557_032, 4_089_184_256, (1000,),
     "torchvision ResNet50_Weights: 25,557,032, 4.089 GFLOPS; reference/figures.md"),
    ("resnet.arch", "resnet101", 44_549_160, 7_801_405_440, (1000,),
     "torchvision ResNet101_Weights: 44,549,160, 7.801 GFLOPS; reference/figures.md"),
    ("resnet.arch", "resnet152", 60_192_808, 11_513_626_624, (1000,),
     "torchvision ResNet152_Weights: 60,192,808, 11.514 GFLOPS; reference/figures.md"),
    ("resnet.arch", "resnet50_original", 25_557_032, 3_857_973_248, (1000,),
     "He et al. 2016, Table 1 (3.8 x 10^9 FLOPs, stride on the first 1x1); reference/figures.md"),
    ("resnet.arch", "resnet101_original", 44_549_160, 7_570_194_432, (1000,),
     "He et al. 2016, Table 1 (7.6 x 10^9); reference/figures.md"),
    ("resnet.arch", "resnet152_original", 60_192_808, 11_282_415_616, (1000,),
     "He et al. 2016, Table 1 (11.3 x 10^9); reference/figures.md"),
    ("resnet.arch", "resnet20", 269_722, None, (10,), "He et al. 2016, §4.2 (Table 6: 0.27M); reference/figures.md"),
    ("resnet.arch", "resnet32", 464_154, None, (10,), "He et al. 2016, §4.2 (Table 6: 0.46M); reference/figures.md"),
    ("resnet.arch", "resnet44", 658_586, None, (10,), "He et al. 2016, §4.2 (Table 6: 0.66M); reference/figures.md"),
    ("resnet.arch", "resnet56", 853_018, None, (10,), "He et al. 2016, §4.2 (Table 6: 0.85M); reference/figures.md"),
    ("resnet.arch", "resnet110", 1_727_962, None, (10,), "He et al. 2016, §4.2 (Table 6: 1.7M); reference/figures.md"),
    ("preact_resnet.arch", "preact_resnet164", 1_703_258, 244_500_992, (10,),
     "He et al. 2016b, Table 3 ResNet-164; reference/figures.md"),
    ("preact_resnet.arch", "preact_resnet1001", 10_327_706, 1_487_849_984, (10,),
     "He et al. 2016b, Table 3 ResNet-1001; reference/figures.md"),
    ("densenet.arch", "densenet121", 7_978_856, 2_834_161_664, (1000,),
     "torchvision DenseNet121_Weights: 7,978,856, 2.834 GFLOPS; reference/figures.md"),
    ("densenet.arch", "densenet169", 14_149_480, 3_359_843_328, (1000,),
     "torchvision DenseNet169_Weights: 14,149,480, 3.36 GFLOPS; reference/figures.md"),
    ("densenet.arch", "densenet201", 20_013_928, 4_291_365_888, (1000,),
     "torchvision DenseNet201_Weights: 20,013,928, 4.291 GFLOPS; reference/figures.md"),
    ("densenet.arch", "densenet161", 28_681_000, 7_727_907_072, (1000,),
     "torchvision DenseNet161_Weights: 28,681,000, 7.728 GFLOPS; reference/figures.md"),
    ("squeezenet.arch", "squeezenet1_0", 1_248_424, 818_924_576, (1000,),
     "torchvision SqueezeNet1_0_Weights: 1,248,424, 0.819 GFLOPS; Iandola et al. 2016, Table 1 total"),
    ("squeezenet.arch", "squeezenet1_1", 1_235_496, 349_151_936, (1000,),
     "torchvision SqueezeNet1_1_Weights: 1,235,496, 0.349 GFLOPS; reference/figures.md"),
    ("squeezenet.arch", "squeezenet1_0_caffe", 1_248_424, None, (1000,),
     "forresti/SqueezeNet v1.0 release at 227; reference/figures.md"),
    ("squeezenet.arch", "squeezenet1_1_caffe", 1_235_496, None, (1000,),
     "forresti/SqueezeNet v1.1 release at 227; reference/figures.md"),
]


@pytest.mark.parametrize("file,name,params,macs,output,source", PUBLISHED, ids=[p[1] for p in PUBLISHED])
def test_published_figures(file, name, params, macs, output, source):
    net = archdsl.compile(SPECS / file, name)
    assert net.params == params, source
    if macs is not None:
        assert net.macs == macs, source
        assert net.flops == 2 * macs
    assert net.output_shape.dims == output


# torchvision records num_params and its GFLOPS (= GMACs, rounded to 3 decimals) in each
# weights enum's meta; reading them needs no download
TORCHVISION = [
    ("resnet.arch", "resnet18", "ResNet18_Weights"), ("resnet.arch", "resnet34", "ResNet34_Weights"),
    ("resnet.arch", "resnet50", "ResNet50_Weights"), ("resnet.arch", "resnet101", "ResNet101_Weights"),
    ("resnet.arch", "resnet152", "ResNet152_Weights"),
    ("densenet.arch", "densenet121", "DenseNet121_Weights"), ("densenet.arch", "densenet169", "DenseNet169_Weights"),
    ("densenet.arch", "densenet201", "DenseNet201_Weights"), ("densenet.arch", "densenet161", "DenseNet161_Weights"),
    ("squeezenet.arch", "squeezenet1_0", "SqueezeNet1_0_Weights"),
    ("squeezenet.arch", "squeezenet1_1", "SqueezeNet1_1_Weights"),
]
# the later torchvision CNNs the language reaches: the weights enum found by model name
TORCHVISION += [(file, name, None) for file, names in (
    ("resnet.arch", ("resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d", "wide_resnet50_2", "wide_resnet101_2")),
    ("mobilenet.arch", ("mobilenet_v2",)),
    ("mnasnet.arch", ("mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3")),
    ("regnet.arch", ("regnet_x_400mf", "regnet_x_800mf", "regnet_x_1_6gf", "regnet_x_3_2gf", "regnet_x_8gf",
                     "regnet_x_16gf", "regnet_x_32gf")),
    ("mobilenet_v3.arch", ("mobilenet_v3_large", "mobilenet_v3_small")),
    ("efficientnet.arch", tuple(f"efficientnet_b{i}" for i in range(8))),
    ("efficientnet.arch", ("efficientnet_v2_s", "efficientnet_v2_m", "efficientnet_v2_l")),
    ("regnet.arch", ("regnet_y_400mf", "regnet_y_800mf", "regnet_y_1_6gf", "regnet_y_3_2gf", "regnet_y_8gf",
                     "regnet_y_16gf", "regnet_y_32gf", "regnet_y_128gf")),
    ("shufflenet.arch", ("shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0")),
    ("convnext.arch", ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")),
) for name in names]


@pytest.mark.parametrize("file,name,weights", TORCHVISION, ids=[t[1] for t in TORCHVISION])
def test_counts_agree_with_the_figures_torchvision_records(file, name, weights):
    models = pytest.importorskip("torchvision.models")
    net = archdsl.compile(SPECS / file, name)
    for w in (getattr(models, weights) if weights else models.get_model_weights(name)):
        assert w.meta["num_params"] == net.params, w
        # the SWAG end-to-end weights (RegNetY 16GF and up) are evaluated at 384x384
        size = getattr(w.transforms(), "crop_size", [224])[0]
        at = net if size == 224 else archdsl.compile(SPECS / file, name, input=f"3x{size}x{size}")
        assert w.meta["_ops"] == round(at.macs / 1e9, 3), w


# ---- the depth in each name: He et al. count the weighted layers on the main path
# (convolutions and the fc layer, not the projection shortcuts); Huang et al. count
# DenseNet's the same way (the stem, two per dense layer, one per transition, the fc)

DEPTHS = [("resnet.arch", n, int(n[len("resnet"):]), "downsample")
          for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                    "resnet20", "resnet32", "resnet44", "resnet56", "resnet110")]
DEPTHS += [("resnet.arch", f"resnet{d}_original", d, "downsample") for d in (50, 101, 152)]
DEPTHS += [("preact_resnet.arch", f"preact_resnet{d}", d, "shortcut") for d in (164, 1001)]
DEPTHS += [("densenet.arch", f"densenet{d}", d, None) for d in (121, 169, 201, 161)]
DEPTHS += [("squeezenet.arch", n, 26, None) for n in ("squeezenet1_0", "squeezenet1_1")]
DEPTHS += [("resnet.arch", n, d, "downsample") for n, d in (
    ("resnext50_32x4d", 50), ("resnext101_32x8d", 101), ("resnext101_64x4d", 101),
    ("wide_resnet50_2", 50), ("wide_resnet101_2", 101))]


@pytest.mark.parametrize("file,name,depth,projection", DEPTHS, ids=[d[1] for d in DEPTHS])
def test_depth_is_the_number_in_the_name(file, name, depth, projection):
    """SqueezeNet's 26: conv1, three convolutions in each of eight Fire modules, conv10."""
    net = archdsl.compile(SPECS / file, name)
    weighted = [i for i in net.nodes() if i.kind.name in ("conv", "fc")
                and (projection is None or not i.id.endswith("." + projection))]
    assert len(weighted) == depth


def test_cifar_resnets_have_parameter_free_option_a_shortcuts():
    """He et al. 2016, §4.2: "all shortcuts are identity" with zero padding (option A), so
    the residual nets have "exactly the same number of parameters" as the plain ones; the
    paper's Table 6 rounds them to 0.27M, 0.46M, 0.66M, 0.85M and 1.7M."""
    for n, rounded in ((3, 0.27), (5, 0.46), (7, 0.66), (9, 0.85), (18, 1.7)):
        net = archdsl.compile(SPECS / "resnet.arch", f"resnet{6 * n + 2}")
        shortcuts = [i for i in net.nodes() if i.kind.name in ("decimate", "padc")]
        assert [i.kind.name for i in shortcuts] == ["decimate", "padc"] * 2  # stages 2 and 3
        assert all(i.params == 0 and i.macs == 0 for i in shortcuts)
        assert {i.shape.dims for i in shortcuts} == {(16, 16, 16), (32, 16, 16), (32, 8, 8), (64, 8, 8)}
        digits = 2 if rounded < 1 else 1
        assert round(net.params / 1e6, digits) == rounded


def test_preact_paper_counts_convolution_weights_only():
    """He et al. 2016b, Table 3 gives ResNet-164 1.7M and ResNet-1001 10.2M parameters: the
    convolution weights alone (10,175,920 for ResNet-1001); with batch norm's gamma and beta
    and the fc layer the count is 10,327,706 (10.3M), as figures.md and PyTorch count it."""
    for depth, paper in ((164, 1.7), (1001, 10.2)):
        net = archdsl.compile(SPECS / "preact_resnet.arch", f"preact_resnet{depth}")
        conv = sum(i.params for i in net.nodes() if i.kind.name == "conv")
        assert round(conv / 1e6, 1) == paper
    assert round(net.params / 1e6, 1) == 10.3


# ---- receptive fields at the last stage's output (before global pooling)

RECEPTIVE_FIELDS = [
    # google-research/receptive_field README (Araujo et al., Distill 2019), TF-slim
    # resnet_v1_50/101/152: 483 / 1027 / 1507, effective stride 32. Slim strides the last
    # unit of a stage on its 3x3, the paper the first unit on its 1x1: either way the
    # stride falls between the same two 3x3 convolutions, so the fields are equal.
    ("resnet50_original", 483), ("resnet101_original", 1027), ("resnet152_original", 1507),
    # torchvision's placement (stride on the first unit's 3x3) gives smaller fields;
    # samson-wang's "ResNet Receptive Field Size" table (GitHub gist a6073c18) lists
    # layer4: resnet18 435, resnet34 899, resnet50 427, resnet101 971
    ("resnet18", 435), ("resnet34", 899), ("resnet50", 427), ("resnet101", 971),
]


@pytest.mark.parametrize("name,size", RECEPTIVE_FIELDS, ids=[r[0] for r in RECEPTIVE_FIELDS])
def test_resnet_receptive_field(name, size):
    net = archdsl.compile(SPECS / "resnet.arch", name)
    (last,) = net.node("resnet_imagenet1.avgpool").inputs
    assert last.startswith("resnet_imagenet1.layer4.")
    field = net.node(last).rf
    assert field.size == (size, size)
    assert field.jump == (32, 32)


def test_resnet_stage_blocks_keep_their_identity():
    """A node in the third bottleneck of stage 2 (layer2) is named after, and scoped by,
    the block calls that made it; the calls keep their arguments."""
    net = archdsl.compile(SPECS / "resnet.arch", "resnet50")
    node = net.node("resnet_imagenet1.layer2.bottleneck3.add1.branch1.conv2")
    assert node.scope == (("resnet_imagenet1", "resnet_imagenet"), ("layer2", "bottleneck_stage"),
                          ("bottleneck3", "bottleneck"))
    assert node.op.params.kernel == (3, 3) and node.op.params.stride == (1, 1)
    assert node.shape.dims == (128, 28, 28)
    assert node.params == 128 * 128 * 9 + 2 * 128  # conv without bias + BN gamma, beta

    body = net.tree.items[0]
    assert (body.name, body.block) == ("resnet_imagenet1", "resnet_imagenet")
    layer2 = next(i for i in body.items if getattr(i, "name", None) == "layer2")
    assert layer2.block == "bottleneck_stage" and layer2.args["n"] == 4 and layer2.args["c"] == 128
    units = [i for i in layer2.items]
    assert [u.name for u in units] == ["bottleneck1", "bottleneck2", "bottleneck3", "bottleneck4"]
    assert [u.args["stride"] for u in units] == [2, 1, 1, 1]
    # only the first unit of a stage projects its shortcut
    projections = sorted(i.id for i in net.nodes() if i.id.endswith(".downsample"))
    assert projections == [f"resnet_imagenet1.layer{k}.bottleneck1.add1.branch2.downsample" for k in (1, 2, 3, 4)]


def test_densenet_transition_halves_channels_from_the_input_shape():
    """`conv 1x1 -> in.c // 2`: DenseNet-BC's compression 0.5 (Huang et al. 2017, §3)."""
    net = archdsl.compile(SPECS / "densenet.arch", "densenet121")
    convs = [net.node(f"densenet1.transition{k}.conv") for k in (1, 2, 3)]
    # 64 + 6*32 = 256 -> 128; 128 + 12*32 = 512 -> 256; 256 + 24*32 = 1024 -> 512
    assert [(c.in_shapes[0].c, c.shape.c) for c in convs] == [(256, 128), (512, 256), (1024, 512)]
    pools = [net.node(f"densenet1.transition{k}.pool").shape.dims for k in (1, 2, 3)]
    assert pools == [(128, 28, 28), (256, 14, 14), (512, 7, 7)]
    assert net.node("densenet1.norm5").shape.dims == (512 + 16 * 32, 7, 7)
