"""Every bad spec gets a precise error: code, file, line and column, what was expected and
found, and a hint where one helps (docs/errors.md is the catalogue).

Error cases are files: tests/errors/*.arch state their expected errors inline, in the style
of mypy's test data. A comment `# E: CODE[:COLUMN] [text]` on a line says that an error
with that code is reported at that line (and column), and that `text` appears in its
rendering; `# E@LINE: ...` says the same of another line (for errors where no comment can
go, e.g. at the end of a truncated file). A file lists every error it must produce, and no
other may be reported. Files under tests/errors/lib/ are only included by the cases.
Failed `expect` lines count as errors (E501) when the file compiles.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import archdsl
from archdsl import expand, parser
from archdsl.cli import main
from archdsl.diagnostics import MAX_SHOWN, ArchError
from archdsl.parse_errors import MAX_NESTING, check_nesting

ROOT = Path(__file__).resolve().parent.parent
ERRORS = Path(__file__).resolve().parent / "errors"
CASES = sorted(p for p in ERRORS.glob("*.arch"))
EXPECT = re.compile(r"#\s*E(?:@(\d+))?:\s*(E\d{3})(?::(\d+))?[ \t]*([^\n#]*)")


def expected_errors(path: Path) -> list[tuple[Path, int, int | None, str, str]]:
    """(file, line, column or None, code, text) for every `# E:` comment of a case and of the
    files it includes from tests/errors/lib."""
    files = [path]
    text = path.read_bytes().decode("utf-8", "replace")
    for inc in re.findall(r'^include "([^"]+)"', text, re.M):
        target = (path.parent / inc).resolve()
        if target.is_file() and ERRORS / "lib" in target.parents:
            files.append(target)
    out = []
    for f in files:
        for lineno, line in enumerate(f.read_bytes().decode("utf-8", "replace").splitlines(), 1):
            for m in EXPECT.finditer(line):
                at, code, col, msg = m.groups()
                out.append((f.resolve(), int(at) if at else lineno, int(col) if col else None, code, msg.strip()))
    return out


def reported(path: Path) -> tuple[list, dict[str, str]]:
    """The diagnostics of compiling a file (or of its failed expectations) and the sources."""
    try:
        nets = archdsl.compile_all(path)
    except ArchError as err:
        return err.diagnostics, err.sources
    diags = [o.diagnostic() for net in nets for o in net.check() if not o.ok]
    return diags, nets[0].sources if nets else {}


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_error_case(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # spans name files as given: relative to the repository
    expected = expected_errors(path)
    assert expected, f"{path.name} states no expected error (`# E: CODE` comments)"
    diags, sources = reported(path.relative_to(ROOT))
    assert all(d.span is not None for d in diags), "every error of a spec has a location"
    rendered = "\n\n".join(d.render(sources) for d in diags)
    left = list(diags)
    for file, line, col, code, text in expected:
        match = next((d for d in left if (Path(d.span.file).resolve(), d.span.line, d.code) == (file, line, code)
                      and col in (None, d.span.column)), None)
        assert match is not None, f"no {code} at {file.name}:{line}:{col or ''} among:\n{rendered}"
        assert text in match.render(sources), f"{file.name}:{line}: {text!r} not in\n{match.render(sources)}"
        left.remove(match)
    assert not left, "unexpected errors:\n" + "\n\n".join(d.render(sources) for d in left)


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("name", ["concat_mismatch", "syntax_several", "recursion", "duplicate_names",
                                  "empty_output", "include_cycle", "exponential_blocks"])
def test_rendering_golden(name, golden, monkeypatch):
    """The full text of a few errors: header, source line, carets, expected/found, notes, hint."""
    monkeypatch.chdir(ROOT)
    with pytest.raises(ArchError) as info:
        archdsl.compile_all(Path("tests/errors") / f"{name}.arch")
    golden(f"errors/{name}.txt", info.value.render() + "\n")


def test_carets_underline_the_span():
    src = "network n {\n  input 3x32x32\n  conv 3x3 g2 -> 8\n}\n"
    with pytest.raises(ArchError) as info:
        archdsl.compile(src)
    lines = info.value.render().splitlines()
    assert lines[0] == "<string>:3:12: error[E405]: groups=2 does not divide the 3 input channels"
    assert lines[1] == "   3 |   conv 3x3 g2 -> 8"
    assert lines[2] == "                  ^^"  # under `g2`, nothing else
    assert "note: <string>:2:3: its input 3x32x32 comes from 'input'" in info.value.render()


def test_a_line_at_line_1_is_not_mistaken_for_another():
    # as hy's tests do: a leading newline moves every error down by one line
    src = "network n { input 3x8x8; conv 9x9 -> 8 }"
    for prefix, line in (("", 1), ("\n", 2), ("\n\n\n", 4)):
        with pytest.raises(ArchError) as info:
            archdsl.compile(prefix + src)
        d = info.value.first
        assert (d.code, d.span.line, d.span.column) == ("E402", line, 26)


def test_long_lines_are_shown_as_a_window_around_the_error():
    src = "network n { input 3x8x8; " + "relu; " * 200 + "covn 3x3 -> 8 }"
    with pytest.raises(ArchError) as info:
        archdsl.compile(src)
    text = info.value.render()
    line, carets = text.splitlines()[1:3]
    assert len(line) < 200 and "covn" in line
    assert line[carets.index("^"):].startswith("covn")


def test_at_most_ten_errors_are_shown_then_a_count():
    body = "\n".join(f"  covn{i} 3x3 -> 8" for i in range(15))
    with pytest.raises(ArchError) as info:
        archdsl.compile(f"network n {{\n  input 3x8x8\n{body}\n}}\n")
    err = info.value
    assert len(err.diagnostics) == 15
    text = err.render()
    assert text.count("error[E201]") == MAX_SHOWN
    assert text.endswith("... and 5 more errors")


def test_did_you_mean_names_blocks_kinds_and_parameters():
    src = """block inception(c1, c3) { concat { conv 1x1 -> c1 | conv 3x3 p1 -> c3 } }
