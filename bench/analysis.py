"""Analysis speed in-process: archdsl's analytic figures against the peers on the built model,
each called again and again in one process, as in a notebook or a sweep.

Each peer is timed in-process on a model that is already built (its construction is not
counted), after a warm-up call. archdsl is timed two ways, each ending with params, MACs and
the output shape, also after a warm-up call:

* *loaded*: ``unit.compile(network)`` on a spec loaded beforehand with ``archdsl.load``: the
  parsed text in hand, as the peers have the built model in hand;
* *from the path*: ``archdsl.compile(path, network)``: the file read and parsed again.

Whatever archdsl keeps from one call to the next in a process is part of these figures; what
a user pays once, in a fresh process, is the headline's (bench/fresh.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Model
from .peers import Peer
from .timing import Stats, measure


def archdsl_figures(model: Model, unit=None) -> tuple[int, int, tuple[int, ...]]:
    net = unit.compile(model.network) if unit is not None else model.compile()
    params, macs = model.archdsl_figures(net)
    return params, macs, net.output_shape.dims


def time_archdsl(model: Model, repeat: int, loaded: bool = False) -> Stats:
    """`loaded`: the spec parsed beforehand (``archdsl.load``), else compiled from its path."""
    import archdsl

    unit = archdsl.load(model.spec_path) if loaded else None

    def run():
        return archdsl_figures(model, unit)

    once = measure(run, repeat=1, warmup=1)
    # several calls per reading when one call is too quick for the clock to resolve well
    inner = max(1, min(200, int(0.02 / max(once.median, 1e-6))))
    return measure(run, repeat=max(repeat, 5), warmup=1, inner=inner)


@dataclass
class AnalysisRow:
    model: Model
    #: from the path: the file read and parsed in the timed call
    path: Stats
    #: the parsed spec in hand (Unit.compile): the counterpart of the peers' built model
    loaded: Stats
    peers: dict[str, Stats | str] = field(default_factory=dict)  # Stats, or why it has none
    #: the library's constructor, with its weight initialisation: what a peer's user pays first
    construct: Stats | None = None

    def ours(self, path: bool = False) -> Stats:
        return self.path if path else self.loaded

    def ratio(self, peer: str, path: bool = False) -> float | None:
        s = self.peers.get(peer)
        if not isinstance(s, Stats):
            return None
        return s.median / self.ours(path).median

    def slowest_ratio(self, path: bool = False) -> float | None:
        """archdsl's speed-up over the fastest peer, median against median."""
        ratios = [r for p in self.peers if (r := self.ratio(p, path)) is not None]
        return min(ratios) if ratios else None

    def conservative_ratio(self, path: bool = False) -> float | None:
        """The least favourable reading: the fastest peer's fastest run against archdsl's
        median. On a machine shared with other work a peer's median can be inflated (by its
        threads waiting on one another, among others); its fastest run is what it can reach."""
        ours = self.ours(path).median
        ratios = [s.min / ours for s in self.peers.values() if isinstance(s, Stats)]
        return min(ratios) if ratios else None


def run(models: list[Model], peers: list[Peer], repeat: int, log=print) -> list[AnalysisRow]:
    rows = []
    for m in models:
        row = AnalysisRow(m, path=time_archdsl(m, repeat), loaded=time_archdsl(m, repeat, loaded=True))
        log(f"  {m.name}: archdsl {row.loaded.ms(3)} ms (loaded), {row.path.ms(3)} ms (from the path)")
        if peers:
            row.construct = measure(lambda: m.reference(aux=False), repeat=max(2, min(repeat, 3)), warmup=0)
            ref = m.reference(aux=False, init=False)
            for p in peers:
                try:
                    row.peers[p.name] = measure(lambda: p.run(ref, m.input), repeat=repeat, warmup=1)
                    log(f"    {p.name}: {row.peers[p.name].ms()} ms")
                except Exception as err:  # noqa: BLE001 - report the failure in the table
                    row.peers[p.name] = f"failed: {type(err).__name__}"
                    log(f"    {p.name}: failed: {err}")
            del ref
        rows.append(row)
    return rows
