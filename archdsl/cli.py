"""The `archdsl` command: a thin layer over the API.

Exit codes: 0 success; 1 a mistake in a spec (or a failed `expect`); 2 a usage mistake;
3 an internal error (a bug: its traceback is shown with --debug); 141 the output's reader
stopped reading (`| head`), as for any command stopped by SIGPIPE.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Iterable

import click

from . import __version__
from .diagnostics import ArchError, color_wanted

EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 3
#: 128 + SIGPIPE: what a shell reports for a command stopped by a closed pipe
EXIT_PIPE = 141


def _echo_err(text: str) -> None:
    click.echo(text, err=True)


def _echo_error(err: ArchError) -> None:
    """Diagnostics to stderr: in colour on a terminal, plain when piped or NO_COLOR is set."""
    color = color_wanted(sys.stderr)
    click.echo(err.render(color=color), err=True, color=color)


def _fail(err: ArchError, missing_network_is_usage: bool = True) -> None:
    _echo_error(err)
    # E6xx are mistakes in the command line; so is E203 without a location, a network name
    # (-n) the file lacks. E203 at the file, "no network in this file", is the spec's.
    usage = all(d.code.startswith("E6") or (d.code == "E203" and d.span is None and missing_network_is_usage)
                for d in err.diagnostics)
    sys.exit(EXIT_USAGE if usage else EXIT_SPEC)


def _reader_gone() -> None:
    """The reader of the output went away (`archdsl compile x.arch | head`): stop at once,
    quietly, as a command stopped by SIGPIPE does. stdout is pointed at /dev/null so that
    the interpreter's last flush cannot complain (as Python's documentation of SIGPIPE
    advises)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind stdout: nothing will be flushed to it
        pass
    sys.exit(EXIT_PIPE)


class _Group(click.Group):
    """Turns ArchError into a rendered diagnostic and anything else into a bug report."""

    def invoke(self, ctx: click.Context):
        try:
            out = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
            return out
        except ArchError as err:
            _fail(err)
        except BrokenPipeError:
            _reader_gone()
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            _echo_err("interrupted")
            sys.exit(130)
        except Exception:  # noqa: BLE001 - an internal error: never a bare traceback
            if ctx.obj and ctx.obj.get("debug"):
                import traceback

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
    try:
        nets = compile_networks(file, network, input_)
    except ArchError as err:
        if fmt != "json":  # the layers that did build, then (from main) the errors
            _print_partial(err.partial, fmt, width)
        raise
    if fmt == "json":
        reports = [n.report().to_dict() for n in nets]
        import json

        click.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        return
    for i, net in enumerate(nets):
        if i:
            click.echo("")
        rep = net.report()
        click.echo(rep.to_markdown() if fmt == "markdown" else rep.to_table(width), nl=False)


#: a partial network with more layers than this is summarised, not tabled (the table of
#: thousands of layers, up to a limit error, would take long to print and say little)
PARTIAL_TABLE_ROWS = 400


def _print_partial(nets, fmt: str, width: int) -> None:
    for i, net in enumerate(nets):
        if i:
            click.echo("")
        rows = sum(1 for _ in net.nodes())
        if not net.complete and rows > PARTIAL_TABLE_ROWS:
            click.echo(f"{net.name}: {rows:,} layers built before its first error, reported below")
            continue
        rep = net.report()
        click.echo(rep.to_markdown() if fmt == "markdown" else rep.to_table(width), nl=False)
        if not net.complete:
            click.echo(f"({net.name} is incomplete: it stops at its first error, reported below)")
    if nets:
        click.echo("")
        sys.stdout.flush()


@main.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("-x", "--fail-fast", is_flag=True, help="Stop at the first failing network.")
def check_cmd(paths: tuple[Path, ...], fmt: str, fail_fast: bool) -> None:
    """Validate every network in FILES and folders (recursively) and evaluate every `expect`."""
    files = list(_arch_files(paths))
    if not files:
        raise click.UsageError("no .arch files in " + ", ".join(str(p) for p in paths))
    ok = check_paths(files, fmt, fail_fast, click.echo, _echo_error, named={p for p in paths if p.is_file()})
    sys.exit(0 if ok else EXIT_SPEC)