network n {
  input 3x32x32
  inceptoin(8, 16)
  inception(8, c33=16)
  maxpol 3/2
}"""
    with pytest.raises(ArchError) as info:
        archdsl.compile(src)
    hints = [d.hint for d in info.value.diagnostics]
    assert hints == ["did you mean 'inception'?", "did you mean 'c3'?", "did you mean 'maxpool' or 'avgpool'?"]


# ---------------------------------------------------------------- partial results


def test_the_partial_network_stops_at_the_first_error():
    with pytest.raises(ArchError) as info:
        archdsl.compile(ERRORS / "empty_output.arch")
    (partial,) = info.value.partial
    assert not partial.complete
    assert list(partial.graph.nodes) == ["input", "conv1", "maxpool1", "maxpool2"]
    assert str(partial.output_shape) == "8x1x1"
    assert partial.params == 3 * 8 * 9 + 8


def test_compile_all_builds_every_network_and_keeps_the_good_ones():
    with pytest.raises(ArchError) as info:
        archdsl.compile_all(ERRORS / "several_networks.arch")
    assert [(n.name, n.complete) for n in info.value.partial] == [("a", False), ("b", True), ("c", False)]
    assert [d.code for d in info.value.diagnostics] == ["E405", "E402"]


# ---------------------------------------------------------------- one test per error class: line and column


CLASSES = [
    # (code, spec, line, column)
    ("E101", "network n {\n  input 3x8x8\n  conv 3x3 -> 8 )\n}", 3, 17),
    ("E102", "let a = 1\nlet b =", 2, 8),
    ("E103", "network n {\n  input 3x8x8\n  mlpconv [8]\n}", 3, 11),
    ("E104", "network n {\n  input 3x8x8\n  add {\n    relu\n", 3, 7),
    ("E105", "network n {\n  input 3x8x8\n  " + "add { " * 65 + "}" * 65 + "\n}", 3, 385),
    ("E201", "network n {\n  input 3x8x8\n  rleu\n}", 3, 3),
    ("E202", "network n {\n  input 3x8x8\n  conv 3x3 pading=1 -> 8\n}", 3, 12),
    ("E203", "block b() { relu }", 1, 1),
    ("E204", "network n {\n  input 3x8x8\n  a: relu\n  a: relu\n}", 4, 3),
    ("E205", "network n {\n  input 3x8x8\n  conv 3x3 -> ch\n}", 3, 15),
    ("E206", "block b(c) { relu }\nnetwork n {\n  input 3x8x8\n  b(1, 2)\n}", 4, 8),
    ("E207", "network n {\n  input 3x8x8\n  bias sometimes\n}", 3, 8),
    ("E208", "network n {\n  input 3x8x8\n  fc\n}", 3, 3),
    ("E209", "block b() { b() }\nnetwork n {\n  input 3x8x8\n  b()\n}", 1, 13),
    ("E210", 'include "missing.arch"\nnetwork n { input 3x8x8 }', 1, 1),
    ("E301", "network n {\n  input 3x8x8\n  conv 3x3 -> 8 % 0\n}", 3, 15),
    ("E302", "network n {\n  input 3x8x8\n  conv 3x3 -> in.c / 2\n}", 3, 15),
    ("E303", "network n {\n  input 3x8x8\n  conv 3x3 -> -4\n}", 3, 15),
    ("E304", "network n {\n  input 3x8x8\n  conv 3x3 -> 2 ** 99\n}", 3, 15),
    ("E402", "network n {\n  input 3x8x8\n  maxpool 9/1\n}", 3, 3),
    ("E403", "network n {\n  input 3x8x8\n  concat { relu | maxpool 2 }\n}", 3, 19),
    ("E404", "network n {\n  input 3x8x8\n  add { relu | conv 1x1 -> 4 }\n}", 3, 16),
    ("E405", "network n {\n  input 4x8x8\n  conv 1x1 g4 -> 6\n}", 3, 12),
    ("E407", "network n {\n  relu\n}", 2, 3),
    ("E408", "network n {\n  input 3x8x8\n  flatten\n  maxpool 2\n}", 4, 3),
    ("E409", "network n {\n  input 3x8x8\n  select 3\n}", 3, 3),
    ("E410", "network n {\n  input 3x65536x65536\n}", 2, 3),
]


@pytest.mark.parametrize("code,src,line,col", CLASSES, ids=[c[0] for c in CLASSES])
def test_error_class_location(code, src, line, col):
    with pytest.raises(ArchError) as info:
        archdsl.compile_all(src)
    d = info.value.first
    assert (d.code, d.span.line, d.span.column) == (code, line, col), d.render(info.value.sources)
    assert d.span.file == "<string>"


def test_include_cycle_location(tmp_path):
    (tmp_path / "a.arch").write_text('include "b.arch"\nnetwork n { input 3x8x8 }\n')
    (tmp_path / "b.arch").write_text('\n\ninclude "a.arch"\n')
    with pytest.raises(ArchError) as info:
        archdsl.compile_all(tmp_path / "a.arch")
    d = info.value.first
    assert (d.code, Path(d.span.file).name, d.span.line, d.span.column) == ("E211", "b.arch", 3, 1)
    assert d.message == "include cycle: a.arch -> b.arch -> a.arch"
    assert [(Path(n.span.file).name, n.span.line) for n in d.notes] == [("a.arch", 1)]


def test_expect_failure_shows_expected_and_found():
    net = archdsl.compile("network n {\n  input 3x8x8\n  conv 3x3 -> 8\n  expect params = 200\n}")
    (outcome,) = net.check()
    d = outcome.diagnostic()
    assert (d.code, d.span.line, d.span.column) == ("E501", 4, 3)
    assert (d.expected, d.found) == ("200", "224")


def test_the_source_size_limit():
    src = "network n { input 3x8x8 }\n" + "#" * parser.MAX_SOURCE_BYTES
    with pytest.raises(ArchError) as info:
        archdsl.compile(src)
    assert info.value.code == "E106"


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "huge.arch"
    path.write_bytes(b"network n { input 3x8x8 }\n" + b"#" * (4 * parser.MAX_SOURCE_BYTES + 10))
    with pytest.raises(ArchError) as info:
        archdsl.compile_all(path)
    assert info.value.code == "E106" and info.value.first.span.line == 1
    # a file refused as a spec is named, never shown: it may be anything (a key, a dump)
    assert "network n { input 3x8x8 }" not in info.value.render()


def test_typographic_characters_get_a_hint():
    with pytest.raises(ArchError) as info:
        archdsl.compile("network n {\n  input 3x8x8\n  conv 3×3 → 8\n}")
    d = info.value.first
    assert (d.code, d.span.line, d.span.column, d.hint) == ("E103", 3, 9, "write 'x' instead")


def test_huge_numbers_are_refused_where_they_stand():
    for literal, col in (("9" * 5000, 15), ("1e999", 15), ("1_000_000_000_000_000_000", 15)):
        with pytest.raises(ArchError) as info:
            archdsl.compile(f"network n {{\n  input 3x8x8\n  conv 3x3 -> {literal}\n}}")
        d = info.value.first
        assert (d.code, d.span.line, d.span.column) == ("E304", 3, col)
    with pytest.raises(ArchError) as info:  # in a size: at the size's own column
        archdsl.compile("network n {\n  input 3x99999999999999999999x8\n}")
    assert (info.value.code, info.value.first.span.column) == ("E304", 11)


# ---------------------------------------------------------------- guards: nothing runs away


def _refused_quickly(src: str, code: str = "E304", seconds: float = 5.0) -> ArchError:
    start = time.process_time()  # CPU time: a busy machine must not fail the test
    with pytest.raises(ArchError) as info:
        archdsl.compile_all(src)
    assert time.process_time() - start < seconds, "the limit fired too late"
    assert info.value.code == code, info.value.render()
    return info.value


def test_nested_repeats_are_refused_before_anything_is_built():
    err = _refused_quickly("network n {\n  input 3x8x8\n  repeat 10000 {\n    repeat 10000 { relu }\n  }\n}")
    assert err.first.span.line == 3 and "100,000,001 nodes" in err.first.message
    err = _refused_quickly("network n {\n  input 3x8x8\n" + "  relu\n" * 25_000 + "}")  # no repeat at all
    assert err.first.span.line == 20_003 and "25,000 nodes" in err.first.message  # where 20,000 is passed
    err = _refused_quickly("network n {\n  input 3x8x8\n  repeat 10000 { repeat 10000 { let x = 1 } }\n}")
    assert "steps" in err.first.message


def test_exponential_block_calls_are_refused_at_the_first_call():
    blocks = "\n".join(f"block b{i}() {{ b{i + 1}(); b{i + 1}() }}" for i in range(60))
    err = _refused_quickly(blocks + "\nblock b60() { relu }\nnetwork n {\n  input 3x8x8\n  b0()\n}")
    assert err.first.span.line == 64 and "calling 'b0'" in err.first.message


def test_the_node_and_step_limits_fire_when_counts_are_not_literals(monkeypatch):
    # counts taken from parameters escape the up-front estimate: the running limits stop them
    monkeypatch.setattr(expand, "MAX_NODES", 2_000)
    err = _refused_quickly("network n(k=10000) {\n  input 3x8x8\n  repeat k { repeat k { relu } }\n}")
    assert "2,000 nodes" in err.first.message or "2,000" in (err.first.expected or "")
    monkeypatch.setattr(expand, "MAX_STEPS", 5_000)
    err = _refused_quickly("network n(k=10000) {\n  input 3x8x8\n  repeat k { repeat k { } }\n}")
    assert "steps" in err.first.message


def test_deep_call_chains_are_refused():
    blocks = "\n".join(f"block b{i}() {{ b{i + 1}() }}" for i in range(1000)) + "\nblock b1000() { relu }"
    err = _refused_quickly(blocks + "\nnetwork n {\n  input 3x8x8\n  b0()\n}")
    assert "nest deeper than 64" in err.first.message and err.first.span.line == 64


def test_deep_expressions_are_refused_not_crashed():
    for expr in ("- " * 2000 + "1", "+".join(["1"] * 3000), "not " * 2000 + "true"):
        _refused_quickly(f"network n {{\n  input 3x8x8\n  conv 3x3 -> {expr}\n}}", code="E105")


def test_exponents_and_products_are_bounded():
    for expr, text in (("2 ** 100", "exponent too large"), ("10 ** 16", "absurdly large"),
                       ("1000000 * 1000000 * 1000000", "absurdly large"),
                       ("1_100_188_2 ** 64", "about 10^450"),  # found by tests/fuzzing.py: too large for a float
                       ("max(3, int(1e15) * 2)", "absurdly large")):
        err = _refused_quickly(f"network n {{\n  input 3x8x8\n  conv 3x3 -> {expr}\n}}")
        assert text in err.first.message


def test_tensor_sizes_are_checked_before_anything_is_allocated():
    err = _refused_quickly("network n {\n  input 3x8x8\n  conv 1x1 -> 1000000000\n}", code="E410")
    assert err.first.span.line == 3


def test_parameter_counts_are_checked_before_building():
    torch = pytest.importorskip("torch")
    from archdsl.lower_torch import lower

    net = archdsl.compile("network n {\n  input 3x8x8\n  fc 1000\n}")
    with pytest.raises(ArchError) as info:
        lower(net, max_params=1000)
    assert info.value.code == "E411" and "193,000" in info.value.first.message
    assert isinstance(lower(net, max_params=193_000), torch.nn.Module)


# ---------------------------------------------------------------- the CLI


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "archdsl.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_cli_shows_the_layers_before_the_error_then_the_error():
    proc = _cli("compile", "tests/errors/empty_output.arch")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert "maxpool2" in proc.stdout and "conv2" not in proc.stdout
    assert "incomplete" in proc.stdout
    assert proc.stderr.startswith("tests/errors/empty_output.arch:6:3: error[E402]: conv: the output would be empty")


def test_cli_summarises_a_long_partial_network(monkeypatch):
    from archdsl import cli

    monkeypatch.setattr(cli, "PARTIAL_TABLE_ROWS", 3)
    result = CliRunner().invoke(main, ["compile", str(ERRORS / "empty_output.arch")])
    assert result.exit_code == 1
    assert result.stdout == "net: 4 layers built before its first error, reported below\n\n"
    assert "error[E402]" in result.stderr


def test_cli_reports_every_network_and_every_error():
    proc = _cli("compile", "tests/errors/several_networks.arch")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert re.findall(r"error\[(E\d+)\]", proc.stderr) == ["E405", "E402"]
    assert "fc1" in proc.stdout  # network b compiled and is shown in full


@pytest.mark.parametrize("args,code,text", [
    (["compile", "tests/errors/syntax_several.arch"], 1, "error[E101]"),
    (["compile", "tests/errors/invalid_utf8.arch"], 1, "error[E107]"),
    (["compile", "specs/nin.arch", "--input", "3x0x224"], 2, "error[E601]: bad input shape '3x0x224'"),
    (["compile", "specs/nin.arch", "-n", "nin_cifar"], 2, "error[E203]: no network named 'nin_cifar'"),
    (["compile", "tests/errors/nothere.arch"], 2, "no such file"),
    (["build", "specs/nin.arch", "-n", "nin", "--max-params", "1000"], 1, "error[E411]"),
    (["check", "tests/errors/expect_failed.arch"], 1, "error[E501]"),
])
def test_cli_exit_codes_and_no_traceback(args, code, text):
    proc = _cli(*args)
    assert proc.returncode == code, proc.stderr
    assert text in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_internal_errors_ask_for_a_bug_report(monkeypatch):
    from archdsl.layers import REGISTRY

    def broken(p, x):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(REGISTRY["relu"], "infer", broken)
    runner = CliRunner()
    result = runner.invoke(main, ["compile", str(ROOT / "specs" / "nin.arch")])
    assert result.exit_code == 3
    assert "internal error: ZeroDivisionError: a bug" in result.stderr
    assert "bug in archdsl" in result.stderr and "--debug" in result.stderr
    assert "Traceback" not in result.stderr
    result = runner.invoke(main, ["--debug", "compile", str(ROOT / "specs" / "nin.arch")])
    assert result.exit_code == 3
    assert "Traceback" in result.stderr and "ZeroDivisionError: a bug" in result.stderr


def test_internal_errors_in_a_subprocess_exit_3_without_traceback():
    code = ("import sys; from archdsl.layers import REGISTRY; from archdsl.cli import main\n"
            "def broken(p, x): raise KeyError('boom')\n"
            "REGISTRY['relu'].infer = broken\n"
            "sys.argv = ['archdsl', 'compile', 'specs/nin.arch']; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "internal error" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- colour on a terminal

ESC = "\x1b["
_SGR = re.compile(r"\x1b\[[0-9;]*m")
TYPO = "tests/errors/empty_output.arch"


def _cli_env(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    return dict(base, COLUMNS="120", **env)


def _stderr(*args: str, **env: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "archdsl.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=_cli_env(**env))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def _stderr_on_a_terminal(*args: str, **env: str) -> str:
    """stderr of the command when it is a terminal (a pseudo-terminal; stdout stays a pipe)."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "archdsl.cli", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=slave, timeout=120, env=_cli_env(**env))
        os.close(slave)
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
    assert proc.returncode == 1
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_piped_diagnostics_have_no_colour():
    assert ESC not in _stderr("compile", TYPO)
    assert ESC not in _stderr("check", "tests/errors/expect_failed.arch")


