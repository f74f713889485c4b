"""A local stand-in for the Kubernetes API server, for tests and the benchmark.

It serves List responses in the exact wire format (``apiVersion``, ``kind``,
``metadata.resourceVersion``, ``metadata.continue``, ``metadata.remainingItemCount``) for the
cluster-wide lists the collector reads, honours ``limit``, ``continue`` (an opaque base64 token),
``resourceVersion=0`` (served unpaged, like the real watch cache) and the pod field selectors,
and answers errors with real ``Status`` objects. Fault knobs (``Faults``) inject delays, failed
requests, expired continue tokens, forbidden resources, 401, a missing or down metrics API.

Items are held pre-serialised as bytes, so a page is one ``b",".join`` and the server is never
the bottleneck. Data comes from the real payloads in the shared data directory
(``load_testdata``) or from ``generate_cluster`` (large clusters shaped like real ones).

    with FakeApiServer(generate_cluster(nodes=50, pods=1500, seed=1)) as server:
        sample = take_sample(server.api_client())
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

__all__ = [
    "PATHS",
    "FakeApiServer",
    "FakeCluster",
    "Faults",
    "generate_cluster",
    "load_testdata",
    "shared_data_dir",
]

# path → (resource, API group, list kind, apiVersion)
PATHS: dict[str, tuple[str, str, str, str]] = {
    "/api/v1/nodes": ("nodes", "", "NodeList", "v1"),
    "/api/v1/pods": ("pods", "", "PodList", "v1"),
    "/api/v1/namespaces": ("namespaces", "", "NamespaceList", "v1"),
    "/apis/apps/v1/replicasets": ("replicasets", "apps", "ReplicaSetList", "apps/v1"),
    "/apis/batch/v1/jobs": ("jobs", "batch", "JobList", "batch/v1"),
    "/apis/metrics.k8s.io/v1beta1/pods": (
        "pods.metrics.k8s.io",
        "metrics.k8s.io",
        "PodMetricsList",
        "metrics.k8s.io/v1beta1",
    ),
    "/apis/metrics.k8s.io/v1beta1/nodes": (
        "nodes.metrics.k8s.io",
        "metrics.k8s.io",
        "NodeMetricsList",
        "metrics.k8s.io/v1beta1",
    ),
}
_RESOURCE_PATH = {v[0]: k for k, v in PATHS.items()}

SERVICE_ACCOUNT = "system:serviceaccount:costapp:costapp-collector"
EXPIRED_MESSAGE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)


def shared_data_dir() -> Path:
    """The shared data directory: ``$COSTAPP_SHARED_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get("COSTAPP_SHARED_DATA")
    if env:
        return Path(env)
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


@dataclass
class Faults:
    """Fault injection; change fields at any time, the server reads them per request.

    delay: seconds to wait before answering requests whose 1-based number is in
        ``slow_requests`` (every request when ``slow_requests`` is None).
    fail_requests: request number → HTTP status to answer instead (500, 503, 429…).
    fail_resources: resource → HTTP status to answer for every request of it.
    expire_continue: how many requests carrying a continue token get 410 Expired.
    forbid: resources (``pods``, ``nodes``, ``replicasets``…) answered 403 Forbidden.
    unauthorized: answer every request 401.
    no_metrics: metrics.k8s.io is not installed (404 for its paths).
    garbage_requests: request numbers answered 200 with a body that is not JSON (a broken
        proxy in the way).
    """

    delay: float = 0.0
    slow_requests: set[int] | None = field(default_factory=set)
    fail_requests: dict[int, int] = field(default_factory=dict)
    fail_resources: dict[str, int] = field(default_factory=dict)
    expire_continue: int = 0
    forbid: set[str] = field(default_factory=set)
    unauthorized: bool = False
    no_metrics: bool = False
    garbage_requests: set[int] = field(default_factory=set)


