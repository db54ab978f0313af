"""Built modules: archdsl's lowering against the torchvision/timm module, same weights.

For each model: construction time (archdsl's build from the compiled network, and the
library's constructor), a build on the meta device (``init=False``: structure and shapes,
no weights), the weight transfer (``archdsl.load_weights``) and the largest output
difference after it, then CPU forward latency in eval mode under ``torch.inference_mode``
at batch 1 and 8, the two modules timed in turn so that each ratio compares neighbouring
runs. Optionally ``torch.compile`` for both, and the same on CUDA when there is a device.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field

from .models import Model
from .timing import Stats, measure, measure_pair


@dataclass
class ForwardRow:
    model: Model
    build: Stats | None = None  # archdsl.build from the compiled network, with initialisation
    build_meta: Stats | None = None  # archdsl.build(..., init=False)
    meta_ok: bool | None = None
    construct: Stats | None = None  # the library's constructor
    max_diff: float | None = None
    latency: dict[int, tuple[Stats, Stats, Stats]] = field(default_factory=dict)  # batch -> ours, theirs, ratio
    compiled: dict[str, tuple[Stats, Stats, float]] = field(default_factory=dict)  # who -> eager, compiled, first
    cuda: dict[int, tuple[Stats, Stats, Stats]] = field(default_factory=dict)
    error: str | None = None


def cuda_device() -> str | None:
    """The CUDA device's name, or None (this is what the report says when there is none)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def _latency(ours, theirs, x, repeat: int) -> tuple[Stats, Stats, Stats]:
    import torch

    def run(m):
        def go():
            with torch.inference_mode():
                m(x)
            if x.is_cuda:
                torch.cuda.synchronize()
        return go

    return measure_pair(run(ours), run(theirs), repeat=repeat, warmup=2)


def run(models: list[Model], repeat: int, batches=(1, 8), compile_models=(), log=print) -> list[ForwardRow]:
    import torch

    import archdsl

    rows = []
    for m in models:
        row = ForwardRow(m)
        rows.append(row)
        try:
            net = m.compile()
            n_builds = max(2, min(repeat, 5))
            row.build = measure(lambda: archdsl.build(net), repeat=n_builds, warmup=1)
            row.build_meta = measure(lambda: archdsl.build(net, init=False), repeat=max(repeat, 5), warmup=1)
            meta = archdsl.build(net, init=False)
            row.meta_ok = (all(p.is_meta for p in meta.parameters())
                           and sum(p.numel() for p in meta.parameters()) == net.params)
            del meta
            row.construct = measure(lambda: m.reference(aux=True), repeat=n_builds, warmup=1)
            ours = archdsl.build(net).eval()
            theirs = m.reference(aux=True).eval()
            archdsl.load_weights(ours, theirs)
            x = torch.randn(2, *m.input)
            with torch.inference_mode():
                row.max_diff = float((ours(x) - theirs(x)).abs().max())
            log(f"  {m.name}: build {row.build.ms()} ms (meta {row.build_meta.ms()} ms), "
                f"{m.library} constructor {row.construct.ms()} ms, max |diff| {row.max_diff:.2e}")
            for b in batches:
                xb = torch.randn(b, *m.input)
                # ratios of a few per cent need more pairs than the other figures
                row.latency[b] = _latency(ours, theirs, xb, max(repeat, 9))
                o, t, r = row.latency[b]
                log(f"    batch {b}: archdsl {o.ms()} ms, {m.library} {t.ms()} ms, ratio {r.median:.3f}")
            if m.name in compile_models:
                x1 = torch.randn(1, *m.input)
                for who, mod in (("archdsl", ours), (m.library, theirs)):
                    eager = measure(_runner(mod, x1), repeat=repeat, warmup=1)
                    torch._dynamo.reset()
                    # each compilation starts from empty caches, so that the second of the two does
                    # not reuse the first one's kernels (the two graphs are the same computation)
                    fresh = tempfile.mkdtemp(prefix="archdsl-inductor-")
                    before = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
                    os.environ["TORCHINDUCTOR_CACHE_DIR"] = fresh
                    torch._inductor.config.fx_graph_cache = False
                    try:
                        cm = torch.compile(mod)
                        t0 = time.perf_counter()
                        _runner(cm, x1)()
                        first = time.perf_counter() - t0
                        comp = measure(_runner(cm, x1), repeat=repeat, warmup=2)
                    finally:
                        if before is None:
                            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
                        else:
                            os.environ["TORCHINDUCTOR_CACHE_DIR"] = before
                        shutil.rmtree(fresh, ignore_errors=True)
                    row.compiled[who] = (eager, comp, first)
                    log(f"    torch.compile {who}: eager {eager.ms()} ms, compiled {comp.ms()} ms "
                        f"(x{eager.median / comp.median:.2f}; compiling took {first:.1f} s)")
                torch._dynamo.reset()
            if cuda_device() is not None:
                ours_c, theirs_c = ours.to("cuda"), theirs.to("cuda")
                for b in batches:
                    row.cuda[b] = _latency(ours_c, theirs_c, torch.randn(b, *m.input, device="cuda"), repeat)
                ours.to("cpu"), theirs.to("cpu")
            del ours, theirs
        except Exception as err:  # noqa: BLE001 - one model failing is a result, not the end of the run
            row.error = f"{type(err).__name__}: {err}"
            log(f"  {m.name}: failed: {row.error}")
    return rows


def _runner(mod, x):
    import torch

    def go():
        with torch.inference_mode():
            mod(x)
    return go
