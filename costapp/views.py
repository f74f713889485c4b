"""Server-rendered pages. They read allocation lines only, never Kubernetes or the engine."""

from __future__ import annotations

from datetime import date

from django.db.models import F, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from costapp.models import AllocationLine


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def overview(request: HttpRequest) -> HttpResponse:
    today = timezone.now().date()
    start = date(today.year, today.month, 1)
    rows = (
        AllocationLine.objects.filter(day__gte=start, kind="workload")
        .values("team")
        .annotate(cost=Sum(F("cpu_cost") + F("ram_cost") + F("gpu_cost")))
        .order_by("-cost")
    )
    return render(request, "overview.html", {"rows": rows, "start": start})
