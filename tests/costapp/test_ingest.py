"""Samples fold into hourly rows weighted by the seconds each stands for; gaps stay gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from costapp.ingest import fold_samples, split_by_hour
from costapp.kube.records import NamespaceSnapshot, NodeSnapshot, PodSnapshot, Sample, Usage
from costapp.models import Cluster, ClusterDay, ClusterHour, NodeHour, PodHour

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def node(name="n1", cpu=4.0, ram=16.0):
    return NodeSnapshot(
        name=name, uid=f"uid-{name}", provider_id=f"aws:///us-east-1a/i-{name}",
        instance_type="m5.xlarge", region="us-east-1", zone="us-east-1a", node_pool="general",
        capacity_type="on-demand", cpu_cores=cpu, ram_gib=ram, gpus=0.0, alloc_cpu_cores=cpu,
        alloc_ram_gib=ram, alloc_gpus=0.0, labels={}, created=None,
    )


def pod(name="web-1", node_name="n1", cpu=1.0, ram=2.0):
    return PodSnapshot(
        namespace="shop", name=name, uid=f"uid-{name}", node=node_name, cpu_request=cpu,
        ram_request_gib=ram, gpu_request=0.0, cpu_limit=None, ram_limit_gib=None,
        controller_kind="Deployment", controller="web", labels={"team": "payments"},
        annotations={}, has_local_storage=False, created=None,
    )


def sample(t, pods=None, usage=None, metrics=True):
    pods = pods if pods is not None else [pod()]
    return Sample(
        taken_at=t, nodes=[node()], pods=pods,
        namespaces=[NamespaceSnapshot(name="shop", labels={}, annotations={})],
        pod_usage=usage or {}, node_usage={}, metrics_available=metrics, skipped=[],
        workload_replicas={},
    )


def test_split_by_hour_cuts_at_clock_hours():
    parts = split_by_hour(T0 - timedelta(seconds=30), T0 + timedelta(seconds=30))
    assert parts == [(T0 - timedelta(hours=1), 30.0), (T0, 30.0)]


@pytest.mark.django_db
def test_samples_fold_into_time_weighted_hourly_means():
    cluster = Cluster.objects.create(name="c1")
    usage_low = {("shop", "web-1"): Usage(0.5, 1.0)}
    usage_high = {("shop", "web-1"): Usage(3.0, 1.0)}
    samples = [sample(T0 + timedelta(minutes=m), usage=usage_low if m < 30 else usage_high)
               for m in range(1, 61)]
    fold_samples(cluster, samples, interval_seconds=60)
    row = PodHour.objects.get()
    assert row.seconds == pytest.approx(3600)
    assert row.cpu_request_sum / row.seconds == pytest.approx(1.0)
    # usage 0.5 for 29 samples, 3.0 for 31 → mean 1.7917; sample-wise max(request, usage)
    assert row.cpu_usage_sum / row.seconds == pytest.approx((29 * 0.5 + 31 * 3.0) / 60)
    assert row.cpu_alloc_sum / row.seconds == pytest.approx((29 * 1.0 + 31 * 3.0) / 60)
    assert NodeHour.objects.get().seconds == pytest.approx(3600)
    assert ClusterHour.objects.get().covered_seconds == pytest.approx(3600)
    assert ClusterDay.objects.get().dirty


@pytest.mark.django_db
def test_a_gap_is_missing_coverage_not_usage():
    cluster = Cluster.objects.create(name="c1")
    fold_samples(cluster, [sample(T0 + timedelta(minutes=1))], interval_seconds=60)
    # The collector was down for 40 minutes: the next sample stands for at most 2 intervals.
    fold_samples(cluster, [sample(T0 + timedelta(minutes=41))], interval_seconds=60)
    assert PodHour.objects.get().seconds == pytest.approx(60 + 120)
    assert ClusterHour.objects.get().covered_seconds == pytest.approx(180)


@pytest.mark.django_db
def test_refolding_the_same_sample_never_double_counts():
    cluster = Cluster.objects.create(name="c1")
    s = sample(T0 + timedelta(minutes=1))
    fold_samples(cluster, [s], interval_seconds=60)
    cluster.refresh_from_db()
    stats = fold_samples(cluster, [s], interval_seconds=60)
    assert stats.ignored == 1
    assert PodHour.objects.get().seconds == pytest.approx(60)


@pytest.mark.django_db
def test_missing_metrics_never_invents_usage():
    cluster = Cluster.objects.create(name="c1")
    fold_samples(cluster, [sample(T0 + timedelta(minutes=1), metrics=False)], interval_seconds=60)
    row = PodHour.objects.get()
    assert row.usage_seconds == 0 and row.cpu_usage_sum == 0
    assert row.cpu_alloc_sum == pytest.approx(60 * 1.0)  # the request alone
    cluster.refresh_from_db()
    assert cluster.usage_available is False
