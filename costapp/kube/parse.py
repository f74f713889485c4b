"""Wire JSON of Kubernetes list pages → snapshot records.

Each list page is decoded by msgspec straight into small Structs that name only the fields we
use; everything else in the page (managedFields, status.conditions, env, volumes' details, node
images…) is skipped by the decoder without building Python objects. That keeps one page of 500
pods to a few megabytes of transient memory and decoding several times faster than
``json.loads``.

A malformed object never fails its page: when the typed decode of a page fails, the page is
decoded again item by item, and the items that do not fit are reported as ``Skipped``.
Converting an object to a record (quantities, owners) is guarded the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec

from costapp.kube.quantity import QuantityError, parse_quantity
from costapp.kube.records import NamespaceSnapshot, NodeSnapshot, PodSnapshot, Skipped, Usage

__all__ = [
    "GIB",
    "GPU_RESOURCES",
    "OwnerIndex",
    "Page",
    "capacity_type",
    "CONVERT_ERRORS",
    "convert_all",
    "decode_page",
    "namespace_snapshot",
    "node_pool",
    "node_snapshot",
    "node_usage",
    "pod_snapshot",
    "pod_usage",
]

GIB = float(1 << 30)
#: Extended resources counted as GPU devices.
GPU_RESOURCES = ("nvidia.com/gpu", "amd.com/gpu", "alibabacloud.com/gpu-count")
#: An annotation that holds a full copy of the manifest; never worth keeping per pod.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

# --------------------------------------------------------------------------------------------
# Wire structs: only the fields we read. Unknown fields are skipped by the decoder.


class _Wire(msgspec.Struct, rename="camel", frozen=True):
    pass


class _ListMeta(_Wire, frozen=True):
    resource_version: str = ""
    cont: str = msgspec.field(default="", name="continue")
    remaining_item_count: int | None = None


class _Owner(_Wire, frozen=True):
    kind: str
    name: str
    controller: bool = False


class _NodeMeta(_Wire, frozen=True):
    name: str
    uid: str = ""
    labels: dict[str, str] = {}
    creation_timestamp: datetime | None = None


class _NodeSpec(_Wire, frozen=True):
    provider_id: str = msgspec.field(default="", name="providerID")


class _NodeStatus(_Wire, frozen=True):
    capacity: dict[str, str] = {}
    allocatable: dict[str, str] = {}


class _Node(_Wire, frozen=True):
    metadata: _NodeMeta
    spec: _NodeSpec = _NodeSpec()
    status: _NodeStatus = _NodeStatus()


class _PodMeta(_Wire, frozen=True):
    name: str
    namespace: str
    uid: str = ""
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    owner_references: list[_Owner] = []
    creation_timestamp: datetime | None = None


class _Resources(_Wire, frozen=True):
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}


_NO_RESOURCES = _Resources()


class _Container(_Wire, frozen=True):
    # Kept raw: identical resource blocks repeat across a workload's pods, so their parsed
    # amounts are cached by the raw bytes (see _container_amounts).
    resources: msgspec.Raw = msgspec.Raw(b"{}")
    restart_policy: str = ""


class _EmptyDir(_Wire, frozen=True):
    medium: str = ""


class _Present(_Wire, frozen=True):
    """A field whose presence is all we need; its content is skipped."""


class _Volume(_Wire, frozen=True):
    empty_dir: _EmptyDir | None = None
    host_path: _Present | None = None


class _PodSpec(_Wire, frozen=True):
    node_name: str = ""
    containers: list[_Container] = []
    init_containers: list[_Container] = []
    overhead: dict[str, str] = {}
    volumes: list[_Volume] = []


class _PodStatus(_Wire, frozen=True):
    phase: str = ""


class _Pod(_Wire, frozen=True):
    metadata: _PodMeta
    spec: _PodSpec = _PodSpec()
    status: _PodStatus = _PodStatus()


class _NamespaceMeta(_Wire, frozen=True):
    name: str
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class _Namespace(_Wire, frozen=True):
    metadata: _NamespaceMeta


class _OwnedMeta(_Wire, frozen=True):
    name: str
    namespace: str
    owner_references: list[_Owner] = []


class _ReplicaSetSpec(_Wire, frozen=True):
    replicas: int = 1


class _ReplicaSet(_Wire, frozen=True):
    metadata: _OwnedMeta
    spec: _ReplicaSetSpec = _ReplicaSetSpec()


class _Job(_Wire, frozen=True):
    metadata: _OwnedMeta


class _MetricsMeta(_Wire, frozen=True):
    name: str
    namespace: str = ""


class _ContainerMetrics(_Wire, frozen=True):
    usage: dict[str, str] = {}


class _PodMetrics(_Wire, frozen=True):
    metadata: _MetricsMeta
    containers: list[_ContainerMetrics] = []


class _NodeMetrics(_Wire, frozen=True):
    metadata: _MetricsMeta
    usage: dict[str, str] = {}


class _LooseMeta(_Wire, frozen=True):
    name: object = None
    namespace: object = None


class _Loose(_Wire, frozen=True):
    metadata: _LooseMeta = _LooseMeta()


T = TypeVar("T")


class Page(msgspec.Struct, Generic[T]):
    """One decoded list page: its items, the continue token ("" on the last page), the list's
    resourceVersion, and the items that could not be decoded."""

    items: list[T]
    cont: str
    resource_version: str
    skipped: list[Skipped]


class _List(msgspec.Struct, Generic[T]):
    metadata: _ListMeta = _ListMeta()
    items: list[T] | None = None


_KINDS: dict[str, type] = {
    "Node": _Node,
    "Pod": _Pod,
    "Namespace": _Namespace,
    "ReplicaSet": _ReplicaSet,
    "Job": _Job,
    "PodMetrics": _PodMetrics,
    "NodeMetrics": _NodeMetrics,
}
_PAGE_DECODERS = {k: msgspec.json.Decoder(_List[t]) for k, t in _KINDS.items()}  # type: ignore[valid-type]
_ITEM_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    k: msgspec.json.Decoder(t) for k, t in _KINDS.items()
}
_RAW_DECODER = msgspec.json.Decoder(_List[msgspec.Raw])
_LOOSE_DECODER = msgspec.json.Decoder(_Loose)


class PageError(ValueError):
    """A page that is not a Kubernetes list at all (not JSON, no items array)."""


def decode_page(kind: str, data: bytes) -> Page[Any]:
    """Decode one list page of ``kind`` (``Pod``, ``Node``, …) from its wire bytes.

    Raises PageError when the page itself is broken; a broken item only lands in ``skipped``.
    """
    try:
        lst = _PAGE_DECODERS[kind].decode(data)
        skipped: list[Skipped] = []
        items = lst.items or []
    except msgspec.DecodeError:
        try:
            raw = _RAW_DECODER.decode(data)
        except msgspec.DecodeError as exc:
            raise PageError(f"{kind} list page is not a Kubernetes list: {exc}") from exc
        lst = raw
        items, skipped = [], []
        item_decoder = _ITEM_DECODERS[kind]
        for chunk in raw.items or []:
            try:
                items.append(item_decoder.decode(chunk))
            except msgspec.DecodeError as exc:
                skipped.append(Skipped(kind, _loose_name(chunk), f"malformed: {exc}"))
    meta = lst.metadata
    return Page(items, meta.cont, meta.resource_version, skipped)


def _loose_name(chunk: bytes | msgspec.Raw) -> str:
    try:
        meta = _LOOSE_DECODER.decode(chunk).metadata
    except msgspec.DecodeError:
        return "?"
    name = meta.name if isinstance(meta.name, str) else "?"
    return f"{meta.namespace}/{name}" if isinstance(meta.namespace, str) else name


#: What converting one decoded object may raise when a value in it is malformed.
CONVERT_ERRORS = (QuantityError, msgspec.DecodeError, ValueError, TypeError, KeyError)


def object_name(item: Any) -> str:
    """``namespace/name`` (or name) of a decoded object, for Skipped."""
    meta = item.metadata
    namespace = getattr(meta, "namespace", "")
    return f"{namespace}/{meta.name}" if namespace else str(meta.name)


def convert_all(
    kind: str, items: list[Any], convert: Callable[[Any], T | None], skipped: list[Skipped]
) -> list[T]:
    """Convert decoded objects; one with a bad value is skipped (reported), never fatal.

    ``convert`` may return None to leave an object out silently (e.g. a finished pod).
    """
    out: list[T] = []
    append = out.append
    for item in items:
        try:
            record = convert(item)
        except CONVERT_ERRORS as exc:
            skipped.append(Skipped(kind, object_name(item), f"malformed: {exc}"))
            continue
        if record is not None:
            append(record)
    return out


# --------------------------------------------------------------------------------------------
# Nodes

_INSTANCE_TYPE_LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")
_ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
_REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
_NODE_POOL_LABELS = (
    "eks.amazonaws.com/nodegroup",
    "cloud.google.com/gke-nodepool",
    "kubernetes.azure.com/agentpool",
    "agentpool",
    "karpenter.sh/nodepool",
    "karpenter.sh/provisioner-name",
    "alibabacloud.com/nodepool-id",
)
_CAPACITY_VALUES = {
    "spot": "spot",
    "ec2spot": "spot",
    "preemptible": "spot",
    "on-demand": "on-demand",
    "on_demand": "on-demand",
    "ondemand": "on-demand",
    "normal": "on-demand",
    "regular": "on-demand",
    "reserved": "reserved",
    "capacity_block": "reserved",
    "capacity-block": "reserved",
}
# Labels whose value names the capacity type, in order of trust.
_CAPACITY_LABELS = (
    "karpenter.sh/capacity-type",  # spot / on-demand / reserved
    "eks.amazonaws.com/capacityType",  # ON_DEMAND / SPOT / CAPACITY_BLOCK
    "node.kubernetes.io/lifecycle",  # spot / normal (kops, eksctl)
    "node-lifecycle",
    "lifecycle",
)
# Labels that mean "spot" when "true".
_SPOT_FLAGS = (
    "cloud.google.com/gke-spot",
    "cloud.google.com/gke-preemptible",
    "node.alibabacloud.com/spot-instance",
)


def _first(labels: dict[str, str], keys: tuple[str, ...]) -> str:
    for key in keys:
        value = labels.get(key)
        if value:
            return value
    return ""


def node_pool(labels: dict[str, str]) -> str:
    """The node pool a node belongs to (EKS, GKE, AKS, Karpenter, ACK labels), or ""."""
    return _first(labels, _NODE_POOL_LABELS)


def capacity_type(labels: dict[str, str]) -> str:
    """Normalise the provider's capacity labels to on-demand, spot, reserved or unknown.

    1. A label that names the type (Karpenter, EKS, lifecycle labels) wins.
    2. A spot flag set to "true" (GKE spot/preemptible, ACK) means spot.
    3. AKS marks spot pools ``kubernetes.azure.com/scalesetpriority=spot``; a GKE or AKS node
       without a spot mark is on-demand (those providers only label the exception).
    4. Otherwise unknown: never guess a price class.
    """
    for key in _CAPACITY_LABELS:
        value = labels.get(key)
        if value:
            normal = _CAPACITY_VALUES.get(value.lower())
            if normal:
                return normal
    for key in _SPOT_FLAGS:
        if labels.get(key, "").lower() == "true":
            return "spot"
    priority = labels.get("kubernetes.azure.com/scalesetpriority", "").lower()
    if priority == "spot":
        return "spot"
    if priority == "regular":
        return "on-demand"
    if "cloud.google.com/gke-nodepool" in labels or "kubernetes.azure.com/agentpool" in labels:
        return "on-demand"
    return "unknown"


def _gpus(resources: dict[str, str]) -> float:
    total = 0.0
    for key in GPU_RESOURCES:
        value = resources.get(key)
        if value is not None:
            total += parse_quantity(value)
    return total


def node_snapshot(node: _Node) -> NodeSnapshot:
    """Convert a decoded Node. Raises QuantityError on a malformed quantity."""
    meta, cap, alloc = node.metadata, node.status.capacity, node.status.allocatable
    labels = meta.labels
    return NodeSnapshot(
        name=meta.name,
        uid=meta.uid,
        provider_id=node.spec.provider_id,
        instance_type=_first(labels, _INSTANCE_TYPE_LABELS),
        region=_first(labels, _REGION_LABELS),
        zone=_first(labels, _ZONE_LABELS),
        node_pool=node_pool(labels),
        capacity_type=capacity_type(labels),
        cpu_cores=parse_quantity(cap.get("cpu", "0")),
        ram_gib=parse_quantity(cap.get("memory", "0")) / GIB,
        gpus=_gpus(cap),
        alloc_cpu_cores=parse_quantity(alloc.get("cpu", "0")),
        alloc_ram_gib=parse_quantity(alloc.get("memory", "0")) / GIB,
        alloc_gpus=_gpus(alloc),
        labels=labels,
        created=meta.creation_timestamp,
    )


def namespace_snapshot(ns: _Namespace) -> NamespaceSnapshot:
    """Convert a decoded Namespace."""
    meta = ns.metadata
    return NamespaceSnapshot(name=meta.name, labels=meta.labels, annotations=meta.annotations)


# --------------------------------------------------------------------------------------------
# Owners


def _controller_ref(refs: list[_Owner]) -> _Owner | None:
    for ref in refs:
        if ref.controller:
            return ref
    return refs[0] if refs else None


class OwnerIndex:
    """Resolves a pod's owner to its workload: ReplicaSet → Deployment, Job → CronJob.

    Filled from the ReplicaSet and Job lists before pods are read; also sums the desired
    replicas of each Deployment over its ReplicaSets.
    """

    def __init__(self) -> None:
        self.replicasets: dict[tuple[str, str], tuple[str, str]] = {}
        self.jobs: dict[tuple[str, str], tuple[str, str]] = {}
        self.workload_replicas: dict[tuple[str, str, str], int] = {}

    def add_replicaset(self, rs: _ReplicaSet) -> None:
        meta = rs.metadata
        ref = _controller_ref(meta.owner_references)
        owner = (ref.kind, ref.name) if ref else ("ReplicaSet", meta.name)
        self.replicasets[(meta.namespace, meta.name)] = owner
        if ref and ref.kind == "Deployment":
            key = (meta.namespace, "Deployment", ref.name)
            self.workload_replicas[key] = self.workload_replicas.get(key, 0) + rs.spec.replicas

    def add_job(self, job: _Job) -> None:
        meta = job.metadata
        ref = _controller_ref(meta.owner_references)
        self.jobs[(meta.namespace, meta.name)] = (ref.kind, ref.name) if ref else ("Job", meta.name)

    def resolve(
        self, namespace: str, refs: list[_Owner], labels: dict[str, str]
    ) -> tuple[str, str]:
        """(controller_kind, controller) of a pod; ("", "") for a bare pod.

        A ReplicaSet missing from the list (deleted between the two reads) still resolves to
        its Deployment when its name is the Deployment's plus the pod's ``pod-template-hash``.
        """
        ref = _controller_ref(refs)
        if ref is None:
            return "", ""
        if ref.kind == "ReplicaSet":
            owner = self.replicasets.get((namespace, ref.name))
            if owner is not None:
                return owner
            suffix = "-" + labels.get("pod-template-hash", "")
            if len(suffix) > 1 and ref.name.endswith(suffix):
                return "Deployment", ref.name[: -len(suffix)]
            return "ReplicaSet", ref.name
        if ref.kind == "Job":
            return self.jobs.get((namespace, ref.name), ("Job", ref.name))
        return ref.kind, ref.name


# --------------------------------------------------------------------------------------------
# Pods

_FINISHED = frozenset(("Succeeded", "Failed"))
_INF = float("inf")
_NOTHING = (0.0, 0.0, 0.0, _INF, _INF)


def _amounts(res: _Resources) -> tuple[float, float, float, float, float]:
    """(cpu req, memory req bytes, gpu req, cpu limit, memory limit bytes) of one container.

    A request that is absent but has a limit takes the limit (as API defaulting does); an
    absent limit is +inf (unbounded).
    """
    req, lim = res.requests, res.limits
    if not req and not lim:
        return _NOTHING
    cpu_l = lim.get("cpu")
    mem_l = lim.get("memory")
    cpu_r = req.get("cpu", cpu_l)
    mem_r = req.get("memory", mem_l)
    gpu = 0.0
    if req or lim:
        for key in GPU_RESOURCES:
            value = req.get(key) or lim.get(key)
            if value is not None:
                gpu += parse_quantity(value)
    return (
        parse_quantity(cpu_r) if cpu_r is not None else 0.0,
        parse_quantity(mem_r) if mem_r is not None else 0.0,
        gpu,
        parse_quantity(cpu_l) if cpu_l is not None else _INF,
        parse_quantity(mem_l) if mem_l is not None else _INF,
    )


_RESOURCES_DECODER = msgspec.json.Decoder(_Resources)
_amounts_cache: dict[bytes, tuple[float, float, float, float, float]] = {}
_AMOUNTS_CACHE_LIMIT = 100_000


def _container_amounts(raw: msgspec.Raw) -> tuple[float, float, float, float, float]:
    """_amounts of a container's raw ``resources`` block, cached by its bytes."""
    key = bytes(raw)
    hit = _amounts_cache.get(key)
    if hit is not None:
        return hit
    value = _amounts(_RESOURCES_DECODER.decode(key))
    if len(_amounts_cache) >= _AMOUNTS_CACHE_LIMIT:
        _amounts_cache.clear()
    _amounts_cache[key] = value
    return value


