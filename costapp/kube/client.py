"""Take one all-or-nothing sample of a cluster with the official ``kubernetes`` client.

How the lists are read, and why:

* Every list is paged (``limit`` = page size, then ``continue``), with ``_preload_content=False``
  so the client never builds its model objects: each page's bytes go straight to msgspec
  (``costapp.kube.parse``) and only the records are kept. Memory is one page plus the records.
* Nodes, pods, ReplicaSets and Jobs are listed *without* ``resourceVersion``: a paged list from
  etcd, where the continue token pins every page to the first page's resourceVersion, so the
  pages form one consistent snapshot. ``resourceVersion=0`` would be served from the watch
  cache, which (before Kubernetes 1.33's paged cache lists) ignores ``limit`` and returns the
  whole list in one response — for 150,000 pods about a gigabyte in one body.
* Namespaces are small and staleness does not matter for them, so they are read with
  ``resourceVersion=0`` (cheap, from the watch cache); should the server page them anyway, the
  following pages use ``continue`` alone (the API forbids resourceVersion with continue).
* metrics.k8s.io is an aggregated API that serves from metrics-server's memory; it is paged the
  same way (metrics-server ignores ``limit`` and returns everything, which is fine).

Faults:

* Timeouts, connection errors, 429 and 5xx: retried, ``tries`` attempts in all with exponential
  backoff (0.5 s, 1 s, …; Retry-After honoured up to 10 s); then KubeUnavailable.
* 401/403: KubeAuthError naming the permission the service account lacks.
* 410 Gone on a continue token: that list restarts from its first page, at most
  ``max_restarts`` times.
* metrics.k8s.io missing (404) or down (503 after retries): the sample carries requests only,
  ``metrics_available=False`` and no usage. Never invented, never partial.
* A malformed object is skipped and reported in ``Sample.skipped``.
* Any other failure of any page raises: there is no partial sample.
"""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from costapp.kube import parse
from costapp.kube.records import (
    NamespaceSnapshot,
    NodeSnapshot,
    PodSnapshot,
    Sample,
    Skipped,
    Usage,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "KubeAuthError",
    "KubeError",
    "KubeUnavailable",
    "api_client_from_kubeconfig",
    "api_client_in_cluster",
    "take_sample",
]

#: (connect, read) seconds for one page.
DEFAULT_TIMEOUT: tuple[float, float] = (5.0, 30.0)
POD_SELECTOR = "spec.nodeName!=,status.phase!=Succeeded,status.phase!=Failed"

ERR_FORBIDDEN = (
    "forbidden: cannot list {resource} at cluster scope — the service account needs `list` on "
    "`{plural}`{group} (ClusterRole). Server said: {message}"
)
ERR_UNAUTHORIZED = (
    "unauthorized: the API server rejected the credentials while listing {resource} "
    "(expired token or wrong kubeconfig user). Server said: {message}"
)
ERR_UNAVAILABLE = "API server unavailable: listing {resource} failed after {tries} tries: {error}"
ERR_EXPIRED = "listing {resource}: continue token expired {times} times in a row; giving up"
ERR_API = "listing {resource} failed: HTTP {status} {reason}: {message}"
ERR_PAGE = "listing {resource}: {error}"


class KubeError(Exception):
    """Reading the cluster failed; no sample was taken."""


class KubeAuthError(KubeError):
    """The credentials were rejected (401) or lack a permission (403)."""


class KubeUnavailable(KubeError):
    """The API server did not answer in time or kept failing (timeouts, 5xx, 429)."""


class _Expired(Exception):
    """410 Gone: the continue token expired."""


class _NotFound(Exception):
    """404: the API (e.g. metrics.k8s.io) is not installed."""


def _no_urllib3_retries(configuration: k8s.Configuration) -> k8s.ApiClient:
    # take_sample retries itself, bounded; urllib3's own retries would multiply the attempts.
    configuration.retries = False
    return k8s.ApiClient(configuration)


def api_client_from_kubeconfig(path: str, context: str | None = None) -> k8s.ApiClient:
    """An ApiClient for ``context`` (default: current) of the kubeconfig file at ``path``."""
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(
        config_file=path, context=context, client_configuration=configuration
    )
    return _no_urllib3_retries(configuration)


