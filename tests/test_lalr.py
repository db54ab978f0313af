"""The LALR loop (archdsl.lalr) against Lark's own parser and tree walk.

The loop is the parser's path for a text that parses; Lark's parser is the reference and
the path of every error. Both must give the same program, node for node and span for span;
the loop must parse every valid text itself (a fall back to Lark on a valid spec would be
a silent loss of speed); and on every text it leaves to Lark, the error is Lark's path's.
"""

from __future__ import annotations

import random

import pytest

from archdsl import lalr, parser
from archdsl import syntax as P
from archdsl.diagnostics import ArchError
from archdsl.parse_errors import check_nesting

import fuzzing as fuzz


def _loop(source: str, file: str):
    """What the loop gives, after the nesting check that parse() makes before either path."""
    try:
        check_nesting(source, file)
        return parser._loop().parse(source, parser._ToProgram(file))
    except lalr.Fallback:
        return "fallback"
    except ArchError as err:
        return err.render()


def _lark(source: str, file: str):
    try:
        check_nesting(source, file)
        return parser._parse_with_lark(source, file).items
    except ArchError as err:
        return err.render()


def test_the_shipped_parser_runs_the_loop():
    assert parser._loop() is not None


def test_every_valid_text_is_parsed_by_the_loop_alone(monkeypatch):
    texts = fuzz.spec_texts()
    valid = [(f, s) for f, s in texts if not isinstance(_lark(s, f), str)]
    assert len(valid) > 60
    for file, source in valid:
        assert _loop(source, file) == list(_lark(source, file)), file

    def no_lark(source, file):
        raise AssertionError("parsed by Lark's parser")

    monkeypatch.setattr(parser, "_parse_with_lark", no_lark)
    for file, source in valid:
        assert isinstance(parser.parse(source, file), P.Program)


def test_the_loop_equals_larks_path_on_mutants():
    """Mutants valid or not: a program from the loop is Lark's program; a text the loop
    leaves (or refuses with an error of a rule's method) is one Lark's path refuses too."""
    rng = random.Random(23)
    seeds = [t for _, t in fuzz.spec_texts()]
    outcomes = {"same": 0, "refused": 0}
    for _ in range(500):
        source = fuzz.mutate(rng.choice(seeds), rng).decode("utf-8", "replace")
        if len(source) > parser.MAX_SOURCE_BYTES:
            continue
        ours, theirs = _loop(source, "m.arch"), _lark(source, "m.arch")
        if isinstance(ours, list):
            assert ours == list(theirs), source
            outcomes["same"] += 1
        else:
            assert isinstance(theirs, str), source  # refused by both
            outcomes["refused"] += 1
    assert min(outcomes.values()) > 50, outcomes  # both outcomes compared, many times


@pytest.mark.parametrize("text", [
    "let a = " + " + ".join(["1"] * 400),  # a tree 400 deep without a bracket
    "let a = " + "- " * 400 + "1",
])
def test_a_tree_too_deep_is_left_to_lark_and_refused_as_before(text):
    assert _loop(text, "deep.arch") == "fallback"
    with pytest.raises(ArchError) as err:
        parser.parse(text, "deep.arch")
    assert err.value.diagnostics[0].code == "E105"
    assert err.value.render() == _lark(text, "deep.arch")


def test_a_keyword_is_a_name_where_the_grammar_takes_no_keyword():
    # `as` and `x` are keywords only where the grammar expects them; `bias` is a setting at
    # the start of a statement and a parameter name after a kind
    text = "network as(x=2) { input 3x8x8; bias off; conv 3x3 -> x bias=0; x: conv 1x1 -> 4 }"
    assert _loop(text, "k.arch") == list(_lark(text, "k.arch"))


def test_the_shipped_keywords_are_larks_own():
    """The tables carry what Lark's root lexer works out for keywords (``_create_unless``):
    the loop's scanner is that lexer's, and its keyword lookup that lexer's callbacks."""
    root = parser._lark().parser.lexer.root_lexer
    loop = parser._loop()
    assert [p.pattern for p in loop._root_patterns] == [p.pattern for p in root.scanner._mres]
    assert {name: {t.pattern.value: t.name for t in cb.scanner.terminals} for name, cb in root.callback.items()} \
        == loop._keywords
    assert loop._keywords["NAME"]["network"] == "NETWORK"


def test_every_states_scanner_is_larks_own():
    """Each state's own scanner in the tables (the loop's, for a token the root scanner
    finds but the state does not take) is the one Lark's contextual lexer builds for that
    state: the same expressions in the same order, the same keywords."""
    lark = parser._lark()
    lexer = lark.parser.lexer
    loop = parser._loop()
    states = lark.parser.parser.parser.parse_table.states
    assert set(loop._scanner_of) == set(states)
    seen = set()
    for state in states:
        theirs = lexer._state_lexer(state)
        patterns, keywords = lalr._compiled(loop._scanners[loop._scanner_of[state]])
        assert [(p.pattern, p.flags) for p in patterns] == [(p.pattern, p.flags) for p in theirs.scanner._mres]
        assert keywords == {name: {t.pattern.value: t.name for t in cb.scanner.terminals}
                            for name, cb in theirs.callback.items()}
        seen.add(loop._scanner_of[state])
    assert len(seen) == len(loop._scanners) > 20


