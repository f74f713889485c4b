"""Chargeback statements add up to the cent: lines to team totals, everything to the bill."""

from __future__ import annotations

from decimal import Decimal

import pytest

from costapp import chargeback
from costapp.models import ClusterDay
from tests.costapp.demo_data import DEMO_DAY, seed_demo

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_cluster(world):
    return seed_demo(days=2)


def test_cents_add_up_exactly(demo_cluster):
    st = chargeback.statement(DEMO_DAY)
    assert st.lines
    for line in st.lines:
        parts = sum((line[p] for p in chargeback.PARTS), Decimal(0))
        assert parts == line["total_cost"]
        assert line["total_cost"] == line["total_cost"].quantize(Decimal("0.01"))
    for team in st.teams:
        assert team["total_cost"] == sum(
            (x["total_cost"] for x in st.lines if x["team"] == team["team"]), Decimal(0))
    month_cost = sum((d.node_cost + d.overhead_cost
                      for d in ClusterDay.objects.filter(cluster=demo_cluster)), Decimal(0))
    everything = sum((t["total_cost"] for t in st.teams), Decimal(0))
    assert everything == month_cost.quantize(Decimal("0.01"))
    assert st.clusters[0]["total_cost"] == everything


def test_one_teams_statement_has_the_same_lines_as_in_the_full_one(demo_cluster):
    full = [x for x in chargeback.statement(DEMO_DAY).lines if x["team"] == "payments"]
    one = chargeback.statement(DEMO_DAY, team="payments").lines
    assert one == full and one


def test_member_sees_only_their_team(demo_cluster):
    st = chargeback.statement(DEMO_DAY, teams=frozenset({"search"}))
    assert {x["team"] for x in st.lines} == {"search"}
    assert st.clusters == []


def test_method_names_policy_and_idle(demo_cluster):
    st = chargeback.statement(DEMO_DAY)
    assert st.lines[0]["allocation_method"].startswith("max/opencost idle=separate")
    assert st.lines[0]["currency"] == "USD"
