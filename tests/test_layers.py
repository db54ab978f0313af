"""Every registered layer kind, lowered and compared with PyTorch.

The test cases are keyed by kind name and parametrized over ``archdsl.layers.kinds()``, so
a kind added to the registry without a case here fails ``test_every_kind_has_a_case``
and its own parametrized test. For each kind:

* every node's inferred shape equals the shape its module actually produces (training
  mode too, so that aux heads run), and the analytic parameter count equals
  ``sum(p.numel())``;
* where a closed form exists, the built module's output equals the plain torch operation
  (``F.conv2d`` with the stated stride/padding/dilation/groups, ``nn.MaxPool2d(ceil_mode=
  True)``, ``nn.AvgPool2d(count_include_pad=False)``, the LRN formula, ...) on the same
  weights.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Callable

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

import archdsl  # noqa: E402
from archdsl.layers import kinds  # noqa: E402
from archdsl.lower_torch import count_parameters, load_weights, lower  # noqa: E402
from archdsl.network import nodes_under  # noqa: E402

# ---------------------------------------------------------------- helpers


def built(src: str, **compile_kw):
    """Compile `src`, lower it, and check params and every node's shape against torch."""
    net = archdsl.compile(src, **compile_kw)
    torch.manual_seed(0)
    model = lower(net)
    assert count_parameters(model) == net.params, f"numel {count_parameters(model):,} != analytic {net.params:,}"
    check_every_shape(net, model)
    return net, model


def _expected_shapes(net) -> dict[str, tuple[int, ...]]:
    """Module path (as named_modules() spells it) -> inferred output shape, for every
    layer and merge node of the structural tree, aux heads included."""
    # a node's id is its module path below the network's body, in branches and aux heads too
    return {f"body.{n}": net.node(n).shape.dims for n in nodes_under(net.tree)}


def check_every_shape(net, model, batch: int = 2) -> None:
    expected = _expected_shapes(net)
    assert expected, "the network has no layers"
    actual: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    handles = []
    for path in expected:
        assert path in modules, f"no module named {path!r}; modules: {sorted(modules)}"
        handles.append(modules[path].register_forward_hook(
            lambda m, i, o, path=path: actual.__setitem__(path, tuple(o.shape[1:]))))
    x = torch.randn(batch, *net.input_shape.dims)
    try:
        with torch.no_grad():
            # training mode runs the aux heads as well; batch 2 keeps batch norm defined on 1x1 maps
            model.train()(x)
            y = model.eval()(x)
    finally:
        for h in handles:
            h.remove()
    assert actual == expected
    assert tuple(y.shape[1:]) == net.output_shape.dims


def same_output(src: str, reference: Callable, atol: float = 1e-5, batch: int = 2, **compile_kw):
    """The built network's eval-mode output equals `reference(x, model)` (plain torch)."""
    net, model = built(src, **compile_kw)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, *net.input_shape.dims, generator=g)
    with torch.no_grad():
        y = model.eval()(x)
        expected = reference(x, model)
    torch.testing.assert_close(y, expected, atol=atol, rtol=1e-5)
    return net, model


def torch_macs(module, x) -> int:
    """What torch.utils.flop_counter counts for one forward pass, halved: the MACs."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(x)
    return counter.get_total_flops() // 2


def mirrors(src: str, reference, atol: float = 1e-5, batch: int = 2, **compile_kw):
    """The built network is the torch (or torchvision) module `reference`: with the
    reference's weights (randomised first, so that no weight is left at its initial 1 or 0)
    and batch-norm statistics paired by archdsl.load_weights, equal eval-mode outputs, the same parameter count, and
    MACs equal to FlopCounterMode's total / 2 at batch 1."""
    net, model = built(src, **compile_kw)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for t in reference.parameters():
            t.copy_(torch.randn(t.shape, generator=g))
        for name, t in reference.named_buffers():  # batch-norm statistics, the variance positive
            if name.endswith(("running_mean", "running_var")):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5 if name.endswith("var") else torch.randn(t.shape, generator=g))
    load_weights(model, reference)
    x = torch.randn(batch, *net.input_shape.dims, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), reference.eval()(x), atol=atol, rtol=1e-5)
    assert net.params == count_parameters(reference)
    assert net.macs == torch_macs(reference, x[:1])
    return net, model


def net_src(input_shape: str, body: str) -> str:
    return f"network t {{\n  input {input_shape}\n{body}\n}}\n"


CASES: dict[str, Callable[[], None]] = {}


def case(*names: str):
    """Register the test of one or more kinds; the function receives the kind's name."""

    def deco(fn):
        for n in names:
            if n in CASES:
                raise RuntimeError(f"two cases for {n}")
            CASES[n] = fn
        return fn

    return deco


# ---------------------------------------------------------------- convolutions


