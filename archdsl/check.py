"""`expect` lines: what can be expected, and how a compiled network is checked against them;
:func:`check_paths`, the check of every network of a set of files (`archdsl check`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnostics import ArchError, Diagnostic
from .network import EXPECTABLE

if TYPE_CHECKING:
    from .network import CompiledNetwork, Expectation


@dataclass
class Outcome:
    expectation: "Expectation"
    found: Any
    ok: bool

    @property
    def what(self) -> str:
        return self.expectation.stmt.what

    def describe(self, value: Any) -> str:
        if isinstance(value, tuple):
            return "x".join(map(str, value))
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    def diagnostic(self) -> Diagnostic:
        e = self.expectation
        tol = f" within {e.stmt.tolerance:g}%" if e.stmt.tolerance is not None else ""
        hint = None
        if isinstance(self.found, int) and isinstance(e.expected, (int, float)) and e.expected:
            diff = self.found - e.expected
            hint = f"off by {diff:+,} ({100 * diff / e.expected:+.3f}%)"
        return Diagnostic("E501", f"expectation failed: {self.what}", e.stmt.span,
                          expected=self.describe(e.expected) + tol, found=self.describe(self.found), hint=hint)


def evaluate_expectations(net: "CompiledNetwork") -> list[Outcome]:
    out = []
    for e in net.expectations:
        what = e.stmt.what
        found = e.found_here.dims if what == "shape" else EXPECTABLE[what](net)
        expected = e.expected
        if isinstance(expected, tuple) or isinstance(found, tuple):
            exp_t = expected if isinstance(expected, tuple) else (expected,)
            ok = tuple(found) == tuple(exp_t)
        elif e.stmt.tolerance is not None:
            ok = abs(found - expected) <= abs(expected) * e.stmt.tolerance / 100
        else:
            ok = found == expected
        out.append(Outcome(e, found, ok))
    return out


def check_paths(files: list[Path], fmt: str, fail_fast: bool, out, err, named: "set[Path] | frozenset" = frozenset()
                ) -> bool:
    """Check every network of every file: one line each, then a summary. True when all pass.

    A failing line names the location (file:line:col) of the first failing `expect` or of the
    error; the full diagnostics go to `err`, an ArchError at a time. A file without networks (blocks and constants
    shared through `include`) found in a folder is parsed and reported on a line of its own;
    one of the `named` files (given on the command line), or an empty one, fails with E203.
    """
    from . import load
    from .budget import check_command
    from .sources import select_networks
    from .spec import compile_network

    results, failures, libraries = [], 0, []

    def line(status: str, where: str, rest: str) -> None:
        if fmt == "text":
            out(f"{status:<4}  {where:<44} {rest}".rstrip())

    def error_row(file: Path, network: str | None, e: ArchError) -> None:
        d = e.first
        location = d.span.where() if d.span else str(file)
        results.append({"file": str(file), "network": network, "ok": False, "error": d.code,
                        "location": location, "message": d.message})
        line("FAIL", f"{file}:{network}" if network else str(file), f"error[{d.code}] at {location}: {d.message}")
        if fmt == "text":
            err(e)

    for file in files:
        try:
            unit = load(file).unit
            if not unit.program.networks and (file in named or not unit.program.items):
                select_networks(unit, None)  # raises E203 "no network in this file", at the file
            check_command(unit, unit.program.networks)  # the file's networks together, as compile_all
        except ArchError as e:
            failures += 1
            error_row(file, None, e)
            if fail_fast:
                break
            continue
        if not unit.program.networks:
            libraries.append(str(file))
            line("ok", str(file), "(no networks: blocks and constants only)")
            continue
        for prog in unit.program.networks:
            try:
                net = compile_network(unit, prog)
                outcomes = net.check()
            except ArchError as e:
                failures += 1
                error_row(file, prog.name, e)
                if fail_fast:
                    break
                continue
            bad = [o for o in outcomes if not o.ok]
            row = {"file": str(file), "network": net.name, "ok": not bad, "params": net.params, "macs": net.macs,
                   "output": list(net.output_shape.dims), "expectations": len(outcomes),
                   "failed": [{"what": o.what, "location": o.expectation.stmt.span.where(),
                               "expected": _plain(o.expectation.expected), "found": _plain(o.found)} for o in bad]}
            results.append(row)
            stats = (f"params {net.params:>13,}  MACs {net.macs:>16,}  output {net.output_shape}  "
                     f"({len(outcomes)} expect{'s' * (len(outcomes) != 1)})")
            if bad:
                more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
                stats += f"  expect {bad[0].what} failed at {bad[0].expectation.stmt.span.where()}{more}"
            line("FAIL" if bad else "ok", f"{file}:{net.name}", stats)
            if bad and fmt == "text":
                err(ArchError([o.diagnostic() for o in bad], net.sources))
            if bad:
                failures += 1
                if fail_fast:
                    break
        if fail_fast and failures:
            break
    total = len(results)
    if fmt == "json":
        import json

        out(json.dumps({"ok": failures == 0, "networks": total, "failed": failures, "files": len(files),
                        "libraries": libraries, "results": results}, indent=2))
    else:
        out(f"\n{total - failures} of {total} networks ok" + (f", {failures} failed" if failures else "")
            + f" ({len(files)} file{'s' * (len(files) != 1)})")
    return failures == 0


def _plain(v):
    return list(v) if isinstance(v, tuple) else v
