"""The headline: the first compile of a network in a fresh process, parse included, against
torch's own FLOP counter on the meta device and the fastest classic peer.

What a user runs is one compile in a new process, so each reading here is a new ``python``
process (the environment of :func:`bench.command.cold_env`: an empty cache folder) that
imports its libraries first, untimed (their import time is kept and reported apart), and then
times one call with ``time.perf_counter``:

* *archdsl*: ``archdsl.compile(spec path, network)``: the file read and parsed (the other
  networks of the file checked, not built), every node made, inferred and counted, params
  and MACs ready;
* *meta counter*: the torchvision/timm model constructed under ``with torch.device("meta")``
  (shapes only: no weight is initialised, no arithmetic done), a meta input of the spec's
  input shape run through it under ``torch.utils.flop_counter.FlopCounterMode(display=False)``,
  MACs = its total flops / 2, params = the sum of ``numel()`` of its parameters;
* *classic peer*: the model constructed on the CPU (as that tool's user must), then counted by
  the fastest of bench/peers.py's tools.

Every process starts with an empty cache folder (``XDG_CACHE_HOME``), as the first run on a
machine does (archdsl keeps nothing on disk: its parser's tables ship in the package). archdsl's
time is split into its *parse* (``archdsl.load(path, network)``: the file read and parsed, the
parser's tables loaded) and its *expansion* (``spec.compile(network)``: every node made, inferred and
counted), whose sum is ``archdsl.compile(path, network)``.

Both torch models are built as the peers' users build the fastest: ``weights=None``, aux heads
off, and ``init_weights=False`` where the constructor offers it. The garbage collector runs as
it does in any process. The processes run in turn (archdsl, meta, classic; model after model),
after one untimed round that caches bytecode and warms the page cache.
"""

from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass

from . import command
from .models import ROOT, Model
from .peers import Peer
from .timing import Stats

ARCHDSL_CHILD = """\
import json, sys, time
t0 = time.perf_counter()
import archdsl
t1 = time.perf_counter()
spec = archdsl.load(sys.argv[1], sys.argv[2])  # archdsl.compile(path, network) is load(path, network).compile(network)
t2 = time.perf_counter()
net = spec.compile(sys.argv[2])
t3 = time.perf_counter()
aux = sys.argv[3] == "1"
print("RESULT " + json.dumps({"import_s": t1 - t0, "s": t3 - t1, "parse_s": t2 - t1, "nodes": len(list(net.nodes())),
      "params": net.params_without_aux if aux else net.params, "macs": net.macs_without_aux if aux else net.macs}))
"""

META_CHILD = """\
import json, sys, time
name, library, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
import torch
from torch.utils.flop_counter import FlopCounterMode
if library == "timm":
    import timm
else:
    import torchvision
t1 = time.perf_counter()
if threads:
    torch.set_num_threads(threads)
from bench.models import BY_NAME
model = BY_NAME[name]
t2 = time.perf_counter()
with torch.device("meta"):
    m = model.reference(aux=False, init=False)
    x = torch.empty(1, *model.input, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        m(x)
macs = counter.get_total_flops() // 2
params = sum(p.numel() for p in m.parameters())
t3 = time.perf_counter()
print("RESULT " + json.dumps({"import_s": t1 - t0, "s": t3 - t2, "params": params, "macs": macs}))
"""

CLASSIC_CHILD = """\
import importlib, json, sys, time, warnings
name, library, threads, tool = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
t0 = time.perf_counter()
import torch
if library == "timm":
    import timm
else:
    import torchvision
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    importlib.import_module(tool)
t1 = time.perf_counter()
if threads:
    torch.set_num_threads(threads)
from bench.models import BY_NAME
from bench.peers import PEERS
model, peer = BY_NAME[name], next(p for p in PEERS if p.module == tool)
t2 = time.perf_counter()
count = peer.run(model.reference(aux=False, init=False), model.input)
t3 = time.perf_counter()
print("RESULT " + json.dumps({"import_s": t1 - t0, "s": t3 - t2, "params": count.params, "macs": count.macs}))
"""


def child(code: str, *args: str, cache=None) -> dict:
    """Run one fresh process (its cache folder `cache`, else a new empty one); its RESULT line."""
    proc = subprocess.run([command.PYTHON, "-c", code, *args], cwd=ROOT, env=command.measured_env(cache),
                          capture_output=True, text=True, timeout=900)
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not results:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:] or proc.stdout[-300:]}")
    return json.loads(results[-1][len("RESULT "):])


@dataclass
class Side:
    """One side's fresh processes: the timed call, the untimed import before it, the figures."""

    runs: list[dict]

    @property
    def time(self) -> Stats:
        return Stats(tuple(r["s"] for r in self.runs))

    @property
    def parse(self) -> Stats:
        """archdsl only: reading and parsing the file (the parser's tables loaded included)."""
        return Stats(tuple(r["parse_s"] for r in self.runs))

    @property
    def expansion(self) -> Stats:
        """archdsl only: the network's expansion, inference and counts after the parse."""
        return Stats(tuple(r["s"] - r["parse_s"] for r in self.runs))

    @property
    def imports(self) -> Stats:
        return Stats(tuple(r["import_s"] for r in self.runs))

    @property
    def total(self) -> Stats:
        """Import and call together, per process."""
        return Stats(tuple(r["s"] + r["import_s"] for r in self.runs))

    def figures(self) -> tuple[int, int]:
        return self.runs[-1]["params"], self.runs[-1]["macs"]


