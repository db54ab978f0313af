"""Stage 1, syntax: the typed program the parser produces, a tree of frozen dataclasses.

Every node keeps the :class:`Span` it came from, so that any later stage can point at the
exact text a user wrote. Nothing here knows about layer kinds: a layer statement is an
:class:`Invocation` (a word and its arguments), and a merge a :class:`Merge` (a word and its
branches), which the expansion stage resolves against the layer registry and the blocks in
scope.

The nodes are plain frozen dataclasses, built only by :mod:`archdsl.parser`, whose grammar
already guarantees their types. They were pydantic models; measured on GoogLeNet's spec,
building pydantic's validators on a process's first parse took 70-150 ms and importing
pydantic another 50-100 ms, against 3 ms for the whole transform into dataclasses.
tests/test_syntax.py still checks every parsed spec against these annotations with
pydantic's ``TypeAdapter``, so a transform that builds an ill-typed node fails a test.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from dataclasses import replace
from typing import Iterator, Literal, Optional, Union

from .frozen import frozen

__all__ = ["replace", "gc_paused"]  # dataclasses.replace: the stages derive nodes with it (labels, spans)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector off, then restore it.

    Parsing and expanding allocate many objects that live as long as their result (parse
    tree nodes, spans, layer records) and almost no reference cycles. CPython starts a
    collection every 700 net allocations, and every so often a full one that walks every
    object alive, so across a large spec it examines the same long-lived objects again and
    again (about a third of a 10,000-line compile). Both stages are bounded
    (parse.MAX_SOURCE_BYTES, expand.MAX_NODES and MAX_STEPS), and so is the garbage they
    leave for the next collection."""
    if not gc.isenabled():  # already paused (a stage within another), or off by the caller's choice
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()

#: how pydantic validates a parsed program against these annotations (tests/test_parser.py
#: does, for every spec): strictly, every node again, although it is already built
_VALIDATION = {"strict": True, "revalidate_instances": "always"}


def _node(cls, kw_only: bool = True):
    """Every node: immutable, compared by value, keyword-only (a statement's optional label
    comes before its own fields in the class hierarchy). :func:`archdsl.frozen.frozen`: a
    frozen dataclass, 40 -> 24 ms to define this module's 31 classes."""
    cls.__pydantic_config__ = _VALIDATION
    return frozen(cls, slots=True, kw_only=kw_only)


@functools.partial(_node, kw_only=False)  # the parser makes one for most nodes: positionally, 40% faster
class Span:
    """A region of a source file; lines and columns are 1-based, `end_column` exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@_node
class Node:
    """What every node has: where it was written."""

    span: Span


# ---------------------------------------------------------------- expressions


@_node
class Num(Node):
    """A number: `64`, `1e-3`, `1_000`."""

    value: Union[int, float]


@_node
class Bool(Node):
    """`true` or `false`."""

    value: bool


@_node
class Name(Node):
    """A name: a `let`, a parameter or a loop variable."""

    id: str


@_node
class Attr(Node):
    """`in.c`: an attribute of a built-in object (only `in`, the current tensor)."""

    obj: str
    attr: str


@_node
class BinOp(Node):
    """`left op right`: arithmetic, a comparison, `and`, `or`."""

    op: Literal["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    left: "Expr"
    right: "Expr"


@_node
class Neg(Node):
    """`-x`"""

    operand: "Expr"


@_node
class Not(Node):
    """`not x`"""

    operand: "Expr"


@_node
class Cond(Node):
    """`a if test else b`"""

    test: "Expr"
    body: "Expr"
    orelse: "Expr"


@_node
class Func(Node):
    """A built-in function: min, max, int, floor, ceil, round, abs."""

    name: str
    args: tuple["Expr", ...]


Expr = Union[Num, Bool, Name, Attr, BinOp, Neg, Not, Cond, Func]


# ---------------------------------------------------------------- layer arguments


@_node
class Window(Node):
    """`5x5/1`, `3/2`, `1x7`, `k x k`, or a single bare atom such as `4096`, `ceil`, `classes`."""

    dims: tuple[Expr, ...]
    stride: Optional[tuple[Expr, ...]] = None

    def bare_word(self) -> Optional[str]:
        """The word of a one-atom window like `ceil`, else None."""
        if self.stride is None and len(self.dims) == 1 and isinstance(self.dims[0], Name):
            return self.dims[0].id
        return None


@_node
class ListArg(Node):
    """`160,96` or `6,3,2,1`."""

    items: tuple[Expr, ...]


@_node
class KwArg(Node):
    """`alpha=1e-4`, `pad=0,3`; the shorthands `p2`, `g2`, `d2` become pad/groups/dilation."""

    key: str
    values: tuple[Expr, ...]


Arg = Union[Window, ListArg, KwArg]


@_node
class CallKw(Node):
    """`key=value` in a block call's parentheses."""

    key: str
    value: Expr


