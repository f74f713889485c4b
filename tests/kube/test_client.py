"""The real kubernetes client, over HTTP, against the fake API server: paging, faults, all or
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from costapp.kube.client import KubeAuthError, KubeError, KubeUnavailable, take_sample
from costapp.kube.fake_apiserver import FakeApiServer, FakeCluster, generate_cluster, load_testdata
from costapp.kube.records import Sample

GIB = 2**30


def no_sleep(_seconds: float) -> None:
    pass


def sample(server: FakeApiServer, **kwargs: Any) -> Sample:
    kwargs.setdefault("sleep", no_sleep)
    return take_sample(server.api_client(), **kwargs)


@pytest.fixture(scope="module")
def generated() -> FakeCluster:
    return generate_cluster(nodes=20, pods=700, seed=7)


@pytest.fixture
def server(generated: FakeCluster) -> Iterator[FakeApiServer]:
    with FakeApiServer(generated) as s:
        yield s


def pod_requests(server: FakeApiServer) -> list[dict[str, list[str]]]:
    return [q for path, q in server.requests if path == "/api/v1/pods"]


def test_real_payloads_come_through_the_real_client() -> None:
    with FakeApiServer(load_testdata("honeycomb")) as server:
        s = sample(server)
    assert [n.name for n in s.nodes] == ["duckboat-01", "duckboat-02"]
    node = s.nodes[0]
    assert (node.cpu_cores, node.alloc_cpu_cores, node.instance_type) == (8.0, 7.91, "m6gd.2xlarge")
    assert len(s.pods) == 11
    speaker = next(p for p in s.pods if p.name == "speaker-cpxhz")
    assert (speaker.cpu_request, speaker.ram_request_gib) == (0.1, 100 / 1024)
    assert s.metrics_available
    php = s.pod_usage[("mysql", "phpmyadmin-54c7cdbdc7-8qnbr")]
    assert (php.cpu_cores, php.ram_gib) == (0.01981685, 2030384 * 1024 / GIB)
    assert s.node_usage["duckboat-01"].cpu_cores == 0.388954406
    assert "duckboat-02" not in s.node_usage  # no metrics for it: absent, not zero
    assert {n.name for n in s.namespaces} >= {"mysql", "kube-system", "nginx"}
    assert s.skipped == []
    assert s.taken_at.tzinfo is not None


def test_gke_fixtures_come_through_the_real_client() -> None:
    with FakeApiServer(load_testdata("gke")) as server:
        s = sample(server)
    assert [p.name for p in s.pods] == ["hello-world"]
    assert s.metrics_available
    # The metrics fixtures describe other pods and nodes: only what is in the sample is kept.
    assert s.pod_usage == {} and s.node_usage == {}


def test_lists_are_paged_with_limit_and_continue(
    server: FakeApiServer, generated: FakeCluster
) -> None:
    s = sample(server, page_size=50)
    assert len(s.pods) == generated.count("pods") == 700
    assert len({(p.namespace, p.name) for p in s.pods}) == 700
    assert len(s.nodes) == 20 and len(s.pod_usage) == 700 and len(s.node_usage) == 20
    pods = pod_requests(server)
    assert len(pods) == 14
    assert all(q["limit"] == ["50"] for q in pods)
    assert "continue" not in pods[0] and all("continue" in q for q in pods[1:])
    assert all("resourceVersion" not in q for q in pods)  # consistent paged reads
    assert pods[0]["fieldSelector"] == [
        "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"
    ]
    ns = [q for path, q in server.requests if path == "/api/v1/namespaces"]
    assert ns == [{"limit": ["50"], "resourceVersion": ["0"]}]  # cached read, served unpaged


def test_owners_and_replicas_resolve_in_a_generated_cluster(server: FakeApiServer) -> None:
    s = sample(server)
    kinds = {p.controller_kind for p in s.pods}
    assert {"Deployment", "DaemonSet", "StatefulSet", "CronJob"} <= kinds
    assert "ReplicaSet" not in kinds and "Job" not in kinds
    deployments = {(p.namespace, p.controller) for p in s.pods if p.controller_kind == "Deployment"}
    for ns, name in deployments:
        running = sum(1 for p in s.pods if (p.namespace, p.controller) == (ns, name))
        assert s.workload_replicas[(ns, "Deployment", name)] == running


def test_an_expired_continue_token_restarts_the_list(server: FakeApiServer) -> None:
    server.faults.expire_continue = 1
    s = sample(server, page_size=100)
    assert len(s.pods) == 700 and len(s.namespaces) > 0
    # nodes (20) fit one page; the first continue seen is on ReplicaSets, which restart.
    firsts = [
        q
        for path, q in server.requests
        if path == "/apis/apps/v1/replicasets" and "continue" not in q
    ]
    assert len(firsts) == 2


def test_continue_tokens_that_keep_expiring_give_up(server: FakeApiServer) -> None:
    server.faults.expire_continue = 100
    with pytest.raises(KubeUnavailable, match="continue token expired 3 times"):
        sample(server, page_size=100)


def test_forbidden_names_the_missing_permission(server: FakeApiServer) -> None:
    server.faults.forbid = {"pods"}
    with pytest.raises(KubeAuthError) as err:
        sample(server)
    message = str(err.value)
    assert "forbidden: cannot list pods at cluster scope" in message
    assert "needs `list` on `pods` (ClusterRole)" in message
    assert (
        'User "system:serviceaccount:costapp:costapp-collector" cannot list resource "pods"'
        in message
    )


def test_forbidden_replicasets_names_the_api_group(server: FakeApiServer) -> None:
    server.faults.forbid = {"replicasets"}
    with pytest.raises(KubeAuthError, match="`list` on `replicasets` in API group `apps`"):
        sample(server)


def test_unauthorized_is_an_auth_error(server: FakeApiServer) -> None:
    server.faults.unauthorized = True
    with pytest.raises(KubeAuthError, match="unauthorized"):
        sample(server)
    assert len(server.requests) == 1  # never retried


def test_a_slow_response_times_out_and_is_retried(server: FakeApiServer) -> None:
    server.faults.delay = 1.0
    server.faults.slow_requests = {2}  # the first page of nodes
    s = sample(server, timeout=(2.0, 0.3))
    assert len(s.nodes) == 20
    assert [p for p, _ in server.requests[:3]] == [
        "/api/v1/namespaces",
        "/api/v1/nodes",
        "/api/v1/nodes",
    ]


def test_an_api_server_that_stays_slow_is_unavailable_after_three_tries(
    server: FakeApiServer,
) -> None:
    server.faults.delay = 1.0
    server.faults.slow_requests = None
    slept: list[float] = []
    with pytest.raises(KubeUnavailable, match="listing namespaces failed after 3 tries"):
        take_sample(server.api_client(), timeout=(2.0, 0.2), sleep=slept.append)
    assert len(server.requests) == 3
    assert slept == [0.5, 1.0]  # exponential backoff between tries


def test_a_server_error_is_retried(server: FakeApiServer) -> None:
    server.faults.fail_requests = {3: 500, 4: 503}
    s = sample(server)
    assert len(s.pods) == 700


def test_a_failed_page_means_no_sample(server: FakeApiServer, generated: FakeCluster) -> None:
    sample(server, page_size=100)
    third_pod_page = [
        i + 1 for i, (path, q) in enumerate(server.requests) if path == "/api/v1/pods"
    ][2]
    with FakeApiServer(generated) as failing:
        failing.faults.fail_requests = {third_pod_page + k: 500 for k in range(3)}
        with pytest.raises(KubeUnavailable, match="listing pods failed after 3 tries"):
            sample(failing, page_size=100)
        assert len(pod_requests(failing)) == 5  # two good pages, then three failed tries


def test_a_bad_request_mid_list_is_an_error(server: FakeApiServer) -> None:
    server.faults.fail_resources = {"jobs": 400}
    with pytest.raises(KubeError, match="listing jobs failed: HTTP 400"):
        sample(server)


def test_missing_metrics_api_gives_requests_only(server: FakeApiServer) -> None:
    server.faults.no_metrics = True
    s = sample(server)
    assert not s.metrics_available
    assert s.pod_usage == {} and s.node_usage == {}
    assert len(s.pods) == 700 and s.pods[0].cpu_request > 0


def test_a_metrics_api_that_is_down_gives_requests_only(server: FakeApiServer) -> None:
    server.faults.fail_resources = {"nodes.metrics.k8s.io": 503}
    s = sample(server)
    assert not s.metrics_available
    assert s.pod_usage == {} and s.node_usage == {}  # never half the metrics


def test_malformed_objects_are_skipped_and_counted() -> None:
    cluster = load_testdata("honeycomb")
    cluster.add(
        "pods",
        {
            "metadata": {"name": "weird", "namespace": "x", "labels": "oops"},
            "spec": {"nodeName": "duckboat-01"},
            "status": {"phase": "Running"},
        },
    )
    cluster.add(
        "pods",
        {
            "metadata": {"name": "badcpu", "namespace": "x"},
            "spec": {
                "nodeName": "duckboat-01",
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "lots"}}}],
            },
            "status": {"phase": "Running"},
        },
    )
    cluster.add(
        "pods",
        {
            "metadata": {"name": "badres", "namespace": "x"},
            "spec": {"nodeName": "duckboat-01", "containers": [{"resources": {"requests": []}}]},
            "status": {"phase": "Running"},
        },
    )
    cluster.add("nodes", {"metadata": {"uid": "no-name"}, "status": {}})
    with FakeApiServer(cluster) as server:
        s = sample(server)
    assert len(s.pods) == 11 and len(s.nodes) == 2
    assert sorted((k.kind, k.name) for k in s.skipped) == [
        ("Node", "?"),
        ("Pod", "x/badcpu"),
        ("Pod", "x/badres"),
        ("Pod", "x/weird"),
    ]
    assert all(k.reason.startswith("malformed") for k in s.skipped)


def test_forbidden_metrics_names_the_metrics_api_group(server: FakeApiServer) -> None:
    server.faults.forbid = {"pods.metrics.k8s.io"}
    with pytest.raises(KubeAuthError, match="`list` on `pods` in API group `metrics.k8s.io`"):
        sample(server)


def test_a_page_that_is_not_json_means_no_sample(server: FakeApiServer) -> None:
    server.faults.garbage_requests = {2}
    with pytest.raises(KubeError, match="listing nodes: Node list page is not a Kubernetes list"):
        sample(server)


def test_too_many_requests_waits_as_the_server_asks(server: FakeApiServer) -> None:
    server.faults.fail_requests = {2: 429}
    slept: list[float] = []
    s = take_sample(server.api_client(), sleep=slept.append)
    assert len(s.nodes) == 20
    assert slept == [1.0]  # Retry-After: 1


def test_the_fake_server_speaks_the_list_and_status_wire_format(server: FakeApiServer) -> None:
    import json

    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    core = k8s.CoreV1Api(server.api_client())
    first = json.loads(core.list_node(limit=8, _preload_content=False).data)
    assert (first["kind"], first["apiVersion"]) == ("NodeList", "v1")
    meta = first["metadata"]
    assert meta["resourceVersion"] and meta["continue"] and meta["remainingItemCount"] == 12
    last = json.loads(
        core.list_node(limit=8, _continue=meta["continue"], _preload_content=False).data
    )
    assert "remainingItemCount" in last["metadata"]  # 4 more after this page
    server.faults.expire_continue = 1
    with pytest.raises(ApiException) as err:
        core.list_node(limit=8, _continue=meta["continue"], _preload_content=False)
    status = json.loads(err.value.body)
    assert (err.value.status, status["kind"], status["reason"], status["code"]) == (
        410,
        "Status",
        "Expired",
        410,
    )
