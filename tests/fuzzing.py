"""Fuzzing the compiler: no input crashes it, hangs it, or makes it misplace an error; and
every valid network it accepts builds to a torch module with the same counts and shapes.

    python tests/fuzzing.py --examples 20000 [--minutes 10] [--seed 1] [--save DIR]

Three kinds of input, drawn in turn until N inputs are tried (or the time is up):

* mutants of every spec in specs/ (tokens deleted, inserted, duplicated and swapped; lines
  dropped, doubled and swapped; random bytes, huge numbers, deep nesting, very long lines,
  invalid UTF-8, truncation, the empty file), loaded and compiled from a file with
  :func:`archdsl.load` and :func:`archdsl.compile_all`. Only :class:`~archdsl.ArchError` may escape, every
  diagnostic must carry a location inside its file (line within the file, column within
  the line + 1) and render, and no input may take more than a few seconds;
* generated valid networks (random sequences of conv, pooling, batch norm, activations,
  fc, concat, add, residual, repeat, blocks, `in.c` expressions, aux heads, with shapes
  kept consistent): they must compile, their analytic parameter count and output shape
  must equal the built torch module's (numel and forward shape), and their report must be
  the same text when compiled twice;
* now and then, a mutant through the `archdsl` command in a subprocess: exit 0 or 1,
  never a traceback.

tests/test_fuzz.py runs the same checks on a bounded number of inputs in CI, and
tests/test_parser.py mutates specs with :func:`mutate`. This module is a helper beside the
tests, not a test file: pytest puts tests/ on ``sys.path`` (tests/ is not a package), so the
tests import it as ``fuzzing``. Whatever a compile caches goes into the workspace's own
``XDG_CACHE_HOME``, removed with it.
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


def check_file(path: Path, kind: str = "mutant", timeout: float = 60.0) -> Outcome:
    """Load and compile every network of `path` in-process; classify what happens."""
    import archdsl
    from archdsl.diagnostics import ArchError

    use_alarm = hasattr(signal, "SIGALRM") and timeout > 0
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    start, cpu = time.perf_counter(), time.process_time()
    load_problem = None
    try:
        try:
            archdsl.load(path)  # the parse and its includes alone: the same contract
        except ArchError as err:
            load_problem = diagnostic_problems(err, path)
        nets = archdsl.compile_all(path)
        for net in nets:  # the report of whatever compiles must work too (rich's table is
            rep = net.report()  # slow for thousands of rows: JSON for the largest networks)
            rep.to_table() if len(list(net.nodes())) < 60 else rep.to_json()
        out = Outcome(kind, True)
    except ArchError as err:
        out = Outcome(kind, False, sorted({d.code for d in err.diagnostics}), problem=diagnostic_problems(err, path))
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
    if out.problem is None and cpu > SLOW_SECONDS:
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
            return [f"conv 1x1 -> max(2, in.c // 2)"], (max(2, c // 2), h, w)
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
            return [f"if in.c > 4 {{ conv 1x1 -> 4 }} else {{ conv 1x1 -> 8 }}"], (4 if c > 4 else 8, h, w)
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


# ---------------------------------------------------------------- the long run


def run(examples: int, seed: int, save: Path | None, minutes: float | None = None, log=print) -> dict:
    """Try `examples` inputs (fewer if `minutes` run out first): a summary of what happened."""
    rng = random.Random(seed)
    ws = Workspace()
    tried: collections.Counter = collections.Counter()
    compiled: collections.Counter = collections.Counter()
    codes: collections.Counter = collections.Counter()
    findings: list[tuple[str, str, bytes]] = []
    slowest = (0.0, "")
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    next_report = time.monotonic() + 60
    try:
        with ws.isolated():
            while sum(tried.values()) < examples and (deadline is None or time.monotonic() < deadline):
                roll = rng.random()
                if roll < 0.12:
                    text = SpecGen(rng).network()
                    data, out = text.encode(), check_valid(text)
                else:
                    seed_path = rng.choice(ws.seeds)
                    data = mutate(seed_path.read_text(), rng)
                    path = ws.write(seed_path, data)
                    out = check_cli(path) if roll > 0.995 else check_file(path)
                tried[out.kind] += 1
                compiled[out.kind] += out.ok
                codes.update(out.codes)
                if out.seconds > slowest[0]:
                    slowest = (out.seconds, f"{out.kind} {len(data):,} bytes, {','.join(out.codes) or 'ok'}")
                if out.problem is not None:
                    findings.append((out.kind, out.problem, data))
                    log(f"FINDING ({out.kind}): {out.problem.splitlines()[0]}")
                    if save is not None:
                        save.mkdir(parents=True, exist_ok=True)
                        n = len(findings)
                        (save / f"finding{n:03d}.arch").write_bytes(data)
                        (save / f"finding{n:03d}.txt").write_text(f"{out.kind}\n{out.problem}\n")
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
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time())
    limit = f", at most {args.minutes:g} minutes" if args.minutes is not None else ""
    print(f"fuzzing archdsl with {args.examples:,} inputs{limit}, seed {seed}")
    summary = run(args.examples, seed, args.save, args.minutes)
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
