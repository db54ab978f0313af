"""`archdsl check --update-expects`: failing `expect` values rewritten in place, nothing else."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from archdsl.cli import main
from archdsl.fmt import format_source

ROOT = Path(__file__).resolve().parent.parent


def test_a_widened_vgg_stage_rewrites_its_twenty_expects(tmp_path):
    vgg = tmp_path / "vgg.arch"
    shutil.copy(ROOT / "specs" / "vgg.arch", vgg)
    before = vgg.read_text().replace("stage3: vgg_stage(n3, 256, last)", "stage3: vgg_stage(n3, 320, last)")
    vgg.write_text(before)
    assert CliRunner().invoke(main, ["check", str(vgg)]).exit_code == 1
    result = CliRunner().invoke(main, ["check", "--update-expects", str(vgg)])
    assert result.exit_code == 0, result.output
    assert result.output.count("updated ") == 20
    line = next(i for i, text in enumerate(before.splitlines(), 1) if "expect params = 132_863_336" in text)
    assert f"updated {vgg}:{line}: expect params = 132_863_336 -> 133_563_880" in result.output
    assert "10 of 10 networks ok" in result.output
    after = vgg.read_text()
    changed = [(a, b) for a, b in zip(before.splitlines(), after.splitlines()) if a != b]
    assert len(changed) == 20 and len(after.splitlines()) == len(before.splitlines())
    assert all(a.split("=")[0] == b.split("=")[0] and "expect " in a for a, b in changed)
    assert format_source(after) == after  # still formatted: only the values changed


def test_layout_comments_tolerance_and_sizes_are_kept(tmp_path):
    spec = tmp_path / "n.arch"
    spec.write_text(
        "block unit(c) {\n  conv 3x3 p1 -> c\n  expect shape = 8x8x8   # in the block: differs between calls\n}\n"
        "network n {\n  input 3x8x8\n  a: unit(8)\n  b: unit(16)\n"
        "  expect params   =  1_000 within 5%   # a comment\n"
        "  expect macs = 100\n  expect output = 4x8x8\n}\n")
    result = CliRunner().invoke(main, ["check", "--update-expects", str(spec)])
    text = spec.read_text()
    assert "  expect params   =  1_392 within 5%   # a comment\n" in text
    assert "  expect macs = 87552\n" in text
    assert "  expect output = 16x8x8\n" in text
    assert "expect shape = 8x8x8   # in the block" in text  # 8x8x8 for a:, 16x8x8 for b: left alone
    assert "not updated" in result.output and f"{spec}:3" in result.output
    assert result.exit_code == 1  # that one still fails
