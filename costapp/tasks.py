"""Celery tasks: ids in, one service call, idempotent by construction.

A cluster-day is the unit of allocation work: re-running it replaces its lines in one
transaction, so a redelivered message (acks_late after a worker dies) never double-counts.
"""

from __future__ import annotations

from datetime import date, timedelta

from celery import group, shared_task
from django.db import transaction
from django.utils import timezone

from costapp import services

TRANSIENT = (ConnectionError, TimeoutError, OSError)


@shared_task(
    acks_late=True, autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5,
    soft_time_limit=300, time_limit=360,
)
def allocate_day(cluster_id: int, day: str) -> dict:
    """Allocate one cluster-day (ISO date) and replace its lines."""
    result = services.allocate_cluster_day(cluster_id, date.fromisoformat(day))
    from costapp import budgets

    transaction.on_commit(budgets.schedule_check)  # debounced: one check per burst of days
    return {"cluster": result.cluster, "day": day, "lines": result.lines,
            "node_cost": str(result.node_cost)}


@shared_task(soft_time_limit=60, time_limit=90)
def allocate_range(cluster_id: int, start: str, end: str) -> int:
    """Allocate every day in [start, end] as a group of day tasks; returns the number of days."""
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    group(allocate_day.si(cluster_id, d) for d in days).apply_async()
    return len(days)


@shared_task(soft_time_limit=60, time_limit=90)
def allocate_recent() -> int:
    """Allocate every dirty cluster-day, one task each (beat runs this every few minutes)."""
    from costapp.models import ClusterDay

    todo = list(ClusterDay.objects.filter(dirty=True).values_list("cluster_id", "day"))
    group(allocate_day.si(cid, d.isoformat()) for cid, d in todo).apply_async()
    return len(todo)


@shared_task(acks_late=True, soft_time_limit=1800, time_limit=1900)
def run_backfill(job_id: int, cluster_id: int, days: int) -> None:
    """Simulate and allocate `days` of history for a simulated cluster, with job progress."""
    from costapp.models import Cluster

    def work(progress):
        cluster = Cluster.objects.get(pk=cluster_id)
        services.simulate_history(cluster, days, progress=progress)
        n = services.allocate_dirty_days(cluster_id, progress=progress)
        return f"{n} days allocated"

    services.run_job(job_id, work)
    from costapp import budgets

    budgets.schedule_check()


@shared_task(soft_time_limit=30, time_limit=45)
def sample_all_clusters() -> int:
    """Enqueue one sample task per cluster that samples (beat, every 60 s by default)."""
    from costapp.models import Cluster

    ids = list(Cluster.objects.filter(sampling_enabled=True).values_list("id", flat=True))
    for cid in ids:
        sample_cluster.delay(cid)
    return len(ids)


@shared_task(soft_time_limit=120, time_limit=150)
def sample_cluster(cluster_id: int) -> str:
    """Take one sample of a cluster (real or simulated) and fold it into hourly rows."""
    from costapp import collect

    return collect.sample_cluster(cluster_id)


@shared_task(soft_time_limit=600, time_limit=660)
def refresh_recommendations() -> int:
    """Recompute capacity plans for every node pool (daily)."""
    try:
        from costapp import planner
    except ImportError:
        return 0
    return planner.refresh_all()


@shared_task(soft_time_limit=600, time_limit=660)
def sync_billing_sources() -> int:
    """Check every billing source for new or restated exports (hourly), and close imports that a
    crash left `running`."""
    from costapp.billing import service, sync

    service.fail_stale_imports()
    return sync.sync_all()


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3700)
def sync_billing_source(source_id: int, force: bool = False) -> dict:
    """Check one billing source; import its new or restated deliveries (failures are recorded
    on the source, which is retried with backoff, so this task never retries itself)."""
    from costapp.billing import sync

    r = sync.sync_source(source_id, force=force)
    return {"source": r.source, "imported": r.imported, "rejected": r.rejected,
            "unchanged": r.unchanged, "error": r.error, "skipped": r.skipped}


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3700)
def import_billing_file(job_id: int, path: str, cluster_id: int | None = None) -> str:
    """Import a spooled FOCUS file for a job: import, re-price, re-allocate (with progress).

    A rejected file is an outcome (recorded on the job and the import), not a task error."""
    from costapp.billing import service

    return service.run_import_job(job_id, path, cluster_id)


@shared_task(acks_late=True, soft_time_limit=3600, time_limit=3700)
def recompute_ownership(job_id: int) -> None:
    """Re-allocate the cluster-days an ownership rule change covers, with job progress."""
    from costapp import budgets, ownership_rules

    ownership_rules.recompute_job(job_id)
    budgets.schedule_check()


@shared_task(soft_time_limit=300, time_limit=360)
def check_budgets() -> int:
    """Check every active budget's thresholds; returns the number of new alerts."""
    from costapp import budgets

    return budgets.check_budgets_now()


@shared_task(
    acks_late=True, autoretry_for=TRANSIENT, retry_backoff=30, retry_backoff_max=3600,
    max_retries=8, soft_time_limit=120, time_limit=150,
)
def deliver_budget_alert(alert_id: int) -> str:
    """Send an alert's e-mail and webhook (each at most once; webhook retried with backoff)."""
    from costapp import notify

    return notify.deliver_alert(alert_id)


def today() -> date:
    return timezone.now().date()
