"""§8: ``python -m allocation allocate`` on small CSV files, and its handling of bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from allocation.errors import (
    E_EMPTY_CELL,
    E_HOURS_RANGE,
    E_MISSING_COLUMN,
    E_NEGATIVE,
    E_NO_NODE_HOUR,
    E_NOT_A_NUMBER,
    E_NOT_FINITE,
    E_POLICY_UNKNOWN_KEY,
)

REPO = Path(__file__).resolve().parents[2]

NODES = """cluster,node,hour_start,hours,cpu_cores,ram_gib,gpus,cost,node_pool,capacity_type
prod,n1,2024-09-01T00:00:00Z,1,4,16,0,0.192,general,on-demand
prod,n1,2024-09-01T01:00:00+00:00,1,4,16,0,0.192,general,on-demand
prod,n2,2024-09-01T00:00:00,1,4,16,0,0.192,general,spot
"""
POD_HEADER = (
    "cluster,namespace,pod,node,hour_start,hours,cpu_request,cpu_usage,"
    "ram_request_gib,ram_usage_gib,gpu_request,team,labels\n"
)
PODS = (
    POD_HEADER
    + """prod,web,web-1,n1,2024-09-01T00:00:00Z,1,1,0.5,4,2,0,alpha,"{""app"": ""web""}"
