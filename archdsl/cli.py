"""The `archdsl` command: a thin layer over the API.

Exit codes: 0 success; 1 a mistake in a spec (or a failed `expect`); 2 a usage mistake;
3 an internal error (a bug: its traceback is shown with --debug).
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Iterable

import click

from . import __version__
from .diagnostics import ArchError

EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3


def _echo_err(text: str) -> None:
    click.echo(text, err=True)


def _fail(err: ArchError) -> None:
    _echo_err(err.render())
    usage = all(d.code.startswith("E6") for d in err.diagnostics)
    sys.exit(EXIT_USAGE if usage else EXIT_SPEC)


class _Group(click.Group):
    """Turns ArchError into a rendered diagnostic and anything else into a bug report."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ArchError as err:
            _fail(err)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            _echo_err("interrupted")
            sys.exit(130)
        except Exception:  # noqa: BLE001 - an internal error: never a bare traceback
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            else:
                exc = sys.exc_info()[1]
                _echo_err(f"archdsl: internal error: {type(exc).__name__}: {exc}\n"
                          "This is a bug in archdsl, not in your spec. Please report it with the spec and "
                          "the output of the same command with --debug.")
            sys.exit(EXIT_INTERNAL)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archdsl")
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """archdsl: write, check and share convolutional network architectures."""
    ctx.obj = {"debug": debug}


def _input_opt(f):
    return click.option("--input", "input_", metavar="CxHxW", help="Override the spec's input shape.")(f)


def _net_opt(f):
    return click.option("-n", "--network", metavar="NAME", help="The network to use (default: every one).")(f)


def _spec_arg(f):
    return click.argument("file", type=click.Path(dir_okay=False, path_type=Path))(f)


def _ensure_file(file: Path) -> None:
    if not file.is_file():
        raise click.UsageError(f"no such file: {file}")


@main.command("compile")
@_spec_arg
@_net_opt
@_input_opt
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json"]), default="table",
              show_default=True, help="Report format.")
@click.option("--width", type=int, default=120, show_default=True, help="Table width in characters.")
def compile_cmd(file: Path, network: str | None, input_: str | None, fmt: str, width: int) -> None:
    """Validate FILE and print the analytic report of its networks."""
    _ensure_file(file)
    nets = compile_networks(file, network, input_)
    if fmt == "json":
        reports = [n.report().to_dict() for n in nets]
        click.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        return
    for i, net in enumerate(nets):
        if i:
            click.echo("")
        rep = net.report()
        click.echo(rep.to_markdown() if fmt == "markdown" else rep.to_table(width), nl=False)


@main.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-x", "--fail-fast", is_flag=True, help="Stop at the first failing network.")
def check_cmd(paths: tuple[Path, ...], fmt: str, fail_fast: bool) -> None:
    """Validate every network in FILES and folders (recursively) and evaluate every `expect`."""
    files = list(_arch_files(paths))
    ok = check_paths(files, fmt, fail_fast, click.echo, _echo_err)
    sys.exit(0 if ok else EXIT_SPEC)


def _arch_files(paths: Iterable[Path]) -> Iterable[Path]:
    for p in paths:
        if p.is_dir():
            yield from sorted(p.rglob("*.arch"))
        elif p.is_file():
            yield p
        else:
            raise click.UsageError(f"no such file or folder: {p}")


@main.command("build")
@_spec_arg
@_net_opt
@_input_opt
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--batch", type=click.IntRange(1, 4096), default=1, show_default=True)
@click.option("--max-params", type=int, default=None, help="Refuse to build above this many parameters.")
def build_cmd(file: Path, network: str | None, input_: str | None, device: str, batch: int,
              max_params: int | None) -> None:
    """Lower a network to PyTorch, run one forward pass and print its shape, size and time."""
    _ensure_file(file)
    build_and_run(file, network, input_, device, batch, max_params, click.echo)


@main.command("kinds")
def kinds_cmd() -> None:
    """List the layer kinds the language knows."""
    from .layers import kinds

    for k in sorted(kinds(), key=lambda k: k.name):
        alias = f" (also {', '.join(k.aliases)})" if k.aliases else ""
        click.echo(f"{k.name:<18} {k.summary}{alias}")


