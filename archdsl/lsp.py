"""`archdsl lsp`: the language server, over stdio (pygls).

Diagnostics as you type (every error with its range and code, several at once, and every
failed `expect`), hovers on layers (input and output shape, params, MACs, receptive field),
block calls (signature and totals) and names (their value), inlay hints with the output shape
at the end of each layer line, completion of kinds, blocks, their parameters and flags, go to
definition (blocks, lets, parameters, includes), document symbols (networks, blocks, lets)
and formatting through :mod:`archdsl.fmt`. The model is :mod:`archdsl.analysis`, computed
once per version of a document and reused for every request on that version; networks an
edit cannot have changed are not compiled again.

pygls is imported here only: ``pip install "archdsl[lsp]"``. The CLI imports this module only
for `archdsl lsp`.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

from . import __version__
from . import analysis as A
from .diagnostics import ArchError
from .syntax import Span, gc_paused

_KINDS = {"kind": T.CompletionItemKind.Function, "block": T.CompletionItemKind.Module,
          "keyword": T.CompletionItemKind.Keyword, "parameter": T.CompletionItemKind.Property,
          "flag": T.CompletionItemKind.EnumMember, "figure": T.CompletionItemKind.Field,
          "name": T.CompletionItemKind.Variable}
_SYMBOLS = {"network": T.SymbolKind.Class, "block": T.SymbolKind.Function, "let": T.SymbolKind.Constant}


def _path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _uri(path: str) -> str:
    return Path(path).resolve().as_uri() if not path.startswith(("untitled:", "<")) else path


def _range(sp: Span | None) -> T.Range:
    if sp is None:
        return T.Range(T.Position(0, 0), T.Position(0, 0))
    end_col = max(sp.end_column - 1, sp.column) if sp.end_line == sp.line else sp.end_column - 1
    return T.Range(T.Position(sp.line - 1, sp.column - 1), T.Position(sp.end_line - 1, max(end_col, 0)))


#: seconds without a new analysis after which the garbage collector looks at everything again
IDLE_COLLECT_S = 1.0
#: seconds after an analysis at which the one it replaced is freed: after the replies to the
#: edit (its diagnostics, the editor's inlay-hint request) are out
RELEASE_S = 0.02


class ArchServer(LanguageServer):
    def __init__(self):
        super().__init__("archdsl", __version__)
        #: uri -> (document version, analysis)
        self.analyses: dict[str, tuple[int | None, A.Analysis]] = {}
        self._collect: asyncio.TimerHandle | None = None
        #: the analysis the latest edit replaced, freed by :meth:`_free` (see :meth:`_retire`)
        self._retired: A.Analysis | None = None
        self._release: asyncio.TimerHandle | None = None

    def analysis(self, uri: str) -> A.Analysis:
        doc = self.workspace.get_text_document(uri)
        held = self.analyses.get(uri)
        if held is not None and held[0] == doc.version and held[1].source == doc.source:
            return held[1]
        try:
            with gc_paused():
                a = A.analyze(doc.source, _path(uri), held[1] if held is not None else None)
                self._freeze()
        except Exception as err:  # noqa: BLE001 - a bug in archdsl: say so where the user looks
            a = A.Analysis(file=_path(uri), source=doc.source,
                           internal=f"archdsl: internal error: {type(err).__name__}: {err} (a bug in archdsl, "
                                    "not in the spec)")
        if held is not None:
            self._retire(held[1])
        self.analyses[uri] = (doc.version, a)
        return a

    def _retire(self, old: A.Analysis) -> None:
        """Keep the analysis an edit replaced alive until the replies to that edit are out.
        Freeing one (hundreds of thousands of objects) takes 4-15 ms on a deep spec
        (preact_resnet.arch), which would otherwise come between the edit and its
        diagnostics. Edits faster than RELEASE_S free the one before as they come."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no server loop (a direct call): freed at once, as usual
            return
        self._retired = old
        if self._release is None:
            self._release = loop.call_later(RELEASE_S, self._free)

    def _free(self) -> None:
        self._release = self._retired = None

    def _freeze(self) -> None:
        """Take everything alive, the new analysis included, out of the garbage collector's
        generations (:func:`gc.freeze`). An analysis is a few hundred thousand objects that
        live until the next edit and hold no reference cycles: reference counting frees them
        when the next analysis replaces them, whereas each collection after an edit would walk
        them all again (tens of milliseconds on a deep spec). Once the edits pause, the
        collector is given back everything, cycles made meanwhile included."""
        gc.freeze()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no server loop (a direct call): collect as usual
            gc.unfreeze()
            return
        if self._collect is not None:
            self._collect.cancel()
        self._collect = loop.call_later(IDLE_COLLECT_S, _collect_all)

    def publish(self, uri: str) -> None:
        a = self.analysis(uri)
        out = []
        for d in a.diagnostics:
            sp = d.span
            if sp is not None and sp.file != a.file:  # an error in an included file: at the include
                sp = next((i.span for i in (a.program.items if a.program else ())
                           if type(i).__name__ == "Include" and sp.file.endswith(i.path)), None)
                message = f"{d.span.where()}: {d.message}"
            else:
                message = d.message
            extra = [f"expected: {d.expected}"] if d.expected else []
            extra += [f"found: {d.found}"] if d.found else []
            extra += [f"hint: {d.hint}"] if d.hint else []
            related = [T.DiagnosticRelatedInformation(T.Location(_uri(n.span.file), _range(n.span)), n.message)
                       for n in d.notes if n.span is not None]
            out.append(T.Diagnostic(
                range=_range(sp), message="\n".join([message, *extra]), code=d.code, source="archdsl",
                severity=T.DiagnosticSeverity.Warning if d.severity == "warning" else T.DiagnosticSeverity.Error,
                related_information=related or None))
        if a.internal:
            out.append(T.Diagnostic(range=_range(None), message=a.internal, source="archdsl",
                                    severity=T.DiagnosticSeverity.Error))
        doc = self.workspace.get_text_document(uri)
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=out,
                                                                          version=doc.version))


