"""Stage 2, the parser: text -> typed program (:mod:`archdsl.syntax`), every source position kept.

The grammar (grammar.lark, shipped as package data) is Lark's; compiling it takes 70-120 ms, so
the package also ships its LALR tables (grammar.tables, :mod:`archdsl.tables`), and a process
rebuilds the parser from them (:func:`_lark`). Nothing is cached or written at run time. Lark
builds a parse tree that keeps every token (``keep_all_tokens``), and one bottom-up pass
(:class:`_ToProgram`) turns it into the typed program, computing each node's span from its
first and last token. That is the span Lark's ``propagate_positions`` gives (keywords and
brackets included), without the bookkeeping it does on every reduction. User mistakes found
here are raised as :class:`ArchError`, never as Lark exceptions (:mod:`archdsl.parse_errors`
words them).

A text that parses takes a shorter road to the same program: :mod:`archdsl.lalr` runs the
shipped tables in one loop that calls the same :class:`_ToProgram` methods as it reduces,
without Lark's parser object, token stream or tree (1.7x faster on specs/, and Lark's
parser is never built in a process that meets no error). Anything else, every mistake
included, is parsed again the way described above, so errors are exactly Lark's.
"""

from __future__ import annotations

import functools
import os
import re

from typing import TYPE_CHECKING

from . import syntax as P
from . import tables
from .lalr import Fallback, Loop
from .diagnostics import ArchError, Diagnostic
from .parse_errors import MAX_TREE_DEPTH, check_depth, check_nesting, syntax_errors

if TYPE_CHECKING:  # Lark is imported when its parser is needed: a text that parses never needs it
    from lark import Lark, Token, Tree

#: a spec larger than this is refused before parsing: parsing costs a few microseconds a
#: character, so this bounds it to about a second (the largest spec in specs/ is under
#: 10,000 characters)
MAX_SOURCE_BYTES = 256_000
#: a number literal beyond this is refused where it stands (evaluate.MAX_VALUE bounds computed values)
MAX_LITERAL = 10**15

#: the package's folder, where grammar.lark and grammar.tables are (read as plain files:
#: importlib.resources costs a few ms to import, and archdsl is never run from a zip)
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


def _package_file(name: str, limit: int = 1 << 20) -> bytes:
    """The first `limit` + 1 bytes of the package's file `name` (b"" if it cannot be read)."""
    try:
        with open(os.path.join(_PACKAGE, name), "rb") as f:
            return f.read(limit + 1)
    except OSError:
        return b""


def grammar() -> str:
    return _package_file("grammar.lark").decode()


def _plugins() -> dict:
    """Lark's plugins: the contextual lexer whose scanners are built when first needed
    (:mod:`archdsl.lexer`)."""
    from .lexer import RootFirstLexer

    return {"ContextualLexer": RootFirstLexer}


def _compiled(grammar_text: str) -> Lark:
    return tables.compile_grammar(grammar_text, _plugins())


def tables_blob(grammar_text: str) -> bytes:
    """The tables file for `grammar_text` (:func:`archdsl.tables.blob`)."""
    return tables.blob(grammar_text, _plugins())


@functools.lru_cache(maxsize=1)
def _shipped() -> tables.Tables | None:
    """The tables shipped beside the grammar, or None if they are another grammar's (an
    edited grammar.lark), damaged or too large (:func:`archdsl.tables.read`)."""
    blob = _package_file(tables.FILE, tables.MAX_BYTES)
    return tables.read(blob, grammar()) if len(blob) <= tables.MAX_BYTES else None


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    """Lark's parser, rebuilt from the shipped tables (a few ms); tables that this Lark cannot
    load are passed over and the grammar compiled here: nothing is written anywhere. Only an
    error, or tables the loop cannot run, need it (:func:`_parse`)."""
    found = _shipped()
    if found is not None:
        try:
            return tables.load(found, _plugins())
        except Exception:  # noqa: BLE001 - tables another Lark cannot read: compile afresh
            pass
    return _compiled(grammar())


