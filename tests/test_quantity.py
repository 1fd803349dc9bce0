"""Exact quantities: strict numbers, whole kilograms, exact rates truncated exactly."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from flows.kernel.quantity import (
    QuantityError,
    exact_fraction,
    meets,
    rate,
    read_number,
    to_kg,
    tonnes,
    truncated_percent,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12,500.5", Decimal("12500.5")),
        ("12500.5", Decimal("12500.5")),
        ("1,234,567", Decimal("1234567")),
        (" 7803.9 ", Decimal("7803.9")),
        (".5", Decimal("0.5")),
        ("0", Decimal(0)),
        (7803.9, Decimal("7803.9")),
        (0.1 + 0.2, Decimal("0.3")),
        (12, Decimal(12)),
        ("１２，５００．５", Decimal("12500.5")),
    ],
)
def test_numbers_are_read_exactly(text: object, expected: Decimal) -> None:
    assert read_number(text) == expected


@pytest.mark.parametrize("text", ["1,5", "1,2345", "12,50", ",500", "1.5e3", "1 500", "１，５", "abc", "1.2.3"])
def test_ambiguous_or_malformed_numbers_are_refused(text: str) -> None:
    with pytest.raises(QuantityError) as caught:
        read_number(text)
    assert caught.value.problem.code == "kernel.quantity.not_a_number"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN"), "nan", "-Infinity"])
def test_non_finite_values_are_refused(value: object) -> None:
    with pytest.raises(QuantityError):
        read_number(value)


def test_blank_is_none() -> None:
    assert read_number("") is None and read_number("   ") is None and read_number(None) is None


def test_weights_are_whole_kilograms_and_never_rounded() -> None:
    assert to_kg(Decimal("12500.5")) == 12_500_500
    assert to_kg(Decimal("0.001")) == 1
    assert to_kg(Decimal("1234"), "kg") == 1234
    with pytest.raises(QuantityError):
        to_kg(Decimal("0.0004"))
    with pytest.raises(QuantityError):
        to_kg(Decimal("12.5"), "kg")
    assert tonnes(7_803_900) == Decimal("7803.9") and tonnes(0) == 0 and tonnes(1) == Decimal("0.001")


def test_the_rate_on_its_target_is_exactly_the_target() -> None:
    # The case seen: 7803.9 / 10005.0 printed 77.9% and missed the 78% target.
    value = rate(to_kg(Decimal("7803.9")), to_kg(Decimal("10005.0")), 0)
    assert value == Fraction(78, 100)
    assert truncated_percent(value) == Decimal("78.0")
    assert meets(value, 0.78) and meets(value, Decimal("0.78"))
    assert not meets(value - Fraction(1, 10**9), 0.78)


def test_truncation_is_exact_and_never_rounds_up() -> None:
    assert truncated_percent(Fraction(80399, 100000)) == Decimal("80.3")
    assert truncated_percent(Fraction(804, 1000)) == Decimal("80.4")  # the 2028 target path
    assert truncated_percent(Fraction(2, 3), 2) == Decimal("66.66")
    assert truncated_percent(Fraction(0)) == Decimal("0.0")
    assert rate(5, 0, 0) is None


def test_a_stored_target_is_the_fraction_its_text_says() -> None:
    assert exact_fraction(0.78) == Fraction(78, 100)
    assert exact_fraction(0.1 + 0.7) != Fraction(8, 10)  # 0.7999999999999999 is not 0.8: noise is not erased here
