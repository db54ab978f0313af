"""Initialisation in the spec (archdsl.init, archdsl.init_torch): scoping, exact constants,
the fillers' distributions on large tensors, seeds, and equality with torchvision's own init.

Statistical tolerances: a sample of n independent draws with variance s^2 and kurtosis k has
a sample standard deviation whose relative standard error is sqrt((k - 1) / (4 n)) (the
delta method: Var(S^2) ~ s^4 (k - 1) / n), and a mean with standard error s / sqrt(n). The
checks allow 6 standard errors, which a correct filler misses with probability about 2e-9
(the draws are seeded, so a run is reproducible anyway), while a wrong gain (sqrt(2) vs 1)
or fan (fan_in vs fan_out: a factor 2 here) is off by hundreds of them. Kurtosis: 3 for a
normal, 1.8 for a uniform; a normal truncated at 2 std has 2.36, so 3 bounds it.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import archdsl
from archdsl import ArchError

torch = pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


def _std_ok(t, expected: float, kurtosis: float = 3.0) -> None:
    n = t.numel()
    se = math.sqrt((kurtosis - 1) / (4 * n))
    rel = t.float().std().item() / expected - 1
    assert abs(rel) < 6 * se, f"std {t.std().item():.6g}, expected {expected:.6g} ({rel:+.2%}, tolerance {6 * se:.2%})"


def _mean_ok(t, expected: float, std: float) -> None:
    assert abs(t.float().mean().item() - expected) < 6 * std / math.sqrt(t.numel())


def _one(filler: str, cin: int = 64, cout: int = 256, k: int = 3):
    """A conv weight (cout, cin, k, k) drawn with `filler`: 147,456 values by default."""
    net = archdsl.compile(f"network n {{ input {cin}x8x8; conv {k}x{k} p1 -> {cout} weight_init={filler} "
                          f"bias_init=0 }}")
    return archdsl.build(net, seed=0).body.conv1


# ---------------------------------------------------------------- the fillers' distributions


@pytest.mark.parametrize("filler, std, kurtosis", [
    ("he_normal(fan_out, relu)", math.sqrt(2 / (256 * 9)), 3),      # He et al. 2015, fan_out
    ("he_normal", math.sqrt(2 / (64 * 9)), 3),                        # default: fan_in, relu
    ("msra", math.sqrt(2 / (64 * 9)), 3),                             # Caffe's MSRA filler
    ("he_normal(fan_in, linear)", math.sqrt(1 / (64 * 9)), 3),
    ("he_normal(fan_in, tanh)", 5 / 3 / math.sqrt(64 * 9), 3),        # calculate_gain("tanh") = 5/3
    ("he_normal(fan_in, leaky_relu, 0.2)", math.sqrt(2 / 1.04 / (64 * 9)), 3),
    ("he_uniform(fan_in, relu)", math.sqrt(2 / (64 * 9)), 1.8),       # bound sqrt(6/fan_in): same std
    ("he_uniform(fan_in, linear)", math.sqrt(1 / (64 * 9)), 1.8),     # Caffe's "xavier"
    ("xavier_uniform", math.sqrt(2 / (64 * 9 + 256 * 9)), 1.8),       # Glorot & Bengio 2010
    ("xavier_normal(2)", 2 * math.sqrt(2 / (64 * 9 + 256 * 9)), 3),
    ("normal(0, 0.01)", 0.01, 3),
    ("uniform(-0.1, 0.3)", 0.4 / math.sqrt(12), 1.8),
    ("fan_in_uniform(2.4)", 2.4 / (64 * 9) / math.sqrt(3), 1.8),      # LeCun et al. 1998
    # N(0, 0.1^2) truncated at +-2 std: std 0.1 * sqrt(1 - 2 * 2 phi(2) / (Phi(2) - Phi(-2)))
    ("trunc_normal(0, 0.1)", 0.1 * math.sqrt(1 - 4 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2))),
     3),
])
def test_filler_distributions(filler, std, kurtosis):
    conv = _one(filler)
    _std_ok(conv.weight, std, kurtosis)
    mean = 0.1 if filler.startswith("uniform") else 0.0
    _mean_ok(conv.weight, mean, std)
    assert bool((conv.bias == 0).all())


def test_bounded_fillers_stay_in_their_bounds():
    w = _one("uniform(-0.1, 0.3)").weight
    assert w.min() >= -0.1 and w.max() <= 0.3
    w = _one("trunc_normal(0, 0.1)").weight
    assert w.abs().max() <= 0.2
    w = _one("trunc_normal(0, 1, -0.5, 2)").weight
    assert w.min() >= -0.5 and w.max() <= 2
    w = _one("he_uniform(fan_in, relu)").weight
    assert w.abs().max() <= math.sqrt(6 / (64 * 9))


def test_orthogonal_rows_and_constants():
    w = _one("orthogonal", cin=64, cout=32).weight.flatten(1)  # 32 x 576: orthonormal rows
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-5)
    conv = _one("0.5")
    assert bool((conv.weight == 0.5).all())
    net = archdsl.compile("network n { input 3x8x8; let b = 0.25; conv 3x3 -> 4 weight_init=constant(2) bias_init=b }")
    conv = archdsl.build(net).body.conv1
    assert bool((conv.weight == 2).all()) and bool((conv.bias == 0.25).all())


# ---------------------------------------------------------------- scoping


def _fillers(src: str) -> dict[str, list[tuple[int, str, str]]]:
    net = archdsl.compile(src)
    return {node: [(i, t, str(f)) for i, t, f in fs] for node, fs in net.init.items()}


def test_init_is_scoped_like_act_and_norm():
    got = _fillers("""