def test_diagnostics_on_a_terminal_are_in_colour_and_say_the_same():
    plain = _stderr("compile", TYPO)
    coloured = _stderr_on_a_terminal("compile", TYPO)
    assert f"{ESC}1;31merror[E402]:{ESC}0m" in coloured  # the severity, the carets, the gutter
    assert f"{ESC}1;31m^" in coloured and f"{ESC}1;34m   6 | {ESC}0m" in coloured
    assert _SGR.sub("", coloured) == plain


def test_force_color_colours_a_pipe_and_no_color_wins():
    plain = _stderr("compile", TYPO)
    forced = _stderr("compile", TYPO, FORCE_COLOR="1")
    assert ESC in forced and _SGR.sub("", forced) == plain
    checked = _stderr("check", "tests/errors/expect_failed.arch", FORCE_COLOR="1")
    assert f"{ESC}1;31merror[E501]:" in checked
    assert _stderr("compile", TYPO, FORCE_COLOR="1", NO_COLOR="1") == plain
    assert _stderr("compile", TYPO, FORCE_COLOR="0") == plain
    assert ESC not in _stderr_on_a_terminal("compile", TYPO, NO_COLOR="1")
    assert ESC not in _stderr_on_a_terminal("compile", TYPO, TERM="dumb")


def test_colour_is_wanted_only_where_it_can_be_seen(monkeypatch):
    from archdsl.diagnostics import color_wanted

    class Stream:
        def __init__(self, tty: bool):
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    assert color_wanted(Stream(True)) and not color_wanted(Stream(False)) and not color_wanted(object())
    monkeypatch.setenv("NO_COLOR", "")  # empty: as if unset (no-color.org)
    assert color_wanted(Stream(True))
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert color_wanted(Stream(False))
    monkeypatch.setenv("NO_COLOR", "1")
    assert not color_wanted(Stream(True)) and not color_wanted(Stream(False))


