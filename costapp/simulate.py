"""A simulated cluster: realistic node and pod snapshots over time, for the demo and for tests.

It produces exactly the `Sample` records the real collector produces, so everything downstream
(ingestion, pricing, allocation, pages) runs the same path as for a real cluster.

What it models:
- daily and weekly load cycles (the hour-of-day profile is taken from the Alibaba GenAI trace's
  request rate in ../shared/data/05_traces when present, else a smooth day curve; weekends 60 %);
- several teams and namespaces, owned in every way the ownership rules know (namespace label,
  pod label, explicit table, and one namespace nobody owns);
- Deployments that scale with load, a StatefulSet, DaemonSets, CronJobs whose Job pods come and go;
- an on-demand pool, a spot pool and a GPU pool (GPU pod shapes from the Alibaba DLRM trace);
- kube-system and monitoring overhead;
- node scale-up and scale-down as requests change (nodes are packed to ~80 % of allocatable);
- pods that burst above their requests and pods that idle far below them.

Everything is a pure function of (seed, time), so a re-run produces the same samples.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from costapp.kube.records import NamespaceSnapshot, NodeSnapshot, PodSnapshot, Sample, Usage


@dataclass(frozen=True)
class Pool:
    name: str
    instance_type: str
    capacity_type: str
    cpu: float
    ram_gib: float
    gpus: float
    min_nodes: int
    max_nodes: int


POOLS = (
    Pool("general", "m5.2xlarge", "on-demand", 8, 32, 0, 3, 40),
    Pool("spot", "m5.2xlarge", "spot", 8, 32, 0, 1, 40),
    Pool("gpu", "g4dn.4xlarge", "on-demand", 16, 64, 1, 0, 8),
)


@dataclass(frozen=True)
class Workload:
    """A simulated workload.

    replicas: replicas at average load; scales: follows the load cycle; usage: usage ÷ request
    at average load (0.1 idles far below its request, 1.6 bursts above it); cron_hours: for a
    CronJob, it runs every this many hours for `run_minutes`.
    """

    namespace: str
    kind: str
    name: str
    pool: str
    replicas: int
    cpu: float
    ram_gib: float
    gpu: float = 0.0
    scales: bool = True
    usage: float = 0.6
    team_label: str = ""
    cron_hours: int = 0
    run_minutes: int = 0


NAMESPACES = {
    # name: (labels, annotations) — how each namespace is owned, as ownership rules will read it.
    "payments": ({"team": "payments"}, {}),
    "checkout": ({}, {"owner": "checkout"}),
    "search": ({}, {}),  # owned by pod labels
    "data-batch": ({"team": "data"}, {}),
    "ml-training": ({"team": "ml"}, {}),
    "storefront": ({}, {}),  # owned through the explicit namespace → team table
    "legacy": ({}, {}),  # nobody owns it: shows up as unallocated
    "kube-system": ({}, {}),
    "monitoring": ({"team": "platform"}, {}),
}

WORKLOADS = (
    Workload("payments", "Deployment", "payments-api", "general", 6, 0.5, 1.0, usage=0.7),
    Workload(
        "payments", "StatefulSet", "ledger-db", "general", 3, 1.0, 4.0, scales=False, usage=0.35
    ),
    Workload("checkout", "Deployment", "checkout-web", "general", 8, 0.25, 0.5, usage=1.6),
    Workload("checkout", "Deployment", "cart", "spot", 4, 0.5, 1.0, usage=0.5),
    Workload(
        "search", "Deployment", "search-api", "general", 5, 1.0, 2.0, usage=0.8, team_label="search"
    ),
    Workload(
        "search", "Deployment", "indexer", "spot", 6, 1.0, 3.0, usage=0.9, team_label="search"
    ),
    Workload(
        "data-batch",
        "CronJob",
        "nightly-etl",
        "spot",
        12,
        2.0,
        8.0,
        scales=False,
        usage=1.1,
        cron_hours=24,
        run_minutes=150,
    ),
    Workload(
        "data-batch",
        "CronJob",
        "hourly-rollup",
        "spot",
        3,
        1.0,
        2.0,
        scales=False,
        usage=0.9,
        cron_hours=1,
        run_minutes=20,
    ),
    Workload(
        "ml-training", "Deployment", "trainer", "gpu", 2, 8.0, 48.0, 1.0, scales=False, usage=0.9
    ),
    Workload("storefront", "Deployment", "storefront", "general", 6, 0.5, 1.0, usage=0.1),
    Workload(
        "legacy", "Deployment", "old-reporting", "general", 2, 1.0, 2.0, scales=False, usage=0.05
    ),
    Workload("kube-system", "DaemonSet", "kube-proxy", "*", 1, 0.1, 0.125, scales=False),
    Workload(
        "kube-system", "Deployment", "coredns", "general", 2, 0.1, 0.07, scales=False, usage=0.3
    ),
    Workload(
        "monitoring", "DaemonSet", "node-exporter", "*", 1, 0.1, 0.18, scales=False, usage=0.4
    ),
    Workload(
        "monitoring", "StatefulSet", "prometheus", "general", 1, 1.0, 8.0, scales=False, usage=0.8
    ),
)

TEAMS = ("payments", "checkout", "search", "data", "ml", "storefront", "platform")
EXPLICIT_NAMESPACE_TEAMS = {"storefront": "storefront"}
PACKING = 0.8


def _h(*parts: object) -> int:
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def _noise(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1)."""
    return _h(*parts) / 2**64