def pod_resources(spec: _PodSpec) -> tuple[float, float, float, float, float]:
    """The pod's effective (cpu, memory bytes, gpu) requests and (cpu, memory bytes) limits.

    As the scheduler counts them (k8s.io/component-helpers resource.PodRequests):
    1. Sum the app containers.
    2. Walk init containers in order. A sidecar (``restartPolicy: Always``) joins the app sum and
       the running sidecar sum; a regular init container needs its own amount plus the sidecars
       started before it.
    3. Take the max of the app sum and the largest init-time need, then add spec.overhead.
    Limits the same way; a limit is +inf when any app container or sidecar has none.
    """
    cpu = mem = gpu = cpu_lim = mem_lim = 0.0
    for c in spec.containers:
        a, b, g, cl, ml = _container_amounts(c.resources)
        cpu += a
        mem += b
        gpu += g
        cpu_lim += cl
        mem_lim += ml
    if not spec.init_containers and not spec.overhead:
        return cpu, mem, gpu, cpu_lim, mem_lim
    total = [cpu, mem, gpu, cpu_lim, mem_lim]
    if spec.init_containers:
        sidecars = [0.0, 0.0, 0.0, 0.0, 0.0]
        init_peak = [0.0, 0.0, 0.0, 0.0, 0.0]
        for c in spec.init_containers:
            amounts = _container_amounts(c.resources)
            if c.restart_policy == "Always":
                for i in range(5):
                    total[i] += amounts[i]
                    sidecars[i] += amounts[i]
                    init_peak[i] = max(init_peak[i], sidecars[i])
            else:
                for i in range(5):
                    # A regular init container without a limit does not make the pod unbounded
                    # once it has finished; count it as 0 for the limit.
                    amount = amounts[i] if amounts[i] != _INF else 0.0
                    init_peak[i] = max(init_peak[i], amount + sidecars[i])
        for i in range(5):
            total[i] = max(total[i], init_peak[i])
    if spec.overhead:
        o = _amounts(_Resources(requests=spec.overhead, limits=spec.overhead))
        for i in range(5):
            total[i] += o[i]
    return total[0], total[1], total[2], total[3], total[4]


