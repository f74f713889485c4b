"""Use cases: one function each, the only place where the database meets the engine.

Tasks call these with ids; views call them through tasks or read their results. Every write
happens inside `transaction.atomic()`, and every function can be re-run without double-counting.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

import allocation
from costapp.ingest import FoldStats, fold_samples
from costapp.models import (
    IDLE,
    UNALLOCATED,
    AllocationLine,
    AllocationPolicy,
    Cluster,
    ClusterDay,
    ClusterHour,
    Job,
    Namespace,
    NamespaceTeam,
    NodeHour,
    Overhead,
    Pod,
    PodHour,
    Team,
)
from costapp.ownership import OwnershipResolver

log = logging.getLogger(__name__)

# The grain of stored lines (ARCHITECTURE.md, step 3): queries aggregate from here.
LINE_KEYS = (
    "cluster",
    "namespace",
    "controller_kind",
    "controller",
    "team",
    "node_pool",
    "capacity_type",
)
IDLE_POLICIES = ("separate", "share-by-node", "share-by-cluster")
ProgressFn = Callable[[int, int, str], None]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def _money(value: float) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal("0.00000001"))


# --- ownership ---------------------------------------------------------------------------------


def ownership_resolver(cluster: Cluster) -> OwnershipResolver:
    """The resolver for one cluster, from its namespaces and the namespace → team table."""
    from costapp import ownership_rules  # ownership settings (keys, default team) live there

    namespaces = Namespace.objects.filter(cluster=cluster).values_list(
        "name", "labels", "annotations"
    )
    table = {
        ns: team
        for ns, team, cluster_id in NamespaceTeam.objects.filter(models_q_cluster(cluster))
        .values_list("namespace", "team__name", "cluster_id")
        # Global rows (cluster NULL) first so cluster-specific rows overwrite them; PostgreSQL
        # sorts NULL last by default, which let the global row win.
        .order_by(F("cluster_id").asc(nulls_first=True))
    }
    labels, annotations = {}, {}
    for name, lab, ann in namespaces:
        labels[name], annotations[name] = lab or {}, ann or {}
    config = ownership_rules.current_config()
    return OwnershipResolver(
        keys=config.keys,
        namespace_table=table,
        namespace_labels=labels,
        namespace_annotations=annotations,
        workload_labels=ownership_rules.workload_labels(cluster),
        default_team=config.default_team,
        known_teams=frozenset(Team.objects.values_list("name", flat=True)),
    )


def models_q_cluster(cluster: Cluster):
    """Namespace-table rows for this cluster or for every cluster (cluster-specific win)."""
    from django.db.models import Q

    return Q(cluster=cluster) | Q(cluster__isnull=True)


# --- pricing -----------------------------------------------------------------------------------


def price_cluster_range(cluster: Cluster, start: datetime, end: datetime) -> Counter:
    """Give every node-hour of the cluster in [start, end) a cost and its source."""
    try:
        from costapp.billing.pricing import price_node_hours
    except ImportError:  # billing not installed yet: OpenCost default unit prices
        return _price_with_defaults(cluster, start, end)
    return price_node_hours(cluster, start, end)


# OpenCost's configs/default.json: $/core-hour, $/GiB-hour, $/GPU-hour (on-demand and spot).
DEFAULT_UNIT_PRICES = {
    "cpu": 0.031611,
    "ram": 0.004237,
    "gpu": 0.95,
    "spot_cpu": 0.006655,
    "spot_ram": 0.000892,
}


def _price_with_defaults(cluster: Cluster, start: datetime, end: datetime) -> Counter:
    rows = NodeHour.objects.filter(
        cluster=cluster, hour_start__gte=start, hour_start__lt=end, price_source="none"
    )
    p = DEFAULT_UNIT_PRICES
    updated = []
    for nh in rows:
        spot = nh.capacity_type == "spot"
        hourly = (
            nh.cpu_cores * (p["spot_cpu"] if spot else p["cpu"])
            + nh.ram_gib * (p["spot_ram"] if spot else p["ram"])
            + nh.gpus * p["gpu"]
        )
        nh.cost = _money(hourly * nh.seconds / 3600.0)
        nh.price_source = "default"
        updated.append(nh)
    NodeHour.objects.bulk_update(updated, ["cost", "price_source"], batch_size=2000)
    return Counter({"default": len(updated)})


# --- allocation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayResult:
    """What allocating one cluster-day produced (for the task's log and the job page)."""

    cluster: str
    day: date
    lines: int
    node_cost: Decimal
    overhead_cost: Decimal
    pod_hours: int


def _engine_inputs(cluster: Cluster, start: datetime, end: datetime, label_keys: Iterable[str]):
    """Read one window's hourly rows into the engine's columnar inputs."""
    node_rows = list(
        NodeHour.objects.filter(
            cluster=cluster, hour_start__gte=start, hour_start__lt=end
        ).values_list(
            "node_id",
            "node__name",
            "hour_start",
            "seconds",
            "cpu_cores",
            "ram_gib",
            "gpus",
            "cost",
            "node_pool",
            "capacity_type",
            "instance_type",
            "zone",
            "price_source",
        )
    )
    pod_rows = list(
        PodHour.objects.filter(
            cluster=cluster, hour_start__gte=start, hour_start__lt=end
        ).values_list("pod_id", "node_id", "hour_start", *PodHour.SUMS)
    )
    node_names = {r[0]: r[1] for r in node_rows}
    nodes = allocation.NodeHours(
        cluster=[cluster.name] * len(node_rows),
        node=[r[1] for r in node_rows],
        hour_start=np.array([int(r[2].timestamp()) for r in node_rows], dtype=np.int64),
        hours=np.minimum(np.array([r[3] for r in node_rows], dtype=float) / 3600.0, 1.0),
        cpu_cores=[r[4] for r in node_rows],
        ram_gib=[r[5] for r in node_rows],
        gpus=[r[6] for r in node_rows],
        cost=[float(r[7]) for r in node_rows],
        node_pool=[r[8] or UNALLOCATED for r in node_rows],
        capacity_type=[r[9] or "unknown" for r in node_rows],
        instance_type=[r[10] for r in node_rows],
        zone=[r[11] for r in node_rows],
        price_source=[r[12] for r in node_rows],
        source=f"cluster {cluster.name} node-hours",
    )
    pod_ids = {r[0] for r in pod_rows}
    pods_meta = (
        {
            p[0]: p
            for p in Pod.objects.filter(id__in=pod_ids).values_list(
                "id", "namespace", "name", "controller_kind", "controller", "labels", "annotations"
            )
        }
        if pod_ids
        else {}
    )
    resolver = ownership_resolver(cluster)
    team_of, labels_of = {}, {}
    keys = tuple(label_keys)
    for pid, (_, ns, _name, kind, ctrl, labels, ann) in pods_meta.items():
        team_of[pid] = resolver.resolve(ns, labels, ann, kind, ctrl).team
        labels_of[pid] = {k: labels[k] for k in keys if k in (labels or {})}
    secs = np.array([r[3] for r in pod_rows], dtype=float)
    usecs = np.array([r[4] for r in pod_rows], dtype=float)
    safe = np.where(secs > 0, secs, 1.0)
    usafe = np.where(usecs > 0, usecs, 1.0)

    def mean(i: int) -> np.ndarray:
        return np.array([r[i] for r in pod_rows], dtype=float) / safe

    def umean(i: int) -> np.ndarray:
        return np.array([r[i] for r in pod_rows], dtype=float) / usafe

    pods = allocation.PodHours(
        cluster=[cluster.name] * len(pod_rows),
        namespace=[pods_meta[r[0]][1] for r in pod_rows],
        pod=[pods_meta[r[0]][2] for r in pod_rows],
        node=[node_names.get(r[1], f"?{r[1]}") for r in pod_rows],
        hour_start=np.array([int(r[2].timestamp()) for r in pod_rows], dtype=np.int64),
        hours=np.minimum(secs / 3600.0, 1.0),
        cpu_request=mean(5),
        cpu_usage=umean(6) * (usecs / safe),
        cpu_alloc=mean(7),
        ram_request_gib=mean(8),
        ram_usage_gib=umean(9) * (usecs / safe),
        ram_alloc_gib=mean(10),
        gpu_request=mean(11),
        controller_kind=[pods_meta[r[0]][3] or None for r in pod_rows],
        controller=[pods_meta[r[0]][4] or None for r in pod_rows],
        team=[team_of[r[0]] for r in pod_rows],
        labels=[_json_labels(labels_of[r[0]]) for r in pod_rows],
        source=f"cluster {cluster.name} pod-hours",
    )
    return nodes, pods


def _json_labels(labels: dict) -> str | None:
    import json

    return json.dumps(labels, sort_keys=True) if labels else None


def overhead_for_window(cluster: Cluster, hour_starts: Iterable[datetime]) -> Decimal:
    """Σ hourly overhead over the distinct hours in which the cluster had node-hours."""
    hours = sorted(set(hour_starts))
    total = Decimal(0)
    if not hours:
        return total
    # Only rows that overlap the window: bill overhead adds one row per charge period (~720 per
    # cluster-month), so an unbounded read grows with the whole billing history.
    from django.db.models import Q

    overlapping = Overhead.objects.filter(cluster=cluster).filter(
        Q(start__isnull=True) | Q(start__lte=hours[-1]), Q(end__isnull=True) | Q(end__gt=hours[0])
    )
    for item in overlapping:
        n = sum(
            1
            for h in hours
            if (item.start is None or h >= item.start) and (item.end is None or h < item.end)
        )
        total += item.hourly * n
    return total


def allocate_cluster_day(cluster_id: int, day: date) -> DayResult:
    """Allocate one cluster-day through the engine and replace its stored lines atomically.

    Steps: 1. price any unpriced node-hours of the day; 2. read node- and pod-hours;
    3. run the engine once for every per-line amount (own cost, idle under each policy);
    4. in one transaction, delete the day's lines and write the new ones with the day's totals.
    """
    cluster = Cluster.objects.get(pk=cluster_id)
    start, end = day_bounds(day)
    price_cluster_range(cluster, start, end)
    policy = AllocationPolicy.current()
    label_keys = tuple(policy.label_keys or ())
    nodes, pods = _engine_inputs(cluster, start, end, label_keys)
    keys = LINE_KEYS + tuple(f"label:{k}" for k in label_keys)
    engine_policy = allocation.Policy.from_dict(
        {"basis": policy.basis, "weights": policy.weights}, source="allocation policy"
    )
    lines: list[AllocationLine] = []
    if len(nodes):
        parts = allocation.allocate_parts(nodes, pods, engine_policy, keys, "day")
        lines = list(_lines_from_parts(cluster, day, parts, keys))
    hour_starts = [datetime.fromtimestamp(int(h), UTC) for h in np.unique(nodes.hour_start)]
    overhead = overhead_for_window(cluster, hour_starts)
    if overhead:
        lines.append(
            AllocationLine(
                cluster=cluster,
                day=day,
                kind=AllocationLine.Kind.OVERHEAD,
                namespace="",
                controller_kind="",
                controller="",
                team="",
                node_pool="",
                capacity_type="",
                overhead_cost=overhead,
            )
        )
    node_cost = _money(float(nodes.cost.sum())) if len(nodes) else Decimal(0)
    covered = (
        ClusterHour.objects.filter(
            cluster=cluster, hour_start__gte=start, hour_start__lt=end
        ).aggregate(s=Sum("covered_seconds"))["s"]
        or 0.0
    )
    priced_by = Counter()
    if nodes.price_source is not None:
        for src, hrs in zip(nodes.price_source.values(), nodes.hours, strict=True):
            priced_by[str(src)] += float(hrs)
    with transaction.atomic():
        AllocationLine.objects.filter(cluster=cluster, day=day).delete()
        AllocationLine.objects.bulk_create(lines, batch_size=2000)
        ClusterDay.objects.update_or_create(
            cluster=cluster,
            day=day,
            defaults=dict(
                allocated_at=timezone.now(),
                dirty=False,
                node_cost=node_cost,
                overhead_cost=overhead,
                line_count=len(lines),
                node_hours=float(nodes.hours.sum()) if len(nodes) else 0.0,
                covered_seconds=covered,
                priced_by=dict(priced_by),
            ),
        )
    return DayResult(cluster.name, day, len(lines), node_cost, overhead, len(pods))


def _lines_from_parts(cluster: Cluster, day: date, parts, keys) -> Iterable[AllocationLine]:
    """Turn the engine's per-line parts into stored AllocationLine rows."""
    w = parts.workload
    values = {k: w.keys[k].values() for k in keys}
    label_keys = [k for k in keys if k.startswith("label:")]
    for i in range(len(w)):
        labels = {k[6:]: values[k][i] for k in label_keys if values[k][i] != UNALLOCATED}
        yield AllocationLine(
            cluster=cluster,
            day=day,
            kind=AllocationLine.Kind.WORKLOAD,
            namespace=values["namespace"][i],
            controller_kind=values["controller_kind"][i],
            controller=values["controller"][i],
            team=values["team"][i],
            node_pool=values["node_pool"][i],
            capacity_type=values["capacity_type"][i],
            labels=labels,
            cpu_core_hours=float(w.cpu_core_hours[i]),
            ram_gib_hours=float(w.ram_gib_hours[i]),
            gpu_hours=float(w.gpu_hours[i]),
            cpu_usage_core_hours=float(w.cpu_usage_core_hours[i]),
            cpu_request_core_hours=float(w.cpu_request_core_hours[i]),
            ram_usage_gib_hours=float(w.ram_usage_gib_hours[i]),
            ram_request_gib_hours=float(w.ram_request_gib_hours[i]),
            cpu_cost=_money(w.cpu_cost[i]),
            ram_cost=_money(w.ram_cost[i]),
            gpu_cost=_money(w.gpu_cost[i]),
            idle_by_node=_money(w.idle_by_node[i]),
            idle_by_cluster=_money(w.idle_by_cluster[i]),
        )
    idle = parts.idle
    pools = idle.keys["node_pool"].values()
    ctypes = idle.keys["capacity_type"].values()
    for idle_policy in IDLE_POLICIES:
        cols = idle.for_policy(idle_policy)
        for i in range(len(idle)):
            cpu, ram, gpu = (
                float(cols.cpu_cost[i]),
                float(cols.ram_cost[i]),
                float(cols.gpu_cost[i]),
            )
            if cpu == 0 and ram == 0 and gpu == 0 and idle_policy != "separate":
                continue
            yield AllocationLine(
                cluster=cluster,
                day=day,
                kind=AllocationLine.Kind.IDLE,
                idle_policy=idle_policy,
                namespace=IDLE,
                controller_kind=IDLE,
                controller=IDLE,
                team=IDLE,
                node_pool=pools[i],
                capacity_type=ctypes[i],
                cpu_core_hours=float(cols.cpu_core_hours[i]),
                ram_gib_hours=float(cols.ram_gib_hours[i]),
                gpu_hours=float(cols.gpu_hours[i]),
                cpu_cost=_money(cpu),
                ram_cost=_money(ram),
                gpu_cost=_money(gpu),
            )


def allocate_dirty_days(cluster_id: int | None = None, progress: ProgressFn | None = None) -> int:
    """Allocate every cluster-day marked dirty (new samples, a bill, a rule change)."""
    days = ClusterDay.objects.filter(dirty=True).order_by("day")
    if cluster_id is not None:
        days = days.filter(cluster_id=cluster_id)
    todo = list(days.values_list("cluster_id", "day"))
    for i, (cid, day) in enumerate(todo):
        allocate_cluster_day(cid, day)
        if progress:
            progress(i + 1, len(todo), f"allocated {day}")
    return len(todo)


# --- collection --------------------------------------------------------------------------------


def simulate_history(
    cluster: Cluster,
    days: int,
    *,
    end: datetime | None = None,
    step_seconds: int = 300,
    progress: ProgressFn | None = None,
    scale: float = 1.0,
) -> FoldStats:
    """Feed `days` of simulated samples, ending at `end` (default now), through ingestion."""
    from costapp.simulate import SimulatedCluster

    sim = SimulatedCluster(cluster.name, scale=scale)
    end = (end or timezone.now()).astimezone(UTC).replace(second=0, microsecond=0)
    end -= timedelta(seconds=end.timestamp() % step_seconds)
    start = end - timedelta(days=days)
    if cluster.last_sample_at and cluster.last_sample_at > start:
        start = cluster.last_sample_at
    total = FoldStats()
    hour = timedelta(hours=6)
    t = start
    n_chunks = max(1, int((end - start) / hour) + 1)
    i = 0
    while t < end:
        chunk_end = min(end, t + hour)
        times = []
        s = t + timedelta(seconds=step_seconds)
        while s <= chunk_end:
            times.append(s)
            s += timedelta(seconds=step_seconds)
        stats = fold_samples(cluster, (sim.sample(x) for x in times), interval_seconds=step_seconds)
        total.samples += stats.samples
        total.pod_hours += stats.pod_hours
        total.days |= stats.days
        t = chunk_end
        i += 1
        if progress:
            progress(i, n_chunks, f"simulated up to {chunk_end:%Y-%m-%d %H:%M}")
    Cluster.objects.filter(pk=cluster.pk).update(
        health=Cluster.Health.OK, last_attempt_at=timezone.now(), last_error=""
    )
    return total


# --- jobs --------------------------------------------------------------------------------------


def start_job(kind: str, description: str = "", user=None, **params) -> Job:
    return Job.objects.create(kind=kind, description=description, params=params, created_by=user)


def job_progress(job_id: int) -> ProgressFn:
    """A progress callback that records done/total on the job (visible to the UI at once).

    Progress is written outside any surrounding transaction only when there is none; inside an
    atomic block it goes to the cache, which the job page reads first.
    """
    from django.core.cache import cache
    from django.db import connection

    def report(done: int, total: int, message: str) -> None:
        cache.set(f"job:{job_id}:progress", (done, total, message), 3600)
        if not connection.in_atomic_block:
            Job.objects.filter(pk=job_id).update(done=done, total=total, message=message[:500])

    return report


def run_job(job_id: int, work: Callable[[ProgressFn], str]) -> Job:
    """Run `work` for a job, recording start, progress, success or the error."""
    Job.objects.filter(pk=job_id).update(status=Job.Status.RUNNING, started_at=timezone.now())
    try:
        message = work(job_progress(job_id))
    except Exception as exc:
        Job.objects.filter(pk=job_id).update(
            status=Job.Status.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
        raise
    Job.objects.filter(pk=job_id).update(
        status=Job.Status.SUCCEEDED, message=(message or "")[:500], finished_at=timezone.now()
    )
    return Job.objects.get(pk=job_id)
