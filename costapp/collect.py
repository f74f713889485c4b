"""Take one sample of a cluster and fold it: the collection use case.

Real clusters are read through costapp.kube.client; simulated ones through costapp.simulate.
A cache lock makes sure one cluster is never sampled twice at once.
"""

from __future__ import annotations

from django.core.cache import cache
from django.utils import timezone

from costapp.ingest import fold_samples
from costapp.models import Cluster

LOCK_SECONDS = 300


def sample_cluster(cluster_id: int) -> str:
    lock = f"sample-lock:{cluster_id}"
    if not cache.add(lock, 1, LOCK_SECONDS):
        return "skipped: a sample of this cluster is already running"
    try:
        cluster = Cluster.objects.get(pk=cluster_id)
        Cluster.objects.filter(pk=cluster_id).update(last_attempt_at=timezone.now())
        if cluster.simulated:
            from costapp.simulate import SimulatedCluster

            sample = SimulatedCluster(cluster.name).sample(timezone.now())
        else:
            from costapp.kube.connect import take_cluster_sample

            sample = take_cluster_sample(cluster)
        stats = fold_samples(cluster, [sample])
        Cluster.objects.filter(pk=cluster_id).update(health=Cluster.Health.OK, last_error="")
        return f"folded {stats.samples} sample(s): {stats.pod_hours} pod-hours"
    except Exception as exc:
        Cluster.objects.filter(pk=cluster_id).update(
            health=Cluster.Health.FAILING, last_error=str(exc)[:2000]
        )
        raise
    finally:
        cache.delete(lock)
