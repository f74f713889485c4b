"""Scheduled sync of billing sources: pick up new and restated cloud billing exports by themselves.

A `BillingSource` is an S3 location (AWS Data Exports, or any S3-compatible store through a
custom endpoint) or a local folder. Celery beat runs `tasks.sync_billing_sources` (hourly by
default, `COSTAPP_BILLING_SYNC_MINUTES`), which calls `sync_all()`: one `sync_source` per due
source, each on its own, so a failing source never stops the others.

Layout accepted (AWS Data Exports, FOCUS 1.0 / 1.2, Parquet or gzip CSV, "overwrite" or
"create new" delivery), under the source's prefix (S3) or folder (local):

    <export-name>/data/BILLING_PERIOD=YYYY-MM/[<execution-id>/]<export-name>-00001.csv.gz
    <export-name>/data/BILLING_PERIOD=YYYY-MM/[<execution-id>/]<export-name>-00001.snappy.parquet
    <export-name>/metadata/BILLING_PERIOD=YYYY-MM/[<execution-id>/]<export-name>-Manifest.json

(the export-name folder may sit at any depth below the prefix). The manifest is JSON with
`dataFiles` (S3 URIs `s3://bucket/key`, or keys/paths relative to the export folder: a URI's
part from `data/` on is resolved against the manifest's export folder, so a copy of an export
in another bucket or a local folder still resolves), `billingPeriod` {start, end} (optional;
else the `BILLING_PERIOD=` folder), `executionId` (optional) and `schema` (not needed: parts
are read by their column names). Data parts are `.csv`, `.csv.gz`, `.gz` (gzip CSV) or
`.parquet` (any compression). Any data file that lies outside an export's `data/` folder is a
*loose file*: a delivery of its own (exports copied in by other tools).

One delivery = one export × billing period ("slot"): its newest manifest and every part it
names, imported atomically as ONE import (`importer.import_focus_charges`). A newer delivery
for the same slot replaces the earlier one whole (restatement): never adds to it.

Only new or changed objects are read: a listing (ListObjectsV2 / a directory walk) gives each
object's ETag, size and modified time; a slot whose manifest and parts are listed exactly as
when last read is skipped without a single GetObject. A changed delivery's parts are
downloaded to a temporary folder (GetObject with If-Match on the listed ETag, so a part being
overwritten mid-read is noticed), then imported inside one transaction, then the node-hours it
covers are re-priced (`pricing.reprice_after_import`) and their cluster-days re-allocated
(`services.allocate_dirty_days`). Progress goes to a Job row per delivery.

Failures: a bad delivery (corrupt part, malformed manifest, a part missing) is rejected whole
(the earlier delivery's charges stay), recorded on a failed BillingDelivery and on the source;
it is not read again until it changes. A source-level failure (credentials, missing bucket,
unreachable endpoint) marks the source `failing` with a clear message and schedules the next
attempt with backoff (5 min doubling, at most 6 h). Credentials never appear in messages or
logs: they are never stored (the source names environment variables), and every message is
scrubbed of the values of those variables and of anything shaped like an access key id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath

from django.db.models import Q
from django.utils import timezone

from costapp.billing.focus import BillingFileError, FocusCharge, iter_focus_rows
from costapp.billing.importer import import_focus_charges
from costapp.billing.parquet import iter_parquet_rows
from costapp.models import Cluster, Job
from costapp.models.sources import BillingDelivery, BillingSource

__all__ = [
    "JOB_KIND",
    "SourceError",
    "SyncResult",
    "plan_deliveries",
    "sync_all",
    "sync_source",
]

log = logging.getLogger(__name__)

JOB_KIND = "billing_sync"
LEASE = timedelta(minutes=90)
"""How long a worker owns a source while checking it (longer than the task's hard limit)."""

# -- messages (tests assert on these) -------------------------------------------------------------

E_NO_CREDENTIALS = (
    "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the worker's "
    "environment, give the worker an IAM role, or name the variables on the source"
)
E_ENV_MISSING = "environment variable {names} is not set on the worker"
E_BAD_CREDENTIALS = (
    "S3 rejected the credentials ({code}): check the access key id and secret access key "
    "({where})"
)
E_ACCESS_DENIED = (
    "access denied to {location}: the credentials need s3:ListBucket and s3:GetObject on it"
)
E_NO_BUCKET = "bucket {bucket!r} does not exist (or is in another region than {region!r})"
E_UNREACHABLE = "cannot reach the S3 endpoint {endpoint}: {detail}"
E_S3 = "S3 error {code}: {detail}"
E_NO_FOLDER = "folder {path!r} does not exist on the worker"
E_PART_MISSING = "part {key!r} named by the manifest is not in the bucket (delivery in progress?)"
E_PART_CHANGED = "part {key!r} changed while it was being read; it will be read again"
E_BAD_MANIFEST = "not an AWS Data Exports manifest: {detail}"

_DATA_SUFFIXES = (".csv", ".csv.gz", ".gz", ".parquet")
_KEY_SHAPED = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_PERIOD = re.compile(r"BILLING_PERIOD=(\d{4}-\d{2})")


class SourceError(Exception):
    """A source cannot be read at all (credentials, bucket, endpoint, folder). The message is
    already scrubbed of secrets and is shown on the source's page."""


# -- storage: what a source lists and how a part is fetched ----------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """One object as listed: key relative to the source root ("/"-separated), ETag (S3) or
    size-mtime stamp (local), size in bytes, modified time."""

    key: str
    etag: str
    size: int
    modified: datetime

    def stamp(self) -> dict:
        return {"key": self.key, "etag": self.etag, "size": self.size}


class LocalStore:
    """A folder on the worker; keys are paths relative to it."""

    def __init__(self, source: BillingSource) -> None:
        self.root = Path(source.path).expanduser()
        self.location = str(self.root)

    def list(self) -> list[StoredObject]:
        if not self.root.is_dir():
            raise SourceError(E_NO_FOLDER.format(path=str(self.root)))
        out = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith("."):
                    continue  # hidden and in-progress copies (.name.tmp)
                p = Path(dirpath) / fn
                st = p.stat()
                out.append(
                    StoredObject(
                        key=p.relative_to(self.root).as_posix(),
                        etag=f"{st.st_size}-{st.st_mtime_ns}",
                        size=st.st_size,
                        modified=datetime.fromtimestamp(st.st_mtime, UTC),
                    )
                )
        return out

    def read(self, obj: StoredObject) -> bytes:
        return (self.root / obj.key).read_bytes()

    def fetch(self, obj: StoredObject, folder: Path) -> Path:
        path = self.root / obj.key
        st = path.stat()
        if f"{st.st_size}-{st.st_mtime_ns}" != obj.etag:
            raise _Changed(E_PART_CHANGED.format(key=obj.key))
        return path  # read in place


class S3Store:
    """An S3 bucket and prefix; keys are relative to the prefix."""

    def __init__(self, source: BillingSource, client) -> None:
        self.source, self.client = source, client
        self.bucket = source.bucket
        self.prefix = source.prefix.strip("/")
        self.location = source.location

    def _full(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def list(self) -> list[StoredObject]:
        out = []
        paginator = self.client.get_paginator("list_objects_v2")
        kwargs = {"Bucket": self.bucket}
        if self.prefix:
            kwargs["Prefix"] = self.prefix + "/"
        with _s3_errors(self.source):
            for page in paginator.paginate(**kwargs):
                for o in page.get("Contents", []):
                    key = o["Key"][len(self.prefix) + 1 :] if self.prefix else o["Key"]
                    if not key or key.endswith("/"):
                        continue
                    out.append(
                        StoredObject(key, o["ETag"].strip('"'), o["Size"], o["LastModified"])
                    )
        return out

    def read(self, obj: StoredObject) -> bytes:
        with _s3_errors(self.source):
            r = self.client.get_object(Bucket=self.bucket, Key=self._full(obj.key))
            return r["Body"].read()

    def fetch(self, obj: StoredObject, folder: Path) -> Path:
        dest = folder / PurePosixPath(obj.key).name
        from botocore.exceptions import ClientError

        try:
            with _s3_errors(self.source):
                r = self.client.get_object(
                    Bucket=self.bucket, Key=self._full(obj.key), IfMatch=f'"{obj.etag}"'
                )
                with open(dest, "wb") as f:
                    for block in r["Body"].iter_chunks(1 << 20):
                        f.write(block)
        except SourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _code(cause) in ("PreconditionFailed", "412"):
                raise _Changed(E_PART_CHANGED.format(key=obj.key)) from None
            raise
        return dest


class _Changed(Exception):
    """A part changed between listing and reading: try again at the next check."""


def _code(exc) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _secrets(source: BillingSource) -> list[str]:
    names = [source.access_key_id_env, source.secret_access_key_env, source.session_token_env]
    names += ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
    return [v for n in names if n and (v := os.environ.get(n)) and len(v) >= 4]


def scrub(text: str, source: BillingSource) -> str:
    """`text` without any credential value of the source (or of the default AWS variables)
    and without anything shaped like an AWS access key id."""
    for secret in sorted(_secrets(source), key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return _KEY_SHAPED.sub("[redacted]", text)


class _s3_errors:
    """Turn botocore errors into a SourceError with a clear, scrubbed message."""

    def __init__(self, source: BillingSource) -> None:
        self.source = source

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (SourceError, _Changed)):
            return False
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        s = self.source
        where = (
            f"variables {s.access_key_id_env} / {s.secret_access_key_env}"
            if s.access_key_id_env
            else "the worker's AWS default credential chain"
        )
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            msg = E_NO_CREDENTIALS
        elif isinstance(exc, ClientError):
            code = _code(exc)
            if code in (
                "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId",
                "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
                "AuthorizationHeaderMalformed",
            ):
                msg = E_BAD_CREDENTIALS.format(code=code, where=where)
            elif code in ("AccessDenied", "403", "AllAccessDisabled"):
                msg = E_ACCESS_DENIED.format(location=s.location)
            elif code in ("NoSuchBucket", "404", "PermanentRedirect", "301"):
                msg = E_NO_BUCKET.format(bucket=s.bucket, region=s.region or "default")
            else:
                detail = exc.response.get("Error", {}).get("Message", "") or str(exc)
                msg = E_S3.format(code=code or "?", detail=detail[:300])
        elif isinstance(exc, EndpointConnectionError) or isinstance(exc, (ConnectionError,)):
            msg = E_UNREACHABLE.format(
                endpoint=s.endpoint_url or "of AWS", detail=type(exc).__name__
            )
        elif isinstance(exc, BotoCoreError):
            msg = E_S3.format(code=type(exc).__name__, detail=str(exc)[:300])
        else:
            return False
        raise SourceError(scrub(msg, s)) from exc


def s3_client(source: BillingSource):
    """A boto3 S3 client for the source: keys from the named environment variables, else the
    AWS default chain (env, shared config, IAM role); the source's region and endpoint."""
    import boto3
    from botocore.config import Config

    kwargs: dict = {}
    if source.access_key_id_env or source.secret_access_key_env:
        names = [source.access_key_id_env, source.secret_access_key_env]
        missing = [n for n in names if not n or not os.environ.get(n)]
        if missing:
            raise SourceError(E_ENV_MISSING.format(names=", ".join(m or "?" for m in missing)))
        kwargs["aws_access_key_id"] = os.environ[source.access_key_id_env]
        kwargs["aws_secret_access_key"] = os.environ[source.secret_access_key_env]
        if source.session_token_env:
            kwargs["aws_session_token"] = os.environ.get(source.session_token_env) or None
    session = boto3.session.Session(region_name=source.region or None, **kwargs)
    config = Config(
        connect_timeout=10,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if source.endpoint_url else {},
    )
    return session.client("s3", endpoint_url=source.endpoint_url or None, config=config)


def store_for(source: BillingSource):
    if source.kind == BillingSource.Kind.S3:
        return S3Store(source, s3_client(source))
    return LocalStore(source)


# -- planning: which deliveries a listing holds ----------------------------------------------------


@dataclass
class PlannedDelivery:
    """A delivery found in a listing: its slot, its manifest (None for a loose file) and, once
    the manifest is read, its parts."""

    slot: str
    manifest: StoredObject | None
    parts: list[StoredObject] = field(default_factory=list)
    billing_period: str = ""
    execution_id: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None

    def objects(self) -> list[StoredObject]:
        return ([self.manifest] if self.manifest else []) + self.parts


def _is_manifest(key: str) -> bool:
    name = PurePosixPath(key).name
    return name.lower().endswith("manifest.json") and "/metadata/" in f"/{key}"


def _is_data(key: str) -> bool:
    name = PurePosixPath(key).name.lower()
    return not name.startswith(".") and name.endswith(_DATA_SUFFIXES)


def _export_root(manifest_key: str) -> str:
    """`a/b/export/metadata/BILLING_PERIOD=.../x-Manifest.json` -> `a/b/export`."""
    head = f"/{manifest_key}".rsplit("/metadata/", 1)[0]
    return head.lstrip("/")


def _slot(manifest_key: str) -> str:
    """The export and billing period of a manifest: `<export root>/BILLING_PERIOD=YYYY-MM`, or
    its folder when the layout has no partition folder."""
    root = _export_root(manifest_key)
    rest = f"/{manifest_key}".rsplit("/metadata/", 1)[1]
    segments = rest.split("/")[:-1]
    partition = next((s for s in segments if "=" in s), "/".join(segments))
    return f"{root}/{partition}".strip("/") if partition else root


def plan_deliveries(objects: list[StoredObject]) -> tuple[list[PlannedDelivery], dict]:
    """Group a listing into deliveries: the newest manifest per slot, and every loose data
    file. Returns (deliveries, objects by key)."""
    by_key = {o.key: o for o in objects}
    newest: dict[str, StoredObject] = {}
    roots: set[str] = set()
    for o in objects:
        if _is_manifest(o.key):
            slot = _slot(o.key)
            roots.add(_export_root(o.key))
            cur = newest.get(slot)
            if cur is None or (o.modified, o.key) > (cur.modified, cur.key):
                newest[slot] = o
    out = [PlannedDelivery(slot=s, manifest=m) for s, m in newest.items()]
    data_dirs = tuple(f"{r}/data/".lstrip("/") for r in roots)
    for o in objects:
        if _is_data(o.key) and not (data_dirs and o.key.startswith(data_dirs)):
            out.append(PlannedDelivery(slot=o.key, manifest=None, parts=[o]))
    for d in out:
        m = _PERIOD.search(d.slot)
        d.billing_period = m.group(1) if m else ""
    out.sort(key=lambda d: (d.billing_period, d.slot))
    return out, by_key


def _read_manifest(store, d: PlannedDelivery, by_key: dict) -> None:
    """Read the manifest of `d` and resolve its parts against the listing. Raises
    BillingFileError (named by the manifest key) for a manifest we cannot use."""
    assert d.manifest is not None
    key = d.manifest.key
    try:
        doc = json.loads(store.read(d.manifest))
        if not isinstance(doc, dict):
            raise ValueError("a JSON object is expected")
        files = doc.get("dataFiles")
        if not isinstance(files, list) or not files:
            raise ValueError("dataFiles is missing or empty")
    except (ValueError, UnicodeDecodeError) as exc:
        reason = E_BAD_MANIFEST.format(detail=str(exc)[:200])
        raise BillingFileError(key, None, None, reason) from None
    root = _export_root(key)
    d.execution_id = str(doc.get("executionId") or "")[:200]
    period = doc.get("billingPeriod") or {}
    if isinstance(period, dict):
        d.period_start = _ts(period.get("start"))
        d.period_end = _ts(period.get("end"))
        if d.period_start and not d.billing_period:
            d.billing_period = f"{d.period_start:%Y-%m}"
    parts = []
    for entry in files:
        uri = entry if isinstance(entry, str) else (entry or {}).get("key", "")
        part_key = _resolve(str(uri), root, store)
        obj = by_key.get(part_key)
        if obj is None:
            raise BillingFileError(key, None, "dataFiles", E_PART_MISSING.format(key=part_key))
        parts.append(obj)
    d.parts = parts


def _resolve(uri: str, root: str, store) -> str:
    """A manifest's data file URI as a key relative to the source root."""
    if uri.startswith("s3://"):
        bucket, _, full = uri[5:].partition("/")
        prefix = getattr(store, "prefix", "")
        if isinstance(store, S3Store) and bucket == store.bucket:
            if not prefix:
                return full
            if full.startswith(prefix + "/"):
                return full[len(prefix) + 1 :]
        uri = full
    at = f"/{uri}".rfind("/data/")
    if at >= 0:
        rel = f"/{uri}"[at + 1 :]
        return f"{root}/{rel}".lstrip("/")
    return f"{root}/{uri.lstrip('/')}".lstrip("/")


def _ts(value) -> datetime | None:
    if not value:
        return None
    try:
        t = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _fingerprint(d: PlannedDelivery) -> str:
    h = hashlib.sha256()
    for o in d.objects():
        h.update(f"{o.key}\0{o.etag}\0{o.size}\n".encode())
    return h.hexdigest()


def _unchanged(last: BillingDelivery | None, by_key: dict, d: PlannedDelivery) -> bool:
    """True when every object the last read of this slot saw is listed exactly as then (and,
    for a manifest slot, the newest manifest is the same object)."""
    if last is None or not last.fingerprint or not last.parts:
        return False
    if d.manifest is not None and last.manifest_key != d.manifest.key:
        return False
    for stamp in last.parts:
        o = by_key.get(stamp.get("key"))
        if o is None or o.etag != stamp.get("etag") or o.size != stamp.get("size"):
            return False
    return True


# -- syncing ---------------------------------------------------------------------------------------


@dataclass
class SyncResult:
    """What one check of one source did."""

    source: str
    imported: list[int] = field(default_factory=list)  # BillingDelivery ids
    rejected: list[int] = field(default_factory=list)
    unchanged: int = 0
    error: str = ""
    skipped: bool = False  # another worker holds the source, or it is not due


def sync_all(*, force: bool = False) -> int:
    """Check every enabled, due source (one task each when Celery runs with a broker, inline
    otherwise). Returns the number of sources checked or queued."""
    from costapp import tasks

    now = timezone.now()
    due = BillingSource.objects.filter(enabled=True)
    if not force:
        due = due.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    ids = list(due.values_list("id", flat=True))
    for sid in ids:
        task = getattr(tasks, "sync_billing_source", None)
        if task is not None:
            task.delay(sid)
        else:  # pragma: no cover - before the per-source task is wired
            sync_source(sid)
    return len(ids)


def sync_source(source_id: int, *, force: bool = False) -> SyncResult:
    """Check one source: list it, import each new or restated delivery, record the outcome.

    Never raises for a source or delivery problem (that is recorded on the source and the
    delivery); a second worker checking the same source at the same time does nothing.
    """
    now = timezone.now()
    source = BillingSource.objects.get(pk=source_id)
    result = SyncResult(source=source.name)
    if not force and not source.is_due(now):
        result.skipped = True
        return result
    claimed = (
        BillingSource.objects.filter(pk=source_id)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE)
    )
    if not claimed:
        result.skipped = True
        return result
    errors: list[str] = []
    try:
        store = store_for(source)
        objects = store.list()
        deliveries, by_key = plan_deliveries(objects)
        for d in deliveries:
            outcome = _sync_delivery(source, store, d, by_key)
            if outcome is None:
                result.unchanged += 1
            elif outcome.status == BillingDelivery.Status.SUCCEEDED:
                result.imported.append(outcome.pk)
            else:
                result.rejected.append(outcome.pk)
                errors.append(f"{d.slot}: {outcome.error}")
    except SourceError as exc:
        errors.insert(0, str(exc))
        result.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - never leave a source "ok" after a crash
        message = scrub(f"unexpected error ({type(exc).__name__}): {exc}", source)[:2000]
        log.error("billing source %s: %s", source.name, message)
        errors.insert(0, message)
        result.error = message
    finally:
        _finish(source, errors, result)
    return result


