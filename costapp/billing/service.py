"""The bill-import use case, and what the billing pages read.

Importing a bill is one use case with three steps (ARCHITECTURE.md, "Price"):

1. `import_focus_file`: the file's charges replace what earlier imports said about the same
   (provider, billing account, billing period) — atomic, idempotent; a malformed file raises
   `BillingFileError` (row, column, reason) and keeps nothing.
2. `reprice_after_import`: bill overhead is rebuilt and the node-hours the charges cover are
   priced afresh; the cluster-days they belong to are marked dirty.
3. Those cluster-days are re-allocated: inline (no Redis: the local default) or as one
   `tasks.allocate_day` per cluster-day through Celery (REDIS_URL set), so workers share them.

`run_import_job` runs the use case for a Job (upload page, API) with progress the job page
polls; `import_detail` and `reconciliation_report` are what the import and reconciliation pages
and the API show.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from costapp import services
from costapp.billing.focus import BillingFileError, node_match_keys
from costapp.billing.importer import import_focus_file
from costapp.billing.pricing import Reconciliation, reconcile_month, reprice_after_import
from costapp.models import Cluster, ClusterDay, ClusterHour, Job, Node
from costapp.models.billing import BillingCharge, BillingImport

__all__ = [
    "BillOutcome",
    "JOB_KIND",
    "ReconciliationReport",
    "import_bill",
    "import_detail",
    "price_sources",
    "reconciliation_report",
    "run_import_job",
    "spool_upload",
    "start_import_job",
    "job_state",
    "upload_dir",
]

log = logging.getLogger(__name__)

JOB_KIND = "import_billing"
UNMATCHED_LIMIT = 200
E_NOT_RUN = "the import could not be run"
E_FILE_GONE = "the uploaded file {name!r} is no longer on disk; upload it again"

ProgressFn = Callable[[int, int, str], None]


# --- the use case ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillOutcome:
    """What importing one bill did.

    `repriced`: cluster → price source → node-hours priced from it in the bill's span;
    `days`: the (cluster id, day) pairs re-allocated (or queued, when `queued`).
    """

    import_id: int
    rows: int
    replaced_rows: int
    total_effective_cost: Decimal
    repriced: dict[str, dict[str, int]]
    days: tuple[tuple[int, date], ...]
    queued: bool

    def summary(self) -> str:
        """One line for the job page and the command line."""
        done = "queued for re-allocation" if self.queued else "re-allocated"
        return (
            f"import {self.import_id}: {self.rows:,} rows, EffectiveCost "
            f"{self.total_effective_cost}, {self.replaced_rows:,} earlier rows replaced; "
            f"{len(self.days)} cluster-day(s) {done}"
        )


def _estimate_rows(path: Path) -> int:
    """Data rows of a CSV (or CSV.gz) file, counted by newlines (a quoted newline would count
    twice: good enough for a progress bar). 0 when the format is not line-based."""
    name = path.name.lower()
    if name.endswith(".gz"):
        import gzip

        opener: Callable[[Path, str], IO[bytes]] = gzip.open  # type: ignore[assignment]
    elif name.endswith((".csv", ".txt", ".focus")):
        opener = open  # type: ignore[assignment]
    else:
        return 0
    lines = 0
    try:
        with opener(path, "rb") as f:
            while block := f.read(1 << 20):
                lines += block.count(b"\n")
    except OSError:
        return 0
    return max(0, lines - 1)


def _reallocate_mode(reallocate: str | None) -> str:
    if reallocate in ("inline", "queue", "none"):
        return reallocate
    return "queue" if getattr(settings, "REDIS_URL", "") else "inline"


def import_bill(
    path: str | Path,
    *,
    cluster: Cluster | None = None,
    currency: str | None = None,
    file_name: str | None = None,
    progress: ProgressFn | None = None,
    reallocate: str | None = None,
) -> BillOutcome:
    """Import a FOCUS file, re-price the node-hours it covers, re-allocate their cluster-days.

    `reallocate`: "inline" (here, with progress), "queue" (one Celery task per cluster-day,
    sent on commit), "none" (leave the days dirty for the periodic `allocate_recent`), or None:
    "queue" when REDIS_URL is set, else "inline". Raises `BillingFileError` for a bad file (the
    failed import is recorded by the importer; nothing of the file is kept).
    """
    path = Path(path)
    name = file_name or path.name
    report = progress or (lambda done, total, message: None)
    estimate = _estimate_rows(path)

    # 1. Import: the importer reports every 50,000 rows with an unknown total.
    def import_progress(done: int, total: int, message: str) -> None:
        report(done, total or max(estimate, done), f"importing {message}")

    report(0, estimate, f"importing {name}")
    result = import_focus_file(
        path, cluster=cluster, currency=currency, progress=import_progress, file_name=name
    )

    # 2. Re-price the hours the bill covers (every cluster) and mark their days dirty.
    report(0, 0, f"re-pricing node-hours covered by import {result.import_id}")
    repriced = {
        name_: dict(counts) for name_, counts in reprice_after_import(result.import_id).items()
    }
    days = _affected_days(result.import_id, [n for n, c in repriced.items() if c])

    # 3. Re-allocate them.
    mode = _reallocate_mode(reallocate)
    if mode == "inline":
        for i, (cluster_id, day) in enumerate(days):
            services.allocate_cluster_day(cluster_id, day)
            report(i + 1, len(days), f"re-allocated {day} ({i + 1}/{len(days)} cluster-days)")
    elif mode == "queue" and days:
        from celery import group

        from costapp import tasks

        sigs = [tasks.allocate_day.si(cid, d.isoformat()) for cid, d in days]
        transaction.on_commit(lambda: group(sigs).apply_async())
        report(len(days), len(days), f"{len(days)} cluster-day(s) queued for re-allocation")
    return BillOutcome(
        import_id=result.import_id,
        rows=result.rows,
        replaced_rows=result.replaced_rows,
        total_effective_cost=result.total_effective_cost,
        repriced=repriced,
        days=tuple(days),
        queued=mode != "inline",
    )


def _affected_days(import_id: int, cluster_names: Iterable[str]) -> list[tuple[int, date]]:
    """The dirty cluster-days inside the import's charge span, for the clusters it re-priced."""
    names = list(cluster_names)
    if not names:
        return []
    span = BillingCharge.objects.filter(billing_import_id=import_id).aggregate(
        lo=Min("charge_period_start"), hi=Max("charge_period_end")
    )
    if span["lo"] is None:
        return []
    last = (span["hi"] - timedelta(microseconds=1)).date()
    return list(
        ClusterDay.objects.filter(
            cluster__name__in=names, dirty=True, day__gte=span["lo"].date(), day__lte=last
        )
        .order_by("day", "cluster_id")
        .values_list("cluster_id", "day")
    )


