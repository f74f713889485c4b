"""``allocate_parts`` + ``spread_shared``: what the Django app stores and answers at query time
must equal ``allocate()`` (ARCHITECTURE.md step 4, ALLOCATION_SPEC.md §5)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from allocation import NodeHours, PodHours, Policy, allocate, allocate_parts, spread_shared
from allocation.aggregate import group_codes

from .worlds import policies, worlds


def _query(nodes: NodeHours, pods: PodHours, policy: Policy) -> dict[Any, float]:
    """Store daily (cluster, namespace, pod) parts with no idle/shared policy, then answer
    'total cost by namespace per day' for ``policy`` from the stored parts only."""
    stored = allocate_parts(
        nodes,
        pods,
        Policy(basis=policy.basis, weights=policy.weights),
        ("cluster", "namespace", "pod"),
        "day",
    )
    w = stored.workload
    namespace = w.keys["namespace"].values()
    is_shared = np.isin(namespace.astype(str), list(policy.shared_namespaces))
    idle_in = w.idle_share(policy.idle)
    own = w.cpu_cost + w.ram_cost + w.gpu_cost + idle_in
    ns_codes = w.keys["namespace"].codes
    line, _ = group_codes(
        [(ns_codes, len(w.keys["namespace"].categories)), (w.step, stored.step_starts.size)], len(w)
    )
    spread = spread_shared(
        line,
        w.cluster,
        w.step,
        is_shared,
        own,
        stored.overhead(policy.overhead),
        policy.shared_split,
    )
    out: dict[Any, float] = defaultdict(float)
    starts = stored.step_starts
    for i in np.flatnonzero(~is_shared):
        out[("workload", namespace[i], int(starts[w.step[i]]))] += own[i] + spread.shared_cost[i]
    for c, s in zip(*np.nonzero(spread.unspread > 0), strict=True):
        out[("workload", "__shared__", int(starts[s]))] += spread.unspread[c, s]
    idle = stored.idle.for_policy(policy.idle)
    idle_money = idle.cpu_cost + idle.ram_cost + idle.gpu_cost
    for i in range(len(stored.idle)):
        out[("idle", "__idle__", int(starts[stored.idle.step[i]]))] += idle_money[i]
    return {k: v for k, v in out.items() if v != 0}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), policies())
def test_query_time_spread_over_stored_parts_equals_allocate(
    world: tuple[NodeHours, PodHours], policy: Policy
) -> None:
    nodes, pods = world
    result = allocate(nodes, pods, policy, ("namespace",), "day")
    direct: dict[Any, float] = defaultdict(float)
    starts = result["window_start"].astype(np.int64).tolist()
    for kind, ns, start, total in zip(
        result["kind"].tolist(),
        result["namespace"].tolist(),
        starts,
        result["total_cost"].tolist(),
        strict=True,
    ):
        direct[(kind, ns, start)] += total
    direct = {k: v for k, v in direct.items() if v != 0}
    answer = _query(nodes, pods, policy)
    assert set(direct) == set(answer)
    for key, value in direct.items():
        assert answer[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