def _collect_all() -> None:
    gc.unfreeze()
    gc.collect()


server = ArchServer()


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
def _did_open(ls: ArchServer, params: T.DidOpenTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
def _did_change(ls: ArchServer, params: T.DidChangeTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
def _did_save(ls: ArchServer, params: T.DidSaveTextDocumentParams) -> None:
    ls.publish(params.text_document.uri)


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def _did_close(ls: ArchServer, params: T.DidCloseTextDocumentParams) -> None:
    ls.analyses.pop(params.text_document.uri, None)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))


@server.feature(T.TEXT_DOCUMENT_HOVER)
def _hover(ls: ArchServer, params: T.HoverParams) -> T.Hover | None:
    pos = params.position
    found = A.hover(ls.analysis(params.text_document.uri), pos.line, pos.character)
    if found is None:
        return None
    text, (l0, c0, l1, c1) = found
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text),
                   range=T.Range(T.Position(l0, c0), T.Position(l1, c1)))


@server.feature(T.TEXT_DOCUMENT_INLAY_HINT)
def _inlay_hints(ls: ArchServer, params: T.InlayHintParams) -> list[T.InlayHint]:
    a = ls.analysis(params.text_document.uri)
    lo, hi = params.range.start.line, params.range.end.line
    return [T.InlayHint(position=T.Position(line, char), label=label, kind=T.InlayHintKind.Type, padding_left=True)
            for line, char, label in A.inlay_hints(a) if lo <= line <= hi]


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[" ", "(", ","]))
def _completion(ls: ArchServer, params: T.CompletionParams) -> T.CompletionList:
    pos = params.position
    items = [T.CompletionItem(label=label, kind=_KINDS.get(kind), detail=detail or None)
             for label, kind, detail in A.completions(ls.analysis(params.text_document.uri), pos.line, pos.character)]
    return T.CompletionList(is_incomplete=False, items=items)


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def _definition(ls: ArchServer, params: T.DefinitionParams) -> T.Location | None:
    pos = params.position
    found = A.definition(ls.analysis(params.text_document.uri), pos.line, pos.character)
    if found is None:
        return None
    file, span = found
    return T.Location(uri=_uri(file), range=_range(span))


@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def _symbols(ls: ArchServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
    a = ls.analysis(params.text_document.uri)
    return [T.DocumentSymbol(name=name, kind=_SYMBOLS[kind], range=_range(span), selection_range=_range(name_span),
                             detail=detail or None)
            for name, kind, span, name_span, detail in A.symbols(a)]


@server.feature(T.TEXT_DOCUMENT_FORMATTING)
def _formatting(ls: ArchServer, params: T.DocumentFormattingParams) -> list[T.TextEdit] | None:
    from .fmt import format_source

    doc = ls.workspace.get_text_document(params.text_document.uri)
    try:
        text = format_source(doc.source, _path(params.text_document.uri))
    except ArchError:
        return None  # the diagnostics already say why
    if text == doc.source:
        return []
    lines = doc.source.splitlines()
    end = T.Position(len(lines), 0)
    return [T.TextEdit(range=T.Range(T.Position(0, 0), end), new_text=text)]


def main() -> None:
    server.start_io()


if __name__ == "__main__":
    main()
