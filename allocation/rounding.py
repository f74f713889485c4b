"""Largest-remainder rounding of money shown to the cent (ALLOCATION_SPEC.md §7)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext

from allocation.errors import E_ROUNDING_NOT_FINITE, AllocationError

__all__ = ["round_largest_remainder"]


def round_largest_remainder(amounts: Sequence[float], places: int = 2) -> list[Decimal]:
    """Round ``amounts`` to ``places`` decimals so the parts add up to the rounded total.

    Steps:
      1. each amount is taken at its shortest decimal form (``repr``), so 0.1 means 0.1;
      2. target = Σ amounts rounded half-to-even to ``places``;
      3. every part is rounded down (towards −∞) to a multiple of the unit 10^-places;
      4. the missing units, (target − Σ floors) / unit — an integer from 0 to n — go one each
         to the parts with the largest remainders (ties: earlier part first).

    Every part ends up at one of its two neighbouring multiples of the unit (never more than
    one unit from its amount), an amount that is already a multiple stays exact, and
    Σ result = target exactly.

    Negatives (credits, refunds) are handled by the same rule: flooring goes towards −∞, so a
    negative part's remainder is still in [0, unit) and it is rounded to one of its two
    neighbours, e.g. [-0.005, -0.005] → target -0.01 → [0.00, -0.01]. The rule is not symmetric
    under a change of sign in tie cases. Raises ``AllocationError`` for NaN or infinity.
    """
    unit = Decimal(1).scaleb(-places)
    values: list[Decimal] = []
    for i, amount in enumerate(amounts):
        if not math.isfinite(amount):
            raise AllocationError(E_ROUNDING_NOT_FINITE.format(index=i, value=amount))
        values.append(Decimal(repr(float(amount))))
    with localcontext() as ctx:
        ctx.prec = 60
        target = sum(values, Decimal(0)).quantize(unit, rounding=ROUND_HALF_EVEN)
        floors = [v.quantize(unit, rounding=ROUND_FLOOR) for v in values]
        remainders = [v - f for v, f in zip(values, floors, strict=True)]
        missing = int((target - sum(floors, Decimal(0))) / unit)
        order = sorted(range(len(values)), key=lambda i: (-remainders[i], i))
        for i in order[:missing]:
            floors[i] += unit
    return floors
