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
  the stride and the input's channels, where such a condition tells the calls apart
  (a block's parameters and this join are made in archdsl/rebuild_join.py);
* repeats: consecutive alike statements (or runs of up to six) become ``repeat N { }``;
* labels: a torch attribute name becomes the statement's label where it names one call.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .layers import REGISTRY
from .rebuild_join import _join_optional, in_channels
from .rebuild_types import (_NUMBERED, SCOPED, Aux, Block, Call, Cond, Frame, Merge, Op, Ref, Repeat, _seq_template,
                            identifier, snake)

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
    without are resolved together (and may be one block, see rebuild_join._join_optional)."""
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


def _sublists(it) -> list[list]:
    if isinstance(it, Merge):
        return it.branches
    if isinstance(it, (Aux, Repeat, Cond)):
        return [it.body]
    return []