def test_colour_changes_no_character_of_the_text():
    with pytest.raises(ArchError) as info:
        archdsl.compile(ERRORS / "empty_output.arch")
    err = info.value
    assert _SGR.sub("", err.render(color=True)) == err.render() == str(err)
    assert ESC not in err.render()


def test_no_diagnostic_imports_rich():
    for env in ({}, {"FORCE_COLOR": "1"}):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "archdsl.cli", "compile", TYPO], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, env=_cli_env(**env))
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
        assert "archdsl.diagnostics" in imported and not any(m.split(".")[0] == "rich" for m in imported)


# ---------------------------------------------------------------- the catalogue (docs/errors.md)


CATALOGUE = ROOT / "docs" / "errors.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\n", re.S | re.M)


def _catalogue_runs(text: str):
    """(code, kind, block match, command or code, documented output, example spec) for every
    console and pycon block of the catalogue, in order."""
    code, example = None, None
    heads = [(m.start(), m.group(1)) for m in re.finditer(r"^## (E\d{3})", text, re.M)]
    for m in FENCE.finditer(text):
        code = next((c for pos, c in reversed(heads) if pos < m.start()), None)
        lang, body = m.group(1), m.group(2)
        if lang == "arch":
            example = body
        elif lang == "console":
            first, _, output = body.partition("\n")
            assert first.startswith("$ archdsl "), first
            yield code, "console", m, first[len("$ archdsl "):], output.rstrip("\n"), example
        elif lang == "pycon":
            lines = body.split("\n")
            prompts = "\n".join(ln for ln in lines if ln.startswith((">>> ", "... ")))
            output = "\n".join(ln for ln in lines if not ln.startswith((">>> ", "... "))).strip("\n")
            yield code, "pycon", m, prompts, output, None


