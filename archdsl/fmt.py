"""The formatter: one canonical layout for a spec, comments kept where they were written.

It prints Lark's parse tree of the spec (which keeps every token, the separators included)
rule by rule, so that every construct of the grammar has one layout:

* two spaces of indentation per level; a merge's branches start with `| ` at the merge's
  own indentation, their statements two further in;
* one space between a layer's arguments, none inside one (`3x3/2`, `pad=k//2`, `160,96`),
  spaces around the operators of expressions elsewhere (`-> c * 2`, `let n = a + 1`,
  `mid=c // 4` in a call), `, ` between call arguments and parameters, `name: ` for labels;
* the author's statement breaks are kept: statements written on one line with `;` stay so,
  a body written on one line (`{ conv 1x1 -> c }`) stays on one line; a body or a merge
  written over several lines (a line break or a comment anywhere inside it) gets its braces
  on lines of their own;
* at most one blank line in a row, none at the start or the end of a body, and one around
  every `block` and `network` at file level;
* comments stay on their line: a comment after code stays after it, two spaces on, and the
  trailing comments of consecutive lines are aligned one column after the longest line of
  the run; a comment on a line of its own is indented as the statements around it. A
  comment's text is never changed.

Nothing else changes: :func:`format_source` checks that the result has the same tokens in the
same order as the input (a trailing comma before `)` aside) and the same comments, so the
formatted spec is the same program (tests/test_fmt.py also compiles both and compares every
network). ``fmt(fmt(x)) == fmt(x)``.
"""

from __future__ import annotations

import re

from lark import Token, Tree

from .diagnostics import ArchError
from .fmt_layout import INDENT, _read_sep, _render, _Sep, _Writer
from .parser import _lark, parse
from .sources import read_source

_WORD_OPS = {"and", "or", "not", "if", "else"}


