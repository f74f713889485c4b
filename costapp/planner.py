"""Capacity planner service: demand per node pool from history, prices per option, the plan.

One use case per public function (ARCHITECTURE.md, "Plan"):

* :func:`refresh_cluster` / :func:`refresh_all` — read each pool's hourly demand from the stored
  PodHours, price the purchase options, run :func:`allocation.plan.plan` and ``backtest`` and
  replace the pool's :class:`~costapp.models.Recommendation` (one row per cluster × pool).
* :func:`evaluate` — re-plan a stored recommendation with what-if inputs (discount, term, spot
  share, on-demand cap). It reads no usage rows: the hourly series is stored, and a plan takes
  about a millisecond, so pages and the API call it on every request.
* :func:`chart` — the plotly figure of one evaluation (pure: data in, figure dict out).

Units. A pool's unit is one vCPU of its instance type with that type's memory per vCPU (and GPUs
per vCPU, for GPU pools). Hourly demand is the binding resource, hour by hour::

    D_h = max(Σ cpu_alloc / s_h,
              Σ ram_alloc / s_h / GiB_per_vCPU,
              Σ gpu_request / s_h / GPU_per_vCPU)

where the sums run over the pool's PodHours of hour h (``*_alloc_sum`` is Σ max(request, usage)
× seconds) and ``s_h`` is the seconds the collector covered that hour (3600 when unknown), so a
collector gap does not read as a dip in demand.

Spot eligibility (interruption tolerance), per pod and hour, first rule that answers wins:

1. the pod's annotation ``costapp.io/spot-eligible: "true" | "false"``;
2. its namespace's annotation of the same name;
3. Jobs (and CronJob pods) without local storage: eligible;
4. Deployment pods without local storage whose Deployment ran more than one pod that hour:
   eligible;
5. everything else (StatefulSets, DaemonSets, single replicas, bare pods): not eligible.

``spot_eligible_h`` is the same unit conversion applied to the eligible pods, capped at D_h.

Prices (per pool unit-hour = node price / vCPUs per node), defaults in :data:`DEFAULTS`:

* on-demand and spot: the price catalog (``CatalogPrice`` rows loaded by ``manage.py
  load_prices``; else the staged CSV through ``costapp.billing.catalog``) for the pool's
  provider, region and instance type; on-demand falls back to the pool's own average cost per
  node-hour when the catalog has no price.
* reserved: a discount off on-demand for the term (1 or 3 years), or an effective hourly price per
  node (upfront amortised over the term), per pool in :class:`~costapp.models.PoolPlanSettings`.
* serverless containers: per vCPU-hour + per GiB-hour × GiB per vCPU. Not offered for GPU pools
  (Fargate runs no GPUs) or when the cluster's currency differs from the prices' (USD).
* on-demand cap: the pool's maximum size in nodes (per pool), else the most nodes seen × 1.5.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from allocation.plan import PlanError, PlanOptions, backtest, plan
from costapp.models import (
    Cluster,
    ClusterHour,
    Namespace,
    Node,
    NodeHour,
    Pod,
    PodHour,
    PoolPlanSettings,
    Recommendation,
)

__all__ = [
    "ANNOTATION",
    "DEFAULTS",
    "PlannerDefaults",
    "PlannerInputError",
    "PoolDemand",
    "PoolShape",
    "WhatIf",
    "chart",
    "evaluate",
    "parse_what_if",
    "pool_options",
    "read_demand",
    "refresh_all",
    "refresh_cluster",
]

ANNOTATION = "costapp.io/spot-eligible"
HOURS_PER_MONTH = 730.0  # 8760 / 12, the convention cloud price pages use
HOURS_PER_YEAR = 8760.0


@dataclass(frozen=True)
class PlannerDefaults:
    """Planner defaults; override any of them with ``settings.COSTAPP_PLANNER = {name: value}``.

    Fields:
        history_days: days of history a refresh reads (the most recent ones).
        min_trusted_days: below this the page and API say the history is too short to trust.
        train_fraction: the backtest plans on this share of the hours and prices the rest.
        reserved_discount_by_term: share off on-demand per term in years. Source: AWS Price List
            API (GetProducts) for m5.large Linux in us-east-1, Standard RI, No Upfront: 1 yr
            $0.060/h and 3 yr $0.041/h against $0.096/h on-demand (37.5 % and 57.3 % off),
            published 2021-02-05, staged as
            shared/data/03_prices/aws/ec2-instance-selector_GetProducts_m5_large.json. Typical of
            general-purpose families; set the pool's own rate when you know it.
        reserved_term_years: default term (1: no long lock-in unless asked).
        serverless_vcpu_hourly / serverless_gib_hourly: AWS Fargate Linux/x86 in us-east-1,
            $0.04048 per vCPU-hour and $0.004445 per GB-hour, from AWS's public Fargate pricing
            page (aws.amazon.com/fargate/pricing). A default to override for other regions,
            Arm (cheaper), Fargate Spot, or other providers' container services.
        serverless_currency: currency of the serverless prices.
        on_demand_cap_factor: default on-demand cap = the most nodes seen × this; 0 = no cap.
    """

    history_days: int = 90
    min_trusted_days: float = 7.0
    train_fraction: float = 0.75
    reserved_discount_by_term: Mapping[int, float] = field(
        default_factory=lambda: {1: 0.375, 3: 0.573}
    )
    reserved_term_years: int = 1
    serverless_vcpu_hourly: float = 0.04048
    serverless_gib_hourly: float = 0.004445
    serverless_currency: str = "USD"
    on_demand_cap_factor: float = 1.5


def _defaults() -> PlannerDefaults:
    overrides = getattr(settings, "COSTAPP_PLANNER", None) or {}
    return replace(PlannerDefaults(), **overrides)


DEFAULTS = PlannerDefaults()

# Messages (tests assert on these).
W_SHORT_HISTORY = (
    "Only {days:.1f} days of history: too short to trust. Plans need at least {min:g} days so "
    "that weekly cycles show; treat these figures as a first look."
)
W_MIXED_TYPES = (
    "This pool ran several instance types ({types}); the plan assumes {main} throughout."
)
W_NO_CATALOG = (
    "No catalog on-demand price for {itype} in {region}: using this pool's own average cost "
    "per node-hour ({price:.4f} {currency})."
)
W_NO_SPOT_PRICE = "No spot price for {itype} in {region}: spot is not offered."
W_SERVERLESS_CURRENCY = (
    "Serverless prices are in {have}, the cluster bills in {want}: serverless is not offered."
)
W_SERVERLESS_GPU = "Serverless containers run no GPUs: not offered for this GPU pool."
W_CAP_LIFTED = (
    "Demand exceeds the on-demand cap with no serverless option; the cap was lifted for the "
    "whole-node plan."
)
E_PARAM = "{name}: {problem}"


class PlannerInputError(ValueError):
    """A what-if or filter parameter is wrong; ``param`` names it."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(E_PARAM.format(name=param, problem=problem))
        self.param = param


