"""`python -m bench`: run every benchmark on this machine and write BENCHMARKS.md.

    python -m bench                      # everything, every model (several minutes)
    python -m bench --quick              # a smoke run: one small model, few repetitions
    python -m bench --models resnet50 googlenet --repeat 7 --out /tmp/B.md
    python -m bench --sections headline command
    python -m bench --baseline f590abd   # also time an earlier revision's `archdsl compile`
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from . import agreement, analysis, command, forward, fresh, machine, scale
from .models import BY_NAME, QUICK, ROOT, missing, select
from .peers import PEERS, usable
from .report import kib_to_mib, ms, n, seconds, table, times

SECTIONS = ("headline", "analysis", "command", "agreement", "forward", "scale", "memory", "lsp")
COMMAND_SPEC = "specs/googlenet.arch"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help=f"smoke run: {', '.join(QUICK)}, 2 repetitions, "
                    "small scale sizes, no torch.compile")
    ap.add_argument("--models", nargs="+", metavar="NAME", choices=list(BY_NAME),
                    help=f"models to compare (default: all; choose from {', '.join(BY_NAME)})")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per measurement (default 5, quick 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="where to write the report")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="what to run")
    ap.add_argument("--baseline", metavar="REV", help="an earlier git revision whose `archdsl compile` and "
                    "import time to measure beside this one's")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (slow: minutes per model)")
    ap.add_argument("--classic", metavar="PEER", choices=[p.name for p in PEERS], default=None,
                    help="the classic peer of the headline (default: the fastest in this run's analysis section, "
                    "else ptflops)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads for everything torch runs "
                    "here (default: torch's own choice); 1 keeps timings steady on a machine shared with other work, "
                    "and compares one core with one core (archdsl's analysis is single-threaded Python)")
    return ap.parse_args(argv)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 5)
    import torch

    default_threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    models = select(args.models, args.quick)
    absent = missing(args.models, args.quick)
    started = time.time()
    load_before = machine.load_average()
    peers, peer_notes = usable()
    log(f"bench: {len(models)} model(s), repeat {repeat}, peers: "
        + ", ".join(f"{p.name} ({peer_notes[p.name]})" for p in peers))
    out: list[str] = []
    summary: list[str] = []

    analysis_rows = None
    if "analysis" in args.sections:
        log("analysis speed, in-process")
        analysis_rows = rows = analysis.run(models, peers, repeat, log)
        out.append(_analysis_md(rows, peers))
        loaded = [r.slowest_ratio() for r in rows if r.slowest_ratio() is not None]
        path = [r.slowest_ratio(path=True) for r in rows if r.slowest_ratio(path=True) is not None]
        safe = [r.conservative_ratio() for r in rows if r.conservative_ratio() is not None]
        if loaded:
            summary.append(
                f"- **In-process analysis** (repeated calls, after a warm-up): archdsl computes shapes, params and "
                f"MACs from the loaded spec {times(min(loaded))} to {times(max(loaded))} faster than the fastest "
                f"classic peer tool on the built model (medians; {times(min(safe))} to {times(max(safe))} in the "
                f"least favourable reading), {times(min(path))} to {times(max(path))} compiling from the path.")

    if "headline" in args.sections:
        log("headline: first compile in a fresh process")
        if args.classic:
            classic, why = {p.name: p for p in PEERS}[args.classic], "given with `--classic`"
        else:
            classic, why = fresh.pick_classic(peers, analysis_rows)
        if classic is not None and classic not in peers:
            log(f"  {classic.name} is not usable here: {peer_notes[classic.name]}")
            classic = None
        log(f"  classic peer: {classic.name if classic else 'none'} ({why})")
        rows = fresh.run(models, classic, repeat, threads if args.threads else 0, log)
        out.insert(0, _headline_md(rows, classic, repeat, threads, why))
        summary.insert(0, _headline_line(rows))

    if "command" in args.sections:
        log("whole commands")
        md, line = _command_md(repeat if not args.quick else 2, args.baseline, bool(peers))
        out.append(md)
        summary.append(line)

    if "agreement" in args.sections:
        log("agreement")
        results = []
        for m in models:
            a = agreement.agree(m, peers)
            results.append(a)
            log(f"  {m.name}: archdsl {'=' if a.exact else '!='} published; "
                + ", ".join(f"{p.peer} {'ok' if p.explained else 'UNEXPLAINED'}" for p in a.peers))
        out.append(_agreement_md(results, peers))
        exact = sum(a.exact for a in results)
        explained = sum(bool(p.explained) for a in results for p in a.peers)
        total = sum(len(a.peers) for a in results)
        summary.append(f"- **Agreement**: archdsl equals the published params and MACs on {exact} of "
                       f"{len(results)} models; every peer's difference is reproduced to the unit by its "
                       f"documented convention in {explained} of {total} (model, tool) pairs.")

    if "forward" in args.sections:
        log("built modules")
        compile_models = () if (args.quick or args.no_compile) else ("resnet50", "googlenet")
        rows = forward.run(models, repeat if not args.quick else 2, compile_models=compile_models, log=log)
        out.append(_forward_md(rows, threads))
        ratios = [r.latency[b][2].median for r in rows for b in r.latency]
        if ratios:
            inside = sum(0.95 <= x <= 1.05 for x in ratios)
            summary.append(f"- **Built modules**: forward latency ratio archdsl / reference from "
                           f"{min(ratios):.3f} to {max(ratios):.3f} (median of paired runs); {inside} of "
                           f"{len(ratios)} (model, batch) pairs within 1.00 +- 0.05.")

    if "scale" in args.sections:
        log("scale")
        sizes = [100, 1000] if args.quick else [100, 1000, 10_000]
        rows = scale.run(sizes, repeat, log)
        out.append(_scale_md(rows))
        big = {r.label.split()[0]: r for r in rows if r.layers >= 9000}
        if big:
            parts = []
            for shape, r in big.items():
                parts.append(f"{shape} out: the whole command {r.command.median:.2f} s cold (target < 2 s: "
                             f"{'met' if r.command.median < 2 else 'NOT MET'}), its first compile in a fresh "
                             f"process {r.first.median:.2f} s ({r.per_layer_us:.0f} us per layer)")
            summary.append("- **Scale**: 10,000 layers, " + "; ".join(parts).replace("written out", "every layer "
                           "written out").replace("repeated out", "written as a `repeat`") + ".")

    if "memory" in args.sections:
        log("memory")
        md, line = _memory_md(args.quick)
        out.append(md)
        summary.append(line)

    if "lsp" in args.sections:
        log("language server")
        md, line = _lsp_md(args.quick, log)
        out.append(md)
        summary.append(line)

    header = _header(args, repeat, models, absent, peers, peer_notes, load_before, started, threads,
                     default_threads)
    text = header + "\n## Summary\n\n" + "\n".join(summary) + "\n\n" + "\n".join(out) + NOTES
    args.out.write_text(text)
    log(f"wrote {args.out} in {time.time() - started:.0f} s")
    return 0


# ---------------------------------------------------------------- sections as markdown

NOTES = """
## Where the time goes

