"""The allocation pipeline: ``allocate_parts`` (one vectorised pass) and ``allocate`` (parts +
the chosen idle column + ``spread_shared``). There is exactly one implementation of each rule.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from allocation.aggregate import (
    IDLE,
    NODE_KEYS,
    SHARED,
    UNALLOCATED,
    check_keys,
    check_step,
    constant_categorical,
    display_categorical,
    efficiency,
    group_codes,
    representatives,
    step_table,
    weighted_sum,
)
from allocation.records import (
    BoolArray,
    Categorical,
    FloatArray,
    IdleColumns,
    IdleParts,
    IntArray,
    NodeHours,
    ObjectArray,
    Parts,
    PodHours,
    Policy,
    Result,
    WorkloadParts,
)
from allocation.share import idle_share, spread_shared
from allocation.split import charge, join_pods_to_nodes, pod_quantities, split_node_cost

__all__ = ["allocate", "allocate_parts", "result_from_parts"]

_DEFAULT_POLICY = Policy()


def _key_columns(
    key: str, nodes: NodeHours, pods: PodHours, node_hour: IntArray
) -> tuple[Categorical, Categorical | None]:
    """(value per pod-hour, value per node-hour or None for pod-side keys) of one key, with
    display categories (missing → ``__unallocated__``)."""
    if key in NODE_KEYS:
        per_node = display_categorical(getattr(nodes, key))
        return Categorical(per_node.codes[node_hour], per_node.categories), per_node
    if key.startswith("label:"):
        return display_categorical(pods.label_values(key[len("label:") :])), None
    col = getattr(pods, key)
    if col is None:
        return constant_categorical(len(pods), UNALLOCATED), None
    return display_categorical(col), None


def allocate_parts(
    nodes: NodeHours,
    pods: PodHours,
    policy: Policy = _DEFAULT_POLICY,
    keys: Sequence[str] = ("namespace",),
    step: str = "window",
    *,
    validate: bool = True,
    timings: dict[str, float] | None = None,
) -> Parts:
    """Allocate in one pass and return the parts every idle policy can be chosen from.

    Uses ``policy.basis`` and ``policy.weights``. ``policy.idle``, ``shared_split`` and
    ``overhead`` are ignored; ``policy.shared_namespaces`` only sets ``is_shared`` on workload
    parts (nothing is spread). Workload parts are split by (keys, cluster, step, is_shared);
    idle parts by (node-side keys, cluster, step). See ``Parts`` for every column.

    Steps:
      1. validate the inputs and find each pod-hour's node-hour;
      2. split each node-hour's cost into C_cpu, C_ram, C_gpu (§2);
      3. charge each pod-hour q_r · C_r / max(K_r, A_r) (§3) — never more than the node;
      4. idle per node-hour, and the factors that share it by node and by cluster-hour (§4);
      5. sum everything per part with bincount.

    ``validate=False`` skips the per-column checks (for tables already validated).
    ``timings``, when given, receives seconds per phase (for the benchmark).
    """
    clock = _Clock(timings)
    keys = check_keys(keys)
    check_step(step)
    if validate:
        nodes.validate()
        pods.validate()
    clock.lap("validate")
    # 1. join and the hour / step grid.
    join = join_pods_to_nodes(nodes, pods)
    clock.lap("join")
    nh = join.node_hour
    n_nodes, n_pods = len(nodes), len(pods)
    hour_step, step_starts, step_ends = step_table(join.first_hour, join.n_hours, step)
    n_steps = int(step_starts.size)
    step_nh = hour_step[join.hour_index]
    step_p = step_nh[nh]
    n_cl = len(nodes.cluster.categories)
    cluster_nh = nodes.cluster.codes
    cluster_p = cluster_nh[nh]
    ch, n_ch = group_codes([(cluster_nh, n_cl), (join.hour_index, join.n_hours)], n_nodes)
    rep_ch = representatives(ch, n_ch)
    cs_nh = cluster_nh * n_steps + step_nh
    cluster_hours = np.bincount(cs_nh[rep_ch], minlength=n_cl * n_steps).reshape(n_cl, n_steps)
    node_cost = weighted_sum(cs_nh, nodes.cost, minlength=n_cl * n_steps)

    # Key columns and part ids.
    key_pod: dict[str, Categorical] = {}
    key_node: dict[str, Categorical | None] = {}
    for key in keys:
        key_pod[key], key_node[key] = _key_columns(key, nodes, pods, nh)
    shared_set = set(policy.shared_namespaces)
    if shared_set:
        ns_lut = np.asarray([c in shared_set for c in pods.namespace.categories.tolist()], bool)
        shared_p: BoolArray = ns_lut[pods.namespace.codes].reshape(-1)
    else:
        shared_p = np.zeros(n_pods, bool)
    columns = [(key_pod[k].codes, len(key_pod[k].categories)) for k in keys]
    columns += [(cluster_p, n_cl), (step_p, n_steps), (shared_p.astype(np.int64), 2)]
    g, n_g = group_codes(columns, n_pods)
    rep_g = representatives(g, n_g)
    clock.lap("keys and grouping")

    def total(values: FloatArray) -> FloatArray:
        return weighted_sum(g, values, minlength=n_g)

    # Idle parts: node-side keys, cluster, step, over node-hours.
    idle_columns: list[tuple[IntArray, int]] = []
    for key in keys:
        per_node = key_node[key]
        if per_node is not None:
            idle_columns.append((per_node.codes, len(per_node.categories)))
    idle_columns += [(cluster_nh, n_cl), (step_nh, n_steps)]
    gi, n_gi = group_codes(idle_columns, n_nodes)
    rep_gi = representatives(gi, n_gi)

    def idle_total(values: FloatArray) -> FloatArray:
        return weighted_sum(gi, values, minlength=n_gi)

    # 2.–5. per resource.
    splits = split_node_cost(nodes, policy)
    quantities = pod_quantities(pods, policy.basis)
    capacities = (nodes.cpu_cores, nodes.ram_gib, nodes.gpus)
    sums: dict[str, FloatArray] = {}
    idle_sep: list[FloatArray] = []
    idle_node: list[FloatArray] = []
    idle_cluster: list[FloatArray] = []
    idle_by_node = np.zeros(n_g)
    idle_by_cluster = np.zeros(n_g)
    for r, (c_r, q_r, cap) in enumerate(zip(splits, quantities, capacities, strict=True)):
        name = ("cpu", "ram", "gpu")[r]
        sums[name + "_hours"] = total(q_r)
        allocated = weighted_sum(nh, q_r, minlength=n_nodes)
        ch_r = charge(c_r, cap * nodes.hours, allocated)
        by_node = idle_share(ch_r.allocated_cost, ch_r.idle)
        by_cluster = idle_share(ch_r.allocated_cost, ch_r.idle, ch, n_ch)
        if q_r.any():
            cost = q_r * ch_r.factor[nh]
            sums[name + "_cost"] = total(cost)
            idle_by_node += total(by_node.shares(cost, nh))
            idle_by_cluster += total(by_cluster.shares(cost, nh))
            del cost
        else:
            sums[name + "_cost"] = np.zeros(n_g)
        idle_sep += [idle_total(ch_r.unallocated), idle_total(ch_r.idle)]
        idle_node += [
            idle_total(np.where(by_node.stays, ch_r.unallocated, 0.0)),
            idle_total(np.where(by_node.stays, ch_r.idle, 0.0)),
        ]
        idle_cluster += [
            idle_total(np.where(by_cluster.stays, ch_r.unallocated, 0.0)),
            idle_total(np.where(by_cluster.stays, ch_r.idle, 0.0)),
        ]

    clock.lap("price, charge, idle")
    workload = WorkloadParts(
        keys={k: Categorical(key_pod[k].codes[rep_g], key_pod[k].categories) for k in keys},
        cluster=cluster_p[rep_g],
        step=step_p[rep_g],
        is_shared=shared_p[rep_g],
        cpu_core_hours=sums["cpu_hours"],
        ram_gib_hours=sums["ram_hours"],
        gpu_hours=sums["gpu_hours"],
        cpu_cost=sums["cpu_cost"],
        ram_cost=sums["ram_cost"],
        gpu_cost=sums["gpu_cost"],
        idle_by_node=idle_by_node,
        idle_by_cluster=idle_by_cluster,
        cpu_usage_core_hours=total(pods.cpu_usage * pods.hours),
        cpu_request_core_hours=total(pods.cpu_request * pods.hours),
        ram_usage_gib_hours=total(pods.ram_usage_gib * pods.hours),
        ram_request_gib_hours=total(pods.ram_request_gib * pods.hours),
    )
    idle_keys: dict[str, Categorical] = {}
    for key in keys:
        per_node = key_node[key]
        if per_node is None:
            idle_keys[key] = constant_categorical(n_gi, IDLE)
        else:
            idle_keys[key] = Categorical(per_node.codes[rep_gi], per_node.categories)

    def idle_cols(v: list[FloatArray]) -> IdleColumns:
        return IdleColumns(v[0], v[2], v[4], v[1], v[3], v[5])

    idle = IdleParts(
        keys=idle_keys,
        cluster=cluster_nh[rep_gi],
        step=step_nh[rep_gi],
        separate=idle_cols(idle_sep),
        by_node=idle_cols(idle_node),
        by_cluster=idle_cols(idle_cluster),
    )
    clock.lap("usage sums, idle parts")
    return Parts(
        keys=keys,
        step=step,
        clusters=nodes.cluster.categories,
        step_starts=step_starts,
        step_ends=step_ends,
        cluster_hours=cluster_hours.astype(np.int64),
        node_cost=node_cost.reshape(n_cl, n_steps),
        workload=workload,
        idle=idle,
    )


class _Clock:
    """Records seconds per phase into a dict when one is given."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


