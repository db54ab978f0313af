"""Text -> typed program (:mod:`archdsl.program`), with every source position kept.

The grammar (grammar.lark, shipped as package data) is compiled once per process and
cached on disk by Lark, so that `archdsl compile` pays for it only on the first run.
Following Lark's advice, the tree is built by a separate Transformer with
``v_args(meta=True)``; user mistakes found here are raised as :class:`ArchError`, never
as Lark exceptions.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import program as P
from .diagnostics import ArchError, Diagnostic

#: a spec larger than this is refused before parsing (bounded memory and time)
MAX_SOURCE_BYTES = 4_000_000
#: nesting of braces and parentheses beyond this is refused (Lark's LALR parser and our
#: recursive stages would otherwise be driven into deep recursion)
MAX_NESTING = 64


@functools.lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = resources.files("archdsl").joinpath("grammar.lark").read_text()
    cache_dir = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "archdsl"
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        import hashlib
        import lark

        key = hashlib.sha256((grammar + lark.__version__).encode()).hexdigest()[:16]
        cache: str | bool = str(cache_dir / f"grammar-{key}.lark-cache")
    except OSError:  # read-only home: Lark's own temp-dir cache still helps
        cache = True
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True, cache=cache)


def _span(file: str, meta) -> P.Span:
    return P.Span(file=file, line=meta.line, column=meta.column, end_line=meta.end_line, end_column=meta.end_column)


def _tok_span(file: str, tok: Token) -> P.Span:
    return P.Span(
        file=file,
        line=tok.line,
        column=tok.column,
        end_line=tok.end_line or tok.line,
        end_column=tok.end_column or tok.column + len(tok),
    )


def _number(text: str) -> int | float:
    text = text.replace("_", "")
    if re.fullmatch(r"\d+", text):
        return int(text)
    return float(text)


_SHORT = {"p": "pad", "g": "groups", "d": "dilation"}


@v_args(meta=True)
class _ToProgram(Transformer):
    """Lark tree -> pydantic program. Each method names the grammar rule it builds."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _s(self, meta) -> P.Span:
        return _span(self.file, meta)

    def _t(self, tok: Token) -> P.Span:
        return _tok_span(self.file, tok)

    # -- top level
    def start(self, meta, items):
        return [i for i in items if i is not None]

    def include(self, meta, c):
        return P.Include(span=self._s(meta), path=c[0][1:-1])

    def let(self, meta, c):
        return P.Let(span=self._s(meta), name=str(c[0]), value=c[1])

    def block(self, meta, c):
        return P.Block(span=self._s(meta), name=str(c[0]), params=tuple(c[1] or ()), body=c[2])

    def network(self, meta, c):
        return P.Network(span=self._s(meta), name=str(c[0]), params=tuple(c[1] or ()), body=c[2])

    def params(self, meta, c):
        return [p for p in c if p is not None]

    def param(self, meta, c):
        return P.Param(span=self._t(c[0]), name=str(c[0]), default=c[1])

    def body(self, meta, c):
        return P.Body(span=self._s(meta), stmts=tuple(s for s in c if s is not None))

    def branch(self, meta, c):
        return P.Body(span=self._s(meta), stmts=tuple(s for s in c if s is not None))

    def branches(self, meta, c):
        return tuple(c)

    # -- statements
    def labeled(self, meta, c):
        name, stmt = c
        return stmt.model_copy(update={"label": str(name), "label_span": self._t(name), "span": self._s(meta)})

    def input(self, meta, c):
        return P.Input(span=self._s(meta), dims=c[0])

    def scoped(self, meta, c):
        return P.Scoped(span=self._s(meta), setting=str(c[0]), value=c[1])

    def repeat(self, meta, c):
        return P.Repeat(span=self._s(meta), count=c[0], var=str(c[1]) if c[1] is not None else None, body=c[2])

    def if_stmt(self, meta, c):
        orelse = c[2]
        if isinstance(orelse, P.If):  # `else if` chains nest as a one-statement else body
            orelse = P.Body(span=orelse.span, stmts=(orelse,))
        return P.If(span=self._s(meta), test=c[0], then=c[1], orelse=orelse)

    def concat(self, meta, c):
        return P.Concat(span=self._s(meta), branches=c[0])

    def add(self, meta, c):
        return P.Add(span=self._s(meta), branches=c[0])

    def residual(self, meta, c):
        return P.Residual(span=self._s(meta), options=tuple(c[:-1]), body=c[-1])

    def aux(self, meta, c):
        return P.Aux(span=self._s(meta), name=str(c[0]), body=c[1])

    def expect(self, meta, c):
        what, value, tol, _pct = c
        return P.Expect(
            span=self._s(meta), what=str(what), value=value, tolerance=_number(tol) if tol is not None else None
        )

    def dims_value(self, meta, c):
        return self._dims_token(c[0])

    def invocation(self, meta, c):
        name, call, *rest = c
        arrow = rest.pop() if rest else None
        out, post = (arrow if arrow is not None else (None, ()))
        return P.Invocation(
            span=self._s(meta),
            name=str(name),
            name_span=self._t(name),
            call=tuple(call) if call is not None else None,
            args=tuple(self._arg(a) for a in rest),
            out=out,
            post=tuple(self._arg(a) for a in post),
        )

    def arrow(self, meta, c):
        return (c[0], tuple(c[1:]))

    def callparen(self, meta, c):
        return [x for x in c if x is not None]

    def kwcallarg(self, meta, c):
        return P.CallKw(span=self._s(meta), key=str(c[0]), value=c[1])

    # -- layer arguments
    def _arg(self, a):
        if isinstance(a, Token):  # SHORTOPT: p2, p0,3, g2, d2
            values = tuple(
                P.Num(span=self._t(a), value=int(v)) for v in a[1:].split(",")
            )
            return P.KwArg(span=self._t(a), key=_SHORT[a[0]], values=values)
        return a

    def window(self, meta, c):
        dims, _slash, stride = c
        return P.Window(span=self._s(meta), dims=dims, stride=stride)

    def listarg(self, meta, c):
        return P.ListArg(span=self._s(meta), items=tuple(c))

    def kwarg(self, meta, c):
        return P.KwArg(span=self._s(meta), key=str(c[0]), values=tuple(c[1:]))

    def dims(self, meta, c):
        if len(c) == 1 and isinstance(c[0], Token) and c[0].type == "DIMS":
            return self._dims_token(c[0])
        return tuple(c)

    def _dims_token(self, tok: Token) -> tuple:
        # `3x224x224` is one token; give each number its own column so errors point at it
        out, col = [], tok.column
        for part in str(tok).split("x"):
            out.append(
                P.Num(
                    span=P.Span(file=self.file, line=tok.line, column=col, end_line=tok.line, end_column=col + len(part)),
                    value=int(part),
                )
            )
            col += len(part) + 1
        return tuple(out)

    # -- expressions
    def number(self, meta, c):
        return P.Num(span=self._t(c[0]), value=_number(c[0]))

    def name(self, meta, c):
        return P.Name(span=self._t(c[0]), id=str(c[0]))

    def attr(self, meta, c):
        return P.Attr(span=self._s(meta), obj=str(c[0]), attr=str(c[1]))

    def neg(self, meta, c):
        operand = c[-1]
        if isinstance(operand, P.Num):
            return P.Num(span=self._s(meta), value=-operand.value)
        return P.Neg(span=self._s(meta), operand=operand)

    def binop(self, meta, c):
        return P.BinOp(span=self._s(meta), op=str(c[1]), left=c[0], right=c[2])

    compare = binop

    def pow(self, meta, c):
        return P.BinOp(span=self._s(meta), op="**", left=c[0], right=c[1])

    def and_(self, meta, c):
        return P.BinOp(span=self._s(meta), op="and", left=c[0], right=c[1])

    def or_(self, meta, c):
        return P.BinOp(span=self._s(meta), op="or", left=c[0], right=c[1])

    def not_(self, meta, c):
        return P.Not(span=self._s(meta), operand=c[0])

    def cond(self, meta, c):
        return P.Cond(span=self._s(meta), body=c[0], test=c[1], orelse=c[2])

    def func(self, meta, c):
        return P.Func(span=self._s(meta), name=str(c[0]), args=tuple(x for x in c[1:] if x is not None))

    def true(self, meta, c):
        return P.Bool(span=self._s(meta), value=True)

    def false(self, meta, c):
        return P.Bool(span=self._s(meta), value=False)


