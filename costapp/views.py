"""Server-rendered pages. They read allocation lines only (through ``costapp.queries``), never
Kubernetes or the engine; charts come from ``costapp.charts``; who sees what from
``costapp.access``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import wraps

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from rest_framework.authtoken.models import Token

from costapp import chargeback, charts, forecast, queries
from costapp.access import E_NO_ACCESS, can_change_settings, visible_teams
from costapp.api import csv_response
from costapp.models import IDLE, SHARED, AllocationPolicy, Cluster, ClusterDay, ClusterHour, Team

EXPLORER_ROW_LIMIT = 5000


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def _today() -> date:
    return datetime.now(UTC).date()


def cost_page(view):
    """Pages with cost data: pass the visible teams; explain (403) when there are none."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        teams = visible_teams(request.user)
        if teams is not None and not teams:
            return render(request, "no_access.html", {"message": E_NO_ACCESS}, status=403)
        return view(request, teams, *args, **kwargs)

    return wrapper


def _base_context(request, teams, **extra):
    ctx = {"restricted": teams is not None, "my_teams": sorted(teams or ()),
           "is_admin": can_change_settings(request.user),
           "clusters": list(Cluster.objects.values_list("name", flat=True))}
    ctx.update(extra)
    return ctx


def _date_param(request, name: str, default: date) -> date:
    raw = request.GET.get(name)
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise queries.QueryError(name, f"{name} must be a date (YYYY-MM-DD); got {raw!r}") from None


def _policy_query(start, end, keys, step, clusters, teams, filters=None, idle=None):
    policy = AllocationPolicy.current()
    return queries.AllocationQuery(start, end, keys, step, idle or policy.idle or "separate",
                                   tuple(policy.shared_namespaces or ()),
                                   policy.shared_split or "weighted", tuple(clusters),
                                   filters or {}, teams)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days)]


def _error_page(request, teams, exc: queries.QueryError, template="error.html"):
    return render(request, "error.html", _base_context(
        request, teams, parameter=exc.parameter, message=exc.message), status=400)


@cost_page
def overview(request: HttpRequest, teams) -> HttpResponse:
    """Month to date, forecast, change vs last month, daily cost by team (idle and shared as
    such), top movers, efficiency; cluster and date-range filters."""
    today = _today()
    try:
        start = _date_param(request, "start", today.replace(day=1))
        last = _date_param(request, "end", today)
        if last < start:
            raise queries.QueryError("end", "end is before start")
    except queries.QueryError as exc:
        return _error_page(request, teams, exc)
    cluster = request.GET.get("cluster") or ""
    clusters = (cluster,) if cluster else ()
    end = last + timedelta(days=1)
    ans = queries.run(_policy_query(start, end, ("team",), "day", clusters, teams))
    days = _days(start, end)
    index = {d: i for i, d in enumerate(days)}
    series: dict[str, list[float]] = {}
    idle = [0.0] * len(days)
    shared = [0.0] * len(days)
    c = ans.columns
    for kind, team, d, total, sh in zip(c["kind"].tolist(), c["team"].tolist(),
                                        c["window_start"].tolist(), c["total_cost"].tolist(),
                                        c["shared_cost"].tolist(), strict=True):
        i = index.get(d)
        if i is None:
            continue
        if kind == "idle":
            idle[i] += total
        elif team == SHARED:
            shared[i] += total
        else:
            series.setdefault(team, [0.0] * len(days))[i] += total - sh
            shared[i] += sh
    currency = ans.currency or "USD"
    figure = charts.daily_stacked([d.isoformat() for d in days], series, currency,
                                  idle=None if teams is not None else idle, shared=shared)
    fc = forecast.month_forecast(today, clusters, teams)
    # Change vs the same days of last month.
    prev_end = today.replace(day=1)
    prev_start = (prev_end - timedelta(days=1)).replace(day=1)
    same_days_end = min(prev_start + timedelta(days=today.day), prev_end)
    prev_daily = queries.daily_totals(prev_start, same_days_end, clusters, teams)
    prev_mtd = sum(prev_daily.values()) if prev_daily else None
    change = (fc.month_to_date - prev_mtd) / prev_mtd if prev_mtd else None
    # Top movers: last 7 days vs the 7 before, by team.
    recent = queries.run(_policy_query(last - timedelta(days=6), end, ("team",), "window",
                                       clusters, teams)).by("team")
    before = queries.run(_policy_query(last - timedelta(days=13), last - timedelta(days=6),
                                       ("team",), "window", clusters, teams)).by("team")
    movers = []
    for team in set(recent) | set(before):
        if team in (IDLE, SHARED):
            continue
        a, b = recent.get(team, 0.0), before.get(team, 0.0)
        movers.append({"team": team, "recent": a, "before": b, "change": a - b,
                       "pct": (a - b) / b if b else None})
    movers.sort(key=lambda m: -abs(m["change"]))
    totals = ans.totals()
    idle_amount = ans.idle_total if teams is None else None
    notices = queries.data_status(start, end, clusters)
    has_data = len(ans) > 0
    return render(request, "overview.html", _base_context(
        request, teams, page="overview", start=start, end=last, cluster=cluster,
        currency=currency, figure=figure, forecast=fc, prev_mtd=prev_mtd, change=change,
        movers=movers[:8], totals=totals, idle_amount=idle_amount,
        idle_share=(idle_amount / totals["total_cost"]) if idle_amount and totals["total_cost"]
        else None, shared_amount=sum(shared), notices=notices, has_data=has_data,
        team_totals=sorted(((k, v) for k, v in ans.by("team").items()
                            if k not in (IDLE, SHARED)), key=lambda kv: -kv[1]),
        policy=AllocationPolicy.current(),
    ))


