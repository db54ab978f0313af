"""The analytic report: per-layer rows and totals, as a table, markdown (like the papers'
tables) or JSON. Computed from the compiled graph alone: this module never imports torch.

JSON keys (stable; `schema` changes when a key does):

    schema, network, file, input, output, params, params_without_aux, macs,
    macs_without_aux, flops, activation_elements, activation_bytes, param_bytes,
    receptive_field {size, jump}, aux_outputs {name: shape}, conventions {...},
    layers [{name, kind, op, block, aux, inputs, input, output, params, macs,
             receptive_field, jump, activations, saved_bytes, hyper}],
    training_memory {batch, optimizer, saved_activation_bytes, saved_bytes_per_sample,
                     saved_fixed_bytes, param_bytes, gradient_bytes, optimizer_state_bytes,
                     buffer_bytes, total_bytes},
    expectations [{what, expected, found, ok, line}],
    init [{layer, op, parameter, filler}] (the spec's fillers; torch's default elsewhere),
    training (the `train { }` recipe: optimizer, batch, epochs, iterations, schedule,
              warmup, loss; null when the spec states none)

The table is drawn by :func:`draw_table`, some fifty lines of plain layout, not by rich.
Measured on googlenet's report (2 shared cores): rich takes 19-41 ms to import and 38-92 ms
to lay the table out, against 0.5-1.0 ms here; the warm `archdsl compile specs/googlenet.arch`
took 183-300 ms this way and 296-511 ms through rich, which would double a command meant to
stay under 0.2 s. rich's layout also folded numbers when the table was too narrow
(`--width 30` cut 118,013,952 to `118,01`); this one never does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .network import CompiledNetwork

SCHEMA = 1
BYTES_PER_VALUE = 4  # float32

CONVENTIONS = {
    "params": "every learnable tensor, as sum(p.numel() for p in model.parameters()); all are trainable "
              "(requires_grad), so non-trainable params are 0",
    "buffers": "values kept with the model but not trained (batch-norm running statistics and "
               "num_batches_tracked, fixed codes, indices), as sum(b.numel() for b in model.buffers())",
    "macs": "multiply-accumulates of convolution and fully connected weights (no bias, norm, pooling, "
            "activation or addition), batch size 1",
    "flops": "2 x MACs (one multiply and one add), as torch.utils.flop_counter counts",
    "receptive_field": "size and jump in input pixels, the maximum over paths",
    "activations": "values in each layer's output, batch size 1; bytes at 4 per value (float32)",
    "training_memory": "one training step at the batch (the recipe's, else 1): the activations autograd saves "
                       "for backward (each tensor once; a layer's saved_bytes: its tensors kept, per sample), "
                       "params, as much again for gradients, the optimizer's state in parameter-sized slots "
                       "(SGD's momentum, Adam's two moments) and the buffers, float32",
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
    rf: tuple[int | float, int | float]
    jump: tuple[int | float, int | float]
    activations: int
    hyper: dict[str, Any] = field(default_factory=dict)
    #: bytes per sample of this layer's tensors that training keeps for backward
    saved: int = 0


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
    buffers: int
    rf: tuple[int | float, int | float]
    jump: tuple[int | float, int | float]
    aux_outputs: dict[str, list[int]]
    rows: list[Row]
    expectations: list[dict[str, Any]]
    init: list[dict[str, Any]] = field(default_factory=list)
    training: Any = None  # the archdsl.recipe.Recipe
    memory: Any = None  # the archdsl.memory.TrainingMemory

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @classmethod
    def of(cls, net: "CompiledNetwork", depth: int | None = None, batch: int | None = None,
           optimizer: str | None = None, hyper: dict[str, Any] | None = None) -> "Report":
        """The report of `net`: a row per layer, or with `depth` N a row per block call, named
        group or aux head nested N groups deep (as torchinfo's depth and `render --depth`:
        0 folds every top-level group into one row), layers above that depth as they are.
        The training memory is at `batch` with `optimizer` (the recipe's, else 1 and SGD)."""
        from .memory import training_memory

        memory = training_memory(net, batch, optimizer, hyper)
        rows = []
        for info in net.nodes() if depth is None else ():
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
                rf=_exact(info.rf.size), jump=_exact(info.rf.jump), activations=info.activations, hyper=hyper,
                saved=memory.per_node.get(info.id, 0),
            ))
        if depth is not None:
            rows = _folded_rows(net, depth)
        out = net.node(net.output)
        outcomes = net.check()
        return cls(
            network=net.name, file=net.file, input=net.input_shape.as_list(), output=net.output_shape.as_list(),
            params=net.params, params_without_aux=net.params_without_aux, macs=net.macs,
            macs_without_aux=net.macs_without_aux,
            activations=sum(r.activations for r in rows if r.kind != "input"),
            buffers=net.buffers,
            rf=_exact(out.rf.size), jump=_exact(out.rf.jump),
            aux_outputs={k: net.node(v).shape.as_list() for k, v in net.aux_outputs.items()},
            rows=rows,
            expectations=[{
                "what": o.what, "expected": _jsonable(o.expectation.expected), "found": _jsonable(o.found),
                "ok": o.ok, "line": o.expectation.stmt.span.line,
            } for o in outcomes],
            init=[{"layer": node, "op": ([net.node(node).op, *net.node(node).post][i]).kind.name, "parameter": t,
                   "filler": str(f)} for node, fillers in net.init.items() for i, t, f in fillers],
            training=net.recipe,
            memory=memory,
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
            "trainable_params": self.params,
            "non_trainable_params": 0,
            "buffers": self.buffers,
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
                "saved_bytes": r.saved, "hyper": r.hyper,
            } for r in self.rows],
            "training_memory": self.memory.to_dict(),
            "expectations": self.expectations,
            "init": self.init,
            "training": self.training.to_dict() if self.training is not None else None,
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
        lines += [f"  - {line.strip()}" if line.startswith("  ") else f"- {line}" for line in self._total_lines()]
        return "\n".join(lines) + "\n"

    # ---------------------------------------------------------------- table

    def to_table(self, width: int = 120) -> str:
        """The default, readable report: plain text, no colour codes, laid out by :func:`draw_table`
        (names and ops wrap to fit `width`; numbers and shapes are never cut)."""
        drawn = draw_table(f"{self.network}  ({self.file})", TABLE_COLUMNS, self.table_rows(), width)
        return drawn + "\n" + "\n".join(line.rstrip() for line in self._total_lines()) + "\n"

    def table_rows(self) -> list[tuple[str, ...]]:
        """The table's cells, one tuple per layer, in the order of TABLE_COLUMNS."""
        return [(r.name, r.op, _fmt_shape(r.output), f"{r.params:,}" if r.params else "",
                 f"{r.macs:,}" if r.macs else "", f"{r.rf[0]}" if r.rf[0] == r.rf[1] else f"{r.rf[0]}x{r.rf[1]}",
                 f"{r.activations:,}") for r in self.rows]

    def _total_lines(self) -> list[str]:
        lines = [
            f"input: {_fmt_shape(self.input)}   output: {_fmt_shape(self.output)}",
            f"params: {self.params:,} ({_mb(self.params * BYTES_PER_VALUE)} as float32), all trainable"
            + (f"; buffers: {self.buffers:,} values" if self.buffers else ""),
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
            *self._memory_lines(),
            f"receptive field: {self.rf[0]}x{self.rf[1]} (jump {self.jump[0]})",
        ]
        for e in self.expectations:
            mark = "ok" if e["ok"] else "FAILED"
            lines.append(f"expect {e['what']} = {_fmt_value(e['expected'])}: {mark}"
                         + ("" if e["ok"] else f" (found {_fmt_value(e['found'])})"))
        return lines + self._training_lines()

    def _memory_lines(self) -> list[str]:
        m = self.memory
        parts = [f"saved activations {_mb(m.saved)} ({_mb(m.saved_per_sample)} per sample)",
                 f"params {_mb(m.params)}", f"gradients {_mb(m.gradients)}"]
        if m.optimizer_state:
            parts.append(f"optimizer state {_mb(m.optimizer_state)}")
        if m.buffers:
            parts.append(f"buffers {_mb(m.buffers)}")
        return [f"training memory (batch {m.batch:,}, {m.optimizer}): {_mb(m.total)}", "  " + ", ".join(parts)]

    def _training_lines(self) -> list[str]:
        """The spec's init and training recipe (analytic: nothing is built)."""
        lines: list[str] = []
        if self.init:
            counts: dict[tuple[str, str], int] = {}
            for e in self.init:
                key = (f"{e['op']}.{e['parameter']}", e["filler"])
                counts[key] = counts.get(key, 0) + 1
            lines.append("init (the spec's fillers; torch's defaults for the rest):")
            wide = max(len(k) for k, _ in counts)
            lines += [f"  {what:<{wide}}  {f}  ({n} layer{'s' * (n != 1)})" for (what, f), n in counts.items()]
        if self.training is not None:
            lines.append("training:")
            lines += [f"  {line}" for line in self.training.lines()]
        return lines

    def __str__(self) -> str:
        return self.to_table()