def _has_local_storage(volumes: list[_Volume]) -> bool:
    for v in volumes:
        if v.host_path is not None:
            return True
        if v.empty_dir is not None and v.empty_dir.medium != "Memory":
            return True
    return False


def pod_snapshot(pod: _Pod, owners: OwnerIndex) -> PodSnapshot | None:
    """Convert a decoded Pod; None for a pod not bound to a node or already finished."""
    spec, meta = pod.spec, pod.metadata
    if not spec.node_name or pod.status.phase in _FINISHED:
        return None
    cpu, mem, gpu, cpu_lim, mem_lim = pod_resources(spec)
    kind, name = owners.resolve(meta.namespace, meta.owner_references, meta.labels)
    annotations = meta.annotations
    if LAST_APPLIED in annotations:
        annotations = {k: v for k, v in annotations.items() if k != LAST_APPLIED}
    return PodSnapshot(
        namespace=meta.namespace,
        name=meta.name,
        uid=meta.uid,
        node=spec.node_name,
        cpu_request=cpu,
        ram_request_gib=mem / GIB,
        gpu_request=gpu,
        cpu_limit=cpu_lim if cpu_lim != _INF else None,
        ram_limit_gib=mem_lim / GIB if mem_lim != _INF else None,
        controller_kind=kind,
        controller=name,
        labels=meta.labels,
        annotations=annotations,
        has_local_storage=_has_local_storage(spec.volumes),
        created=meta.creation_timestamp,
    )


