"""The parser's lexer: Lark's contextual lexer, with its scanners built only when needed.

The grammar needs a contextual lexer: a word is a keyword only where the grammar expects that
keyword (`x` in `3 x 3`, but a parameter elsewhere; `as` after `repeat 3`, a name elsewhere),
and `act`/`norm`/`bias` are settings only at the start of a statement. Lark's
:class:`~lark.lexer.ContextualLexer` does this with one scanner per set of terminals a parser
state accepts. Building all of them is most of a process's first parse: this grammar has 83
such sets, a short spec meets some 25 of them, and each is a regular expression of every
terminal the state accepts, compiled by ``re`` (about 0.4 ms each, some 10 ms in all, on
each run, since ``re`` keeps nothing between processes).

:class:`RootFirstLexer` gives the same tokens with one scanner in most cases. It matches with
the scanner of *every* terminal first (Lark's ``root_lexer``); when the parser state accepts
the terminal found, that is the token the state's own scanner finds too, since the state's
scanner tries a subset of the same terminals in the same order (Lark sorts them by priority,
then width), so the first terminal that matches in the whole set also comes first in the
subset. Only when the state does not accept the terminal (a keyword used as a name, `bias` as a
keyword argument) does it rewind and ask the state's own scanner, built then, once. Errors come
from the state's scanner exactly as Lark's contextual lexer raises them, so that
:mod:`archdsl.parse_errors` words them the same. ``tests/test_parser.py`` checks that the
tokens equal Lark's own contextual lexer's on every spec, every docs example and random text.

It plugs in through Lark's ``_plugins`` option (the hook lark-cython uses to replace the lexer).
"""

from __future__ import annotations

from copy import copy

from lark.exceptions import UnexpectedCharacters, UnexpectedToken
from lark.lexer import BasicLexer, ContextualLexer


class _Accepts(dict):
    """state -> the frozenset of terminals it accepts, made when first asked for (a spec meets
    a fraction of the grammar's states, and most processes never lex with this class)."""

    def __init__(self, states: dict):
        super().__init__()
        self._states = states

    def __missing__(self, state: int) -> frozenset:
        found = self[state] = frozenset(self._states[state])
        return found


class RootFirstLexer(ContextualLexer):
    """Lark's contextual lexer that tries the scanner of all terminals first and builds a
    parser state's own scanner only when that state needs it."""

    def __init__(self, conf, states, always_accept=()):  # Lark's own signature
        # Not ContextualLexer.__init__: it builds a BasicLexer for every state up front.
        self._conf = conf
        self._extra = frozenset(conf.ignore) | frozenset(always_accept)
        self._accepts = _Accepts(states)
        self._by_accepts: dict[frozenset, BasicLexer] = {}
        root_conf = copy(conf)
        root_conf.terminals = list(conf.terminals)
        root_conf.skip_validation = True  # Lark validated the terminals when it compiled the grammar
        self.root_lexer = BasicLexer(root_conf)

    def _state_lexer(self, state: int) -> BasicLexer:
        """The scanner of the terminals `state` accepts (and the ignored ones), as Lark's
        contextual lexer builds it: one for each distinct set."""
        accepts = self._accepts[state]
        lexer = self._by_accepts.get(accepts)
        if lexer is None:
            conf = copy(self._conf)
            by_name = self._conf.terminals_by_name
            conf.terminals = [by_name[n] for n in accepts | self._extra if n in by_name]
            conf.skip_validation = True
            lexer = self._by_accepts[accepts] = BasicLexer(conf)
        return lexer

    def lex(self, lexer_state, parser_state):
        root, accepts = self.root_lexer, self._accepts
        counter = lexer_state.line_ctr
        while True:
            state = parser_state.position
            mark = counter.char_pos, counter.line, counter.column, counter.line_start_pos
            last = lexer_state.last_token
            try:
                token = root.next_token(lexer_state, parser_state)
            except EOFError:
                return
            except UnexpectedCharacters:
                token = None
            if token is not None and token.type in accepts[state]:
                yield token
                continue
            # not a token this state takes: rewind, and let the state's own scanner decide
            counter.char_pos, counter.line, counter.column, counter.line_start_pos = mark
            lexer_state.last_token = last
            try:
                yield self._state_lexer(state).next_token(lexer_state, parser_state)
            except EOFError:
                return
            except UnexpectedCharacters as err:
                # as Lark's ContextualLexer: a terminal that exists but is not expected here
                # is an unexpected token, not an unexpected character
                try:
                    last = lexer_state.last_token
                    token = root.next_token(lexer_state, parser_state)
                    raise UnexpectedToken(token, err.allowed, state=parser_state, token_history=[last],
                                          terminals_by_name=root.terminals_by_name) from None
                except UnexpectedCharacters:
                    raise err from None
