"""The lines a formatted spec is made of (:mod:`archdsl.fmt` prints the parse tree into them):
the separators between statements read back from the source (comments, line breaks, `;`),
a writer of indented lines that keeps each comment on the line it was written on, and the
rendering that aligns the trailing comments of consecutive lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from lark import Token

INDENT = "  "
#: the width a comment keeps from the code before it
COMMENT_GAP = 2

_SEP_PART = re.compile(r"(#[^\n]*)|(\r?\n)|(;)|([\t \f]+)")


@dataclass
class _Line:
    indent: int = 0
    code: str = ""
    comment: str | None = None
    blank: bool = False
    #: a comment line that continues the trailing comment above it (written at its column)
    cont: bool = False


@dataclass
class _Sep:
    """A separator token read apart: the comment ending the line it starts on, then the
    lines in between (None for a blank one, else a comment and its column), and whether
    it breaks the line at all."""
    trailing: str | None = None
    trailing_col: int = 0
    middle: list = field(default_factory=list)
    newline: bool = False

    @property
    def breaks(self) -> bool:
        return self.newline or self.trailing is not None


def _read_sep(tok: Token) -> _Sep:
    out = _Sep()
    col, line_has = tok.column, False  # line_has: the current middle line holds a comment
    for m in _SEP_PART.finditer(str(tok)):
        comment, nl = m.group(1), m.group(2)
        if comment is not None:
            text = comment.rstrip()
            if not out.newline:
                out.trailing, out.trailing_col = text, col
            else:
                out.middle.append((text, col))
                line_has = True
        elif nl is not None:
            if out.newline and not line_has:
                out.middle.append(None)
            out.newline, line_has, col = True, False, 1
            continue
        col += len(m.group(0))
    return out


class _Writer:
    def __init__(self):
        self.lines: list[_Line] = [_Line()]

    @property
    def cur(self) -> _Line:
        return self.lines[-1]

    def text(self, s: str) -> None:
        self.cur.code += s

    def newline(self, indent: int) -> None:
        if self.cur.code or self.cur.comment is not None or self.cur.blank:
            self.lines.append(_Line(indent))
        else:
            self.cur.indent = indent

    def blank(self) -> None:
        """A blank line before what comes next (never two, never after an opening brace)."""
        empty = not self.cur.code and self.cur.comment is None and not self.cur.blank
        last = self.cur if not empty else (self.lines[-2] if len(self.lines) > 1 else None)
        if last is None or last.blank or last.code.endswith("{"):
            return
        if empty:
            self.cur.blank = True
        else:
            self.lines.append(_Line(blank=True))

    def comment_line(self, indent: int, text: str, cont: bool = False) -> None:
        self.newline(indent)
        self.cur.comment, self.cur.cont = text, cont
        self.lines.append(_Line(indent))

    def trailing(self, text: str) -> None:
        self.cur.comment = text

    def drop_trailing_blanks(self) -> None:
        while len(self.lines) > 1 and (self.cur.blank or (not self.cur.code and self.cur.comment is None)):
            self.lines.pop()


def _render(lines: list[_Line]) -> str:
    """The lines as text, the trailing comments of consecutive lines aligned."""
    out: list[str] = []
    i = 0
    widths = [len((INDENT * ln.indent + ln.code).rstrip()) for ln in lines]
    while i < len(lines):
        ln = lines[i]
        if ln.code and ln.comment is not None:
            j = i + 1
            while j < len(lines) and lines[j].comment is not None and (lines[j].code or lines[j].cont):
                j += 1
            col = max(widths[k] for k in range(i, j) if lines[k].code) + COMMENT_GAP
            for k in range(i, j):
                if lines[k].code:
                    code = (INDENT * lines[k].indent + lines[k].code).rstrip()
                    out.append(code + " " * (col - len(code)) + lines[k].comment)
                else:
                    out.append(" " * col + lines[k].comment)
            i = j
            continue
        if ln.blank:
            out.append("")
        elif ln.code or ln.comment is not None:
            text = INDENT * ln.indent + ln.code
            if ln.comment is not None:
                text = (text.rstrip() + " " * COMMENT_GAP if ln.code else text) + ln.comment
            out.append(text)
        i += 1
    out = [line.rstrip() for line in out]
    while out and out[-1] == "":
        out.pop()
    while out and out[0] == "":
        out.pop(0)
    return "\n".join(out) + "\n" if out else ""
