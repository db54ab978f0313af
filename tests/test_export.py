"""archdsl export: a spec as one plain PyTorch file, and as ONNX.

The file is imported in a subprocess where `import archdsl` fails: its network's class
takes no arguments, its parameter count is the analytic one, the archdsl-built module's
state_dict loads into it (strict: the keys are equal) and its outputs then equal the
archdsl module's, eagerly, under torch.jit.script and torch.export (and, for one small
network, torch.compile(fullgraph=True)). ONNX: the onnx checker passes and onnxruntime's
outputs equal torch's within 1e-5 (relative), one network per family.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import archdsl
from conftest import ROOT, SPECS

torch = pytest.importorskip("torch")

from archdsl.export_torch import export_pytorch  # noqa: E402

#: run where archdsl cannot be imported: argv = model.py, state_dict, (x, expected), compile?
CHECK = textwrap.dedent('''
    import importlib.util, json, sys, warnings
    sys.modules["archdsl"] = None  # import archdsl raises ImportError from here on
    import torch
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    path, sd, io, compile_too = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
    spec = importlib.util.spec_from_file_location("model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        import archdsl  # noqa: F401
        blocked = False
    except ImportError:
        blocked = True
    net = mod.Net()
    params = sum(p.numel() for p in net.parameters())
    net.load_state_dict(torch.load(sd))
    net.eval()
    x, want = torch.load(io)
    out = {"blocked": blocked, "params": params, "imports": sorted(
        m for m, v in sys.modules.items() if v is not None and (m == "archdsl" or m.startswith("archdsl.")))}
    with torch.no_grad():
        out["eager"] = (net(x) - want).abs().max().item()
        out["script"] = (torch.jit.script(net)(x) - want).abs().max().item()
        out["export"] = (torch.export.export(net, (x,)).module()(x) - want).abs().max().item()
        if compile_too:
            out["compile"] = (torch.compile(net, fullgraph=True)(x) - want).abs().max().item()
    print(json.dumps(out))
''')

#: the layers no zoo network small enough has: prelu, lrn, spp, lrelu, elu
TINY = "network tiny { input 3x32x32; conv 3x3 p1 -> 8; prelu; lrn 5; conv 1x1 -> 8 lrelu; elu; spp 4,2,1; fc 10 }"

#: (file, network, input): every container and helper layer at small inputs (aux heads: googlenet;
#: select, subsample and rbf: lenet5; option-A shortcuts: resnet20)
SAMPLE = [("resnet.arch", "resnet18", "3x64x64"), ("resnet.arch", "resnet20", None),
          ("googlenet.arch", "googlenet_torchvision", "3x96x96"), ("squeezenet.arch", "squeezenet1_1", "3x64x64"),
          ("lenet5.arch", "lenet5", None), ("densenet.arch", "densenet121", "3x32x32"), (TINY, None, None),
          ("mobilenet_v3.arch", "mobilenet_v3_small", "3x64x64"), ("efficientnet.arch", "efficientnet_b0", "3x64x64"),
          ("shufflenet.arch", "shufflenet_v2_x1_0", "3x64x64"), ("convnext.arch", "convnext_tiny", "3x64x64"),
          ("regnet.arch", "regnet_y_400mf", "3x64x64")]


def _net(file, name, size):
    if not file.endswith(".arch"):
        return archdsl.compile(file)
    return archdsl.compile_all(SPECS / file)[0] if name is None else archdsl.compile(SPECS / file, name, size)


def _run_exported(tmp_path, net, compile_too=False):
    path = tmp_path / "model.py"
    path.write_text(export_pytorch(net, "test"))
    model = archdsl.build(net).eval()
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    x = torch.randn(2, *net.input_shape.dims, generator=torch.Generator().manual_seed(0))
    # one intra-op thread, as in the child: a reduction split over threads may round differently
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            torch.save((x, model(x)), tmp_path / "io.pt")
    finally:
        torch.set_num_threads(threads)
    run = subprocess.run([sys.executable, "-c", CHECK, str(path), str(tmp_path / "sd.pt"), str(tmp_path / "io.pt"),
                          "1" if compile_too else "0"], capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1]), path.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("file,name,size", SAMPLE, ids=[f"{f}:{n}" if n else "tiny" for f, n, _ in SAMPLE])
def test_the_exported_file_is_plain_pytorch_with_archdsl_keys(tmp_path, file, name, size):
    net = _net(file, name, size)
    out, text = _run_exported(tmp_path, net)
    assert out["blocked"] and out["imports"] == []
    assert out["params"] == net.params
    assert out["eager"] == 0.0 and out["script"] <= 1e-5 and out["export"] <= 1e-5, out
    assert "archdsl" not in [line.split()[1] for line in text.splitlines() if line.startswith(("import ", "from "))]


def test_blocks_are_classes_named_after_them_with_the_spec_comments(tmp_path):
    net = archdsl.compile(SPECS / "resnet.arch", "resnet50")
    text = export_pytorch(net, "specs/resnet.arch:resnet50")
    assert "class Bottleneck(nn.Module):" in text and "class Resnet50(nn.Module):" in text
    assert "1x1 -> 3x3 -> 1x1 with a 4x wider output" in text  # the comment above the block
    assert "def __init__(self):\n        super().__init__()\n        self.body = " in text
    compile(text, "model.py", "exec")


@pytest.mark.slow
def test_torch_compile_fullgraph(tmp_path):
    net = archdsl.compile("block unit(c) { add { conv 3x3 p1 -> c; bn; relu; conv 3x3 p1 -> c; bn | identity }; relu }\n"
                          "network small { input 3x16x16; stem: conv 3x3 p1 -> 8; repeat 2 { unit(8) };"
                          " residual scale=0.2 { conv 1x1 -> 8 }; mul { identity | gap; conv 1x1 -> 8 sigmoid };"
                          " concat { conv 1x1 -> 4 | maxpool 3/1 p1 }; gap; fc 10 }")
    out, _ = _run_exported(tmp_path, net, compile_too=True)
    assert out["compile"] <= 1e-5, out


@pytest.mark.slow
def test_torch_compile_fullgraph_of_the_newer_layers(tmp_path):
    """The helper layers of MobileNetV3, EfficientNet, ShuffleNetV2 and ConvNeXt, compiled too."""
    net = archdsl.compile("network small { input 3x16x16; conv 3x3 p1 -> 8 hardswish;"
                          " mul { identity | gap; conv 1x1 -> 8 hardsigmoid };"
                          " concat { split 2 part=1 | split 2 part=2; conv 1x1 -> 4 }; shuffle 2;"
                          " residual { conv 3x3 p1 groups=8 -> 8; layernorm eps=1e-6; layerscale 1e-6; droppath 0.1 };"
                          " gap; flatten; layernorm; fc 10 }")
    out, text = _run_exported(tmp_path, net, compile_too=True)
    assert out["compile"] <= 1e-5 and out["script"] <= 1e-5 and out["export"] <= 1e-5, out
    for helper in ("class ChannelShuffle", "class ChannelSlice", "class LayerNorm2d", "class LayerScale",
                   "class StochasticDepth", "nn.LayerNorm(", "nn.Hardsigmoid("):
        assert helper in text, helper


def test_an_aux_head_inside_a_block_is_refused():
    from archdsl.export_torch import ExportFailure

    net = archdsl.compile("block b() { conv 3x3 p1 -> 4; aux side { gap; fc 2 } }\n"
                          "network n { input 3x8x8; b(); gap; fc 3 }")
    with pytest.raises(ExportFailure, match="aux head"):
        export_pytorch(net)


def test_the_export_command(tmp_path):
    out = tmp_path / "m.py"
    run = subprocess.run([sys.executable, "-m", "archdsl.cli", "export", str(SPECS / "nin.arch"), "-n", "nin",
                          "--to", "pytorch", "-o", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "class Nin(nn.Module)" in out.read_text()
    refused = subprocess.run([sys.executable, "-m", "archdsl.cli", "export", str(SPECS / "lenet5.arch"), "-n", "lenet5",
                              "--to", "onnx", "-o", str(tmp_path / "l.onnx")], capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 1 and "divisor_override" in refused.stderr


#: one network per family, at small inputs
ONNX = [("resnet.arch", "resnet18", "3x64x64"), ("googlenet.arch", "googlenet_torchvision", "3x96x96"),
        ("densenet.arch", "densenet121", "3x32x32"), ("squeezenet.arch", "squeezenet1_0", "3x64x64"),
        ("inception_resnet.arch", "inception_resnet_v2", "3x75x75"), ("nin.arch", "nin", None),
        ("preact_resnet.arch", "preact_resnet164", None), (TINY.replace("spp 4,2,1", "gap"), None, None),
        ("mobilenet_v3.arch", "mobilenet_v3_small", "3x64x64"), ("efficientnet.arch", "efficientnet_b0", "3x64x64"),
        ("shufflenet.arch", "shufflenet_v2_x1_0", "3x64x64"), ("convnext.arch", "convnext_tiny", "3x64x64"),
        ("regnet.arch", "regnet_y_400mf", "3x64x64")]


@pytest.mark.slow
@pytest.mark.parametrize("file,name,size", ONNX, ids=[f"{f}:{n}" if n else "tiny" for f, n, _ in ONNX])
def test_onnx_matches_onnxruntime(tmp_path, file, name, size):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from archdsl.export_torch import export_onnx

    net = _net(file, name, size)
    model = archdsl.build(net).eval()
    path = tmp_path / "m.onnx"
    export_onnx(net, path, dynamic_batch=True, model=model)
    onnx.checker.check_model(onnx.load(str(path)))
    x = torch.randn(3, *net.input_shape.dims, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x).numpy()
    got = ort.InferenceSession(str(path)).run(None, {"input": x.numpy()})[0]
    assert got.shape == want.shape
    assert abs(got - want).max() <= 1e-5 * max(1.0, abs(want).max())


def test_onnx_refuses_what_it_cannot_express(tmp_path):
    pytest.importorskip("onnx")
    from archdsl.export_torch import ExportFailure, export_onnx

    with pytest.raises(ExportFailure, match="divisor_override"):
        export_onnx(archdsl.compile(SPECS / "lenet5.arch", "lenet5"), tmp_path / "m.onnx")
    # torch's exporter has no adaptive max pooling (spp): its message, as an archdsl error
    with pytest.raises(ExportFailure, match="adaptive_max_pool2d"):
        export_onnx(archdsl.compile(TINY), tmp_path / "m.onnx")
