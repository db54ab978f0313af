"""The typed program: what the parser produces, a tree of frozen pydantic models.

Every node keeps the :class:`Span` it came from, so that any later stage can point at the
exact text a user wrote. Nothing here knows about layer kinds: a layer statement is an
:class:`Invocation` (a word and its arguments) that the graph stage resolves against the
layer registry and the blocks in scope.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict


class Span(BaseModel):
    """A region of a source file; lines and columns are 1-based, `end_column` exclusive."""

    # defer_build: pydantic builds a model's validator when it first validates, not when the
    # class is created; a program loaded from archdsl.cache is never validated again, so the
    # compile path skips building them altogether (most of this module's import time)
    model_config = ConfigDict(frozen=True, defer_build=True)

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Node(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)

    span: Span


# ---------------------------------------------------------------- expressions


class Num(Node):
    value: Union[int, float]


class Bool(Node):
    value: bool


class Name(Node):
    id: str


class Attr(Node):
    """`in.c`: an attribute of a built-in object (only `in`, the current tensor)."""

    obj: str
    attr: str


class BinOp(Node):
    op: Literal["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
    left: "Expr"
    right: "Expr"


class Neg(Node):
    operand: "Expr"


class Not(Node):
    operand: "Expr"


class Cond(Node):
    """`a if test else b`"""

    test: "Expr"
    body: "Expr"
    orelse: "Expr"


class Func(Node):
    """A built-in function: min, max, int, floor, ceil, round, abs."""

    name: str
    args: tuple["Expr", ...]


Expr = Union[Num, Bool, Name, Attr, BinOp, Neg, Not, Cond, Func]


# ---------------------------------------------------------------- layer arguments


class Window(Node):
    """`5x5/1`, `3/2`, `1x7`, `k x k`, or a single bare atom such as `4096`, `ceil`, `classes`."""

    dims: tuple[Expr, ...]
    stride: Optional[tuple[Expr, ...]] = None

    def bare_word(self) -> Optional[str]:
        """The word of a one-atom window like `ceil`, else None."""
        if self.stride is None and len(self.dims) == 1 and isinstance(self.dims[0], Name):
            return self.dims[0].id
        return None


class ListArg(Node):
    """`160,96` or `6,3,2,1`."""

    items: tuple[Expr, ...]


class KwArg(Node):
    """`alpha=1e-4`, `pad=0,3`; the shorthands `p2`, `g2`, `d2` become pad/groups/dilation."""

    key: str
    values: tuple[Expr, ...]


Arg = Union[Window, ListArg, KwArg]


class CallKw(Node):
    key: str
    value: Expr


# ---------------------------------------------------------------- statements


class Stmt(Node):
    label: Optional[str] = None
    label_span: Optional[Span] = None


class Invocation(Stmt):
    """A layer (`conv 3x3 p1 -> 64 noact`) or a block call (`inception(64, 96, c5=32)`)."""

    name: str
    name_span: Span
    call: Optional[tuple[Union[Expr, CallKw], ...]] = None
    args: tuple[Arg, ...] = ()
    out: Optional[Expr] = None
    post: tuple[Arg, ...] = ()


class Let(Stmt):
    name: str
    value: Expr


class Input(Stmt):
    dims: tuple[Expr, ...]


class Scoped(Stmt):
    """`act relu`, `norm bn eps=1e-3`, `bias off`: a default for the rest of the body."""

    setting: Literal["act", "norm", "bias"]
    value: Invocation


class Body(Node):
    stmts: tuple["AnyStmt", ...]


class Repeat(Stmt):
    count: Expr
    var: Optional[str] = None
    body: Body


class If(Stmt):
    test: Expr
    then: Body
    orelse: Optional[Body] = None


class Concat(Stmt):
    branches: tuple[Body, ...]


class Add(Stmt):
    branches: tuple[Body, ...]


class Residual(Stmt):
    options: tuple[KwArg, ...] = ()
    body: Body


class Aux(Stmt):
    name: str
    body: Body


class Expect(Stmt):
    """`expect params = N`, `expect macs = N within 1%`, `expect output = 1000`, `expect shape = 64x56x56`."""

    what: str
    value: Union[Expr, tuple[Expr, ...]]
    tolerance: Optional[float] = None


AnyStmt = Union[Invocation, Let, Input, Scoped, Repeat, If, Concat, Add, Residual, Aux, Expect]


# ---------------------------------------------------------------- top level


class Param(Node):
    name: str
    default: Optional[Expr] = None


class Block(Node):
    name: str
    params: tuple[Param, ...]
    body: Body


class Network(Node):
    name: str
    params: tuple[Param, ...]
    body: Body


class Include(Node):
    path: str


Item = Union[Include, Let, Block, Network]


class Program(BaseModel):
    """One parsed file. `source` is kept so diagnostics can show the offending line."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    file: str
    source: str
    items: tuple[Item, ...]

    @property
    def networks(self) -> list[Network]:
        return [i for i in self.items if isinstance(i, Network)]

    @property
    def blocks(self) -> list[Block]:
        return [i for i in self.items if isinstance(i, Block)]


# The forward references ("Expr", "AnyStmt") are resolved from this module's namespace when
# each model first validates (defer_build above); no explicit model_rebuild() is needed.