@functools.lru_cache(maxsize=1)
def _filtered() -> frozenset[str]:
    """The terminals a rule's value leaves out (:func:`archdsl.tables.filtered_terminals`),
    for the walk of Lark's tree."""
    return tables.filtered_terminals(grammar(), [t.name for t in _lark().terminals])


def _span(file: str, ext) -> P.Span:
    """The span from the start of `ext[0]` to the end of `ext[1]`, each the
    (line, column, end line, end column) of a token."""
    first, last = ext
    return P.Span(file, first[0], first[1], last[2], last[3])


def _where(tok: Token | None) -> tuple | None:
    return (tok.line, tok.column, tok.end_line, tok.end_column) if tok is not None else None


def _tok_span(file: str, tok: Token) -> P.Span:
    return P.Span(file, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + len(tok))


def _number(text: str, span: P.Span | None = None) -> int | float:
    digits = text.replace("_", "")
    if digits.isdecimal():  # what the grammar's \d+ matches (Unicode decimal digits)
        # beyond 20 digits the value is absurd anyway; int() of a huge string is slow (and
        # Python refuses more than 4,300 digits)
        value: int | float | None = int(digits) if len(digits) <= 20 else None
    else:
        value = float(digits)
    if value is None or not abs(value) <= MAX_LITERAL:  # also catches inf and nan
        shown = text if len(text) <= 24 else f"{text[:12]}... ({len(text)} characters)"
        raise ArchError(Diagnostic("E304", f"the number {shown} is absurdly large", span,
                                   expected=f"at most {MAX_LITERAL:,}", found=shown))
    return value


_SHORT = {"p": "pad", "g": "groups", "d": "dilation"}


class _Branches(list):
    """A merge's branches (the value of the `branches` rule), told apart from a call's
    parenthesised arguments (a plain list)."""


class _TooDeep(Exception):
    """The tree is deeper than MAX_TREE_DEPTH: _check_depth says where."""


