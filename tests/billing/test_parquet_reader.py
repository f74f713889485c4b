"""The Parquet reader gives exactly what the CSV reader gives, with the same errors."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from costapp.billing.focus import MSG_MISSING_COLUMN, BillingFileError, iter_focus_rows
from costapp.billing.parquet import MSG_NOT_PARQUET, iter_parquet_rows
from tests.billing.test_sync_helpers import parquet, sample_lines


def test_typed_parquet_of_the_real_sample_reads_as_the_csv_does(focus_sample):
    header, lines = sample_lines(focus_sample)
    data = parquet(header, lines)
    from_csv = list(iter_focus_rows(focus_sample))
    from_parquet = list(iter_parquet_rows(io.BytesIO(data), batch_size=128))
    assert len(from_parquet) == 1000
    assert from_parquet == from_csv  # same rows, values, row numbers (2..1001) and tags


def _table(**cols) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(cols), out)
    return out.getvalue()


BASE = {
    "ChargePeriodStart": ["2024-09-01T00:00:00Z", "2024-09-01T01:00:00Z"],
    "ChargePeriodEnd": ["2024-09-01T01:00:00Z", "2024-09-01T02:00:00Z"],
    "BillingCurrency": ["USD", "USD"],
}


def test_a_bad_number_names_its_row_and_column():
    data = _table(**BASE, EffectiveCost=["1.5", "abc"])
    with pytest.raises(BillingFileError) as e:
        list(iter_parquet_rows(io.BytesIO(data), source_name="p.parquet"))
    assert (e.value.file, e.value.row, e.value.column) == ("p.parquet", 3, "EffectiveCost")
    assert e.value.reason == "not a number: 'abc'"


def test_a_required_null_and_a_currency_mix_are_rejected_like_csv():
    data = _table(**BASE, EffectiveCost=pa.array([None, 1.0], pa.float64()))
    with pytest.raises(BillingFileError) as e:
        list(iter_parquet_rows(io.BytesIO(data)))
    assert (e.value.row, e.value.column) == (2, "EffectiveCost")
    mixed = dict(BASE, BillingCurrency=["USD", "EUR"])
    with pytest.raises(BillingFileError) as e:
        list(iter_parquet_rows(io.BytesIO(_table(**mixed, EffectiveCost=[1.0, 2.0]))))
    assert (e.value.row, e.value.column) == (3, "BillingCurrency")


def test_a_missing_column_and_a_non_parquet_file():
    cols = {k: v for k, v in BASE.items() if k != "BillingCurrency"}
    with pytest.raises(BillingFileError) as e:
        list(iter_parquet_rows(io.BytesIO(_table(**cols, EffectiveCost=[1.0, 2.0]))))
    assert (e.value.column, e.value.reason) == ("BillingCurrency", MSG_MISSING_COLUMN)
    with pytest.raises(BillingFileError) as e:
        list(iter_parquet_rows(io.BytesIO(b"ChargePeriodStart,EffectiveCost\n"), source_name="x"))
    assert e.value.reason.startswith(MSG_NOT_PARQUET.split("{")[0])


def test_memory_stays_flat_batches_are_read_one_at_a_time():
    n = 50_000
    data = _table(
        ChargePeriodStart=pa.array(["2024-09-01T00:00:00Z"] * n),
        ChargePeriodEnd=pa.array(["2024-09-01T01:00:00Z"] * n),
        BillingCurrency=pa.array(["USD"] * n),
        EffectiveCost=pa.array([0.25] * n),
    )
    rows = iter_parquet_rows(io.BytesIO(data), batch_size=1000)
    first = next(rows)
    assert first.row == 2
    assert sum(1 for _ in rows) == n - 1
