"""Highlighting: the Pygments lexer (archdsl/pygments_lexer.py) and the TextMate grammar of the
VS Code extension (editors/vscode), on a sample of every construct, every spec and every docs
example.

The grammar is run through vscode-textmate and vscode-oniguruma, the engine VS Code itself
uses, under node (editors/vscode/test/tokenize.js). .ci/run installs node and the two npm
packages and sets ARCHDSL_REQUIRE_NODE=1, so that there these tests fail rather than skip
when node is missing; elsewhere they skip, saying why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from archdsl.layers import REGISTRY

pygments = pytest.importorskip("pygments")
from pygments.token import Comment, Error, Keyword, Name, Number, Operator  # noqa: E402

from archdsl.pygments_lexer import ArchLexer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VSCODE = ROOT / "editors" / "vscode"
SAMPLE = VSCODE / "test" / "sample.arch"
SPECS = sorted((ROOT / "specs").glob("*.arch"))
_FENCE = re.compile(r"^```arch([^\n`]*)\n(.*?)^```\s*$", re.S | re.M)
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _lexes(text: str) -> bool:
    """False for the examples of syntax errors (E1xx: text that is not archdsl at all)."""
    from archdsl import ArchError
    from archdsl.parser import parse

    try:
        parse(text)
    except ArchError as e:
        return not any(d.code.startswith("E1") for d in e.diagnostics)
    return True


def _whole(options: str, text: str) -> str:
    return f"network example {{\n{text}\n}}\n" if "fragment" in options else text


EXAMPLES = [_whole(m.group(1), m.group(2)) for d in DOCS for m in _FENCE.finditer(d.read_text())
            if _lexes(_whole(m.group(1), m.group(2)))]
assert len(EXAMPLES) > 40


def _tokens(text: str) -> list[tuple]:
    return [(t, v) for t, v in ArchLexer().get_tokens(text) if v.strip()]


# ---------------------------------------------------------------- Pygments


@pytest.mark.parametrize("text", [p.read_text() for p in SPECS + [SAMPLE]] + EXAMPLES,
                         ids=[p.name for p in SPECS + [SAMPLE]] + [f"example{i}" for i in range(len(EXAMPLES))])
def test_pygments_has_no_error_token(text):
    bad = [v for t, v in ArchLexer().get_tokens(text) if t is Error]
    assert not bad, bad


def test_pygments_tokens_of_the_sample():
    toks = _tokens(SAMPLE.read_text())

    def kind(value: str, nth: int = 0):
        return [t for t, v in toks if v == value][nth]

    assert kind("# a file-level constant") in Comment
    assert kind("block") in Keyword and kind("stage") in Name.Function
    assert kind("repeat") in Keyword and kind("as") in Keyword
    assert kind("conv") in Name.Builtin and kind("maxpool") in Name.Builtin
    assert kind("conv", 2) is Name.Label  # `conv: conv ...`: the label, then the kind
    assert kind("conv", 3) in Name.Builtin
    assert kind("stem") is Name.Label and kind("pool") is Name.Label
    assert kind("3x3") in Number and kind("3x32x32") in Number and kind("1e-3") in Number.Float
    assert kind("650_000") in Number
    assert kind("p1") in Name.Attribute and kind("pad") in Name.Attribute
    assert kind("->") in Operator and kind("and") in Operator.Word
    assert kind("act") in Keyword and kind("noact") in Keyword and kind("ceil") in Keyword
    assert kind("max") in Name.Builtin and kind("in") in Name.Builtin


def test_pygments_knows_every_kind():
    for name in REGISTRY:
        assert _tokens(f"network n {{ {name} }}")[3][0] in Name.Builtin, name


def test_the_lexer_is_registered_for_pygments():
    """pyproject.toml declares the entry point; an install of this checkout serves it by name."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["entry-points"]["pygments.lexers"] == {"arch": "archdsl.pygments_lexer:ArchLexer"}
    from importlib.metadata import distributions

    # the installed distributions named archdsl (a build's archdsl.egg-info in the checkout
    # has the name too, but no direct_url.json): one must be an install of this checkout
    urls = [json.loads(d.read_text("direct_url.json") or "{}").get("url", "") for d in distributions(name="archdsl")]
    url = next((u for u in urls if u), "")
    if str(ROOT) not in {u.removeprefix("file://").rstrip("/") for u in urls}:
        if os.environ.get("ARCHDSL_REQUIRE_NODE"):
            pytest.fail(f"archdsl is installed from {url or 'elsewhere'}, not from {ROOT}")
        pytest.skip(f"archdsl is installed from {url or 'elsewhere'}, not from this checkout")
    from pygments.lexers import get_lexer_by_name, get_lexer_for_filename

    assert isinstance(get_lexer_by_name("arch"), ArchLexer)
    assert isinstance(get_lexer_for_filename("vgg.arch"), ArchLexer)


# ---------------------------------------------------------------- TextMate (VS Code)


