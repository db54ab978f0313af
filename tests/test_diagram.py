"""Diagrams: every spec renders to SVG with one node per layer and one cluster per group;
golden DOT files; collapsing by depth; determinism; no torch; Graphviz missing."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

import archdsl
from archdsl.cli import main
from archdsl.network import TAux, TLayer, TMerge, TSeq
from archdsl.diagram import (AUTO_MAX_NODES, GraphvizNotFound, auto_depth, dot_available, render, title,
                            to_dot, to_svg)

from conftest import ROOT, spec_ids, spec_networks

DATA = Path(__file__).resolve().parent / "data" / "render"
SVG = "{http://www.w3.org/2000/svg}"
CASES = spec_networks()

needs_dot = pytest.mark.skipif(not dot_available(), reason="Graphviz `dot` is not installed")

#: above this many layers a full-depth layout takes Graphviz a minute (ResNet-1001: 3,339
#: layers), so the SVG test draws such a network collapsed instead (its DOT is still checked
#: at full depth)
MAX_DRAWN = 1000


# ---------------------------------------------------------------- an independent count of what must be drawn


def expected_counts(tree: TSeq, depth: int | None = None) -> tuple[list[str], int]:
    """(names of the nodes drawn, number of clusters) for `depth`, without collapsing runs.

    Written from the rules, not from render.py: a layer or merge is a node; a block call,
    named group or aux head is a cluster while fewer than `depth` groups enclose it and one
    node from then on; merge branches are neither.
    """
    names: list[str] = []
    clusters = 0

    def walk(items, level):
        nonlocal clusters
        for it in items:
            if isinstance(it, TLayer):
                names.append(it.name)
            elif isinstance(it, TMerge):
                for br in it.branches:
                    walk(br.items, level)
                names.append(it.name)
            else:
                seq = it.body if isinstance(it, TAux) else it
                if depth is not None and level >= depth:
                    names.append(f"aux head {it.name}" if isinstance(it, TAux) else it.name)
                else:
                    clusters += 1
                    walk(seq.items, level + 1)

    walk(tree.items, 0)
    return ["input", *names], clusters


def parse_svg(text: str):
    root = ET.fromstring(text)
    groups = list(root.iter(f"{SVG}g"))
    nodes = [g for g in groups if g.get("class") == "node"]
    clusters = [g for g in groups if g.get("class") == "cluster"]
    texts = [t.text or "" for t in root.iter(f"{SVG}text")]
    return nodes, clusters, texts


def node_texts(node) -> list[str]:
    return [t.text or "" for t in node.iter(f"{SVG}text")]


# ---------------------------------------------------------------- every spec


@needs_dot
@pytest.mark.parametrize("path,name", CASES, ids=spec_ids(CASES))
def test_every_spec_renders_to_svg(path, name):
    net = archdsl.compile(path, name)
    depth = None
    while len(expected_counts(net.tree, depth)[0]) > MAX_DRAWN:
        depth = 3 if depth is None else depth - 1
    if depth is not None:  # the full diagram as DOT: one labelled node per layer, plus the legend
        assert to_dot(net).count("[label=<") == net.graph.number_of_nodes() + 1
    svg = to_svg(net, depth=depth, collapse_repeats=False)
    nodes, clusters, texts = parse_svg(svg)
    names, n_clusters = expected_counts(net.tree, depth)
    assert len(nodes) == len(names) + 1  # + the legend
    assert len(clusters) == n_clusters
    if depth is None:
        assert len(nodes) == net.graph.number_of_nodes() + 1
        assert {n.find(f"{SVG}title").text for n in nodes} == set(net.graph.nodes) | {"legend"}
    drawn = [node_texts(n)[0] for n in nodes if n.find(f"{SVG}title").text != "legend"]
    assert sorted(drawn) == sorted(names)  # every node carries its name first
    title = texts[0]
    assert title.startswith(f"{net.name}: {net.input_shape} -> {net.output_shape}, {net.params:,} params")
    assert f"{net.macs:,} MACs" in title
    # the main output's shape is printed on its node
    out_node = next(n for n in nodes if n.find(f"{SVG}title").text == net.output)
    assert str(net.output_shape) in node_texts(out_node)


# ---------------------------------------------------------------- golden DOT


@pytest.mark.parametrize("spec,network,depth,rankdir,golden_name", [
    (ROOT / "specs" / "nin.arch", "nin", None, "TB", "dot/nin.dot"),
    (ROOT / "specs" / "resnet.arch", "resnet18", 2, "LR", "dot/resnet18_depth2.dot"),
    (DATA / "features.arch", "features", None, "TB", "dot/features.dot"),
])
def test_golden_dot(golden, spec, network, depth, rankdir, golden_name):
    net = archdsl.compile(spec, network)
    golden(golden_name, to_dot(net, depth=depth, rankdir=rankdir))


def test_dot_draws_merges_residual_scale_and_aux():
    dot = to_dot(archdsl.compile(DATA / "features.arch"))
    assert "residual: x + 0.2 f(x)" in dot  # the scaled residual's merge
    assert "residual: x + f(x)" in dot  # the unit's unscaled residual
    assert 'label="80x32x32 x0.2"' in dot  # the scaled branch's edge
    assert dot.count("(identity)") == 4  # three units and the scaled residual
    assert 'subgraph cluster_mixed1 {' in dot and "mixed1: mixed(a=24, b=32)" in dot
    assert "subgraph cluster_side" in dot and "aux head side" in dot
    assert "concat" in dot and "add1" in dot
    assert 'label="24x32x32"' in dot  # the shape on an edge into the concat


# ---------------------------------------------------------------- collapsing


def _visible(dot_text: str) -> int:
    return dot_text.count("[label=<") - 1  # without the legend


def test_depth_collapses_resnet50_as_its_structure_says():
    net = archdsl.compile(ROOT / "specs" / "resnet.arch", "resnet50")
    # input + every layer and merge
    assert _visible(to_dot(net)) == net.graph.number_of_nodes() == 89
    # depth 0: input -> resnet_imagenet1
    assert _visible(to_dot(net, depth=0)) == 2
    # depth 1: input, conv1, maxpool, layer1..layer4, avgpool, fc
    assert _visible(to_dot(net, depth=1)) == 9
    # depth 2 without runs: input, conv1, maxpool, 3 + 4 + 6 + 3 bottlenecks, avgpool, fc
    assert _visible(to_dot(net, depth=2, collapse_repeats=False)) == 5 + 16
    # with runs: each stage's first bottleneck projects its shortcut, the others repeat: 2 per stage
    dot = to_dot(net, depth=2)
    assert _visible(dot) == 5 + 8
    assert "bottleneck2 .. bottleneck6 x5" in dot and "bottleneck2 .. bottleneck3 x2" in dot
    counts = [_visible(to_dot(net, depth=d)) for d in (0, 1, 2, 3, 4)]
    assert counts == sorted(counts) and counts[-1] == net.graph.number_of_nodes()


def test_collapsed_node_totals_match_the_network():
    net = archdsl.compile(ROOT / "specs" / "resnet.arch", "resnet50")
    dot = to_dot(net, depth=0)
    # the one block holds every parameter: 25,557,032 and 4,089,184,256 MACs (figures.md)
    assert "25.6M params, 4.09G MACs" in dot
    layer1 = sum(i.params for i in net.nodes() if i.id.startswith("resnet_imagenet1.layer1."))
    assert layer1 == 215_808  # 3 bottlenecks at 64: torchvision's resnet50.layer1
    assert "216K params" in to_dot(net, depth=1)


@needs_dot
def test_depth_reduces_svg_nodes_for_googlenet():
    net = archdsl.compile(ROOT / "specs" / "googlenet.arch", "googlenet")
    full, _, _ = parse_svg(to_svg(net))
    collapsed, clusters, texts = parse_svg(to_svg(net, depth=0))
    # each of the 9 inception blocks (7 layers and the concat) becomes one node, and so does
    # each aux head (pool, conv, fc, dropout, fc)
    assert len(full) - len(collapsed) == 9 * 7 + 2 * 4
    assert not clusters
    assert "inception(c1=64, c3r=96, c3=128, c5r=16, c5=32, pp=32, k5=5)" in texts


def test_only_one_group():
    g = archdsl.compile(ROOT / "specs" / "googlenet.arch", "googlenet")
    dot = to_dot(g, only="inception3a")
    # 7 layers and the concat, the pool it reads from, the legend; the block's own totals
    assert _visible(dot) == 8 + 1
    assert "googlenet.inception3a: 192x28x28 -> 256x28x28, 163,696 params" in dot
    assert dot.count("subgraph cluster_") == 1
    assert 'pool2 [label=<<b>pool2</b>' in dot  # the tensor it reads, drawn as its input
    r50 = archdsl.compile(ROOT / "specs" / "resnet.arch", "resnet50")
    stage = "resnet_imagenet1.layer2"
    # 4 bottlenecks of 3 convs, the add and the relu; the first adds the projection
    assert _visible(to_dot(r50, only=stage)) == 1 + 4 * 5 + 1
    assert to_dot(r50, only=stage).count("subgraph") == 1 + 4
    # the depth counts from the group's body: the first bottleneck, then the 3 identical ones
    dot = to_dot(r50, only=stage, depth=0)
    assert _visible(dot) == 1 + 2 and "bottleneck2 .. bottleneck4 x3" in dot
    with pytest.raises(ValueError, match="did you mean 'resnet_imagenet1.layer2'"):
        to_dot(r50, only="layer2")


def test_readme_diagrams_are_current():
    """docs/img/*.svg are what docs/img/make.sh writes today (rerun it after changing a spec)."""
    script = (ROOT / "docs" / "img" / "make.sh").read_text()
    for line in script.splitlines():
        if not line.startswith("archdsl render "):
            continue
        args = line.split()[2:]
        spec, opts = args[0], dict(zip(args[1::2], args[2::2]))
        net = archdsl.compile(ROOT / spec, opts["-n"])
        dot = to_dot(net, depth=int(opts["--depth"]) if "--depth" in opts else None, only=opts.get("--only"))
        svg = (ROOT / opts["-o"]).read_text()
        nodes, clusters, texts = parse_svg(svg)
        assert texts[0] == title(net, opts.get("--only")), f"{opts['-o']} is stale: run docs/img/make.sh"
        assert len(nodes) == dot.count("[label=<"), f"{opts['-o']} is stale: run docs/img/make.sh"


def test_negative_depth_and_bad_rankdir_are_refused():
    net = archdsl.compile(ROOT / "specs" / "nin.arch", "nin")
    with pytest.raises(ValueError):
        to_dot(net, depth=-1)
    with pytest.raises(ValueError):
        to_dot(net, rankdir="XY")


# ---------------------------------------------------------------- determinism, no torch


def test_same_spec_same_dot_across_processes():
    # another process with another string-hash seed: no ids or set orders leak into the text
    code = ("import archdsl, sys; from archdsl.diagram import to_dot; "
            "sys.stdout.write(to_dot(archdsl.compile(sys.argv[1], 'googlenet'), depth=1))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code, str(ROOT / "specs" / "googlenet.arch")],
                           capture_output=True, text=True, check=True, env=env).stdout
    net = archdsl.compile(ROOT / "specs" / "googlenet.arch", "googlenet")
    assert to_dot(net, depth=1) == to_dot(net, depth=1) == other


def test_render_does_not_import_torch():
    code = ("import sys, archdsl; from archdsl.diagram import to_dot; "
            "to_dot(archdsl.compile(sys.argv[1], 'resnet18')); "
            "assert 'torch' not in sys.modules, 'render imported torch'")
    subprocess.run([sys.executable, "-c", code, str(ROOT / "specs" / "resnet.arch")], check=True)


# ---------------------------------------------------------------- output files and the API


@needs_dot
@pytest.mark.parametrize("suffix,magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")])
def test_api_writes_each_format(tmp_path, suffix, magic):
    out = tmp_path / f"nin{suffix}"
    text = archdsl.render(ROOT / "specs" / "nin.arch", "nin", output=str(out))
    assert text.startswith("digraph nin {")
    assert out.read_bytes().startswith(magic)


def test_api_writes_dot_and_takes_input_and_depth(tmp_path):
    out = tmp_path / "r.dot"
    text = archdsl.render(ROOT / "specs" / "resnet.arch", "resnet18", output=str(out), input="3x64x64", depth=1)
    assert out.read_text() == text
    assert "3x64x64 -> 1000" in text and "512x2x2" in text


def test_auto_depth_bounds_the_drawing():
    nin = archdsl.compile(ROOT / "specs" / "nin.arch", "nin")
    assert auto_depth(nin) is None  # small: every layer
    deep = archdsl.compile(ROOT / "specs" / "preact_resnet.arch", "preact_resnet1001")
    d = auto_depth(deep)
    assert d is not None
    assert _visible(to_dot(deep, depth=d)) + 1 <= AUTO_MAX_NODES < _visible(to_dot(deep, depth=d + 1)) + 1


@needs_dot
def test_jupyter_shows_svg():
    net = archdsl.compile(ROOT / "specs" / "nin.arch", "nin")
    bundle = net._repr_mimebundle_()
    nodes, _, _ = parse_svg(bundle["image/svg+xml"])
    assert len(nodes) == net.graph.number_of_nodes() + 1


def _cli(*args, path: str | None = None, cwd=ROOT):
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "archdsl.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env)


@needs_dot
def test_cli_render_svg(tmp_path):
    out = tmp_path / "g.svg"
    r = _cli("render", "specs/googlenet.arch", "-n", "googlenet", "-o", str(out), "--depth", "1", "--rankdir", "LR")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    nodes, clusters, texts = parse_svg(out.read_text())
    assert any("aux head aux1" == t for t in texts)
    assert len(nodes) < archdsl.compile(ROOT / "specs" / "googlenet.arch", "googlenet").graph.number_of_nodes()


def test_cli_without_graphviz(tmp_path, monkeypatch):
    bare = str(Path(sys.executable).parent)  # the interpreter's folder: no `dot` there
    assert not (Path(bare) / "dot").exists()
    r = _cli("render", "specs/nin.arch", "-n", "nin", "-o", str(tmp_path / "n.svg"), path=bare)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "apt-get install graphviz" in r.stderr and "brew install graphviz" in r.stderr
    assert not (tmp_path / "n.svg").exists()
    monkeypatch.setenv("PATH", bare)
    r = CliRunner().invoke(main, ["render", str(ROOT / "specs" / "nin.arch"), "-n", "nin", "-o",
                                  str(tmp_path / "n.dot")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "n.dot").read_text().startswith("digraph nin {")
    with pytest.raises(GraphvizNotFound):
        render(archdsl.compile(ROOT / "specs" / "nin.arch", "nin"), tmp_path / "n.png")


@pytest.mark.parametrize("args,message", [
    (["render", "specs/nin.arch", "-o", "x.svg"], "holds 2 networks"),
    (["render", "specs/nin.arch", "-n", "nin", "-o", "x.jpg"], "unknown diagram format 'jpg'"),
    (["render", "specs/nin.arch", "-n", "nin", "-o", "x.svg", "--depth", "-1"], "--depth"),
    (["render", "specs/nope.arch", "-o", "x.svg"], "no such file"),
    (["render", "specs/resnet.arch", "-n", "resnet50", "--only", "layer2", "-o", "x.svg"],
     "did you mean 'resnet_imagenet1.layer2'"),
])
def test_cli_render_usage_errors(args, message, monkeypatch):
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert isinstance(r.exception, SystemExit)  # a usage error, not an internal one
