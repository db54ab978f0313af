"""The grammar's LALR tables: made once from grammar.lark, shipped beside it, loaded flat.

Compiling grammar.lark with Lark takes 70-120 ms, so the package carries the compiled parser
(grammar.tables, made by ``python -m archdsl.parser --write-tables``; tests/test_parser.py
checks that it is the grammar's). Lark's own serialised form (``Lark.memo_serialize``, what
its standalone generator embeds) is some 2,700 nested dicts that Lark's generic deserialiser
walks one attribute at a time: 10-25 ms a process, as long as a whole network's compile. The
file keeps the same content flat instead, as marshal data of plain values (tuples, strings,
numbers: never code):

* every terminal and rule as one tuple of its constructor's arguments, built here with
  Lark's own classes (:func:`_terminal`, :func:`_rule`), each grammar symbol made once;
* the parse table as its distinct actions (shift to a state, reduce by a rule) and, for each
  state, the terminal names it accepts with the index of each one's action: rebuilt by
  :class:`_FlatLALR`, given to Lark through its ``LALR_Parser`` plugin hook (the hook
  lark-cython uses);
* the rest of Lark's serialised form (its options, the lexer's and parser's settings) as
  Lark wrote it, and loaded by Lark (``Lark._load_from_dict``) around the objects built here.

A file of another grammar (its SHA-256 is in the header), damaged, truncated or too large is
passed over (:func:`read` gives None) and the caller compiles the grammar instead.
"""

from __future__ import annotations

import hashlib
import marshal
import re
from typing import NamedTuple

from lark import Lark
from lark.grammar import NonTerminal, Rule, RuleOptions, Terminal
from lark.common import LexerConf
from lark.lexer import BasicLexer, PatternRE, PatternStr, TerminalDef, _create_unless
from lark.parsers.lalr_analysis import IntParseTable, Reduce, Shift
from lark.parsers.lalr_parser import LALR_Parser, _Parser

#: the file starts with this line, then the SHA-256 of the grammar it was made from, then
#: that of the payload, then the payload
MAGIC = b"archdsl-grammar-tables 4\n"
#: the file is not read past this size (it is about 60 KB)
MAX_BYTES = 4_000_000
FILE = "grammar.tables"
OPTIONS = dict(parser="lalr", keep_all_tokens=True, maybe_placeholders=False)
_KEYS = {"data", "terminals", "rules", "actions", "keywords", "folded"}


def grammar_key(grammar: str) -> bytes:
    return hashlib.sha256(grammar.encode()).hexdigest().encode()


def compile_grammar(grammar: str, plugins: dict) -> Lark:
    return Lark(grammar, **OPTIONS, _plugins=plugins)


def blob(grammar: str, plugins: dict) -> bytes:
    """The tables file of `grammar`."""
    lark = compile_grammar(grammar, plugins)
    data, memo = lark.memo_serialize([TerminalDef, Rule])
    # the lexer plugin is a class, not data (it is given again when loading)
    data["options"] = {k: v for k, v in data["options"].items() if k != "_plugins"}
    terminals = {i: _flat_terminal(m) for i, m in memo.items() if m["__type__"] == "TerminalDef"}
    rules = {i: _flat_rule(m) for i, m in memo.items() if m["__type__"] == "Rule"}
    table = data["parser"]["parser"]
    names = {i: name for name, i in table["tokens"].items()} if _by_name(table) else table["tokens"]
    actions: dict[tuple, int] = {}
    states = {}
    for state, acts in table["states"].items():
        keys = tuple(names[t] for t in acts)
        found = tuple((kind, arg["@"] if kind == 1 else arg) for kind, arg in acts.values())
        states[state] = keys, tuple(actions.setdefault(a, len(actions)) for a in found)
    data["parser"]["parser"] = {"states": states, "start_states": table["start_states"],
                                "end_states": table["end_states"]}
    keywords, folded = _keywords(lark.lexer_conf)
    payload = marshal.dumps({"data": data, "terminals": terminals, "rules": rules, "actions": tuple(actions),
                             "keywords": keywords, "folded": folded}, 4)
    return MAGIC + grammar_key(grammar) + b"\n" + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload


def _keywords(conf: LexerConf) -> tuple[dict[str, dict[str, str]], tuple[str, ...]]:
    """For each terminal that a keyword also matches (NAME matches `network`): keyword text ->
    keyword terminal; and the keyword terminals folded into those, which the root scanner no
    longer tries on their own. The work of Lark's ``_create_unless`` (a regular expression
    compiled per terminal: 1-2 ms a process), done once here."""
    root = BasicLexer(conf)
    kept, callbacks = _create_unless(root.terminals, conf.g_regex_flags, re, conf.use_bytes)
    found = {}
    for name, callback in callbacks.items():
        words = callback.scanner.terminals
        if any(t.pattern.flags for t in words):  # a case-insensitive keyword is not a plain lookup
            raise ValueError(f"keyword terminals with flags: {[t.name for t in words]}")
        found[name] = {t.pattern.value: t.name for t in words}
    return found, tuple(t.name for t in root.terminals if t not in kept)


def _by_name(table: dict) -> bool:
    """Whether Lark's `tokens` maps names to numbers (it maps numbers to names in 1.3)."""
    return bool(table["tokens"]) and isinstance(next(iter(table["tokens"])), str)


def _flat_terminal(m: dict) -> tuple:
    p = m["pattern"]
    return (m["name"], p["__type__"] == "PatternRE", p["value"], tuple(p["flags"]), p["raw"],
            tuple(p.get("_width") or ()), m["priority"])


