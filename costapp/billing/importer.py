"""Import FOCUS charges into BillingCharge rows: streamed, atomic and idempotent.

One path for everything: `import_focus_charges(charges, name=, sha256=, ...)` takes a stream of
`FocusCharge` (one uploaded file, or every part of a cloud export delivery, CSV, CSV.gz or
Parquet, chained); `import_focus_file(path, ...)` is a thin wrapper for one file.

1. Hash the file (sha256, streamed) and record a BillingImport (status running) outside the
   transaction, so a failure leaves a visible failed import and no charges.
2. In one `transaction.atomic()`: stream the rows (`iter_focus_rows`, constant memory) into the
   charge table — PostgreSQL `COPY ... FROM STDIN` through psycopg 3, or batched `bulk_create` on
   other databases — while collecting the (provider, billing account, billing period) keys the
   file covers.
3. Still inside the transaction, delete every *other* import's charges with those keys: a
   restated bill, or the same file again, replaces what it replaced before. Readers keep seeing
   the old charges until commit (MVCC), never a mix.
4. Mark the import succeeded (and the replaced imports `replaced`), commit.

Any `BillingFileError` rolls the whole file back and is recorded on the import.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from costapp.billing.focus import (
    FocusCharge,
    charge_kind,
    cluster_from_charge,
    iter_focus_rows,
    resource_keys_from_focus,
)
from costapp.models import Cluster
from costapp.models.billing import BillingCharge, BillingImport

__all__ = ["COPY_COLUMNS", "ImportResult", "import_focus_charges", "import_focus_file"]

ProgressFn = Callable[[int, int, str], None]
"""progress(done_rows, total_rows_or_0, message) — the same shape as services.ProgressFn."""

PROGRESS_EVERY = 50_000
BATCH = 5_000

# Charge columns in COPY order; each maps a FocusCharge (plus derived values) to a cell.
COPY_COLUMNS = (
    "billing_import_id",
    "row",
    "charge_period_start",
    "charge_period_end",
    "billing_period_start",
    "billing_period_end",
    "provider_name",
    "billing_account_id",
    "sub_account_id",
    "billing_currency",
    "effective_cost",
    "billed_cost",
    "list_cost",
    "contracted_cost",
    "charge_category",
    "charge_frequency",
    "charge_description",
    "pricing_category",
    "pricing_quantity",
    "consumed_quantity",
    "consumed_unit",
    "commitment_discount_id",
    "commitment_discount_type",
    "commitment_discount_status",
    "resource_id",
    "resource_name",
    "resource_type",
    "service_name",
    "service_category",
    "region_id",
    "availability_zone",
    "sku_id",
    "tags",
    "resource_key",
    "kind",
    "cluster_name",
)


COPY_BINARY = True
"""COPY in binary format: PostgreSQL then receives timestamps and numerics ready-made instead
of parsing their text (4 timestamps and 6 numerics per row), and psycopg's C dumpers build them."""

COPY_QUEUED = True
"""Send COPY data from a writer thread (psycopg's QueuedLibpqWriter), so parsing the next rows
overlaps with PostgreSQL receiving the previous ones."""

_PG_TYPES = {"bigint": "int8", "integer": "int4", "timestamp with time zone": "timestamptz"}


def _copy_types() -> list[str]:
    """The PostgreSQL type of each COPY column, for psycopg's binary dumpers (varchar is sent
    as text: same wire form)."""
    out = []
    for name in COPY_COLUMNS:
        f = BillingCharge._meta.get_field("billing_import" if name == "billing_import_id" else name)
        db = "bigint" if f.is_relation else f.db_type(connection)
        base = db.split("(")[0].strip()
        out.append(_PG_TYPES.get(base, "text" if base in ("varchar", "text") else base))
    return out


@dataclass(frozen=True)
class ImportResult:
    """What an import did: its id, rows written, rows of earlier imports replaced, the exact
    Σ EffectiveCost, the billing periods covered and the clusters named by its charges."""

    import_id: int
    rows: int
    replaced_rows: int
    total_effective_cost: Decimal
    periods: tuple[datetime, ...]
    clusters: tuple[str, ...]


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _s(v: str | None) -> str:
    return "" if v is None else v


