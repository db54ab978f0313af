"""The language reference (docs/language.md) is the contract: every example in it is
compiled here, its generated kinds table and limits table must match the code, and each
construct's semantics is checked on its own.

Fenced blocks in the doc:

* ```arch                 a whole file: every network in it compiles and meets its `expect`s
* ```arch file=NAME       a file other examples include: written as NAME, not compiled alone
* ```arch fragment        a network body, compiled inside `network example { ... }`
                          (after `input 3x224x224` unless it has an `input` line)
* ```arch error=CODE      must fail with that error code
* ```pycon                a doctest, run from the repository root
* ```console              `$ archdsl ...` commands: each exits 0 and prints the lines shown
"""

from __future__ import annotations

import doctest
import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

import archdsl
from archdsl import ArchError
from archdsl.layers import MergeKind, kinds

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "language.md"

# ---------------------------------------------------------------- the doc's examples


@dataclass
class Example:
    lang: str
    options: dict[str, str]
    text: str
    line: int

    @property
    def id(self) -> str:
        return f"line{self.line}"


_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)


def examples(doc: str | None = None) -> list[Example]:
    doc = DOC.read_text() if doc is None else doc
    out = []
    for m in _FENCE.finditer(doc):
        words = m.group(1).split()
        if not words:
            continue
        options = {}
        for w in words[1:]:
            key, _, value = w.partition("=")
            options[key] = value
        out.append(Example(words[0], options, m.group(2), doc[:m.start()].count("\n") + 1))
    return out


EXAMPLES = examples()
ARCH = [e for e in EXAMPLES if e.lang == "arch"]


def test_the_doc_has_examples_of_every_sort():
    langs = {e.lang for e in EXAMPLES}
    assert {"arch", "pycon", "console"} <= langs
    assert not langs - {"arch", "pycon", "console", ""}, f"untested example languages: {langs}"
    assert sum("fragment" in e.options for e in ARCH) >= 10
    assert sum("error" in e.options for e in ARCH) >= 2


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory) -> Path:
    """Every `file=` example, written where the other examples can include it."""
    d = tmp_path_factory.mktemp("doc_examples")
    for e in ARCH:
        if "file" in e.options:
            (d / e.options["file"]).write_text(e.text)
    return d


def _source(e: Example) -> str:
    if "fragment" not in e.options:
        return e.text
    body = e.text if re.search(r"^\s*input\b", e.text, re.M) else "input 3x224x224\n" + e.text
    return "network example {\n" + body + "\n}\n"


@pytest.mark.parametrize("example", [e for e in ARCH if "file" not in e.options],
                         ids=lambda e: f"{e.id}{'-error' if 'error' in e.options else ''}")
def test_arch_example(example, example_dir):
    path = example_dir / f"example_{example.line}.arch"
    path.write_text(_source(example))
    if "error" in example.options:
        with pytest.raises(ArchError) as info:
            for net in archdsl.compile_all(path):
                failed = [o.diagnostic() for o in net.check() if not o.ok]
                if failed:
                    raise ArchError(failed, net.sources)
        codes = [d.code for d in info.value.diagnostics]
        assert example.options["error"] in codes, info.value.render()
        return
    nets = archdsl.compile_all(path)
    assert nets
    for net in nets:
        failed = [o.diagnostic().render(net.sources) for o in net.check() if not o.ok]
        assert not failed, "\n".join(failed)


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.lang == "pycon"], ids=lambda e: e.id)
def test_pycon_example(example, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.chdir(ROOT)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(example.text, {}, f"language.md:{example.line}", str(DOC), example.line)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    assert runner.tries > 0


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.lang == "console"], ids=lambda e: e.id)
def test_console_example(example, monkeypatch):
    """Each `$ archdsl ...` command exits 0; the lines shown after it appear in its output."""
    from click.testing import CliRunner

    from archdsl.cli import main

    monkeypatch.chdir(ROOT)
    commands: list[tuple[list[str], list[str]]] = []
    for line in example.text.splitlines():
        if line.startswith("$ "):
            args = shlex.split(line[2:])
            assert args[0] == "archdsl"
            commands.append((args[1:], []))
        elif line.strip():
            commands[-1][1].append(line.rstrip())
    assert commands
    for args, shown in commands:
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, f"archdsl {' '.join(args)}: exit {result.exit_code}\n{result.output}"
        printed = [line.rstrip() for line in result.output.splitlines()]
        for line in shown:
            assert line in printed, f"archdsl {' '.join(args)} did not print {line!r}:\n{result.output}"


