"""§3: what each pod is charged for, and the no-over-commit scaling."""

from __future__ import annotations

import pytest

from allocation import Policy, allocate

from .helpers import by_key, node, pod, tables

# One node: 4 cores, 4 GiB, $8/h, weights 1:1 → $1 per core-hour and per GiB-hour.
WEIGHTS = {"cpu": 1.0, "ram": 1.0}


def _alloc(basis: str, pods: list, **node_kw: float) -> dict:  # type: ignore[type-arg]
    nodes, pods_t = tables([node(cpu_cores=4, ram_gib=4, cost=8.0, **node_kw)], pods)
    result = allocate(nodes, pods_t, Policy(basis=basis, weights=WEIGHTS), ("namespace",))
    return by_key(result)


def test_max_basis_charges_the_larger_of_request_and_usage() -> None:
    out = _alloc("max", [pod(cpu_request=1, cpu_usage=2, ram_request_gib=1, ram_usage_gib=0.5)])
    assert out[("workload", "ns")]["cpu_cost"] == pytest.approx(2.0)
    assert out[("workload", "ns")]["ram_cost"] == pytest.approx(1.0)


def test_max_basis_prefers_alloc_columns_when_present() -> None:
    out = _alloc(
        "max",
        [pod(cpu_request=1, cpu_usage=2, cpu_alloc=2.5, ram_request_gib=1, ram_alloc_gib=1.5)],
    )
    assert out[("workload", "ns")]["cpu_core_hours"] == pytest.approx(2.5)
    assert out[("workload", "ns")]["ram_cost"] == pytest.approx(1.5)


def test_request_basis_charges_requests_only() -> None:
    out = _alloc("request", [pod(cpu_request=1, cpu_usage=3, ram_request_gib=2)])
    assert out[("workload", "ns")]["cpu_cost"] == pytest.approx(1.0)
    assert out[("workload", "ns")]["ram_cost"] == pytest.approx(2.0)


def test_usage_basis_charges_usage_only() -> None:
    out = _alloc("usage", [pod(cpu_request=1, cpu_usage=3, ram_usage_gib=0.5)])
    assert out[("workload", "ns")]["cpu_cost"] == pytest.approx(3.0)
    assert out[("workload", "ns")]["ram_cost"] == pytest.approx(0.5)


def test_quantity_is_alloc_times_the_pods_hours() -> None:
    out = _alloc("request", [pod(cpu_request=2, hours=0.25)])
    assert out[("workload", "ns")]["cpu_core_hours"] == pytest.approx(0.5)
    assert out[("workload", "ns")]["cpu_cost"] == pytest.approx(0.5)


def test_gpus_are_charged_by_request_whatever_the_basis() -> None:
    for basis in ("max", "request", "usage"):
        nodes, pods = tables(
            [node(cpu_cores=4, ram_gib=4, gpus=2, cost=10.0)], [pod(gpu_request=1)]
        )
        weights = {"cpu": 1.0, "ram": 1.0, "gpu": 1.0}
        out = by_key(allocate(nodes, pods, Policy(basis=basis, weights=weights)))
        assert out[("workload", "ns")]["gpu_cost"] == pytest.approx(1.0)
        assert out[("workload", "ns")]["gpu_hours"] == pytest.approx(1.0)


def test_over_committed_node_scales_charges_down_to_its_cost_and_idle_is_zero() -> None:
    # 6 cores requested on a 4-core node: each pod charged 4/6 of its share, quantities unscaled.
    out = _alloc(
        "request",
        [pod("a", "a", cpu_request=4), pod("b", "b", cpu_request=2)],
    )
    assert out[("workload", "a")]["cpu_cost"] == pytest.approx(4 * 4 / 6)
    assert out[("workload", "b")]["cpu_cost"] == pytest.approx(2 * 4 / 6)
    assert out[("workload", "a")]["cpu_core_hours"] == pytest.approx(4.0)
    idle = out[("idle", "__idle__")]
    assert idle["cpu_cost"] == 0.0
    assert idle["cpu_core_hours"] == 0.0
    assert idle["ram_cost"] == pytest.approx(4.0)


def test_node_that_is_not_over_committed_is_not_scaled() -> None:
    out = _alloc("request", [pod(cpu_request=3)])
    assert out[("workload", "ns")]["cpu_cost"] == pytest.approx(3.0)
    assert out[("idle", "__idle__")]["cpu_cost"] == pytest.approx(1.0)
    assert out[("idle", "__idle__")]["cpu_core_hours"] == pytest.approx(1.0)