# --------------------------------------------------------------------------------------------
# Metrics


def pod_usage(pm: _PodMetrics) -> tuple[tuple[str, str], Usage]:
    """((namespace, name), usage summed over containers) of one PodMetrics.

    metrics-server writes CPU as ``<int>n`` and memory as ``<int>Ki``; those are summed as exact
    integers (nanocores, KiB) on a fast path, anything else goes through parse_quantity.
    """
    nanos = kib = 0
    cpu = mem = 0.0
    for c in pm.containers:
        u = c.usage
        v = u.get("cpu")
        if v is not None:
            if v[-1:] == "n" and v.isascii() and v[:-1].isdigit():
                nanos += int(v[:-1])
            else:
                cpu += parse_quantity(v)
        v = u.get("memory")
        if v is not None:
            if v[-2:] == "Ki" and v.isascii() and v[:-2].isdigit():
                kib += int(v[:-2])
            else:
                mem += parse_quantity(v)
    return (pm.metadata.namespace, pm.metadata.name), Usage(
        cpu + nanos / 1_000_000_000, (mem + kib * 1024) / GIB
    )


def node_usage(nm: _NodeMetrics) -> tuple[str, Usage]:
    """(node name, usage) of one NodeMetrics."""
    u = nm.usage
    return nm.metadata.name, Usage(
        parse_quantity(u.get("cpu", "0")), parse_quantity(u.get("memory", "0")) / GIB
    )
