"""Repeated timings and their summary (median, min, max)."""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence


@dataclass(frozen=True)
class Stats:
    """Seconds over repeated runs. The median is the figure to quote; min and max show the spread."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def ms(self, digits: int = 2) -> str:
        """`median (min-max) ms`, as the tables print it."""
        return f"{fmt_ms(self.median, digits)} ({fmt_ms(self.min, digits)}-{fmt_ms(self.max, digits)})"

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "min_s": self.min, "max_s": self.max, "runs": len(self.runs)}


def fmt_ms(seconds: float, digits: int = 2) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:,.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.{digits}f}"


def measure(fn: Callable[[], Any], repeat: int, warmup: int = 1, inner: int = 1,
            setup: Callable[[], Any] | None = None) -> Stats:
    """Time `fn` `repeat` times after `warmup` uncounted calls.

    `inner` calls are timed together and divided, for functions too quick for one clock
    reading to resolve. The garbage collector is run before, and kept off during, each
    timed run, so that one run does not pay for another's garbage (as timeit does).
    `setup` runs before every call, untimed (emptying caches); it implies one call per reading.
    """
    if setup is not None:
        inner = 1
    for _ in range(warmup):
        if setup is not None:
            setup()
        fn()
    runs = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        runs.append(_timed(fn, inner))
    return Stats(tuple(runs))


def _timed(fn: Callable[[], Any], inner: int) -> float:
    """Seconds per call of `inner` calls timed together, garbage collected before and not during."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) / inner
    finally:
        gc.enable()


def measure_pair(a: Callable[[], Any], b: Callable[[], Any], repeat: int, warmup: int = 1,
                 inner: int = 1) -> tuple[Stats, Stats, Stats]:
    """Time two functions in turn (a b a b ...): their stats and the per-pair ratio a/b.

    Pairing keeps the ratio meaningful while the machine's speed drifts (another process,
    frequency scaling): each ratio compares two runs taken a moment apart.
    """
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    for _ in range(repeat):
        for fn, out in ((a, ta), (b, tb)):
            out.append(_timed(fn, inner))
    ratios = tuple(x / y for x, y in zip(ta, tb))
    return Stats(tuple(ta)), Stats(tuple(tb)), Stats(ratios)


def ratio_text(stats: Stats) -> str:
    """A ratio's median with its spread: `1.01 (0.97-1.04)`."""
    return f"{stats.median:.2f} ({stats.min:.2f}-{stats.max:.2f})"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