def test_the_extension_declares_language_grammar_and_server():
    pkg = json.loads((VSCODE / "package.json").read_text())
    assert pkg["contributes"]["languages"][0]["extensions"] == [".arch"]
    for g in pkg["contributes"]["grammars"]:
        assert (VSCODE / g["path"]).is_file()
    assert json.loads((VSCODE / "language-configuration.json").read_text())["comments"] == {"lineComment": "#"}
    assert pkg["contributes"]["configuration"]["properties"]["archdsl.server.command"]["default"] == ["archdsl", "lsp"]
    assert "archdsl" in (VSCODE / "extension.js").read_text() and (VSCODE / "package-lock.json").is_file()


def test_the_grammar_knows_every_kind():
    grammar = json.loads((VSCODE / "syntaxes" / "arch.tmLanguage.json").read_text())
    kinds = [p for p in grammar["repository"]["statement"]["patterns"] if p.get("name") == "support.function.layer.arch"]
    listed = set(re.search(r"\(([^)]*)\)", kinds[0]["match"]).group(1).split("|"))
    assert listed == set(REGISTRY), "editors/vscode/syntaxes/arch.tmLanguage.json: the layer kinds changed"


@pytest.fixture(scope="module")
def textmate():
    """file -> tokens ([line, column, text, scopes]) from vscode-textmate."""
    node = shutil.which("node")
    ready = (VSCODE / "node_modules" / "vscode-textmate").is_dir()
    if not (node and ready):
        why = "node is not installed" if not node else "editors/vscode has no node_modules (run `npm ci` there)"
        if os.environ.get("ARCHDSL_REQUIRE_NODE"):
            pytest.fail(why)
        pytest.skip(why)
    files = [SAMPLE, *SPECS]
    run = subprocess.run([node, "test/tokenize.js", *map(str, files)], cwd=VSCODE, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    return {Path(k).name: v for k, v in json.loads(run.stdout).items()}


def test_textmate_scopes_of_the_sample(textmate):
    tokens = textmate["sample.arch"]["tokens"]

    def scope(line: int, text: str, nth: int = 0) -> str:
        found = [t[3][-1] for t in tokens if t[0] == line and t[2] == text]
        assert len(found) > nth, (line, text, [t[2] for t in tokens if t[0] == line])
        return found[nth]

    assert scope(1, "#").startswith("punctuation.definition.comment")
    assert scope(2, "include") == "keyword.control.arch" and scope(2, '"blocks.arch"').startswith("string.")
    assert scope(3, "width") == "variable.other.constant.arch"
    assert scope(3, " a file-level constant") == "comment.line.number-sign.arch"
    assert scope(5, "block") == "storage.type.arch" and scope(5, "stage") == "entity.name.function.arch"
    assert scope(5, "n") == "variable.parameter.arch"
    assert scope(6, "conv") == "support.function.layer.arch" and scope(6, "3x3") == "constant.numeric.dims.arch"
    assert scope(6, "p1") == "constant.other.option.arch" and scope(6, "->") == "keyword.operator.arrow.arch"
    assert scope(7, "x") == "keyword.operator.dims.arch" and scope(7, "noact") == "constant.other.flag.arch"
    assert scope(8, "in") == "variable.language.input.arch" and scope(8, "and") == "keyword.operator.logical.arch"
    assert scope(8, "pool") == "entity.name.label.arch" and scope(8, "ceil") == "constant.other.flag.arch"
    assert scope(12, "act") == "keyword.other.setting.arch" and scope(12, "1e-3") == "constant.numeric.float.arch"
    assert scope(13, "stem") == "entity.name.label.arch" and scope(13, "stage") == "entity.name.function.call.arch"
    assert scope(14, "conv", 0) == "entity.name.label.arch" and scope(14, "conv", 1) == "support.function.layer.arch"
    assert scope(14, "max") == "support.function.builtin.arch"
    assert scope(17, "|") == "punctuation.separator.branch.arch"
    assert scope(25, "within") == "keyword.control.arch" and scope(25, "650_000") == "constant.numeric.integer.arch"


@pytest.mark.parametrize("spec", [SAMPLE, *SPECS], ids=lambda p: p.name)
def test_textmate_on_every_spec(spec, textmate):
    """Every piece of text gets a scope, no rule is left open at the end, every comment is a
    comment, and every layer statement's kind is a kind."""
    result = textmate[spec.name]
    assert result["closed"]
    lines = spec.read_text().splitlines()
    for line, col, text, scopes in result["tokens"]:
        if text.strip():
            assert len(scopes) > 1, (spec.name, line, text)
        if line > len(lines):  # the empty line after the last newline
            continue
        source = lines[line - 1]
        hash_at = source.find("#")
        if hash_at >= 0 and '"' not in source and col - 1 > hash_at:
            assert any(s.startswith("comment.") for s in scopes), (line, text)
    kinds = {(t[0], t[1]) for t in result["tokens"] if t[3][-1] == "support.function.layer.arch"}
    for n, source in enumerate(lines, 1):
        m = re.match(r"\s*(?:\|\s*)?(?:[A-Za-z_]\w*:\s*)?([a-z_]+)\b(?!\s*\()", source)
        if m and m.group(1) in REGISTRY:
            assert (n, m.start(1) + 1) in kinds, (spec.name, n, source)
