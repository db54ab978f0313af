"""The formatter (archdsl/fmt.py): canonical, idempotent, comment-keeping, meaning-preserving.

Meaning-preserving is checked twice over: the formatted spec parses to the same typed
program (spans aside), and every network compiles to the same graph: the same node names
(so the same state_dict keys), ops, shapes, parameters, MACs, receptive fields and the same
`expect` outcomes. On every spec in specs/, every ```arch example of the docs and the
README, and every .arch file of the tests (error cases included: one that does not parse
fails the same way formatted or not).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import archdsl
from archdsl import ArchError
from archdsl.cli import main
from archdsl.fmt import format_source
from archdsl.parser import parse

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.arch"))
TEST_FILES = sorted(p for p in (ROOT / "tests").rglob("*.arch"))
_FENCE = re.compile(r"^```arch([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)


def _doc_examples() -> list[tuple[str, str, dict]]:
    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text()
        for m in _FENCE.finditer(text):
            options = dict(w.partition("=")[::2] for w in m.group(1).split())
            body = m.group(2)
            if "fragment" in options:
                head = "" if re.search(r"^\s*input\b", body, re.M) else "input 3x224x224\n"
                body = "network example {\n" + head + body + "\n}\n"
            out.append((f"{doc.name}:{text[:m.start()].count(chr(10)) + 1}", body, options))
    return out


DOC_EXAMPLES = _doc_examples()


def _shape(node) -> object:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(
            (f.name, _shape(getattr(node, f.name))) for f in dataclasses.fields(node)
            if f.name not in ("source", "file") and not f.name.endswith("span"))
    if isinstance(node, (tuple, list)):
        return tuple(_shape(x) for x in node)
    return node


def _graph(net) -> tuple:
    nodes = tuple((n.id, n.label(), str(n.shape), n.params, n.macs, n.rf, tuple(n.inputs), n.aux, n.scope)
                  for n in net.nodes())
    outcomes = tuple((o.what, o.ok, repr(o.found)) for o in net.check())
    return (net.name, nodes, net.params, net.macs, str(net.output_shape), outcomes)


def _compiled(path: Path) -> object:
    try:
        return [_graph(n) for n in archdsl.compile_all(path)]
    except ArchError as e:
        return ("error", [d.code for d in e.diagnostics])


def _same_meaning(source: str, tmp_path: Path, name: str, siblings: dict[str, str] | None = None) -> str:
    """Format `source`; check idempotence, the same program and the same compiled networks."""
    out = format_source(source, name)
    assert format_source(out, name) == out, "not idempotent"
    assert _shape(parse(out, name)) == _shape(parse(source, name))
    assert [c.strip() for c in re.findall(r"#[^\n]*", out)] == [c.strip() for c in re.findall(r"#[^\n]*", source)]
    before, after = tmp_path / "before", tmp_path / "after"
    for d, text in ((before, source), (after, out)):
        d.mkdir(exist_ok=True)
        for sib, sib_text in (siblings or {}).items():
            (d / sib).parent.mkdir(parents=True, exist_ok=True)
            (d / sib).write_text(sib_text)
        (d / "spec.arch").write_text(text)
    assert _compiled(after / "spec.arch") == _compiled(before / "spec.arch")
    return out


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_spec_keeps_its_meaning(spec, tmp_path):
    siblings = {p.name: p.read_text() for p in SPECS}
    _same_meaning(spec.read_text(), tmp_path, spec.name, siblings)


@pytest.mark.parametrize("example", DOC_EXAMPLES, ids=lambda e: e[0])
def test_every_doc_example_keeps_its_meaning(example, tmp_path):
    name, body, options = example
    files = {o["file"]: b for _, b, o in DOC_EXAMPLES if "file" in o}
    try:
        parse(body, "spec.arch")
    except ArchError as e:  # an example of a syntax error: the formatter refuses it the same way
        with pytest.raises(ArchError) as info:
            format_source(body, "spec.arch")
        assert [d.code for d in info.value.diagnostics] == [d.code for d in e.diagnostics]
        return
    _same_meaning(body, tmp_path, "spec.arch", files)


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: str(p.relative_to(ROOT / "tests")))
def test_every_test_file_keeps_its_meaning(path, tmp_path):
    source = path.read_text(errors="replace")
    try:
        parse(source, "spec.arch")
    except ArchError:
        with pytest.raises(ArchError):
            format_source(source, "spec.arch")
        return
    siblings = {str(p.relative_to(path.parent)): p.read_text(errors="replace")
                for p in path.parent.rglob("*.arch") if p != path}
    _same_meaning(source, tmp_path, "spec.arch", siblings)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_spec_is_formatted(spec):
    """The repository's specs are in the canonical layout (`archdsl fmt specs/` writes it)."""
    assert format_source(spec.read_text(), spec.name) == spec.read_text()




