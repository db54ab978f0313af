"""What an editor asks of a spec, computed once per version of the text: the language server's
model (:mod:`archdsl.lsp` speaks the protocol; this module knows nothing of it).

:func:`analyze` parses the text (its includes read from disk, relative to the document),
compiles every network with a :class:`~archdsl.expand.Builder` that also records, for every
statement it runs, the tensor going in and coming out, the nodes it added, the names in scope
and, for a block call, the call's arguments. From those records come the diagnostics (every
error of every network, and every failed `expect`), the output shape at the end of each line,
hovers on layers, calls and names, definitions, symbols and completions. Positions here are
0-based (line, character), as the protocol counts them; spans are 1-based.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import syntax as P
from .budget import check_command
from .diagnostics import ArchError, Diagnostic
from .evaluate import Env
from .expand import Builder
from .layers import REGISTRY, MergeKind
from .network import EXPECTABLE, CompiledNetwork, format_value
from .parser import parse
from .sources import Loader, Unit

KEYWORDS = ("include", "let", "block", "network", "input", "repeat", "if", "else", "aux", "expect", "act", "norm",
            "bias")
GENERIC_FLAGS = ("noact", "nonorm", "bias", "nobias")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(slots=True)
class Record:
    """One statement as it ran: in one network, in one block call (statements in a block run
    once per call)."""

    stmt: Any
    network: str
    inp: str | None
    out: str | None
    start: int  # how many nodes there were before it ran: its nodes are ids[start:end]
    env: Env
    call: tuple | None = None  # (block, argument values) for a block call
    end: int | None = None
    ids: list | None = None  # the network's node ids in order, shared by all its records

    @property
    def nodes(self) -> list[str]:
        """The node ids it added. Sliced when asked (a hover), not for every record of every
        edit: a call's record spans all its nodes, so slicing them all costs nodes x depth."""
        return self.ids[self.start:self.end] if self.ids is not None and self.end is not None else []


class _Recorder(Builder):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.records: list[Record] = []
        self._calls: dict[int, tuple] = {}
        self._name = self.network.name

    def stmt(self, s, cur, ctx, nxt):
        rec = Record(s, self._name, cur, None, len(self.infos), ctx.env)
        self.records.append(rec)
        out = super().stmt(s, cur, ctx, nxt)
        rec.out, rec.end = out, len(self.infos)
        if self._calls:
            rec.call = self._calls.pop(id(s), None)
        return out

    def finish(self) -> None:
        """Give each record the node ids its positions, counted while it ran, index."""
        ids = list(self.infos)
        for r in self.records:
            r.ids = ids

    def _bind_call(self, inv, block, ctx, cur):
        values = super()._bind_call(inv, block, ctx, cur)
        self._calls[id(inv)] = (block, values)
        return values


@dataclass
class Analysis:
    """Everything known about one version of a document."""

    file: str
    source: str
    program: P.Program | None = None
    unit: Unit | None = None
    networks: dict[str, CompiledNetwork] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    file_env: Env | None = None
    hints: list | None = None
    #: set by the server when the analysis itself failed (a bug in archdsl)
    internal: str | None = None
    #: the blocks of a file that does not parse, each block that does parse on its own
    blocks: dict = field(default_factory=dict)
    #: network name -> (what it depends on, network, records, diagnostics, file env): see analyze
    cache: dict = field(default_factory=dict)

    # -- lookups
    def records_at(self, line: int, char: int) -> list[Record]:
        """The records of the innermost statement holding the position (0-based)."""
        best, size = [], None
        for r in self.records:
            sp = r.stmt.span
            if sp.file != self.file or not _inside(sp, line, char):
                continue
            s = (sp.end_line - sp.line, sp.end_column - sp.column if sp.end_line == sp.line else 10**6)
            if size is None or s < size:
                best, size = [r], s
            elif s == size and r.stmt.span == best[0].stmt.span:
                best.append(r)
        return best

    def node(self, rec: Record, node_id: str):
        return self.networks[rec.network].infos.get(node_id) if rec.network in self.networks else None

    def shape_of(self, rec: Record, node_id: str | None):
        info = self.node(rec, node_id) if node_id else None
        return info.shape if info is not None else None