def _run_catalogue_entry(kind: str, command: str, example: str | None, tmp_path: Path) -> str:
    import contextlib
    import io
    import shlex

    where = ROOT if "example.arch" not in command else tmp_path
    if example is not None:  # as written in the block, without a final newline (E102 needs none)
        (tmp_path / "example.arch").write_text(example.rstrip("\n"))
    old = Path.cwd()
    os.chdir(where)
    try:
        if kind == "console":
            result = CliRunner().invoke(main, shlex.split(command))
            assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
            return result.stderr.rstrip("\n")
        out = io.StringIO()
        src = "\n".join(ln[4:] for ln in command.split("\n"))  # without the >>> and ... prompts
        with contextlib.redirect_stdout(out):
            exec(compile(src, "<docs/errors.md>", "exec"), {"archdsl": archdsl})  # noqa: S102
        return out.getvalue().rstrip("\n")
    finally:
        os.chdir(old)


def test_catalogue_examples_produce_their_documented_errors(tmp_path):
    text = CATALOGUE.read_text()
    runs = list(_catalogue_runs(text))
    assert len(runs) > 30
    accept = os.environ.get("ARCHDSL_ACCEPT") == "1"
    new, last, stale = [], 0, []
    for i, (code, kind, m, command, documented, example) in enumerate(runs):
        sub = tmp_path / str(i)
        sub.mkdir()
        actual = _run_catalogue_entry(kind, command, example if kind == "console" else None, sub)
        assert f"error[{code}]" in actual, f"{code}: `{command}` does not report {code}:\n{actual}"
        if actual != documented:
            stale.append(f"{code}: `{command.splitlines()[0]}`\n--- documented\n{documented}\n--- actual\n{actual}")
        head = m.group(0).split("\n", 1)[0] + "\n"
        block = head + (f"$ archdsl {command}" if kind == "console" else command) + f"\n{actual}\n```\n"
        new.append(text[last:m.start()] + block)
        last = m.end()
    if accept:
        CATALOGUE.write_text("".join(new) + text[last:])
        return
    assert not stale, "docs/errors.md is out of date; to accept the new output run:\n" \
                      "  ARCHDSL_ACCEPT=1 python -m pytest tests/test_errors.py -k catalogue\n\n" + "\n\n".join(stale)


