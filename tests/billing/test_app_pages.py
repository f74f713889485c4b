"""Bill upload, imports list, import detail and job pages (Celery inline: no REDIS_URL)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import Client
from django.urls import reverse

from costapp.models import Job
from costapp.models.billing import BillingCharge, BillingImport
from tests.costapp import conftest as costapp_fixtures

world = costapp_fixtures.world  # the fixture world of users and teams (tests/costapp)

pytestmark = pytest.mark.django_db

SAMPLE_TOTAL = Decimal("15.82337935417")  # Σ EffectiveCost of focus_sample_1000.csv


@pytest.fixture(autouse=True)
def _uploads(settings, tmp_path):
    settings.BILLING_UPLOAD_DIR = str(tmp_path / "uploads")
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast users


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def upload(client, name: str, data: bytes, capture, **extra):
    """POST the upload form; the import task is sent on commit and runs inline."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    with capture(execute=True):
        return client.post(
            reverse("billing-upload"),
            {"file": SimpleUploadedFile(name, data, content_type="text/csv"), **extra},
        )


def job_of(response) -> Job:
    assert response.status_code == 302, response.content[:500]
    pk = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    assert response["Location"] == reverse("job", args=[pk])
    return Job.objects.get(pk=pk)


def sample_total(focus_sample) -> Decimal:
    from costapp.billing.focus import iter_focus_rows

    return sum((c.effective_cost for c in iter_focus_rows(focus_sample)), Decimal(0))


@pytest.mark.parametrize("url", ["billing", "billing-upload", "billing-reconciliation"])
def test_billing_pages_redirect_anonymous_forbid_team_members_and_open_for_finance(world, url):
    anon = Client().get(reverse(url))
    assert anon.status_code == 302 and reverse("login") in anon["Location"]
    assert client_for(world.alice).get(reverse(url)).status_code == 403
    assert client_for(world.outsider).get(reverse(url)).status_code == 403
    assert client_for(world.finance).get(reverse(url)).status_code == 200
    assert client_for(world.admin).get(reverse(url)).status_code == 200