def _arch_files(paths: Iterable[Path]) -> Iterable[Path]:
    for p in paths:
        if p.is_dir():
            # a folder's specs are the files inside it: a link that leads out (a pull request's
            # `model.arch -> /etc/passwd`) is skipped, never read
            root = p.resolve()
            for f in sorted(p.rglob("*.arch")):
                real = f.resolve()
                if real == root or root not in real.parents or not real.is_file():
                    _echo_err(f"note: skipped {f}: a link to outside {p}")
                    continue
                yield f
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
@click.option("--max-params", type=click.IntRange(0), default=None,
              help="Refuse to build above this many parameters (default 2,000,000,000).")
@click.option("--max-buffers", type=click.IntRange(0), default=None,
              help="Refuse to build above this many buffer values (default 16,777,216).")
@click.option("--max-activation", type=click.IntRange(0), default=None,
              help="Refuse to build when a layer's forward pass at --batch makes a tensor of more values "
                   "(default 1,073,741,824).")
def build_cmd(file: Path, network: str | None, input_: str | None, device: str, batch: int,
              max_params: int | None, max_buffers: int | None, max_activation: int | None) -> None:
    """Lower a network to PyTorch, run one forward pass and print its shape, size and time."""
    _ensure_file(file)
    build_and_run(file, network, input_, device, batch, max_params, click.echo, max_buffers, max_activation)


@main.command("kinds")
def kinds_cmd() -> None:
    """List the layer kinds the language knows."""
    from .layers import kinds

    for k in sorted(kinds(), key=lambda k: k.name):
        alias = f" (also {', '.join(k.aliases)})" if k.aliases else ""
        click.echo(f"{k.name:<18} {k.summary}{alias}")


@main.command("render")
@_spec_arg
@_net_opt
@_input_opt
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The diagram to write: .svg, .png, .pdf or .dot (DOT needs no Graphviz).")
@click.option("--depth", type=click.IntRange(0), default=None,
              help="Draw block calls nested this deep or deeper as one node each (default: all layers).")
@click.option("--rankdir", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True,
              help="Top to bottom or left to right.")
@click.option("--only", metavar="PATH", help="Draw one block call or group by its path, e.g. inception3a or resnet_imagenet1.layer2.")
def render_cmd(file: Path, network: str | None, input_: str | None, output: Path, depth: int | None,
               rankdir: str, only: str | None) -> None:
    """Draw a network of FILE with Graphviz."""
    from .diagram import GraphvizNotFound, output_format, render

    _ensure_file(file)
    try:
        output_format(output)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not output.parent.is_dir():  # before the compile and Graphviz's work
        raise click.UsageError(f"-o {output}: no such folder: {output.parent}")
    net = _one_network(file, network, input_, "-n NAME")
    if only is not None:
        from .diagram import find_group

        try:
            find_group(net, only)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
    elif depth is None and len(net.infos) > 1500 and output.suffix.lower() not in (".dot", ".gv"):
        _echo_err(f"note: {len(net.infos):,} layers take Graphviz a while to lay out; "
                  "--depth 2 draws a summary")
    try:
        render(net, output, depth=depth, rankdir=rankdir.upper(), only=only)
    except GraphvizNotFound as e:
        _echo_err(f"archdsl render: {e}")
        sys.exit(EXIT_USAGE)
    except OSError as e:  # a folder that cannot be written to, a full disk
        raise click.UsageError(f"-o {output}: cannot write it: {e.strerror or e}") from None
    click.echo(f"wrote {output} ({net.name}" + (f".{only}" if only else f": {len(net.infos):,} nodes")
               + (f", depth {depth}" if depth is not None else "") + ")")


@main.command("diff")
@click.argument("a", metavar="A.arch[:NET]")
@click.argument("b", metavar="B.arch[:NET]")
@_input_opt
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit with 1 when the networks differ (as `git diff --exit-code`).")
def diff_cmd(a: str, b: str, input_: str | None, fmt: str, exit_code: bool) -> None:
    """Show what differs between two networks: totals, then blocks and layers matched by name."""
    from .diff import diff

    try:
        na, nb = _network_ref(a, input_), _network_ref(b, input_)
    except ArchError as err:  # a network one side lacks is a difference of the specs, not of the command
        _fail(err, missing_network_is_usage=False)
    d = diff(na, nb)
    if fmt == "json":
        import json

        click.echo(json.dumps(d.to_dict(), indent=2))
    else:
        click.echo(d.to_markdown() if fmt == "markdown" else d.to_text(), nl=False)
    if exit_code and not d.identical:
        sys.exit(EXIT_SPEC)


