"""Bad input through the Python API: one ``AllocationError`` naming source, row and column."""

from __future__ import annotations

import math

import numpy as np
import pytest

from allocation import AllocationError, NodeHours, Overhead, PodHours, Policy, allocate
from allocation.errors import (
    E_DUPLICATE_NODE_HOUR,
    E_HOURS_RANGE,
    E_NEGATIVE,
    E_NO_NODE_HOUR,
    E_NOT_FINITE,
    E_NOT_ON_THE_HOUR,
)

from .helpers import hour, node, pod, tables


def _error(nodes: list, pods: list) -> str:  # type: ignore[type-arg]
    n, p = tables(nodes, pods)
    with pytest.raises(AllocationError) as info:
        allocate(n, p, Policy())
    return str(info.value)


def test_negative_quantity() -> None:
    msg = _error([node(), node("n2", ram_gib=-1)], [])
    assert msg == E_NEGATIVE.format(source="<records>", row=2, column="ram_gib", value=-1.0)


def test_hours_outside_zero_one() -> None:
    msg = _error([node()], [pod(hours=1.5)])
    assert msg == E_HOURS_RANGE.format(source="<records>", row=1, column="hours", value=1.5)


def test_nan_and_inf() -> None:
    assert _error([node(cost=math.nan)], []) == E_NOT_FINITE.format(
        source="<records>", row=1, column="cost", value=math.nan
    )
    assert "column cpu_usage: value must be finite" in _error([node()], [pod(cpu_usage=math.inf)])


def test_pod_hour_without_node_hour() -> None:
    msg = _error([node()], [pod(), pod("p2", hour_start=hour(3))])
    assert msg == E_NO_NODE_HOUR.format(
        source="<records>",
        row=2,
        column="node",
        cluster="c",
        node="n1",
        hour="2024-09-01T03:00:00Z",
    )


def test_pod_on_an_unknown_cluster_has_no_node_hour() -> None:
    assert "row 1, column node: pod-hour has no node-hour" in _error([node()], [pod(cluster="x")])


def test_duplicate_node_hour() -> None:
    msg = _error([node(), node()], [])
    assert msg == E_DUPLICATE_NODE_HOUR.format(
        source="<records>",
        row=2,
        column="hour_start",
        cluster="c",
        node="n1",
        hour="2024-09-01T00:00:00Z",
    )


def test_hour_start_must_be_on_the_hour() -> None:
    msg = _error([node(hour_start=1725148800 + 60)], [])
    assert msg == E_NOT_ON_THE_HOUR.format(
        source="<records>", row=1, column="hour_start", value="2024-09-01T00:01:00Z"
    )


def test_source_and_rows_name_the_csv_line() -> None:
    nodes = NodeHours.from_records([node(), node("n2", cost=-2.0)], source="nodes.csv", first_row=2)
    with pytest.raises(AllocationError, match=r"^nodes.csv: row 3, column cost"):
        nodes.validate()


def test_columnar_tables_accept_numpy_columns_and_datetime64() -> None:
    nodes = NodeHours(
        cluster=np.array(["c"]),
        node=np.array(["n1"]),
        hour_start=np.array(["2024-09-01T00:00"], dtype="datetime64[m]"),
        hours=[1.0],
        cpu_cores=[4.0],
        ram_gib=[16.0],
        gpus=[0.0],
        cost=[1.0],
        node_pool=["p"],
        capacity_type=["spot"],
    )
    pods = PodHours(
        cluster=["c"],
        namespace=["ns"],
        pod=["p"],
        node=["n1"],
        hour_start=[1725148800],
        hours=[1.0],
        cpu_request=[1.0],
        cpu_usage=[1.0],
        ram_request_gib=[1.0],
        ram_usage_gib=[1.0],
        gpu_request=[0.0],
        cpu_alloc=[None],
    )
    result = allocate(nodes, pods, Policy())
    assert result["total_cost"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "data,match",
    [
        ({"idle": "share-by-galaxy"}, "key 'idle': 'share-by-galaxy' is not valid"),
        ({"weights": "gcp"}, "key 'weights': 'gcp' is not valid"),
        ({"weights": {"cpu": 1, "disk": 2}}, "unknown key 'weights.disk'"),
        ({"weights": {"cpu": -1}}, "key 'weights.cpu': -1"),
        ({"basis": "limit"}, "key 'basis': 'limit'"),
        ({"shared_split": "random"}, "key 'shared_split'"),
        ({"shared_namespaces": "kube-system"}, "key 'shared_namespaces'"),
        ({"overhead": [{"cluster": "c", "hourly": -1}]}, "key 'overhead.hourly'"),
        ({"overhead": [{"cluster": "c", "hourly": 1, "x": 1}]}, "unknown key 'overhead.x'"),
        ({"colour": "blue"}, "unknown key 'colour'"),
    ],
)
def test_policy_from_dict_rejects_unknown_keys_and_values(data: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(AllocationError, match=r"^policy.json: .*" + match.replace("(", r"\(")):
        Policy.from_dict(data)


def test_policy_from_dict_reads_every_key() -> None:
    policy = Policy.from_dict(
        {
            "basis": "request",
            "weights": {"cpu": 2, "ram": 1},
            "idle": "share-by-node",
            "shared_namespaces": ["kube-system"],
            "shared_split": "even",
            "overhead": [{"cluster": "prod", "name": "control-plane", "hourly": 0.10}],
        }
    )
    assert policy.overhead == (Overhead("prod", "control-plane", 0.10),)
    assert policy.shared_namespaces == ("kube-system",)
    assert policy.weights_for(has_gpu=True).cpu == 2
