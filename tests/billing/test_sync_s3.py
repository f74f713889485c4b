"""Scheduled sync from S3, over the real S3 wire protocol: moto's server on loopback, boto3
with `endpoint_url`, deliveries built from the real FOCUS sample (Parquet and CSV.gz parts with
an AWS Data Exports manifest)."""

from __future__ import annotations

import logging
from collections import Counter

import boto3
import pytest
import requests
from django.db.models import Sum
from moto.server import ThreadedMotoServer

from costapp.billing import sync
from costapp.models import Job
from costapp.models.billing import BillingCharge
from costapp.models.sources import BillingDelivery, BillingSource
from tests.billing.test_sync_helpers import EXPORT, PERIOD, delivery, total_of

pytestmark = pytest.mark.django_db

KEY_ENV, SECRET_ENV = "TEST_BILLING_KEY_ID", "TEST_BILLING_SECRET"
GOOD_KEY, GOOD_SECRET = "testing", "testing-secret"


@pytest.fixture(scope="module")
def s3_server():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    """A fresh bucket, a client on it, and a log of every S3 operation our sync performs."""
    requests.post(f"{s3_server}/moto-api/reset")
    monkeypatch.setenv(KEY_ENV, GOOD_KEY)
    monkeypatch.setenv(SECRET_ENV, GOOD_SECRET)
    client = boto3.client(
        "s3", endpoint_url=s3_server, region_name="us-east-1",
        aws_access_key_id=GOOD_KEY, aws_secret_access_key=GOOD_SECRET,
    )
    client.create_bucket(Bucket="bills")
    calls: Counter = Counter()
    real = sync.s3_client

    def counting(source):
        c = real(source)
        c.meta.events.register(
            "before-call.s3.*", lambda model, **kw: calls.update([model.name])
        )
        return c

    monkeypatch.setattr(sync, "s3_client", counting)

    class S3:
        url = s3_server

        @staticmethod
        def put(objects: dict[str, bytes], prefix: str = "exports") -> None:
            for key, data in objects.items():
                client.put_object(Bucket="bills", Key=f"{prefix}/{key}", Body=data)

    S3.client, S3.calls = client, calls
    return S3


def make_source(s3, **kw) -> BillingSource:
    fields = dict(
        name="aws-payer", kind="s3", bucket="bills", prefix="exports", region="us-east-1",
        endpoint_url=s3.url, access_key_id_env=KEY_ENV, secret_access_key_env=SECRET_ENV,
    )
    fields.update(kw)
    return BillingSource.objects.create(**fields)


def charges_total():
    return BillingCharge.objects.aggregate(s=Sum("effective_cost"))["s"]


def test_first_delivery_in_parquet_parts_is_imported_whole(s3, focus_sample):
    s3.put(delivery(focus_sample, rows=1000, parts=3, fmt="parquet"))
    source = make_source(s3)
    result = sync.sync_source(source.pk)
    assert result.error == "" and len(result.imported) == 1
    d = BillingDelivery.objects.get(pk=result.imported[0])
    assert d.status == "succeeded" and d.rows == 1000 and len(d.parts) == 4  # manifest + 3
    assert d.slot == f"{EXPORT}/BILLING_PERIOD={PERIOD}" and d.billing_period == PERIOD
    assert d.execution_id and d.period_start.isoformat().startswith(PERIOD)
    assert BillingCharge.objects.count() == 1000
    assert charges_total() == total_of(focus_sample, 1000) == d.total_effective_cost
    job = Job.objects.get(pk=d.job_id)
    assert job.kind == sync.JOB_KIND and job.status == "succeeded" and job.done == 1000
    source.refresh_from_db()
    assert source.status == "ok" and source.last_error == "" and source.last_success_at


def test_a_restatement_replaces_the_earlier_delivery_instead_of_adding(s3, focus_sample):
    s3.put(delivery(focus_sample, rows=1000, parts=2, fmt="parquet"))
    source = make_source(s3)
    first = sync.sync_source(source.pk).imported[0]
    # AWS overwrites the month: fewer rows now, gzip CSV this time, a new manifest.
    s3.client.delete_object(
        Bucket="bills",
        Key=f"exports/{EXPORT}/data/BILLING_PERIOD={PERIOD}/{EXPORT}-00001.snappy.parquet",
    )
    s3.put(delivery(focus_sample, rows=800, parts=2, fmt="csv"))
    result = sync.sync_source(source.pk)
    assert len(result.imported) == 1 and result.error == ""
    assert BillingCharge.objects.count() == 800
    assert charges_total() == total_of(focus_sample, 800)
    assert BillingDelivery.objects.get(pk=first).status == "replaced"
    newest = BillingDelivery.objects.get(pk=result.imported[0])
    assert set(BillingCharge.objects.values_list("billing_import_id", flat=True)) == {
        newest.billing_import_id
    }


