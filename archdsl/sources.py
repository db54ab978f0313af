"""Stage 3, sources: reading spec files and their includes into a :class:`Unit`.

A unit is everything one file can see: its own blocks and constants, and those its
includes bring. Includes are read once each per load, in order, and confined to the tree
of the spec being loaded (docs/language.md, "Includes"): a spec may come from anywhere (a
pull request, a colleague, a paper's repository), so what it names must never make
archdsl read or show a file outside that tree.

* An include is a relative path ending in `.arch`, taken from the including file's
  folder; an absolute path is refused (E212).
* Its real path (symbolic links resolved) must lie inside the root: the folder of the
  spec given to archdsl (the working folder for spec text). A path that climbs out with
  `..` or a link that points out is refused (E212) before the file is opened.
* `include "zoo:FILE.arch"` names a file of the packaged zoo (archdsl/zoo.py): the one
  place outside the spec's tree an include may reach. A zoo file's own includes are
  confined to the zoo in the same way (each file's includes stay in the tree it was
  reached in), and zoo files are shown as `zoo:FILE.arch` in diagnostics.
* A file that is not valid UTF-8, or too large, is reported by name only (E106, E107):
  diagnostics show lines only of files that were accepted and decoded as specs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import syntax as P
from .diagnostics import ArchError, Collector, Diagnostic, Note
from .layers import REGISTRY, MergeKind
from .parser import MAX_SOURCE_BYTES, parse

#: the deepest chain of includes
MAX_INCLUDE_DEPTH = 32
#: the most files one load may read (every include of every included file, each once)
MAX_FILES = 256
#: the most characters one load may read in all: every file's text together
MAX_TOTAL_CHARS = 4 * MAX_SOURCE_BYTES


def read_source(path: str | os.PathLike) -> str:
    """Read a spec file as UTF-8. A file too large or not UTF-8 is an error that names the
    file and the offset, and shows none of its content."""
    try:
        with open(path, "rb") as f:
            data = f.read(4 * MAX_SOURCE_BYTES + 1)  # UTF-8 takes at most 4 bytes a character
    except (OSError, ValueError) as err:
        raise ArchError(Diagnostic("E602", f"cannot read {path}: {getattr(err, 'strerror', None) or err}")) from None
    return decode_source(data, str(path))


def read_stream(stream, name: str = "<stdin>") -> str:
    """Read a spec from a binary stream (standard input), with read_source's bounds: at most
    one byte past the limit is read."""
    return decode_source(stream.read(4 * MAX_SOURCE_BYTES + 1), name)


def decode_source(data: bytes, name: str) -> str:
    if len(data) > 4 * MAX_SOURCE_BYTES:  # refused before the whole file is read
        raise ArchError(Diagnostic(
            "E106", f"{name} is larger than {4 * MAX_SOURCE_BYTES:,} bytes; "
                    f"the limit is {MAX_SOURCE_BYTES:,} characters",
            P.Span(file=name, line=1, column=1, end_line=1, end_column=2),
            hint="split it into files joined with `include`"))
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte-order mark, as some editors write
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        before = data[: err.start].decode("utf-8", "replace")
        line = before.count("\n") + 1
        col = len(before) - (before.rfind("\n") + 1) + 1
        raise ArchError(Diagnostic(
            "E107", f"the file is not valid UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start})",
            P.Span(file=name, line=line, column=col, end_line=line, end_column=col + 1),
            hint="save the spec as UTF-8")) from None


@dataclass
class Unit:
    """Everything visible in one file: its own items plus what its includes bring."""

    program: P.Program
    blocks: dict[str, P.Block]
    lets: list[P.Let]  # in order, includes first, each include's once
    sources: dict[str, str]
    #: mistakes that need not stop the networks' build (blocks defined twice: the last one is
    #: used meanwhile); :func:`check_duplicates` reports them
    deferred: list[Diagnostic] = field(default_factory=list)

    @property
    def networks(self) -> list[str]:
        """The names of the file's networks, in the order written."""
        return [n.name for n in self.program.networks]