def _label(row: dict, keys) -> str:
    return " / ".join(str(row[k]) for k in keys)


@cost_page
def explorer(request: HttpRequest, teams) -> HttpResponse:
    """Pick window, aggregation, step, idle policy, shared namespaces and split; chart, sortable
    table and a CSV of exactly the lines shown."""
    policy = AllocationPolicy.current()
    params = request.GET.copy()
    params.pop("format", None)
    try:
        q = queries.AllocationQuery.from_params(params, teams=teams, today=_today(),
                                                policy=policy)
        ans = queries.run(q)
    except queries.QueryError as exc:
        return _error_page(request, teams, exc)
    if request.GET.get("format") == "csv":
        return csv_response(ans.header(), ans.rows(), "allocations.csv")
    rows = ans.records(0, EXPLORER_ROW_LIMIT)
    currency = ans.currency
    if q.step == "window":
        figure = charts.bar([_label(r, q.keys) for r in rows],
                            [r["total_cost"] for r in rows], currency,
                            title=f"Cost by {', '.join(q.keys)}")
    else:
        top = sorted(ans.by(q.keys[0]).items(), key=lambda kv: -kv[1])
        starts = sorted({r["window_start"] for r in rows})
        pos = {d: i for i, d in enumerate(starts)}
        keep = {k for k, _ in top[:9]}
        series: dict[str, list[float]] = {}
        idle = [0.0] * len(starts)
        for r in rows:
            if r["kind"] == "idle":
                idle[pos[r["window_start"]]] += r["total_cost"]
                continue
            name = r[q.keys[0]] if r[q.keys[0]] in keep else "other"
            series.setdefault(name, [0.0] * len(starts))[pos[r["window_start"]]] += \
                r["total_cost"]
        figure = charts.daily_stacked([d.isoformat() for d in starts], series, currency,
                                      idle=idle, title=f"Cost by {q.keys[0]} per {q.step}")
    csv_params = request.GET.copy()
    csv_params["format"] = "csv"
    form = {k: request.GET.get(k, "") for k in ("window", "aggregate", "step", "idle",
                                                "shared_split", "namespace", "team")}
    form["shared_namespaces"] = ",".join(q.shared_namespaces)
    form["window"] = form["window"] or "month"
    form["aggregate"] = ",".join(q.keys)
    return render(request, "explorer.html", _base_context(
        request, teams, page="explorer", q=q, rows=rows, total_lines=len(ans),
        truncated=len(ans) > EXPLORER_ROW_LIMIT, totals=ans.summary(), currency=currency,
        figure=figure, csv_url=f"{reverse('explorer')}?{csv_params.urlencode()}", form=form,
        keys_available=list(queries.KEYS) + [f"label:{k}" for k in policy.label_keys or ()],
        steps=queries.STEPS, idle_policies=queries.IDLE_POLICIES, splits=queries.SPLITS,
        cluster=request.GET.get("cluster", ""),
        notices=queries.data_status(q.start, q.end, q.clusters),
    ))