class FakeCluster:
    """The objects a fake server serves: per resource, a list of pre-serialised items.

    Pods also keep (nodeName, phase, namespace, name) for field selectors.
    """

    def __init__(self) -> None:
        self.items: dict[str, list[bytes]] = {v[0]: [] for v in PATHS.values()}
        self.pod_fields: list[tuple[str, str, str, str]] = []
        self.resource_version = 1000

    def add(self, resource: str, obj: dict[str, Any]) -> None:
        """Add one object (a dict in wire form) to ``resource`` (e.g. ``pods``)."""
        self.add_bytes(resource, msgspec.json.encode(obj), obj)

    def add_bytes(self, resource: str, data: bytes, obj: dict[str, Any] | None = None) -> None:
        """Add an already serialised object; ``obj`` gives pods' selector fields."""
        self.items[resource].append(data)
        if resource == "pods":
            o = obj if obj is not None else _loads_or_empty(data)
            meta, spec, status = (_dict(o, k) for k in ("metadata", "spec", "status"))
            self.pod_fields.append(
                (
                    str(spec.get("nodeName") or ""),
                    str(status.get("phase") or ""),
                    str(meta.get("namespace") or ""),
                    str(meta.get("name") or ""),
                )
            )

    def add_list(self, resource: str, payload: dict[str, Any]) -> None:
        """Add every item of a List payload (as found in the data files)."""
        for item in payload.get("items") or []:
            self.add(resource, item)

    def count(self, resource: str) -> int:
        return len(self.items[resource])

    def total_bytes(self, resource: str) -> int:
        return sum(len(b) for b in self.items[resource])


