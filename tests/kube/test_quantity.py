"""Kubernetes quantities parse exactly as k8s.io/apimachinery resource.ParseQuantity does."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from costapp.kube.quantity import QuantityError, parse_quantity

CASES = [
    ("0", 0.0),
    ("250m", 0.25),
    ("1.5", 1.5),
    ("2Gi", 2 * 2**30),
    ("129e6", 129e6),
    ("129E6", 129e6),
    ("1e-3", 0.001),
    ("12e+3", 12000.0),
    ("1k", 1000.0),
    ("1Ki", 1024.0),
    ("1M", 1e6),
    ("1Mi", 2**20),
    ("1G", 1e9),
    ("1T", 1e12),
    ("1P", 1e15),
    ("1E", 1e18),
    ("1Ti", 2**40),
    ("1Pi", 2**50),
    ("7Ei", 7 * 2**60),
    ("100n", 1e-7),
    ("500u", 5e-4),
    ("7910m", 7.91),
    ("32144656Ki", 32144656 * 1024),
    ("1.5Gi", 1.5 * 2**30),
    ("-1.5Ki", -1536.0),
    ("+3", 3.0),
    (".5", 0.5),
    ("1.", 1.0),
    ("007", 7.0),
    ("0.1n", 1e-9),  # finer than nano rounds up, away from zero
    ("1.5n", 2e-9),
    ("-0.1n", -1e-9),
    ("1e-20", 1e-9),
    ("8Ei", float(2**63 - 1)),  # binary SI caps at 2^63-1
    ("18446744073709551616", 18446744073709551616.0),  # decimal does not cap
    ("388954406n", 0.388954406),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_quantity_forms_parse_to_their_value(text: str, expected: float) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "text", ["", " 1", "1 ", "1i", "1e", "1KiB", "aoeu", "1.1.M", "--1", "1m2", "Ei", "1,5", "١"]
)
def test_malformed_quantities_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def _exact(sign: str, whole: str, frac: str, suffix: str) -> float:
    """Reference: Fraction arithmetic, nano round-up away from zero, binary cap."""
    value = Fraction(int(whole + frac or "0"), 10 ** len(frac))
    binary = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
    decimal = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
    if suffix in binary:
        value *= 2 ** binary[suffix]
    elif suffix in decimal:
        value *= Fraction(10) ** decimal[suffix]
    else:
        value *= Fraction(10) ** int(suffix[1:])
    nanos = math.ceil(value * 10**9)
    if suffix in binary:
        nanos = min(nanos, (2**63 - 1) * 10**9)
    result = nanos / 10**9
    return -result if sign == "-" and result else result


@given(
    sign=st.sampled_from(["", "+", "-"]),
    whole=st.text("0123456789", min_size=1, max_size=12),
    frac=st.text("0123456789", max_size=12),
    suffix=st.sampled_from(
        ["", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
        + [f"e{e}" for e in (-12, -3, 0, 3, 9, 18)]
        + ["E-2", "e+6"]
    ),
)
def test_any_well_formed_quantity_parses_to_the_exact_value(
    sign: str, whole: str, frac: str, suffix: str
) -> None:
    text = f"{sign}{whole}.{frac}{suffix}" if frac else f"{sign}{whole}{suffix}"
    assert parse_quantity(text) == _exact(sign, whole, frac, suffix)


@given(nanos=st.integers(min_value=0, max_value=10**21))
def test_canonical_forms_round_trip(nanos: int) -> None:
    """A value written the way the API server canonicalises it parses back to itself."""
    value = nanos / 10**9
    for scale, suffix in ((1, "n"), (10**3, "u"), (10**6, "m"), (10**9, ""), (10**12, "k")):
        if nanos % scale == 0:
            assert parse_quantity(f"{nanos // scale}{suffix}") == value
    if nanos % 10**9 == 0 and (nanos // 10**9) % 1024 == 0:
        assert parse_quantity(f"{nanos // 10**9 // 1024}Ki") == value
