"""Property-based tests of the engine's invariants (§4, §6, §7).

Which invariants hold:
* conservation per cluster and step, and non-negative money, for every policy and aggregation;
* a line does not depend on which other keys are in the result (namespace line = Σ of its
  (namespace, pod) or (cluster, namespace) lines) for every idle policy and the *weighted*
  shared split — weighted spreading is linear in own cost; the even split is not;
* a line does not depend on the step (window line = Σ of its day lines) when there are no
  shared namespaces and no overhead — idle is shared hour by hour, but a shared pool is spread
  within each step, so with shared costs the step matters.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation import NodeHours, PodHours, Policy, Result, allocate, allocate_parts

from .helpers import expected_by_cluster_step, totals_by_cluster_step
from .worlds import KEY_SUBSETS, STEPS, policies, worlds

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MONEY = ("cpu_cost", "ram_cost", "gpu_cost", "idle_cost", "shared_cost", "total_cost")
SUMMED = MONEY + (
    "cpu_core_hours",
    "ram_gib_hours",
    "gpu_hours",
    "cpu_usage_core_hours",
    "cpu_request_core_hours",
    "ram_usage_gib_hours",
    "ram_request_gib_hours",
)


def _sum_by(result: Result, keys: tuple[str, ...], by_step: bool = False) -> dict[Any, np.ndarray]:
    out: dict[Any, np.ndarray] = defaultdict(lambda: np.zeros(len(SUMMED)))
    cols = np.stack([result[c] for c in SUMMED], axis=1) if len(result) else np.zeros((0, 1))
    starts = result["window_start"].tolist()
    for i in range(len(result)):
        key = (result["kind"][i], *(result[k][i] for k in keys))
        if by_step:
            key = (*key, starts[i])
        out[key] = out[key] + cols[i]
    return dict(out)


def _assert_same(a: dict[Any, np.ndarray], b: dict[Any, np.ndarray]) -> None:
    assert set(a) == set(b)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-9, err_msg=str(key))


@SETTINGS
@given(worlds(), policies(), KEY_SUBSETS, STEPS)
def test_conservation_holds_for_every_cluster_and_step(
    world: tuple[NodeHours, PodHours], policy: Policy, keys: list[str], step: str
) -> None:
    nodes, pods = world
    agg = ("cluster", *keys)
    result = allocate(nodes, pods, policy, agg, step)
    expected = expected_by_cluster_step(
        allocate_parts(nodes, pods, policy, agg, step), policy.overhead
    )
    got = totals_by_cluster_step(result)
    assert set(got) <= set(expected)
    for key, money in expected.items():
        assert got.get(key, 0.0) == pytest.approx(money, rel=1e-9, abs=1e-9), key


@SETTINGS
@given(worlds(), policies(), KEY_SUBSETS, STEPS)
def test_money_and_quantities_are_never_negative(
    world: tuple[NodeHours, PodHours], policy: Policy, keys: list[str], step: str
) -> None:
    nodes, pods = world
    result = allocate(nodes, pods, policy, tuple(keys), step)
    for name in SUMMED:
        assert (result[name] >= 0).all(), name
    idle = result["kind"] == "idle"
    assert (result["idle_cost"][idle] == 0).all()
    assert (result["shared_cost"][idle] == 0).all()


@SETTINGS
@given(worlds(), policies(splits=("weighted",)), STEPS)
def test_namespace_line_equals_the_sum_of_its_pod_lines(
    world: tuple[NodeHours, PodHours], policy: Policy, step: str
) -> None:
    nodes, pods = world
    coarse = allocate(nodes, pods, policy, ("namespace",), step)
    fine = allocate(nodes, pods, policy, ("namespace", "pod"), step)
    _assert_same(_sum_by(coarse, ("namespace",), True), _sum_by(fine, ("namespace",), True))


@SETTINGS
@given(worlds(), policies(splits=("weighted",)))
def test_team_line_does_not_depend_on_splitting_by_cluster(
    world: tuple[NodeHours, PodHours], policy: Policy
) -> None:
    nodes, pods = world
    coarse = allocate(nodes, pods, policy, ("team",), "day")
    fine = allocate(nodes, pods, policy, ("cluster", "team"), "day")
    _assert_same(_sum_by(coarse, ("team",), True), _sum_by(fine, ("team",), True))


@SETTINGS
@given(worlds(), policies(shared=False), st.sampled_from(["hour", "day"]))
def test_window_line_equals_the_sum_of_its_step_lines_without_shared_costs(
    world: tuple[NodeHours, PodHours], policy: Policy, step: str
) -> None:
    nodes, pods = world
    window = allocate(nodes, pods, policy, ("namespace",), "window")
    steps = allocate(nodes, pods, policy, ("namespace",), step)
    _assert_same(_sum_by(window, ("namespace",)), _sum_by(steps, ("namespace",)))


@SETTINGS
@given(worlds(), policies())
def test_idle_lines_do_not_depend_on_pod_side_keys(
    world: tuple[NodeHours, PodHours], policy: Policy
) -> None:
    nodes, pods = world
    a = allocate(nodes, pods, policy, ("node", "namespace"), "day")
    b = allocate(nodes, pods, policy, ("node", "team", "pod"), "day")

    def idle_only(r: Result) -> dict[Any, np.ndarray]:
        return {k: v for k, v in _sum_by(r, ("node",), True).items() if k[0] == "idle"}

    _assert_same(idle_only(a), idle_only(b))
