"""Errors with source spans, rendered like a compiler's: file:line:col, the line, a caret.

Every user mistake becomes a :class:`Diagnostic` with a stable code (docs/errors.md) and a
:class:`~archdsl.syntax.Span`; :class:`ArchError` carries one or more of them out of any
pipeline stage. Internal bugs are *not* ArchErrors, so the CLI can tell the two apart.

On a terminal the CLI renders them in colour (:func:`color_wanted`) with plain ANSI escape
codes: rich would do the same in some 20-40 ms of import, a tenth of a command.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .frozen import frozen
from .syntax import Span

#: at most this many diagnostics are printed; the rest are summarised as "... and N more"
MAX_SHOWN = 10
#: source lines longer than this are shown as a window around the span
EXCERPT_WIDTH = 160
#: the ANSI styles (SGR codes) of a coloured diagnostic's parts
STYLES = {"where": "1", "error": "1;31", "warning": "1;33", "gutter": "1;34", "note": "1;36", "hint": "1;32",
          "label": "1"}


def color_wanted(stream) -> bool:
    """Whether diagnostics written to `stream` get colour: never when NO_COLOR is set (to
    anything but ""), as no-color.org asks; when FORCE_COLOR is set, unless it is "0"; else
    when `stream` is a terminal and TERM is not "dumb"."""
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force:
        return force != "0"
    if os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no stream, or a closed one
        return False


def _painter(color: bool):
    if not color:
        return lambda text, style: text
    return lambda text, style: f"\x1b[{STYLES[style]}m{text}\x1b[0m" if text else text


@frozen
class Note:
    message: str
    span: Span | None = None


class Suggestion:
    """A "did you mean ..." hint worked out only when it is shown: the misspelt `word`, its
    `choices` (a callable returning them, so that a scope's names are not even listed for a
    diagnostic that is never printed, or the names themselves) and the `fallback` text for
    when nothing is close. A spec with thousands of misspelt names against thousands of
    candidates costs difflib's time for the MAX_SHOWN printed diagnostics only."""

    __slots__ = ("word", "choices", "fallback", "_text")

    def __init__(self, word: str, choices: Callable[[], Iterable[str]] | Iterable[str], fallback: str | None = None):
        self.word, self.choices, self.fallback = word, choices, fallback
        self._text = fallback

    @property
    def text(self) -> str | None:
        """The hint: "did you mean 'x'?", else the fallback (worked out once)."""
        if self.choices is not None:
            choices = self.choices() if callable(self.choices) else self.choices
            self._text = did_you_mean(self.word, choices) or self.fallback
            self.choices = None  # done: drop the candidates (and the scope they came from)
        return self._text

    def __repr__(self) -> str:
        return f"Suggestion({self.word!r})"


class _Hint:
    """The `hint` field of a Diagnostic: given as a text or a :class:`Suggestion`, read as
    the text, the Suggestion's worked out when first read (when the diagnostic is shown)."""

    def __set_name__(self, owner, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj, owner=None) -> str | None:
        if obj is None:
            return None  # the field's default
        value = obj.__dict__[self.slot]
        return value.text if isinstance(value, Suggestion) else value

    def __set__(self, obj, value: "str | Suggestion | None") -> None:
        obj.__dict__[self.slot] = value


@frozen
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    expected: str | None = None
    found: str | None = None
    #: a text, or a Suggestion that is worked out only if the diagnostic is shown
    hint: str | None = _Hint()  # type: ignore[assignment]
    notes: tuple[Note, ...] = ()
    severity: str = "error"

    def render(self, sources: dict[str, str] | None = None, color: bool = False) -> str:
        """The full text: header, source line with the span underlined, notes and hint
        (with ANSI colour codes when `color`)."""
        sources = sources or {}
        paint = _painter(color)
        severity = self.severity if self.severity in STYLES else "error"
        where = self.span.where() if self.span else "archdsl"
        lines = [f"{paint(where + ':', 'where')} {paint(f'{self.severity}[{self.code}]:', severity)} {self.message}"]
        if self.span is not None:
            lines += _excerpt(self.span, sources.get(self.span.file), paint, severity)
        if self.expected is not None:
            lines.append(f"  {paint('expected:', 'label')} {self.expected}")
        if self.found is not None:
            lines.append(f"  {paint('found:', 'label')}    {self.found}")
        for note in self.notes:
            head = f"{note.span.where()}: " if note.span else ""
            lines.append(f"  {paint('note:', 'note')} {head}{note.message}")
            if note.span is not None:
                lines += ["  " + x for x in _excerpt(note.span, sources.get(note.span.file), paint, "note")]
        if self.hint:
            lines.append(f"  {paint('hint:', 'hint')} {self.hint}")
        return "\n".join(lines)


