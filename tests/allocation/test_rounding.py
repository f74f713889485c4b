"""§7: largest-remainder rounding so rounded lines add up to the rounded total."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation import AllocationError, round_largest_remainder


def test_thirds_add_up_to_the_total() -> None:
    assert round_largest_remainder([1 / 3, 1 / 3, 1 / 3]) == [
        Decimal("0.34"),
        Decimal("0.33"),
        Decimal("0.33"),
    ]


def test_largest_remainder_gets_the_missing_cent() -> None:
    assert round_largest_remainder([0.333, 0.333, 0.334]) == [
        Decimal("0.33"),
        Decimal("0.33"),
        Decimal("0.34"),
    ]


def test_exact_amounts_stay_exact() -> None:
    assert round_largest_remainder([1.25, 2.5, 0.0]) == [
        Decimal("1.25"),
        Decimal("2.50"),
        Decimal("0.00"),
    ]


def test_negative_amounts_round_to_a_neighbour_and_still_add_up() -> None:
    assert round_largest_remainder([-0.005, -0.005]) == [Decimal("0.00"), Decimal("-0.01")]
    assert sum(round_largest_remainder([10.004, -3.333, -3.333])) == Decimal("3.34")


def test_other_places() -> None:
    assert round_largest_remainder([0.5, 0.5, 0.5], places=0) == [
        Decimal("1"),
        Decimal("1"),
        Decimal("0"),
    ]


def test_empty_and_non_finite() -> None:
    assert round_largest_remainder([]) == []
    with pytest.raises(AllocationError, match="amount 1 is not a finite number"):
        round_largest_remainder([1.0, float("nan")])


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), max_size=30))
def test_parts_sum_to_the_rounded_total_and_stay_within_a_cent(amounts: list[float]) -> None:
    rounded = round_largest_remainder(amounts)
    exact = [Decimal(repr(a)) for a in amounts]
    assert sum(rounded, Decimal(0)) == sum(exact, Decimal(0)).quantize(Decimal("0.01"))
    for r, a in zip(rounded, exact, strict=True):
        assert abs(r - a) < Decimal("0.01")