@dataclass
class FreshRow:
    model: Model
    archdsl: Side | str  # a Side, or why it has none
    meta: Side | str
    classic: Side | str | None = None

    @property
    def nodes(self) -> int | None:
        return self.archdsl.runs[-1]["nodes"] if isinstance(self.archdsl, Side) else None

    @property
    def per_node_us(self) -> float | None:
        if not isinstance(self.archdsl, Side):
            return None
        return self.archdsl.time.median / self.nodes * 1e6

    @property
    def expansion_per_node_us(self) -> float | None:
        """The expansion's own cost per node, the parse left out."""
        if not isinstance(self.archdsl, Side):
            return None
        return self.archdsl.expansion.median / self.nodes * 1e6

    def ratio(self, peer: str = "meta", total: bool = False) -> float | None:
        """The peer's median over archdsl's: how many times faster archdsl is (import and call
        together with `total`)."""
        theirs = getattr(self, peer)
        if not isinstance(theirs, Side) or not isinstance(self.archdsl, Side):
            return None
        if total:
            return theirs.total.median / self.archdsl.total.median
        return theirs.time.median / self.archdsl.time.median

    def least_favourable(self) -> float | None:
        """The meta counter's fastest process over archdsl's slowest."""
        if not isinstance(self.meta, Side) or not isinstance(self.archdsl, Side):
            return None
        return self.meta.time.min / self.archdsl.time.max

    def target(self) -> float:
        """The speed-up the issue asks for: 10x on GoogLeNet and deeper, else faster at all."""
        return 10.0 if self.model.deep else 1.0

    def passed(self) -> bool | None:
        r = self.ratio()
        return None if r is None else (r >= 10.0 if self.model.deep else r > 1.0)

    def agrees(self, side: str) -> bool | None:
        """Whether a side's params and MACs equal the published ones."""
        s = getattr(self, side)
        if not isinstance(s, Side):
            return None
        return s.figures() == (self.model.params, self.model.macs)


def pick_classic(peers: list[Peer], analysis_rows=None) -> tuple[Peer | None, str]:
    """The fastest classic peer, and why it is that one: the smallest geometric mean of its
    in-process medians over the models of this run's analysis section, or, without one, the
    first usable of ptflops, torchinfo, thop, fvcore and calflops (the order of the last full
    run's BENCHMARKS.md)."""
    if not peers:
        return None, "no classic peer is usable here"
    if analysis_rows:
        def score(p: Peer) -> float:
            times = [r.peers[p.name].median for r in analysis_rows if isinstance(r.peers.get(p.name), Stats)]
            return math.exp(sum(map(math.log, times)) / len(times)) if times else math.inf

        best = min(peers, key=score)
        if score(best) < math.inf:
            return best, "the fastest classic peer of this run's in-process section (geometric mean over its models)"
    order = ("ptflops", "torchinfo", "thop", "fvcore", "calflops")
    best = min(peers, key=lambda p: order.index(p.name) if p.name in order else len(order))
    return best, "the fastest classic peer of the last full run; this run's in-process section did not run"


def run(models: list[Model], classic: Peer | None, repeat: int, threads: int, log=print) -> list[FreshRow]:
    runs: dict[tuple[str, str], list[dict]] = {}
    failed: dict[tuple[str, str], str] = {}
    for round_ in range(repeat + 1):  # the first round is untimed
        for m in models:
            children = {
                "archdsl": (ARCHDSL_CHILD, str(m.spec_path), m.network, "1" if m.has_aux else "0"),
                "meta": (META_CHILD, m.name, m.library, str(threads)),
            }
            if classic is not None:
                children["classic"] = (CLASSIC_CHILD, m.name, m.library, str(threads), classic.module)
            for side, (code, *args) in children.items():
                key = (m.name, side)
                if key in failed:
                    continue
                try:
                    result = child(code, *args)
                except Exception as err:  # noqa: BLE001 - reported in the table
                    failed[key] = f"failed: {err}"
                    log(f"  {m.name} {side}: {failed[key]}")
                    continue
                if round_:
                    runs.setdefault(key, []).append(result)
        if round_:
            log(f"  round {round_} of {repeat} done")
    rows = []
    for m in models:
        def side(name: str):
            key = (m.name, name)
            return failed.get(key) or Side(runs[key])

        row = FreshRow(m, side("archdsl"), side("meta"), side("classic") if classic is not None else None)
        a, meta = row.archdsl, row.meta
        if isinstance(a, Side):
            log(f"  {m.name}: archdsl first compile {a.time.ms(2)} ms ({row.per_node_us:.1f} us a node over "
                f"{row.nodes:,} nodes; parse {a.parse.ms(2)} ms, expansion {a.expansion.ms(2)} ms; "
                f"import {a.imports.ms(0)} ms)")
        if isinstance(meta, Side) and isinstance(a, Side):
            log(f"    meta counter {meta.time.ms(2)} ms (import {meta.imports.ms(0)} ms): "
                f"meta / archdsl {row.ratio():.2f}")
        rows.append(row)
    return rows
