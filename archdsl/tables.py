"""The grammar's LALR tables: made once from grammar.lark, shipped beside it, loaded flat.

Compiling grammar.lark with Lark takes 70-120 ms, so the package carries the compiled parser
(grammar.tables, made by ``python -m archdsl.parser --write-tables``; tests/test_parser.py
checks that it is the grammar's). Lark's own serialised form (``Lark.memo_serialize``, what
its standalone generator embeds) is some 2,700 nested dicts that Lark's generic deserialiser
walks one attribute at a time: 10-25 ms a process, as long as a whole network's compile. The
file keeps what a process needs flat instead, as marshal data of plain values (tuples,
strings, numbers: never code), in two parts loaded apart:

* the loop's part (:func:`_loop_part`): the parse table and the scanners' regular expressions
  that :class:`archdsl.lalr.Loop` runs, worked out by Lark when the file is written, so that
  a text that parses is parsed without importing Lark;
* Lark's part, for Lark's own parser (an error, reported in Lark's terms): every terminal
  and rule as one tuple of its constructor's arguments, rebuilt with Lark's own classes
  (:func:`_terminal`, :func:`load`), each grammar symbol made once; the parse table as its
  distinct actions (shift to a state, reduce by a rule) and, for each state, the terminal
  names it accepts with the index of each one's action, rebuilt by :class:`_FlatLALR`
  (given to Lark through its ``LALR_Parser`` plugin hook, the hook lark-cython uses); and
  the rest of Lark's serialised form (its options, the lexer's and parser's settings) as
  Lark wrote it, loaded by Lark (``Lark._load_from_dict``) around those objects.

A file of another grammar (its checksum is in the header), damaged, truncated or too large is
passed over (:func:`read` gives None) and the caller compiles the grammar instead.
"""

from __future__ import annotations

import marshal
import re
import zlib
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # Lark is imported where its objects are made: the loop needs none of it
    from lark import Lark
    from lark.parsers.lalr_parser import LALR_Parser

#: the file starts with this line, then the CRC-32 of the grammar it was made from, then
#: that of the payload, then the payload. A checksum, not a cryptographic digest: it tells
#: a stale or damaged file of the package's own (hashlib's import alone is 3-6 ms a process)
MAGIC = b"archdsl-grammar-tables 5\n"
#: the file is not read past this size (it is about 90 KB)
MAX_BYTES = 4_000_000
FILE = "grammar.tables"
OPTIONS = dict(parser="lalr", keep_all_tokens=True, maybe_placeholders=False)
_LARK_KEYS = {"data", "terminals", "rules", "actions"}
_LOOP_KEYS = {"terminals", "ignore", "newlines", "filtered", "root", "keywords", "states", "rules", "start", "end",
              "scanners", "scanner_of"}


class Tables(NamedTuple):
    """The two parts of a tables file, each marshal data, loaded only when needed: the loop's
    (every parse that succeeds) and Lark's (an error, or a Lark the loop cannot run)."""

    loop: bytes
    lark: bytes


def _crc(data: bytes) -> bytes:
    return b"%08x\n" % zlib.crc32(data)


def framed(grammar: str, payload: bytes) -> bytes:
    """A tables file: the header (:data:`MAGIC`, the checksums of `grammar` and of `payload`), then `payload`."""
    return MAGIC + _crc(grammar.encode()) + _crc(payload) + payload


def compile_grammar(grammar: str, plugins: dict) -> Lark:
    from lark import Lark

    return Lark(grammar, **OPTIONS, _plugins=plugins)


def filtered_terminals(grammar: str, names: list[str]) -> frozenset[str]:
    """The terminals among `names` that a rule's value leaves out, as Lark's tree builder
    does without `keep_all_tokens`: those written as literals in the rules (keywords and
    punctuation: `"network"`, `"{"`), which Lark names itself, and those whose name starts
    with an underscore (`_SEP`). The grammar declares every other terminal by name. (A test
    checks this set against Lark's own filtering.)"""
    declared = set(re.findall(r"^([A-Z_][A-Z0-9_]*)(?:\.\d+)?\s*:", grammar, re.M))
    return frozenset(n for n in names if n.startswith("_") or n not in declared)


