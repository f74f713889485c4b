"""Job pages: one job's status with a progress bar that updates live.

`/jobs/<id>/` renders the page; `/jobs/<id>/progress` answers the poll (every second, by
static/costapp/job_progress.js): JSON when asked (`?format=json` or `Accept: application/json`),
else the `partials/job_progress.html` fragment the page swaps in. Progress comes from the cache
key `job:<id>:progress` that `services.job_progress` writes (also while the job's transaction is
open), else from the Job row.

Who may see a job: finance staff and admins, and the user who started it.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path

from costapp import access
from costapp.billing.service import job_state
from costapp.models import Job

E_NOT_YOURS = "This job belongs to someone else."


def _visible_job(request: HttpRequest, pk: int) -> Job:
    job = get_object_or_404(Job, pk=pk)
    if not (access.sees_everything(request.user) or job.created_by_id == request.user.pk):
        raise PermissionDenied(E_NOT_YOURS)
    return job


def _json(state: dict) -> dict:
    out = dict(state)
    for k in ("created_at", "started_at", "finished_at"):
        out[k] = out[k].isoformat() if out[k] else None
    return out


def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The job page: description, status, progress bar, message, error, result link."""
    job = _visible_job(request, pk)
    return render(request, "jobs_detail.html", {"job": job, "state": job_state(job)})


def job_progress(request: HttpRequest, pk: int) -> HttpResponse:
    """The poll endpoint: JSON or the progress fragment; never cached by the browser."""
    job = _visible_job(request, pk)
    state = job_state(job)
    wants_json = request.GET.get("format") == "json" or "application/json" in request.headers.get(
        "Accept", ""
    )
    if wants_json:
        response: HttpResponse = JsonResponse(_json(state))
    else:
        response = render(request, "partials/job_progress.html", {"state": state})
    response["Cache-Control"] = "no-store"
    return response


urlpatterns = [
    path("jobs/<int:pk>/", job_detail, name="job"),
    path("jobs/<int:pk>/progress", job_progress, name="job-progress"),
]