def test_every_code_in_the_code_is_in_the_catalogue():
    text = CATALOGUE.read_text()
    documented = set(re.findall(r"^## (E\d{3})", text, re.M))
    used = set()
    for path in (ROOT / "archdsl").rglob("*.py"):
        used |= set(re.findall(r'"(E\d{3})"', path.read_text()))
    assert used <= documented, f"codes without an entry in docs/errors.md: {sorted(used - documented)}"


def _nesting_by_hand(source: str) -> tuple[int, int] | None:
    """The first character nested deeper than MAX_NESTING, walking every character: what
    check_nesting must find (line, column), or None."""
    depth, line, col = 0, 1, 0
    for ch in source:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        elif ch in "{(":
            depth += 1
            if depth > MAX_NESTING:
                return line, col
        elif ch in "})":
            depth = max(depth - 1, 0)
    return None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["{", "(", "}", ")", "\n", "x", " ", "# (", "{(" * 8, "))"]), min_size=1, max_size=40),
       st.integers(40, 70), st.lists(st.sampled_from([")", "}", "x", "\n", "(", ")" * 8]), max_size=20))
def test_the_nesting_check_finds_the_first_character_too_deep(parts, deep, before):
    """Around MAX_NESTING (64): `before` (closing more than was opened must not go below the
    top level), `deep` levels opened a few to a line, then anything."""
    source = "".join(before) + "".join("({"[i % 2] + "\n" * (i % 3 == 0) for i in range(deep)) + "".join(parts)
    expected = _nesting_by_hand(source)
    try:
        check_nesting(source, "t.arch")
    except ArchError as err:
        d = err.diagnostics[0]
        assert (d.code, d.span.line, d.span.column, d.span.end_column) == ("E105", *expected, expected[1] + 1)
    else:
        assert expected is None
