"""§5: shared namespaces and overhead, split weighted or even.

One node, 10 cores, $10/h, all cost on CPU → $1 per core-hour (basis request, idle separate).
app1 4 cores ($4), app2 1 core ($1), kube-system 2 cores ($2), idle $3; overhead $0.50/h.
Pool = 2 + 0.5 = 2.5.
"""

from __future__ import annotations

import pytest

from allocation import Overhead, Policy, allocate

from .helpers import by_key, hour, node, pod, tables

CPU_ONLY = {"cpu": 1.0}


def _world(**pod_kw: object):  # type: ignore[no-untyped-def]
    return tables(
        [node(cpu_cores=10, cost=10.0)],
        [
            pod("a", "app1", cpu_request=4),
            pod("b", "app2", cpu_request=1),
            pod("k", "kube-system", cpu_request=2),
        ],
    )


def _policy(split: str, **kw: object) -> Policy:
    return Policy(
        basis="request",
        weights=CPU_ONLY,
        shared_namespaces=("kube-system",),
        shared_split=split,
        overhead=(Overhead("c", "control-plane", 0.5),),
        **kw,  # type: ignore[arg-type]
    )


def test_weighted_split_follows_own_cost() -> None:
    nodes, pods = _world()
    out = by_key(allocate(nodes, pods, _policy("weighted")))
    assert out[("workload", "app1")]["shared_cost"] == pytest.approx(2.0)
    assert out[("workload", "app2")]["shared_cost"] == pytest.approx(0.5)
    assert out[("workload", "app1")]["total_cost"] == pytest.approx(6.0)
    assert ("workload", "kube-system") not in out


def test_even_split_gives_each_line_the_same() -> None:
    nodes, pods = _world()
    out = by_key(allocate(nodes, pods, _policy("even")))
    assert out[("workload", "app1")]["shared_cost"] == pytest.approx(1.25)
    assert out[("workload", "app2")]["shared_cost"] == pytest.approx(1.25)


def test_idle_lines_never_receive_shared_cost() -> None:
    nodes, pods = _world()
    out = by_key(allocate(nodes, pods, _policy("weighted")))
    assert out[("idle", "__idle__")]["shared_cost"] == 0.0
    assert out[("idle", "__idle__")]["total_cost"] == pytest.approx(3.0)
    assert sum(v["total_cost"] for v in out.values()) == pytest.approx(10.5)


def test_shared_namespace_cost_includes_its_idle_share() -> None:
    nodes, pods = _world()
    out = by_key(allocate(nodes, pods, _policy("weighted", idle="share-by-node")))
    # kube-system own 2 + idle 3·2/7 → pool 2 + 6/7 + 0.5; app1 own 4 + 12/7.
    pool = 2 + 6 / 7 + 0.5
    own1, own2 = 4 + 12 / 7, 1 + 3 / 7
    assert out[("workload", "app1")]["shared_cost"] == pytest.approx(pool * own1 / (own1 + own2))
    assert sum(v["total_cost"] for v in out.values()) == pytest.approx(10.5)


def test_without_shared_namespaces_kube_system_is_an_ordinary_line() -> None:
    nodes, pods = _world()
    out = by_key(allocate(nodes, pods, Policy(basis="request", weights=CPU_ONLY)))
    assert out[("workload", "kube-system")]["total_cost"] == pytest.approx(2.0)


def test_overhead_accrues_per_hour_with_node_hours_not_per_node() -> None:
    nodes, pods = tables(
        [
            node("n1", cpu_cores=10, cost=10.0, hour_start=hour(0)),
            node("n2", cpu_cores=10, cost=10.0, hour_start=hour(0)),
            node("n1", cpu_cores=10, cost=10.0, hour_start=hour(1)),
        ],
        [pod("a", "app1", "n1", cpu_request=1, hour_start=hour(0))],
    )
    policy = Policy(overhead=(Overhead("c", "cp", 0.5), Overhead("elsewhere", "cp", 9.0)))
    out = by_key(allocate(nodes, pods, policy))
    assert out[("workload", "app1")]["shared_cost"] == pytest.approx(1.0)  # 2 hours × 0.5


def test_cluster_with_no_other_workload_keeps_its_pool_as_a_shared_line() -> None:
    nodes, pods = tables(
        [node(cpu_cores=10, cost=10.0), node("m", cluster="c2", cpu_cores=10, cost=10.0)],
        [
            pod("a", "app1", cpu_request=4),
            pod("k", "kube-system", "m", cluster="c2", cpu_request=2),
        ],
    )
    policy = Policy(
        basis="request",
        weights=CPU_ONLY,
        shared_namespaces=("kube-system",),
        overhead=(Overhead("c2", "cp", 0.5),),
    )
    out = by_key(allocate(nodes, pods, policy, ("cluster", "namespace")))
    shared = out[("workload", "c2", "__shared__")]
    assert shared["shared_cost"] == pytest.approx(2.5)
    assert shared["total_cost"] == pytest.approx(2.5)
    assert out[("workload", "c", "app1")]["shared_cost"] == 0.0
    out_ns = by_key(allocate(nodes, pods, policy, ("namespace",)))
    assert out_ns[("workload", "__shared__")]["total_cost"] == pytest.approx(2.5)


def test_a_line_spanning_clusters_takes_its_share_in_each_cluster() -> None:
    # app1 runs in both clusters; app2 only in c. c's pool (kube-system 2) is split between
    # app1's and app2's c parts; c2's pool (overhead 1) goes to app1 alone.
    nodes, pods = tables(
        [node(cpu_cores=10, cost=10.0), node("m", cluster="c2", cpu_cores=10, cost=10.0)],
        [
            pod("a", "app1", cpu_request=1),
            pod("b", "app2", cpu_request=3),
            pod("k", "kube-system", cpu_request=2),
            pod("a2", "app1", "m", cluster="c2", cpu_request=5),
        ],
    )
    policy = Policy(
        basis="request",
        weights=CPU_ONLY,
        shared_namespaces=("kube-system",),
        overhead=(Overhead("c2", "cp", 1.0),),
    )
    out = by_key(allocate(nodes, pods, policy, ("namespace",)))
    assert out[("workload", "app1")]["shared_cost"] == pytest.approx(2 * 1 / 4 + 1.0)
    assert out[("workload", "app2")]["shared_cost"] == pytest.approx(2 * 3 / 4)
    even = by_key(allocate(nodes, pods, Policy(**{**policy.__dict__, "shared_split": "even"})))
    assert even[("workload", "app1")]["shared_cost"] == pytest.approx(1.0 + 1.0)
    assert even[("workload", "app2")]["shared_cost"] == pytest.approx(1.0)


def test_even_split_skips_lines_with_zero_own_cost() -> None:
    nodes, pods = tables(
        [node(cpu_cores=10, cost=10.0)],
        [
            pod("a", "app1", cpu_request=4),
            pod("z", "zero"),
            pod("k", "kube-system", cpu_request=2),
        ],
    )
    policy = Policy(
        basis="request", weights=CPU_ONLY, shared_namespaces=("kube-system",), shared_split="even"
    )
    out = by_key(allocate(nodes, pods, policy))
    assert out[("workload", "app1")]["shared_cost"] == pytest.approx(2.0)
    assert out[("workload", "zero")]["shared_cost"] == 0.0
