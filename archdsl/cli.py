"""The `archdsl` command: a thin layer over the API.

Exit codes: 0 success; 1 a mistake in a spec (or a failed `expect`); 2 a usage mistake;
3 an internal error (a bug: its traceback is shown with --debug); 141 the output's reader
stopped reading (`| head`), as for any command stopped by SIGPIPE.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterable

import click

from . import __version__
from .diagnostics import ArchError, color_wanted
from .spec import Spec

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


def _param_opt(f):
    return click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
                        help="Set a network parameter (repeatable): -p classes=100. VALUE is a number, "
                             "true/false or an expression of them.")(f)


def _spec_arg(f):
    return click.argument("file", metavar="FILE|NETWORK", type=click.Path(dir_okay=False, path_type=Path))(f)


def _resolve(file: Path, network: str | None) -> "tuple[Path | str | Spec, str | None]":
    """FILE as the command line takes it: a spec file, `-` for standard input (its includes
    resolve from, and stay inside, the current folder), a zoo file (`zoo:resnet.arch`) or the
    name of a zoo network (`resnet50`, when no file has that name), with the network to use."""
    text = str(file)
    if text == "-":
        from .sources import Loader, read_stream

        return Spec(Loader().load_text(read_stream(sys.stdin.buffer), "<stdin>", Path.cwd())), network
    if file.is_file() and not text.startswith("zoo:"):
        return file, network
    from . import zoo

    try:
        if zoo.is_zoo_path(text):
            zoo.file_path(text)
            return text, network
        _, shown = zoo.resolve_name(text)
    except ArchError as e:
        d = e.first
        raise click.UsageError(d.message + (f" ({d.hint})" if d.hint else "")) from None
    if network not in (None, text):
        raise click.UsageError(f"{text} is a network of the zoo ({shown}); -n {network} names another: "
                               f"archdsl ... {shown} -n {network} picks any network of that file")
    return shown, text


def _params(params: tuple[str, ...]) -> dict:
    from .spec import parse_params  # (`-p NAME=VALUE`, E604 for a bad one)

    return parse_params(params)


#: --optimizer's choices: torch.optim's name and the hyperparameters that size its state
_OPTIMIZERS = {"sgd": ("sgd", {}), "sgd-momentum": ("sgd", {"momentum": 0.9}), "adam": ("adam", {}),
               "adamw": ("adamw", {}), "rmsprop": ("rmsprop", {})}


def _optimizer(choice: str | None) -> tuple[str | None, dict | None]:
    return _OPTIMIZERS[choice] if choice else (None, None)


@main.command("compile")
@_spec_arg
@_net_opt
@_input_opt
@_param_opt
@click.option("--format", "fmt", type=click.Choice(["table", "markdown", "json", "csv"]), default="table",
              show_default=True, help="Report format (csv: one row per layer, plain numbers).")
@click.option("--width", type=int, default=120, show_default=True, help="Table width in characters.")
@click.option("--depth", type=click.IntRange(0), default=None, metavar="N",
              help="One row per block call or group nested N deep (0: the top-level ones), with its totals.")
@click.option("--batch", type=click.IntRange(1), default=None, metavar="N",
              help="Batch size of the training-memory estimate (default: the spec's recipe, else 1).")
@click.option("--optimizer", type=click.Choice(sorted(_OPTIMIZERS)), default=None,
              help="Optimizer of the training-memory estimate (default: the spec's recipe, else sgd).")
def compile_cmd(file: Path, network: str | None, input_: str | None, params: tuple[str, ...], fmt: str,
                width: int, depth: int | None, batch: int | None, optimizer: str | None) -> None:
    """Validate FILE (or the zoo's NETWORK) and print the analytic report of its networks."""
    source, network = _resolve(file, network)
    try:
        nets = compile_networks(source, network, input_, _params(params))
    except ArchError as err:
        if fmt in ("table", "markdown"):  # the layers that did build, then (from main) the errors
            _print_partial(err.partial, fmt, width)
        raise
    if fmt == "json":
        reports = [n.report(depth, batch, *_optimizer(optimizer)).to_dict() for n in nets]
        import json

        click.echo(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
        return
    if fmt == "csv":
        from .report import to_csv

        click.echo(to_csv([n.report(depth, batch, *_optimizer(optimizer)) for n in nets]), nl=False)
        return
    for i, net in enumerate(nets):
        if i:
            click.echo("")
        rep = net.report(depth, batch, *_optimizer(optimizer))
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
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github", "junit", "sarif"]), default="text",
              show_default=True, help="github: the text, plus a GitHub Actions annotation at file:line for every "
              "error; junit: JUnit XML (a test case per network); sarif: SARIF 2.1.0 (code scanning).")
@click.option("-x", "--fail-fast", is_flag=True, help="Stop at the first failing network.")
@click.option("--update-expects", is_flag=True,
              help="Rewrite the value of every failing `expect` in place (comments and layout kept), then check.")
def check_cmd(paths: tuple[Path, ...], fmt: str, fail_fast: bool, update_expects: bool) -> None:
    """Validate every network in FILES and folders (recursively) and evaluate every `expect`."""
    from .check import check_paths

    files = list(_arch_files(paths))
    if not files:
        raise click.UsageError("no .arch files in " + ", ".join(str(p) for p in paths))
    if update_expects:
        from .update import update_expects as update

        update(files, _echo_err)
    if fmt in ("junit", "sarif"):
        from . import ci_report

        captured: list[str] = []
        ok = check_paths(files, "json", fail_fast, captured.append, lambda e: None,
                         named={p for p in paths if p.is_file()})
        import json

        click.echo(getattr(ci_report, fmt)(json.loads(captured[-1])))
        sys.exit(0 if ok else EXIT_SPEC)
    report = _echo_error
    if fmt == "github":
        from .ci_report import github

        fmt, report = "text", lambda err: (github(err, click.echo), _echo_error(err))
    ok = check_paths(files, fmt, fail_fast, click.echo, report, named={p for p in paths if p.is_file()})
    sys.exit(0 if ok else EXIT_SPEC)


@main.command("fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--check", is_flag=True, help="Write nothing; exit with 1 when a file is not formatted.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the changes as a unified diff; write nothing.")
def fmt_cmd(paths: tuple[Path, ...], check: bool, show_diff: bool) -> None:
    """Rewrite FILES and folders (recursively) in the canonical layout. `-` reads standard input
    and writes the result to standard output."""
    from .fmt import fmt_paths, format_source

    if str(paths[0]) == "-" and len(paths) == 1:
        click.echo(format_source(sys.stdin.read(), "<stdin>"), nl=False)
        return
    files = list(_arch_files(paths))
    if not files:
        raise click.UsageError("no .arch files in " + ", ".join(str(p) for p in paths))
    sys.exit(fmt_paths(files, check, show_diff, click.echo, _echo_err, _echo_error))


@main.command("lsp")
@click.option("--stdio", is_flag=True, help="Talk over standard input and output (the default, and the only way).")
def lsp_cmd(stdio: bool) -> None:
    """Run the language server (diagnostics, hovers, shapes, completion, formatting) over stdio."""
    try:
        from .lsp import main as serve
    except ImportError as err:
        raise click.UsageError(f"the language server needs pygls ({err}): pip install \"archdsl[lsp]\"") from None
    serve()
    sys.exit(0)  # the client has closed the streams: nothing to flush


def _arch_files(paths: Iterable[Path]) -> Iterable[Path]:
    for p in paths:
        if p.is_dir():
            # a folder's specs are the files inside it: a link that leads out (a pull request's
            # `model.arch -> /etc/passwd`) is skipped, never read
            root = p.resolve()
            for f in sorted(p.rglob("*.arch")):
                try:
                    real: Path | None = f.resolve()
                except (OSError, RuntimeError):  # a symbolic-link loop
                    real = None
                if real is not None and real != root and root not in real.parents:
                    _echo_err(f"note: skipped {f}: a link to outside {p}")
                elif real is None or not real.is_file():
                    _echo_err(f"note: skipped {f}: not a file (a folder, or a link to nothing or in a loop)")
                else:
                    yield f
        elif p.is_file():
            yield p
        else:
            raise click.UsageError(f"no such file or folder: {p}")


@main.command("build")
@_spec_arg
@_net_opt
@_input_opt
@_param_opt
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--batch", type=click.IntRange(1, 4096), default=1, show_default=True)
@click.option("--max-params", type=click.IntRange(0), default=None,
              help="Refuse to build above this many parameters (default 2,000,000,000).")
@click.option("--max-buffers", type=click.IntRange(0), default=None,
              help="Refuse to build above this many buffer values (default 16,777,216).")
@click.option("--max-activation", type=click.IntRange(0), default=None,
              help="Refuse to build when a layer's forward pass at --batch makes a tensor of more values "
                   "(default 1,073,741,824).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Load a checkpoint in archdsl's, torchvision's or timm's key layout (torch.load weights_only).")
def build_cmd(file: Path, network: str | None, input_: str | None, params: tuple[str, ...], device: str, batch: int,
              max_params: int | None, max_buffers: int | None, max_activation: int | None,
              weights: Path | None) -> None:
    """Lower a network to PyTorch, run one forward pass and print its shape, size and time."""
    source, network = _resolve(file, network)
    from .cli_torch import build_and_run

    build_and_run(source, network, input_, device, batch, max_params, click.echo, max_buffers, max_activation,
                  _params(params), weights=weights)


@main.command("train")
@_spec_arg
@_net_opt
@_input_opt
@click.option("--data", default="digits", show_default=True, metavar="digits|PATH",
              help="scikit-learn's digits, or a torchvision ImageFolder folder (with train/ and val/, or split).")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override the recipe's epochs.")
@click.option("--batch", type=click.IntRange(1), default=None, help="Override the recipe's (global) batch size.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for metrics.csv, steps.csv and last.pt (default runs/NETWORK).")
@click.option("--resume", is_flag=True, help="Continue the run saved in --out.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda (under torchrun: each process's GPU).")
@click.option("--precision", type=click.Choice(["auto", "32", "bf16", "16"]), default="auto", show_default=True,
              help="auto: float16 autocast with a grad scaler on CUDA, float32 on the CPU.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True, help="DataLoader worker processes.")
@click.option("--max-steps", type=click.IntRange(1), default=None, help="Stop after this many steps (saving).")
@click.option("--sync-bn", is_flag=True, help="Batch-norm statistics over all processes (SyncBatchNorm, CUDA).")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads per process.")
@click.option("--no-progress", is_flag=True, help="No progress bar (the epoch lines are still printed).")
def train_cmd(file: Path, network: str | None, input_: str | None, data: str, epochs: int | None,
              batch: int | None, out: Path | None, resume: bool, device: str, precision: str, seed: int,
              workers: int, max_steps: int | None, sync_bn: bool, threads: int | None, no_progress: bool) -> None:
    """Train a network with the recipe of its spec (`train { }`), on one process or under torchrun."""
    file, network = _resolve(file, network)
    from .cli_torch import check_device, import_torch

    torch = import_torch()
    if "LOCAL_RANK" not in os.environ or device != "cuda":
        check_device(torch, device)
    from . import load
    from .sources import select_networks

    if network is None:
        nets = select_networks(load(file).unit, None)
        if len(nets) > 1:
            raise click.UsageError(f"{file} holds {len(nets)} networks; pick one with -n: "
                                   + ", ".join(n.name for n in nets))
        network = nets[0].name
    if data != "digits" and not Path(data).is_dir():
        raise click.UsageError(f"--data {data}: not `digits` and no such folder")
    from .train import Config, train_file

    if threads:
        torch.set_num_threads(threads)

    cfg = Config(data=data, out=out or Path("runs") / network, epochs=epochs, batch=batch, device=device, seed=seed,
                 resume=resume, precision=precision, workers=workers, max_steps=max_steps, sync_bn=sync_bn,
                 progress=not no_progress)
    if resume and not (cfg.out / "last.pt").is_file():
        raise click.UsageError(f"--resume: no checkpoint {cfg.out / 'last.pt'}")
    try:
        result = train_file(file, network, cfg, input_, log=click.echo)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if result["world"] > 1 and int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"weights identical on all {result['world']} processes: {'yes' if result['agree'] else 'NO'}")
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"saved {cfg.out / 'last.pt'}; metrics in {cfg.out / 'metrics.csv'}")


