"""A bill arriving for hours already allocated: re-priced, re-allocated (lines replaced), and the
month reconciled (page and API) against the bill."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from costapp import demo, services
from costapp.billing.bench import FOCUS_SAMPLE_COLUMNS
from costapp.billing.service import import_bill
from costapp.models import AllocationLine, ClusterDay, Node, NodeHour

pytestmark = pytest.mark.django_db

DAY = date(2024, 9, 17)
DAY_START = datetime(2024, 9, 17, tzinfo=UTC)
NODE_HOURLY = Decimal("1.23456789012")
CONTROL_PLANE_HOURLY = Decimal("0.10000000000")
UNMATCHED_COST = Decimal("5.00000000000")
COL = {name: i for i, name in enumerate(FOCUS_SAMPLE_COLUMNS)}


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _row(start: datetime, cost: Decimal, **cells: str) -> list[str]:
    """One FOCUS row shaped like the sample: NULL literals, AWS account, one hour."""
    row = ["NULL"] * len(FOCUS_SAMPLE_COLUMNS)
    values = {
        "BillingCurrency": "USD",
        "BillingPeriodStart": "2024-09-01 00:00:00",
        "BillingPeriodEnd": "2024-10-01 00:00:00",
        "ChargePeriodStart": _fmt(start),
        "ChargePeriodEnd": _fmt(start + timedelta(hours=1)),
        "ProviderName": "AWS",
        "BillingAccountId": "123456789012",
        "ChargeCategory": "Usage",
        "ChargeFrequency": "Usage-Based",
        "EffectiveCost": str(cost),
        "BilledCost": str(cost),
        "ListCost": str(cost),
        "RegionId": "us-east-1",
        **cells,
    }
    for name, value in values.items():
        row[COL[name]] = value
    return row


def _instance(start: datetime, instance_id: str, cost: Decimal, cluster: str) -> list[str]:
    return _row(
        start, cost, ResourceId=instance_id, ResourceType="instance", ServiceCategory="Compute",
        ServiceName="Amazon Elastic Compute Cloud", ConsumedQuantity="1", ConsumedUnit="Hours",
        PricingQuantity="1", PricingUnit="Hours", PricingCategory="Standard",
        ChargeDescription="$1.23 per On Demand Linux m5.large Instance Hour",
        Tags=json.dumps({"aws:eks:cluster-name": cluster}),
    )


def write_bill(path: Path, instance_id: str, cluster: str, hours: int = 24) -> Path:
    """Node charges for one node's first `hours` hours of DAY, the EKS fee tagged with the
    cluster for the whole day, and one node charge tagged with the cluster for an instance
    that is none of its nodes (an unmatched item)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(FOCUS_SAMPLE_COLUMNS)
        for h in range(24):
            t = DAY_START + timedelta(hours=h)
            if h < hours:
                w.writerow(_instance(t, instance_id, NODE_HOURLY, cluster))
            w.writerow(_row(
                t, CONTROL_PLANE_HOURLY, ServiceName="Amazon Elastic Kubernetes Service",
                ServiceCategory="Compute", ResourceId=f"arn:aws:eks:us-east-1:1:cluster/{cluster}",
                Tags=json.dumps({"aws:eks:cluster-name": cluster}),
            ))
        w.writerow(_instance(DAY_START, "i-0000000000deadbeef", UNMATCHED_COST, cluster))
    return path


@dataclass
class Seeded:
    cluster: object
    node: Node
    instance_id: str


