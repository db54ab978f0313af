"""The parser's spans equal Lark's own.

archdsl.parser builds the typed program in one pass over a tree that keeps every token, and
computes each node's span from its first and last token. These tests build the same program
the way Lark's documentation describes, from a tree built with ``propagate_positions`` and
Lark's own filtering of keywords and punctuation, and require the two programs to be equal
(every span included) on every spec, every error case, every example in the docs and
mutants of them all; a syntax error must read the same either way.
"""

from __future__ import annotations

import marshal
import random
from pathlib import Path

import pytest
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedInput

from archdsl import ArchError
from archdsl import syntax as P
from archdsl import parser, tables
from archdsl.lexer import RootFirstLexer

import fuzzing as fuzz

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reference() -> Lark:
    grammar = parser.grammar()
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _reference_parse(lark: Lark, source: str, file: str) -> P.Program:
    """The program built from Lark's positions: the same rule methods, given each node's
    meta (its start and end) instead of its first and last token's."""
    build = parser._ToProgram(file)

    def walk(t: Tree):
        values = [walk(c) if isinstance(c, Tree) else c for c in t.children]
        m = t.meta
        where = None if m.empty else (m.line, m.column, m.end_line, m.end_column)
        return getattr(build, t.data)((where, where), values)

    return P.Program(file=file, source=source, items=tuple(walk(lark.parse(source))))


def _texts() -> list[tuple[str, str]]:
    return fuzz.spec_texts()


def _outcome(parse, source: str, file: str):
    try:
        return parse(source, file)
    except ArchError as err:
        return err.render()


def test_the_dropped_terminals_are_those_lark_drops(reference):
    dropped = {s.name for r in reference.rules for s in r.expansion if s.is_term and s.filter_out}
    kept = {s.name for r in reference.rules for s in r.expansion if s.is_term and not s.filter_out}
    assert dropped <= parser._filtered()
    assert not kept & parser._filtered()


def test_programs_equal_the_reference_on_every_text(reference):
    texts = _texts()
    assert len(texts) > 100
    parsed = 0
    for file, source in texts:
        ours = _outcome(parser.parse, source, file)
        if isinstance(ours, P.Program):
            parsed += 1
            assert ours == _reference_parse(reference, source, file), file
    assert parsed > 60  # the comparison is not vacuous: most texts are valid


def test_programs_equal_the_reference_on_mutants(reference):
    rng = random.Random(5)
    seeds = [t for _, t in _texts()]
    compared = 0
    for _ in range(400):
        data = fuzz.mutate(rng.choice(seeds), rng)
        source = data.decode("utf-8", "replace")
        if len(source) > parser.MAX_SOURCE_BYTES:
            continue
        ours = _outcome(parser.parse, source, "m.arch")
        if isinstance(ours, P.Program):
            compared += 1
            assert ours == _reference_parse(reference, source, "m.arch"), source
    assert compared > 50


def _leaves_or_error(lark: Lark, source: str):
    """Every token of the parse with its position, or what the failure says (its class, where,
    the token, what was expected)."""
    try:
        tree = lark.parse(source)
    except UnexpectedInput as err:
        token = getattr(err, "token", None)
        return (type(err).__name__, err.pos_in_stream, err.line, err.column, getattr(err, "char", None),
                token and (token.type, str(token)), sorted(getattr(err, "expected", None) or getattr(err, "allowed", ())))
    # the leaves in order, walked without recursion: a mutant can nest deeper than Python's
    # recursion limit allows Tree.scan_values (a recursive generator) to go
    leaves, stack = [], [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, Token):
            leaves.append((node.type, str(node), node.line, node.column, node.end_line, node.end_column,
                           node.start_pos, node.end_pos))
        elif hasattr(node, "children"):
            stack.extend(reversed(node.children))
    return leaves


def test_the_lexer_gives_the_tokens_and_errors_of_larks_contextual_lexer():
    """archdsl.lexer tries one scanner of all terminals first: on every text, and on mutants
    valid or not, the tokens (and any error) equal those of Lark's own contextual lexer."""
    stock = Lark(parser.grammar(), **tables.OPTIONS)
    ours = parser._lark()
    assert isinstance(ours.parser.lexer, RootFirstLexer)
    assert not isinstance(stock.parser.lexer, RootFirstLexer)
    rng = random.Random(11)
    seeds = [t for _, t in _texts()]
    sources = seeds + [fuzz.mutate(rng.choice(seeds), rng).decode("utf-8", "replace") for _ in range(600)]
    failed = 0
    for source in sources:
        expected = _leaves_or_error(stock, source)
        assert _leaves_or_error(ours, source) == expected, source
        failed += isinstance(expected, tuple)
    assert 100 < failed < len(sources) - 100  # both outcomes compared, many times


def test_unary_plus():
    prog = parser.parse("network n { input 4; fc(+3) -> +(2 * 2) }")
    fc = prog.networks[0].body.stmts[1]
    (three,) = fc.call
    assert (three.value, three.span.column, three.span.end_column) == (3, 25, 27)  # the sign included
    assert isinstance(fc.out, P.BinOp)  # `+x` is x


