"""The core data model: clusters, what was observed in them hour by hour, and the allocation lines.

Units follow ALLOCATION_SPEC.md: CPU in cores, memory in GiB, GPUs in devices, time in seconds
for accumulated observations (hours = seconds / 3600), money in the cluster's billing currency,
stored as Decimal. Hourly rows hold *sums weighted by observed seconds* (e.g. `cpu_request_sum`
is Σ request × seconds) so that folding one more sample is an addition and the time-average is
`sum / seconds`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

MONEY = {"max_digits": 20, "decimal_places": 8}

UNALLOCATED = "__unallocated__"
IDLE = "__idle__"
SHARED = "__shared__"


class CapacityType(models.TextChoices):
    ON_DEMAND = "on-demand"
    SPOT = "spot"
    RESERVED = "reserved"
    UNKNOWN = "unknown"


class PriceSource(models.TextChoices):
    BILL = "bill", "cloud bill"
    CATALOG = "catalog", "price catalog"
    CUSTOM = "custom", "custom prices"
    DEFAULT = "default", "OpenCost default prices"
    NONE = "none", "not priced"


class Cluster(models.Model):
    """A Kubernetes cluster costapp measures, with the health of its collector."""

    class Health(models.TextChoices):
        UNKNOWN = "unknown"
        OK = "ok"
        FAILING = "failing"

    name = models.SlugField(max_length=100, unique=True)
    provider = models.CharField(max_length=20, blank=True, help_text="aws, gcp, azure, alibaba")
    region = models.CharField(max_length=50, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    # How to reach it: an encrypted kubeconfig (never shown back), in-cluster config, or simulated.
    kubeconfig_encrypted = models.TextField(blank=True, editable=False)
    kube_context = models.CharField(max_length=200, blank=True)
    in_cluster = models.BooleanField(default=False)
    simulated = models.BooleanField(default=False)
    sampling_enabled = models.BooleanField(default=True)
    # Collector status, shown on the cluster page and in the API.
    health = models.CharField(max_length=10, choices=Health.choices, default=Health.UNKNOWN)
    last_sample_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    node_count = models.PositiveIntegerField(default=0)
    pod_count = models.PositiveIntegerField(default=0)
    usage_available = models.BooleanField(default=True, help_text="metrics.k8s.io answered")
    skipped_objects = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Node(models.Model):
    """A node as last seen; its hourly rows carry the capacity and cost of each hour."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    provider_id = models.CharField(max_length=300, blank=True, db_index=True)
    instance_type = models.CharField(max_length=100, blank=True)
    region = models.CharField(max_length=50, blank=True)
    zone = models.CharField(max_length=50, blank=True)
    node_pool = models.CharField(max_length=200, blank=True)
    capacity_type = models.CharField(
        max_length=10, choices=CapacityType.choices, default=CapacityType.UNKNOWN
    )
    labels = models.JSONField(default=dict, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="node_unique_per_cluster")
        ]

    def __str__(self) -> str:
        return self.name


class NodeHour(models.Model):
    """One node in one UTC clock hour: observed seconds, capacity, and the cost of those seconds.

    `cost` is the money this node cost during its observed seconds, from `price_source`.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="hours")
    hour_start = models.DateTimeField()
    seconds = models.FloatField(help_text="observed seconds in this hour, 0 < s <= 3600")
    cpu_cores = models.FloatField()
    ram_gib = models.FloatField()
    gpus = models.FloatField(default=0)
    # Denormalised from Node so the engine reads one table.
    instance_type = models.CharField(max_length=100, blank=True)
    zone = models.CharField(max_length=50, blank=True)
    node_pool = models.CharField(max_length=200, blank=True)
    capacity_type = models.CharField(max_length=10, default=CapacityType.UNKNOWN)
    cpu_usage_sum = models.FloatField(default=0, help_text="Σ node CPU usage cores × seconds")
    ram_usage_sum = models.FloatField(default=0, help_text="Σ node RAM usage GiB × seconds")
    cost = models.DecimalField(**MONEY, default=0, db_default=0)
    price_source = models.CharField(
        max_length=10, choices=PriceSource.choices, default=PriceSource.NONE,
        db_default=PriceSource.NONE,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "hour_start"], name="nodehour_unique")
        ]
        indexes = [models.Index(fields=["cluster", "hour_start"])]

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0


class Namespace(models.Model):
    """A namespace with the labels and annotations ownership rules read."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="namespaces")
    name = models.CharField(max_length=253)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="namespace_unique")
        ]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.name}"