def test_upload_needs_the_csrf_token(world, focus_bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    c = Client(enforce_csrf_checks=True)
    c.force_login(world.finance)
    r = c.post(reverse("billing-upload"), {"file": SimpleUploadedFile("a.csv", focus_bytes)})
    assert r.status_code == 403
    assert not Job.objects.exists() and not BillingImport.objects.exists()


def test_team_member_cannot_upload(world, focus_bytes, django_capture_on_commit_callbacks):
    r = upload(client_for(world.alice), "x.csv", focus_bytes, django_capture_on_commit_callbacks)
    assert r.status_code == 403
    assert not Job.objects.exists() and not BillingImport.objects.exists()


def test_uploading_the_real_sample_runs_a_job_that_succeeds_and_lists_the_import(
    world, focus_sample, focus_bytes, django_capture_on_commit_callbacks, tmp_path
):
    c = client_for(world.finance)
    job = job_of(upload(c, "focus_sample_1000.csv", focus_bytes,
                        django_capture_on_commit_callbacks))
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.kind == "import_billing" and job.created_by == world.finance
    imp = BillingImport.objects.get(pk=job.params["import_id"])
    assert imp.status == "succeeded" and imp.rows == 1000
    assert imp.total_effective_cost == sample_total(focus_sample)
    assert not list((tmp_path / "uploads").iterdir())  # the spooled file is gone

    state = c.get(reverse("job-progress", args=[job.pk]) + "?format=json").json()
    assert state["status"] == "succeeded" and state["percent"] == 100
    assert state["import_id"] == imp.pk and state["finished"] is True
    assert "1,000 rows" in state["message"]
    page = c.get(reverse("job", args=[job.pk])).content.decode()
    assert "data-poll-url" in page and "<progress" in page and f"Import #{imp.pk}" in page

    listing = c.get(reverse("billing")).content.decode()
    assert "focus_sample_1000.csv" in listing and "succeeded" in listing
    assert f"{imp.total_effective_cost:,.2f} USD" in listing

    detail = c.get(reverse("billing-import", args=[imp.pk]))
    assert detail.status_code == 200
    body = detail.content.decode()
    for text in ("EffectiveCost", "BilledCost", "ListCost", "By ChargeCategory",
                 "By PricingCategory", "Commitment discounts used"):
        assert text in body
    d = detail.context["detail"]
    assert d["totals"]["effective"] == imp.total_effective_cost
    assert d["totals"]["rows"] == 1000
    by_cat = {r["charge_category"]: r["effective"] for r in d["by_charge_category"]}
    assert sum(by_cat.values(), Decimal(0)) == imp.total_effective_cost
    assert sum((r["effective"] for r in d["by_pricing_category"]), Decimal(0)) == (
        imp.total_effective_cost
    )
    used = BillingCharge.objects.exclude(commitment_discount_id="")
    assert len(d["commitments"]) == used.values("commitment_discount_id",
                                                "commitment_discount_type",
                                                "commitment_discount_status").distinct().count()
    assert d["commitment_totals"]["rows"] == used.count()


def _with_text_in_effective_cost(data: bytes, row_index: int) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode())))
    rows[row_index][rows[0].index("EffectiveCost")] = "twelve"
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize(
    ("variant", "expected"),
    [
        ("truncated", ["row 761", "fields but the header has 44"]),
        ("text", ["row 6", "column EffectiveCost", "not a number: 'twelve'"]),
    ],
)
def test_a_broken_file_shows_row_column_and_reason_and_keeps_nothing(
    world, focus_bytes, django_capture_on_commit_callbacks, tmp_path, variant, expected
):
    if variant == "truncated":
        data = focus_bytes[: len(focus_bytes) * 3 // 4]
    else:
        data = _with_text_in_effective_cost(focus_bytes, 5)
    c = client_for(world.finance)
    job = job_of(upload(c, "broken.csv", data, django_capture_on_commit_callbacks))
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    for text in expected:
        assert text in job.error
    assert not BillingCharge.objects.exists()
    imp = BillingImport.objects.get(pk=job.params["import_id"])
    assert imp.status == "failed" and imp.rows == 0 and all(t in imp.error for t in expected)
    assert not list((tmp_path / "uploads").iterdir())

    page = c.get(reverse("job", args=[job.pk])).content.decode()
    assert all(t.replace("'", "&#x27;") in page for t in expected)
    assert "Nothing of this file was kept" in page
    detail = c.get(reverse("billing-import", args=[imp.pk])).content.decode()
    assert "Rejected." in detail and "Nothing of this file was kept" in detail
    state = c.get(reverse("job-progress", args=[job.pk]) + "?format=json").json()
    assert state["status"] == "failed" and expected[0] in state["error"]


def test_uploading_the_same_file_twice_replaces_instead_of_doubling(
    world, focus_sample, focus_bytes, django_capture_on_commit_callbacks
):
    c = client_for(world.finance)
    first = job_of(upload(c, "bill.csv", focus_bytes, django_capture_on_commit_callbacks))
    second = job_of(upload(c, "bill.csv", focus_bytes, django_capture_on_commit_callbacks))
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == second.status == Job.Status.SUCCEEDED
    total = BillingCharge.objects.aggregate(s=Sum("effective_cost"))["s"]
    assert total == sample_total(focus_sample)
    assert BillingCharge.objects.count() == 1000
    assert BillingImport.objects.get(pk=first.params["import_id"]).status == "replaced"
    assert BillingImport.objects.get(pk=second.params["import_id"]).replaced_rows == 1000


def test_jobs_are_visible_to_their_starter_and_finance_only(world):
    job = Job.objects.create(kind="import_billing", description="x", created_by=world.alice)
    assert client_for(world.alice).get(reverse("job", args=[job.pk])).status_code == 200
    assert client_for(world.finance).get(reverse("job", args=[job.pk])).status_code == 200
    assert client_for(world.bob).get(reverse("job", args=[job.pk])).status_code == 403
    poll = client_for(world.bob).get(reverse("job-progress", args=[job.pk]) + "?format=json")
    assert poll.status_code == 403


def test_job_progress_reads_the_cache_first_then_the_row(world):
    from django.core.cache import cache

    job = Job.objects.create(kind="import_billing", status="running", done=1, total=10,
                             message="from the row", created_by=world.finance)
    c = client_for(world.finance)
    url = reverse("job-progress", args=[job.pk])
    assert c.get(url + "?format=json").json()["message"] == "from the row"
    cache.set(f"job:{job.pk}:progress", (50_000, 200_000, "importing 50,000 rows"), 60)
    try:
        state = c.get(url, HTTP_ACCEPT="application/json").json()
        assert (state["done"], state["total"], state["percent"]) == (50_000, 200_000, 25)
        fragment = c.get(url)
        assert fragment["Cache-Control"] == "no-store"
        html = fragment.content.decode()
        assert 'value="25"' in html and "importing 50,000 rows" in html
        assert 'data-finished="0"' in html
    finally:
        cache.delete(f"job:{job.pk}:progress")


def test_imports_api_lists_imports_for_finance_only(world, focus_sample):
    from costapp.billing.importer import import_focus_file

    result = import_focus_file(focus_sample)
    url = reverse("api-billing-imports")
    assert Client().get(url).status_code in (401, 403)
    assert client_for(world.alice).get(url).status_code == 403
    body = client_for(world.finance).get(url).json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == result.import_id and row["rows"] == 1000 and row["status"] == "succeeded"
    assert Decimal(row["total_effective_cost"]) == result.total_effective_cost
    assert row["provider"] and row["billing_period_start"] and row["file_name"]
    detail = client_for(world.finance).get(
        reverse("api-billing-import", args=[result.import_id])
    ).json()
    assert Decimal(detail["totals"]["effective"]) == result.total_effective_cost
    assert "commitments" in detail and "by_pricing_category" in detail


def test_imports_api_post_starts_a_job(world, focus_bytes, django_capture_on_commit_callbacks):
    from django.core.files.uploadedfile import SimpleUploadedFile

    c = client_for(world.admin)
    with django_capture_on_commit_callbacks(execute=True):
        r = c.post(reverse("api-billing-imports"),
                   {"file": SimpleUploadedFile("api.csv", focus_bytes)}, format="multipart")
    assert r.status_code == 202, r.content
    job = Job.objects.get(pk=r.json()["job"])
    assert job.status == Job.Status.SUCCEEDED
    assert BillingImport.objects.get(pk=job.params["import_id"]).rows == 1000


def test_nav_links_to_bills_for_finance_and_admins_only(world):
    assert 'href="/billing/"' in client_for(world.finance).get(reverse("billing")).content.decode()
    member_page = client_for(world.alice).get(reverse("overview")).content.decode()
    assert 'href="/billing/"' not in member_page and "Log out" in member_page


def test_an_unexpected_error_fails_the_job_visibly_instead_of_a_500(
    world, focus_bytes, django_capture_on_commit_callbacks, monkeypatch
):
    from costapp.billing import service

    def boom(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(service, "import_bill", boom)
    job = job_of(upload(client_for(world.finance), "x.csv", focus_bytes,
                        django_capture_on_commit_callbacks))
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and "database went away" in job.error


@pytest.mark.django_db
def test_an_import_left_running_by_a_crash_is_marked_failed_later():
    from datetime import timedelta

    from django.utils import timezone

    from costapp.billing.service import STALE_IMPORT, fail_stale_imports

    old = BillingImport.objects.create(file_name="old.csv", sha256="x")
    BillingImport.objects.filter(pk=old.pk).update(started_at=timezone.now() - timedelta(hours=3))
    fresh = BillingImport.objects.create(file_name="fresh.csv", sha256="y")
    assert fail_stale_imports() == 1
    old.refresh_from_db()
    fresh.refresh_from_db()
    assert old.status == "failed" and old.error == STALE_IMPORT
    assert fresh.status == "running"