block unit() { conv 3x3 p1 -> 4 }
network n {
  input 3x8x8
  init conv weight=normal(0, 0.01) bias=0
  conv1: conv 3x3 p1 -> 4
  repeat 1 { init conv weight=xavier_uniform; inner: conv 3x3 p1 -> 4 }
  after: conv 3x3 p1 -> 4
  u: unit()
  init conv bias=1
  c: conv 3x3 p1 -> 4
  own: conv 3x3 p1 -> 4 weight_init=msra
  init conv none
  plain: conv 3x3 p1 -> 4
}""")
    assert got["conv1"] == [(0, "weight", "normal(0, 0.01)"), (0, "bias", "0")]
    assert got["inner_1"] == [(0, "weight", "xavier_uniform"), (0, "bias", "0")]
    assert got["after"] == got["conv1"]                      # the repeat's setting ended with it
    assert got["u.conv1"] == got["conv1"]                    # a block call inherits the scope
    assert got["c"] == [(0, "weight", "normal(0, 0.01)"), (0, "bias", "1")]  # only the bias replaced
    assert got["own"] == [(0, "weight", "he_normal(fan_in, relu)"), (0, "bias", "1")]
    assert "plain" not in got


def test_attached_norm_and_last_bn():
    got = _fillers("""
network n(zero=true) {
  input 8x8x8
  act relu; norm bn
  init bn weight=1 bias=0
  init last_bn weight=0 if zero else 1
  add { a: conv 3x3 p1 -> 8; b: conv 3x3 p1 -> 8 noact | sc: conv 1x1 -> 8 noact }
  residual { r: conv 3x3 p1 -> 8 noact }
  last: conv 3x3 p1 -> 8
}""")
    assert got["add1.branch1.a"] == [(1, "weight", "1"), (1, "bias", "0")]          # the attached bn is op 1
    assert got["add1.branch1.b"] == [(1, "bias", "0"), (1, "weight", "0")]  # the residual function's last bn
    assert got["add1.branch2.sc"] == [(1, "weight", "1"), (1, "bias", "0")]  # the shortcut's is left alone
    assert got["residual1.branch1.r"] == [(1, "bias", "0"), (1, "weight", "0")]
    assert got["last"] == [(1, "weight", "1"), (1, "bias", "0")]


def test_conv_without_bias_takes_no_bias_filler():
    # a scoped bias filler skips layers without a bias; a layer's own is an error (E703)
    got = _fillers("network n { input 3x8x8; init conv weight=1 bias=0; norm bn; conv 3x3 -> 4 }")
    assert got == {"conv1": [(0, "weight", "1")]}
    with pytest.raises(ArchError) as e:
        archdsl.compile("network n { input 3x8x8; norm bn; conv 3x3 -> 4 bias_init=1 }")
    assert e.value.code == "E703"


@pytest.mark.parametrize("src, code, text", [
    ("init conv weight=gauss(0, 1)", "E701", "unknown initialiser 'gauss'"),
    ("init conv weight=normal(0, 0)", "E702", "the std must be above 0"),
    ("init conv weight=he_normal(fan_out, rleu)", "E702", "did you mean 'relu'"),
    ("init conv weight=he_normal(fan_out, relu, 0.1)", "E702", "only leaky_relu takes a slope"),
    ("init conv weight=uniform(0)", "E702", "uniform takes 2 arguments"),
    ("init conv gamma=1", "E703", "conv has no parameter 'gamma'"),
    ("init cnv weight=1", "E703", "did you mean 'conv'"),
    ("init prelu bias=1", "E703", "prelu has no parameter 'bias'"),
    ("init conv", "E208", "no filler given"),
    ("init weight=1", "E208", "needs a layer kind"),
    ("init conv bias=orthogonal", "E702", "orthogonal needs a matrix"),
])
def test_init_errors_are_located(src, code, text):
    with pytest.raises(ArchError) as e:
        archdsl.compile(f"network n {{\n  input 3x8x8\n  {src}\n  conv 3x3 -> 4\n}}")
    d = e.value.diagnostics[0]
    assert d.code == code and d.span.line == 3 and text in e.value.render(), e.value.render()


def test_init_is_not_a_reserved_word():
    # DenseNet's block takes a parameter named init; a block called init is still a block
    net = archdsl.compile("block init(c) { conv 1x1 -> c }\nnetwork n(init=4) { input 3x8x8; init(init) }")
    assert net.output_shape.dims == (4, 8, 8) and not net.init


# ---------------------------------------------------------------- seeds


def test_seeded_builds_are_deterministic_and_leave_torchs_generator_alone():
    src = "network n { input 3x16x16; conv 3x3 -> 8 weight_init=normal(0, 1); fc 10 }"
    state = torch.get_rng_state()
    a, b, c = (archdsl.build(src, seed=s).state_dict() for s in (7, 7, 8))
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["body.conv1.weight"], c["body.conv1.weight"])
    assert not torch.equal(a["body.fc1.weight"], c["body.fc1.weight"])  # torch's default init is seeded too
    with pytest.raises(TypeError):
        archdsl.build(src, seed=1.5)


# ---------------------------------------------------------------- the zoo's inits


@pytest.fixture(scope="module")
def alexnet():
    return archdsl.build(SPECS / "alexnet.arch", "alexnet", seed=0)


def test_alexnet_exact_biases_and_gaussian_weights(alexnet):
    body = alexnet.body
    names = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")
    layers = {n: m[0] if isinstance(m, torch.nn.Sequential) else m for n in names for m in [getattr(body, n)]}
    for name, layer in layers.items():  # Krizhevsky et al. 2012, §5
        one = name in ("conv2", "conv4", "conv5", "fc6", "fc7")
        assert bool((layer.bias == (1.0 if one else 0.0)).all()), name
        _std_ok(layer.weight, 0.01)
        _mean_ok(layer.weight, 0.0, 0.01)


def test_resnet50_conv1_std_is_torchvisions():
    # He et al. 2015 with fan_out: sqrt(2 / (64 * 7 * 7)) = 0.02525 (torch's default gives 0.0475)
    m = archdsl.build(SPECS / "resnet.arch", "resnet18", seed=0)
    _std_ok(m.body.resnet_imagenet1.conv1[0].weight, math.sqrt(2 / (64 * 49)))


@pytest.mark.parametrize("zero", [False, True])
def test_resnet18_equals_torchvisions_init_under_the_same_seed(zero):
    tv = pytest.importorskip("torchvision")
    net = archdsl.compile(SPECS / "resnet.arch", "resnet18", zero_init_residual=zero)
    mine = archdsl.build(net, seed=11)
    torch.manual_seed(11)
    ref = tv.models.resnet18(zero_init_residual=zero)
    a, b = list(mine.state_dict().values()), list(ref.state_dict().values())
    assert len(a) == len(b)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    last_bn = mine.body.resnet_imagenet1.layer1.basic1.add1.branch1.conv2[1].weight
    assert bool((last_bn == (0 if zero else 1)).all())


@pytest.mark.parametrize("spec, name, make", [
    ("squeezenet.arch", "squeezenet1_0", "squeezenet1_0"),
    ("densenet.arch", "densenet121", "densenet121"),
    ("alexnet.arch", "alexnet_torchvision", "alexnet"),  # torch's default init throughout, stated
    pytest.param("inception_v3.arch", "inception_v3", "inception_v3", marks=pytest.mark.slow),
])
def test_torchvision_inits_are_equal_under_the_same_seed(spec, name, make):
    tv = pytest.importorskip("torchvision")
    mine = archdsl.build(SPECS / spec, name, seed=3)
    torch.manual_seed(3)
    kw = {"aux_logits": True, "init_weights": True} if name == "inception_v3" else {}
    ref = getattr(tv.models, make)(**kw)
    a, b = list(mine.state_dict().values()), list(ref.state_dict().values())
    assert len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def test_googlenet_torchvision_has_torchvisions_distribution():
    # torchvision builds the aux heads after inception5b and archdsl where they stand, so
    # the draws come in another order: the same distribution, not the same numbers
    tv = pytest.importorskip("torchvision")
    mine = archdsl.build(SPECS / "googlenet.arch", "googlenet_torchvision", seed=0)
    torch.manual_seed(0)
    ref = tv.models.googlenet(aux_logits=True, init_weights=True)
    counts = []
    for model in (mine, ref):
        weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
        counts.append(sorted(w.shape for w in weights))
        big = torch.cat([w.flatten() for w in weights])
        _std_ok(big, 0.01)  # trunc_normal_(std=0.01, a=-2, b=2): truncated at 200 std, a normal
        bns = [p for n, p in model.named_parameters() if ".bn." in n and n.endswith("weight")]
        assert bns and all(bool((p == 1).all()) for p in bns)
    assert counts[0] == counts[1]  # the same conv and fc weights (64 of them)


def test_every_spec_states_an_init():
    for path in sorted(SPECS.glob("*.arch")):
        for net in archdsl.compile_all(path):
            assert net.init, f"{path.name}:{net.name} states no initialisation"
