"""Fuzzing the compiler: no input crashes it, hangs it, makes it misplace an error or read
and show a file outside the spec's folder; and every valid network it accepts builds to a
torch module with the same counts and shapes.

    python tests/fuzzing.py --examples 20000 [--minutes 10] [--seed 1] [--save DIR] [--only KIND]

The kinds of input, drawn in turn until N inputs are tried (or the time is up); `--only`
(repeatable) keeps to some of them:

* mutant: mutants of every spec in specs/ (tokens deleted, inserted, duplicated and
  swapped; lines dropped, doubled and swapped; random bytes, huge numbers, deep nesting,
  very long lines, invalid UTF-8, truncation, the empty file), loaded and compiled from a
  file with :func:`archdsl.load` and :func:`archdsl.compile_all`. Only
  :class:`~archdsl.ArchError` may escape, every diagnostic must carry a location inside its
  file (line within the file, column within the line + 1) and render, and no input may
  take more than a few seconds;
* valid: generated valid networks (random sequences of conv, pooling, batch norm,
  activations, fc, concat, add, residual, repeat, blocks, `in.c` expressions, aux heads,
  with shapes kept consistent): they must compile, their analytic parameter count and
  output shape must equal the built torch module's (numel and forward shape), and their
  report must be the same text when compiled twice;
* includes: include graphs (:class:`IncludeGraph`), folders of files that include each
  other with cycles, diamonds, repeated includes, ladders that double at each step,
  includes that escape the folder (`..`, absolute paths, links that lead out) and links in
  loops or to nothing, beside files that hold a marker string (:data:`MARKER`). The same
  contract, and more: no file below the graph's folder but outside its tree is opened or
  listed (an audit hook watches, :class:`ReadWatch`), and no diagnostic or report ever
  contains the marker; now and then also `archdsl compile` and `archdsl check` on it, run
  in this process: exit 0 or 1, no traceback, no marker;
* many: files of many networks (:func:`many_networks`), up to 300, with blocks that double
  at each level and repeats up to the limit: the file's budget refuses what is too large
  from the text, and the rest compiles within SLOW_FILE_SECONDS;
* arithmetic: networks whose every numeric place (channels, padding, strides, dropout,
  residual scales, repeat counts, `if`, `expect`, kernels, block and network defaults, a
  value given from outside) takes a random expression over every operator and function
  (`round min max int floor ceil abs`, `**`), with huge, negative, fractional and
  complex-producing arguments (:func:`arithmetic`): only ArchError, quickly, and a report
  of finite real numbers (strict JSON);
* cli: now and then, a mutant through the `archdsl` command in a subprocess: exit 0 or 1,
  never a traceback.

tests/test_fuzz.py runs the same checks on a bounded number of inputs in CI (smaller
include graphs and files, a few seconds in all), and tests/test_parser.py mutates specs
with :func:`mutate`. This module is a helper beside the tests, not a test file: pytest puts
tests/ on ``sys.path`` (tests/ is not a package), so the tests import it as ``fuzzing``.
Whatever a compile caches goes into the workspace's own ``XDG_CACHE_HOME``, removed with it.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

#: an input taking more CPU time than this is a finding (the limits stop anything sooner)
SLOW_SECONDS = 10.0
#: the same for a file of many networks: the file's budget (MAX_COMMAND_NODES, 100,000
#: nodes) compiles and reports in some 8 s of CPU time
SLOW_FILE_SECONDS = 30.0

# ---------------------------------------------------------------- mutation

TOKEN = re.compile(r'\s+|#[^\n]*|"[^"\n]*"|\d+(?:x\d+)+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\w+|->|//|\*\*|[<>=!]=|\S')
NUMBER = re.compile(r"\d+")
#: tokens worth inserting: every construct's keyword, punctuation, and troublesome values
VOCABULARY = ("network", "block", "let", "include", "input", "act", "norm", "bias", "repeat", "as", "if", "else",
              "concat", "add", "residual", "aux", "expect", "conv", "fc", "maxpool", "avgpool", "gap", "bn", "relu",
              "mlpconv", "spp", "lrn", "dropout", "select", "identity", "flatten", "noact", "ceil", "same",
              "in.c", "in.h", "{", "}", "(", ")", "|", ";", "\n", ",", "->", ":", "=", "/", "//", "**", "x", "-",
              "0", "1", "-1", "3x3", "1x1x1", "0.5", "1e999", "99999999999999999999", "p1", "g2", "d2", "g0",
              '"specs"', '"/dev/zero"', '"nothere.arch"', "true", "not", "and", "params", "shape", "within", "%")


def spec_texts() -> list[tuple[str, str]]:
    """(name, text) of every spec, error case, test spec and example file, and of every
    ```arch block of the docs: the texts the parser is checked on."""
    files = [*ROOT.glob("specs/*.arch"), *ROOT.glob("tests/errors/*.arch"), *ROOT.glob("tests/data/**/*.arch"),
             *ROOT.glob("examples/**/*.arch")]
    texts = [(str(f.relative_to(ROOT)), f.read_text(encoding="utf-8", errors="replace")) for f in sorted(files)]
    for doc in ("docs/language.md", "docs/errors.md", "README.md"):
        for i, block in enumerate(re.findall(r"```arch\n(.*?)```", (ROOT / doc).read_text(), re.S)):
            texts.append((f"{doc}#{i}", block))
    texts.append(("signs", "let a = (1 + 2) * -(3)\nnetwork n(w=(a)) {\n  input 3x8x8\n"
                           "  conv 3x3 -> +(w // 3)  # a comment\n  fc(+2, -(-4))\n}\n"))
    return texts


def tokens(text: str) -> list[str]:
    return TOKEN.findall(text)


def _huge_number(rng: random.Random) -> str:
    return rng.choice(["0", "-1", "1e300", "1e999", "10**20", "2**64", "9" * rng.randint(16, 6000),
                       str(rng.randint(10_001, 10**9)), "1_000_000_000", "0.5", "3.0000001"])


def _mutate_tokens(text: str, rng: random.Random) -> str:
    toks = tokens(text)
    if not toks:
        return rng.choice(VOCABULARY)
    i, j = rng.randrange(len(toks)), rng.randrange(len(toks))
    op = rng.choice(["delete", "insert", "duplicate", "swap", "number", "vocab_replace"])
    if op == "delete":
        del toks[i]
    elif op == "insert":
        toks.insert(i, " " + rng.choice(VOCABULARY + tuple(toks)) + " ")
    elif op == "duplicate":
        toks.insert(i, toks[i])
    elif op == "swap":
        toks[i], toks[j] = toks[j], toks[i]
    elif op == "number":
        nums = [k for k, t in enumerate(toks) if NUMBER.fullmatch(t)]
        if nums:
            toks[rng.choice(nums)] = _huge_number(rng)
    else:
        toks[i] = rng.choice(VOCABULARY)
    return "".join(toks)


def _mutate_lines(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
    op = rng.choice(["delete", "duplicate", "swap", "truncate"])
    if op == "delete":
        del lines[i]
    elif op == "duplicate":
        lines.insert(i, lines[i])
    elif op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    else:
        return text[: rng.randrange(len(text) + 1)]
    return "\n".join(lines)


def _insert(text: str, rng: random.Random, what: str) -> str:
    at = rng.randrange(len(text) + 1)
    return text[:at] + what + text[at:]


def mutate(text: str, rng: random.Random) -> bytes:
    """One mutant of a spec, as the bytes of a file (it may not be valid UTF-8)."""
    kind = rng.choices(["tokens", "lines", "bytes", "huge", "nesting", "long_line", "utf8", "empty", "unicode"],
                       weights=[40, 15, 8, 8, 6, 4, 4, 1, 4])[0]
    if kind == "empty":
        return b""
    if kind == "utf8":
        data = text.encode()
        at = rng.randrange(len(data) + 1)
        return data[:at] + rng.choice([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]) + data[at:]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if kind == "tokens":
            text = _mutate_tokens(text, rng)
        elif kind == "lines":
            text = _mutate_lines(text, rng)
        elif kind == "bytes":
            text = _insert(text, rng, "".join(chr(rng.choice([rng.randrange(0, 32), rng.randrange(32, 127),
                                                              rng.randrange(128, 0x3000)]))
                                              for _ in range(rng.randint(1, 8))))
        elif kind == "huge":
            nums = [m for m in NUMBER.finditer(text)]
            if nums:
                m = rng.choice(nums)
                text = text[:m.start()] + _huge_number(rng) + text[m.end():]
        elif kind == "nesting":
            n = rng.choice([20, 63, 64, 65, 200, 5000])
            opener, closer = rng.choice([("add { ", " }"), ("(", ")"), ("repeat 2 { ", " }"), ("concat { ", " }"),
                                         ("- ", ""), ("not ", ""), ("1 + ", "")])
            text = _insert(text, rng, opener * n + "relu" + closer * n)
        elif kind == "long_line":
            text = _insert(text, rng, rng.choice(["relu; ", "x", "conv 1x1 -> 8; ", "# ", "(", "{"])
                           * rng.choice([1000, 20_000, 100_000]))
        elif kind == "unicode":
            text = _insert(text, rng, rng.choice(["é", "\u2028", "\x00", "\ufeff", "\r", "\r\n", "\t", "𝟘", "；"]))
    return text.encode("utf-8", "surrogatepass")


# ---------------------------------------------------------------- checking a mutant


@dataclass
class Outcome:
    kind: str
    ok: bool  # compiled without error
    codes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    problem: str | None = None  # a finding: a bug in archdsl


def diagnostic_problems(err, path: Path) -> str | None:
    """Why an ArchError's diagnostics are not well located, or None when they are."""
    if not err.diagnostics:
        return "an ArchError without diagnostics"
    for d in err.diagnostics:
        if d.span is None:
            return f"{d.code} has no location: {d.message}"
        source = err.sources.get(d.span.file)
        if source is None and d.code in ("E106", "E107"):
            continue  # a file refused as a spec (too large, not UTF-8) is named, never shown
        if source is None:
            return f"{d.code} at {d.span.where()}: no source text for its file"
        lines = source.split("\n")  # as the parser counts lines (not str.splitlines)
        if not 1 <= d.span.line <= len(lines):
            return f"{d.code} at {d.span.where()}: line outside the file ({len(lines)} lines)"
        width = len(lines[d.span.line - 1])
        if not 1 <= d.span.column <= width + 1:
            return f"{d.code} at {d.span.where()}: column outside the line ({width} characters)"
        if d.span.end_line < d.span.line or (d.span.end_line == d.span.line and d.span.end_column < d.span.column):
            return f"{d.code} at {d.span.where()}: the span ends before it starts"
    text = err.render()
    first = err.diagnostics[0]
    if not text.startswith(f"{first.span.where()}: error[{first.code}]: "):
        return f"the rendering does not start with the location: {text[:200]!r}"
    return None


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def check_file(path: Path, kind: str = "mutant", timeout: float = 60.0, forbidden: str | None = None,
               slow: float = SLOW_SECONDS) -> Outcome:
    """Load and compile every network of `path` in-process; classify what happens. With
    `forbidden`, no diagnostic (all of them, rendered) and no report may contain that text;
    more than `slow` seconds of CPU time is a finding."""
    import archdsl
    from archdsl.diagnostics import ArchError

    use_alarm = hasattr(signal, "SIGALRM") and timeout > 0
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    start, cpu = time.perf_counter(), time.process_time()
    load_problem = None

    def shown(text: str, what: str) -> str | None:
        return f"{what} shows the content of a refused file" if forbidden and forbidden in text else None

    try:
        try:
            archdsl.load(path)  # the parse and its includes alone: the same contract
        except ArchError as err:
            load_problem = diagnostic_problems(err, path) or shown(err.render(limit=len(err.diagnostics)),
                                                                   "a diagnostic")
        nets = archdsl.compile_all(path)
        reports = []
        for net in nets:  # the report of whatever compiles must work too (rich's table is
            rep = net.report()  # slow for thousands of rows: JSON for the largest networks)
            reports.append(rep.to_table() if len(list(net.nodes())) < 60 else rep.to_json())
        out = Outcome(kind, True, problem=shown("\n".join(reports), "a report"))
    except ArchError as err:
        out = Outcome(kind, False, sorted({d.code for d in err.diagnostics}),
                      problem=diagnostic_problems(err, path) or shown(err.render(limit=len(err.diagnostics)),
                                                                      "a diagnostic"))
    except _Timeout:
        out = Outcome(kind, False, problem=f"no answer after {timeout:.0f} s")
    except Exception:  # noqa: BLE001 - anything else is a bug
        out = Outcome(kind, False, problem="internal error:\n" + traceback.format_exc(limit=8))
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    if out.problem is None and load_problem is not None:
        out.problem = f"archdsl.load: {load_problem}"
    out.seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu  # CPU time: a busy machine must not make an input look slow
    if out.problem is None and cpu > slow:
        out.problem = f"took {cpu:.1f} s of CPU time"
    return out


def check_cli(path: Path, timeout: float = 120.0) -> Outcome:
    """`archdsl compile FILE` in a subprocess: exit 0 or 1, no traceback, no internal error."""
    start = time.perf_counter()
    env = dict(os.environ, COLUMNS="120", NO_COLOR="1")
    try:
        proc = subprocess.run([sys.executable, "-m", "archdsl.cli", "compile", str(path)], capture_output=True,
                              text=True, timeout=timeout, env=env, cwd=ROOT, errors="replace")
    except subprocess.TimeoutExpired:
        return Outcome("cli", False, problem=f"the CLI gave no answer after {timeout:.0f} s")
    out = Outcome("cli", proc.returncode == 0, sorted(set(re.findall(r"error\[(E\d+)\]", proc.stderr))),
                  time.perf_counter() - start)
    if proc.returncode not in (0, 1):
        out.problem = f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    elif "Traceback" in proc.stdout + proc.stderr or "internal error" in proc.stderr:
        out.problem = "a traceback or internal error:\n" + proc.stderr[-2000:]
    return out


class Workspace:
    """A copy of specs/ in a temporary folder, so that mutants keep their includes; with
    :meth:`isolated`, also the cache folder (``XDG_CACHE_HOME``) of everything run meanwhile."""

    def __init__(self, root: Path | None = None):
        self._tmp = None
        if root is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="archdsl-fuzz-")
            root = Path(self._tmp.name)
        self.root = root
        shutil.copytree(SPECS, root / "specs", dirs_exist_ok=True)
        self.seeds = sorted(p for p in (root / "specs").rglob("*.arch"))

    @contextlib.contextmanager
    def isolated(self) -> Iterator[None]:
        """XDG_CACHE_HOME inside the workspace meanwhile: mutants leave nothing in the user's cache."""
        old = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(self.root / "cache")
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = old

    def write(self, seed: Path, data: bytes) -> Path:
        path = seed.with_name("_fuzz.arch")  # beside the seed: its includes resolve the same way
        path.write_bytes(data)
        return path

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


# ---------------------------------------------------------------- valid networks


class SpecGen:
    """Random valid networks: every statement is chosen among those that fit the current
    shape, whose effect on it is computed here independently of archdsl (PyTorch's
    output-size formula), so that a spec archdsl rejects is itself a finding."""

    ACTS = ("relu", "tanh", "sigmoid", "elu", "gelu", "silu", "relu6", "hardswish", "lrelu 0.1", "prelu")

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.blocks: list[str] = []
        self.nblocks = 0

    # shapes: (c, h, w) or (n,)
    @staticmethod
    def _out(n: int, k: int, s: int, p: int, ceil: bool = False) -> int:
        span = n + 2 * p - k
        if not ceil:
            return span // s + 1
        out = -(-span // s) + 1
        if (out - 1) * s >= n + p:  # PyTorch drops a last window that starts in the padding
            out -= 1
        return out

    def network(self) -> str:
        rng = self.rng
        c, h, w = rng.choice([1, 3, 4]), rng.randint(6, 20), rng.randint(6, 20)
        body: list[str] = [f"input {c}x{h}x{w}"]
        if rng.random() < 0.6:
            body.append(rng.choice(["act relu", "act tanh", "act lrelu 0.2"]))
        if rng.random() < 0.2:
            body.append("norm bn")
        if rng.random() < 0.2:
            body.append(rng.choice(["bias off", "bias on"]))
        shape: tuple[int, ...] = (c, h, w)
        for _ in range(rng.randint(1, 7)):
            lines, shape = self.statement(shape, depth=0)
            body += lines
        if len(shape) == 3 and rng.random() < 0.4:
            body.append(f"aux side {{ gap; fc {rng.randint(2, 5)} noact }}")
        if len(shape) == 3 and rng.random() < 0.7:
            body += [rng.choice(["gap", "gmp", "flatten", "adaptive_avgpool 2x2", "spp 2,1"]), "fc classes noact"]
        text = "\n".join(self.blocks)
        text += f"\nnetwork fuzz(classes={rng.randint(2, 10)}) {{\n" + "\n".join("  " + b for b in body) + "\n}\n"
        return text

    def statement(self, shape: tuple[int, ...], depth: int) -> tuple[list[str], tuple[int, ...]]:
        rng = self.rng
        if len(shape) == 1:
            choice = rng.choice(["fc", "act", "dropout", "identity"])
            if choice == "fc":
                n = rng.randint(2, 24)
                return [f"fc {n}" + rng.choice(["", " noact", " relu"])], (n,)
            if choice == "act":
                return [rng.choice(self.ACTS)], shape
            return [rng.choice(["dropout 0.3", "dropout", "identity"])], shape
        c, h, w = shape
        options = ["conv", "conv", "conv", "pool", "act", "bn", "misc"]
        if depth < 2:
            options += ["concat", "add", "residual", "repeat", "block", "if", "let"]
        choice = rng.choice(options)
        if choice == "conv":
            return self.conv(shape)
        if choice == "pool":
            k = rng.choice([2, 3])
            if k > min(h, w):
                return ["identity"], shape
            s, p, ceil = rng.choice([1, 2]), rng.randint(0, k // 2), rng.random() < 0.3
            kind = rng.choice(["maxpool", "avgpool"])
            text = f"{kind} {k}/{s}" + (f" p{p}" if p else "") + (" ceil" if ceil else "")
            return [text], (c, self._out(h, k, s, p, ceil), self._out(w, k, s, p, ceil))
        if choice == "act":
            return [rng.choice(self.ACTS)], shape
        if choice == "bn":
            return [rng.choice(["bn", "bn eps=1e-3", "lrn 3", "dropout 0.2"])], shape
        if choice == "misc":
            if c >= 2 and rng.random() < 0.4:
                idx = sorted(rng.sample(range(c), rng.randint(1, min(c, 3))))
                return ["select " + ",".join(map(str, idx))] if len(idx) > 1 else [f"select {idx[0]}"], (len(idx), h, w)
            if rng.random() < 0.5:
                a, b = rng.randint(2, 8), rng.randint(2, 8)
                return [f"mlpconv {a},{b}"], (b, h, w)
            return ["conv 1x1 -> max(2, in.c // 2)"], (max(2, c // 2), h, w)
        if choice == "concat":
            branches, total = [], 0
            for _ in range(rng.randint(2, 3)):
                kind = rng.choice(["1x1", "3x3", "pool", "two"])
                if kind == "1x1":
                    o = rng.randint(2, 8)
                    branches.append(f"conv 1x1 -> {o}")
                elif kind == "3x3":
                    o = rng.randint(2, 8)
                    branches.append(f"conv 3x3 p1 -> {o}")
                elif kind == "pool":
                    o = c
                    branches.append("maxpool 3/1 p1")
                else:
                    o = rng.randint(2, 8)
                    branches.append(f"conv 1x1 -> {rng.randint(2, 8)}; conv 3x3 p1 -> {o}")
                total += o
            return ["concat { " + " | ".join(branches) + " }"], (total, h, w)
        if choice == "add":
            branches = [rng.choice([f"conv 3x3 p1 -> {c}", "identity", f"bn; conv 1x1 -> {c}", f"conv 1x1 -> {c}"])
                        for _ in range(rng.randint(2, 3))]
            return ["add { " + " | ".join(branches) + " }"], shape
        if choice == "residual":
            scale = rng.choice(["", " scale=0.2", " scale=1"])
            return [f"residual{scale} {{ conv 3x3 p1 -> {c}; relu; conv 1x1 -> {c} noact }}"], shape
        if choice == "repeat":
            n = rng.randint(0, 3)
            var = rng.choice(["", " as i"])
            return [f"repeat {n}{var} {{ conv 3x3 p1 -> {c}; bn; relu }}"], shape
        if choice == "block":
            self.nblocks += 1
            name = f"unit{self.nblocks}"
            o = rng.randint(2, 12)
            s = rng.choice([1, 2]) if min(h, w) >= 3 else 1
            self.blocks.append(f"block {name}(c, s=1) {{\n  conv 3x3/s p1 -> c\n  bn\n  relu\n}}")
            call = rng.choice([f"{name}({o}, {s})", f"{name}({o}, s={s})", f"blk{self.nblocks}: {name}(c={o}, s={s})"])
            return [call], (o, self._out(h, 3, s, 1), self._out(w, 3, s, 1))
        if choice == "if":
            return ["if in.c > 4 { conv 1x1 -> 4 } else { conv 1x1 -> 8 }"], (4 if c > 4 else 8, h, w)
        # let
        o = rng.randint(2, 9)
        return [f"let width = {o} * 2", "conv 1x1 -> width"], (2 * o, h, w)

    def conv(self, shape: tuple[int, int, int]) -> tuple[list[str], tuple[int, ...]]:
        rng = self.rng
        c, h, w = shape
        kh, kw = rng.choice([(1, 1), (3, 3), (5, 5), (1, 3), (3, 1), (2, 2)])
        d = rng.choice([1, 1, 1, 2])
        s = rng.choice([1, 1, 2])
        ph, pw = rng.randint(0, kh // 2 + 1), rng.randint(0, kw // 2 + 1)
        eh, ew = d * (kh - 1) + 1, d * (kw - 1) + 1
        if eh > h + 2 * ph or ew > w + 2 * pw:
            return ["identity"], shape
        g = rng.choice([g for g in (1, 2, 4) if c % g == 0])
        out = g * rng.randint(1, 4)
        text = f"conv {kh}x{kw}" + (f"/{s}" if s != 1 or rng.random() < 0.3 else "")
        text += (f" p{ph}" if ph == pw else f" p{ph},{pw}") if (ph or pw) else ""
        text += (f" g{g}" if g > 1 else "") + (f" d{d}" if d > 1 else "") + f" -> {out}"
        text += rng.choice(["", "", " noact", " relu", " nobias", " bias"])
        return [text], (out, (h + 2 * ph - eh) // s + 1, (w + 2 * pw - ew) // s + 1)


def check_valid(text: str) -> Outcome:
    """A generated valid network: it compiles, its counts and shapes equal the torch
    module's, and its report is the same text every time."""
    import torch

    import archdsl
    from archdsl.diagnostics import ArchError
    from archdsl.lower_torch import count_parameters, lower

    start = time.perf_counter()
    out = Outcome("valid", True)
    try:
        net = archdsl.compile(text)
        again = archdsl.compile(text)
        if net.report().to_table() != again.report().to_table() or net.report().to_json() != again.report().to_json():
            out.problem = "the report differs between two compilations"
        model = lower(net)
        if count_parameters(model) != net.params:
            out.problem = f"params: built {count_parameters(model):,}, analytic {net.params:,}"
        with torch.no_grad():
            y = model.eval()(torch.randn(2, *net.input_shape.dims))
        if tuple(y.shape[1:]) != net.output_shape.dims:
            out.problem = f"output: built {tuple(y.shape[1:])}, analytic {net.output_shape}"
    except ArchError as err:
        out.ok, out.codes = False, sorted({d.code for d in err.diagnostics})
        out.problem = "a valid spec was rejected:\n" + err.render()
    except Exception:  # noqa: BLE001
        out.ok, out.problem = False, "internal error:\n" + traceback.format_exc(limit=8)
    out.seconds = time.perf_counter() - start
    return out


# ---------------------------------------------------------------- files outside the spec's folder

#: written into every file outside a generated spec's folder: no diagnostic, report or CLI
#: output may ever contain it (a file that was not accepted as a spec is never shown)
MARKER = "SECRET-7f3a9c-never-shown"
#: a block (and a let) of the same file: were the file included, the "did you mean" of a
#: misspelt call (`secret_marker_blok()`) would name it
MARKER_BLOCK = "secret_marker_block"

_AUDITED = frozenset({"open", "os.listdir", "os.scandir"})
_watches: list["ReadWatch"] = []
_hooked = False


def _audit(event: str, args: tuple) -> None:
    if not _watches or event not in _AUDITED or not args or args[0] is None or isinstance(args[0], int):
        return
    try:
        real = os.path.realpath(os.fsdecode(args[0]))
    except (TypeError, ValueError, OSError):
        return
    for watch in _watches:
        watch.saw(event, real)


class ReadWatch:
    """Records every file opened and folder listed below `base` but outside `allowed` while
    active: an audit hook (sys.addaudithook) sees builtins.open, os.open, os.listdir and
    os.scandir whoever calls them, links resolved. The hook, once installed, stays: it does
    nothing while no watch is active."""

    def __init__(self, base: Path, allowed: Path):
        self.base, self.allowed = str(base.resolve()), str(allowed.resolve())
        self.reads: list[str] = []

    def saw(self, event: str, real: str) -> None:
        def below(folder: str) -> bool:
            return real == folder or real.startswith(folder + os.sep)

        if below(self.base) and not below(self.allowed):
            self.reads.append(f"{event} {real}")

    def __enter__(self) -> "ReadWatch":
        global _hooked
        if not _hooked:
            sys.addaudithook(_audit)
            _hooked = True
        _watches.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _watches.remove(self)


def plant_secrets(folder: Path) -> None:
    """Files outside the spec's folder, each carrying MARKER: a valid spec (a block and a let
    named after MARKER_BLOCK), one that fails to parse on the marker's line, a binary one,
    a text file, and the same in a nested folder."""
    for where in (folder, folder / "nested"):
        where.mkdir(parents=True, exist_ok=True)
        (where / "secret_valid.arch").write_text(
            f"# {MARKER}\nlet {MARKER_BLOCK}_v = 3\nblock {MARKER_BLOCK}() {{ relu }}\n"
            f"network {MARKER_BLOCK}_net {{ input 3x8x8; relu }}\n")
        (where / "secret_bad.arch").write_text(f"{MARKER} is not a spec {{ at all\n{MARKER} (\n")
        (where / "secret_binary.arch").write_bytes(b"\xff\xfe" + MARKER.encode() + b"\x00\x81\n")
        (where / "secret.txt").write_text(f"root:x:0:0:{MARKER}\nTOKEN={MARKER}\n")


class IncludeGraph:
    """A folder of spec files that include each other: chains, cycles, diamonds, the same
    include twice, a ladder of files each including the next twice (whose lets would double
    at each step, were they not added once), includes that escape the folder (`..`,
    absolute paths, `~`, links that lead out, a sibling folder whose name starts with the
    folder's), links in a loop or to nothing, folders named like specs, names with a NUL
    byte or of 300 characters. Beside the folder, `outside/` and `tree_evil/` hold
    :func:`plant_secrets`' files; the spec given to archdsl is `tree/main.arch`."""

    SUBDIRS = ("", "", "sub", "sub/deep", "other")

    def __init__(self, rng: random.Random, base: Path, large: bool = False):
        self.rng, self.base, self.large = rng, base, large
        self.tree = base / "tree"
        self.main = self.tree / "main.arch"

    def build(self) -> Path:
        rng, tree = self.rng, self.tree
        plant_secrets(self.base / "outside")
        plant_secrets(self.base / "tree_evil")  # `tree_evil` starts with `tree`: no prefix test
        if rng.random() < 0.15:
            return self._ladder()
        n = rng.randint(1, 30 if self.large else 8)
        self.files = [self.main] + [tree / rng.choice(self.SUBDIRS) / f"f{i}.arch" for i in range(1, n)]
        for f in self.files:
            f.parent.mkdir(parents=True, exist_ok=True)
        self.links = self._links()
        for i, f in enumerate(self.files):
            f.write_text(self._text(i))
        return self.main

    def _links(self) -> list[Path]:
        rng, tree, base = self.rng, self.tree, self.base
        made: list[Path] = []

        def link(name: str, target: str | Path) -> None:
            path = tree / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists() and not path.is_symlink():
                path.symlink_to(target)
                made.append(path)

        candidates = [
            lambda: link("link_out.arch", "../outside/secret_valid.arch"),
            lambda: link("link_bad.arch", base / "outside" / "secret_bad.arch"),
            lambda: link("link_bin.arch", "../outside/secret_binary.arch"),
            lambda: link("link_txt.arch", "../outside/secret.txt"),
            lambda: link("link_evil.arch", "../tree_evil/secret_valid.arch"),
            lambda: link("link_dir", "../outside"),
            lambda: link("sub/link_up.arch", "../../outside/nested/secret_valid.arch"),
            lambda: link("link_in.arch", os.path.relpath(rng.choice(self.files), tree)),
            lambda: link("sub/link_main.arch", "../main.arch"),
            lambda: link("loop.arch", "loop.arch"),
            lambda: link("loop_a.arch", "loop_b.arch") or link("loop_b.arch", "loop_a.arch"),
            lambda: link("nothing.arch", "missing.arch"),
            lambda: link("link_tree", "."),
            lambda: (tree / "folder.arch").mkdir(exist_ok=True),
        ]
        for make in rng.sample(candidates, rng.randint(0, len(candidates))):
            make()
        return made

    def _rel(self, target: Path, frm: Path) -> str:
        return os.path.relpath(target, frm.parent).replace(os.sep, "/")

    def _include(self, i: int) -> str:
        """The path of one include of file i."""
        rng, f = self.rng, self.files[i]
        depth = len(f.parent.relative_to(self.tree).parts)
        kind = rng.choices(["file", "self", "escape", "absolute", "link", "odd"], weights=[50, 5, 12, 6, 15, 12])[0]
        if kind == "file":
            path = self._rel(rng.choice(self.files), f)
            return rng.choice([path, "./" + path, "sub/../" + path if (f.parent / "sub").is_dir() else path])
        if kind == "self":
            return f.name
        if kind == "escape":
            up = "../" * (depth + rng.choice([1, 1, 2, 5]))
            return up + rng.choice(["outside/secret_valid.arch", "outside/secret_bad.arch", "outside/secret.txt",
                                    "outside/secret_binary.arch", "tree_evil/secret_valid.arch",
                                    "outside/nested/secret_valid.arch", "tree/main.arch", "etc/passwd"])
        if kind == "absolute":
            return rng.choice([str(self.base / "outside" / "secret_valid.arch"), str(self.main),
                               str(self.base / "outside" / "secret_bad.arch"), "/etc/passwd", "/proc/self/environ",
                               "~/secret_valid.arch", "/dev/zero", "//outside/secret_valid.arch"])
        if kind == "link" and self.links:
            target = rng.choice(self.links)
            if target.name in ("link_dir", "link_tree"):
                return self._rel(target, f) + rng.choice(["/secret_valid.arch", "/nested/secret_bad.arch",
                                                          "/main.arch", "/link_dir/secret_valid.arch"])
            return self._rel(target, f)
        return rng.choice(["missing.arch", "folder.arch", "sub", "", ".arch", "a\0b.arch", "x" * 300 + ".arch",
                           "main.arch/", "main.arch\n", "MAIN.ARCH", "main.arch ", "\u2028.arch", "..",
                           "sub/../../tree/main.arch", "link_tree/link_tree/main.arch", "%2e%2e/outside.arch"])

    def _text(self, i: int) -> str:
        rng = self.rng
        items: list[str] = []
        for _ in range(rng.choice([0, 1, 1, 2, 3, 5])):
            name = self._include(i).replace('"', "").replace("\n", "")
            items.append(f'include "{name}"')
            if rng.random() < 0.15:
                items.append(items[-1])  # the same include twice
        for k in range(rng.randint(0, 3)):
            items.append(f"let k{i}_{k} = {rng.randint(1, 8)}")
        if rng.random() < 0.8:
            inner = f"blk{rng.randrange(len(self.files))}(c)" if rng.random() < 0.3 else "conv 1x1 -> c"
            items.append(f"block blk{i}(c=4) {{ {inner} }}")
        if rng.random() < 0.2:
            items.append(f"network side{i} {{ input 3x8x8; relu }}")
        rng.shuffle(items)
        if i == 0:
            body = ["input 3x8x8"]
            for _ in range(rng.randint(0, 4)):
                j = rng.randrange(len(self.files))
                body.append(rng.choice([f"blk{j}()", f"conv 1x1 -> k{j}_0", f"blk{j}(c=k{j}_1)"]))
            if rng.random() < 0.5:
                body.append(rng.choice(["secret_marker_blok()", f"conv 1x1 -> {MARKER_BLOCK}_w", "relu"]))
            items.append("network main {\n  " + "\n  ".join(body) + "\n}")
        return "\n".join(items) + "\n"

    def _ladder(self) -> Path:
        """main -> f1 -> f2 ..., each including the next twice and the one after: 2^n paths."""
        n = self.rng.randint(3, 40 if self.large else 12)
        self.files = [self.main] + [self.tree / f"f{i}.arch" for i in range(1, n)]
        self.tree.mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(self.files):
            lines = [f'include "f{j}.arch"' for j in (i + 1, i + 1, i + 2) if j < n]
            lines += [f"let v{i}_{k} = {k}" for k in range(3)]
            if i == 0:
                lines.append(f"network main {{ input 3x8x8; conv 1x1 -> v{n - 1}_2 + 1 }}")
            f.write_text("\n".join(lines) + "\n")
        self.links = []
        return self.main


def check_include_graph(graph: IncludeGraph, timeout: float = 60.0, cli: bool = False) -> Outcome:
    """Compile the graph's main spec (and, with `cli`, run `archdsl compile` and `archdsl
    check` on it in this process): only ArchError, well located, within the time bound, no
    read below the graph's base outside its tree, and MARKER in no output."""
    with ReadWatch(graph.base, graph.tree) as watch:
        out = check_file(graph.main, kind="includes", timeout=timeout, forbidden=MARKER)
        if cli and out.problem is None:
            for args in (["compile", str(graph.main)], ["check", str(graph.tree)],
                         ["check", "--format", "json", str(graph.tree), str(graph.main)]):
                out.problem = check_cli_here(args, forbidden=MARKER)
                if out.problem:
                    break
    if out.problem is None and watch.reads:
        out.problem = "read outside the spec's folder: " + "; ".join(sorted(set(watch.reads))[:5])
    return out


def check_cli_here(args: list[str], forbidden: str | None = None, codes: tuple[int, ...] = (0, 1)) -> str | None:
    """`archdsl ARGS` run in this process (click's test runner): the problem, or None when
    it exits with one of `codes`, without a traceback or an internal error, and its output
    holds no `forbidden` text."""
    from click.testing import CliRunner

    from archdsl.cli import main as cli_main

    result = CliRunner().invoke(cli_main, args, env={"COLUMNS": "120", "NO_COLOR": "1"})
    text = result.output + (result.stderr if result.stderr_bytes is not None else "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"archdsl {' '.join(args)}: {type(result.exception).__name__}: {result.exception}"
    if result.exit_code not in codes:
        return f"archdsl {' '.join(args)}: exit {result.exit_code}:\n{text[-2000:]}"
    if "Traceback" in text or "internal error" in text:
        return f"archdsl {' '.join(args)}: a traceback or internal error:\n{text[-2000:]}"
    if forbidden and forbidden in text:
        return f"archdsl {' '.join(args)}: the output shows a refused file's content"
    return None


# ---------------------------------------------------------------- many networks in a file


def many_networks(rng: random.Random, large: bool = False) -> str:
    """A file of many networks (up to 300, or 30 unless `large`): shared blocks that double
    at each level, repeats up to the limit, names used twice, a few mistakes; or networks
    each within its own limit that together pass the file's (MAX_COMMAND_NODES). Whatever
    the networks add up to, the file's budget refuses it from the text before expanding."""
    if rng.random() < 0.2:
        n = rng.randint(6, 40)
        count = rng.randint(50_000 // n + 1, 9_999)  # 2 nodes a round: each network < 20,000
        return "".join(f"network n{i} {{ input 3x8x8; repeat {count} {{ conv 1x1 -> 3; relu }} }}\n"
                       for i in range(n))
    depth = rng.randint(0, 12)
    lines = ["block u0(c) { conv 3x3 p1 -> c; relu }"]
    lines += [f"block u{k}(c) {{ u{k - 1}(c); u{k - 1}(c) }}" for k in range(1, depth + 1)]
    n = rng.choice([1, 2, 5, 30] + ([100, 300] if large else []))
    for i in range(n):
        name = f"net{rng.randrange(i + 1) if rng.random() < 0.05 else i}"
        body = [f"input {rng.choice([1, 3])}x{rng.choice([4, 8])}x{rng.choice([4, 8])}"]
        for _ in range(rng.randint(0, 3)):
            k = rng.randint(0, depth)
            count = rng.choice([1, 2, 10, 100] + ([1000, 9999, 10000, 10001] if large or k == depth else []))
            if not large and 2 ** k * count > 300 and 2 ** k * count <= 2_000_000:
                count = 1  # a small run: networks small, or far beyond every limit
            body.append(rng.choice([f"repeat {count} {{ u{k}(4) }}", f"u{k}(c=2)", "relu"]))
        if rng.random() < 0.3:
            body.append("gap; fc 10")
        if rng.random() < 0.1:
            body.append(rng.choice(["covn 3x3 -> 4", "expect params = 1x2x3", "u0()", f"u{depth + 1}(4)",
                                    "expect layers = -1", "conv 1x1 -> 10 ** 20"]))
        lines.append(f"network {name} {{\n  " + "\n  ".join(body) + "\n}")
    return "\n".join(lines) + "\n"


def check_many(path: Path, cli: bool = False) -> Outcome:
    """:func:`check_file` on a file of many networks (a longer CPU bound); with `cli`, also
    `archdsl check FILE` in this process, which must agree: exit 1 when compile_all fails
    (the file's budget holds for every command), and within the same bound."""
    out = check_file(path, kind="many", timeout=300, slow=SLOW_FILE_SECONDS)
    if cli and out.problem is None:
        cpu = time.process_time()
        out.problem = check_cli_here(["check", str(path)], codes=(0, 1) if out.ok else (1,))
        cpu = time.process_time() - cpu
        if out.problem is None and cpu > SLOW_FILE_SECONDS:
            out.problem = f"archdsl check took {cpu:.1f} s of CPU time"
    return out


# ---------------------------------------------------------------- arithmetic

FUNCTIONS = ("min", "max", "int", "abs", "round", "floor", "ceil")
#: numbers at the edges: huge, negative, fractional, tiny, and those that make a complex power
EDGE_NUMBERS = ("0", "1", "2", "-1", "0.5", "-0.5", "2.5", "-8", "64", "65", "-65", "20", "21", "-21", "1e15",
                "1000000000000000", "-1000000000000000", "1e-308", "1e-999", "0.1", "3.0000001", "true", "false",
                "(1e15 * 10)", "(2 ** 60)", "(1e15 + 1)", "(-(10 ** 15) - 1)", "(1e15 * 1e15 * 1e15)")
#: literals beyond the value bound, refused as they are parsed: now and then only
HUGE_LITERALS = ("1e16", "1e308", "1e999", "9007199254740993", "99999999999999999999")


def arithmetic(rng: random.Random, depth: int = 0, tame: bool = False) -> str:
    """A random expression over every operator and function of the language, with edge
    numbers, names in scope (`x`, `c`, `in.c`), unknown names and calls of the wrong arity;
    when `tame`, small numbers and right calls only (more of them compile)."""
    def sub() -> str:
        return arithmetic(rng, depth + 1, tame)

    roll = rng.random()
    if depth > 3 or roll < 0.3:
        if tame:
            return rng.choice(("1", "2", "3", "4", "8", "0.5", "x", "c"))
        pick = rng.random()
        if pick < 0.02:
            return rng.choice(HUGE_LITERALS)
        if pick < 0.4:
            return rng.choice(EDGE_NUMBERS)
        return rng.choice(("1", "2", "3", "4", "8", "x", "c", "in.c", "in.h", "in.numel", "nothere"))
    if roll < 0.55:
        name = rng.choice(FUNCTIONS if tame else FUNCTIONS + ("sqrt", "Round"))
        if name == "round" and rng.random() < 0.6:
            digits = rng.choice(["-1", "0", "1"] if tame else
                                ["-1000000000000000", "-21", "-20", "20", "21", "0.5", "true", "-1", "1e999", sub()])
            return f"round({sub()}, {digits})"
        arity = (2 if name in ("min", "max") else 1) if tame else rng.choice([0, 1, 1, 2, 2, 3])
        return f"{name}({', '.join(sub() for _ in range(arity))})"
    if roll < 0.85:
        op = rng.choice(["+", "-", "*", "/", "//", "%", "**", "**", "**", "==", "<", ">=", "and", "or"])
        left, right = sub(), sub()
        if op == "**" and not tame and rng.random() < 0.5:  # complex results, huge and negative exponents
            left = rng.choice(["(-8)", "(-1)", "-8", "(0 - 2)", "0", "10", "2"])
            right = rng.choice(["0.5", "(1 / 3)", "-1", "64", "65", "-64", "1e15", "0.5 ** 0.5", right])
        return f"({left} {op} {right})"
    if roll < 0.93:
        return f"(-{sub()})" if rng.random() < 0.7 else f"(not {sub()})"
    return f"({sub()} if {sub()} else {sub()})"


#: where an expression's value goes: every kind of place a number is taken
ARITHMETIC_PLACES = ("conv 1x1 -> {e}", "conv 3x3 pad={e} -> 4", "conv 3x3 stride={e} -> 4",
                     "conv 1x1 groups={e} -> 4", "conv 3x3 dilation={e} -> 4", "fc {e}", "dropout ({e})",
                     "lrelu ({e})", "residual scale={e} {{ relu }}", "repeat {e} {{ relu }}",
                     "if {e} {{ relu }} else {{ identity }}", "expect params = {e}", "expect output = {e}",
                     "expect macs = {e} within 5%", "select ({e})", "maxpool ({e})", "let kk = {e}; conv kk x kk -> 4",
                     "let y = {e}; conv 1x1 -> y", "b({e})", "b(c={e})", "lrn ({e})", "fc 8; rbf ({e})")
#: values given from outside (`archdsl.compile(..., c=value)`): numbers and truth values only
OVERRIDES = (None, 0, -1, 10**15, 10**15 + 1, -10**16, 10**5000, 2**63, 0.5, -0.0, 1e308, float("inf"),
             float("-inf"), float("nan"), True, False)


def arithmetic_spec(rng: random.Random) -> tuple[str, dict]:
    """A network whose statements take random expressions, and maybe a value for `c`."""
    tame = rng.random() < 0.3  # small numbers only: more of them compile, to check their report

    def expr() -> str:
        return arithmetic(rng, tame=tame)

    lets = [f"let x = {expr()}"] if rng.random() < 0.5 else ["let x = 2"]
    size = rng.choice(["3 x 8 x 8"] * 4 + ["x x 8 x 8", "c x c x c", "8 x x x 8"])  # the input, too
    body = [f"input {size}"] + [rng.choice(ARITHMETIC_PLACES).format(e=expr()) for _ in range(rng.randint(1, 4))]
    text = "\n".join(lets) + f"\nblock b(c={expr()}) {{ conv 1x1 -> c }}\n"
    text += f"network n(c={rng.choice(['4', expr()])}) {{\n  " + "\n  ".join(body) + "\n}\n"
    value = rng.choice(OVERRIDES) if rng.random() < 0.3 else None
    return text, ({} if value is None else {"c": value})


def check_arithmetic(text: str, overrides: dict, timeout: float = 30.0) -> Outcome:
    """Compile `text` (network `n`, with `overrides`): only ArchError, well located, within
    the time bound; whatever compiles reports finite real numbers only (strict JSON)."""
    import json

    import archdsl
    from archdsl.diagnostics import ArchError

    def strict(value: str):
        raise ValueError(f"a non-finite number in the report: {value}")

    use_alarm = hasattr(signal, "SIGALRM") and timeout > 0
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    start, cpu = time.perf_counter(), time.process_time()
    try:
        net = archdsl.compile(text, network="n", **overrides)
        json.loads(net.report().to_json(), parse_constant=strict)
        net.report().to_table()
        out = Outcome("arithmetic", True)
    except ArchError as err:
        given = [d for d in err.diagnostics if d.span is None and d.code == "E304" and "c=" in d.message]
        out = Outcome("arithmetic", False, sorted({d.code for d in err.diagnostics}),  # (a value given
                      problem=None if given else diagnostic_problems(err, Path("<string>")))  # has no place)
    except _Timeout:
        out = Outcome("arithmetic", False, problem=f"no answer after {timeout:.0f} s")
    except Exception:  # noqa: BLE001 - anything else is a bug
        out = Outcome("arithmetic", False, problem="internal error:\n" + traceback.format_exc(limit=8))
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    out.seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if out.problem is None and cpu > SLOW_SECONDS:
        out.problem = f"took {cpu:.1f} s of CPU time"
    return out


# ---------------------------------------------------------------- the long run


#: the kinds of input the long run draws, and how often
KIND_WEIGHTS = {"mutant": 55, "valid": 10, "includes": 12, "many": 5, "arithmetic": 15, "cli": 3}
KINDS = tuple(KIND_WEIGHTS)


def one_input(kind: str, rng: random.Random, ws: "Workspace", n: int) -> "tuple[bytes | Path, Outcome]":
    """Draw one input of `kind` and check it, at the long run's full sizes: the input (the
    bytes of a file, or the folder of an include graph) and what happened."""
    if kind == "valid":
        text = SpecGen(rng).network()
        return text.encode(), check_valid(text)
    if kind == "includes":
        graph = IncludeGraph(rng, ws.root / "graphs" / f"g{n}", large=True)
        graph.build()
        return graph.base, check_include_graph(graph, cli=rng.random() < 0.1)
    if kind == "many":
        data = many_networks(rng, large=True).encode()
        return data, check_many(ws.write(ws.seeds[0], data), cli=rng.random() < 0.3)
    if kind == "arithmetic":
        text, overrides = arithmetic_spec(rng)
        return text.encode(), check_arithmetic(text, overrides)
    seed_path = rng.choice(ws.seeds)
    data = mutate(seed_path.read_text(), rng)
    path = ws.write(seed_path, data)
    return data, check_cli(path) if kind == "cli" else check_file(path)


def run(examples: int, seed: int, save: Path | None, minutes: float | None = None, log=print,
        only: "tuple[str, ...]" = KINDS) -> dict:
    """Try `examples` inputs (fewer if `minutes` run out first), of the kinds in `only`: a
    summary of what happened."""
    rng = random.Random(seed)
    ws = Workspace()
    tried: collections.Counter = collections.Counter()
    compiled: collections.Counter = collections.Counter()
    codes: collections.Counter = collections.Counter()
    findings: list[tuple[str, str, bytes | Path]] = []
    slowest = (0.0, "")
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    next_report = time.monotonic() + 60
    try:
        with ws.isolated():
            while sum(tried.values()) < examples and (deadline is None or time.monotonic() < deadline):
                kind = rng.choices(KINDS, weights=[KIND_WEIGHTS[k] if k in only else 0 for k in KINDS])[0]
                data, out = one_input(kind, rng, ws, sum(tried.values()))
                tried[out.kind] += 1
                compiled[out.kind] += out.ok
                codes.update(out.codes)
                if out.seconds > slowest[0]:
                    size = "a folder" if isinstance(data, Path) else f"{len(data):,} bytes"
                    slowest = (out.seconds, f"{out.kind} {size}, {','.join(out.codes) or 'ok'}")
                if out.problem is not None:
                    findings.append((out.kind, out.problem, data))
                    log(f"FINDING ({out.kind}): {out.problem.splitlines()[0]}")
                    if save is not None:
                        save.mkdir(parents=True, exist_ok=True)
                        n = len(findings)
                        if isinstance(data, Path):  # an include graph: the folder, links kept
                            shutil.copytree(data, save / f"finding{n:03d}", symlinks=True)
                        else:
                            (save / f"finding{n:03d}.arch").write_bytes(data)
                        (save / f"finding{n:03d}.txt").write_text(f"{out.kind}\n{out.problem}\n")
                if isinstance(data, Path):
                    shutil.rmtree(data, ignore_errors=True)
                if time.monotonic() > next_report:
                    next_report += 60
                    log(f"... {sum(tried.values()):,} inputs, {len(findings)} findings")
    finally:
        ws.cleanup()
    summary = {"seed": seed, "examples": examples, "minutes": minutes, "tried": dict(tried),
               "compiled": dict(compiled), "error_codes": dict(sorted(codes.items())), "findings": len(findings),
               "slowest_seconds": round(slowest[0], 2), "slowest": slowest[1]}
    log(f"inputs tried: {sum(tried.values()):,} ("
        + ", ".join(f"{k} {v:,}" for k, v in sorted(tried.items())) + ")")
    log("compiled without error: " + ", ".join(f"{k} {compiled[k]:,}" for k in sorted(tried)))
    log("errors reported, by code: " + ", ".join(f"{c} {n:,}" for c, n in sorted(codes.items())))
    log(f"slowest input: {slowest[0]:.2f} s ({slowest[1]})")
    log(f"findings: {len(findings)}")
    for kind, problem, _ in findings[:20]:
        log(f"  [{kind}] {problem.splitlines()[0]}")
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python tests/fuzzing.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=10_000, metavar="N",
                    help="how many inputs to try (default 10,000)")
    ap.add_argument("--minutes", type=float, default=None, help="stop earlier when this time is up")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    ap.add_argument("--save", type=Path, default=None, help="write each finding's input and problem here")
    ap.add_argument("--only", action="append", choices=KINDS, default=None, metavar="KIND",
                    help="draw only inputs of this kind (repeatable): " + ", ".join(KINDS))
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    limit = f", at most {args.minutes:g} minutes" if args.minutes is not None else ""
    print(f"fuzzing archdsl with {args.examples:,} inputs{limit}, seed {seed}")
    summary = run(args.examples, seed, args.save, args.minutes, only=tuple(args.only or KINDS))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
