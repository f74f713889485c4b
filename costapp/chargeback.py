"""The monthly chargeback statement: per team, to the cent, adding up exactly.

Built on ``queries.run`` (so the numbers are the dashboard's) with the allocation policy's idle
policy, shared namespaces and split, aggregated by cluster, team, namespace and workload over the
month. Rounding: per cluster, every line (team lines, unassigned shared and idle lines) is rounded
to the cent in one ``round_largest_remainder`` pass, so all lines add up to the month's cluster
cost rounded to the cent; a team's total is the sum of its rounded lines; within a line, the cost
parts are rounded to add up to the line's rounded total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from allocation import round_largest_remainder
from costapp.models import IDLE, SHARED, AllocationPolicy, Team
from costapp.queries import AllocationQuery, month_bounds, run

__all__ = ["COLUMNS", "Statement", "statement"]

COLUMNS = ("team", "cost_centre", "cluster", "namespace", "workload_kind", "workload",
           "cpu_core_hours", "ram_gib_hours", "gpu_hours", "cpu_cost", "ram_cost", "gpu_cost",
           "idle_cost", "shared_cost", "total_cost", "allocation_method", "currency")
PARTS = ("cpu_cost", "ram_cost", "gpu_cost", "idle_cost", "shared_cost")
CENT = Decimal("0.01")


@dataclass
class Statement:
    """``lines``: dicts with ``COLUMNS`` (money as Decimal to the cent); ``teams``: per (team,
    currency) the total; ``clusters``: per cluster the rounded month cost and its idle and
    unassigned shared amounts (only for askers who see everything)."""

    month: date
    method: str
    lines: list[dict] = field(default_factory=list)
    teams: list[dict] = field(default_factory=list)
    clusters: list[dict] = field(default_factory=list)

    def rows(self):
        for line in self.lines:
            yield [line[c] for c in COLUMNS]


def _round_to(amounts: list[float], total: Decimal) -> list[Decimal]:
    """Largest-remainder rounding of ``amounts`` to cents, then move the one or two cents by which
    Σ differs from ``total`` (the line's total from the cluster-wide pass) onto the parts with
    the largest (or, when taking away, the smallest) remainders."""
    parts = round_largest_remainder(amounts)
    diff = int((total - sum(parts, Decimal(0))) / CENT)
    if diff:
        rema = [Decimal(repr(float(a))) - p for a, p in zip(amounts, parts, strict=True)]
        order = sorted(range(len(parts)), key=lambda i: -rema[i] if diff > 0 else rema[i])
        for k in range(abs(diff)):
            parts[order[k % len(parts)]] += CENT if diff > 0 else -CENT
    return parts


def statement(month: date, teams: frozenset[str] | None = None, team: str | None = None,
              clusters: tuple[str, ...] = ()) -> Statement:
    """The statement for ``month`` (any date in it), for an asker who sees ``teams`` (``None``:
    all, including idle and shared lines), optionally one ``team`` only."""
    policy = AllocationPolicy.current()
    idle = policy.idle or "separate"
    start, end = month_bounds(month)
    q = AllocationQuery(start, end, ("cluster", "team", "namespace", "controller_kind",
                                     "controller"), "window", idle,
                        tuple(policy.shared_namespaces or ()), policy.shared_split or "weighted",
                        clusters)
    ans = run(q)
    method = f"{policy.method} idle={idle} shared={policy.shared_split}"
    if policy.shared_namespaces:
        method += f" ({'+'.join(policy.shared_namespaces)})"
    cols = {k: v.tolist() for k, v in ans.columns.items()}
    n = len(ans)
    from costapp.models import Cluster
    currency_of = dict(Cluster.objects.values_list("name", "currency"))
    centre_of = {t: c or "" for t, c in Team.objects.values_list("name", "cost_centre__code")}
    out = Statement(start, method)
    by_cluster: dict[str, list[int]] = {}
    for i in range(n):
        by_cluster.setdefault(cols["cluster"][i], []).append(i)
    rounded: dict[int, Decimal] = {}
    for cl, idx in by_cluster.items():
        for i, r in zip(idx, round_largest_remainder([cols["total_cost"][i] for i in idx]),
                        strict=True):
            rounded[i] = r
        if teams is None:
            idle_sum = sum((rounded[i] for i in idx if cols["kind"][i] == "idle"), Decimal(0))
            shared_sum = sum((rounded[i] for i in idx if cols["team"][i] == SHARED), Decimal(0))
            out.clusters.append({"cluster": cl, "currency": currency_of.get(cl, ""),
                                 "total_cost": sum((rounded[i] for i in idx), Decimal(0)),
                                 "idle_cost": idle_sum, "unassigned_shared_cost": shared_sum})
    totals: dict[tuple[str, str], Decimal] = {}
    for i in range(n):
        name = cols["team"][i]
        if cols["kind"][i] == "idle":
            name = IDLE
        if teams is not None and name not in teams:
            continue
        if team and name != team:
            continue
        parts = _round_to([cols[p][i] for p in PARTS], rounded[i])
        cur = currency_of.get(cols["cluster"][i], "")
        line = {
            "team": name, "cost_centre": centre_of.get(name, ""),
            "cluster": cols["cluster"][i], "namespace": cols["namespace"][i],
            "workload_kind": cols["controller_kind"][i], "workload": cols["controller"][i],
            "cpu_core_hours": round(cols["cpu_core_hours"][i], 3),
            "ram_gib_hours": round(cols["ram_gib_hours"][i], 3),
            "gpu_hours": round(cols["gpu_hours"][i], 3),
            **dict(zip(PARTS, parts, strict=True)),
            "total_cost": rounded[i], "allocation_method": method, "currency": cur,
        }
        out.lines.append(line)
        totals[(name, cur)] = totals.get((name, cur), Decimal(0)) + rounded[i]
    out.lines.sort(key=lambda r: (r["team"] in (IDLE, SHARED), r["team"], r["cluster"],
                                  -r["total_cost"], r["namespace"], r["workload"]))
    out.teams = [{"team": t, "cost_centre": centre_of.get(t, ""), "currency": c, "total_cost": v}
                 for (t, c), v in sorted(totals.items(),
                                         key=lambda kv: (kv[0][0] in (IDLE, SHARED), kv[0][0]))]
    return out
