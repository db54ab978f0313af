"""The zoo: the specs that ship with archdsl, reached by network name or as `zoo:FILE.arch`.

In a source checkout (and an editable install) the zoo is the repository's `specs/`
folder; a wheel carries the same files as `archdsl/specs/` (pyproject.toml maps one onto
the other). A network's file is found by a scan of the zoo's files for `network NAME` at the
start of a line: about a millisecond for the whole zoo, and never stale. The file is then
parsed as any spec is, so a name the scan finds is checked by the parser.

* `resnet50`: a network name, when no file of that name exists (a file always wins);
* `zoo:resnet.arch`: a zoo file, for the API, the command line and `include`.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from .diagnostics import ArchError, Diagnostic, did_you_mean

#: the prefix that names a zoo file: `include "zoo:resnet.arch"`, `archdsl compile zoo:vgg.arch`
PREFIX = "zoo:"

_NETWORK = re.compile(r"^[ \t]*network[ \t]+([A-Za-z_][A-Za-z0-9_]*)", re.M)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@lru_cache(maxsize=1)
def root() -> Path | None:
    """The zoo's folder (real path): the wheel's `archdsl/specs/`, else a checkout's `specs/`."""
    here = Path(__file__).resolve().parent
    if (here / "specs").is_dir():
        return here / "specs"
    checkout = here.parent
    if (checkout / "specs").is_dir() and (checkout / "pyproject.toml").is_file():
        return (checkout / "specs").resolve()
    return None


def files() -> list[str]:
    """The zoo's spec files, as paths relative to the zoo (`resnet.arch`), sorted."""
    top = root()
    if top is None:
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(top):  # links are not followed out of the zoo
        dirnames.sort()
        rel = Path(dirpath).relative_to(top)
        out += [(rel / f).as_posix() for f in filenames if f.endswith(".arch")]
    return sorted(out)


def index() -> dict[str, str]:
    """Network name -> zoo file (`resnet50` -> `resnet.arch`); a name is taken from the first
    file (in sorted order) that defines it (tests/test_zoo.py checks that names are unique)."""
    top = root()
    out: dict[str, str] = {}
    for rel in files():
        try:
            text = (top / rel).read_text("utf-8", errors="replace")  # type: ignore[operator]
        except OSError:
            continue
        for m in _NETWORK.finditer(text):
            out.setdefault(m.group(1), rel)
    return out


def is_zoo_path(source: object) -> bool:
    return isinstance(source, str) and source.startswith(PREFIX)


def file_path(name: str) -> Path:
    """The real path of a zoo file named `zoo:NAME.arch` (or `NAME.arch`); ArchError E602 when
    there is no such zoo file, E212 for a name that would lead outside the zoo."""
    rel = name[len(PREFIX):] if name.startswith(PREFIX) else name
    top = root()
    if top is None:
        raise ArchError(Diagnostic("E602", f"no such file: {PREFIX}{rel} (this installation has no zoo)"))
    target = contained(rel, top)
    if target is None:
        raise ArchError(Diagnostic("E212", f"\"{PREFIX}{rel}\" leads outside the zoo",
                                   hint="zoo files are named relative to the zoo: zoo:resnet.arch"))
    if not target.is_file():
        raise ArchError(Diagnostic("E602", f"no such file: {PREFIX}{rel}",
                                   hint=did_you_mean_file(rel)))
    return target


def did_you_mean_file(name: str) -> str:
    """The hint for a zoo file that does not exist."""
    rel = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return (did_you_mean(PREFIX + rel, [PREFIX + f for f in files()])
            or "zoo files: " + (", ".join(files()) or "none"))