- **Start-up** (section 2). `archdsl compile` imports click and archdsl's own modules, and
  none of Lark, torch, networkx, pydantic or rich (tests/test_cli.py checks it): the typed
  program is frozen dataclasses (`archdsl/syntax.py`; pydantic validates them in the tests,
  not at run time), the report's table is a small plain formatter (`report.draw_table`),
  networkx is imported only when `CompiledNetwork.graph` is first read, and the diagram module
  only when a diagram is drawn. The largest fixed costs left are the interpreter itself, click
  and the classes archdsl defines at import (a frozen dataclass costs about 0.6 ms to create).
- **Parse.** Lark takes 70-150 ms to work out the grammar's LALR tables, more than any
  network's compile, so the package ships them (`archdsl/grammar.tables`, checked against the
  grammar by CRC-32) in two parts: the parse table and the terminals' regular expressions,
  which archdsl's own loop runs (`archdsl/lalr.py`), and Lark's parser in a flat form, rebuilt
  only for a text that does not parse. A text that parses never imports Lark: the loop reads
  the tokens, shifts and reduces by Lark's table and calls, at each reduction, the method of the
  program's builder that a walk of Lark's tree would call (a chain of one-symbol `?rule`
  reductions, an expression name's eleven precedence levels, is one step). One scanner of all
  terminals answers first, and a parser state's own scanner (Lark's contextual lexer) is
  compiled only when that state rejects the token found: `re` keeps nothing between processes,
  and the root scanner alone takes about 1 ms to compile. A fresh process's setup (tables read,
  scanner compiled) is 2-3 ms; the loop then costs 4-6 us a token, the typed program built
  included (googlenet.arch is 825 tokens, resnet.arch 1,456). At the first thing the loop does
  not handle (a mistake) Lark parses the text again and `archdsl/parse_errors.py` words its
  error, so a mistake is reported exactly as Lark's parser reports it (tests/test_lalr.py
  checks both paths on every spec, every docs example and mutants of them). A compile of one
  network (`compile -n NAME`, `archdsl.load(path, network)`) parses and checks the file's
  other networks without building them, 0.72x to 0.86x of a whole parse of alexnet.arch,
  googlenet.arch and resnet.arch: resnet50's first compile still reads the 18 other networks of
  specs/resnet.arch. That is why the parse is most of a first compile on the smaller models,
  and most of resnet50's, the one deep model furthest from 10x the meta counter. The nesting
  bound (E105) is checked before the parse by visiting the brackets alone. Parsing and
  expanding run with Python's cyclic garbage collector paused (`syntax.gc_paused`): they
  allocate many long-lived objects and almost no cycles.