class Pod(models.Model):
    """A pod's identity and its resolved owner (Deployment, CronJob, StatefulSet, ...)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="pods")
    namespace = models.CharField(max_length=253)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64)
    controller_kind = models.CharField(max_length=63, blank=True)
    controller = models.CharField(max_length=253, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    has_local_storage = models.BooleanField(default=False)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "uid"], name="pod_unique")]
        indexes = [models.Index(fields=["cluster", "namespace"])]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class PodHour(models.Model):
    """One pod on one node in one UTC clock hour, as sums weighted by observed seconds.

    `*_alloc_sum` is Σ max(request, usage) taken sample by sample (what OpenCost charges).
    Usage sums cover only `usage_seconds`: seconds in which metrics.k8s.io answered. When the
    metrics API is missing, usage is not invented: usage_seconds stays 0 and the UI says so.
    """

    # The seconds-weighted sums, in the order ingestion adds them and allocation reads them.
    SUMS = ("seconds", "usage_seconds", "cpu_request_sum", "cpu_usage_sum", "cpu_alloc_sum",
            "ram_request_sum", "ram_usage_sum", "ram_alloc_sum", "gpu_request_sum")

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    pod = models.ForeignKey(Pod, on_delete=models.CASCADE, related_name="hours")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    hour_start = models.DateTimeField()
    seconds = models.FloatField()
    usage_seconds = models.FloatField(default=0)
    cpu_request_sum = models.FloatField(default=0)
    cpu_usage_sum = models.FloatField(default=0)
    cpu_alloc_sum = models.FloatField(default=0)
    ram_request_sum = models.FloatField(default=0)
    ram_usage_sum = models.FloatField(default=0)
    ram_alloc_sum = models.FloatField(default=0)
    gpu_request_sum = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pod", "node", "hour_start"], name="podhour_unique")
        ]
        indexes = [models.Index(fields=["cluster", "hour_start"])]


class ClusterHour(models.Model):
    """Collector coverage of one cluster-hour: how many seconds samples stood for.

    A gap (collector down) shows up here as covered_seconds < 3600, never filled in silently.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="coverage")
    hour_start = models.DateTimeField()
    covered_seconds = models.FloatField(default=0)
    samples = models.PositiveIntegerField(default=0)
    usage_seconds = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "hour_start"], name="clusterhour_unique")
        ]


class CostCentre(models.Model):
    """Finance's own code that teams roll up to on the chargeback statement."""

    code = models.CharField(max_length=50, unique=True)
    name = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.code


class Team(models.Model):
    """An owner of cost. Members see only their teams' lines."""

    name = models.SlugField(max_length=100, unique=True)
    display_name = models.CharField(max_length=200, blank=True)
    cost_centre = models.ForeignKey(
        CostCentre, null=True, blank=True, on_delete=models.SET_NULL, related_name="teams"
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="teams")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class NamespaceTeam(models.Model):
    """An explicit namespace → team mapping (a cluster of None means every cluster)."""

    cluster = models.ForeignKey(Cluster, null=True, blank=True, on_delete=models.CASCADE)
    namespace = models.CharField(max_length=253)
    team = models.ForeignKey(Team, on_delete=models.CASCADE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "namespace"], name="namespace_team_unique")
        ]


