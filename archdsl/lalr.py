"""Stage 2b, the LALR loop: Lark's tables run in one loop that builds the typed program.

Lark's parser (``lark.parsers.lalr_parser``) hands each token through a lexer generator, a
``feed_token`` call and a tree-builder callback chain, builds a ``Tree`` of every rule, and
:class:`archdsl.parser._ToProgram` then walks that tree: on the specs in specs/ that is 10-15
microseconds a token, most of a network's first compile. This module runs the same parse
table (Lark's, as :mod:`archdsl.tables` loads it) and the same scanners (Lark's compiled
regular expressions, root first as :class:`archdsl.lexer.RootFirstLexer` does) in one loop:

* a reduction of a ``?rule`` by one symbol (an expression name passes through eleven of
  them, one per precedence level) is a change of state, the value left where it is, and a
  chain of them one step (:meth:`Loop._chain`);
* every other reduction calls the ``_ToProgram`` method the tree walk would have called,
  with the positions of the same first and last token and the same values, so the program
  is the same object for object (1.7x faster than Lark's parser and the walk on specs/).
  Lark's tree-building conventions are followed to the letter: the children of a rule
  whose name starts with ``_`` (Lark's own ``__x_star_n`` helpers for repetitions) are
  spliced into the rule above, a ``?rule`` left with one child is that child, every token
  is kept in the span and the filtered ones left out of the values.

Nothing of Lark is imported for it (Lark's import is 30-60 ms of a process): the tables
carry the parse table and the scanners' regular expressions as Lark made them when the file
was written (:func:`archdsl.tables.loop_parts`), and the tokens are this module's
:class:`Token`, with the attributes of Lark's that the builder reads. It is the path for a
spec that parses. At the first thing it does not handle itself (a
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

from .tables import LoopParts


class Fallback(Exception):
    """The loop stops here: parse the text with Lark's parser instead."""


class Token(str):
    """A token: its text, its terminal's name and where it is (1-based lines and columns,
    the end column exclusive): the attributes of Lark's ``Token`` that the program's builder
    reads, so that it takes the tokens of either parser."""

    __slots__ = ("type", "line", "column", "end_line", "end_column")

    def __new__(cls, type: str, value: str, line: int, column: int, end_line: int, end_column: int):
        self = str.__new__(cls, value)
        self.type, self.line, self.column, self.end_line, self.end_column = type, line, column, end_line, end_column
        return self

    def __reduce__(self):
        return Token, (self.type, str(self), self.line, self.column, self.end_line, self.end_column)


#: what a reduction does with its children (see Loop.parse)
_PASS, _SPLICE, _BUILD = 0, 1, 2
#: what a terminal's tokens need (Loop._kinds): skipped (whitespace), lines counted in them,
#: left out of the values (keywords, punctuation), a keyword may match it (NAME matches `network`)
_IGNORED, _NEWLINES, _FILTERED, _KEYWORDS = 1, 2, 4, 8
#: the value of a token of a filtered terminal (a keyword, punctuation): only its position
#: counts, so no Token is made for it
_DROPPED = object()


