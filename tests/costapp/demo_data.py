"""A seeded demo cluster for query, API and page tests: two simulated days, priced, allocated."""

from __future__ import annotations

from datetime import UTC, date, datetime

from costapp import demo, services

DEMO_END = datetime(2026, 3, 5, tzinfo=UTC)
"""Simulated history ends here (a Thursday): the day before is complete."""
DEMO_DAY = date(2026, 3, 4)


def seed_demo(days: int = 1):
    """Seed the demo cluster. Node-hours are priced with OpenCost default prices (no bill), so
    these tests do not depend on the billing importer's tables."""
    cluster = demo.ensure_world()
    services.simulate_history(cluster, days, end=DEMO_END, step_seconds=600)
    original = services.price_cluster_range
    services.price_cluster_range = services._price_with_defaults
    try:
        services.allocate_dirty_days(cluster.pk)
    finally:
        services.price_cluster_range = original
    cluster.refresh_from_db()
    return cluster
