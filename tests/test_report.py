"""The analytic report: golden table, markdown and JSON text for several classic specs,
stable JSON keys, totals that agree with the rows, and determinism.

Goldens live in tests/golden/reports/; after an intended change, accept new output with

    ARCHDSL_ACCEPT=1 python -m pytest tests/test_report.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl.report import CONVENTIONS, MIN_WRAP_WIDTH, SCHEMA, TABLE_COLUMNS, draw_table

ROOT = Path(__file__).resolve().parent.parent

#: (spec file, network, formats with a golden)
GOLDEN_CASES = [
    ("nin.arch", "nin", ("table", "markdown", "json")),
    ("nin.arch", "nin_imagenet", ("table", "markdown", "json")),
    ("lenet5.arch", "lenet5_modern", ("table", "markdown", "json")),
    ("alexnet.arch", "alexnet", ("table", "markdown", "json")),
    ("vgg.arch", "vgg16", ("table", "markdown", "json")),
    ("googlenet.arch", "googlenet", ("table", "markdown")),
]


def compiled(file: str, network: str):
    """Compile with the path relative to the repository root, as `archdsl compile specs/...`
    run from the root does, so that the report's `file` does not depend on the machine."""
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return archdsl.compile(f"specs/{file}", network)
    finally:
        os.chdir(cwd)


def render(report, fmt: str) -> str:
    if fmt == "table":
        return report.to_table()
    if fmt == "markdown":
        return report.to_markdown()
    return report.to_json() + "\n"


_EXT = {"table": "txt", "markdown": "md", "json": "json"}


@pytest.mark.parametrize("file,network,fmt", [(f, n, fmt) for f, n, fmts in GOLDEN_CASES for fmt in fmts],
                         ids=lambda v: v if isinstance(v, str) and "." not in v else None)
def test_report_golden(file, network, fmt, golden):
    if not (ROOT / "specs" / file).exists():
        pytest.skip(f"specs/{file} is not there")
    report = compiled(file, network).report()
    golden(f"reports/{network}.{_EXT[fmt]}", render(report, fmt))


#: (spec file, network, width): tables wider than their width, whose names and ops wrap
NARROW_CASES = [
    ("googlenet.arch", "googlenet_torchvision", 120),
    ("googlenet.arch", "googlenet", 80),
]


@pytest.mark.parametrize("file,network,width", NARROW_CASES)
def test_narrow_table_golden(file, network, width, golden):
    golden(f"reports/{network}.width{width}.txt", compiled(file, network).report().to_table(width))


# ---------------------------------------------------------------- JSON schema


REQUIRED_KEYS = ["schema", "network", "file", "input", "output", "params", "params_without_aux", "trainable_params",
                 "non_trainable_params", "buffers", "macs",
                 "macs_without_aux", "flops", "activation_elements", "activation_bytes", "param_bytes",
                 "receptive_field", "aux_outputs", "conventions", "layers", "training_memory", "expectations", "init",
                 "training"]
LAYER_KEYS = ["name", "kind", "op", "block", "aux", "inputs", "input", "output", "params", "macs", "receptive_field",
              "jump", "activations", "saved_bytes", "hyper"]


def test_json_keys_are_stable():
    d = compiled("nin.arch", "nin").report().to_dict()
    assert d["schema"] == SCHEMA == 1
    assert list(d) == REQUIRED_KEYS
    assert all(list(layer) == LAYER_KEYS for layer in d["layers"])
    assert list(d["receptive_field"]) == ["size", "jump"]
    assert d["conventions"] == CONVENTIONS
    assert list(d["expectations"][0]) == ["what", "expected", "found", "ok", "line"]


def test_json_round_trips_and_holds_only_plain_values():
    text = compiled("googlenet.arch", "googlenet").report().to_json()
    d = json.loads(text)
    assert json.dumps(d, indent=2) == text


@pytest.mark.parametrize("file,network", [("nin.arch", "nin"), ("googlenet.arch", "googlenet"),
                                          ("alexnet.arch", "alexnet_grouped"), ("lenet5.arch", "lenet5")])
