"""The query layer answers from stored lines exactly what the engine answers from hourly rows."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

import allocation
from costapp import queries, services
from costapp.models import AllocationPolicy, Cluster, ClusterDay, ClusterHour, Overhead
from tests.costapp.demo_data import DEMO_DAY, seed_demo

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_cluster(world):
    return seed_demo()


def _engine(cluster: Cluster, day: date, keys, idle, shared, split):
    start, end = services.day_bounds(day)
    policy = AllocationPolicy.current()
    nodes, pods = services._engine_inputs(cluster, start, end, policy.label_keys)
    overhead = tuple(
        allocation.Overhead(cluster.name, o.name, float(o.hourly))
        for o in Overhead.objects.filter(cluster=cluster)
    )
    p = allocation.Policy(idle=idle, shared_namespaces=shared, shared_split=split,
                          overhead=overhead)
    return allocation.allocate(nodes, pods, p, keys, "day")


def _by_key(cols, keys, n):
    return {
        (cols["kind"][i], *(cols[k][i] for k in keys)): cols for i in range(n)
    }


@pytest.mark.parametrize("keys", [("namespace",), ("team",), ("cluster", "node_pool",
                                  "capacity_type"), ("namespace", "controller", "label:app"),
                                  ("team", "node_pool")])
def test_query_equals_engine_run_on_the_same_hourly_rows(demo_cluster, keys):
    for idle in queries.IDLE_POLICIES:
        for split in queries.SPLITS:
            for shared in ((), ("kube-system",), ("kube-system", "monitoring")):
                result = _engine(demo_cluster, DEMO_DAY, keys, idle, shared, split)
                q = queries.AllocationQuery(DEMO_DAY, DEMO_DAY + timedelta(days=1), keys, "day",
                                            idle, shared, split)
                answer = queries.run(q)
                eng = {(result["kind"][i], *(result[k][i] for k in keys)): i
                       for i in range(len(result))}
                got = {(answer.columns["kind"][i], *(answer.columns[k][i] for k in keys)): i
                       for i in range(len(answer))}
                assert set(eng) == set(got), (keys, idle, split, shared)
                for line, i in eng.items():
                    j = got[line]
                    for col in ("cpu_cost", "ram_cost", "gpu_cost", "idle_cost", "shared_cost",
                                "total_cost", "cpu_core_hours", "ram_gib_hours",
                                "cpu_efficiency"):
                        assert answer.columns[col][j] == pytest.approx(
                            result[col][i], rel=1e-6, abs=1e-6), (line, col, idle, split)


def test_every_step_conserves_cluster_cost(demo_cluster):
    days = ClusterDay.objects.filter(cluster=demo_cluster)
    expected = sum(float(d.node_cost + d.overhead_cost) for d in days)
    start = min(d.day for d in days)
    end = max(d.day for d in days) + timedelta(days=1)
    for step in queries.STEPS:
        for idle in queries.IDLE_POLICIES:
            q = queries.AllocationQuery(start, end, ("team",), step, idle, ("kube-system",))
            answer = queries.run(q)
            assert answer.columns["total_cost"].sum() == pytest.approx(expected, rel=1e-9)
            assert answer.cluster_cost == pytest.approx(expected, rel=1e-9)


def test_a_filter_never_changes_a_lines_cost(demo_cluster):
    base = queries.AllocationQuery(DEMO_DAY, DEMO_DAY + timedelta(days=1), ("team",), "window",
                                   "share-by-cluster", ("kube-system",), "even")
    everyone = queries.run(base).by("team")
    only = queries.run(queries.AllocationQuery(**{**base.__dict__, "filters":
                                                  {"team": ("payments",)}}))
    assert list(only.columns["team"]) == ["payments"]
    assert only.columns["total_cost"][0] == pytest.approx(everyone["payments"])


def test_restricted_asker_gets_only_their_teams_and_aggregate_idle(demo_cluster):
    q = queries.AllocationQuery(DEMO_DAY, DEMO_DAY + timedelta(days=1), ("namespace", "team"),
                                teams=frozenset({"payments"}))
    answer = queries.run(q)
    assert set(answer.columns["team"]) == {"payments"}
    assert "idle" not in set(answer.columns["kind"])
    summary = answer.summary()
    assert summary["idle_unallocated"] > 0 and "cluster_cost" not in summary


@pytest.mark.parametrize("params, parameter", [
    ({"window": "yesterday"}, "window"),
    ({"window": "2026-03-05,2026-03-01"}, "window"),
    ({"aggregate": "pod"}, "aggregate"),
    ({"aggregate": "node"}, "aggregate"),
    ({"aggregate": "colour"}, "aggregate"),
    ({"aggregate": "label:nope"}, "aggregate"),
    ({"aggregate": "team,team"}, "aggregate"),
    ({"step": "hour"}, "step"),
    ({"idle": "spread"}, "idle"),
    ({"shared_split": "half"}, "shared_split"),
    ({"cluster": "nowhere"}, "cluster"),
    ({"label:nope": "x"}, "label:nope"),
])
def test_bad_parameters_name_the_parameter(world, params, parameter):
    with pytest.raises(queries.QueryError) as exc:
        queries.AllocationQuery.from_params(params)
    assert exc.value.parameter == parameter


def test_engine_only_keys_point_to_the_engine_cli(world):
    with pytest.raises(queries.QueryError) as exc:
        queries.AllocationQuery.from_params({"aggregate": "namespace,pod"})
    assert "python -m allocation allocate" in exc.value.message


def test_windows_parse_to_whole_days():
    today = date(2026, 3, 17)
    assert queries.parse_window("today", today) == (today, date(2026, 3, 18))
    assert queries.parse_window("7d", today) == (date(2026, 3, 11), date(2026, 3, 18))
    assert queries.parse_window("month", today) == (date(2026, 3, 1), date(2026, 3, 18))
    assert queries.parse_window("lastmonth", today) == (date(2026, 2, 1), date(2026, 3, 1))
    assert queries.parse_window("2026-01-01,2026-01-31", today) == (date(2026, 1, 1),
                                                                    date(2026, 2, 1))


def test_data_status_explains_missing_bill_gaps_and_failures(demo_cluster):
    Cluster.objects.filter(pk=demo_cluster.pk).update(health="failing",
                                                      last_error="401 Unauthorized")
    ClusterHour.objects.filter(cluster=demo_cluster).order_by("hour_start").filter(
        pk__in=ClusterHour.objects.filter(cluster=demo_cluster).order_by("hour_start")
        .values("pk")[:3]).update(covered_seconds=1800)
    notices = queries.data_status(DEMO_DAY - timedelta(days=3), DEMO_DAY + timedelta(days=1))
    titles = " | ".join(n.title for n in notices)
    assert "Collector failing on demo" in titles
    assert "Bill not yet imported" in titles
    assert "Gap in coverage on demo" in titles
    gap = next(n for n in notices if n.title.startswith("Gap"))
    assert gap.text.startswith("3 hour(s)")


def test_empty_database_says_no_clusters(db):
    notices = queries.data_status(date(2026, 1, 1), date(2026, 2, 1))
    assert notices[0].title == "No clusters yet"
