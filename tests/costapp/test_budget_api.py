"""Budget and forecast API, ownership and budget pages: who sees and creates what."""

from __future__ import annotations

import contextlib
from datetime import date
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from costapp.models import (
    AllocationLine,
    Budget,
    Cluster,
    ClusterDay,
    NamespaceTeam,
    OwnershipChange,
)

with contextlib.suppress(ImportError):
    import costapp.models.billing  # noqa: F401  (billing tables, until models/__init__ has them)


def client_for(user):
    c = APIClient()
    c.force_authenticate(user)
    return c


BODY = {"name": "payments monthly", "scope": "team", "team": "payments", "period": "monthly",
        "amount": "1000.00", "thresholds": [{"percent": 80, "basis": "actual"},
                                            {"percent": 100, "basis": "forecast"}],
        "emails": ["lead@example.com"], "webhook_url": "https://hooks.example.com/x",
        "webhook_secret": "very-secret-value"}


def test_member_creates_a_budget_for_their_team_and_the_secret_is_never_shown(world):
    res = client_for(world.alice).post("/api/v1/budgets/", BODY, format="json")
    assert res.status_code == 201, res.content
    assert "very-secret-value" not in res.content.decode()
    assert res.json()["webhook_secret_set"] is True
    assert res.json()["status"]["actual"] == "0.00"
    budget = Budget.objects.get()
    assert budget.created_by == world.alice and budget.webhook_secret_encrypted
    assert "very-secret-value" not in budget.webhook_secret_encrypted
    listed = client_for(world.alice).get("/api/v1/budgets/").json()
    assert [b["name"] for b in listed["results"]] == ["payments monthly"]
    assert "very-secret-value" not in str(listed)


def test_member_cannot_create_or_see_other_teams_budgets(world):
    res = client_for(world.bob).post("/api/v1/budgets/", BODY, format="json")
    assert res.status_code == 403
    other = dict(BODY, scope="cluster", team=None, cluster="c1")
    Cluster.objects.create(name="c1")
    assert client_for(world.alice).post("/api/v1/budgets/", other, format="json") \
        .status_code == 403
    client_for(world.finance).post("/api/v1/budgets/", BODY, format="json")
    pk = Budget.objects.get().pk
    assert client_for(world.bob).get("/api/v1/budgets/").json()["results"] == []
    assert client_for(world.bob).get(f"/api/v1/budgets/{pk}/").status_code == 404
    assert client_for(world.outsider).get("/api/v1/budgets/").status_code == 403
    assert APIClient().get("/api/v1/budgets/").status_code in (401, 403)


def test_finance_and_admin_see_all_and_create_any_scope(world):
    Cluster.objects.create(name="c1")
    fin = client_for(world.finance)
    assert fin.post("/api/v1/budgets/", dict(BODY, scope="cluster", cluster="c1", team=None),
                    format="json").status_code == 201
    assert fin.post("/api/v1/budgets/", dict(BODY, team="search"), format="json") \
        .status_code == 201
    assert len(client_for(world.admin).get("/api/v1/budgets/").json()["results"]) == 2
    bad = fin.post("/api/v1/budgets/", dict(BODY, scope="namespace", team=None), format="json")
    assert bad.status_code == 400 and "namespace" in bad.json()


def test_patch_and_delete(world):
    res = client_for(world.alice).post("/api/v1/budgets/", BODY, format="json")
    pk = res.json()["id"]
    res = client_for(world.alice).patch(f"/api/v1/budgets/{pk}/", {"amount": "2000"},
                                        format="json")
    assert res.status_code == 200 and res.json()["amount"] == "2000.00"
    assert client_for(world.bob).delete(f"/api/v1/budgets/{pk}/").status_code == 404
    assert client_for(world.alice).delete(f"/api/v1/budgets/{pk}/").status_code == 204


def test_forecast_api_per_team_with_method(world):
    c = Cluster.objects.create(name="c1")
    for d in range(1, 11):
        day = date(2026, 3, d)
        ClusterDay.objects.create(cluster=c, day=day, allocated_at=timezone.now(), dirty=False)
        AllocationLine.objects.create(cluster=c, day=day, kind="workload", namespace="pay",
                                      controller_kind="Deployment", controller="api",
                                      team="payments", node_pool="g", capacity_type="x",
                                      cpu_cost=Decimal(10))
    res = client_for(world.alice).get("/api/v1/forecast/?month=2026-03&team=payments")
    assert res.status_code == 200, res.content
    (row,) = res.json()["results"]
    # A month that is over forecasts exactly its actual (unallocated days are not invented).
    assert row["month_to_date"] == 100.0 and row["forecast"] == 100.0
    assert row["remaining"] == 0 and "complete" in row["method"]
    assert client_for(world.bob).get("/api/v1/forecast/?team=payments").status_code == 403
    assert client_for(world.alice).get("/api/v1/forecast/?month=March").status_code == 400
    teams = [r["team"] for r in client_for(world.finance).get(
        "/api/v1/forecast/?month=2026-03").json()["results"]]
    assert teams == ["payments", "search"]