# ---------------------------------------------------------------- generated and checked tables


_KINDS_BEGIN = re.compile(r"<!-- kinds:begin[^>]*-->\n")
_KINDS_END = "<!-- kinds:end -->"


def kinds_table() -> str:
    """The doc's table of layer kinds, from the registry."""
    rows = ["| kind | also | example | what it is |", "|---|---|---|---|"]
    for k in sorted(kinds(), key=lambda k: k.name):
        example = k.example or (f"{k.name} {{ A | B }}" if isinstance(k, MergeKind) else k.name)
        also = ", ".join(f"`{a}`" for a in k.aliases)
        # GitHub's tables split cells at every unescaped |, code spans included
        example, summary = example.replace("|", "\\|"), k.summary.replace("|", "\\|")
        rows.append(f"| `{k.name}` | {also} | `{example}` | {summary} |")
    return "\n".join(rows) + "\n"


def test_kinds_table_matches_the_registry():
    doc = DOC.read_text()
    m = _KINDS_BEGIN.search(doc)
    assert m and _KINDS_END in doc, "docs/language.md lost its kinds:begin / kinds:end markers"
    end = doc.index(_KINDS_END)
    current, wanted = doc[m.end():end], kinds_table()
    if current != wanted and os.environ.get("ARCHDSL_ACCEPT") == "1":
        DOC.write_text(doc[:m.end()] + wanted + doc[end:])
        return
    assert current == wanted, ("the kinds table of docs/language.md is out of date; regenerate it with\n"
                               "  ARCHDSL_ACCEPT=1 python -m pytest tests/test_language.py -k kinds_table")


@pytest.mark.parametrize("kind", sorted(k.name for k in kinds() if not isinstance(k, MergeKind)))
def test_every_kinds_table_example_compiles(kind):
    k = next(k for k in kinds() if k.name == kind)
    after = "\n  conv 1x1 -> 4" if k.example.startswith("act ") else ""  # a default needs a layer to follow
    try:
        net = compile_body(f"  {k.example}{after}", input="16x32x32")
    except ArchError as err:  # a kind for flat features only (rbf): after an fc
        assert err.code in ("E207", "E408"), err.render()
        net = compile_body(f"  fc 84\n  {k.example}{after}", input="16x32x32")
    # the kind is a node, an attached op (`act lecun_tanh`), or a macro's submodule (`mlpconv1.conv1`)
    assert any(n.kind is k or any(op.kind is k for op in n.post) or n.id.startswith(f"{kind}1.")
               for n in net.nodes())


def test_every_kind_is_described_in_the_doc():
    """Beyond the generated table, each kind appears in a written section (as `name`)."""
    doc = DOC.read_text()
    prose = _KINDS_BEGIN.split(doc)[0] + doc.split(_KINDS_END)[1]
    missing = [k.name for k in kinds() if f"`{k.name}" not in prose]
    assert not missing, f"kinds without a section in docs/language.md: {missing}"


def test_limits_table_matches_the_code():
    import importlib

    doc = DOC.read_text()
    rows = re.findall(r"^\| `(archdsl\.[\w.]+)\.([A-Z_]+)` \| ([\d,]+) \|", doc, re.M)
    assert len(rows) >= 8
    for module, name, value in rows:
        actual = getattr(importlib.import_module(module), name)
        assert actual == int(value.replace(",", "")), f"{module}.{name} is {actual:,}, the doc says {value}"


