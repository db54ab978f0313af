"""A built module compiles with torch.jit.script and computes what the eager one does, aux
heads included (eval: the main output; training: the main output and the aux dict), with
its state_dict keys unchanged; torchinfo lists its layers under the spec's names."""

from __future__ import annotations

import warnings

import pytest

import archdsl
from conftest import SPECS

torch = pytest.importorskip("torch")

#: one network of every family of the zoo and of every container and helper module
SAMPLE = [("alexnet.arch", "alexnet_torchvision"), ("resnet.arch", "resnet18"), ("resnet.arch", "resnet20"),
          ("preact_resnet.arch", "preact_resnet164"), ("densenet.arch", "densenet121"),
          ("googlenet.arch", "googlenet_torchvision"), ("inception_resnet.arch", "inception_resnet_v2"),
          ("squeezenet.arch", "squeezenet1_1"), ("lenet5.arch", "lenet5"), ("sppnet.arch", None), ("nin.arch", "nin")]


def _script(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's deprecation notice
        return torch.jit.script(model)


@pytest.mark.slow
@pytest.mark.parametrize("file,name", SAMPLE, ids=[f"{f}:{n}" for f, n in SAMPLE])
def test_the_built_module_scripts_and_computes_the_same(file, name):
    net = archdsl.compile_all(SPECS / file)[0] if name is None else archdsl.compile(SPECS / file, name)
    model = archdsl.build(net).eval()
    scripted = _script(model)
    # the same keys (TorchScript lists non-persistent buffers too, `select`'s index)
    keys = list(model.state_dict())
    assert [k for k in scripted.state_dict() if k in set(keys)] == keys
    x = torch.randn(2, *net.input_shape.dims, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))
        if net.aux_outputs:
            model.train()
            scripted.train()
            torch.manual_seed(1)
            main, aux = model(x)
            torch.manual_seed(1)
            smain, saux = scripted(x)
            assert torch.equal(main, smain) and list(aux) == list(saux)
            assert all(torch.equal(aux[k], saux[k]) for k in aux)


def test_a_small_network_with_every_container_scripts():
    spec = """
    block unit(c) { add { conv 3x3 p1 -> c; bn; relu | identity }; relu }
    network n {
      input 3x16x16
      stem: conv 3x3 p1 -> 8
      repeat 2 { unit(8) }
      aux side { gap; fc 3 }
      residual scale=0.5 { conv 1x1 -> 8 }
      mul { identity | gap; conv 1x1 -> 8 sigmoid }
      concat { conv 1x1 -> 4 | maxpool 3/1 p1 }
      gap; fc 10
    }"""
    model = archdsl.build(spec).eval()
    scripted = _script(model)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))
        main, aux = scripted.train()(x)
    assert main.shape == (2, 10) and aux["side"].shape == (2, 3)


def test_torchinfo_lists_the_spec_names():
    torchinfo = pytest.importorskip("torchinfo")
    model = archdsl.build("network n { input 3x16x16; stem: conv 3x3 p1 -> 8 nobias; bn; relu; gap; "
                          "head: fc 10 }")
    text = str(torchinfo.summary(model, input_size=(1, 3, 16, 16), row_settings=("var_names",), verbose=0))
    for row in ("Conv2d (stem)", "BatchNorm2d (bn1)", "FlatLinear (head)"):
        assert row in text, text
