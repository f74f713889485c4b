"""Small builders for allocation tests: nodes and pods with sensible defaults."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from allocation import NodeHour, NodeHours, Parts, PodHour, PodHours, Result

T0 = datetime(2024, 9, 1, tzinfo=UTC)


def hour(n: int = 0) -> datetime:
    """The n-th hour after 2024-09-01T00:00Z."""
    return T0 + timedelta(hours=n)


def node(name: str = "n1", **kw: Any) -> NodeHour:
    values: dict[str, Any] = dict(
        cluster="c",
        node=name,
        hour_start=hour(0),
        hours=1.0,
        cpu_cores=4.0,
        ram_gib=16.0,
        gpus=0.0,
        cost=1.0,
        node_pool="pool",
        capacity_type="on-demand",
    )
    values.update(kw)
    return NodeHour(**values)


def pod(name: str = "p1", namespace: str = "ns", node_name: str = "n1", **kw: Any) -> PodHour:
    values: dict[str, Any] = dict(
        cluster="c",
        namespace=namespace,
        pod=name,
        node=node_name,
        hour_start=hour(0),
        hours=1.0,
        cpu_request=0.0,
        cpu_usage=0.0,
        ram_request_gib=0.0,
        ram_usage_gib=0.0,
        gpu_request=0.0,
    )
    values.update(kw)
    return PodHour(**values)


def tables(nodes: Iterable[NodeHour], pods: Iterable[PodHour]) -> tuple[NodeHours, PodHours]:
    return NodeHours.from_records(nodes), PodHours.from_records(pods)


def lines(result: Result) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Result lines keyed by (kind, *key values, window_start) → column dict."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rec in result.to_records():
        key = (rec.kind, *(rec.keys[k] for k in result.keys))
        assert key not in out or True
        out[(*key, rec.window_start)] = rec.__dict__
    return out


def by_key(result: Result) -> dict[tuple[Any, ...], dict[str, float]]:
    """Lines keyed by (kind, *key values) → numeric columns (only for single-step results)."""
    out: dict[tuple[Any, ...], dict[str, float]] = {}
    for rec in result.to_records():
        key = (rec.kind, *(rec.keys[k] for k in result.keys))
        assert key not in out, f"duplicate line {key}"
        out[key] = {k: v for k, v in rec.__dict__.items() if isinstance(v, float)}
    return out


def totals_by_cluster_step(result: Result) -> dict[tuple[str, int], float]:
    """Σ total_cost per (cluster, window_start) of a result aggregated by cluster."""
    out: dict[tuple[str, int], float] = defaultdict(float)
    starts = result["window_start"].astype(np.int64).tolist()
    for c, s, t in zip(
        result["cluster"].tolist(), starts, result["total_cost"].tolist(), strict=True
    ):
        out[(c, s)] += t
    return dict(out)


def expected_by_cluster_step(parts: Parts, overhead: Any) -> dict[tuple[str, int], float]:
    """Σ node cost + Σ overhead per (cluster, step start)."""
    money = parts.node_cost + parts.overhead(overhead)
    out: dict[tuple[str, int], float] = {}
    for ci, name in enumerate(parts.clusters.tolist()):
        for si, start in enumerate(parts.step_starts.tolist()):
            if parts.cluster_hours[ci, si] > 0:
                out[(name, start)] = float(money[ci, si])
    return out
