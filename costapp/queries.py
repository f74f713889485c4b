"""Allocation lines → answers: the query layer under pages, API, CSV and chargeback.

Stored ``AllocationLine`` rows (one per cluster-day at the stored grain) are summed in the
database per (cluster, step, keys), then finished in numpy exactly as the engine finishes
``allocate`` (``allocation.engine.result_from_parts``): the idle policy picks a column (workload
lines) or a set of rows (idle lines), and shared namespaces plus overhead are spread with
``allocation.share.spread_shared`` over all lines of the cluster and step *before* any filter,
so filters and aggregation never change a line's cost (ALLOCATION_SPEC.md §7).

Public surface: ``AllocationQuery`` (with ``from_params``), ``run`` → ``Answer``,
``QueryError``, ``data_status``, ``daily_totals`` and the constants below.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
from django.db.models import Case, F, FloatField, Max, Min, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncMonth, TruncWeek

from allocation.aggregate import efficiency, group_codes, representatives, weighted_sum
from allocation.share import spread_shared
from costapp.models import (
    IDLE,
    SHARED,
    UNALLOCATED,
    AllocationLine,
    AllocationPolicy,
    Cluster,
    ClusterDay,
    ClusterHour,
)

__all__ = [
    "ENGINE_ONLY_KEYS",
    "FILTER_PARAMS",
    "IDLE_POLICIES",
    "KEYS",
    "NUMERIC",
    "SPLITS",
    "STEPS",
    "WINDOWS",
    "AllocationQuery",
    "Answer",
    "Notice",
    "QueryError",
    "daily_totals",
    "data_status",
    "parse_window",
    "run",
]

KEYS = ("cluster", "node_pool", "capacity_type", "namespace", "controller_kind", "controller",
        "team")
"""Aggregate keys available at the stored grain (plus ``label:<key>`` for configured keys)."""
NODE_SIDE = ("cluster", "node_pool", "capacity_type")
"""Keys idle lines carry real values for."""
ENGINE_ONLY_KEYS = ("node", "pod")
STEPS = ("day", "week", "month", "window")
IDLE_POLICIES = ("separate", "share-by-node", "share-by-cluster")
SPLITS = ("weighted", "even")
WINDOWS = ("today", "7d", "30d", "month", "lastmonth")
FILTER_PARAMS = ("cluster", "namespace", "team", "node_pool", "capacity_type",
                 "controller_kind", "controller")
MAX_WINDOW_DAYS = 800

QUANTITIES = ("cpu_core_hours", "ram_gib_hours", "gpu_hours")
USAGE = ("cpu_usage_core_hours", "cpu_request_core_hours", "ram_usage_gib_hours",
         "ram_request_gib_hours")
COSTS = ("cpu_cost", "ram_cost", "gpu_cost", "idle_cost", "shared_cost", "total_cost")
EFFICIENCY = ("cpu_efficiency", "ram_efficiency", "total_efficiency")
NUMERIC = QUANTITIES + COSTS + EFFICIENCY + USAGE
"""Numeric columns of a line, as in the engine's result (ALLOCATION_SPEC.md §8)."""
_SUMMED = QUANTITIES + ("cpu_cost", "ram_cost", "gpu_cost", "idle_cost", "shared_cost") + USAGE

# Error messages (tests assert on them).
E_BAD_WINDOW = ("window must be today, 7d, 30d, month, lastmonth or 'start,end' in ISO 8601 "
                "dates (e.g. 2026-01-01,2026-01-31); got {value!r}")
E_WINDOW_ORDER = "window end {end} is before its start {start}"
E_WINDOW_TOO_LONG = "window is {days} days long; at most {max} days are allowed"
E_ENGINE_ONLY_KEY = (
    "{key!r} is not stored per day (lines are stored per cluster, node pool, capacity type, "
    "namespace, controller and team). For per-{key} answers run the engine on exported hourly "
    "rows: python -m allocation allocate --nodes nodes.csv --pods pods.csv --aggregate {key}"
)
E_BAD_KEY = "unknown aggregate key {key!r}; use any of {allowed} or label:<key>"
E_DUPLICATE_KEY = "aggregate key {key!r} is given twice"
E_LABEL_NOT_STORED = ("label key {key!r} is not kept on stored lines (kept: {kept}); an admin "
                      "can add it to the allocation policy's label keys")