def import_focus_file(
    path: str | Path,
    *,
    cluster: Cluster | None = None,
    currency: str | None = None,
    progress: ProgressFn | None = None,
    file_name: str | None = None,
) -> ImportResult:
    """Import one FOCUS file (CSV or CSV.gz) and return what it did.

    `cluster` is the cluster of charges whose tags name none (use it for a bill of an account
    dedicated to one cluster). `currency` is passed to the reader (see `iter_focus_rows`).
    Raises `BillingFileError` (after recording it on a failed BillingImport) for a bad file.
    A thin wrapper over `import_focus_charges`.
    """
    path = Path(path)
    name = file_name or path.name
    return import_focus_charges(
        lambda: iter_focus_rows(path, source_name=name, currency=currency),
        name=name,
        sha256=file_sha256(path),
        cluster=cluster,
        progress=progress,
    )


def import_focus_charges(
    charges: Iterable[FocusCharge] | Callable[[], Iterable[FocusCharge]],
    *,
    name: str,
    sha256: str,
    cluster: Cluster | None = None,
    progress: ProgressFn | None = None,
    replaces: Collection[int] = (),
) -> ImportResult:
    """Import a stream of charges (one file, or every part of one delivery) as ONE import.

    The single import path: `import_focus_file` (uploads) and `billing.sync` (deliveries made of
    several CSV, CSV.gz or Parquet parts) both end here. `charges` is an iterable, or a callable
    returning one (so that opening the files happens inside the transaction and any
    `BillingFileError` they raise is recorded). `sha256` identifies the content (a file's hash,
    or a hash over a delivery's part ETags). All or nothing: any `BillingFileError` rolls every
    part back, is recorded on a failed BillingImport, and is raised again.

    `replaces`: ids of earlier imports this one supersedes whole (a restated delivery of the
    same export and billing period), on top of the usual replacement by (provider, billing
    account, billing period): a restatement that drops an account leaves nothing behind.
    """
    record = BillingImport.objects.create(
        file_name=name[:500], sha256=sha256, default_cluster=cluster
    )
    try:
        with transaction.atomic():
            stream = charges() if callable(charges) else charges
            result = _import(stream, name, record, cluster, progress, replaces)
    except Exception as exc:  # a bad file, or anything else: never leave a "running" import
        BillingImport.objects.filter(pk=record.pk).update(
            status=BillingImport.Status.FAILED, error=str(exc)[:5000], finished_at=timezone.now()
        )
        raise
    return result


