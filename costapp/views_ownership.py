"""Pages: ownership rules and coverage (/ownership/) and budgets (/budgets/).

Reading coverage needs finance or admin (it names every namespace); changing rules needs an
admin (access.can_change_settings). A rule change is recorded, the chosen days are marked and a
recompute job runs in the background; the page shows its progress.
"""

from __future__ import annotations

from datetime import date

from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from costapp import access, budgets, ownership_rules
from costapp.models import Cluster, OwnershipChange, Team
from costapp.models.budgets import period_bounds
from costapp.ownership import explain_rules

E_ADMIN_ONLY = "Only administrators change ownership rules."


def _month(value: str | None) -> date:
    try:
        year, month = (value or "").split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        return budgets.today().replace(day=1)


def _recompute_choice(post) -> str:
    mode = post.get("recompute", "none")
    if mode == "since":
        return f"since:{post.get('since', '')}"
    return mode


def _job_progress(job) -> dict | None:
    if job is None:
        return None
    done, total, message = cache.get(f"job:{job.pk}:progress") or (job.done, job.total,
                                                                     job.message)
    return {"job": job, "done": done, "total": total, "message": message,
            "percent": round(100 * done / total) if total else 0}


def ownership_page(request: HttpRequest) -> HttpResponse:
    """Rules in evaluation order, the namespace table, coverage and the top unowned costs."""
    if not access.sees_everything(request.user):
        raise PermissionDenied(access.E_NO_ACCESS)
    clusters = list(Cluster.objects.all())
    cluster = next((c for c in clusters if c.name == request.GET.get("cluster")), None)
    month = _month(request.GET.get("month"))
    cov = ownership_rules.coverage(cluster, month, period_bounds("monthly", month)[1])
    config = ownership_rules.current_config()
    changes = list(OwnershipChange.objects.select_related("job", "created_by")[:10])
    running = [p for p in (_job_progress(c.job) for c in changes)
               if p and p["job"].status in ("queued", "running")]
    return render(request, "ownership.html", {
        "rules": explain_rules(config.keys, config.default_team), "config": config,
        "table": ownership_rules.namespace_table(), "coverage": cov,
        "coverage_percent": round(cov.share * 100, 1), "clusters": clusters,
        "cluster": cluster, "month": month.strftime("%Y-%m"), "teams": Team.objects.all(),
        "changes": [(c, _job_progress(c.job)) for c in changes], "running": running,
        "can_edit": access.can_change_settings(request.user),
    })


@require_POST
def ownership_assign(request: HttpRequest) -> HttpResponse:
    """Map a namespace to a team (or remove the mapping) and recompute as the admin chose."""
    if not access.can_change_settings(request.user):
        raise PermissionDenied(E_ADMIN_ONLY)
    namespace = request.POST.get("namespace", "").strip()
    team_name = request.POST.get("team", "")
    team = get_object_or_404(Team, name=team_name) if team_name else None
    cluster_name = request.POST.get("cluster", "")
    cluster = get_object_or_404(Cluster, name=cluster_name) if cluster_name else None
    try:
        change = ownership_rules.set_namespace_team(
            namespace, team, cluster, recompute=_recompute_choice(request.POST),
            user=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        text = "; ".join(change.diff) or "no change"
        if change.days_marked:
            text += f" — recomputing {change.days_marked} day(s) in the background"
        messages.success(request, text)
    return redirect(request.POST.get("next") or "ownership")


@require_POST
def ownership_settings(request: HttpRequest) -> HttpResponse:
    """Change the rule keys and the default team."""
    if not access.can_change_settings(request.user):
        raise PermissionDenied(E_ADMIN_ONLY)
    keys = [k.strip() for k in request.POST.get("keys", "").split(",") if k.strip()]
    team_name = request.POST.get("default_team", "")
    team = get_object_or_404(Team, name=team_name) if team_name else None
    if not keys:
        messages.error(request, "keys must list at least one key")
        return redirect("ownership")
    try:
        change = ownership_rules.set_settings(keys, team,
                                              recompute=_recompute_choice(request.POST),
                                              user=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "; ".join(change.diff) or "no change")
    return redirect("ownership")


def budget_list(request: HttpRequest) -> HttpResponse:
    from costapp.api_budgets import visible_budgets

    rows = [budgets.budget_status(b) for b in visible_budgets(request.user)]
    return render(request, "budgets.html", {"rows": rows})


def budget_detail(request: HttpRequest, pk: int) -> HttpResponse:
    from costapp.api_budgets import visible_budgets

    budget = get_object_or_404(visible_budgets(request.user), pk=pk)
    status = budgets.budget_status(budget)
    return render(request, "budget_detail.html", {
        "budget": budget, "status": status, "history": budgets.budget_history(budget),
        "alerts": budget.alerts.all()[:50],
    })


urlpatterns = [
    path("ownership/", ownership_page, name="ownership"),
    path("ownership/assign", ownership_assign, name="ownership-assign"),
    path("ownership/settings", ownership_settings, name="ownership-settings"),
    path("budgets/", budget_list, name="budgets"),
    path("budgets/<int:pk>/", budget_detail, name="budget"),
]
