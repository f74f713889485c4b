"""§4: idle per node-hour and the three idle policies, on a two-node example computed by hand.

Weights 1:1 make every price $1 per core-hour and per GiB-hour (basis: request).
  n1: 4 cores, 4 GiB, $8 → C_cpu 4, C_ram 4.   pods a (1 core, 2 GiB), b (1 core)
  n2: 2 cores, 2 GiB, $4 → C_cpu 2, C_ram 2.   pod  c (1 core)
Own cost: a 1+2 = 3, b 1, c 1. Idle: n1 cpu 2, ram 2; n2 cpu 1, ram 2 (nobody uses RAM on n2).
"""

from __future__ import annotations

import pytest

from allocation import Policy, allocate

from .helpers import by_key, hour, node, pod, tables

WEIGHTS = {"cpu": 1.0, "ram": 1.0}


def _world():  # type: ignore[no-untyped-def]
    return tables(
        [
            node("n1", cpu_cores=4, ram_gib=4, cost=8.0),
            node("n2", cpu_cores=2, ram_gib=2, cost=4.0),
        ],
        [
            pod("a", "a", "n1", cpu_request=1, ram_request_gib=2),
            pod("b", "b", "n1", cpu_request=1),
            pod("c", "c", "n2", cpu_request=1),
        ],
    )


def _run(idle: str, keys: tuple[str, ...] = ("namespace",)) -> dict:  # type: ignore[type-arg]
    nodes, pods = _world()
    return by_key(allocate(nodes, pods, Policy(basis="request", weights=WEIGHTS, idle=idle), keys))


def test_separate_idle_is_its_own_line_per_node() -> None:
    out = _run("separate", ("node", "namespace"))
    assert out[("workload", "n1", "a")]["total_cost"] == pytest.approx(3.0)
    assert out[("workload", "n1", "a")]["idle_cost"] == 0.0
    assert out[("idle", "n1", "__idle__")]["cpu_cost"] == pytest.approx(2.0)
    assert out[("idle", "n1", "__idle__")]["ram_cost"] == pytest.approx(2.0)
    assert out[("idle", "n1", "__idle__")]["idle_cost"] == 0.0
    assert out[("idle", "n2", "__idle__")]["total_cost"] == pytest.approx(3.0)
    assert out[("idle", "n2", "__idle__")]["ram_gib_hours"] == pytest.approx(2.0)


def test_share_by_node_gives_each_nodes_idle_to_its_pods_by_cost() -> None:
    out = _run("share-by-node")
    # a: own 3 + cpu idle 1 (half of n1's 2) + ram idle 2 (all of n1's) = 6
    assert out[("workload", "a")]["idle_cost"] == pytest.approx(3.0)
    assert out[("workload", "a")]["total_cost"] == pytest.approx(6.0)
    assert out[("workload", "b")]["total_cost"] == pytest.approx(2.0)
    assert out[("workload", "c")]["total_cost"] == pytest.approx(2.0)


def test_share_by_node_keeps_idle_nobody_on_the_node_used_as_idle() -> None:
    out = _run("share-by-node")
    idle = out[("idle", "__idle__")]
    assert idle["ram_cost"] == pytest.approx(2.0)  # n2's RAM: no pod used RAM there
    assert idle["cpu_cost"] == 0.0
    assert idle["ram_gib_hours"] == pytest.approx(2.0)
    assert idle["cpu_core_hours"] == 0.0


def test_share_by_cluster_pools_the_hours_idle_over_all_pods() -> None:
    out = _run("share-by-cluster")
    # cpu idle 3 over cpu cost a1 b1 c1; ram idle 4 all to a (only RAM user).
    assert out[("workload", "a")]["total_cost"] == pytest.approx(3 + 1 + 4)
    assert out[("workload", "b")]["total_cost"] == pytest.approx(2.0)
    assert out[("workload", "c")]["total_cost"] == pytest.approx(2.0)
    assert ("idle", "__idle__") not in out


def test_every_policy_conserves_the_node_cost() -> None:
    for idle in ("separate", "share-by-node", "share-by-cluster"):
        assert sum(v["total_cost"] for v in _run(idle).values()) == pytest.approx(12.0)


def test_an_idle_gpu_nobody_requested_stays_idle_under_every_policy() -> None:
    nodes, pods = tables([node(gpus=1, cost=2.0)], [pod(cpu_request=1)])
    for idle in ("separate", "share-by-node", "share-by-cluster"):
        out = by_key(allocate(nodes, pods, Policy(idle=idle)))
        assert out[("idle", "__idle__")]["gpu_cost"] > 0
        assert out[("workload", "ns")]["gpu_cost"] == 0.0


def test_idle_is_shared_hour_by_hour() -> None:
    # Hour 0: pod a alone uses the node; hour 1: pod b alone. Each hour's idle goes to that
    # hour's pod, even though the result is one window line per namespace.
    nodes, pods = tables(
        [node(hour_start=hour(0), cost=4.0), node(hour_start=hour(1), cost=4.0)],
        [
            pod("a", "a", hour_start=hour(0), cpu_request=1, ram_request_gib=1),
            pod("b", "b", hour_start=hour(1), cpu_request=3, ram_request_gib=3),
        ],
    )
    out = by_key(allocate(nodes, pods, Policy(basis="request", idle="share-by-cluster")))
    assert out[("workload", "a")]["total_cost"] == pytest.approx(4.0)
    assert out[("workload", "b")]["total_cost"] == pytest.approx(4.0)