# --------------------------------------------------------------------------------------------
# Demand


@dataclass(frozen=True)
class PoolShape:
    """A node pool as the planner sees it.

    Fields:
        node_pool: the pool's name ("" for nodes without one).
        instance_type: the type with the most node-hours in the window.
        types: node-hours per instance type (more than one: a mixed pool).
        units_per_node: vCPUs per node of ``instance_type`` (the pool unit is one vCPU).
        gib_per_unit: GiB of memory per vCPU; gpus_per_unit: GPUs per vCPU (0: no GPUs).
        max_nodes: most nodes of the pool in any hour of the window.
        provider / region: where its prices are looked up.
    """

    node_pool: str
    instance_type: str
    types: Mapping[str, int]
    units_per_node: float
    gib_per_unit: float
    gpus_per_unit: float
    max_nodes: int
    provider: str
    region: str


@dataclass(frozen=True)
class PoolDemand:
    """Hourly demand of one pool, in pool units.

    Fields:
        hour_starts: the hours the pool had nodes, ascending (UTC datetimes).
        demand: D_h, the binding resource's units; spot_eligible: the interruption-tolerant part.
        binding: hours in which each resource ("cpu", "memory", "gpu") was the binding one.
        actual_cost: Σ NodeHour.cost of the pool per hour (for the backtest's "what it cost").
    """

    hour_starts: tuple[datetime, ...]
    demand: np.ndarray
    spot_eligible: np.ndarray
    binding: Mapping[str, int]
    actual_cost: np.ndarray


