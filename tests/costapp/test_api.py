"""API v1 on PostgreSQL with the fixture world: auth, roles, parameters, CSV, schema."""

from __future__ import annotations

import csv
import io

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from costapp import queries
from costapp.models import ClusterDay
from tests.costapp.demo_data import DEMO_DAY, seed_demo

pytestmark = pytest.mark.django_db
DAY = DEMO_DAY.isoformat()
WINDOW = f"{DAY},{DAY}"


@pytest.fixture
def demo(world):
    seed_demo()
    return world


def client_for(user) -> APIClient:
    c = APIClient()
    c.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return c


def test_anonymous_gets_401_everywhere(db):
    c = APIClient()
    for url in ("/api/v1/allocations/", "/api/v1/chargeback/?month=2026-03", "/api/v1/teams/",
                "/api/v1/clusters/", "/api/schema/"):
        assert c.get(url).status_code == 401, url


def test_outsider_is_refused_with_an_explanation(world):
    r = client_for(world.outsider).get("/api/v1/allocations/")
    assert r.status_code == 403 and "not a member of any team" in r.json()["detail"]


def test_finance_sees_every_team_and_totals_match_the_cluster_cost(demo):
    r = client_for(demo.finance).get("/api/v1/allocations/", {"window": WINDOW,
                                                               "aggregate": "team"})
    assert r.status_code == 200
    body = r.json()
    teams = {line["team"] for line in body["results"]}
    assert {"payments", "search", "__idle__"} <= teams
    expected = sum(float(d.node_cost + d.overhead_cost)
                   for d in ClusterDay.objects.filter(day=DEMO_DAY))
    assert body["totals"]["total_cost"] == pytest.approx(expected, rel=1e-9)
    assert body["totals"]["cluster_cost"] == pytest.approx(expected, rel=1e-9)
    line = body["results"][0]
    for field in ("kind", "window_start", "window_end", "cpu_core_hours", "ram_gib_hours",
                  "gpu_hours", "cpu_cost", "ram_cost", "gpu_cost", "idle_cost", "shared_cost",
                  "total_cost", "cpu_efficiency", "ram_efficiency", "total_efficiency",
                  "currency"):
        assert field in line
    assert line["currency"] == "USD"


def test_member_sees_only_their_team_and_same_numbers_as_finance(demo):
    params = {"window": WINDOW, "aggregate": "team,namespace"}
    alice = client_for(demo.alice).get("/api/v1/allocations/", params).json()
    finance = client_for(demo.finance).get("/api/v1/allocations/", params).json()
    assert {line["team"] for line in alice["results"]} == {"payments"}
    mine = {(x["namespace"]): x["total_cost"] for x in finance["results"]
            if x["team"] == "payments"}
    assert {x["namespace"]: x["total_cost"] for x in alice["results"]} == mine
    assert "cluster_cost" not in alice["totals"] and alice["totals"]["idle_unallocated"] > 0
    # Asking for another team by name gives nothing.
    other = client_for(demo.alice).get("/api/v1/allocations/", {**params, "team": "search"})
    assert other.json()["results"] == []


def test_admin_and_session_auth_work(demo):
    c = APIClient()
    c.force_login(demo.admin)
    assert c.get("/api/v1/allocations/", {"window": WINDOW}).status_code == 200


@pytest.mark.parametrize("params, parameter", [
    ({"window": "yesterday"}, "window"), ({"aggregate": "pod"}, "aggregate"),
    ({"aggregate": "node"}, "aggregate"), ({"step": "hour"}, "step"),
    ({"idle": "x"}, "idle"), ({"shared_split": "x"}, "shared_split"),
    ({"cluster": "nope"}, "cluster"), ({"label:zzz": "a"}, "label:zzz"),
    ({"page": "999"}, None),
])
def test_bad_parameters_get_400_naming_the_parameter(demo, params, parameter):
    r = client_for(demo.finance).get("/api/v1/allocations/", params)
    if parameter is None:
        assert r.status_code == 404  # DRF's page out of range
        return
    assert r.status_code == 400, r.content
    assert r.json()["parameter"] == parameter


def test_node_and_pod_point_to_the_engine_cli(demo):
    r = client_for(demo.finance).get("/api/v1/allocations/", {"aggregate": "pod"})
    assert "python -m allocation allocate" in r.json()["detail"]


