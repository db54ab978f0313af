"""Built networks compile with torch.compile(fullgraph=True): no graph break anywhere in
the lowered containers (concat, add with scales, aux heads, channel selection, spatial
pyramid pooling, the LeNet-5 kinds), and the compiled module computes what the eager
module computes.

One spec per family, at a small input where the spec allows one, traced with the
"aot_eager" backend (Dynamo plus AOTAutograd, no code generation: the fullgraph property
without minutes of C++ compilation on a 2-core runner). A small network that uses every
container is compiled with the default backend, inductor, and GoogLeNet's training step
with its aux heads (forward and AOTAutograd's backward) with aot_eager.
"""

from __future__ import annotations

import copy

import pytest

import archdsl
from conftest import SPECS

#: slow: real torch work (equivalence with torchvision/timm, or inductor); the README's test
#: command still runs it
pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")

# (spec file, network, input: smaller than the spec's where the network accepts it)
FAMILIES = [
    ("lenet5.arch", "lenet5_modern", None),
    ("lenet5.arch", "lenet5", None),
    ("nin.arch", "nin", None),
    ("alexnet.arch", "alexnet_torchvision", "3x64x64"),
    ("vgg.arch", "vgg11", "3x32x32"),
    ("googlenet.arch", "googlenet_torchvision", "3x64x64"),
    ("resnet.arch", "resnet18", "3x64x64"),
    ("resnet.arch", "resnet20", None),
    ("densenet.arch", "densenet121", "3x64x64"),
    ("squeezenet.arch", "squeezenet1_0", "3x64x64"),
]

# every lowered container and helper module in one small network
KITCHEN_SINK = """
network sink(classes=10) {
  input 3x32x32
  act relu
  norm bn
  conv 3x3 p1 -> 16
  lrn 5
  concat {
    conv 1x1 -> 8
  | maxpool 3/1 p1; conv 1x1 -> 8 nonorm
  | avgpool 3/1 p1 exclude_pad; select 0,2,4,5
  }
  residual scale=0.2 { conv 3x3 p1 -> 20 noact }
  relu
  aux side { gap; fc classes noact }
  add { conv 3x3/2 p1 -> 24 | maxpool 2; conv 1x1 -> 24 }
  spp 2,1
  dropout 0.5
  fc classes noact
}
"""


@pytest.fixture(autouse=True)
def fresh_dynamo():
    # every test compiles Network.forward for another module: start from an empty cache so
    # that no test hits Dynamo's recompilation limit (an error under fullgraph=True)
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _spec(file: str, name: str):
    path = SPECS / file
    if not path.exists():
        pytest.skip(f"specs/{file} does not exist yet")
    if name not in {n.name for n in archdsl.load(path).program.networks}:
        pytest.skip(f"specs/{file} has no network '{name}' yet")
    return path


def _assert_close(got, expected, what: str) -> None:
    assert got.shape == expected.shape, what
    diff = (got - expected).abs().max().item()
    assert diff <= 1e-4 * max(1.0, expected.abs().max().item()), f"{what}: max |diff| = {diff:g}"


def _no_dropout(model):
    """Training mode everywhere except dropout, whose random masks differ between eager
    and compiled code."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.dropout._DropoutNd):
            m.eval()
    return model


@pytest.mark.parametrize("file,name,input", FAMILIES, ids=[n for _, n, _ in FAMILIES])
def test_compiles_fullgraph_and_matches_eager(file, name, input):
    path = _spec(file, name)
    torch.manual_seed(0)
    model = archdsl.build(path, name, input=input).eval()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        expected = model(x)
        got = compiled(x)
    _assert_close(got, expected, name)


def test_every_container_compiles_with_inductor(tmp_path, monkeypatch):
    # a private inductor cache: a compile interrupted in another process can leave a truncated
    # artefact in the shared one (/tmp/torchinductor_<user>), which inductor would load
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch.manual_seed(0)
    model = archdsl.build(KITCHEN_SINK).eval()
    compiled = torch.compile(model, fullgraph=True)  # the default backend: inductor
    x = torch.randn(2, *model.input_shape)
    with torch.no_grad():
        expected = model(x)
        got = compiled(x)
    assert isinstance(got, torch.Tensor)  # eval mode: no aux outputs
    _assert_close(got, expected, "sink (inductor)")


def test_googlenet_training_step_with_aux_heads_compiles_fullgraph():
    """Training mode: the aux dict is part of the compiled graph's output, batch norm
    updates its running statistics inside the graph, and the backward pass matches."""
    path = _spec("googlenet.arch", "googlenet_torchvision")
    torch.manual_seed(0)
    model = _no_dropout(archdsl.build(path, "googlenet_torchvision", input="3x64x64"))
    reference = copy.deepcopy(model)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, *model.input_shape)
    outputs = []
    for m in (compiled, reference):
        main, aux = m(x)
        assert sorted(aux) == ["aux1", "aux2"]
        (main.sum() + 0.3 * (aux["aux1"].sum() + aux["aux2"].sum())).backward()
        outputs.append((main, aux))
    (got, got_aux), (expected, expected_aux) = outputs
    _assert_close(got, expected, "main")
    for name in expected_aux:
        _assert_close(got_aux[name], expected_aux[name], name)
    ours, theirs = dict(model.named_parameters()), dict(reference.named_parameters())
    for key in ("body.conv1.conv.weight", "body.aux1.head.conv.conv.weight", "body.fc.weight"):
        _assert_close(ours[key].grad, theirs[key].grad, f"grad of {key}")
    buffers, ref_buffers = dict(model.named_buffers()), dict(reference.named_buffers())
    for key in ("body.conv1.bn.running_mean", "body.inception5b.concat1.branch4.conv1.bn.running_var"):
        assert not torch.equal(buffers[key], torch.zeros_like(buffers[key]) if "mean" in key else
                               torch.ones_like(buffers[key])), f"{key} was not updated"
        _assert_close(buffers[key], ref_buffers[key], key)
