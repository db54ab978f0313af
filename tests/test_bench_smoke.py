"""Two pieces of core behaviour kept here for now: the fast report table is rich's table
(archdsl/textable.py lays it out character for character as rich does), and compiling and
reporting import neither torch nor networkx.

The benchmark harness (bench/) is not imported by any test: it is a tool of its own, run as
``python -m bench``.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl import textable

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- the fast table is rich's


def _rich_table(rep, width: int) -> str:
    real = textable.render
    textable.render = lambda *a, **k: None  # force the rich path of Report.to_table
    try:
        return rep.to_table(width)
    finally:
        textable.render = real


@pytest.mark.parametrize("spec,network", [("nin.arch", "nin"), ("alexnet.arch", "alexnet"),
                                          ("googlenet.arch", "googlenet"), ("resnet.arch", "resnet50"),
                                          ("inception_v4.arch", "inception_v4"), ("lenet5.arch", "lenet5")])
def test_the_fast_table_is_rich_s_table(spec, network):
    path = ROOT / "specs" / spec
    if not path.exists() or f"network {network}" not in path.read_text():
        pytest.skip(f"{spec} has no {network}")
    rep = archdsl.compile(path, network).report()
    for width in (60, 80, 100, 120, 160):
        assert rep.to_table(width) == _rich_table(rep, width), width


def test_the_fast_table_steps_aside_for_what_it_does_not_reproduce():
    assert textable.render("t", ["a"], ["left"], [False], [["[bold]x[/bold]"]], 80) is None  # markup
    assert textable.render("t", ["a"], ["left"], [False], [["é"]], 80) is None  # not ASCII
    assert textable.render("a title longer than the table", ["a"], ["left"], [False], [["x"]], 80) is None



def _drawn_by_rich(title, headers, justify, no_wrap, rows, width) -> list[str]:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for h, j, nw in zip(headers, justify, no_wrap):
        table.add_column(h, justify=j, no_wrap=nw, overflow="fold")
    for r in rows:
        table.add_row(*r)
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False, soft_wrap=False,
            legacy_windows=False).print(table)
    return _stripped(buf.getvalue())


def _stripped(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip().splitlines()]


@pytest.mark.parametrize("width", [24, 30, 40, 80])
def test_the_fast_table_wraps_and_folds_as_rich_does(width):
    rows = [["stage1.block1.conv1", "conv 3x3 p1 -> 64 +bn eps=0.001 +relu", "64x56x56", "36,928"],
            ["a_very_long_layer_name_without_spaces", "gap", "64", ""],
            ["x", "fc 1000", "1000", "65,000"]]
    headers, justify, no_wrap = ["layer", "op", "output", "params"], ["left", "left", "right", "right"], \
        [False, False, True, True]
    drawn = textable.render("t", headers, justify, no_wrap, rows, width)
    if drawn is None:
        pytest.skip("too narrow for the fast layout (rich draws it)")
    assert _stripped(drawn) == _drawn_by_rich("t", headers, justify, no_wrap, rows, width)


_CELL = st.text(alphabet=st.sampled_from("ab x,.-_>0123456789"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(1, 5), width=st.integers(1, 120))
def test_any_table_the_fast_layout_draws_is_rich_s(data, n, width):
    """Random tables of plain cells (spaces anywhere, words longer than their column, empty
    cells) at random widths: wherever textable draws a table at all, it is rich's."""
    headers = data.draw(st.lists(_CELL, min_size=n, max_size=n))
    justify = data.draw(st.lists(st.sampled_from(["left", "right"]), min_size=n, max_size=n))
    no_wrap = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    rows = data.draw(st.lists(st.lists(_CELL, min_size=n, max_size=n), max_size=6))
    title = data.draw(st.sampled_from(["", "t", "a title"]))
    drawn = textable.render(title, headers, justify, no_wrap, rows, width)
    if drawn is not None:
        assert _stripped(drawn) == _drawn_by_rich(title, headers, justify, no_wrap, rows, width)


# ---------------------------------------------------------------- what compiling imports


def test_compiling_and_reporting_import_neither_torch_nor_networkx():
    code = ("import sys, archdsl; net = archdsl.compile('specs/nin.arch', 'nin'); net.report().to_table(); "
            "print(sorted(m for m in ('torch', 'networkx', 'rich') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    net = archdsl.compile(ROOT / "specs" / "nin.arch", "nin")
    assert net.graph.number_of_nodes() == len(list(net.nodes()))  # networkx on demand
    assert {e for e in net.graph.edges} == {(i, n.id) for n in net.nodes() for i in n.inputs}
