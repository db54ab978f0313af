"""Every network in specs/ is a test case: it compiles, every `expect` holds, and the
built torch module has exactly the analytic parameter count and output shape, with every
layer's actual output shape equal to the inferred one."""

from __future__ import annotations

import pytest

import archdsl
from conftest import spec_ids, spec_networks

CASES = spec_networks()


@pytest.mark.parametrize("path,name", CASES, ids=spec_ids(CASES))
def test_spec_compiles_and_meets_its_expectations(path, name):
    net = archdsl.compile(path, name)
    outcomes = net.check()
    assert outcomes, f"{name} has no `expect` lines"
    assert any(o.what == "params" for o in outcomes), f"{name} does not state its parameter count"
    failed = [o.diagnostic().render(net.sources) for o in outcomes if not o.ok]
    assert not failed, "\n\n".join(failed)


@pytest.mark.parametrize("path,name", CASES, ids=spec_ids(CASES))
def test_spec_lowers_to_torch_with_equal_counts_and_shapes(path, name):
    torch = pytest.importorskip("torch")
    from archdsl.lower_torch import TLayer, count_parameters, forward_shapes, lower

    net = archdsl.compile(path, name)
    torch.manual_seed(0)
    model = lower(net)
    assert count_parameters(model) == net.params
    actual = forward_shapes(model)
    # every layer node's module produced exactly the inferred shape
    checked = 0

    def walk(seq, prefix):
        nonlocal checked
        for item in seq.items:
            path_ = f"{prefix}.{item.name}" if prefix else item.name
            if isinstance(item, TLayer):
                info = net.node(item.node)
                assert actual[path_] == info.shape.dims, f"{path_}: built {actual[path_]}, inferred {info.shape}"
                checked += 1
            elif hasattr(item, "items"):
                walk(item, path_)
            elif hasattr(item, "branches"):
                for b in item.branches:
                    walk(b, f"{path_}.{b.name}")
            elif hasattr(item, "body") and item.body.items:
                pass  # aux heads run only in training mode; checked in test_lowering

    walk(net.tree, "body")
    assert checked > 0
    with torch.no_grad():
        y = model.eval()(torch.randn(1, *net.input_shape.dims))
    assert tuple(y.shape[1:]) == net.output_shape.dims


def _figures(net) -> list[tuple]:
    """Everything inferred, node by node: ids, shapes, counts and receptive fields."""
    return [(i.id, tuple(i.inputs), i.shape.dims, i.params, i.macs, tuple(i.rf), i.aux) for i in net.nodes()]


def test_a_loaded_spec_compiles_its_networks_alike_in_any_order():
    """The memo tables are shared by every network of a file (and every file): compiling a
    file's networks last to first, from empty tables, gives what first to last gives."""
    from archdsl import cache
    from conftest import SPECS

    for path in sorted(SPECS.rglob("*.arch")):
        unit = archdsl.load(path)
        assert unit.networks == [n.name for n in unit.program.networks]
        forward = [_everything(unit.compile(name)) for name in unit.networks]
        cache.clear()
        unit = archdsl.load(path)
        backward = [_everything(unit.compile(name)) for name in reversed(unit.networks)]
        assert forward == backward[::-1], path.name


def test_unit_compile_takes_input_and_parameters_and_names_a_network():
    unit = archdsl.load("network a(w=8) { input 3x32x32; conv 3x3 -> w }\n"
                        "network b { input 1x8x8; conv 3x3 -> 2 }")
    assert unit.compile("a", input="3x16x16", w=4).output_shape.dims == (4, 14, 14)
    assert unit.compile("a").params == 3 * 9 * 8 + 8
    with pytest.raises(archdsl.ArchError, match="holds 2 networks; name one"):
        unit.compile()
    with pytest.raises(archdsl.ArchError, match="no network named 'c'"):
        unit.compile("c")


def test_memo_tables_change_no_figure():
    """Binding and inference are memoised by statement text and the identity of shared
    objects (graph._BIND_MEMO, infer._MEMO): every network must come out the same with every memo
    table emptied first, and when built again from full tables."""
    from archdsl import cache

    cases = CASES
    with cache.disabled():
        cold = []
        for path, name in cases:
            cache.clear()
            cold.append(_figures(archdsl.compile(path, name)))
    warm = [_figures(archdsl.compile(path, name)) for path, name in cases]
    again = [_figures(archdsl.compile(path, name)) for path, name in cases]
    assert cold == warm == again