# ---------------------------------------------------------------- the work behind the commands


def compile_networks(file: Path, network: str | None, input_: str | None):
    from . import compile, compile_all

    if network is not None:
        return [compile(file, network, input_)]
    return compile_all(file, input_)


def check_paths(files: list[Path], fmt: str, fail_fast: bool, out, err) -> bool:
    """Check every network of every file: one line each, then a summary. True when all pass."""
    from . import load
    from .graph import build_graph, select_networks

    results, failures = [], 0
    for file in files:
        try:
            unit = load(file)
            programs = select_networks(unit, None)
        except ArchError as e:
            failures += 1
            results.append({"file": str(file), "network": None, "ok": False, "error": e.first.code,
                            "location": e.first.span.where() if e.first.span else str(file)})
            if fmt == "text":
                out(f"FAIL  {file}")
                err(e.render())
            if fail_fast:
                break
            continue
        for prog in programs:
            try:
                net = build_graph(unit, prog)
                outcomes = net.check()
            except ArchError as e:
                failures += 1
                results.append({"file": str(file), "network": prog.name, "ok": False, "error": e.first.code,
                                "location": e.first.span.where() if e.first.span else str(file)})
                if fmt == "text":
                    out(f"FAIL  {file}:{prog.name}")
                    err(e.render())
                if fail_fast:
                    break
                continue
            bad = [o for o in outcomes if not o.ok]
            row = {"file": str(file), "network": net.name, "ok": not bad, "params": net.params, "macs": net.macs,
                   "output": list(net.output_shape.dims), "expectations": len(outcomes),
                   "failed": [{"what": o.what, "location": o.expectation.stmt.span.where(),
                               "expected": _plain(o.expectation.expected), "found": _plain(o.found)} for o in bad]}
            results.append(row)
            if fmt == "text":
                status = "ok  " if not bad else "FAIL"
                out(f"{status}  {file}:{net.name:<24} params {net.params:>13,}  MACs {net.macs:>16,}  "
                    f"output {net.output_shape}  ({len(outcomes)} expect{'s' * (len(outcomes) != 1)})")
                if bad:
                    err(ArchError([o.diagnostic() for o in bad], net.sources).render())
            if bad:
                failures += 1
                if fail_fast:
                    break
        if fail_fast and failures:
            break
    total = len(results)
    if fmt == "json":
        out(json.dumps({"ok": failures == 0, "networks": total, "failed": failures, "results": results}, indent=2))
    else:
        out(f"\n{total - failures} of {total} networks ok" + (f", {failures} failed" if failures else ""))
    return failures == 0


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def build_and_run(file: Path, network: str | None, input_: str | None, device: str, batch: int,
                  max_params: int | None, out) -> None:
    from . import compile
    from .graph import select_networks

    if network is None:
        from . import load

        nets = select_networks(load(file), None)
        if len(nets) > 1:
            raise click.UsageError(f"{file} holds {len(nets)} networks; pick one with -n: "
                                   + ", ".join(n.name for n in nets))
    net = compile(file, network, input_)
    import torch

    from .lower_torch import DEFAULT_MAX_PARAMS, count_parameters, lower

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise click.UsageError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    t0 = time.perf_counter()
    model = lower(net, device=device, max_params=max_params or DEFAULT_MAX_PARAMS).eval()
    t1 = time.perf_counter()
    x = torch.randn(batch, *net.input_shape.dims, device=device)
    with torch.inference_mode():
        y = model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        y = model(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t3 = time.perf_counter()
    n = count_parameters(model)
    out(f"{net.name}: output {tuple(y.shape)} on {device}")
    out(f"parameters: {n:,} (analytic {net.params:,}: {'equal' if n == net.params else 'DIFFERENT'})")
    out(f"build {1e3 * (t1 - t0):.1f} ms, first forward {1e3 * (t2 - t1):.1f} ms, "
        f"second forward {1e3 * (t3 - t2):.1f} ms (batch {batch})")
    if n != net.params or tuple(y.shape[1:]) != net.output_shape.dims:
        raise RuntimeError("the built module disagrees with the analytic report")


if __name__ == "__main__":  # pragma: no cover
    main()