@cost_page
def team_list(request: HttpRequest, teams) -> HttpResponse:
    today = _today()
    start = today.replace(day=1)
    ans = queries.run(_policy_query(start, today + timedelta(days=1), ("team",), "window", (),
                                    teams))
    by = ans.by("team")
    qs = Team.objects.select_related("cost_centre").order_by("name")
    if teams is not None:
        qs = qs.filter(name__in=teams)
    rows = [{"team": t, "cost": by.get(t.name)} for t in qs]
    return render(request, "teams.html", _base_context(
        request, teams, page="teams", rows=rows, currency=ans.currency, start=start,
        unallocated=by.get("__unallocated__") if teams is None else None))


@cost_page
def team_detail(request: HttpRequest, teams, name: str) -> HttpResponse:
    """A team's trend, namespaces, workloads, efficiency, idle share and statement."""
    try:
        team = Team.objects.select_related("cost_centre").get(name=name)
    except Team.DoesNotExist:
        raise Http404("no such team") from None
    if teams is not None and name not in teams:
        return render(request, "no_access.html", {"message": f"You are not a member of {name}."},
                      status=403)
    today = _today()
    try:
        start, end = queries.parse_window(request.GET.get("window") or "30d", today)
    except queries.QueryError as exc:
        return _error_page(request, teams, exc)
    only = {"team": (name,)}
    daily = queries.run(_policy_query(start, end, ("team",), "day", (), teams, only))
    days = _days(start, end)
    per_day = dict.fromkeys(days, 0.0)
    for d, v in zip(daily.columns["window_start"].tolist(),
                    daily.columns["total_cost"].tolist(), strict=True):
        per_day[d] = per_day.get(d, 0.0) + v
    currency = daily.currency
    figure = charts.trend([d.isoformat() for d in days], list(per_day.values()), currency,
                          title=f"Daily cost of {name}")
    namespaces = queries.run(_policy_query(start, end, ("cluster", "namespace"), "window", (),
                                           teams, only)).records()
    workloads = queries.run(_policy_query(start, end, ("namespace", "controller_kind",
                                                       "controller"), "window", (), teams,
                                          only)).records(0, 200)
    totals = daily.totals()
    shared_idle = queries.run(_policy_query(start, end, ("team",), "window", (), teams, only,
                                            idle="share-by-cluster")).totals()
    idle_share = (shared_idle["idle_cost"] / shared_idle["total_cost"]
                  if shared_idle["total_cost"] else None)
    month = today.replace(day=1)
    st = chargeback.statement(month, teams, name)
    return render(request, "team.html", _base_context(
        request, teams, page="teams", team=team, start=start, end=end - timedelta(days=1),
        window=request.GET.get("window") or "30d", figure=figure, currency=currency,
        namespaces=namespaces, workloads=workloads, totals=totals, idle_share=idle_share,
        idle_share_amount=shared_idle["idle_cost"], statement=st, month=month,
        has_data=len(daily) > 0, notices=queries.data_status(start, end)))


@cost_page
def node_pools(request: HttpRequest, teams) -> HttpResponse:
    """Cost by node pool and capacity type, utilisation and idle."""
    today = _today()
    try:
        start, end = queries.parse_window(request.GET.get("window") or "month", today)
    except queries.QueryError as exc:
        return _error_page(request, teams, exc)
    q = queries.AllocationQuery(start, end, ("cluster", "node_pool", "capacity_type"), "window",
                                "separate", (), "weighted", (), {}, teams)
    ans = queries.run(q)
    pools: dict[tuple, dict] = {}
    for r in ans.records():
        key = (r["cluster"], r["node_pool"], r["capacity_type"])
        p = pools.setdefault(key, {"cluster": key[0], "node_pool": key[1],
                                   "capacity_type": key[2], "allocated": 0.0, "idle": 0.0,
                                   "alloc_cores": 0.0, "idle_cores": 0.0, "usage_cores": 0.0,
                                   "alloc_gib": 0.0, "idle_gib": 0.0, "usage_gib": 0.0})
        if r["kind"] == "idle":
            p["idle"] += r["total_cost"]
            p["idle_cores"] += r["cpu_core_hours"]
            p["idle_gib"] += r["ram_gib_hours"]
        else:
            p["allocated"] += r["total_cost"]
            p["alloc_cores"] += r["cpu_core_hours"]
            p["alloc_gib"] += r["ram_gib_hours"]
            p["usage_cores"] += r["cpu_usage_core_hours"]
            p["usage_gib"] += r["ram_usage_gib_hours"]
    rows = sorted(pools.values(), key=lambda p: -(p["allocated"] + p["idle"]))
    for p in rows:
        cap_c = p["alloc_cores"] + p["idle_cores"]
        cap_g = p["alloc_gib"] + p["idle_gib"]
        p["total"] = p["allocated"] + p["idle"]
        p["cpu_util"] = p["usage_cores"] / cap_c if cap_c else None
        p["ram_util"] = p["usage_gib"] / cap_g if cap_g else None
        p["idle_pct"] = p["idle"] / p["total"] if p["total"] and teams is None else None
    names = [f"{p['node_pool']} · {p['capacity_type']}" for p in rows]
    figure = charts.pools(names, [p["allocated"] for p in rows],
                          [p["idle"] for p in rows], ans.currency)
    return render(request, "node_pools.html", _base_context(
        request, teams, page="pools", rows=rows, figure=figure, currency=ans.currency,
        start=start, end=end - timedelta(days=1), window=request.GET.get("window") or "month",
        notices=queries.data_status(start, end)))


