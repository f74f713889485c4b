"""Give node-hours their cost, turn cluster-tagged bill items into overhead, and reconcile.

Source order for one node-hour (ARCHITECTURE.md step 2), first that applies wins:

1. `bill`: FOCUS node charges (kind "node") whose ResourceId key matches one of the node's keys
   (`node_match_keys`: instance ID; for an Azure scale-set instance also the scale set). A charge
   is spread over the node-hours it covers in proportion to observed seconds inside its charge
   period (an hourly charge lands on one node-hour; a daily or scale-set charge is prorated), in
   8-decimal shares that add up exactly to the charge (largest remainder).
2. `catalog`: CatalogPrice for (provider, region, instance type, capacity type; "reserved" and
   "unknown" use on-demand) in the cluster's currency, x observed hours.
3. `custom`: the cluster's CustomPrice valid at that hour, per unit (cores, GiB, GPUs).
4. `default`: OpenCost's unit prices (`catalog.load_unit_prices`, the provider's config).

Costs are money for the *observed* seconds (NodeHour.seconds), as ALLOCATION_SPEC.md §1 says.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from functools import lru_cache

from django.db import transaction
from django.db.models import Max, Min, Q, Sum

from costapp.billing import catalog
from costapp.billing.focus import BillingFileError, node_match_keys
from costapp.models import AllocationLine, Cluster, ClusterDay, Node, NodeHour, Overhead
from costapp.models.billing import BillingCharge, CatalogPrice, CustomPrice

__all__ = [
    "Reconciliation",
    "price_node_hours",
    "rebuild_bill_overhead",
    "reconcile_month",
    "reprice_after_import",
]

CENT8 = Decimal("0.00000001")
HOUR = timedelta(hours=1)
BILL_OVERHEAD_NAME = "bill overhead"
_SCHEMES = {"aws": "aws", "gce": "gcp", "azure": "azure", "alicloud": "alibaba"}


def _provider(cluster: Cluster, node: Node) -> str:
    if cluster.provider:
        return cluster.provider.lower()
    scheme = node.provider_id.partition("://")[0].lower()
    return _SCHEMES.get(scheme, "")


def _region(cluster: Cluster, node: Node, provider: str) -> str:
    if node.region:
        return node.region
    if cluster.region:
        return cluster.region
    zone = node.zone
    if not zone:
        return ""
    if provider == "aws":
        return zone[:-1]
    return zone.rsplit("-", 1)[0]


def _split(amount: Decimal, weights: list[float]) -> list[Decimal]:
    """Split `amount` into 8-decimal parts proportional to `weights` that sum to it exactly
    (at 8 decimals): floor every share, then hand the leftover cents to the largest remainders."""
    total_w = sum(weights)
    target = amount.quantize(CENT8)
    raw = [target * Decimal(w) / Decimal(total_w) for w in weights]
    parts = [r.quantize(CENT8, rounding=ROUND_DOWN) for r in raw]
    left = int((target - sum(parts)) / CENT8)
    order = sorted(range(len(raw)), key=lambda i: raw[i] - parts[i], reverse=True)
    step = CENT8 if left >= 0 else -CENT8
    for i in order[: abs(left)]:
        parts[i] += step
    return parts


def _overlap_seconds(hour: datetime, start: datetime, end: datetime) -> float:
    lo, hi = max(hour, start), min(hour + HOUR, end)
    return max(0.0, (hi - lo).total_seconds())


@dataclass
class _BillShares:
    """Result of spreading bill charges over node-hours."""

    by_node_hour: dict[int, Decimal] = field(default_factory=dict)
    placed: Decimal = Decimal(0)
    unplaced: Decimal = Decimal(0)
    unplaced_charges: int = 0
    matched_charges: int = 0


def _bill_shares(cluster: Cluster, start: datetime, end: datetime) -> _BillShares:
    """Spread the node charges that overlap [start, end) over the cluster's node-hours."""
    out = _BillShares()
    key_nodes: dict[str, list[int]] = defaultdict(list)
    for node_id, provider_id in Node.objects.filter(cluster=cluster).values_list(
        "id", "provider_id"
    ):
        for key in node_match_keys(provider_id):
            key_nodes[key].append(node_id)
    if not key_nodes:
        return out
    charges = list(
        BillingCharge.objects.filter(
            kind="node",
            resource_key__in=list(key_nodes),
            charge_period_start__lt=end,
            charge_period_end__gt=start,
            billing_currency=cluster.currency,
        ).values_list("resource_key", "charge_period_start", "charge_period_end", "effective_cost")
    )
    if not charges:
        return out
    out.matched_charges = len(charges)
    lo = min(c[1] for c in charges) - HOUR
    hi = max(c[2] for c in charges)
    node_ids = {n for key in {c[0] for c in charges} for n in key_nodes[key]}
    hours: dict[int, list[tuple[datetime, int, float]]] = defaultdict(list)
    for nh_id, node_id, hour_start, seconds in (
        NodeHour.objects.filter(node_id__in=node_ids, hour_start__gte=lo, hour_start__lt=hi)
        .order_by("hour_start")
        .values_list("id", "node_id", "hour_start", "seconds")
    ):
        hours[node_id].append((hour_start, nh_id, seconds))
    starts = {n: [h[0] for h in rows] for n, rows in hours.items()}
    for key, cps, cpe, cost in charges:
        ids: list[int] = []
        weights: list[float] = []
        for node_id in key_nodes[key]:
            rows = hours.get(node_id, [])
            i = bisect.bisect_left(starts.get(node_id, []), cps - HOUR)
            while i < len(rows) and rows[i][0] < cpe:
                hour_start, nh_id, seconds = rows[i]
                overlap = _overlap_seconds(hour_start, cps, cpe)
                if overlap > 0 and seconds > 0:
                    ids.append(nh_id)
                    weights.append(seconds * overlap / 3600.0)
                i += 1
        if not ids:
            out.unplaced += cost
            out.unplaced_charges += 1
            continue
        out.placed += cost
        for nh_id, part in zip(ids, _split(cost, weights), strict=True):
            out.by_node_hour[nh_id] = out.by_node_hour.get(nh_id, Decimal(0)) + part
    return out