def blob(grammar: str, plugins: dict) -> bytes:
    """The tables file of `grammar`."""
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

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
    part = {"data": data, "terminals": terminals, "rules": rules, "actions": tuple(actions)}
    loop = _loop_part(lark, part, filtered_terminals(grammar, [t.name for t in lark.terminals]))
    payload = marshal.dumps((marshal.dumps(loop, 4), marshal.dumps(part, 4)), 4)
    return framed(grammar, payload)


def _loop_part(lark: Lark, part: dict, filtered: frozenset[str]) -> dict:
    """What :class:`archdsl.lalr.Loop` runs on, worked out here by Lark, so that a process
    whose text parses never imports Lark (30-60 ms):

    * the parse table as, per state, symbol -> a state to shift or go to (>= 0) or ~i to
      reduce by rule i (< 0), and the rules those reductions name;
    * the scanners of Lark's contextual lexer, each as the regular expressions Lark's
      ``Scanner`` compiles and the keywords its ``UnlessCallback`` finds in a terminal
      (NAME matches `network`: keyword text -> keyword terminal): the root scanner (every
      terminal, tried first: :mod:`archdsl.lexer`) and one for each set of terminals a
      state accepts, the state's own (built by Lark only when a token needs it);
    * the terminals skipped (whitespace), those with lines in them, and those a rule's value
      leaves out (keywords, punctuation).
    """
    from .lexer import RootFirstLexer

    table = part["data"]["parser"]["parser"]
    actions = part["actions"]
    rule_ids = sorted({arg for kind, arg in actions if kind == 1})
    position = {memo: i for i, memo in enumerate(rule_ids)}
    codes = [arg if kind == 0 else ~position[arg] for kind, arg in actions]
    rules = []
    for memo in rule_ids:
        origin, expansion, _order, alias, options = part["rules"][memo]
        rules.append((origin, tuple((name, is_term) for name, is_term, _ in expansion), alias, options[1], options[3]))
    contextual = RootFirstLexer(lark.lexer_conf, {state: keys for state, (keys, _) in table["states"].items()})
    root = contextual.root_lexer
    scanners: dict[bytes, int] = {}  # marshal data -> index: one of each distinct scanner
    scanner_of = {}
    for state in table["states"]:
        found = marshal.dumps(_scanner(contextual._state_lexer(state)), 4)
        scanner_of[state] = scanners.setdefault(found, len(scanners))
    return {
        "terminals": tuple(t.name for t in lark.lexer_conf.terminals),
        "ignore": tuple(sorted(root.ignore_types)),
        "newlines": tuple(sorted(root.newline_types)),
        "filtered": tuple(sorted(filtered)),
        "root": _scanner(root),
        "keywords": _scanner(root)[1],
        "states": {state: dict(zip(keys, (codes[i] for i in idx))) for state, (keys, idx) in table["states"].items()},
        "rules": tuple(rules),
        "start": table["start_states"]["start"],
        "end": table["end_states"]["start"],
        "scanners": tuple(marshal.loads(found) for found in scanners),
        "scanner_of": scanner_of,
    }


def _scanner(lexer) -> tuple:
    """A Lark ``BasicLexer``'s scanner as data: ((pattern, flags) of each regular expression
    it tries in turn, terminal -> {keyword text: keyword terminal})."""
    from lark.lexer import UnlessCallback

    patterns = tuple((m.pattern, m.flags) for m in lexer.scanner._mres)
    keywords = {}
    for name, callback in lexer.callback.items():
        if type(callback) is not UnlessCallback:
            raise ValueError(f"a lexer callback the loop does not run: {name}")
        words = callback.scanner.terminals
        if any(t.pattern.flags for t in words):  # a case-insensitive keyword is not a plain lookup
            raise ValueError(f"keyword terminals with flags: {[t.name for t in words]}")
        keywords[name] = {t.pattern.value: t.name for t in words}
    return patterns, keywords


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