@cost_page
def cluster_list(request: HttpRequest, teams) -> HttpResponse:
    return render(request, "clusters.html", _base_context(
        request, teams, page="clusters", cluster_rows=Cluster.objects.order_by("name")))


@cost_page
def cluster_detail(request: HttpRequest, teams, name: str) -> HttpResponse:
    try:
        cluster = Cluster.objects.get(name=name)
    except Cluster.DoesNotExist:
        raise Http404("no such cluster") from None
    days = list(ClusterDay.objects.filter(cluster=cluster).order_by("-day")[:31])
    for d in days:
        d.billed = "bill" in (d.priced_by or {})
        d.covered_hours = d.covered_seconds / 3600
        d.sources = ", ".join(sorted(d.priced_by or {})) or "—"
    gaps = list(ClusterHour.objects.filter(cluster=cluster, covered_seconds__lt=3600)
                .order_by("-hour_start")[:24])
    for g in gaps:
        g.missing_minutes = (3600 - g.covered_seconds) / 60
    today = _today()
    return render(request, "cluster.html", _base_context(
        request, teams, page="clusters", cluster=cluster, days=days, gaps=gaps,
        show_money=teams is None,
        notices=queries.data_status(today - timedelta(days=30), today + timedelta(days=1),
                                    (name,))))


@cost_page
def chargeback_page(request: HttpRequest, teams) -> HttpResponse:
    today = _today()
    try:
        month = queries.parse_month(request.GET["month"]) if request.GET.get("month") else \
            today.replace(day=1)
    except queries.QueryError as exc:
        return _error_page(request, teams, exc)
    team = request.GET.get("team") or None
    st = chargeback.statement(month, teams, team)
    months = []
    m = today.replace(day=1)
    for _ in range(12):
        months.append(m)
        m = (m - timedelta(days=1)).replace(day=1)
    qs = Team.objects.order_by("name")
    if teams is not None:
        qs = qs.filter(name__in=teams)
    csv = f"{reverse('api-chargeback')}?month={month:%Y-%m}&format=csv"
    if team:
        csv += f"&team={team}"
    return render(request, "chargeback.html", _base_context(
        request, teams, page="chargeback", statement=st, month=month, months=months,
        team=team or "", team_names=list(qs.values_list("name", flat=True)), csv_url=csv,
        notices=queries.data_status(month, queries.month_bounds(month)[1])))


def api_token(request: HttpRequest) -> HttpResponse:
    """Show, create or regenerate the user's API token."""
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        return redirect("api-token")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "api_token.html", {"token": token, "page": "token"})


def api_docs(request: HttpRequest) -> HttpResponse:
    """A server-rendered page listing the endpoints and parameters of the OpenAPI schema."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    endpoints = []
    for path, ops in schema.get("paths", {}).items():
        for method, op in ops.items():
            endpoints.append({"path": path, "method": method.upper(),
                              "summary": op.get("description", ""),
                              "parameters": op.get("parameters", [])})
    return render(request, "api_docs.html", {"endpoints": endpoints, "page": "docs",
                                             "info": schema.get("info", {})})


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """404 handler: JSON under /api/ (as the schema documents), the usual page elsewhere."""
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
