"""`expect` lines: what can be expected, and how a compiled network is checked against them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostic
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