def _flat_rule(m: dict) -> tuple:
    o = m["options"]
    expansion = tuple((s["name"], s["__type__"] == "Terminal", s.get("filter_out", False)) for s in m["expansion"])
    return (m["origin"]["name"], expansion, m["order"], m["alias"],
            (o["keep_all_tokens"], o["expand1"], o["priority"], o["template_source"], tuple(o["empty_indices"])))


def read(blob: bytes, grammar: str) -> dict | None:
    """The tables in `blob`, or None if they are of another grammar, damaged or truncated."""
    n = len(MAGIC)
    head, key, digest, payload = blob[:n], blob[n:n + 64], blob[n + 65:n + 129], blob[n + 130:]
    if head != MAGIC or key != grammar_key(grammar) or digest != hashlib.sha256(payload).hexdigest().encode():
        return None
    try:
        tables = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    return tables if isinstance(tables, dict) and set(tables) == _KEYS else None


def _terminal(name, is_re, value, flags, raw, width, priority) -> TerminalDef:
    pattern = PatternRE(value, flags, raw) if is_re else PatternStr(value, flags, raw)
    if is_re and width:
        pattern._width = width  # as Lark's deserialiser sets it: computing it parses the regex
    return TerminalDef(name, pattern, priority)


def load(tables: dict, plugins: dict) -> Lark:
    """The parser of `tables` (as :func:`read` gives them). Raises whatever Lark raises on
    tables it cannot use (the caller then compiles the grammar)."""
    symbols: dict[tuple, Terminal | NonTerminal] = {}

    def symbol(name: str, is_term: bool, filter_out: bool = False):
        key = name, is_term, filter_out
        s = symbols.get(key)
        if s is None:
            s = symbols[key] = Terminal(name, filter_out) if is_term else NonTerminal(name)
        return s

    memo: dict[int, object] = {i: _terminal(*t) for i, t in tables["terminals"].items()}
    for i, (origin, expansion, order, alias, options) in tables["rules"].items():
        memo[i] = Rule(symbol(origin, False), [symbol(*s) for s in expansion], order, alias, RuleOptions(*options))
    actions = [(Shift, arg) if kind == 0 else (Reduce, memo[arg]) for kind, arg in tables["actions"]]
    # Lark's loader keeps objects it finds in the memo as they are (only dicts and lists are
    # deserialised), and asks the LALR_Parser plugin to rebuild the parse table
    return Lark._load_from_dict(tables["data"], memo, _plugins={**plugins, "LALR_Parser": _flat_parser(actions)})


class LoopParts(NamedTuple):
    """What :class:`archdsl.lalr.Loop` runs, read from the tables without building Lark's
    parser (its tree builder and parse table objects are only needed for an error)."""

    terminals: list[TerminalDef]  # in the order of Lark's lexer configuration
    ignore: tuple[str, ...]
    g_regex_flags: int
    use_bytes: bool
    #: state -> (the terminal and rule names it has an action for, each one's action code:
    #: a state to shift or go to (>= 0), or ~i to reduce by ``rules[i]``)
    states: dict[int, tuple[tuple[str, ...], tuple[int, ...]]]
    #: (origin, expansion of (name, is a terminal), alias, expand1, template source)
    rules: list[tuple]
    #: terminal -> {keyword text: keyword terminal} for the terminals a keyword also matches
    keywords: dict[str, dict[str, str]]
    #: the keyword terminals the root scanner does not try on their own (found through `keywords`)
    folded: frozenset[str]
    start: int
    end: int


def loop_parts(tables: dict) -> LoopParts:
    """The parts of `tables` (as :func:`read` gives them) that the loop runs on."""
    data = tables["data"]["parser"]
    lexer_conf, parser = data["lexer_conf"], data["parser"]
    rule_ids = sorted({arg for kind, arg in tables["actions"] if kind == 1})
    position = {memo: i for i, memo in enumerate(rule_ids)}
    codes = [arg if kind == 0 else ~position[arg] for kind, arg in tables["actions"]]
    rules = []
    for memo in rule_ids:
        origin, expansion, _order, alias, options = tables["rules"][memo]
        rules.append((origin, tuple((name, is_term) for name, is_term, _ in expansion), alias, options[1], options[3]))
    pick = codes.__getitem__
    return LoopParts(
        terminals=[_terminal(*tables["terminals"][ref["@"]]) for ref in lexer_conf["terminals"]],
        ignore=tuple(lexer_conf["ignore"]),
        g_regex_flags=lexer_conf["g_regex_flags"],
        use_bytes=lexer_conf["use_bytes"],
        states={state: (keys, tuple(map(pick, idx))) for state, (keys, idx) in parser["states"].items()},
        rules=rules,
        keywords=tables["keywords"],
        folded=frozenset(tables["folded"]),
        start=parser["start_states"]["start"],
        end=parser["end_states"]["start"],
    )


def _flat_parser(actions: list[tuple]) -> type[LALR_Parser]:
    class _FlatLALR(LALR_Parser):
        """Lark's LALR parser, its table rebuilt from the flat form (Lark's own
        ``LALR_Parser.deserialize`` with ``IntParseTable.deserialize``, minus the generic
        deserialiser)."""

        @classmethod
        def deserialize(cls, data, memo, callbacks, debug=False):
            pick = actions.__getitem__
            states = {state: dict(zip(keys, map(pick, idx))) for state, (keys, idx) in data["states"].items()}
            inst = cls.__new__(cls)
            inst._parse_table = IntParseTable(states, data["start_states"], data["end_states"])
            inst.parser = _Parser(inst._parse_table, callbacks, debug)
            return inst

    return _FlatLALR