prod,web,web-1,n1,2024-09-01T01:00:00Z,1,1,0.5,4,2,0,alpha,
prod,kube-system,dns,n2,2024-09-01T00:00:00Z,0.5,0.5,0.1,1,1,0,,
"""
)


def _run(
    tmp_path: Path,
    nodes: str = NODES,
    pods: str = PODS,
    policy: dict | None = None,  # type: ignore[type-arg]
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "nodes.csv").write_text(nodes)
    (tmp_path / "pods.csv").write_text(pods)
    args = [
        sys.executable,
        "-m",
        "allocation",
        "allocate",
        "--nodes",
        "nodes.csv",
        "--pods",
        "pods.csv",
        "--out",
        "result.csv",
        *extra,
    ]
    if policy is not None:
        (tmp_path / "policy.json").write_text(json.dumps(policy))
        args += ["--policy", "policy.json"]
    return subprocess.run(
        args,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )


def _rows(tmp_path: Path) -> list[dict[str, str]]:
    with open(tmp_path / "result.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_allocate_writes_the_spec_columns(tmp_path: Path) -> None:
    proc = _run(tmp_path, extra=("--aggregate", "namespace,team"))
    assert proc.returncode == 0, proc.stderr
    rows = _rows(tmp_path)
    assert list(rows[0]) == [
        "kind",
        "namespace",
        "team",
        "window_start",
        "window_end",
        "cpu_core_hours",
        "ram_gib_hours",
        "gpu_hours",
        "cpu_cost",
        "ram_cost",
        "gpu_cost",
        "idle_cost",
        "shared_cost",
        "total_cost",
        "cpu_efficiency",
        "ram_efficiency",
        "total_efficiency",
    ]
    web = next(r for r in rows if r["namespace"] == "web")
    assert web["team"] == "alpha"
    assert web["window_start"] == "2024-09-01T00:00:00Z"
    assert web["window_end"] == "2024-09-01T02:00:00Z"
    assert float(web["cpu_core_hours"]) == pytest.approx(2.0)
    assert float(web["cpu_cost"]) == pytest.approx(2 * 0.0312471, rel=1e-5)
    assert len(web["cpu_cost"].split(".")[1]) >= 6
    assert sum(float(r["total_cost"]) for r in rows) == pytest.approx(3 * 0.192)
    ks = next(r for r in rows if r["namespace"] == "kube-system")
    assert ks["team"] == "__unallocated__"
    assert {r["kind"] for r in rows} == {"workload", "idle"}


def test_allocate_applies_the_policy_file_and_step(tmp_path: Path) -> None:
    policy = {
        "basis": "request",
        "weights": "aws-split",
        "idle": "share-by-cluster",
        "shared_namespaces": ["kube-system"],
        "shared_split": "even",
        "overhead": [{"cluster": "prod", "name": "control-plane", "hourly": 0.10}],
    }
    proc = _run(
        tmp_path, policy=policy, extra=("--aggregate", "cluster,label:app", "--step", "hour")
    )
    assert proc.returncode == 0, proc.stderr
    rows = _rows(tmp_path)
    assert {r["window_start"] for r in rows} == {"2024-09-01T00:00:00Z", "2024-09-01T01:00:00Z"}
    assert all(r["kind"] == "workload" for r in rows)
    assert sum(float(r["total_cost"]) for r in rows) == pytest.approx(3 * 0.192 + 2 * 0.10)


BAD_CASES = [
    # (name, nodes, pods, expected message prefix)
    (
        "missing column",
        NODES.replace(",cost,", ",price,"),
        PODS,
        E_MISSING_COLUMN.format(source="nodes.csv", row=1, column="cost"),
    ),
    (
        "non-numeric",
        NODES.replace("4,16,0,0.192,general,spot", "4,lots,0,0.192,general,spot"),
        PODS,
        E_NOT_A_NUMBER.format(source="nodes.csv", row=4, column="ram_gib", value="lots"),
    ),
    (
        "negative",
        NODES,
        PODS.replace("0.5,0.5,0.1,1,1,0", "0.5,-0.5,0.1,1,1,0"),
        E_NEGATIVE.format(source="pods.csv", row=4, column="cpu_request", value=-0.5),
    ),
    (
        "hours above 1",
        NODES.replace("00:00,1,4,16,0,0.192,general,spot", "00:00,1.5,4,16,0,0.192,general,spot"),
        PODS,
        E_HOURS_RANGE.format(source="nodes.csv", row=4, column="hours", value=1.5),
    ),
    (
        "hours zero",
        NODES,
        PODS.replace("n2,2024-09-01T00:00:00Z,0.5", "n2,2024-09-01T00:00:00Z,0"),
        E_HOURS_RANGE.format(source="pods.csv", row=4, column="hours", value=0.0),
    ),
    (
        "pod without node-hour",
        NODES,
        PODS.replace("web-1,n1,2024-09-01T01", "web-1,n1,2024-09-01T05"),
        E_NO_NODE_HOUR.format(
            source="pods.csv",
            row=3,
            column="node",
            cluster="prod",
            node="n1",
            hour="2024-09-01T05:00:00Z",
        ),
    ),
    (
        "nan",
        NODES.replace("0.192,general,spot", "nan,general,spot"),
        PODS,
        E_NOT_FINITE.format(source="nodes.csv", row=4, column="cost", value="nan"),
    ),
    (
        "inf",
        NODES,
        PODS.replace("0.5,0.1,1,1,0", "0.5,inf,1,1,0"),
        E_NOT_FINITE.format(source="pods.csv", row=4, column="cpu_usage", value="inf"),
    ),
    (
        "empty required cell",
        NODES,
        PODS.replace("prod,web,web-1,n1,2024-09-01T01", "prod,,web-1,n1,2024-09-01T01"),
        E_EMPTY_CELL.format(source="pods.csv", row=3, column="namespace"),
    ),
]


@pytest.mark.parametrize("name,nodes,pods,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_exits_2_names_file_row_column_and_writes_nothing(
    tmp_path: Path, name: str, nodes: str, pods: str, message: str
) -> None:
    proc = _run(tmp_path, nodes=nodes, pods=pods)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "result.csv").exists()
    assert list(tmp_path.glob("*.tmp")) == []


def test_unknown_policy_key_exits_2(tmp_path: Path) -> None:
    proc = _run(tmp_path, policy={"idle": "separate", "colour": "blue"})
    assert proc.returncode == 2
    allowed = "basis, weights, idle, shared_namespaces, shared_split, overhead"
    assert (
        E_POLICY_UNKNOWN_KEY.format(source="policy.json", key="colour", allowed=allowed)
        in proc.stderr
    )
    assert not (tmp_path / "result.csv").exists()


def test_unknown_policy_value_exits_2(tmp_path: Path) -> None:
    proc = _run(tmp_path, policy={"idle": "share-by-galaxy"})
    assert proc.returncode == 2
    assert "policy.json: key 'idle': 'share-by-galaxy'" in proc.stderr


def test_existing_output_is_left_alone_on_error(tmp_path: Path) -> None:
    (tmp_path / "result.csv").write_text("old\n")
    proc = _run(tmp_path, pods=PODS.replace("1,1,0.5,4,2,0,alpha", "1,x,0.5,4,2,0,alpha", 1))
    assert proc.returncode == 2
    assert (tmp_path / "result.csv").read_text() == "old\n"


def test_unknown_aggregate_key_exits_2(tmp_path: Path) -> None:
    proc = _run(tmp_path, extra=("--aggregate", "namespace,colour"))
    assert proc.returncode == 2
    assert "aggregate key 'colour'" in proc.stderr
