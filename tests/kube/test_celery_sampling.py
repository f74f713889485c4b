"""Beat's sampling task through a real Celery worker on Redis, reading the fake API server with
the real kubernetes client over HTTP, writing to the real database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from costapp.kube.fake_apiserver import FakeApiServer, generate_cluster
from tests.costapp import conftest as costapp_fixtures
from tests.kube.test_commands import run, write_kubeconfig

celery_worker_process = costapp_fixtures.celery_worker_process


@pytest.fixture
def shared_key(monkeypatch: pytest.MonkeyPatch, settings: Any) -> str:
    """The same credentials key for this process and the worker it starts."""
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("COSTAPP_FERNET_KEY", key)
    settings.COSTAPP_FERNET_KEY = key
    return key


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    from tests.kube.test_commands import TOKEN

    with FakeApiServer(generate_cluster(nodes=6, pods=120, seed=5), token=TOKEN) as s:
        yield s


@pytest.mark.celery
def test_beat_samples_every_cluster_through_the_worker(
    shared_key: str, server: FakeApiServer, tmp_path: Path, celery_worker_process: Any
) -> None:
    import time

    from costapp import tasks
    from costapp.models import Cluster, PodHour

    path = write_kubeconfig(tmp_path, server.url)
    run("add_cluster", "prod", kubeconfig=str(path), context="fake", no_check=True)
    cluster = Cluster.objects.get(name="prod")

    assert tasks.sample_all_clusters.delay().get(timeout=60) == 1
    deadline = time.monotonic() + 120
    while not PodHour.objects.filter(cluster=cluster).exists():
        assert time.monotonic() < deadline, "the worker did not fold a sample"
        time.sleep(0.5)
    cluster.refresh_from_db()
    assert cluster.health == Cluster.Health.OK, cluster.last_error
    assert (cluster.node_count, cluster.pod_count) == (6, 120)
    assert PodHour.objects.filter(cluster=cluster).values("pod").distinct().count() == 120
