"""§2: a node-hour's cost split into CPU, RAM and GPU prices by reference weights."""

from __future__ import annotations

import pytest

from allocation import AllocationError, NodeHours, Policy, node_prices, split_node_cost

from .helpers import node


def test_opencost_weights_price_an_m5_xlarge_like_opencost() -> None:
    nodes = NodeHours.from_records([node(cpu_cores=4, ram_gib=16, cost=0.192)])
    cpu, ram, gpu = node_prices(nodes, Policy(weights="opencost"))
    assert round(float(cpu[0]), 6) == 0.031247
    assert round(float(ram[0]), 7) == 0.0041882
    assert gpu[0] == 0.0


def test_aws_split_gives_nine_to_one_between_vcpu_and_gib() -> None:
    nodes = NodeHours.from_records([node(cpu_cores=4, ram_gib=16, cost=1.0)])
    cpu, ram, _ = node_prices(nodes, Policy(weights="aws-split"))
    assert round(float(cpu[0]), 4) == 0.1731
    assert round(float(ram[0]), 5) == 0.01923


def test_aws_split_uses_gpu_weights_on_gpu_nodes_only() -> None:
    nodes = NodeHours.from_records(
        [node("g", cpu_cores=8, ram_gib=32, gpus=1, cost=10.0), node("plain", cost=1.0)]
    )
    c_cpu, c_ram, c_gpu = split_node_cost(nodes, Policy(weights="aws-split"))
    d = 8 * 0.9 + 32 * 0.1 + 9
    assert c_cpu[0] == pytest.approx(10 * 7.2 / d)
    assert c_gpu[0] == pytest.approx(10 * 9 / d)
    assert c_gpu[1] == 0.0
    assert c_cpu[1] + c_ram[1] == pytest.approx(1.0)


def test_parts_always_sum_to_the_node_cost() -> None:
    nodes = NodeHours.from_records([node(cpu_cores=3, ram_gib=7, gpus=2, cost=4.2, hours=0.5)])
    parts = split_node_cost(nodes, Policy())
    assert sum(float(p[0]) for p in parts) == pytest.approx(4.2)


def test_price_is_per_resource_hour_so_a_half_hour_node_costs_double_per_hour() -> None:
    nodes = NodeHours.from_records([node(cost=1.0, hours=0.5), node("n2", cost=1.0)])
    cpu, _, _ = node_prices(nodes, Policy())
    assert cpu[0] == pytest.approx(2 * cpu[1])


def test_custom_weights_missing_key_counts_as_zero() -> None:
    nodes = NodeHours.from_records([node(cpu_cores=4, ram_gib=16, cost=2.0)])
    c_cpu, c_ram, _ = split_node_cost(nodes, Policy(weights={"cpu": 1.0}))
    assert c_cpu[0] == 2.0
    assert c_ram[0] == 0.0


def test_node_whose_weighted_capacity_is_zero_cannot_be_split() -> None:
    nodes = NodeHours.from_records([node(cpu_cores=0, ram_gib=16, cost=2.0)])
    with pytest.raises(AllocationError, match=r"<records>: row 1, column cost"):
        split_node_cost(nodes, Policy(weights={"cpu": 1.0}))