def test_json_keys_in_the_doc_are_the_reports_keys():
    doc = DOC.read_text()
    section = doc.split("## Reports", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for cell in re.findall(r"^\| (`[^|]+`) \|", section, re.M):
        documented |= set(re.findall(r"`(\w+)`", cell))
    report = archdsl.compile("network n { input 3x8x8; conv 3x3 -> 4 }").report().to_dict()
    assert documented == set(report)
    layer_keys = re.search(r"one object per node: `([^`]+)`", section).group(1)
    assert [k.strip() for k in layer_keys.split(",")] == list(report["layers"][0])


# ---------------------------------------------------------------- semantics, construct by construct


def compile_body(body: str, input: str = "3x32x32", **kw):
    return archdsl.compile(f"network t {{\n  input {input}\n{body}\n}}\n", **kw)


def labels(net) -> dict[str, str]:
    return {n.id: n.label() for n in net.nodes() if n.inputs}


def test_the_seed_line_means_what_nin_means():
    net = compile_body("  act relu\n  conv 5x5/1 p2 -> 192; mlpconv 160,96; maxpool 3/2")
    assert labels(net) == {
        "conv1": "conv 5x5 p2 -> 192 +relu",
        "mlpconv1.conv1": "conv 1x1 -> 160 +relu",
        "mlpconv1.conv2": "conv 1x1 -> 96 +relu",
        "maxpool1": "maxpool 3/2",
    }
    p = net.node("conv1").op.params
    assert (p.kernel, p.stride, p.padding, p.out) == ((5, 5), (1, 1), (2, 2), 192)
    assert net.node("maxpool1").shape.dims == (96, 15, 15)
    # 5x5x3x192 + 192, 192x160 + 160, 160x96 + 96
    assert net.params == 14_592 + 30_880 + 15_456


def test_act_is_inherited_by_called_blocks_and_nested_bodies():
    src = """
block b() { conv 1x1 -> 4 }
network t {
  input 3x8x8
  act tanh
  b()
  repeat 1 { conv 1x1 -> 4 }
  concat { conv 1x1 -> 2 | conv 1x1 -> 2 }
  aux side { fc 2 }
}
"""
    net = archdsl.compile(src)
    assert {k: v for k, v in labels(net).items() if "conv" in v or "fc" in v} == {
        "b1.conv1": "conv 1x1 -> 4 +tanh", "conv1": "conv 1x1 -> 4 +tanh",
        "concat1.branch1.conv1": "conv 1x1 -> 2 +tanh", "concat1.branch2.conv1": "conv 1x1 -> 2 +tanh",
        "side.fc1": "fc 2 +tanh",
    }


def test_a_setting_inside_a_nested_body_does_not_leak_out():
    src = """
block quiet() { act none; conv 1x1 -> 4 }
network t {
  input 3x8x8
  act relu
  quiet()
  conv 1x1 -> 4
  repeat 1 { act none; norm bn; bias on; conv 1x1 -> 4 }
  conv 1x1 -> 4
  if true { act elu } else { act tanh }
  conv 1x1 -> 4
  concat { act none; conv 1x1 -> 2 | conv 1x1 -> 2 }
}
"""
    net = archdsl.compile(src)
    assert labels(net) == {
        "quiet1.conv1": "conv 1x1 -> 4",
        "conv1": "conv 1x1 -> 4 +relu",
        "conv2": "conv 1x1 -> 4 +bn",
        "conv3": "conv 1x1 -> 4 +relu",
        "conv4": "conv 1x1 -> 4 +relu",
        "concat1.branch1.conv1": "conv 1x1 -> 2",
        "concat1.branch2.conv1": "conv 1x1 -> 2 +relu",
        "concat1": "concat",
    }
    assert net.node("conv2").op.params.bias is True  # `bias on` beats the scoped norm
    assert net.node("conv3").op.params.bias is True


def test_a_setting_later_in_a_body_applies_only_to_what_follows():
    net = compile_body("  conv 1x1 -> 4\n  act relu\n  conv 1x1 -> 4\n  act none\n  conv 1x1 -> 4")
    assert list(labels(net).values()) == ["conv 1x1 -> 4", "conv 1x1 -> 4 +relu", "conv 1x1 -> 4"]


def test_per_layer_overrides():
    net = compile_body("  act relu\n  norm bn\n  conv 1x1 -> 4 noact\n  conv 1x1 -> 4 tanh\n"
                       "  conv 1x1 -> 4 nonorm\n  conv 1x1 -> 4 nonorm nobias noact\n  fc 3 sigmoid")
    assert list(labels(net).values()) == [
        "conv 1x1 -> 4 +bn", "conv 1x1 -> 4 +bn +tanh", "conv 1x1 -> 4 +relu", "conv 1x1 -> 4", "fc 3 +sigmoid"]
    assert [n.op.params.bias for n in net.nodes() if n.inputs] == [False, False, True, False, True]


def test_bias_auto_drops_the_bias_before_bn_only():
    net = compile_body("  conv 3x3 -> 8\n  bn\n  conv 3x3 -> 8\n  relu\n  bn\n  conv1x: conv 1x1 -> 4\n"
                       "  label: bn\n  conv 1x1 -> 4\n  batchnorm\n  fc 5\n  bn", input="3x16x16")
    bias = {n.id: n.op.params.bias for n in net.nodes() if n.kind.has_bias}
    # the next statement decides, labelled or not, and the alias counts
    assert bias == {"conv1": False, "conv2": True, "conv1x": False, "conv3": False, "fc1": False}
    # 8x27 + 16 | 8x72 + 8 + 16 | 8x4 + 8 | 4x4 + 8 | 576x5 + 10
    assert net.params == 232 + 600 + 40 + 24 + 2890
    off = compile_body("  bias off\n  conv 3x3 -> 8\n  fc 2")
    on = compile_body("  bias on\n  conv 3x3 -> 8\n  bn")
    assert [n.op.params.bias for n in off.nodes() if n.inputs] == [False, False]
    assert on.node("conv1").op.params.bias is True
    assert on.params == 8 * 27 + 8 + 16


def test_repeat_index_and_count():
    net = compile_body("  act relu\n  repeat 3 as i { conv 3x3 p1 -> 8 * 2 ** i }\n  repeat 0 { conv 1x1 -> 1 }")
    assert [n.shape.c for n in net.nodes()] == [3, 8, 16, 32]
    assert [n.id for n in net.nodes()] == ["input", "conv1", "conv2", "conv3"]
    net = compile_body("  let n = 2\n  repeat n * 2 as k { conv 1x1 -> k + 1 }")
    assert [n.shape.c for n in net.nodes()][1:] == [1, 2, 3, 4]


def test_if_else_chooses_one_body():
    src = "network t(w=1) {{\n  input 3x8x8\n  if w > 2 {{ conv 1x1 -> 30 }} else if w > 1 {{ conv 1x1 -> 20 }}" \
          " else {{ conv 1x1 -> 10 }}\n  if in.c == 20 {{ gap }}\n}}"
    assert archdsl.compile(src.format(), w=3).output_shape.dims == (30, 8, 8)
    assert archdsl.compile(src.format(), w=2).output_shape.dims == (20, 1, 1)
    assert archdsl.compile(src.format()).output_shape.dims == (10, 8, 8)


def test_in_shape_refers_to_the_current_tensor():
    net = compile_body("  conv 3x3 -> 10\n  conv 1x1 -> in.c // 2\n  conv 1x1 -> in.h + in.w\n  fc(in.numel)",
                       input="3x10x12")
    assert [n.shape.dims for n in net.nodes()][1:] == [(10, 8, 10), (5, 8, 10), (18, 8, 10), (1440,)]


def test_expressions_evaluate_like_python():
    cases = {
        "2 + 3 * 4": 14, "(2 + 3) * 4": 20, "2 ** 3 ** 2": 512, "-2 ** 2": -4, "17 // 5": 3, "17 % 5": 2,
        "7 / 7": 1, "1_000 + 24": 1024, "max(3, 9, 4)": 9, "min(3, 9)": 3, "abs(-5)": 5, "int(7.0)": 7,
        "floor(7.9)": 7, "ceil(7.1)": 8, "round(7.5)": 8, "3 if 2 > 1 else 4": 3, "3 if 2 < 1 else 4": 4,
        "5 if true and not false else 6": 5, "5 if 1 == 2 or 2 != 2 else 6": 6, "5 if 2 >= 2 and 1 <= 0 else 6": 6,
    }
    for expr, value in cases.items():
        net = compile_body(f"  let v = {expr}\n  conv 1x1 -> v + 100", input="1x4x4")
        assert net.output_shape.c == value + 100, expr


def test_a_non_integer_size_is_an_error():
    with pytest.raises(ArchError) as info:
        compile_body("  conv 1x1 -> 7 / 2")
    assert info.value.diagnostics[0].code == "E302"


def test_residual_scale_computes_x_plus_scaled_f_in_the_built_module():
    torch = pytest.importorskip("torch")
    net = compile_body("  residual scale=0.2 { conv 3x3 p1 -> 3 }", input="3x6x6")
    model = archdsl.build(net).eval()
    conv = model.body.residual1.branch1.conv1
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x + 0.2 * conv(x))
    assert type(model.body.residual1.branch2).__name__ == "Identity"


