"""Capacity planner (ALLOCATION_SPEC.md §9): exactness against an LP, rules, files and the CLI."""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linprog

from allocation.plan import (
    ERR_BAD_PRICE,
    ERR_DUPLICATE_HOUR,
    ERR_EMPTY_CELL,
    ERR_INFEASIBLE,
    ERR_MISSING_COLUMN,
    ERR_MISSING_FIELD,
    ERR_NEGATIVE,
    ERR_NOT_FINITE,
    ERR_NOT_NUMBER,
    ERR_UNKNOWN_FIELD,
    NOTE_ALL_ON_DEMAND_EXCEEDS_CAP,
    NOTE_NO_SPOT_ELIGIBLE,
    Plan,
    PlanError,
    PlanOptions,
    backtest,
    cli_main,
    plan,
    read_demand_csv,
)

REPO = Path(__file__).resolve().parents[2]
# The module itself (allocation/__init__ may re-export a function named ``plan``).
plan_module = importlib.import_module("allocation.plan")


# ---------------------------------------------------------------------------------------------
# Reference LP


def lp_optimum(
    demand: np.ndarray,
    options: PlanOptions,
    eligible: np.ndarray | None = None,
    fixed_reserved: float | None = None,
) -> float:
    """Solve the §9 LP with HiGHS: variables [R, O_1..O_H, S_1..S_H, E_1..E_H] (present ones).

    With ``fixed_reserved`` R is pinned to that level; an infeasible LP returns +inf.
    """
    n = demand.size
    if eligible is None:
        eligible = np.zeros(n)
    r = options.reserved_effective_hourly
    cost = [np.array([r * n if r is not None else 0.0])]
    bounds: list[tuple[float, float | None]] = [(0, None if r is not None else 0)]
    if fixed_reserved is not None:
        bounds = [(fixed_reserved, fixed_reserved)]
    blocks = [sp.csr_matrix(-np.ones((n, 1)))]
    cost.append(np.full(n, options.on_demand_hourly))
    bounds += [(0, options.on_demand_cap)] * n
    blocks.append(-sp.identity(n, format="csr"))
    if options.spot_hourly is not None:
        cost.append(np.full(n, options.spot_hourly))
        bounds += [(0, float(x)) for x in eligible]
        blocks.append(-sp.identity(n, format="csr"))
    if options.serverless_hourly is not None:
        cost.append(np.full(n, options.serverless_hourly))
        bounds += [(0, None)] * n
        blocks.append(-sp.identity(n, format="csr"))
    res = linprog(
        np.concatenate(cost),
        A_ub=sp.hstack(blocks, format="csr"),
        b_ub=-demand,
        bounds=bounds,
        method="highs",
    )
    if res.status == 2 and fixed_reserved is not None:
        return math.inf
    assert res.status == 0, res.message
    return float(res.fun)


def random_case(
    rng: np.random.Generator,
) -> tuple[np.ndarray, PlanOptions, np.ndarray | None]:
    n = int(rng.integers(1, 201))
    shape = rng.integers(0, 3)
    if shape == 0:
        demand = rng.uniform(0, 100, n)
    elif shape == 1:  # integer demand: many ties
        demand = rng.integers(0, 10, n).astype(float)
    else:  # daily cycle with spikes
        t = np.arange(n)
        demand = np.maximum(
            50
            + 30 * np.sin(2 * np.pi * t / 24)
            + rng.normal(0, 5, n)
            + 80 * (rng.random(n) < 0.05),
            0,
        )
    o = float(rng.uniform(0.5, 2.0))
    reserved = float(o * rng.uniform(0.05, 0.99)) if rng.random() < 0.85 else None
    spot = float(o * rng.uniform(0.05, 0.99)) if rng.random() < 0.6 else None
    if rng.random() < 0.6:
        serverless: float | None = float(o * rng.uniform(0.5, 2.0))
    else:
        serverless = None
    cap: float | None = None
    if rng.random() < 0.5:
        cap = float(rng.uniform(0, 1.2) * demand.max())
    eligible = None
    if spot is not None and rng.random() < 0.8:
        eligible = demand * rng.uniform(0, 1, n) if rng.random() < 0.7 else rng.uniform(0, 40, n)
    # Without reserved or serverless a binding cap is infeasible; give that case a serverless.
    if reserved is None and serverless is None and cap is not None:
        serverless = float(o * 1.5)
    options = PlanOptions(
        on_demand_hourly=o,
        on_demand_cap=cap,
        reserved_hourly=reserved,
        spot_hourly=spot,
        serverless_hourly=serverless,
    )
    return demand, options, eligible