@main.command("kinds")
def kinds_cmd() -> None:
    """List the layer kinds the language knows."""
    from .layers import kinds

    for k in sorted(kinds(), key=lambda k: k.name):
        alias = f" (also {', '.join(k.aliases)})" if k.aliases else ""
        click.echo(f"{k.name:<18} {k.summary}{alias}")


@main.command("list")
@click.argument("patterns", nargs=-1, metavar="[PATTERN]...")
@click.option("--exclude", multiple=True, metavar="PATTERN", help="Leave out the names matching PATTERN (repeatable).")
@click.option("--names", is_flag=True, help="Print the names only, one a line (nothing is compiled).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option("--width", type=int, default=120, show_default=True, help="Table width in characters.")
def list_cmd(patterns: tuple[str, ...], exclude: tuple[str, ...], names: bool, fmt: str, as_json: bool,
             width: int) -> None:
    """List the zoo's networks whose names match a PATTERN (fnmatch-style, e.g. 'resnet*';
    all without one), with their parameters, MACs, shapes and files."""
    from . import zoo

    text, found = zoo.listing(patterns, exclude, names, "json" if as_json else fmt, width)
    if text:
        click.echo(text, nl=False)
    if not found:
        _echo_err(f"archdsl list: no network of the zoo matches {' '.join(patterns) or '*'}"
                  + (f" ({zoo.close_names(patterns)})" if zoo.close_names(patterns) else ""))
        sys.exit(EXIT_SPEC)


@main.command("render")
@_spec_arg
@_net_opt
@_input_opt
@_param_opt
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The diagram to write: .svg, .png, .pdf or .dot (DOT needs no Graphviz).")
@click.option("--depth", type=click.IntRange(0), default=None,
              help="Draw block calls nested this deep or deeper as one node each (default: all layers).")
@click.option("--rankdir", type=click.Choice(["TB", "LR"], case_sensitive=False), default="TB", show_default=True,
              help="Top to bottom or left to right.")
@click.option("--only", metavar="PATH", help="Draw one block call or group by its path, e.g. inception3a or resnet_imagenet1.layer2.")
def render_cmd(file: Path, network: str | None, input_: str | None, params: tuple[str, ...], output: Path,
               depth: int | None, rankdir: str, only: str | None) -> None:
    """Draw a network of FILE (or the zoo's NETWORK) with Graphviz."""
    from .diagram import GraphvizNotFound, output_format, render

    source, network = _resolve(file, network)
    overrides = _params(params)
    try:
        output_format(output)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    if not output.parent.is_dir():  # before the compile and Graphviz's work
        raise click.UsageError(f"-o {output}: no such folder: {output.parent}")
    net = _one_network(source, network, input_, "-n NAME", overrides)
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
@_param_opt
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True)
@click.option("--exit-code", is_flag=True, help="Exit with 1 when the networks differ (as `git diff --exit-code`).")
@click.option("--layers", is_flag=True, help="Two folders: also show the layers of each changed network.")
def diff_cmd(a: str, b: str, input_: str | None, params: tuple[str, ...], fmt: str, exit_code: bool,
             layers: bool) -> None:
    """Show what differs between two networks: totals, then blocks and layers matched by name.

    A and B are spec files (FILE:NET picks a network) or zoo networks (resnet50); -p sets a
    parameter of both. Given two folders (a base and a head checkout), compare every network
    of every spec in them, includes and all, and list the networks that changed."""
    from .diff import diff

    if Path(a).is_dir() and Path(b).is_dir():
        from .treediff import diff_trees

        tree = diff_trees(Path(a), Path(b))
        if fmt == "json":
            import json

            click.echo(json.dumps(tree.to_dict(), indent=2))
        else:
            click.echo(tree.to_markdown(layers) if fmt == "markdown" else tree.to_text(layers), nl=False)
        if exit_code and not tree.identical:
            sys.exit(EXIT_SPEC)
        return

    overrides = _params(params)
    try:
        na, nb = _network_ref(a, input_, overrides), _network_ref(b, input_, overrides)
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