def test_aux_contract_eval_main_only_training_main_and_heads_in_order():
    torch = pytest.importorskip("torch")
    src = """
network t {
  input 3x8x8
  act relu
  conv 3x3 p1 -> 4
  aux second { gap; fc 2 noact }
  conv 3x3 p1 -> 4
  aux first { fc 3 noact }
  gap; fc 5 noact
}
"""
    net = archdsl.compile(src)
    assert list(net.aux_outputs) == ["second", "first"]
    assert net.params_without_aux == net.params - (4 * 2 + 2) - (256 * 3 + 3)
    model = archdsl.build(net)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y = model.eval()(x)
        assert isinstance(y, torch.Tensor) and y.shape == (2, 5)
        main, heads = model.train()(x)
    assert main.shape == (2, 5)
    assert list(heads) == ["second", "first"]
    assert heads["second"].shape == (2, 2) and heads["first"].shape == (2, 3)
    # a network without aux heads returns a tensor in both modes
    plain = archdsl.build(compile_body("  conv 3x3 -> 2")).train()
    assert isinstance(plain(torch.randn(1, 3, 32, 32)), torch.Tensor)


def test_aux_heads_in_a_block_called_twice_are_scoped_in_the_built_model_too():
    """An aux head's output is named by its path, as every other name: one head per call,
    in a block called twice, in a repeat and under a label, none overwriting another."""
    torch = pytest.importorskip("torch")
    src = """
block b() { conv 1x1 -> 3; aux head { gap; fc 2 noact } }
block c() { repeat 2 { b() } }
network t {
  input 3x8x8
  c()
  c()
  s: repeat 2 { aux side { gap; fc 2 noact } }
  gap; fc 4 noact
}
"""
    net = archdsl.compile(src)
    names = ["c1.b1.head", "c1.b2.head", "c2.b1.head", "c2.b2.head", "s.side_1", "s.side_2"]
    assert list(net.aux_outputs) == names
    model = archdsl.build(net)
    with torch.no_grad():
        _, heads = model.train()(torch.randn(2, 3, 8, 8))
    assert list(heads) == names and all(h.shape == (2, 2) for h in heads.values())
    # each is its own head's output
    with torch.no_grad():
        x = torch.randn(2, 3, 8, 8)
        _, heads = model.train()(x)
        first = model.body.c1.b1
        torch.testing.assert_close(heads["c1.b1.head"], first.head(first.conv1(x)))



