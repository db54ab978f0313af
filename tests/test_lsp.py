"""The language server (`archdsl lsp`), driven by a real LSP client over stdio (pytest-lsp):
the server runs as `archdsl lsp` does, in a subprocess, and every feature is asked for as an
editor asks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as T
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parent.parent
GOOGLENET = ROOT / "specs" / "googlenet.arch"

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-c", "import sys; from archdsl.cli import run; sys.argv[0] = 'archdsl'; run()",
                    "lsp", "--stdio"]))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=pytest_lsp.client_capabilities("visual-studio-code")))
    yield
    await lsp_client.shutdown_session()


async def _open(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.resolve().as_uri()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(
        uri=uri, language_id="arch", version=version, text=path.read_text() if text is None else text)))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    return uri


def _pos(text: str, needle: str, offset: int = 0) -> T.Position:
    for n, line in enumerate(text.splitlines()):
        if needle in line:
            return T.Position(n, line.index(needle) + offset)
    raise AssertionError(needle)


async def test_a_clean_spec_has_no_diagnostics(client):
    uri = await _open(client, GOOGLENET)
    assert not client.diagnostics[uri]


async def test_diagnostics_as_you_type_several_at_once(client, tmp_path):
    path = tmp_path / "wip.arch"
    text = "network n {\n  input 3x32x32\n  conv 3x3 -> 16\n  expect params = 1\n}\n"
    path.write_text(text)
    uri = await _open(client, path)
    [d] = client.diagnostics[uri]
    assert d.code == "E501" and d.range.start.line == 3 and d.source == "archdsl"
    # an edit: two independent mistakes in two networks, and a failed expect, reported together
    edited = ("network n {\n  input 3x32x32\n  conv 3x3 -> 16\n  bogus 3\n  expect params = 1\n}\n"
              "network m {\n  input 3x8x8\n  conv 5x5/2 -> 4\n  conv 5x5 -> 4\n}\n")
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        text_document=T.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[T.TextDocumentContentChangeWholeDocument(text=edited)]))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    got = {(d.code, d.range.start.line, d.range.start.character) for d in client.diagnostics[uri]}
    assert ("E201", 3, 2) in got  # the unknown kind, underlined where it stands
    assert any(code == "E402" and line == 9 for code, line, _ in got)  # the window too large
    bogus = next(d for d in client.diagnostics[uri] if d.code == "E201")
    assert (bogus.range.end.line, bogus.range.end.character) == (3, 7)
    # syntax errors: several, with their ranges
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        text_document=T.VersionedTextDocumentIdentifier(uri=uri, version=3),
        content_changes=[T.TextDocumentContentChangeWholeDocument(
            text="network n {\n  input 3x32x32\n  conv 3x3 -> \n  fc 10 ->\n}\n")]))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    assert len(client.diagnostics[uri]) >= 2 and all(d.code.startswith("E1") for d in client.diagnostics[uri])


async def test_hover_on_a_layer(client):
    uri = await _open(client, GOOGLENET)
    text = GOOGLENET.read_text()
    hover = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri),
                                                                _pos(text, "conv 7x7/2 p3 -> 64", 1)))
    value = hover.contents.value
    assert "3x224x224 → **64x112x112**" in value and "params 9,472" in value and "MACs 118,013,952" in value
    assert "receptive field 7x7" in value


async def test_hover_on_a_block_call_and_on_a_name(client):
    uri = await _open(client, GOOGLENET)
    text = GOOGLENET.read_text()
    call = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri),
                                                               _pos(text, "inception(64, 96, 128", 2)))
    assert "block inception(c1, c3r, c3, c5r, c5, pp, k5=5)" in call.contents.value
    assert "192x28x28 → **256x28x28**" in call.contents.value and "params 163,696" in call.contents.value
    name = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri),
                                                               _pos(text, "pad=k5//2", 4)))
    assert name.contents.value == "`k5` = 5, 3"  # the paper's network and torchvision's


async def test_inlay_hints_show_each_layer_lines_output(client):
    uri = await _open(client, GOOGLENET)
    text = GOOGLENET.read_text()
    lines = text.splitlines()
    hints = await client.text_document_inlay_hint_async(T.InlayHintParams(
        T.TextDocumentIdentifier(uri), T.Range(T.Position(0, 0), T.Position(len(lines), 0))))
    by_line = {h.position.line: h.label.strip() for h in hints}
    assert by_line[_pos(text, "conv1: conv 7x7/2 p3 -> 64").line] == "64x112x112"
    assert by_line[_pos(text, "inception3a: inception(64").line] == "256x28x28"
    assert all(h.position.character == len(lines[h.position.line]) for h in hints)
    assert _pos(text, "expect shape = 64x112x112").line not in by_line


async def test_completion(client, tmp_path):
    path = tmp_path / "c.arch"
    text = "block unit(c, k=3) { conv k x k -> c }\nnetwork n {\n  input 3x8x8\n  \n  conv 3x3 \n  unit(\n}\n"
    path.write_text(text)
    uri = await _open(client, path)

    async def labels(line, char):
        got = await client.text_document_completion_async(T.CompletionParams(T.TextDocumentIdentifier(uri),
                                                                             T.Position(line, char)))
        return {i.label for i in got.items}

    start = await labels(3, 2)
    assert {"conv", "maxpool", "concat", "unit", "repeat", "expect"} <= start
    after_conv = await labels(4, 11)
    assert {"pad=", "groups=", "stride=", "noact", "nonorm", "nobias", "relu", "same"} <= after_conv
    assert {"c=", "k="} <= await labels(5, 7)


async def test_definition_symbols_and_formatting(client, tmp_path):
    (tmp_path / "lib.arch").write_text("block unit(c) { conv 3x3 p1 -> c }\n")
    path = tmp_path / "main.arch"
    text = ('include "lib.arch"\nlet width = 8\nnetwork n {\n  input 3x8x8\n  unit(width)\n'
            "  let w2 = width*2\n  conv 1x1->w2\n}\n")
    path.write_text(text)
    uri = await _open(client, path)
    assert not client.diagnostics[uri]

    async def goto(needle, offset=0):
        return await client.text_document_definition_async(T.DefinitionParams(T.TextDocumentIdentifier(uri),
                                                                             _pos(text, needle, offset)))

    block = await goto("unit(width)")
    assert block.uri == (tmp_path / "lib.arch").resolve().as_uri() and block.range.start.line == 0
    let = await goto("unit(width)", 6)
    assert let.uri == uri and let.range.start.line == 1
    local = await goto("->w2", 3)
    assert local.range.start.line == 5
    include = await goto('"lib.arch"', 2)
    assert include.uri == (tmp_path / "lib.arch").resolve().as_uri()

    symbols = await client.text_document_document_symbol_async(T.DocumentSymbolParams(T.TextDocumentIdentifier(uri)))
    assert [(s.name, s.kind) for s in symbols] == [("width", T.SymbolKind.Constant), ("n", T.SymbolKind.Class)]
    assert "params 368" in symbols[1].detail

    edits = await client.text_document_formatting_async(T.DocumentFormattingParams(
        T.TextDocumentIdentifier(uri), T.FormattingOptions(tab_size=2, insert_spaces=True)))
    assert edits[0].new_text.endswith("  let w2 = width * 2\n  conv 1x1 -> w2\n}\n")


async def test_the_analysis_an_edit_replaced_is_freed_after_the_replies():
    """Freeing a deep spec's analysis takes milliseconds: the server does it once the replies
    to the edit are out (RELEASE_S later), not between the edit and its diagnostics."""
    import asyncio
    import gc
    import weakref

    from archdsl import analysis as A
    from archdsl import lsp

    ls = lsp.ArchServer()
    old = A.analyze("network n { input 3x8x8; conv 3x3 -> 4 }", "n.arch")
    ref = weakref.ref(old)
    ls._retire(old)
    del old
    gc.collect()
    assert ref() is not None  # still held: the replies are not out yet
    await asyncio.sleep(lsp.RELEASE_S * 5)
    gc.collect()
    assert ref() is None and ls._retired is None and ls._release is None

    def without_a_loop():  # a direct call, no server loop: nothing is held
        ls._retire(A.analyze("network n { input 3x8x8; conv 3x3 -> 4 }", "n.arch"))
        return ls._retired

    assert await asyncio.to_thread(without_a_loop) is None