def _finish(source: BillingSource, errors: list[str], result: SyncResult) -> None:
    now = timezone.now()
    if errors:
        failures = source.failures + 1
        source.failures = failures
        message = scrub("; ".join(errors), source)[:5000]
        result.error = result.error or message
        BillingSource.objects.filter(pk=source.pk).update(
            status=BillingSource.Status.FAILING,
            last_error=message,
            failures=failures,
            last_checked_at=now,
            next_attempt_at=now + source.backoff(),
            lease_until=None,
        )
        log.warning("billing source %s failing (%d): %s", source.name, failures, message)
    else:
        BillingSource.objects.filter(pk=source.pk).update(
            status=BillingSource.Status.OK,
            last_error="",
            failures=0,
            last_checked_at=now,
            last_success_at=now,
            next_attempt_at=None,
            lease_until=None,
        )


def _sync_delivery(
    source: BillingSource, store, d: PlannedDelivery, by_key: dict
) -> BillingDelivery | None:
    """Import one delivery when it is new or changed; None when unchanged. A rejected delivery
    comes back with status failed (and keeps its fingerprint: not read again until it
    changes)."""
    last = (
        BillingDelivery.objects.filter(source=source, slot=d.slot)
        .exclude(fingerprint="")
        .order_by("-started_at", "-pk")
        .first()
    )
    if d.manifest is not None and _unchanged(last, by_key, d):
        return _still_failed(last)
    if d.manifest is None and _unchanged(last, by_key, d):
        return _still_failed(last)
    delivery = BillingDelivery(
        source=source,
        slot=d.slot,
        manifest_key=d.manifest.key if d.manifest else "",
        billing_period=d.billing_period,
        fingerprint="",
        parts=[o.stamp() for o in d.objects()],
    )
    try:
        if d.manifest is not None:
            _read_manifest(store, d, by_key)
    except BillingFileError as exc:
        # A malformed manifest is not read again until it changes; a part it names that is not
        # (yet) listed is looked for again at every check.
        delivery.fingerprint = "" if exc.column == "dataFiles" else _fingerprint(d)
        return _reject(delivery, scrub(str(exc), source))
    delivery.execution_id = d.execution_id
    delivery.billing_period = d.billing_period
    delivery.period_start, delivery.period_end = d.period_start, d.period_end
    delivery.parts = [o.stamp() for o in d.objects()]
    fingerprint = _fingerprint(d)
    if last is not None and last.fingerprint == fingerprint:
        return _still_failed(last)  # e.g. the manifest was rewritten with the same content
    delivery.fingerprint = fingerprint
    delivery.save()
    return _import_delivery(source, store, d, delivery, last)


