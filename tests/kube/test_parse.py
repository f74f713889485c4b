"""Wire JSON → records: real payloads, requests as the scheduler counts them, owners, labels."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from costapp.kube import parse
from costapp.kube.fake_apiserver import shared_data_dir
from costapp.kube.parse import OwnerIndex, capacity_type, decode_page, node_pool

DATA = shared_data_dir() / "04_k8s"
GIB = 2**30


def _page(kind: str, items: list[dict[str, Any]]) -> parse.Page[Any]:
    return decode_page(kind, json.dumps({"kind": kind + "List", "items": items}).encode())


def _pod(**spec: Any) -> dict[str, Any]:
    meta = spec.pop("metadata", {})
    return {
        "metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta},
        "spec": {"nodeName": "n1", **spec},
        "status": {"phase": "Running"},
    }


def _snap(pod: dict[str, Any], owners: OwnerIndex | None = None) -> Any:
    page = _page("Pod", [pod])
    assert not page.skipped
    return parse.pod_snapshot(page.items[0], owners or OwnerIndex())


def test_the_real_eks_node_gives_capacity_allocatable_and_cloud_labels() -> None:
    page = decode_page("Node", (DATA / "honeycomb_agent_testdata/nodes.json").read_bytes())
    node = parse.node_snapshot(page.items[0])
    assert node.name == "duckboat-01"
    assert node.uid == "757c743d-83c3-4bd7-9966-1eeac736ef84"
    assert node.provider_id == "aws:///us-east-1a/i-03dc801fd988ab620"
    assert node.instance_type == "m6gd.2xlarge"
    assert (node.region, node.zone) == ("us-east-1", "us-east-1a")
    assert node.node_pool == "custom-1"
    assert node.capacity_type == "on-demand"
    assert node.cpu_cores == 8.0
    assert node.ram_gib == 32144656 * 1024 / GIB
    assert node.alloc_cpu_cores == 7.91
    assert node.alloc_ram_gib == 31127824 * 1024 / GIB
    assert node.gpus == 0.0
    assert node.created is not None and node.created.isoformat() == "2021-12-08T01:46:51+00:00"
    assert node.labels["kubernetes.io/arch"] == "arm64"


def test_real_pods_give_requests_limits_owner_and_local_storage() -> None:
    page = decode_page("Pod", (DATA / "honeycomb_agent_testdata/pods.json").read_bytes())
    pods = {p.name: p for p in (parse.pod_snapshot(i, OwnerIndex()) for i in page.items) if p}
    assert len(pods) == 11
    speaker = pods["speaker-cpxhz"]
    assert (speaker.cpu_request, speaker.ram_request_gib) == (0.1, 100 / 1024)
    assert (speaker.cpu_limit, speaker.ram_limit_gib) == (0.1, 100 / 1024)
    assert (speaker.controller_kind, speaker.controller) == ("DaemonSet", "speaker")
    calico = pods["calico-node-h2bjp"]  # three init containers without requests
    assert (calico.cpu_request, calico.ram_request_gib, calico.cpu_limit) == (0.25, 0.0, None)
    assert calico.has_local_storage  # hostPath volumes
    assert not pods["kuard-6b65d9d8b5-44bbs"].has_local_storage
    # No ReplicaSet list here: the pod-template-hash still names the Deployment.
    php = pods["phpmyadmin-54c7cdbdc7-8qnbr"]
    assert (php.controller_kind, php.controller) == ("Deployment", "phpmyadmin")
    assert php.namespace == "mysql" and php.node == "duckboat-01"
    assert php.labels["app"] == "phpmyadmin"


def test_real_metrics_server_lists_give_usage_in_cores_and_gib() -> None:
    page = decode_page(
        "PodMetrics",
        (DATA / "libcloud_gke_fixtures/apis_metrics_k8s_io_v1beta1_pods.json").read_bytes(),
    )
    usage = dict(parse.pod_usage(i) for i in page.items)
    assert len(usage) == 10
    # stackdriver-metadata-agent: two containers, summed.
    key = ("kube-system", "stackdriver-metadata-agent-cluster-level-849ff68b6d-fphxl")
    assert usage[key].cpu_cores == pytest.approx(0.030081564 + 0.001435158, abs=1e-15)
    assert usage[key].ram_gib == (7376 + 20224) * 1024 / GIB
    page = decode_page(
        "NodeMetrics",
        (DATA / "libcloud_gke_fixtures/apis_metrics_k8s_io_v1beta1_nodes.json").read_bytes(),
    )
    name, node_usage = parse.node_usage(page.items[0])
    assert name == "gke-cluster-3-default-pool-76fd57f7-l83v"
    assert node_usage.cpu_cores == 0.110691045
    assert node_usage.ram_gib == 801112 * 1024 / GIB


def test_alibaba_gpu_nodes_count_their_gpus() -> None:
    yaml = pytest.importorskip("yaml")
    text = (DATA / "alibaba_openb_nodes/openb_node_list_gpu_node.yaml").read_text()
    nodes = [yaml.safe_load(doc) for doc in text.split("\n---\n")[:50]]
    page = _page("Node", nodes)
    snaps = [parse.node_snapshot(n) for n in page.items]
    assert snaps[0].name == "openb-node-0000"
    assert (snaps[0].cpu_cores, snaps[0].ram_gib, snaps[0].gpus) == (64.0, 256.0, 2.0)
    assert all(s.capacity_type == "unknown" for s in snaps)


def test_effective_request_counts_sidecars_init_containers_and_overhead() -> None:
    pod = _pod(
        initContainers=[
            {"name": "early-init", "resources": {"requests": {"cpu": "3"}}},
            {
                "name": "proxy",
                "restartPolicy": "Always",
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"cpu": "200m", "memory": "128Mi"},
                },
            },
            {"name": "migrate", "resources": {"requests": {"cpu": "2", "memory": "256Mi"}}},
        ],
        containers=[
            {
                "name": "app",
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}},
            }
        ],
        overhead={"cpu": "250m", "memory": "64Mi"},
    )
    snap = _snap(pod)
    # max(app 0.5 + sidecar 0.1, early-init 3, migrate 2 + sidecar 0.1) + overhead 0.25
    assert snap.cpu_request == pytest.approx(3.25)
    # max(1024 + 128, 256 + 128) + 64 MiB
    assert snap.ram_request_gib == (1024 + 128 + 64) / 1024
    # limits: app 1 + sidecar 0.2 (+ overhead); regular init containers without limits don't count
    assert snap.cpu_limit == pytest.approx(1.45)
    assert snap.ram_limit_gib is None  # the app container has no memory limit


def test_a_regular_init_container_needs_the_sidecars_started_before_it() -> None:
    pod = _pod(
        initContainers=[
            {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
            {"name": "init", "resources": {"requests": {"cpu": "4"}}},
        ],
        containers=[{"name": "app", "resources": {"requests": {"cpu": "1"}}}],
    )
    assert _snap(pod).cpu_request == 5.0  # init 4 + sidecar 1 > app 1 + sidecar 1


def test_requests_default_to_limits_and_gpus_count_from_either() -> None:
    pod = _pod(
        containers=[
            {
                "name": "a",
                "resources": {"limits": {"cpu": "2", "memory": "1Gi", "nvidia.com/gpu": "1"}},
            },
            {
                "name": "b",
                "resources": {"requests": {"amd.com/gpu": "2"}, "limits": {"amd.com/gpu": "2"}},
            },
        ]
    )
    snap = _snap(pod)
    assert (snap.cpu_request, snap.ram_request_gib, snap.gpu_request) == (2.0, 1.0, 3.0)


def test_finished_and_unscheduled_pods_are_left_out() -> None:
    done = _pod()
    done["status"]["phase"] = "Succeeded"
    pending = _pod(nodeName="")
    assert _snap(done) is None and _snap(pending) is None


def test_owners_resolve_to_deployment_and_cronjob() -> None:
    owners = OwnerIndex()
    rs = _page(
        "ReplicaSet",
        [
            {
                "metadata": {
                    "name": "web-abc",
                    "namespace": "ns",
                    "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}],
                },
                "spec": {"replicas": 3},
            },
            {
                "metadata": {
                    "name": "web-old",
                    "namespace": "ns",
                    "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": True}],
                },
                "spec": {"replicas": 0},
            },
        ],
    )
    for item in rs.items:
        owners.add_replicaset(item)
    job = _page(
        "Job",
        [
            {
                "metadata": {
                    "name": "nightly-2901",
                    "namespace": "ns",
                    "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": True}],
                }
            },
            {"metadata": {"name": "adhoc", "namespace": "ns"}},
        ],
    )
    for item in job.items:
        owners.add_job(item)

    def owner(kind: str, name: str) -> tuple[str, str]:
        refs = [{"apiVersion": "v1", "kind": kind, "name": name, "uid": "x", "controller": True}]
        snap = _snap(_pod(metadata={"ownerReferences": refs}), owners)
        return snap.controller_kind, snap.controller

    assert owner("ReplicaSet", "web-abc") == ("Deployment", "web")
    assert owner("Job", "nightly-2901") == ("CronJob", "nightly")
    assert owner("Job", "adhoc") == ("Job", "adhoc")
    assert owner("StatefulSet", "db") == ("StatefulSet", "db")
    assert owner("ReplicaSet", "gone-123") == ("ReplicaSet", "gone-123")
    bare = _snap(_pod(), owners)
    assert (bare.controller_kind, bare.controller) == ("", "")
    assert owners.workload_replicas == {("ns", "Deployment", "web"): 3}


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"karpenter.sh/capacity-type": "spot"}, "spot"),
        ({"karpenter.sh/capacity-type": "on-demand"}, "on-demand"),
        ({"karpenter.sh/capacity-type": "reserved"}, "reserved"),
        ({"eks.amazonaws.com/capacityType": "SPOT"}, "spot"),
        ({"eks.amazonaws.com/capacityType": "ON_DEMAND"}, "on-demand"),
        ({"cloud.google.com/gke-nodepool": "p", "cloud.google.com/gke-spot": "true"}, "spot"),
        (
            {"cloud.google.com/gke-nodepool": "p", "cloud.google.com/gke-preemptible": "true"},
            "spot",
        ),
        ({"cloud.google.com/gke-nodepool": "p"}, "on-demand"),
        (
            {
                "kubernetes.azure.com/agentpool": "a",
                "kubernetes.azure.com/scalesetpriority": "spot",
            },
            "spot",
        ),
        ({"kubernetes.azure.com/agentpool": "a"}, "on-demand"),
        ({"node.kubernetes.io/lifecycle": "spot"}, "spot"),
        ({"node-lifecycle": "spot"}, "spot"),
        ({"node.alibabacloud.com/spot-instance": "true"}, "spot"),
        ({"kubernetes.io/os": "linux"}, "unknown"),
    ],
)
def test_capacity_type_is_normalised(labels: dict[str, str], expected: str) -> None:
    assert capacity_type(labels) == expected


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("eks.amazonaws.com/nodegroup", "ng-1"),
        ("cloud.google.com/gke-nodepool", "default-pool"),
        ("kubernetes.azure.com/agentpool", "nodepool1"),
        ("agentpool", "nodepool1"),
        ("karpenter.sh/nodepool", "general"),
        ("karpenter.sh/provisioner-name", "default"),
        ("alibabacloud.com/nodepool-id", "np-123"),
    ],
)
def test_node_pool_comes_from_each_provider_label(label: str, value: str) -> None:
    assert node_pool({label: value}) == value


def test_a_malformed_item_is_skipped_and_the_rest_of_the_page_kept() -> None:
    good = _pod()
    bad = _pod(metadata={"name": "bad", "labels": ["not", "a", "map"]})
    page = _page("Pod", [good, bad])
    assert len(page.items) == 1
    assert [(s.kind, s.name) for s in page.skipped] == [("Pod", "ns/bad")]


def test_a_page_that_is_not_a_list_is_an_error() -> None:
    with pytest.raises(parse.PageError):
        decode_page("Pod", b"<html>gateway timeout</html>")
    with pytest.raises(parse.PageError):
        decode_page("Pod", msgspec.json.encode({"items": "nope"}))