@lru_cache(maxsize=16)
def _default_unit_prices(provider: str) -> catalog.UnitPrices:
    try:
        return catalog.load_unit_prices(provider or None)
    except BillingFileError:
        try:
            return catalog.load_unit_prices(None)
        except BillingFileError:  # data not staged: OpenCost's configs/default.json values
            return catalog.UnitPrices(
                Decimal("0.031611"),
                Decimal("0.004237"),
                Decimal("0.95"),
                Decimal("0.006655"),
                Decimal("0.000892"),
            )


def _custom_unit_prices(price: CustomPrice) -> catalog.UnitPrices:
    return catalog.UnitPrices(
        cpu_hourly=price.cpu_hourly,
        ram_gib_hourly=price.ram_gib_hourly,
        gpu_hourly=price.gpu_hourly,
        spot_cpu_hourly=price.spot_cpu_hourly
        if price.spot_cpu_hourly is not None
        else price.cpu_hourly,
        spot_ram_gib_hourly=price.spot_ram_gib_hourly
        if price.spot_ram_gib_hourly is not None
        else price.ram_gib_hourly,
        currency=price.currency,
    )


def price_node_hours(cluster: Cluster, start: datetime, end: datetime) -> Counter:
    """Give every node-hour of `cluster` in [start, end) a cost and its `price_source`.

    Re-pricing is idempotent: every node-hour in the window is priced afresh from the current
    bills and prices. Returns node-hours per source, e.g. Counter({"bill": 700, "catalog": 20}).
    """
    shares = _bill_shares(cluster, start, end)
    nodes = {n.id: n for n in Node.objects.filter(cluster=cluster)}
    catalog_cache: dict[tuple[str, str, str, str], Decimal | None] = {}
    customs = list(CustomPrice.objects.filter(cluster=cluster, currency=cluster.currency))
    counts: Counter = Counter()
    updated: list[NodeHour] = []
    for nh in NodeHour.objects.filter(cluster=cluster, hour_start__gte=start, hour_start__lt=end):
        hours = Decimal(repr(nh.seconds)) / 3600
        spot = nh.capacity_type == "spot"
        bill = shares.by_node_hour.get(nh.id)
        if bill is not None:
            nh.cost, nh.price_source = bill, "bill"
        else:
            node = nodes[nh.node_id]
            provider = _provider(cluster, node)
            capacity = "spot" if spot else "on-demand"
            key = (provider, _region(cluster, node, provider), nh.instance_type, capacity)
            if key not in catalog_cache:
                catalog_cache[key] = (
                    CatalogPrice.objects.filter(
                        provider=key[0],
                        region=key[1],
                        instance_type=key[2],
                        capacity_type=key[3],
                        currency=cluster.currency,
                    )
                    .values_list("hourly", flat=True)
                    .first()
                )
            hourly = catalog_cache[key] if nh.instance_type else None
            if hourly is not None:
                nh.cost, nh.price_source = (hourly * hours).quantize(CENT8), "catalog"
            else:
                custom = next(
                    (
                        c
                        for c in customs
                        if (c.valid_from is None or c.valid_from <= nh.hour_start)
                        and (c.valid_to is None or nh.hour_start < c.valid_to)
                    ),
                    None,
                )
                units = _custom_unit_prices(custom) if custom else _default_unit_prices(provider)
                hourly = catalog.unit_prices_node_cost(
                    units, repr(nh.cpu_cores), repr(nh.ram_gib), repr(nh.gpus), spot
                )
                nh.cost = (hourly * hours).quantize(CENT8)
                nh.price_source = "custom" if custom else "default"
        counts[nh.price_source] += 1
        updated.append(nh)
    NodeHour.objects.bulk_update(updated, ["cost", "price_source"], batch_size=2000)
    return counts