def test_statements_written_alike_bind_with_their_own_values_and_places():
    """Layer bindings are memoised by a statement's text (graph.Builder._stmt_key): statements
    written alike in different places must still bind with the values their names have
    there, and a mistake must be reported where it is written, with the memo tables empty
    or full."""
    from archdsl import ArchError, cache

    text = ("block a(p) {\n  conv 3x3 pad=p -> 4\n}\n"
            "block b(p) {\n  conv 3x3 pad=p -> 4\n}\n"
            "network n {\n  input 4x8x8\n  a(1)\n  b(0)\n  conv 3x3 pad=1 -> 4\n  conv 3x3 pad=1 -> 4\n}\n"
            "network bad {\n  input 4x8x8\n  a(1)\n  b(-1)\n}\n")
    cache.clear()
    for _ in range(2):  # empty tables, then full ones
        unit = archdsl.load(text)
        layers = [i for i in unit.compile("n").nodes() if i.kind.name == "conv"]
        assert [(i.shape.dims, i.span.line) for i in layers] == [
            ((4, 8, 8), 2), ((4, 6, 6), 5), ((4, 6, 6), 11), ((4, 6, 6), 12)]
        with pytest.raises(ArchError) as err:  # b's `pad=p`, not a's
            unit.compile("bad")
        where = err.value.first.span
        assert (err.value.first.code, where.line, where.column) == ("E303", 5, 16)


def _tree(item) -> tuple:
    """The structural tree (what lowering and rendering walk) as plain tuples."""
    from archdsl.graph import TAux, TLayer, TMerge, TSeq

    if isinstance(item, TLayer):
        return ("layer", item.name, item.node)
    if isinstance(item, TSeq):
        return ("seq", item.name, item.block, tuple(item.args.items()), item.path,
                tuple(_tree(i) for i in item.items))
    if isinstance(item, TMerge):
        return ("merge", item.name, item.mode, item.node, item.scales, tuple(_tree(b) for b in item.branches))
    assert isinstance(item, TAux)
    return ("aux", item.name, _tree(item.body))


def _everything(net) -> tuple:
    nodes = [(i.id, tuple(i.inputs), i.shape.dims, tuple(s.dims for s in i.in_shapes), i.params, i.macs,
              tuple(i.rf), i.aux, i.scope, i.span, i.label()) for i in net.nodes()]
    checks = [(o.what, o.ok, str(o.found)) for o in net.check()]
    return (nodes, _tree(net.tree), net.input, net.output, net.aux_outputs, checks,
            sorted(net._layers.edges) if hasattr(net, "_layers") else None)


def test_block_calls_copied_from_an_earlier_call_equal_a_fresh_expansion(monkeypatch):
    """A block call made alike before is copied (graph.Builder._replay) instead of expanded:
    every spec must come out exactly as when every call is expanded afresh, node ids, spans,
    scopes, receptive fields, the structural tree, the edges and every `expect` included."""
    from archdsl import cache
    from archdsl.graph import Builder

    from archdsl import graph

    for path, name in CASES:  # fill the memo: the second compile of each copies every call it can
        archdsl.compile(path, name)
    assert len(graph._CALLS) > 100
    replayed = [_everything(archdsl.compile(path, name)) for path, name in CASES]
    cache.clear()
    monkeypatch.setattr(Builder, "_call_key", lambda *args: None)
    fresh = [_everything(archdsl.compile(path, name)) for path, name in CASES]
    for (path, name), a, b in zip(CASES, replayed, fresh):
        assert a == b, name


def test_the_block_call_memo_holds_a_bounded_number_of_nodes(monkeypatch):
    from archdsl import graph

    monkeypatch.setattr(graph, "_CALLS_NODE_LIMIT", 40)
    for w in range(1, 30):
        net = archdsl.compile(f"block b(w) {{ conv 3x3 p1 -> w; conv 3x3 p1 -> w }}\n"
                              f"network n {{ input 3x8x8; b({w}); b({w}); b({w + 1}) }}")
        assert net.params == (3 * 9 * w + w) + 3 * (w * 9 * w + w) + (w * 9 * (w + 1) + w + 1) + \
            (w + 1) * 9 * (w + 1) + (w + 1)
        held = sum(len(e.nodes) for e in graph._CALLS.values())
        assert held <= 40 and held <= graph._calls_nodes
