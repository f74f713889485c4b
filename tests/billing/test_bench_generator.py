"""The benchmark's FOCUS generator writes files the reader accepts, with known totals."""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal

from costapp.billing.bench import FOCUS_SAMPLE_COLUMNS, generate_focus_file
from costapp.billing.focus import charge_kind, cluster_from_charge, iter_focus_rows


def test_generated_file_has_the_sample_columns_and_known_totals(tmp_path, focus_sample):
    with open(focus_sample, newline="") as f:
        assert next(csv.reader(f)) == list(FOCUS_SAMPLE_COLUMNS)
    bill = generate_focus_file(tmp_path / "b.csv", rows=5000, seed=3)
    rows = list(iter_focus_rows(bill.path))
    assert len(rows) == 5000
    assert sum(r.effective_cost for r in rows) == bill.total
    node, overhead = defaultdict(Decimal), defaultdict(Decimal)
    for r in rows:
        kind = charge_kind(r)
        if kind == "node":
            node[cluster_from_charge(r)] += r.effective_cost
        elif kind != "other":
            overhead[cluster_from_charge(r)] += r.effective_cost
    assert dict(node) == bill.node_cost and dict(overhead) == bill.overhead_cost
    ids = {r.resource_id for r in rows if charge_kind(r) == "node"}
    assert ids == {n.instance_id for n in bill.nodes}


def test_generation_is_deterministic_and_gzip_optional(tmp_path):
    a = generate_focus_file(tmp_path / "a.csv", rows=800, seed=7)
    b = generate_focus_file(tmp_path / "b.csv.gz", rows=800, seed=7)
    assert [r.effective_cost for r in iter_focus_rows(a.path)] == [
        r.effective_cost for r in iter_focus_rows(b.path)
    ]
    assert b.path.read_bytes()[:2] == b"\x1f\x8b"