# ---------------------------------------------------------------- statements


@_node
class Stmt(Node):
    """A statement; `label:` before it names its node."""

    label: Optional[str] = None
    label_span: Optional[Span] = None


@_node
class Invocation(Stmt):
    """A layer (`conv 3x3 p1 -> 64 noact`) or a block call (`inception(64, 96, c5=32)`)."""

    name: str
    name_span: Span
    call: Optional[tuple[Union[Expr, CallKw], ...]] = None
    args: tuple[Arg, ...] = ()
    out: Optional[Expr] = None
    post: tuple[Arg, ...] = ()


@_node
class Let(Stmt):
    """`let name = value`"""

    name: str
    value: Expr


@_node
class Input(Stmt):
    """`input 3x224x224`"""

    dims: tuple[Expr, ...]


@_node
class Scoped(Stmt):
    """`act relu`, `norm bn eps=1e-3`, `bias off`: a default for the rest of the body."""

    setting: Literal["act", "norm", "bias"]
    value: Invocation


@_node
class Body(Node):
    """The statements between braces, in order."""

    stmts: tuple["AnyStmt", ...]


@_node
class Repeat(Stmt):
    """`repeat n { ... }` or `repeat n as i { ... }`."""

    count: Expr
    var: Optional[str] = None
    body: Body


@_node
class If(Stmt):
    """`if test { ... } else { ... }`"""

    test: Expr
    then: Body
    orelse: Optional[Body] = None


@_node
class Merge(Stmt):
    """`concat { A | B }`, `add { A | B }`, `residual scale=0.2 { F }`: a word naming a merge
    kind of the registry (resolved by the expansion stage, so that a new merge needs no
    grammar change), its options, and its branches, each run on the same input."""

    kind: str
    kind_span: Span
    #: read by the merge kind as a layer's arguments are (`scale=0.2`)
    options: tuple[Arg, ...] = ()
    branches: tuple[Body, ...]


@_node
class Aux(Stmt):
    """`aux name { ... }`: a side head (an auxiliary classifier)."""

    name: str
    body: Body


@_node
class Expect(Stmt):
    """`expect params = N`, `expect macs = N within 1%`, `expect output = 1000`, `expect shape = 64x56x56`."""

    what: str
    value: Union[Expr, tuple[Expr, ...]]
    tolerance: Optional[float] = None


AnyStmt = Union[Invocation, Let, Input, Scoped, Repeat, If, Merge, Aux, Expect]


# ---------------------------------------------------------------- top level


@_node
class Param(Node):
    """A parameter of a block or network, with its default if it has one."""

    name: str
    default: Optional[Expr] = None


@_node
class Block(Node):
    """`block name(params) { ... }`"""

    name: str
    params: tuple[Param, ...]
    body: Body


@_node
class Network(Node):
    """`network name(params) { ... }`"""

    name: str
    params: tuple[Param, ...]
    body: Body


@_node
class Include(Node):
    """`include "path.arch"`"""

    path: str


Item = Union[Include, Let, Block, Network]


@_node
class Program:
    """One parsed file. `source` is kept so diagnostics can show the offending line."""

    file: str
    source: str
    items: tuple[Item, ...]
    #: the networks whose statements were checked but not built (``parse(..., only=name)``:
    #: the others'): each has an empty body here
    unbuilt: tuple[str, ...] = ()

    @property
    def networks(self) -> list[Network]:
        return [i for i in self.items if isinstance(i, Network)]

    @property
    def blocks(self) -> list[Block]:
        return [i for i in self.items if isinstance(i, Block)]
