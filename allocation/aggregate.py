"""Keys, steps, grouping and efficiency (ALLOCATION_SPEC.md §6).

Grouping is done on integer codes: each key column is a ``Categorical``; several columns are
combined into one int64 composite and turned into dense group ids with a bincount (small key
spaces) or ``np.unique`` (large ones). No Python loop touches a row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from allocation.errors import (
    E_BAD_AGGREGATE_KEY,
    E_BAD_STEP,
    E_DUPLICATE_AGGREGATE_KEY,
    AllocationError,
)
from allocation.records import HOUR, Categorical, FloatArray, IntArray

__all__ = [
    "IDLE",
    "KEYS",
    "NODE_KEYS",
    "POD_KEYS",
    "SHARED",
    "STEPS",
    "UNALLOCATED",
    "check_keys",
    "check_step",
    "display_categorical",
    "efficiency",
    "group_codes",
    "representatives",
    "step_table",
    "weighted_sum",
]

UNALLOCATED = "__unallocated__"
"""Key value of a pod that has no value for that key."""
IDLE = "__idle__"
"""Key value of idle lines for keys that are not node-side."""
SHARED = "__shared__"
"""Key value of a shared pool that had no workload line to go to (keys other than cluster)."""

NODE_KEYS: tuple[str, ...] = ("cluster", "node", "node_pool", "capacity_type")
"""Keys that idle lines carry real values for."""
POD_KEYS: tuple[str, ...] = ("namespace", "controller_kind", "controller", "pod", "team")
KEYS: tuple[str, ...] = NODE_KEYS + POD_KEYS
"""Every aggregate key except ``label:<key>``."""
STEPS: tuple[str, ...] = ("hour", "day", "month", "window")

DAY = 86400
_DENSE_SLACK = 1 << 16


def check_keys(keys: Sequence[str]) -> tuple[str, ...]:
    """Return ``keys`` as a tuple; raise ``AllocationError`` for an unknown or repeated key."""
    if isinstance(keys, str):
        keys = (keys,)
    seen: set[str] = set()
    for key in keys:
        valid = key in KEYS or (key.startswith("label:") and len(key) > len("label:"))
        if not valid:
            raise AllocationError(E_BAD_AGGREGATE_KEY.format(key=key))
        if key in seen:
            raise AllocationError(E_DUPLICATE_AGGREGATE_KEY.format(key=key))
        seen.add(key)
    return tuple(keys)


def check_step(step: str) -> str:
    """Return ``step``; raise ``AllocationError`` unless it is hour, day, month or window."""
    if step not in STEPS:
        raise AllocationError(E_BAD_STEP.format(step=step))
    return step


def group_codes(columns: Sequence[tuple[IntArray, int]], n: int) -> tuple[IntArray, int]:
    """Dense group ids for ``n`` rows keyed by several integer code columns.

    ``columns`` holds (codes, number of distinct codes) pairs. Returns (group id per row, number
    of groups); groups are numbered in lexicographic order of the code tuples.
    """
    key: IntArray = np.zeros(n, np.int64)
    bound = 1
    for codes, size in columns:
        size = max(int(size), 1)
        if size == 1:
            continue
        if bound > 1 and bound * size >= 1 << 62:
            key, bound = _compress(key, bound)
        key = codes.astype(np.int64) if bound == 1 else key * size + codes
        bound *= size
    return _compress(key, bound)


def _compress(key: IntArray, bound: int) -> tuple[IntArray, int]:
    """Renumber the values of ``key`` (all in [0, bound)) as 0..G-1 in sorted order."""
    n = key.size
    if bound <= 4 * n + _DENSE_SLACK:
        present = np.bincount(key, minlength=bound) > 0
        lut = np.cumsum(present) - 1
        return lut[key].astype(np.int64), int(present.sum())
    uniq, inverse = np.unique(key, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), int(uniq.size)


def weighted_sum(group: IntArray, weights: FloatArray, minlength: int) -> FloatArray:
    """Σ weights per group id (a float64 bincount)."""
    return np.asarray(np.bincount(group, weights=weights, minlength=minlength), np.float64)


def representatives(group: IntArray, n_groups: int) -> IntArray:
    """One row index per group (some row of that group)."""
    rep: IntArray = np.zeros(n_groups, np.int64)
    rep[group] = np.arange(group.size, dtype=np.int64)
    return rep


def step_table(first_hour: int, n_hours: int, step: str) -> tuple[IntArray, IntArray, IntArray]:
    """Step of every hour in [first_hour, first_hour + n_hours·1h).

    Returns (step code per hour index, step start per code, step end per code), timestamps in
    epoch seconds UTC: hour → [h, h+1h); day → [00:00, next 00:00); month → [1st, next 1st);
    window → [first hour, last hour + 1h).
    """
    t = first_hour + HOUR * np.arange(n_hours, dtype=np.int64)
    if step == "hour":
        starts, ends = t, t + HOUR
    elif step == "day":
        starts = t - t % DAY
        ends = starts + DAY
    elif step == "month":
        months = t.astype("datetime64[s]").astype("datetime64[M]")
        starts = months.astype("datetime64[s]").astype(np.int64)
        ends = (months + 1).astype("datetime64[s]").astype(np.int64)
    else:
        starts = np.full(n_hours, first_hour, np.int64)
        ends = np.full(n_hours, first_hour + HOUR * n_hours, np.int64)
    if n_hours == 0:
        empty: IntArray = np.zeros(0, np.int64)
        return empty, empty, empty
    change = np.empty(n_hours, bool)
    change[0] = True
    change[1:] = starts[1:] != starts[:-1]
    code = np.cumsum(change) - 1
    return code.astype(np.int64), starts[change], ends[change]


def display_categorical(cat: Categorical, missing: str = UNALLOCATED) -> Categorical:
    """The same column with every category a display string: empty/None → ``missing``,
    equal strings merged into one category."""
    table: dict[str, int] = {}
    lut = np.empty(len(cat.categories), np.int64)
    for i, value in enumerate(cat.categories.tolist()):
        text = missing if value is None or value == "" else str(value)
        lut[i] = table.setdefault(text, len(table))
    cats = np.empty(len(table), dtype=object)
    cats[:] = list(table)
    return Categorical(lut[cat.codes] if len(cat.categories) else cat.codes, cats)


def constant_categorical(n: int, value: str) -> Categorical:
    """A column of ``n`` rows that all hold ``value``."""
    return Categorical(np.zeros(n, np.int64), np.array([value], dtype=object))


def efficiency(
    cpu_usage: FloatArray,
    cpu_request: FloatArray,
    ram_usage: FloatArray,
    ram_request: FloatArray,
    cpu_cost: FloatArray,
    ram_cost: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Efficiency per line (§6): usage / request per resource (0 where there is no request),
    and their average weighted by cpu_cost and ram_cost (0 where both costs are 0)."""
    cpu_eff = _ratio(cpu_usage, cpu_request)
    ram_eff = _ratio(ram_usage, ram_request)
    cpu_weight = _ratio(cpu_cost, cpu_cost + ram_cost)
    ram_weight = _ratio(ram_cost, cpu_cost + ram_cost)
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.where(cpu_weight > 0, cpu_weight * cpu_eff, 0.0) + np.where(
            ram_weight > 0, ram_weight * ram_eff, 0.0
        )
    return cpu_eff, ram_eff, total


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    out: FloatArray = np.zeros(num.shape, np.float64)
    with np.errstate(over="ignore"):  # a subnormal request gives an infinite ratio
        np.divide(num, den, out=out, where=den > 0)
    return out