def test_the_loops_tokens_are_read_as_larks():
    """The builder takes the loop's tokens and Lark's alike: the same text and attributes."""
    from lark import Token as LarkToken

    ours = lalr.Token("NAME", "conv", 3, 5, 3, 9)
    theirs = LarkToken("NAME", "conv", 0, 3, 5, 3, 9, 4)
    assert ours == theirs == "conv" and str(ours) == "conv" and type(str(ours)) is str
    for attr in ("type", "line", "column", "end_line", "end_column"):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert parser._tok_span("f", ours) == parser._tok_span("f", theirs)



# ---------------------------------------------------------------- one network built, the others skimmed


def _skimmed(program: P.Program, only: str) -> P.Program:
    """What parse(..., only=`only`) must give: `program` with the other networks' bodies emptied."""
    items = tuple(P.replace(i, body=P.Body(span=i.body.span, stmts=()))
                  if isinstance(i, P.Network) and i.name != only else i for i in program.items)
    unbuilt = tuple(i.name for i in items if isinstance(i, P.Network) and i.name != only)
    return P.replace(program, items=items, unbuilt=unbuilt)


def _parsed(source: str, file: str, only: str | None = None):
    try:
        return parser.parse(source, file, only)
    except ArchError as err:
        return err.render()


def test_one_network_built_is_the_whole_parse_with_the_others_emptied(monkeypatch):
    texts = [(f, s) for f, s in fuzz.spec_texts() if isinstance(_parsed(s, f), P.Program)]
    checked = 0
    for file, source in texts:
        whole = parser.parse(source, file)
        for name in [n.name for n in whole.networks] + ["no_such_network"]:
            assert parser.parse(source, file, name) == _skimmed(whole, name), (file, name)
            checked += 1
    assert checked > 150

    def no_lark(source, file):
        raise AssertionError("parsed by Lark's parser")

    monkeypatch.setattr(parser, "_parse_with_lark", no_lark)  # skimming never falls back on a valid text
    for file, source in texts:
        for n in parser._loop().parse(source, parser._ToProgram(file)):
            if isinstance(n, P.Network):
                parser.parse(source, file, "no_such_network")


def test_a_skimmed_network_reports_every_mistake_a_whole_parse_does():
    """Mutants of the specs, parsed whole and for their first network: a mistake anywhere,
    in a skimmed network too, is the same error; a text that parses is the same program
    with the others emptied."""
    rng = random.Random(5)
    seeds = [t for _, t in fuzz.spec_texts() if t.count("network ") > 1]
    outcomes = {"same": 0, "refused": 0}
    for _ in range(400):
        source = fuzz.mutate(rng.choice(seeds), rng).decode("utf-8", "replace")
        if len(source) > parser.MAX_SOURCE_BYTES:
            continue
        whole = _parsed(source, "m.arch")
        # the first network built, or none (every network skimmed)
        names = [n.name for n in whole.networks] if isinstance(whole, P.Program) else []
        only = names[0] if names and rng.random() < 0.5 else "none_of_them"
        ours = _parsed(source, "m.arch", only)
        if isinstance(whole, P.Program):
            assert ours == _skimmed(whole, only), source
            outcomes["same"] += 1
        else:
            assert ours == whole, source
            outcomes["refused"] += 1
    assert min(outcomes.values()) > 50, outcomes


@pytest.mark.parametrize("statement, code", [
    ("conv 3x3 -> 99999999999999999999", "E304"),  # an absurd number: _number refuses it
    ("conv 3x99999999999999999 -> 4", "E304"),
    ("conv 3x3 p9999999999999999 -> 4", "E304"),
    ("expect params = 10 within 1e99%", "E304"),
    ("concat(1) { conv 1x1 -> 2 | conv 1x1 -> 2 }", "E202"),  # a merge given parentheses or an arrow
    ("add -> 4 { conv 1x1 -> 2 | conv 1x1 -> 2 }", "E202"),
])
def test_what_a_method_refuses_in_a_skimmed_network_is_refused_as_before(statement, code):
    source = ("network a { input 3x8x8; conv 3x3 -> 4 }\n"
              f"network b {{\n  input 3x8x8\n  {statement}\n}}\n")
    whole = _parsed(source, "r.arch")
    assert isinstance(whole, str) and code in whole
    assert _parsed(source, "r.arch", "a") == whole


def test_a_skimmed_tree_too_deep_is_refused_as_before():
    # the tree depth is counted in a skimmed body too, up to the network around it
    for n in range(280, 300):
        source = "network a { input 3x8x8 }\nnetwork b {\n  let x = " + "- " * n + "1\n}\n"
        assert _parsed(source, "d.arch", "a") == (_skimmed(w, "a") if isinstance(w := _parsed(source, "d.arch"), P.Program)
                                                   else w), n