def _still_failed(last: BillingDelivery) -> BillingDelivery | None:
    return last if last.status == BillingDelivery.Status.FAILED else None


def _reject(delivery: BillingDelivery, error: str) -> BillingDelivery:
    delivery.status = BillingDelivery.Status.FAILED
    delivery.error = error[:5000]
    delivery.finished_at = timezone.now()
    delivery.save()
    return delivery


def _import_delivery(
    source: BillingSource,
    store,
    d: PlannedDelivery,
    delivery: BillingDelivery,
    last: BillingDelivery | None,
) -> BillingDelivery:
    """Download the parts, import them as one import that replaces the slot's earlier
    delivery, re-price and re-allocate; progress on a Job."""
    from costapp import services
    from costapp.billing.pricing import reprice_after_import

    job = services.start_job(
        JOB_KIND, f"Sync {source.name}: {d.slot}", source=source.name, delivery_id=delivery.pk
    )
    delivery.job = job
    delivery.save(update_fields=["job"])
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, started_at=timezone.now())
    progress = services.job_progress(job.pk)
    folder = Path(tempfile.mkdtemp(prefix="costapp-sync-"))
    try:
        # 1. Download every part first: no transaction is held open while the network works.
        local = []
        for i, part in enumerate(d.parts):
            progress(i, len(d.parts), f"downloading {part.key}")
            local.append((part, store.fetch(part, folder)))
        total = _parquet_rows(local)
        # 2. One import for every part; it replaces the slot's earlier deliveries whole.
        replaces = list(
            BillingDelivery.objects.filter(
                source=source, slot=d.slot, status=BillingDelivery.Status.SUCCEEDED
            )
            .exclude(billing_import=None)
            .values_list("billing_import_id", flat=True)
        )

        def report(done: int, _total: int, message: str) -> None:
            progress(done, total or _total, message)

        result = import_focus_charges(
            lambda: _charges(source, local),
            name=f"{source.name}: {d.manifest.key if d.manifest else d.slot}",
            sha256=delivery.fingerprint,
            cluster=source.cluster,
            progress=report,
            replaces=replaces,
        )
    except Exception as exc:  # noqa: BLE001 - recorded on the delivery, the job and the source
        message = scrub(str(exc), source)
        if not isinstance(exc, (BillingFileError, _Changed, SourceError)):
            message = f"unexpected error ({type(exc).__name__}): {message}"[:2000]
            log.error("billing source %s: %s: %s", source.name, d.slot, message)
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED, error=message, finished_at=timezone.now()
        )
        if not isinstance(exc, BillingFileError):
            delivery.fingerprint = ""  # not the content's fault: read it again next time
        return _reject(delivery, message)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    BillingDelivery.objects.filter(pk__in=[x for x in _earlier(source, d.slot, delivery)]).update(
        status=BillingDelivery.Status.REPLACED
    )
    delivery.status = BillingDelivery.Status.SUCCEEDED
    delivery.billing_import_id = result.import_id
    delivery.rows = result.rows
    delivery.total_effective_cost = result.total_effective_cost
    if result.periods and delivery.period_start is None:
        delivery.period_start = result.periods[0]
    delivery.finished_at = timezone.now()
    delivery.save()
    # 3. Re-price what the delivery covers, re-allocate the cluster-days that changed.
    #    The import is committed whatever happens here; a failure leaves the days dirty for
    #    the periodic `allocate_recent` and is shown on the job.
    progress(0, 0, "re-pricing node-hours")
    status = Job.Status.SUCCEEDED
    days = 0
    try:
        repriced = reprice_after_import(result.import_id)
        for cluster in Cluster.objects.filter(name__in=[n for n, c in repriced.items() if c]):
            days += services.allocate_dirty_days(cluster.pk, progress=progress)
        after = f"{days} cluster-day(s) re-allocated"
    except Exception as exc:  # noqa: BLE001
        status = Job.Status.FAILED
        after = f"re-pricing failed ({type(exc).__name__}: {scrub(str(exc), source)[:300]})"
        log.error("billing source %s: %s: %s", source.name, d.slot, after)
    message = (
        f"{result.rows:,} rows, EffectiveCost {result.total_effective_cost}, "
        f"{result.replaced_rows:,} earlier rows replaced; {after}"
    )
    Job.objects.filter(pk=job.pk).update(
        status=status,
        error="" if status == Job.Status.SUCCEEDED else message,
        done=result.rows,
        total=result.rows,
        message=message[:500],
        finished_at=timezone.now(),
        params={"source": source.name, "delivery_id": delivery.pk, "import_id": result.import_id},
    )
    log.info("billing source %s: imported %s (%s)", source.name, d.slot, message)
    return delivery