def api_client_from_kubeconfig_dict(
    data: dict[str, Any], context: str | None = None
) -> k8s.ApiClient:
    """An ApiClient from a kubeconfig already loaded as a dict (e.g. decrypted from the DB)."""
    configuration = k8s.Configuration()
    k8s_config.load_kube_config_from_dict(
        config_dict=data, context=context, client_configuration=configuration
    )
    return _no_urllib3_retries(configuration)


def api_client_in_cluster() -> k8s.ApiClient:
    """An ApiClient from the pod's service account (running inside the measured cluster)."""
    configuration = k8s.Configuration()
    k8s_config.load_incluster_config(client_configuration=configuration)
    return _no_urllib3_retries(configuration)


def _message(exc: ApiException) -> str:
    body = exc.body or ""
    try:
        return str(json.loads(body).get("message", body))
    except (ValueError, AttributeError):
        return str(body)[:300] or str(exc.reason)


class _Reader:
    """Pages through lists with bounded retries; one instance per sample."""

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        page_size: int,
        timeout: float | tuple[float, float],
        tries: int,
        backoff: float,
        max_restarts: int,
        sleep: Callable[[float], None],
    ) -> None:
        self.core = k8s.CoreV1Api(api_client)
        self.apps = k8s.AppsV1Api(api_client)
        self.batch = k8s.BatchV1Api(api_client)
        self.custom = k8s.CustomObjectsApi(api_client)
        self.page_size = page_size
        self.timeout = timeout
        self.tries = tries
        self.backoff = backoff
        self.max_restarts = max_restarts
        self.sleep = sleep

    def get(self, resource: str, group: str, call: Callable[..., Any], **kwargs: Any) -> bytes:
        """One page, retried on transient faults. Returns the body bytes."""
        error: object = None
        for attempt in range(self.tries):
            delay = self.backoff * (2**attempt)
            try:
                resp = call(_preload_content=False, _request_timeout=self.timeout, **kwargs)
                try:
                    data: bytes = resp.data
                finally:
                    resp.release_conn()
                return data
            except ApiException as exc:
                status = exc.status or 0
                if status == 401:
                    raise KubeAuthError(
                        ERR_UNAUTHORIZED.format(resource=resource, message=_message(exc))
                    ) from exc
                if status == 403:
                    group_text = f" in API group `{group}`" if group else ""
                    raise KubeAuthError(
                        ERR_FORBIDDEN.format(
                            resource=resource,
                            plural=resource.split(".")[0],
                            group=group_text,
                            message=_message(exc),
                        )
                    ) from exc
                if status == 404:
                    raise _NotFound(_message(exc)) from exc
                if status == 410:
                    raise _Expired(_message(exc)) from exc
                if status != 0 and status != 429 and status < 500:
                    raise KubeError(
                        ERR_API.format(
                            resource=resource,
                            status=status,
                            reason=exc.reason,
                            message=_message(exc),
                        )
                    ) from exc
                error = f"HTTP {status} {exc.reason}: {_message(exc)}"
                retry_after = (exc.headers or {}).get("Retry-After")
                if retry_after and retry_after.isdigit():
                    delay = min(float(retry_after), 10.0)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt + 1 < self.tries:
                self.sleep(delay)
        raise KubeUnavailable(
            ERR_UNAVAILABLE.format(resource=resource, tries=self.tries, error=error)
        )

    def pages(
        self,
        resource: str,
        group: str,
        kind: str,
        call: Callable[..., Any],
        *,
        cached: bool = False,
        **kwargs: Any,
    ) -> Iterator[parse.Page[Any]]:
        """Decoded pages of one pass over a list; raises _Expired when a continue token expires.

        The next page is fetched in a helper thread while this one is decoded and consumed:
        its continue token is read from the head of the body (the API server writes the list
        metadata before the items) and checked against the decoded page before it is used.
        ``cached``: first page with resourceVersion=0 (watch cache), see the module docstring.
        """

        def fetch(cont: str) -> bytes:
            args = dict(kwargs, limit=self.page_size)
            if cont:
                args["_continue"] = cont
            elif cached:
                args["resource_version"] = "0"
            return self.get(resource, group, call, **args)

        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kube-prefetch")
        ahead: Future[bytes] | None = None
        try:
            data = fetch("")
            while True:
                token = _peek_continue(data)
                ahead = pool.submit(fetch, token) if token else None
                try:
                    page = parse.decode_page(kind, data)
                except parse.PageError as exc:
                    raise KubeError(ERR_PAGE.format(resource=resource, error=exc)) from exc
                del data
                yield page
                if not page.cont:
                    return
                if ahead is not None and token == page.cont:
                    data = ahead.result()
                else:
                    data = fetch(page.cont)
                ahead = None
        finally:
            if ahead is not None:
                ahead.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def list_all(
        self,
        resource: str,
        group: str,
        kind: str,
        call: Callable[..., Any],
        *,
        cached: bool = False,
        **kwargs: Any,
    ) -> tuple[list[Any], list[Skipped]]:
        """Every item of a list; restarts the list when a continue token expires."""
        for _restart in range(self.max_restarts + 1):
            items: list[Any] = []
            skipped: list[Skipped] = []
            try:
                for page in self.pages(resource, group, kind, call, cached=cached, **kwargs):
                    items.extend(page.items)
                    skipped.extend(page.skipped)
                return items, skipped
            except _Expired:
                continue
        raise KubeUnavailable(ERR_EXPIRED.format(resource=resource, times=self.max_restarts + 1))

    def each_page(
        self,
        resource: str,
        group: str,
        kind: str,
        call: Callable[..., Any],
        consume: Callable[[list[Any], list[Skipped]], None],
        reset: Callable[[], None],
        **kwargs: Any,
    ) -> None:
        """Like list_all, but hands each page to ``consume`` so raw items are not kept
        (used for pods: 150,000 of them). ``reset`` drops what was consumed on a restart."""
        for _restart in range(self.max_restarts + 1):
            reset()
            try:
                for page in self.pages(resource, group, kind, call, **kwargs):
                    consume(page.items, page.skipped)
                return
            except _Expired:
                continue
        raise KubeUnavailable(ERR_EXPIRED.format(resource=resource, times=self.max_restarts + 1))


