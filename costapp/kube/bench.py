"""Benchmark one sample of a large generated cluster through the real client over HTTP.

    python -m costapp.kube.bench [--nodes 5000 --pods 150000 --seed 1 --page-size 500]

1. Start the fake API server with ``generate_cluster(nodes, pods)`` in a child process (so its
   gigabyte of pre-serialised pages does not count against the sampler's memory).
2. Warm the kubernetes client up (its API classes build pydantic validators on first use).
3. Take one sample; report wall seconds and the peak RSS of this process during the sample
   (Linux: the high-water mark is reset through /proc/self/clear_refs before the sample).
4. Fetch every pod page again and time, page by page, ``json.loads`` against our decode
   (msgspec, needed fields only) and decode + conversion to PodSnapshot records.

Targets (ARCHITECTURE.md): sample < 10 s and < 1 GB; parsing <= 0.2 x json.loads.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

__all__ = ["main", "run"]


def _serve(args: argparse.Namespace) -> None:
    from costapp.kube.fake_apiserver import FakeApiServer, generate_cluster

    cluster = generate_cluster(nodes=args.nodes, pods=args.pods, seed=args.seed)
    pod_bytes = sum(len(b) for b in cluster.items["pods"])
    with FakeApiServer(cluster) as server:
        print(json.dumps({"url": server.url, "pod_bytes": pod_bytes}), flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin


def _rss_reset() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss_now_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run(url: str, page_size: int = 500) -> dict[str, Any]:
    """Sample the API server at ``url`` once and measure; returns the figures."""
    import gc

    from kubernetes import client as k8s

    from costapp.kube import parse
    from costapp.kube.client import POD_SELECTOR, take_sample

    configuration = k8s.Configuration(host=url)
    configuration.retries = False
    api_client = k8s.ApiClient(configuration)

    # Warm-up: build the client's API classes and validators once (a per-process cost).
    def raw(call: Any, *args: Any, **kwargs: Any) -> bytes:
        data: bytes = call(*args, _preload_content=False, **kwargs).data
        return data

    raw(k8s.CoreV1Api(api_client).list_namespace, limit=1)
    raw(k8s.AppsV1Api(api_client).list_replica_set_for_all_namespaces, limit=1)
    raw(k8s.BatchV1Api(api_client).list_job_for_all_namespaces, limit=1)
    raw(k8s.CoreV1Api(api_client).list_pod_for_all_namespaces, limit=1)
    raw(k8s.CoreV1Api(api_client).list_node, limit=1)
    custom = k8s.CustomObjectsApi(api_client)
    raw(custom.list_cluster_custom_object, "metrics.k8s.io", "v1beta1", "nodes", limit=1)

    gc.collect()
    base_mb = _rss_now_mb()
    exact_peak = _rss_reset()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sample = take_sample(api_client, page_size=page_size)
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - cpu0
    peak_mb = _rss_peak_mb()
    figures: dict[str, Any] = {
        "nodes": len(sample.nodes),
        "pods": len(sample.pods),
        "pod_usage": len(sample.pod_usage),
        "skipped": len(sample.skipped),
        "sample_seconds": round(seconds, 2),
        "sample_cpu_seconds": round(cpu_seconds, 2),  # this process only, all threads
        "rss_before_mb": round(base_mb),
        "rss_peak_mb": round(peak_mb),
        "rss_peak_is_per_sample": exact_peak,
    }
    del sample
    gc.collect()

    # Parse time against json.loads, on the same pod pages (both with the cyclic GC off, as
    # take_sample runs).
    gc.disable()
    core = k8s.CoreV1Api(api_client)
    owners = parse.OwnerIndex()
    convert = partial(parse.pod_snapshot, owners=owners)
    cont = ""
    t_json = t_decode = t_convert = 0.0
    total = 0
    while True:
        kwargs: dict[str, Any] = {"limit": page_size, "field_selector": POD_SELECTOR}
        if cont:
            kwargs["_continue"] = cont
        data = raw(core.list_pod_for_all_namespaces, **kwargs)
        total += len(data)
        a = time.perf_counter()
        json.loads(data)
        b = time.perf_counter()
        page = parse.decode_page("Pod", data)
        c = time.perf_counter()
        parse.convert_all("Pod", page.items, convert, [])
        d = time.perf_counter()
        t_json += b - a
        t_decode += c - b
        t_convert += d - b
        cont = page.cont
        if not cont:
            break
    gc.enable()
    figures.update(
        {
            "pod_json_mb": round(total / 2**20),
            "json_loads_seconds": round(t_json, 2),
            "decode_seconds": round(t_decode, 2),
            "decode_and_convert_seconds": round(t_convert, 2),
            "decode_ratio": round(t_decode / t_json, 3),
            "decode_and_convert_ratio": round(t_convert / t_json, 3),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints the figures as ``key: value`` lines."""
    parser = argparse.ArgumentParser(prog="python -m costapp.kube.bench", description=__doc__)
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--pods", type=int, default=150_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args)
        return 0

    t0 = time.perf_counter()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "costapp.kube.bench",
            "--serve",
            "--nodes",
            str(args.nodes),
            "--pods",
            str(args.pods),
            "--seed",
            str(args.seed),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout is not None
        ready = json.loads(child.stdout.readline())
        print(
            f"generated {args.nodes} nodes, {args.pods} pods "
            f"({ready['pod_bytes'] / 2**20:.0f} MB of pod JSON) in {time.perf_counter() - t0:.1f} s"
        )
        figures = run(ready["url"], page_size=args.page_size)
    finally:
        if child.stdin:
            child.stdin.close()
        child.wait(timeout=30)
    for key, value in figures.items():
        print(f"{key}: {value}")
    ok = figures["sample_seconds"] < 10 and figures["rss_peak_mb"] < 1024
    print("targets (sample < 10 s, < 1 GB):", "met" if ok else "NOT met")
    print(
        "parse target (decode <= 0.2 x json.loads):",
        "met" if figures["decode_ratio"] <= 0.2 else "NOT met",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
