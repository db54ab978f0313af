"""Parsed specs, cached: in memory for the life of a process, and on disk between runs.

Parsing is the slowest stage of `archdsl compile` (Lark's LALR parser, then the typed
program's construction), and a spec's parse depends only on its text, the file name its
spans carry, and the code that parses it. So the :class:`~archdsl.program.Program` is
kept under a hash of the three, as Python keeps bytecode in ``__pycache__``:

* in memory, the most recently used programs (they are frozen, so sharing one is safe);
* on disk, for specs read from files, as pickles under ``$XDG_CACHE_HOME/archdsl/programs``
  (``~/.cache/archdsl/programs``), beside Lark's own grammar cache. Loading one is about
  five times quicker than parsing (GoogLeNet's spec: 8 ms against 40-50 ms), and needs
  neither Lark nor pydantic's validators.

Errors are never cached: a spec that fails to parse is parsed (and reported) every time.
``ARCHDSL_NO_CACHE=1`` turns both caches off; ``ARCHDSL_CACHE_DIR`` moves the disk cache.
A cache that cannot be read or written is ignored. The files are the user's own, like
``__pycache__``: whoever can write them can already run code as that user.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import pickle
import sys
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .program import Program

#: programs kept in memory (the most recently used)
MEMORY_ENTRIES = 64
#: files kept on disk; beyond it the oldest are removed
DISK_ENTRIES = 512

_memory: "OrderedDict[str, Program]" = OrderedDict()
_disabled = 0
#: the compile stages' memo tables (see memo()), emptied by clear()
_memos: list[dict] = []
_fingerprint: str | None = None


def enabled() -> bool:
    return _disabled == 0 and not os.environ.get("ARCHDSL_NO_CACHE")


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Parse everything afresh inside the block (used to time parsing, and by tests)."""
    global _disabled
    _disabled += 1
    try:
        yield
    finally:
        _disabled -= 1


def clear() -> None:
    """Forget everything held in memory: parsed programs and the compile stages' memo
    tables, as in a fresh process (the disk cache is left alone)."""
    _memory.clear()
    for table in _memos:
        table.clear()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector off, then restore it.

    Parsing and building allocate many objects that live as long as their result (parse
    tree nodes, spans, layer records) and almost no reference cycles. CPython starts a
    collection every 700 net allocations, and every so often a full one that walks every
    object alive, so across a large spec it examines the same long-lived objects again and
    again: about a third of the time of a 10,000-line cold compile, and a tenth of a warm
    DenseNet-121's. Both stages are bounded (parser.MAX_SOURCE_BYTES, graph.MAX_NODES and
    MAX_STEPS), and so is whatever garbage they leave for the next collection."""
    if not gc.isenabled():  # already paused (a stage within another), or turned off by the caller
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def memo() -> dict:
    """A new memo table for a compile stage (memoised binding, per-layer inference), which
    clear() empties along with the parsed programs."""
    table: dict = {}
    _memos.append(table)
    return table


def _code_fingerprint() -> str:
    """What else a parse depends on: the parser's code and grammar, and the versions whose
    objects a pickle holds. A stat of each source file is enough to notice an edit."""
    global _fingerprint
    if _fingerprint is None:
        import pydantic

        here = Path(__file__).resolve().parent
        parts = [sys.version, pydantic.VERSION]
        for name in ("grammar.lark", "parser.py", "program.py", "cache.py"):
            try:
                st = (here / name).stat()
                parts.append(f"{name}:{st.st_mtime_ns}:{st.st_size}")
            except OSError:
                parts.append(f"{name}:?")
        _fingerprint = "|".join(parts)
    return _fingerprint


def _key(source: str, file: str) -> str:
    h = hashlib.sha256(_code_fingerprint().encode())
    h.update(b"\0" + file.encode("utf-8", "surrogatepass") + b"\0")
    h.update(source.encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:40]


def _disk_dir() -> Path:
    base = os.environ.get("ARCHDSL_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "archdsl" / "programs"


def _on_disk(file: str) -> bool:
    # text passed to compile() as a string ("<string>") is not kept on disk: property-based
    # tests and notebooks parse many such texts once each
    return not file.startswith("<")


def lookup(source: str, file: str) -> "Program | None":
    """The cached program for this text and file name, or None."""
    if not enabled():
        return None
    key = _key(source, file)
    prog = _memory.get(key)
    if prog is not None:
        _memory.move_to_end(key)
        return prog
    if not _on_disk(file):
        return None
    try:
        data = (_disk_dir() / f"{key}.pickle").read_bytes()
        prog = pickle.loads(data)
    except Exception:  # noqa: BLE001 - missing, unreadable or stale: parse instead
        return None
    from .program import Program

    if not isinstance(prog, Program) or prog.source != source or prog.file != file:
        return None
    _remember(key, prog)
    return prog


def store(source: str, file: str, prog: "Program") -> None:
    if not enabled():
        return
    key = _key(source, file)
    _remember(key, prog)
    if not _on_disk(file):
        return
    directory = _disk_dir()
    tmp = directory / f".{key}.{os.getpid()}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(pickle.dumps(prog, protocol=pickle.HIGHEST_PROTOCOL))
        os.replace(tmp, directory / f"{key}.pickle")  # atomic: a reader never sees half a file
        _prune(directory)
    except Exception:  # noqa: BLE001 - a read-only or full disk only loses the cache
        with contextlib.suppress(OSError):
            tmp.unlink()


#: files larger than this are read by archdsl.parser.read_source, which refuses them with E106
_QUICK_LIMIT = 4_000_000


def read_source(path) -> str:
    """A spec file's text. A file that reads and decodes cleanly is read here; anything else
    (unreadable, not UTF-8, too large) goes to archdsl.parser.read_source, which reports it.
    Together with :func:`parse`, a compile whose programs are all cached never imports Lark."""
    try:
        with open(path, "rb") as f:
            data = f.read(_QUICK_LIMIT + 1)
        if len(data) <= _QUICK_LIMIT:
            return data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        pass
    from .parser import read_source as read_and_check

    return read_and_check(path)


def parse(source: str, file: str = "<string>") -> "Program":
    """Parse spec text into a :class:`~archdsl.program.Program`, from the cache when it holds
    it (:func:`archdsl.parser.parse` otherwise, which then caches it).

    >>> [n.name for n in parse("network tiny { input 1x8x8; conv 3x3 -> 4 }").networks]
    ['tiny']
    """
    prog = lookup(source, file)
    if prog is not None:
        return prog
    from .parser import parse as parse_text

    return parse_text(source, file)


def _remember(key: str, prog: "Program") -> None:
    _memory[key] = prog
    _memory.move_to_end(key)
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)


def _prune(directory: Path) -> None:
    entries = [e for e in os.scandir(directory) if e.name.endswith(".pickle")]
    if len(entries) <= DISK_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat().st_mtime)
    for e in entries[: len(entries) - DISK_ENTRIES * 3 // 4]:
        with contextlib.suppress(OSError):
            os.unlink(e.path)
