"""Importing FOCUS files into PostgreSQL, pricing node-hours from them, reconciling a month."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum

from costapp.billing.bench import generate_focus_file
from costapp.billing.focus import BillingFileError
from costapp.billing.importer import import_focus_file
from costapp.billing.pricing import price_node_hours, rebuild_bill_overhead, reconcile_month
from costapp.models import Cluster, Node, NodeHour, Overhead
from costapp.models.billing import BillingCharge, BillingImport, CatalogPrice, CustomPrice

pytestmark = pytest.mark.django_db


def test_importing_the_real_sample_keeps_every_cent(focus_sample):
    result = import_focus_file(focus_sample)
    assert result.rows == 1000
    assert BillingCharge.objects.count() == 1000
    by_provider = dict(
        BillingCharge.objects.values_list("provider_name").annotate(s=Sum("effective_cost"))
    )
    assert by_provider["AWS"] == Decimal("13.00000000000")
    assert by_provider["Microsoft"] == Decimal("1.97651418586")
    imp = BillingImport.objects.get(pk=result.import_id)
    assert imp.status == "succeeded" and len(imp.sha256) == 64 and imp.currency == "USD"
    assert Counter(BillingCharge.objects.values_list("kind", flat=True))["node"] == 31


def test_reimporting_the_same_file_replaces_instead_of_doubling(focus_sample):
    first = import_focus_file(focus_sample)
    second = import_focus_file(focus_sample)
    assert second.replaced_rows == 1000
    assert BillingCharge.objects.count() == 1000
    assert BillingImport.objects.get(pk=first.import_id).status == "replaced"
    assert set(BillingCharge.objects.values_list("billing_import_id", flat=True)) == {
        second.import_id
    }


def test_a_bad_file_writes_nothing_and_records_the_error(focus_sample, tmp_path):
    import_focus_file(focus_sample)
    data = focus_sample.read_bytes()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(data[: len(data) * 3 // 4])  # truncated: the last row is short
    with pytest.raises(BillingFileError):
        import_focus_file(bad)
    assert BillingCharge.objects.count() == 1000  # the earlier import is untouched
    failed = BillingImport.objects.get(file_name="bad.csv")
    assert failed.status == "failed" and "row" in failed.error


def make_cluster_from_bill(bill, name="prod"):
    """Nodes and node-hours for the generated bill's nodes of one cluster (all hours observed)."""
    cluster = Cluster.objects.create(name=name, provider="aws", region="us-east-1")
    nodes = []
    for n in bill.nodes:
        if n.cluster != name:
            continue
        nodes.append(
            Node.objects.create(
                cluster=cluster,
                name=n.instance_id,
                provider_id=n.provider_id,
                instance_type=n.instance_type,
                zone=n.zone,
                capacity_type=n.capacity_type,
                first_seen=bill.start,
                last_seen=bill.start,
            )
        )
    return cluster, nodes


def add_hours(cluster, nodes, start, hours, seconds=3600.0):
    NodeHour.objects.bulk_create(
        NodeHour(
            cluster=cluster,
            node=node,
            hour_start=start + timedelta(hours=h),
            seconds=seconds,
            cpu_cores=2,
            ram_gib=8,
            instance_type=node.instance_type,
            zone=node.zone,
            capacity_type=node.capacity_type,
        )
        for node in nodes
        for h in range(hours)
    )