def _item_text(item, lines: list[str]) -> tuple:
    sp = item.span
    return (sp.line, sp.column, "\n".join(lines[sp.line - 1:sp.end_line]))


def _calls(body: P.Body) -> set[str]:
    return {s.name for s in _stmts(body) if isinstance(s, P.Invocation)}


def _network_key(unit: Unit, prog: P.Network, lines: list[str]) -> tuple:
    """What a network's compile depends on: its own text and position, those of the blocks it
    reaches (from this file or an include), every `let`, and the included files' text."""
    seen, todo, parts = set(), list(_calls(prog.body)), []
    while todo:
        name = todo.pop()
        block = unit.blocks.get(name)
        if name in seen or block is None:
            continue
        seen.add(name)
        src = lines if block.span.file == prog.span.file else unit.sources.get(block.span.file, "").splitlines()
        parts.append((name, block.span.file, _item_text(block, src)))
        todo.extend(_calls(block.body))
    lets = tuple((let.span.file, let.span.line, let.name, repr(let.value)) for let in unit.lets)
    others = tuple(sorted((f, hash(t)) for f, t in unit.sources.items() if f != prog.span.file))
    return (_item_text(prog, lines), tuple(sorted(parts)), lets, others)


def analyze(source: str, file: str, previous: "Analysis | None" = None) -> Analysis:
    """Parse and compile `source` (the text of `file`); never raises for a mistake in the spec.
    A network whose text, position, blocks, lets and includes are those of `previous` is not
    compiled again: its results are taken from there."""
    a = Analysis(file=file, source=source)
    loader = Loader()
    try:
        a.unit = loader.load_text(source, file, Path(file).parent)
    except ArchError as e:
        a.diagnostics = list(e.diagnostics)
        try:  # a broken include still leaves this file's own program to look at
            a.program = parse(source, file)
        except ArchError:
            a.blocks = _salvage_blocks(source, file)
        return a
    a.program = a.unit.program
    nets = a.unit.program.networks
    try:
        check_command(a.unit, nets)
    except ArchError as e:
        a.diagnostics = list(e.diagnostics)
        return a
    lines = source.splitlines()
    cache = previous.cache if previous is not None else {}
    for prog in nets:
        key = _network_key(a.unit, prog, lines)
        hit = cache.get(prog.name)
        if hit is not None and hit[0] == key:
            _, net, records, diagnostics, genv = hit
            if net is not None:
                a.networks[prog.name] = net
            a.records.extend(records)
            a.diagnostics.extend(diagnostics)
            a.file_env = a.file_env or genv
            a.cache[prog.name] = hit
            continue
        first_diag = len(a.diagnostics)
        builder = _Recorder(a.unit, prog)
        try:
            with P.gc_paused():
                net = builder.build()
            a.networks[net.name] = net
            for outcome in net.check():
                if not outcome.ok:
                    a.diagnostics.append(outcome.diagnostic())
        except ArchError as e:
            a.diagnostics.extend(e.diagnostics)
            for part in getattr(e, "partial", None) or ():
                a.networks[part.name] = part
        except RecursionError:
            a.diagnostics.append(Diagnostic("E304", "the spec nests too deeply to expand", prog.span))
        builder.finish()
        a.records.extend(builder.records)
        a.file_env = a.file_env or builder.genv
        a.cache[prog.name] = (key, a.networks.get(prog.name), builder.records, a.diagnostics[first_diag:],
                              builder.genv)
    return a


def _salvage_blocks(source: str, file: str) -> dict[str, P.Block]:
    """The blocks of a text that does not parse (the one being typed): each `block` written
    from the start of a line to its closing brace that parses on its own, at its own lines."""
    out: dict[str, P.Block] = {}
    lines = source.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("block "):
            i += 1
            continue
        depth, j = 0, i
        while j < len(lines):
            depth += lines[j].count("{") - lines[j].count("}")
            if depth <= 0 and "{" in "".join(lines[i:j + 1]):
                break
            j += 1
        try:
            program = parse("\n" * i + "\n".join(lines[i:j + 1]), file)
            out.update((b.name, b) for b in program.blocks)
        except ArchError:
            pass
        i = j + 1
    return out


def _blocks(a: "Analysis") -> dict:
    return a.unit.blocks if a.unit is not None else a.blocks


