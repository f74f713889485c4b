"""Pages render for each role, explain missing data, and never show others' teams."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from costapp.models import Cluster
from tests.costapp.demo_data import DEMO_DAY, seed_demo

pytestmark = pytest.mark.django_db
PAGES = ["/", "/explorer/", "/teams/", "/node-pools/", "/clusters/", "/clusters/demo/",
         "/chargeback/", "/api-token/", "/api-docs/", "/teams/payments/"]


@pytest.fixture
def demo(world):
    seed_demo()
    return world


def login(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_pages_need_a_login(db):
    for url in PAGES:
        r = Client().get(url)
        assert r.status_code == 302 and "/accounts/login/" in r["Location"], url


@pytest.mark.parametrize("who", ["admin", "finance", "alice"])
def test_every_page_renders_for_people_with_access(demo, who):
    c = login(getattr(demo, who))
    for url in PAGES:
        r = c.get(url)
        assert r.status_code == 200, (who, url, r.status_code)


def test_outsider_gets_an_explanation_not_data(demo):
    r = login(demo.outsider).get("/")
    assert r.status_code == 403 and b"not a member of any team" in r.content


def test_member_never_sees_another_team_by_name(demo):
    c = login(demo.alice)
    window = f"?window={DEMO_DAY},{DEMO_DAY}&aggregate=team"
    body = c.get("/explorer/" + window).content.decode()
    assert ">payments<" in body and ">search<" not in body
    assert c.get("/teams/search/").status_code == 403


def test_overview_hands_a_chart_to_the_page(demo):
    r = login(demo.finance).get(f"/?start={DEMO_DAY}&end={DEMO_DAY}")
    body = r.content.decode()
    m = re.search(r'<script id="overview-chart" type="application/json">(.*?)</script>', body,
                  re.S)
    fig = json.loads(m.group(1))
    names = {t["name"] for t in fig["data"]}
    assert "Idle" in names and "Shared" in names and "payments" in names
    assert "vendor/plotly.min.js" in body and "cdn" not in body.lower()


def test_explorer_csv_is_what_the_table_shows(demo):
    c = login(demo.finance)
    q = f"window={DEMO_DAY},{DEMO_DAY}&aggregate=namespace,controller"
    page = c.get(f"/explorer/?{q}").content.decode()
    rows = page.count("<tr class=\"workload\">") + page.count("<tr class=\"idle\">")
    csv = c.get(f"/explorer/?{q}&format=csv").content.decode().strip().splitlines()
    assert len(csv) - 1 == rows > 0


def test_explorer_bad_parameter_is_a_400_page(demo):
    r = login(demo.finance).get("/explorer/?aggregate=pod")
    assert r.status_code == 400 and b"python -m allocation allocate" in r.content


def test_empty_data_is_explained_not_shown_as_zero(world):
    r = login(world.finance).get("/")
    body = r.content.decode()
    assert "No clusters yet" in body and "0.00 USD" not in body


def test_failing_collector_and_missing_bill_are_explained(demo):
    Cluster.objects.update(health="failing", last_error="connection refused")
    body = login(demo.finance).get(f"/?start={DEMO_DAY}&end={DEMO_DAY}").content.decode()
    assert "Collector failing on demo" in body and "connection refused" in body
    assert "Bill not yet imported" in body


def test_api_token_page_creates_a_token(demo):
    c = login(demo.bob)
    c.post("/api-token/")
    from rest_framework.authtoken.models import Token
    assert Token.objects.filter(user=demo.bob).exists()
    assert Token.objects.get(user=demo.bob).key in c.get("/api-token/").content.decode()


def test_api_docs_page_lists_endpoints_from_the_schema(demo):
    body = login(demo.finance).get("/api-docs/").content.decode()
    assert "/api/v1/allocations/" in body and "shared_split" in body