def _eligible_override(annotations: Mapping[str, Any] | None) -> bool | None:
    value = (annotations or {}).get(ANNOTATION)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def read_demand(
    cluster: Cluster, start: datetime, end: datetime
) -> tuple[dict[str, PoolShape], dict[str, PoolDemand]]:
    """Shapes and hourly demand of every pool of ``cluster`` in [start, end).

    Steps:
    1. NodeHours give each pool's hours, shape (main instance type, vCPU, GiB, GPUs), size and
       actual cost per hour.
    2. PodHours (one query for the cluster) are mapped to pools through their node, normalised
       by the collector's covered seconds and summed per pool and hour.
    3. Each PodHour row is marked spot-eligible by the rules in the module docstring (Deployment
       replicas are counted per hour), and summed the same way.
    4. D_h is the largest of CPU, memory and GPU demand in pool units; eligible demand likewise,
       capped at D_h.
    """
    # 1. Pools from node-hours.
    nh = list(
        NodeHour.objects.filter(cluster=cluster, hour_start__gte=start, hour_start__lt=end)
        .values_list("hour_start", "node_pool", "instance_type", "cpu_cores", "ram_gib", "gpus",
                     "cost")
        .iterator(chunk_size=5000)
    )
    if not nh:
        return {}, {}
    region_of_pool: dict[str, str] = {}
    for pool_name, region, zone in Node.objects.filter(cluster=cluster).values_list(
        "node_pool", "region", "zone"
    ):
        if pool_name not in region_of_pool or not region_of_pool[pool_name]:
            region_of_pool[pool_name] = region or cluster.region or _zone_region(zone, cluster)
    by_pool: dict[str, list[tuple]] = {}
    for row in nh:
        by_pool.setdefault(row[1], []).append(row)
    shapes: dict[str, PoolShape] = {}
    pool_hours: dict[str, dict[datetime, int]] = {}
    actual: dict[str, np.ndarray] = {}
    for pool_name, rows in by_pool.items():
        types = Counter(r[2] for r in rows)
        main = types.most_common(1)[0][0]
        cores = [r[3] for r in rows if r[2] == main and r[3] > 0]
        upn = float(np.median(cores)) if cores else 1.0
        ram = float(np.median([r[4] for r in rows if r[2] == main])) if cores else 0.0
        gpus = float(np.median([r[5] for r in rows if r[2] == main])) if cores else 0.0
        hours = sorted({r[0] for r in rows})
        index = {h: i for i, h in enumerate(hours)}
        cost = np.zeros(len(hours))
        count = np.zeros(len(hours), dtype=np.int64)
        for r in rows:
            cost[index[r[0]]] += float(r[6])
            count[index[r[0]]] += 1
        shapes[pool_name] = PoolShape(
            node_pool=pool_name,
            instance_type=main,
            types=dict(types),
            units_per_node=upn,
            gib_per_unit=ram / upn if upn else 0.0,
            gpus_per_unit=gpus / upn if upn else 0.0,
            max_nodes=int(count.max()),
            provider=(cluster.provider or "").lower(),
            region=region_of_pool.get(pool_name, cluster.region),
        )
        pool_hours[pool_name] = index
        actual[pool_name] = cost

    # 2. Pod-hours of the cluster, mapped to pools through their node.
    node_pool = dict(Node.objects.filter(cluster=cluster).values_list("id", "node_pool"))
    coverage = {
        h: s for h, s in ClusterHour.objects.filter(
            cluster=cluster, hour_start__gte=start, hour_start__lt=end
        ).values_list("hour_start", "covered_seconds") if s > 0
    }
    ph = list(
        PodHour.objects.filter(cluster=cluster, hour_start__gte=start, hour_start__lt=end)
        .values_list("hour_start", "node_id", "pod_id", "cpu_alloc_sum", "ram_alloc_sum",
                     "gpu_request_sum")
        .iterator(chunk_size=20000)
    )
    pods = {
        p[0]: p for p in Pod.objects.filter(cluster=cluster).values_list(
            "id", "namespace", "controller_kind", "controller", "annotations", "has_local_storage"
        )
    }
    ns_override = {
        name: _eligible_override(ann)
        for name, ann in Namespace.objects.filter(cluster=cluster).values_list(
            "name", "annotations"
        )
    }
    demands: dict[str, PoolDemand] = {}
    if ph:
        hours_all = sorted({r[0] for r in ph})
        h_index = {h: i for i, h in enumerate(hours_all)}
        hour_idx = np.fromiter((h_index[r[0]] for r in ph), dtype=np.int64, count=len(ph))
        pod_ids = np.fromiter((r[2] for r in ph), dtype=np.int64, count=len(ph))
        cov = np.array([coverage.get(h, 3600.0) for h in hours_all])[hour_idx]
        cpu = np.fromiter((r[3] for r in ph), dtype=np.float64, count=len(ph)) / cov
        ram = np.fromiter((r[4] for r in ph), dtype=np.float64, count=len(ph)) / cov
        gpu = np.fromiter((r[5] for r in ph), dtype=np.float64, count=len(ph)) / cov
        pool_names = sorted(shapes)
        p_index = {name: i for i, name in enumerate(pool_names)}
        pool_idx = np.fromiter(
            (p_index.get(node_pool.get(r[1], ""), -1) for r in ph), dtype=np.int64, count=len(ph)
        )
        # 3. Spot eligibility per row.
        uniq_pods, pod_pos = np.unique(pod_ids, return_inverse=True)
        kind = np.zeros(uniq_pods.size, dtype=np.int8)  # 0 other, 1 job, 2 deployment
        override = np.full(uniq_pods.size, -1, dtype=np.int8)  # -1 none, 0 false, 1 true
        controller = np.zeros(uniq_pods.size, dtype=np.int64)
        controllers: dict[tuple[str, str, str], int] = {}
        for i, pid in enumerate(uniq_pods.tolist()):
            _, ns, ckind, cname, ann, local = pods.get(pid, (pid, "", "", "", {}, False))
            flag = _eligible_override(ann)
            if flag is None:
                flag = ns_override.get(ns)
            if flag is not None:
                override[i] = int(flag)
            if not local:
                kind[i] = 1 if ckind in ("Job", "CronJob") else 2 if ckind == "Deployment" else 0
            controller[i] = controllers.setdefault((ns, ckind, cname or f"pod:{pid}"),
                                                   len(controllers))
        ctrl_row = controller[pod_pos]
        # Replicas of a controller in an hour: distinct pods (a pod may move nodes in an hour).
        pairs = np.unique(np.stack([hour_idx, ctrl_row, pod_ids]), axis=1)
        keys = pairs[0] * (len(controllers) + 1) + pairs[1]
        ukeys, counts = np.unique(keys, return_counts=True)
        row_keys = hour_idx * (len(controllers) + 1) + ctrl_row
        replicas = counts[np.searchsorted(ukeys, row_keys)]
        k = kind[pod_pos]
        o = override[pod_pos]
        eligible = np.where(o >= 0, o == 1, (k == 1) | ((k == 2) & (replicas > 1)))

        # 4. Sum per pool and hour, then the binding resource.
        n_h = len(hours_all)
        for name in pool_names:
            shape = shapes[name]
            sel = pool_idx == p_index[name]
            cols = _units(shape, hour_idx[sel], cpu[sel], ram[sel], gpu[sel], n_h)
            e_cols = _units(
                shape, hour_idx[sel & eligible], cpu[sel & eligible], ram[sel & eligible],
                gpu[sel & eligible], n_h,
            )
            demands[name] = _pool_demand(
                hours_all, cols, e_cols, pool_hours[name], actual[name]
            )
    for name in shapes:
        if name not in demands:
            hours = sorted(pool_hours[name])
            z = np.zeros(len(hours))
            demands[name] = PoolDemand(tuple(hours), z, z.copy(), {}, actual[name])
    return shapes, demands


def _zone_region(zone: str, cluster: Cluster) -> str:
    if not zone:
        return ""
    return zone[:-1] if (cluster.provider or "").lower() == "aws" else zone.rsplit("-", 1)[0]


