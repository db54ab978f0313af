"""The expansion's bounds, checked from the text before the work.

A spec may come from anywhere, so what it can make archdsl do is bounded: nodes and steps
per network, networks and nodes per command, block-call depth, repeat counts. The bounds
that the text alone decides are checked here before anything is expanded, so that
`repeat 10000 { repeat 10000 { relu } }`, or blocks each calling the next twice forty deep,
fail at once with a located error instead of running into the limit after minutes.
"""

from __future__ import annotations

from . import syntax as P
from .diagnostics import ArchError, Diagnostic
from .evaluate import big
from .layers import lookup
from .sources import Unit

#: the most iterations one `repeat` may run
MAX_REPEAT = 10_000
#: the deepest chain of block calls
MAX_CALL_DEPTH = 64
#: the most nodes one network may expand to: six times the largest classic network (the
#: CIFAR ResNet-1001, 3,339 nodes)
MAX_NODES = 20_000
#: the most statements and bodies one network may execute while expanding (ResNet-1001:
#: 7,021); bodies without layers, `repeat 10000 { repeat 10000 { let x = 1 } }`, add no
#: nodes but still take time
MAX_STEPS = 50_000
#: the most nodes all the networks of one command may expand to together (a file may hold
#: any number of networks; each is bounded by MAX_NODES, the command by this)
MAX_COMMAND_NODES = 100_000

_HINT = "check the repetition counts and nested block calls"


class Costs:
    """Lower bounds on the nodes and steps one expansion of a body takes, from the text alone
    (repeat counts that are not literals count as 0), memoised per body."""

    def __init__(self, unit: Unit):
        self.unit = unit
        self._costs: dict[int, tuple[int, int]] = {}
        self._depth = 0

    def body(self, body: P.Body) -> tuple[int, int]:
        key = id(body)
        if key in self._costs:
            return self._costs[key]
        if self._depth > 2 * MAX_CALL_DEPTH + 8:  # deeper call chains fail on their own (E304)
            return 0, 0
        self._costs[key] = (0, 0)  # a recursive call (an error of its own) counts as nothing
        nodes, steps = 0, 1 + len(body.stmts)
        self._depth += 1
        try:
            for s in body.stmts:
                n, k = self.stmt(s)
                nodes, steps = nodes + n, steps + k
        finally:
            self._depth -= 1
        self._costs[key] = (nodes, steps)
        return nodes, steps

    def stmt(self, s: P.AnyStmt) -> tuple[int, int]:
        t = type(s)
        if t is P.Invocation:
            block = self.unit.blocks.get(s.name)
            if block is not None:
                return self.body(block.body)
            return (1 if lookup(s.name) is not None else 0), 0
        if t is P.Repeat:
            c = s.count
            times = c.value if type(c) is P.Num and type(c.value) is int and 0 < c.value <= MAX_REPEAT else 0
            n, k = self.body(s.body)
            return times * n, times * k
        if t is P.If:
            a, b = self.body(s.then), self.body(s.orelse) if s.orelse is not None else (0, 0)
            return min(a[0], b[0]), min(a[1], b[1])
        if t is P.Merge:
            costs = [self.body(b) for b in s.branches]
            return 1 + sum(c[0] for c in costs), sum(c[1] for c in costs)
        if t is P.Aux:
            return self.body(s.body)
        return 0, 0

    def check(self, times: int, body: P.Body, span: P.Span, what: str, nodes_used: int, steps_used: int) -> None:
        """Refuse at once an expansion of `body`, `times` over, that cannot fit the limits."""
        nodes, steps = self.body(body)
        for used, cost, limit, unit, verb in ((nodes_used, nodes, MAX_NODES, "nodes", "have"),
                                              (steps_used, steps, MAX_STEPS, "steps", "take")):
            need = used + times * cost
            if need > limit:
                raise ArchError(Diagnostic("E304", f"{what}: the network would {verb} at least {big(need)} {unit}"
                                           + (" to expand" if unit == "steps" else ""),
                                           span, expected=f"at most {limit:,} {unit}", found=big(need), hint=_HINT))

    def check_network(self, network: P.Network) -> None:
        """Refuse at once a network whose statements add up beyond the limits (25,000 layers
        written out): blame the statement where the total crosses the limit. A statement over
        the limit on its own is left to its own check, which names it better (`repeat 10000`)."""
        body = network.body
        totals = [self.stmt(st) for st in body.stmts]
        all_nodes, all_steps = sum(t[0] for t in totals), 1 + len(body.stmts) + sum(t[1] for t in totals)
        nodes, steps = 0, 1 + len(body.stmts)
        for st, (n, k) in zip(body.stmts, totals):
            nodes, steps = nodes + n, steps + k
            if n > MAX_NODES or k > MAX_STEPS:
                return
            for total, count, limit, text in ((all_nodes, nodes, MAX_NODES, "have at least {} nodes"),
                                              (all_steps, steps, MAX_STEPS, "take at least {} steps to expand")):
                if count > limit:
                    raise ArchError(Diagnostic("E304", "the network would " + text.format(big(total)), st.span,
                                               expected=f"at most {limit:,}", found=big(total),
                                               hint="the limit is passed at this statement; "
                                                    "check the repetition counts and the network's length"))


def check_command(unit: Unit, networks: list[P.Network]) -> None:
    """Refuse a file whose networks together would exceed the command's node budget (100
    networks of 20,000 nodes fit in 7 KB), blaming the first network past it. A network over
    its own limit is left to its own check, which names the statement at fault."""
    costs, total = Costs(unit), 0
    for net in networks:
        nodes = costs.body(net.body)[0]
        if nodes > MAX_NODES:
            continue
        total += nodes
        if total > MAX_COMMAND_NODES:
            raise ArchError(Diagnostic(
                "E304", f"the file's networks would have at least {big(total)} nodes together",
                P.replace(net.span, end_line=net.span.line, end_column=net.span.column + 8 + len(net.name)),
                expected=f"at most {MAX_COMMAND_NODES:,} for one command", found=big(total),
                hint="split the networks into several files"), unit.sources)
