"""Stage 5, the interpreter: reserved names, merges from the registry, kind attributes."""

from __future__ import annotations

import pytest

import archdsl
from archdsl import ArchError
from archdsl.names import RESERVED_NAMES
from archdsl.layers import REGISTRY, MergeKind


def test_reserved_names_are_the_torch_module_attributes():
    torch = pytest.importorskip("torch")
    from archdsl import lower_torch

    public = {n for n in dir(torch.nn.Module()) if not n.startswith("_")}
    assert public <= RESERVED_NAMES, sorted(public - RESERVED_NAMES)
    # and the attributes archdsl's own containers set
    for cls in (lower_torch.Network, lower_torch.AuxBody, lower_torch.Merge):
        m = cls.__new__(cls)
        torch.nn.Module.__init__(m)
        before = set(vars(m))
        try:
            cls.__init__(m, *{lower_torch.Network: (torch.nn.Identity(), "n", (1,), (1,), ()),
                              lower_torch.AuxBody: ([],), lower_torch.Merge: ([], REGISTRY["add"], None)}[cls])
        except TypeError:
            continue
        assert set(vars(m)) - before <= RESERVED_NAMES, cls.__name__


@pytest.mark.parametrize("spec", ["network n { input 3x8x8; forward: relu }",
                                  "network n { input 3x8x8; aux training { gap; fc 2 } }",
                                  "network n { input 3x8x8; to: concat { relu | relu } }",
                                  "network n { input 3x8x8; body: relu }"])
def test_a_label_that_is_a_module_attribute_is_refused_at_compile(spec):
    with pytest.raises(ArchError) as err:
        archdsl.compile(spec)
    assert err.value.code == "E204" and "reserved" in err.value.first.message


def test_merge_names_stay_free_for_blocks_and_labels():
    net = archdsl.compile("block mul(c) { conv 1x1 -> c }\n"
                          "network n { input 4x8x8; add: mul(4); concat: mul { identity | sigmoid } }")
    assert [i.id for i in net.nodes()] == ["input", "add.conv1", "concat.branch1.identity1",
                                           "concat.branch2.sigmoid1", "concat"]
    assert net.node("concat").kind is REGISTRY["mul"]


def test_every_merge_kind_is_reached_through_the_one_rule():
    for kind in {k for k in REGISTRY.values() if isinstance(k, MergeKind)}:
        net = archdsl.compile(f"network n {{ input 64x8x8\n  {kind.example}\n}}")
        assert any(i.kind is kind for i in net.nodes()), kind.name


@pytest.mark.parametrize("spec, code, text", [
    ("network n { input 3x8x8; conv { relu | relu } }", "E201", "is a layer, not a merge"),
    ("network n { input 3x8x8; concta { relu | relu } }", "E201", "did you mean 'concat'"),
    ("network n { input 3x8x8; concat { relu } }", "E206", "at least 2 branches"),
    ("network n { input 3x8x8; residual { relu } | { relu } }", "E101", ""),
    ("network n { input 3x8x8; residual { relu | relu } }", "E206", "exactly 1 branch"),
    ("network n { input 3x8x8; concat(2) { relu | relu } }", "E202", "a merge"),
    ("network n { input 3x8x8; residual shift=2 { relu } }", "E202", "no parameter 'shift'"),
])
def test_merge_mistakes_are_located(spec, code, text):
    with pytest.raises(ArchError) as err:
        archdsl.compile(spec)
    assert err.value.code == code and text in err.value.render()


def test_the_kinds_own_their_rules():
    """Kind knowledge lives on the kinds: which outputs are fresh (in-place activations),
    which norms cancel a bias."""
    assert REGISTRY["bn"].cancels_bias and not REGISTRY["lrn"].cancels_bias
    assert {k.name for k in REGISTRY.values() if k.fresh_output} >= {"conv", "fc", "bn", "concat", "add", "maxpool"}
    assert not REGISTRY["relu"].fresh_output
    net = archdsl.compile("network n { input 3x8x8; conv 3x3 -> 4; bn; conv 3x3 -> 4; lrn 5 }")
    assert [i.params for i in net.nodes() if i.kind.name == "conv"] == [3 * 9 * 4, 4 * 9 * 4 + 4]


def test_aux_names_are_scoped_by_structure():
    net = archdsl.compile("block b() { conv 1x1 -> 4; aux head { gap; fc 2 } }\n"
                          "network n { input 3x8x8; b(); b() }")
    assert list(net.aux_outputs) == ["b1.head", "b2.head"]


def test_a_file_of_many_networks_is_bounded_as_a_whole():
    nets = "\n".join(f"network n{i} {{ input 1x4x4; repeat 1000 {{ relu; relu; relu; relu; relu; relu }} }}"
                     for i in range(20))
    with pytest.raises(ArchError) as err:
        archdsl.compile_all(nets)
    assert err.value.code == "E304" and "together" in err.value.first.message


def test_a_truth_value_is_no_channel_count_and_in_c_follows_the_input():
    """Statements written alike bind with their own values: `-> w` with w = true is refused
    where a w = 1 binds, and `in.c // 2` reads each call's own input."""
    with pytest.raises(ArchError) as err:
        archdsl.compile("block b(w) { conv 1x1 -> w }\nnetwork n { input 3x8x8; b(1); b(true) }")
    assert err.value.code == "E207" and err.value.first.span.line == 1
    net = archdsl.compile("block half() { conv 1x1 -> in.c // 2 }\n"
                          "network n { input 64x8x8; half(); half(); half() }")
    assert [i.shape.c for i in net.nodes()] == [64, 32, 16, 8]
