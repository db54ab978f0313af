"""Scale: compile time against depth, on generated specs and on the deepest real one.

Two generated shapes, each with N layers (a layer = one graph node, as PyTorch counts
modules: a convolution, a batch norm and a ReLU are three):

* ``written``: every layer its own statement, N lines of text (the parser's worst case);
* ``repeated``: residual stages written once and expanded by ``repeat`` (the graph
  stage's case: the text stays short while the network grows).

Each size is measured in fresh processes, as the headline is (bench/fresh.py): the first
``archdsl.compile`` of the file in a process that has imported archdsl (the import untimed),
and the whole command, ``archdsl compile FILE`` (interpreter start and table output
included), cold (an empty cache folder every run). Per-layer time shows whether growth is
linear.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import command
from .fresh import ARCHDSL_CHILD, child
from .models import ROOT, SPECS
from .timing import Stats


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
    first: Stats  # the first compile in a fresh process
    command: Stats  # the whole command, cold

    @property
    def per_layer_us(self) -> float:
        return self.first.median / max(self.layers, 1) * 1e6


def _measure(path: Path, network: str, repeat: int) -> tuple[int, Stats, Stats]:
    """(layers, first compile in a fresh process, whole command cold), `repeat` processes each
    after one untimed round."""
    spec = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    firsts = [child(ARCHDSL_CHILD, spec, network, "0") for _ in range(repeat + 1)][1:]
    whole = command.time_commands({"a": (command.compile_argv(spec, "-n", network), None)}, repeat=repeat,
                                  warmup=1)["a"]["wall"]
    return firsts[0]["nodes"] - 1, Stats(tuple(r["s"] for r in firsts)), whole


def run(sizes: list[int], repeat: int, log=print) -> list[ScaleRow]:
    rows = []
    repeat = max(3, min(repeat, 5))
    with tempfile.TemporaryDirectory(prefix="archdsl-scale-") as tmp:
        for shape, make in (("written", written_spec), ("repeated", repeated_spec)):
            for n in sizes:
                path = Path(tmp) / f"{shape}_{n}.arch"
                text = make(n)
                path.write_text(text)
                layers, first, whole = _measure(path, "deep", repeat)
                rows.append(ScaleRow(f"{shape} {n:,}", layers, len(text), first, whole))
                log(f"  {shape} {n:,}: {layers:,} layers, first compile {first.ms()} ms "
                    f"({rows[-1].per_layer_us:.1f} us/layer), whole command {whole.median:.2f} s cold")
        deepest = SPECS / "preact_resnet.arch"
        if deepest.is_file() and "network preact_resnet1001" in deepest.read_text():
            layers, first, whole = _measure(deepest, "preact_resnet1001", repeat)
            rows.append(ScaleRow("preact_resnet1001 (specs/preact_resnet.arch)", layers, len(deepest.read_text()),
                                 first, whole))
            log(f"  preact_resnet1001: {layers:,} layers, first compile {first.ms()} ms, "
                f"whole command {whole.median:.2f} s cold")
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