class _Printer:
    def __init__(self):
        self.w = _Writer()
        #: the column of the trailing comment on the line last written, for continuations
        self._last_trailing_col: int | None = None

    # -- separators
    def _trailing(self, sep: _Sep) -> None:
        if sep.trailing is not None:
            self.w.trailing(sep.trailing)
            self._last_trailing_col = sep.trailing_col

    def _middle(self, sep: _Sep, indent: int, blanks: bool = True, outer: int | None = None,
                outer_col: int = 0) -> None:
        """The lines between two statements: blank lines and comments on lines of their own.
        A comment written at or left of `outer_col` (the column of a following `|`) goes at
        `outer`."""
        follows = sep.trailing is not None
        for part in sep.middle:
            if part is None:
                follows = False
                if blanks:
                    self.w.blank()
                continue
            text, col = part
            cont = follows and col == self._last_trailing_col and col > 1
            where = outer if outer is not None and col <= outer_col else indent
            self.w.comment_line(where, text, cont=cont)
            follows = cont

    def _between(self, sep: _Sep | None, indent: int, force_blank: bool = False, outer=None, outer_col=0) -> None:
        """Separate two statements by `sep`: `; ` on one line, or a line break."""
        if sep is None or not sep.breaks:
            self.w.text("; ")
            return
        self._trailing(sep)
        if force_blank and None not in sep.middle:
            self.w.blank()
        self._middle(sep, indent, outer=outer, outer_col=outer_col)
        self.w.newline(indent)

    # -- file
    def file(self, tree: Tree) -> None:
        items, seps = _split(tree.children)
        if not items:
            for sep in seps:
                if sep is not None:
                    self._trailing(sep)
                    self._middle(sep, 0)
            return
        if seps[0] is not None:
            if seps[0].trailing is not None:
                self.w.comment_line(0, seps[0].trailing)
            self._middle(seps[0], 0)
            self.w.newline(0)
        for i, item in enumerate(items):
            if i:
                big = _is_big(items[i - 1]) or _is_big(item)
                self._between(seps[i], 0, force_blank=big)
            self.item(item, 0)
        end = seps[-1]
        if end is not None:
            self._trailing(end)
            self._middle(end, 0)

    def item(self, t, indent: int) -> None:
        kind = t.data
        if kind == "include":
            self.w.text(f"include {t.children[1]}")
        elif kind in ("block", "network"):
            c = t.children
            self.w.text(f"{c[0]} {c[1]}")
            params = [x for x in c if isinstance(x, Tree) and x.data == "params"]
            if any(isinstance(x, Token) and x == "(" for x in c):
                self.w.text("(" + (self._params(params[0]) if params else "") + ")")
            self.w.text(" ")
            self.body(c[-1], indent)
        else:
            self.stmt(t, indent)

    def _params(self, t: Tree) -> str:
        out = []
        for p in t.children:
            if isinstance(p, Tree):
                name = str(p.children[0])
                out.append(name if len(p.children) == 1 else f"{name}={self.expr(p.children[2])}")
        return ", ".join(out)

    # -- bodies
    def body(self, t: Tree, indent: int) -> None:
        """`{ stmts }`: on one line when written without a line break or a comment inside."""
        inner = t.children[1:-1]
        stmts, seps = _split(inner)
        if not _spans_lines(t):
            if not stmts:
                self.w.text("{}")
                return
            self.w.text("{ ")
            for i, s in enumerate(stmts):
                if i:
                    self.w.text("; ")
                self.stmt(s, indent)
            self.w.text(" }")
            return
        self.w.text("{")
        inner_indent = indent + 1
        first = seps[0]
        if first is not None:
            self._trailing(first)
            self._middle(first, inner_indent)
        for i, s in enumerate(stmts):
            if i:
                self._between(seps[i], inner_indent)
            else:
                self.w.newline(inner_indent)
            self.stmt(s, inner_indent)
        last = seps[-1] if stmts else None
        if last is not None:
            self._trailing(last)
            self._middle(last, inner_indent)
        self.w.drop_trailing_blanks()
        self.w.newline(indent)
        self.w.text("}")

    def branches(self, t: Tree, indent: int) -> None:
        """`{ A | B }`, or over lines: `{`, then each branch, `| ` first, then `}`."""
        kids = t.children[1:-1]
        # [sep?] branch ("|" [sep?] branch)*
        groups: list[tuple] = []  # (sep after `{` or `|`, the `|` token or None, branch tree)
        bar, sep = None, None
        for k in kids:
            if isinstance(k, Token) and k.type == "_SEP":
                sep = _read_sep(k)
            elif isinstance(k, Token):
                bar = k
            else:
                groups.append((sep, bar, k))
                bar, sep = None, None
        parts = [(g, _split(g[2].children)) for g in groups]
        if not _spans_lines(t):
            self.w.text("{ ")
            for j, (g, (stmts, _)) in enumerate(parts):
                if j:
                    self.w.text(" | ")
                for i, s in enumerate(stmts):
                    if i:
                        self.w.text("; ")
                    self.stmt(s, indent + 1)
            self.w.text(" }")
            return
        self.w.text("{")
        inner = indent + 1
        for j, ((lead, bar, _), (stmts, seps)) in enumerate(parts):
            if j:
                self.w.newline(indent)
                self.w.text("| ")
            if lead is not None:
                self._trailing(lead)
                self._middle(lead, inner, blanks=False)
                if lead.trailing is not None:  # a comment after `|` ends that line
                    self.w.newline(inner)
            if not j:
                self.w.newline(inner)
            for i, s in enumerate(stmts):
                if i:
                    self._between(seps[i], inner)
                self.stmt(s, inner)
            end = seps[len(stmts)] if len(seps) > len(stmts) else None
            if end is not None:
                nxt = parts[j + 1][0][1] if j + 1 < len(parts) else None
                self._trailing(end)
                self._middle(end, inner, blanks=False, outer=indent,
                             outer_col=nxt.column if nxt is not None else 1 + indent * len(INDENT))
        self.w.newline(indent)
        self.w.text("}")

    # -- statements
    def stmt(self, t, indent: int) -> None:
        kind = t.data
        c = t.children
        w = self.w
        if kind == "labeled":
            w.text(f"{c[0]}: ")
            self.stmt(c[2], indent)
        elif kind == "invocation":
            self.invocation(t, indent)
        elif kind == "let":
            w.text(f"let {c[1]} = {self.expr(c[3])}")
        elif kind == "input":
            w.text(f"input {self.dims(c[1])}")
        elif kind == "scoped":
            w.text(f"{c[0]} ")
            self.invocation(c[1], indent)
        elif kind == "repeat":
            w.text(f"repeat {self.expr(c[1])} ")
            if len(c) == 5:
                w.text(f"as {c[3]} ")
            self.body(c[-1], indent)
        elif kind == "if_stmt":
            w.text(f"if {self.expr(c[1])} ")
            self.body(c[2], indent)
            if len(c) == 5:
                w.text(" else ")
                if c[4].data == "if_stmt":
                    self.stmt(c[4], indent)
                else:
                    self.body(c[4], indent)
        elif kind == "aux":
            w.text(f"aux {c[1]} ")
            self.body(c[2], indent)
        elif kind == "expect":
            value = c[3]
            shown = str(value.children[0]) if isinstance(value, Tree) and value.data == "dims_value" else self.expr(value)
            w.text(f"expect {c[1]} = {shown}")
            if len(c) > 4:
                w.text(f" within {c[5]}{c[6]}")
        else:  # include, let, block, network where a statement stands: the grammar allows none
            self.item(t, indent)

    def invocation(self, t: Tree, indent: int) -> None:
        c = t.children
        self.w.text(str(c[0]))
        prev = c[0]
        for k in c[1:]:
            glued, prev = _glued(prev, k), k
            if isinstance(k, Token):  # SHORTOPT
                self.w.text(f" {k}")
            elif glued:  # `p3.5`: a name and a number the lexer split; a space would make `p3` an option
                self.w.text(self.arg(k))
            elif k.data == "callparen":
                args = [self.callarg(a) for a in k.children if isinstance(a, Tree)]
                self.w.text("(" + ", ".join(args) + ")")
            elif k.data == "arrow":
                self.w.text(" -> " + self.expr(k.children[1]))
                for a in k.children[2:]:
                    self.w.text(" " + self.arg(a))
            elif k.data == "branches":
                self.w.text(" ")
                self.branches(k, indent)
            else:
                self.w.text(" " + self.arg(k))

    def callarg(self, a) -> str:
        if isinstance(a, Tree) and a.data == "kwcallarg":
            return f"{a.children[0]}={self.expr(a.children[2])}"
        return self.expr(a)

    # -- layer arguments: no spaces inside one
    def arg(self, a) -> str:
        if isinstance(a, Token):
            return str(a)
        kind = a.data
        if kind == "window":
            return "".join(self.dims(k) if isinstance(k, Tree) else str(k) for k in a.children)
        if kind == "listarg":
            return ",".join(self.expr(k, compact=True) for k in a.children if isinstance(k, Tree))
        if kind == "kwarg":
            key, values = a.children[0], [k for k in a.children[2:] if isinstance(k, Tree)]
            return f"{key}=" + ",".join(self.expr(v, compact=True) for v in values)
        return self.expr(a, compact=True)

    def dims(self, t) -> str:
        if isinstance(t, Token):
            return str(t)
        if len(t.children) == 1 and isinstance(t.children[0], Token):
            return str(t.children[0])
        return " x ".join(self.expr(k, compact=True) for k in t.children if isinstance(k, Tree))

    # -- expressions
    def expr(self, t, compact: bool = False) -> str:
        if isinstance(t, Token):
            return str(t)
        kind, c = t.data, t.children
        if kind in ("number", "name", "true", "false"):
            return str(c[0])
        if kind == "attr":
            return f"{c[0]}.{c[2]}"
        if kind == "neg":
            return "-" + self.expr(c[1], compact)
        if kind == "unary":  # `+x`
            return "+" + self.expr(c[1], compact)
        if kind == "not_":
            return "not " + self.expr(c[1], compact)
        if kind == "atom":  # ( expr )
            return "(" + self.expr(c[1], compact) + ")"
        if kind == "func":  # its parentheses set its arguments apart: spaced even among layer arguments
            args = [self.expr(k) for k in c[1:] if isinstance(k, Tree)]
            return f"{c[0]}(" + ", ".join(args) + ")"
        out = []
        for k in c:  # an operator chain: binop, compare, pow, and_, or_, cond
            if isinstance(k, Token):
                op = str(k)
                out.append(f" {op} " if op in _WORD_OPS or not compact else op)
            else:
                out.append(self.expr(k, compact))
        return "".join(out)