- **Compile** (sections 1 and 5). One interpreter (`archdsl/expand.py`) runs every statement
  of every block call, with no memo of earlier calls or statements: a layer costs its
  arguments' evaluation, its kind's `bind`, and its inference through the kind (a few
  arithmetic operations; `archdsl/infer.py`). The per-node figure of the headline is that
  cost, the parse included.
- **Built modules** (section 4): activations overwrite fresh tensors in place where nothing else
  reads them, as torchvision's and timm's `ReLU(inplace=True)` do (the kinds' `fresh_output`);
  containers are plain `nn.Sequential` bodies and one `Merge` module whose merge kind combines
  the branches.
"""


def _header(args, repeat, models, absent, peers, peer_notes, load_before, started, threads,
            default_threads) -> str:
    info = machine.describe()
    versions = machine.versions()
    cmd = "python -m bench" + (" --quick" if args.quick else "") + (
        f" --models {' '.join(args.models)}" if args.models else "") + (
        f" --repeat {args.repeat}" if args.repeat else "") + (
        f" --threads {args.threads}" if args.threads else "") + (
        f" --baseline {args.baseline}" if args.baseline else "") + (
        " --no-compile" if args.no_compile and not args.quick else "") + (
        f" --sections {' '.join(args.sections)}" if list(args.sections) != list(SECTIONS) else "")
    lines = [
        "# Benchmarks",
        "",
        "archdsl computes a network's shapes, parameters and multiply-accumulates from its text; today one "
        "builds the network in PyTorch and runs torch's own FlopCounterMode (on the meta device, the strongest "
        "peer), fvcore, ptflops, thop, torchinfo or calflops on it. This file "
        f"compares the two, side by side, in one run on one machine. Regenerate it with `{cmd}` "
        "(`--quick` for a smoke run; the bench tools come with `pip install -e .[bench]`).",
        "",
        "Every time is the median of repeated runs, with the minimum and maximum in parentheses; "
        f"{repeat} timed run{'s' * (repeat != 1)} per figure unless a table says otherwise, after an untimed "
        f"warm-up. torch ran with {threads} intra-op thread{'s' * (threads != 1)} (its default here: "
        f"{default_threads}) for the peers (the headline's fresh processes too), the agreement checks and the "
        "built modules"
        + (": one core against one core, as archdsl's analysis is single-threaded Python, and steady on a "
           "machine shared with other work." if threads == 1 else "."),
        "",
        "| | |",
        "| --- | --- |",
        f"| date | {datetime.datetime.fromtimestamp(started).strftime('%Y-%m-%d %H:%M')} |",
    ]
    lines += [f"| {k} | {v} |" for k, v in info.items()]
    lines.append(f"| load average (1/5/15 min) | {load_before} at the start, {machine.load_average()} at the end |")
    lines.append("| versions | " + ", ".join(f"{k} {v}" for k, v in versions.items()) + " |")
    lines.append("")
    unusable = [p for p in PEERS if p not in peers]
    if unusable:
        lines.append("Peer tools not measured: " + "; ".join(f"{p.name}: {peer_notes[p.name]}" for p in unusable)
                     + ".")
        lines.append("")
    if absent:
        lines.append("Models without a spec yet (not measured): " + ", ".join(m.name for m in absent) + ".")
        lines.append("")
    loads = machine.load_average().split(" / ")[0]
    try:
        busy = float(loads) > (len(__import__("os").sched_getaffinity(0)) * 0.75)
    except (ValueError, AttributeError):
        busy = False
    if busy:
        lines.append("The machine was shared with other work during this run (see the load average): "
                     "absolute times are inflated and noisy; the ratios come from runs taken in turn, which "
                     "keeps them comparable.")
        lines.append("")
    return "\n".join(lines)


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("pass" if ok else "**fail**")


def _headline_md(rows, classic, repeat: int, threads: int, why: str) -> str:
    cname = classic.name if classic is not None else None
    out = ["## Headline: the first compile in a fresh process, parse included", "",
           f"Each figure: {repeat} fresh `python` processes (median, min-max), after one untimed round. Each "
           "process imports its libraries first, untimed (*import*, reported apart), then times one call with "
           "`time.perf_counter`. *archdsl*: `archdsl.compile(spec path, network)`: the file read and parsed, "
           "every node made, inferred and counted. *meta counter*: the torchvision/timm model constructed under "
           "`with torch.device(\"meta\")` and a meta input of the spec's input shape run through it under "
           "`torch.utils.flop_counter.FlopCounterMode(display=False)` (MACs = flops / 2, params = the sum of the "
           "parameters' `numel()`): torch's own counter, no weights initialised and no arithmetic done. "
           + (f"*{cname}*: the model constructed on the CPU, then counted by {cname} ({why}). " if cname else "")
           + "Both torch models with `weights=None`, aux heads off and `init_weights=False` where the constructor "
           f"offers it; torch with {threads} intra-op thread{'s' * (threads != 1)}; every process with an empty "
           "cache folder (`XDG_CACHE_HOME`), as on a machine's first run (archdsl keeps nothing on disk). "
           "*parse* and *expansion*: archdsl's time split in two, `archdsl.load(path, network)` (the file read and "
           "parsed, the parser's tables loaded; the file's other networks checked, not built) and "
           "`spec.compile(network)` (every node made, inferred and counted); "
           "their sum is `archdsl.compile(path, network)`. Times in ms. *per node*: archdsl's time over its "
           "number of graph nodes (`len(list(net.nodes()))`, the input included); *expansion per node*: the "
           "expansion's alone. *meta / archdsl*: how many times faster "
           "archdsl is (medians); target: faster than the meta counter on every model, and >= 10x on GoogLeNet "
           "and every deeper model. *least favourable*: the meta counter's fastest process over archdsl's "
           "slowest. *with imports*: the same ratio with each side's import counted. *figures*: params and MACs "
           "equal the published ones (archdsl / meta counter).", ""]
    headers = ["model", "nodes", "archdsl ms", "per node us", "parse ms", "expansion ms", "expansion per node us",
               "meta counter ms",
               "meta / archdsl", "target",
               "least favourable", "archdsl import ms", "torch import ms", "with imports"]
    if cname:
        headers += [f"{cname} ms", f"{cname} / archdsl"]
    headers.append("figures")
    body = []
    for r in rows:
        a, m = r.archdsl, r.meta
        aside, mside = isinstance(a, fresh.Side), isinstance(m, fresh.Side)
        cells = [r.model.name, f"{r.nodes:,}" if aside else "-", a.time.ms(2) if aside else a,
                 f"{r.per_node_us:,.0f}" if aside else "-",
                 a.parse.ms(2) if aside else "-", a.expansion.ms(2) if aside else "-",
                 f"{r.expansion_per_node_us:,.0f}" if aside else "-",
                 m.time.ms(2) if mside else m,
                 f"{r.ratio():.2f}x" if r.ratio() is not None else "-",
                 f"{'>= 10x' if r.model.deep else '> 1x'}: {_mark(r.passed())}",
                 f"{r.least_favourable():.2f}x" if r.least_favourable() is not None else "-",
                 a.imports.ms(0) if aside else "-", m.imports.ms(0) if mside else "-",
                 f"{r.ratio(total=True):.2f}x" if r.ratio(total=True) is not None else "-"]
        if cname:
            c = r.classic
            cells += [c.time.ms(1) if isinstance(c, fresh.Side) else str(c),
                      times(r.ratio("classic")) if r.ratio("classic") is not None else "-"]
        cells.append(" / ".join({True: "✓", False: "✗", None: "-"}[r.agrees(k)] for k in ("archdsl", "meta")))
        body.append(cells)
    out.append(table(headers, body))
    passed = [r for r in rows if r.passed()]
    out.append(f"Targets met on {len(passed)} of {len(rows)} models"
               + (f"; not on {', '.join(r.model.name for r in rows if r.passed() is False)}" if len(passed) < len(rows)
                  else "") + ".\n")
    return "\n".join(out)


def _headline_line(rows) -> str:
    ok = [r for r in rows if r.ratio() is not None]
    if not ok:
        return "- **First compile in a fresh process**: not measured (see the headline table)."
    lo, hi = min(ok, key=lambda r: r.ratio()), max(ok, key=lambda r: r.ratio())
    shallow = [r for r in ok if not r.model.deep]
    deep = [r for r in ok if r.model.deep]
    per_node = [r.per_node_us for r in ok]
    faster = [r for r in ok if r.ratio() > 1]
    ten = [r for r in deep if r.ratio() >= 10]
    parts = [f"- **First compile in a fresh process** (the headline; parse included, imports apart): archdsl "
             f"{min(r.archdsl.time.median for r in ok) * 1e3:.1f} to {max(r.archdsl.time.median for r in ok) * 1e3:.1f}"
             f" ms, torch's FlopCounterMode on the meta device {min(r.meta.time.median for r in ok) * 1e3:.1f} to "
             f"{max(r.meta.time.median for r in ok) * 1e3:.1f} ms; meta / archdsl from {lo.ratio():.2f}x "
             f"({lo.model.name}) to {hi.ratio():.2f}x ({hi.model.name}). Target faster than the meta counter on "
             f"every model: {'met' if len(faster) == len(ok) else 'NOT MET'} ({len(faster)} of {len(ok)})"]
    if deep:
        parts.append(f"target >= 10x on GoogLeNet and deeper: {'met' if len(ten) == len(deep) else 'NOT MET'} "
                     f"({len(ten)} of {len(deep)}"
                     + (f"; {', '.join(f'{r.model.name} {r.ratio():.2f}x' for r in deep if r.ratio() < 10)}"
                        if len(ten) < len(deep) else "") + ")")
    if shallow:
        parts.append("shallower models: " + ", ".join(f"{r.model.name} {r.ratio():.2f}x" for r in shallow))
    parse_share = [r.archdsl.parse.median / r.archdsl.time.median for r in ok]
    expansion = [r.expansion_per_node_us for r in ok]
    parts.append(f"{min(per_node):,.0f} to {max(per_node):,.0f} us per node, the parse {min(parse_share):.0%} to "
                 f"{max(parse_share):.0%} of it (the expansion alone {min(expansion):,.0f} to {max(expansion):,.0f} "
                 "us per node). Imports (untimed above): archdsl "
                 f"{min(r.archdsl.imports.median for r in ok) * 1e3:.0f}-{max(r.archdsl.imports.median for r in ok) * 1e3:.0f}"
                 f" ms, torch {min(r.meta.imports.median for r in ok) * 1e3:,.0f}-"
                 f"{max(r.meta.imports.median for r in ok) * 1e3:,.0f} ms.")
    return "; ".join(parts)


def _analysis_md(rows, peers) -> str:
    names = [p.name for p in peers]
    out = ["## 1. Analysis speed: the figures of one network, in-process, repeated", "",
           "Each tool called again and again in one process (a notebook, a sweep), after a warm-up call: "
           "whatever it keeps from one call to the next counts. archdsl, each time ending with params, MACs and "
           "the output shape: *loaded*: `unit.compile(network)` on the spec loaded beforehand with "
           "`archdsl.load(path)`, the counterpart of the peers' model built beforehand (*per node*: its median "
           "over the graph's nodes, input included: the cost of expanding, inferring and counting one node); *path*: "
           "`archdsl.compile(path, network)`, the file read and parsed again. Peers: one call of the tool on the "
           "torchvision/timm model, built beforehand (its construction is not counted), input batch 1, eval mode. "
           "Times in ms. *x fastest peer*: the fastest peer's median over archdsl's median (loaded / path); "
           "*least favourable*: the fastest peer's fastest run over archdsl's loaded median; *constructor*: the "
           "torchvision/timm constructor, weights initialised, which a peer's user runs first. What a user pays "
           "once, in a fresh process, is the headline's.", ""]
    headers = ["model", "layers", "archdsl loaded", "per node us", "archdsl path"] + names + [
        "x fastest peer: loaded / path", "least favourable", "constructor"]
    body = []
    for r in rows:
        layers = sum(1 for i in r.model.compile().nodes()) - 1
        per_node = r.loaded.median / (layers + 1) * 1e6  # the expansion's own cost, input node included
        cells = [r.model.name, f"{layers:,}", ms(r.loaded, 3), f"{per_node:,.1f}", ms(r.path, 3)]
        for p in names:
            s = r.peers.get(p)
            cells.append(ms(s, 1) if not isinstance(s, str) else s)
        cells.append(f"{times(r.slowest_ratio())} / {times(r.slowest_ratio(path=True))}")
        cells.append(times(r.conservative_ratio()))
        cells.append(ms(r.construct, 0))
        body.append(cells)
    out.append(table(headers, body))
    if rows and names:
        out.append("Speed-up over each peer (peer median / archdsl loaded median):\n")
        body = [[r.model.name] + [times(r.ratio(p)) for p in names] for r in rows]
        out.append(table(["model"] + names, body))
    return "\n".join(out)


def _agreement_table(results, names, what: str) -> str:
    """One figure (`macs` or `params`) per model: published, archdsl (checked), each peer (bold
    where it differs from the published one)."""
    body = []
    for a in results:
        published, ours = getattr(a.published, what), getattr(a.archdsl, what)
        cells = [a.model.name, n(published), n(ours) + (" ✓" if ours == published else " ✗")]
        for p in names:
            r = next((x for x in a.peers if x.peer == p), None)
            if r is None or r.count is None:
                cells.append("failed" if r else "-")
            else:
                v = getattr(r.count, what)
                cells.append(n(v) if v == published else f"**{n(v)}**")
        body.append(cells)
    return table([{"macs": "MACs", "params": "params"}[what], "published", "archdsl"] + names, body)


def _command_md(repeat: int, baseline: str | None, with_torchinfo: bool) -> tuple[str, str]:
    spec = COMMAND_SPEC
    warm = command.fresh_cache()  # every run of the warm command uses it: the warm-up round's run first
    cold = f"`archdsl compile {spec}`, cold"
    cmds = {
        cold: (command.compile_argv(spec), command.cold_env),
        f"`archdsl compile {spec}`, warm": (command.compile_argv(spec), command.measured_env(warm)),
        "`archdsl compile specs/nin.arch`, cold": (command.compile_argv("specs/nin.arch"), command.cold_env),
    }
    if with_torchinfo:
        cmds["one-liner: torchvision googlenet + torchinfo summary"] = (
            [command.PYTHON, "-c", command.TORCHINFO_ONE_LINER], command.cold_env)
    cmds["one-liner: torchvision googlenet + torch FlopCounterMode, meta device"] = (
        [command.PYTHON, "-c", command.FLOPCOUNTER_ONE_LINER], command.cold_env)
    tree = None
    if baseline:
        tree = command.checkout_revision(baseline)
        for s in (spec, "specs/nin.arch"):
            cmds[f"`archdsl compile {s}` at {baseline}, cold"] = (
                [command.PYTHON, "-c", "from archdsl.cli import main; main()", "compile", str(ROOT / s)],
                lambda: command.baseline_env(tree), tree)
    res = command.time_commands(cmds, repeat=repeat, warmup=1)
    ours = res[cold]["wall"].median
    rows = []
    for name, r in res.items():
        rows.append([name, seconds(r["wall"]), seconds(r["cpu"]), kib_to_mib(r["rss"].median),
                     "1.0x" if name == cold else times(r["wall"].median / ours)])
    warm_s = res[f"`archdsl compile {spec}`, warm"]["wall"].median
    out = ["## 2. Whole commands: interpreter start included", "",
           f"Each command run {repeat} times, the commands in turn, after one untimed round (which caches "
           "archdsl's bytecode, as any installed package has it: this environment sets PYTHONDONTWRITEBYTECODE, "
           "which the benchmark unsets for its commands, and warms the operating system's page cache). *cold*: "
           "every run with a new empty cache folder (`XDG_CACHE_HOME`), as the first run on a machine; *warm*: "
           "every run with the one cache folder that the runs before it used (whatever a run leaves there for "
           "the next counts). Seconds of wall time and of CPU (user + system), peak resident memory, and each "
           "command's wall time relative to the cold `archdsl compile`'s.", "",
           table(["command", "wall s", "CPU s", "peak RSS", "vs archdsl"], rows),
           f"Targets: cold < 0.35 s: {_mark(ours < 0.35)} ({ours:.3f} s); warm < 0.2 s: {_mark(warm_s < 0.2)} "
           f"({warm_s:.3f} s).", ""]
    # where the start-up goes
    now, mods = command.import_profile(repeat=max(3, repeat))
    compile_mods = command.modules_of_compile(spec)
    torch_free = not any(m == "torch" or m.startswith("torch.") for m in compile_mods)
    heavy = {m.split(".")[0] for m in compile_mods} & {"torch", "networkx", "rich", "lark", "pydantic", "click",
                                                       "numpy"}
    base = None
    if tree is not None:
        base, _ = command.import_profile(env=command.baseline_env(tree), repeat=max(3, repeat), cwd=tree)
    keys = sorted(set(now) | set(base or {}), key=lambda k: -max(now.get(k, 0), (base or {}).get(k, 0)))[:12]
    hdr = ["package (self time, ms)"] + ([f"at {baseline}"] if base else []) + ["now"]
    body = [[k] + ([f"{base.get(k, 0):.0f}"] if base else []) + [f"{now.get(k, 0):.0f}"] for k in keys]
    body.append(["**total**"] + ([f"{sum(base.values()):.0f}"] if base else []) + [f"{sum(now.values()):.0f}"])
    out += ["", "Import time of `import archdsl.cli` (`python -X importtime`, median of "
            f"{max(3, repeat)} runs, self time summed per top-level package, the largest first):", "",
            table(hdr, body),
            f"`archdsl compile {spec}` imports torch: **{'no' if torch_free else 'YES'}**. Of the heavy packages "
            f"it imports: {', '.join(sorted(heavy)) or 'none'}.", ""]
    if tree is not None:
        command.cleanup(tree)
    one = next((k for k in res if k.startswith("one-liner: torchvision googlenet + torchinfo")), None) or \
        next(k for k in res if k.startswith("one-liner"))
    low = res[one]["wall"].min / res[cold]["wall"].max
    base_line = ""
    if baseline:
        b = res[f"`archdsl compile {spec}` at {baseline}, cold"]["wall"].median
        base_line = f" It took {b:.3f} s at {baseline} ({b / ours:.1f}x longer)."
    line = (f"- **Whole command**: `archdsl compile {spec}` takes {ours:.3f} s wall cold (an empty cache folder; "
            f"interpreter start included; target < 0.35 s: {'met' if ours < 0.35 else 'NOT MET'}) and "
            f"{warm_s:.3f} s warm (target < 0.2 s: {'met' if warm_s < 0.2 else 'NOT MET'}); the "
            f"{one.split(': ', 1)[1]} one-liner {res[one]['wall'].median:.2f} s, {res[one]['wall'].median / ours:.1f}x "
            f"longer ({low:.1f}x in the least favourable reading; target >= 10x: "
            f"{'met' if res[one]['wall'].median / ours >= 10 else 'not met'}).{base_line}")
    return "\n".join(out), line


def _agreement_md(results, peers) -> str:
    names = [p.name for p in peers]
    out = ["## 3. Agreement: MACs and params from every tool", "",
           "Published: /work/shared/reference/figures.md (torchvision's documented `num_params` and GFLOPS, "
           "timm's model), conv and fc multiply-accumulates only. GoogLeNet and Inception-v3 without their aux "
           "heads (as torchvision ships them). A peer's figure in **bold** differs from the published one.", ""]
    for what in ("macs", "params"):
        out.append(_agreement_table(results, names, what))
    if not names:
        return "\n".join(out)
    out += ["### Why each tool differs, checked", "",
            "Each tool's convention is written as a formula (bench/agreement.py, from its documentation and "
            "source): its MACs = the conv/fc MACs + a sum of terms. Analytic terms come from archdsl's graph "
            "(bias additions, batch-norm values, activation values, pooling inputs); module terms from one "
            "forward pass of the reference model with a hook on every module (what runs as an `nn.Module`, "
            "and so is visible to hooks, and what runs as a `torch.nn.functional` call). A cell says the "
            "difference from the published figure and whether the formula reproduces the tool's figure to "
            "the unit.", ""]
    for p in names:
        h = agreement.HYPOTHESES[p]
        out.append(f"- **{p}**: {h.summary}.")
        for c, k, text in (*h.macs, *h.params):
            out.append(f"  - `{k}` x{c}: {text}")
    out.append("")
    body = [[a.model.name] + [agreement.why(p, a) for p in names] for a in results]
    out.append(table(["model"] + names, body, align="l" * (len(names) + 1)))
    holds = sum(bool(p.explained) for a in results for p in a.peers)
    total = sum(len(a.peers) for a in results)
    out.append(f"Formulas that reproduce the tool's figures exactly: {holds} of {total}.\n")
    return "\n".join(out)


def _forward_md(rows, threads: int) -> str:
    out = ["## 4. Built modules: construction and CPU forward latency, same weights", "",
           f"torch intra-op threads: {threads}.", "",
           "archdsl: `archdsl.build(net)` from the compiled network (weights initialised as torch initialises "
           "them), and `archdsl.build(net, init=False)` (meta device: structure and shapes, no memory). "
           "Reference: the torchvision/timm constructor with its own initialisation. Weights are then copied "
           "with `archdsl.load_weights(ours, reference)`; *max |diff|* is the largest difference between the two "
           "outputs for a random batch of 2. Latency: eval mode, `torch.inference_mode()`, the two modules "
           "run in turn; *ratio* is the median of the per-pair ratios archdsl / reference (1.00 = as fast).", ""]
    body = []
    for r in rows:
        if r.error:
            body.append([r.model.name, f"failed: {r.error}"] + [""] * 9)
            continue
        cells = [r.model.name, f"{r.max_diff:.1e}", ms(r.build, 1), ms(r.build_meta, 1) +
                 ("" if r.meta_ok else " (not meta!)"), ms(r.construct, 1)]
        for b in (1, 8):
            if b in r.latency:
                o, t, ratio = r.latency[b]
                cells += [ms(o, 1), ms(t, 1), f"{ratio.median:.3f} ({ratio.min:.2f}-{ratio.max:.2f})"]
            else:
                cells += ["-", "-", "-"]
        body.append(cells)
    out.append(table(["model", "max abs diff", "archdsl build ms", "build init=False ms", "reference ctor ms",
                      "batch 1 archdsl ms", "batch 1 ref ms", "ratio", "batch 8 archdsl ms", "batch 8 ref ms",
                      "ratio"], body))
    comp = [(r.model.name, who, v) for r in rows for who, v in r.compiled.items()]
    if comp:
        body = [[name, who, ms(e, 1), ms(c, 1), f"{e.median / c.median:.2f}x", f"{first:.0f} s"]
                for name, who, (e, c, first) in comp]
        out += ["`torch.compile` (default mode, inductor on CPU), batch 1:", "",
                table(["model", "module", "eager ms", "compiled ms", "speed-up", "first call (compiling)"], body)]
    cuda = forward.cuda_device()
    if cuda is None:
        out.append("CUDA: no CUDA device on this machine; GPU latency not measured.\n")
    else:
        body = [[r.model.name, str(b), ms(o, 2), ms(t, 2), f"{ratio.median:.3f}"]
                for r in rows for b, (o, t, ratio) in r.cuda.items()]
        out += [f"CUDA ({cuda}):", "", table(["model", "batch", "archdsl ms", "reference ms", "ratio"], body)]
    return "\n".join(out)


def _scale_md(rows) -> str:
    out = ["## 5. Scale: compile time against depth", "",
           "Fresh processes, as in the headline, each with an empty cache folder: *first compile*: "
           "`archdsl.compile(file)` timed in a process that has imported archdsl (untimed); *whole command*: "
           "`archdsl compile FILE` (interpreter start, import and the table printed included). "
           "*written*: every layer a statement of its own (conv / bn / relu in turn: the parser's worst case); "
           "*repeated*: a residual unit of 7 layers written once and expanded by `repeat` (the expansion's "
           "case). Layers are graph nodes, the input excluded. Target: 10,000 layers under 2 s for the whole "
           "command, cold.", ""]
    body = [[r.label, f"{r.layers:,}", f"{r.chars:,}", ms(r.first, 1), f"{r.per_layer_us:.1f}", seconds(r.command),
             _mark(r.command.median < 2) if r.layers >= 9000 else ""] for r in rows]
    out.append(table(["spec", "layers", "characters", "first compile ms", "us/layer", "whole command s",
                      "< 2 s"], body))
    return "\n".join(out)


def _memory_md(quick: bool) -> tuple[str, str]:
    import tempfile

    path, network, nodes = scale.largest_spec()
    rel = path.relative_to(ROOT)
    runs = command.time_commands({"a": (command.compile_argv(str(rel), "-n", network), None)}, repeat=3,
                                 warmup=1)["a"]
    base = command.time_commands({"a": ([command.PYTHON, "-c", "pass"], None)}, repeat=3, warmup=0)["a"]
    rows = [[f"`archdsl compile {rel} -n {network}` ({nodes:,} nodes)", kib_to_mib(runs["rss"].median),
             seconds(runs["wall"])]]
    gen_line = ""
    if not quick:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "written_10000.arch"
            p.write_text(scale.written_spec(10_000))
            big = command.time_commands({"a": (command.compile_argv(str(p), "--format", "json"), None)},
                                        repeat=3, warmup=1)["a"]
            rows.append(["`archdsl compile` of the generated 10,000-layer spec (`--format json`)",
                         kib_to_mib(big["rss"].median), seconds(big["wall"])])
            gen_line = f"; {kib_to_mib(big['rss'].median)} for the generated 10,000-layer spec"
    rows.append(["`python -c pass` (the interpreter alone)", kib_to_mib(base["rss"].median), seconds(base["wall"])])
    out = ["## 6. Memory", "", "Peak resident set size of the whole process (the operating system's account, "
           "`os.wait4`), median of 3 cold runs (an empty cache folder each) after a warm-up.", "",
           table(["command", "peak RSS", "wall s"], rows)]
    line = (f"- **Memory**: `archdsl compile` peaks at {kib_to_mib(runs['rss'].median)} on the largest spec "
            f"({network}, {nodes:,} nodes){gen_line}.")
    return "\n".join(out), line


def _lsp_md(quick: bool, log) -> tuple[str, str]:
    try:  # the client (pytest-lsp) and the server's library (pygls): the test and bench extras
        import pygls  # noqa: F401
        import pytest_lsp  # noqa: F401

        from . import lsp
    except ImportError as err:
        why = f"not measured: {err}"
        return f"## 7. The language server: an edit's latency\n\n{why}.\n", f"- **Language server**: {why}."
    edits = 5 if quick else 20
    rows = lsp.run(lsp.DEFAULT, edits, log)
    body = [[f"specs/{name}", place, f"{median:.1f}", f"{p90:.1f}", f"{cpu:.1f}",
             f"< {lsp.TARGET_MS[name]} ms: " + _mark(median < lsp.TARGET_MS[name])] for name, place, (median, p90, cpu)
            in rows]
    out = ["## 7. The language server: an edit's latency", "",
           "`archdsl lsp` in a subprocess, driven over stdio by a real client (pytest-lsp), as `python -m bench.lsp` "
           f"does: each spec opened, then {edits} edits at each of three places (after two untimed ones), a digit "
           "of a channel count changed and changed back as a person typing does: in the last network's body, in "
           "the first network's body, and in a block every network uses. Each time runs from sending "
           "`textDocument/didChange` to having both the `publishDiagnostics` notification and the answer to the "
           "`textDocument/inlayHint` request sent right after the change: until the errors and the shapes are on "
           "screen. *server CPU*: the server process's user + system time per edit (from /proc; 10 ms ticks, "
           "so a mean). Target: within 50 ms of an edit for specs/googlenet.arch, 150 ms for "
           "specs/preact_resnet.arch (whose last network, preact_resnet1001, is 3,339 nodes, every one of them "
           "made again after an edit there).", "",
           table(["spec", "edit", "median ms", "p90 ms", "server CPU ms", "target"], body)]
    worst: dict[str, float] = {}  # spec -> its slowest edit's median
    for name, _, (median, _, _) in rows:
        worst[name] = max(median, worst.get(name, 0.0))
    met = sum(median < lsp.TARGET_MS[name] for name, _, (median, _, _) in rows)
    line = ("- **Language server**: diagnostics and inlay hints on screen "
            + ", ".join(f"{w:.0f} ms after an edit at worst for specs/{name} (target < {lsp.TARGET_MS[name]} ms: "
                        f"{'met' if w < lsp.TARGET_MS[name] else 'NOT MET'})" for name, w in worst.items())
            + f" (median of {edits} edits; {met} of {len(rows)} (spec, edit) pairs within their target).")
    return "\n".join(out), line


if __name__ == "__main__":
    sys.exit(main())