def _loads_or_empty(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def load_testdata(name: str) -> FakeCluster:
    """A cluster made of the real payloads in ``<shared data>/04_k8s``.

    ``honeycomb``: EKS NodeList (2 nodes), PodList (11 pods), metrics derived from the real
    kubelet summary. ``gke``: libcloud's GKE fixtures (1 node, 1 pod, real metrics-server
    lists). Namespaces are made from the pods' namespaces (the sources carry no NamespaceList).
    """
    base = shared_data_dir() / "04_k8s"
    files = {
        "honeycomb": {
            "nodes": "honeycomb_agent_testdata/nodes.json",
            "pods": "honeycomb_agent_testdata/pods.json",
            "pods.metrics.k8s.io": "honeycomb_agent_testdata/"
            "derived_PodMetricsList_from_stats_summary.json",
            "nodes.metrics.k8s.io": "honeycomb_agent_testdata/"
            "derived_NodeMetricsList_from_stats_summary.json",
        },
        "gke": {
            "nodes": "libcloud_gke_fixtures/api_v1_nodes.json",
            "pods": "libcloud_gke_fixtures/api_v1_pods.json",
            "pods.metrics.k8s.io": "libcloud_gke_fixtures/apis_metrics_k8s_io_v1beta1_pods.json",
            "nodes.metrics.k8s.io": "libcloud_gke_fixtures/apis_metrics_k8s_io_v1beta1_nodes.json",
        },
    }[name]
    cluster = FakeCluster()
    namespaces: set[str] = set()
    for resource, rel in files.items():
        payload = json.loads((base / rel).read_bytes())
        cluster.add_list(resource, payload)
        if resource == "pods":
            namespaces.update(i["metadata"].get("namespace", "") for i in payload["items"])
    for ns in sorted(namespaces):
        cluster.add("namespaces", _namespace(ns, {}))
    return cluster


def _namespace(name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": _uid(random.Random(name)),
            "resourceVersion": "1",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "labels": {"kubernetes.io/metadata.name": name, **labels},
            "annotations": {},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def _uid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --------------------------------------------------------------------------------------------
# HTTP


class FakeApiServer:
    """ThreadingHTTPServer on 127.0.0.1 (random port) in a daemon thread; a context manager.

    ``requests`` logs (path, query dict) of every request; ``faults`` can be changed live.
    """

    def __init__(
        self, cluster: FakeCluster, faults: Faults | None = None, token: str | None = None
    ) -> None:
        """``token``: when set, requests must carry ``Authorization: Bearer <token>`` (else 401)."""
        self.cluster = cluster
        self.token = token
        self.faults = faults or Faults()
        self.requests: list[tuple[str, dict[str, list[str]]]] = []
        self._lock = threading.Lock()
        self._selector_cache: dict[str, list[int]] = {}
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeApiServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this server, urllib3 retries off."""
        from kubernetes import client as k8s

        configuration = k8s.Configuration(host=self.url)
        configuration.retries = False
        return k8s.ApiClient(configuration)

    # -- request handling --------------------------------------------------------------------

    def handle(
        self, path: str, query: dict[str, list[str]], authorization: str = ""
    ) -> tuple[int, bytes, float]:
        """(status, body, delay seconds) for one GET."""
        with self._lock:
            self.requests.append((path, query))
            number = len(self.requests)
            f = self.faults
            delay = f.delay if (f.slow_requests is None or number in f.slow_requests) else 0.0
            forced = f.fail_requests.get(number)
            garbage = number in f.garbage_requests
        spec = PATHS.get(path)
        if spec is None:
            return (
                404,
                _status(404, "NotFound", "the server could not find the requested resource"),
                delay,
            )
        resource, group, list_kind, api_version = spec
        if f.unauthorized or (self.token and authorization != f"Bearer {self.token}"):
            return 401, _status(401, "Unauthorized", "Unauthorized"), delay
        if group == "metrics.k8s.io" and f.no_metrics:
            return (
                404,
                _status(404, "NotFound", "the server could not find the requested resource"),
                delay,
            )
        short = resource.split(".")[0]
        if resource in f.forbid or short in f.forbid:
            message = (
                f'{short} is forbidden: User "{SERVICE_ACCOUNT}" cannot list resource "{short}" '
                f'in API group "{group}" at the cluster scope'
            )
            return 403, _status(403, "Forbidden", message, {"kind": short}), delay
        forced = forced or f.fail_resources.get(resource) or f.fail_resources.get(short)
        if forced:
            return forced, _forced_status(forced, resource), delay
        if garbage:
            return 200, b"<html><body>upstream connect error</body></html>", delay
        return self._list(resource, list_kind, api_version, query) + (delay,)

    def _list(
        self, resource: str, list_kind: str, api_version: str, query: dict[str, list[str]]
    ) -> tuple[int, bytes]:
        cluster = self.cluster
        selector = query.get("fieldSelector", [""])[0]
        token = query.get("continue", [""])[0]
        limit = int(query.get("limit", ["0"])[0] or 0)
        rv = query.get("resourceVersion", [""])[0]
        try:
            index = self._select(resource, selector)
        except ValueError as exc:
            return 400, _status(400, "BadRequest", str(exc))
        start = 0
        list_rv = str(cluster.resource_version)
        if token:
            if rv:
                return 400, _status(
                    400,
                    "BadRequest",
                    "specifying resource version is not allowed when using continue",
                )
            with self._lock:
                expire = self.faults.expire_continue > 0
                if expire:
                    self.faults.expire_continue -= 1
            if expire:
                return 410, _status(410, "Expired", EXPIRED_MESSAGE)
            try:
                state = json.loads(base64.urlsafe_b64decode(token.encode()))
                start, list_rv = int(state["start"]), str(state["rv"])
                if state["r"] != resource or state["s"] != selector:
                    raise ValueError("continue token for another list")
            except (ValueError, KeyError, TypeError):
                return 400, _status(400, "BadRequest", f"invalid continue token {token!r}")
        if rv == "0" and not token:
            limit = 0  # the watch cache ignores limit (Kubernetes < 1.33)
        end = len(index) if limit <= 0 else min(len(index), start + limit)
        items = cluster.items[resource]
        meta: dict[str, Any] = {"resourceVersion": list_rv}
        if end < len(index):
            state = {"r": resource, "s": selector, "start": end, "rv": list_rv}
            meta["continue"] = base64.urlsafe_b64encode(json.dumps(state).encode()).decode()
            meta["remainingItemCount"] = len(index) - end
        head = (
            b'{"kind":"'
            + list_kind.encode()
            + b'","apiVersion":"'
            + api_version.encode()
            + b'","metadata":'
            + json.dumps(meta).encode()
            + b',"items":['
        )
        body = b",".join(items[i] for i in index[start:end])
        return 200, head + body + b"]}"

    def _select(self, resource: str, selector: str) -> list[int]:
        key = resource + "?" + selector
        cached = self._selector_cache.get(key)
        if cached is not None and len(cached) <= self.cluster.count(resource):
            if not selector:
                if len(cached) == self.cluster.count(resource):
                    return cached
            else:
                return cached
        n = self.cluster.count(resource)
        if not selector:
            index = list(range(n))
        else:
            if resource != "pods":
                raise ValueError(f'field label not supported: "{selector}"')
            tests = []
            for term in selector.split(","):
                negate = "!=" in term
                fld, _, value = term.partition("!=" if negate else "=")
                value = value.lstrip("=")
                pos = {
                    "spec.nodeName": 0,
                    "status.phase": 1,
                    "metadata.namespace": 2,
                    "metadata.name": 3,
                }.get(fld)
                if pos is None:
                    raise ValueError(f'field label not supported: "{fld}"')
                tests.append((pos, value, negate))
            fields = self.cluster.pod_fields
            index = [
                i
                for i in range(n)
                if all((fields[i][p] != v) if neg else (fields[i][p] == v) for p, v, neg in tests)
            ]
        self._selector_cache[key] = index
        return index


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    obj: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        obj["details"] = details
    return json.dumps(obj).encode()


def _forced_status(code: int, resource: str) -> bytes:
    reasons = {
        429: (
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        ),
        500: ("InternalError", "Internal error occurred: injected failure"),
        503: (
            "ServiceUnavailable",
            f"the server is currently unable to handle the request (get {resource})",
        ),
        504: ("Timeout", "the server was unable to return a response in the time allotted"),
    }
    reason, message = reasons.get(code, ("InternalError", f"injected HTTP {code}"))
    return _status(code, reason, message)


def _handler_for(server: FakeApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out without a delayed-ACK stall

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            parts = urlsplit(self.path)
            status, body, delay = server.handle(
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                self.headers.get("Authorization", ""),
            )
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to do

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    return Handler


# --------------------------------------------------------------------------------------------
# Generated clusters

_INSTANCE_TYPES = [
    # (instance type, cpu, memory GiB, gpus, max pods)
    ("m6i.2xlarge", 8, 32, 0, 58),
    ("m6i.4xlarge", 16, 64, 0, 234),
    ("c6i.8xlarge", 32, 64, 0, 234),
    ("r6i.4xlarge", 16, 128, 0, 234),
    ("m6i.8xlarge", 32, 128, 0, 234),
    ("g5.2xlarge", 8, 32, 1, 58),
    ("p4d.24xlarge", 96, 1152, 8, 737),
]
_ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]


def _node(i: int, rng: random.Random) -> dict[str, Any]:
    itype, cpu, mem, gpus, max_pods = _INSTANCE_TYPES[
        rng.choices(range(len(_INSTANCE_TYPES)), weights=[30, 30, 15, 10, 10, 4, 1])[0]
    ]
    zone = rng.choice(_ZONES)
    name = f"ip-10-{i // 250 % 256}-{i % 250}-{rng.randrange(1, 255)}.ec2.internal"
    capacity_type = rng.choices(["on-demand", "spot", "reserved"], weights=[60, 30, 10])[0]
    pool = "gpu" if gpus else rng.choice(["general", "compute", "memory", "batch"])
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": itype,
        "beta.kubernetes.io/os": "linux",
        "failure-domain.beta.kubernetes.io/region": "us-east-1",
        "failure-domain.beta.kubernetes.io/zone": zone,
        "k8s.io/cloud-provider-aws": "a9c2e4f5b7d8e1f3a6c9b2d5e8f1a4c7",
        "karpenter.k8s.aws/instance-category": itype[0],
        "karpenter.k8s.aws/instance-cpu": str(cpu),
        "karpenter.k8s.aws/instance-family": itype.split(".")[0],
        "karpenter.k8s.aws/instance-generation": "6",
        "karpenter.k8s.aws/instance-memory": str(mem * 1024),
        "karpenter.k8s.aws/instance-size": itype.split(".")[1],
        "karpenter.sh/capacity-type": capacity_type,
        "karpenter.sh/initialized": "true",
        "karpenter.sh/nodepool": pool,
        "karpenter.sh/registered": "true",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": itype,
        "topology.ebs.csi.aws.com/zone": zone,
        "topology.k8s.aws/zone-id": "use1-az" + zone[-1],
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": zone,
    }
    resources = {
        "attachable-volumes-aws-ebs": "39",
        "cpu": str(cpu),
        "ephemeral-storage": "104845292Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{mem * 1024 * 1024 - rng.randrange(200000, 700000)}Ki",
        "pods": str(max_pods),
    }
    alloc = dict(resources)
    alloc["cpu"] = f"{cpu * 1000 - 90 - cpu * 10}m"
    alloc["memory"] = f"{mem * 1024 * 1024 - 1800000}Ki"
    alloc["ephemeral-storage"] = "95551679124"
    if gpus:
        resources["nvidia.com/gpu"] = alloc["nvidia.com/gpu"] = str(gpus)
    instance = f"i-{rng.getrandbits(68):017x}"
    conditions = [
        {
            "type": t,
            "status": s,
            "lastHeartbeatTime": "2025-06-01T11:58:47Z",
            "lastTransitionTime": "2025-05-20T01:46:48Z",
            "reason": r,
            "message": m,
        }
        for t, s, r, m in [
            (
                "MemoryPressure",
                "False",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            (
                "PIDPressure",
                "False",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
    ]
    images = [
        {
            "names": [
                f"123456789012.dkr.ecr.us-east-1.amazonaws.com/svc-{j}@sha256:{rng.getrandbits(256):064x}",
                f"123456789012.dkr.ecr.us-east-1.amazonaws.com/svc-{j}:v1.{j}.{rng.randrange(99)}",
            ],
            "sizeBytes": rng.randrange(10_000_000, 2_000_000_000),
        }
        for j in range(rng.randrange(8, 20))
    ]
    return {
        "metadata": {
            "name": name,
            "uid": _uid(rng),
            "resourceVersion": str(rng.randrange(10**8)),
            "creationTimestamp": "2025-05-20T01:46:51Z",
            "labels": labels,
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": "10.0.0.1",
                "csi.volume.kubernetes.io/nodeid": json.dumps({"ebs.csi.aws.com": instance}),
                "karpenter.k8s.aws/ec2nodeclass-hash": str(rng.getrandbits(60)),
                "karpenter.sh/nodepool-hash": str(rng.getrandbits(60)),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": {
            "providerID": f"aws:///{zone}/{instance}",
            "taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}] if gpus else [],
        },
        "status": {
            "capacity": resources,
            "allocatable": alloc,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": "10.0.0.1"},
                {"type": "Hostname", "address": name},
                {"type": "InternalDNS", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": f"{rng.getrandbits(128):032x}",
                "systemUUID": _uid(rng),
                "bootID": _uid(rng),
                "kernelVersion": "6.1.128-136.201.amzn2023.x86_64",
                "osImage": "Amazon Linux 2023.6.20250303",
                "containerRuntimeVersion": "containerd://1.7.25",
                "kubeletVersion": "v1.31.5-eks-5d632ec",
                "kubeProxyVersion": "v1.31.5-eks-5d632ec",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": images,
        },
    }


_REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
_SENTINELS = ("@@NAME@@", "@@UID@@", "@@NODE@@", "@@IP@@")


def _pod_template(
    namespace: str,
    owner_kind: str,
    owner_name: str,
    labels: dict[str, str],
    rng: random.Random,
    containers: int,
    with_init: bool,
) -> list[str]:
    """One workload's pod as a JSON string split on the per-pod sentinels."""
    cpu_choices = ["50m", "100m", "250m", "500m", "1", "2"]
    mem_choices = ["64Mi", "128Mi", "256Mi", "512Mi", "1Gi", "2Gi", "4Gi"]
    specs = []
    statuses = []
    for c in range(containers):
        cname = "app" if c == 0 else f"sidecar-{c}"
        req = {"cpu": rng.choice(cpu_choices), "memory": rng.choice(mem_choices)}
        resources: dict[str, Any] = {"requests": req}
        if rng.random() < 0.6:
            resources["limits"] = {"memory": req["memory"]}
        specs.append(
            {
                "name": cname,
                "image": f"{_REGISTRY}/{owner_name}/{cname}:v2.{rng.randrange(50)}",
                "ports": [{"name": "http", "containerPort": 8080 + c, "protocol": "TCP"}],
                "env": [
                    {"name": f"ENV_{k}", "value": f"value-{rng.getrandbits(40):x}"}
                    for k in range(rng.randrange(8, 20))
                ]
                + [
                    {
                        "name": "POD_NAME",
                        "valueFrom": {
                            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}
                        },
                    }
                ],
                "resources": resources,
                "volumeMounts": [
                    {
                        "name": "kube-api-access",
                        "readOnly": True,
                        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    }
                ],
                "livenessProbe": {
                    "httpGet": {"path": "/healthz", "port": 8080 + c, "scheme": "HTTP"},
                    "initialDelaySeconds": 10,
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "readinessProbe": {
                    "httpGet": {"path": "/ready", "port": 8080 + c, "scheme": "HTTP"},
                    "timeoutSeconds": 1,
                    "periodSeconds": 10,
                    "successThreshold": 1,
                    "failureThreshold": 3,
                },
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent",
            }
        )
        statuses.append(
            {
                "name": cname,
                "state": {"running": {"startedAt": "2025-06-01T08:48:31Z"}},
                "lastState": {},
                "ready": True,
                "restartCount": rng.randrange(3),
                "image": specs[-1]["image"],
                "imageID": f"docker-pullable://repo@sha256:{rng.getrandbits(256):064x}",
                "containerID": f"containerd://{rng.getrandbits(256):064x}",
                "started": True,
            }
        )
    init = []
    if with_init:
        init.append(
            {
                "name": "init-config",
                "image": "busybox:1.36",
                "command": ["sh", "-c", "cp /config/* /work/"],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            }
        )
    volumes: list[dict[str, Any]] = [
        {
            "name": "kube-api-access",
            "projected": {
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
                "defaultMode": 420,
            },
        }
    ]
    if rng.random() < 0.2:
        volumes.append({"name": "scratch", "emptyDir": {}})
    managed = [
        {
            "manager": "kube-controller-manager",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2025-06-01T08:47:32Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {".": {}, **{f"f:{k}": {} for k in labels}}},
                "f:spec": {
                    "f:containers": {
                        f'k:{{"name":"{s["name"]}"}}': {".": {}, "f:image": {}, "f:resources": {}}
                        for s in specs
                    }
                },
            },
        },
        {
            "manager": "kubelet",
            "operation": "Update",
            "apiVersion": "v1",
            "time": "2025-06-01T08:49:29Z",
            "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:status": {
                    "f:conditions": {},
                    "f:containerStatuses": {},
                    "f:hostIP": {},
                    "f:phase": {},
                    "f:podIP": {},
                    "f:startTime": {},
                }
            },
            "subresource": "status",
        },
    ]
    pod = {
        "metadata": {
            "name": _SENTINELS[0],
            "generateName": owner_name + "-",
            "namespace": namespace,
            "uid": _SENTINELS[1],
            "resourceVersion": str(rng.randrange(10**8)),
            "creationTimestamp": "2025-06-01T08:47:32Z",
            "labels": labels,
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": "2025-05-30T10:00:00Z",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "8080",
            },
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": owner_kind,
                    "name": owner_name,
                    "uid": _uid(rng),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
            if owner_kind
            else [],
            "managedFields": managed,
        },
        "spec": {
            "volumes": volumes,
            "initContainers": init,
            "containers": specs,
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "nodeName": _SENTINELS[2],
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": "2025-06-01T08:47:49Z",
                }
                for t in (
                    "PodReadyToStartContainers",
                    "Initialized",
                    "Ready",
                    "ContainersReady",
                    "PodScheduled",
                )
            ],
            "hostIP": _SENTINELS[3],
            "hostIPs": [{"ip": _SENTINELS[3]}],
            "podIP": _SENTINELS[3],
            "podIPs": [{"ip": _SENTINELS[3]}],
            "startTime": "2025-06-01T08:47:49Z",
            "containerStatuses": statuses,
            "qosClass": "Burstable",
        },
    }
    if not init:
        del pod["spec"]["initContainers"]  # type: ignore[attr-defined]
    text = json.dumps(pod, separators=(",", ":"))
    # Alternating literal text and sentinel names: [text, "@@NAME@@", text, "@@IP@@", …, text].
    return re.split("(" + "|".join(_SENTINELS) + ")", text)


