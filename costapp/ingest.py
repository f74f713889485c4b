"""Fold samples into hourly rows (NodeHour, PodHour, ClusterHour).

A sample stands for the seconds since the previous sample of its cluster, capped at `max_gap`
so that a collector outage is recorded as missing coverage, never counted as usage. Those seconds
are split at UTC hour boundaries. Each hourly row keeps sums weighted by seconds, so folding is an
addition done in the database (`INSERT … ON CONFLICT DO UPDATE SET x = x + excluded.x`): a worker
that dies mid-hour loses at most the sample it was folding, and a sample that was already folded
(taken_at not after the cluster's last sample) is ignored, so re-running never double-counts.

Real samples (costapp.kube.client) and the simulated cluster (costapp.simulate) both come here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import connection, transaction

from costapp.kube.records import Sample
from costapp.models import Cluster, ClusterDay, Namespace, Node, Pod, PodHour

HOUR = 3600.0
# Annotations never worth keeping: a full copy of the manifest.
_DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


@dataclass
class FoldStats:
    """What one fold did: samples folded and skipped (already seen), rows touched, days dirtied."""

    samples: int = 0
    ignored: int = 0
    node_hours: int = 0
    pod_hours: int = 0
    days: set[tuple[int, date]] = field(default_factory=set)


def hour_floor(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def split_by_hour(start: datetime, end: datetime) -> list[tuple[datetime, float]]:
    """[(hour_start, seconds)] covering [start, end) cut at UTC hour boundaries."""
    parts = []
    t = start
    while t < end:
        h = hour_floor(t)
        nxt = min(end, h + timedelta(hours=1))
        parts.append((h, (nxt - t).total_seconds()))
        t = nxt
    return parts


def fold_samples(
    cluster: Cluster,
    samples: Iterable[Sample],
    *,
    interval_seconds: float = 60.0,
    max_gap_seconds: float | None = None,
) -> FoldStats:
    """Fold samples (in time order) into the cluster's hourly rows, atomically.

    Steps: 1. give each new sample its seconds (since the previous one, capped);
    2. accumulate node, pod and coverage sums per hour in memory;
    3. upsert identities (nodes, namespaces, pods) and add the sums to the hourly rows;
    4. mark the touched cluster-days dirty so they are re-allocated.
    """
    cap = max_gap_seconds if max_gap_seconds is not None else 2 * interval_seconds
    stats = FoldStats()
    node_acc: dict[tuple[str, datetime], list[float]] = defaultdict(lambda: [0.0] * 3)
    node_shape: dict[tuple[str, datetime], tuple] = {}
    pod_acc: dict[tuple[str, str, datetime], list[float]] = defaultdict(lambda: [0.0] * 9)
    cov_acc: dict[datetime, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    nodes_seen: dict[str, object] = {}
    pods_seen: dict[str, object] = {}
    namespaces_seen: dict[str, object] = {}
    node_first: dict[str, datetime] = {}
    pod_first: dict[str, datetime] = {}
    last = cluster.last_sample_at
    last_sample: Sample | None = None

    for sample in samples:
        taken = sample.taken_at.astimezone(UTC)
        if last is not None and taken <= last:
            stats.ignored += 1
            continue
        seconds = interval_seconds if last is None else (taken - last).total_seconds()
        seconds = min(seconds, cap)
        last = taken
        last_sample = sample
        stats.samples += 1
        parts = split_by_hour(taken - timedelta(seconds=seconds), taken)
        metrics = sample.metrics_available
        for node in sample.nodes:
            nodes_seen[node.name] = node
            node_first.setdefault(node.name, taken)
            usage = sample.node_usage.get(node.name)
            shape = (
                node.cpu_cores,
                node.ram_gib,
                node.gpus,
                node.instance_type,
                node.zone,
                node.node_pool,
                node.capacity_type,
            )
            for hour, s in parts:
                acc = node_acc[(node.name, hour)]
                acc[0] += s
                if usage is not None:
                    acc[1] += usage.cpu_cores * s
                    acc[2] += usage.ram_gib * s
                node_shape[(node.name, hour)] = shape
        for pod in sample.pods:
            pods_seen[pod.uid] = pod
            pod_first.setdefault(pod.uid, taken)
            usage = sample.pod_usage.get((pod.namespace, pod.name)) if metrics else None
            cpu_use = usage.cpu_cores if usage else 0.0
            ram_use = usage.ram_gib if usage else 0.0
            # Sample-wise max(request, usage): with no usage measured, the request alone.
            cpu_alloc = max(pod.cpu_request, cpu_use)
            ram_alloc = max(pod.ram_request_gib, ram_use)
            for hour, s in parts:
                acc = pod_acc[(pod.uid, pod.node, hour)]
                acc[0] += s
                if usage is not None:
                    acc[1] += s
                    acc[3] += cpu_use * s
                    acc[6] += ram_use * s
                acc[2] += pod.cpu_request * s
                acc[4] += cpu_alloc * s
                acc[5] += pod.ram_request_gib * s
                acc[7] += ram_alloc * s
                acc[8] += pod.gpu_request * s
        for ns in sample.namespaces:
            namespaces_seen[ns.name] = ns
        for hour, s in parts:
            cov = cov_acc[hour]
            cov[0] += s
            cov[1] += 1
            if metrics:
                cov[2] += s

    if last_sample is None:
        return stats
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if locked.last_sample_at is not None and cluster.last_sample_at != locked.last_sample_at:
            # Another fold got here first: re-run against the fresh state (never double-count).
            cluster.last_sample_at = locked.last_sample_at
            raise ConcurrentFold(cluster.name)
        node_ids = _upsert_nodes(cluster, nodes_seen, node_first, last)
        pod_ids = _upsert_pods(cluster, pods_seen, pod_first, last)
        _upsert_namespaces(cluster, namespaces_seen, last)
        _add_node_hours(cluster, node_acc, node_shape, node_ids)
        _add_pod_hours(cluster, pod_acc, pod_ids, node_ids)
        _add_coverage(cluster, cov_acc)
        days = {h.date() for h in cov_acc}
        for day in days:
            ClusterDay.objects.update_or_create(cluster=cluster, day=day, defaults={"dirty": True})
        Cluster.objects.filter(pk=cluster.pk).update(
            last_sample_at=last,
            node_count=len(last_sample.nodes),
            pod_count=len(last_sample.pods),
            usage_available=last_sample.metrics_available,
            skipped_objects=len(last_sample.skipped),
        )
    cluster.last_sample_at = last
    stats.node_hours = len(node_acc)
    stats.pod_hours = len(pod_acc)
    stats.days = {(cluster.pk, d) for d in days}
    return stats


class ConcurrentFold(RuntimeError):
    """Two folds raced for one cluster; the loser must re-read and try again."""


def _upsert_nodes(cluster, seen, first, now) -> dict[str, int]:
    existing = {n.name: n for n in Node.objects.filter(cluster=cluster, name__in=list(seen))}
    create, update = [], []
    for name, snap in seen.items():
        fields = dict(
            uid=snap.uid,
            provider_id=snap.provider_id,
            instance_type=snap.instance_type,
            region=snap.region,
            zone=snap.zone,
            node_pool=snap.node_pool,
            capacity_type=snap.capacity_type,
            labels=dict(snap.labels),
            last_seen=now,
        )
        node = existing.get(name)
        if node is None:
            create.append(Node(cluster=cluster, name=name, first_seen=first[name], **fields))
        else:
            for key, value in fields.items():
                setattr(node, key, value)
            update.append(node)
    Node.objects.bulk_create(create, batch_size=1000)
    if update:
        Node.objects.bulk_update(
            update,
            [
                "uid",
                "provider_id",
                "instance_type",
                "region",
                "zone",
                "node_pool",
                "capacity_type",
                "labels",
                "last_seen",
            ],
            batch_size=1000,
        )
    return dict(Node.objects.filter(cluster=cluster, name__in=list(seen)).values_list("name", "id"))


def _upsert_pods(cluster, seen, first, now) -> dict[str, int]:
    uids = list(seen)
    known: dict[str, int] = {}
    for i in range(0, len(uids), 5000):
        chunk = uids[i : i + 5000]
        known.update(Pod.objects.filter(cluster=cluster, uid__in=chunk).values_list("uid", "id"))
    new = []
    for uid, snap in seen.items():
        if uid in known:
            continue
        annotations = {k: v for k, v in snap.annotations.items() if k not in _DROP_ANNOTATIONS}
        new.append(
            Pod(
                cluster=cluster,
                namespace=snap.namespace,
                name=snap.name,
                uid=uid,
                controller_kind=snap.controller_kind,
                controller=snap.controller,
                labels=dict(snap.labels),
                annotations=annotations,
                has_local_storage=snap.has_local_storage,
                first_seen=first[uid],
                last_seen=now,
            )
        )
    Pod.objects.bulk_create(new, batch_size=2000)
    if known:
        Pod.objects.filter(id__in=list(known.values())).update(last_seen=now)
    for i in range(0, len(new), 5000):
        chunk = [p.uid for p in new[i : i + 5000]]
        known.update(Pod.objects.filter(cluster=cluster, uid__in=chunk).values_list("uid", "id"))
    return known


def _upsert_namespaces(cluster, seen, now) -> None:
    rows = [
        Namespace(
            cluster=cluster,
            name=name,
            labels=dict(ns.labels),
            annotations=dict(ns.annotations),
            last_seen=now,
        )
        for name, ns in seen.items()
    ]
    Namespace.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["cluster", "name"],
        update_fields=["labels", "annotations", "last_seen"],
    )


def additive_upsert(table: str, keys: list[str], adds: list[str], sets: list[str], rows) -> None:
    """Insert rows, or add `adds` columns to (and overwrite `sets` columns of) existing ones.

    Works on PostgreSQL and SQLite (both speak `ON CONFLICT … DO UPDATE` with `excluded`).
    """
    rows = list(rows)
    if not rows:
        return
    cols = keys + adds + sets
    q = connection.ops.quote_name
    assignments = [f"{q(c)} = {q(table)}.{q(c)} + excluded.{q(c)}" for c in adds]
    assignments += [f"{q(c)} = excluded.{q(c)}" for c in sets]
    sql = (
        f"INSERT INTO {q(table)} ({', '.join(q(c) for c in cols)}) "
        f"VALUES ({', '.join(['%s'] * len(cols))}) "
        f"ON CONFLICT ({', '.join(q(c) for c in keys)}) DO UPDATE SET {', '.join(assignments)}"
    )
    with connection.cursor() as cursor:
        for i in range(0, len(rows), 5000):
            cursor.executemany(sql, rows[i : i + 5000])


def _add_node_hours(cluster, acc, shape, node_ids) -> None:
    rows = []
    for (name, hour), (secs, cpu_use, ram_use) in acc.items():
        cpu, ram, gpu, itype, zone, pool, ctype = shape[(name, hour)]
        rows.append(
            (
                node_ids[name],
                hour,
                secs,
                cpu_use,
                ram_use,
                cluster.pk,
                cpu,
                ram,
                gpu,
                itype,
                zone,
                pool,
                ctype,
            )
        )
    # cost and price_source take their database defaults; pricing fills them before allocation.
    additive_upsert(
        "costapp_nodehour",
        ["node_id", "hour_start"],
        ["seconds", "cpu_usage_sum", "ram_usage_sum"],
        [
            "cluster_id",
            "cpu_cores",
            "ram_gib",
            "gpus",
            "instance_type",
            "zone",
            "node_pool",
            "capacity_type",
        ],
        rows,
    )


def _add_pod_hours(cluster, acc, pod_ids, node_ids) -> None:
    rows = [
        (pod_ids[uid], node_ids[node], hour, *vals, cluster.pk)
        for (uid, node, hour), vals in acc.items()
        if node in node_ids
    ]
    additive_upsert(
        "costapp_podhour",
        ["pod_id", "node_id", "hour_start"],
        list(PodHour.SUMS),
        ["cluster_id"],
        rows,
    )


def _add_coverage(cluster, acc) -> None:
    additive_upsert(
        "costapp_clusterhour",
        ["cluster_id", "hour_start"],
        ["covered_seconds", "samples", "usage_seconds"],
        [],
        [(cluster.pk, hour, s, n, u) for hour, (s, n, u) in acc.items()],
    )