def _units(shape: PoolShape, hour_idx, cpu, ram, gpu, n_h: int) -> np.ndarray:
    """Per hour (rows) the demand in pool units of each resource (columns: cpu, memory, gpu)."""
    cols = np.zeros((n_h, 3))
    cols[:, 0] = np.bincount(hour_idx, cpu, minlength=n_h)
    if shape.gib_per_unit > 0:
        cols[:, 1] = np.bincount(hour_idx, ram, minlength=n_h) / shape.gib_per_unit
    if shape.gpus_per_unit > 0:
        cols[:, 2] = np.bincount(hour_idx, gpu, minlength=n_h) / shape.gpus_per_unit
    return cols


def _pool_demand(hours_all, cols, e_cols, pool_index, actual) -> PoolDemand:
    """Keep the hours the pool had nodes; D_h = max over resources; eligible ≤ D_h."""
    hours = sorted(pool_index)
    pos = {h: i for i, h in enumerate(hours_all)}
    take = np.array([pos.get(h, -1) for h in hours], dtype=np.int64)
    have = take >= 0
    d_cols = np.zeros((len(hours), 3))
    d_cols[have] = cols[take[have]]
    e = np.zeros((len(hours), 3))
    e[have] = e_cols[take[have]]
    demand = d_cols.max(axis=1)
    binding = Counter()
    names = ("cpu", "memory", "gpu")
    for i in np.argmax(d_cols, axis=1)[demand > 0]:
        binding[names[int(i)]] += 1
    eligible = np.minimum(e.max(axis=1), demand)
    return PoolDemand(tuple(hours), demand, eligible, dict(binding), actual)


# --------------------------------------------------------------------------------------------
# Prices


@lru_cache(maxsize=8)
def _csv_catalog(provider: str) -> dict[tuple[str, str, str], tuple[Decimal, str, bool, str]]:
    """(region, instance type, capacity type) → (hourly, currency, estimated, source file)."""
    from costapp.billing import catalog

    loaders = {"aws": catalog.load_aws_catalog, "gcp": catalog.load_gcp_catalog,
               "azure": catalog.load_azure_catalog, "alibaba": catalog.load_alibaba_catalog}
    loader = loaders.get(provider)
    if loader is None:
        return {}
    try:
        return {
            (p.region, p.instance_type, p.capacity_type): (p.hourly, p.currency, p.estimated,
                                                           p.source_file)
            for p in loader()
        }
    except Exception:  # noqa: BLE001 — a missing or broken file means "no catalog price"
        return {}


def catalog_node_price(
    provider: str, region: str, instance_type: str, capacity_type: str, currency: str
) -> tuple[float, str] | None:
    """Hourly price of one node and where it came from, or None when no catalog has it.

    The ``CatalogPrice`` table first (what ``load_prices`` loaded), else the staged CSV.
    """
    from costapp.models import CatalogPrice

    row = (
        CatalogPrice.objects.filter(provider=provider, region=region, instance_type=instance_type,
                                    capacity_type=capacity_type, currency=currency)
        .values_list("hourly", "estimated", "source_file").first()
    )
    if row is not None:
        est = " (estimated)" if row[1] else ""
        return float(row[0]), f"price catalog {row[2]}{est}"
    found = _csv_catalog(provider).get((region, instance_type, capacity_type))
    if found is None or found[1] != currency:
        return None
    est = " (estimated)" if found[2] else ""
    return float(found[0]), f"price catalog {found[3]}{est}"