@dataclass
class _Block:
    kind: str
    keys: dict[str, ObjectArray]
    step: IntArray
    values: dict[str, FloatArray]


_SUMMED = (
    "cpu_core_hours",
    "ram_gib_hours",
    "gpu_hours",
    "cpu_cost",
    "ram_cost",
    "gpu_cost",
    "idle_cost",
    "shared_cost",
    "cpu_usage_core_hours",
    "cpu_request_core_hours",
    "ram_usage_gib_hours",
    "ram_request_gib_hours",
)


def result_from_parts(parts: Parts, policy: Policy) -> Result:
    """Apply ``policy.idle``, then spread shared namespaces and overhead, then sum parts into
    result lines. This is how ``allocate`` finishes; the Django app does the same at query time
    on stored lines (choose the idle column, call ``spread_shared``, sum)."""
    keys = parts.keys
    n_steps = int(parts.step_starts.size)
    w = parts.workload
    idle_in = w.idle_share(policy.idle)
    own = w.cpu_cost + w.ram_cost + w.gpu_cost + idle_in
    idx = np.flatnonzero(~w.is_shared)
    line_cols = [(w.keys[k].codes[idx], len(w.keys[k].categories)) for k in keys]
    line_cols.append((w.step[idx], n_steps))
    line_sub, n_lines = group_codes(line_cols, idx.size)
    line = np.full(len(w), -1, np.int64)
    line[idx] = line_sub
    spread = spread_shared(
        line,
        w.cluster,
        w.step,
        w.is_shared,
        own,
        parts.overhead(policy.overhead),
        policy.shared_split,
    )
    rep = idx[representatives(line_sub, n_lines)]
    part_values: dict[str, FloatArray] = {
        "idle_cost": idle_in,
        "shared_cost": spread.shared_cost,
    }
    for name in _SUMMED:
        if name not in part_values:
            part_values[name] = getattr(w, name)
    blocks = [
        _Block(
            "workload",
            {k: w.keys[k].categories[w.keys[k].codes[rep]] for k in keys},
            w.step[rep],
            {
                name: weighted_sum(line_sub, part_values[name][idx], minlength=n_lines)
                for name in _SUMMED
            },
        )
    ]
    # Pools with no line to go to stay as `__shared__` workload lines.
    cl_i, st_i = np.nonzero(spread.unspread > 0)
    amounts = spread.unspread[cl_i, st_i]
    if "cluster" not in keys:
        st_u, inverse = np.unique(st_i, return_inverse=True)
        amounts = weighted_sum(inverse.reshape(-1), amounts, minlength=st_u.size)
        st_i, cl_i = st_u, np.full(st_u.size, -1)
    if amounts.size:
        shared_keys = {}
        for k in keys:
            col = np.full(amounts.size, SHARED, dtype=object)
            if k == "cluster":
                col[:] = parts.clusters[cl_i]
            shared_keys[k] = col
        values = {name: np.zeros(amounts.size) for name in _SUMMED}
        values["shared_cost"] = amounts.astype(np.float64)
        blocks.append(_Block("workload", shared_keys, st_i.astype(np.int64), values))
    # Idle lines.
    ip = parts.idle
    cols = ip.for_policy(policy.idle)
    idle_line_cols = [(ip.keys[k].codes, len(ip.keys[k].categories)) for k in keys]
    idle_line_cols.append((ip.step, n_steps))
    gi, n_gi = group_codes(idle_line_cols, len(ip))
    rep_i = representatives(gi, n_gi)

    def isum(v: FloatArray) -> FloatArray:
        return weighted_sum(gi, v, minlength=n_gi)

    idle_values = {name: np.zeros(n_gi) for name in _SUMMED}
    for name in (
        "cpu_core_hours",
        "ram_gib_hours",
        "gpu_hours",
        "cpu_cost",
        "ram_cost",
        "gpu_cost",
    ):
        idle_values[name] = isum(getattr(cols, name))
    nonzero = np.zeros(n_gi, bool)
    for v in idle_values.values():
        nonzero |= v != 0
    keep = np.flatnonzero(nonzero)
    blocks.append(
        _Block(
            "idle",
            {k: ip.keys[k].categories[ip.keys[k].codes[rep_i[keep]]] for k in keys},
            ip.step[rep_i[keep]],
            {name: v[keep] for name, v in idle_values.items()},
        )
    )
    return _assemble(keys, blocks, parts)


