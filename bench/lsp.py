"""`python -m bench.lsp`: the language server's latency, as an editor sees it.

    python -m bench.lsp [--repeat 20] [SPEC ...]

Starts `archdsl lsp` in a subprocess, opens each spec, then edits it over and over as a
person typing does (a digit of a channel count changed and changed back) at three places:
inside the last network's body, inside the first network's body, and inside a block every
network uses. For each edit it measures, from sending `textDocument/didChange` to receiving
both the `publishDiagnostics` notification and the answer to the `textDocument/inlayHint`
request sent right after the change: the time until the diagnostics and the shapes are on
screen. Prints the median and the 90th percentile of each (wall clock, milliseconds), and the
server's CPU time per edit (from /proc, Linux only).

The targets (issue 17): specs/googlenet.arch within 50 ms, specs/preact_resnet.arch within 150 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as T

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ["specs/googlenet.arch", "specs/preact_resnet.arch"]
TARGET_MS = {"googlenet.arch": 50, "preact_resnet.arch": 150}


def _places(text: str) -> dict[str, int]:
    """Offsets of a digit to change, of a channel count (`-> N`) or a call's first argument:
    the last one in the last network, the first one in the first network, and the first one
    in the last block."""
    items: list[tuple[str, list[int]]] = []  # (network|block, offsets of `-> N` digits)
    depth, pos = 0, 0
    for line in text.splitlines(keepends=True):
        if depth == 0:
            m = re.match(r"(network|block)\b", line)
            if m:
                items.append((m.group(1), []))
        if items and (depth > 0 or line.startswith(("network", "block"))):
            items[-1][1].extend(pos + m.end(m.lastindex) - 1 for m in re.finditer(r"-> (\d+)\b|\((\d+)[,)]", line))
        depth += line.count("{") - line.count("}")
        pos += len(line)
    networks = [o for k, o in items if k == "network" and o]
    blocks = [o for k, o in items if k == "block" and o]
    out = {"last network": networks[-1][-1], "first network": networks[0][0]}
    if blocks:
        out["block"] = blocks[-1][0]
    return out


def _position(text: str, offset: int) -> T.Position:
    line = text.count("\n", 0, offset)
    return T.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 10 ms
    except OSError:
        return float("nan")


async def measure(spec: Path, repeat: int) -> dict[str, tuple[float, float, float]]:
    from pytest_lsp import client_capabilities, make_test_lsp_client

    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-c", "import sys; from archdsl.cli import run; sys.argv[0] = 'archdsl'; "
                          "run()", "lsp")
    proc = client._server
    await client.initialize_session(T.InitializeParams(capabilities=client_capabilities("visual-studio-code")))
    uri = spec.resolve().as_uri()
    text = spec.read_text()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri, "arch", 1, text)))
    await client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    n_lines = len(text.splitlines())
    version, out = 1, {}
    for place, offset in _places(text).items():
        walls, cpus = [], []
        current = text
        for i in range(repeat + 2):  # two warm-up edits
            digit = current[offset]
            new = str((int(digit) + 1) % 10) if i % 2 == 0 else str((int(digit) + 9) % 10)
            pos = _position(current, offset)
            current = current[:offset] + new + current[offset + 1:]
            version += 1
            cpu0 = _cpu(proc.pid) if proc else float("nan")
            t0 = time.perf_counter()
            client.text_document_did_change(T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(uri=uri, version=version),
                [T.TextDocumentContentChangePartial(range=T.Range(pos, T.Position(pos.line, pos.character + 1)),
                                                    text=new)]))
            diags = client.wait_for_notification(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
            hints = client.text_document_inlay_hint_async(T.InlayHintParams(
                T.TextDocumentIdentifier(uri), T.Range(T.Position(0, 0), T.Position(n_lines, 0))))
            await asyncio.gather(diags, hints)
            wall = (time.perf_counter() - t0) * 1000
            await asyncio.sleep(0.05)  # let the server's bookkeeping after the answer finish
            cpu = ((_cpu(proc.pid) if proc else float("nan")) - cpu0) * 1000
            if i >= 2:
                walls.append(wall)
                cpus.append(cpu)
        walls.sort()
        out[place] = (statistics.median(walls), walls[int(0.9 * (len(walls) - 1))], statistics.mean(cpus))
    await client.shutdown_session()
    await client.stop()
    return out


def run(specs: list[str], repeat: int, log=None) -> list[tuple[str, str, tuple[float, float, float]]]:
    """(spec name, edit, (median ms, p90 ms, server CPU ms)) of every spec and edit: the
    section of BENCHMARKS.md (`python -m bench --sections lsp`)."""
    rows = []
    for s in specs:
        spec = (ROOT / s) if not Path(s).is_absolute() else Path(s)
        for place, figures in asyncio.run(measure(spec, repeat)).items():
            rows.append((spec.name, place, figures))
            if log is not None:
                log(f"  {spec.name}, {place}: median {figures[0]:.1f} ms, p90 {figures[1]:.1f} ms")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.lsp", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="*", default=DEFAULT)
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    print(f"{'spec':<22} {'edit':<14} {'median ms':>9} {'p90 ms':>7} {'server CPU ms':>13}  target")
    for name, place, (median, p90, cpu) in run(args.specs, args.repeat):
        target = TARGET_MS.get(name)
        print(f"{name:<22} {place:<14} {median:9.1f} {p90:7.1f} {cpu:13.1f}  " + (f"{target} ms" if target else ""))


if __name__ == "__main__":
    main()
