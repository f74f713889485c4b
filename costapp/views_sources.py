"""Pages: billing sources (/billing/sources/) — where exports are picked up from, their last
delivery, rows, period covered, status and error, with live progress while a delivery imports.

For finance staff and admins (`access.sees_everything`), like the other billing pages. Sources
are configured in the admin (Settings) or with `manage.py add_billing_source`; the page shows a
source's location and the NAMES of its credential variables, never a credential.
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from costapp import access
from costapp.billing.sync import JOB_KIND
from costapp.models import Job
from costapp.models.sources import BillingDelivery, BillingSource

E_FINANCE_ONLY = "Billing sources are for finance staff and administrators."
DELIVERIES_PER_PAGE = 50


finance_only = access.finance_only(E_FINANCE_ONLY)


def _running_jobs() -> dict[str, dict]:
    """Running sync jobs by source name, with cache-first progress."""
    from costapp.billing.service import job_state

    out = {}
    for job in Job.objects.filter(kind=JOB_KIND, status=Job.Status.RUNNING)[:100]:
        name = (job.params or {}).get("source")
        if name and name not in out:
            out[name] = job_state(job)
    return out


def _rows() -> list[dict]:
    running = _running_jobs()
    rows = []
    for s in BillingSource.objects.select_related("cluster"):
        last = (
            BillingDelivery.objects.filter(source=s, status__in=["succeeded", "replaced"])
            .order_by("-started_at")
            .first()
        )
        rows.append({"source": s, "last": last, "job": running.get(s.name)})
    return rows


@finance_only
def source_list(request: HttpRequest) -> HttpResponse:
    """Every source: location, last delivery (period, rows, EffectiveCost), status, error."""
    rows = _rows()
    template = "sources_table.html" if request.GET.get("partial") else "sources.html"
    return render(request, template, {
        "page": "billing", "rows": rows, "running": any(r["job"] for r in rows),
    })


@finance_only
def source_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One source and its deliveries, newest first (each one's parts, import, job, error)."""
    source = get_object_or_404(BillingSource.objects.select_related("cluster"), pk=pk)
    deliveries = source.deliveries.select_related("billing_import", "job")[:DELIVERIES_PER_PAGE]
    return render(request, "sources_detail.html", {
        "page": "billing", "source": source, "deliveries": deliveries,
        "job": _running_jobs().get(source.name),
    })


@finance_only
@require_POST
def source_sync(request: HttpRequest, pk: int) -> HttpResponse:
    """Check the source now (even while it backs off after failures), on a worker."""
    from costapp import tasks

    source = get_object_or_404(BillingSource, pk=pk)
    transaction.on_commit(lambda: tasks.sync_billing_source.delay(source.pk, force=True))
    return redirect("billing-source", pk=source.pk)


urlpatterns = [
    path("billing/sources/", source_list, name="billing-sources"),
    path("billing/sources/<int:pk>/", source_detail, name="billing-source"),
    path("billing/sources/<int:pk>/sync", source_sync, name="billing-source-sync"),
]