def test_coverage_api_is_for_finance_and_admins(world):
    c = Cluster.objects.create(name="c1")
    AllocationLine.objects.create(cluster=c, day=date(2026, 3, 2), kind="workload",
                                  namespace="legacy", controller_kind="Deployment",
                                  controller="old", team="__unallocated__", node_pool="g",
                                  capacity_type="x", cpu_cost=Decimal(25))
    AllocationLine.objects.create(cluster=c, day=date(2026, 3, 2), kind="workload",
                                  namespace="pay", controller_kind="Deployment", controller="api",
                                  team="payments", node_pool="g", capacity_type="x",
                                  cpu_cost=Decimal(75))
    res = client_for(world.finance).get("/api/v1/ownership/coverage/?cluster=c1&month=2026-03")
    assert res.json()["share"] == 0.75
    assert res.json()["unowned_namespaces"] == [
        {"cluster": "c1", "namespace": "legacy", "cost": "25.00"}]
    assert client_for(world.alice).get("/api/v1/ownership/coverage/").status_code == 403


def test_ownership_page_shows_rule_order_and_admin_assigns_a_namespace(world, client,
                                                                      django_capture_on_commit_callbacks):
    c = Cluster.objects.create(name="c1")
    AllocationLine.objects.create(cluster=c, day=date(2026, 3, 2), kind="workload",
                                  namespace="legacy", controller_kind="Deployment",
                                  controller="old", team="__unallocated__", node_pool="g",
                                  capacity_type="x", cpu_cost=Decimal(25))
    client.force_login(world.admin)
    page = client.get("/ownership/?month=2026-03").content.decode()
    order = ["pod label", "pod annotation", "workload label", "namespace label",
             "namespace annotation", "namespace table", "default team"]
    positions = [page.index(f"<strong>{r}</strong>") for r in order]
    assert positions == sorted(positions)
    assert "legacy" in page and "0.0 %" in page
    with django_capture_on_commit_callbacks(execute=True):
        res = client.post("/ownership/assign", {"namespace": "legacy", "team": "payments",
                                                "cluster": "", "recompute": "none"})
    assert res.status_code == 302
    assert NamespaceTeam.objects.get(namespace="legacy").team == world.payments
    assert OwnershipChange.objects.get().diff == ["+ namespace legacy → payments (all clusters)"]


def test_only_admins_change_rules_and_members_do_not_see_coverage(world, client):
    client.force_login(world.finance)
    assert client.get("/ownership/").status_code == 200
    assert client.post("/ownership/assign", {"namespace": "x", "team": "payments"}) \
        .status_code == 403
    client.force_login(world.alice)
    assert client.get("/ownership/").status_code == 403


def test_budget_pages_show_actual_forecast_and_history(world, client):
    budget = Budget.objects.create(name="pay", scope="team", team=world.payments,
                                   amount=Decimal(100))
    client.force_login(world.alice)
    assert "pay" in client.get("/budgets/").content.decode()
    page = client.get(f"/budgets/{budget.pk}/").content.decode()
    assert 'id="budget-forecast"' in page and 'id="budget-history"' in page
    client.force_login(world.bob)
    assert client.get(f"/budgets/{budget.pk}/").status_code == 404


def test_team_forecast_of_the_current_month_is_day_of_week_aware(world):
    from datetime import timedelta

    from costapp import budgets

    c = Cluster.objects.create(name="c1")
    today = date(2026, 3, 11)  # a Wednesday; weekdays cost 100, weekends 40
    for i in range(1, 29):
        day = today - timedelta(days=i)
        ClusterDay.objects.create(cluster=c, day=day, allocated_at=timezone.now(), dirty=False)
        AllocationLine.objects.create(cluster=c, day=day, kind="workload", namespace="pay",
                                      controller_kind="Deployment", controller="api",
                                      team="payments", node_pool="g", capacity_type="x",
                                      cpu_cost=Decimal(40 if day.weekday() >= 5 else 100))
    fc = budgets.team_forecast(world.payments, date(2026, 3, 1), today)
    rest = [today + timedelta(days=i) for i in range(21)]  # 11th … 31st
    assert fc.month_to_date == pytest.approx(100 * 7 + 40 * 3)
    assert fc.remaining == pytest.approx(sum(40 if d.weekday() >= 5 else 100 for d in rest))