@case("conv")
def conv_cases(kind):
    # rectangular kernel, rectangular stride and padding, groups and dilation at once
    src = net_src("4x13x17", "  conv 3x5/2x1 p1,2 g2 d2 -> 6")
    same_output(src, lambda x, m: F.conv2d(x, m.body.conv1.weight, m.body.conv1.bias, stride=(2, 1),
                                           padding=(1, 2), dilation=2, groups=2))
    net = archdsl.compile(src)
    assert net.output_shape.dims == (6, 6, 13)
    # PyTorch's Conv2d: out * in/groups * kh * kw + out
    assert net.params == 6 * 2 * 3 * 5 + 6

    # `same` agrees with torch's own padding='same' (stride 1, odd effective kernel)
    src = net_src("3x10x9", "  conv 3x3 same d2 -> 4")
    same_output(src, lambda x, m: F.conv2d(x, m.body.conv1.weight, m.body.conv1.bias, padding="same", dilation=2))
    assert archdsl.compile(src).output_shape.dims == (4, 10, 9)

    # Inception-v3's factorised 1x7 with p0,3 keeps the grid; `valid` is p0
    src = net_src("8x17x17", "  conv 1x7 p0,3 -> 5\n  conv 3x3 valid -> 2")
    net = archdsl.compile(src)
    assert [n.shape.dims for n in net.nodes()][1:] == [(5, 17, 17), (2, 15, 15)]
    built(src)

    # keyword forms and symbolic sizes: stride=, pad=expr, groups=expr, dilation=
    src = ("let k = 5\nnetwork t(c=12) {\n  input 6x20x20\n"
           "  conv k x k stride=2 pad=k//2 groups=in.c//2 dilation=1 -> c\n}\n")
    same_output(src, lambda x, m: F.conv2d(x, m.body.conv1.weight, m.body.conv1.bias, stride=2, padding=2,
                                           groups=3))
    assert archdsl.compile(src).output_shape.dims == (12, 10, 10)

    # explicit bias control: `nobias` / `bias` flags
    net, model = built(net_src("3x8x8", "  conv 3x3 -> 4 nobias\n  conv 3x3 -> 4 bias"))
    assert model.body.conv1.bias is None and model.body.conv2.bias is not None
    assert net.params == 4 * 3 * 9 + (4 * 4 * 9 + 4)

    # the scoped norm and act attach as children named by kind; bias auto drops the bias
    net, model = built(net_src("3x8x8", "  norm bn eps=1e-3\n  act relu\n  conv 3x3 p1 -> 4"))
    layer = model.body.conv1
    assert [n for n, _ in layer.named_children()] == ["conv", "bn", "relu"]
    assert layer.conv.bias is None and layer.bn.eps == 1e-3
    assert net.params == 4 * 3 * 9 + 2 * 4


def measured_field(src: str) -> int:
    """The widest run of input rows any output row depends on (a gradient's support), for a
    network whose input is 1xHxW: what the analytic receptive field's size must equal."""
    net, model = built(src)
    model.eval()
    widest = 0
    for o in range(net.output_shape.dims[1]):
        x = torch.randn(1, *net.input_shape.dims, requires_grad=True)
        model(x)[:, :, o].sum().backward()
        rows = x.grad[0].abs().sum((0, 2)).nonzero().flatten()
        if len(rows):
            widest = max(widest, int(rows[-1] - rows[0]) + 1)
    return widest


@case("convt")
def convt_cases(kind):
    # nn.ConvTranspose2d: (n - 1) s - 2 p + d (k - 1) + output_padding + 1, weight (in, out/g, kh, kw)
    net, _ = mirrors(net_src("4x5x6", "  convt 3x3/2 p1 outpad=1 g2 -> 6"),
                     nn.ConvTranspose2d(4, 6, 3, 2, 1, output_padding=1, groups=2))
    assert net.output_shape.dims == (6, 10, 12) and net.params == 4 * 3 * 9 + 6
    # FCN's and U-Net's upsampling layers, rectangular and dilated ones, without a bias
    for body, ref in (("convt 4x4/2 p1 -> 3", nn.ConvTranspose2d(4, 3, 4, 2, 1)),
                      ("convt 2x2/2 -> 3", nn.ConvTranspose2d(4, 3, 2, 2)),
                      ("deconv 3x5/1x2 pad=1,2 outpad=0,1 -> 3 nobias",
                       nn.ConvTranspose2d(4, 3, (3, 5), (1, 2), (1, 2), output_padding=(0, 1), bias=False)),
                      ("conv_transpose 3x3/2 dilation=2 outpad=1 -> 2", nn.ConvTranspose2d(4, 2, 3, 2, dilation=2,
                                                                                           output_padding=1))):
        net, _ = mirrors(net_src("4x5x6", f"  {body}"), ref)
        assert net.output_shape.dims == tuple(ref(torch.zeros(1, 4, 5, 6)).shape[1:])
    # the scoped norm and activation attach as to conv
    net, model = built(net_src("4x5x5", "  norm bn\n  act relu\n  convt 2x2/2 -> 8"))
    assert [n for n, _ in model.body.convt1.named_children()] == ["convt", "bn", "relu"]
    assert model.body.convt1.convt.bias is None
    # receptive field: the widest run of inputs one output reads, measured by gradients;
    # the jump divides by the stride and stays an exact fraction
    for body in ("convt 4x4/2 p1 -> 1", "convt 3x3/2 p1 -> 1", "convt 2x2/2 -> 1", "convt 3x3/3 -> 1",
                 "convt 3x3 -> 1", "convt 5x5/2 dilation=2 -> 1", "convt 3x3/2 dilation=3 -> 1"):
        src = net_src("1x9x9", f"  {body}")
        assert archdsl.compile(src).node("convt1").rf.size[0] == measured_field(src), body
    net = archdsl.compile(net_src("1x9x9", "  convt 4x4/2 p1 -> 1\n  convt 2x2/2 -> 1\n  conv 3x3/4 -> 1"))
    assert [n.rf.jump[0] for n in net.nodes()] == [1, Fraction(1, 2), Fraction(1, 4), 1]
    assert [n.rf.size[0] for n in net.nodes()] == [1, 2, 2, Fraction(5, 2)]
    for body, code in (("convt 3x3/2 outpad=2 -> 1", "E303"), ("convt 3x3 pad=3 -> 1", "E401"),
                       ("convt 3x3 g2 -> 4", "E405")):
        with pytest.raises(archdsl.ArchError) as info:
            archdsl.compile(net_src("3x2x2", f"  {body}"))
        assert info.value.code == code, body


