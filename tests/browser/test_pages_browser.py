"""A finance user logs in, sees the overview chart drawn, changes the explorer's aggregation and
downloads the CSV."""

from __future__ import annotations

import csv
import io

import pytest

from tests.costapp.demo_data import DEMO_DAY, seed_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def login(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def test_overview_chart_explorer_and_csv(world, live_server, page):
    seed_demo()
    base = live_server.url
    login(page, base, "finance", "pw-finance-123")
    page.goto(f"{base}/?start={DEMO_DAY}&end={DEMO_DAY}")
    page.wait_for_selector("#overview-chart-box .plot-container svg", timeout=20000)
    assert page.locator("#overview-chart-box .legend").count() >= 1

    page.goto(f"{base}/explorer/?window={DEMO_DAY},{DEMO_DAY}")
    page.wait_for_selector("#explorer-chart-box .plot-container", timeout=20000)
    assert page.locator("#explorer-table thead th", has_text="namespace").count() == 1
    page.fill("#aggregate", "team,node_pool")
    page.click("#explorer-form button[type=submit]")
    page.wait_for_selector("#explorer-table thead th:text-is('node_pool')", timeout=20000)
    rows = page.locator("#explorer-table tbody tr").count()
    assert rows > 0
    # Sorting by total works on the client.
    page.click("#explorer-table thead th:has-text('Total')")

    with page.expect_download() as info:
        page.click("#csv-download")
    text = open(info.value.path(), encoding="utf-8").read()
    lines = list(csv.DictReader(io.StringIO(text)))
    assert len(lines) == rows
    assert {"team", "node_pool", "total_cost", "currency"} <= set(lines[0])


def test_member_is_limited_in_the_browser(world, live_server, page):
    seed_demo()
    login(page, live_server.url, "alice", "pw-alice-123")
    page.goto(f"{live_server.url}/explorer/?window={DEMO_DAY},{DEMO_DAY}&aggregate=team")
    page.wait_for_selector("#explorer-table")
    teams = page.locator("#explorer-table tbody td:nth-child(2)").all_inner_texts()
    assert set(teams) == {"payments"}
