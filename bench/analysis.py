"""Analysis speed: archdsl's analytic figures from the text against the peers on the built model.

Each peer is timed in-process on a model that is already built (its construction is not
counted). archdsl is timed three ways, each ending with params, MACs and the output shape:

* *loaded*: ``unit.compile(network)`` on a spec loaded beforehand with ``archdsl.load``: the
  parsed text in hand, as the peers have the built model in hand. Every node is made, inferred
  and counted in the timed call; archdsl's memo tables (bindings, per-layer inference, block
  expansions) are as earlier compiles in the process left them, as the peers' tool runs after a
  warm-up call;
* *first*: the same with every memo table emptied before the call: the first compile of the
  network in a process (its parse aside);
* *from the path*: ``archdsl.compile(path, network)``, which reads the file again and finds
  its parse in the in-memory cache (a second compile in a notebook);
* *cold*: ``archdsl.compile(path, network)`` with every cache off and every memo table
  emptied before each call: Lark's parse included.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from .models import Model
from .peers import Peer
from .timing import Stats, measure


def _program_cache():
    """archdsl's parse cache, if this version of archdsl has one."""
    try:
        from archdsl import cache
    except ImportError:
        return None
    return cache


def archdsl_figures(model: Model, unit=None) -> tuple[int, int, tuple[int, ...]]:
    net = unit.compile(model.network) if unit is not None else model.compile()
    params, macs = model.archdsl_figures(net)
    return params, macs, net.output_shape.dims


def _load(model: Model):
    """The parsed spec (``archdsl.load``), where this version of archdsl offers ``Unit.compile``."""
    import archdsl

    unit = archdsl.load(model.spec_path)
    return unit if hasattr(unit, "compile") else None


def time_archdsl(model: Model, repeat: int, cold: bool, loaded: bool = False) -> Stats:
    """`loaded`: the spec parsed beforehand; `cold`: every cache and memo table emptied before
    each call (untimed), as in a fresh process (imports and pydantic's validators aside); with
    `loaded`, the parse is kept (the unit holds it) and only the memo tables start empty."""
    cache = _program_cache()
    ctx = cache.disabled() if (cold and cache is not None) else contextlib.nullcontext()
    unit = _load(model) if loaded else None
    setup = cache.clear if (cold and cache is not None) else None

    def run():
        return archdsl_figures(model, unit)

    with ctx:
        once = measure(run, repeat=1, warmup=1, setup=setup)
        # several calls per reading when one call is too quick for the clock to resolve well
        inner = max(1, min(200, int(0.02 / max(once.median, 1e-6))))
        return measure(run, repeat=max(repeat, 5), warmup=1, inner=inner, setup=setup)


@dataclass
class AnalysisRow:
    model: Model
    #: from the path, the parse cached in memory
    warm: Stats
    cold: Stats
    #: the parsed spec in hand (Unit.compile): the counterpart of the peers' built model
    loaded: Stats | None = None
    #: the same, every memo table emptied first: the first compile in a process
    first: Stats | None = None
    peers: dict[str, Stats | str] = field(default_factory=dict)  # Stats, or why it has none
    #: the library's constructor, with its weight initialisation: what a peer's user pays first
    construct: Stats | None = None

    def first_ratio(self) -> float | None:
        """The fastest peer's median over archdsl's first compile in a process."""
        peers = [s.median for s in self.peers.values() if isinstance(s, Stats)]
        if not peers or self.first is None:
            return None
        return min(peers) / self.first.median

    def ours(self, cold: bool = False) -> Stats:
        """archdsl's time set against the peers': the loaded spec (else from the path), or cold."""
        return self.cold if cold else (self.loaded or self.warm)

    def ratio(self, peer: str, cold: bool = False) -> float | None:
        s = self.peers.get(peer)
        if not isinstance(s, Stats):
            return None
        return s.median / self.ours(cold).median

    def slowest_ratio(self, cold: bool = False) -> float | None:
        """archdsl's speed-up over the fastest peer, median against median."""
        ratios = [r for p in self.peers if (r := self.ratio(p, cold)) is not None]
        return min(ratios) if ratios else None

    def end_to_end_ratio(self) -> float | None:
        """From nothing built to the figures: the fastest peer plus the model's construction,
        against archdsl from the text with every cache off."""
        peers = [s.median for s in self.peers.values() if isinstance(s, Stats)]
        if not peers or self.construct is None:
            return None
        return (min(peers) + self.construct.median) / self.cold.median

    def conservative_ratio(self, cold: bool = False) -> float | None:
        """The least favourable reading: the fastest peer's fastest run against archdsl's
        median. On a machine shared with other work a peer's median can be inflated (by its
        threads waiting on one another, among others); its fastest run is what it can reach."""
        ours = self.ours(cold).median
        ratios = [s.min / ours for s in self.peers.values() if isinstance(s, Stats)]
        return min(ratios) if ratios else None


def run(models: list[Model], peers: list[Peer], repeat: int, log=print) -> list[AnalysisRow]:
    rows = []
    for m in models:
        can_load = _load(m) is not None
        loaded = time_archdsl(m, repeat, cold=False, loaded=True) if can_load else None
        first = time_archdsl(m, repeat, cold=True, loaded=True) if can_load else None
        warm = time_archdsl(m, repeat, cold=False)
        cold = time_archdsl(m, repeat, cold=True)
        row = AnalysisRow(m, warm, cold, loaded, first)
        log(f"  {m.name}: archdsl {loaded.ms(3) if loaded else '-'} ms (loaded), "
            f"{first.ms(3) if first else '-'} ms (first in a process), {warm.ms(3)} ms (from the path), "
            f"{cold.ms(3)} ms (cold)")
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
