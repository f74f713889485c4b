"""Snapshot records: what one sample of a cluster says, in plain units.

Units everywhere: CPU in cores, memory in GiB (2^30 bytes), GPUs in devices, times as UTC-aware
datetimes. The collector (``costapp.kube.client``), the simulated cluster and ingestion all
produce or consume exactly these records. They are frozen msgspec Structs: cheap to build by the
hundred thousand, immutable, and encodable with ``msgspec.json.encode``.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

__all__ = [
    "CAPACITY_TYPES",
    "NamespaceSnapshot",
    "NodeSnapshot",
    "PodSnapshot",
    "Sample",
    "Skipped",
    "Usage",
]

#: The normalised capacity types a node can have (ALLOCATION_SPEC.md §1).
CAPACITY_TYPES = ("on-demand", "spot", "reserved", "unknown")


class NodeSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One node as seen in one sample.

    name: the node's name (unique in the cluster at a time).
    uid: metadata.uid; changes when a node with the same name is re-created.
    provider_id: spec.providerID (``aws:///us-east-1a/i-0…``, ``gce://project/zone/name``), the key
        that matches the node to its line on the cloud bill; "" when absent.
    instance_type: from ``node.kubernetes.io/instance-type`` (or the beta label); "" when absent.
    region, zone: from ``topology.kubernetes.io/region|zone`` (or the failure-domain beta labels).
    node_pool: EKS node group, GKE node pool, AKS agent pool, Karpenter node pool, ACK node pool
        id; "" when the node carries none of those labels.
    capacity_type: ``on-demand``, ``spot``, ``reserved`` or ``unknown`` (normalised from the
        provider's labels).
    cpu_cores, ram_gib, gpus: status.capacity — cores, GiB, devices (what the node costs for).
    alloc_cpu_cores, alloc_ram_gib, alloc_gpus: status.allocatable in the same units (capacity
        minus what the kubelet reserves for the system).
    labels: metadata.labels.
    created: metadata.creationTimestamp (UTC), None when absent.
    """

    name: str
    uid: str
    provider_id: str
    instance_type: str
    region: str
    zone: str
    node_pool: str
    capacity_type: str
    cpu_cores: float
    ram_gib: float
    gpus: float
    alloc_cpu_cores: float
    alloc_ram_gib: float
    alloc_gpus: float
    labels: dict[str, str]
    created: datetime | None


class PodSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One pod bound to a node and not finished, as seen in one sample.

    namespace, name, uid: the pod's identity (uid changes when a pod is re-created).
    node: spec.nodeName.
    cpu_request, ram_request_gib, gpu_request: the pod's effective request as the scheduler
        counts it — max(app containers + sidecars, each init container + the sidecars started
        before it) + spec.overhead — in cores, GiB, devices (GPUs: ``nvidia.com/gpu`` or
        ``amd.com/gpu``, from requests or, where requests omit them, limits).
    cpu_limit, ram_limit_gib: the effective limit computed the same way; None when any container
        in the pod has no limit for that resource (the pod is unbounded).
    controller_kind, controller: the workload that owns the pod after resolving
        ReplicaSet → Deployment and Job → CronJob (``Deployment``/``web``,
        ``StatefulSet``/``db``, ``CronJob``/``nightly``, …); both "" for a bare pod.
    labels, annotations: metadata.labels and metadata.annotations, without
        ``kubectl.kubernetes.io/last-applied-configuration`` (a full copy of the manifest).
    has_local_storage: the pod mounts an emptyDir (not in memory) or hostPath volume, so
        evicting it loses data (what the cluster autoscaler checks before draining a node).
    created: metadata.creationTimestamp (UTC), None when absent.
    """

    namespace: str
    name: str
    uid: str
    node: str
    cpu_request: float
    ram_request_gib: float
    gpu_request: float
    cpu_limit: float | None
    ram_limit_gib: float | None
    controller_kind: str
    controller: str
    labels: dict[str, str]
    annotations: dict[str, str]
    has_local_storage: bool
    created: datetime | None


class NamespaceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One namespace: name, metadata.labels and metadata.annotations (for team mapping)."""

    name: str
    labels: dict[str, str]
    annotations: dict[str, str]


class Usage(msgspec.Struct, frozen=True):
    """Measured usage from metrics.k8s.io over its window (about 30 s).

    cpu_cores: CPU in cores (a rate). ram_gib: working-set memory in GiB.
    """

    cpu_cores: float
    ram_gib: float


class Skipped(msgspec.Struct, frozen=True):
    """An object left out of a sample because it was malformed.

    kind: the API kind (``Pod``, ``Node``, ``PodMetrics``…); name: ``namespace/name`` or name
    when known, else "?"; reason: what was wrong, for the operator.
    """

    kind: str
    name: str
    reason: str


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """One all-or-nothing snapshot of a cluster.

    taken_at: when the sample started (UTC-aware).
    nodes, pods, namespaces: every node, every pod bound to a node and not finished, every
        namespace.
    pod_usage: metrics.k8s.io usage per pod, keyed by (namespace, pod name), summed over its
        containers; only pods that are in ``pods``. Empty when metrics are unavailable.
    node_usage: metrics.k8s.io usage per node name; only nodes in ``nodes``.
    metrics_available: False when the metrics API is not installed or not serving; usage is
        then absent, never invented.
    skipped: malformed objects left out (the rest of the sample is still whole).
    workload_replicas: desired replicas per (namespace, "Deployment", name), the sum of
        spec.replicas over the Deployment's ReplicaSets (equal to the Deployment's own
        spec.replicas except in the middle of a rollout).
    """

    taken_at: datetime
    nodes: list[NodeSnapshot]
    pods: list[PodSnapshot]
    namespaces: list[NamespaceSnapshot]
    pod_usage: dict[tuple[str, str], Usage]
    node_usage: dict[str, Usage]
    metrics_available: bool
    skipped: list[Skipped]
    workload_replicas: dict[tuple[str, str, str], int]