def test_csv_has_every_line_and_the_same_numbers(demo):
    c = client_for(demo.finance)
    params = {"window": WINDOW, "aggregate": "namespace,controller", "page_size": 5}
    body = c.get("/api/v1/allocations/", params).json()
    r = c.get("/api/v1/allocations/", {**params, "format": "csv"})
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert len(rows) == body["count"] > 5
    assert sum(float(x["total_cost"]) for x in rows) == pytest.approx(
        body["totals"]["total_cost"], rel=1e-6)
    assert rows[0]["currency"] == "USD"


def test_pagination_and_totals_cover_all_pages(demo):
    c = client_for(demo.finance)
    params = {"window": WINDOW, "aggregate": "namespace,controller", "page_size": 3}
    first = c.get("/api/v1/allocations/", params).json()
    assert len(first["results"]) == 3 and first["next"]
    assert first["totals"]["lines"] == first["count"]


def test_every_step_and_window_form_works(demo):
    c = client_for(demo.finance)
    for window in queries.WINDOWS + (WINDOW,):
        for step in queries.STEPS:
            r = c.get("/api/v1/allocations/", {"window": window, "step": step,
                                               "aggregate": "cluster,team,label:app",
                                               "idle": "share-by-node",
                                               "shared_namespaces": "kube-system,monitoring",
                                               "shared_split": "even", "namespace": "payments",
                                               "label:app": "api"})
            assert r.status_code == 200, (window, step, r.content)


def test_chargeback_api_json_and_csv(demo):
    c = client_for(demo.finance)
    r = c.get("/api/v1/chargeback/", {"month": "2026-03"})
    assert r.status_code == 200
    body = r.json()
    assert body["teams"] and body["lines"][0]["allocation_method"].startswith("max/opencost")
    r = c.get("/api/v1/chargeback/", {"month": "2026-03", "team": "payments", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert rows and {x["team"] for x in rows} == {"payments"}
    assert c.get("/api/v1/chargeback/", {"month": "March"}).json()["parameter"] == "month"
    assert client_for(demo.bob).get("/api/v1/chargeback/", {"month": "2026-03",
                                                             "team": "payments"}).json()[
        "lines"] == []


def test_teams_and_clusters_endpoints_never_leak_credentials(demo):
    from costapp.models import Cluster
    Cluster.objects.update(kubeconfig_encrypted="SECRET-KUBECONFIG")
    body = client_for(demo.finance).get("/api/v1/clusters/").json()
    assert body["results"][0]["name"] == "demo"
    assert "SECRET" not in str(body) and "kubeconfig" not in str(body)
    for f in ("last_sample_at", "nodes", "pods", "health", "last_error"):
        assert f in body["results"][0]
    teams = client_for(demo.alice).get("/api/v1/teams/").json()["results"]
    assert [t["name"] for t in teams] == ["payments"]
    assert client_for(demo.outsider).get("/api/v1/teams/").status_code == 403


def test_csv_cells_are_neutralised_but_numbers_stay_numbers(demo):
    from costapp.models import AllocationLine
    AllocationLine.objects.filter(namespace="payments").update(namespace="=HYPERLINK(1)")
    r = client_for(demo.finance).get("/api/v1/allocations/", {"window": WINDOW,
                                                               "format": "csv"})
    text = r.content.decode()
    assert "'=HYPERLINK(1)" in text and "\n=HYPERLINK" not in text
    rows = list(csv.DictReader(io.StringIO(text)))
    float(rows[0]["total_cost"])


def test_schema_builds_and_documents_the_parameters(demo):
    c = client_for(demo.finance)
    r = c.get("/api/schema/", {"format": "json"})
    assert r.status_code == 200
    schema = r.json()
    params = {p["name"] for p in schema["paths"]["/api/v1/allocations/"]["get"]["parameters"]}
    assert {"window", "aggregate", "step", "idle", "shared_namespaces", "shared_split",
            "cluster", "namespace", "team", "format"} <= params
    # Every documented parameter is accepted.
    values = {"window": "7d", "aggregate": "team", "step": "day", "idle": "share-by-cluster",
              "shared_namespaces": "kube-system", "shared_split": "even", "cluster": "demo",
              "namespace": "payments", "team": "payments", "node_pool": "general",
              "capacity_type": "spot", "controller_kind": "Deployment", "controller": "api",
              "format": "json", "page": "1", "page_size": "10"}
    for name in params:
        key, value = (name, values.get(name)) if name != "label:<key>" else ("label:app", "api")
        r = c.get("/api/v1/allocations/", {key: value})
        assert r.status_code == 200, (name, r.content)