def test_totals_agree_with_the_rows(file, network):
    net = compiled(file, network)
    d = net.report().to_dict()
    layers = d["layers"]
    assert sum(r["params"] for r in layers) == d["params"] == net.params
    assert sum(r["macs"] for r in layers) == d["macs"] == net.macs
    assert sum(r["params"] for r in layers if r["aux"] is None) == d["params_without_aux"]
    assert sum(r["macs"] for r in layers if r["aux"] is None) == d["macs_without_aux"]
    assert d["flops"] == 2 * d["macs"]
    assert d["activation_elements"] == sum(r["activations"] for r in layers if r["kind"] != "input")
    assert d["activation_bytes"] == 4 * d["activation_elements"] and d["param_bytes"] == 4 * d["params"]
    assert layers[0]["name"] == "input" and layers[0]["output"] == d["input"]
    memory = d["training_memory"]
    assert sum(r["saved_bytes"] for r in layers) == memory["saved_bytes_per_sample"]
    assert memory["saved_activation_bytes"] == memory["batch"] * memory["saved_bytes_per_sample"] + memory[
        "saved_fixed_bytes"]
    assert memory["total_bytes"] == sum(memory[k] for k in ("saved_activation_bytes", "param_bytes", "gradient_bytes",
                                                             "optimizer_state_bytes", "buffer_bytes"))
    assert all(e["ok"] for e in d["expectations"])
    # every row's inputs name earlier rows: the list is in topological order
    seen = set()
    for r in layers:
        assert set(r["inputs"]) <= seen
        seen.add(r["name"])


def test_aux_heads_are_marked_and_listed():
    d = compiled("googlenet.arch", "googlenet").report().to_dict()
    assert d["aux_outputs"] == {"aux1": [1000], "aux2": [1000]}
    assert d["params"] == 13_378_280 and d["params_without_aux"] == 6_998_552  # figures.md
    assert {r["aux"] for r in d["layers"]} == {None, "aux1", "aux2"}
    assert all(r["name"].startswith(r["aux"] + ".") for r in d["layers"] if r["aux"])


def test_table_totals_and_expectations_are_printed():
    text = compiled("googlenet.arch", "googlenet").report().to_table()
    assert "params: 13,378,280 (51.03 MiB as float32)" in text
    assert "params without aux heads (aux1, aux2): 6,998,552" in text
    assert "MACs without aux heads: 1,582,671,872" in text
    assert "expect params_without_aux = 6,998,552: ok" in text
    assert "FAILED" not in text


def test_failed_expectations_are_reported_as_failed():
    net = archdsl.compile("network t { input 3x8x8; conv 3x3 -> 4; expect params = 100 }")
    d = net.report().to_dict()
    assert d["expectations"] == [{"what": "params", "expected": 100, "found": 112, "ok": False, "line": 1}]
    assert "expect params = 100: FAILED (found 112)" in net.report().to_table()


def test_table_never_breaks_a_number():
    """With long qualified names (ResNet's bottlenecks) and a narrow table, the names fold
    and every figure stays on one line."""
    net = archdsl.compile("""
block deep_block_with_a_long_name(c) { concat { conv 1x1 -> c | conv 3x3 p1 -> c } }
network t {
  input 3x224x224
  a_rather_long_stage_label: repeat 1 { another_long_label: deep_block_with_a_long_name(64) }
  conv 7x7/2 p3 -> 64
}""")
    text = net.report().to_table(width=80)
    table = text.split("\n\n")[0]
    assert all(len(line) <= 80 for line in table.splitlines())
    for r in net.report().rows:
        for figure in (f"{r.macs:,}", f"{r.activations:,}", "x".join(map(str, r.output))):
            if figure != "0":
                assert figure in text, figure


def test_markdown_rows_have_the_header_s_cells():
    text = compiled("googlenet.arch", "googlenet").report().to_markdown()
    rows = [line for line in text.splitlines() if line.startswith("|")]
    header = rows[0].count("|")
    assert all(r.replace("\\|", "").count("|") == header for r in rows)
    assert len(rows) == 2 + len(compiled("googlenet.arch", "googlenet").report().rows)


def test_reports_are_deterministic_across_processes():
    """The same spec gives byte-identical reports in another interpreter with another
    hash seed (no set or dict-order dependence)."""
    here = compiled("googlenet.arch", "googlenet").report().to_json()
    assert compiled("googlenet.arch", "googlenet").report().to_json() == here
    for seed in ("1", "2"):
        proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "compile", "specs/googlenet.arch", "-n",
                               "googlenet", "--format", "json"], cwd=ROOT, capture_output=True, text=True,
                              env=dict(os.environ, PYTHONHASHSEED=seed), timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == here + "\n"


# ---------------------------------------------------------------- the plain table (report.draw_table)