@lru_cache(maxsize=1)
def daily_profile() -> tuple[float, ...]:
    """Load factor per UTC hour of day, mean 1.

    From the Alibaba GenAI trace's API request rate (qps.csv) when ../shared/data is present;
    otherwise a smooth curve peaking mid-afternoon.
    """
    from django.conf import settings

    path = Path(settings.COSTAPP_SHARED_DATA) / "05_traces" / "alibaba_genai_v2026" / "qps.csv"
    sums, counts = [0.0] * 24, [0] * 24
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                hour = int(float(row["timestamp_anon"]) // 3600) % 24
                sums[hour] += float(row["value"])
                counts[hour] += 1
    except (OSError, KeyError, ValueError):
        counts = [0] * 24
    if all(counts):
        raw = [s / c for s, c in zip(sums, counts, strict=True)]
        # Smooth and keep the swing realistic for a whole cluster (0.5×–1.5× of the mean).
        smooth = [(raw[i - 1] + 2 * raw[i] + raw[(i + 1) % 24]) / 4 for i in range(24)]
        lo, hi = min(smooth), max(smooth)
        scaled = [0.5 + (v - lo) / (hi - lo or 1) for v in smooth]
    else:
        scaled = [1 + 0.45 * math.sin((h - 9) / 24 * 2 * math.pi) for h in range(24)]
    mean = sum(scaled) / 24
    return tuple(v / mean for v in scaled)


def load_factor(t: datetime) -> float:
    weekend = 0.6 if t.weekday() >= 5 else 1.0
    return daily_profile()[t.hour] * weekend


class SimulatedCluster:
    """A deterministic simulated cluster; `sample(t)` is its snapshot at time t."""

    def __init__(self, name: str = "demo", seed: int = 7, scale: float = 1.0) -> None:
        self.name = name
        self.seed = seed
        self.scale = scale

    # --- pods ---

    def _replicas(self, w: Workload, t: datetime) -> int:
        if w.cron_hours:
            hour_index = int(t.timestamp() // 3600)
            start_hour = hour_index - hour_index % w.cron_hours
            offset = (t.timestamp() - start_hour * 3600) / 60
            return w.replicas if offset < w.run_minutes else 0
        base = w.replicas * self.scale if w.kind != "StatefulSet" else w.replicas
        if w.scales:
            base *= load_factor(t)
        return max(1, round(base))

    def _pod_specs(self, t: datetime) -> list[tuple[Workload, int, str]]:
        """(workload, replica index, pool) for every non-DaemonSet pod at time t."""
        specs = []
        for w in WORKLOADS:
            if w.kind == "DaemonSet":
                continue
            for i in range(self._replicas(w, t)):
                specs.append((w, i, w.pool))
        return specs

    # --- nodes ---

    def _node_counts(self, specs: list[tuple[Workload, int, str]]) -> dict[str, int]:
        counts = {}
        daemon_cpu = sum(w.cpu for w in WORKLOADS if w.kind == "DaemonSet")
        daemon_ram = sum(w.ram_gib for w in WORKLOADS if w.kind == "DaemonSet")
        for pool in POOLS:
            cpu = sum(w.cpu for w, _, p in specs if p == pool.name)
            ram = sum(w.ram_gib for w, _, p in specs if p == pool.name)
            gpu = sum(w.gpu for w, _, p in specs if p == pool.name)
            need = max(
                math.ceil(cpu / ((pool.cpu - daemon_cpu) * PACKING)),
                math.ceil(ram / ((pool.ram_gib - daemon_ram) * PACKING)),
                math.ceil(gpu / pool.gpus) if pool.gpus else 0,
            )
            counts[pool.name] = min(pool.max_nodes, max(pool.min_nodes, need))
        return counts

    def _node(self, pool: Pool, i: int) -> NodeSnapshot:
        name = f"ip-10-{POOLS.index(pool)}-{i // 250}-{i % 250}.ec2.internal"
        zone = "us-east-1" + "abc"[i % 3]
        instance_id = f"i-{_h(self.seed, self.name, pool.name, i):016x}"[:19]
        labels = {
            "node.kubernetes.io/instance-type": pool.instance_type,
            "topology.kubernetes.io/zone": zone,
            "topology.kubernetes.io/region": "us-east-1",
            "eks.amazonaws.com/nodegroup": pool.name,
            "eks.amazonaws.com/capacityType": "SPOT"
            if pool.capacity_type == "spot"
            else "ON_DEMAND",
            "kubernetes.io/os": "linux",
        }
        return NodeSnapshot(
            name=name,
            uid=f"{_h(self.name, name):032x}",
            provider_id=f"aws:///{zone}/{instance_id}",
            instance_type=pool.instance_type,
            region="us-east-1",
            zone=zone,
            node_pool=pool.name,
            capacity_type=pool.capacity_type,
            cpu_cores=pool.cpu,
            ram_gib=pool.ram_gib,
            gpus=pool.gpus,
            alloc_cpu_cores=pool.cpu - 0.09,
            alloc_ram_gib=pool.ram_gib * 0.93,
            alloc_gpus=pool.gpus,
            labels=labels,
            created=None,
        )

    # --- one sample ---

    def sample(self, t: datetime) -> Sample:
        """The cluster's snapshot at time t (UTC-aware)."""
        t = t.astimezone(UTC)
        specs = self._pod_specs(t)
        counts = self._node_counts(specs)
        nodes = {
            pool.name: [self._node(pool, i) for i in range(counts[pool.name])] for pool in POOLS
        }
        pods: list[PodSnapshot] = []
        usage: dict[tuple[str, str], Usage] = {}
        node_use: dict[str, list[float]] = {}
        load = load_factor(t)
        day = int(t.timestamp() // 86400)

        def add(w: Workload, i: int, node: NodeSnapshot) -> None:
            # A pod keeps its identity while its replica index and node stay the same.
            suffix = f"{_h(self.name, w.name, i, node.name) % 36**5:05x}"[:5]
            name = f"{w.name}-{i}-{suffix}" if w.kind != "DaemonSet" else f"{w.name}-{suffix}"
            if w.cron_hours:
                run = int(t.timestamp() // (w.cron_hours * 3600))
                name = f"{w.name}-{run}-{i}"
            kind, controller = w.kind, w.name
            labels = {"app": w.name}
            if w.team_label:
                labels["team"] = w.team_label
            if w.namespace == "search" and w.name == "indexer":
                labels["app.kubernetes.io/part-of"] = "search"
            pods.append(
                PodSnapshot(
                    namespace=w.namespace,
                    name=name,
                    uid=f"{_h(self.name, w.namespace, name):032x}",
                    node=node.name,
                    cpu_request=w.cpu,
                    ram_request_gib=w.ram_gib,
                    gpu_request=w.gpu,
                    cpu_limit=w.cpu * 2,
                    ram_limit_gib=w.ram_gib * 1.5,
                    controller_kind=kind,
                    controller=controller,
                    labels=labels,
                    annotations={},
                    has_local_storage=w.kind == "StatefulSet",
                    created=None,
                )
            )
            jitter = 0.75 + 0.5 * _noise(self.seed, name, int(t.timestamp() // 300))
            drift = 0.9 + 0.2 * _noise(self.seed, w.name, day)
            factor = w.usage * jitter * drift * (load if w.scales else 1.0) ** 0.5
            cpu_use = w.cpu * factor
            ram_use = min(w.ram_gib * 1.5, w.ram_gib * (0.6 + 0.4 * min(factor, 1.5)))
            if w.usage < 0.2:
                ram_use = w.ram_gib * 0.25
            usage[(w.namespace, name)] = Usage(cpu_use, ram_use)
            acc = node_use.setdefault(node.name, [0.0, 0.0])
            acc[0] += cpu_use
            acc[1] += ram_use

        for w in WORKLOADS:
            if w.kind == "DaemonSet":
                for pool_nodes in nodes.values():
                    for node in pool_nodes:
                        add(w, 0, node)
        for w, i, pool in specs:
            pool_nodes = nodes[pool]
            if pool_nodes:
                add(w, i, pool_nodes[_h(w.name, i) % len(pool_nodes)])
        namespaces = [
            NamespaceSnapshot(name=ns, labels=dict(labels), annotations=dict(ann))
            for ns, (labels, ann) in NAMESPACES.items()
        ]
        all_nodes = [n for pool_nodes in nodes.values() for n in pool_nodes]
        return Sample(
            taken_at=t,
            nodes=all_nodes,
            pods=pods,
            namespaces=namespaces,
            pod_usage=usage,
            node_usage={k: Usage(v[0] + 0.3, v[1] + 1.5) for k, v in node_use.items()},
            metrics_available=True,
            skipped=[],
            workload_replicas={},
        )
