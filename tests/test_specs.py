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
