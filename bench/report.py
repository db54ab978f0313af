"""BENCHMARKS.md: the sections' results as markdown tables."""

from __future__ import annotations

from .timing import Stats, fmt_ms


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A markdown table; `align` is one letter per column (l or r)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def ms(s: Stats | None, digits: int = 2) -> str:
    return s.ms(digits) if isinstance(s, Stats) else "-"


def seconds(s: Stats) -> str:
    return f"{s.median:.3f} ({s.min:.3f}-{s.max:.3f})"


def times(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}x"
    return f"{x:.1f}x"


def n(v: int | None) -> str:
    return "-" if v is None else f"{v:,}"


def kib_to_mib(kib: float) -> str:
    return f"{kib / 1024:.0f} MiB"


__all__ = ["table", "ms", "seconds", "times", "n", "kib_to_mib", "fmt_ms"]