class Loop:
    """The parse table and scanners of `parts` (:func:`archdsl.tables.loop_parts`), run by
    :meth:`parse` with the methods of `builder` (a class whose method named after each rule
    or alias builds its value)."""

    def __init__(self, parts: LoopParts, builder: type, max_depth: int):
        # the scanner of every terminal, tried first (:mod:`archdsl.lexer`), and its keywords
        self._root_patterns, self._keywords = _compiled(parts.root)
        ignore, newlines, filtered = set(parts.ignore), set(parts.newlines), set(parts.filtered)
        # per terminal, what the loop does with its tokens (the _IGNORED, ... bits)
        self._kinds = {t: (_IGNORED * (t in ignore) | _NEWLINES * (t in newlines) | _FILTERED * (t in filtered)
                           | _KEYWORDS * (t in self._keywords)) for t in parts.terminals}
        self._max_depth = max_depth
        # per state: terminal or rule name -> a state to shift or go to (>= 0), or ~i to
        # reduce by rule i (< 0); its terminals are those the state accepts
        self._table = parts.states
        self._rules = [self._rule(r, builder) for r in parts.rules]
        self._start, self._end = parts.start, parts.end
        # each state's own scanner (the terminals it accepts), compiled when a token needs it
        self._scanners, self._scanner_of = parts.scanners, parts.scanner_of
        self._state_scanners: dict[int, tuple] = {}
        self._chains: dict[tuple, int] = {}
        # skimming needs the builder's checks and the grammar's words for a network's body
        self._checked, self._token_ok = frozenset(builder.CHECKED_TERMINALS), builder.token_ok
        self._skims = {"NETWORK", "NAME", "LBRACE", "RBRACE"} <= set(parts.terminals) and any(
            r[0] == "body" for r in parts.rules)

    def _chain(self, key: tuple[int, int, str], origin: str) -> int:
        """The state after the reductions of `?rule`s by one symbol that follow one another
        (an expression name passes through eleven, one per precedence level), from the
        state `below` the top of the stack and the lookahead terminal `typ` alone: each
        only changes the top state. :meth:`parse` keeps each chain's end, worked out once (a
        few hundred a process): 4% of a parse of specs/."""
        below, _, typ = key
        top = self._table[below][origin]
        while True:
            action = self._table[top].get(typ)
            if action is None or action >= 0:
                return top
            _, origin, what, _, _ = self._rules[~action]
            if what != _PASS:
                return top
            top = self._table[below][origin]

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
        name = str(alias or template or origin)
        refused = builder.refuses_unbuilt(name, [symbol for symbol, _ in expansion])
        return len(expansion), origin, _BUILD, spliced, (expand1, getattr(builder, name), refused)

    def parse(self, text: str, program: Any, only: str | None = None) -> Any:
        """The value of the start rule for `text`, `program` being the builder instance.

        With `only`, the body of every network of another name is *skimmed*: parsed, its
        tokens and tree depth checked as the builder would check them (:meth:`_skims`), but
        none of its statements built: the network's value has an empty body, and its header
        (name, parameters) is built. A token or rule the builder might refuse there stops the
        loop (Fallback), so that a mistake is reported as a full parse reports it."""
        table, rules, max_depth = self._table, self._rules, self._max_depth
        kinds, keywords = self._kinds, self._keywords
        root_res = self._root_patterns
        match = root_res[0].match if len(root_res) == 1 else None  # Lark splits only past 100 terminals
        token = Token
        end_state = self._end
        chains = self._chains
        states = [self._start]
        # each entry: (value, where its first token is, where its last token is, tree
        # height), a position being (line, column, end line, end column); a spliced rule's
        # value is the list of its children's entries
        values: list[tuple] = []
        pos, n, line, line_start = 0, len(text), 1, 0
        # skimming (`only`): watch 1 waits for `network`, 2 for its name, 3 for its body's
        # `{`; 4 skims that body, `depth` braces deep; 5 waits for its reduction
        watch, depth = (1 if only is not None and self._skims else 0), 0
        checked, token_ok = self._checked, self._token_ok
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
                elif watch < 4:
                    shifted = (token(typ, value, *where), where, where, 0)
                else:  # skimmed: no Token made, but what the builder would refuse is refused
                    if typ in checked and not token_ok(typ, value):
                        raise Fallback
                    shifted = _SKIMMED
                if watch:
                    if watch == 4:
                        if typ == "LBRACE":
                            depth += 1
                        elif typ == "RBRACE":
                            depth -= 1
                            if not depth:
                                watch = 5  # the body's `}`: the next reduction of a body is its own
                    elif watch == 1:
                        watch = 2 if typ == "NETWORK" else 1
                    elif watch == 2:
                        watch = 3 if typ == "NAME" and value != only else 1
                    elif typ == "LBRACE":
                        watch, depth = 4, 1
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
                    key = (states[-2], states[-1], typ)
                    top = chains.get(key)
                    if top is None:
                        top = chains[key] = self._chain(key, origin)
                    states[-1] = top
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
                    elif watch < 4:
                        entry = _build(program, build[1], children, max_depth)
                    elif watch == 5 and origin == "body":  # the skimmed body, built of its braces alone
                        entry = _skimmed_body(program, build[1], children, max_depth)
                        watch = 1
                    else:
                        if build[2]:
                            raise Fallback
                        entry = _skim(children, max_depth)
                    states.append(table[states[-1]][origin])
                    values.append(entry)
                if at_end and states[-1] == end_state:
                    return values[-1][0]

    def _state_match(self, state: int, text: str, pos: int) -> tuple[str, str, int]:
        """The token at `pos` as the scanner of the terminals `state` accepts finds it (Lark's
        contextual lexer: a keyword where the state takes no keyword is a name)."""
        index = self._scanner_of[state]
        scanner = self._state_scanners.get(index)
        if scanner is None:
            scanner = self._state_scanners[index] = _compiled(self._scanners[index])
        patterns, keywords = scanner
        m = _first_match(patterns, text, pos)
        if m is None:
            raise Fallback
        typ, value = m.lastgroup, m.group()
        if typ in keywords:
            typ = keywords[typ].get(value, typ)
        return typ, value, self._kinds[typ]


def _compiled(scanner: tuple) -> tuple[list, dict]:
    """A scanner of the tables (:func:`archdsl.tables._scanner`), its expressions compiled."""
    patterns, keywords = scanner
    return [re.compile(pattern, flags) for pattern, flags in patterns], keywords


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


#: the entry of a skimmed token or node: no value, no position, no height
_SKIMMED = (None, None, None, 0)


def _skim(children: list, max_depth: int) -> tuple:
    """The entry of a skimmed node: no value, only its tree height (bounded as _build's)."""
    height = max([h for _, _, _, h in children], default=0) + 1
    if height > max_depth:
        raise Fallback
    return None, None, None, height


def _skimmed_body(program: Any, method: Callable, children: list, max_depth: int) -> tuple:
    """The entry of a skimmed network's body: the builder's body of no statements, spanning
    its braces, as high as the skimmed tree."""
    value, first, last, _ = _build(program, method, [c for c in children if c[0] is _DROPPED], max_depth)
    return value, first, last, _skim(children, max_depth)[3]


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
