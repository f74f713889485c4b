"""Bad input everywhere: always a clear error or a correct result, never a traceback, never a
partial write.

Complements (does not repeat) tests/allocation/test_cli.py and test_input_validation.py (one
hand-written bad cell each) and tests/billing/test_focus_errors.py (the FOCUS reader alone, on
random byte mutations). Here:

* the engine's command line and CSV readers get the named hostile mutations and random ones
  of small real-shaped files: exit 0 with a result that adds up to the node cost, or exit 2 with
  one `error: <file>: ...` line, no traceback and no output file;
* the FOCUS importer, on PostgreSQL, gets the same kinds of mutations of the real FOCUS sample:
  a rejected file leaves BillingCharge and the earlier BillingImport rows exactly as they were,
  an accepted one stores exactly the rows and cents the reader parsed.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import io
import math
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allocation.__main__ import main as allocation_main

REPO = Path(__file__).resolve().parents[2]

# Real-shaped engine inputs: two nodes over two hours, four pods (ALLOCATION_SPEC.md §1).
NODES = (
    "cluster,node,hour_start,hours,cpu_cores,ram_gib,gpus,cost,node_pool,capacity_type,"
    "instance_type,zone\n"
    "prod,ip-10-0-1-5,2024-09-01T00:00:00Z,1,4,16,0,0.192,general,on-demand,m5.xlarge,us-east-1a\n"
    "prod,ip-10-0-1-5,2024-09-01T01:00:00Z,1,4,16,0,0.192,general,on-demand,m5.xlarge,us-east-1a\n"
    "prod,ip-10-0-2-7,2024-09-01T00:00:00Z,1,8,32,1,1.006,gpu,spot,g4dn.2xlarge,us-east-1b\n"
    "prod,ip-10-0-2-7,2024-09-01T01:00:00Z,0.5,8,32,1,0.503,gpu,spot,g4dn.2xlarge,us-east-1b\n"
)
PODS = (
    "cluster,namespace,pod,node,hour_start,hours,cpu_request,cpu_usage,ram_request_gib,"
    "ram_usage_gib,gpu_request,controller_kind,controller,team,labels\n"
    'prod,checkout,api-7d9f-x1,ip-10-0-1-5,2024-09-01T00:00:00Z,1,1,0.4,2,1.5,0,ReplicaSet,'
    'api-7d9f,payments,"{""app"": ""api""}"\n'
    "prod,checkout,api-7d9f-x1,ip-10-0-1-5,2024-09-01T01:00:00Z,1,1,1.3,2,2.5,0,ReplicaSet,"
    "api-7d9f,payments,\n"
    "prod,ml,train-0,ip-10-0-2-7,2024-09-01T00:00:00Z,1,4,3.9,16,12,1,StatefulSet,train,ml,\n"
    "prod,kube-system,coredns-1,ip-10-0-2-7,2024-09-01T01:00:00Z,0.5,0.1,0.05,0.1,0.05,0,"
    "ReplicaSet,coredns,,\n"
)
NODE_COST = 0.192 * 2 + 1.006 + 0.503

SCRATCH = Path(tempfile.mkdtemp(prefix="costapp-fuzz-"))
atexit.register(shutil.rmtree, SCRATCH, True)
HOSTILE_CELLS = ["NaN", "nan", "inf", "-inf", "Infinity", "1e308", "1e309", "-1", "-0.192", "",
                 " ", "x" * 10_000, "0x10", "1_000", "=1+1", "\x00"]


def _replace_cell(text: str, row: int, col: int, value: str) -> str:
    rows = list(csv.reader(io.StringIO(text)))
    r = rows[row % len(rows)]
    r[col % len(r)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _duplicate_header(text: str, col: int) -> str:
    """Repeat one column (name and cells) at the end: an ambiguous file."""
    rows = list(csv.reader(io.StringIO(text)))
    for r in rows:
        r.append(r[col % len(rows[0])] if r else "")
    rows[1][-1] = "999"  # the copy disagrees with the original
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def _latin1(text: str) -> bytes:
    """A non-ASCII cell in a Latin-1 file (an export from a spreadsheet set to Western)."""
    header, _, body = text.partition("\n")
    return (header + "\n" + body.replace("prod", "pr\u00f6d", 1)).encode("latin-1")


def named_mutations(text: str) -> dict[str, bytes]:
    """The hostile variants the issue names, of one CSV file."""
    b = text.encode()
    return {
        "truncated-mid-row": b[: len(b) * 2 // 3],
        "truncated-mid-header": b[:25],
        "empty": b"",
        "bom": b"\xef\xbb\xbf" + b,
        "crlf": b.replace(b"\n", b"\r\n"),
        "latin1": _latin1(text),
        "duplicated-header": _duplicate_header(text, 7).encode(),
        **{f"cell-{v[:12]!r}": _replace_cell(text, 1, 7, v).encode() for v in HOSTILE_CELLS},
        "unbalanced-quote": b.replace(b"prod,", b'"prod,', 1),
        "nul-bytes": b.replace(b",", b"\x00,", 3),
    }


def run_engine(nodes: bytes, pods: bytes) -> tuple[int, str, Path]:
    """`python -m allocation allocate` in-process: (exit code, stderr, out path). The files
    live in one reused scratch directory (cleared each run), not one directory per example."""
    d = SCRATCH
    for old in d.iterdir():
        old.unlink()
    (d / "nodes.csv").write_bytes(nodes)
    (d / "pods.csv").write_bytes(pods)
    out = d / "result.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = allocation_main(["allocate", "--nodes", str(d / "nodes.csv"), "--pods",
                                str(d / "pods.csv"), "--aggregate", "namespace,team",
                                "--step", "hour", "--out", str(out)])
    return code, err.getvalue(), out


def assert_clear_error_or_correct_result(code: int, stderr: str, out: Path,
                                         nodes: bytes) -> str:
    if code == 2:
        assert stderr.startswith("error: ") and stderr.count("\n") == 1, stderr[:500]
        assert "nodes.csv" in stderr or "pods.csv" in stderr, stderr[:500]
        assert "Traceback" not in stderr
        assert not out.exists(), "a failed run must not write the result"
        return "error"
    assert code == 0, (code, stderr)
    with open(out, newline="") as f:
        lines = list(csv.DictReader(f))
    totals = [float(r["total_cost"]) for r in lines]
    assert all(math.isfinite(t) and t >= 0 for t in totals)
    # The result must add up to the node cost the (possibly mutated) file states.
    with io.StringIO(nodes.decode("utf-8-sig")) as f:
        stated = sum(float(r["cost"]) for r in csv.DictReader(f) if r.get("cost", "").strip())
    assert math.isclose(sum(totals), stated, rel_tol=1e-9, abs_tol=1e-6), (sum(totals), stated)
    return "ok"


@pytest.mark.parametrize("which", ["nodes", "pods"])
def test_engine_cli_named_mutations_give_a_clear_error_or_a_correct_result(which):
    base = NODES if which == "nodes" else PODS
    outcomes = {}
    for name, data in named_mutations(base).items():
        nodes, pods = (data, PODS.encode()) if which == "nodes" else (NODES.encode(), data)
        code, stderr, out = run_engine(nodes, pods)
        outcomes[name] = assert_clear_error_or_correct_result(code, stderr, out, nodes)
    # The variants a correct reader must accept, and the ones it must refuse.
    assert outcomes["bom"] == outcomes["crlf"] == "ok"
    for bad in ("truncated-mid-header", "empty", "latin1", "cell-'NaN'", "cell-'inf'",
                "cell-'1e308'", "cell-'1e309'", "cell-'-1'", f"cell-{'x' * 12!r}",
                "duplicated-header"):
        assert outcomes[bad] == "error", (bad, outcomes)


def test_engine_cli_as_a_process_never_prints_a_traceback(tmp_path):
    """The real `python -m allocation` process, on the nastiest variants."""
    variants = named_mutations(NODES)
    for name in ("latin1", "cell-'1e308'", f"cell-{'x' * 12!r}", "duplicated-header",
                 "nul-bytes"):
        (tmp_path / "nodes.csv").write_bytes(variants[name])
        (tmp_path / "pods.csv").write_text(PODS)
        proc = subprocess.run(
            [sys.executable, "-m", "allocation", "allocate", "--nodes", "nodes.csv", "--pods",
             "pods.csv", "--out", "result.csv"],
            cwd=tmp_path, capture_output=True, text=True, env={"PYTHONPATH": str(REPO)},
        )
        assert "Traceback" not in proc.stderr, (name, proc.stderr[-2000:])
        assert proc.returncode in (0, 2), (name, proc.returncode, proc.stderr)


BYTE_OPS = st.lists(
    st.tuples(
        st.sampled_from(["replace", "delete", "insert", "truncate"]),
        st.integers(min_value=0, max_value=2_000),
        st.sampled_from([b'"', b",", b"\n", b"\r\n", b"\xef\xbb\xbf", b"\xe9", b"NaN", b"inf",
                         b"1e308", b"-", b"", b"x" * 10_000, b"\x00", b"0.5", b"2024-13-01"])
        | st.binary(min_size=1, max_size=6),
    ),
    min_size=1, max_size=4,
)


def mutate(data: bytes, ops) -> bytes:
    buf = bytearray(data)
    for op, pos, blob in ops:
        i = pos % (len(buf) + 1)
        if op == "replace":
            buf[i:i + len(blob)] = blob
        elif op == "delete":
            del buf[i:i + max(1, len(blob))]
        elif op == "insert":
            buf[i:i] = blob
        else:
            del buf[i:]
    return bytes(buf)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(node_ops=BYTE_OPS, pod_ops=BYTE_OPS, which=st.sampled_from(["nodes", "pods", "both"]))
def test_engine_cli_random_mutations_give_a_clear_error_or_a_correct_result(node_ops, pod_ops,
                                                                             which):
    nodes = mutate(NODES.encode(), node_ops) if which != "pods" else NODES.encode()
    pods = mutate(PODS.encode(), pod_ops) if which != "nodes" else PODS.encode()
    code, stderr, out = run_engine(nodes, pods)
    assert_clear_error_or_correct_result(code, stderr, out, nodes)


# --- FOCUS importer on PostgreSQL: a rejected file writes nothing ------------------------------

FOCUS_MUTATIONS = [
    "truncated", "bom", "crlf", "latin1", "duplicated-header", "nan", "inf", "1e308", "negative",
    "empty-cost", "10k-cell", "header-only",
]


def focus_variant(data: bytes, kind: str) -> bytes:
    header, _, body = data.partition(b"\n")
    cols = [c.strip(b'"') for c in header.split(b",")]
    eff = cols.index(b"EffectiveCost")
    first, _, rest = body.partition(b"\n")

    def set_eff(value: bytes) -> bytes:
        cells = first.split(b",")  # the sample's first row has no quoted commas before column 23
        cells[eff] = value
        return header + b"\n" + b",".join(cells) + b"\n" + rest

    return {
        "truncated": data[: len(data) // 2],
        "bom": b"\xef\xbb\xbf" + data,
        "crlf": data.replace(b"\n", b"\r\n"),
        "latin1": data.replace(b"Amazon", "Amaz\u00f6n".encode("latin-1"), 1),
        "duplicated-header": header + b',"EffectiveCost"\n' + body.replace(b"\n", b",1\n"),
        "nan": set_eff(b"NaN"),
        "inf": set_eff(b"inf"),
        "1e308": set_eff(b"1e308"),
        "negative": set_eff(b"-12.5"),
        "empty-cost": set_eff(b""),
        "10k-cell": data.replace(b'"SunBird"', b'"' + b"S" * 10_000 + b'"', 1),
        "header-only": header + b"\n",
    }[kind]


@pytest.fixture
def billing_state(db):
    """Snapshot of everything the importer writes, to compare before and after."""
    from django.db.models import Count, Sum

    from costapp.models.billing import BillingCharge, BillingImport

    def snapshot() -> dict:
        charges = BillingCharge.objects.aggregate(n=Count("id"), cost=Sum("effective_cost"))
        imports = {i.pk: (i.status, i.rows, i.total_effective_cost)
                   for i in BillingImport.objects.all()}
        return {"charges": charges, "imports": imports}

    return snapshot


@pytest.mark.django_db
@pytest.mark.parametrize("kind", FOCUS_MUTATIONS)
def test_focus_import_of_a_mutated_real_bill_is_all_or_nothing(kind, focus_bytes, tmp_path,
                                                                billing_state):
    from costapp.billing.focus import BillingFileError, iter_focus_rows
    from costapp.billing.importer import import_focus_file
    from costapp.models.billing import BillingCharge, BillingImport

    good = tmp_path / "good.csv"
    good.write_bytes(focus_bytes)
    import_focus_file(good)
    before = billing_state()
    assert before["charges"]["n"] == 1000

    bad = tmp_path / f"{kind}.csv"
    bad.write_bytes(focus_variant(focus_bytes, kind))
    try:
        result = import_focus_file(bad)
    except BillingFileError as exc:
        assert str(exc).startswith(bad.name) and exc.reason
        after = billing_state()
        assert after["charges"] == before["charges"], "a rejected file changed the charges"
        new = set(after["imports"]) - set(before["imports"])
        assert {k: after["imports"][k] for k in before["imports"]} == before["imports"]
        (failed,) = new
        assert BillingImport.objects.get(pk=failed).status == "failed"
        assert not BillingCharge.objects.filter(billing_import_id=failed).exists()
        return
    # Accepted: exactly what the reader parsed, to the cent, and it replaced the earlier import.
    parsed = list(iter_focus_rows(bad))
    assert result.rows == len(parsed)
    assert result.total_effective_cost == sum((c.effective_cost for c in parsed), Decimal(0))
    stored = BillingCharge.objects.filter(billing_import_id=result.import_id)
    assert stored.count() == len(parsed)
    assert kind in ("bom", "crlf", "negative", "10k-cell", "header-only"), (
        f"{kind} should have been rejected")