def test_a_tree_too_deep_is_reported_before_other_mistakes():
    """The walk stops at MAX_TREE_DEPTH; E105 must still win over a mistake met earlier in
    the file (here an absurd number), as when the depth was checked before the walk."""
    deep = "-" * (parser.MAX_TREE_DEPTH + 100) + "1"
    with pytest.raises(ArchError) as err:
        parser.parse(f"network n {{\n  input 4\n  fc(99999999999999999999999)\n  fc({deep})\n}}\n", "d.arch")
    assert [(d.code, d.span.line) for d in err.value.diagnostics] == [("E105", 4)]


# ---------------------------------------------------------------- the typed program and the grammar tables


def test_every_parsed_spec_conforms_to_the_typed_programs_annotations():
    """The program is plain dataclasses, built only by the parser: pydantic checks each parsed
    text against the annotations (strict: an int is no float, a list no tuple)."""
    import pydantic
    from pydantic import TypeAdapter

    adapter = TypeAdapter(P.Program)
    checked = 0
    for file, source in _texts():
        prog = _outcome(parser.parse, source, file)
        if isinstance(prog, P.Program):
            assert adapter.validate_python(prog) == prog, file
            checked += 1
    assert checked > 60
    bad = P.replace(prog, items=list(prog.items))  # a list where the annotation says tuple
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python(bad)
    with pytest.raises(pydantic.ValidationError):
        adapter.validate_python(P.replace(prog, file=3))


def _loaded(monkeypatch, blob: bytes | None, what=lambda: parser._lark()):
    """What `what` makes (parser._lark(): Lark's parser) with `blob` as the package's tables
    file (None: the file as shipped)."""
    if blob is not None:
        real = parser._package_file
        monkeypatch.setattr(parser, "_package_file",
                            lambda name, limit=1 << 20: blob[:limit + 1] if name == tables.FILE else real(name, limit))
    caches = (parser._lark, parser._shipped, parser._loop)
    for cache in caches:
        cache.cache_clear()
    try:
        return what()
    finally:
        for cache in caches:
            cache.cache_clear()


def _grammar() -> str:
    return parser.grammar()


def test_the_shipped_tables_are_the_grammars(monkeypatch):
    """grammar.tables is made from grammar.lark as it is now: after editing the grammar, run
    `python -m archdsl.parser --write-tables`. (Lark numbers its states differently in each
    process, so the file is checked by the grammar digest it carries and by what it parses.)"""
    blob = (ROOT / "archdsl" / tables.FILE).read_bytes()
    assert tables.read(blob, _grammar()) is not None, "run: python -m archdsl.parser --write-tables"
    compiled = parser._compiled(_grammar())
    shipped = _loaded(monkeypatch, None)
    # rebuilt from the flat tables, not compiled again after a silent failure to load them
    assert type(shipped.parser.parser).__name__ == "_FlatLALR"
    assert [(t.name, t.pattern, t.priority) for t in shipped.terminals] == [
        (t.name, t.pattern, t.priority) for t in compiled.terminals]
    assert [(r, r.order, r.alias, repr(r.options)) for r in shipped.rules] == [
        (r, r.order, r.alias, repr(r.options)) for r in compiled.rules]
    for path in sorted((ROOT / "specs").glob("*.arch")):
        source = path.read_text()
        assert shipped.parse(source) == compiled.parse(source), path.name


@pytest.mark.parametrize("damage", ["truncated", "flipped", "another grammar", "foreign", "empty", "huge"])
def test_damaged_or_stale_tables_are_passed_over_and_the_grammar_compiled(monkeypatch, damage):
    blob = parser.tables_blob(_grammar())
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    elif damage == "flipped":
        blob = blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:])
    elif damage == "another grammar":
        blob = parser.tables_blob(_grammar() + "\n// edited\n")
    elif damage == "foreign":  # well-formed, of this grammar, but not the tables
        payload = marshal.dumps((marshal.dumps({"states": {}}), marshal.dumps({"data": {}, "terminals": {}})))
        blob = tables.framed(_grammar(), payload)
    elif damage == "empty":
        blob = b""
    else:
        blob = blob + b"\0" * tables.MAX_BYTES
    if damage != "foreign":
        assert tables.read(blob, _grammar()) is None
    lark = _loaded(monkeypatch, blob)
    assert lark.parse("network n { input 3x8x8; conv 3x3 -> 4 }")
    # the loop is not run on such tables; Lark's parser (compiled here) parses alone
    assert _loaded(monkeypatch, blob, lambda: parser._loop()) is None
    program = _loaded(monkeypatch, blob, lambda: parser.parse("network n { input 3x8x8 }"))
    assert program.networks[0].name == "n"


def test_the_tables_file_written_is_read_back(monkeypatch):
    blob = parser.tables_blob(_grammar())
    assert tables.read(blob, _grammar()) is not None
    source = (ROOT / "specs" / "googlenet.arch").read_text()
    assert _loaded(monkeypatch, blob).parse(source) == parser._compiled(_grammar()).parse(source)
