"""Node price per resource, pod charges, the no-over-commit scaling and idle per node-hour
(ALLOCATION_SPEC.md §2–§4).

Everything here is per node-hour (arrays of length N) or per pod-hour (length P) and vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from allocation.aggregate import group_codes, representatives
from allocation.errors import (
    E_DUPLICATE_NODE_HOUR,
    E_NO_NODE_HOUR,
    E_ZERO_WEIGHTED_CAPACITY,
    AllocationError,
)
from allocation.records import (
    HOUR,
    FloatArray,
    IntArray,
    NodeHours,
    ObjectArray,
    PodHours,
    Policy,
    format_timestamp,
)

__all__ = [
    "Charge",
    "Join",
    "charge",
    "join_pods_to_nodes",
    "node_prices",
    "pod_quantities",
    "split_node_cost",
]

RESOURCES = ("cpu", "ram", "gpu")


def split_node_cost(nodes: NodeHours, policy: Policy) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Split each node-hour's cost C into (C_cpu, C_ram, C_gpu) by reference weights (§2).

        D = cpu_cores·w_cpu + ram_gib·w_ram + gpus·w_gpu;   C_r = C · capacity_r·w_r / D

    The three parts sum to C. A node-hour with cost > 0 and D = 0 cannot be split and raises
    ``AllocationError``.
    """
    plain = policy.weights_for(has_gpu=False)
    gpu = policy.weights_for(has_gpu=True)
    has_gpu = nodes.gpus > 0
    w_cpu = np.where(has_gpu, gpu.cpu, plain.cpu)
    w_ram = np.where(has_gpu, gpu.ram, plain.ram)
    w_gpu = np.where(has_gpu, gpu.gpu, plain.gpu)
    part_cpu = nodes.cpu_cores * w_cpu
    part_ram = nodes.ram_gib * w_ram
    part_gpu = nodes.gpus * w_gpu
    d = part_cpu + part_ram + part_gpu
    bad = (d <= 0) & (nodes.cost > 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise AllocationError(
            E_ZERO_WEIGHTED_CAPACITY.format(
                source=nodes.source, row=nodes.row_of(i), column="cost", value=nodes.cost[i]
            )
        )
    scale = np.zeros(d.shape, np.float64)
    np.divide(nodes.cost, d, out=scale, where=d > 0)
    return part_cpu * scale, part_ram * scale, part_gpu * scale


def node_prices(nodes: NodeHours, policy: Policy) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Price per resource-hour of each node-hour: ($/core-hour, $/GiB-hour, $/GPU-hour).

    price_r = C_r / (capacity_r · hours); 0 where the node has none of that resource.
    """
    parts = split_node_cost(nodes, policy)
    caps = (nodes.cpu_cores, nodes.ram_gib, nodes.gpus)
    out = []
    for part, cap in zip(parts, caps, strict=True):
        k = cap * nodes.hours
        price = np.zeros(k.shape, np.float64)
        np.divide(part, k, out=price, where=k > 0)
        out.append(price)
    return out[0], out[1], out[2]


def pod_quantities(pods: PodHours, basis: str) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Charged resource-hours q = alloc · hours per pod-hour, by ``basis`` (§3).

    ``max``: cpu_alloc where known, else max(request, usage) (RAM likewise); ``request``;
    ``usage``. GPUs are always charged by request.
    """
    if basis == "request":
        cpu, ram = pods.cpu_request, pods.ram_request_gib
    elif basis == "usage":
        cpu, ram = pods.cpu_usage, pods.ram_usage_gib
    else:
        cpu = np.maximum(pods.cpu_request, pods.cpu_usage)
        ram = np.maximum(pods.ram_request_gib, pods.ram_usage_gib)
        if pods.cpu_alloc is not None:
            cpu = np.where(np.isnan(pods.cpu_alloc), cpu, pods.cpu_alloc)
        if pods.ram_alloc_gib is not None:
            ram = np.where(np.isnan(pods.ram_alloc_gib), ram, pods.ram_alloc_gib)
    return cpu * pods.hours, ram * pods.hours, pods.gpu_request * pods.hours


@dataclass(frozen=True)
class Join:
    """Where each pod-hour sits: its node-hour, and the hour grid of the input."""

    node_hour: IntArray
    """Per pod-hour: index of its node-hour in ``NodeHours``."""
    hour_index: IntArray
    """Per node-hour: (hour_start − first_hour) / 1h."""
    first_hour: int
    """Earliest node ``hour_start`` (epoch seconds)."""
    n_hours: int
    """Hours from the first to the last node hour_start, inclusive."""


def _lut_between(src: ObjectArray, dst: ObjectArray) -> IntArray:
    """For each value of ``src``, its index in ``dst`` (−1 when absent)."""
    where = {v: i for i, v in enumerate(dst.tolist()) if v is not None}
    return np.asarray([where.get(v, -1) for v in src.tolist()], dtype=np.int64).reshape(-1)


def _lookup_sorted(table: IntArray, values: IntArray) -> IntArray:
    """Index of each value in the ascending ``table`` (−1 when absent)."""
    if table.size == 0:
        return np.full(values.size, -1, np.int64)
    pos = np.searchsorted(table, values).clip(0, table.size - 1)
    return np.where(table[pos] == values, pos, -1).astype(np.int64)


def join_pods_to_nodes(nodes: NodeHours, pods: PodHours) -> Join:
    """Find the node-hour (same cluster, node and hour_start) of every pod-hour.

    Raises ``AllocationError`` for a duplicate node-hour or a pod-hour without a node-hour.
    """
    n = len(nodes)
    if n:
        first = int(nodes.hour_start.min())
        n_hours = (int(nodes.hour_start.max()) - first) // HOUR + 1
    else:
        first, n_hours = 0, 1
    node_hidx = (nodes.hour_start - first) // HOUR
    n_cl = len(nodes.cluster.categories)
    n_nd = len(nodes.node.categories)
    ident, n_ident = group_codes([(nodes.cluster.codes, n_cl), (nodes.node.codes, n_nd)], n)
    # 1. unique node-hour keys: node identity × hour.
    key_n = ident * n_hours + node_hidx
    space = n_ident * n_hours
    order = np.argsort(key_n, kind="stable")
    sorted_keys = key_n[order]
    dup = sorted_keys[1:] == sorted_keys[:-1]
    if dup.any():
        i = int(order[1:][dup].min())
        raise AllocationError(
            E_DUPLICATE_NODE_HOUR.format(
                source=nodes.source,
                row=nodes.row_of(i),
                column="hour_start",
                cluster=nodes.cluster.categories[nodes.cluster.codes[i]],
                node=nodes.node.categories[nodes.node.codes[i]],
                hour=format_timestamp(int(nodes.hour_start[i])),
            )
        )
    # 2. each pod's (cluster, node) → node identity, through the categories (not the rows).
    pair_n = nodes.cluster.codes * max(n_nd, 1) + nodes.node.codes
    pair_of_ident = pair_n[representatives(ident, n_ident)]  # sorted ascending
    cl = _lut_between(pods.cluster.categories, nodes.cluster.categories)[pods.cluster.codes]
    nd = _lut_between(pods.node.categories, nodes.node.categories)[pods.node.codes]
    pod_hidx = (pods.hour_start - first) // HOUR
    valid = (cl >= 0) & (nd >= 0) & (pod_hidx >= 0) & (pod_hidx < n_hours)
    pair_p = np.where(valid, cl * max(n_nd, 1) + nd, -1)
    if n_cl * max(n_nd, 1) <= 4 * (len(pods) + n) + (1 << 16):
        ident_lut = np.full(n_cl * max(n_nd, 1) + 1, -1, np.int64)
        ident_lut[pair_of_ident] = np.arange(n_ident, dtype=np.int64)
        ident_p = ident_lut[pair_p]  # pair −1 hits the trailing −1
    else:
        ident_p = _lookup_sorted(pair_of_ident, pair_p)
    valid &= ident_p >= 0
    key_p = np.where(valid, ident_p * n_hours + pod_hidx, 0)
    # 3. node-hour key → node-hour row.
    if space <= 4 * (len(pods) + n) + (1 << 16):
        lut = np.full(max(space, 1), -1, np.int64)
        lut[key_n] = np.arange(n, dtype=np.int64)
        nh = np.where(valid, lut[key_p], -1)
    else:
        pos = _lookup_sorted(sorted_keys, key_p)
        nh = np.where(valid & (pos >= 0), order[pos.clip(0)] if n else -1, -1)
    missing = nh < 0
    if missing.any():
        i = int(np.argmax(missing))
        raise AllocationError(
            E_NO_NODE_HOUR.format(
                source=pods.source,
                row=pods.row_of(i),
                column="node",
                cluster=pods.cluster.categories[pods.cluster.codes[i]],
                node=pods.node.categories[pods.node.codes[i]],
                hour=format_timestamp(int(pods.hour_start[i])),
            )
        )
    return Join(nh.astype(np.int64), node_hidx.astype(np.int64), first, n_hours)


@dataclass(frozen=True)
class Charge:
    """One resource on every node-hour after the no-over-commit scaling (§3, §4)."""

    factor: FloatArray
    """Money per charged resource-hour: cost_r(pod) = factor[node-hour] · q_r(pod)
    = price_r · min(1, K_r / A_r)."""
    allocated_cost: FloatArray
    """Σ cost_r over the node-hour's pods."""
    idle: FloatArray
    """idle_r = C_r − Σ cost_r, never negative (exactly 0 when A_r ≥ K_r)."""
    unallocated: FloatArray
    """max(K_r − A_r, 0) resource-hours."""


def charge(node_cost_r: FloatArray, capacity_hours: FloatArray, allocated: FloatArray) -> Charge:
    """Charge factor, allocated cost, idle and unallocated quantity per node-hour for one
    resource, given C_r, K_r = capacity_r · hours and A_r = Σ q_r.

    cost_r(pod) = price_r · q_r · min(1, K_r/A_r) = C_r · q_r / max(K_r, A_r): pods together
    never get more than C_r, so idle is never negative.
    """
    denom = np.maximum(capacity_hours, allocated)
    factor = np.zeros(denom.shape, np.float64)
    np.divide(node_cost_r, denom, out=factor, where=denom > 0)
    allocated_cost = factor * allocated
    idle = np.where(allocated >= capacity_hours, 0.0, node_cost_r - allocated_cost)
    idle = np.maximum(idle, 0.0)
    unallocated = np.maximum(capacity_hours - allocated, 0.0)
    return Charge(factor, allocated_cost, idle, unallocated)
