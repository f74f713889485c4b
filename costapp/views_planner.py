"""Capacity planner pages: the pools of every cluster, and one pool's plan with what-if inputs.

Pages read stored recommendations (`costapp.planner`); the what-if form is a GET that re-plans
the stored hourly series server-side (about a millisecond), so the page needs no API call.
Everyone signed in may read plans: they show capacity and list prices, never a team's money.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from costapp import planner
from costapp.models import Recommendation


@login_required
def planner_list(request: HttpRequest) -> HttpResponse:
    """Every pool's latest recommendation, one line each."""
    rows = []
    for rec in Recommendation.objects.select_related("cluster"):
        result = planner.evaluate(rec)
        rows.append({"rec": rec, "result": result})
    return render(request, "planner_list.html", {"rows": rows,
                                                 "min_days": planner.DEFAULTS.min_trusted_days})


@login_required
def planner_pool(request: HttpRequest, pk: int) -> HttpResponse:
    """One pool: chart, recommendation in words, monthly costs, backtest, what-if form."""
    rec = get_object_or_404(Recommendation.objects.select_related("cluster"), pk=pk)
    error = None
    try:
        what_if = planner.parse_what_if(request.GET)
    except planner.PlannerInputError as exc:
        error, what_if = str(exc), planner.WhatIf()
    result = planner.evaluate(rec, what_if)
    stored = planner.evaluate(rec) if what_if != planner.WhatIf() else None
    form = {name: request.GET.get(name, "") for name in planner.WHAT_IF_PARAMS}
    status = 400 if error else 200
    return render(request, "planner_pool.html", {
        "rec": rec, "r": result, "stored": stored, "error": error, "form": form,
        "figure": planner.chart(result),
        "defaults": {
            "discount": round(100 * rec.options["reserved"]["discount"], 1),
            "term": rec.options["reserved"]["term_years"],
            "cap": rec.options["on_demand"]["cap_nodes"],
        },
    }, status=status)


def _urls():
    from django.urls import path

    from costapp.api_planner import RecommendationsView

    return [
        path("planner/", planner_list, name="planner_list"),
        path("planner/<int:pk>/", planner_pool, name="planner_pool"),
        path("api/v1/recommendations/", RecommendationsView.as_view(),
             name="api-recommendations"),
    ]


# Included from costapp/urls.py with `path("", include("costapp.views_planner"))`.
urlpatterns = _urls()