def _folded_rows(net: "CompiledNetwork", depth: int) -> list[Row]:
    """Rows at `depth`: a group nested `depth` or more groups deep is one row (its path, its
    call, its output, the sums of its layers' params, MACs and activations); the layers
    outside such groups are rows of their own."""
    from .network import TAux, TLayer, TMerge, TSeq, call_text, nodes_under, output_of, walk

    full = {r.name: r for r in Report.of(net).rows}  # saved bytes per sample do not depend on the batch
    rows, skip, calls = [full[net.input]], None, []  # calls: the block calls open around the walk
    for v in walk(net.tree):
        it = v.item
        if skip is not None:
            if it is skip and v.leaving:
                skip = None
            continue
        if type(it) is TLayer or (type(it) is TMerge and v.leaving):
            rows.append(full[it.node])
            continue
        seq = it.body if type(it) is TAux else it
        folds = (not v.leaving and it is not net.tree and v.depth >= depth
                 and (type(it) is TAux or (type(it) is TSeq and type(v.parent) not in (TMerge, TAux))))
        if not folds:
            if type(it) is TSeq and it.block is not None and it is not net.tree:
                if v.leaving:
                    calls.pop()
                else:
                    calls.append(it)
            continue
        skip = it
        members = nodes_under(seq)
        if not members:  # an empty group builds nothing
            continue
        inside, last = set(members), full[output_of(seq) or members[-1]]
        first = full[members[0]]
        inputs = list(dict.fromkeys(u for n in members for u in full[n].inputs if u not in inside))
        rows.append(Row(
            name=seq.path, kind="aux" if type(it) is TAux else "block" if seq.block else "group",
            op=f"aux head {it.name}" if type(it) is TAux else call_text(seq),
            block=".".join(f"{c.name}:{c.block}" for c in calls) or None, aux=first.aux, inputs=inputs, input=[full[u].output for u in inputs],
            output=last.output, params=sum(full[n].params for n in members), macs=sum(full[n].macs for n in members),
            rf=last.rf, jump=last.jump, activations=sum(full[n].activations for n in members),
            hyper={"layers": len(members)}, saved=sum(full[n].saved for n in members),
        ))
    return rows