def test_fmt_check_specs_passes():
    """What CI runs: the repository's specs are formatted."""
    result = CliRunner().invoke(main, ["fmt", "--check", str(ROOT / "specs")])
    assert result.exit_code == 0, result.output
    assert f"{len(list((ROOT / 'specs').glob('*.arch')))} files already formatted" in result.output




def test_formatting_keeps_what_a_copy_of_the_specs_compiles_to(tmp_path):
    """The whole folder formatted by the command, includes and all, compiles as before."""
    copy = tmp_path / "specs"
    shutil.copytree(ROOT / "specs", copy)
    for p in copy.glob("*.arch"):  # a messier layout first: the command must undo it
        p.write_text(re.sub(r"(?m)^( *)", r"\1\1 ", p.read_text()))
    assert CliRunner().invoke(main, ["fmt", str(copy)]).exit_code == 0
    for p in copy.glob("*.arch"):
        assert p.read_text() == (ROOT / "specs" / p.name).read_text()


# ---------------------------------------------------------------- the layout


@pytest.mark.parametrize("messy, canonical", [
    # spacing inside a statement: arguments tight, expressions spaced, labels `name: `
    ("network n{input 3x8x8;conv 3x3/2 p1->c*2 noact}",
     "network n { input 3x8x8; conv 3x3/2 p1 -> c * 2 noact }\n"),
    ("block b( c , k = 3 ,) {conv k x k pad = k // 2 -> c}\n",
     "block b(c, k=3) { conv k x k pad=k//2 -> c }\n"),
    ("network n {\n  input 3x8x8\n  s  :  b( 4,k=in.c+1 )\n  mlpconv 4 , 2\n  expect  macs = 10   within 1 %\n}\n",
     "network n {\n  input 3x8x8\n  s: b(4, k=in.c + 1)\n  mlpconv 4,2\n  expect macs = 10 within 1%\n}\n"),
    # indentation, and a body written over lines gets its braces on lines of their own
    ("network n { input 3x8x8\n    repeat 2 as i {conv 1x1 -> 4\n relu}\n}",
     "network n {\n  input 3x8x8\n  repeat 2 as i {\n    conv 1x1 -> 4\n    relu\n  }\n}\n"),
    # merges: `|` at the merge's indentation, a branch's statements two further in
    ("network n {\ninput 3x8x8\nconcat { conv 1x1 -> 4 |\n conv 1x1 -> 2\n conv 3x3 p1 -> 4 | identity }\n}\n",
     "network n {\n  input 3x8x8\n  concat {\n    conv 1x1 -> 4\n  | conv 1x1 -> 2\n    conv 3x3 p1 -> 4\n"
     "  | identity\n  }\n}\n"),
    # if / else if / else, one line each as written
    ("network n { input 3x8x8\nif in.c>2{gap}else if in.c>1 {gmp} else{identity}\n}",
     "network n {\n  input 3x8x8\n  if in.c > 2 { gap } else if in.c > 1 { gmp } else { identity }\n}\n"),
    # blank lines: one at most, none inside braces' edges, one around blocks and networks
    ("let a = 1\nblock b() { relu }\n\n\n\nnetwork n {\n\n  input 3x8x8\n\n\n  b()\n\n}\n\n\n",
     "let a = 1\n\nblock b() { relu }\n\nnetwork n {\n  input 3x8x8\n\n  b()\n}\n"),
    # comments stay on their lines; consecutive trailing comments are aligned
    ("# head\nnetwork n {   # the net\n  input 3x8x8 # in\n  conv 3x3 -> 16    # a conv\n"
     "      # about the pool\n  gap\n  fc 10 # out\n}\n# tail\n",
     "# head\nnetwork n {       # the net\n  input 3x8x8     # in\n  conv 3x3 -> 16  # a conv\n"
     "  # about the pool\n  gap\n  fc 10  # out\n}\n# tail\n"),
    # a comment continuing the one above it, at its column, stays under it
    ("network n {\n  input 3x8x8  # one\n               # two\n}\n",
     "network n {\n  input 3x8x8  # one\n               # two\n}\n"),
    # redundant separators go; a line continuation is joined
    ("network n {;; input 3x8x8;;\n conv 3x3 \\\n  -> 4;\n}\n",
     "network n {\n  input 3x8x8\n  conv 3x3 -> 4\n}\n"),
    # a comment between branches, written at the `|`, stays there
    ("network n {\n  input 3x8x8\n  add {\n    conv 1x1 -> 3\n  # the shortcut\n  | identity\n  }\n}\n",
     "network n {\n  input 3x8x8\n  add {\n    conv 1x1 -> 3\n  # the shortcut\n  | identity\n  }\n}\n"),
    # a body holding a body written over lines is over lines too; a comment after `|` stays there
    ("network n { input 3x8x8; concat { conv 1x1 -> 4 | concat {\n conv 1x1 -> 2 | identity } } }\n",
     "network n {\n  input 3x8x8; concat {\n    conv 1x1 -> 4\n  | concat {\n      conv 1x1 -> 2\n"
     "    | identity\n    }\n  }\n}\n"),
    ("network n {\n input 3x8x8\n add { # why\n conv 1x1 -> 3\n | # the shortcut\n identity\n }\n}\n",
     "network n {\n  input 3x8x8\n  add {  # why\n    conv 1x1 -> 3\n  |  # the shortcut\n    identity\n"
     "  }\n}\n"),
    # line endings and tabs
    ("network n {\r\n\tinput 3x8x8\r\n\tconv 3x3 -> 4 # c\r\n}\r\n", "network n {\n  input 3x8x8\n  conv 3x3 -> 4  # c\n}\n"),
    ("", ""),
    ("# only a comment", "# only a comment\n"),
])
def test_layout(messy, canonical):
    assert format_source(messy) == canonical
    assert format_source(canonical) == canonical


