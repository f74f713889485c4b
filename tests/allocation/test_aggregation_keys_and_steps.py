"""§6: aggregate keys, marker values, step bounds and efficiency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from allocation import AllocationError, Policy, allocate

from .helpers import by_key, node, pod, tables


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_pod_without_a_value_gets_unallocated() -> None:
    nodes, pods = tables([node()], [pod("a", team="t1"), pod("b")])
    out = by_key(allocate(nodes, pods, Policy(), ("team", "controller")))
    assert ("workload", "t1", "__unallocated__") in out
    assert ("workload", "__unallocated__", "__unallocated__") in out


def test_idle_lines_carry_node_side_keys_and_idle_for_the_rest() -> None:
    nodes, pods = tables([node(node_pool="gpu", capacity_type="spot")], [pod(cpu_request=1)])
    keys = ("cluster", "node", "node_pool", "capacity_type", "namespace", "team")
    out = by_key(allocate(nodes, pods, Policy(), keys))
    assert ("idle", "c", "n1", "gpu", "spot", "__idle__", "__idle__") in out
    assert ("workload", "c", "n1", "gpu", "spot", "ns", "__unallocated__") in out


def test_node_without_pool_or_capacity_type_gets_unallocated() -> None:
    nodes, pods = tables([node(node_pool=None, capacity_type=None)], [pod(cpu_request=1)])
    out = by_key(allocate(nodes, pods, Policy(), ("node_pool", "capacity_type")))
    assert ("idle", "__unallocated__", "__unallocated__") in out


def test_label_keys_read_json_labels_and_mappings() -> None:
    nodes, pods = tables(
        [node()],
        [
            pod("a", labels='{"app": "web"}', cpu_request=1),
            pod("b", labels={"app": "db"}, cpu_request=1),
            pod("c", cpu_request=1),
        ],
    )
    out = by_key(allocate(nodes, pods, Policy(), ("label:app",)))
    assert {k for k in out if k[0] == "workload"} == {
        ("workload", "web"),
        ("workload", "db"),
        ("workload", "__unallocated__"),
    }


def test_bad_labels_are_reported_only_when_a_label_key_is_asked_for() -> None:
    nodes, pods = tables([node()], [pod("a"), pod("b", labels="[1, 2]")])
    allocate(nodes, pods, Policy(), ("namespace",))
    with pytest.raises(AllocationError, match=r"<records>: row 2, column labels"):
        allocate(nodes, pods, Policy(), ("label:app",))


def test_unknown_key_and_step_are_rejected() -> None:
    nodes, pods = tables([node()], [pod()])
    with pytest.raises(AllocationError, match="aggregate key 'flavour'"):
        allocate(nodes, pods, Policy(), ("flavour",))
    with pytest.raises(AllocationError, match="step 'week'"):
        allocate(nodes, pods, Policy(), ("namespace",), step="week")


_HOURS = ["2024-01-31T22:00:00", "2024-01-31T23:00:00", "2024-02-01T00:00:00"]


def _steps(step: str) -> list[tuple[datetime, datetime]]:
    nodes, pods = tables(
        [node(hour_start=_ts(h)) for h in _HOURS],
        [pod(hour_start=_ts(h), cpu_request=1) for h in _HOURS],
    )
    result = allocate(nodes, pods, Policy(), ("namespace",), step=step)
    return sorted({(r.window_start, r.window_end) for r in result.to_records()})


def test_hour_step_bounds() -> None:
    assert _steps("hour") == [(_ts(h), _ts(h) + timedelta(hours=1)) for h in _HOURS]


def test_day_step_bounds() -> None:
    assert _steps("day") == [
        (_ts("2024-01-31T00:00:00"), _ts("2024-02-01T00:00:00")),
        (_ts("2024-02-01T00:00:00"), _ts("2024-02-02T00:00:00")),
    ]


def test_month_step_bounds() -> None:
    assert _steps("month") == [
        (_ts("2024-01-01T00:00:00"), _ts("2024-02-01T00:00:00")),
        (_ts("2024-02-01T00:00:00"), _ts("2024-03-01T00:00:00")),
    ]


def test_window_step_runs_from_first_hour_to_last_hour_plus_one() -> None:
    assert _steps("window") == [(_ts("2024-01-31T22:00:00"), _ts("2024-02-01T01:00:00"))]


def test_efficiency_is_usage_over_request_weighted_by_cost() -> None:
    nodes, pods = tables(
        [node(cpu_cores=4, ram_gib=4, cost=8.0)],
        [pod(cpu_request=2, cpu_usage=1, ram_request_gib=1, ram_usage_gib=1)],
    )
    result = allocate(nodes, pods, Policy(basis="request", weights={"cpu": 1, "ram": 1}))
    line = by_key(result)[("workload", "ns")]
    assert line["cpu_efficiency"] == pytest.approx(0.5)
    assert line["ram_efficiency"] == pytest.approx(1.0)
    # cpu cost 2, ram cost 1 → (0.5·2 + 1·1) / 3
    assert line["total_efficiency"] == pytest.approx(2 / 3)
    assert line["cpu_usage_core_hours"] == pytest.approx(1.0)
    assert line["cpu_request_core_hours"] == pytest.approx(2.0)
    idle = by_key(result)[("idle", "__idle__")]
    assert idle["cpu_efficiency"] == 0.0


def test_efficiency_is_zero_without_request() -> None:
    nodes, pods = tables([node()], [pod(cpu_usage=1)])
    line = by_key(allocate(nodes, pods, Policy()))[("workload", "ns")]
    assert line["cpu_efficiency"] == 0.0


def test_result_columns_are_numpy_and_rows_follow_the_header() -> None:
    nodes, pods = tables([node()], [pod(cpu_request=1)])
    result = allocate(nodes, pods, Policy(), ("cluster", "namespace"))
    assert result.header[:5] == ("kind", "cluster", "namespace", "window_start", "window_end")
    assert result["window_start"].dtype == np.dtype("datetime64[s]")
    assert result["total_cost"].dtype == np.float64
    rows = result.rows()
    assert rows[0][0] == "workload" and len(rows[0]) == len(result.header)
    assert rows[-1][0] == "idle"


def test_empty_input_gives_an_empty_result() -> None:
    nodes, pods = tables([], [])
    assert len(allocate(nodes, pods, Policy())) == 0
