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


def test_a_loaded_spec_compiles_every_network_as_compile_does():
    from conftest import SPECS

    for path in sorted(SPECS.rglob("*.arch")):
        unit = archdsl.load(path)
        assert unit.networks == [n.name for n in unit.program.networks]
        for name in unit.networks:
            assert _figures(unit.compile(name)) == _figures(archdsl.compile(path, name)), name


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
    """Binding and inference are memoised by the identity of shared objects
    (graph._BIND_MEMO, infer._MEMO): every network must come out the same with every memo
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