# The list's own metadata, first in the body: {"kind":…,"apiVersion":…,"metadata":{…"continue":"…"
_CONTINUE_RE = re.compile(rb'^[^\[]*?"metadata":\{[^{}]*?"continue":"([^"\\]*)"')


def _peek_continue(data: bytes) -> str:
    """The continue token from the head of a list body, or "" when not found there."""
    match = _CONTINUE_RE.match(data, 0, 4096)
    return match.group(1).decode() if match else ""


def take_sample(
    api_client: k8s.ApiClient,
    *,
    page_size: int = 500,
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    tries: int = 3,
    backoff: float = 0.5,
    max_restarts: int = 2,
    sleep: Callable[[float], None] = time.sleep,
) -> Sample:
    """Read one consistent sample of the cluster behind ``api_client``.

    Steps: namespaces; nodes; ReplicaSets and Jobs (to resolve owners); pods, converted page by
    page; then pod and node metrics. Raises KubeAuthError, KubeUnavailable or KubeError when any
    list fails — never returns a partial sample — except that a missing or unavailable metrics
    API yields ``metrics_available=False``.
    """
    # The sample builds a few hundred thousand small objects and no reference cycles; the cyclic
    # garbage collector would rescan them again and again (a third of the time at 150k pods).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _take_sample(
            api_client,
            page_size=page_size,
            timeout=timeout,
            tries=tries,
            backoff=backoff,
            max_restarts=max_restarts,
            sleep=sleep,
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _take_sample(
    api_client: k8s.ApiClient,
    *,
    page_size: int,
    timeout: float | tuple[float, float],
    tries: int,
    backoff: float,
    max_restarts: int,
    sleep: Callable[[float], None],
) -> Sample:
    taken_at = datetime.now(UTC)
    reader = _Reader(
        api_client,
        page_size=page_size,
        timeout=timeout,
        tries=tries,
        backoff=backoff,
        max_restarts=max_restarts,
        sleep=sleep,
    )
    skipped: list[Skipped] = []

    def listed(items_skipped: tuple[list[Any], list[Skipped]]) -> list[Any]:
        items, bad = items_skipped
        skipped.extend(bad)
        return items

    try:
        raw_ns = listed(
            reader.list_all("namespaces", "", "Namespace", reader.core.list_namespace, cached=True)
        )
        namespaces: list[NamespaceSnapshot] = parse.convert_all(
            "Namespace", raw_ns, parse.namespace_snapshot, skipped
        )
        del raw_ns
        raw_nodes = listed(reader.list_all("nodes", "", "Node", reader.core.list_node))
        nodes: list[NodeSnapshot] = parse.convert_all(
            "Node", raw_nodes, parse.node_snapshot, skipped
        )
        del raw_nodes

        owners = parse.OwnerIndex()
        for rs in listed(
            reader.list_all(
                "replicasets", "apps", "ReplicaSet", reader.apps.list_replica_set_for_all_namespaces
            )
        ):
            owners.add_replicaset(rs)
        for job in listed(
            reader.list_all("jobs", "batch", "Job", reader.batch.list_job_for_all_namespaces)
        ):
            owners.add_job(job)

        pods: list[PodSnapshot] = []
        pod_skipped: list[Skipped] = []

        def reset() -> None:
            pods.clear()
            pod_skipped.clear()

        convert_pod = partial(parse.pod_snapshot, owners=owners)

        def consume(items: list[Any], bad: list[Skipped]) -> None:
            pod_skipped.extend(bad)
            pods.extend(parse.convert_all("Pod", items, convert_pod, pod_skipped))

        reader.each_page(
            "pods",
            "",
            "Pod",
            reader.core.list_pod_for_all_namespaces,
            consume,
            reset,
            field_selector=POD_SELECTOR,
        )
        skipped.extend(pod_skipped)
    except _NotFound as exc:
        raise KubeError(f"a core API list returned 404 Not Found: {exc}") from exc

    metrics_available, pod_usage, node_usage = _metrics(reader, pods, nodes, skipped)
    return Sample(
        taken_at=taken_at,
        nodes=nodes,
        pods=pods,
        namespaces=namespaces,
        pod_usage=pod_usage,
        node_usage=node_usage,
        metrics_available=metrics_available,
        skipped=skipped,
        workload_replicas=owners.workload_replicas,
    )


