"""Registering and sampling clusters through manage.py, against the fake API server over HTTP.

Needs the database (pytest-django)."""

from __future__ import annotations

from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from costapp.kube.credentials import (
    CredentialsError,
    decrypt_kubeconfig,
    encrypt_kubeconfig,
    prepare_kubeconfig,
    rotate_kubeconfig,
)
from costapp.kube.fake_apiserver import FakeApiServer, FakeCluster, generate_cluster

TOKEN = "secret-token-0123456789"


@pytest.fixture(autouse=True)
def fernet_key(settings: Any) -> str:
    key = Fernet.generate_key().decode()
    settings.COSTAPP_FERNET_KEY = key
    return key


@pytest.fixture(scope="module")
def cluster_data() -> FakeCluster:
    return generate_cluster(nodes=12, pods=300, seed=3)


@pytest.fixture
def server(cluster_data: FakeCluster) -> Iterator[FakeApiServer]:
    with FakeApiServer(cluster_data, token=TOKEN) as s:
        yield s


def write_kubeconfig(tmp_path: Path, server_url: str) -> Path:
    (tmp_path / "token").write_text(TOKEN + "\n")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "other",
        "contexts": [
            {"name": "other", "context": {"cluster": "elsewhere", "user": "someone"}},
            {"name": "fake", "context": {"cluster": "fake-cluster", "user": "collector"}},
        ],
        "clusters": [
            {"name": "elsewhere", "cluster": {"server": "https://10.255.255.1:6443"}},
            {"name": "fake-cluster", "cluster": {"server": server_url}},
        ],
        "users": [
            {"name": "someone", "user": {"token": "other-token"}},
            {"name": "collector", "user": {"tokenFile": "token"}},
        ],
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def run(*args: Any, **kwargs: Any) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO(), **kwargs)
    return out.getvalue()


@pytest.mark.django_db
def test_add_cluster_checks_the_connection_and_stores_the_kubeconfig_encrypted(
    server: FakeApiServer, tmp_path: Path
) -> None:
    from costapp.models import Cluster

    path = write_kubeconfig(tmp_path, server.url)
    out = run("add_cluster", "prod-eu", kubeconfig=str(path), context="fake", provider="aws")
    assert "Connection OK: 12 nodes, 300 pods" in out
    assert "Registered cluster prod-eu (context 'fake'" in out
    cluster = Cluster.objects.get(name="prod-eu")
    assert cluster.kube_context == "fake" and not cluster.in_cluster and cluster.provider == "aws"
    assert TOKEN not in cluster.kubeconfig_encrypted
    stored = yaml.safe_load(decrypt_kubeconfig(cluster.kubeconfig_encrypted))
    # One self-contained context: the token file was inlined, the other context dropped.
    assert [c["name"] for c in stored["contexts"]] == ["fake"]
    assert stored["users"] == [{"name": "collector", "user": {"token": TOKEN}}]


@pytest.mark.django_db
def test_add_cluster_stores_nothing_when_the_check_fails(
    server: FakeApiServer, tmp_path: Path
) -> None:
    from costapp.models import Cluster

    server.faults.forbid = {"nodes"}
    path = write_kubeconfig(tmp_path, server.url)
    with pytest.raises(CommandError, match="needs `list` on `nodes`"):
        run("add_cluster", "prod", kubeconfig=str(path), context="fake")
    assert not Cluster.objects.filter(name="prod").exists()


@pytest.mark.django_db
def test_add_cluster_in_cluster_without_check() -> None:
    from costapp.models import Cluster

    out = run("add_cluster", "self", "--in-cluster", "--no-check")
    assert "Registered cluster self (in-cluster service account)" in out
    assert Cluster.objects.get(name="self").in_cluster


@pytest.mark.django_db
def test_add_cluster_names_the_contexts_when_one_is_missing(tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path, "http://127.0.0.1:1")
    with pytest.raises(CommandError, match="no context 'nope'; contexts are: other, fake"):
        run("add_cluster", "x", kubeconfig=str(path), context="nope")