def contained(rel: str, top: Path) -> Path | None:
    """The real path of `rel` inside the zoo folder `top`, or None when it is absolute or
    leads out (by `..` or a symbolic link)."""
    if not rel or "\0" in rel or os.path.isabs(rel) or rel.startswith("~") or not rel.endswith(".arch"):
        return None
    try:
        target = (top / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return target if top in target.parents else None


def resolve_name(name: str) -> tuple[Path, str]:
    """A network name -> (the real path of its zoo file, `zoo:FILE` as shown); ArchError E602
    with a did-you-mean over the zoo's names when it is neither a file nor a zoo network."""
    idx = index() if _NAME.fullmatch(name) else {}
    if name in idx:
        return file_path(idx[name]), PREFIX + idx[name]
    if not _NAME.fullmatch(name):  # it reads as a path: the familiar message
        raise ArchError(Diagnostic("E602", f"no such file: {name}"))
    names = idx or index()
    raise ArchError(Diagnostic("E602", f"no such file or zoo network: {name}",
                               hint=did_you_mean(name, names) or "`archdsl list` shows the zoo's networks"))


def natural_key(name: str) -> list:
    """resnet18 < resnet34 < resnet50 < resnet101, as timm sorts its models."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name.lower())]


class ZooNetwork:
    """A network of the zoo, as :func:`archdsl.list_networks` lists it: its name, its file
    (`zoo:resnet.arch`), parameters, MACs, input and output shapes (`3x224x224`, `1000`).
    (A plain class: a dataclass would cost every start-up that imports the zoo a millisecond.)"""

    __slots__ = ("name", "file", "params", "macs", "input", "output")

    def __init__(self, name: str, file: str, params: int, macs: int, input: str, output: str):
        self.name, self.file, self.params, self.macs, self.input, self.output = name, file, params, macs, input, output

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__slots__}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZooNetwork) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"ZooNetwork({self.name!r}, {self.file!r}, params={self.params:,}, macs={self.macs:,}, "
                f"{self.input} -> {self.output})")


def matching(patterns: "str | list[str] | tuple[str, ...] | None" = None,
             exclude: "str | list[str] | tuple[str, ...] | None" = None) -> list[tuple[str, str]]:
    """(name, zoo file) of the networks whose name matches any of `patterns` (fnmatch-style,
    case-insensitive; all when none) and none of `exclude`, in natural order."""
    from fnmatch import fnmatchcase

    def as_list(p):
        return [p] if isinstance(p, str) else list(p or [])

    inc, exc = [p.lower() for p in as_list(patterns)], [p.lower() for p in as_list(exclude)]
    names = [(n, f) for n, f in index().items()
             if (not inc or any(fnmatchcase(n.lower(), p) for p in inc))
             and not any(fnmatchcase(n.lower(), p) for p in exc)]
    return sorted(names, key=lambda nf: natural_key(nf[0]))


def list_networks(patterns=None, exclude=None) -> list[ZooNetwork]:
    """The zoo's networks matching `patterns`, each compiled for its params and MACs (each
    file is parsed once)."""
    from .sources import Loader
    from .spec import Spec

    specs: dict[str, Spec] = {}
    out = []
    for name, rel in matching(patterns, exclude):
        if rel not in specs:
            specs[rel] = Spec(Loader().load_file(file_path(rel), PREFIX + rel))
        net = specs[rel].compile(name)
        out.append(ZooNetwork(name, PREFIX + rel, net.params, net.macs, str(net.input_shape), str(net.output_shape)))
    return out


def listing(patterns, exclude, names: bool, fmt: str, width: int) -> tuple[str, list[str]]:
    """`archdsl list`: the text to print (a table, JSON, or the names alone, which need no
    compile) and the names found."""
    import json

    if names:
        found = [n for n, _ in matching(patterns, exclude)]
        if fmt == "json":
            return json.dumps(found, indent=2) + "\n", found
        return "".join(n + "\n" for n in found), found
    nets = list_networks(patterns, exclude)
    found = [n.name for n in nets]
    if fmt == "json":
        return json.dumps([n.to_dict() for n in nets], indent=2) + "\n", found
    if not nets:
        return "", found
    from .report import draw_table

    columns = (("network", False, True), ("params", True, False), ("MACs", True, False),
               ("input", True, False), ("output", True, False), ("file", False, True))
    rows = [(n.name, f"{n.params:,}", f"{n.macs:,}", n.input, n.output, n.file) for n in nets]
    return draw_table("", columns, rows, width), found


def close_names(patterns) -> str | None:
    """A did-you-mean for a single pattern without wildcards that matched nothing."""
    if len(patterns) != 1 or any(c in patterns[0] for c in "*?["):
        return None
    return did_you_mean(patterns[0], index())
