"""Streaming reader for FOCUS bills in Parquet (as AWS Data Exports writes them on request).

`iter_parquet_rows` yields the same `FocusCharge` records, with the same validation and the same
`BillingFileError(file, row, column, reason)` as the CSV reader (`focus.iter_focus_rows`): every
needed cell goes through the CSV reader's own cell parsers, so a value the CSV path rejects is
rejected here with the same message.

Memory stays flat: the file is read one record batch at a time
(`pq.ParquetFile(f).iter_batches(batch_size=..., columns=...)`), and only the FOCUS columns we
use are decoded (Parquet is columnar: the others are never read).

Conventions that differ from CSV, because Parquet has no lines:

* **Row numbers** count as if the file were a CSV with a header: the first data row is row 2
  (row = 1-based record index + 1), so a spreadsheet export of the file shows the same numbers.
* **Types**: strings, timestamps (with or without a time zone; without one is UTC), decimals,
  floats and integers are accepted in any column and turned into their exact text first (a
  float64 cost is read from its shortest round-trip text, never through binary fractions).
  `Tags` may be a JSON string (as in CSV), a `map<string, string>` (AWS FOCUS Parquet) or a
  struct. Nulls are nulls.

Pure: no Django. Errors are `focus.BillingFileError` with the `MSG_*` messages of `focus` plus
`MSG_NOT_PARQUET` and `MSG_PARQUET_CORRUPT` below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.parquet as pq

from costapp.billing import focus
from costapp.billing.focus import BillingFileError, FocusCharge

__all__ = ["BATCH_ROWS", "MSG_NOT_PARQUET", "MSG_PARQUET_CORRUPT", "iter_parquet_rows"]

MSG_NOT_PARQUET = "not a Parquet file: {detail}"
MSG_PARQUET_CORRUPT = "Parquet data is corrupt or truncated: {detail}"

BATCH_ROWS = 65_536
"""Rows decoded at once: ~30 MB of Python objects for a wide FOCUS batch, whatever the file size."""


def iter_parquet_rows(
    path_or_fileobj: str | Path | IO[bytes],
    *,
    source_name: str | None = None,
    currency: str | None = None,
    batch_size: int = BATCH_ROWS,
) -> Iterator[FocusCharge]:
    """Yield the rows of a FOCUS Parquet file as `FocusCharge` records.

    `source_name` and `currency` mean what they mean for `focus.iter_focus_rows`. The file
    object, when one is given, must be seekable (Parquet keeps its schema at the end).
    Raises `BillingFileError` for anything wrong with the file.
    """
    if source_name is None:
        source_name = (
            str(path_or_fileobj) if isinstance(path_or_fileobj, (str, Path)) else "<stream>"
        )
    try:
        pf = pq.ParquetFile(path_or_fileobj)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise BillingFileError(
            source_name, None, None, MSG_NOT_PARQUET.format(detail=str(exc)[:200])
        ) from None
    try:
        yield from _iter_rows(pf, source_name, currency, batch_size)
    finally:
        pf.close()


def _iter_rows(
    pf: pq.ParquetFile, source: str, currency: str | None, batch_size: int
) -> Iterator[FocusCharge]:
    # 1. The "header": the schema's column names, mapped exactly as the CSV header is.
    names = list(pf.schema_arrow.names)
    if not names:
        raise BillingFileError(source, None, None, focus.MSG_EMPTY_FILE)
    index = focus._parse_header(names, source)
    required = list(focus.REQUIRED_COLUMNS)
    if currency is not None and "BillingCurrency" not in index:
        required.remove("BillingCurrency")
    if not any(name in index for name in focus.REQUIRED_COLUMNS[:3]):
        raise BillingFileError(source, 1, None, focus.MSG_NOT_FOCUS)
    for name in required:
        if name not in index:
            raise BillingFileError(source, 1, name, focus.MSG_MISSING_COLUMN)

    # 2. Read only the columns we use; the converter sees them as cells 0..n-1 of a row.
    used = sorted(index.items(), key=lambda kv: kv[1])
    physical = [names[i] for _, i in used]
    compact = {col: j for j, (col, _) in enumerate(used)}
    convert = focus._make_converter(compact, focus._CellParsers(source, currency))
    tags_at = compact.get("Tags")

    # 3. The rows, one batch at a time.
    row = 1
    batches = pf.iter_batches(batch_size=batch_size, columns=physical, use_threads=False)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise BillingFileError(
                source, row + 1, None, MSG_PARQUET_CORRUPT.format(detail=str(exc)[:200])
            ) from None
        columns = [
            _cells(batch.column(j), tags=(j == tags_at), source=source, first_row=row + 1,
                   column=physical[j])
            for j in range(batch.num_columns)
        ]
        for cells in zip(*columns, strict=True):
            row += 1
            charge = convert(cells, row)
            if charge.charge_period_end < charge.charge_period_start:
                raise BillingFileError(
                    source,
                    row,
                    "ChargePeriodEnd",
                    focus.MSG_END_BEFORE_START.format(
                        start=charge.charge_period_start, end=charge.charge_period_end
                    ),
                )
            bps, bpe = charge.billing_period_start, charge.billing_period_end
            if bps is not None and bpe is not None and bpe < bps:
                raise BillingFileError(
                    source,
                    row,
                    "BillingPeriodEnd",
                    focus.MSG_END_BEFORE_START.format(start=bps, end=bpe),
                )
            yield charge


def _cells(arr: pa.Array, *, tags: bool, source: str, first_row: int, column: str) -> list[str]:
    """One column of a batch as the text cells the CSV converter expects ("" for null)."""
    t = arr.type
    if tags and (pa.types.is_map(t) or pa.types.is_struct(t)):
        out = []
        for v in arr.to_pylist():
            if v is None:
                out.append("")
            elif isinstance(v, list):  # map: [(key, value), ...]
                out.append(json.dumps(dict(v), separators=(",", ":")))
            else:
                out.append(json.dumps(v, separators=(",", ":")))
        return out
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t)):
        try:
            arr = arr.cast(pa.string())
        except (pa.ArrowException, ValueError) as exc:
            raise BillingFileError(
                source, first_row, column,
                MSG_PARQUET_CORRUPT.format(detail=f"cannot read a {t} column as text: {exc}"[:200]),
            ) from None
    return [("" if v is None else v) for v in arr.to_pylist()]
