"""Bill uploads imported by a real Celery worker on Redis (PostgreSQL test database)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from costapp import demo, services
from costapp.models import ClusterDay, Job, Node, NodeHour
from costapp.models.billing import BillingCharge, BillingImport
from tests.billing.test_app_reprice import DAY, DAY_START, write_bill
from tests.costapp import conftest as costapp_fixtures

celery_worker_process = costapp_fixtures.celery_worker_process


@pytest.fixture
def fresh_celery_connections():
    """Drop the connection pool an earlier (eager, memory://) `.delay()` in this process left
    behind, so the worker fixture's ping and our tasks go to its Redis broker."""
    from costapp.celery import app

    def reset() -> None:
        from kombu import pools

        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None

    reset()
    yield
    reset()


def wait_for(predicate, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def finished(job_id: int) -> Job | None:
    job = Job.objects.get(pk=job_id)
    return job if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED) else None


@pytest.mark.celery
def test_uploads_are_imported_and_reallocated_by_the_celery_worker(
    fresh_celery_connections, celery_worker_process, settings, tmp_path, focus_bytes
):
    settings.BILLING_UPLOAD_DIR = str(tmp_path / "uploads")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    finance = User.objects.create_user("fin", password="x")
    finance.groups.add(Group.objects.get_or_create(name="finance")[0])
    c = Client()
    c.force_login(finance)

    # 1. The real sample: the job succeeds on the worker and the import is listed.
    r = c.post(reverse("billing-upload"),
               {"file": SimpleUploadedFile("focus_sample_1000.csv", focus_bytes)})
    assert r.status_code == 302
    job_id = int(r["Location"].rstrip("/").rsplit("/", 1)[1])
    wait_for(lambda: finished(job_id), "the sample import job")
    job = finished(job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    imp = BillingImport.objects.get(pk=job.params["import_id"])
    assert imp.rows == 1000 and imp.status == "succeeded"
    assert BillingCharge.objects.count() == 1000
    state = c.get(reverse("job-progress", args=[job_id]) + "?format=json").json()
    assert state["status"] == "succeeded" and state["import_id"] == imp.pk
    assert "focus_sample_1000.csv" in c.get(reverse("billing")).content.decode()

    # 2. A bill for allocated hours: imported and re-priced by the worker, the day re-allocated
    #    by the allocate_day tasks it queues.
    cluster = demo.ensure_world()
    services.simulate_history(cluster, 1, end=DAY_START + timedelta(days=1), step_seconds=900)
    services.allocate_dirty_days()
    node_id = (
        NodeHour.objects.filter(cluster=cluster, hour_start__gte=DAY_START,
                                hour_start__lt=DAY_START + timedelta(days=1))
        .values_list("node_id", flat=True).order_by("node_id").first()
    )
    instance = Node.objects.get(pk=node_id).provider_id.rsplit("/", 1)[1]
    bill = write_bill(tmp_path / "bill.csv", instance, cluster.name)
    r = c.post(reverse("billing-upload"),
               {"file": SimpleUploadedFile("bill.csv", bill.read_bytes())})
    job_id = int(r["Location"].rstrip("/").rsplit("/", 1)[1])
    wait_for(lambda: finished(job_id), "the bill import job")
    job = finished(job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert "queued for re-allocation" in job.message

    def reallocated() -> bool:
        day = ClusterDay.objects.get(cluster=cluster, day=DAY)
        return not day.dirty and "bill" in day.priced_by

    wait_for(reallocated, "the re-allocation of the billed day")
    assert not list((tmp_path / "uploads").iterdir())