def test_node_hours_are_priced_from_the_bill_then_the_catalog_then_defaults(tmp_path):
    bill = generate_focus_file(tmp_path / "b.csv", rows=3000, seed=5, nodes=6)
    import_focus_file(bill.path)
    cluster, nodes = make_cluster_from_bill(bill)
    start = bill.start
    # 2 hours beyond the bill's end: not on the bill -> catalog (m5/c5/r5 are in the catalog)
    last = BillingCharge.objects.filter(kind="node").order_by("-charge_period_start").first()
    hours_billed = int((last.charge_period_start - start).total_seconds() // 3600)
    add_hours(cluster, nodes, start, hours_billed + 3)
    CatalogPrice.objects.create(
        provider="aws",
        region="us-east-1",
        instance_type="m5.large",
        capacity_type="on-demand",
        hourly=Decimal("0.096"),
        currency="USD",
        source_file="t",
    )
    counts = price_node_hours(cluster, start, start + timedelta(hours=hours_billed + 3))
    assert counts["bill"] >= len(nodes) * hours_billed
    assert set(counts) <= {"bill", "catalog", "default"}
    # Every bill charge matched to these nodes lands, to the 8th decimal, on node-hours.
    charged = BillingCharge.objects.filter(
        kind="node", resource_key__in=[n.name for n in nodes]
    ).aggregate(s=Sum("effective_cost"))["s"]
    priced = NodeHour.objects.filter(cluster=cluster, price_source="bill").aggregate(s=Sum("cost"))[
        "s"
    ]
    assert priced == charged.quantize(Decimal("0.00000001"))
    m5 = [n for n in nodes if n.instance_type == "m5.large" and n.capacity_type == "on-demand"]
    after = NodeHour.objects.filter(
        cluster=cluster, hour_start__gt=last.charge_period_start, price_source="catalog"
    )
    assert after.count() == len(m5) * 2
    assert all(nh.cost == Decimal("0.096") for nh in after)


def test_a_charge_is_prorated_over_observed_seconds():
    cluster = Cluster.objects.create(name="c1", provider="aws")
    t0 = datetime(2024, 9, 1, tzinfo=UTC)
    node = Node.objects.create(
        cluster=cluster,
        name="n1",
        provider_id="aws:///us-east-1a/i-0abc",
        instance_type="x.large",
        first_seen=t0,
        last_seen=t0,
    )
    imp = BillingImport.objects.create(file_name="t", sha256="0" * 64)
    BillingCharge.objects.create(
        billing_import=imp,
        row=2,
        charge_period_start=t0,
        charge_period_end=t0 + timedelta(days=1),
        billing_currency="USD",
        effective_cost=Decimal("2.40000000001"),
        resource_key="i-0abc",
        kind="node",
    )
    add_hours(cluster, [node], t0, 3)  # the node lived 3 hours of the day
    NodeHour.objects.filter(hour_start=t0).update(seconds=1800.0)
    counts = price_node_hours(cluster, t0, t0 + timedelta(days=1))
    assert counts == Counter({"bill": 3})
    costs = list(NodeHour.objects.order_by("hour_start").values_list("cost", flat=True))
    assert sum(costs) == Decimal("2.40000000")
    assert costs == [Decimal("0.48000000"), Decimal("0.96000000"), Decimal("0.96000000")]


def test_custom_prices_come_before_defaults():
    cluster = Cluster.objects.create(name="onprem")
    t0 = datetime(2024, 9, 1, tzinfo=UTC)
    node = Node.objects.create(cluster=cluster, name="n1", first_seen=t0, last_seen=t0)
    add_hours(cluster, [node], t0, 2)
    assert price_node_hours(cluster, t0, t0 + timedelta(hours=2)) == Counter({"default": 2})
    assert NodeHour.objects.first().cost == Decimal("0.09711800")  # 2 x 0.031611 + 8 x 0.004237
    CustomPrice.objects.create(
        cluster=cluster, cpu_hourly=Decimal("0.05"), ram_gib_hourly=Decimal("0.01")
    )
    assert price_node_hours(cluster, t0, t0 + timedelta(hours=2)) == Counter({"custom": 2})
    assert NodeHour.objects.first().cost == Decimal("0.18000000")


def test_cluster_tagged_items_become_overhead_and_the_month_reconciles(tmp_path):
    bill = generate_focus_file(tmp_path / "b.csv", rows=2000, seed=9, nodes=4)
    import_focus_file(bill.path)
    cluster, nodes = make_cluster_from_bill(bill)
    last = BillingCharge.objects.order_by("-charge_period_start").first().charge_period_start
    hours = int((last - bill.start).total_seconds() // 3600)  # the last hour is partial: left out
    add_hours(cluster, nodes, bill.start, hours)
    assert rebuild_bill_overhead(cluster) > 0
    assert Overhead.objects.filter(cluster=cluster, source="bill").exists()
    price_node_hours(cluster, bill.start, bill.start + timedelta(hours=hours + 1))
    rec = reconcile_month(cluster, date(2024, 9, 1))
    assert rec.bill_node_cost == bill.node_cost["prod"]
    assert rec.bill_overhead == bill.overhead_cost["prod"]
    assert rec.bill_unplaced > 0  # the last, unobserved hour
    assert rec.overhead_not_accrued > 0
    assert rec.allocated_total == 0 and rec.unallocated > 0  # nothing allocated yet
    assert abs(rec.residual) < Decimal("0.0001")


def test_management_commands(focus_sample, capsys, prices_dir):
    call_command("import_billing", str(focus_sample), "--no-reprice")
    out = capsys.readouterr().out
    assert "1,000 rows" in out
    call_command("load_prices", "--data-dir", str(prices_dir))
    assert CatalogPrice.objects.count() == 2261 + 25442 + 67604 + 10128
    assert CatalogPrice.objects.get(
        provider="aws", instance_type="m5.large", capacity_type="on-demand"
    ).hourly == Decimal("0.096")
