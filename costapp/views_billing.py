"""Pages: bill imports (/billing/), upload, one import, and reconciliation.

Bills name every account, cluster and resource, so these pages are for finance staff and admins
(`access.sees_everything`); team members get 403. The upload is spooled to a file and imported
by a Celery task (`tasks.import_billing_file`); the browser goes to the job page, which shows
progress live and links the import when it is done.
"""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods

from costapp import access, queries
from costapp.billing import service
from costapp.models import Cluster, Job
from costapp.models.billing import BillingImport

E_FINANCE_ONLY = "Bills and reconciliation are for finance staff and administrators."
IMPORTS_PER_PAGE = 100


finance_only = access.finance_only(E_FINANCE_ONLY)


class UploadForm(forms.Form):
    """A FOCUS file (CSV or CSV.gz) and, for a bill of an account dedicated to one cluster,
    the cluster its untagged charges belong to."""

    file = forms.FileField(help_text="FOCUS 1.x export, .csv or .csv.gz")
    cluster = forms.ModelChoiceField(
        queryset=Cluster.objects.order_by("name"),
        to_field_name="name",
        required=False,
        empty_label="— from the charges' tags —",
        help_text="cluster of charges whose tags name none",
    )


@finance_only
def import_list(request: HttpRequest) -> HttpResponse:
    """Every import, newest first: file, period, provider, rows, Σ EffectiveCost, status, error."""
    imports = BillingImport.objects.select_related("default_cluster")[:IMPORTS_PER_PAGE]
    jobs = Job.objects.filter(kind=service.JOB_KIND).exclude(
        status__in=[Job.Status.SUCCEEDED, Job.Status.FAILED]
    )[:10]
    return render(request, "billing.html", {
        "page": "billing", "imports": imports, "running": [service.job_state(j) for j in jobs],
        "form": UploadForm(),
    })


@finance_only
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST (multipart, CSRF-checked): spool the file, start the import job,
    go to its page."""
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        f = form.cleaned_data["file"]
        spooled = service.spool_upload(f.chunks(), f.name)
        job = service.start_import_job(spooled, f.name, form.cleaned_data["cluster"],
                                       user=request.user)
        return redirect("job", pk=job.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "billing_upload.html", {"page": "billing", "form": form},
                  status=status)


@finance_only
def import_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One import: what it covered, its totals by category and the commitment discounts used."""
    imp = get_object_or_404(BillingImport.objects.select_related("default_cluster"), pk=pk)
    return render(request, "billing_import.html", {
        "page": "billing", "imp": imp, "detail": service.import_detail(imp),
        "jobs": Job.objects.filter(kind=service.JOB_KIND, params__import_id=imp.pk)[:5],
    })


@finance_only
def reconciliation(request: HttpRequest) -> HttpResponse:
    """Bill vs allocation for one month: every cluster in a summary, one cluster in detail
    (the terms of the difference, price sources, unmatched bill items)."""
    clusters = list(Cluster.objects.order_by("name"))
    try:
        raw_month = request.GET.get("month")
        month = queries.parse_month(raw_month) if raw_month else (
            service.latest_bill_month() or queries.parse_month(_this_month()))
        name = request.GET.get("cluster") or ""
        cluster = next((c for c in clusters if c.name == name), None)
        if name and cluster is None:
            raise queries.QueryError("cluster", queries.E_UNKNOWN_CLUSTER.format(value=name))
    except queries.QueryError as exc:
        return render(request, "error.html", {"parameter": exc.parameter,
                                              "message": exc.message}, status=400)
    summary = [service.reconciliation_report(c, month) for c in clusters] if not cluster else []
    report = service.reconciliation_report(cluster, month) if cluster else None
    return render(request, "billing_reconciliation.html", {
        "page": "reconciliation", "clusters": clusters, "cluster": cluster,
        "month": f"{month:%Y-%m}", "summary": summary, "report": report,
    })


def _this_month() -> str:
    from django.utils import timezone

    return f"{timezone.now():%Y-%m}"


urlpatterns = [
    path("billing/", import_list, name="billing"),
    path("billing/upload/", upload, name="billing-upload"),
    path("billing/imports/<int:pk>/", import_detail, name="billing-import"),
    path("billing/reconciliation/", reconciliation, name="billing-reconciliation"),
]