def _table_min_width(columns, rows) -> int:
    """The narrowest the rules allow: numbers at full width, wrapping columns at their floor."""
    total = 2 * (len(columns) - 1)
    for i, (head, _, wraps) in enumerate(columns):
        natural = max([len(head)] + [len(r[i]) for r in rows])
        total += min(natural, max(len(head), MIN_WRAP_WIDTH)) if wraps else natural
    return total


def _check_table(drawn: str, title: str, columns, rows) -> None:
    """Read `drawn` back, column by column, and check it holds every cell where the rules
    say: numbers whole, right-aligned under their header; wrapped text with nothing lost.
    The columns are the report's shape: wrapping text columns first, then numbers, the last
    of which is never empty (so that a row's first line can be told from its continuation)."""
    lines = drawn.splitlines()
    assert lines[0] == title
    header = lines[1]
    spans = [m.span() for m in re.finditer(r"\S+", header)]
    assert [header[a:b] for a, b in spans] == [c[0] for c in columns]  # one header each, in order
    bounds = []
    for i, ((head, right, _), (a, b)) in enumerate(zip(columns, spans)):
        if right:  # a number column keeps its natural width: its header ends the column
            natural = max([len(head)] + [len(r[i]) for r in rows])
            bounds.append((b - natural, b))
        else:
            bounds.append((a, None))  # ends two characters before the next column starts
    for i in range(len(bounds) - 1):
        if bounds[i][1] is None:
            bounds[i] = (bounds[i][0], bounds[i + 1][0] - 2)
    last_a, last_b = bounds[-1]
    starts = [k for k in range(2, len(lines)) if lines[k][last_a:last_b].strip()]
    assert len(starts) == len(rows) and (not rows or starts[0] == 2)
    for row, first, stop in zip(rows, starts, starts[1:] + [len(lines)]):
        block = [line.ljust(max(b for _, b in bounds)) for line in lines[first:stop]]
        for cell, (a, b), (_, right, _) in zip(row, bounds, columns):
            if right:
                assert block[0][a:b] == cell.rjust(b - a), (cell, block[0])
                assert not any(line[a:b].strip() for line in block[1:])
            else:
                assert "".join(line[a:b] for line in block).replace(" ", "") == cell.replace(" ", "")


_TEXT = st.text(alphabet=st.sampled_from("ab x._->0123456789"), max_size=40)
_NUMBER = st.one_of(st.integers(0, 10**13).map("{:,}".format),
                    st.lists(st.integers(1, 4096), min_size=1, max_size=3).map(lambda s: "x".join(map(str, s))))


@st.composite
def _tables(draw):
    n_text, n_num = draw(st.integers(1, 2)), draw(st.integers(1, 4))
    heads = draw(st.lists(st.text(alphabet="abcdefghijklmnop", min_size=1, max_size=12),
                          min_size=n_text + n_num, max_size=n_text + n_num))
    columns = tuple((h, i >= n_text, i < n_text) for i, h in enumerate(heads))
    cell = [_TEXT] * n_text + [st.one_of(st.just(""), _NUMBER)] * (n_num - 1) + [_NUMBER]
    rows = draw(st.lists(st.tuples(*cell), max_size=8))
    return columns, rows


@settings(max_examples=300, deadline=None)
@given(table=_tables(), width=st.integers(1, 160))
def test_the_table_never_crops_a_number_and_fits_when_the_numbers_fit(table, width):
    columns, rows = table
    drawn = draw_table("t", columns, rows, width)
    _check_table(drawn, "t", columns, rows)  # numbers whole and aligned, wrapped text complete
    widest = max(map(len, drawn.splitlines()[1:]))
    natural = _table_min_width([(h, r, False) for h, r, _ in columns], rows)
    narrowest = _table_min_width(columns, rows)
    if width >= narrowest:  # the numbers fit: so does every line
        assert widest == min(width, natural)
    else:  # they do not: the lines overflow as little as the rules allow
        assert widest == narrowest
    assert draw_table("t", columns, rows, width) == drawn
    assert draw_table("t", columns, rows, widest) == drawn  # laid out again at its own width: the same


def test_the_header_is_aligned_with_its_column():
    columns = (("name", False, True), ("n", True, False), ("size", True, False))
    drawn = draw_table("", columns, [("a", "1,234,567", "7"), ("a longer name", "8", "")], 80)
    assert drawn == ("name                   n  size\n"
                     "a              1,234,567     7\n"
                     "a longer name          8\n")