class Loader:
    """Parses a file and its includes, once each, confined to the tree under `root`."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}
        self._units: dict[str, Unit] = {}
        self._chars = 0
        self._files = 0
        self.root: Path | None = None

    def load_text(self, source: str, file: str, base_dir: Path | None = None, key: str | None = None,
                  only: str | None = None) -> Unit:
        """Load spec text; with `only`, the file's other networks are checked, not built
        (:func:`archdsl.parser.parse`; its includes are loaded whole)."""
        self.root = self.root or (base_dir or Path(file).parent).resolve()
        self.sources[file] = source
        try:
            program = parse(source, file, only)
        except ArchError as e:
            raise e.with_sources(self.sources)
        return self._unit(program, base_dir or Path(file).parent, stack=[key or file], root=self.root)

    def load_file(self, path: str | Path, shown: str | None = None, only: str | None = None) -> Unit:
        """Load a spec file; `shown` names it in diagnostics and reports (default: `path`)."""
        path = Path(path)
        self.root = path.resolve().parent
        source = read_source(path)
        return self.load_text(source, shown or str(path), path.parent, key=str(path.resolve()), only=only)

    def _shown(self, target: Path) -> str:
        """How diagnostics name an included file: as the user would (zoo files as zoo:FILE)."""
        if self.root is None or self.root not in target.parents:
            from . import zoo  # here: a spec that includes nothing from the zoo never needs it

            top = zoo.root()
            if top is not None and top in target.parents:
                return zoo.PREFIX + target.relative_to(top).as_posix()
        return _display_path(target)

    def _target(self, item: P.Include, base_dir: Path, root: Path) -> tuple[Path, Path]:
        """The real path an include names and the tree its own includes are confined to, or a
        located error if it is not one to read."""
        def refuse(message: str, hint: str) -> ArchError:
            return ArchError(Diagnostic("E212", message, item.span, hint=hint))

        name = item.path
        if "\0" in name or len(name) > 255 or not name:
            raise ArchError(Diagnostic("E210", "include not found: the path is not a valid file name", item.span))
        if name.startswith("zoo:"):
            from . import zoo

            top = zoo.root()
            rel = name[len(zoo.PREFIX):]
            if top is None:
                raise ArchError(Diagnostic("E210", f"include not found: \"{name}\"", item.span,
                                           hint="this installation of archdsl has no zoo"))
            target = zoo.contained(rel, top)
            if target is None:
                raise refuse(f"include \"{name}\" leads outside the zoo",
                             "a zoo include names a `.arch` file relative to the zoo, e.g. \"zoo:resnet.arch\"")
            return target, top
        if os.path.isabs(name) or name.startswith("~"):
            raise refuse(f"include \"{name}\" is an absolute path",
                         "includes are relative to the including file and stay inside the spec's folder")
        if not name.endswith(".arch"):
            raise refuse(f"include \"{name}\" is not a spec file", "only `.arch` files can be included")
        try:
            target = (base_dir / name).resolve()
        except (OSError, RuntimeError, ValueError):  # a symbolic-link loop, a name too long
            raise ArchError(Diagnostic("E210", f"include not found: \"{name}\"", item.span,
                                       hint="the path cannot be resolved (a symbolic-link loop?)")) from None
        if target != root and root not in target.parents:
            if root != self.root and _is_zoo_root(root):  # a zoo file's include
                raise refuse(f"include \"{name}\" leads outside the zoo",
                             "a zoo file's includes stay inside the zoo (symbolic links included)")
            raise refuse(f"include \"{name}\" leads outside the spec's folder",
                         f"includes must stay inside {_display_path(root)} (symbolic links included); "
                         "a zoo file is included as \"zoo:FILE.arch\"")
        return target, root

    def _unit(self, program: P.Program, base_dir: Path, stack: list[str], vias: tuple[P.Span, ...] = (),
              root: Path | None = None) -> Unit:
        blocks: dict[str, P.Block] = {}
        lets: list[P.Let] = []
        seen_lets: set[int] = set()
        errors = Collector()
        deferred: list[Diagnostic] = []

        def add_block(b: P.Block) -> None:
            if b.name in blocks and blocks[b.name] is not b:
                prev = blocks[b.name]
                deferred.append(Diagnostic(
                    "E204", f"block '{b.name}' is defined twice", head_span(b, "block"),
                    notes=(Note("first defined here", head_span(prev, "block")),)))
            elif b.name in REGISTRY and not isinstance(REGISTRY[b.name], MergeKind):
                # (a merge kind's name stays free: `mul(...)` calls the block, `mul { }` merges)
                deferred.append(Diagnostic(
                    "E204", f"block '{b.name}' has the name of a layer kind", head_span(b, "block"),
                    hint="choose another name: layer kinds cannot be redefined"))
            blocks[b.name] = b

        for item in program.items:
            if isinstance(item, P.Include):
                try:
                    target, sub_root = self._target(item, base_dir, root or self.root)
                except ArchError as e:
                    errors.add(e)
                    continue
                key = str(target)
                if key in stack or any(Path(s).resolve() == target for s in stack):
                    cycle = " -> ".join([Path(s).name for s in stack] + [target.name])
                    notes = tuple(Note(f"{Path(via.file).name} includes {Path(s).name} here", via)
                                  for s, via in zip(stack[1:], vias))
                    errors.add(ArchError(Diagnostic("E211", f"include cycle: {cycle}", item.span, notes=notes)))
                    continue
                if len(stack) > MAX_INCLUDE_DEPTH:
                    errors.add(ArchError(Diagnostic("E211", "includes nest too deeply", item.span)))
                    continue
                if not target.is_file():
                    hint = (_zoo_hint(item.path) if item.path.startswith("zoo:") else
                            f"paths are relative to the folder of the including file ({_display_path(base_dir)})")
                    errors.add(ArchError(Diagnostic("E210", f"include not found: \"{item.path}\"", item.span,
                                                    hint=hint)))
                    continue
                if key not in self._units:
                    self._files += 1
                    if self._files > MAX_FILES:
                        errors.add(ArchError(Diagnostic(
                            "E304", f"the spec includes more than {MAX_FILES} files", item.span)))
                        continue
                    shown = self._shown(target)  # diagnostics name included files as the user would
                    try:
                        src = read_source(target)
                        self._chars += len(src)
                        if self._chars > MAX_TOTAL_CHARS:
                            raise ArchError(Diagnostic(
                                "E106", f"the spec and its includes exceed {MAX_TOTAL_CHARS:,} characters",
                                item.span, hint="a spec's files together are bounded like one file"))
                        self.sources[shown] = src
                        sub_prog = parse(src, shown)
                    except ArchError as e:
                        errors.add(e)
                        continue
                    self._units[key] = self._unit(sub_prog, target.parent, stack + [key], vias + (item.span,),
                                                  sub_root)
                sub = self._units[key]
                deferred.extend(d for d in sub.deferred if d not in deferred)
                for b in sub.blocks.values():
                    add_block(b)
                for let in sub.lets:  # a file included twice (directly and through another) counts once
                    if id(let) not in seen_lets:
                        seen_lets.add(id(let))
                        lets.append(let)
            elif isinstance(item, P.Block):
                add_block(item)
            elif isinstance(item, P.Let):
                seen_lets.add(id(item))
                lets.append(item)
        errors.raise_if_any(self.sources)
        return Unit(program, blocks, lets, self.sources, deferred)


def _is_zoo_root(root: Path) -> bool:
    """Whether `root`, the tree an including file was reached in, is the zoo."""
    from . import zoo

    return root == zoo.root()


def _zoo_hint(name: str) -> str:
    from . import zoo

    return zoo.did_you_mean_file(name)


def head_span(item: P.Block | P.Network, keyword: str) -> P.Span:
    """The span of `network NAME` / `block NAME`: the whole item would underline its body too."""
    sp = item.span
    return P.replace(sp, end_line=sp.line, end_column=sp.column + len(keyword) + 1 + len(item.name))


def _display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it, else absolute."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive
        return str(path)
    return str(path) if rel.startswith("..") else rel


def select_networks(unit: Unit, network: str | None) -> list[P.Network]:
    """The networks `network` names in the unit (all of them for None); E203 if none."""
    if network is not None and not isinstance(network, str):
        raise TypeError(f"network must be a name (str) or None, not {type(network).__name__}")
    if network in unit.program.unbuilt or (network is None and unit.program.unbuilt):
        # a spec loaded for one network (archdsl.spec.Spec loads itself whole before this)
        raise AssertionError(f"network '{network}' was not built: load the spec whole to compile it")
    nets = unit.program.networks
    if network is None:
        if not nets:
            raise ArchError(Diagnostic("E203", "no network in this file", P.Span(
                file=unit.program.file, line=1, column=1, end_line=1, end_column=2),
                hint="a file must hold at least one `network NAME { ... }`"), unit.sources)
        return nets
    chosen = [n for n in nets if n.name == network]
    if not chosen:
        from .diagnostics import Suggestion

        names = [n.name for n in nets]
        raise ArchError(Diagnostic("E203", f"no network named '{network}' in {unit.program.file}",
                                   hint=Suggestion(network, names, "networks: " + (", ".join(names) or "none"))),
                        unit.sources)
    return chosen


def check_duplicates(unit: Unit) -> None:
    """Report the unit's deferred mistakes and networks defined twice."""
    seen: dict[str, P.Network] = {}
    errors = Collector(list(unit.deferred))
    for n in unit.program.networks:
        if n.name in seen:
            errors.add(ArchError(Diagnostic("E204", f"network '{n.name}' is defined twice", head_span(n, "network"),
                                            notes=(Note("first defined here", head_span(seen[n.name], "network")),))))
        seen[n.name] = n
    errors.raise_if_any(unit.sources)
