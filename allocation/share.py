"""Idle sharing and the spreading of shared namespaces and overhead (ALLOCATION_SPEC.md §4, §5).

``spread_shared`` is the one implementation of §5: ``allocate`` calls it on its parts, and the
Django app calls it at query time on stored, already aggregated lines, so both give the same
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocation.aggregate import group_codes, weighted_sum
from allocation.records import BoolArray, FloatArray, IntArray

__all__ = ["IdleShare", "SharedSpread", "idle_share", "spread_shared"]


@dataclass(frozen=True)
class IdleShare:
    """How one resource's idle is shared, per node-hour."""

    pool: FloatArray
    """Per node-hour (or per group): idle money to share."""
    base: FloatArray
    """Per node-hour (or per group): Σ pod cost of the resource that the pool is shared by."""
    index: IntArray | None
    """Group of each node-hour (None: each node-hour is its own group)."""
    stays: BoolArray
    """Per node-hour: True where idle has no pod to go to and stays ``__idle__``."""

    def shares(self, cost: FloatArray, node_hour: IntArray) -> FloatArray:
        """Idle share of each pod-hour: pool · cost / base of its node-hour's group.

        Uses one precomputed factor pool/base when that is finite everywhere (the fast path),
        else cost/base · pool, which cannot overflow (cost ≤ base).
        """
        group = node_hour if self.index is None else self.index[node_hour]
        factor = np.zeros(self.base.shape, np.float64)
        with np.errstate(over="ignore"):
            np.divide(self.pool, self.base, out=factor, where=self.base > 0)
        if np.isfinite(factor).all():
            return cost * factor[group]
        base = self.base[group]
        ratio = np.zeros(cost.shape, np.float64)
        np.divide(cost, base, out=ratio, where=base > 0)
        return ratio * self.pool[group]


def idle_share(
    allocated_cost: FloatArray,
    idle: FloatArray,
    group: IntArray | None = None,
    n_groups: int = 0,
) -> IdleShare:
    """Share one resource's idle in proportion to the pods' cost of that resource (§4).

    Without ``group`` each node-hour's idle goes to its own pods (``share-by-node``). With
    ``group`` (the cluster-hour of each node-hour) the idle of all node-hours of a group goes to
    all pods of the group (``share-by-cluster``). Idle of a node-hour (or group) whose pods have
    no cost of that resource stays: ``stays`` is True there. ``IdleShare.shares`` gives each
    pod-hour's part.
    """
    if group is None:
        return IdleShare(idle, allocated_cost, None, allocated_cost <= 0)
    pool = weighted_sum(group, idle, minlength=n_groups)
    base = weighted_sum(group, allocated_cost, minlength=n_groups)
    return IdleShare(pool, base, group, (base <= 0)[group])


@dataclass(frozen=True)
class SharedSpread:
    """The result of ``spread_shared``."""

    shared_cost: FloatArray
    """Per input row: shared money it receives (0 on shared-namespace rows)."""
    unspread: FloatArray
    """Shape (n_clusters, n_steps): pool money of a cluster and step that had no line to go to;
    it becomes a workload line whose keys other than ``cluster`` are ``__shared__``."""
    pool: FloatArray
    """Shape (n_clusters, n_steps): the whole pool (shared namespaces' own cost + overhead)."""


def spread_shared(
    line: IntArray,
    cluster: IntArray,
    step: IntArray,
    is_shared: BoolArray,
    own_cost: FloatArray,
    overhead: FloatArray,
    split: str = "weighted",
) -> SharedSpread:
    """Spread shared namespaces' cost and overhead over the other workload lines (§5).

    Contract. Inputs are parallel arrays, one element per *row*; a row is a piece of a result
    line within one cluster and one step (rows may be finer, e.g. stored daily lines, as long
    as each row lies in one cluster, one step and one result line):

    * ``line`` — id of the result line the row belongs to (ignored on shared rows);
    * ``cluster``, ``step`` — codes, 0 ≤ cluster < n_clusters, 0 ≤ step < n_steps;
    * ``is_shared`` — the row belongs to a shared namespace: its ``own_cost`` joins the pool
      and the row leaves the result;
    * ``own_cost`` — cpu + ram + gpu cost + idle shared in (under the chosen idle policy);
    * ``overhead`` — shape (n_clusters, n_steps), overhead money accrued per cluster and step
      (hourly × hours in the step in which the cluster has node-hours);
    * ``split`` — ``weighted``: each non-shared row gets pool · own_cost / Σ own_cost of its
      cluster and step; ``even``: each result line with non-zero own cost in the cluster and
      step gets an equal part, divided among its rows by own cost.

    A cluster and step whose non-shared rows have no own cost at all keep their pool in
    ``unspread``. Idle lines must not be passed in: they never receive shared cost.
    Conservation: Σ shared_cost + Σ unspread = Σ pool, per cluster and step.
    """
    n_clusters, n_steps = overhead.shape
    m = n_clusters * n_steps
    cs = cluster * n_steps + step
    shared_own = np.where(is_shared, own_cost, 0.0)
    pool = weighted_sum(cs, shared_own, minlength=m) + overhead.reshape(-1)
    w = np.where(is_shared, 0.0, own_cost)
    if split == "even":
        receiving = ~is_shared
        idx = np.flatnonzero(receiving)
        grp, n_grp = group_codes(
            [(line[idx], int(line[idx].max(initial=-1)) + 1), (cs[idx], m)], idx.size
        )
        grp_own = weighted_sum(grp, w[idx], minlength=n_grp)
        grp_cs = np.zeros(n_grp, np.int64)
        grp_cs[grp] = cs[idx]
        counts = np.bincount(grp_cs[grp_own > 0], minlength=m).astype(np.float64)
        per_line = np.zeros(m, np.float64)
        np.divide(pool, counts, out=per_line, where=counts > 0)
        # Each line's equal part, divided among its rows by own cost.
        row_fraction = np.zeros(idx.size, np.float64)
        np.divide(w[idx], grp_own[grp], out=row_fraction, where=grp_own[grp] > 0)
        shared_cost = np.zeros(own_cost.shape, np.float64)
        shared_cost[idx] = row_fraction * per_line[grp_cs[grp]]
        has_receiver = counts > 0
    else:
        total = weighted_sum(cs, w, minlength=m)
        fraction = np.zeros(w.shape, np.float64)
        np.divide(w, total[cs], out=fraction, where=total[cs] > 0)
        shared_cost = fraction * pool[cs]
        has_receiver = total > 0
    unspread = np.where(has_receiver, 0.0, pool)
    return SharedSpread(
        shared_cost, unspread.reshape(n_clusters, n_steps), pool.reshape(n_clusters, n_steps)
    )
