"""The importer's blocks: the parameters of a group of alike calls, and one block for calls
with and without an optional merge branch.

Torch-free. archdsl/rebuild.py groups the module calls of one class whose bodies have one
structure; here each group becomes a block's body and parameters. The numbers that differ
between the calls become parameters, a number always equal to an earlier parameter (or to a
fixed multiple or fraction of it) being written as that expression (``_parametrise``).

Two groups of one class whose bodies differ only by a merge branch the second lacks (ResNet's
projection shortcut) are one block, that branch under an ``if`` (``condition``): the input's
channels differing from a channel count of the block, a stride off its default, or both, as
a person would write it. A join is made only where such a condition holds on exactly the
calls that have the branch, so every call keeps the layers traced; otherwise the groups stay
separate blocks.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .layers import REGISTRY
from .rebuild_types import _NUMBERED, PAIRS, Call, Cond, Merge, Op, Ref, Repeat, _seq_template, identifier, template

# ---------------------------------------------------------------- a block's parameters


def _parametrise(columns: list[list[Any]], families: list[str], hints: list[str]):
    """Per slot: ("lit", value) when every call agrees, else an expression over the block's
    parameters; and the parameters: (name, family, default, values). A value None is a
    call without that slot (a branch only some calls have): it constrains nothing."""
    params: list[list] = []
    taken: set[str] = set()
    base: list[tuple[int, str]] = []  # (column, param name) of the parameters
    merged: dict[str, set[str]] = {}  # param -> the hints of the columns it stands for
    bound: dict[int, tuple[str, Any]] = {}
    # the slots every call has first: a slot of a branch only some calls have takes their parameters
    for j in sorted(range(len(columns)), key=lambda j: None in columns[j]):
        col, fam = columns[j], families[j]
        present = [v for v in col if v is not None]
        if all(v == present[0] for v in present):
            bound[j] = ("lit", present[0])
            continue
        found = None
        has = [k for k, v in enumerate(col) if v is not None]  # the calls that have the slot
        for c, name in base:
            if families[c] != fam or any(columns[c][k] is None for k in has):
                continue  # a parameter stands for a slot only where every call with the slot sets it
            other = [columns[c][k] for k in has]
            if other == present:
                found = name
                merged.setdefault(name, set()).add(hints[j])
                break
            if fam in ("ch", "n") and all(isinstance(v, int) for v in present + other) and all(o > 0 for o in other):
                if all(v % o == 0 for v, o in zip(present, other)):
                    ks = {v // o for v, o in zip(present, other)}
                    if len(ks) == 1 and ks != {1}:
                        found = f"{ks.pop()} * {name}"
                        break
                if all(v > 0 and o % v == 0 for v, o in zip(present, other)):
                    ks = {o // v for v, o in zip(present, other)}
                    if len(ks) == 1 and ks != {1} and all(o // next(iter(ks)) == v for v, o in zip(present, other)):
                        found = f"{name} // {ks.pop()}"
                        break
        if found is None:
            stem = _NUMBERED.match(hints[j]).group(1) if _NUMBERED.match(hints[j]) else hints[j]
            stem = stem if identifier(stem) else "v"
            name, k = stem, 1
            while name in taken or name in REGISTRY:
                k += 1
                name = f"{stem}{k}"
            taken.add(name)
            base.append((j, name))
            mode, count = Counter(present).most_common(1)[0]
            share = 3 * count >= 2 * len(present) if fam in ("ch", "n") else 2 * count > len(present)
            default = mode if count >= 2 and share else None
            # a call without the slot passes the default (or the commonest value): its body never reads it
            params.append([name, fam, default, [mode if v is None else v for v in col]])
            merged[name] = {hints[j]}
            found = name
        bound[j] = ("expr", found)
    bindings = [bound[j] for j in range(len(columns))]
    rename = {}
    for prm in params:  # `kh` standing for `kw` too is `k`
        first, partner = prm[0], PAIRS.get(_NUMBERED.match(prm[0]).group(1) if _NUMBERED.match(prm[0]) else prm[0])
        if partner and partner[0] in merged[first] and partner[1] not in taken:
            rename[first] = partner[1]
            taken.add(partner[1])
            prm[0] = partner[1]
    if rename:
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, rename)) + r")\b")
        bindings = [(b[0], pattern.sub(lambda m: rename[m.group(1)], b[1])) if b[0] == "expr" else b
                    for b in bindings]
    required = [p for p in params if p[2] is None]
    optional = [p for p in params if p[2] is not None]
    return bindings, required + optional


# ---------------------------------------------------------------- optional branches: one block with an `if`

#: kinds whose output has the channels of their input: `in.c` is read through them
_SAME_CHANNELS = frozenset({"bn", "relu", "relu6", "tanh", "sigmoid", "elu", "gelu", "silu", "hardswish",
                            "hardsigmoid", "lrelu", "prelu", "dropout", "droppath", "layernorm", "identity"})


def in_channels(items: list) -> int | None:
    """The channels of the input of `items`, where a layer records them (Op.in_c), else None."""
    for it in items:
        if isinstance(it, Op):
            if it.in_c is not None or it.kind not in _SAME_CHANNELS:
                return it.in_c
        elif isinstance(it, Ref):
            return it.in_c
        elif isinstance(it, (Repeat, Call, Cond)):
            return in_channels(it.body)
        elif isinstance(it, Merge):
            return next((c for c in map(in_channels, it.branches) if c is not None), None)
        else:
            return None
    return None


def _branch_gap(a: list, b: list):
    """Where bodies `a` and `b` are one structure but for one merge branch that `b` lacks
    (an identity there): (path, first slot, slots) with `path` the (item, branch) indices
    down to that branch and its slots' place among a's; else None."""
    if len(a) != len(b):
        return None
    found, offset = None, 0
    for i, (x, y) in enumerate(zip(a, b)):
        (tx, sx), (ty, _) = template(x), template(y)
        if tx != ty:
            gap = _merge_gap(x, y) if isinstance(x, Merge) and isinstance(y, Merge) else None
            if found is not None or gap is None:
                return None
            k, below, first, n = gap
            found = (((i, k),) + below, offset + first, n)
        offset += len(sx)
    return found


def _merge_gap(x: Merge, y: Merge):
    """(branch, path below it, first slot in the merge's, slots) of the branch of `x` that `y` lacks."""
    if x.kind != y.kind or len(x.branches) != len(y.branches):
        return None
    tx = [_seq_template(br) for br in x.branches]
    ty = [_seq_template(br)[0] for br in y.branches]
    starts = [sum(len(t[1]) for t in tx[:k]) for k in range(len(tx))]
    diff = [k for k in range(len(tx)) if tx[k][0] != ty[k]]
    if len(diff) == 1:
        k = diff[0]
        sub = ((), 0, len(tx[k][1])) if x.branches[k] and not y.branches[k] else \
            _branch_gap(x.branches[k], y.branches[k])
        return None if sub is None else (k, sub[0], starts[k] + sub[1], sub[2])
    if x.kind in ("add", "mul"):  # the identity of a sum or product may come first or last
        for k in range(len(tx)):
            rest = [t[0] for j, t in enumerate(tx) if j != k]
            if x.branches[k] and any(not y.branches[q] and rest == ty[:q] + ty[q + 1:] for q in range(len(ty))):
                return k, (), starts[k], len(tx[k][1])
    return None


def _branch_at(items: list, path: tuple) -> tuple[Merge, int]:
    (i, k), rest = path[0], path[1:]
    return (items[i], k) if not rest else _branch_at(items[i].branches[k], rest)


def _value(expr: str, env: dict[str, Any]) -> Any:
    """The value of a binding `_parametrise` writes: NAME, K * NAME or NAME // K."""
    m = re.fullmatch(r"(\d+) \* (\w+)", expr) or re.fullmatch(r"(\w+) // (\d+)", expr)
    if m is None:
        return env[expr]
    return int(m.group(1)) * env[m.group(2)] if expr[0].isdigit() else env[m.group(1)] // int(m.group(2))


def condition(has: list[bool], in_c: list[int | None], params: list[list], bindings: list,
              families: list[str]) -> str | None:
    """The `if` that holds exactly on the calls that have the branch (`has`): the input's
    channels differing from a channel count of the block (`in.c != 4 * c`), a stride off its
    default (`stride != 1`), or one of each; strides that only hold where it does are
    written too (`stride != 1 or in.c != 4 * c`, as a person writes a projection
    shortcut). None when no such condition holds."""
    envs = [{p[0]: p[3][k] for p in params} for k in range(len(has))]
    strides = [(f"{p[0]} != {p[2]}", [e[p[0]] != p[2] for e in envs]) for p in params
               if p[1] == "s" and p[2] is not None]
    exprs = [b[1] for b, f in zip(bindings, families) if b[0] == "expr" and f == "ch"]
    widths = []
    if all(c is not None for c in in_c):
        widths = [(f"in.c != {e}", [c != _value(e, env) for c, env in zip(in_c, envs)]) for e in dict.fromkeys(exprs)]
    for atoms in ([w] for w in widths), ([s] for s in strides), ([s, w] for s in strides for w in widths):
        for chosen in atoms:
            if [any(t) for t in zip(*(v for _, v in chosen))] == has:
                extra = [s for s in strides if s not in chosen and any(s[1])
                         and all(h for t, h in zip(s[1], has) if t)] if chosen[0] in widths else []
                return " or ".join(text for text, _ in extra + chosen)
    return None


def _bind(members: list, slots0: list | None = None):
    """_parametrise of the calls' slot columns (`slots0`: the families and hints, the first call's by default)."""
    slots0 = slots0 or members[0][3]
    columns = [[m[3][j][0] for m in members] for j in range(len(slots0))]
    return _parametrise(columns, [s[1] for s in slots0], [s[2] for s in slots0])


def _join_optional(groups: list[list], order: dict[int, int]) -> list[tuple[list, list, tuple]]:
    """(members, body, parametrisation) per block: two groups of calls of one class whose
    bodies differ by one merge branch, present in the first and absent in the second, are
    one block with that branch under an `if` (see `condition`), where one holds."""
    out = [(m, m[0][0].body, None) for m in groups]
    i = 0
    while i < len(out):
        for j in range(i + 1, len(out)):
            joined = _joined(out[i][0], out[j][0], order) if out[i][2] is None and out[j][2] is None else None
            if joined is not None:
                out[i] = joined
                del out[j]
                break
        i += 1
    return [(m, body, bound or _bind(m)) for m, body, bound in out]


def _joined(a: list, b: list, order: dict[int, int]):
    if a[0][0].frame.cls != b[0][0].frame.cls:
        return None
    gap = _branch_gap(a[0][0].body, b[0][0].body)
    if gap is None:
        a, b = b, a
        gap = _branch_gap(a[0][0].body, b[0][0].body)
    if gap is None:
        return None
    path, first, n = gap
    absent = [(None, fam, hint) for _, fam, hint in a[0][3][first:first + n]]
    members = sorted(a + [(c, p, i, s[:first] + absent + s[first:]) for c, p, i, s in b], key=lambda m: order[id(m[0])])
    bindings, params = _bind(members, a[0][3])
    has = [any(m[0] is x[0] for x in a) for m in members]
    in_c = [in_channels([_branch_at(m[0].body, path)[0]]) for m in members]
    text = condition(has, in_c, params, bindings, [s[1] for s in a[0][3]])
    if text is None:
        return None
    body = a[0][0].body
    merge, k = _branch_at(body, path)
    merge.branches[k] = [Cond(text, merge.branches[k])]
    return members, body, (bindings, params)
