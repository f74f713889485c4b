"""Scheduled sync from a local folder: the AWS Data Exports layout copied in, and loose files."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db.models import Sum

from costapp.billing import sync
from costapp.models.billing import BillingCharge
from costapp.models.sources import BillingDelivery, BillingSource
from tests.billing.test_sync_helpers import (
    EXPORT,
    csv_gz,
    delivery,
    sample_lines,
    total_of,
    write_local,
)

pytestmark = pytest.mark.django_db


def total():
    return BillingCharge.objects.aggregate(s=Sum("effective_cost"))["s"]


def test_a_copied_export_and_its_restatement_in_a_local_folder(tmp_path, focus_sample):
    # The manifest names s3:// URIs of another bucket: parts resolve against the export folder.
    write_local(tmp_path, delivery(focus_sample, rows=1000, parts=2, fmt="parquet",
                                   bucket="somewhere-else", prefix="x/y"))
    source = BillingSource.objects.create(name="local", kind="local", path=str(tmp_path))
    first = sync.sync_source(source.pk)
    assert first.error == "" and len(first.imported) == 1
    assert total() == total_of(focus_sample, 1000)
    assert sync.sync_source(source.pk).unchanged == 1  # nothing new: nothing read

    for p in (tmp_path / EXPORT / "data").rglob("*.parquet"):
        p.unlink()
    write_local(tmp_path, delivery(focus_sample, rows=600, parts=3, fmt="csv"))
    second = sync.sync_source(source.pk)
    assert len(second.imported) == 1
    assert BillingCharge.objects.count() == 600 and total() == total_of(focus_sample, 600)
    assert BillingDelivery.objects.get(pk=first.imported[0]).status == "replaced"


def test_a_loose_file_is_a_delivery_of_its_own(tmp_path, focus_sample):
    header, lines = sample_lines(focus_sample)
    (tmp_path / "dropped").mkdir()
    (tmp_path / "dropped" / "bill.csv.gz").write_bytes(csv_gz(header, lines[:300]))
    (tmp_path / ".in-progress.csv").write_bytes(b"ignored")  # hidden: a copy in progress
    source = BillingSource.objects.create(name="drop", kind="local", path=str(tmp_path))
    result = sync.sync_source(source.pk)
    assert len(result.imported) == 1 and BillingCharge.objects.count() == 300
    d = BillingDelivery.objects.get()
    assert d.slot == "dropped/bill.csv.gz" and d.manifest_key == ""


def test_a_missing_folder_is_a_clear_error(tmp_path):
    source = BillingSource.objects.create(name="gone", kind="local", path=str(tmp_path / "nope"))
    result = sync.sync_source(source.pk)
    source.refresh_from_db()
    assert source.status == "failing" and "does not exist on the worker" in source.last_error
    assert result.error == source.last_error


def test_the_command_adds_a_source_without_storing_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("PROD_KEY", "AKIASECRETSECRET0001")
    out = io.StringIO()
    call_command("add_billing_source", "payer", "--s3-bucket", "bills", "--prefix", "exports",
                 "--region", "eu-west-1", "--access-key-env", "PROD_KEY",
                 "--secret-key-env", "PROD_SECRET", stdout=out)
    s = BillingSource.objects.get(name="payer")
    assert s.kind == "s3" and s.access_key_id_env == "PROD_KEY"
    assert "AKIASECRETSECRET0001" not in str(list(BillingSource.objects.values()))
    call_command("add_billing_source", "folder", "--path", str(tmp_path), stdout=out)
    assert BillingSource.objects.get(name="folder").kind == "local"


def test_an_unexpected_error_fails_the_delivery_not_silently(tmp_path, focus_sample, monkeypatch):
    write_local(tmp_path, delivery(focus_sample, rows=50, parts=1, fmt="csv"))
    source = BillingSource.objects.create(name="boom", kind="local", path=str(tmp_path))

    def broken(*a, **kw):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sync, "_parquet_rows", broken)
    result = sync.sync_source(source.pk)
    source.refresh_from_db()
    assert source.status == "failing" and "RuntimeError" in source.last_error
    d = BillingDelivery.objects.get(pk=result.rejected[0])
    assert d.status == "failed" and d.fingerprint == ""  # read again at the next check
    assert d.job.status == "failed" and BillingCharge.objects.count() == 0
    monkeypatch.undo()
    assert len(sync.sync_source(source.pk, force=True).imported) == 1


def test_a_part_not_yet_delivered_is_looked_for_again(tmp_path, focus_sample):
    objects = delivery(focus_sample, rows=100, parts=2, fmt="csv")
    late = next(k for k in objects if k.endswith("-00002.csv.gz"))
    write_local(tmp_path, {k: v for k, v in objects.items() if k != late})
    source = BillingSource.objects.create(name="slow", kind="local", path=str(tmp_path))
    first = sync.sync_source(source.pk)
    assert first.rejected and "not in the bucket" in first.error
    write_local(tmp_path, {late: objects[late]})
    second = sync.sync_source(source.pk, force=True)
    assert len(second.imported) == 1 and BillingCharge.objects.count() == 100