def rebuild_bill_overhead(cluster: Cluster) -> int:
    """Replace the cluster's bill-derived Overhead rows: one per charge period, holding the
    hourly rate of Σ EffectiveCost of its non-node charges tagged with the cluster
    (control plane, load balancers, NAT, volumes, anything else tagged). Returns rows written."""
    Overhead.objects.filter(cluster=cluster, source="bill").delete()
    rows = (
        BillingCharge.objects.filter(cluster_name=cluster.name, billing_currency=cluster.currency)
        .exclude(kind="node")
        .values("charge_period_start", "charge_period_end")
        .annotate(total=Sum("effective_cost"))
        .order_by("charge_period_start")
    )
    items = []
    for r in rows:
        hours = Decimal((r["charge_period_end"] - r["charge_period_start"]).total_seconds()) / 3600
        if hours <= 0 or not r["total"]:
            continue
        items.append(
            Overhead(
                cluster=cluster,
                name=BILL_OVERHEAD_NAME,
                hourly=(r["total"] / hours).quantize(CENT8),
                start=r["charge_period_start"],
                end=r["charge_period_end"],
                source="bill",
            )
        )
    Overhead.objects.bulk_create(items, batch_size=2000)
    return len(items)


def reprice_after_import(import_id: int) -> dict[str, Counter]:
    """After a bill lands: rebuild bill overhead and re-price the node-hours its charges cover,
    for every cluster, and mark the affected cluster-days dirty (to be re-allocated)."""
    span = BillingCharge.objects.filter(billing_import_id=import_id).aggregate(
        lo=Min("charge_period_start"), hi=Max("charge_period_end")
    )
    result: dict[str, Counter] = {}
    if span["lo"] is None:
        return result
    lo = span["lo"].replace(minute=0, second=0, microsecond=0)
    for cluster in Cluster.objects.all():
        with transaction.atomic():
            rebuild_bill_overhead(cluster)
            counts = price_node_hours(cluster, lo, span["hi"])
            days = {
                d.date()
                for d in NodeHour.objects.filter(
                    cluster=cluster, hour_start__gte=lo, hour_start__lt=span["hi"]
                ).values_list("hour_start", flat=True)
            }
            for day in days:
                ClusterDay.objects.update_or_create(
                    cluster=cluster, day=day, defaults={"dirty": True}
                )
        result[cluster.name] = counts
    return result


@dataclass(frozen=True)
class Reconciliation:
    """A cluster-month's bill against what was allocated, with the difference explained.

    Bill side: `bill_node_cost` (node charges matched to the cluster's nodes by ResourceId) and
    `bill_overhead` (non-node charges tagged with the cluster). Allocation side:
    `allocated_total` (Σ workload own cost + idle under the `separate` policy + overhead lines).
    Explanations (money, bill currency):
      `bill_unplaced`: matched node charges with no observed node-hour in their period (hours
        not sampled: collector down, node outside the window);
      `overhead_not_accrued`: bill overhead in hours in which the cluster had no node-hours
        (overhead accrues only in hours with nodes, ALLOCATION_SPEC.md §5);
      `priced_off_bill`: node cost from catalog, custom or default prices (not on the bill);
      `unmatched_tagged`: node charges tagged with the cluster whose ResourceId matches none of
        its nodes (reported, not in the bill total: the bill says they are the cluster's, the
        nodes say otherwise);
      `unallocated`: node cost + accrued overhead not (yet) in allocation lines (days not
        allocated since the last re-pricing).
    `residual` = difference - explained; rounding only (a few 1e-8) when all is accounted for.
    """

    cluster: str
    month: date
    currency: str
    bill_node_cost: Decimal
    bill_overhead: Decimal
    node_cost_by_source: dict[str, Decimal]
    allocated_total: Decimal
    bill_unplaced: Decimal
    overhead_not_accrued: Decimal
    priced_off_bill: Decimal
    unmatched_tagged: Decimal
    unallocated: Decimal

    @property
    def bill_total(self) -> Decimal:
        return self.bill_node_cost + self.bill_overhead

    @property
    def difference(self) -> Decimal:
        return self.bill_total - self.allocated_total

    @property
    def residual(self) -> Decimal:
        explained = (
            self.bill_unplaced + self.overhead_not_accrued - self.priced_off_bill + self.unallocated
        )
        return self.difference - explained


