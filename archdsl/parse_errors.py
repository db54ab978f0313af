"""Syntax errors: what the parser expected, in words, and recovery after each mistake.

:func:`syntax_errors` turns Lark's first ``UnexpectedInput`` into compiler-style
diagnostics (E101-E104), then blanks the statement at fault and parses again, so that one
run reports every independent mistake of a file. :func:`check_nesting` and
:func:`check_depth` are the parser's bounds on nesting (E105), checked before and after
Lark's parse. The Lark parser is handed in by :mod:`archdsl.parser`, which owns it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from . import syntax as P
from .diagnostics import ArchError, Diagnostic

if TYPE_CHECKING:  # Lark is imported by the error path alone: check_nesting runs on every parse
    from lark import Lark, Token, Tree
    from lark.exceptions import UnexpectedInput

#: braces and parentheses nested beyond this are refused (Lark's LALR parser and the
#: recursive stages would otherwise be driven into deep recursion)
MAX_NESTING = 64
#: parse trees deeper than this are refused (the recursive walk that builds the program stops
#: there); 64 nested bodies make a tree about 260 deep
MAX_TREE_DEPTH = 300
#: after a syntax error the parse resumes at the next statement, up to this many errors...
MAX_SYNTAX_ERRORS = 30
#: ... and as long as the retries have read fewer than this many characters in all
RECOVERY_BUDGET = 300_000

#: words before a '{' that open a body of statements, not a merge's branches
_BODY_KEYWORDS = frozenset({"network", "block", "repeat", "if", "else", "aux"})

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


def _describe_terminal(name: str, lark: Lark) -> str:
    if name in _WORDS:
        return _WORDS[name]
    for t in lark.terminals:
        if t.name == name:
            pattern = t.pattern
            if pattern.type == "str":
                return f"'{pattern.value}'"
    return name.lower()


def _expected_words(expected, text: str, pos: int | None, lark: Lark) -> str | None:
    """What the parser would have accepted, in words: `an expression`, not six token names."""
    left = set(expected or ())
    if "VBAR" in left and (pos is None or _enclosing_keyword(text, pos) in _BODY_KEYWORDS | {None}):
        left.discard("VBAR")  # '|' only separates a merge's branches: do not offer it elsewhere
    if "_SEP" in left:  # where a statement may end, '{' could only open a merge's branches
        left.discard("LBRACE")
    words = []
    for needed, covered, phrase in _PHRASES:
        if needed <= left:
            words.append(phrase)
            left -= covered
    words += sorted(_describe_terminal(t, lark) for t in left)
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
    """The word before the innermost '{' still open at `pos` (`concat`, `repeat 3`, ...),
    its label left out (`b: concat {`)."""
    masked = _mask(text)
    depth = 0
    for i in range(min(pos, len(masked)) - 1, -1, -1):
        ch = masked[i]
        if ch == "}":
            depth += 1
        elif ch == "{":
            if depth == 0:
                line = masked[max(0, i - 200):i].split("\n")[-1]
                words = re.findall(r"[A-Za-z_]\w*", re.sub(r"^\s*\w+\s*:(?!=)", "", line))
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
    from lark.exceptions import UnexpectedCharacters, UnexpectedToken

    if isinstance(err, UnexpectedToken):
        return None if err.token.type == "$END" else err.token.start_pos
    if isinstance(err, UnexpectedCharacters):
        return err.pos_in_stream
    return None


def syntax_errors(first: UnexpectedInput, file: str, source: str, lark: Lark) -> ArchError:
    """Every syntax error of a file: after each, the statement holding it is blanked and the
    parse resumes, so that independent mistakes are reported together. A new error inside
    or before the blanked text may be a consequence of the blanking, so recovery stops there."""
    from lark.exceptions import UnexpectedInput

    diags = [_syntax_error(first, file, source, lark)]
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
            lark.parse(text)
            break
        except UnexpectedInput as e:
            err = e
        new_pos = _error_offset(err)
        if new_pos is not None and new_pos < end:
            break
        diags.append(_syntax_error(err, file, text, lark))
    return ArchError(diags, {file: source})


_LOOKALIKES = {"→": "->", "×": "x", "−": "-", "–": "-", "—": "-", "；": ";", "：": ":", "（": "(", "）": ")",
               "“": '"', "”": '"', "｛": "{", "｝": "}", "｜": "|", "＝": "="}


def _syntax_error(err: UnexpectedInput, file: str, source: str, lark: Lark) -> Diagnostic:
    from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

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
            expected=_expected_words(getattr(err, "expected", ()), source, len(source), lark),
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
            expected=_expected_words(err.allowed, source, err.pos_in_stream, lark),
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
        expected=_expected_words(expected, source, pos, lark),
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


#: the characters that open or close a level of nesting, wherever they are (comments included)
_BRACKETS = re.compile(r"[{}()]")


def check_nesting(source: str, file: str) -> None:
    """Refuse braces and parentheses nested deeper than MAX_NESTING (E105 at the first
    character too deep), before anything recursive sees the text. Only the brackets are
    visited (a character-by-character walk was 5% of a first compile on specs/resnet.arch)."""
    if source.count("{") + source.count("(") <= MAX_NESTING:  # too few to nest too deep
        return
    depth = 0
    for m in _BRACKETS.finditer(source):
        if m.group() in "{(":
            depth += 1
            if depth > MAX_NESTING:
                at = m.start()
                line = source.count("\n", 0, at) + 1
                col = at - source.rfind("\n", 0, at)  # 1-based: rfind is -1 on the first line
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
        elif depth:
            depth -= 1


def check_depth(tree: Tree, file: str, source: str) -> None:
    """Refuse a parse tree deeper than MAX_TREE_DEPTH (walked without recursion), blaming the
    innermost statement holding the deepest node: `- - - ... 1` or `1+1+...+1` would exhaust
    Python's stack in the recursive stages. Called when the walk stops at that depth."""
    from lark import Tree

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
    from lark import Token

    stack: list = [tree]
    while stack:
        node = stack.pop()
        if type(node) is Token:
            return node
        if node is not None:
            children = node.children
            stack.extend(reversed(children) if end == 0 else children)
    return None


_STATEMENTS = frozenset({"invocation", "let", "input", "scoped", "repeat", "if_stmt", "merge",
                         "aux", "expect", "labeled", "block", "network", "include"})