def _network_ref(ref: str, input_: str | None):
    """`file.arch` or `file.arch:NET` -> the compiled network (the file must hold one, or NET)."""
    path, network = Path(ref), None
    if not path.is_file() and ":" in ref:
        head, network = ref.rsplit(":", 1)
        path = Path(head)
    if not path.is_file():
        raise click.UsageError(f"no such file: {path}")
    return _one_network(path, network or None, input_, f"{path}:NAME")


def _one_network(file: Path, network: str | None, input_: str | None, how: str):
    from . import compile, load
    from .sources import select_networks

    if network is None:
        nets = select_networks(load(file).unit, None)
        if len(nets) > 1:
            raise click.UsageError(f"{file} holds {len(nets)} networks; pick one with {how}: "
                                   + ", ".join(n.name for n in nets))
    return compile(file, network, input_)

# ---------------------------------------------------------------- the work behind the commands


def compile_networks(file: Path, network: str | None, input_: str | None):
    from . import compile, compile_all

    if network is not None:
        return [compile(file, network, input_)]
    return compile_all(file, input_)


def check_paths(files: list[Path], fmt: str, fail_fast: bool, out, err, named: "set[Path] | frozenset" = frozenset()
                ) -> bool:
    """Check every network of every file: one line each, then a summary. True when all pass.

    A failing line names the location (file:line:col) of the first failing `expect` or of the
    error; the full diagnostics go to `err`, an ArchError at a time. A file without networks (blocks and constants
    shared through `include`) found in a folder is parsed and reported on a line of its own;
    one of the `named` files (given on the command line), or an empty one, fails with E203.
    """
    from . import load
    from .sources import select_networks
    from .spec import compile_network

    results, failures, libraries = [], 0, []

    def line(status: str, where: str, rest: str) -> None:
        if fmt == "text":
            out(f"{status:<4}  {where:<44} {rest}".rstrip())

    def error_row(file: Path, network: str | None, e: ArchError) -> None:
        d = e.first
        location = d.span.where() if d.span else str(file)
        results.append({"file": str(file), "network": network, "ok": False, "error": d.code,
                        "location": location, "message": d.message})
        line("FAIL", f"{file}:{network}" if network else str(file), f"error[{d.code}] at {location}: {d.message}")
        if fmt == "text":
            err(e)

    for file in files:
        try:
            unit = load(file).unit
            if not unit.program.networks and (file in named or not unit.program.items):
                select_networks(unit, None)  # raises E203 "no network in this file", at the file
        except ArchError as e:
            failures += 1
            error_row(file, None, e)
            if fail_fast:
                break
            continue
        if not unit.program.networks:
            libraries.append(str(file))
            line("ok", str(file), "(no networks: blocks and constants only)")
            continue
        for prog in unit.program.networks:
            try:
                net = compile_network(unit, prog)
                outcomes = net.check()
            except ArchError as e:
                failures += 1
                error_row(file, prog.name, e)
                if fail_fast:
                    break
                continue
            bad = [o for o in outcomes if not o.ok]
            row = {"file": str(file), "network": net.name, "ok": not bad, "params": net.params, "macs": net.macs,
                   "output": list(net.output_shape.dims), "expectations": len(outcomes),
                   "failed": [{"what": o.what, "location": o.expectation.stmt.span.where(),
                               "expected": _plain(o.expectation.expected), "found": _plain(o.found)} for o in bad]}
            results.append(row)
            stats = (f"params {net.params:>13,}  MACs {net.macs:>16,}  output {net.output_shape}  "
                     f"({len(outcomes)} expect{'s' * (len(outcomes) != 1)})")
            if bad:
                more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
                stats += f"  expect {bad[0].what} failed at {bad[0].expectation.stmt.span.where()}{more}"
            line("FAIL" if bad else "ok", f"{file}:{net.name}", stats)
            if bad and fmt == "text":
                err(ArchError([o.diagnostic() for o in bad], net.sources))
            if bad:
                failures += 1
                if fail_fast:
                    break
        if fail_fast and failures:
            break
    total = len(results)
    if fmt == "json":
        import json

        out(json.dumps({"ok": failures == 0, "networks": total, "failed": failures, "files": len(files),
                        "libraries": libraries, "results": results}, indent=2))
    else:
        out(f"\n{total - failures} of {total} networks ok" + (f", {failures} failed" if failures else "")
            + f" ({len(files)} file{'s' * (len(files) != 1)})")
    return failures == 0


