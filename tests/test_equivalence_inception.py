"""The Inception specs compute exactly the functions of the libraries that ship them:
torchvision's GoogLeNet and Inception3, timm's inception_v4 and inception_resnet_v2.

For each pair the reference model is built as its library builds it, its biases and
batch-norm scales are randomised (torchvision and timm set them to 0 and 1, which would
hide a misplaced or dropped tensor) and its batch-norm statistics are estimated from one
random batch at the spec's input size (Inception3's std-0.1 initialisation with
arbitrary statistics drives the logits to 1e13, where a tolerance means little). archdsl.load_weights then copies every
parameter and buffer onto the archdsl module, and the outputs must agree to 1e-4 relative:

* in eval mode, for one random input at the spec's input size;
* in training mode (batch statistics, the aux heads running), with dropout switched off,
  for the main output and every aux head: torchvision's GoogLeNet returns
  (logits, aux2, aux1) and Inception3 (logits, aux), archdsl (main, {name: aux}).
"""

from __future__ import annotations

import gc

import pytest

import archdsl
from conftest import SPECS

#: slow: real torch work (equivalence with torchvision/timm, or inductor); the README's test
#: command still runs it
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
models = pytest.importorskip("torchvision.models")
timm = pytest.importorskip("timm")

nn = torch.nn


def _googlenet():
    return models.googlenet(weights=None, aux_logits=True, init_weights=True)


def _inception_v3():
    return models.inception_v3(weights=None, aux_logits=True, init_weights=True)


def _timm(name):
    return lambda: timm.create_model(name, pretrained=False)


# (spec file, reference factory, the spec's input size, a smaller size for the
# training-mode passes that pair the layers and test training mode (Inception3's aux head
# needs the full 299x299, the others accept small inputs), aux names in the reference's
# output order)
CASES = {
    "googlenet_torchvision": ("googlenet.arch", _googlenet, 224, 64, ("aux2", "aux1")),
    "inception_v3": ("inception_v3.arch", _inception_v3, 299, 299, ("AuxLogits",)),
    "inception_v4": ("inception_v4.arch", _timm("inception_v4"), 299, 75, ()),
    "inception_resnet_v2": ("inception_resnet.arch", _timm("inception_resnet_v2"), 299, 75, ()),
}


def _randomise(model: nn.Module, calibration: torch.Tensor) -> nn.Module:
    g = torch.Generator().manual_seed(1)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(getattr(m, "bias", None), torch.Tensor):
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.05)
        for m in bns:
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
        # one training-mode pass with a cumulative average (momentum None) sets every
        # running statistic to that batch's statistics
        momenta = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()(calibration)
        for m, mom in zip(bns, momenta):
            m.momentum = mom
    return model.eval()


def _pair(name):
    """(archdsl module, reference module), the reference's weights loaded onto ours."""
    file, factory, size, pair_size, _ = CASES[name]
    torch.manual_seed(0)
    theirs = _randomise(factory(), torch.randn(2, 3, size, size))
    example = torch.randn(2, 3, pair_size, pair_size)
    # allocated without initialisation: a tensor that load_weights failed to copy would
    # hold garbage and show in the outputs
    ours = archdsl.build(SPECS / file, name, init=False).to_empty(device="cpu")
    assert ours.input_shape == (3, size, size)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    archdsl.load_weights(ours, theirs, example=example)
    return ours.eval(), theirs.eval()


def _assert_close(got: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    assert got.shape == expected.shape, what
    peak = expected.abs().max().item()
    assert peak > 1e-2, f"{what}: degenerate reference output (max |y| = {peak:g})"
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4 * max(1.0, peak), f"{what}: max |diff| = {diff:g}, max |y| = {peak:g}"


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_equal_the_reference_in_eval_and_training_mode(name):
    # one test per network, both modes: building and pairing the models is the costly part
    ours, theirs = _pair(name)
    _check_eval(name, ours, theirs)
    _check_training(name, ours, theirs)
    del ours, theirs
    gc.collect()


def _check_eval(name, ours, theirs):
    size = CASES[name][2]
    torch.manual_seed(2)
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    assert isinstance(got, torch.Tensor)  # eval mode: the main output only, no aux heads
    assert got.shape == (1, 1000)
    _assert_close(got, expected, f"{name} (eval)")


def _check_training(name, ours, theirs):
    """Training mode: batch statistics in every BN, aux heads run; dropout off in both.
    The input is the small training-mode size (the function is the same at any size).
    Both models start from the same running statistics, which the pass then updates."""
    _, _, _, size, aux_order = CASES[name]
    for model in (ours, theirs):
        model.train()
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.eval()
    torch.manual_seed(3)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        expected = theirs(x)
        got = ours(x)
    if aux_order:
        main, aux = got
        assert sorted(aux) == sorted(aux_order)
        expected_main, *expected_aux = expected
        _assert_close(main, expected_main, f"{name} (training, main)")
        for aux_name, ref in zip(aux_order, expected_aux):
            _assert_close(aux[aux_name], ref, f"{name} (training, {aux_name})")
    else:
        assert isinstance(got, torch.Tensor)  # no aux heads: training mode returns a tensor
        _assert_close(got, expected, f"{name} (training)")
    # the batch statistics moved the running statistics in the same way
    ours_bn = sorted(float(m.running_mean.sum()) for m in ours.modules() if isinstance(m, nn.BatchNorm2d))
    theirs_bn = sorted(float(m.running_mean.sum()) for m in theirs.modules() if isinstance(m, nn.BatchNorm2d))
    assert ours_bn == pytest.approx(theirs_bn, rel=1e-4, abs=1e-5)
