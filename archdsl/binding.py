"""Stage 5a, binding: a statement's arguments -> a kind's params, or a block call's values.

The expansion (:mod:`archdsl.expand`) calls these for every layer statement and block call:
the generic flags are split from the kind's own arguments, the arguments are evaluated in
the statement's scope and read by the kind (``Kind.bind``), and a block's parameters are
matched to a call's arguments the way Python matches a def's (positional, then keywords,
then defaults evaluated in the values bound so far).
"""

from __future__ import annotations

from typing import Any

from . import syntax as P
from .diagnostics import ArchError, Diagnostic, Note, Suggestion
from .evaluate import Env, evaluate
from .layers import Args, Kind, Shape, lookup

#: the flags any layer statement may carry, besides an activation's name
GENERIC_FLAGS = frozenset({"noact", "nonorm", "bias", "nobias"})
_NO_FLAGS: frozenset[str] = frozenset()


def split_flags(inv: P.Invocation, kind: Kind) -> tuple[list, frozenset[str]]:
    """Split the generic flags (noact, nonorm, bias, nobias, an activation) from the rest,
    and check that `kind` takes them."""
    if not inv.args and not inv.post:  # `bn`, `relu`: nothing to split
        return [], _NO_FLAGS
    rest, flags, spans = [], set(), {}
    for a in (*inv.args, *inv.post):
        word = a.bare_word() if type(a) is P.Window else None
        if word is not None and (word in GENERIC_FLAGS or getattr(lookup(word), "is_activation", False)):
            flags.add(word)
            spans[word] = a.span
        else:
            rest.append(a)
    for f in flags:
        if f not in ("nonorm", "bias", "nobias") and not kind.takes_act:  # noact or an activation
            raise ArchError(Diagnostic("E202", f"{kind.name} has no activation to change with '{f}'",
                                       spans[f], hint="write the activation as its own statement"))
        if f == "nonorm" and not kind.takes_norm:
            raise ArchError(Diagnostic("E202", f"{kind.name} has no normalisation to remove", spans[f]))
        if f in ("bias", "nobias") and not kind.has_bias:
            raise ArchError(Diagnostic("E202", f"{kind.name} has no bias", spans[f]))
    return rest, frozenset(flags)


def bind_params(kind: Kind, inv: P.Invocation | P.Merge, env: Env, shape: Shape | None, args: list):
    """The kind's params for a statement: its arguments evaluated and read by ``kind.bind``."""
    positional: list = []
    keywords: dict[str, P.KwArg] = {}
    for c in getattr(inv, "call", None) or ():
        if type(c) is P.CallKw:
            keywords[c.key] = P.KwArg(span=c.span, key=c.key, values=(c.value,))
        else:
            positional.append(c)
    for a in args:
        if type(a) is P.KwArg:
            if a.key in keywords:
                raise ArchError(Diagnostic("E204", f"'{a.key}' is given twice", a.span))
            keywords[a.key] = a
        else:
            positional.append(a)
    out = getattr(inv, "out", None)
    reader = Args(kind.name, inv.span, positional, keywords, out, out.span if out else None,
                  lambda e: evaluate(e, env, shape))
    params = kind.bind(reader)
    reader.finish()
    return params


def bind_block_args(inv: P.Invocation, block: P.Block, env: Env, genv: Env, shape: Shape | None) -> dict[str, Any]:
    """A block call's values by parameter name; a default is evaluated among the network's
    names and the values bound before it (``genv``), not the caller's."""
    names = [p.name for p in block.params]
    values: dict[str, Any] = {}
    positional = [c for c in inv.call or () if type(c) is not P.CallKw]
    keywords = [c for c in inv.call or () if type(c) is P.CallKw]
    if len(positional) > len(names):
        raise ArchError(Diagnostic(
            "E206", f"block '{block.name}' takes {len(names)} argument{'s' * (len(names) != 1)}, "
            f"{len(positional)} given", positional[len(names)].span,
            expected=f"{block.name}({', '.join(names)})", found=f"{len(positional)} arguments",
            notes=(Note("defined here", block.span),)))
    for prm, expr in zip(block.params, positional):
        values[prm.name] = evaluate(expr, env, shape)
    for kw in keywords:
        if kw.key not in names:
            raise ArchError(Diagnostic("E202", f"block '{block.name}' has no parameter '{kw.key}'", kw.span,
                                       hint=Suggestion(kw.key, names, f"its parameters: {', '.join(names) or 'none'}"),
                                       notes=(Note("defined here", block.span),)))
        if kw.key in values:
            raise ArchError(Diagnostic("E204", f"argument '{kw.key}' is given twice", kw.span))
        values[kw.key] = evaluate(kw.value, env, shape)
    for prm in block.params:
        if prm.name not in values:
            if prm.default is None:
                given = len(positional) + len(keywords)
                raise ArchError(Diagnostic(
                    "E208", f"block '{block.name}' needs argument '{prm.name}'", inv.span,
                    expected=f"{block.name}({', '.join(names)})", found=f"{given} argument" + "s" * (given != 1),
                    notes=(Note("defined here", block.span),)))
            values[prm.name] = evaluate(prm.default, Env(values, genv), shape)
    return values


def arg_span(inv: P.Invocation, key: str) -> P.Span | None:
    """Where argument `key` of a statement is written, to underline it in an error."""
    for a in (*inv.args, *inv.post):
        if type(a) is P.KwArg and a.key == key:
            return a.span
    for c in inv.call or ():
        if type(c) is P.CallKw and c.key == key:
            return c.span
    return None