CSV_COLUMNS = ("network", "layer", "kind", "op", "block", "aux", "inputs", "input", "output", "params", "macs",
               "rf_h", "rf_w", "jump_h", "jump_w", "activations", "saved_bytes")


def json_schema() -> dict:
    """The published JSON Schema (draft 2020-12) of the JSON report, archdsl/schema/report.schema.json."""
    import json
    from importlib import resources

    return json.loads(resources.files("archdsl").joinpath("schema/report.schema.json").read_text())


def to_csv(reports: "list[Report]") -> str:
    """One row per layer of each network, for a spreadsheet or pandas: plain numbers (no
    thousands separators), shapes as CxHxW, several inputs and input names joined by `;`."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for rep in reports:
        for r in rep.rows:
            writer.writerow([rep.network, r.name, r.kind, r.op, r.block or "", r.aux or "", ";".join(r.inputs),
                             ";".join(_fmt_shape(s) for s in r.input), _fmt_shape(r.output), r.params, r.macs,
                             *r.rf, *r.jump, r.activations, r.saved])
    return out.getvalue()


# ---------------------------------------------------------------- the plain table

#: the table's columns: (header, right-aligned, may wrap). Numbers and shapes are right-aligned
#: and never wrap; only the layer's qualified name and its op do.
TABLE_COLUMNS = (("layer", False, True), ("op", False, True), ("output", True, False), ("params", True, False),
                 ("MACs", True, False), ("RF", True, False), ("activations", True, False))
#: a column that may wrap shrinks no narrower than this, or its header if that is wider
MIN_WRAP_WIDTH = 8
#: a word and the spaces or the dot after it: a line may break there (a decimal point is no break)
_PIECE = re.compile(r"(?:[^ .]|\.(?=\d))*(?: +|\.(?!\d))|(?:[^ .]|\.(?=\d))+")


def draw_table(title: str, columns, rows, width: int) -> str:
    """A plain-text table: the title line, the header line, then the rows.

    `columns` holds (header, right-aligned, may wrap) per column; `rows` the cells, strings.
    The rules:

    * columns are separated by two spaces, with none at the edges, and each is as wide as
      its widest cell, header included; cells are left- or right-aligned (headers too);
    * a column that may not wrap (the report's numbers and shapes) keeps that width: its
      cells are never cropped, wrapped or folded;
    * when the table is wider than `width`, the widest column that may wrap gives up one
      character, again and again, until the table fits or every such column is down to
      MIN_WRAP_WIDTH (or its header, if wider; a header never wraps). Its cells then wrap
      at spaces and after dots (a decimal point is no dot), and a word longer than the column folds across lines;
    * if the table still does not fit, its lines are longer than `width`: a number is
      never cut to make a line fit. The title is never wrapped either;
    * a row is as tall as its tallest cell (cells top-aligned); lines carry no trailing spaces.
    """
    table = [[c[0] for c in columns]] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    floors = [min(w, max(len(head), MIN_WRAP_WIDTH)) if wraps else w
              for w, (head, _, wraps) in zip(widths, columns)]
    excess = sum(widths) + 2 * (len(columns) - 1) - width
    while excess > 0:
        shrinkable = [i for i, (w, floor) in enumerate(zip(widths, floors)) if w > floor]
        if not shrinkable:
            break
        widths[max(shrinkable, key=widths.__getitem__)] -= 1
        excess -= 1
    out = [title] if title else []
    for row in table:
        cells = [[line.rjust(w) if right else line.ljust(w) for line in
                  (_wrap(text, w) if len(text) > w else [text])]
                 for text, w, (_, right, _) in zip(row, widths, columns)]
        for k in range(max(map(len, cells))):
            out.append("  ".join(c[k] if k < len(c) else " " * w for c, w in zip(cells, widths)).rstrip())
    return "\n".join(out) + "\n"


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` characters, broken after spaces and dots (not a
    decimal point); a word longer than `width` folds."""
    lines, line = [], ""
    for piece in _PIECE.findall(text):
        if len((line + piece).rstrip()) <= width:
            line += piece
            continue
        if line.strip():
            lines.append(line.rstrip())
            line = piece
        else:
            line += piece
        while len(line.rstrip()) > width:
            lines.append(line[:width])
            line = line[width:]
    lines.append(line.rstrip())
    return lines


def _exact(v: tuple) -> tuple:
    """A field's size or jump: integers, or (after upsampling, whose jump is a fraction of a
    pixel) an exact fraction printed and written to JSON as a float to 4 decimals."""
    return tuple(x if type(x) is int else int(x) if x == int(x) else round(float(x), 4) for x in v)


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
