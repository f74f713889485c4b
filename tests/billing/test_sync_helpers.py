"""Build AWS Data Exports deliveries from the real FOCUS sample (no tests here).

A delivery is a dict key -> bytes laid out as AWS Data Exports writes it:
`<export>/data/BILLING_PERIOD=YYYY-MM/<export>-0000N.<csv.gz|snappy.parquet>` and
`<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json`.
"""

from __future__ import annotations

import gzip
import io
import json
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from costapp.billing.focus import iter_focus_rows

EXPORT = "focus-export"
PERIOD = "2024-09"


def sample_lines(sample: Path) -> tuple[bytes, list[bytes]]:
    """The sample's header line and its data lines (one physical line per record)."""
    lines = sample.read_bytes().splitlines(keepends=True)
    return lines[0], lines[1:]


def total_of(sample: Path, n: int) -> Decimal:
    """Σ EffectiveCost of the sample's first `n` rows."""
    return sum((c.effective_cost for c in list(iter_focus_rows(sample))[:n]), Decimal(0))


def csv_gz(header: bytes, lines: list[bytes]) -> bytes:
    return gzip.compress(header + b"".join(lines))


def parquet(header: bytes, lines: list[bytes]) -> bytes:
    """The rows as typed Parquet, as AWS writes it: decimals, timestamps, Tags as a map."""
    table = pacsv.read_csv(
        io.BytesIO(header + b"".join(lines)),
        convert_options=pacsv.ConvertOptions(
            null_values=["NULL", ""],
            strings_can_be_null=True,
            column_types={
                "EffectiveCost": pa.decimal128(28, 11),
                "BilledCost": pa.float64(),
                "ChargePeriodStart": pa.timestamp("s"),
                "ChargePeriodEnd": pa.timestamp("s"),
                "Tags": pa.string(),
            },
        ),
    )
    i = table.schema.get_field_index("Tags")
    tags = [None if v is None else list(json.loads(v).items()) for v in table.column(i).to_pylist()]
    table = table.set_column(i, "Tags", pa.array(tags, pa.map_(pa.string(), pa.string())))
    out = io.BytesIO()
    pq.write_table(table, out, compression="snappy", row_group_size=200)
    return out.getvalue()


def delivery(
    sample: Path,
    *,
    rows: int = 1000,
    parts: int = 2,
    fmt: str = "parquet",
    bucket: str = "bills",
    prefix: str = "exports",
    corrupt_part: int | None = None,
) -> dict[str, bytes]:
    """One delivery of the sample's first `rows` rows in `parts` parts, with its manifest.
    `corrupt_part` (1-based) is truncated mid-stream."""
    header, lines = sample_lines(sample)
    lines = lines[:rows]
    size = -(-len(lines) // parts)
    objects: dict[str, bytes] = {}
    uris = []
    for n in range(parts):
        chunk = lines[n * size : (n + 1) * size]
        suffix = "snappy.parquet" if fmt == "parquet" else "csv.gz"
        key = f"{EXPORT}/data/BILLING_PERIOD={PERIOD}/{EXPORT}-{n + 1:05d}.{suffix}"
        data = parquet(header, chunk) if fmt == "parquet" else csv_gz(header, chunk)
        if corrupt_part == n + 1:
            data = data[: len(data) // 2]
        objects[key] = data
        full = f"{prefix}/{key}" if prefix else key
        uris.append(f"s3://{bucket}/{full}")
    manifest = {
        "executionId": str(uuid.uuid4()),
        "billingPeriod": {"start": f"{PERIOD}-01T00:00:00.000Z", "end": "2024-10-01T00:00:00.000Z"},
        "dataFiles": uris,
        "schema": [{"name": "EffectiveCost", "type": "decimal(28,11)"}],
    }
    key = f"{EXPORT}/metadata/BILLING_PERIOD={PERIOD}/{EXPORT}-Manifest.json"
    objects[key] = json.dumps(manifest).encode()
    return objects


def write_local(root: Path, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
