"""Hypothesis strategies: small random clusters and policies for property-based tests."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import strategies as st

from allocation import NodeHour, NodeHours, Overhead, PodHour, PodHours, Policy

from .helpers import T0

NAMESPACES = ("a", "b", "c", "kube-system")
QTY = st.one_of(st.just(0.0), st.floats(0.0, 6.0, allow_nan=False, allow_infinity=False))
HOURS = st.one_of(st.just(1.0), st.floats(0.05, 1.0))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[NodeHours, PodHours]:
    """1–2 clusters, 1–3 nodes each, 1–4 hours starting at 22:00 (so days and steps differ)."""
    nodes: list[NodeHour] = []
    pods: list[PodHour] = []
    n_hours = draw(st.integers(1, 4))
    for c in range(draw(st.integers(1, 2))):
        for n in range(draw(st.integers(1, 3))):
            for h in range(n_hours):
                if h > 0 and not draw(st.booleans()):
                    continue
                hour_start = T0 + timedelta(hours=22 + h)
                nodes.append(
                    NodeHour(
                        cluster=f"c{c}",
                        node=f"n{n}",
                        hour_start=hour_start,
                        hours=draw(HOURS),
                        cpu_cores=draw(st.sampled_from([1.0, 2.0, 4.0])),
                        ram_gib=draw(st.sampled_from([0.0, 4.0, 16.0])),
                        gpus=draw(st.sampled_from([0.0, 0.0, 1.0])),
                        cost=draw(st.floats(0.0, 10.0)),
                        node_pool=draw(st.sampled_from(["p1", "p2", None])),
                        capacity_type=draw(st.sampled_from(["on-demand", "spot"])),
                    )
                )
                for _ in range(draw(st.integers(0, 4))):
                    pods.append(
                        PodHour(
                            cluster=f"c{c}",
                            namespace=draw(st.sampled_from(NAMESPACES)),
                            pod=f"p{draw(st.integers(0, 5))}",
                            node=f"n{n}",
                            hour_start=hour_start,
                            hours=draw(HOURS),
                            cpu_request=draw(QTY),
                            cpu_usage=draw(QTY),
                            ram_request_gib=draw(QTY),
                            ram_usage_gib=draw(QTY),
                            gpu_request=draw(st.sampled_from([0.0, 0.0, 1.0, 2.0])),
                            cpu_alloc=draw(st.one_of(st.none(), QTY)),
                            team=draw(st.sampled_from(["t1", "t2", None])),
                        )
                    )
    return NodeHours.from_records(nodes), PodHours.from_records(pods)


def policies(
    *, shared: bool = True, splits: tuple[str, ...] = ("weighted", "even")
) -> st.SearchStrategy[Policy]:
    """Any policy; ``shared=False`` gives no shared namespaces and no overhead."""
    return st.builds(
        Policy,
        basis=st.sampled_from(["max", "request", "usage"]),
        weights=st.sampled_from(["opencost", "aws-split", {"cpu": 1.0, "ram": 2.0, "gpu": 3.0}]),
        idle=st.sampled_from(["separate", "share-by-node", "share-by-cluster"]),
        shared_namespaces=st.just(())
        if not shared
        else st.sampled_from([(), ("kube-system",), ("kube-system", "c")]),
        shared_split=st.sampled_from(splits),
        overhead=st.just(())
        if not shared
        else st.sampled_from(
            [
                (),
                (Overhead("c0", "cp", 0.1),),
                (Overhead("c0", "cp", 0.1), Overhead("c1", "nat", 1.0)),
            ]
        ),
    )


KEY_SUBSETS = st.lists(
    st.sampled_from(
        ["node", "node_pool", "capacity_type", "namespace", "pod", "team", "controller"]
    ),
    unique=True,
    max_size=3,
)
STEPS = st.sampled_from(["hour", "day", "month", "window"])
