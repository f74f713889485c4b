"""Benchmark: allocate a synthetic cluster and report throughput, phases and peak memory.

The synthetic input is built directly as integer-coded columns (no Python loop per row), the
way a database export or the collector would hand it over.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from allocation.engine import allocate_parts, result_from_parts
from allocation.records import Categorical, NodeHours, Overhead, PodHours, Policy

__all__ = ["run_bench", "synthetic"]

PODS_PER_NODE_HOUR = 30
"""Average pods per node-hour (Kubernetes' default limit is 110 per node)."""
N_CLUSTERS = 3
N_NAMESPACES = 300
N_TEAMS = 40


def _cats(prefix: str, n: int) -> Categorical:
    cats = np.empty(n, dtype=object)
    cats[:] = [f"{prefix}{i}" for i in range(n)]
    return Categorical(np.zeros(0, np.int64), cats)


def _col(codes: np.ndarray, cats: Categorical) -> Categorical:
    return Categorical(codes.astype(np.int64), cats.categories)


def synthetic(pod_hours: int, hours: int = 24, seed: int = 1) -> tuple[NodeHours, PodHours]:
    """A cluster set with about ``pod_hours`` pod-hours over ``hours`` hours.

    Nodes are 16-core / 64 GiB (1 in 50 with 4 GPUs), on-demand or spot, about 30 pods per
    node-hour (Poisson), requests from 50 millicores to 2 cores, usage 10–130 % of request,
    so some nodes are over-committed. Namespace 0 is ``kube-system``.
    """
    rng = np.random.default_rng(seed)
    n_nodes = max(1, -(-pod_hours // (hours * PODS_PER_NODE_HOUR)))
    node_idx = np.repeat(np.arange(n_nodes, dtype=np.int64), hours)
    hour_idx = np.tile(np.arange(hours, dtype=np.int64), n_nodes)
    n_nh = node_idx.size
    t0 = int(np.datetime64("2024-09-01T00:00:00", "s").astype(np.int64))
    gpu_node = node_idx % 50 == 49
    spot = node_idx % 4 == 0
    nodes = NodeHours(
        cluster=_col(node_idx % N_CLUSTERS, _cats("cluster-", N_CLUSTERS)),
        node=_col(node_idx, _cats("node-", n_nodes)),
        hour_start=t0 + 3600 * hour_idx,
        hours=np.where(rng.random(n_nh) < 0.02, 0.5, 1.0),
        cpu_cores=np.full(n_nh, 16.0),
        ram_gib=np.full(n_nh, 64.0),
        gpus=np.where(gpu_node, 4.0, 0.0),
        cost=np.where(gpu_node, 5.672, np.where(spot, 0.31, 0.768)),
        node_pool=_col(node_idx % 12, _cats("pool-", 12)),
        capacity_type=Categorical(
            spot.astype(np.int64), np.array(["on-demand", "spot"], dtype=object)
        ),
    )
    # Pod-hours: sorted random node-hour per row, pod = (node, slot within the node-hour).
    nh = np.sort(rng.integers(0, n_nh, pod_hours))
    starts = np.searchsorted(nh, np.arange(n_nh))
    slot = np.arange(pod_hours, dtype=np.int64) - starts[nh]
    slots = int(slot.max(initial=0)) + 1
    pod_code = node_idx[nh] * slots + slot
    n_pod_codes = n_nodes * slots
    ns_of_pod = rng.integers(0, N_NAMESPACES, n_pod_codes)
    team_of_ns = rng.integers(0, N_TEAMS + 1, N_NAMESPACES)  # N_TEAMS = no team
    req_of_pod = rng.choice(np.array([0.05, 0.1, 0.25, 0.5, 1.0, 2.0]), n_pod_codes)
    ram_of_pod = rng.choice(np.array([0.125, 0.25, 0.5, 1.0, 2.0, 4.0]), n_pod_codes)
    ns = ns_of_pod[pod_code]
    cpu_request = req_of_pod[pod_code]
    ram_request = ram_of_pod[pod_code]
    team_cats = np.empty(N_TEAMS + 1, dtype=object)
    team_cats[:] = [f"team-{i}" for i in range(N_TEAMS)] + [None]
    ns_cats = _cats("ns-", N_NAMESPACES)
    ns_cats.categories[0] = "kube-system"
    gpu_request = np.where(gpu_node[nh] & (slot < 4), 1.0, 0.0)
    pods = PodHours(
        cluster=_col(node_idx[nh] % N_CLUSTERS, _cats("cluster-", N_CLUSTERS)),
        namespace=_col(ns, ns_cats),
        pod=Categorical(pod_code, np.array([f"pod-{i}" for i in range(n_pod_codes)], object)),
        node=_col(node_idx[nh], _cats("node-", n_nodes)),
        hour_start=t0 + 3600 * hour_idx[nh],
        hours=np.where(rng.random(pod_hours) < 0.05, 0.25, 1.0),
        cpu_request=cpu_request,
        cpu_usage=cpu_request * rng.uniform(0.1, 1.3, pod_hours),
        ram_request_gib=ram_request,
        ram_usage_gib=ram_request * rng.uniform(0.3, 1.2, pod_hours),
        gpu_request=gpu_request,
        team=Categorical(team_of_ns[ns], team_cats),
    )
    return nodes, pods


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_bench(pod_hours: int, seed: int = 1, hours: int = 24) -> dict[str, float]:
    """Generate, allocate by namespace and by team (share-by-cluster idle, kube-system shared,
    control-plane overhead), print figures, and return them."""
    t = time.perf_counter()
    nodes, pods = synthetic(pod_hours, hours=hours, seed=seed)
    gen = time.perf_counter() - t
    print(
        f"synthetic input: {len(pods):,} pod-hours on {len(nodes):,} node-hours "
        f"({hours} h) generated in {gen:.2f} s; peak RSS so far {_rss_mib():,.0f} MiB"
    )
    policy = Policy(
        idle="share-by-cluster",
        shared_namespaces=("kube-system",),
        overhead=tuple(Overhead(f"cluster-{i}", "control-plane", 0.10) for i in range(3)),
    )
    figures: dict[str, float] = {}
    for label, keys in (("namespace", ("cluster", "namespace")), ("team", ("team",))):
        timings: dict[str, float] = {}
        t = time.perf_counter()
        parts = allocate_parts(nodes, pods, policy, keys, "day", timings=timings)
        t_parts = time.perf_counter()
        result = result_from_parts(parts, policy)
        t_end = time.perf_counter()
        timings["result lines (idle choice, shared spread)"] = t_end - t_parts
        elapsed = t_end - t
        rate = len(pods) / elapsed
        figures[f"seconds_by_{label}"] = elapsed
        figures[f"pod_hours_per_second_by_{label}"] = rate
        print(
            f"\nallocate + aggregate by {', '.join(keys)} (step day): {elapsed:.2f} s, "
            f"{rate:,.0f} pod-hours/s, {len(result):,} lines"
        )
        for phase, secs in timings.items():
            print(f"  {phase:<44} {secs:6.2f} s")
        total = float(result["total_cost"].sum())
        expected = float(nodes.cost.sum()) + float(parts.overhead(policy.overhead).sum())
        print(f"  conservation: lines {total:,.6f} vs nodes + overhead {expected:,.6f}")
    figures["peak_rss_mib"] = _rss_mib()
    print(f"\npeak RSS {figures['peak_rss_mib']:,.0f} MiB")
    return figures
