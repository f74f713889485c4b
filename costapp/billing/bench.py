"""Synthetic FOCUS bills for the billing-import benchmark (ARCHITECTURE.md: 1 million rows, < 60 s).

`generate_focus_file` writes rows shaped like the official FOCUS 1.0 sample (the same 44 columns
in the same order, `NULL` literals, `YYYY-MM-DD HH:MM:SS` timestamps, Tags as a JSON string):
hourly EC2 instance rows for N nodes of a few EKS clusters (ResourceId `i-...`, some under a
Savings Plan, some spot), per-cluster overhead tagged with the cluster (control plane, load
balancer, NAT gateway, EBS volumes) and untagged noise (S3, data transfer). Deterministic for a
seed. Running the module (`python -m costapp.billing.bench`) runs the import benchmark, which
needs Django and PostgreSQL; generating files does not.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

__all__ = ["FOCUS_SAMPLE_COLUMNS", "GeneratedBill", "GeneratedNode", "generate_focus_file"]

FOCUS_SAMPLE_COLUMNS = (
    "AvailabilityZone,BilledCost,BillingAccountId,BillingAccountName,BillingCurrency,"
    "BillingPeriodEnd,BillingPeriodStart,ChargeCategory,ChargeClass,ChargeDescription,"
    "ChargeFrequency,ChargePeriodEnd,ChargePeriodStart,CommitmentDiscountCategory,"
    "CommitmentDiscountId,CommitmentDiscountName,CommitmentDiscountStatus,CommitmentDiscountType,"
    "ConsumedQuantity,ConsumedUnit,ContractedCost,ContractedUnitPrice,EffectiveCost,"
    "InvoiceIssuerName,ListCost,ListUnitPrice,PricingCategory,PricingQuantity,PricingUnit,"
    "ProviderName,PublisherName,RegionId,RegionName,ResourceId,ResourceName,ResourceType,"
    "ServiceCategory,Id,ServiceName,SkuId,SkuPriceId,SubAccountId,SubAccountName,Tags"
).split(",")
"""The 44 columns of `focus_sample_1000.csv`, in its order."""

_TYPES = (  # instance type, on-demand USD/h (us-east-1 list), vCPU, GiB
    ("m5.large", Decimal("0.096"), 2, 8),
    ("m5.xlarge", Decimal("0.192"), 4, 16),
    ("c5.2xlarge", Decimal("0.34"), 8, 16),
    ("r5.large", Decimal("0.126"), 2, 16),
)
_PRICE = {t: p for t, p, _, _ in _TYPES}
_ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
_SP_ARN = "arn:aws:savingsplans::123456789012:savingsplan/0d2c5e4f-bench"
_Q = Decimal("0.00000000001")  # the sample's 11 decimal places


@dataclass(frozen=True, slots=True)
class GeneratedNode:
    """A node whose instance hours the generated bill contains.

    `provider_id` is its Kubernetes `spec.providerID`; `hourly` its EffectiveCost per hour (USD).
    """

    cluster: str
    instance_id: str
    provider_id: str
    instance_type: str
    zone: str
    capacity_type: str
    hourly: Decimal


@dataclass
class GeneratedBill:
    """What `generate_focus_file` wrote: the path, the row count, the nodes, and the exact sums
    of EffectiveCost (USD) over all rows, over node rows per cluster, and over cluster-tagged
    overhead rows per cluster."""

    path: Path
    rows: int
    start: datetime
    nodes: list[GeneratedNode]
    total: Decimal = Decimal(0)
    node_cost: dict[str, Decimal] = field(default_factory=dict)
    overhead_cost: dict[str, Decimal] = field(default_factory=dict)


def _fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def generate_focus_file(
    path: str | Path,
    rows: int = 1_000_000,
    seed: int = 0,
    *,
    nodes: int | None = None,
    clusters: tuple[str, ...] = ("prod", "staging"),
    start: datetime = datetime(2024, 9, 1, tzinfo=UTC),
    gzip_output: bool | None = None,
) -> GeneratedBill:
    """Write a FOCUS 1.0 CSV of exactly `rows` data rows and describe it.

    1. Nodes: `nodes` (default: enough that instance-hours are ~80% of the rows over one month)
       spread over `clusters`; each has a random type, zone and capacity type (20% spot, 30%
       covered by a Savings Plan at 28% off).
    2. Hour by hour from `start`: one instance row per node, then per cluster a control-plane
       row, a load-balancer row, a NAT row and one EBS volume row, then untagged noise rows,
       until `rows` rows are written (the last hour may be partial).
    Gzip when `gzip_output` is true or, if None, when the name ends with `.gz`.
    """
    path = Path(path)
    rng = random.Random(seed)
    if gzip_output is None:
        gzip_output = path.suffix == ".gz"
    hours_in_month = 30 * 24
    n_nodes = nodes or max(1, int(rows * 0.8) // hours_in_month)
    node_list: list[GeneratedNode] = []
    for i in range(n_nodes):
        itype, price, _, _ = rng.choice(_TYPES)
        zone = rng.choice(_ZONES)
        iid = f"i-{rng.getrandbits(68):017x}"
        r = rng.random()
        capacity = "spot" if r < 0.2 else "on-demand"
        hourly = (price * Decimal("0.35")) if capacity == "spot" else price
        if 0.2 <= r < 0.5:
            hourly = price * Decimal("0.72")  # Savings Plan rate
        node_list.append(
            GeneratedNode(
                cluster=clusters[i % len(clusters)],
                instance_id=iid,
                provider_id=f"aws:///{zone}/{iid}",
                instance_type=itype,
                zone=zone,
                capacity_type=capacity,
                hourly=hourly.quantize(_Q),
            )
        )
    bill = GeneratedBill(path=path, rows=rows, start=start, nodes=node_list)
    bill.node_cost = {c: Decimal(0) for c in clusters}
    bill.overhead_cost = {c: Decimal(0) for c in clusters}

    raw = open(path, "wb")  # noqa: SIM115 - closed below
    stream = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) if gzip_output else raw
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    w = csv.writer(text, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    w.writerow(FOCUS_SAMPLE_COLUMNS)
    bp_start = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    bp_end = (bp_start + timedelta(days=32)).replace(day=1)
    bps, bpe = _fmt(bp_start), _fmt(bp_end)
    written, hour, row_id = 0, 0, 100_000
    tags_by_cluster = {
        c: json.dumps({"aws:eks:cluster-name": c, "environment": c, "team": "platform"})
        for c in clusters
    }

    node_tags = {
        c: json.dumps({"aws:eks:cluster-name": c, "eks:nodegroup-name": f"{c}-ng"})
        for c in clusters
    }

    def emit(cells: list[object], cost: Decimal) -> None:
        nonlocal written, row_id
        row_id += 1
        cells[37] = row_id
        w.writerow(cells)
        written += 1
        bill.total += cost

    while written < rows:
        t0 = start + timedelta(hours=hour)
        cps, cpe = _fmt(t0), _fmt(t0 + timedelta(hours=1))
        base = ["NULL"] * 44
        base[4], base[5], base[6] = "USD", bpe, bps
        base[11], base[12] = cpe, cps
        base[23] = base[30] = "Amazon Web Services, Inc."
        base[29] = "AWS"
        base[2], base[3] = "123456789012", "BenchCo"
        base[31], base[32] = "us-east-1", "US East (N. Virginia)"
        base[41], base[42] = "210987654321", "bench-sub"
        for n in node_list:
            if written >= rows:
                break
            itype, price = n.instance_type, _PRICE[n.instance_type]
            c = list(base)
            c[0] = n.zone
            spot = n.capacity_type == "spot"
            committed = not spot and n.hourly != price
            c[1] = "0.00000000000" if committed else str(n.hourly)
            c[7], c[10] = "Usage", "Usage-Based"
            kind = "Spot" if spot else ("SavingsPlan" if committed else "On Demand")
            c[9] = f"${n.hourly.normalize()} per {kind} Linux {itype} Instance Hour"
            if committed:
                c[13], c[14], c[16], c[17] = "Spend", _SP_ARN, "Used", "Savings Plan"
            c[18], c[19] = "1.000000000000000", "Hours"
            c[20] = c[24] = str(price.quantize(_Q))
            c[21], c[25] = str(price.quantize(_Q)), str(price.normalize())
            c[22] = str(n.hourly)
            c[26] = "Dynamic" if spot else ("Committed" if committed else "Standard")
            c[27], c[28] = "1.00000000000", "Hours"
            c[33], c[35], c[36] = n.instance_id, "instance", "Compute"
            c[38] = "Amazon Elastic Compute Cloud"
            c[39] = "BENCHSKU" + itype.replace(".", "").upper()
            c[40] = c[39] + ".JRTCKXETXF"
            c[43] = node_tags[n.cluster]
            emit(c, n.hourly)
            bill.node_cost[n.cluster] += n.hourly
        for cl in clusters:
            for kind in ("eks", "elb", "nat", "ebs"):
                if written >= rows:
                    break
                c = list(base)
                c[7], c[10], c[26] = "Usage", "Usage-Based", "Standard"
                c[43] = tags_by_cluster[cl]
                if kind == "eks":
                    cost = Decimal("0.10")
                    c[9], c[19], c[28] = "Amazon EKS cluster usage", "Hours", "Hours"
                    c[33] = f"arn:aws:eks:us-east-1:123456789012:cluster/{cl}"
                    c[36], c[38] = "Compute", "Amazon Elastic Container Service for Kubernetes"
                elif kind == "elb":
                    cost = Decimal("0.0225")
                    c[9], c[19], c[28] = "LoadBalancerUsage", "Hours", "Hours"
                    c[33] = (
                        f"arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/{cl}-ingress/abc"
                    )
                    c[36], c[38] = "Networking", "Elastic Load Balancing"
                elif kind == "nat":
                    cost = Decimal("0.045")
                    c[9], c[19], c[28] = "$0.045 per NAT Gateway Hour", "Hours", "Hours"
                    c[33] = f"arn:aws:ec2:us-east-1:123456789012:natgateway/nat-{cl}"
                    c[36], c[38] = "Networking", "Amazon Elastic Compute Cloud"
                else:
                    cost = Decimal("0.01369863014")
                    c[9], c[19], c[28] = "$0.10 per GB-month of gp2", "GB-Months", "GB-Months"
                    c[33], c[35] = f"arn:aws:ec2:us-east-1:123456789012:volume/vol-{cl}", "volume"
                    c[36], c[38] = "Storage", "Amazon Elastic Compute Cloud"
                c[1] = c[20] = c[22] = c[24] = str(cost.quantize(_Q))
                c[18] = c[27] = "1.000000000000000"
                emit(c, cost)
                bill.overhead_cost[cl] += cost
        for _ in range(max(1, len(node_list) // 20)):
            if written >= rows:
                break
            c = list(base)
            cost = Decimal(rng.randrange(0, 10_000)) * _Q * 1000
            c[7], c[10], c[26] = "Usage", "Usage-Based", "Standard"
            c[9] = "$0.09 per GB - data transfer out"
            c[18] = c[27] = str(Decimal(rng.randrange(1, 10**6)) / 10**6)
            c[19] = c[28] = "GB"
            c[33] = f"arn:aws:s3:::bench-bucket-{rng.randrange(50)}"
            c[35], c[36], c[38] = "bucket", "Storage", "Amazon Simple Storage Service"
            c[1] = c[20] = c[22] = c[24] = str(cost)
            c[43] = json.dumps({"application": f"app{rng.randrange(30)}", "environment": "prod"})
            emit(c, cost)
        hour += 1
    text.flush()
    text.detach()
    if gzip_output:
        stream.close()
    raw.close()
    return bill


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - needs PostgreSQL
    """Benchmark: generate a bill, import it (parse + COPY), then a plain PostgreSQL COPY of the
    same file into a scratch table, and print rows/s and peak memory of each.

    Django (and so the database) is imported here only: generating files needs neither.
    """
    import argparse
    import os
    import resource
    import tempfile
    import time

    parser = argparse.ArgumentParser(prog="python -m costapp.billing.bench")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the imported charges")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "costapp.settings")
    import django

    django.setup()
    from django.db import connection, transaction

    import costapp.models.billing  # noqa: F401 - registers the billing tables
    from costapp.billing.importer import import_focus_file
    from costapp.models.billing import BillingCharge, BillingImport

    # No migration exists yet for the billing tables: create them in a scratch database.
    existing = set(connection.introspection.table_names())
    with connection.schema_editor() as editor:
        for model in (BillingImport, BillingCharge):
            if model._meta.db_table not in existing:
                editor.create_model(model)

    def peak_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("bench.csv.gz" if args.gzip else "bench.csv")
        t = time.perf_counter()
        bill = generate_focus_file(path, rows=args.rows, seed=args.seed)
        print(
            f"generated {bill.rows:,} rows ({path.stat().st_size / 2**20:,.0f} MiB) "
            f"in {time.perf_counter() - t:.1f} s"
        )
        mem_before = peak_mib()
        t = time.perf_counter()
        marks: list[tuple[int, float]] = []
        result = import_focus_file(
            path, progress=lambda done, total, msg: marks.append((done, peak_mib()))
        )
        took = time.perf_counter() - t
        print(
            f"import_focus_file: {result.rows:,} rows in {took:.1f} s = "
            f"{result.rows / took:,.0f} rows/s; peak RSS {peak_mib():,.0f} MiB "
            f"(before {mem_before:,.0f} MiB; at 10% {marks[len(marks) // 10][1]:,.0f} MiB)"
            if marks
            else f"import_focus_file: {result.rows:,} rows in {took:.1f} s"
        )
        assert result.total_effective_cost == bill.total, "import lost money"

        # Plain COPY of the same file into a scratch table of text columns: the floor.
        with transaction.atomic(), connection.cursor() as cur:
            cols = ", ".join(f'"{c}" text' for c in FOCUS_SAMPLE_COLUMNS)
            cur.execute(f"CREATE TEMP TABLE bench_raw ({cols}) ON COMMIT DROP")
            t = time.perf_counter()
            opener = gzip.open if args.gzip else open
            with (
                opener(path, "rb") as f,
                cur.cursor.copy("COPY bench_raw FROM STDIN WITH (FORMAT csv, HEADER true)") as copy,
            ):
                while block := f.read(1 << 20):
                    copy.write(block)
            plain = time.perf_counter() - t
        print(
            f"plain COPY (text columns, no parsing): {args.rows:,} rows in {plain:.1f} s = "
            f"{args.rows / plain:,.0f} rows/s"
        )
        if not args.keep:
            with transaction.atomic():
                BillingCharge.objects.filter(billing_import_id=result.import_id).delete()
                BillingImport.objects.filter(pk=result.import_id).delete()


if __name__ == "__main__":  # pragma: no cover
    main()