def check_consistent(result: Plan, demand: np.ndarray, options: PlanOptions) -> None:
    """Every hour is covered, caps hold, and the reported costs add up."""
    covered = (
        result.reserved_units
        + result.on_demand_series
        + result.spot_series
        + result.serverless_series
    )
    assert np.all(covered >= demand - 1e-9 * max(1.0, demand.max()))
    if options.on_demand_cap is not None:
        assert np.all(result.on_demand_series <= options.on_demand_cap + 1e-12)
    parts = result.reserved_cost + result.on_demand_cost + result.spot_cost + result.serverless_cost
    assert result.total_cost == pytest.approx(parts, rel=1e-12, abs=1e-12)
    assert result.saving == pytest.approx(result.all_on_demand_cost - result.total_cost)


# ---------------------------------------------------------------------------------------------
# Exactness


def test_plan_cost_equals_highs_lp_optimum_on_500_random_pools() -> None:
    rng = np.random.default_rng(20240611)
    for _ in range(500):
        demand, options, eligible = random_case(rng)
        result = plan(demand, options, eligible)
        expected = lp_optimum(demand, options, eligible)
        assert result.total_cost == pytest.approx(expected, rel=1e-6, abs=1e-9)
        check_consistent(result, demand, options)


@settings(max_examples=150, deadline=None)
@given(
    demand=st.lists(st.floats(0, 1000, allow_nan=False), min_size=1, max_size=60),
    o=st.floats(0.01, 10),
    r_ratio=st.floats(0.01, 1.5),
    s_ratio=st.one_of(st.none(), st.floats(0.0, 1.5)),
    e_ratio=st.one_of(st.none(), st.floats(0.0, 3.0)),
    cap=st.one_of(st.none(), st.floats(0, 1000)),
    eligible_fraction=st.floats(0, 1),
)
def test_plan_cost_equals_lp_optimum_for_any_prices(
    demand: list[float],
    o: float,
    r_ratio: float,
    s_ratio: float | None,
    e_ratio: float | None,
    cap: float | None,
    eligible_fraction: float,
) -> None:
    d = np.array(demand)
    options = PlanOptions(
        on_demand_hourly=o,
        on_demand_cap=cap,
        reserved_hourly=o * r_ratio,
        spot_hourly=None if s_ratio is None else o * s_ratio,
        spot_eligible_fraction=eligible_fraction,
        serverless_hourly=None if e_ratio is None else o * e_ratio,
    )
    result = plan(d, options)
    expected = lp_optimum(d, options, d * eligible_fraction)
    assert result.total_cost == pytest.approx(expected, rel=1e-6, abs=1e-6)
    check_consistent(result, d, options)


