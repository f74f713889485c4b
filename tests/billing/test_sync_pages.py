"""The billing sources page: status, last delivery, error without secrets; finance only."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from costapp.billing import sync
from costapp.models.sources import BillingDelivery, BillingSource
from tests.billing.test_sync_helpers import delivery, write_local

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    """A finance user and a team member (the billing pages' audience and an outsider)."""
    from django.contrib.auth.models import Group, User

    finance = User.objects.create_user("finance", password="pw-finance-123")
    finance.groups.add(Group.objects.get_or_create(name="finance")[0])
    alice = User.objects.create_user("alice", password="pw-alice-123")

    class World:
        pass

    w = World()
    w.finance, w.alice = finance, alice
    return w


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_the_page_lists_sources_with_their_last_delivery_and_errors(world, tmp_path, focus_sample,
                                                                    monkeypatch):
    write_local(tmp_path, delivery(focus_sample, rows=200, parts=2, fmt="csv"))
    good = BillingSource.objects.create(name="local-exports", kind="local", path=str(tmp_path))
    sync.sync_source(good.pk)
    monkeypatch.setenv("KEY_VAR", "AKIAPAGESECRET000001")
    monkeypatch.setenv("SECRET_VAR", "page-secret-value")
    bad = BillingSource.objects.create(
        name="payer", kind="s3", bucket="b", endpoint_url="http://127.0.0.1:9",
        access_key_id_env="KEY_VAR", secret_access_key_env="SECRET_VAR",
    )
    sync.sync_source(bad.pk)
    r = client_for(world.finance).get(reverse("billing-sources"))
    assert r.status_code == 200
    html = r.content.decode()
    assert "local-exports" in html and "BILLING_PERIOD=2024-09" in html and ">200<" in html
    assert "cannot reach the S3 endpoint" in html and "failing" in html
    assert "AKIAPAGESECRET000001" not in html and "page-secret-value" not in html
    d = client_for(world.finance).get(reverse("billing-source", args=[bad.pk])).content.decode()
    assert "KEY_VAR" in d and "AKIAPAGESECRET000001" not in d and "page-secret-value" not in d
    assert BillingDelivery.objects.filter(source=good, status="succeeded").count() == 1


def test_team_members_cannot_see_sources(world):
    assert client_for(world.alice).get(reverse("billing-sources")).status_code == 403


def test_check_now_runs_the_source_even_while_it_backs_off(
    world, tmp_path, focus_sample, django_capture_on_commit_callbacks
):
    source = BillingSource.objects.create(name="later", kind="local", path=str(tmp_path / "x"))
    sync.sync_source(source.pk)  # fails: folder missing -> backoff
    source.refresh_from_db()
    assert source.status == "failing" and not source.is_due()
    (tmp_path / "x").mkdir()
    write_local(tmp_path / "x", delivery(focus_sample, rows=50, parts=1, fmt="csv"))
    with django_capture_on_commit_callbacks(execute=True):  # the task runs inline (no broker)
        r = client_for(world.finance).post(reverse("billing-source-sync", args=[source.pk]))
    assert r.status_code == 302
    source.refresh_from_db()
    assert source.status == "ok" and source.failures == 0
    assert source.deliveries.get().rows == 50