@case("mlpconv")
def mlpconv_cases(kind):
    # Lin et al. 2014: each 1x1 layer of the micro network is followed by the activation
    src = net_src("5x6x6", "  act relu\n  mlpconv 7,3")
    net, model = same_output(src, lambda x, m: F.relu(F.conv2d(F.relu(F.conv2d(
        x, m.body.mlpconv1.conv1.conv.weight, m.body.mlpconv1.conv1.conv.bias)),
        m.body.mlpconv1.conv2.conv.weight, m.body.mlpconv1.conv2.conv.bias)))
    assert net.params == (5 * 7 + 7) + (7 * 3 + 3)
    assert [n.id for n in net.nodes()][1:] == ["mlpconv1.conv1", "mlpconv1.conv2"]
    # a single channel count is a one-layer stack
    assert archdsl.compile(net_src("5x6x6", "  mlpconv 4")).output_shape.dims == (4, 6, 6)


# ---------------------------------------------------------------- pooling


@case("maxpool")
def maxpool_cases(kind):
    # Caffe-style ceil mode: 3/2 on 32 gives 16 (floor would give 15)
    src = net_src("3x32x32", "  maxpool 3/2 ceil")
    same_output(src, lambda x, m: F.max_pool2d(x, 3, 2, ceil_mode=True))
    assert archdsl.compile(src).output_shape.dims == (3, 16, 16)
    assert archdsl.compile(net_src("3x32x32", "  maxpool 3/2")).output_shape.dims == (3, 15, 15)
    # stride defaults to the window, as in nn.MaxPool2d; rectangular windows and padding
    same_output(net_src("2x9x10", "  maxpool 2"), lambda x, m: F.max_pool2d(x, 2))
    same_output(net_src("2x9x10", "  maxpool 3x2/1x2 p1,1"), lambda x, m: F.max_pool2d(x, (3, 2), (1, 2), (1, 1)))


@case("avgpool")
def avgpool_cases(kind):
    # exclude_pad leaves padded positions out of the divisor (count_include_pad=False)
    src = net_src("2x7x7", "  avgpool 3/2 p1 exclude_pad")
    same_output(src, lambda x, m: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False))
    net, model = built(src)
    x = torch.ones(1, 2, 7, 7)
    with torch.no_grad():
        corner = model.eval()(x)[0, 0, 0, 0].item()
        included = F.avg_pool2d(x, 3, 2, 1)[0, 0, 0, 0].item()
    assert corner == pytest.approx(1.0) and included == pytest.approx(4 / 9)
    # by default padding counts, as in nn.AvgPool2d and Caffe
    same_output(net_src("2x7x7", "  avgpool 3/2 p1 ceil"), lambda x, m: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True))


@case("upsample")
def upsample_cases(kind):
    # nn.Upsample by a factor or to a size, nearest or bilinear; no parameters, and no
    # MACs: FlopCounterMode counts none for it
    for body, ref in (("upsample 2", nn.Upsample(scale_factor=2.0)),
                      ("upsample 3x2 nearest", nn.Upsample(scale_factor=(3.0, 2.0))),
                      ("upsample 2 bilinear", nn.Upsample(scale_factor=2.0, mode="bilinear")),
                      ("upsample size=7,9 bilinear align_corners", nn.Upsample((7, 9), mode="bilinear",
                                                                                align_corners=True)),
                      ("upsample size=3,4", nn.Upsample((3, 4)))):
        net, _ = mirrors(net_src("2x5x6", f"  {body}"), ref)
        assert net.output_shape.dims == tuple(ref(torch.zeros(1, 2, 5, 6)).shape[1:]) and net.macs == 0
    # receptive field: nearest copies one pixel, bilinear blends two (measured by gradients);
    # the jump is multiplied by n/m, an exact fraction
    for body, size in (("upsample 2", 1), ("upsample 3", 1), ("upsample 2 bilinear", 2), ("upsample 3 bilinear", 2),
                       ("upsample size=13,13 bilinear align_corners", 2)):
        src = net_src("1x5x5", f"  {body}")
        net = archdsl.compile(src)
        assert net.node("upsample1").rf.size == (size, size) == (measured_field(src),) * 2, body
    net = archdsl.compile(net_src("1x5x5", "  upsample 2\n  upsample size=15,15 bilinear\n  conv 3x3/3 -> 1"))
    assert [n.rf.jump[0] for n in net.nodes()] == [1, Fraction(1, 2), Fraction(1, 3), 1]
    assert [n.rf.size[0] for n in net.nodes()] == [1, 1, Fraction(3, 2), Fraction(13, 6)]
    # output 0's centre on the input's grid: 0.5 n/m - 0.5 pixels from input 0's
    assert net.node("upsample1").rf.start == (0.25, 0.25)
    # the report prints a fraction of a pixel as a decimal (and JSON holds a number)
    report = archdsl.compile(net_src("1x5x5", "  upsample 2\n  upsample 2 bilinear")).report()
    assert report.rows[-1].rf == (1.5, 1.5) and report.rows[-1].jump == (0.25, 0.25)
    assert '"receptive_field": {"size": [1.5, 1.5], "jump": [0.25, 0.25]}' in report.to_json(indent=None)
    assert "receptive field: 1.5x1.5 (jump 0.25)" in report.to_table()
    for body, code in (("upsample", "E208"), ("upsample 2 size=4,4", "E207"), ("upsample 2 align_corners", "E207"),
                       ("upsample 2/2", "E207"), ("upsample 2 nearest bilinear", "E207")):
        with pytest.raises(archdsl.ArchError) as info:
            archdsl.compile(net_src("3x2x2", f"  {body}"))
        assert info.value.code == code, body