class _ToProgram:
    """Lark tree -> typed program. Each method names the grammar rule it builds and takes
    `ext`, the rule's first and last token (its span: :meth:`_s`), and the rule's values:
    its subtrees' values and its tokens, keywords and punctuation left out. An optional
    part that is absent gives no value (no placeholders), so a method tells its optional
    parts apart by their number or type, as its comment says."""

    #: the terminals whose text a method checks (:func:`_number`): a skimmed network's
    #: tokens of these are checked by :meth:`token_ok` (:meth:`archdsl.lalr.Loop.parse`)
    CHECKED_TERMINALS = ("INT", "FLOAT", "DIMS", "SHORTOPT")

    def __init__(self, file: str):
        self.file = file
        self._rules: dict = {}

    @staticmethod
    def token_ok(typ: str, text: str) -> bool:
        """Whether the methods take a token of a CHECKED_TERMINALS terminal as they would
        take it in a statement (every number in it within MAX_LITERAL)."""
        parts = text.split("x") if typ == "DIMS" else text[1:].split(",") if typ == "SHORTOPT" else (text,)
        try:
            for part in parts:
                _number(part)
        except ArchError:
            return False
        return True

    @staticmethod
    def refuses_unbuilt(rule: str, expansion: list[str]) -> bool:
        """Whether the method of `rule` may refuse the form `expansion` (the symbols of one
        of its alternatives): a merge given parentheses or an arrow (:meth:`invocation`)."""
        return rule == "invocation" and "branches" in expansion and bool({"callparen", "arrow"} & set(expansion))

    def transform(self, tree: Tree):
        from lark import Token

        return self._walk(tree, 1, Token, _filtered())[0]

    def _walk(self, tree: Tree, depth: int, Token: type, dropped: frozenset[str]) -> tuple:
        """(value, first token, last token) of `tree`, bottom-up. Recursive, so a tree deeper
        than MAX_TREE_DEPTH stops it (_TooDeep) before Python's stack would."""
        if depth > MAX_TREE_DEPTH:
            raise _TooDeep
        values: list = []
        first = last = None
        for c in tree.children:
            if type(c) is Token:
                if first is None:
                    first = c
                last = c
                if c.type not in dropped:
                    values.append(c)
            else:
                v, f, lt = self._walk(c, depth + 1, Token, dropped)
                if f is not None:
                    if first is None:
                        first = f
                    last = lt
                values.append(v)
        rule = self._rules.get(tree.data)
        if rule is None:
            rule = self._rules[tree.data] = getattr(self, str(tree.data))
        return rule((_where(first), _where(last)), values), first, last

    def _s(self, ext) -> P.Span:
        return _span(self.file, ext)

    def _t(self, tok: Token) -> P.Span:
        return _tok_span(self.file, tok)

    # -- top level
    def start(self, ext, items):
        return [i for i in items if i is not None]

    def include(self, ext, c):
        return P.Include(span=self._s(ext), path=c[0][1:-1])

    def let(self, ext, c):
        return P.Let(span=self._s(ext), name=str(c[0]), value=c[1])

    def block(self, ext, c):  # NAME [params] body
        return P.Block(span=self._s(ext), name=str(c[0]), params=tuple(c[1] if len(c) == 3 else ()), body=c[-1])

    def network(self, ext, c):  # NAME [params] body
        return P.Network(span=self._s(ext), name=str(c[0]), params=tuple(c[1] if len(c) == 3 else ()), body=c[-1])

    def params(self, ext, c):
        return [p for p in c if p is not None]

    def param(self, ext, c):  # NAME [expr]
        return P.Param(span=self._t(c[0]), name=str(c[0]), default=c[1] if len(c) == 2 else None)

    def body(self, ext, c):
        return P.Body(span=self._s(ext), stmts=tuple(s for s in c if s is not None))

    def branch(self, ext, c):
        return P.Body(span=self._s(ext), stmts=tuple(s for s in c if s is not None))

    def branches(self, ext, c):
        return _Branches(c)

    # -- statements
    def labeled(self, ext, c):
        name, stmt = c
        return P.replace(stmt, label=str(name), label_span=self._t(name), span=self._s(ext))

    def input(self, ext, c):
        return P.Input(span=self._s(ext), dims=c[0])

    def scoped(self, ext, c):
        return P.Scoped(span=self._s(ext), setting=str(c[0]), value=c[1])

    def repeat(self, ext, c):  # expr [NAME] body
        return P.Repeat(span=self._s(ext), count=c[0], var=str(c[1]) if len(c) == 3 else None, body=c[-1])

    def if_stmt(self, ext, c):  # expr body [body | if_stmt]
        orelse = c[2] if len(c) == 3 else None
        if isinstance(orelse, P.If):  # `else if` chains nest as a one-statement else body
            orelse = P.Body(span=orelse.span, stmts=(orelse,))
        return P.If(span=self._s(ext), test=c[0], then=c[1], orelse=orelse)


    def aux(self, ext, c):
        return P.Aux(span=self._s(ext), name=str(c[0]), body=c[1])

    def expect(self, ext, c):  # NAME value [number PERCENT]
        what, value = c[0], c[1]
        tol = c[2] if len(c) > 2 else None
        tolerance = _number(tol, self._t(tol)) if tol is not None else None
        return P.Expect(span=self._s(ext), what=str(what), value=value, tolerance=tolerance)

    def dims_value(self, ext, c):
        return self._dims_token(c[0])

    def invocation(self, ext, c):  # NAME [callparen] arg* [arrow] [branches]: a list, a tuple, _Branches
        name, *rest = c
        branches = rest.pop() if rest and type(rest[-1]) is _Branches else None
        call = rest.pop(0) if rest and type(rest[0]) is list else None
        out, post = rest.pop() if rest and type(rest[-1]) is tuple else (None, ())
        if branches is not None:  # a merge: `concat { A | B }`, `residual scale=0.2 { F }`
            if call is not None or out is not None:
                raise ArchError(Diagnostic(
                    "E202", f"'{name}' with branches is a merge: it takes options and branches only",
                    self._t(name), found="parentheses" if call is not None else "`->`",
                    hint=f"write `{name} {{ A | B }}`, options as key=value before the '{{'"))
            return P.Merge(span=self._s(ext), kind=str(name), kind_span=self._t(name),
                           options=tuple(self._arg(a) for a in rest), branches=tuple(branches))
        return P.Invocation(
            span=self._s(ext),
            name=str(name),
            name_span=self._t(name),
            call=tuple(call) if call is not None else None,
            args=tuple(self._arg(a) for a in rest),
            out=out,
            post=tuple(self._arg(a) for a in post),
        )

    def arrow(self, ext, c):
        return (c[0], tuple(c[1:]))

    def callparen(self, ext, c):
        return [x for x in c if x is not None]

    def kwcallarg(self, ext, c):
        return P.CallKw(span=self._s(ext), key=str(c[0]), value=c[1])

    # -- layer arguments
    def _arg(self, a):
        if isinstance(a, str):  # a SHORTOPT token: p2, p0,3, g2, d2
            span = self._t(a)
            values = tuple(P.Num(span=span, value=_number(v, span)) for v in a[1:].split(","))
            return P.KwArg(span=span, key=_SHORT[a[0]], values=values)
        return a

    def window(self, ext, c):  # dims [SLASH dims]
        dims, stride = c[0], (c[2] if len(c) == 3 else None)
        return P.Window(span=self._s(ext), dims=dims, stride=stride)

    def listarg(self, ext, c):
        return P.ListArg(span=self._s(ext), items=tuple(c))

    def kwarg(self, ext, c):
        return P.KwArg(span=self._s(ext), key=str(c[0]), values=tuple(c[1:]))

    def dims(self, ext, c):
        if len(c) == 1 and isinstance(c[0], str) and c[0].type == "DIMS":
            return self._dims_token(c[0])
        return tuple(c)

    def _dims_token(self, tok: Token) -> tuple:
        # `3x224x224` is one token; give each number its own column so errors point at it
        out, col = [], tok.column
        for part in str(tok).split("x"):
            span = P.Span(self.file, tok.line, col, tok.line, col + len(part))
            out.append(P.Num(span=span, value=_number(part, span)))
            col += len(part) + 1
        return tuple(out)

    # -- expressions
    def number(self, ext, c):
        span = self._t(c[0])
        return P.Num(span=span, value=_number(c[0], span))

    def name(self, ext, c):
        return P.Name(span=self._t(c[0]), id=str(c[0]))

    def attr(self, ext, c):
        return P.Attr(span=self._s(ext), obj=str(c[0]), attr=str(c[1]))

    def neg(self, ext, c):
        operand = c[-1]
        if isinstance(operand, P.Num):
            return P.Num(span=self._s(ext), value=-operand.value)
        return P.Neg(span=self._s(ext), operand=operand)

    def unary(self, ext, c):  # `+x` is x; `+3` keeps the sign in its span, as `-3` does
        operand = c[-1]
        if isinstance(operand, P.Num):
            return P.Num(span=self._s(ext), value=operand.value)
        return operand

    def atom(self, ext, c):  # `( expr )`: the expression; its parentheses count in the enclosing span
        return c[0]

    def binop(self, ext, c):
        return P.BinOp(span=self._s(ext), op=str(c[1]), left=c[0], right=c[2])

    compare = binop

    def pow(self, ext, c):
        return P.BinOp(span=self._s(ext), op="**", left=c[0], right=c[1])

    def and_(self, ext, c):
        return P.BinOp(span=self._s(ext), op="and", left=c[0], right=c[1])

    def or_(self, ext, c):
        return P.BinOp(span=self._s(ext), op="or", left=c[0], right=c[1])

    def not_(self, ext, c):
        return P.Not(span=self._s(ext), operand=c[0])

    def cond(self, ext, c):
        return P.Cond(span=self._s(ext), body=c[0], test=c[1], orelse=c[2])

    def func(self, ext, c):
        return P.Func(span=self._s(ext), name=str(c[0]), args=tuple(x for x in c[1:] if x is not None))

    def true(self, ext, c):
        return P.Bool(span=self._s(ext), value=True)

    def false(self, ext, c):
        return P.Bool(span=self._s(ext), value=False)