def _metrics(
    reader: _Reader, pods: list[PodSnapshot], nodes: list[NodeSnapshot], skipped: list[Skipped]
) -> tuple[bool, dict[tuple[str, str], Usage], dict[str, Usage]]:
    """Pod and node usage from metrics.k8s.io, or (False, {}, {}) when it is not serving.

    Only usage of pods and nodes in this sample is kept. Both lists or neither.
    """
    group, version = "metrics.k8s.io", "v1beta1"

    def lister(plural: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            return reader.custom.list_cluster_custom_object(group, version, plural, **kwargs)

        return call

    metric_skipped: list[Skipped] = []
    try:
        raw_pods = reader.list_all("pods.metrics.k8s.io", group, "PodMetrics", lister("pods"))
        raw_nodes = reader.list_all("nodes.metrics.k8s.io", group, "NodeMetrics", lister("nodes"))
    except (_NotFound, KubeUnavailable):
        return False, {}, {}
    metric_skipped.extend(raw_pods[1])
    metric_skipped.extend(raw_nodes[1])
    pod_keys = {(p.namespace, p.name) for p in pods}
    node_names = {n.name for n in nodes}
    pod_usage: dict[tuple[str, str], Usage] = {}
    for key, usage in parse.convert_all("PodMetrics", raw_pods[0], parse.pod_usage, metric_skipped):
        if key in pod_keys:
            pod_usage[key] = usage
    node_usage: dict[str, Usage] = {}
    for name, usage in parse.convert_all(
        "NodeMetrics", raw_nodes[0], parse.node_usage, metric_skipped
    ):
        if name in node_names:
            node_usage[name] = usage
    skipped.extend(metric_skipped)
    return True, pod_usage, node_usage
