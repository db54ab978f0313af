"""The round-trip commands of the `archdsl` command: `import` (a module -> a spec) and
`export` (a spec -> a plain PyTorch file or ONNX). archdsl/cli.py registers them; torch
is imported only when one runs."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import click

EXIT_SPEC, EXIT_USAGE = 1, 2


def load_target(target: str):
    """`pkg.module:callable` (called without arguments when it is not a module already),
    `timm:NAME` (timm.create_model(NAME)) or the path of a module saved with torch.save."""
    import torch

    if ":" not in target or Path(target).suffix in (".pt", ".pth"):
        path = Path(target)
        if not path.is_file():
            raise click.UsageError(f"TARGET {target!r}: neither pkg.module:callable nor a saved module's file")
        # a saved whole module is a pickle: loading one runs code it names, as torch.load says
        obj = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(obj, torch.nn.Module):
            raise click.UsageError(f"{target}: holds a {type(obj).__name__}, not a torch.nn.Module "
                                   "(a state_dict holds weights, not the architecture)")
        return obj, path.stem
    mod_name, _, attr = target.partition(":")
    if mod_name == "timm":
        try:
            import timm
        except ImportError:
            raise click.UsageError("TARGET timm:...: timm is not installed (pip install timm)") from None
        try:
            return timm.create_model(attr, pretrained=False), attr
        except Exception as e:  # noqa: BLE001 - timm's unknown-model error
            raise click.UsageError(f"TARGET {target}: {e}") from None
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise click.UsageError(f"TARGET {target}: cannot import {mod_name}: {e}") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise click.UsageError(f"TARGET {target}: {mod_name} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, torch.nn.Module):
        if not callable(obj):
            raise click.UsageError(f"TARGET {target}: {attr} is neither a module nor callable")
        obj = obj()
        if not isinstance(obj, torch.nn.Module):
            raise click.UsageError(f"TARGET {target}: {attr}() returned a {type(obj).__name__}, not a torch.nn.Module")
    return obj, attr.split(".")[-1]


@click.command("import")
@click.argument("target")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write the spec here "
              "(default: standard output).")
@click.option("--input", "input_", metavar="CxHxW", default="3x224x224", show_default=True,
              help="The input the module is traced and checked at.")
@click.option("-n", "--name", help="The network's name (default: from TARGET).")
def import_cmd(target: str, output: Path | None, input_: str, name: str | None) -> None:
    """Write the spec of a PyTorch module: TARGET is pkg.module:callable
    (torchvision.models:resnet50), timm:NAME or a module saved with torch.save."""
    from .trace_torch import ImportFailure, import_module, parse_input

    try:
        parse_input(input_)
    except ValueError as e:
        raise click.UsageError(f"--input: {e}") from None
    module, default_name = load_target(target)
    try:
        text = import_module(module, input_, name=name or default_name, source=target)
    except ImportFailure as e:
        click.echo(f"archdsl import: error: {e}", err=True)
        sys.exit(EXIT_SPEC)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as e:
        raise click.UsageError(f"-o {output}: {e.strerror}") from None
    click.echo(f"wrote {output} ({len(text.splitlines())} lines)", err=True)



@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-n", "--network", metavar="NAME", help="The network (required when the file holds several).")
@click.option("--to", "to", type=click.Choice(["pytorch", "onnx"]), default="pytorch", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="The file to write "
              "(pytorch: default standard output; onnx: required).")
@click.option("--input", "input_", metavar="CxHxW", help="Override the spec's input shape.")
@click.option("--dynamic-batch", is_flag=True, help="onnx: a batch dimension of any size.")
def export_cmd(file: Path, network: str | None, to: str, output: Path | None, input_: str | None,
               dynamic_batch: bool) -> None:
    """Write a network as one plain PyTorch file (imports only torch) or as ONNX."""
    from . import compile as compile_spec

    if not file.is_file():
        raise click.UsageError(f"no such file: {file}")
    net = compile_spec(file, network, input_)
    if to == "onnx" and output is None:
        raise click.UsageError("--to onnx needs -o FILE")
    from .export_torch import ExportFailure, export_onnx, export_pytorch

    try:
        if to == "onnx":
            export_onnx(net, output, dynamic_batch=dynamic_batch)
            click.echo(f"wrote {output}", err=True)
            return
        text = export_pytorch(net, f"{file}:{net.name}")
    except ExportFailure as e:
        click.echo(f"archdsl export: error: {e}", err=True)
        sys.exit(EXIT_SPEC)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text)
    except OSError as e:
        raise click.UsageError(f"-o {output}: {e.strerror}") from None
    click.echo(f"wrote {output} ({len(text.splitlines())} lines)", err=True)


COMMANDS = [import_cmd, export_cmd]