E_BAD_CHOICE = "{param} must be one of {allowed}; got {value!r}"
E_UNKNOWN_CLUSTER = "unknown cluster {value!r}"
E_MIXED_CURRENCY = ("the selected clusters bill in different currencies ({currencies}): add "
                    "cluster to aggregate or filter by cluster")
E_BAD_FILTER = "filter {param} needs a value"
E_BAD_MONTH = "month must be YYYY-MM; got {value!r}"


class QueryError(ValueError):
    """A bad query parameter: ``parameter`` names it, ``message`` says what is wrong."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter
        self.message = message


# --- parsing -----------------------------------------------------------------------------------


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _next_month(d: date) -> date:
    return (d.replace(day=28) + timedelta(days=4)).replace(day=1)


def parse_window(text: str, today: date) -> tuple[date, date]:
    """Window → [start, end) in days. ``start,end`` is inclusive of end (whole days)."""
    text = (text or "").strip()
    if text == "today":
        return today, today + timedelta(days=1)
    if text in ("7d", "30d"):
        n = int(text[:-1])
        return today - timedelta(days=n - 1), today + timedelta(days=1)
    if text == "month":
        return _month_start(today), today + timedelta(days=1)
    if text == "lastmonth":
        end = _month_start(today)
        return _month_start(end - timedelta(days=1)), end
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2:
        raise QueryError("window", E_BAD_WINDOW.format(value=text))
    try:
        start, end = (datetime.fromisoformat(p).date() if "T" in p else date.fromisoformat(p)
                      for p in parts)
    except ValueError:
        raise QueryError("window", E_BAD_WINDOW.format(value=text)) from None
    if end < start:
        raise QueryError("window", E_WINDOW_ORDER.format(start=start, end=end))
    if (end - start).days + 1 > MAX_WINDOW_DAYS:
        raise QueryError("window", E_WINDOW_TOO_LONG.format(days=(end - start).days + 1,
                                                           max=MAX_WINDOW_DAYS))
    return start, end + timedelta(days=1)


def parse_keys(text: str, label_keys: Iterable[str]) -> tuple[str, ...]:
    """Comma list of aggregate keys, checked against what is stored."""
    kept = tuple(label_keys)
    keys: list[str] = []
    for key in (k.strip() for k in (text or "").split(",")):
        if not key:
            continue
        if key in ENGINE_ONLY_KEYS:
            raise QueryError("aggregate", E_ENGINE_ONLY_KEY.format(key=key))
        if key.startswith("label:") and len(key) > 6:
            if key[6:] not in kept:
                raise QueryError("aggregate", E_LABEL_NOT_STORED.format(
                    key=key[6:], kept=", ".join(kept) or "none"))
        elif key not in KEYS:
            raise QueryError("aggregate", E_BAD_KEY.format(key=key, allowed=", ".join(KEYS)))
        if key in keys:
            raise QueryError("aggregate", E_DUPLICATE_KEY.format(key=key))
        keys.append(key)
    if not keys:
        raise QueryError("aggregate", E_BAD_KEY.format(key=text or "", allowed=", ".join(KEYS)))
    return tuple(keys)


def _choice(params: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = (params.get(name) or "").strip() or default
    if value not in allowed:
        raise QueryError(name, E_BAD_CHOICE.format(param=name, allowed=", ".join(allowed),
                                                  value=value))
    return value


def _csv_list(text: str | None) -> tuple[str, ...]:
    # NUL cannot be sent to PostgreSQL (the query would fail: a 500); no stored name holds
    # one, so U+FFFD keeps such a value matching nothing instead.
    return tuple(v.strip().replace("\x00", "\ufffd") for v in (text or "").split(",")
                 if v.strip())


def parse_month(text: str) -> date:
    """``YYYY-MM`` → the first of that month."""
    try:
        year, month = (int(p) for p in (text or "").split("-"))
        return date(year, month, 1)
    except ValueError:
        raise QueryError("month", E_BAD_MONTH.format(value=text)) from None


# --- the query ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllocationQuery:
    """One question asked of the stored lines.

    ``start``/``end``: days [start, end) (UTC). ``keys``: aggregate keys. ``filters``: key →
    allowed values (applied after shared costs are spread). ``teams``: the asker's visible teams
    (``None`` = all); when set, idle and unassigned shared lines are left out of ``lines`` and
    reported only as aggregate amounts.
    """

    start: date
    end: date
    keys: tuple[str, ...] = ("namespace",)
    step: str = "window"
    idle: str = "separate"
    shared_namespaces: tuple[str, ...] = ()
    shared_split: str = "weighted"
    clusters: tuple[str, ...] = ()
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    teams: frozenset[str] | None = None

    @classmethod
    def from_params(
        cls,
        params: Mapping[str, str],
        *,
        teams: frozenset[str] | None = None,
        today: date | None = None,
        policy: AllocationPolicy | None = None,
        default_keys: str = "namespace",
        default_window: str = "month",
        default_step: str = "window",
    ) -> AllocationQuery:
        """Parse request parameters; raise ``QueryError`` naming the bad parameter."""
        policy = policy or AllocationPolicy.current()
        today = today or datetime.now(UTC).date()
        start, end = parse_window(params.get("window") or default_window, today)
        keys = parse_keys(params.get("aggregate") or default_keys, policy.label_keys or ())
        step = _choice(params, "step", STEPS, default_step)
        idle = _choice(params, "idle", IDLE_POLICIES, policy.idle or "separate")
        split = _choice(params, "shared_split", SPLITS, policy.shared_split or "weighted")
        if "shared_namespaces" in params:
            shared = _csv_list(params.get("shared_namespaces"))
        else:
            shared = tuple(policy.shared_namespaces or ())
        filters: dict[str, tuple[str, ...]] = {}
        clusters: tuple[str, ...] = ()
        for name, raw in params.items():
            if name in FILTER_PARAMS or (name.startswith("label:") and len(name) > 6):
                values = _csv_list(raw)
                if not values:
                    if raw in (None, ""):
                        continue
                    raise QueryError(name, E_BAD_FILTER.format(param=name))
                if name.startswith("label:") and name[6:] not in (policy.label_keys or ()):
                    raise QueryError(name, E_LABEL_NOT_STORED.format(
                        key=name[6:], kept=", ".join(policy.label_keys or ()) or "none"))
                if name == "cluster":
                    known = set(Cluster.objects.filter(name__in=values)
                                .values_list("name", flat=True))
                    for v in values:
                        if v not in known:
                            raise QueryError("cluster", E_UNKNOWN_CLUSTER.format(value=v))
                    clusters = values
                else:
                    filters[name] = values
        return cls(start, end, keys, step, idle, shared, split, clusters, filters, teams)

    @property
    def restricted(self) -> bool:
        return self.teams is not None

    def effective_filters(self) -> dict[str, tuple[str, ...]]:
        """Filters plus the visibility rule (a team filter limited to visible teams)."""
        filters = dict(self.filters)
        if self.teams is not None:
            asked = filters.get("team")
            allowed = sorted(self.teams if asked is None else set(asked) & self.teams)
            filters["team"] = tuple(allowed)
        return filters

    def params(self) -> dict[str, str]:
        """The query as request parameters (for links and the CSV button)."""
        out = {
            "window": f"{self.start.isoformat()},{(self.end - timedelta(days=1)).isoformat()}",
            "aggregate": ",".join(self.keys),
            "step": self.step,
            "idle": self.idle,
            "shared_namespaces": ",".join(self.shared_namespaces),
            "shared_split": self.shared_split,
        }
        if self.clusters:
            out["cluster"] = ",".join(self.clusters)
        for k, v in self.filters.items():
            out[k] = ",".join(v)
        return out


# --- the answer --------------------------------------------------------------------------------


@dataclass
class Answer:
    """The lines of one query, as columns, plus the amounts around them.

    ``columns``: ``kind``; one column per key; ``window_start``/``window_end`` (dates, end
    exclusive); every name in ``NUMERIC`` (float64). ``idle_total``: idle that stays idle under
    the query's policy (all clusters asked, before filters); ``shared_pool``: shared namespaces'
    cost + overhead; ``cluster_cost``: Σ node cost + overhead of the clusters and days asked
    (from ``ClusterDay``). ``currency``: the clusters' billing currency.
    """

    query: AllocationQuery
    columns: dict[str, np.ndarray]
    currency: str
    clusters: list[str]
    idle_total: float = 0.0
    shared_pool: float = 0.0
    cluster_cost: float = 0.0

    def __len__(self) -> int:
        return int(self.columns["kind"].size)

    @property
    def keys(self) -> tuple[str, ...]:
        return self.query.keys

    def header(self) -> tuple[str, ...]:
        return ("kind", *self.keys, "window_start", "window_end", *NUMERIC, "currency")

    def records(self, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
        """Lines ``start:stop`` as dicts (money and quantities as float)."""
        sl = slice(start, stop)
        cols = {name: self.columns[name][sl].tolist() for name in self.columns}
        n = len(cols["kind"])
        out = []
        for i in range(n):
            row = {name: cols[name][i] for name in self.header()[:-1]}
            row["currency"] = self.currency
            out.append(row)
        return out

    def rows(self) -> Iterable[list[Any]]:
        """Lines as lists in ``header`` order (dates as ISO strings), for CSV."""
        cols = [self.columns[n].tolist() for n in self.header()[:-1]]
        for values in zip(*cols, strict=True):
            row = list(values)
            row[len(self.keys) + 1] = _iso(row[len(self.keys) + 1])
            row[len(self.keys) + 2] = _iso(row[len(self.keys) + 2])
            yield row + [self.currency]

    def totals(self) -> dict[str, float]:
        """Σ of every summed column over the lines, with efficiency recomputed from the sums."""
        t = {name: float(self.columns[name].sum()) for name in _SUMMED}
        t["total_cost"] = float(self.columns["total_cost"].sum())
        eff = efficiency(*(np.array([t[n]]) for n in USAGE), np.array([t["cpu_cost"]]),
                         np.array([t["ram_cost"]]))
        for name, value in zip(EFFICIENCY, eff, strict=True):
            t[name] = float(value[0])
        return t

    def summary(self) -> dict[str, Any]:
        """Totals and the amounts around them. Restricted askers get no cluster total."""
        out: dict[str, Any] = {"lines": len(self), **self.totals(),
                               "idle_unallocated": self.idle_total,
                               "shared_pool": self.shared_pool, "currency": self.currency}
        if not self.query.restricted:
            out["cluster_cost"] = self.cluster_cost
        return out

    def by(self, name: str) -> dict[str, float]:
        """Σ total_cost per value of key ``name``."""
        out: dict[str, float] = {}
        for k, v in zip(self.columns[name].tolist(), self.columns["total_cost"].tolist(),
                        strict=True):
            out[k] = out.get(k, 0.0) + v
        return out


def _iso(d: date) -> str:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- running a query ---------------------------------------------------------------------------


def _key_expr(key: str) -> tuple[str, Any]:
    """(name in values(), expression or None) for a stored key."""
    if key == "cluster":
        return "cluster_id", None
    if key.startswith("label:"):
        return "lbl_" + re.sub(r"\W", "_", key[6:]), KeyTextTransform(key[6:], "labels")
    return key, None


def _step_expr(step: str):
    if step == "day":
        return F("day")
    if step == "week":
        return TruncWeek("day")
    if step == "month":
        return TruncMonth("day")
    return None


def _fsum(name: str):
    """Σ of a money column as float8. Summing float8 (not numeric) lets PostgreSQL use a hash
    aggregate in default work_mem: 2× faster on a month of a 30,000-pod cluster; money stays
    exact in storage and is rounded once at the edge (chargeback) as STYLE.md asks."""
    return Sum(Cast(name, FloatField()))


def _step_bounds(step: str, start_value: date) -> tuple[date, date]:
    if step == "day":
        return start_value, start_value + timedelta(days=1)
    if step == "week":
        return start_value, start_value + timedelta(days=7)
    return start_value, _next_month(start_value)


def _as_date(v) -> date:
    return v.date() if isinstance(v, datetime) else v


def _grouped(qs, group: list[str], exprs: dict[str, Any], sums: dict[str, Any]) -> list[dict]:
    if exprs:
        qs = qs.annotate(**exprs)
    return list(qs.values(*group).annotate(**sums).order_by())


def run(q: AllocationQuery) -> Answer:
    """Answer a query from stored lines.

    Steps:
      1. sum workload, idle and overhead lines in the database per (cluster, step, keys,
         filter keys, shared flag);
      2. choose the idle column (workload) and idle rows for the query's idle policy;
      3. spread shared namespaces and overhead with ``spread_shared`` over all rows of each
         cluster and step (rows belong to result lines by their aggregate keys);
      4. drop shared-namespace rows, apply filters and visibility, add the ``__shared__`` lines
         of pools with nowhere to go and the idle lines;
      5. sum rows into lines and compute total cost and efficiency.
    """
    clusters_qs = Cluster.objects.all()
    if q.clusters:
        clusters_qs = clusters_qs.filter(name__in=q.clusters)
    cluster_rows = list(clusters_qs.values_list("id", "name", "currency").order_by("name"))
    cluster_index = {cid: i for i, (cid, _, _) in enumerate(cluster_rows)}
    cluster_names = np.array([name for _, name, _ in cluster_rows] + [""], dtype=object)
    currencies = sorted({cur for _, _, cur in cluster_rows})
    currency = currencies[0] if len(currencies) == 1 else ""
    if len(currencies) > 1 and "cluster" not in q.keys:
        raise QueryError("aggregate", E_MIXED_CURRENCY.format(currencies=", ".join(currencies)))
    if len(currencies) > 1:
        currency = "mixed"

    filters = q.effective_filters()
    group_keys = list(q.keys) + [k for k in filters if k not in q.keys]
    base = AllocationLine.objects.filter(
        day__gte=q.start, day__lt=q.end, cluster_id__in=list(cluster_index)
    )
    step_expr = _step_expr(q.step)
    exprs: dict[str, Any] = {}
    if step_expr is not None:
        exprs["step_start"] = step_expr

    # 1. Workload rows.
    names: dict[str, str] = {}
    w_exprs = dict(exprs)
    for key in group_keys:
        name, expr = _key_expr(key)
        names[key] = name
        if expr is not None:
            w_exprs[name] = expr
    if q.shared_namespaces:
        w_exprs["is_shared"] = Case(
            When(namespace__in=list(q.shared_namespaces), then=Value(1)), default=Value(0)
        )
    group = (["cluster_id"] + (["step_start"] if step_expr is not None else [])
             + [names[k] for k in group_keys if k != "cluster"]
             + (["is_shared"] if q.shared_namespaces else []))
    sums = {n: Sum(n) for n in QUANTITIES + USAGE}
    sums.update({n: _fsum(n) for n in ("cpu_cost", "ram_cost", "gpu_cost")})
    idle_col = {"share-by-node": "idle_by_node", "share-by-cluster": "idle_by_cluster"}.get(q.idle)
    if idle_col:
        sums["idle_in"] = _fsum(idle_col)
    wrows = _grouped(base.filter(kind=AllocationLine.Kind.WORKLOAD), group, w_exprs, sums)

    # Idle rows under the policy, by node-side keys.
    idle_keys = [k for k in group_keys if k in NODE_SIDE and k != "cluster"]
    igroup = (["cluster_id"] + (["step_start"] if step_expr is not None else []) + idle_keys)
    isums = {n: Sum(n) for n in QUANTITIES}
    isums.update({n: _fsum(n) for n in ("cpu_cost", "ram_cost", "gpu_cost")})
    irows = _grouped(base.filter(kind=AllocationLine.Kind.IDLE, idle_policy=q.idle), igroup,
                     exprs, isums)
    # Overhead per cluster and step.
    ogroup = ["cluster_id"] + (["step_start"] if step_expr is not None else [])
    orows = _grouped(base.filter(kind=AllocationLine.Kind.OVERHEAD), ogroup, exprs,
                     {"overhead": _fsum("overhead_cost")})
    day_span = base.filter(kind__in=[AllocationLine.Kind.WORKLOAD, AllocationLine.Kind.IDLE])

    # Step codes shared by all three row sets.
    if step_expr is not None:
        step_values = sorted({_as_date(r["step_start"]) for r in (*wrows, *irows, *orows)})
        step_code = {v: i for i, v in enumerate(step_values)}
        bounds = [_step_bounds(q.step, v) for v in step_values]
    else:
        span = day_span.aggregate(lo=Min("day"), hi=Max("day"))
        lo, hi = span["lo"] or q.start, span["hi"] or (q.end - timedelta(days=1))
        step_values, step_code = [lo], {None: 0}
        bounds = [(lo, hi + timedelta(days=1))]
    n_cl, n_st = max(len(cluster_rows), 1), max(len(step_values), 1)

    def step_of(r: dict) -> int:
        return step_code[_as_date(r["step_start"])] if step_expr is not None else 0

    # 2.–3. Spread shared cost over workload rows.
    n = len(wrows)
    cl = np.fromiter((cluster_index[r["cluster_id"]] for r in wrows), np.int64, n)
    st = np.fromiter((step_of(r) for r in wrows), np.int64, n)
    vals = {name: np.fromiter((r[name] or 0.0 for r in wrows), np.float64, n)
            for name in QUANTITIES + USAGE + ("cpu_cost", "ram_cost", "gpu_cost")}
    vals["idle_cost"] = (np.fromiter((r["idle_in"] or 0.0 for r in wrows), np.float64, n)
                         if idle_col else np.zeros(n))
    is_shared = (np.fromiter((r["is_shared"] for r in wrows), np.int64, n).astype(bool)
                 if q.shared_namespaces else np.zeros(n, bool))
    keyvals: dict[str, np.ndarray] = {}
    for key in group_keys:
        if key == "cluster":
            keyvals[key] = cluster_names[cl]
        else:
            col = np.empty(n, dtype=object)
            col[:] = [r[names[key]] if r[names[key]] not in (None, "") else UNALLOCATED
                      for r in wrows]
            keyvals[key] = col
    overhead = np.zeros((n_cl, n_st))
    for r in orows:
        overhead[cluster_index[r["cluster_id"]], step_of(r)] += r["overhead"] or 0.0
    own = vals["cpu_cost"] + vals["ram_cost"] + vals["gpu_cost"] + vals["idle_cost"]
    line_cols = [_codes(keyvals[k]) for k in q.keys] + [(st, n_st)]
    line, _ = group_codes(line_cols, n)
    spread = spread_shared(line, cl, st, is_shared, own, overhead, q.shared_split)
    vals["shared_cost"] = spread.shared_cost

    # 4. Blocks of rows: workload (kept), unassigned shared pools, idle.
    keep = ~is_shared
    for key, allowed in filters.items():
        keep &= np.isin(keyvals[key], np.array(allowed, dtype=object))
    blocks = [("workload", {k: keyvals[k][keep] for k in q.keys}, st[keep],
               {name: vals[name][keep] for name in _SUMMED})]
    cl_i, st_i = np.nonzero(spread.unspread > 0)
    amounts = spread.unspread[cl_i, st_i]
    if "cluster" not in q.keys and amounts.size:
        st_u, inverse = np.unique(st_i, return_inverse=True)
        amounts = weighted_sum(inverse.reshape(-1), amounts, minlength=st_u.size)
        st_i, cl_i = st_u, np.full(st_u.size, len(cluster_rows))
    shared_ok = amounts.size > 0 and not q.restricted and all(
        k == "cluster" and set(cluster_names[cl_i]) <= set(v) for k, v in filters.items()
    )
    if shared_ok:
        skeys = {k: (cluster_names[cl_i] if k == "cluster"
                     else np.full(amounts.size, SHARED, dtype=object)) for k in q.keys}
        svals = {name: np.zeros(amounts.size) for name in _SUMMED}
        svals["shared_cost"] = amounts.astype(np.float64)
        blocks.append(("workload", skeys, st_i.astype(np.int64), svals))

    m = len(irows)
    icl = np.fromiter((cluster_index[r["cluster_id"]] for r in irows), np.int64, m)
    ist = np.fromiter((step_of(r) for r in irows), np.int64, m)
    ivals = {name: np.zeros(m) for name in _SUMMED}
    for name in QUANTITIES + ("cpu_cost", "ram_cost", "gpu_cost"):
        ivals[name] = np.fromiter((r[name] or 0.0 for r in irows), np.float64, m)
    idle_total = float(ivals["cpu_cost"].sum() + ivals["ram_cost"].sum() + ivals["gpu_cost"].sum())
    ikeys: dict[str, np.ndarray] = {}
    for key in group_keys:
        if key == "cluster":
            ikeys[key] = cluster_names[icl]
        elif key in NODE_SIDE:
            col = np.empty(m, dtype=object)
            col[:] = [r[key] or UNALLOCATED for r in irows]
            ikeys[key] = col
        else:
            ikeys[key] = np.full(m, IDLE, dtype=object)
    ikeep = np.ones(m, bool) if not q.restricted else np.zeros(m, bool)
    for key, allowed in filters.items():
        ikeep &= np.isin(ikeys[key], np.array(allowed, dtype=object))
    blocks.append(("idle", {k: ikeys[k][ikeep] for k in q.keys}, ist[ikeep],
                   {name: ivals[name][ikeep] for name in _SUMMED}))

    columns = _sum_blocks(q.keys, blocks, n_st)
    starts = np.array([b[0] for b in bounds] or [q.start], dtype=object)
    ends = np.array([b[1] for b in bounds] or [q.end], dtype=object)
    step_col = columns.pop("_step")
    columns["window_start"] = starts[step_col] if step_col.size else np.zeros(0, object)
    columns["window_end"] = ends[step_col] if step_col.size else np.zeros(0, object)
    cluster_cost = _cluster_cost(list(cluster_index), q.start, q.end)
    return Answer(q, columns, currency, [c[1] for c in cluster_rows], idle_total,
                  float(spread.pool.sum()), cluster_cost)


def _codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    if values.size == 0:
        return np.zeros(0, np.int64), 1
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64), int(uniq.size)


def _sum_blocks(keys, blocks, n_steps: int) -> dict[str, np.ndarray]:
    """Sum row blocks into lines per (kind, keys, step); drop all-zero idle lines; sort."""
    kind = np.concatenate([np.full(b[2].size, b[0], dtype=object) for b in blocks])
    step = np.concatenate([b[2] for b in blocks]).astype(np.int64)
    kcols = {k: np.concatenate([b[1][k].astype(object) for b in blocks]) for k in keys}
    vcols = {name: np.concatenate([b[3][name] for b in blocks]) for name in _SUMMED}
    n = kind.size
    cols = [_codes(kind)] + [_codes(kcols[k]) for k in keys] + [(step, max(n_steps, 1))]
    g, n_g = group_codes(cols, n) if n else (np.zeros(0, np.int64), 0)
    rep = representatives(g, n_g)
    out: dict[str, np.ndarray] = {"kind": kind[rep]}
    for k in keys:
        out[k] = kcols[k][rep]
    out["_step"] = step[rep]
    for name in _SUMMED:
        out[name] = weighted_sum(g, vcols[name], minlength=n_g)
    out["total_cost"] = (out["cpu_cost"] + out["ram_cost"] + out["gpu_cost"] + out["idle_cost"]
                         + out["shared_cost"])
    eff = efficiency(*(out[n] for n in USAGE), out["cpu_cost"], out["ram_cost"])
    for name, col in zip(EFFICIENCY, eff, strict=True):
        out[name] = col
    nonzero = out["kind"] != "idle"
    for name in QUANTITIES + ("cpu_cost", "ram_cost", "gpu_cost"):
        nonzero |= out[name] != 0
    # Order: step, workload before idle, most expensive first.
    order = np.lexsort((-out["total_cost"], (out["kind"] == "idle").astype(int), out["_step"]))
    order = order[nonzero[order]]
    return {name: col[order] for name, col in out.items()}


def _cluster_cost(cluster_ids: list[int], start: date, end: date) -> float:
    agg = ClusterDay.objects.filter(cluster_id__in=cluster_ids, day__gte=start, day__lt=end
                                    ).aggregate(n=_fsum("node_cost"), o=_fsum("overhead_cost"))
    return float((agg["n"] or 0.0) + (agg["o"] or 0.0))


# --- thin helpers for pages and other modules ---------------------------------------------------


def daily_totals(
    start: date, end: date, clusters: Iterable[str] = (), teams: frozenset[str] | None = None,
    policy: AllocationPolicy | None = None,
) -> dict[date, float]:
    """Total cost per day in [start, end): for everyone, the clusters' whole cost (node cost +
    overhead); for a restricted asker, their teams' lines (with idle and shared as the policy
    says). The daily series ``costapp.forecast`` works on."""
    clusters = tuple(clusters)
    if teams is None:
        qs = ClusterDay.objects.filter(day__gte=start, day__lt=end)
        if clusters:
            qs = qs.filter(cluster__name__in=clusters)
        rows = qs.values("day").annotate(n=_fsum("node_cost"), o=_fsum("overhead_cost"))
        return {r["day"]: (r["n"] or 0.0) + (r["o"] or 0.0) for r in rows}
    policy = policy or AllocationPolicy.current()
    q = AllocationQuery(start, end, ("team",), "day", policy.idle,
                        tuple(policy.shared_namespaces or ()), policy.shared_split, clusters,
                        {}, teams)
    ans = run(q)
    out: dict[date, float] = {}
    for d, v in zip(ans.columns["window_start"].tolist(), ans.columns["total_cost"].tolist(),
                    strict=True):
        out[d] = out.get(d, 0.0) + v
    return out


@dataclass(frozen=True)
class Notice:
    """Something the page must say about the data: ``level`` is ``info``, ``warn`` or ``bad``."""

    level: str
    title: str
    text: str


def data_status(start: date, end: date, clusters: Iterable[str] = (),
                now: datetime | None = None) -> list[Notice]:
    """Explain empty, partial and failing data for [start, end) so pages never show a missing
    number as zero: no clusters or samples, coverage gaps, days priced without a bill, a
    failing collector, days waiting to be (re)allocated."""
    now = now or datetime.now(UTC)
    qs = Cluster.objects.all()
    if clusters:
        qs = qs.filter(name__in=list(clusters))
    notices: list[Notice] = []
    cls = list(qs)
    if not cls:
        return [Notice("info", "No clusters yet",
                       "No cluster is registered. An admin adds one under Admin → Clusters; "
                       "costs appear after the first samples are collected and allocated.")]
    for c in cls:
        if c.health == Cluster.Health.FAILING:
            notices.append(Notice("bad", f"Collector failing on {c.name}",
                                  f"Last error: {c.last_error or 'unknown'}. Last good sample: "
                                  f"{c.last_sample_at or 'never'}. Costs after that are missing, "
                                  f"not zero."))
        elif c.last_sample_at is None:
            notices.append(Notice("info", f"No samples yet from {c.name}",
                                  "The collector has not stored a sample; there is no cost to "
                                  "show for this cluster yet."))
    ids = [c.id for c in cls]
    days = ClusterDay.objects.filter(cluster_id__in=ids, day__gte=start, day__lt=end)
    day_rows = list(days.values("cluster__name", "day", "priced_by", "dirty"))
    if not day_rows and not any(n.level == "info" for n in notices):
        notices.append(Notice("info", "No allocated data in this window",
                              f"Nothing has been allocated between {start} and "
                              f"{end - timedelta(days=1)}. Costs are missing, not zero."))
    unbilled: dict[str, list[date]] = {}
    dirty: dict[str, int] = {}
    for r in day_rows:
        if "bill" not in (r["priced_by"] or {}):
            unbilled.setdefault(r["cluster__name"], []).append(r["day"])
        if r["dirty"]:
            dirty[r["cluster__name"]] = dirty.get(r["cluster__name"], 0) + 1
    for name, ds in sorted(unbilled.items()):
        ds.sort()
        notices.append(Notice("warn", f"Bill not yet imported for {name}",
                              f"{len(ds)} day(s) from {ds[0]} to {ds[-1]} are priced from the "
                              f"catalog or default prices; they will be re-priced when the bill "
                              f"is imported."))
    for name, k in sorted(dirty.items()):
        notices.append(Notice("info", f"Recomputing {name}",
                              f"{k} day(s) have new data and are waiting to be re-allocated."))
    # Coverage gaps: complete past hours with less than 3600 covered seconds.
    lo = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hi = min(datetime(end.year, end.month, end.day, tzinfo=UTC),
             now.replace(minute=0, second=0, microsecond=0))
    gaps = (ClusterHour.objects.filter(cluster_id__in=ids, hour_start__gte=lo, hour_start__lt=hi,
                                       covered_seconds__lt=3600)
            .values("cluster__name").annotate(n=Sum(Value(1)),
                                              missing=Sum(3600 - F("covered_seconds"))))
    for g in gaps:
        notices.append(Notice("warn", f"Gap in coverage on {g['cluster__name']}",
                              f"{g['n']} hour(s) were not fully sampled (about "
                              f"{g['missing'] / 3600:.1f} h missing): costs of those hours are "
                              f"missing, not estimated."))
    return notices


def with_window(q: AllocationQuery, start: date, end: date) -> AllocationQuery:
    """The same query over another window."""
    return replace(q, start=start, end=end)


def days_in_month(d: date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def month_bounds(month: date) -> tuple[date, date]:
    return _month_start(month), _next_month(month)