def test_expect_forms():
    src = """
network t(classes=10) {
  input 3x32x32
  act relu
  conv 3x3 p1 -> 8
  expect shape = 8x32x32
  conv 3x3 p1 -> 8
  aux a { gap; fc 2 }
  gap
  fc classes noact
  expect params = 224 + 584 + 18 + 90
  expect params_without_aux = 224 + 584 + 90
  expect macs = 800_000 within 2%
  expect macs_without_aux = 8 * 32 * 32 * 27 + 8 * 32 * 32 * 72 + 80
  expect flops = 2 * (8 * 32 * 32 * 27 + 8 * 32 * 32 * 72 + 80 + 16)
  expect output = classes
  expect rf = 36
  expect layers = 6
}
"""
    net = archdsl.compile(src)
    outcomes = net.check()
    assert [o.what for o in outcomes] == ["shape", "params", "params_without_aux", "macs", "macs_without_aux",
                                          "flops", "output", "rf", "layers"]
    assert all(o.ok for o in outcomes), [(o.what, o.found) for o in outcomes if not o.ok]
    # each form can fail, and reports what it found
    wrong = {"shape = 8x31x32": (8, 32, 32), "params = 1": 916, "macs = 1_000_000 within 5%": 811_104,
             "output = 10x1x1": (10,), "rf = 5": 36}
    for stmt, found in wrong.items():
        bad = archdsl.compile(src.replace("  expect layers = 6", f"  expect {stmt}")
                              if not stmt.startswith("shape") else
                              src.replace("expect shape = 8x32x32", f"expect {stmt}"))
        failed = [o for o in bad.check() if not o.ok]
        assert len(failed) == 1 and failed[0].found == found, stmt
        assert failed[0].diagnostic().code == "E501"