def _edge(node, last: bool) -> Token:
    if isinstance(node, Token):
        return node
    tokens = list(node.scan_values(lambda v: isinstance(v, Token)))
    return tokens[-1] if last else tokens[0]


def _glued(prev, node) -> bool:
    """Whether layer argument `node` follows a name with no space between them in the source:
    then the two stay glued, since a space can make the lexer read the name otherwise."""
    if isinstance(node, Token) or node.data in ("callparen", "arrow", "branches"):
        return False
    before = _edge(prev, last=True)
    return before.type == "NAME" and before.end_pos == _edge(node, last=False).start_pos


def _split(children) -> tuple[list, list]:
    """Statements (trees) and the separators around them: seps[i] is the separator before
    statement i (None if none), seps[len(stmts)] the one after the last."""
    stmts, seps, pending = [], [], None
    for k in children:
        if isinstance(k, Token):
            if k.type == "_SEP":
                pending = _read_sep(k)
            continue
        seps.append(pending)
        stmts.append(k)
        pending = None
    seps.append(pending)
    return stmts, seps


def _spans_lines(t: Tree) -> bool:
    """Whether a body or a merge's branches were written over several lines: from its `{` to
    its `}` (a line break or a comment inside it, its own or a nested body's)."""
    return t.children[0].line != t.children[-1].line