def _earlier(source: BillingSource, slot: str, delivery: BillingDelivery) -> list[int]:
    return list(
        BillingDelivery.objects.filter(
            source=source, slot=slot, status=BillingDelivery.Status.SUCCEEDED
        )
        .exclude(pk=delivery.pk)
        .values_list("pk", flat=True)
    )


def _parquet_rows(local: list[tuple[StoredObject, Path]]) -> int:
    """Rows of the delivery when every part is Parquet (from the footers), else 0 (unknown)."""
    if not local or not all(p.key.lower().endswith(".parquet") for p, _ in local):
        return 0
    import pyarrow.parquet as pq

    try:
        return sum(pq.ParquetFile(path).metadata.num_rows for _, path in local)
    except Exception:  # noqa: BLE001 - a bad footer is reported by the reader, with its name
        return 0


def _charges(
    source: BillingSource, local: list[tuple[StoredObject, Path]]
) -> Iterator[FocusCharge]:
    """Every part's charges in order; one currency across the delivery (the source's, else the
    first row's)."""
    currency = source.currency or None
    for part, path in local:
        name = f"{source.name}:{part.key}"
        reader = iter_parquet_rows if part.key.lower().endswith(".parquet") else iter_focus_rows
        for charge in reader(path, source_name=name, currency=currency):
            if currency is None:
                currency = charge.billing_currency
            yield charge