def _inside(sp: P.Span, line: int, char: int) -> bool:
    start, end = (sp.line - 1, sp.column - 1), (sp.end_line - 1, sp.end_column - 1)
    return start <= (line, char) <= end


# ---------------------------------------------------------------- what the editor shows


def inlay_hints(a: Analysis) -> list[tuple[int, int, str]]:
    """(line, character, label): the output shape at the end of each line whose last
    statement makes or changes a tensor; in a block, where every call gives the same shape.
    Computed once per analysis."""
    if a.hints is not None:
        return a.hints
    by_line: dict[int, list] = {}  # line -> [sort key, statement id, shapes]
    lines = a.source.splitlines()
    kinds = (P.Invocation, P.Merge, P.Repeat, P.If, P.Input)
    infos = {name: net.infos for name, net in a.networks.items()}
    file = a.file
    for r in a.records:
        stmt = r.stmt
        if r.out is None or type(stmt) not in kinds:
            continue
        sp = stmt.span
        if sp.file != file:
            continue
        info = infos.get(r.network, {}).get(r.out)
        if info is None or info.shape is None:
            continue
        line, key = sp.end_line - 1, sp.end_column
        prev = by_line.get(line)
        if prev is None or prev[0] < key:
            by_line[line] = [key, id(stmt), {info.shape}]
        elif prev[1] == id(stmt):
            prev[2].add(info.shape)
    a.hints = [(line, len(lines[line]), f"  {next(iter(shapes))}")
               for line, (_, _, shapes) in sorted(by_line.items()) if len(shapes) == 1 and line < len(lines)]
    return a.hints


def word_at(source: str, line: int, char: int) -> tuple[str, int, int] | None:
    lines = source.splitlines()
    if line >= len(lines):
        return None
    for m in _WORD.finditer(lines[line]):
        if m.start() <= char <= m.end():
            return m.group(0), m.start(), m.end()
    return None


def _signature(block: P.Block) -> str:
    params = ", ".join(p.name if p.default is None else f"{p.name}={_text(p.default)}" for p in block.params)
    return f"block {block.name}({params})"


def _text(expr) -> str:
    return _source_of(expr)


_SOURCES: dict[str, str] = {}


def _source_of(node) -> str:
    sp = node.span
    text = _SOURCES.get(sp.file, "")
    lines = text.splitlines()
    if sp.line == sp.end_line and sp.line <= len(lines):
        return lines[sp.line - 1][sp.column - 1:sp.end_column - 1]
    return "…"


def _totals(a: Analysis, r: Record) -> tuple[int, int, int]:
    net = a.networks.get(r.network)
    infos = [net.infos[n] for n in r.nodes if net and n in net.infos]
    return sum(i.params for i in infos), sum(i.macs for i in infos), sum(1 for i in infos if i.inputs)


def hover(a: Analysis, line: int, char: int) -> tuple[str, tuple] | None:
    """Markdown for the position and the range it is about, or None."""
    _SOURCES.clear()
    if a.unit is not None:
        _SOURCES.update(a.unit.sources)
    else:
        _SOURCES[a.file] = a.source
    found = word_at(a.source, line, char)
    if found is None:
        return None
    word, start, end = found
    where = (line, start, line, end)
    recs = a.records_at(line, char)
    stmt = recs[0].stmt if recs else None
    blocks = _blocks(a)
    # a block call: signature and totals
    if isinstance(stmt, P.Invocation) and stmt.name == word and word in blocks:
        parts = [f"```arch\n{_signature(blocks[word])}\n```"]
        for r in recs[:4]:
            params, macs, layers = _totals(a, r)
            args = ", ".join(f"{k}={format_value(v)}" for k, v in (r.call[1] if r.call else {}).items())
            parts.append(f"`{word}({args})` in **{r.network}**: {_io(a, r)}  \nparams {params:,} · MACs "
                         f"{macs:,} · {layers} layers")
        return "\n\n".join(parts + _more(recs)), where
    # a layer or a merge: its nodes
    if isinstance(stmt, (P.Invocation, P.Merge)) and word == getattr(stmt, "name", getattr(stmt, "kind", None)):
        parts = []
        for r in recs[:4]:
            net = a.networks.get(r.network)
            for nid in r.nodes[-1:] if isinstance(stmt, P.Merge) else r.nodes:
                info = net.infos.get(nid) if net else None
                if info is None:
                    continue
                rf = info.rf.size
                parts.append(f"**{nid}** (`{info.label()}`) in **{r.network}**  \n"
                             f"{' + '.join(map(str, info.in_shapes)) or '—'} → **{info.shape}**  \n"
                             f"params {info.params:,} · MACs {info.macs:,} · receptive field "
                             f"{rf[0]}x{rf[1]} (jump {info.rf.jump[0]})")
        kind = REGISTRY.get(word)
        if kind is not None and kind.summary:
            parts.append(f"*{kind.name}*: {kind.summary}")
        return ("\n\n".join(parts + _more(recs)) or None), where
    # a kind
    kind = REGISTRY.get(word)
    if kind is not None and not recs:
        return f"*{kind.name}*: {kind.summary}", where
    # a name: its value where it stands
    values = []
    for r in recs or []:
        try:
            v = r.env.lookup(word)
        except KeyError:
            continue
        text = format_value(v)
        if text not in values:
            values.append(text)
    if not values and a.file_env is not None:
        try:
            values.append(format_value(a.file_env.lookup(word)))
        except KeyError:
            pass
    if values:
        shown = ", ".join(values[:6]) + (f", … ({len(values)} values)" if len(values) > 6 else "")
        return f"`{word}` = {shown}", where
    if word in blocks:
        return f"```arch\n{_signature(blocks[word])}\n```", where
    return None