@pytest.mark.parametrize("seed", range(20))
def test_two_options_follow_the_break_even_quantile_rule(seed: int) -> None:
    """Reserve the largest level that demand reaches in at least r/o of the hours."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    demand = rng.uniform(0, 100, n)  # distinct values
    o = 1.0
    r = float(rng.uniform(0.01, 0.99))
    while math.isclose(r * n, round(r * n), abs_tol=1e-6):  # avoid the tie r·H integer
        r = float(rng.uniform(0.01, 0.99))
    result = plan(demand, PlanOptions(on_demand_hourly=o, reserved_hourly=r))
    ranked = np.sort(demand)[::-1]
    k = math.ceil(r / o * n)  # hours demand must reach the level in
    expected = float(ranked[k - 1]) if k <= n else 0.0
    assert result.reserved_units == expected
    assert np.mean(demand >= result.reserved_units) >= r / o


def test_two_options_with_tied_break_even_still_reach_optimal_cost() -> None:
    demand = np.array([4.0, 3.0, 2.0, 1.0])
    options = PlanOptions(on_demand_hourly=1.0, reserved_hourly=0.5)  # r·H/o = 2 exactly
    result = plan(demand, options)
    # Any R in [2, 3] costs the same: 0.5·4·R + (4 − R) + max(3 − R, 0) → 7 at R ∈ [2, 3].
    assert 2.0 <= result.reserved_units <= 3.0
    assert result.total_cost == pytest.approx(lp_optimum(demand, options))


# ---------------------------------------------------------------------------------------------
# Hand examples


def test_flat_demand_is_all_reserved() -> None:
    result = plan(np.full(48, 10.0), PlanOptions(on_demand_hourly=1.0, reserved_hourly=0.6))
    assert result.reserved_units == 10.0
    assert result.on_demand_hours == 0.0
    assert result.total_cost == pytest.approx(0.6 * 10 * 48)
    assert result.all_on_demand_cost == pytest.approx(480.0)
    assert result.saving == pytest.approx(480.0 - 288.0)
    assert result.saving_pct == pytest.approx(40.0)
    assert result.reserved_utilization == pytest.approx(1.0)


def test_single_spike_goes_on_demand_above_the_base() -> None:
    demand = np.full(100, 5.0)
    demand[50] = 25.0
    result = plan(demand, PlanOptions(on_demand_hourly=1.0, reserved_hourly=0.5))
    assert result.reserved_units == 5.0
    assert result.on_demand_hours == pytest.approx(20.0)
    assert result.on_demand_series[50] == pytest.approx(20.0)
    assert result.total_cost == pytest.approx(0.5 * 5 * 100 + 20.0)


def test_on_demand_cap_forces_the_excess_onto_serverless() -> None:
    demand = np.array([0.0, 10.0, 30.0, 0.0])
    options = PlanOptions(on_demand_hourly=1.0, on_demand_cap=12.0, serverless_hourly=1.5)
    result = plan(demand, options)
    assert result.reserved_units == 0.0
    assert result.on_demand_series.tolist() == [0.0, 10.0, 12.0, 0.0]
    assert result.serverless_series.tolist() == [0.0, 0.0, 18.0, 0.0]
    assert result.total_cost == pytest.approx(22.0 + 27.0)
    assert result.all_on_demand_exceeds_cap
    assert NOTE_ALL_ON_DEMAND_EXCEEDS_CAP in result.notes
    assert result.all_on_demand_cost == pytest.approx(40.0)


def test_cap_without_serverless_raises_the_reserved_level_to_cover_the_peak() -> None:
    demand = np.array([1.0, 1.0, 1.0, 20.0])
    options = PlanOptions(on_demand_hourly=1.0, on_demand_cap=5.0, reserved_hourly=0.9)
    result = plan(demand, options)
    assert result.reserved_units == pytest.approx(15.0)
    assert result.on_demand_series[3] == pytest.approx(5.0)
    assert result.total_cost == pytest.approx(lp_optimum(demand, options))


def test_cap_without_reserved_or_serverless_is_infeasible() -> None:
    options = PlanOptions(on_demand_hourly=1.0, on_demand_cap=5.0)
    with pytest.raises(PlanError) as err:
        plan(np.array([1.0, 9.0]), options)
    assert str(err.value) == ERR_INFEASIBLE.format(hour=1, demand=9.0, limit=5.0)


def test_spot_is_limited_to_the_eligible_share_of_each_hour() -> None:
    demand = np.array([10.0, 10.0])
    eligible = np.array([4.0, 0.0])
    options = PlanOptions(on_demand_hourly=1.0, spot_hourly=0.3)
    result = plan(demand, options, eligible)
    assert result.spot_series.tolist() == [4.0, 0.0]
    assert result.on_demand_series.tolist() == [6.0, 10.0]
    assert result.total_cost == pytest.approx(4 * 0.3 + 16.0)


def test_without_eligibility_spot_is_unused_and_the_plan_says_why() -> None:
    result = plan(np.array([10.0]), PlanOptions(on_demand_hourly=1.0, spot_hourly=0.3))
    assert result.spot_hours == 0.0
    assert NOTE_NO_SPOT_ELIGIBLE in result.notes


def test_spot_eligible_fraction_applies_when_no_series_is_given() -> None:
    options = PlanOptions(on_demand_hourly=1.0, spot_hourly=0.3, spot_eligible_fraction=0.25)
    result = plan(np.array([8.0, 4.0]), options)
    assert result.spot_series.tolist() == [2.0, 1.0]
    explicit = plan(np.array([8.0, 4.0]), options, np.array([0.0, 0.0]))
    assert explicit.spot_hours == 0.0  # an explicit series wins over the fraction


def test_on_demand_only_costs_exactly_all_on_demand() -> None:
    demand = np.array([3.0, 0.0, 7.5])
    result = plan(demand, PlanOptions(on_demand_hourly=2.0))
    assert result.reserved_units == 0.0
    assert result.total_cost == result.all_on_demand_cost == pytest.approx(21.0)
    assert result.saving == 0.0
    assert result.saving_pct == 0.0


def test_reserved_dearer_than_on_demand_is_never_bought() -> None:
    result = plan(np.full(10, 5.0), PlanOptions(on_demand_hourly=1.0, reserved_hourly=1.2))
    assert result.reserved_units == 0.0


def test_upfront_reservation_is_amortised_over_its_term() -> None:
    options = PlanOptions.from_dict(
        {
            "reserved": {"upfront": 876.0, "term_hours": 8760, "hourly": 0.2},
            "on_demand": {"hourly": 1.0},
        }
    )
    assert options.reserved_effective_hourly == pytest.approx(0.3)
    result = plan(np.full(10, 2.0), options)
    assert result.reserved_hourly_price == pytest.approx(0.3)
    assert result.reserved_cost == pytest.approx(0.3 * 2 * 10)


def test_zero_demand_plans_nothing() -> None:
    options = PlanOptions(on_demand_hourly=1.0, reserved_hourly=0.5, serverless_hourly=2.0)
    result = plan(np.zeros(24), options, units_per_node=4)
    assert result.total_cost == 0.0
    assert result.reserved_nodes == 0


def test_plan_is_frozen_and_its_series_are_read_only() -> None:
    result = plan(np.array([1.0, 2.0]), PlanOptions(on_demand_hourly=1.0))
    with pytest.raises(AttributeError):
        result.total_cost = 0.0  # type: ignore[misc]
    with pytest.raises(ValueError):
        result.on_demand_series[0] = 5.0


def test_to_dict_leaves_out_the_series_unless_asked() -> None:
    result = plan(np.array([1.0, 2.0]), PlanOptions(on_demand_hourly=1.0, reserved_hourly=0.5))
    assert "series" not in result.to_dict()
    series = result.to_dict(series=True)["series"]
    assert series["reserved"] == [result.reserved_units] * 2
    json.dumps(result.to_dict(series=True), allow_nan=False)


# ---------------------------------------------------------------------------------------------
# Whole nodes


@pytest.mark.parametrize("seed", range(30))
def test_whole_node_rounding_is_never_worse_than_either_neighbour(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    demand, options, eligible = random_case(rng)
    if options.reserved_hourly is None:
        options = PlanOptions(on_demand_hourly=options.on_demand_hourly, reserved_hourly=0.5)
        eligible = None
    size = float(rng.choice([1.0, 2.0, 4.0, 8.0, 16.0, 7.3]))
    result = plan(demand, options, eligible, units_per_node=size)
    assert result.reserved_nodes is not None and result.whole_node_total_cost is not None
    assert result.whole_node_reserved_units == result.reserved_nodes * size
    assert result.whole_node_total_cost >= result.total_cost - 1e-9 * max(1, result.total_cost)

    def cost_at_nodes(nodes: int) -> float:
        return lp_optimum(demand, options, eligible, fixed_reserved=nodes * size)

    for neighbour in (result.reserved_nodes - 1, result.reserved_nodes + 1):
        if neighbour >= 0:
            other = cost_at_nodes(neighbour)
            assert result.whole_node_total_cost <= other * (1 + 1e-6) + 1e-9


def test_whole_node_rounding_picks_the_cheaper_of_floor_and_ceil() -> None:
    # R = 10 units; with 4-unit nodes floor is 2 nodes (8 units), ceil is 3 nodes (12 units).
    demand = np.array([10.0] * 9 + [0.0])
    options = PlanOptions(on_demand_hourly=1.0, reserved_hourly=0.5)
    result = plan(demand, options, units_per_node=4)
    assert result.reserved_units == 10.0
    # 2 nodes: 0.5·8·10 + 2·9 = 58; 3 nodes: 0.5·12·10 = 60.
    assert result.reserved_nodes == 2
    assert result.whole_node_total_cost == pytest.approx(58.0)


# ---------------------------------------------------------------------------------------------
# Backtest


def test_backtest_prices_the_training_plan_on_the_held_out_hours() -> None:
    # 6 training hours at 10 units, then 2 test hours at 4 units.
    demand = np.array([10.0] * 6 + [4.0] * 2)
    options = PlanOptions(on_demand_hourly=1.0, reserved_hourly=0.5)
    result = backtest(demand, options, train_fraction=0.75)
    assert (result.train_hours, result.test_hours) == (6, 2)
    assert result.reserved_units == 10.0
    assert result.test_cost == pytest.approx(0.5 * 10 * 2)  # 10 reserved, 4 used
    assert result.test_all_on_demand_cost == pytest.approx(8.0)
    assert result.test_saving == pytest.approx(-2.0)
    assert result.test_optimal_reserved_units == 4.0
    assert result.test_optimal_cost == pytest.approx(4.0)
    assert result.regret == pytest.approx(6.0)
    assert result.test_unserved_hours == 0.0


def test_backtest_reports_demand_the_training_plan_cannot_serve() -> None:
    demand = np.array([2.0, 2.0, 2.0, 9.0])
    options = PlanOptions(on_demand_hourly=1.0, on_demand_cap=1.0, reserved_hourly=0.5)
    result = backtest(demand, options, train_fraction=0.75)
    assert result.reserved_units == pytest.approx(2.0)
    assert result.test_unserved_hours == pytest.approx(9.0 - 2.0 - 1.0)


def test_backtest_needs_two_hours() -> None:
    with pytest.raises(PlanError):
        backtest(np.array([1.0]), PlanOptions(on_demand_hourly=1.0))


# ---------------------------------------------------------------------------------------------
# Options


def test_options_from_dict_reads_every_option() -> None:
    options = PlanOptions.from_dict(
        {
            "reserved": {"hourly": 0.6},
            "on_demand": {"hourly": 1, "cap": None},
            "spot": {"hourly": 0.3, "eligible_fraction": 0.5},
            "serverless": {"hourly": 1.4},
        }
    )
    assert options == PlanOptions(
        on_demand_hourly=1.0,
        reserved_hourly=0.6,
        spot_hourly=0.3,
        spot_eligible_fraction=0.5,
        serverless_hourly=1.4,
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"reserved": {"hourly": 1}},
            ERR_MISSING_FIELD.format(source="o.json", field="on_demand"),
        ),
        (
            {"on_demand": {"hourly": -1}},
            ERR_BAD_PRICE.format(source="o.json", field="on_demand.hourly", value=-1),
        ),
        (
            {"on_demand": {"hourly": "1"}},
            ERR_BAD_PRICE.format(source="o.json", field="on_demand.hourly", value="1"),
        ),
        (
            {"on_demand": {"hourly": True}},
            ERR_BAD_PRICE.format(source="o.json", field="on_demand.hourly", value=True),
        ),
        (
            {"on_demand": {"hourly": 1}, "spot": {"hourly": float("nan")}},
            ERR_BAD_PRICE.format(source="o.json", field="spot.hourly", value=float("nan")),
        ),
        (
            {"on_demand": {"hourly": 1, "cap": -2}},
            ERR_BAD_PRICE.format(source="o.json", field="on_demand.cap", value=-2),
        ),
        (
            {"on_demand": {"hourly": 1}, "spot": {}},
            ERR_MISSING_FIELD.format(source="o.json", field="spot.hourly"),
        ),
    ],
)
def test_options_from_dict_rejects_bad_values_naming_file_and_field(
    data: dict[str, object], message: str
) -> None:
    with pytest.raises(PlanError) as err:
        PlanOptions.from_dict(data, source="o.json")
    assert str(err.value) == message


def test_options_from_dict_rejects_unknown_fields() -> None:
    with pytest.raises(PlanError) as err:
        PlanOptions.from_dict({"on_demand": {"hourly": 1}, "savings_plan": {}}, source="o.json")
    assert str(err.value).startswith(
        ERR_UNKNOWN_FIELD.split("(")[0].format(source="o.json", field="savings_plan")
    )
    with pytest.raises(PlanError, match="'on_demand.price'"):
        PlanOptions.from_dict({"on_demand": {"hourly": 1, "price": 2}}, source="o.json")


def test_options_need_upfront_and_term_together() -> None:
    with pytest.raises(PlanError, match="go together"):
        PlanOptions.from_dict({"on_demand": {"hourly": 1}, "reserved": {"hourly": 0, "upfront": 5}})


# ---------------------------------------------------------------------------------------------
# Demand CSV


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_read_demand_csv_sorts_hours_and_reads_spot_eligible(tmp_path: Path) -> None:
    path = write(
        tmp_path / "d.csv",
        "hour_start,demand,spot_eligible,extra\n"
        "2024-01-01T01:00:00Z,5,1,x\n"
        "2024-01-01T00:00:00+00:00,4,,y\n",
    )
    hours, demand, eligible = read_demand_csv(path)
    assert hours.tolist() == [
        np.datetime64("2024-01-01T00:00:00").astype("datetime64[s]").item(),
        np.datetime64("2024-01-01T01:00:00").astype("datetime64[s]").item(),
    ]
    assert demand.tolist() == [4.0, 5.0]
    assert eligible is not None and eligible.tolist() == [0.0, 1.0]


def test_read_demand_csv_without_spot_column_returns_none(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "demand,hour_start\n3,2024-01-01T00:00:00Z\n")
    _, demand, eligible = read_demand_csv(path)
    assert demand.tolist() == [3.0]
    assert eligible is None


@pytest.mark.parametrize(
    ("text", "template", "row", "column", "value"),
    [
        ("hour_start\n2024-01-01T00:00:00Z\n", ERR_MISSING_COLUMN, None, "demand", None),
        ("hour_start,demand\n2024-01-01T00:00:00Z,abc\n", ERR_NOT_NUMBER, 2, "demand", "abc"),
        ("hour_start,demand\n2024-01-01T00:00:00Z,1\n2024-01-01T01:00:00Z,-3\n",
         ERR_NEGATIVE, 3, "demand", "-3"),
        ("hour_start,demand\n2024-01-01T00:00:00Z,nan\n", ERR_NOT_FINITE, 2, "demand", "nan"),
        ("hour_start,demand\n2024-01-01T00:00:00Z,\n", ERR_EMPTY_CELL, 2, "demand", None),
        ("hour_start,demand,spot_eligible\n2024-01-01T00:00:00Z,1,-1\n",
         ERR_NEGATIVE, 2, "spot_eligible", "-1"),
        ("hour_start,demand\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:00Z,1\n",
         ERR_DUPLICATE_HOUR, 3, "hour_start", "2024-01-01T00:00:00Z"),
    ],
)  # fmt: skip
def test_read_demand_csv_errors_name_file_row_and_column(
    tmp_path: Path,
    text: str,
    template: str,
    row: int | None,
    column: str,
    value: str | None,
) -> None:
    path = write(tmp_path / "demand.csv", text)
    with pytest.raises(PlanError) as err:
        read_demand_csv(path)
    assert str(err.value) == template.format(source=path, row=row, column=column, value=value)


@pytest.mark.parametrize("value", ["yesterday", "2024-01-01T00:30:00Z"])
def test_read_demand_csv_rejects_bad_hour_start(tmp_path: Path, value: str) -> None:
    path = write(tmp_path / "demand.csv", f"hour_start,demand\n{value},1\n")
    with pytest.raises(PlanError, match=r"demand\.csv: row 2, column 'hour_start'"):
        read_demand_csv(path)


# ---------------------------------------------------------------------------------------------
# Command line


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[str, str]:
    lines = ["hour_start,demand,spot_eligible"]
    for h in range(48):
        lines.append(f"2024-01-{1 + h // 24:02d}T{h % 24:02d}:00:00Z,{10 + (h % 24 >= 12) * 6},2")
    demand = write(tmp_path / "demand.csv", "\n".join(lines) + "\n")
    options = write(
        tmp_path / "options.json",
        json.dumps(
            {
                "reserved": {"hourly": 0.6},
                "on_demand": {"hourly": 1.0, "cap": None},
                "spot": {"hourly": 0.3},
                "serverless": {"hourly": 1.5},
            }
        ),
    )
    return demand, options


def test_cli_writes_the_plan(tmp_path: Path, inputs: tuple[str, str]) -> None:
    demand, options = inputs
    out = tmp_path / "plan.json"
    code = cli_main(
        ["--demand", demand, "--options", options, "--out", str(out), "--units-per-node", "4"]
        + ["--backtest"]
    )
    assert code == 0
    data = json.loads(out.read_text())
    # 24 hours at 10, 24 at 16, 2 units/hour spot-eligible. Above R = 10 only the 16-unit hours
    # need on-demand (24·1.0 < 0.6·48); below it every hour does (48 > 28.8).
    assert data["reserved_units"] == pytest.approx(10.0)
    assert data["total_cost"] == pytest.approx(0.6 * 10 * 48 + (0.3 * 2 + 4) * 24)
    assert data["all_on_demand_cost"] == pytest.approx(10 * 24 + 16 * 24)
    assert data["reserved_nodes"] == 2  # 8 units: 403.2; 12 units: 408.0
    assert data["whole_node_total_cost"] == pytest.approx(0.6 * 8 * 48 + 0.3 * 2 * 24 + 6.6 * 24)
    assert data["backtest"]["train_hours"] == 36
    assert data["first_hour_start"] == "2024-01-01T00:00:00Z"
    assert "series" not in data
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".plan-")]


def test_cli_series_flag_adds_the_hourly_series(tmp_path: Path, inputs: tuple[str, str]) -> None:
    demand, options = inputs
    out = tmp_path / "plan.json"
    assert cli_main(["--demand", demand, "--options", options, "--out", str(out), "--series"]) == 0
    series = json.loads(out.read_text())["series"]
    assert len(series["hour_start"]) == len(series["on_demand"]) == 48


def test_cli_bad_input_prints_the_error_and_writes_nothing(
    tmp_path: Path, inputs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    demand, _ = inputs
    options = write(tmp_path / "bad.json", json.dumps({"on_demand": {"hourly": -1}}))
    out = tmp_path / "plan.json"
    assert cli_main(["--demand", demand, "--options", options, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert ERR_BAD_PRICE.format(source=options, field="on_demand.hourly", value=-1) in err
    assert "Traceback" not in err
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".plan-")]


def test_cli_bad_demand_row_keeps_an_existing_plan_untouched(
    tmp_path: Path, inputs: tuple[str, str]
) -> None:
    _, options = inputs
    demand = write(tmp_path / "d.csv", "hour_start,demand\n2024-01-01T00:00:00Z,x\n")
    out = tmp_path / "plan.json"
    out.write_text("old")
    assert cli_main(["--demand", demand, "--options", options, "--out", str(out)]) == 2
    assert out.read_text() == "old"


def test_cli_missing_argument_returns_2() -> None:
    assert cli_main(["--demand", "d.csv"]) == 2


def run_python(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=120
    )


def test_cli_runs_in_a_subprocess(tmp_path: Path, inputs: tuple[str, str]) -> None:
    demand, options = inputs
    out = tmp_path / "plan.json"
    argv = ["--demand", demand, "--options", options, "--out", str(out)]
    if (REPO / "allocation" / "__main__.py").exists():
        proc = run_python(["-m", "allocation", "plan", *argv])
    else:
        code = "import sys; from allocation.plan import cli_main; sys.exit(cli_main(sys.argv[1:]))"
        proc = run_python(["-c", code, *argv])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["reserved_units"] == pytest.approx(10.0)


def test_cli_subprocess_bad_input_exits_2_without_traceback(tmp_path: Path) -> None:
    demand = write(tmp_path / "d.csv", "hour_start\n2024-01-01T00:00:00Z\n")
    options = write(tmp_path / "o.json", json.dumps({"on_demand": {"hourly": 1}}))
    out = tmp_path / "plan.json"
    argv = ["--demand", demand, "--options", options, "--out", str(out)]
    if (REPO / "allocation" / "__main__.py").exists():
        proc = run_python(["-m", "allocation", "plan", *argv])
    else:
        code = "import sys; from allocation.plan import cli_main; sys.exit(cli_main(sys.argv[1:]))"
        proc = run_python(["-c", code, *argv])
    assert proc.returncode == 2
    assert ERR_MISSING_COLUMN.format(source=demand, column="demand") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Speed


def test_ninety_days_of_hourly_demand_plans_in_well_under_a_second() -> None:
    rng = np.random.default_rng(7)
    demand, options = plan_module._synthetic_pool(rng, 90 * 24)
    plan(demand, options, units_per_node=8)
    start = time.perf_counter()
    for _ in range(10):
        plan(demand, options, units_per_node=8)
    assert (time.perf_counter() - start) / 10 < 0.05