def parse(source: str, file: str = "<string>", only: str | None = None) -> P.Program:
    """Parse spec text into a :class:`~archdsl.syntax.Program`.

    With `only` (a network's name), the statements of every other network are checked but
    not built: such a network has an empty body, and ``Program.unbuilt`` names it. A
    mistake anywhere is reported as without `only` (the whole text is parsed again).

    >>> prog = parse("network tiny { input 1x8x8; conv 3x3 -> 4 }")
    >>> [n.name for n in prog.networks]
    ['tiny']
    """
    if not isinstance(source, str):
        raise TypeError(f"parse() takes spec text (a str), not {type(source).__name__}")
    source = source.removeprefix("\ufeff")  # a byte-order mark, as some editors write
    if len(source) > MAX_SOURCE_BYTES:
        raise ArchError(
            Diagnostic(
                "E106",
                f"the spec is {len(source):,} characters long; the limit is {MAX_SOURCE_BYTES:,}",
                P.Span(file=file, line=1, column=1, end_line=1, end_column=2),
                hint="split it into files joined with `include`",
            )
        )
    check_nesting(source, file)
    with P.gc_paused():
        return _parse(source, file, only)


@functools.lru_cache(maxsize=1)
def _loop() -> Loop | None:
    """The shipped parse table run in one loop (:mod:`archdsl.lalr`), or None without
    shipped tables, or where this Lark is not laid out as the loop expects (then Lark's own
    parser does all the work)."""
    found = _shipped()
    if found is None:
        return None
    try:
        return Loop(tables.loop_parts(found), _ToProgram, MAX_TREE_DEPTH)
    except (AttributeError, KeyError, TypeError, ValueError, re.error):
        return None


