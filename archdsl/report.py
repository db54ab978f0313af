"""The analytic report: per-layer rows and totals, as a table, markdown (like the papers'
tables) or JSON. Computed from the compiled graph alone: this module never imports torch.

JSON keys (stable; `schema` changes when a key does):

    schema, network, file, input, output, params, params_without_aux, macs,
    macs_without_aux, flops, activation_elements, activation_bytes, param_bytes,
    receptive_field {size, jump}, aux_outputs {name: shape}, conventions {...},
    layers [{name, kind, op, block, aux, inputs, input, output, params, macs,
             receptive_field, jump, activations, hyper}],
    expectations [{what, expected, found, ok, line}]
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .network import CompiledNetwork

SCHEMA = 1
BYTES_PER_VALUE = 4  # float32

CONVENTIONS = {
    "params": "every learnable tensor, as sum(p.numel() for p in model.parameters())",
    "macs": "multiply-accumulates of convolution and fully connected weights (no bias, norm, pooling, "
            "activation or addition), batch size 1",
    "flops": "2 x MACs (one multiply and one add), as torch.utils.flop_counter counts",
    "receptive_field": "size and jump in input pixels, the maximum over paths",
    "activations": "values in each layer's output, batch size 1; bytes at 4 per value (float32)",
}


@dataclass
class Row:
    name: str
    kind: str
    op: str
    block: str | None
    aux: str | None
    inputs: list[str]
    input: list[list[int]]
    output: list[int]
    params: int
    macs: int
    rf: tuple[int, int]
    jump: tuple[int, int]
    activations: int
    hyper: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    network: str
    file: str
    input: list[int]
    output: list[int]
    params: int
    params_without_aux: int
    macs: int
    macs_without_aux: int
    activations: int
    rf: tuple[int, int]
    jump: tuple[int, int]
    aux_outputs: dict[str, list[int]]
    rows: list[Row]
    expectations: list[dict[str, Any]]

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @classmethod
    def of(cls, net: "CompiledNetwork") -> "Report":
        rows = []
        for info in net.nodes():
            block = ".".join(f"{name}:{blk}" for name, blk in info.scope) or None
            hyper = dict(info.kind.hyper(info.op.params))
            if len(info.in_shapes) == 1:  # a merge has one input per branch: its `input` lists them
                hyper.setdefault("in_channels", info.in_shapes[0].c)
            if info.shape is not None:
                hyper.setdefault("out_channels", info.shape.c)
            rows.append(Row(
                name=info.id, kind=info.kind.name if info.inputs else "input",
                op=info.label() if info.inputs else "input", block=block, aux=info.aux,
                inputs=list(info.inputs), input=[s.as_list() for s in info.in_shapes],
                output=info.shape.as_list(), params=info.params, macs=info.macs,
                rf=info.rf.size, jump=info.rf.jump, activations=info.activations, hyper=hyper,
            ))
        out = net.node(net.output)
        outcomes = net.check()
        return cls(
            network=net.name, file=net.file, input=net.input_shape.as_list(), output=net.output_shape.as_list(),
            params=net.params, params_without_aux=net.params_without_aux, macs=net.macs,
            macs_without_aux=net.macs_without_aux,
            activations=sum(r.activations for r in rows if r.kind != "input"),
            rf=out.rf.size, jump=out.rf.jump,
            aux_outputs={k: net.node(v).shape.as_list() for k, v in net.aux_outputs.items()},
            rows=rows,
            expectations=[{
                "what": o.what, "expected": _jsonable(o.expectation.expected), "found": _jsonable(o.found),
                "ok": o.ok, "line": o.expectation.stmt.span.line,
            } for o in outcomes],
        )

    # ---------------------------------------------------------------- JSON

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "network": self.network,
            "file": self.file,
            "input": self.input,
            "output": self.output,
            "params": self.params,
            "params_without_aux": self.params_without_aux,
            "macs": self.macs,
            "macs_without_aux": self.macs_without_aux,
            "flops": self.flops,
            "activation_elements": self.activations,
            "activation_bytes": self.activations * BYTES_PER_VALUE,
            "param_bytes": self.params * BYTES_PER_VALUE,
            "receptive_field": {"size": list(self.rf), "jump": list(self.jump)},
            "aux_outputs": self.aux_outputs,
            "conventions": CONVENTIONS,
            "layers": [{
                "name": r.name, "kind": r.kind, "op": r.op, "block": r.block, "aux": r.aux, "inputs": r.inputs,
                "input": r.input, "output": r.output, "params": r.params, "macs": r.macs,
                "receptive_field": list(r.rf), "jump": list(r.jump), "activations": r.activations,
                "hyper": r.hyper,
            } for r in self.rows],
            "expectations": self.expectations,
        }

    def to_json(self, indent: int | None = 2) -> str:
        import json

        return json.dumps(self.to_dict(), indent=indent)

    # ---------------------------------------------------------------- markdown

    def to_markdown(self) -> str:
        """A table laid out like the papers': kernel, stride, padding, channels, shapes."""
        head = ["layer", "op", "kernel", "stride", "pad", "in ch", "out ch", "input", "output", "params", "MACs"]
        lines = [f"### {self.network}", "",
                 "| " + " | ".join(head) + " |",
                 "|" + "|".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + "|"]
        for r in self.rows:
            h = r.hyper
            cells = [
                f"`{r.name}`", r.op.replace("|", "\\|"), str(h.get("kernel", "")), str(h.get("stride", "")),
                str(h.get("padding", "")), str(h.get("in_channels", "")) if r.kind != "input" else "",
                str(h.get("out_channels", "")),
                ", ".join(_fmt_shape(s) for s in r.input), _fmt_shape(r.output),
                f"{r.params:,}" if r.params else "", f"{r.macs:,}" if r.macs else "",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"- {line}" for line in self._total_lines()]
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- table

    def to_table(self, width: int = 120) -> str:
        """The default, readable report (laid out as rich lays it out; plain text, no colour codes)."""
        title = f"{self.network}  ({self.file})"
        columns = (("layer", "left"), ("op", "left"), ("output", "right"), ("params", "right"),
                   ("MACs", "right"), ("RF", "right"), ("activations", "right"))
        # numbers and shapes never wrap (a folded "118,013,9 / 52" misreads); when the table
        # is too wide, long qualified layer names and labels fold instead
        no_wrap = [col not in ("layer", "op") for col, _ in columns]
        rows = [(r.name, r.op, _fmt_shape(r.output), f"{r.params:,}" if r.params else "",
                 f"{r.macs:,}" if r.macs else "", f"{r.rf[0]}" if r.rf[0] == r.rf[1] else f"{r.rf[0]}x{r.rf[1]}",
                 f"{r.activations:,}") for r in self.rows]
        # the same layout without rich's per-cell machinery (archdsl.textable); rich for the rest
        from .textable import render

        drawn = render(title, [c for c, _ in columns], [j for _, j in columns], no_wrap, rows, width)
        if drawn is None:
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, title_justify="left", box=None, pad_edge=False, header_style="bold")
            for (col, justify), nw in zip(columns, no_wrap):
                table.add_column(col, justify=justify, no_wrap=nw, overflow="fold")
            for row in rows:
                table.add_row(*row)
            buf = io.StringIO()
            console = Console(file=buf, width=width, color_system=None, force_terminal=False, highlight=False,
                              legacy_windows=False, soft_wrap=False)
            console.print(table)
            drawn = buf.getvalue()
        text = drawn.rstrip() + "\n\n" + "\n".join(self._total_lines()) + "\n"
        return "\n".join(line.rstrip() for line in text.splitlines()) + "\n"

    def _total_lines(self) -> list[str]:
        lines = [
            f"input: {_fmt_shape(self.input)}   output: {_fmt_shape(self.output)}",
            f"params: {self.params:,} ({_mb(self.params * BYTES_PER_VALUE)} as float32)",
        ]
        if self.aux_outputs:
            lines.append(f"params without aux heads ({', '.join(self.aux_outputs)}): {self.params_without_aux:,}")
        lines += [
            f"MACs: {self.macs:,}   FLOPs: {self.flops:,}  (FLOPs = 2 x MACs; conv and fc weights only)",
        ]
        if self.aux_outputs:
            lines.append(f"MACs without aux heads: {self.macs_without_aux:,}")
        lines += [
            f"activations: {self.activations:,} values ({_mb(self.activations * BYTES_PER_VALUE)} per sample "
            f"as float32)",
            f"receptive field: {self.rf[0]}x{self.rf[1]} (jump {self.jump[0]})",
        ]
        for e in self.expectations:
            mark = "ok" if e["ok"] else "FAILED"
            lines.append(f"expect {e['what']} = {_fmt_value(e['expected'])}: {mark}"
                         + ("" if e["ok"] else f" (found {_fmt_value(e['found'])})"))
        return lines

    def __str__(self) -> str:
        return self.to_table()


def _fmt_shape(s: list[int]) -> str:
    return "x".join(map(str, s))


def _fmt_value(v: Any) -> str:
    if isinstance(v, list):
        return _fmt_shape(v)
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _mb(n: int) -> str:
    """Bytes in binary units, so that a small network does not read "0.00 MiB"."""
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:,.2f} {unit}"
    return f"{n:,} B"


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return list(v)
    return v