def test_unknown_expectation_is_an_error():
    with pytest.raises(ArchError) as info:
        compile_body("  conv 1x1 -> 2\n  expect parms = 8")
    assert info.value.diagnostics[0].code == "E202"
    assert "params" in (info.value.diagnostics[0].hint or "")


def test_labels_become_module_names_and_state_dict_keys_stably():
    pytest.importorskip("torch")
    src = """
block unit(c) { act none; conv 3x3 p1 -> c; bn; relu }
network t {
  input 3x16x16
  act relu
  stem: conv 3x3 p1 -> 8
  repeat 2 { unit(8) }
  stage: repeat 2 { b: unit(8) }
  mlpconv 8,8
  add { conv 1x1 -> 8 | identity }
  head: fc 3 noact
}
"""
    keys = [k for k in archdsl.build(src).state_dict() if k.endswith(".weight")]
    assert keys == [
        "body.stem.conv.weight", "body.unit1.conv1.weight", "body.unit1.bn1.weight", "body.unit2.conv1.weight",
        "body.unit2.bn1.weight", "body.stage.b_1.conv1.weight", "body.stage.b_1.bn1.weight",
        "body.stage.b_2.conv1.weight", "body.stage.b_2.bn1.weight", "body.mlpconv1.conv1.conv.weight",
        "body.mlpconv1.conv2.conv.weight", "body.add1.branch1.conv1.conv.weight", "body.head.weight",
    ]
    assert [k for k in archdsl.build(src).state_dict()] == [k for k in archdsl.build(src).state_dict()]


def test_duplicate_labels_in_a_body_are_an_error():
    with pytest.raises(ArchError) as info:
        compile_body("  x: conv 1x1 -> 2\n  x: conv 1x1 -> 2")
    assert info.value.diagnostics[0].code == "E204"
    # but the same label in different bodies is fine
    compile_body("  x: conv 1x1 -> 2\n  concat { x: conv 1x1 -> 2 | x: conv 1x1 -> 2 }")


def test_blocks_positional_keyword_and_default_arguments():
    src = """
let base = 4
block b(c, k=3, pad=k // 2, extra=base) { conv k x k pad=pad -> c + extra }
network t {
  input 3x9x9
  b(4)
  b(4, 1)
  b(c=2, k=5, extra=0)
}
"""
    net = archdsl.compile(src)
    assert [(n.op.params.kernel, n.op.params.padding, n.shape.c) for n in net.nodes() if n.inputs] == [
        ((3, 3), (1, 1), 8), ((1, 1), (0, 0), 8), ((5, 5), (2, 2), 2)]
    for call, code in (("b()", "E208"), ("b(1, 2, 3, 4, 5)", "E206"), ("b(1, kk=2)", "E202"),
                       ("b(1, c=2)", "E204"), ("nope(1)", "E201")):
        with pytest.raises(ArchError) as info:
            archdsl.compile(src.replace("  b(4)\n", f"  {call}\n"))
        assert info.value.diagnostics[0].code == code, call


def test_blocks_do_not_see_the_callers_names():
    src = "block b() { conv 1x1 -> w }\nnetwork t(w=4) { input 3x4x4; b() }"
    with pytest.raises(ArchError) as info:
        archdsl.compile(src)
    assert info.value.diagnostics[0].code == "E205"


def test_recursion_is_an_error():
    src = "block a() { b() }\nblock b() { a() }\nnetwork t { input 3x4x4; a() }"
    with pytest.raises(ArchError) as info:
        archdsl.compile(src)
    assert info.value.diagnostics[0].code == "E209"