@pytest.mark.django_db
def test_sample_cluster_folds_one_sample_into_hourly_rows(
    server: FakeApiServer, tmp_path: Path
) -> None:
    from costapp.models import Cluster, NodeHour, PodHour

    path = write_kubeconfig(tmp_path, server.url)
    run("add_cluster", "prod", kubeconfig=str(path), context="fake", no_check=True)
    out = run("sample_cluster", "prod")
    assert "12 nodes, 300 pods, usage available, 0 malformed objects skipped" in out
    cluster = Cluster.objects.get(name="prod")
    assert cluster.health == Cluster.Health.OK and cluster.last_sample_at is not None
    assert NodeHour.objects.filter(cluster=cluster).count() >= 12
    assert PodHour.objects.filter(cluster=cluster).count() >= 300


@pytest.mark.django_db
def test_sample_cluster_without_metrics_records_requests_only(
    server: FakeApiServer, tmp_path: Path
) -> None:
    from costapp.models import Cluster

    server.faults.no_metrics = True
    path = write_kubeconfig(tmp_path, server.url)
    run("add_cluster", "prod", kubeconfig=str(path), context="fake", no_check=True)
    assert "usage unavailable" in run("sample_cluster", "prod")
    assert not Cluster.objects.get(name="prod").usage_available


@pytest.mark.django_db
def test_a_failed_sample_marks_the_cluster_failing_and_writes_nothing(
    server: FakeApiServer, tmp_path: Path
) -> None:
    from costapp.models import Cluster, NodeHour

    path = write_kubeconfig(tmp_path, server.url)
    run("add_cluster", "prod", kubeconfig=str(path), context="fake", no_check=True)
    server.faults.fail_resources = {"pods": 500}
    server.faults.delay = 0.0
    with pytest.raises(CommandError, match="listing pods failed after 3 tries"):
        run("sample_cluster", "prod")
    cluster = Cluster.objects.get(name="prod")
    assert cluster.health == Cluster.Health.FAILING
    assert "listing pods failed" in cluster.last_error
    assert not NodeHour.objects.filter(cluster=cluster).exists()


@pytest.mark.django_db
def test_sample_cluster_dry_run_stores_nothing(server: FakeApiServer, tmp_path: Path) -> None:
    from costapp.models import NodeHour

    path = write_kubeconfig(tmp_path, server.url)
    run("add_cluster", "prod", kubeconfig=str(path), context="fake", no_check=True)
    out = run("sample_cluster", "prod", dry_run=True)
    assert "12 nodes, 300 pods" in out and "not stored" in out
    assert not NodeHour.objects.exists()


@pytest.mark.django_db
def test_a_changed_key_cannot_read_old_credentials_but_a_rotation_list_can(
    settings: Any, fernet_key: str
) -> None:
    token = encrypt_kubeconfig("apiVersion: v1\n")
    new = Fernet.generate_key().decode()
    settings.COSTAPP_FERNET_KEY = new
    with pytest.raises(CredentialsError, match="cannot be decrypted"):
        decrypt_kubeconfig(token)
    settings.COSTAPP_FERNET_KEY = f"{new},{fernet_key}"
    rotated = rotate_kubeconfig(token)
    settings.COSTAPP_FERNET_KEY = new
    assert decrypt_kubeconfig(rotated) == "apiVersion: v1\n"


def test_exec_plugins_are_kept_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "kc"
    path.write_text(
        yaml.safe_dump(
            {
                "current-context": "eks",
                "contexts": [{"name": "eks", "context": {"cluster": "c", "user": "u"}}],
                "clusters": [{"name": "c", "cluster": {"server": "https://example"}}],
                "users": [{"name": "u", "user": {"exec": {"command": "aws", "args": ["eks"]}}}],
            }
        )
    )
    prepared = prepare_kubeconfig(path)
    assert prepared.context == "eks" and prepared.server == "https://example"
    assert "exec plugin 'aws'" in prepared.warnings[0]