def test_a_narrow_table_wraps_names_at_dots_and_ops_at_spaces():
    columns = (("layer", False, True), ("op", False, True), ("params", True, False))
    rows = [("inception3a.concat1.branch1.conv1", "conv 7x7/2 p3 -> 64 +bn eps=0.001 +relu", "9,248")]
    assert draw_table("t", columns, rows, 36) == ("t\n"
                                                  "layer          op             params\n"
                                                  "inception3a.   conv 7x7/2 p3   9,248\n"
                                                  "concat1.       -> 64 +bn\n"
                                                  "branch1.conv1  eps=0.001\n"
                                                  "               +relu\n")
    # below the narrowest the numbers allow, the text columns stop at 8 and the line overflows
    assert draw_table("t", columns, rows, 20).splitlines()[1:3] == ["layer     op        params",
                                                                     "inceptio  conv       9,248"]


@pytest.mark.parametrize("network", ["googlenet", "googlenet_torchvision"])
def test_the_report_table_keeps_every_figure_at_every_width(network):
    """`--width 30` used to cut 118,013,952 to 118,01: at any width, every cell is where it belongs."""
    report = compiled("googlenet.arch", network).report()
    title = f"{report.network}  ({report.file})"
    rows = report.table_rows()
    for width in range(1, 131):
        text = report.to_table(width)
        _check_table(text.split("\n\n")[0] + "\n", title, TABLE_COLUMNS, rows)
        if width >= _table_min_width(TABLE_COLUMNS, rows):
            assert all(len(line) <= width for line in text.split("\n\n")[0].splitlines()[1:])


def test_every_report_of_every_spec_meets_the_published_schema():
    """archdsl/schema/report.schema.json (closed objects: a key added to the report without
    the schema fails here)."""
    jsonschema = pytest.importorskip("jsonschema")
    from archdsl.report import json_schema

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    seen = 0
    for path in sorted((ROOT / "specs").glob("*.arch")):
        reports = [net.report().to_dict() for net in archdsl.compile_all(path)]
        validator.validate(reports[0] if len(reports) == 1 else reports)
        seen += len(reports)
    assert seen >= 90
    broken = compiled("nin.arch", "nin").report().to_dict()
    for bad in ({**broken, "params": -1}, {**broken, "extra": 1}, {k: v for k, v in broken.items() if k != "macs"},
                {**broken, "layers": [{**broken["layers"][1], "output": []}]}):
        assert not validator.is_valid(bad)


@pytest.mark.parametrize("file,network", [("googlenet.arch", "googlenet"), ("resnet.arch", "resnet50"),
                                          ("inception_resnet.arch", "inception_resnet_v2"), ("densenet.arch", "densenet121"),
                                          ("nin.arch", "nin"), ("mobilenet_v3.arch", "mobilenet_v3_small")])
def test_rows_at_a_depth_fold_groups_and_keep_the_totals(file, network):
    net = compiled(file, network)
    full = net.report()
    previous = None
    for depth in range(0, 6):
        rows = net.report(depth).rows
        # every layer is counted once, in exactly one row
        assert sum(r.params for r in rows) == full.params == net.params
        assert sum(r.macs for r in rows) == full.macs
        assert sum(r.activations for r in rows) == sum(r.activations for r in full.rows)
        assert rows[0].name == "input" and rows[0] == full.rows[0]
        assert previous is None or len(rows) >= len(previous)  # deeper never shows fewer rows
        for r in rows:
            if r.kind in ("block", "group", "aux"):
                inside = [x for x in full.rows if x.name.startswith(r.name + ".")]
                assert r.params == sum(x.params for x in inside) and r.hyper["layers"] == len(inside)
        previous = rows
    assert [r.name for r in net.report(64).rows] == [r.name for r in full.rows]


def test_depth_rows_golden(golden):
    golden("reports/googlenet.depth0.txt", compiled("googlenet.arch", "googlenet").report(0).to_table(120))


def test_compile_depth_on_the_command_line():
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "compile", "specs/resnet.arch", "-n", "resnet50",
                           "--depth", "1", "--format", "csv"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split(",")[1] for line in lines[1:4]] == ["input", "resnet_imagenet1.conv1", "resnet_imagenet1.maxpool"]
    assert lines[4].startswith('resnet50,resnet_imagenet1.layer1,block,"bottleneck_stage(n=3, c=64,')
    assert sum(int(line.rsplit(",", 8)[1]) for line in lines[1:]) == 25_557_032
