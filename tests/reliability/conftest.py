"""Fixtures for the reliability tests: private stacks (see stack.py) and the real data."""

from __future__ import annotations

import pytest

from tests.reliability.stack import Stack


@pytest.fixture(scope="session")
def allocation_stack():
    """Private PostgreSQL + Redis (AOF on) with the schema, the demo world and one simulated,
    allocated day. Yields (stack, facts) where facts holds the cluster id, the day and the
    reference totals of that day as allocated inline. One per test process (xdist worker):
    the tests using it stop their workers and leave the day allocated."""
    stack = Stack(prefix="costapp-alloc-", redis_aof=True)
    try:
        stack.create_schema()
        facts = stack.django("""
            from datetime import UTC, datetime
            from costapp import demo, services
            from costapp.models import ClusterDay
            cluster = demo.ensure_world()
            services.simulate_history(cluster, 1, end=datetime(2026, 3, 4, tzinfo=UTC),
                                      step_seconds=3600, scale=0.3)
            services.allocate_dirty_days(cluster.pk)
            day = ClusterDay.objects.get(cluster=cluster)
            out = {"cluster": cluster.pk, "day": day.day.isoformat()}
        """)
        yield stack, facts
    finally:
        stack.stop_workers()
        stack.close()


DAY_TOTALS = """
from decimal import Decimal
from django.db.models import Count, Sum
from costapp.models import AllocationLine, ClusterDay
lines = AllocationLine.objects.filter(cluster_id={cluster}, day="{day}")
money = lines.aggregate(
    n=Count("id"), cpu=Sum("cpu_cost"), ram=Sum("ram_cost"), gpu=Sum("gpu_cost"),
    idle_node=Sum("idle_by_node"), idle_cluster=Sum("idle_by_cluster"),
    overhead=Sum("overhead_cost"))
dupes = (lines.values("kind", "idle_policy", "namespace", "controller_kind", "controller",
                      "team", "node_pool", "capacity_type", "labels")
         .annotate(c=Count("id")).filter(c__gt=1).count())
cd = ClusterDay.objects.get(cluster_id={cluster}, day="{day}")
out = {{"money": {{k: str(v) for k, v in money.items()}}, "duplicate_keys": dupes,
        "dirty": cd.dirty, "allocated_at": cd.allocated_at.isoformat(),
        "node_cost": str(cd.node_cost), "line_count": cd.line_count}}
"""


@pytest.fixture
def day_totals():
    """day_totals(stack, facts) → money sums, line count and state of the fixture day."""

    def read(stack: Stack, facts: dict) -> dict:
        return stack.django(DAY_TOTALS.format(**facts))

    return read


@pytest.fixture(scope="session")
def focus_bytes(shared_data) -> bytes:
    """The official FOCUS 1.0 sample (1,000 rows), read from ../shared/data."""
    return (shared_data / "01_focus" / "finops_focus_sample_data" / "focus_sample_1000.csv"
            ).read_bytes()