# --- uploads and jobs --------------------------------------------------------------------------


def upload_dir() -> Path:
    """Where uploads wait for their import task (`BILLING_UPLOAD_DIR`, default var/uploads).

    With several machines, this must be a volume the web and worker processes share."""
    d = Path(getattr(settings, "BILLING_UPLOAD_DIR", None) or settings.BASE_DIR / "var" / "uploads")
    d.mkdir(parents=True, exist_ok=True)
    return d


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def spool_upload(chunks: Iterable[bytes], original_name: str) -> Path:
    """Write an upload to a new file under `upload_dir()` and return its path. The name keeps
    the original's suffix (.csv, .csv.gz) so the reader picks the right decoder."""
    safe = _UNSAFE.sub("_", Path(original_name).name)[-120:] or "bill.csv"
    path = upload_dir() / f"{uuid.uuid4().hex}-{safe}"
    with open(path, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
    return path


def start_import_job(path: Path, file_name: str, cluster: Cluster | None, user=None) -> Job:
    """Record an import job and send its task when the surrounding transaction commits."""
    from costapp import tasks

    job = services.start_job(
        JOB_KIND,
        f"Import {file_name}",
        user=user,
        file_name=file_name,
        path=str(path),
        cluster=cluster.name if cluster else None,
    )
    cluster_id = cluster.pk if cluster else None

    def send() -> None:
        # With Redis this only queues the task; without, it runs the import here. Either way a
        # failure to run (broker down, an unexpected error inline) is shown on the job page
        # rather than lost: the job would otherwise stay "queued" forever.
        try:
            tasks.import_billing_file.delay(job.pk, str(path), cluster_id)
        except Exception as exc:
            log.exception("import job %s could not run", job.pk)
            Job.objects.filter(pk=job.pk).exclude(
                status__in=[Job.Status.SUCCEEDED, Job.Status.FAILED]
            ).update(status=Job.Status.FAILED, error=f"{E_NOT_RUN}: {exc}"[:5000],
                     finished_at=timezone.now())

    transaction.on_commit(send)
    return job


def _set_param(job_id: int, **values) -> None:
    job = Job.objects.get(pk=job_id)
    job.params = {**(job.params or {}), **values}
    job.save(update_fields=["params"])


def run_import_job(job_id: int, path: str, cluster_id: int | None = None) -> str:
    """Run `import_bill` for a job: progress to the job (cache first, then the row), the
    import's id in `job.params["import_id"]`, a bad file's row/column/reason in `job.error`.

    A redelivered message for a job that already finished does nothing (the spooled file is
    gone by then). The spooled file is removed once the import succeeded or the file was
    rejected; an unexpected error keeps it so the task can be run again.
    """
    job = Job.objects.get(pk=job_id)
    if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
        return job.status
    file_path = Path(path)
    name = (job.params or {}).get("file_name") or file_path.name
    cluster = Cluster.objects.get(pk=cluster_id) if cluster_id else None
    started = timezone.now()

    def work(progress: ProgressFn) -> str:
        if not file_path.exists():
            raise BillingFileError(name, None, None, E_FILE_GONE.format(name=name))
        outcome = import_bill(file_path, cluster=cluster, file_name=name, progress=progress)
        _set_param(job_id, import_id=outcome.import_id)
        return outcome.summary()

    try:
        services.run_job(job_id, work)
    except BillingFileError:
        failed = (
            BillingImport.objects.filter(file_name=name, started_at__gte=started)
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        if failed:
            _set_param(job_id, import_id=failed)
        file_path.unlink(missing_ok=True)
        return Job.Status.FAILED
    file_path.unlink(missing_ok=True)
    return Job.Status.SUCCEEDED


def job_state(job: Job) -> dict:
    """What the job page and its poll endpoint show: the cache (written by
    `services.job_progress` even inside the import's transaction) first, then the row."""
    from django.core.cache import cache

    cached = cache.get(f"job:{job.pk}:progress")
    done, total, message = cached if cached else (job.done, job.total, job.message)
    finished = job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED)
    if finished:
        message = job.message or message
        if job.status == Job.Status.SUCCEEDED and total:
            done = total
    percent = round(100 * min(1.0, done / total)) if total else (100 if finished else None)
    return {
        "id": job.pk,
        "kind": job.kind,
        "description": job.description,
        "status": job.status,
        "done": done,
        "total": total,
        "percent": percent,
        "message": message,
        "error": job.error,
        "finished": finished,
        "import_id": (job.params or {}).get("import_id"),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


# --- what the pages show -----------------------------------------------------------------------


def _sums(qs) -> dict[str, Decimal | int]:
    zero = Decimal(0)
    agg = qs.aggregate(
        rows=Count("id"),
        effective=Sum("effective_cost"),
        billed=Sum("billed_cost"),
        list=Sum("list_cost"),
        contracted=Sum("contracted_cost"),
    )
    return {k: (v if v is not None else zero) for k, v in agg.items()}


def _grouped(qs, key: str) -> list[dict]:
    rows = (
        qs.values(key)
        .annotate(
            rows=Count("id"),
            effective=Sum("effective_cost"),
            billed=Sum("billed_cost"),
            list=Sum("list_cost"),
        )
        .order_by("-effective")
    )
    return [{**r, "name": r[key] or "—"} for r in rows]


def import_detail(imp: BillingImport) -> dict:
    """Totals of one import's charges: EffectiveCost (what we allocate) next to BilledCost and
    ListCost, by ChargeCategory, PricingCategory, kind and cluster, and the commitment
    discounts used (savings = ListCost − EffectiveCost). Empty once a later import replaced it."""
    qs = BillingCharge.objects.filter(billing_import_id=imp.pk)
    commitments = (
        qs.exclude(commitment_discount_id="")
        .values("commitment_discount_id", "commitment_discount_type", "commitment_discount_status")
        .annotate(
            rows=Count("id"),
            effective=Sum("effective_cost"),
            billed=Sum("billed_cost"),
            list=Sum("list_cost"),
        )
        .order_by("-effective")
    )
    commitment_rows = [
        {**c, "savings": (c["list"] or Decimal(0)) - (c["effective"] or Decimal(0))}
        for c in commitments
    ]
    totals = _sums(qs)
    return {
        "totals": totals,
        "savings": totals["list"] - totals["effective"],
        "by_charge_category": _grouped(qs, "charge_category"),
        "by_pricing_category": _grouped(qs, "pricing_category"),
        "by_kind": _grouped(qs, "kind"),
        "by_cluster": _grouped(qs, "cluster_name"),
        "by_provider": _grouped(qs, "provider_name"),
        "commitments": commitment_rows,
        "commitment_totals": _sums(qs.exclude(commitment_discount_id="")),
    }


def price_sources(cluster: Cluster, start: date, end: date) -> dict[str, float]:
    """Node-hours per price source (bill, catalog, custom, default) over allocated days in
    [start, end), from `ClusterDay.priced_by` — what the cluster and node-pool pages show."""
    out: Counter = Counter()
    for priced_by in ClusterDay.objects.filter(
        cluster=cluster, day__gte=start, day__lt=end
    ).values_list("priced_by", flat=True):
        for source, hours in (priced_by or {}).items():
            out[source] += float(hours)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


@dataclass(frozen=True)
class Explanation:
    """One term of bill total − allocated: `amount` with the sign it enters the difference."""

    key: str
    label: str
    amount: Decimal
    help: str


@dataclass(frozen=True)
class ReconciliationReport:
    """`reconcile_month` plus what a person needs to read it: the terms of the difference,
    node-hours per price source, sampling coverage, and the unmatched bill items."""

    rec: Reconciliation
    explanations: list[Explanation]
    node_hours_by_source: dict[str, float]
    hours_in_month: int
    hours_sampled: int
    unmatched: list[dict] = field(default_factory=list)
    unmatched_count: int = 0

    def as_dict(self) -> dict:
        """JSON-ready (money as strings, exact)."""
        r = self.rec
        return {
            "cluster": r.cluster,
            "month": f"{r.month:%Y-%m}",
            "currency": r.currency,
            "bill": {
                "node_cost": str(r.bill_node_cost),
                "overhead": str(r.bill_overhead),
                "total": str(r.bill_total),
            },
            "allocated_total": str(r.allocated_total),
            "difference": str(r.difference),
            "explained": [
                {"key": e.key, "label": e.label, "amount": str(e.amount)}
                for e in self.explanations
            ],
            "residual": str(r.residual),
            "unmatched_tagged": str(r.unmatched_tagged),
            "unmatched_items": self.unmatched_count,
            "node_cost_by_source": {k: str(v) for k, v in r.node_cost_by_source.items()},
            "node_hours_by_source": {k: round(v, 4) for k, v in self.node_hours_by_source.items()},
            "hours_in_month": self.hours_in_month,
            "hours_sampled": self.hours_sampled,
        }


def _month_range(month: date) -> tuple[datetime, datetime]:
    from datetime import UTC

    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    return start, (start + timedelta(days=32)).replace(day=1)


def reconciliation_report(cluster: Cluster, month: date) -> ReconciliationReport:
    """Reconcile one cluster-month and explain the difference (see `Reconciliation`)."""
    rec = reconcile_month(cluster, month)
    start, end = _month_range(month)
    explanations = [
        Explanation(
            "bill_unplaced",
            "Bill node charges in hours not sampled",
            rec.bill_unplaced,
            "matched node charges with no observed node-hour (collector down, node outside "
            "the sampled window): on the bill, not allocated",
        ),
        Explanation(
            "overhead_not_accrued",
            "Bill overhead in hours without nodes",
            rec.overhead_not_accrued,
            "cluster-tagged charges in hours in which the cluster had no node-hours "
            "(overhead accrues only with nodes)",
        ),
        Explanation(
            "priced_off_bill",
            "Allocated cost not from the bill",
            -rec.priced_off_bill,
            "node-hours priced from the catalog, custom or default prices, and manual "
            "overhead: allocated, not on this bill",
        ),
        Explanation(
            "unallocated",
            "Not yet (re-)allocated",
            rec.unallocated,
            "node cost and overhead of days not allocated since their last re-pricing",
        ),
    ]
    keys = [k for pid in Node.objects.filter(cluster=cluster).values_list("provider_id", flat=True)
            for k in node_match_keys(pid)]
    unmatched_qs = (
        BillingCharge.objects.filter(
            kind="node",
            cluster_name=cluster.name,
            charge_period_start__gte=start,
            charge_period_start__lt=end,
        )
        .exclude(resource_key__in=keys)
        .order_by("-effective_cost", "charge_period_start")
    )
    unmatched = list(
        unmatched_qs.values(
            "id",
            "billing_import_id",
            "row",
            "resource_id",
            "resource_key",
            "resource_name",
            "charge_period_start",
            "charge_period_end",
            "effective_cost",
            "billing_currency",
            "charge_description",
        )[:UNMATCHED_LIMIT]
    )
    coverage = ClusterHour.objects.filter(
        cluster=cluster, hour_start__gte=start, hour_start__lt=end
    ).aggregate(n=Count("id", filter=Q(covered_seconds__gt=0)))
    return ReconciliationReport(
        rec=rec,
        explanations=explanations,
        node_hours_by_source=price_sources(cluster, start.date(), end.date()),
        hours_in_month=int((end - start).total_seconds() // 3600),
        hours_sampled=coverage["n"] or 0,
        unmatched=unmatched,
        unmatched_count=unmatched_qs.count(),
    )


def latest_bill_month() -> date | None:
    """The month of the newest charge (the reconciliation page's default month)."""
    last = BillingCharge.objects.aggregate(m=Max("charge_period_start"))["m"]
    return last.date().replace(day=1) if last else None


STALE_IMPORT = "interrupted: the process importing this file died (database or worker crash); "
STALE_IMPORT += "nothing of it was kept — import it again"


def fail_stale_imports(older_than: timedelta = timedelta(hours=2)) -> int:
    """Mark imports still `running` long after any import could take as failed.

    An import's row is written before its transaction so failures are visible; if the process
    dies with the database, nothing marks it failed (its charges were rolled back). Beat calls
    this hourly through `tasks.sync_billing_sources`.
    """
    cutoff = timezone.now() - older_than
    return BillingImport.objects.filter(
        status=BillingImport.Status.RUNNING, started_at__lt=cutoff
    ).update(status=BillingImport.Status.FAILED, error=STALE_IMPORT, finished_at=timezone.now())
