"""A real Celery worker on Redis runs the allocation tasks against the real database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db.models import Sum

from costapp import demo, services, tasks
from costapp.models import AllocationLine, ClusterDay

END = datetime(2026, 3, 4, 0, 0, tzinfo=UTC)


@pytest.mark.celery
def test_worker_allocates_a_day_once_even_when_the_task_runs_twice(celery_worker_process):
    cluster = demo.ensure_world()
    services.simulate_history(cluster, 1, end=END, step_seconds=600)
    day = ClusterDay.objects.filter(cluster=cluster, dirty=True).order_by("day").last().day

    first = tasks.allocate_day.delay(cluster.pk, day.isoformat()).get(timeout=120)
    total_once = AllocationLine.objects.filter(cluster=cluster, day=day).aggregate(
        s=Sum("cpu_cost")
    )["s"]
    second = tasks.allocate_day.delay(cluster.pk, day.isoformat()).get(timeout=120)
    total_twice = AllocationLine.objects.filter(cluster=cluster, day=day).aggregate(
        s=Sum("cpu_cost")
    )["s"]

    assert first["lines"] == second["lines"] > 0
    assert total_once == total_twice > 0
    assert ClusterDay.objects.get(cluster=cluster, day=day).dirty is False


@pytest.mark.celery
def test_allocate_range_fans_out_one_task_per_day(celery_worker_process):
    import time

    cluster = demo.ensure_world()
    services.simulate_history(cluster, 2, end=END, step_seconds=900)
    days = sorted(ClusterDay.objects.filter(cluster=cluster).values_list("day", flat=True))
    n = tasks.allocate_range.delay(cluster.pk, days[0].isoformat(), days[-1].isoformat()).get(
        timeout=60
    )
    assert n == len(days)
    deadline = time.monotonic() + 120
    while ClusterDay.objects.filter(cluster=cluster, dirty=True).exists():
        assert time.monotonic() < deadline, "day tasks did not finish"
        time.sleep(0.5)
    assert AllocationLine.objects.filter(cluster=cluster).values("day").distinct().count() == len(
        days
    )
