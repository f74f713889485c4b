"""The capacity planner's stored state: per-pool settings and the latest recommendation.

A recommendation is recomputed daily (`costapp.planner.refresh_all`) and replaced in place: one
row per cluster × node pool, never a history of rows. What-if questions on the page and the API
re-plan from the stored hourly series without touching the usage tables.
"""

from __future__ import annotations

from django.db import models

from costapp.models.core import Cluster


class PoolPlanSettings(models.Model):
    """Per-pool overrides of the planner defaults (`settings.COSTAPP_PLANNER`). Blank = default.

    Fields:
        reserved_discount: reserved price as a share off the on-demand price (0.375 = 37.5 %).
        reserved_node_hourly: effective hourly price of one reserved node (upfront amortised over
            the term); wins over `reserved_discount` when set.
        reserved_term_years: term of the commitment, 1 or 3 years.
        on_demand_max_nodes: most on-demand nodes the pool may run (the pool's maximum size or
            the account quota); None → the default factor × the most nodes seen.
        serverless_vcpu_hourly / serverless_gib_hourly: serverless container prices per vCPU-hour
            and per GiB-hour.
        serverless_enabled / spot_enabled: offer these options at all.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    node_pool = models.CharField(max_length=200, blank=True)
    reserved_discount = models.FloatField(null=True, blank=True)
    reserved_node_hourly = models.FloatField(null=True, blank=True)
    reserved_term_years = models.PositiveSmallIntegerField(null=True, blank=True)
    on_demand_max_nodes = models.PositiveIntegerField(null=True, blank=True)
    serverless_vcpu_hourly = models.FloatField(null=True, blank=True)
    serverless_gib_hourly = models.FloatField(null=True, blank=True)
    serverless_enabled = models.BooleanField(default=True)
    spot_enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "node_pool"], name="poolplansettings_unique")
        ]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.node_pool or '(no pool)'}"


class Recommendation(models.Model):
    """The latest capacity plan of one node pool (ALLOCATION_SPEC.md §9), with its inputs.

    Units: the pool's unit is one vCPU of the pool's instance type together with its share of
    memory (`gib_per_unit`) and GPUs; `units_per_node` of them make one node. Money is in the
    cluster's currency; `options` holds prices per unit-hour.

    Fields:
        computed_at: when the plan was computed.
        history_start / history_end: first hour and the end of the last hour of demand used.
        history_days: hours of demand / 24 (hours the pool had no nodes are not counted).
        instance_type: the pool's (most common) instance type; reserved capacity is whole
            nodes of it.
        units_per_node, gib_per_unit, gpus_per_unit: the pool's shape.
        options: purchase options and where each price came from (see `planner.PoolOptions`).
        plan: `allocation.plan.Plan.to_dict()` for the whole history plus the whole-node plan.
        backtest: plan on the first 3/4, priced on the last 1/4, with the pool's actual cost.
        series: hourly `hour_start`, `demand`, `spot_eligible` (pool units) for the chart and
            for what-if re-planning.
        warnings: plain sentences shown above the recommendation (short history, mixed types).
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    node_pool = models.CharField(max_length=200, blank=True)
    computed_at = models.DateTimeField()
    history_start = models.DateTimeField()
    history_end = models.DateTimeField()
    history_days = models.FloatField()
    instance_type = models.CharField(max_length=100, blank=True)
    units_per_node = models.FloatField()
    gib_per_unit = models.FloatField()
    gpus_per_unit = models.FloatField(default=0)
    currency = models.CharField(max_length=3, default="USD")
    options = models.JSONField(default=dict)
    plan = models.JSONField(default=dict)
    backtest = models.JSONField(default=dict, blank=True)
    series = models.JSONField(default=dict)
    warnings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["cluster__name", "node_pool"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "node_pool"], name="recommendation_unique")
        ]

    def __str__(self) -> str:
        return f"{self.cluster}/{self.node_pool or '(no pool)'} @ {self.computed_at:%Y-%m-%d}"

    @property
    def pool_label(self) -> str:
        return self.node_pool or "(no pool)"