def _network_ref(ref: str, input_: str | None, overrides: dict | None = None):
    """`file.arch`, `file.arch:NET`, `zoo:file.arch[:NET]` or a zoo network's name -> the
    compiled network (the file must hold one, or NET)."""
    from . import zoo

    path, network = Path(ref), None
    zoo_ref = zoo.is_zoo_path(ref)
    rest = ref[len(zoo.PREFIX):] if zoo_ref else ref
    if (zoo_ref or not path.is_file()) and ":" in rest:
        head, network = rest.rsplit(":", 1)
        path = Path(zoo.PREFIX + head if zoo_ref else head)
    if not zoo_ref and not path.is_file() and network is None and ":" not in ref:
        source, network = _resolve(path, None)  # a zoo network, or a usage error
        return _one_network(source, network, input_, "", overrides)
    if not zoo_ref and not path.is_file():
        raise click.UsageError(f"no such file: {path}")
    return _one_network(str(path) if zoo_ref else path, network or None, input_, f"{path}:NAME", overrides)


def _one_network(file: "Path | str", network: str | None, input_: str | None, how: str,
                 overrides: dict | None = None):
    from . import compile, load
    from .sources import select_networks

    if network is None:
        nets = select_networks(load(file).unit, None)
        if len(nets) > 1:
            raise click.UsageError(f"{file} holds {len(nets)} networks; pick one with {how}: "
                                   + ", ".join(n.name for n in nets))
    return compile(file, network, input_, **(overrides or {}))

# ---------------------------------------------------------------- the work behind the commands


def compile_networks(file: "Path | str | Spec", network: str | None, input_: str | None,
                     params: dict | None = None):
    from . import compile, compile_all
    from .sources import check_duplicates

    if network is not None and isinstance(file, Spec):
        check_duplicates(file.unit)
        return [file.compile(network, input_, **(params or {}))]
    if network is not None:
        return [compile(file, network, input_, **(params or {}))]
    return compile_all(file, input_, **(params or {}))


from .cli_roundtrip import COMMANDS as _ROUND_TRIP  # noqa: E402 - import, export

for _command in _ROUND_TRIP:
    main.add_command(_command)


def run() -> None:
    """The `archdsl` command (the console script and ``python -m archdsl.cli``)."""
    main()


if __name__ == "__main__":  # pragma: no cover
    run()