def _plain(v):
    return list(v) if isinstance(v, tuple) else v


def build_and_run(file: Path, network: str | None, input_: str | None, device: str, batch: int,
                  max_params: int | None, out, max_buffers: int | None = None,
                  max_activation: int | None = None) -> None:
    from . import compile
    from .sources import select_networks

    if network is None:
        from . import load

        nets = select_networks(load(file).unit, None)
        if len(nets) > 1:
            raise click.UsageError(f"{file} holds {len(nets)} networks; pick one with -n: "
                                   + ", ".join(n.name for n in nets))
    net = compile(file, network, input_)
    torch = _import_torch()

    from . import lower_torch as L

    _check_device(torch, device)
    limits = (L.DEFAULT_MAX_PARAMS if max_params is None else max_params,
              L.DEFAULT_MAX_BUFFERS if max_buffers is None else max_buffers,
              L.DEFAULT_MAX_ACTIVATION if max_activation is None else max_activation)
    L.check_limits(net, *limits, batch=batch)  # the forward passes' batch too, before anything is built
    # lowering, running and counting recurse once per level of nesting: all of it on a deep
    # enough stack (a plain call for any network but a deeply nested one)
    model, y, n, t0, t1, t2, t3 = L.on_deep_stack(L.nesting_depth(net), _build_and_time, torch, L, net, device,
                                                  batch, limits)
    out(f"{net.name}: output {tuple(y.shape)} on {device}")
    out(f"parameters: {n:,} (analytic {net.params:,}: {'equal' if n == net.params else 'DIFFERENT'})")
    out(f"build {1e3 * (t1 - t0):.1f} ms, first forward {1e3 * (t2 - t1):.1f} ms, "
        f"second forward {1e3 * (t3 - t2):.1f} ms (batch {batch})")
    if n != net.params or tuple(y.shape[1:]) != net.output_shape.dims:
        raise RuntimeError("the built module disagrees with the analytic report")


def _build_and_time(torch, L, net, device: str, batch: int, limits: tuple[int, int, int]):
    t0 = time.perf_counter()
    model = L.lower(net, device=device, max_params=limits[0], max_buffers=limits[1],
                    max_activation=limits[2]).eval()
    t1 = time.perf_counter()
    try:
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
    except (MemoryError, RuntimeError) as e:
        if not L.is_allocation_failure(e):
            raise
        raise L.allocation_failed(net, e, "a forward pass of") from None
    return model, y, L.count_parameters(model), t0, t1, t2, t3


def _import_torch():
    """torch, or a usage error saying how to install it (it is an optional dependency)."""
    try:
        import torch
    except ImportError as e:
        _echo_err(f"archdsl build needs PyTorch, which cannot be imported here ({e}).\n"
                  'Install it with: pip install "archdsl[torch]"')
        sys.exit(EXIT_USAGE)
    return torch


def _check_device(torch, device: str) -> None:
    """--device must name a device this machine has: cpu, cuda[:N] with a GPU, mps on a Mac."""
    available = ["cpu"]
    if torch.cuda.is_available():
        available += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        available += ["mps", "mps:0"]
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        parsed = None
    if parsed is not None and (str(parsed) in available or (parsed.type == "cpu" and parsed.index in (None, 0))):
        return
    if parsed is None:
        why = "not a device name"
    elif parsed.type == "cuda" and not torch.cuda.is_available():
        why = "no CUDA device is available (torch.cuda.is_available() is False)"
    else:
        why = "no such device on this machine"
    raise click.UsageError(f"--device {device}: {why}; devices: {', '.join(available)}")


from .cli_roundtrip import COMMANDS as _ROUND_TRIP  # noqa: E402 - import, export

for _command in _ROUND_TRIP:
    main.add_command(_command)


def run() -> None:
    """The `archdsl` command (the console script and ``python -m archdsl.cli``)."""
    main()


if __name__ == "__main__":  # pragma: no cover
    run()