def _io(a: Analysis, r: Record) -> str:
    return f"{a.shape_of(r, r.inp) or '—'} → **{a.shape_of(r, r.out) or '—'}**"


def _more(recs: list) -> list[str]:
    return [f"*… and {len(recs) - 4} more calls*"] if len(recs) > 4 else []


# ---------------------------------------------------------------- navigation


def definition(a: Analysis, line: int, char: int) -> tuple[str, P.Span] | None:
    """(file, span) of what the word at the position names: a block, a let, a parameter, or
    the file an include names."""
    if a.program is None:
        return None
    for item in a.program.items:
        if isinstance(item, P.Include) and _inside(item.span, line, char):
            target = (Path(a.file).parent / item.path)
            return str(target), P.Span(file=str(target), line=1, column=1, end_line=1, end_column=1)
    found = word_at(a.source, line, char)
    if found is None:
        return None
    word = found[0]
    if a.unit is not None and word in a.unit.blocks:
        b = a.unit.blocks[word]
        return b.span.file, b.span
    # the innermost item holding the position: its parameters and lets before the position
    holder = next((i for i in a.program.items if isinstance(i, (P.Block, P.Network)) and _inside(i.span, line, char)),
                  None)
    best = None
    if holder is not None:
        for p in holder.params:
            if p.name == word:
                best = p.span
        for s in _stmts(holder.body):
            if isinstance(s, P.Let) and s.name == word and (s.span.line - 1, s.span.column - 1) < (line, char):
                best = s.span
            if isinstance(s, P.Repeat) and s.var == word and _inside(s.span, line, char):
                best = s.span
    if best is None and a.unit is not None:
        for let in a.unit.lets:
            if let.name == word:
                best = let.span
    return (best.file, best) if best is not None else None


def _stmts(body: P.Body):
    for s in body.stmts:
        yield s
        for sub in (getattr(s, "body", None), getattr(s, "then", None), getattr(s, "orelse", None)):
            if isinstance(sub, P.Body):
                yield from _stmts(sub)
        for br in getattr(s, "branches", ()) or ():
            yield from _stmts(br)


def symbols(a: Analysis) -> list[tuple[str, str, P.Span, P.Span, str]]:
    """(name, kind, span, name span, detail) of the networks, blocks and lets of the file."""
    out = []
    if a.program is None:
        return out
    for item in a.program.items:
        if isinstance(item, P.Network):
            net = a.networks.get(item.name)
            detail = (f"params {net.params:,} · MACs {net.macs:,} · output {net.output_shape}"
                      if net is not None and net.complete else "")
            out.append((item.name, "network", item.span, _name_span(item, a.source), detail))
        elif isinstance(item, P.Block):
            out.append((item.name, "block", item.span, _name_span(item, a.source), _signature(item)))
        elif isinstance(item, P.Let):
            out.append((item.name, "let", item.span, item.span, ""))
    return out


