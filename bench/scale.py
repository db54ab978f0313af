"""Scale: compile time against depth, on generated specs and on the deepest real one.

Two generated shapes, each with N layers (a layer = one graph node, as PyTorch counts
modules: a convolution, a batch norm and a ReLU are three):

* ``written``: every layer its own statement, N lines of text (the parser's worst case);
* ``repeated``: residual stages written once and expanded by ``repeat`` (the graph
  stage's case: the text stays short while the network grows).

Compile time is measured in-process, cold (no parse cache: the text is parsed every time)
and with the parsed spec cached (what a second compile of an unchanged file costs: the
graph stage alone); per-layer time shows whether growth is linear.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .models import SPECS
from .timing import Stats, measure


def written_spec(layers: int) -> str:
    """`layers` statements cycling conv / bn / relu on a small map (3 layers per cycle)."""
    lines = ["network deep {", "  input 16x32x32"]
    cycle = ("conv 3x3 p1 -> 16", "bn", "relu")
    for i in range(layers):
        lines.append("  " + cycle[i % 3])
    lines.append("}")
    return "\n".join(lines) + "\n"


def repeated_spec(layers: int) -> str:
    """Residual units of 7 nodes (conv, bn, relu, conv, bn, the add, relu) repeated."""
    units = max(1, layers // 7)
    return (
        "block unit(c) {\n"
        "  residual { conv 3x3 p1 -> c; bn; relu; conv 3x3 p1 -> c; bn }\n"
        "  relu\n"
        "}\n"
        "network deep {\n"
        "  input 16x32x32\n"
        f"  repeat {units} {{ unit(16) }}\n"
        "}\n"
    )


@dataclass
class ScaleRow:
    label: str
    layers: int  # graph nodes, the input excluded
    chars: int
    stats: Stats  # cold
    cached: Stats | None = None  # the parsed spec cached in memory

    @property
    def per_layer_us(self) -> float:
        return self.stats.median / max(self.layers, 1) * 1e6

    @property
    def cached_per_layer_us(self) -> float | None:
        return None if self.cached is None else self.cached.median / max(self.layers, 1) * 1e6


def _compile_cold(path: Path, network: str | None):
    import archdsl
    from archdsl import cache

    cache.clear()  # and the memo tables: as in a fresh process
    with cache.disabled():
        return archdsl.compile(path, network)


def _compile_cached(path: Path, network: str | None):
    import archdsl

    return archdsl.compile(path, network)


def run(sizes: list[int], repeat: int, log=print) -> list[ScaleRow]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="archdsl-scale-") as tmp:
        for shape, make in (("written", written_spec), ("repeated", repeated_spec)):
            for n in sizes:
                path = Path(tmp) / f"{shape}_{n}.arch"
                text = make(n)
                path.write_text(text)
                net = _compile_cold(path, "deep")
                layers = sum(1 for _ in net.nodes()) - 1
                stats = measure(lambda: _compile_cold(path, "deep"), repeat=max(3, min(repeat, 5)), warmup=1)
                cached = measure(lambda: _compile_cached(path, "deep"), repeat=max(3, min(repeat, 5)), warmup=1)
                rows.append(ScaleRow(f"{shape} {n:,}", layers, len(text), stats, cached))
                log(f"  {shape} {n:,}: {layers:,} layers, {stats.ms()} ms cold ({rows[-1].per_layer_us:.1f} us/layer), "
                    f"{cached.ms()} ms cached")
        deepest = SPECS / "preact_resnet.arch"
        if deepest.is_file() and "network preact_resnet1001" in deepest.read_text():
            net = _compile_cold(deepest, "preact_resnet1001")
            layers = sum(1 for _ in net.nodes()) - 1
            stats = measure(lambda: _compile_cold(deepest, "preact_resnet1001"), repeat=max(3, min(repeat, 5)),
                            warmup=1)
            cached = measure(lambda: _compile_cached(deepest, "preact_resnet1001"), repeat=max(3, min(repeat, 5)),
                             warmup=1)
            rows.append(ScaleRow("preact_resnet1001 (specs/preact_resnet.arch)", layers,
                                 len(deepest.read_text()), stats, cached))
            log(f"  preact_resnet1001: {layers:,} layers, {stats.ms()} ms")
    return rows


def largest_spec() -> tuple[Path, str, int]:
    """The network of specs/ with the most graph nodes: (file, network, nodes)."""
    import archdsl

    best = (SPECS / "nin.arch", "nin", 0)
    for path in sorted(SPECS.glob("*.arch")):
        try:
            nets = archdsl.compile_all(path)
        except Exception:  # noqa: BLE001 - a spec being written may not compile yet
            continue
        for net in nets:
            n = sum(1 for _ in net.nodes())
            if n > best[2]:
                best = (path, net.name, n)
    return best