def test_window_sizes_agree_with_torch_in_floor_and_ceil_mode():
    """Output sizes of pooling over a grid of sizes, windows, strides and paddings, in
    both rounding modes, equal what nn.MaxPool2d produces (including PyTorch's rule that a
    last ceil-mode window starting in the padding is dropped)."""
    checked = 0
    for n, k, s in itertools.product((5, 6, 7, 8, 13), (1, 2, 3, 4), (1, 2, 3)):
        for p in range(0, k // 2 + 1):
            if k > n + 2 * p:
                continue
            for ceil in (False, True):
                src = net_src(f"1x{n}x{n + 1}", f"  maxpool {k}/{s} p{p}{' ceil' if ceil else ''}")
                inferred = archdsl.compile(src).output_shape.dims
                actual = nn.MaxPool2d(k, s, p, ceil_mode=ceil)(torch.zeros(1, 1, n, n + 1)).shape[1:]
                assert inferred == tuple(actual), (n, k, s, p, ceil)
                checked += 1
    assert checked > 200


@case("gap", "gmp")
def global_pool_cases(kind):
    reduce = {"gap": lambda x, m: x.mean((2, 3), keepdim=True), "gmp": lambda x, m: x.amax((2, 3), keepdim=True)}
    net, _ = same_output(net_src("3x5x7", f"  {kind}"), reduce[kind])
    assert net.output_shape.dims == (3, 1, 1)


@case("adaptive_avgpool", "adaptive_maxpool")
def adaptive_cases(kind):
    fn = F.adaptive_avg_pool2d if kind == "adaptive_avgpool" else F.adaptive_max_pool2d
    same_output(net_src("3x13x11", f"  {kind} 3x2"), lambda x, m: fn(x, (3, 2)))
    same_output(net_src("3x13x11", f"  {kind} 6x6"), lambda x, m: fn(x, 6))
    assert archdsl.compile(net_src("3x13x11", f"  {kind} 7")).output_shape.dims == (3, 7, 7)


@case("spp")
def spp_cases(kind):
    # He et al. 2014: a fixed-length C * sum(n^2) vector whatever the input size
    src = "network t {\n  input 4x13x13\n  spp 4,2,1\n  fc 5 noact\n}\n"
    for size in (13, 10, 7, 4, 19):
        net = archdsl.compile(src, input=f"4x{size}x{size + 2}")
        assert net.node("spp1").shape.dims == (4 * (16 + 4 + 1),)
        assert net.params == 84 * 5 + 5  # the fc after it never changes size
        net, model = built(src, input=f"4x{size}x{size + 2}")
        x = torch.randn(2, 4, size, size + 2)
        with torch.no_grad():
            got = model.body.spp1(x)
        # the paper's pyramid (§2.3): per level, n x n max-pooled bins flattened, levels concatenated
        expected = torch.cat([F.adaptive_max_pool2d(x, n).flatten(1) for n in (4, 2, 1)], 1)
        torch.testing.assert_close(got, expected)


# ---------------------------------------------------------------- fully connected, normalisation


@case("fc")
def fc_cases(kind):
    # flattens CxHxW as torch.flatten(x, 1) does, then a linear layer
    src = net_src("3x4x5", "  fc 7 noact")
    same_output(src, lambda x, m: F.linear(x.flatten(1), m.body.fc1.weight, m.body.fc1.bias))
    assert archdsl.compile(src).params == 60 * 7 + 7
    # on a flat input it is a plain nn.Linear; `fc -> N`, `fc(expr)` and the `linear` alias
    net, model = built("network t(classes=3) {\n  input 3x2x2\n  flatten\n  fc -> 6\n  linear(classes*2)\n}\n")
    assert type(model.body.fc1) is nn.Linear and net.output_shape.dims == (6,)
    net, model = built(net_src("3x2x2", "  bias off\n  fc 4"))
    assert model.body.fc1.bias is None and net.params == 12 * 4


@case("bn")
def bn_cases(kind):
    src = net_src("3x4x4", "  bn eps=1e-3 momentum=0.01")
    net, model = same_output(src, lambda x, m: F.batch_norm(x, m.body.bn1.running_mean, m.body.bn1.running_var,
                                                            m.body.bn1.weight, m.body.bn1.bias, False, 0.0, 1e-3))
    bn = model.body.bn1
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-3 and bn.momentum == 0.01
    assert net.params == 6  # gamma and beta; running statistics are buffers
    net, model = built(net_src("3x4x4", "  fc 5\n  batchnorm"))
    # bias auto: the fc before `bn` loses its bias (it would be cancelled by the mean)
    assert isinstance(model.body.bn1, nn.BatchNorm1d) and net.params == 48 * 5 + 10


@case("lrn")
def lrn_cases(kind):
    # Caffe / torch.nn.LocalResponseNorm: b_c = a_c / (k + alpha/n * sum_{c' in window} a_c'^2)^beta,
    # the window running from c - n//2 to c + (n-1)//2, zero beyond the edges
    size, alpha, beta, k = 5, 2e-2, 0.75, 2.0

    def formula(x, m):
        sq = F.pad(x.pow(2), (0, 0, 0, 0, size // 2, (size - 1) // 2))
        window = torch.stack([sq[:, c:c + size].sum(1) for c in range(x.shape[1])], 1)
        return x / (k + alpha / size * window).pow(beta)

    same_output(net_src("7x3x3", f"  lrn {size} alpha={alpha} beta={beta} k={k}"), formula)
    same_output(net_src("7x3x3", "  lrn 3"), lambda x, m: F.local_response_norm(x, 3, 1e-4, 0.75, 1.0))


@case("layernorm")
def layernorm_cases(kind):
    # torchvision's ConvNeXt LayerNorm2d: normalise the C values at each position
    convnext = pytest.importorskip("torchvision.models.convnext")
    net, model = mirrors(net_src("6x5x7", "  layernorm eps=1e-6"), convnext.LayerNorm2d(6, eps=1e-6))
    assert net.params == 12 and model.body.layernorm1.eps == 1e-6
    # ... and pairs with the nn.LayerNorm that ConvNeXt's CNBlock applies between permutes
    misc = pytest.importorskip("torchvision.ops.misc")
    mirrors(net_src("6x5x7", "  layernorm eps=1e-6"),
            nn.Sequential(misc.Permute([0, 2, 3, 1]), nn.LayerNorm(6, eps=1e-6), misc.Permute([0, 3, 1, 2])))
    assert net.node("layernorm1").rf.size == (1, 1)
    # on flat features, nn.LayerNorm; `ln` is the alias, eps defaults to nn.LayerNorm's 1e-5
    net, model = mirrors(net_src("6x2x2", "  flatten\n  ln"), nn.Sequential(nn.Flatten(), nn.LayerNorm(24)))
    assert type(model.body.layernorm1) is nn.LayerNorm and model.body.layernorm1.eps == 1e-5
    # as the scoped norm it keeps the conv's bias: it normalises across channels, so a
    # per-channel bias is not cancelled (ConvNeXt's depthwise conv has one)
    net, model = built(net_src("4x6x6", "  norm layernorm eps=1e-6\n  conv 3x3 p1 -> 4\n  conv 1x1 -> 4\n  layernorm"))
    assert [n for n, _ in model.body.conv1.named_children()] == ["conv", "layernorm"]
    assert model.body.conv1.conv.bias is not None and model.body.conv2.conv.bias is not None


def convnext_block(dim: int, sd: float = 0.0) -> str:
    """ConvNeXt's block (Liu et al. 2022, Fig. 4; torchvision's CNBlock): a depthwise 7x7,
    LayerNorm over channels, an inverted bottleneck with GELU, layer scale, stochastic depth."""
    return (f"block cnblock(dim) {{\n  residual {{\n    conv 7x7 p3 groups=dim -> dim\n    layernorm eps=1e-6\n"
            f"    conv 1x1 -> 4 * dim gelu\n    conv 1x1 -> dim\n    layerscale 1e-6\n    droppath p={sd}\n  }}\n}}\n"
            f"network t {{\n  input {dim}x7x7\n  cnblock({dim})\n}}\n")


@case("layerscale")
def layerscale_cases(kind):
    net, model = built(net_src("6x3x3", "  layerscale"))
    scale = model.body.layerscale1.layer_scale
    assert scale.shape == (6, 1, 1) and torch.all(scale == torch.ones(6, 1, 1) * 1e-6) and net.params == 6
    same_output(net_src("6x3x3", "  layerscale 0.5"), lambda x, m: 0.5 * x)
    net, model = built(net_src("6x3x3", "  flatten\n  layer_scale 2"))
    assert model.body.layerscale1.layer_scale.shape == (54,)
    # ConvNeXt's CNBlock, eval mode: equal outputs, parameters and MACs on the same weights
    convnext = pytest.importorskip("torchvision.models.convnext")
    torch.manual_seed(3)
    ref = convnext.CNBlock(8, layer_scale=1e-6, stochastic_depth_prob=0.1).eval()
    with torch.no_grad():
        ref.layer_scale.normal_()
    net, model = built(convnext_block(8, 0.1))
    load_weights(model, ref)  # layer_scale after the block's layers, its nn.Linear as 1x1 convs
    x = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref(x), atol=1e-5, rtol=1e-5)
    assert net.params == count_parameters(ref) and net.macs == torch_macs(ref, x[:1])
    assert "body.cnblock1.residual1.branch1.layerscale1.layer_scale" in model.state_dict()


# ---------------------------------------------------------------- activations


_ACTS = {
    "relu": F.relu, "relu6": F.relu6, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "elu": F.elu,
    "gelu": F.gelu, "silu": F.silu, "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid,
}


@case(*_ACTS)
def plain_activation_cases(kind):
    fn = _ACTS[kind]
    # as a layer of its own, on maps and on flat tensors
    same_output(net_src("3x4x4", f"  {kind}"), lambda x, m: fn(x))
    same_output(net_src("3x4x4", f"  flatten\n  {kind}"), lambda x, m: fn(x.flatten(1)))
    # as the scoped default after a conv and an fc
    net, model = built(net_src("3x4x4", f"  act {kind}\n  conv 1x1 -> 2\n  fc 3"))
    assert [n for n, _ in model.body.conv1.named_children()] == ["conv", kind]
    assert [n for n, _ in model.body.fc1.named_children()] == ["fc", kind]
    # and as a per-layer override of the default
    net, model = built(net_src("3x4x4", f"  act relu\n  conv 1x1 -> 2 {kind}"))
    assert [n for n, _ in model.body.conv1.named_children()] == ["conv", kind]
    if kind == "silu":
        same_output(net_src("3x4x4", "  swish"), lambda x, m: F.silu(x))


@case("lrelu")
def lrelu_cases(kind):
    same_output(net_src("3x4x4", "  lrelu 0.2"), lambda x, m: F.leaky_relu(x, 0.2))
    same_output(net_src("3x4x4", "  leaky_relu"), lambda x, m: F.leaky_relu(x, 0.01))
    net, model = built(net_src("3x4x4", "  act lrelu 0.1\n  conv 1x1 -> 2"))
    assert model.body.conv1.lrelu.negative_slope == pytest.approx(0.1)


@case("prelu")
def prelu_cases(kind):
    # He et al. 2015: one learnt slope per channel
    net, model = same_output(net_src("3x4x4", "  prelu"), lambda x, m: F.prelu(x, m.body.prelu1.weight))
    assert net.params == 3 and model.body.prelu1.weight.numel() == 3
    net, _ = built(net_src("3x4x4", "  act prelu\n  conv 1x1 -> 5"))
    assert net.params == 3 * 5 + 5 + 5


@case("softmax")
def softmax_cases(kind):
    same_output(net_src("3x4x4", "  softmax"), lambda x, m: torch.softmax(x, 1))
    same_output(net_src("3x4x4", "  fc 6 noact\n  softmax"),
                lambda x, m: torch.softmax(F.linear(x.flatten(1), m.body.fc1.weight, m.body.fc1.bias), 1))


# ---------------------------------------------------------------- reshaping and regularisation


@case("dropout")
def dropout_cases(kind):
    net, model = same_output(net_src("3x4x4", "  dropout 0.3"), lambda x, m: x)  # identity in eval mode
    assert model.body.dropout1.p == pytest.approx(0.3)
    _, model = built(net_src("3x4x4", "  dropout"))
    assert model.body.dropout1.p == pytest.approx(0.5)


@case("droppath")
def droppath_cases(kind):
    ops = pytest.importorskip("torchvision.ops")
    for p, mode in ((0.3, "row"), (0.3, "batch"), (0.0, "row"), (1.0, "row")):
        net, model = built(net_src("3x4x4", f"  droppath {p} {mode}"))
        assert net.params == 0 and net.macs == 0 and net.node("droppath1").rf.size == (1, 1)
        ref = ops.StochasticDepth(p, mode)
        x = torch.randn(64, 3, 4, 4)
        # training mode: the same random draws give the same output as torchvision's
        for train in (True, False):
            torch.manual_seed(5)
            y = model.train(train)(x)
            torch.manual_seed(5)
            torch.testing.assert_close(y, ref.train(train)(x))
        if p == 0.3:
            torch.manual_seed(5)
            y = model.train()(x)
            kept = (y.flatten(1) != 0).any(1)
            if mode == "row":  # per sample: some samples dropped, the others scaled by 1/(1-p)
                assert 0 < kept.sum() < 64
            else:  # one draw for the whole batch
                assert kept.all() or not kept.any()
            torch.testing.assert_close(y[kept], x[kept] / 0.7)
    # keyword form with an expression: EfficientNet's linearly growing rate (Tan & Le 2019)
    net = archdsl.compile(net_src("3x4x4", "  let i = 3\n  stochastic_depth p=0.2 * i / 16 batch"))
    params = net.node("droppath1").op.params
    assert (params.p, params.mode) == (pytest.approx(0.0375), "batch")
    with pytest.raises(archdsl.ArchError, match="probability must lie in"):
        archdsl.compile(net_src("3x4x4", "  droppath 1.5"))
    # in a residual branch: x + stochastic_depth(f(x)); eval mode is x + f(x)
    src = net_src("3x4x4", "  residual { conv 3x3 p1 -> 3; droppath 0.5 }")
    net, model = same_output(src, lambda x, m: x + m.body.residual1.branch1.conv1(x))
    x = torch.randn(16, 3, 4, 4)
    torch.manual_seed(7)
    with torch.no_grad():
        y = model.train()(x)
        f = model.body.residual1.branch1.conv1(x)
    torch.manual_seed(7)
    torch.testing.assert_close(y, x + ops.stochastic_depth(f, 0.5, "row", True))


@case("flatten")
def flatten_cases(kind):
    net, _ = same_output(net_src("3x4x5", "  flatten"), lambda x, m: x.flatten(1))
    assert net.output_shape.dims == (60,)


@case("identity")
def identity_cases(kind):
    same_output(net_src("3x4x5", "  identity"), lambda x, m: x)


@case("select")
def select_cases(kind):
    same_output(net_src("6x3x3", "  select 4,0,2"), lambda x, m: x[:, [4, 0, 2]])
    same_output(net_src("6x3x3", "  select 1,2,3"), lambda x, m: x[:, 1:4])
    net, _ = same_output(net_src("6x3x3", "  select 5"), lambda x, m: x[:, 5:6])
    assert net.output_shape.dims == (1, 3, 3)


@case("split")
def split_cases(kind):
    # one number: that many equal parts, as torch.chunk; a list: the sizes, as torch.split
    same_output(net_src("6x3x3", "  split 2"), lambda x, m: x.chunk(2, 1)[0])
    net, model = same_output(net_src("6x3x3", "  split 3 part=3"), lambda x, m: x.chunk(3, 1)[2])
    assert net.output_shape.dims == (2, 3, 3) and not list(model.state_dict())  # no buffer to pair
    same_output(net_src("6x3x3", "  split 1,2,3 part=2"), lambda x, m: torch.split(x, [1, 2, 3], 1)[1])
    same_output(net_src("6x3x3", "  flatten\n  split 2 part=2"), lambda x, m: x.flatten(1).chunk(2, 1)[1])
    for body, code in (("split 4", "E405"), ("split 1,2 part=2", "E409"), ("split 2 part=3", "E303")):
        with pytest.raises(archdsl.ArchError) as info:
            archdsl.compile(net_src("6x3x3", f"  {body}"))
        assert info.value.code == code, body


@case("shuffle")
def shuffle_cases(kind):
    shufflenetv2 = pytest.importorskip("torchvision.models.shufflenetv2")
    for c, g in ((8, 2), (12, 3), (5, 1)):
        net, _ = same_output(net_src(f"{c}x3x4", f"  shuffle {g}"), lambda x, m: shufflenetv2.channel_shuffle(x, g))
        assert net.params == 0 and net.macs == 0
    _, model = same_output(net_src("6x2x2", "  channel_shuffle 2"), lambda x, m: x[:, [0, 3, 1, 4, 2, 5]])
    assert type(model.body.shuffle1).__name__ == "ChannelShuffle" and model.body.shuffle1.groups == 2
    with pytest.raises(archdsl.ArchError, match="3 groups do not divide the 8 input channels"):
        archdsl.compile(net_src("8x3x3", "  shuffle 3"))


#: ShuffleNet V2's units as the paper draws them (Ma et al. 2018, Fig. 3(c) and (d))
SHUFFLE_UNITS = """
block shuffle_unit(c) {        # stride 1: channel split, one branch the identity
  norm bn
  act relu
  concat {
    split 2 part=1
  | split 2 part=2
    conv 1x1 -> c // 2
    conv 3x3 p1 groups=c // 2 -> c // 2 noact
    conv 1x1 -> c // 2
  }
  shuffle 2
}
block shuffle_down(c) {        # stride 2: no split, both branches downsample
  norm bn
  act relu
  concat {
    conv 3x3/2 p1 groups=in.c -> in.c noact
    conv 1x1 -> c // 2
  | conv 1x1 -> c // 2
    conv 3x3/2 p1 groups=c // 2 -> c // 2 noact
    conv 1x1 -> c // 2
  }
  shuffle 2
}
"""


def test_shufflenet_v2_units_equal_torchvisions():
    shufflenetv2 = pytest.importorskip("torchvision.models.shufflenetv2")
    unit = SHUFFLE_UNITS + "network t {\n  input 16x8x8\n  shuffle_unit(16)\n}\n"
    mirrors(unit, shufflenetv2.InvertedResidual(16, 16, 1))
    down = SHUFFLE_UNITS + "network t {\n  input 12x8x8\n  shuffle_down(24)\n}\n"
    net, _ = mirrors(down, shufflenetv2.InvertedResidual(12, 24, 2))
    assert net.output_shape.dims == (24, 4, 4)


@case("decimate")
def decimate_cases(kind):
    # He et al. 2016 option A: the shortcut keeps every second row and column
    net, _ = same_output(net_src("3x7x8", "  decimate 2"), lambda x, m: x[:, :, ::2, ::2])
    assert net.output_shape.dims == (3, 4, 4)
    same_output(net_src("3x7x8", "  decimate 1x3"), lambda x, m: x[:, :, :, ::3])


@case("padc")
def padc_cases(kind):
    # zero channels split evenly before and after the input's, as F.pad(x, (0,0,0,0,p,p)) does
    net, _ = same_output(net_src("4x3x3", "  padc -> 8"),
                         lambda x, m: torch.cat([torch.zeros(2, 2, 3, 3), x, torch.zeros(2, 2, 3, 3)], 1))
    assert net.params == 0
    same_output(net_src("4x3x3", "  pad_channels -> 7"),
                lambda x, m: torch.cat([torch.zeros(2, 1, 3, 3), x, torch.zeros(2, 2, 3, 3)], 1))


# ---------------------------------------------------------------- LeNet-5 (1998) kinds


@case("subsample")
def subsample_cases(kind):
    # LeCun et al. 1998 §II-B: a 2x2 window sum, times a trainable coefficient, plus a
    # trainable bias, per map, then the squashing function
    def formula(x, m):
        scale = m.body.subsample1[0].scale
        s = F.avg_pool2d(x, 2) * 4
        return 1.7159 * torch.tanh(2 / 3 * (s * scale.weight.view(1, -1, 1, 1) + scale.bias.view(1, -1, 1, 1)))

    net, model = same_output(net_src("6x28x28", "  act lecun_tanh\n  subsample 2"), formula)
    assert net.params == 12 and net.output_shape.dims == (6, 14, 14)


@case("lecun_tanh")
def lecun_tanh_cases(kind):
    net, _ = same_output(net_src("3x4x4", "  lecun_tanh"), lambda x, m: 1.7159 * torch.tanh(2 / 3 * x))
    # f(1) = 1 (Appendix A), to the four digits A is given with
    _, model = built(net_src("1x1x1", "  lecun_tanh"))
    with torch.no_grad():
        assert model.eval()(torch.ones(1, 1, 1, 1)).item() == pytest.approx(1.0, abs=1e-4)
    same_output(net_src("3x4x4", "  lecun_tanh amplitude=2 slope=0.5"), lambda x, m: 2 * torch.tanh(0.5 * x))


@case("rbf")
def rbf_cases(kind):
    # y_i = sum_j (x_j - w_ij)^2 with fixed codes (buffers, not parameters)
    net, model = same_output(net_src("1x4x4", "  fc 12 noact\n  rbf 10"), lambda x, m: (
        (F.linear(x.flatten(1), m.body.fc1.weight, m.body.fc1.bias).unsqueeze(1) - m.body.rbf1.codes) ** 2).sum(-1))
    assert net.params == 16 * 12 + 12
    codes = model.body.rbf1.codes
    assert codes.shape == (10, 12) and set(codes.unique().tolist()) == {-1.0, 1.0}
    assert "body.rbf1.codes" in model.state_dict()


# ---------------------------------------------------------------- merges


@case("concat")
def concat_cases(kind):
    src = net_src("3x8x8", "  concat {\n    conv 1x1 -> 4\n  | conv 3x3 p1 -> 2; relu\n  | maxpool 3/1 p1\n  }")

    def ref(x, m):
        b = m.body.concat1
        return torch.cat([F.conv2d(x, b.branch1.conv1.weight, b.branch1.conv1.bias),
                          F.relu(F.conv2d(x, b.branch2.conv1.weight, b.branch2.conv1.bias, padding=1)),
                          F.max_pool2d(x, 3, 1, 1)], 1)

    net, _ = same_output(src, ref)
    assert net.output_shape.dims == (9, 8, 8)
    # flat branches concatenate too
    net, _ = built(net_src("3x2x2", "  concat { fc 4 | fc 5 }"))
    assert net.output_shape.dims == (9,)


@case("add")
def add_cases(kind):
    src = net_src("3x8x8", "  add { conv 3x3 p1 -> 3 | identity }")
    same_output(src, lambda x, m: x + F.conv2d(x, m.body.add1.branch1.conv1.weight, m.body.add1.branch1.conv1.bias,
                                               padding=1))


@case("residual")
def residual_cases(kind):
    # Szegedy et al. 2016 (Inception-ResNet): x + S * f(x)
    src = net_src("3x8x8", "  residual scale=0.2 { conv 3x3 p1 -> 3 }")
    net, model = same_output(src, lambda x, m: x + 0.2 * F.conv2d(
        x, m.body.residual1.branch1.conv1.weight, m.body.residual1.branch1.conv1.bias, padding=1))
    assert [n for n, _ in model.body.residual1.named_children()] == ["branch1", "branch2"]
    assert net.node("residual1").op.params.scales == (0.2, 1.0)
    net, model = built(net_src("3x8x8", "  residual { conv 3x3 p1 -> 3 }"))
    assert isinstance(model.body.residual1.branch2, torch.nn.Identity)


@case("mul")
def mul_cases(kind):
    # squeeze-and-excitation (Hu et al. 2018): a Cx1x1 gate broadcast over the CxHxW map
    src = net_src("8x6x6", "  se: mul {\n    identity\n  | gap; conv 1x1 -> 2 relu; conv 1x1 -> 8 sigmoid\n  }")

    def ref(x, m):
        b = m.body.se.branch2
        g = F.relu(F.conv2d(x.mean((2, 3), keepdim=True), b.conv1.conv.weight, b.conv1.conv.bias))
        return x * torch.sigmoid(F.conv2d(g, b.conv2.conv.weight, b.conv2.conv.bias))

    net, _ = same_output(src, ref)
    assert net.output_shape.dims == (8, 6, 6) and net.macs == 8 * 2 + 2 * 8
    # same-shape branches multiply element-wise
    same_output(net_src("3x4x4", "  mul { identity | sigmoid }"), lambda x, m: x * torch.sigmoid(x))
    # torchvision's SqueezeExcitation (torchvision.ops.misc): fc1, relu, fc2, then the scale
    # activation, sigmoid (EfficientNet, RegNetY) or hardsigmoid (MobileNetV3)
    misc = pytest.importorskip("torchvision.ops.misc")
    for gate, scale_act in (("sigmoid", nn.Sigmoid), ("hardsigmoid", nn.Hardsigmoid)):
        src = net_src("8x6x6", f"  se: mul {{ identity | gap; conv 1x1 -> 2 relu; conv 1x1 -> 8 {gate} }}")
        net, model = mirrors(src, misc.SqueezeExcitation(8, 2, scale_activation=scale_act))
    with pytest.raises(archdsl.ArchError, match="mul: the branches' shapes differ"):
        archdsl.compile(net_src("8x6x6", "  mul { identity | gap; conv 1x1 -> 4 }"))


# ---------------------------------------------------------------- the registry


KIND_NAMES = sorted(k.name for k in kinds())


def test_every_kind_has_a_case():
    missing = [k for k in KIND_NAMES if k not in CASES]
    assert not missing, f"layer kinds without a torch test case in {__file__}: {missing}"


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_kind_against_torch(kind):
    if kind not in CASES:
        pytest.fail(f"no torch test case for layer kind '{kind}': add one to tests/test_layers.py")
    CASES[kind](kind)