def _is_big(t) -> bool:
    return isinstance(t, Tree) and t.data in ("block", "network")


def _fingerprint(source: str) -> tuple[list, list]:
    """The tokens of `source` and its comments, for checking that formatting changed neither.
    Separators count only between two statements (those after `{` and `|`, before `}` and `|`,
    at the start and the end are layout), and a comma before `)` is left out."""
    tree = _lark().parse(source)
    tokens: list = []
    comments: list = []
    for tok in tree.scan_values(lambda v: isinstance(v, Token)):
        if tok.type == "_SEP":
            comments += [c.rstrip() for c in re.findall(r"#[^\n]*", str(tok))]
            if tokens and tokens[-1][1] not in ("{", "|", None):
                tokens.append(("_SEP", None))
            continue
        text = str(tok)
        if text in ("}", "|") and tokens and tokens[-1][0] == "_SEP":
            tokens.pop()
        if text == ")" and tokens and tokens[-1][1] == ",":
            tokens.pop()
        tokens.append((tok.type, text))
    if tokens and tokens[-1][0] == "_SEP":
        tokens.pop()
    return tokens, comments


class FormatError(Exception):
    """The formatter would have changed a spec's meaning: a bug in archdsl, never the spec's."""


def format_source(source: str, file: str = "<string>") -> str:
    """The spec `source` in the canonical layout. Raises ArchError when it does not parse.

    >>> print(format_source("network  n{input 3x8x8;conv 3x3->c*2   # wide\\n}"), end="")
    network n {
      input 3x8x8; conv 3x3 -> c * 2  # wide
    }
    """
    source = source.removeprefix("\ufeff")
    parse(source, file)  # the diagnostics of a spec that does not parse, as every command gives them
    tree = _lark().parse(source)
    printer = _Printer()
    printer.file(tree)
    out = _render(printer.w.lines)
    if _fingerprint(out) != _fingerprint(source):
        raise FormatError(f"formatting {file} would change its tokens or comments")
    return out


def is_formatted(source: str, file: str = "<string>") -> bool:
    return format_source(source, file) == source


def fmt_paths(files: list, check: bool, diff: bool, out, note, error) -> int:
    """`archdsl fmt`: format each file in place, or with `check`/`diff` write nothing and
    report (`out` takes the diff, `note` the per-file lines, `error` an ArchError). The exit
    status: 1 when a file does not parse, or (with `check`) is not formatted; else 0."""
    changed = failed = 0
    for path in files:
        try:
            source = read_source(path)
            text = format_source(source, str(path))
        except ArchError as err:
            error(err)
            failed += 1
            continue
        with open(path, "rb") as f:
            raw = f.read()
        if text.encode() == raw:
            continue
        changed += 1
        if diff:
            import difflib

            out("".join(difflib.unified_diff(source.splitlines(True), text.splitlines(True),
                                             f"{path}", f"{path}")), nl=False)
        if check or diff:
            if check:
                note(f"would reformat {path}")
            continue
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        note(f"reformatted {path}")
    same = len(files) - changed - failed
    parts = []
    if changed:
        verb = "would be reformatted" if check or diff else "reformatted"
        parts.append(f"{changed} file{'s' * (changed != 1)} {verb}")
    if same:
        parts.append(f"{same} file{'s' * (same != 1)} already formatted")
    if failed:
        parts.append(f"{failed} file{'s' * (failed != 1)} failed to parse")
    note(", ".join(parts) or "no files")
    return 1 if failed or (check and changed) else 0


__all__ = ["format_source", "is_formatted", "fmt_paths", "FormatError", "ArchError"]