@dataclass(frozen=True)
class WhatIf:
    """Inputs a reader may change on the page or the API; None keeps the stored value.

    Fields: discount (share off on-demand, 0–0.95), term_years (1 or 3), spot_share (share of
    each hour's demand that may run on spot, 0–1, replacing the workload rules),
    max_on_demand_nodes (0 = no cap), serverless (offer serverless or not).
    """

    discount: float | None = None
    term_years: int | None = None
    spot_share: float | None = None
    max_on_demand_nodes: int | None = None
    serverless: bool | None = None

    def as_params(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.discount is not None:
            out["discount"] = f"{self.discount * 100:g}"
        if self.term_years is not None:
            out["term"] = str(self.term_years)
        if self.spot_share is not None:
            out["spot_share"] = f"{self.spot_share * 100:g}"
        if self.max_on_demand_nodes is not None:
            out["max_on_demand_nodes"] = str(self.max_on_demand_nodes)
        if self.serverless is not None:
            out["serverless"] = "on" if self.serverless else "off"
        return out


WHAT_IF_PARAMS = ("discount", "term", "spot_share", "max_on_demand_nodes", "serverless")


def parse_what_if(params: Mapping[str, str]) -> WhatIf:
    """Read what-if inputs from query parameters; blank means "keep". Percentages are 0–100.

    Raises PlannerInputError naming the parameter.
    """

    def number(name: str, lo: float, hi: float) -> float | None:
        raw = (params.get(name) or "").strip()
        if not raw:
            return None
        try:
            value = float(raw)
        except ValueError:
            raise PlannerInputError(name, f"not a number: {raw!r}") from None
        if not math.isfinite(value) or not lo <= value <= hi:
            raise PlannerInputError(name, f"must be between {lo:g} and {hi:g}, got {raw!r}")
        return value

    discount = number("discount", 0, 95)
    term = number("term", 1, 3)
    if term is not None and term not in (1, 3):
        raise PlannerInputError("term", f"must be 1 or 3 (years), got {params.get('term')!r}")
    spot = number("spot_share", 0, 100)
    cap = number("max_on_demand_nodes", 0, 100000)
    if cap is not None and cap != int(cap):
        raise PlannerInputError("max_on_demand_nodes", "must be a whole number of nodes")
    raw_sl = (params.get("serverless") or "").strip().lower()
    if raw_sl and raw_sl not in ("on", "off", "true", "false", "1", "0"):
        raise PlannerInputError(
            "serverless", f"must be on or off, got {params.get('serverless')!r}"
        )
    return WhatIf(
        discount=None if discount is None else discount / 100,
        term_years=None if term is None else int(term),
        spot_share=None if spot is None else spot / 100,
        max_on_demand_nodes=None if cap is None else int(cap),
        serverless=None if not raw_sl else raw_sl in ("on", "true", "1"),
    )


def pool_options(
    cluster: Cluster, shape: PoolShape, demand: PoolDemand,
    pool_settings: PoolPlanSettings | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Prices per option for one pool, per node and per unit-hour, with their sources.

    Returns (options dict as stored on the Recommendation, warnings).
    """
    d = _defaults()
    s = pool_settings or PoolPlanSettings(cluster=cluster, node_pool=shape.node_pool)
    upn = shape.units_per_node
    warnings: list[str] = []
    od = catalog_node_price(shape.provider, shape.region, shape.instance_type, "on-demand",
                            cluster.currency)
    if od is None:
        hours = max(len(demand.hour_starts), 1)
        node_hours = max(shape.max_nodes, 1)
        total = float(demand.actual_cost.sum())
        # Average cost per node-hour actually paid (all capacity types of the pool).
        per_node = _pool_cost_per_node_hour(cluster, shape) or (total / hours / node_hours)
        od = (per_node, "this pool's average cost per node-hour")
        warnings.append(W_NO_CATALOG.format(itype=shape.instance_type or "(unknown type)",
                                            region=shape.region or "(unknown region)",
                                            price=per_node, currency=cluster.currency))
    spot = None
    if s.spot_enabled:
        spot = catalog_node_price(shape.provider, shape.region, shape.instance_type, "spot",
                                  cluster.currency)
        if spot is None:
            warnings.append(W_NO_SPOT_PRICE.format(itype=shape.instance_type or "(unknown type)",
                                                   region=shape.region or "(unknown region)"))
    term = s.reserved_term_years or d.reserved_term_years
    if s.reserved_node_hourly is not None:
        reserved_node = float(s.reserved_node_hourly)
        discount = 1 - reserved_node / od[0] if od[0] else 0.0
        reserved_source = "this pool's reserved price (planner settings)"
    else:
        discount = (s.reserved_discount if s.reserved_discount is not None
                    else d.reserved_discount_by_term.get(term, d.reserved_discount_by_term[1]))
        reserved_node = od[0] * (1 - discount)
        reserved_source = (
            "this pool's discount (planner settings)" if s.reserved_discount is not None
            else f"default {term}-year discount (AWS Standard RI, no upfront, m5.large list price)"
        )
    serverless = None
    if s.serverless_enabled:
        if shape.gpus_per_unit > 0:
            warnings.append(W_SERVERLESS_GPU)
        elif cluster.currency != d.serverless_currency and s.serverless_vcpu_hourly is None:
            warnings.append(W_SERVERLESS_CURRENCY.format(have=d.serverless_currency,
                                                         want=cluster.currency))
        else:
            vcpu = (s.serverless_vcpu_hourly if s.serverless_vcpu_hourly is not None
                    else d.serverless_vcpu_hourly)
            gib = (s.serverless_gib_hourly if s.serverless_gib_hourly is not None
                   else d.serverless_gib_hourly)
            serverless = {
                "vcpu_hourly": vcpu, "gib_hourly": gib,
                "unit_hourly": vcpu + gib * shape.gib_per_unit,
                "source": ("planner settings" if s.serverless_vcpu_hourly is not None else
                           "default: AWS Fargate us-east-1 Linux/x86 list price "
                           "(aws.amazon.com/fargate/pricing); override for your region"),
            }
    if s.on_demand_max_nodes is not None:
        cap_nodes: int | None = s.on_demand_max_nodes
        cap_source = "pool maximum (planner settings)"
    elif d.on_demand_cap_factor > 0:
        cap_nodes = math.ceil(shape.max_nodes * d.on_demand_cap_factor)
        cap_source = f"default: most nodes seen ({shape.max_nodes}) × {d.on_demand_cap_factor:g}"
    else:
        cap_nodes, cap_source = None, "no cap"
    options = {
        "units_per_node": upn,
        "unit": f"vCPU of {shape.instance_type or 'the pool'} with {shape.gib_per_unit:g} GiB",
        "on_demand": {"node_hourly": od[0], "unit_hourly": od[0] / upn, "source": od[1],
                      "cap_nodes": cap_nodes, "cap_source": cap_source},
        "reserved": {"node_hourly": reserved_node, "unit_hourly": reserved_node / upn,
                     "discount": discount, "term_years": term, "source": reserved_source},
        "spot": None if spot is None else {"node_hourly": spot[0], "unit_hourly": spot[0] / upn,
                                           "source": spot[1]},
        "serverless": serverless,
    }
    return options, warnings


def _pool_cost_per_node_hour(cluster: Cluster, shape: PoolShape) -> float | None:
    agg = NodeHour.objects.filter(
        cluster=cluster, node_pool=shape.node_pool, instance_type=shape.instance_type
    ).aggregate(cost=Sum("cost"), seconds=Sum("seconds"))
    if not agg["seconds"]:
        return None
    return float(agg["cost"] or 0) / (agg["seconds"] / 3600.0) or None


def _apply_what_if(options: dict[str, Any], w: WhatIf) -> dict[str, Any]:
    """Options with the what-if inputs applied (a copy)."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in options.items()}
    d = _defaults()
    reserved, od = out["reserved"], out["on_demand"]
    if w.term_years is not None:
        reserved["term_years"] = w.term_years
        if w.discount is None:
            reserved["discount"] = d.reserved_discount_by_term.get(
                w.term_years, reserved["discount"]
            )
            reserved["source"] = f"default {w.term_years}-year discount (what-if)"
    if w.discount is not None:
        reserved["discount"] = w.discount
        reserved["source"] = "what-if discount"
    if w.discount is not None or w.term_years is not None:
        reserved["node_hourly"] = od["node_hourly"] * (1 - reserved["discount"])
        reserved["unit_hourly"] = reserved["node_hourly"] / out["units_per_node"]
    if w.max_on_demand_nodes is not None:
        od["cap_nodes"] = w.max_on_demand_nodes or None
        od["cap_source"] = "what-if" if w.max_on_demand_nodes else "what-if: no cap"
    if w.serverless is False:  # "on" keeps the stored option (absent when not offered)
        out["serverless"] = None
    return out


def _plan_options(options: Mapping[str, Any]) -> PlanOptions:
    upn = options["units_per_node"]
    od = options["on_demand"]
    return PlanOptions(
        on_demand_hourly=od["unit_hourly"],
        on_demand_cap=None if od["cap_nodes"] is None else od["cap_nodes"] * upn,
        reserved_hourly=options["reserved"]["unit_hourly"],
        spot_hourly=options["spot"]["unit_hourly"] if options.get("spot") else None,
        serverless_hourly=(options["serverless"]["unit_hourly"] if options.get("serverless")
                           else None),
    )


# --------------------------------------------------------------------------------------------
# Plans


def _fixed_reserved(
    demand: np.ndarray, eligible: np.ndarray, level: float, opts: PlanOptions
) -> tuple[dict[str, Any], bool]:
    """Fill above a fixed reserved level optimally: (costs and series, cap lifted?)."""
    residual = np.maximum(demand - level, 0.0)
    flexible = replace(opts, reserved_hourly=None, reserved_upfront=0.0, reserved_term_hours=None)
    lifted = False
    try:
        rest = plan(residual, flexible, np.minimum(eligible, residual))
    except PlanError:
        flexible = replace(flexible, on_demand_cap=None)
        rest = plan(residual, flexible, np.minimum(eligible, residual))
        lifted = True
    reserved_cost = (opts.reserved_hourly or 0.0) * level * demand.size
    return {
        "reserved_units": level,
        "reserved_cost": reserved_cost,
        "on_demand_cost": rest.on_demand_cost,
        "spot_cost": rest.spot_cost,
        "serverless_cost": rest.serverless_cost,
        "total_cost": reserved_cost + rest.total_cost,
        "on_demand_hours": rest.on_demand_hours,
        "spot_hours": rest.spot_hours,
        "serverless_hours": rest.serverless_hours,
        "series": {"reserved": np.minimum(demand, level), "on_demand": rest.on_demand_series,
                   "spot": rest.spot_series, "serverless": rest.serverless_series},
    }, lifted


def _nodes_up(units: float, upn: float) -> int:
    return int(math.ceil(units / upn - 1e-9)) if units > 0 else 0


def evaluate(rec: Recommendation, what_if: WhatIf | None = None) -> dict[str, Any]:
    """The plan of one stored recommendation, optionally with what-if inputs, ready to show.

    Steps:
    1. Options from the stored ones with the what-if applied; spot eligibility from the stored
       series, or ``spot_share`` × demand when given.
    2. The base plan (fractional reserved level, `allocation.plan.plan`) and its whole-node
       rounding; then the whole-node plan's hourly fill (reserved fixed, rest optimal).
    3. Backtest: the base backtest plus the whole-node plan trained on the first part and priced
       on the rest, compared with all on-demand and with what the pool actually cost.
    4. Monthly figures (× 730 / hours) and the recommendation in words.
    """
    w = what_if or WhatIf()
    options = _apply_what_if(rec.options, w)
    opts = _plan_options(options)
    upn = float(options["units_per_node"])
    series = rec.series
    demand = np.asarray(series["demand"], dtype=np.float64)
    if w.spot_share is not None:
        eligible = demand * w.spot_share
    else:
        eligible = np.asarray(series["spot_eligible"], dtype=np.float64)
    warnings = list(rec.warnings)
    n = demand.size
    month = HOURS_PER_MONTH / n

    # 2. Base plan and the whole-node plan.
    base = plan(demand, opts, eligible, units_per_node=upn)
    nodes = base.reserved_nodes or 0
    whole, lifted = _fixed_reserved(demand, eligible, nodes * upn, opts)
    if lifted:
        warnings.append(W_CAP_LIFTED)

    # 3. Backtest on the last quarter.
    bt: dict[str, Any] = {}
    if n >= 2:
        b = backtest(demand, opts, _defaults().train_fraction, eligible)
        split = b.train_hours
        train = plan(demand[:split], opts, eligible[:split], units_per_node=upn)
        test_whole, _ = _fixed_reserved(
            demand[split:], eligible[split:], (train.reserved_nodes or 0) * upn, opts
        )
        actual = series.get("actual_cost")
        actual_test = float(np.sum(actual[split:])) if actual else None
        bt = {
            **b.to_dict(),
            "train_from": series["hour_start"][0],
            "test_from": series["hour_start"][split],
            "test_to": series["hour_start"][-1],
            "whole_node_reserved_nodes": train.reserved_nodes or 0,
            "whole_node_test_cost": test_whole["total_cost"],
            "test_actual_cost": actual_test,
        }

    # 4. Figures and words.
    options_used = {
        "on_demand": options["on_demand"], "reserved": options["reserved"],
        "spot": options.get("spot"), "serverless": options.get("serverless"),
    }
    s = whole["series"]
    peak_od = _nodes_up(float(np.max(s["on_demand"], initial=0.0)), upn)
    peak_spot = _nodes_up(float(np.max(s["spot"], initial=0.0)), upn)
    burst_hours = s["serverless"] > 1e-9
    burst_from = (float(np.min((demand - s["serverless"])[burst_hours])) / upn
                  if burst_hours.any() else None)
    monthly = {
        "all_on_demand": base.all_on_demand_cost * month,
        "plan": whole["total_cost"] * month,
        "plan_fractional": base.total_cost * month,
        "reserved": whole["reserved_cost"] * month,
        "on_demand": whole["on_demand_cost"] * month,
        "spot": whole["spot_cost"] * month,
        "serverless": whole["serverless_cost"] * month,
        "actual": (float(np.sum(series["actual_cost"])) * month
                   if series.get("actual_cost") else None),
    }
    monthly["saving"] = monthly["all_on_demand"] - monthly["plan"]
    monthly["saving_pct"] = (100 * monthly["saving"] / monthly["all_on_demand"]
                             if monthly["all_on_demand"] > 0 else 0.0)
    itype = rec.instance_type or "nodes"
    util = float(np.sum(s["reserved"])) / (nodes * upn * n) if nodes else 0.0
    options_used["reserved"] = {**options_used["reserved"],
                                "discount_pct": 100 * options_used["reserved"]["discount"]}
    term = options["reserved"]["term_years"]
    words = _words(itype, nodes, term, peak_od, peak_spot, burst_from,
                   options["on_demand"]["cap_nodes"])
    return {
        "cluster": rec.cluster.name,
        "node_pool": rec.node_pool,
        "instance_type": rec.instance_type,
        "currency": rec.currency,
        "computed_at": rec.computed_at.isoformat(),
        "history_start": rec.history_start.isoformat(),
        "history_end": rec.history_end.isoformat(),
        "history_days": rec.history_days,
        "short_history": rec.history_days < _defaults().min_trusted_days,
        "warnings": warnings,
        "units_per_node": upn,
        "unit": options["unit"],
        "options": options_used,
        "what_if": w.as_params(),
        "recommendation": {
            "text": words,
            "reserved_nodes": nodes,
            "term_years": term,
            "max_on_demand_nodes": peak_od,
            "max_spot_nodes": peak_spot,
            "serverless_above_nodes": burst_from,
            "reserved_utilization": util,
            "reserved_utilization_pct": 100 * util,
        },
        "monthly": monthly,
        "history": {
            "hours": n,
            "total_cost": whole["total_cost"],
            "all_on_demand_cost": base.all_on_demand_cost,
            "on_demand_hours": whole["on_demand_hours"],
            "spot_hours": whole["spot_hours"],
            "serverless_hours": whole["serverless_hours"],
        },
        "base_plan": base.to_dict(),
        "backtest": bt,
        "binding": rec.plan.get("binding", {}),
        "_series": {"hour_start": series["hour_start"], "demand": demand, **s,
                    "reserved_level": nodes * upn},
    }


def _words(itype: str, nodes: int, term: int, peak_od: int, peak_spot: int,
           burst_from: float | None, cap: int | None) -> str:
    """The recommendation as a finance reader would say it."""
    years = "1 year" if term == 1 else f"{term} years"
    parts = [f"Reserve {nodes} {itype} for {years}" if nodes else
             "Reserve nothing: demand is too uneven for a commitment to pay off"]
    if peak_spot:
        parts.append(f"run up to {peak_spot} on spot for interruption-tolerant work")
    if peak_od:
        cap_txt = f" (the pool may run {cap})" if cap else ""
        parts.append(f"run up to {peak_od} on-demand{cap_txt}")
    if burst_from is not None:
        parts.append(f"let bursts above {burst_from:.0f} nodes' worth go to serverless containers")
    return "; ".join(parts) + "."


def chart(result: Mapping[str, Any]) -> dict[str, Any]:
    """Plotly figure: hourly demand (nodes' worth), the reserved level, and the stacked
    reserved / spot / on-demand / serverless coverage of the whole-node plan."""
    s = result["_series"]
    upn = result["units_per_node"]
    x = s["hour_start"]

    def nodes(values) -> list[float]:
        return [round(float(v) / upn, 3) for v in values]

    def area(name: str, values, colour: str) -> dict[str, Any]:
        return {"type": "scatter", "mode": "lines", "name": name, "x": x, "y": nodes(values),
                "stackgroup": "cover", "line": {"width": 0}, "fillcolor": colour,
                "hovertemplate": "%{y:.2f} nodes<extra>" + name + "</extra>"}

    data = [
        area("reserved (used)", s["reserved"], "rgba(36,88,166,0.55)"),
        area("spot", s["spot"], "rgba(58,157,93,0.6)"),
        area("on-demand", s["on_demand"], "rgba(224,123,57,0.6)"),
        area("serverless", s["serverless"], "rgba(181,68,59,0.65)"),
        {"type": "scatter", "mode": "lines", "name": "demand", "x": x, "y": nodes(s["demand"]),
         "line": {"color": "#1d2733", "width": 1.2},
         "hovertemplate": "%{y:.2f} nodes<extra>demand</extra>"},
        {"type": "scatter", "mode": "lines", "name": "reserved level", "x": [x[0], x[-1]],
         "y": [s["reserved_level"] / upn] * 2, "line": {"color": "#2458a6", "dash": "dash"},
         "hoverinfo": "skip"},
    ]
    layout = {
        "title": {"text": f"Hourly demand of {result['node_pool'] or '(no pool)'}, in "
                          f"{result['instance_type'] or 'node'}s", "x": 0, "xanchor": "left"},
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
        "yaxis": {"title": {"text": "nodes"}, "rangemode": "tozero", "gridcolor": "#eef1f4"},
        "xaxis": {"type": "date"},
        "legend": {"orientation": "h", "y": -0.15},
        "hovermode": "x unified",
        "paper_bgcolor": "#fff", "plot_bgcolor": "#fff",
    }
    return {"data": data, "layout": layout}


def public(result: Mapping[str, Any], series: bool = False) -> dict[str, Any]:
    """The evaluation as JSON-ready data (the API's shape); hourly series only when asked."""
    out = {k: v for k, v in result.items() if not k.startswith("_")}
    if series:
        out["series"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                         for k, v in result["_series"].items()}
    return out


# --------------------------------------------------------------------------------------------
# Refresh


def refresh_cluster(cluster: Cluster, now: datetime | None = None,
                    days: int | None = None) -> list[Recommendation]:
    """Recompute and replace the recommendation of every pool of ``cluster`` (one transaction).

    Pools with no node-hours in the window lose their recommendation.
    """
    d = _defaults()
    end = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days or d.history_days)
    shapes, demands = read_demand(cluster, start, end)
    overrides = {p.node_pool: p for p in PoolPlanSettings.objects.filter(cluster=cluster)}
    computed_at = timezone.now()
    rows: list[Recommendation] = []
    for name, shape in sorted(shapes.items()):
        demand = demands[name]
        options, warnings = pool_options(cluster, shape, demand, overrides.get(name))
        hours = len(demand.hour_starts)
        history_days = hours / 24.0
        if history_days < d.min_trusted_days:
            warnings.insert(0, W_SHORT_HISTORY.format(days=history_days, min=d.min_trusted_days))
        if len(shape.types) > 1:
            warnings.append(W_MIXED_TYPES.format(
                types=", ".join(sorted(shape.types)), main=shape.instance_type))
        opts = _plan_options(options)
        base = plan(demand.demand, opts, demand.spot_eligible,
                    units_per_node=shape.units_per_node) if hours else None
        rows.append(Recommendation(
            cluster=cluster,
            node_pool=name,
            computed_at=computed_at,
            history_start=demand.hour_starts[0],
            history_end=demand.hour_starts[-1] + timedelta(hours=1),
            history_days=history_days,
            instance_type=shape.instance_type,
            units_per_node=shape.units_per_node,
            gib_per_unit=shape.gib_per_unit,
            gpus_per_unit=shape.gpus_per_unit,
            currency=cluster.currency,
            options=options,
            plan={**(base.to_dict() if base else {}), "binding": dict(demand.binding),
                  "max_nodes_seen": shape.max_nodes, "instance_types": dict(shape.types)},
            series={
                "hour_start": [h.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
                               for h in demand.hour_starts],
                "demand": [round(float(v), 6) for v in demand.demand],
                "spot_eligible": [round(float(v), 6) for v in demand.spot_eligible],
                "actual_cost": [round(float(v), 6) for v in demand.actual_cost],
            },
            warnings=warnings,
        ))
    for rec in rows:  # the backtest needs the row's series: evaluate before saving
        rec.backtest = evaluate(rec)["backtest"] if len(rec.series["demand"]) >= 2 else {}
    with transaction.atomic():
        Recommendation.objects.filter(cluster=cluster).exclude(
            node_pool__in=[r.node_pool for r in rows]).delete()
        for rec in rows:
            Recommendation.objects.filter(cluster=cluster, node_pool=rec.node_pool).delete()
            rec.save()
    return rows


def refresh_all(now: datetime | None = None) -> int:
    """Refresh every cluster's recommendations; returns how many pools were planned."""
    total = 0
    for cluster in Cluster.objects.all():
        total += len(refresh_cluster(cluster, now=now))
    return total


def timed_refresh(cluster: Cluster, days: int, now: datetime | None = None) -> dict[str, float]:
    """For the benchmark: seconds spent reading demand and planning every pool of ``cluster``."""
    d = _defaults()
    end = (now or timezone.now()).replace(minute=0, second=0, microsecond=0)
    t0 = time.perf_counter()
    shapes, demands = read_demand(cluster, end - timedelta(days=days), end)
    t1 = time.perf_counter()
    for name, shape in shapes.items():
        options, _ = pool_options(cluster, shape, demands[name])
        opts = _plan_options(options)
        if demands[name].demand.size:
            plan(demands[name].demand, opts, demands[name].spot_eligible,
                 units_per_node=shape.units_per_node)
            if demands[name].demand.size >= 2:
                backtest(demands[name].demand, opts, d.train_fraction, demands[name].spot_eligible)
    t2 = time.perf_counter()
    return {"pools": len(shapes), "read_seconds": t1 - t0, "plan_seconds": t2 - t1,
            "hours": max((x.demand.size for x in demands.values()), default=0)}
