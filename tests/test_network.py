"""Stage 7, the compiled network: the one walker every back end uses, and the stage order."""

from __future__ import annotations

import ast
from pathlib import Path

import archdsl
from archdsl.network import TAux, TLayer, TMerge, TSeq, groups, nodes_under, output_of, walk

PACKAGE = Path(archdsl.__file__).parent

#: the pipeline's order: a module may import (at module level) only modules before it
STAGES = ["frozen", "syntax", "diagnostics", "parse_errors", "lexer", "tables", "lalr", "parser", "layers", "pygments_lexer", "zoo", "sources",
          "evaluate", "infer", "network", "budget", "names", "init", "recipe", "binding", "expand", "spec", "fmt_layout", "fmt",
          "analysis", "memory", "lsp", "check", "update", "report", "diagram", "diff", "treediff", "ci_report",
          "rebuild_types", "rebuild_join", "rebuild", "write_spec", "weights", "torch_modules", "lower_torch", "torch_ops",
          "trace_torch", "export_torch", "init_torch", "optim", "train", "cli_roundtrip", "cli_torch", "cli"]


def _imports(path: Path) -> set[str]:
    """The archdsl modules a file imports at module level (not inside functions)."""
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = (node.module or "").split(".")[0]
            names = [base] if base else [a.name for a in node.names]
            out |= {n for n in names if n}
        elif isinstance(node, ast.If):  # TYPE_CHECKING blocks import types only
            continue
    return out


def test_each_stage_imports_only_the_stages_before_it():
    for i, stage in enumerate(STAGES):
        path = PACKAGE / f"{stage}.py"
        if not path.exists():
            path = PACKAGE / stage / "__init__.py"
        later = set(STAGES[i:])
        assert not (_imports(path) & later), f"{stage} imports a later stage: {_imports(path) & later}"
    for kind_file in (PACKAGE / "layers").glob("*.py"):  # kinds see only syntax and diagnostics
        assert _imports(kind_file) <= {"frozen", "syntax", "diagnostics", "base", "conv", ""} | {
            p.stem for p in (PACKAGE / "layers").glob("*.py")}, kind_file.name


def test_no_module_is_over_600_lines():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 650, path.name


SPEC = """
block unit(c) { conv 3x3 p1 -> c; relu }
network n {
  input 3x16x16
  stem: unit(8)
  concat { conv 1x1 -> 4 | unit(4); aux head { gap; fc 10 } | identity }
  residual { conv 3x3 p1 -> 16 }
  stage: repeat 2 { unit(16) }
}
"""


def test_walk_visits_every_item_in_order_with_containers_twice():
    net = archdsl.compile(SPEC)
    visits = list(walk(net.tree))
    layers = [v.item.node for v in visits if type(v.item) is TLayer]
    assert layers == [n for n in net.infos if n != "input" and type(net.node(n).kind).__name__ not in
                      ("Concat", "Residual")]
    entered = [v.item for v in visits if type(v.item) is not TLayer and not v.leaving]
    left = [v.item for v in visits if v.leaving]
    assert sorted(map(id, entered)) == sorted(map(id, left))
    assert visits[0].item is net.tree and visits[-1].item is net.tree and visits[-1].leaving


def test_the_helpers_agree_with_the_graph():
    net = archdsl.compile(SPEC)
    assert nodes_under(net.tree) == [n for n in net.infos if n != "input"]
    assert output_of(net.tree) == net.output
    found = groups(net.tree)
    assert {"stem", "concat1.branch1", "concat1.branch2", "concat1.branch2.unit1", "concat1.branch2.head",
            "residual1.branch1", "stage"} <= set(found)
    assert isinstance(found["concat1.branch2.head"], TAux)
    assert "concat1.branch1" not in groups(net.tree, branches=False)
    merge = next(v.item for v in walk(net.tree) if type(v.item) is TMerge)
    assert [b.name for b in merge.branches] == ["branch1", "branch2", "branch3"]
    assert all(isinstance(b, TSeq) for b in merge.branches)
    # an aux head's output is not its body's output
    head = found["concat1.branch2.head"]
    assert output_of(head.body) == net.aux_outputs["concat1.branch2.head"]
    assert output_of(found["concat1.branch2"]) == "concat1.branch2.unit1.relu1"


def test_walk_needs_no_recursion_for_deep_trees():
    seq = TSeq("root")
    cur = seq
    for i in range(5000):
        inner = TSeq(f"s{i}", path=f"p{i}")
        cur.items.append(inner)
        cur = inner
    cur.items.append(TLayer("x", "x"))
    assert nodes_under(seq) == ["x"]
