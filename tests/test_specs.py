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
    # the report's "all trainable" and its buffers, as torch holds them
    assert all(p.requires_grad for p in model.parameters())
    assert sum(b.numel() for b in model.buffers()) == net.buffers
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
    """Compiling a file's networks last to first gives what first to last gives: nothing
    one compile does changes another."""
    from conftest import SPECS

    for path in sorted(SPECS.rglob("*.arch")):
        spec = archdsl.load(path)
        assert spec.networks == [n.name for n in spec.unit.program.networks]
        forward = [_everything(spec.compile(name)) for name in spec.networks]
        spec = archdsl.load(path)
        backward = [_everything(spec.compile(name)) for name in reversed(spec.networks)]
        assert forward == backward[::-1], path.name


def test_a_spec_loaded_for_one_network_compiles_every_network_as_a_whole_load():
    """``load(path, network=name)`` builds only that network (the others are checked, not
    built), and compiles exactly what a whole load compiles: that network at once, any other
    after loading the file whole (the first time it is asked for one, or for its unit)."""
    from conftest import SPECS

    checked = 0
    for path in sorted(SPECS.rglob("*.arch")):
        whole = archdsl.load(path)
        if len(whole.networks) < 2:
            continue
        first, *others = whole.networks
        spec = archdsl.load(path, network=first)
        assert spec._unit.program.unbuilt == tuple(others)
        assert spec.networks == whole.networks
        assert _everything(spec.compile(first)) == _everything(whole.compile(first))
        assert spec._unit.program.unbuilt, "compiling the network it was loaded for loads nothing more"
        assert _everything(spec.compile(others[-1])) == _everything(whole.compile(others[-1]))
        assert spec.unit.program == whole.unit.program and not spec._unit.program.unbuilt
        assert _everything(archdsl.compile(path, others[0])) == _everything(whole.compile(others[0]))
        checked += 1
    assert checked > 10
    spec = archdsl.load(SPECS / "alexnet.arch", network="alexnet")
    assert [n.name for n in spec.compile_all()] == ["alexnet", "alexnet_grouped", "alexnet_torchvision"]
    with pytest.raises(archdsl.ArchError, match="no network named 'alexnett'"):
        archdsl.compile(SPECS / "alexnet.arch", "alexnett")


def test_every_spec_and_doc_example_compiles_twice_in_one_process_as_once():
    """Every spec in specs/ and every example of docs/language.md, compiled again in the same
    process, gives exactly the first compile: nodes, spans, scopes, receptive fields, the
    structural tree and every `expect`. (A process-wide memo of block calls once gave a
    second call a different receptive field than a fresh expansion.)"""
    import test_language as docs

    first = [_everything(archdsl.compile(path, name)) for path, name in CASES]
    again = [_everything(archdsl.compile(path, name)) for path, name in CASES]
    for (path, name), a, b in zip(CASES, first, again):
        assert a == b, name
    sources = [docs._source(e) for e in docs.ARCH if not e.options.keys() & {"file", "error"}]
    sources = [s for s in sources if "include" not in s]
    assert len(sources) > 20
    once = [[_everything(n) for n in archdsl.compile_all(s)] for s in sources]
    twice = [[_everything(n) for n in archdsl.compile_all(s)] for s in sources]
    assert once == twice


def test_unit_compile_takes_input_and_parameters_and_names_a_network():
    unit = archdsl.load("network a(w=8) { input 3x32x32; conv 3x3 -> w }\n"
                        "network b { input 1x8x8; conv 3x3 -> 2 }")
    assert unit.compile("a", input="3x16x16", w=4).output_shape.dims == (4, 14, 14)
    assert unit.compile("a").params == 3 * 9 * 8 + 8
    with pytest.raises(archdsl.ArchError, match="holds 2 networks; name one"):
        unit.compile()
    with pytest.raises(archdsl.ArchError, match="no network named 'c'"):
        unit.compile("c")


def test_statements_written_alike_bind_with_their_own_values_and_places():
    """Statements written alike in different places bind with the values their names have
    there, and a mistake is reported where it is written, the first time and the second."""
    from archdsl import ArchError

    text = ("block a(p) {\n  conv 3x3 pad=p -> 4\n}\n"
            "block b(p) {\n  conv 3x3 pad=p -> 4\n}\n"
            "network n {\n  input 4x8x8\n  a(1)\n  b(0)\n  conv 3x3 pad=1 -> 4\n  conv 3x3 pad=1 -> 4\n}\n"
            "network bad {\n  input 4x8x8\n  a(1)\n  b(-1)\n}\n")
    for _ in range(2):
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
    from archdsl.network import TAux, TLayer, TMerge, TSeq

    if isinstance(item, TLayer):
        return ("layer", item.name, item.node)
    if isinstance(item, TSeq):
        return ("seq", item.name, item.block, tuple(item.args.items()), item.path,
                tuple(_tree(i) for i in item.items))
    if isinstance(item, TMerge):
        return ("merge", item.name, item.node, tuple(_tree(b) for b in item.branches))
    assert isinstance(item, TAux)
    return ("aux", item.name, _tree(item.body))


def _everything(net) -> tuple:
    nodes = [(i.id, tuple(i.inputs), i.shape.dims, tuple(s.dims for s in i.in_shapes), i.params, i.macs,
              tuple(i.rf), i.aux, i.scope, i.span, i.label()) for i in net.nodes()]
    checks = [(o.what, o.ok, str(o.found)) for o in net.check()]
    return (nodes, _tree(net.tree), net.input, net.output, net.aux_outputs, checks)


def test_the_expansion_memo_of_layer_figures_changes_no_figure(monkeypatch):
    """A layer's figures are memoised per expansion by (kind, params, attached ops, input
    shape): every spec compiled with the memo gives what it gives inferring every layer anew,
    and the memo is used (fewer entries than layers inferred)."""
    from archdsl import expand, infer

    inferred, kept = 0, {}

    def counting(info, ins, memo=None):
        nonlocal inferred
        inferred += 1
        kept[id(memo)] = memo
        return infer.infer_info(info, ins, memo)

    monkeypatch.setattr(expand, "infer_info", counting)
    with_memo = [_everything(archdsl.compile(path, name)) for path, name in CASES]
    assert sum(len(m) for m in kept.values() if m is not None) < inferred / 2
    monkeypatch.setattr(expand, "infer_info", lambda info, ins, memo=None: infer.infer_info(info, ins))
    without = [_everything(archdsl.compile(path, name)) for path, name in CASES]
    for (path, name), a, b in zip(CASES, with_memo, without):
        assert a == b, name