class Overhead(models.Model):
    """A fixed hourly cost of a cluster (control-plane fee, NAT, load balancers).

    It accrues in every hour in which the cluster has node-hours, between `start` and `end`.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="overheads")
    name = models.CharField(max_length=200)
    hourly = models.DecimalField(**MONEY)
    start = models.DateTimeField(null=True, blank=True)
    end = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=20, default="manual")

    def __str__(self) -> str:
        return f"{self.cluster}: {self.name}"


class AllocationPolicy(models.Model):
    """The allocation method (one row). Changing basis or weights recomputes stored days.

    Idle policy, shared namespaces and split are chosen at query time; these are the defaults.
    """

    basis = models.CharField(max_length=10, default="max")
    weights = models.CharField(max_length=20, default="opencost")
    idle = models.CharField(max_length=20, default="separate")
    shared_namespaces = models.JSONField(default=list, blank=True)
    shared_split = models.CharField(max_length=10, default="weighted")
    label_keys = models.JSONField(
        default=list, blank=True, help_text="pod label keys kept on lines for label:<key> queries"
    )

    @classmethod
    def current(cls) -> AllocationPolicy:
        policy, _ = cls.objects.get_or_create(pk=1)
        return policy

    @property
    def method(self) -> str:
        """Words for the chargeback statement's `allocation method` column."""
        return f"{self.basis}/{self.weights}"


class AllocationLine(models.Model):
    """One stored answer line: day × cluster × namespace × workload × team × node pool.

    Workload lines carry their own cost and, separately, the idle they would take under each
    sharing policy (`idle_by_node`, `idle_by_cluster`), so the idle policy is a choice of column
    at query time. Idle lines (kind=idle) exist once per idle policy (`idle_policy`) holding the
    idle that stays `__idle__` under it, in cpu_cost/ram_cost/gpu_cost. Overhead lines hold a
    cluster's fixed costs of the day in `overhead_cost`; they join the shared pool at query time.
    """

    class Kind(models.TextChoices):
        WORKLOAD = "workload"
        IDLE = "idle"
        OVERHEAD = "overhead"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    idle_policy = models.CharField(max_length=20, blank=True)
    namespace = models.CharField(max_length=253)
    controller_kind = models.CharField(max_length=63)
    controller = models.CharField(max_length=253)
    team = models.CharField(max_length=100)
    node_pool = models.CharField(max_length=200)
    capacity_type = models.CharField(max_length=10)
    labels = models.JSONField(default=dict, blank=True)
    cpu_core_hours = models.FloatField(default=0)
    ram_gib_hours = models.FloatField(default=0)
    gpu_hours = models.FloatField(default=0)
    cpu_usage_core_hours = models.FloatField(default=0)
    cpu_request_core_hours = models.FloatField(default=0)
    ram_usage_gib_hours = models.FloatField(default=0)
    ram_request_gib_hours = models.FloatField(default=0)
    cpu_cost = models.DecimalField(**MONEY, default=0)
    ram_cost = models.DecimalField(**MONEY, default=0)
    gpu_cost = models.DecimalField(**MONEY, default=0)
    idle_by_node = models.DecimalField(**MONEY, default=0)
    idle_by_cluster = models.DecimalField(**MONEY, default=0)
    overhead_cost = models.DecimalField(**MONEY, default=0)

    class Meta:
        indexes = [
            models.Index(fields=["day", "cluster"]),
            models.Index(fields=["team", "day"]),
            models.Index(fields=["cluster", "namespace", "day"]),
            # Queries read the few idle and overhead lines of a window apart from the many
            # workload lines (costapp.queries): without this they scan the whole window.
            models.Index(fields=["cluster", "kind", "day"], name="allocline_cluster_kind_day"),
        ]


class ClusterDay(models.Model):
    """The allocation state of one cluster-day: the unit of work a task allocates.

    `dirty` marks a day whose inputs changed (a bill landed, a rule changed) and must be re-run.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    allocated_at = models.DateTimeField(null=True, blank=True)
    dirty = models.BooleanField(default=True)
    node_cost = models.DecimalField(**MONEY, default=0)
    overhead_cost = models.DecimalField(**MONEY, default=0)
    line_count = models.PositiveIntegerField(default=0)
    node_hours = models.FloatField(default=0)
    covered_seconds = models.FloatField(default=0)
    priced_by = models.JSONField(default=dict, blank=True, help_text="price source → node-hours")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "day"], name="clusterday_unique")
        ]


class Job(models.Model):
    """A long-running piece of work (import, backfill, recompute) whose progress the UI shows."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    kind = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    description = models.CharField(max_length=300, blank=True)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    @property
    def progress(self) -> float:
        """Share done in [0, 1]; 0 while the total is unknown."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"