def read(blob: bytes, grammar: str) -> Tables | None:
    """The tables in `blob`, or None if they are of another grammar, damaged or truncated."""
    payload = blob[len(MAGIC) + 18:]
    if blob[:len(MAGIC) + 18] != framed(grammar, payload)[:len(MAGIC) + 18]:
        return None
    try:
        parts = marshal.loads(payload)
    except (EOFError, ValueError, TypeError):
        return None
    if type(parts) is not tuple or len(parts) != 2 or not all(type(p) is bytes for p in parts):
        return None
    return Tables(*parts)


def _part(data: bytes, keys: set[str]) -> dict:
    """One part of the tables; ValueError if it is not marshal data with exactly `keys`."""
    try:
        found = marshal.loads(data)
    except (EOFError, TypeError) as err:
        raise ValueError("damaged tables") from err
    if not isinstance(found, dict) or set(found) != keys:
        raise ValueError("tables of another layout")
    return found


def _terminal(name, is_re, value, flags, raw, width, priority):
    from lark.lexer import PatternRE, PatternStr, TerminalDef

    pattern = PatternRE(value, flags, raw) if is_re else PatternStr(value, flags, raw)
    if is_re and width:
        pattern._width = width  # as Lark's deserialiser sets it: computing it parses the regex
    return TerminalDef(name, pattern, priority)


def load(tables: Tables, plugins: dict) -> Lark:
    """Lark's parser of `tables` (as :func:`read` gives them). Raises whatever Lark raises on
    tables it cannot use (the caller then compiles the grammar)."""
    from lark import Lark
    from lark.grammar import NonTerminal, Rule, RuleOptions, Terminal
    from lark.parsers.lalr_analysis import Reduce, Shift

    part = _part(tables.lark, _LARK_KEYS)
    symbols: dict[tuple, Terminal | NonTerminal] = {}

    def symbol(name: str, is_term: bool, filter_out: bool = False):
        key = name, is_term, filter_out
        s = symbols.get(key)
        if s is None:
            s = symbols[key] = Terminal(name, filter_out) if is_term else NonTerminal(name)
        return s

    memo: dict[int, object] = {i: _terminal(*t) for i, t in part["terminals"].items()}
    for i, (origin, expansion, order, alias, options) in part["rules"].items():
        memo[i] = Rule(symbol(origin, False), [symbol(*s) for s in expansion], order, alias, RuleOptions(*options))
    actions = [(Shift, arg) if kind == 0 else (Reduce, memo[arg]) for kind, arg in part["actions"]]
    # Lark's loader keeps objects it finds in the memo as they are (only dicts and lists are
    # deserialised), and asks the LALR_Parser plugin to rebuild the parse table
    return Lark._load_from_dict(part["data"], memo, _plugins={**plugins, "LALR_Parser": _flat_parser(actions)})


class LoopParts(NamedTuple):
    """What :class:`archdsl.lalr.Loop` runs, as :func:`_loop_part` wrote it (no Lark object)."""

    terminals: tuple[str, ...]  # every terminal, in the order of Lark's lexer configuration
    ignore: tuple[str, ...]  # skipped between tokens (whitespace)
    newlines: tuple[str, ...]  # whose tokens may hold a line break
    filtered: tuple[str, ...]  # left out of a rule's value (keywords, punctuation)
    #: a scanner: ((regular expression, flags) tried in turn, terminal -> {keyword text: keyword terminal})
    root: tuple
    keywords: dict[str, dict[str, str]]  # the root scanner's keywords
    #: state -> {terminal or rule name: a state to shift or go to (>= 0), or ~i to reduce by rules[i]}
    states: dict[int, dict[str, int]]
    #: (origin, expansion of (name, is a terminal), alias, expand1, template source)
    rules: tuple[tuple, ...]
    start: int
    end: int
    scanners: tuple[tuple, ...]  # the states' own scanners, one per set of terminals accepted
    scanner_of: dict[int, int]  # state -> its scanner's index


def loop_parts(tables: Tables) -> LoopParts:
    """The loop's part of `tables` (ValueError if it is not what this version writes)."""
    part = _part(tables.loop, _LOOP_KEYS)
    return LoopParts(**part)


def _flat_parser(actions: list[tuple]) -> type[LALR_Parser]:
    from lark.parsers.lalr_analysis import IntParseTable
    from lark.parsers.lalr_parser import LALR_Parser, _Parser

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
