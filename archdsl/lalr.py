"""Stage 2b, the LALR loop: Lark's tables run in one loop that builds the typed program.

Lark's parser (``lark.parsers.lalr_parser``) hands each token through a lexer generator, a
``feed_token`` call and a tree-builder callback chain, builds a ``Tree`` of every rule, and
:class:`archdsl.parser._ToProgram` then walks that tree: on the specs in specs/ that is 10-15
microseconds a token, most of a network's first compile. This module runs the same parse
table (Lark's, as :mod:`archdsl.tables` loads it) and the same scanners (Lark's compiled
regular expressions, root first as :class:`archdsl.lexer.RootFirstLexer` does) in one loop:

* a reduction of a ``?rule`` by one symbol (an expression name passes through eleven of
  them, one per precedence level) is a change of state, the value left where it is;
* every other reduction calls the ``_ToProgram`` method the tree walk would have called,
  with the positions of the same first and last token and the same values, so the program
  is the same object for object (1.7x faster than Lark's parser and the walk on specs/).
  Lark's tree-building conventions are followed to the letter: the children of a rule
  whose name starts with ``_`` (Lark's own ``__x_star_n`` helpers for repetitions) are
  spliced into the rule above, a ``?rule`` left with one child is that child, every token
  is kept in the span and the filtered ones left out of the values.

Nothing of Lark's parser object is built for it: :func:`archdsl.tables.loop_parts` reads the
table straight from the shipped tables, and the scanners are Lark's ``BasicLexer``. It is
the path for a spec that parses. At the first thing it does not handle itself (a
character no terminal matches, a token the state does not take, a tree deeper than
``MAX_TREE_DEPTH``, an error a ``_ToProgram`` method raises) it stops with
:class:`Fallback`, and :mod:`archdsl.parser` parses the text again with Lark's own parser,
whose errors :mod:`archdsl.parse_errors` words: a mistake is reported exactly as before.
tests/test_lalr.py checks that both paths give the same program, or both fail, on every
spec, every docs example and generated text.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from lark import Token
from lark.common import LexerConf
from lark.lexer import Scanner

from .lexer import RootFirstLexer
from .tables import LoopParts


class Fallback(Exception):
    """The loop stops here: parse the text with Lark's parser instead."""


#: what a reduction does with its children (see Loop.parse)
_PASS, _SPLICE, _BUILD = 0, 1, 2
#: what a terminal's tokens need (Loop._kinds): skipped (whitespace), lines counted in them,
#: left out of the values (keywords, punctuation), a keyword may match it (NAME matches `network`)
_IGNORED, _NEWLINES, _FILTERED, _KEYWORDS = 1, 2, 4, 8
#: the value of a token of a filtered terminal (a keyword, punctuation): only its position
#: counts, so no Token is made for it
_DROPPED = object()
#: Lark's Token constructor, without the check for a deprecated keyword that ``Token()`` does
_token = getattr(Token, "_future_new", Token)


