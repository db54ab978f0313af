"""The frozen value classes: equal, hashed and shown exactly as dataclasses' own would be."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, fields
from operator import attrgetter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from archdsl import syntax as P
from archdsl.frozen import frozen
from archdsl.layers import REGISTRY, Params, Shape


@frozen
class Pair:
    a: int
    b: tuple = ()


@dataclass(frozen=True)
class PlainPair:
    a: int
    b: tuple = ()


@frozen
class One:
    x: str


@frozen(slots=True, kw_only=True)
class Kw:
    x: int
    y: float = 1.0


@frozen
class Empty:
    pass


values = st.one_of(st.integers(-3, 3), st.tuples(st.integers(0, 2)), st.text(max_size=2))


@given(values, values, values, values)
def test_equality_and_hash_follow_the_fields_as_dataclasses_do(a1, b1, a2, b2):
    ours, theirs = (Pair(a1, b1), Pair(a2, b2)), (PlainPair(a1, b1), PlainPair(a2, b2))
    assert (ours[0] == ours[1]) == (theirs[0] == theirs[1])
    assert (ours[0] != ours[1]) == (theirs[0] != theirs[1])
    assert hash(ours[0]) == hash(theirs[0])  # both: the hash of the tuple of the fields
    assert repr(ours[0]).replace("Pair(", "PlainPair(", 1) == repr(theirs[0])


def test_only_the_same_class_compares_equal():
    assert Pair(1) != PlainPair(1)
    assert Pair(1).__eq__(PlainPair(1)) is NotImplemented
    assert Pair(1) != (1, ())


def test_one_field_no_field_and_keyword_only_classes():
    assert One("a") == One("a") != One("b")
    assert hash(One("a")) == hash(One("a")) and {One("a"): 1}[One("a")] == 1
    assert repr(One("a")) == "One(x='a')"
    assert Empty() == Empty() and hash(Empty()) == hash(Empty()) and repr(Empty()) == "Empty()"
    assert Empty() != Pair(1) and One("a") != "a"  # a one-field node is not its value
    assert Kw(x=1) == Kw(x=1, y=1.0) and repr(Kw(x=2)) == "Kw(x=2, y=1.0)"
    assert not hasattr(Kw(x=1), "__dict__")  # slots kept
    with pytest.raises(TypeError):
        Kw(1)  # keyword-only kept


def test_a_class_with_slots_or_a_descriptor_field_is_compared_by_its_attributes():
    """Plain classes are compared through their __dict__ (faster); the others read each field."""
    from archdsl.diagnostics import Diagnostic, Suggestion

    assert Pair.__eq__ is not Kw.__eq__ and Diagnostic.__eq__ is Kw.__eq__  # __dict__ holds `_hint`
    told = Diagnostic("E201", "unknown", hint=Suggestion("reul", ["relu"]))
    assert told == Diagnostic("E201", "unknown", hint="did you mean 'relu'?")  # by the hint's text
    assert Kw(x=1, y=2.0) != Kw(x=1, y=3.0) and Pair(1, (2,)) != Pair(1, (3,))

    @frozen(kw_only=True)
    class Under(Kw):  # no slots of its own, but its base's fields live in slots
        z: int = 0

    assert Under.__eq__ is Kw.__eq__
    assert Under(x=1, z=2) != Under(x=2, z=2) and Under(x=1, z=2) == Under(x=1, z=2)


def test_instances_stay_frozen():
    for obj, name in ((Pair(1), "a"), (Kw(x=1), "x"), (P.Span(file="f", line=1, column=1, end_line=1, end_column=2), "line")):
        with pytest.raises(FrozenInstanceError):
            setattr(obj, name, 5)
        with pytest.raises(FrozenInstanceError):
            delattr(obj, name)


def test_the_packages_value_classes_use_it():
    """The syntax nodes, every kind's params, shapes: compared by all their fields in order."""
    classes = [P.Span, P.Num, P.Invocation, P.Program, Shape, Params]
    classes += [type(k).Params for k in REGISTRY.values() if getattr(type(k), "Params", Params) is not Params]
    for cls in classes:
        assert cls.__eq__ in (Pair.__eq__, Kw.__eq__) and cls.__hash__ is Pair.__hash__, cls
        names = tuple(f.name for f in fields(cls))  # compared and hashed by these, in this order
        assert repr(cls._values) == repr(attrgetter(*names) if names else attrgetter("__class__")), cls
    span = P.Span(file="f", line=1, column=2, end_line=1, end_column=3)
    assert span == P.Span(file="f", line=1, column=2, end_line=1, end_column=3)
    assert span != P.Span(file="f", line=1, column=2, end_line=1, end_column=4)
    assert repr(span) == "Span(file='f', line=1, column=2, end_line=1, end_column=3)"
    assert {Shape((3, 4, 4)): 1}[Shape((3, 4, 4))] == 1
