"""The importer's back end: a traced module's layers, as a tree, -> readable spec text.

Torch-free: archdsl/trace_torch.py turns a module into the items of archdsl/rebuild_types.py
(one ``Op`` per layer, ``Merge`` where branches meet, ``Aux`` for side heads, each with the
stack of modules it was called in), and this module rebuilds the structure a person would write:

* nesting: consecutive items called inside the same module call become one ``Call``
  (a merge belongs to the innermost module holding all its ops, its own op included);
* blocks: module calls of one class whose bodies have the same structure become ONE
  ``block``; the numbers that differ between the calls become its parameters (a number
  always equal to an earlier parameter, or a fixed multiple or fraction of it, is written
  as that expression), the others are written in the body;
* optional branches: calls of one class whose bodies differ only by a merge branch that
  some lack (ResNet's projection shortcut) are one block, that branch under an ``if`` on
  the stride and the input's channels, where such a condition tells the calls apart;
* repeats: consecutive alike statements (or runs of up to six) become ``repeat N { }``;
* labels: a torch attribute name becomes the statement's label where it names one call.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from .layers import REGISTRY
from .rebuild_types import (_NUMBERED, PAIRS, SCOPED, Aux, Block, Call, Cond, Frame, Merge, Op, Ref, Repeat,
                            _seq_template, identifier, snake, template)

#: period of the longest run of statements a repeat is looked for in
MAX_PERIOD = 6


# ---------------------------------------------------------------- nesting


def _common(scopes: list[tuple[Frame, ...]]) -> tuple[Frame, ...]:
    if not scopes:
        return ()
    first = scopes[0]
    n = min(len(s) for s in scopes)
    k = 0
    while k < n and all(s[k].key == first[k].key for s in scopes):
        k += 1
    return first[:k]


def _inner_scopes(items: list) -> list[tuple[Frame, ...]]:
    out = []
    for it in items:
        if isinstance(it, Op):
            out.append(it.scope)
        elif isinstance(it, Merge):
            out.append(scope_of(it))
        elif isinstance(it, Aux):
            out.extend(_inner_scopes(it.body))
    return out


def scope_of(it) -> tuple[Frame, ...]:
    """Where an item sits in the module tree: a merge in the innermost module that holds
    its own op and every op of its branches."""
    if isinstance(it, Op):
        return it.scope
    if isinstance(it, Merge):
        return _common([it.scope] + [s for b in it.branches for s in _inner_scopes(b)])
    return it.scope  # Aux: set where it hangs off the main path


def nest(items: list, depth: int = 0) -> list:
    """Group consecutive items called in the same module call (at `depth`) into a Call."""
    out: list = []
    i = 0
    while i < len(items):
        s = scope_of(items[i])
        if len(s) > depth:
            key = s[depth].key
            j = i
            while j < len(items) and len(scope_of(items[j])) > depth and scope_of(items[j])[depth].key == key:
                j += 1
            out.append(Call(s[depth], nest(items[i:j], depth + 1)))
            i = j
            continue
        it = items[i]
        if isinstance(it, Merge):
            it.branches = [nest(b, depth) for b in it.branches]
        elif isinstance(it, Aux):
            it.body = nest(it.body, depth)
        out.append(it)
        i += 1
    return out


def _key(items: list):
    skel, slots = _seq_template(items, numbered=True)
    return skel, tuple(v for v, _, _ in slots)


def _strip_labels(items: list) -> list:
    for it in items:
        if isinstance(it, (Op, Ref)) and it.label and _NUMBERED.match(it.label):
            it.label = None
        if isinstance(it, Merge):
            for b in it.branches:
                _strip_labels(b)
        elif isinstance(it, (Repeat, Aux, Cond)):
            _strip_labels(it.body)
    return items


def find_repeats(items: list) -> list:
    """Runs of alike statements (or of alike groups of up to MAX_PERIOD) -> Repeat."""
    return find_repeats_together([items])[0]


def find_repeats_together(bodies: list[list]) -> list[list]:
    """find_repeats on bodies of one structure at once (the calls of one block): a run is a
    repeat only where it is one in every body, so the bodies keep one structure."""
    first = bodies[0]
    for i, it in enumerate(first):
        if isinstance(it, Merge):
            new = [find_repeats_together([b[i].branches[k] for b in bodies]) for k in range(len(it.branches))]
            for j, b in enumerate(bodies):
                b[i].branches = [n[j] for n in new]
        elif isinstance(it, Aux):
            new = find_repeats_together([b[i].body for b in bodies])
            for j, b in enumerate(bodies):
                b[i].body = new[j]
    keys = [tuple(_key([b[i]]) for b in bodies) for i in range(len(first))]
    outs: list[list] = [[] for _ in bodies]
    i = 0
    while i < len(first):
        best = (1, 1)  # (period, copies)
        for p in range(1, MAX_PERIOD + 1):
            if i + 2 * p > len(first):
                break
            k = 1
            while i + (k + 1) * p <= len(first) and keys[i + k * p:i + (k + 1) * p] == keys[i:i + p]:
                k += 1
            if k >= 2 and p * k > best[0] * best[1]:
                best = (p, k)
        p, k = best
        if k >= 2 and not any(isinstance(x, Aux) for x in first[i:i + p]):
            for out, b in zip(outs, bodies):
                out.append(Repeat(k, _strip_labels(b[i:i + p])))
            i += p * k
        else:
            for out, b in zip(outs, bodies):
                out.append(b[i])
            i += 1
    return outs


# ---------------------------------------------------------------- blocks


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


class Rebuilder:
    """Turns the nested tree of one traced module into blocks and a network body."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.names: set[str] = set()

    def _block_name(self, frame: Frame, labels: list[str | None]) -> str:
        if frame.generic:
            stems = [(_NUMBERED.match(lb).group(1) if _NUMBERED.match(lb) else lb) for lb in labels if lb]
            stems = [s for s in stems if identifier(s)]
            stem = Counter(stems).most_common(1)[0][0] if stems else "seq"
        else:
            stem = snake(frame.cls_name)
        if not identifier(stem) or stem in REGISTRY or stem in SCOPED:
            stem = f"{stem}_block"
        name, k = stem, 0
        while name in self.names:  # another structure of the same class: unit_b, unit_c, ...
            k += 1
            name = f"{stem}_{chr(ord('a') + k)}" if k < 26 else f"{stem}_v{k}"
        self.names.add(name)
        return name

    def run(self, root: list) -> list:
        """Resolve every Call under `root` into Refs to blocks, innermost first."""
        calls: list[tuple[int, Call, list, int]] = []  # (height, call, parent list, index)
        inside: dict[int, list[Call]] = {}  # id(call) -> the calls directly in it

        def height(items: list, owner: Call | None) -> int:
            h = 0
            for idx, it in enumerate(items):
                for sub in _sublists(it):
                    h = max(h, height(sub, owner))
                if isinstance(it, Call):
                    ch = height(it.body, it) + 1
                    calls.append((ch, it, items, idx))
                    inside.setdefault(id(owner), []).append(it)
                    h = max(h, ch)
            return h

        height(root, None)
        calls = _one_level_per_class(calls, inside)
        for level in sorted({c[0] for c in calls}):
            todo = [c for c in calls if c[0] == level]
            raw: dict[Any, list] = {}  # calls of one class and one structure, as traced
            for _, call, parent, idx in todo:
                raw.setdefault((call.frame.cls, _seq_template(call.body)[0]), []).append((call, parent, idx))
            groups: dict[Any, list] = {}  # ... and once repeats are found (a stage of 3 or of 6 units)
            for (cls, _), members in raw.items():
                bodies = find_repeats_together([m[0].body for m in members])
                for (call, parent, idx), body in zip(members, bodies):
                    call.body = body
                    skel, slots = _seq_template(body)
                    groups.setdefault((cls, skel), []).append((call, parent, idx, slots))
            order = {id(c[1]): k for k, c in enumerate(todo)}
            for members, body, (bindings, params) in _join_optional(list(groups.values()), order):
                name = self._block_name(members[0][0].frame, [m[0].label for m in members])
                block = Block(name, [(p[0], p[1], p[2]) for p in params], body, [m[0].frame for m in members],
                              bindings)
                self.blocks.append(block)
                for k, (call, parent, idx, _) in enumerate(members):
                    parent[idx] = Ref(block, [p[3][k] for p in params], call.label, in_channels(call.body))
        return find_repeats(root)


def _one_level_per_class(calls: list, inside: dict[int, list]) -> list:
    """The calls of one class (not a container) at one level, the highest of theirs, each
    still above the calls in it: a Bottleneck with a projection block in it and one
    without are resolved together (and may be one block, see _join_optional)."""
    level = {id(c[1]): c[0] for c in calls}
    for _ in range(len(calls)):
        top: dict[str, int] = {}
        for _, call, _, _ in calls:
            if not call.frame.generic:
                top[call.frame.cls] = max(top.get(call.frame.cls, 0), level[id(call)])
        changed = False
        for _, call, _, _ in calls:  # inner calls first
            want = max([level[id(call)], top.get(call.frame.cls, 0) if not call.frame.generic else 0]
                       + [level[id(k)] + 1 for k in inside.get(id(call), [])])
            changed |= want != level[id(call)]
            level[id(call)] = want
        if not changed:
            break
    return [(level[id(c[1])],) + c[1:] for c in calls]


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


def _sublists(it) -> list[list]:
    if isinstance(it, Merge):
        return it.branches
    if isinstance(it, (Aux, Repeat, Cond)):
        return [it.body]
    return []