def _parse(source: str, file: str, only: str | None = None) -> P.Program:
    loop = _loop()
    if loop is not None:
        try:
            items = tuple(loop.parse(source, _ToProgram(file), only))
        except (Fallback, ArchError):
            pass  # a mistake, or something the loop leaves to Lark: Lark's parser reports it
        else:
            unbuilt = () if only is None else tuple(i.name for i in items if isinstance(i, P.Network) and i.name != only)
            return P.Program(file=file, source=source, items=items, unbuilt=unbuilt)
    return _parse_with_lark(source, file)


def _parse_with_lark(source: str, file: str) -> P.Program:
    """The reference path: Lark's parser and tree, then the walk; every error comes from here."""
    from lark.exceptions import UnexpectedInput

    try:
        tree = _lark().parse(source)
    except UnexpectedInput as err:
        raise syntax_errors(err, file, source, _lark()) from None
    try:
        items = _ToProgram(file).transform(tree)
    except (ArchError, _TooDeep) as err:
        # a tree too deep is reported first, wherever it is (E105 at the innermost statement
        # holding it), as it would be if the depth were checked before the walk
        check_depth(tree, file, source)
        if isinstance(err, _TooDeep):
            raise AssertionError("check_depth found no node deeper than MAX_TREE_DEPTH") from None
        raise err.with_sources({file: source}) from None
    return P.Program(file=file, source=source, items=tuple(items))




def _main(argv: list[str]) -> int:
    """``python -m archdsl.parser --write-tables``: remake grammar.tables from grammar.lark."""
    if argv != ["--write-tables"]:
        print("usage: python -m archdsl.parser --write-tables")
        return 2
    path = os.path.join(_PACKAGE, tables.FILE)
    made = tables_blob(grammar())  # made before the file is opened: a failure leaves it as it was
    with open(path, "wb") as f:
        f.write(made)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(_main(sys.argv[1:]))
