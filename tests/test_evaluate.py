"""Stage 4, expressions: every value is a bounded real number, computed in bounded work."""

from __future__ import annotations

import time

import pytest

import archdsl
from archdsl import ArchError


def _error(body: str) -> ArchError:
    with pytest.raises(ArchError) as err:
        archdsl.compile(f"network n {{\n  input 3x8x8\n{body}\n}}\n")
    return err.value


@pytest.mark.parametrize("expr", ["(-8) ** 0.5", "(-1) ** 0.5 * 2"])
def test_a_complex_value_is_an_error_where_it_is_computed(expr):
    err = _error(f"  conv 1x1 -> {expr}")
    assert err.code == "E304" and "complex" in err.first.message and err.first.span.line == 3
    err = _error(f"  residual scale={expr} {{ conv 1x1 -> 3 }}")
    assert err.code == "E304" and "complex" in err.first.message


def test_round_with_an_absurd_number_of_digits_is_refused_at_once():
    start = time.perf_counter()
    err = _error("  conv 1x1 -> round(1, -1000000000000000)")
    assert err.code == "E304" and "digits" in err.first.message
    assert time.perf_counter() - start < 5
    assert archdsl.compile("network n { input 3x8x8; conv 1x1 -> round(1234, -2) // 100 }").output_shape.c == 12


@pytest.mark.parametrize("expr, code", [("10 ** 20", "E304"), ("2 ** 65", "E304"), ("1e300 * 1e300", "E304"),
                                        ("min(true, 2) + 1", None), ("1 / 0", "E301"), ("floor(1e300 * 10)", "E304")])
def test_values_are_bounded(expr, code):
    if code is None:
        assert archdsl.compile(f"network n {{ input 3x8x8; conv 1x1 -> {expr} }}").output_shape.c == 2
        return
    assert _error(f"  conv 1x1 -> {expr}").code == code


@pytest.mark.parametrize("what", ["params", "macs", "flops", "rf", "layers"])
def test_a_size_where_a_figure_is_expected_is_a_diagnostic(what):
    err = _error(f"  conv 3x3 -> 4\n  expect {what} = 1x2x3")
    assert err.code == "E207" and f"expect {what}" in err.first.message