def _month_bounds(month: date) -> tuple[datetime, datetime]:
    from datetime import UTC

    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


def reconcile_month(cluster: Cluster, month: date) -> Reconciliation:
    """Reconcile one cluster-month (see `Reconciliation`). Charges belong to the month of their
    ChargePeriodStart; node-hours and overhead to the month of their hour."""
    start, end = _month_bounds(month)
    keys = {
        k
        for pid in Node.objects.filter(cluster=cluster).values_list("provider_id", flat=True)
        for k in node_match_keys(pid)
    }
    zero = Decimal(0)
    node_charges = BillingCharge.objects.filter(
        kind="node",
        billing_currency=cluster.currency,
        charge_period_start__gte=start,
        charge_period_start__lt=end,
    )
    bill_node = (
        node_charges.filter(resource_key__in=list(keys)).aggregate(s=Sum("effective_cost"))["s"]
        or zero
    )
    unmatched = (
        node_charges.filter(cluster_name=cluster.name)
        .exclude(resource_key__in=list(keys))
        .aggregate(s=Sum("effective_cost"))["s"]
        or zero
    )
    bill_overhead = (
        BillingCharge.objects.filter(
            cluster_name=cluster.name,
            billing_currency=cluster.currency,
            charge_period_start__gte=start,
            charge_period_start__lt=end,
        )
        .exclude(kind="node")
        .aggregate(s=Sum("effective_cost"))["s"]
        or zero
    )
    # Node charges (overlapping the month) that found no observed node-hour.
    unplaced = _bill_shares(cluster, start, end).unplaced
    by_source = {
        r["price_source"]: r["s"] or zero
        for r in NodeHour.objects.filter(cluster=cluster, hour_start__gte=start, hour_start__lt=end)
        .values("price_source")
        .annotate(s=Sum("cost"))
    }
    node_cost = sum(by_source.values(), zero)
    off_bill = node_cost - by_source.get("bill", zero)
    # Overhead: accrued in hours with node-hours, not accrued otherwise.
    node_hour_set = set(
        NodeHour.objects.filter(cluster=cluster, hour_start__gte=start, hour_start__lt=end)
        .values_list("hour_start", flat=True)
        .distinct()
    )
    accrued = not_accrued = zero
    for o in Overhead.objects.filter(cluster=cluster).filter(
        Q(start__isnull=True) | Q(start__lt=end), Q(end__isnull=True) | Q(end__gt=start)
    ):
        lo = max(o.start or start, start).replace(minute=0, second=0, microsecond=0)
        hi = min(o.end or end, end)
        h = lo
        while h < hi:
            if h in node_hour_set:
                accrued += o.hourly
            elif o.source == "bill":
                not_accrued += o.hourly
            h += HOUR
    lines = AllocationLine.objects.filter(
        cluster=cluster, day__gte=start.date(), day__lt=end.date()
    )
    own = lines.filter(kind="workload").aggregate(
        c=Sum("cpu_cost"), r=Sum("ram_cost"), g=Sum("gpu_cost")
    )
    idle = lines.filter(kind="idle", idle_policy="separate").aggregate(
        c=Sum("cpu_cost"), r=Sum("ram_cost"), g=Sum("gpu_cost")
    )
    over = lines.filter(kind="overhead").aggregate(o=Sum("overhead_cost"))["o"] or zero
    allocated = sum((v or zero for v in (*own.values(), *idle.values())), zero) + over
    # The bill's own overhead that accrued is what allocation should hold, plus manual overhead.
    unallocated = node_cost + accrued - allocated
    manual_accrued = accrued - (bill_overhead - not_accrued)
    return Reconciliation(
        cluster=cluster.name,
        month=start.date(),
        currency=cluster.currency,
        bill_node_cost=bill_node,
        bill_overhead=bill_overhead,
        node_cost_by_source=by_source,
        allocated_total=allocated,
        bill_unplaced=unplaced,
        overhead_not_accrued=not_accrued,
        priced_off_bill=off_bill + manual_accrued,
        unmatched_tagged=unmatched,
        unallocated=unallocated,
    )