def test_an_unchanged_recheck_reads_nothing(s3, focus_sample):
    s3.put(delivery(focus_sample, rows=1000, parts=2, fmt="csv"))
    source = make_source(s3)
    sync.sync_source(source.pk)
    assert s3.calls["GetObject"] == 3  # the manifest and two parts
    s3.calls.clear()
    result = sync.sync_source(source.pk)
    assert result.imported == [] and result.unchanged == 1
    assert s3.calls["GetObject"] == 0 and set(s3.calls) == {"ListObjectsV2"}
    assert BillingDelivery.objects.count() == 1 and BillingCharge.objects.count() == 1000


def test_a_corrupt_part_rejects_its_delivery_and_keeps_the_earlier_one(s3, focus_sample):
    s3.put(delivery(focus_sample, rows=1000, parts=2, fmt="csv"))
    source = make_source(s3)
    sync.sync_source(source.pk)
    before = charges_total()
    s3.put(delivery(focus_sample, rows=900, parts=2, fmt="csv", corrupt_part=2))
    result = sync.sync_source(source.pk)
    assert result.imported == [] and len(result.rejected) == 1
    bad = BillingDelivery.objects.get(pk=result.rejected[0])
    assert bad.status == "failed" and f"{EXPORT}-00002.csv.gz" in bad.error
    assert "compressed stream is truncated" in bad.error or "row" in bad.error
    # Nothing of the bad delivery (not even its good first part) was kept.
    assert BillingCharge.objects.count() == 1000 and charges_total() == before
    source.refresh_from_db()
    assert source.status == "failing" and f"{EXPORT}-00002.csv.gz" in source.last_error
    assert source.next_attempt_at is not None and source.failures == 1
    # Checked again, unchanged: not read again, still reported.
    s3.calls.clear()
    again = sync.sync_source(source.pk, force=True)
    assert s3.calls["GetObject"] == 0 and again.rejected == [bad.pk]


def test_wrong_credentials_mark_the_source_failing_without_the_secret(
    s3, focus_sample, monkeypatch, caplog
):
    s3.put(delivery(focus_sample, rows=100, parts=1, fmt="csv"))
    bad_key, bad_secret = "AKIAWRONGWRONGWRONG1", "wrong-secret-value-do-not-show"
    monkeypatch.setenv(KEY_ENV, bad_key)
    monkeypatch.setenv(SECRET_ENV, bad_secret)
    requests.post(f"{s3.url}/moto-api/reset-auth", data=b"0")  # moto checks keys from now on
    try:
        source = make_source(s3)
        with caplog.at_level(logging.DEBUG, logger="costapp"):
            result = sync.sync_source(source.pk)
    finally:
        requests.post(f"{s3.url}/moto-api/reset-auth", data=b"inf")
    source.refresh_from_db()
    assert source.status == "failing" and source.failures == 1
    assert "S3 rejected the credentials" in source.last_error
    assert KEY_ENV in source.last_error  # says where the keys came from, by variable name
    for text in (source.last_error, result.error, caplog.text):
        assert bad_key not in text and bad_secret not in text
    assert BillingCharge.objects.count() == 0
    # Backoff: not due again at once.
    assert source.next_attempt_at > source.last_checked_at
    assert sync.sync_source(source.pk).skipped


def test_a_missing_bucket_fails_only_its_source(s3, focus_sample, tmp_path):
    s3.put(delivery(focus_sample, rows=100, parts=1, fmt="csv"))
    broken = make_source(s3, name="broken", bucket="no-such-bucket")
    good = make_source(s3, name="good")
    assert sync.sync_all() == 2  # inline without a broker: both checked
    broken.refresh_from_db()
    good.refresh_from_db()
    assert broken.status == "failing" and "'no-such-bucket' does not exist" in broken.last_error
    assert good.status == "ok" and BillingCharge.objects.count() == 100


def test_missing_credential_variables_are_named(s3, monkeypatch):
    monkeypatch.delenv(SECRET_ENV)
    source = make_source(s3)
    result = sync.sync_source(source.pk)
    assert result.error == sync.E_ENV_MISSING.format(names=SECRET_ENV)