def _import(
    charges: Iterable[FocusCharge],
    name: str,
    record: BillingImport,
    cluster: Cluster | None,
    progress: ProgressFn | None,
    replaces: Collection[int] = (),
) -> ImportResult:
    default_cluster = cluster.name if cluster else ""
    keys: set[tuple[str, str, datetime | None]] = set()
    clusters: set[str] = set()
    providers: set[str] = set()
    accounts: set[str] = set()
    total = Decimal(0)
    count = 0
    first_currency = ""
    bp_min: datetime | None = None
    bp_max: datetime | None = None
    tag_text: dict[int, tuple[object, str]] = {}
    rid_cache: dict[str, str] = {}

    def cells(c: FocusCharge) -> tuple:
        """One charge as a row of COPY_COLUMNS, and the bookkeeping for the import record."""
        nonlocal total, count, first_currency, bp_min, bp_max
        count += 1
        total += c.effective_cost
        provider, account = _s(c.provider_name), _s(c.billing_account_id)
        key = (provider, account, c.billing_period_start)
        if key not in keys:
            keys.add(key)
            providers.add(provider)
            accounts.add(account)
            if c.billing_period_start is not None:
                bp_min = min(bp_min or c.billing_period_start, c.billing_period_start)
            if c.billing_period_end is not None:
                bp_max = max(bp_max or c.billing_period_end, c.billing_period_end)
        first_currency = first_currency or c.billing_currency
        kind = charge_kind(c)
        cl = cluster_from_charge(c) or default_cluster
        if cl:
            clusters.add(cl)
        rid = c.resource_id
        rkey = ""
        if rid is not None:
            rkey = rid_cache.get(rid, "")
            if not rkey:
                found = resource_keys_from_focus(rid)
                rkey = found[0] if found else ""
                if len(rid_cache) > 100_000:
                    rid_cache.clear()
                rid_cache[rid] = rkey
        tags = c.tags
        cached = tag_text.get(id(tags))
        if cached is None:
            cached = (tags, json.dumps(dict(tags), separators=(",", ":")))
            if len(tag_text) > 65_536:
                tag_text.clear()
            tag_text[id(tags)] = cached  # holds `tags`, so its id cannot be reused
        return (
            record.pk,
            c.row,
            c.charge_period_start,
            c.charge_period_end,
            c.billing_period_start,
            c.billing_period_end,
            provider,
            account,
            _s(c.sub_account_id),
            c.billing_currency,
            c.effective_cost,
            c.billed_cost,
            c.list_cost,
            c.contracted_cost,
            _s(c.charge_category),
            _s(c.charge_frequency),
            _s(c.charge_description),
            _s(c.pricing_category),
            c.pricing_quantity,
            c.consumed_quantity,
            _s(c.consumed_unit),
            _s(c.commitment_discount_id),
            _s(c.commitment_discount_type),
            _s(c.commitment_discount_status),
            _s(rid),
            _s(c.resource_name),
            _s(c.resource_type),
            _s(c.service_name),
            _s(c.service_category),
            _s(c.region_id),
            _s(c.availability_zone),
            _s(c.sku_id),
            cached[1],
            rkey,
            kind,
            cl,
        )

    def report() -> None:
        if progress and count % PROGRESS_EVERY == 0:
            progress(count, 0, f"{name}: {count:,} rows")

    rows = (cells(c) for c in charges)
    if connection.vendor == "postgresql":
        table = BillingCharge._meta.db_table
        cols = ", ".join(f'"{c}"' for c in COPY_COLUMNS)
        with connection.cursor() as cur:
            raw = cur.cursor  # the psycopg 3 cursor under Django's wrapper
            fmt = " (FORMAT BINARY)" if COPY_BINARY else ""
            # A writer thread sends while this one parses: PostgreSQL and Python overlap.
            from psycopg.copy import QueuedLibpqWriter

            writer = QueuedLibpqWriter(raw) if COPY_QUEUED else None
            with raw.copy(f"COPY {table} ({cols}) FROM STDIN{fmt}", writer=writer) as copy:
                if COPY_BINARY:
                    copy.set_types(_copy_types())
                for r in rows:
                    copy.write_row(r)
                    report()
    else:
        batch: list[BillingCharge] = []
        for r in rows:
            fields = dict(zip(COPY_COLUMNS, r, strict=True))
            batch.append(BillingCharge(**fields))
            if len(batch) >= BATCH:
                BillingCharge.objects.bulk_create(batch)
                batch.clear()
            report()
        BillingCharge.objects.bulk_create(batch)

    # 3. Replace what earlier imports said about the same (provider, account, period).
    replaced = 0
    replaced_imports: set[int] = set()
    conds = [
        Q(provider_name=provider, billing_account_id=account, billing_period_start=period)
        for provider, account, period in keys
    ]
    if replaces:
        conds.append(Q(billing_import_id__in=list(replaces)))
    if conds:
        q = conds[0]
        for c in conds[1:]:
            q |= c
        older = BillingCharge.objects.filter(q).exclude(billing_import_id=record.pk)
        replaced_imports = set(older.values_list("billing_import_id", flat=True).distinct())
        replaced, _ = older.delete()
    if replaced_imports:
        still = set(
            BillingCharge.objects.filter(billing_import_id__in=replaced_imports)
            .values_list("billing_import_id", flat=True)
            .distinct()
        )
        BillingImport.objects.filter(pk__in=replaced_imports - still).update(
            status=BillingImport.Status.REPLACED
        )
    BillingImport.objects.filter(pk=record.pk).update(
        status=BillingImport.Status.SUCCEEDED,
        rows=count,
        replaced_rows=replaced,
        total_effective_cost=total,
        provider=", ".join(sorted(p for p in providers if p))[:100],
        billing_account_id=", ".join(sorted(a for a in accounts if a))[:300],
        currency=first_currency,
        billing_period_start=bp_min,
        billing_period_end=bp_max,
        finished_at=timezone.now(),
    )
    if progress:
        progress(count, count, f"{name}: {count:,} rows imported, {replaced:,} replaced")
    periods = tuple(sorted({k[2] for k in keys if k[2] is not None}))
    return ImportResult(record.pk, count, replaced, total, periods, tuple(sorted(clusters)))


def import_focus_stream(
    fileobj: IO[bytes], *, name: str, cluster: Cluster | None = None
) -> ImportResult:  # pragma: no cover - convenience for uploads: spool, then import
    """Import an uploaded stream: spool it to a temporary file (so it can be hashed and read
    once), then `import_focus_file`."""
    import shutil
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".focus") as tmp:
        shutil.copyfileobj(fileobj, tmp, 1 << 20)
        tmp.flush()
        return import_focus_file(tmp.name, cluster=cluster, file_name=name)