class Loop:
    """The parse table and scanners of `parts` (:func:`archdsl.tables.loop_parts`), run by
    :meth:`parse` with the methods of `builder` (a class whose method named after each rule
    or alias builds its value)."""

    def __init__(self, parts: LoopParts, builder: type, dropped: frozenset[str], max_depth: int):
        conf = LexerConf(parts.terminals, re, parts.ignore, g_regex_flags=parts.g_regex_flags,
                         skip_validation=True, use_bytes=parts.use_bytes)
        # the lexer Lark's parser would use: the same terminals, the same per-state sets
        self._lexer = RootFirstLexer(conf, {state: keys for state, (keys, _) in parts.states.items()})
        root = self._lexer.root_lexer
        # the scanner Lark's root lexer builds (its terminals in its order, less the keywords
        # folded into a terminal that also matches them), the folding read from the tables
        self._root_patterns = Scanner([t for t in root.terminals if t.name not in parts.folded],
                                      parts.g_regex_flags, re, parts.use_bytes)._mres
        self._keywords = parts.keywords
        # per terminal, what the loop does with its tokens (the _IGNORED, ... bits)
        self._kinds = {t.name: (_IGNORED * (t.name in root.ignore_types) | _NEWLINES * (t.name in root.newline_types)
                                | _FILTERED * (t.name in dropped) | _KEYWORDS * (t.name in parts.keywords))
                       for t in parts.terminals}
        self._max_depth = max_depth
        # per state: terminal or rule name -> a state to shift or go to (>= 0), or ~i to
        # reduce by rule i (< 0); its terminals are those the state accepts
        self._table = {state: dict(zip(keys, codes)) for state, (keys, codes) in parts.states.items()}
        self._rules = [self._rule(r, builder) for r in parts.rules]
        self._start, self._end = parts.start, parts.end

    @staticmethod
    def _rule(rule: tuple, builder: type) -> tuple:
        """(size, name reduced to, what the reduction does, the spliced positions, the method)."""
        origin, expansion, alias, expand1, template = rule
        spliced = tuple(i for i, (name, is_term) in enumerate(expansion) if not is_term and name.startswith("_"))
        expand1 = bool(expand1) and not alias
        if origin.startswith("_"):
            return len(expansion), origin, _SPLICE, spliced, None
        if expand1 and len(expansion) == 1 and not spliced:
            return 1, origin, _PASS, (), None
        return len(expansion), origin, _BUILD, spliced, (expand1, getattr(builder, str(alias or template or origin)))

    def parse(self, text: str, program: Any) -> Any:
        """The value of the start rule for `text`, `program` being the builder instance."""
        table, rules, max_depth = self._table, self._rules, self._max_depth
        kinds, keywords = self._kinds, self._keywords
        root_res = self._root_patterns
        match = root_res[0].match if len(root_res) == 1 else None  # Lark splits only past 100 terminals
        token = _token
        end_state = self._end
        states = [self._start]
        # each entry: (value, where its first token is, where its last token is, tree
        # height), a position being (line, column, end line, end column); a spliced rule's
        # value is the list of its children's entries
        values: list[tuple] = []
        pos, n, line, line_start = 0, len(text), 1, 0
        while True:
            # -- the next token
            if pos < n:
                m = match(text, pos) if match is not None else _first_match(root_res, text, pos)
                if m is None:
                    typ, value, kind = self._state_match(states[-1], text, pos)
                else:
                    typ, value = m.lastgroup, m.group()
                    kind = kinds[typ]
                    if kind & _KEYWORDS:  # `network` is a NAME to the scanner, a keyword to the parser
                        typ = keywords[typ].get(value, typ)
                        kind = kinds[typ]
                    if not kind & _IGNORED and typ not in table[states[-1]]:
                        typ, value, kind = self._state_match(states[-1], text, pos)
                end = pos + len(value)
                end_line, end_start = line, line_start
                if kind & _NEWLINES:
                    k = value.count("\n")
                    if k:
                        end_line, end_start = line + k, pos + value.rindex("\n") + 1
                if kind & _IGNORED:
                    pos, line, line_start = end, end_line, end_start
                    continue
                where = (line, pos - line_start + 1, end_line, end - end_start + 1)
                if kind & _FILTERED:
                    shifted = (_DROPPED, where, where, 0)
                else:
                    shifted = (token(typ, value, pos, *where, end), where, where, 0)
                pos, line, line_start = end, end_line, end_start
                at_end = False
            else:
                typ, shifted, at_end = "$END", None, True
            # -- shift it, after the reductions it completes
            while True:
                action = table[states[-1]].get(typ)
                if action is None:
                    raise Fallback
                if action >= 0:
                    states.append(action)
                    values.append(shifted)
                    break
                size, origin, what, spliced, build = rules[~action]
                if what == _PASS:  # `?rule: one`: the value stays, the state changes
                    states[-1] = table[states[-2]][origin]
                else:
                    if size:
                        children = values[-size:]
                        del values[-size:]
                        del states[-size:]
                    else:
                        children = []
                    if spliced:
                        children = _splice(children, spliced)
                    if what == _SPLICE:
                        entry = (children, None, None, 0)
                    elif build[0] and len(children) == 1:  # a `?rule` left with one child
                        entry = children[0]
                    else:
                        entry = _build(program, build[1], children, max_depth)
                    states.append(table[states[-1]][origin])
                    values.append(entry)
                if at_end and states[-1] == end_state:
                    return values[-1][0]

    def _state_match(self, state: int, text: str, pos: int) -> tuple[str, str, int]:
        """The token at `pos` as the scanner of the terminals `state` accepts finds it (Lark's
        contextual lexer: a keyword where the state takes no keyword is a name)."""
        lexer = self._lexer._state_lexer(state)
        m = _first_match(lexer.scanner._mres, text, pos)
        if m is None:
            raise Fallback
        typ, value = m.lastgroup, m.group()
        if typ in lexer.callback:
            typ = lexer.callback[typ](Token(typ, value)).type
        return typ, value, self._kinds[typ]


def _splice(children: list, spliced: tuple[int, ...]) -> list:
    """The children with those of each spliced rule (a list of entries) in its place; the
    first one's list is taken over, as repetitions are left-recursive (`x*` builds on itself)."""
    out: list | None = None
    for i, entry in enumerate(children):
        if i in spliced:
            if out is None:
                out = entry[0]
            else:
                out += entry[0]
        elif out is None:
            out = [entry]
        else:
            out.append(entry)
    return out if out is not None else []


def _first_match(patterns: list, text: str, pos: int):
    for pattern in patterns:
        m = pattern.match(text, pos)
        if m is not None:
            return m
    return None


def _build(program: Any, method: Callable, children: list, max_depth: int) -> tuple:
    """The entry of a rule's node: its method's value for the positions of its first and
    last token, and its values (tokens of the filtered terminals left out)."""
    first = last = None
    height = 0
    kept = []
    for value, f, lt, h in children:
        if f is not None:
            if first is None:
                first = f
            last = lt
        if h > height:
            height = h
        if value is _DROPPED:
            continue
        kept.append(value)
    height += 1
    if height > max_depth:
        raise Fallback
    return method(program, (first, last), kept), first, last, height
