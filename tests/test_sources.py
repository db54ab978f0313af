"""Stage 3, sources: includes are read once each and confined to the spec's folder tree."""

from __future__ import annotations

import os

import pytest

import archdsl
from archdsl import ArchError
from archdsl.sources import MAX_FILES


def _spec(tmp_path, text: str, name: str = "main.arch"):
    (tmp_path / name).write_text(text)
    return tmp_path / name


def _codes(path) -> list[tuple[str, int]]:
    with pytest.raises(ArchError) as err:
        archdsl.compile_all(path)
    return [(d.code, d.span.line if d.span else 0) for d in err.value.diagnostics]


def test_includes_inside_the_folder_are_read(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "blocks.arch").write_text('include "../consts.arch"\nblock b() { conv 3x3 -> w }\n')
    (tmp_path / "consts.arch").write_text("let w = 4\n")
    net = archdsl.compile(_spec(tmp_path, 'include "lib/blocks.arch"\nnetwork n { input 3x8x8; b() }\n'))
    assert net.output_shape.dims == (4, 6, 6)


@pytest.mark.parametrize("path", ["/etc/passwd", "/etc/hosts.arch", "~/x.arch", "../outside.arch",
                                  "lib/../../outside.arch", "secret.env", "notes.txt"])
def test_includes_that_leave_the_folder_or_are_no_spec_are_refused_unread(tmp_path, path):
    (tmp_path / "outside.arch").write_text("let leaked = 1\n")
    root = tmp_path / "project"
    (root / "lib").mkdir(parents=True)
    (root / "secret.env").write_text("TOKEN=abc\n")
    spec = _spec(root, f'include "{path}"\nnetwork n {{ input 3x8x8 }}\n')
    assert _codes(spec) == [("E212", 1)]
    with pytest.raises(ArchError) as err:
        archdsl.compile(spec)
    assert "TOKEN" not in err.value.render() and "leaked" not in err.value.render()


def test_a_symlink_that_points_outside_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.arch").write_text("this line is private and malformed {{{\n")
    root = tmp_path / "project"
    root.mkdir()
    os.symlink(outside / "private.arch", root / "shared.arch")
    spec = _spec(root, 'include "shared.arch"\nnetwork n { input 3x8x8 }\n')
    assert _codes(spec) == [("E212", 1)]
    with pytest.raises(ArchError) as err:
        archdsl.compile(spec)
    assert "private" not in err.value.render()


def test_a_symlink_loop_a_nul_byte_and_a_long_name_are_located_errors(tmp_path):
    os.symlink(tmp_path / "b.arch", tmp_path / "a.arch")
    os.symlink(tmp_path / "a.arch", tmp_path / "b.arch")
    assert _codes(_spec(tmp_path, 'include "a.arch"\nnetwork n { input 3x8x8 }\n')) == [("E210", 1)]
    assert _codes(_spec(tmp_path, 'include "x\0y.arch"\nnetwork n { input 3x8x8 }\n', "nul.arch")) == [("E210", 1)]
    long = "d" * 300 + ".arch"
    assert _codes(_spec(tmp_path, f'include "{long}"\nnetwork n {{ input 3x8x8 }}\n', "long.arch")) == [("E210", 1)]


def test_a_non_utf8_include_is_named_not_shown(tmp_path):
    (tmp_path / "bin.arch").write_bytes(b"\x00\x01\xffsecret bytes\n")
    spec = _spec(tmp_path, 'include "bin.arch"\nnetwork n { input 3x8x8 }\n')
    with pytest.raises(ArchError) as err:
        archdsl.compile(spec)
    assert err.value.code == "E107" and "secret" not in err.value.render() and "bin.arch" in err.value.render()


def test_each_include_adds_its_lets_once(tmp_path):
    """30 files each including the next twice: 2^29 lets if each include line re-appended them."""
    for i in range(30):
        nxt = f'include "f{i + 1}.arch"\ninclude "f{i + 1}.arch"\n' if i < 29 else ""
        (tmp_path / f"f{i}.arch").write_text(nxt + f"let v{i} = {i}\n")
    spec = archdsl.load(_spec(tmp_path, 'include "f0.arch"\nnetwork n { input 3x8x8; conv 1x1 -> v29 + 1 }\n'))
    assert len(spec.unit.lets) == 30
    assert spec.compile().output_shape.dims == (30, 8, 8)


def test_the_number_of_files_is_bounded(tmp_path):
    for i in range(MAX_FILES + 5):  # chains of 20 files, each including the next
        (tmp_path / f"f{i}.arch").write_text(f'include "f{i + 1}.arch"\n' if (i + 1) % 20 else "")
    text = "".join(f'include "f{i}.arch"\n' for i in range(0, MAX_FILES + 5, 20)) + "network n { input 3x8x8 }\n"
    assert [c for c, _ in _codes(_spec(tmp_path, text))] == ["E304"]


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.arch"
    path.write_bytes(b"\xef\xbb\xbfnetwork n { input 3x8x8; conv 3x3 -> 2 }\n")
    assert archdsl.compile(path).params == 3 * 9 * 2 + 2