def test_a_spec_that_does_not_parse_is_refused_with_its_diagnostic():
    with pytest.raises(ArchError) as info:
        format_source("network n { input 3x8x8; conv 3x3 -> }", "bad.arch")
    assert info.value.first.span.file == "bad.arch"


# ---------------------------------------------------------------- the command


def test_fmt_rewrites_checks_and_diffs(tmp_path):
    d = tmp_path / "zoo"
    d.mkdir()
    messy, tidy = d / "messy.arch", d / "tidy.arch"
    messy.write_text("network n{input 3x8x8;conv 3x3->4}\n")
    tidy.write_text("network n { input 3x8x8; conv 3x3 -> 4 }\n")
    runner = CliRunner()

    check = runner.invoke(main, ["fmt", "--check", str(d)])
    assert check.exit_code == 1
    assert f"would reformat {messy}" in check.output
    assert messy.read_text() == "network n{input 3x8x8;conv 3x3->4}\n"  # --check writes nothing

    diff = runner.invoke(main, ["fmt", "--diff", str(messy)])
    assert diff.exit_code == 0
    assert "-network n{input 3x8x8;conv 3x3->4}" in diff.output
    assert "+network n { input 3x8x8; conv 3x3 -> 4 }" in diff.output
    assert messy.read_text() == "network n{input 3x8x8;conv 3x3->4}\n"

    both = runner.invoke(main, ["fmt", "--check", "--diff", str(d)])
    assert both.exit_code == 1 and "+network n {" in both.output

    write = runner.invoke(main, ["fmt", str(d)])
    assert write.exit_code == 0
    assert f"reformatted {messy}" in write.output
    assert messy.read_text() == tidy.read_text()
    assert runner.invoke(main, ["fmt", "--check", str(d)]).exit_code == 0


def test_fmt_reports_a_broken_file_and_goes_on(tmp_path):
    bad, messy = tmp_path / "bad.arch", tmp_path / "messy.arch"
    bad.write_text("network n { input 3x8x8; conv 3x3 -> }\n")
    messy.write_text("network n{input 3x8x8}\n")
    result = CliRunner().invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 1
    assert "error[" in result.output
    assert messy.read_text() == "network n { input 3x8x8 }\n"
    assert bad.read_text() == "network n { input 3x8x8; conv 3x3 -> }\n"


def test_fmt_stdin_to_stdout():
    result = CliRunner().invoke(main, ["fmt", "-"], input="network n{input 3x8x8}")
    assert result.exit_code == 0
    assert result.output == "network n { input 3x8x8 }\n"


def test_fmt_missing_path_is_a_usage_error(tmp_path):
    assert CliRunner().invoke(main, ["fmt", str(tmp_path / "nope")]).exit_code == 2


def test_mutants_that_parse_format_to_the_same_program():
    """Mutants of every spec (lines and tokens dropped, doubled, swapped: odd layouts, stray
    separators and comments in odd places): each that parses formats idempotently to the same
    program, and one that does not parse is refused."""
    import random

    import fuzzing

    rng = random.Random(17)
    seeds = [p.read_text() for p in SPECS] + [b for _, b, _ in DOC_EXAMPLES]
    formatted = 0
    for _ in range(300):
        source = fuzzing.mutate(rng.choice(seeds), rng).decode("utf-8", "replace")
        try:
            program = parse(source, "m.arch")
        except ArchError:
            continue
        out = format_source(source, "m.arch")
        assert format_source(out, "m.arch") == out, source
        assert _shape(parse(out, "m.arch")) == _shape(program), source
        formatted += 1
    assert formatted > 80


def test_a_name_glued_to_a_number_stays_glued():
    # `p3.5` lexes as the name p3 and the number .5; `p3 .5` would make p3 the padding option
    src = "network n {\n  input 3x8x8\n  conv 3x3 p3.5 -> 4\n}\n"
    assert format_source(src) == src
    assert format_source("network n {\n  input 3x8x8\n  conv 3x3  p3   -> 4\n}\n") == src.replace("p3.5", "p3")