# ---------------------------------------------------------------- syntax errors

_WORDS = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "DIMS": "a size such as 3x3",
    "STRING": 'a quoted path such as "blocks.arch"',
    "_SEP": "the end of the statement (a newline or ';')",
    "SHORTOPT": "an option such as p1, g2 or d2",
    "SCOPED": "act, norm or bias",
    "$END": "the end of the file",
}


def _describe_terminal(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    for t in _lark().terminals:
        if t.name == name:
            pattern = t.pattern
            if pattern.type == "str":
                return f"'{pattern.value}'"
    return name.lower()


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    if tok.type == "_SEP":
        return "the end of the line" if "\n" in tok or tok.startswith("#") else "';'"
    return f"'{tok}'"


def _syntax_error(err: UnexpectedInput, file: str, source: str) -> ArchError:
    line = getattr(err, "line", 1) or 1
    column = getattr(err, "column", 1) or 1
    if isinstance(err, UnexpectedToken) and err.token.type == "_SEP":
        # point at the end of the previous line, where the statement was cut short
        line, column = err.token.line, err.token.column
    if isinstance(err, (UnexpectedEOF,)) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        lines = source.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        opened = _unclosed(source)
        if opened is not None:
            o_line, o_col = opened
            return ArchError(
                Diagnostic(
                    "E104",
                    "unclosed '{': the file ends inside a block",
                    P.Span(file=file, line=o_line, column=o_col, end_line=o_line, end_column=o_col + 1),
                    expected="'}'",
                    found="the end of the file",
                    hint="add the missing '}' to close this block",
                ),
                {file: source},
            )
        expected = sorted({_describe_terminal(t) for t in getattr(err, "expected", ()) or ()})
        return ArchError(
            Diagnostic(
                "E102",
                "unexpected end of file",
                P.Span(file=file, line=line, column=column, end_line=line, end_column=column + 1),
                expected=", ".join(expected) or None,
                found="the end of the file",
            ),
            {file: source},
        )
    if isinstance(err, UnexpectedCharacters):
        ch = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
        hint = None
        if ch in "[]":
            hint = "lists are written without brackets: `mlpconv 160,96`"
        return ArchError(
            Diagnostic(
                "E103",
                f"unexpected character {ch!r}",
                P.Span(file=file, line=line, column=column, end_line=line, end_column=column + 1),
                expected=", ".join(sorted({_describe_terminal(t) for t in err.allowed or ()})) or None,
                found=repr(ch),
                hint=hint,
            ),
            {file: source},
        )
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    expected = sorted({_describe_terminal(t) for t in err.expected})
    end_col = (tok.end_column or column + len(tok)) if tok.end_line == tok.line else column + 1
    hint = None
    if tok.type == "NAME" and any("end of the statement" in e for e in expected):
        hint = "separate statements with a newline or ';'"
    return ArchError(
        Diagnostic(
            "E101",
            f"unexpected {_describe_token(tok)}",
            P.Span(file=file, line=line, column=column, end_line=line, end_column=max(end_col, column + 1)),
            expected=", ".join(expected) or None,
            found=_describe_token(tok),
            hint=hint,
        ),
        {file: source},
    )


def _unclosed(source: str) -> tuple[int, int] | None:
    """Line and column of the innermost '{' left open at the end of `source`, if any."""
    stack: list[tuple[int, int]] = []
    for ln, text in enumerate(source.splitlines(), 1):
        text = text.split("#", 1)[0]
        for col, ch in enumerate(text, 1):
            if ch == "{":
                stack.append((ln, col))
            elif ch == "}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _check_nesting(source: str, file: str) -> None:
    depth = 0
    line, col = 1, 0
    for ch in source:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
        elif ch in "{(":
            depth += 1
            if depth > MAX_NESTING:
                raise ArchError(
                    Diagnostic(
                        "E105",
                        f"nesting deeper than {MAX_NESTING} levels",
                        P.Span(file=file, line=line, column=col, end_line=line, end_column=col + 1),
                        hint="braces and parentheses may nest at most "
                        f"{MAX_NESTING} deep; use blocks to structure the network",
                    ),
                    {file: source},
                )
        elif ch in "})":
            depth = max(depth - 1, 0)


def parse(source: str, file: str = "<string>") -> P.Program:
    """Parse spec text into a :class:`~archdsl.program.Program`.

    >>> prog = parse("network tiny { input 1x8x8; conv 3x3 -> 4 }")
    >>> [n.name for n in prog.networks]
    ['tiny']
    """
    if len(source) > MAX_SOURCE_BYTES:
        raise ArchError(
            Diagnostic(
                "E106",
                f"the spec is {len(source):,} characters long; the limit is {MAX_SOURCE_BYTES:,}",
                P.Span(file=file, line=1, column=1, end_line=1, end_column=2),
            )
        )
    _check_nesting(source, file)
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as err:
        raise _syntax_error(err, file, source) from None
    try:
        items = _ToProgram(file).transform(tree)
    except VisitError as err:  # unwrap, as Lark's docs advise
        if isinstance(err.orig_exc, ArchError):
            raise err.orig_exc.with_sources({file: source}) from None
        raise err.orig_exc from err
    return P.Program(file=file, source=source, items=tuple(items))


def read_source(path: str | os.PathLike) -> str:
    """Read a spec file as UTF-8; undecodable bytes become an E107 error at their position."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise ArchError(
            Diagnostic(
                "E107",
                f"the file is not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})",
                P.Span(file=str(path), line=line, column=col, end_line=line, end_column=col + 1),
                hint="save the spec as UTF-8",
            ),
            {str(path): data.decode("utf-8", "replace")},
        ) from None