def _name_span(item, source: str) -> P.Span:
    sp = item.span
    lines = source.splitlines()
    text = lines[sp.line - 1] if sp.line <= len(lines) else ""
    m = re.search(rf"\b{re.escape(item.name)}\b", text[sp.column - 1:])
    if m is None:
        return sp
    col = sp.column + m.start()
    return P.Span(file=sp.file, line=sp.line, column=col, end_line=sp.line, end_column=col + len(item.name))


# ---------------------------------------------------------------- completion


def _kind_words(kind) -> tuple[list[str], list[str]]:
    """The keyword arguments and flags a kind's `bind` reads: found in the source of its class
    and of the functions of its module that the class calls."""
    try:
        src = ""
        for cls in type(kind).__mro__:
            if not cls.__module__.startswith("archdsl.layers.") or cls.__module__.endswith(".base"):
                continue
            own = inspect.getsource(cls)
            module = inspect.getmodule(cls)
            for name in set(re.findall(r"\b([A-Za-z_]\w*)\(", own)):
                fn = getattr(module, name, None)
                if inspect.isfunction(fn) and fn.__module__ == cls.__module__:
                    own += inspect.getsource(fn)
            src += own
    except (OSError, TypeError):
        return [], []
    kws = sorted(set(re.findall(r"\.kw\(\s*\"(\w+)\"", src)))
    flags = sorted(set(re.findall(r"\.flag\(\s*\"(\w+)\"", src)))
    return kws, flags


def completions(a: Analysis, line: int, char: int) -> list[tuple[str, str, str]]:
    """(label, kind, detail) for the position: kinds, blocks and keywords where a statement
    starts; a kind's options and flags after it; a block's parameters inside its call; the
    figures after `expect`; names elsewhere."""
    lines = a.source.splitlines()
    text = lines[line][:char] if line < len(lines) else ""
    stmt_text = re.split(r"[;{|]", text)[-1]
    stmt_text = re.sub(r"^\s*[A-Za-z_]\w*\s*:(?!=)", "", stmt_text)
    words = stmt_text.split()
    blocks = _blocks(a)
    if re.search(r"\bexpect\s+\w*$", stmt_text):
        return [(w, "figure", "expect") for w in EXPECTABLE]
    if re.search(r"\bact\s+\w*$", stmt_text):
        return [(k.name, "kind", k.summary) for k in REGISTRY.values() if getattr(k, "is_activation", False)] + [
            ("none", "keyword", "no default activation")]
    call = re.search(r"\b([A-Za-z_]\w*)\(([^()]*)$", stmt_text)
    if call and call.group(1) in blocks:
        return [(f"{p.name}=", "parameter", _signature(blocks[call.group(1)])) for p in blocks[call.group(1)].params]
    if not words or (len(words) == 1 and not stmt_text.endswith(" ")):
        out = [(k, "kind", REGISTRY[k].summary) for k in REGISTRY]
        out += [(b, "block", _signature(blk)) for b, blk in blocks.items()]
        out += [(k, "keyword", "") for k in KEYWORDS]
        return out
    kind = REGISTRY.get(words[0])
    names = _names(a, line, char)
    if kind is not None and not isinstance(kind, MergeKind):
        kws, flags = _kind_words(kind)
        out = [(f"{k}=", "parameter", kind.name) for k in kws] + [(f, "flag", kind.name) for f in flags]
        if kind.takes_act:
            out += [(f, "flag", "") for f in ("noact",)] + [
                (k.name, "flag", "activation") for k in REGISTRY.values() if getattr(k, "is_activation", False)]
        if kind.takes_norm:
            out.append(("nonorm", "flag", ""))
        if kind.has_bias:
            out += [("bias", "flag", ""), ("nobias", "flag", "")]
        return out + [(n, "name", "") for n in names]
    return [(n, "name", "") for n in names]


def _names(a: Analysis, line: int, char: int) -> list[str]:
    """The names in scope at the position (of every call that reaches it), and the file's."""
    out: set[str] = set()
    for r in a.records_at(line, char):
        out |= r.env.names_so_far()()
    if a.file_env is not None:
        out |= a.file_env.names_so_far()()
    return sorted(out)