_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _excerpt(span: Span, source: str | None, paint=lambda text, style: text, style: str = "error") -> list[str]:
    """The source line of `span` with a caret run under the spanned columns (in `style`)."""
    if source is None:
        return []
    all_lines = source.split("\n")  # lines as the parser counts them: form feeds, lone \r and
    if not 1 <= span.line <= len(all_lines):  # U+2028 do not end a line
        return []
    # one visible character for each tab and control character keeps the carets aligned
    text = _UNPRINTABLE.sub("\ufffd", all_lines[span.line - 1].removesuffix("\r").replace("\t", " "))
    width = len(text)
    start = max(span.column - 1, 0)
    if span.end_line == span.line:
        stop = max(span.end_column - 1, start + 1)
    else:
        stop = max(width, start + 1)
    if width > EXCERPT_WIDTH:  # a very long line: show a window around the span
        left = max(0, min(start - EXCERPT_WIDTH // 4, width - EXCERPT_WIDTH))
        shown = text[left:left + EXCERPT_WIDTH]
        prefix = "..." if left else ""
        suffix = "..." if left + EXCERPT_WIDTH < width else ""
        text = prefix + shown + suffix
        start, stop = start - left + len(prefix), min(stop - left, EXCERPT_WIDTH) + len(prefix)
        stop = max(stop, start + 1)
    gutter = f"{span.line:>4} | "
    return [paint(gutter, "gutter") + text, " " * (len(gutter) + start) + paint("^" * (stop - start), style)]


class ArchError(Exception):
    """A mistake in a spec or in the user's request; carries one or more diagnostics."""

    def __init__(self, diagnostics: Diagnostic | Iterable[Diagnostic], sources: dict[str, str] | None = None):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        self.sources: dict[str, str] = dict(sources or {})
        #: what was built before the error: compiled networks, a failing one cut short at its
        #: first error (so that `archdsl compile` can show the layers that did work)
        self.partial: list = []
        super().__init__(self.diagnostics[0].message if self.diagnostics else "error")

    @property
    def first(self) -> Diagnostic:
        return self.diagnostics[0]

    @property
    def code(self) -> str:
        return self.first.code

    def with_sources(self, sources: dict[str, str]) -> "ArchError":
        self.sources = {**sources, **self.sources}
        return self

    def render(self, limit: int = MAX_SHOWN, color: bool = False) -> str:
        shown = [d.render(self.sources, color) for d in self.diagnostics[:limit]]
        rest = len(self.diagnostics) - limit
        if rest > 0:
            shown.append(f"... and {rest} more error{'s' if rest > 1 else ''}")
        return "\n\n".join(shown)

    def __str__(self) -> str:  # so that pytest.raises(match=...) sees the header line
        return self.render()


def error(code: str, message: str, span: Span | None = None, **kw) -> ArchError:
    """Shorthand: ``raise error("E201", "unknown layer 'covn'", span, hint=...)``."""
    return ArchError(Diagnostic(code, message, span, **kw))


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """A "did you mean ..." hint for a misspelt name, or None when nothing is close."""
    choices = sorted(set(choices))
    if not choices or len(word) > 2 * max(map(len, choices)) + 8:  # nothing that long is close, and
        return None  # difflib's cost grows with the word: a 100,000-character typo must stay cheap
    import difflib  # here: only a mistake needs it, and importing it is a part of every start-up

    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


@dataclass
class Collector:
    """Gathers independent errors so that one run reports them all (capped when printed)."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, err: ArchError) -> None:
        self.diagnostics.extend(err.diagnostics)

    def raise_if_any(self, sources: dict[str, str] | None = None) -> None:
        if self.diagnostics:
            raise ArchError(self.diagnostics, sources)
