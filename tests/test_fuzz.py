"""Fuzzing, bounded for CI (`python tests/fuzzing.py --examples 20000` is the long run; both
use the generators and checks of tests/fuzzing.py, a helper module beside the tests).

* Mutants of every spec in specs/ (tokens deleted, inserted, duplicated, swapped; random
  bytes; huge numbers; deep nesting; very long lines; invalid UTF-8; truncation; the
  empty file): only ArchError escapes `archdsl.compile_all`, every diagnostic lies inside
  its file, and the CLI exits 1 without a traceback.
* Generated valid networks: the analytic parameter count and output shape equal the built
  torch module's, and the report is the same text twice.
* Include graphs (cycles, diamonds, repeated includes, escapes, links), files of many
  networks and random arithmetic: only ArchError, within the time bound, nothing read
  outside the spec's folder, no refused file's content in any output.

Hypothesis draws the random choices (derandomized: CI sees the same inputs every run, and
a failure shrinks to a small one).
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzing as fuzz

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((ROOT / "specs").glob("*.arch"))
FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.differing_executors])


@pytest.fixture(scope="module")
def workspace():
    ws = fuzz.Workspace()
    with ws.isolated():  # whatever a compile caches stays in the workspace
        yield ws
    ws.cleanup()


def _seed(workspace, name: str) -> Path:
    return workspace.root / "specs" / name


def _check(workspace, seed: Path, data: bytes) -> fuzz.Outcome:
    path = workspace.write(seed, data)
    out = fuzz.check_file(path, timeout=120)
    assert out.problem is None, f"mutant of {seed.name} ({len(data):,} bytes, kept at {path}):\n{out.problem}"
    return out


# ---------------------------------------------------------------- mutants of every spec


@pytest.mark.parametrize("name", [p.name for p in SEEDS])
@settings(FUZZ, max_examples=4)
@given(rnd=st.randoms(use_true_random=False))
def test_mutants_of_every_spec_fail_cleanly(name, rnd, workspace):
    seed = _seed(workspace, name)
    _check(workspace, seed, fuzz.mutate(seed.read_text(), rnd))


@pytest.mark.parametrize("kind", ["tokens", "bytes", "huge", "nesting", "long_line", "unicode"])
def test_each_kind_of_mutation(kind, workspace):
    """Every mutation operator, forced, on a small spec with a few fixed seeds."""
    seed = _seed(workspace, "nin.arch")
    text = seed.read_text()
    for i in range(3):
        rng = random.Random(f"{kind}{i}")
        rng.choices = lambda population, weights=None, k=1: [kind]  # force the operator
        _check(workspace, seed, fuzz.mutate(text, rng))


def test_truncated_at_many_points_and_the_empty_file(workspace):
    seed = _seed(workspace, "lenet5.arch")
    data = seed.read_bytes()
    codes = set()
    for cut in [0, 1, *range(7, len(data), len(data) // 12)]:
        codes.update(_check(workspace, seed, data[:cut]).codes)
    assert {"E203", "E104"} <= codes  # the empty file has no network; a cut body is unclosed


def test_invalid_utf8_anywhere(workspace):
    seed = _seed(workspace, "nin.arch")
    data = seed.read_bytes()
    for at in (0, 10, len(data) // 2, len(data)):
        out = _check(workspace, seed, data[:at] + b"\xff\xfe" + data[at:])
        assert out.codes == ["E107"]


def test_huge_and_deep_inputs_are_refused_quickly(workspace):
    seed = _seed(workspace, "zfnet.arch")
    text = seed.read_text()
    at = text.index("\n", text.index("input")) + 1
    for inserted, code in (("  repeat 10000 { repeat 10000 { relu } }\n", "E304"),
                           ("  conv 1x1 -> " + "9" * 5000 + "\n", "E304"),
                           ("  " + "add { " * 100 + "relu" + " }" * 100 + "\n", "E105"),
                           ("  conv 1x1 -> " + "- " * 3000 + "1\n", "E105"),
                           ("  relu; " * 50_000 + "\n", "E106")):
        out = _check(workspace, seed, (text[:at] + inserted + text[at:]).encode())
        assert code in out.codes  # and quickly: check_file reports inputs that take long


# ---------------------------------------------------------------- the CLI


@settings(FUZZ, max_examples=3)
@given(rnd=st.randoms(use_true_random=False))
def test_cli_on_mutants_exits_0_or_1_without_traceback(rnd, workspace):
    seed = _seed(workspace, "sppnet.arch")
    path = workspace.write(seed, fuzz.mutate(seed.read_text(), rnd))
    out = fuzz.check_cli(path)
    assert out.problem is None, out.problem


# ---------------------------------------------------------------- valid networks


@settings(FUZZ, max_examples=30)
@given(rnd=st.randoms(use_true_random=False))
def test_generated_networks_equal_their_torch_modules(rnd):
    pytest.importorskip("torch")
    text = fuzz.SpecGen(rnd).network()
    out = fuzz.check_valid(text)
    assert out.problem is None, f"{text}\n{out.problem}"


# ---------------------------------------------------------------- include graphs


def test_the_read_watch_sees_a_read_outside_the_tree(tmp_path):
    # the include graphs' check is not vacuous: a read beside the tree is seen, links resolved
    (tmp_path / "tree").mkdir()
    fuzz.plant_secrets(tmp_path / "outside")
    (tmp_path / "tree" / "link.arch").symlink_to(tmp_path / "outside" / "secret_valid.arch")
    with fuzz.ReadWatch(tmp_path, tmp_path / "tree") as watch:
        (tmp_path / "tree" / "link.arch").read_text()
    (tmp_path / "outside" / "secret.txt").read_text()  # after the watch: not seen
    assert watch.reads == [f"open {(tmp_path / 'outside' / 'secret_valid.arch').resolve()}"]


def _graph(rnd, workspace, cli: bool = False) -> None:
    with tempfile.TemporaryDirectory(prefix="graph-", dir=workspace.root) as base:
        graph = fuzz.IncludeGraph(rnd, Path(base))
        graph.build()
        out = fuzz.check_include_graph(graph, timeout=60, cli=cli)
        listing = sorted(str(p.relative_to(graph.tree)) for p in graph.tree.rglob("*"))
        assert out.problem is None, f"{listing}\n{graph.main.read_text()}\n{out.problem}"


@settings(FUZZ, max_examples=20)
@given(rnd=st.randoms(use_true_random=False))
def test_include_graphs_never_read_or_show_a_file_outside_their_folder(rnd, workspace):
    _graph(rnd, workspace)


@settings(FUZZ, max_examples=2)
@given(rnd=st.randoms(use_true_random=False))
def test_compile_and_check_of_include_graphs_exit_0_or_1_and_show_no_outside_file(rnd, workspace):
    _graph(rnd, workspace, cli=True)


# ---------------------------------------------------------------- many networks, arithmetic


@settings(FUZZ, max_examples=6)
@given(rnd=st.randoms(use_true_random=False))
def test_files_of_many_networks_stay_within_their_budget(rnd, workspace):
    data = fuzz.many_networks(rnd).encode()
    path = workspace.write(workspace.seeds[0], data)
    out = fuzz.check_many(path, cli=True)
    assert out.problem is None, f"{data.decode()[:3000]}\n{out.problem}"


@settings(FUZZ, max_examples=60)
@given(rnd=st.randoms(use_true_random=False))
def test_arithmetic_functions_and_powers_fail_cleanly_or_report_real_numbers(rnd, workspace):
    text, overrides = fuzz.arithmetic_spec(rnd)
    out = fuzz.check_arithmetic(text, overrides)
    assert out.problem is None, f"{text}\n{overrides}\n{out.problem}"
