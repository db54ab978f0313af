"""Text -> typed program (:mod:`archdsl.program`), with every source position kept.

The grammar (grammar.lark, shipped as package data) is compiled once per process and
cached on disk by Lark, so that `archdsl compile` pays for it only on the first run.
Lark builds a parse tree that keeps every token (``keep_all_tokens``), and one bottom-up
pass (:class:`_ToProgram`) turns it into the typed program, computing each node's span
from its first and last token. That is the span Lark's ``propagate_positions`` gives
(keywords and brackets included), without the bookkeeping it does on every reduction:
with it, positions took a fifth of the parse of a long spec. User mistakes found here
are raised as :class:`ArchError`, never as Lark exceptions.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources
from pathlib import Path

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import cache as _cache
from . import program as P
from .diagnostics import ArchError, Diagnostic

#: a spec larger than this is refused before parsing: parsing costs ~20 us a character, so
#: this bounds it to a few seconds (the largest spec in specs/ is under 10,000 characters)
MAX_SOURCE_BYTES = 256_000
#: nesting of braces and parentheses beyond this is refused (Lark's LALR parser and our
#: recursive stages would otherwise be driven into deep recursion)
MAX_NESTING = 64
#: parse trees deeper than this are refused (the recursive walk that builds the program stops
#: there); 64 nested bodies make a tree about 260 deep
MAX_TREE_DEPTH = 300
#: a number literal beyond this is refused where it stands (graph.MAX_VALUE bounds computed values)
MAX_LITERAL = 10**15
#: after a syntax error the parse resumes at the next statement, up to this many errors...
MAX_SYNTAX_ERRORS = 30
#: ... and as long as the retries have read fewer than this many characters in all
RECOVERY_BUDGET = 300_000


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
    return Lark(grammar, parser="lalr", keep_all_tokens=True, maybe_placeholders=False, cache=cache)


@functools.lru_cache(maxsize=1)
def _filtered() -> frozenset[str]:
    """The terminals a rule's value leaves out, as Lark's tree builder does without
    `keep_all_tokens`: those written as literals in the rules (keywords and punctuation:
    `"network"`, `"{"`), which Lark names itself, and those whose name starts with an
    underscore (`_SEP`). The grammar declares every other terminal by name. (A test checks
    this set against Lark's own filtering.)"""
    grammar = resources.files("archdsl").joinpath("grammar.lark").read_text()
    declared = set(re.findall(r"^([A-Z_][A-Z0-9_]*)(?:\.\d+)?\s*:", grammar, re.M))
    return frozenset(t.name for t in _lark().terminals if t.name.startswith("_") or t.name not in declared)


def _span(file: str, ext) -> P.Span:
    """The span from the start of `ext[0]` to the end of `ext[1]` (tokens, or Lark metas)."""
    first, last = ext
    return P.Span(file=file, line=first.line, column=first.column, end_line=last.end_line,
                  end_column=last.end_column)


def _tok_span(file: str, tok: Token) -> P.Span:
    return P.Span(
        file=file,
        line=tok.line,
        column=tok.column,
        end_line=tok.end_line or tok.line,
        end_column=tok.end_column or tok.column + len(tok),
    )


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


class _TooDeep(Exception):
    """The tree is deeper than MAX_TREE_DEPTH: _check_depth says where."""


class _ToProgram:
    """Lark tree -> pydantic program. Each method names the grammar rule it builds and takes
    `ext`, the rule's first and last token (its span: :meth:`_s`), and the rule's values:
    its subtrees' values and its tokens, keywords and punctuation left out. An optional
    part that is absent gives no value (no placeholders), so a method tells its optional
    parts apart by their number or type, as its comment says."""

    def __init__(self, file: str):
        self.file = file
        self._rules: dict = {}

    def transform(self, tree: Tree):
        return self._walk(tree, 1)[0]

    def _walk(self, tree: Tree, depth: int) -> tuple:
        """(value, first token, last token) of `tree`, bottom-up. Recursive, so a tree deeper
        than MAX_TREE_DEPTH stops it (_TooDeep) before Python's stack would."""
        if depth > MAX_TREE_DEPTH:
            raise _TooDeep
        dropped = _filtered()
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
                v, f, lt = self._walk(c, depth + 1)
                if f is not None:
                    if first is None:
                        first = f
                    last = lt
                values.append(v)
        rule = self._rules.get(tree.data)
        if rule is None:
            rule = self._rules[tree.data] = getattr(self, str(tree.data))
        return rule((first, last), values), first, last

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
        return tuple(c)

    # -- statements
    def labeled(self, ext, c):
        name, stmt = c
        return stmt.model_copy(update={"label": str(name), "label_span": self._t(name), "span": self._s(ext)})

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

    def concat(self, ext, c):
        return P.Concat(span=self._s(ext), branches=c[0])

    def add(self, ext, c):
        return P.Add(span=self._s(ext), branches=c[0])

    def residual(self, ext, c):
        return P.Residual(span=self._s(ext), options=tuple(c[:-1]), body=c[-1])

    def aux(self, ext, c):
        return P.Aux(span=self._s(ext), name=str(c[0]), body=c[1])

    def expect(self, ext, c):  # NAME value [number PERCENT]
        what, value = c[0], c[1]
        tol = c[2] if len(c) > 2 else None
        tolerance = _number(tol, self._t(tol)) if tol is not None else None
        return P.Expect(span=self._s(ext), what=str(what), value=value, tolerance=tolerance)

    def dims_value(self, ext, c):
        return self._dims_token(c[0])

    def invocation(self, ext, c):  # NAME [callparen] arg* [arrow]: callparen is a list, arrow a tuple
        name, *rest = c
        call = rest.pop(0) if rest and type(rest[0]) is list else None
        out, post = rest.pop() if rest and type(rest[-1]) is tuple else (None, ())
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
        if isinstance(a, Token):  # SHORTOPT: p2, p0,3, g2, d2
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
        if len(c) == 1 and isinstance(c[0], Token) and c[0].type == "DIMS":
            return self._dims_token(c[0])
        return tuple(c)

    def _dims_token(self, tok: Token) -> tuple:
        # `3x224x224` is one token; give each number its own column so errors point at it
        out, col = [], tok.column
        for part in str(tok).split("x"):
            span = P.Span(file=self.file, line=tok.line, column=col, end_line=tok.line, end_column=col + len(part))
            out.append(P.Num(span=span, value=_number(part, span)))
            col += len(part) + 1
        return tuple(out)

    # -- expressions
    def number(self, ext, c):
        return P.Num(span=self._t(c[0]), value=_number(c[0], self._t(c[0])))

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

#: sets of terminals that read better as one phrase: (terminals that must all be expected,
#: terminals the phrase stands for, the phrase)
_PHRASES = (
    ({"DIMS", "SHORTOPT", "NAME"}, {"DIMS", "SHORTOPT", "NAME", "INT", "FLOAT", "MINUS"},
     "a layer argument (such as 3x3, 3/2, p1, g2, ceil or key=value)"),
    ({"INT", "NAME", "LPAR"}, {"INT", "FLOAT", "NAME", "LPAR", "MINUS", "PLUS", "NOT", "TRUE", "FALSE"},
     "an expression (a number, a name or '(')"),
    ({"DIMS", "INT"}, {"DIMS", "INT", "FLOAT", "NAME", "MINUS"}, "a size such as 2, 3x3 or 3x224x224"),
    ({"NAME", "SCOPED"}, {"NAME", "SCOPED"}, "a statement"),
    ({"NETWORK", "BLOCK"}, {"NETWORK", "BLOCK", "LET", "INCLUDE"}, "'network', 'block', 'let' or 'include'"),
    ({"_SEP"}, {"_SEP"}, _WORDS["_SEP"]),
)


def _describe_terminal(name: str) -> str:
    if name in _WORDS:
        return _WORDS[name]
    for t in _lark().terminals:
        if t.name == name:
            pattern = t.pattern
            if pattern.type == "str":
                return f"'{pattern.value}'"
    return name.lower()


def _expected_words(expected, text: str, pos: int | None) -> str | None:
    """What the parser would have accepted, in words: `an expression`, not six token names."""
    left = set(expected or ())
    if "VBAR" in left and (pos is None or _enclosing_keyword(text, pos) not in ("concat", "add")):
        left.discard("VBAR")  # '|' only separates branches: do not offer it elsewhere
    words = []
    for needed, covered, phrase in _PHRASES:
        if needed <= left:
            words.append(phrase)
            left -= covered
    words += sorted(_describe_terminal(t) for t in left)
    if not words:
        return None
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _describe_token(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    if tok.type == "_SEP":
        return "the end of the line" if "\n" in tok or tok.startswith("#") else "';'"
    text = str(tok)
    return f"'{text}'" if len(text) <= 40 else f"'{text[:37]}...'"


def _mask(source: str) -> str:
    """`source` with comments and quoted strings blanked: braces and separators in them
    must not count when statements and bodies are delimited."""
    return re.sub(r'#[^\n]*|"[^"\n]*"', lambda m: " " * len(m.group()), source)


def _depth_at(masked: str, pos: int) -> int:
    depth = 0
    for ch in masked[:pos]:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
    return depth


def _enclosing_keyword(text: str, pos: int) -> str | None:
    """The word before the innermost '{' still open at `pos` (`concat`, `repeat 3`, ...)."""
    masked = _mask(text)
    depth = 0
    for i in range(min(pos, len(masked)) - 1, -1, -1):
        ch = masked[i]
        if ch == "}":
            depth += 1
        elif ch == "{":
            if depth == 0:
                words = re.findall(r"[A-Za-z_]\w*", masked[max(0, i - 200):i].split("\n")[-1])
                return words[0] if words else None
            depth -= 1
    return None


def _statement_region(masked: str, pos: int) -> tuple[int, int]:
    """The extent of the statement holding offset `pos`: back to the previous separator
    (newline, ';', '{' or '|'), forward to the next one, bodies included."""
    if masked[pos:pos + 1] == "}" and _depth_at(masked, pos) == 0:
        return pos, pos + 1  # a '}' that closes nothing
    start = pos
    while start > 0:
        ch = masked[start - 1]
        if ch in "\n;{|":
            break
        if ch == "}":  # a body within the statement (`concat { ... } )`): step over it
            depth, j = 0, start - 1
            while j >= 0:
                if masked[j] == "}":
                    depth += 1
                elif masked[j] == "{":
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            if j < 0:
                break
            start = j
            continue
        start -= 1
    end, depth = pos, 0
    while end < len(masked):
        ch = masked[end]
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and ch in "\n;|":
            break
        end += 1
    if end == pos and masked[pos:pos + 1] in ("|", ";"):
        end = pos + 1  # the offending token is itself a separator (`a || b`): drop it
    elif not masked[start:end].strip() and start > 0 and masked[start - 1] in "|;":
        start -= 1  # nothing between two separators (`concat { a | }`): drop the first
    return start, end


def _item_start(masked: str, pos: int) -> int:
    """Where the top-level item (network, block, let, include) holding `pos` begins."""
    depth, start = 0, 0
    for i, ch in enumerate(masked[:pos]):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
        elif depth == 0 and ch in "\n;":
            start = i + 1
    return start


def _blank(text: str, start: int, end: int) -> str:
    """Replace text[start:end] by spaces, keeping line breaks: positions stay valid."""
    return text[:start] + re.sub(r"[^\r\n]", " ", text[start:end]) + text[end:]


def _error_offset(err: UnexpectedInput) -> int | None:
    """Offset of the offending text, or None when the error is at the end of the file."""
    if isinstance(err, UnexpectedToken):
        return None if err.token.type == "$END" else err.token.start_pos
    if isinstance(err, UnexpectedCharacters):
        return err.pos_in_stream
    return None


def _syntax_errors(first: UnexpectedInput, file: str, source: str) -> ArchError:
    """Every syntax error of a file: after each, the statement holding it is blanked and the
    parse resumes, so that independent mistakes are reported together. A new error inside
    or before the blanked text may be a consequence of the blanking, so recovery stops there."""
    diags = [_syntax_error(first, file, source)]
    text, masked, err = source, _mask(source), first
    budget = RECOVERY_BUDGET
    while len(diags) < MAX_SYNTAX_ERRORS:
        pos = _error_offset(err)
        if pos is None:
            break
        start, end = _statement_region(masked, pos)
        if not text[start:end].strip():
            break
        # items before the failing one parsed: blank them too, so that each retry costs only
        # the rest of the file
        item = _item_start(masked, start)
        text, masked = _blank(_blank(text, 0, item), start, end), _blank(_blank(masked, 0, item), start, end)
        budget -= len(text) - item
        if budget < 0:
            break
        try:
            _lark().parse(text)
            break
        except UnexpectedInput as e:
            err = e
        new_pos = _error_offset(err)
        if new_pos is not None and new_pos < end:
            break
        diags.append(_syntax_error(err, file, text))
    return ArchError(diags, {file: source})


_LOOKALIKES = {"→": "->", "×": "x", "−": "-", "–": "-", "—": "-", "；": ";", "：": ":", "（": "(", "）": ")",
               "“": '"', "”": '"', "｛": "{", "｝": "}", "｜": "|", "＝": "="}


def _syntax_error(err: UnexpectedInput, file: str, source: str) -> Diagnostic:
    line = getattr(err, "line", 1) or 1
    column = getattr(err, "column", 1) or 1
    if isinstance(err, UnexpectedToken) and err.token.type == "_SEP":
        # point at the end of the previous line, where the statement was cut short
        line, column = err.token.line, err.token.column
    if isinstance(err, (UnexpectedEOF,)) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        lines = source.split("\n")  # the end: just after the last line that holds anything
        line = max((i for i, text in enumerate(lines, 1) if text.strip()), default=1)
        column = len(lines[line - 1]) + 1
        opened = _unclosed(source)
        if opened is not None:
            o_line, o_col = opened
            return Diagnostic(
                "E104",
                "unclosed '{': the file ends inside this body",
                P.Span(file=file, line=o_line, column=o_col, end_line=o_line, end_column=o_col + 1),
                expected="'}'",
                found="the end of the file",
                hint="add the missing '}' to close this body",
            )
        return Diagnostic(
            "E102",
            "unexpected end of file: the last statement is incomplete",
            P.Span(file=file, line=line, column=column, end_line=line, end_column=column + 1),
            expected=_expected_words(getattr(err, "expected", ()), source, len(source)),
            found="the end of the file",
            hint=_hint_after_arrow(source, len(source)),
        )
    if isinstance(err, UnexpectedCharacters):
        ch = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
        hint = None
        if ch in "[]":
            hint = "lists are written without brackets: `mlpconv 160,96`"
        elif ch == "'":
            hint = 'paths are quoted with double quotes: include "blocks.arch"'
        elif ch in _LOOKALIKES:  # typographic characters, as copied from a paper's PDF
            hint = f"write {_LOOKALIKES[ch]!r} instead"
        return Diagnostic(
            "E103",
            f"unexpected character {ch!r}",
            P.Span(file=file, line=line, column=column, end_line=line, end_column=column + 1),
            expected=_expected_words(err.allowed, source, err.pos_in_stream),
            found=repr(ch),
            hint=hint,
        )
    assert isinstance(err, UnexpectedToken)
    tok = err.token
    expected = set(err.expected)
    one_line = tok.end_line == tok.line and tok.type != "_SEP"  # a separator: underline its first character
    end_col = (tok.end_column or column + len(tok)) if one_line else column + 1
    found = _describe_token(tok)
    message = f"unexpected {found.removeprefix('the end of the ').replace('line', 'end of line')}"
    hint = None
    pos = tok.start_pos
    before = _mask(source[:pos]).rstrip()
    if tok.type == "RBRACE" and _depth_at(_mask(source), pos) == 0:
        message = "unexpected '}': it closes nothing"
        hint = "remove it, or look above for a missing '{'"
    elif {"NETWORK", "BLOCK"} <= expected and tok.type == "NAME":
        hint = "a file holds `network`, `block`, `let` and `include`; layers go inside `network NAME { ... }`"
    elif tok.type == "LBRACE" and expected == {"NAME"}:
        hint = "give it a name: `network NAME { ... }`, `block NAME() { ... }`, `aux NAME { ... }`"
    elif tok.type == "LBRACE" and expected == {"LPAR"}:
        hint = "a block lists its parameters in parentheses, even when it has none: `block NAME() { ... }`"
    elif tok.type == "LBRACE" and before.split()[-1:] == ["repeat"]:
        hint = "repeat needs a count: `repeat 3 { ... }`"
    elif before.endswith("->"):
        hint = _hint_after_arrow(source, pos)
    elif tok.type == "EQUAL" and "COLON" in expected:
        hint = "constants are declared with `let NAME = value`"
    elif tok.type == "NAME" and "_SEP" in expected:
        hint = "separate statements with a newline or ';'"
    return Diagnostic(
        "E101",
        message,
        P.Span(file=file, line=line, column=column, end_line=line, end_column=max(end_col, column + 1)),
        expected=_expected_words(expected, source, pos),
        found=found,
        hint=hint,
    )


def _hint_after_arrow(source: str, pos: int) -> str | None:
    if _mask(source[:pos]).rstrip().endswith("->"):
        return "`->` is followed by the number of output channels, e.g. `-> 64`"
    return None


def _unclosed(source: str) -> tuple[int, int] | None:
    """Line and column of the innermost '{' left open at the end of `source`, if any."""
    stack: list[tuple[int, int]] = []
    for ln, text in enumerate(_mask(source).split("\n"), 1):
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


def _check_depth(tree: Tree, file: str, source: str) -> None:
    """Refuse a parse tree deeper than MAX_TREE_DEPTH (walked without recursion), blaming the
    innermost statement holding the deepest node: `- - - ... 1` or `1+1+...+1` would exhaust
    Python's stack in the recursive stages. Called when the walk stops at that depth."""
    stack = [(tree, 1, tree)]
    while stack:
        node, depth, stmt = stack.pop()
        if depth > MAX_TREE_DEPTH:  # blame the innermost statement holding it
            first, last = _edge_token(stmt, 0), _edge_token(stmt, -1)
            line, col = (first.line, first.column) if first is not None else (1, 1)
            end = last.end_column if last is not None and last.end_line == line else col + 1
            raise ArchError(Diagnostic(
                "E105", f"this statement nests more than {MAX_TREE_DEPTH} levels deep",
                P.Span(file=file, line=line, column=col, end_line=line, end_column=end),
                hint="split long expressions with `let`, deep structures into blocks"), {file: source})
        if node.data in _STATEMENTS:
            stmt = node
        stack.extend((c, depth + 1, stmt) for c in node.children if isinstance(c, Tree))


def _edge_token(tree: Tree, end: int) -> Token | None:
    """The first (end=0) or last (end=-1) token of `tree`, walked without recursion."""
    stack: list = [tree]
    while stack:
        node = stack.pop()
        if type(node) is Token:
            return node
        if node is not None:
            children = node.children
            stack.extend(reversed(children) if end == 0 else children)
    return None


_STATEMENTS = frozenset({"invocation", "let", "input", "scoped", "repeat", "if_stmt", "concat", "add", "residual",
                         "aux", "expect", "labeled", "block", "network", "include"})


def parse(source: str, file: str = "<string>") -> P.Program:
    """Parse spec text into a :class:`~archdsl.program.Program`.

    >>> prog = parse("network tiny { input 1x8x8; conv 3x3 -> 4 }")
    >>> [n.name for n in prog.networks]
    ['tiny']
    """
    cached = _cache.lookup(source, file)  # a parse depends only on the text, the name and this code
    if cached is not None:
        return cached
    if len(source) > MAX_SOURCE_BYTES:
        raise ArchError(
            Diagnostic(
                "E106",
                f"the spec is {len(source):,} characters long; the limit is {MAX_SOURCE_BYTES:,}",
                P.Span(file=file, line=1, column=1, end_line=1, end_column=2),
                hint="split it into files joined with `include`",
            )
        )
    _check_nesting(source, file)
    with _cache.collector_paused():
        program = _parse(source, file)
    _cache.store(source, file, program)
    return program


def _parse(source: str, file: str) -> P.Program:
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as err:
        raise _syntax_errors(err, file, source) from None
    try:
        items = _ToProgram(file).transform(tree)
    except (ArchError, _TooDeep) as err:
        # a tree too deep is reported first, wherever it is (E105 at the innermost statement
        # holding it), as it would be if the depth were checked before the walk
        _check_depth(tree, file, source)
        if isinstance(err, _TooDeep):
            raise AssertionError("_check_depth found no node deeper than MAX_TREE_DEPTH") from None
        raise err.with_sources({file: source}) from None
    return P.Program(file=file, source=source, items=tuple(items))


def read_source(path: str | os.PathLike) -> str:
    """Read a spec file as UTF-8; undecodable bytes become an E107 error at their position."""
    try:
        with open(path, "rb") as f:
            data = f.read(4 * MAX_SOURCE_BYTES + 1)  # UTF-8 takes at most 4 bytes a character
    except OSError as err:
        raise ArchError(Diagnostic("E602", f"cannot read {path}: {err.strerror or err}")) from None
    if len(data) > 4 * MAX_SOURCE_BYTES:  # refused before the whole file is read
        head = data[:200].decode("utf-8", "replace").split("\n")[0]
        raise ArchError(Diagnostic(
            "E106", f"{path} is larger than {4 * MAX_SOURCE_BYTES:,} bytes; "
                    f"the limit is {MAX_SOURCE_BYTES:,} characters",
            P.Span(file=str(path), line=1, column=1, end_line=1, end_column=2),
            hint="split it into files joined with `include`"), {str(path): head})
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
