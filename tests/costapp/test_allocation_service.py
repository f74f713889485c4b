"""Allocating a cluster-day: conservation, idempotence, and the same numbers as the engine."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db.models import F, Sum

import allocation
from costapp import demo, services
from costapp.models import AllocationLine, ClusterDay

END = datetime(2026, 3, 4, 0, 0, tzinfo=UTC)


@pytest.fixture
def demo_cluster(db):
    cluster = demo.ensure_world()
    services.simulate_history(cluster, 2, end=END, step_seconds=600)
    services.allocate_dirty_days(cluster.pk)
    return cluster


def _sums(cluster, day):
    lines = AllocationLine.objects.filter(cluster=cluster, day=day)
    own = F("cpu_cost") + F("ram_cost") + F("gpu_cost")
    work = lines.filter(kind="workload").aggregate(
        own=Sum(own), node=Sum("idle_by_node"), cl=Sum("idle_by_cluster")
    )
    idle = {
        p: lines.filter(kind="idle", idle_policy=p).aggregate(s=Sum(own))["s"] or Decimal(0)
        for p in services.IDLE_POLICIES
    }
    return work, idle


def test_every_idle_policy_adds_up_to_the_node_cost_of_the_day(demo_cluster):
    days = ClusterDay.objects.filter(cluster=demo_cluster)
    assert days.count() == 2
    for cd in days:
        work, idle = _sums(demo_cluster, cd.day)
        assert cd.node_cost > 0
        assert work["own"] + idle["separate"] == pytest.approx(cd.node_cost, abs=Decimal("1e-6"))
        assert work["own"] + work["node"] + idle["share-by-node"] == pytest.approx(
            cd.node_cost, abs=Decimal("1e-6")
        )
        assert work["own"] + work["cl"] + idle["share-by-cluster"] == pytest.approx(
            cd.node_cost, abs=Decimal("1e-6")
        )
        assert min(idle.values()) >= 0


def test_reallocating_a_day_replaces_its_lines_instead_of_adding(demo_cluster):
    day = ClusterDay.objects.filter(cluster=demo_cluster).first().day
    before = list(AllocationLine.objects.filter(cluster=demo_cluster, day=day).values_list(
        "namespace", "team", "cpu_cost").order_by("namespace", "team", "cpu_cost"))
    services.allocate_cluster_day(demo_cluster.pk, day)
    services.allocate_cluster_day(demo_cluster.pk, day)
    after = list(AllocationLine.objects.filter(cluster=demo_cluster, day=day).values_list(
        "namespace", "team", "cpu_cost").order_by("namespace", "team", "cpu_cost"))
    assert after == before


def test_stored_lines_match_the_engine_run_on_the_same_hourly_rows(demo_cluster):
    day = ClusterDay.objects.filter(cluster=demo_cluster).order_by("day").last().day
    start, end = services.day_bounds(day)
    nodes, pods = services._engine_inputs(demo_cluster, start, end, ())
    result = allocation.allocate(nodes, pods, allocation.Policy(), ("namespace",), "day")
    engine = {}
    for line in result.to_records():
        if line.kind == "workload":
            engine[line.keys["namespace"]] = line.total_cost
    stored = {
        r["namespace"]: float(r["c"])
        for r in AllocationLine.objects.filter(cluster=demo_cluster, day=day, kind="workload")
        .values("namespace").annotate(c=Sum(F("cpu_cost") + F("ram_cost") + F("gpu_cost")))
    }
    assert stored.keys() == engine.keys()
    for ns, cost in engine.items():
        assert stored[ns] == pytest.approx(cost, abs=1e-6)


def test_teams_come_from_the_ownership_rules(demo_cluster):
    teams = set(AllocationLine.objects.filter(kind="workload").values_list("team", flat=True))
    # namespace label (payments), namespace annotation (checkout), pod label (search),
    # the explicit table (storefront), and legacy owned by nobody.
    assert {"payments", "checkout", "search", "storefront", "__unallocated__"} <= teams
    legacy = set(AllocationLine.objects.filter(namespace="legacy").values_list("team", flat=True))
    assert legacy == {"__unallocated__"}
