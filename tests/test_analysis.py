"""The language server's model (archdsl/analysis.py), without the protocol: it never raises
on any text, and it reuses the networks an edit cannot have changed."""

from __future__ import annotations

import random
from pathlib import Path

import fuzzing

from archdsl import analysis as A

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.arch"))


def test_any_text_gives_an_analysis_and_every_request_an_answer():
    """Mutants of every spec: valid or not, analysis and every request at random positions
    return (no exception), and a spec that does not compile has diagnostics."""
    rng = random.Random(23)
    seeds = [p.read_text() for p in SPECS]
    for n in range(100):
        source = fuzzing.mutate(rng.choice(seeds), rng).decode("utf-8", "replace")
        a = A.analyze(source, str(ROOT / "specs" / f"mutant{n}.arch"))
        A.inlay_hints(a)
        A.symbols(a)
        lines = source.splitlines() or [""]
        for _ in range(3):
            line = rng.randrange(len(lines))
            char = rng.randrange(len(lines[line]) + 1)
            A.hover(a, line, char)
            A.completions(a, line, char)
            A.definition(a, line, char)
        assert a.diagnostics or a.networks or not a.program or not a.program.networks


def test_an_edit_inside_one_network_recompiles_only_that_one():
    path = ROOT / "specs" / "googlenet.arch"
    text = path.read_text()
    first = A.analyze(text, str(path))
    edited = text.replace("inception5b: inception(384,", "inception5b: inception(385,", 1)
    second = A.analyze(edited, str(path), first)
    assert second.networks["googlenet_torchvision"] is first.networks["googlenet_torchvision"]  # reused
    assert second.networks["googlenet"] is not first.networks["googlenet"]
    assert second.networks["googlenet"].params != first.networks["googlenet"].params
    # an edit in a block both networks call recompiles both
    third = A.analyze(edited.replace("conv: conv 1x1 -> 128", "conv: conv 1x1 -> 129"), str(path), second)
    assert all(third.networks[n] is not second.networks[n] for n in third.networks)
    # a line added above a network moves it: it is compiled again, so its positions stay right
    moved = A.analyze("\n" + edited, str(path), second)
    assert moved.networks["googlenet_torchvision"] is not second.networks["googlenet_torchvision"]
    assert A.inlay_hints(moved)[0][0] == A.inlay_hints(second)[0][0] + 1


def test_an_error_in_an_included_file_is_reported(tmp_path):
    (tmp_path / "lib.arch").write_text("block unit(c) { conv 3x3 p1 -> }\n")
    main = tmp_path / "main.arch"
    a = A.analyze('include "lib.arch"\nnetwork n { input 3x8x8; unit(4) }\n', str(main))
    assert a.diagnostics and a.diagnostics[0].span.file.endswith("lib.arch")
