"""Capacity planner for one node pool (ALLOCATION_SPEC.md §9).

Given hourly demand D_h (h = 1..H) in units of the pool's shape (e.g. vCPU with its share of
memory), choose how much capacity to buy through each purchase option:

=================  ==========  ===============================================================
option             price       rule
=================  ==========  ===============================================================
reserved           r           one level R for every hour, paid whether used or not
on_demand          o           any amount per hour, at most ``cap`` units (``None``: no cap)
spot               s           at most ``spot_eligible_h`` units in hour h
serverless         e           any amount per hour, no cap
=================  ==========  ===============================================================

and minimise ``r·R·H + Σ_h (o·O_h + s·S_h + e·E_h)`` subject to ``R + O_h + S_h + E_h ≥ D_h``,
``O_h ≤ cap``, ``S_h ≤ spot_eligible_h`` and everything ≥ 0. Every option but ``on_demand`` may be
missing. Prices are money per unit-hour; ``reserved`` may be given as an upfront payment per unit
amortised over its term (see :class:`PlanOptions`).

Spot eligibility: when the demand has no ``spot_eligible`` series, no hour is spot-eligible unless
the options give ``spot.eligible_fraction`` (then ``spot_eligible_h = fraction · D_h``). An explicit
series always wins over the fraction. Spot is never assumed: interruption tolerance is a property of
the workload that the planner cannot guess.

The solver is exact and needs no LP (numbered steps in :func:`_optimal_reserved`):

1. For a fixed R the hours decouple. Hour h must cover the residual ``x_h = max(D_h − R, 0)``; the
   cheapest way is a greedy fill by ascending price, each option up to its capacity in that hour.
   Its cost ``f_h(x)`` is convex piecewise linear in x, with marginal price equal to the price of
   the option being filled (``+∞`` beyond the total capacity when nothing is unbounded).
2. The total ``g(R) = r·R·H + Σ_h f_h(max(D_h − R, 0))`` is therefore convex piecewise linear in R.
   Its right slope is ``r·H − Σ_h m_h(R)`` where ``m_h`` is the marginal price in hour h, a step
   function that drops at ``R = D_h − B_{h,k}`` (B_{h,k}: capacity of the k cheapest options in hour
   h) by the price difference between consecutive options.
3. Sorting those ≤ 3·H drops by position (descending) and accumulating them gives the slope
   everywhere; the optimum is the first position where the accumulated drops exceed ``r·H``
   (a weighted quantile). With only reserved and on-demand this is exactly the break-even rule:
   reserve up to the level that demand reaches in more than ``r/o`` of the hours.

Ties in price are filled in the order on_demand, serverless, spot (the options that cannot be
interrupted first). Among several optimal R the smallest is chosen.

The planner is pure: numpy arrays and plain records in, a frozen :class:`Plan` out. The only I/O is
in :func:`read_demand_csv`, :meth:`PlanOptions.load` and :func:`cli_main`.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "Backtest",
    "Plan",
    "PlanError",
    "PlanOptions",
    "backtest",
    "bench_main",
    "cli_main",
    "plan",
    "read_demand_csv",
]

FloatArray = npt.NDArray[np.float64]


class PlanError(ValueError):
    """Bad planner input (options, demand file, arguments) or an infeasible plan.

    The message names the file, row and column or field at fault; the CLI prints it and exits 2.
    """


# Error messages (tests assert on these). CSV rows are counted as file lines: the header is row 1.
ERR_NO_FILE = "{source}: cannot read file: {reason}"
ERR_EMPTY_CSV = "{source}: file is empty (expected a header row with hour_start, demand)"
ERR_MISSING_COLUMN = "{source}: missing column {column!r}"
ERR_NO_ROWS = "{source}: no demand rows"
ERR_SHORT_ROW = "{source}: row {row}, column {column!r}: row has too few cells"
ERR_EMPTY_CELL = "{source}: row {row}, column {column!r}: empty value"
ERR_NOT_NUMBER = "{source}: row {row}, column {column!r}: not a number: {value!r}"
ERR_NOT_FINITE = "{source}: row {row}, column {column!r}: not a finite number: {value!r}"
ERR_NEGATIVE = "{source}: row {row}, column {column!r}: negative value: {value!r}"
ERR_BAD_TIME = "{source}: row {row}, column {column!r}: not an ISO 8601 time: {value!r}"
ERR_NOT_ON_HOUR = "{source}: row {row}, column {column!r}: not the start of a UTC hour: {value!r}"
ERR_DUPLICATE_HOUR = "{source}: row {row}, column {column!r}: hour {value!r} appears twice"
ERR_BAD_JSON = "{source}: not valid JSON: {reason}"
ERR_OPTIONS_NOT_OBJECT = "{source}: field {field!r}: must be a JSON object"
ERR_UNKNOWN_FIELD = "{source}: field {field!r}: unknown field (allowed: {allowed})"
ERR_MISSING_FIELD = "{source}: field {field!r}: required"
ERR_BAD_PRICE = "{source}: field {field!r}: must be a non-negative number, got {value!r}"
ERR_BAD_TERM = "{source}: field {field!r}: must be a positive number of hours, got {value!r}"
ERR_UPFRONT_NEEDS_TERM = "{source}: field {field!r}: 'upfront' and 'term_hours' go together"
ERR_BAD_FRACTION = "{source}: field {field!r}: must be a number between 0 and 1, got {value!r}"
ERR_BAD_DEMAND = "demand: must be a 1-D array of finite numbers >= 0 with at least one hour"
ERR_BAD_ELIGIBLE = "spot_eligible: must be a 1-D array of finite numbers >= 0, one per hour"
ERR_BAD_UNITS_PER_NODE = "units_per_node: must be a positive finite number, got {value!r}"
ERR_INFEASIBLE = (
    "infeasible: demand in hour index {hour} ({demand:g} units) exceeds on-demand cap + "
    "spot-eligible ({limit:g} units) and there is no reserved or serverless option"
)
ERR_BACKTEST_TOO_SHORT = "backtest: needs at least 2 hours of demand, got {hours}"
ERR_BAD_TRAIN_FRACTION = "backtest: train_fraction must be in (0, 1), got {value!r}"

NOTE_NO_SPOT_ELIGIBLE = (
    "spot option given but no hour is spot-eligible "
    "(no spot_eligible series and no spot.eligible_fraction)"
)
NOTE_ALL_ON_DEMAND_EXCEEDS_CAP = (
    "all_on_demand_cost ignores the on-demand cap: demand exceeds the cap in some hours"
)
NOTE_GAPS = "{missing} hour(s) between the first and last hour_start are absent and not counted"

# Fill order for equal prices: options that cannot be interrupted first.
_TIE_ORDER = {"on_demand": 0, "serverless": 1, "spot": 2}
# Relative tolerance for floating-point residue when a level sits exactly on a capacity edge.
_EPS = 1e-9


# --------------------------------------------------------------------------------------------
# Options


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class PlanOptions:
    """Purchase options for one pool. Prices are money per unit-hour of pool capacity.

    Fields:
        on_demand_hourly: o, price of one on-demand unit for one hour (required).
        on_demand_cap: most on-demand units usable in any hour (pool maximum or quota);
            ``None`` means no cap.
        reserved_hourly: recurring price of one reserved unit per hour; ``None`` when there is
            no reserved option.
        reserved_upfront: upfront payment per reserved unit for one term (0 when none).
        reserved_term_hours: term length in hours over which ``reserved_upfront`` is amortised;
            ``None`` when there is no upfront part.
        spot_hourly: s, price of one spot unit for one hour; ``None`` when there is no spot.
        spot_eligible_fraction: share of each hour's demand that tolerates interruption, used only
            when no per-hour ``spot_eligible`` series is given; ``None`` means 0.
        serverless_hourly: e, price of one serverless unit for one hour; ``None`` when absent.

    The effective reserved price r (:attr:`reserved_effective_hourly`) is
    ``reserved_hourly + reserved_upfront / reserved_term_hours``: the upfront payment spread evenly
    over the term, as if the commitment ran for the whole term. The plan prices the history at r
    even when the history is shorter than the term.

    JSON form (:meth:`from_dict`)::

        {"reserved": {"hourly": r} | {"upfront": U, "term_hours": T, "hourly": recurring},
         "on_demand": {"hourly": o, "cap": null},
         "spot": {"hourly": s, "eligible_fraction": f},
         "serverless": {"hourly": e}}
    """

    on_demand_hourly: float
    on_demand_cap: float | None = None
    reserved_hourly: float | None = None
    reserved_upfront: float = 0.0
    reserved_term_hours: float | None = None
    spot_hourly: float | None = None
    spot_eligible_fraction: float | None = None
    serverless_hourly: float | None = None

    def __post_init__(self) -> None:
        src = "PlanOptions"
        checks: list[tuple[str, float | None]] = [
            ("on_demand.hourly", self.on_demand_hourly),
            ("on_demand.cap", self.on_demand_cap),
            ("reserved.hourly", self.reserved_hourly),
            ("reserved.upfront", self.reserved_upfront),
            ("spot.hourly", self.spot_hourly),
            ("serverless.hourly", self.serverless_hourly),
        ]
        for name, value in checks:
            if value is not None and (
                not _is_number(value) or not math.isfinite(value) or value < 0
            ):
                raise PlanError(ERR_BAD_PRICE.format(source=src, field=name, value=value))
        term = self.reserved_term_hours
        if term is not None and (not _is_number(term) or not math.isfinite(term) or term <= 0):
            raise PlanError(
                ERR_BAD_TERM.format(source=src, field="reserved.term_hours", value=term)
            )
        if self.reserved_upfront > 0 and term is None:
            raise PlanError(ERR_UPFRONT_NEEDS_TERM.format(source=src, field="reserved"))
        frac = self.spot_eligible_fraction
        if frac is not None and (not _is_number(frac) or not 0 <= frac <= 1):
            raise PlanError(
                ERR_BAD_FRACTION.format(source=src, field="spot.eligible_fraction", value=frac)
            )

    @property
    def reserved_effective_hourly(self) -> float | None:
        """r: recurring hourly price plus the upfront payment amortised over the term."""
        if self.reserved_hourly is None:
            return None
        if self.reserved_term_hours is None:
            return float(self.reserved_hourly)
        return float(self.reserved_hourly + self.reserved_upfront / self.reserved_term_hours)

    @classmethod
    def from_dict(cls, d: object, source: str = "options.json") -> PlanOptions:
        """Build options from their JSON form, naming ``source`` and the field in every error.

        Rejects unknown fields, a missing ``on_demand``, and prices that are negative, not
        numbers (booleans and strings included) or not finite.
        """
        allowed = {
            "reserved": ("hourly", "upfront", "term_hours"),
            "on_demand": ("hourly", "cap"),
            "spot": ("hourly", "eligible_fraction"),
            "serverless": ("hourly",),
        }
        if not isinstance(d, Mapping):
            raise PlanError(ERR_OPTIONS_NOT_OBJECT.format(source=source, field="(top level)"))
        for key in d:
            if key not in allowed:
                raise PlanError(
                    ERR_UNKNOWN_FIELD.format(
                        source=source, field=key, allowed=", ".join(sorted(allowed))
                    )
                )
        if "on_demand" not in d:
            raise PlanError(ERR_MISSING_FIELD.format(source=source, field="on_demand"))
        parts: dict[str, Mapping[str, Any]] = {}
        for key, value in d.items():
            if not isinstance(value, Mapping):
                raise PlanError(ERR_OPTIONS_NOT_OBJECT.format(source=source, field=key))
            for sub in value:
                if sub not in allowed[key]:
                    raise PlanError(
                        ERR_UNKNOWN_FIELD.format(
                            source=source, field=f"{key}.{sub}", allowed=", ".join(allowed[key])
                        )
                    )
            if "hourly" not in value:
                raise PlanError(ERR_MISSING_FIELD.format(source=source, field=f"{key}.hourly"))
            parts[key] = value

        def price(key: str, sub: str, nullable: bool = False) -> float | None:
            part = parts.get(key)
            if part is None or sub not in part:
                return None
            value = part[sub]
            if value is None and nullable:
                return None
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise PlanError(
                    ERR_BAD_PRICE.format(source=source, field=f"{key}.{sub}", value=value)
                )
            return float(value)

        upfront = price("reserved", "upfront")
        term: float | None = None
        reserved = parts.get("reserved", {})
        if "term_hours" in reserved:
            raw = reserved["term_hours"]
            if not _is_number(raw) or not math.isfinite(raw) or raw <= 0:
                raise PlanError(
                    ERR_BAD_TERM.format(source=source, field="reserved.term_hours", value=raw)
                )
            term = float(raw)
        if ("upfront" in reserved) != ("term_hours" in reserved):
            raise PlanError(ERR_UPFRONT_NEEDS_TERM.format(source=source, field="reserved"))
        frac: float | None = None
        spot = parts.get("spot", {})
        if "eligible_fraction" in spot:
            raw = spot["eligible_fraction"]
            if not _is_number(raw) or not 0 <= raw <= 1:
                raise PlanError(
                    ERR_BAD_FRACTION.format(
                        source=source, field="spot.eligible_fraction", value=raw
                    )
                )
            frac = float(raw)
        on_demand = price("on_demand", "hourly")
        assert on_demand is not None  # presence checked above
        return cls(
            on_demand_hourly=on_demand,
            on_demand_cap=price("on_demand", "cap", nullable=True),
            reserved_hourly=price("reserved", "hourly"),
            reserved_upfront=upfront or 0.0,
            reserved_term_hours=term if upfront else None,
            spot_hourly=price("spot", "hourly"),
            spot_eligible_fraction=frac,
            serverless_hourly=price("serverless", "hourly"),
        )

    @classmethod
    def load(cls, path: str) -> PlanOptions:
        """Read ``options.json`` at ``path`` (errors name the file)."""
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise PlanError(ERR_NO_FILE.format(source=path, reason=exc.strerror or exc)) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(ERR_BAD_JSON.format(source=path, reason=exc)) from None
        return cls.from_dict(data, source=path)


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Plan:
    """The cheapest way to buy one pool's capacity over a history of H hours.

    Quantities are in pool units (e.g. vCPU) or unit-hours; money in the billing currency.

    Fields:
        hours: H, number of hours planned.
        reserved_units: R, reserved level (units) held in every hour.
        reserved_hourly_price: r, effective price per reserved unit-hour (upfront amortised);
            0 when there is no reserved option.
        reserved_hours: R·H, reserved unit-hours paid for.
        reserved_used_hours: Σ_h min(D_h, R), reserved unit-hours that carried demand.
        reserved_utilization: reserved_used_hours / reserved_hours (0 when R = 0).
        on_demand_hours, spot_hours, serverless_hours: Σ_h O_h, Σ_h S_h, Σ_h E_h (unit-hours).
        reserved_cost: r·R·H.
        on_demand_cost, spot_cost, serverless_cost: o·ΣO_h, s·ΣS_h, e·ΣE_h.
        total_cost: sum of the four costs above (the minimised objective).
        all_on_demand_cost: o·ΣD_h, the cost of buying everything on demand. When the on-demand
            cap makes that infeasible the cap is ignored and ``all_on_demand_exceeds_cap`` is true.
        all_on_demand_exceeds_cap: whether some D_h is above the on-demand cap.
        saving: all_on_demand_cost − total_cost.
        saving_pct: 100 · saving / all_on_demand_cost (percent; 0 when there is no demand).
        units_per_node: node size in pool units for whole-node rounding, or ``None``.
        reserved_nodes: whole nodes to reserve: floor or ceil of R / units_per_node, whichever
            costs less (fewer on a tie); ``None`` without units_per_node.
        whole_node_reserved_units: reserved_nodes · units_per_node, or ``None``.
        whole_node_total_cost: total cost with that whole-node reserved level and the best fill of
            the rest, or ``None``.
        notes: plain-language caveats about the inputs (e.g. no spot-eligible hours).
        demand_series, on_demand_series, spot_series, serverless_series: per-hour D_h, O_h, S_h,
            E_h (units), read-only arrays for charts; the reserved series is R in every hour.
    """

    hours: int
    reserved_units: float
    reserved_hourly_price: float
    reserved_hours: float
    reserved_used_hours: float
    reserved_utilization: float
    on_demand_hours: float
    spot_hours: float
    serverless_hours: float
    reserved_cost: float
    on_demand_cost: float
    spot_cost: float
    serverless_cost: float
    total_cost: float
    all_on_demand_cost: float
    all_on_demand_exceeds_cap: bool
    saving: float
    saving_pct: float
    units_per_node: float | None
    reserved_nodes: int | None
    whole_node_reserved_units: float | None
    whole_node_total_cost: float | None
    notes: tuple[str, ...]
    demand_series: FloatArray = field(repr=False, compare=False)
    on_demand_series: FloatArray = field(repr=False, compare=False)
    spot_series: FloatArray = field(repr=False, compare=False)
    serverless_series: FloatArray = field(repr=False, compare=False)

    def to_dict(self, series: bool = False) -> dict[str, Any]:
        """Plain JSON-ready dict of the figures; the hourly series only when ``series``."""
        out: dict[str, Any] = {
            "hours": self.hours,
            "reserved_units": self.reserved_units,
            "reserved_hourly_price": self.reserved_hourly_price,
            "reserved_hours": self.reserved_hours,
            "reserved_used_hours": self.reserved_used_hours,
            "reserved_utilization": self.reserved_utilization,
            "on_demand_hours": self.on_demand_hours,
            "spot_hours": self.spot_hours,
            "serverless_hours": self.serverless_hours,
            "reserved_cost": self.reserved_cost,
            "on_demand_cost": self.on_demand_cost,
            "spot_cost": self.spot_cost,
            "serverless_cost": self.serverless_cost,
            "total_cost": self.total_cost,
            "all_on_demand_cost": self.all_on_demand_cost,
            "all_on_demand_exceeds_cap": self.all_on_demand_exceeds_cap,
            "saving": self.saving,
            "saving_pct": self.saving_pct,
            "units_per_node": self.units_per_node,
            "reserved_nodes": self.reserved_nodes,
            "whole_node_reserved_units": self.whole_node_reserved_units,
            "whole_node_total_cost": self.whole_node_total_cost,
            "notes": list(self.notes),
        }
        if series:
            out["series"] = {
                "demand": self.demand_series.tolist(),
                "reserved": [self.reserved_units] * self.hours,
                "on_demand": self.on_demand_series.tolist(),
                "spot": self.spot_series.tolist(),
                "serverless": self.serverless_series.tolist(),
            }
        return out


@dataclass(frozen=True)
class Backtest:
    """A plan made on the first hours of a history and priced on the remaining hours.

    Money in the billing currency, quantities in pool units or unit-hours.

    Fields:
        train_hours, test_hours: hours used to plan and hours used to price (sum = H).
        reserved_units: R planned on the training hours.
        test_cost: cost of the test hours holding R and filling the rest optimally.
        test_all_on_demand_cost: o·ΣD_h over the test hours (on-demand cap ignored).
        test_saving: test_all_on_demand_cost − test_cost.
        test_saving_pct: 100 · test_saving / test_all_on_demand_cost (0 when no demand).
        test_optimal_reserved_units: R chosen with hindsight on the test hours alone.
        test_optimal_cost: cost of the test hours with that hindsight R.
        regret: test_cost − test_optimal_cost (≥ 0), what not knowing the future cost.
        test_unserved_hours: unit-hours of test demand that R plus the capped options could not
            cover (only possible with an on-demand cap and no serverless); they are not priced.
    """

    train_hours: int
    test_hours: int
    reserved_units: float
    test_cost: float
    test_all_on_demand_cost: float
    test_saving: float
    test_saving_pct: float
    test_optimal_reserved_units: float
    test_optimal_cost: float
    regret: float
    test_unserved_hours: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict of the figures."""
        return {
            "train_hours": self.train_hours,
            "test_hours": self.test_hours,
            "reserved_units": self.reserved_units,
            "test_cost": self.test_cost,
            "test_all_on_demand_cost": self.test_all_on_demand_cost,
            "test_saving": self.test_saving,
            "test_saving_pct": self.test_saving_pct,
            "test_optimal_reserved_units": self.test_optimal_reserved_units,
            "test_optimal_cost": self.test_optimal_cost,
            "regret": self.regret,
            "test_unserved_hours": self.test_unserved_hours,
        }