def _assemble(keys: tuple[str, ...], blocks: list[_Block], parts: Parts) -> Result:
    """Concatenate blocks, add totals and efficiency, sort lines."""
    kind = (
        np.concatenate([np.full(b.step.size, b.kind, dtype=object) for b in blocks])
        if blocks
        else np.zeros(0, object)
    )
    step = np.concatenate([b.step for b in blocks]).astype(np.int64)
    cols: dict[str, npt.NDArray[Any]] = {"kind": kind}
    for k in keys:
        cols[k] = np.concatenate([b.keys[k].astype(object) for b in blocks])
    starts = parts.step_starts[step] if step.size else np.zeros(0, np.int64)
    ends = parts.step_ends[step] if step.size else np.zeros(0, np.int64)
    cols["window_start"] = starts.astype("datetime64[s]")
    cols["window_end"] = ends.astype("datetime64[s]")
    for name in _SUMMED:
        cols[name] = np.concatenate([b.values[name] for b in blocks]).astype(np.float64)
    cols["total_cost"] = (
        cols["cpu_cost"]
        + cols["ram_cost"]
        + cols["gpu_cost"]
        + cols["idle_cost"]
        + cols["shared_cost"]
    )
    cpu_eff, ram_eff, total_eff = efficiency(
        cols["cpu_usage_core_hours"],
        cols["cpu_request_core_hours"],
        cols["ram_usage_gib_hours"],
        cols["ram_request_gib_hours"],
        cols["cpu_cost"],
        cols["ram_cost"],
    )
    cols["cpu_efficiency"] = cpu_eff
    cols["ram_efficiency"] = ram_eff
    cols["total_efficiency"] = total_eff
    # Sort: step start, workload before idle, then keys.
    sort_keys: list[npt.NDArray[np.int64]] = []
    for k in reversed(keys):
        _, rank = np.unique(cols[k].astype(str), return_inverse=True)
        sort_keys.append(rank.reshape(-1).astype(np.int64))
    sort_keys.append((kind == "idle").astype(np.int64))
    sort_keys.append(starts.astype(np.int64))
    order = np.lexsort(sort_keys) if kind.size else np.zeros(0, np.int64)
    return Result(keys, {name: col[order] for name, col in cols.items()})


def allocate(
    nodes: NodeHours,
    pods: PodHours,
    policy: Policy = _DEFAULT_POLICY,
    aggregate: Sequence[str] = ("namespace",),
    step: str = "window",
) -> Result:
    """Allocate node cost to pods and aggregate (ALLOCATION_SPEC.md §2–§7).

    ``aggregate``: any combination of cluster, node, node_pool, capacity_type, namespace,
    controller_kind, controller, pod, team, label:<key>. ``step``: hour, day, month, window.
    Returns workload lines (including ``__shared__`` pools that had no line to go to) and idle
    lines. Raises ``AllocationError`` for bad input. Implemented as ``allocate_parts`` +
    ``result_from_parts``.
    """
    keys = check_keys(aggregate)
    parts = allocate_parts(nodes, pods, policy, keys, step)
    return result_from_parts(parts, policy)