def test_include_brings_blocks_and_lets_but_not_networks(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text(
        'include "more.arch"\nlet w = 6\nblock b() { conv 1x1 -> w + v }\nnetwork lib_net { input 1x1x1 }\n')
    (tmp_path / "lib" / "more.arch").write_text("let v = 2\n")
    main = tmp_path / "main.arch"
    main.write_text('include "lib/blocks.arch"\nnetwork t { input 3x4x4; b() }\n')
    nets = archdsl.compile_all(main)
    assert [n.name for n in nets] == ["t"]
    assert nets[0].output_shape.c == 8
    (tmp_path / "cycle.arch").write_text('include "cycle.arch"\nnetwork t { input 1 }\n')
    with pytest.raises(ArchError) as info:
        archdsl.compile(tmp_path / "cycle.arch")
    assert info.value.diagnostics[0].code == "E211"
    (tmp_path / "missing.arch").write_text('include "nowhere.arch"\nnetwork t { input 1 }\n')
    with pytest.raises(ArchError) as info:
        archdsl.compile(tmp_path / "missing.arch")
    assert info.value.diagnostics[0].code == "E210"


def test_network_parameters_and_input_can_be_overridden():
    src = "network t(classes=10, w=4) { input 3x32x32; conv 3x3 -> w; gap; fc classes }"
    assert archdsl.compile(src).params == (4 * 27 + 4) + (4 * 10 + 10)
    assert archdsl.compile(src, classes=3, w=2).params == (2 * 27 + 2) + (2 * 3 + 3)
    assert archdsl.compile(src, input="3x8x8").node("conv1").shape.dims == (4, 6, 6)
    assert archdsl.compile(src, input=(1, 8, 8)).params == (4 * 9 + 4) + (4 * 10 + 10)


def test_several_networks_in_a_file_are_selected_by_name():
    src = "network a { input 1x4x4; conv 1x1 -> 2 }\nnetwork b { input 1x4x4; conv 1x1 -> 3 }"
    assert archdsl.compile(src, "b").output_shape.c == 3
    assert [n.name for n in archdsl.compile_all(src)] == ["a", "b"]
    with pytest.raises(ArchError) as info:
        archdsl.compile(src)
    assert info.value.diagnostics[0].code == "E203"


def test_statement_separators_comments_and_line_continuation():
    src = ("network t {  # a comment\n  input 3x8x8 ; conv 1x1 -> 2;conv 1x1 -> 3\n\n"
           "  # a whole-line comment\n  conv 3x3 \\\n    p1 -> 4\n}\n")
    net = archdsl.compile(src)
    assert [n.shape.dims for n in net.nodes()] == [(3, 8, 8), (2, 8, 8), (3, 8, 8), (4, 8, 8)]


def test_the_same_spec_compiles_to_the_same_report():
    a = archdsl.compile(ROOT / "specs" / "nin.arch", "nin").report().to_json()
    b = archdsl.compile(ROOT / "specs" / "nin.arch", "nin").report().to_json()
    assert a == b


def test_layer_params_are_values_whatever_the_spelling():
    """Params are memo-table keys: equal values must give equal, hashable params, and a field
    keeps its declared type (an int given for a float, a list for a tuple)."""
    from dataclasses import FrozenInstanceError

    from archdsl.layers.merge import AddParams
    from archdsl.layers.norm import BnParams
    from archdsl.layers.pool import SppParams

    bn = BnParams(eps=1, momentum=0)
    assert (type(bn.eps), type(bn.momentum)) == (float, float) and bn == BnParams(eps=1.0, momentum=0.0)
    spp = SppParams(levels=[4, 2, 1])
    assert spp.levels == (4, 2, 1) and hash(spp) == hash(SppParams(levels=(4, 2, 1)))
    add = AddParams(scales=[1, 0.2])
    assert add.scales == (1.0, 0.2) and type(add.scales[0]) is float
    assert len({kind.Params() for kind in kinds() if kind.Params.__name__ == "Params"}) == 1
    with pytest.raises(FrozenInstanceError):
        bn.eps = 0.1
    # bn eps=1 and eps=1.0 bind alike and print alike
    nets = [archdsl.compile(f"network n {{ input 8x4x4; bn eps={e} }}") for e in ("1", "1.0")]
    assert [n.report().to_markdown() for n in nets][0] == nets[1].report().to_markdown()