# --------------------------------------------------------------------------------------------
# Solver


@dataclass(frozen=True)
class _Layer:
    """One flexible option in fill order: price per unit-hour and capacity per hour."""

    name: str
    price: float
    cap: FloatArray | None  # None: unbounded


@dataclass(frozen=True)
class _Fill:
    """Per-hour amounts of each flexible option for one reserved level R."""

    amounts: dict[str, FloatArray]
    cost: float  # flexible options only (reserved excluded)
    unserved: FloatArray  # demand no option could take (only with capped options)


def _as_demand(demand: object) -> FloatArray:
    arr = np.asarray(demand, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise PlanError(ERR_BAD_DEMAND)
    return arr


def _eligible(demand: FloatArray, options: PlanOptions, spot_eligible: object | None) -> FloatArray:
    if spot_eligible is not None:
        arr = np.asarray(spot_eligible, dtype=np.float64)
        if arr.shape != demand.shape or not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise PlanError(ERR_BAD_ELIGIBLE)
        return arr
    if options.spot_eligible_fraction is not None:
        return demand * options.spot_eligible_fraction
    return np.zeros_like(demand)


def _layers(options: PlanOptions, eligible: FloatArray) -> list[_Layer]:
    """Flexible options sorted by price (ties: on_demand, serverless, spot)."""
    n = eligible.size
    layers = [
        _Layer(
            "on_demand",
            options.on_demand_hourly,
            None if options.on_demand_cap is None else np.full(n, options.on_demand_cap),
        )
    ]
    if options.spot_hourly is not None:
        layers.append(_Layer("spot", options.spot_hourly, eligible))
    if options.serverless_hourly is not None:
        layers.append(_Layer("serverless", options.serverless_hourly, None))
    return sorted(layers, key=lambda layer: (layer.price, _TIE_ORDER[layer.name]))


def _flexible_capacity(layers: Sequence[_Layer], n: int) -> FloatArray | None:
    """Per-hour capacity of all flexible options together; None if one is unbounded."""
    total = np.zeros(n)
    for layer in layers:
        if layer.cap is None:
            return None
        total = total + layer.cap
    return total


def _lower_bound(demand: FloatArray, layers: Sequence[_Layer]) -> float:
    """Smallest feasible R: what the capped options cannot cover in the worst hour."""
    capacity = _flexible_capacity(layers, demand.size)
    if capacity is None:
        return 0.0
    return max(0.0, float(np.max(demand - capacity)))


def _optimal_reserved(demand: FloatArray, layers: Sequence[_Layer], r: float) -> float:
    """Smallest R minimising g(R) = r·R·H + Σ_h f_h(max(D_h − R, 0)); see the module docstring.

    1. For each hour, the marginal price m_h(R) of the last unit filled drops by
       (p_k − p_{k−1}) as R rises past D_h − B_{h,k−1} (p_0 = 0, B_{h,0} = 0): one "drop" event
       per option per hour, cut after the first unbounded option.
    2. The right slope of g at R is r·H − (sum of drops at positions > R).
    3. Sort drops by position, descending, and accumulate: the optimum is the position where the
       accumulated drops first exceed r·H (slope turns non-negative there), else 0.
    4. Clamp to the feasibility bound (capped options only) and to 0.
    """
    n = demand.size
    positions: list[FloatArray] = []
    weights: list[FloatArray] = []
    covered = np.zeros(n)
    previous = 0.0
    for layer in layers:
        positions.append(demand - covered)
        weights.append(np.full(n, layer.price - previous))
        previous = layer.price
        if layer.cap is None:
            break
        covered = covered + layer.cap
    pos = np.concatenate(positions)
    wgt = np.concatenate(weights)
    keep = wgt > 0
    pos, wgt = pos[keep], wgt[keep]
    order = np.argsort(-pos, kind="stable")
    accumulated = np.cumsum(wgt[order])
    j = int(np.searchsorted(accumulated, r * n, side="right"))
    level = float(pos[order][j]) if j < accumulated.size else 0.0
    return max(level, _lower_bound(demand, layers), 0.0)


def _fill(demand: FloatArray, level: float, layers: Sequence[_Layer]) -> _Fill:
    """Greedy fill of max(D_h − R, 0) by ascending price, each option up to its capacity."""
    residual = np.maximum(demand - level, 0.0)
    amounts: dict[str, FloatArray] = {}
    cost = 0.0
    for layer in layers:
        take = residual if layer.cap is None else np.minimum(residual, layer.cap)
        amounts[layer.name] = take
        cost += layer.price * float(take.sum())
        residual = residual - take
    # A level sitting exactly on a capacity edge can leave a few ulps of residue: not unserved.
    scale = max(1.0, float(demand.max(initial=0.0)))
    residual = np.where(residual <= _EPS * scale, 0.0, residual)
    return _Fill(amounts, cost, residual)


def _level_cost(demand: FloatArray, level: float, layers: Sequence[_Layer], r: float) -> float:
    """g(R): total cost at reserved level R, +inf if R leaves demand unserved."""
    filled = _fill(demand, level, layers)
    if np.any(filled.unserved > 0):
        return math.inf
    return r * level * demand.size + filled.cost


def _whole_nodes(
    demand: FloatArray, level: float, layers: Sequence[_Layer], r: float, units_per_node: float
) -> tuple[int, float]:
    """Best of floor/ceil(R / units_per_node) by actual cost; fewer nodes on a tie.

    g is convex in R, so the better of the two integer neighbours of the continuous optimum is
    the best whole-node level overall.
    """
    ratio = level / units_per_node
    nearest = round(ratio)
    if abs(ratio - nearest) <= _EPS * max(1.0, ratio):
        ratio = float(nearest)
    best: tuple[int, float] | None = None
    for nodes in sorted({math.floor(ratio), math.ceil(ratio)}):
        cost = _level_cost(demand, nodes * units_per_node, layers, r)
        if best is None or cost < best[1]:
            best = (nodes, cost)
    assert best is not None and math.isfinite(best[1])  # ceil(R/u)·u ≥ R is always feasible
    return best


def _readonly(arr: FloatArray) -> FloatArray:
    out = np.array(arr, dtype=np.float64)
    out.setflags(write=False)
    return out


def plan(
    demand: npt.ArrayLike,
    options: PlanOptions,
    spot_eligible: npt.ArrayLike | None = None,
    units_per_node: float | None = None,
) -> Plan:
    """Cheapest purchase plan for hourly ``demand`` (pool units, one value per hour).

    ``spot_eligible`` (units per hour, same length) bounds spot in each hour; without it, spot
    eligibility is ``options.spot_eligible_fraction · demand`` or zero when that is unset too.
    ``units_per_node`` (pool units per node) adds whole-node rounding beside the exact plan.
    Raises :class:`PlanError` for bad input, or when the capped on-demand and spot options cannot
    cover some hour and there is neither reserved nor serverless capacity to make up the rest.
    """
    d = _as_demand(demand)
    if units_per_node is not None and (
        not _is_number(units_per_node) or not math.isfinite(units_per_node) or units_per_node <= 0
    ):
        raise PlanError(ERR_BAD_UNITS_PER_NODE.format(value=units_per_node))
    eligible = _eligible(d, options, spot_eligible)
    layers = _layers(options, eligible)
    r = options.reserved_effective_hourly
    n = d.size
    notes: list[str] = []
    if options.spot_hourly is not None and spot_eligible is None and not np.any(eligible > 0):
        notes.append(NOTE_NO_SPOT_ELIGIBLE)

    if r is None:
        level = 0.0
        capacity = _flexible_capacity(layers, n)
        if capacity is not None and np.any(d > capacity * (1 + _EPS) + _EPS):
            hour = int(np.argmax(d - capacity))
            raise PlanError(ERR_INFEASIBLE.format(hour=hour, demand=d[hour], limit=capacity[hour]))
    else:
        level = _optimal_reserved(d, layers, r)
    rate = r or 0.0
    filled = _fill(d, level, layers)
    zeros = np.zeros(n)
    on_demand = filled.amounts.get("on_demand", zeros)
    spot = filled.amounts.get("spot", zeros)
    serverless = filled.amounts.get("serverless", zeros)

    reserved_hours = level * n
    reserved_used = float(np.minimum(d, level).sum())
    reserved_cost = rate * reserved_hours
    on_demand_cost = options.on_demand_hourly * float(on_demand.sum())
    spot_cost = (options.spot_hourly or 0.0) * float(spot.sum())
    serverless_cost = (options.serverless_hourly or 0.0) * float(serverless.sum())
    total = reserved_cost + on_demand_cost + spot_cost + serverless_cost
    all_on_demand = options.on_demand_hourly * float(d.sum())
    exceeds_cap = options.on_demand_cap is not None and bool(np.any(d > options.on_demand_cap))
    if exceeds_cap:
        notes.append(NOTE_ALL_ON_DEMAND_EXCEEDS_CAP)
    saving = all_on_demand - total

    nodes: int | None = None
    node_units: float | None = None
    node_cost: float | None = None
    if units_per_node is not None:
        if r is None:
            nodes, node_units, node_cost = 0, 0.0, total
        else:
            nodes, node_cost = _whole_nodes(d, level, layers, r, float(units_per_node))
            node_units = nodes * float(units_per_node)

    return Plan(
        hours=n,
        reserved_units=level,
        reserved_hourly_price=rate,
        reserved_hours=reserved_hours,
        reserved_used_hours=reserved_used,
        reserved_utilization=reserved_used / reserved_hours if reserved_hours > 0 else 0.0,
        on_demand_hours=float(on_demand.sum()),
        spot_hours=float(spot.sum()),
        serverless_hours=float(serverless.sum()),
        reserved_cost=reserved_cost,
        on_demand_cost=on_demand_cost,
        spot_cost=spot_cost,
        serverless_cost=serverless_cost,
        total_cost=total,
        all_on_demand_cost=all_on_demand,
        all_on_demand_exceeds_cap=exceeds_cap,
        saving=saving,
        saving_pct=100.0 * saving / all_on_demand if all_on_demand > 0 else 0.0,
        units_per_node=None if units_per_node is None else float(units_per_node),
        reserved_nodes=nodes,
        whole_node_reserved_units=node_units,
        whole_node_total_cost=node_cost,
        notes=tuple(notes),
        demand_series=_readonly(d),
        on_demand_series=_readonly(on_demand),
        spot_series=_readonly(spot),
        serverless_series=_readonly(serverless),
    )


def backtest(
    demand: npt.ArrayLike,
    options: PlanOptions,
    train_fraction: float = 0.75,
    spot_eligible: npt.ArrayLike | None = None,
) -> Backtest:
    """Plan R on the first ``train_fraction`` of the hours and price it on the rest.

    The split is at ``floor(H · train_fraction)`` hours, kept within [1, H − 1]. On the test hours
    R is held and the rest is filled optimally; the result is compared with buying the test hours
    all on demand and with the hindsight-optimal plan for the test hours alone.
    """
    d = _as_demand(demand)
    if not _is_number(train_fraction) or not 0 < train_fraction < 1:
        raise PlanError(ERR_BAD_TRAIN_FRACTION.format(value=train_fraction))
    n = d.size
    if n < 2:
        raise PlanError(ERR_BACKTEST_TOO_SHORT.format(hours=n))
    eligible = _eligible(d, options, spot_eligible)
    split = min(max(math.floor(n * train_fraction), 1), n - 1)
    train = plan(d[:split], options, eligible[:split])
    test_d, test_e = d[split:], eligible[split:]
    test_layers = _layers(options, test_e)
    filled = _fill(test_d, train.reserved_units, test_layers)
    test_cost = train.reserved_hourly_price * train.reserved_units * test_d.size + filled.cost
    hindsight = plan(test_d, options, test_e)
    all_on_demand = options.on_demand_hourly * float(test_d.sum())
    saving = all_on_demand - test_cost
    return Backtest(
        train_hours=split,
        test_hours=n - split,
        reserved_units=train.reserved_units,
        test_cost=test_cost,
        test_all_on_demand_cost=all_on_demand,
        test_saving=saving,
        test_saving_pct=100.0 * saving / all_on_demand if all_on_demand > 0 else 0.0,
        test_optimal_reserved_units=hindsight.reserved_units,
        test_optimal_cost=hindsight.total_cost,
        regret=test_cost - hindsight.total_cost,
        test_unserved_hours=float(filled.unserved.sum()),
    )


# --------------------------------------------------------------------------------------------
# Input files


def _parse_hour(source: str, row: int, column: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise PlanError(
            ERR_BAD_TIME.format(source=source, row=row, column=column, value=value)
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment.minute or moment.second or moment.microsecond:
        raise PlanError(ERR_NOT_ON_HOUR.format(source=source, row=row, column=column, value=value))
    return moment


def _parse_quantity(source: str, row: int, column: str, value: str, empty: float | None) -> float:
    text = value.strip()
    if not text:
        if empty is None:
            raise PlanError(ERR_EMPTY_CELL.format(source=source, row=row, column=column))
        return empty
    try:
        number = float(text)
    except ValueError:
        raise PlanError(
            ERR_NOT_NUMBER.format(source=source, row=row, column=column, value=value)
        ) from None
    if not math.isfinite(number):
        raise PlanError(ERR_NOT_FINITE.format(source=source, row=row, column=column, value=value))
    if number < 0:
        raise PlanError(ERR_NEGATIVE.format(source=source, row=row, column=column, value=value))
    return number


def read_demand_csv(
    path: str,
) -> tuple[npt.NDArray[np.datetime64], FloatArray, FloatArray | None]:
    """Read ``demand.csv``: columns ``hour_start, demand`` and optional ``spot_eligible``.

    Columns are found by name; extra columns are ignored. ``hour_start`` is ISO 8601 (naive times
    are UTC) at the start of a clock hour; each hour may appear once; rows are returned sorted by
    time. ``demand`` and ``spot_eligible`` are finite numbers ≥ 0 in pool units; an empty
    ``spot_eligible`` cell means "not known" and counts as 0 (nothing assumed interruptible).

    Returns ``(hour_starts, demand, spot_eligible)`` with hour_starts as ``datetime64[s]`` (UTC)
    and spot_eligible ``None`` when the column is absent. Errors name the file, row (file line,
    header = 1) and column.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise PlanError(ERR_NO_FILE.format(source=path, reason=exc.strerror or exc)) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PlanError(ERR_NO_FILE.format(source=path, reason=exc)) from None
    if not rows:
        raise PlanError(ERR_EMPTY_CSV.format(source=path))
    header = [name.strip() for name in rows[0]]
    for column in ("hour_start", "demand"):
        if column not in header:
            raise PlanError(ERR_MISSING_COLUMN.format(source=path, column=column))
    i_hour, i_demand = header.index("hour_start"), header.index("demand")
    i_spot = header.index("spot_eligible") if "spot_eligible" in header else None
    needed = max(i_hour, i_demand, -1 if i_spot is None else i_spot)

    hours: list[datetime] = []
    demand: list[float] = []
    eligible: list[float] = []
    first_row: dict[datetime, int] = {}
    for line, cells in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank line
        if len(cells) <= needed:
            missing = next(
                header[i] for i in (i_hour, i_demand, i_spot) if i is not None and i >= len(cells)
            )
            raise PlanError(ERR_SHORT_ROW.format(source=path, row=line, column=missing))
        raw_hour = cells[i_hour]
        if not raw_hour.strip():
            raise PlanError(ERR_EMPTY_CELL.format(source=path, row=line, column="hour_start"))
        moment = _parse_hour(path, line, "hour_start", raw_hour)
        if moment in first_row:
            raise PlanError(
                ERR_DUPLICATE_HOUR.format(
                    source=path, row=line, column="hour_start", value=raw_hour
                )
            )
        first_row[moment] = line
        hours.append(moment)
        demand.append(_parse_quantity(path, line, "demand", cells[i_demand], None))
        if i_spot is not None:
            eligible.append(_parse_quantity(path, line, "spot_eligible", cells[i_spot], 0.0))
    if not hours:
        raise PlanError(ERR_NO_ROWS.format(source=path))

    stamps = np.array([int(m.timestamp()) for m in hours], dtype="datetime64[s]")
    order = np.argsort(stamps, kind="stable")
    spot = np.asarray(eligible, dtype=np.float64)[order] if i_spot is not None else None
    return stamps[order], np.asarray(demand, dtype=np.float64)[order], spot


# --------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m allocation plan",
        description="Plan reserved / on-demand / spot / serverless capacity for one node pool.",
    )
    parser.add_argument("--demand", required=True, help="CSV: hour_start, demand[, spot_eligible]")
    parser.add_argument("--options", required=True, help="JSON purchase options and prices")
    parser.add_argument("--out", required=True, help="where to write plan.json")
    parser.add_argument("--units-per-node", type=float, help="pool units per node (rounding)")
    parser.add_argument("--backtest", action="store_true", help="add a backtest (75%% / 25%%)")
    parser.add_argument("--series", action="store_true", help="include the hourly series")
    return parser


def _write_atomically(path: str, text: str) -> None:
    """Write to a temp file beside ``path`` and rename, so a failure leaves nothing behind."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".plan-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _run(args: argparse.Namespace) -> None:
    options = PlanOptions.load(args.options)
    hour_starts, demand, eligible = read_demand_csv(args.demand)
    result = plan(demand, options, eligible, args.units_per_node)
    out = result.to_dict(series=args.series)
    steps = np.diff(hour_starts).astype(np.int64)
    missing = int(np.sum(steps // 3600 - 1)) if steps.size else 0
    if missing:
        out["notes"].append(NOTE_GAPS.format(missing=missing))
    out["first_hour_start"] = str(hour_starts[0]) + "Z"
    out["last_hour_start"] = str(hour_starts[-1]) + "Z"
    if args.series:
        out["series"]["hour_start"] = [str(t) + "Z" for t in hour_starts]
    if args.backtest:
        out["backtest"] = backtest(demand, options, spot_eligible=eligible).to_dict()
    text = json.dumps(out, indent=2, allow_nan=False) + "\n"
    try:
        _write_atomically(args.out, text)
    except OSError as exc:
        raise PlanError(ERR_NO_FILE.format(source=args.out, reason=exc.strerror or exc)) from None


def cli_main(argv: Sequence[str]) -> int:
    """``python -m allocation plan …``: returns 0 on success, 2 on bad input (message on stderr).

    Nothing is written on error.
    """
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse has printed usage and the error already
        return exc.code if isinstance(exc.code, int) else 2
    try:
        _run(args)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------------------------
# Benchmark


def _synthetic_pool(rng: np.random.Generator, hours: int) -> tuple[FloatArray, PlanOptions]:
    """Hourly demand with daily and weekly cycles and noise, plus random prices."""
    t = np.arange(hours, dtype=np.float64)
    base = rng.uniform(20, 200)
    daily = rng.uniform(0.1, 0.5) * base * np.sin(2 * np.pi * (t - rng.uniform(0, 24)) / 24)
    weekly = rng.uniform(0.0, 0.3) * base * np.sin(2 * np.pi * t / 168)
    noise = rng.normal(0, 0.05 * base, hours)
    spikes = rng.random(hours) < 0.01
    demand = np.maximum(base + daily + weekly + noise + spikes * base, 0.0)
    o = rng.uniform(0.03, 0.06)
    options = PlanOptions(
        on_demand_hourly=o,
        on_demand_cap=float(np.quantile(demand, 0.9)),
        reserved_hourly=o * rng.uniform(0.5, 0.75),
        spot_hourly=o * rng.uniform(0.2, 0.4),
        spot_eligible_fraction=rng.uniform(0.1, 0.5),
        serverless_hourly=o * rng.uniform(1.1, 1.6),
    )
    return demand, options


def bench_main(pools: int = 20, days: int = 90, seed: int = 0) -> None:
    """Time :func:`plan` (with whole-node rounding) on synthetic pools; print mean and max."""
    rng = np.random.default_rng(seed)
    hours = days * 24
    cases = [_synthetic_pool(rng, hours) for _ in range(pools)]
    plan(cases[0][0], cases[0][1], units_per_node=8.0)  # warm-up
    times: list[float] = []
    for demand, options in cases:
        start = time.perf_counter()
        plan(demand, options, units_per_node=8.0)
        times.append(time.perf_counter() - start)
    ms = np.array(times) * 1000
    print(
        f"plan: {pools} pools x {hours} hours: mean {ms.mean():.2f} ms, max {ms.max():.2f} ms "
        "per pool"
    )