@pytest.fixture
def seeded(settings) -> Seeded:
    """A small simulated cluster with DAY allocated (prices: catalog or OpenCost defaults)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cluster = demo.ensure_world()
    services.simulate_history(cluster, 1, end=DAY_START + timedelta(days=1), step_seconds=600)
    services.allocate_dirty_days()
    # The node observed in every hour of the day.
    counts = (
        NodeHour.objects.filter(cluster=cluster, hour_start__gte=DAY_START,
                                hour_start__lt=DAY_START + timedelta(days=1))
        .values("node_id").annotate(n=Sum("seconds")).order_by("-n", "node_id")
    )
    node = Node.objects.get(pk=counts[0]["node_id"])
    assert node.provider_id.startswith("aws:///")
    return Seeded(cluster, node, node.provider_id.rsplit("/", 1)[1])


def test_a_bill_for_allocated_days_reprices_and_reallocates_them(seeded, tmp_path):
    cluster, node = seeded.cluster, seeded.node
    day = ClusterDay.objects.get(cluster=cluster, day=DAY)
    assert not day.dirty and "bill" not in day.priced_by
    before_cost = day.node_cost
    node_hours = NodeHour.objects.filter(node=node, hour_start__gte=DAY_START,
                                         hour_start__lt=DAY_START + timedelta(days=1))
    old_node_cost = node_hours.aggregate(s=Sum("cost"))["s"]
    assert node_hours.count() == 24
    lines_before = AllocationLine.objects.filter(cluster=cluster, day=DAY)
    n_before = lines_before.count()
    line_ids_before = set(lines_before.values_list("id", flat=True))

    progress: list[tuple[int, int, str]] = []
    outcome = import_bill(write_bill(tmp_path / "bill.csv", seeded.instance_id, cluster.name),
                          progress=lambda *a: progress.append(a))

    assert outcome.rows == 24 * 2 + 1 and not outcome.queued
    assert (cluster.pk, DAY) in outcome.days
    assert outcome.repriced[cluster.name]["bill"] == 24
    assert any("re-allocated" in m for _, _, m in progress)
    assert set(node_hours.values_list("price_source", flat=True)) == {"bill"}
    assert node_hours.aggregate(s=Sum("cost"))["s"] == (NODE_HOURLY * 24).quantize(
        Decimal("0.00000001"))

    day.refresh_from_db()
    assert not day.dirty
    assert day.priced_by["bill"] == pytest.approx(24.0)
    expected = before_cost - old_node_cost + NODE_HOURLY * 24
    assert abs(day.node_cost - expected) < Decimal("0.000001")
    # Overhead: the manual EKS fee plus the bill's own, for the hours with nodes.
    assert day.overhead_cost > Decimal("0.1") * 24

    lines = AllocationLine.objects.filter(cluster=cluster, day=DAY)
    assert lines.count() == n_before  # replaced, not added
    assert not (set(lines.values_list("id", flat=True)) & line_ids_before)
    own = lines.filter(kind="workload").aggregate(c=Sum("cpu_cost"), r=Sum("ram_cost"),
                                                  g=Sum("gpu_cost"))
    idle = lines.filter(kind="idle", idle_policy="separate").aggregate(
        c=Sum("cpu_cost"), r=Sum("ram_cost"), g=Sum("gpu_cost"))
    allocated = sum((v or Decimal(0) for v in (*own.values(), *idle.values())), Decimal(0))
    assert abs(allocated - day.node_cost) < Decimal("0.0001")


def test_importing_the_same_bill_again_changes_nothing(seeded, tmp_path):
    bill = write_bill(tmp_path / "bill.csv", seeded.instance_id, seeded.cluster.name)
    import_bill(bill)
    first = ClusterDay.objects.get(cluster=seeded.cluster, day=DAY)
    lines = AllocationLine.objects.filter(cluster=seeded.cluster, day=DAY).count()
    import_bill(bill)
    again = ClusterDay.objects.get(cluster=seeded.cluster, day=DAY)
    assert (again.node_cost, again.overhead_cost) == (first.node_cost, first.overhead_cost)
    assert AllocationLine.objects.filter(cluster=seeded.cluster, day=DAY).count() == lines


def test_import_billing_command_runs_the_whole_use_case(seeded, tmp_path):
    from io import StringIO

    out = StringIO()
    bill = write_bill(tmp_path / "bill.csv", seeded.instance_id, seeded.cluster.name)
    call_command("import_billing", str(bill), stdout=out)
    text = out.getvalue()
    assert "importing" in text and "re-allocated" in text and "49 rows" in text
    day = ClusterDay.objects.get(cluster=seeded.cluster, day=DAY)
    assert not day.dirty and day.priced_by["bill"] == pytest.approx(24.0)


def test_reconciliation_api_explains_the_difference(seeded, tmp_path):
    cluster = seeded.cluster
    # Only the first 20 hours of the node are billed; charge for hours 20-23 absent: the bill
    # covers what it covers, the other hours stay on catalog/default prices.
    import_bill(write_bill(tmp_path / "bill.csv", seeded.instance_id, cluster.name, hours=20))
    c = Client()
    c.force_login(User.objects.get(username="finance"))
    url = reverse("api-reconciliation")
    body = c.get(url, {"cluster": cluster.name, "month": "2024-09"}).json()
    assert body["month"] == "2024-09" and len(body["results"]) == 1
    r = body["results"][0]
    assert r["cluster"] == cluster.name and r["currency"] == "USD"
    assert Decimal(r["bill"]["node_cost"]) == NODE_HOURLY * 20
    assert Decimal(r["bill"]["overhead"]) == CONTROL_PLANE_HOURLY * 24
    assert Decimal(r["bill"]["total"]) == NODE_HOURLY * 20 + CONTROL_PLANE_HOURLY * 24
    assert Decimal(r["unmatched_tagged"]) == UNMATCHED_COST and r["unmatched_items"] == 1
    # Every cent of the difference is explained, up to 8-decimal rounding of stored lines.
    assert abs(Decimal(r["residual"])) < Decimal("0.0001")
    terms = {e["key"]: Decimal(e["amount"]) for e in r["explained"]}
    assert sum(terms.values()) + Decimal(r["residual"]) == Decimal(r["difference"])
    assert terms["priced_off_bill"] < 0  # the other nodes and hours: catalog/defaults
    assert abs(terms["unallocated"]) < Decimal("0.0001")  # every day re-allocated
    assert Decimal(r["node_cost_by_source"]["bill"]) == (NODE_HOURLY * 20).quantize(
        Decimal("0.00000001"))
    assert r["node_hours_by_source"]["bill"] == pytest.approx(20.0)
    assert Decimal(r["allocated_total"]) == Decimal(r["bill"]["total"]) - Decimal(
        r["difference"])

    # The page shows the same numbers and the unmatched item.
    page = c.get(reverse("billing-reconciliation"), {"cluster": cluster.name,
                                                     "month": "2024-09"})
    assert page.status_code == 200
    html = page.content.decode()
    assert "i-0000000000deadbeef" in html and "How node-hours were priced" in html
    assert page.context["report"].rec.bill_total == Decimal(r["bill"]["total"])
    summary = c.get(reverse("billing-reconciliation"), {"month": "2024-09"})
    assert summary.status_code == 200 and cluster.name in summary.content.decode()


@pytest.mark.parametrize(
    ("params", "parameter"),
    [({}, "month"), ({"month": "2024-13"}, "month"), ({"month": "sept"}, "month"),
     ({"month": "2024-09", "cluster": "nope"}, "cluster")],
)
def test_reconciliation_api_names_the_bad_parameter(seeded, params, parameter):
    c = Client()
    c.force_login(User.objects.get(username="finance"))
    r = c.get(reverse("api-reconciliation"), params)
    assert r.status_code == 400 and r.json()["parameter"] == parameter


def test_reconciliation_api_is_for_finance_and_admins_only(seeded):
    url = reverse("api-reconciliation") + "?month=2024-09"
    assert Client().get(url).status_code in (401, 403)
    member = Client()
    member.force_login(User.objects.get(username="payments-dev"))
    assert member.get(url).status_code == 403
    admin = Client()
    admin.force_login(User.objects.get(username="admin"))
    assert admin.get(url).status_code == 200