def generate_cluster(nodes: int = 5000, pods: int = 150_000, seed: int = 0) -> FakeCluster:
    """A large cluster shaped like real ones, for the benchmark and paging tests.

    Nodes: Karpenter/EKS labels (instance type, zone, capacity type, node pool), ~25 labels,
    conditions, images. Pods: Deployments (via ReplicaSets), StatefulSets, DaemonSets, CronJob
    Jobs and bare pods; 1–3 containers with requests/limits, env, probes, managedFields and
    containerStatuses (about the median size of the real pods, ~5–7 KB). Metrics for every
    pod and node.
    """
    rng = random.Random(seed)
    cluster = FakeCluster()
    node_names = []
    for i in range(nodes):
        node = _node(i, rng)
        node_names.append(node["metadata"]["name"])
        cluster.add("nodes", node)
        cluster.add(
            "nodes.metrics.k8s.io",
            {
                "metadata": {
                    "name": node["metadata"]["name"],
                    "creationTimestamp": "2025-06-01T12:00:00Z",
                },
                "timestamp": "2025-06-01T11:59:40Z",
                "window": "20.05s",
                "usage": {
                    "cpu": f"{rng.randrange(10**8, 6 * 10**9)}n",
                    "memory": f"{rng.randrange(10**6, 3 * 10**7)}Ki",
                },
            },
        )
    n_ns = max(1, min(300, pods // 500))
    namespaces = [f"team-{i:03d}" for i in range(n_ns)] + ["kube-system", "monitoring"]
    for ns in namespaces:
        team = ns if ns.startswith("team-") else "platform"
        cluster.add(
            "namespaces", _namespace(ns, {"team": team, "cost-center": f"cc-{hash(team) % 50}"})
        )

    made = 0
    # DaemonSets: 3 per node in kube-system, if the budget allows.
    daemonsets = ["aws-node", "kube-proxy", "ebs-csi-node"] if pods >= 3 * nodes else []
    for ds in daemonsets:
        parts = _pod_template("kube-system", "DaemonSet", ds, {"k8s-app": ds}, rng, 1, False)
        for node in node_names:
            made += 1
            _add_pod(cluster, parts, "kube-system", f"{ds}-{rng.getrandbits(25):x}", node, rng)
    w = 0
    while made < pods:
        w += 1
        ns = rng.choice(namespaces[:-2]) if n_ns else "default"
        kind = rng.choices(["Deployment", "StatefulSet", "CronJob", ""], weights=[80, 10, 8, 2])[0]
        name = f"svc-{w}"
        replicas = min(pods - made, rng.choice([1, 2, 3, 5, 10, 20]) if kind != "" else 1)
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": ns, "team": ns}
        owner_kind, owner_name = kind, name
        if kind == "Deployment":
            h = f"{rng.getrandbits(40):010x}"[:10]
            owner_kind, owner_name = "ReplicaSet", f"{name}-{h}"
            labels["pod-template-hash"] = h
            cluster.add(
                "replicasets",
                _owned("ReplicaSet", "apps/v1", ns, owner_name, "Deployment", name, rng, replicas),
            )
            cluster.add(
                "replicasets",
                _owned(
                    "ReplicaSet", "apps/v1", ns, f"{name}-old{h[:5]}", "Deployment", name, rng, 0
                ),
            )
        elif kind == "CronJob":
            owner_kind, owner_name = "Job", f"{name}-{rng.randrange(29_000_000, 29_999_999)}"
            cluster.add(
                "jobs", _owned("Job", "batch/v1", ns, owner_name, "CronJob", name, rng, None)
            )
        parts = _pod_template(
            ns, owner_kind, owner_name, labels, rng, rng.choice([1, 1, 2, 3]), rng.random() < 0.2
        )
        for r in range(replicas):
            suffix = str(r) if kind == "StatefulSet" else f"{rng.getrandbits(25):x}"
            _add_pod(
                cluster,
                parts,
                ns,
                f"{owner_name}-{suffix}" if owner_kind else name,
                rng.choice(node_names) if node_names else "",
                rng,
            )
            made += 1
    return cluster


def _add_pod(
    cluster: FakeCluster, parts: list[str], ns: str, name: str, node: str, rng: random.Random
) -> None:
    ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    values = {"@@NAME@@": name, "@@UID@@": _uid(rng), "@@NODE@@": node, "@@IP@@": ip}
    data = "".join([values.get(p, p) if i % 2 else p for i, p in enumerate(parts)]).encode()
    cluster.items["pods"].append(data)
    cluster.pod_fields.append((node, "Running", ns, name))
    n_containers = parts[-1].count('"restartCount"')
    cluster.add(
        "pods.metrics.k8s.io",
        {
            "metadata": {
                "name": name,
                "namespace": ns,
                "creationTimestamp": "2025-06-01T12:00:00Z",
            },
            "timestamp": "2025-06-01T11:59:41Z",
            "window": "18.928s",
            "containers": [
                {
                    "name": f"c{c}",
                    "usage": {
                        "cpu": f"{rng.randrange(10**5, 10**9)}n",
                        "memory": f"{rng.randrange(1000, 4 * 10**6)}Ki",
                    },
                }
                for c in range(max(1, n_containers))
            ],
        },
    )


def _owned(
    kind: str,
    api_version: str,
    ns: str,
    name: str,
    owner_kind: str,
    owner: str,
    rng: random.Random,
    replicas: int | None,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": _uid(rng),
            "resourceVersion": str(rng.randrange(10**8)),
            "creationTimestamp": "2025-06-01T08:47:32Z",
            "labels": {"app.kubernetes.io/name": owner},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1" if owner_kind == "Deployment" else "batch/v1",
                    "kind": owner_kind,
                    "name": owner,
                    "uid": _uid(rng),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": owner}},
                "spec": {"containers": [{"name": "app", "image": f"repo/{owner}:v1"}]},
            }
        },
        "status": {},
    }
    if replicas is not None:
        obj["spec"]["replicas"] = replicas
        obj["status"] = {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        }
    return obj


def iter_sizes(cluster: FakeCluster, resource: str) -> Iterable[int]:
    """Sizes in bytes of the serialised items of ``resource`` (for reports)."""
    return (len(b) for b in cluster.items[resource])
