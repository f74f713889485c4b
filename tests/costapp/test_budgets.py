"""Budgets: thresholds fire once per period, alerts are delivered once, webhooks are signed and
retried against a real HTTP server, and checks are debounced after allocation runs."""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import date, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.core import mail
from django.core.cache import cache
from django.utils import timezone

from costapp import budgets, notify
from costapp.models import (
    AllocationLine,
    Budget,
    BudgetAlert,
    Cluster,
    ClusterDay,
    CostCentre,
)

with contextlib.suppress(ImportError):
    import costapp.models.billing  # noqa: F401  (billing tables, until models/__init__ has them)

SECRET = "s3cret-shared-with-the-receiver"


def add_day(cluster, day, team, cost, namespace="pay"):
    ClusterDay.objects.update_or_create(cluster=cluster, day=day,
                                        defaults={"allocated_at": timezone.now(), "dirty": False})
    AllocationLine.objects.create(
        cluster=cluster, day=day, kind="workload", namespace=namespace,
        controller_kind="Deployment", controller="api", team=team, node_pool="general",
        capacity_type="on-demand", cpu_cost=Decimal(cost), idle_by_node=Decimal(1000),
    )


@pytest.fixture
def cluster(db):
    return Cluster.objects.create(name="c1")


@pytest.fixture
def budget(world):
    return Budget.objects.create(
        name="payments monthly", scope="team", team=world.payments, period="monthly",
        amount=Decimal("1000"), emails=["payments-lead@example.com"],
    )


def test_thresholds_fire_once_per_period_not_on_every_run(budget, cluster,
                                                          django_capture_on_commit_callbacks):
    day = date(2026, 3, 10)
    add_day(cluster, date(2026, 3, 1), "payments", 500)
    add_day(cluster, date(2026, 3, 2), "search", 5000)  # someone else's money
    with django_capture_on_commit_callbacks(execute=True):
        budgets.check_budgets_now(day)
    fired = {(a.threshold, a.basis) for a in BudgetAlert.objects.all()}
    assert (Decimal(80), "actual") not in fired  # 500 of 1000 actual
    add_day(cluster, date(2026, 3, 9), "payments", 350)  # 850: crosses 80 % of actual
    with django_capture_on_commit_callbacks(execute=True):
        budgets.check_budgets_now(day)
        budgets.check_budgets_now(day)
        budgets.check_budgets_now(day)
    actual_80 = BudgetAlert.objects.filter(threshold=80, basis="actual")
    assert actual_80.count() == 1
    assert actual_80.get().actual == Decimal("850")
    assert not BudgetAlert.objects.filter(threshold=100, basis="actual").exists()
    sent = [m.subject for m in mail.outbox if "80% of budget" in m.subject]
    assert len(sent) == 1 and mail.outbox[0].to == ["payments-lead@example.com"]
    # Next month is a new period: the same threshold can fire again there, once.
    add_day(cluster, date(2026, 4, 1), "payments", 900)
    with django_capture_on_commit_callbacks(execute=True):
        budgets.check_budgets_now(date(2026, 4, 2))
        budgets.check_budgets_now(date(2026, 4, 2))
    assert actual_80.count() == 2
    assert sorted(actual_80.values_list("period_start", flat=True)) == [
        date(2026, 3, 1), date(2026, 4, 1)]


def test_forecast_threshold_warns_before_the_budget_is_blown(budget, cluster):
    for i in range(10):  # 90 a day → ~2790 by the end of March
        add_day(cluster, date(2026, 3, 1) + timedelta(days=i), "payments", 90)
    status = budgets.budget_status(budget, date(2026, 3, 11))
    assert status.actual == Decimal("900.00")
    assert status.forecast_total == Decimal("2790.00")
    new = budgets.check_budget(budget, date(2026, 3, 11))
    assert {(a.threshold, a.basis) for a in new} == {(Decimal(80), "actual"),
                                                     (Decimal(100), "forecast")}


def test_scopes_cost_centre_namespace_cluster_and_weekly_periods(world, cluster):
    centre = CostCentre.objects.create(code="CC-1")
    world.payments.cost_centre = centre
    world.payments.save()
    add_day(cluster, date(2026, 3, 2), "payments", 10, namespace="a")
    add_day(cluster, date(2026, 3, 3), "search", 20, namespace="b")
    add_day(cluster, date(2026, 3, 9), "payments", 40, namespace="a")  # next ISO week
    AllocationLine.objects.create(cluster=cluster, day=date(2026, 3, 2), kind="idle",
                                  idle_policy="separate", namespace="__idle__",
                                  controller_kind="__idle__", controller="__idle__",
                                  team="__idle__", node_pool="general", capacity_type="x",
                                  cpu_cost=Decimal(5))

    def actual(**kw):
        b = Budget(name="x", amount=Decimal(100), **kw)
        return budgets.budget_status(b, date(2026, 3, 4)).actual

    assert actual(scope="cost_centre", cost_centre=centre, period="monthly") == 10
    assert actual(scope="namespace", namespace="b", period="monthly") == 20
    assert actual(scope="cluster", cluster=cluster, period="monthly") == 35  # incl. idle
    assert actual(scope="team", team=world.payments, period="weekly") == 10


def test_budget_check_is_debounced_for_a_burst_of_allocations(db, settings):
    settings.COSTAPP_BUDGET_CHECK_DELAY = 60
    cache.delete(budgets.CHECK_CACHE_KEY)
    with mock.patch("costapp.tasks.check_budgets.apply_async") as enqueue:
        results = [budgets.schedule_check() for _ in range(30)]
    assert results.count(True) == 1
    enqueue.assert_called_once_with(countdown=60)
    cache.delete(budgets.CHECK_CACHE_KEY)


def test_allocate_day_task_schedules_the_check_after_commit(db, django_capture_on_commit_callbacks):
    from costapp import tasks

    c = Cluster.objects.create(name="c9", simulated=True)
    cache.delete(budgets.CHECK_CACHE_KEY)
    with mock.patch("costapp.budgets.schedule_check") as schedule, \
            django_capture_on_commit_callbacks(execute=True) as callbacks:
        tasks.allocate_day(c.pk, "2026-03-02")
    assert len(callbacks) == 1 and schedule.call_count == 1


# --- webhook against a real HTTP server ---------------------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    """Fails the first request with 503, then checks the signature and accepts."""

    calls: list = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.calls.append((dict(self.headers), body))
        if len(Receiver.calls) == 1:
            self.send_response(503)
        elif notify.verify(body, SECRET, self.headers.get("X-Costapp-Signature")):
            self.send_response(204)
        else:
            self.send_response(401)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_is_signed_retried_after_failure_and_delivered_once(budget, cluster, receiver):
    budget.webhook_url = receiver
    budget.webhook_secret_encrypted = notify.encrypt_secret(SECRET)
    budget.save()
    assert SECRET not in budget.webhook_secret_encrypted
    add_day(cluster, date(2026, 3, 1), "payments", 1200)
    (a80, a100, f100) = sorted(budgets.check_budget(budget, date(2026, 3, 2)),
                               key=lambda a: (a.threshold, a.basis))
    delays = []
    result = notify.deliver_alert(a80.pk, base_delay=0.01, sleep=delays.append)
    assert result == "e-mail, webhook"
    assert len(Receiver.calls) == 2 and delays == [0.01]
    headers, body = Receiver.calls[1]
    expected = "sha256=" + __import__("hmac").new(SECRET.encode(), body, "sha256").hexdigest()
    assert headers["X-Costapp-Signature"] == expected
    payload = json.loads(body)
    assert headers["X-Costapp-Timestamp"] == str(payload["sent_at"])
    assert payload["threshold_percent"] == "80.00" and payload["basis"] == "actual"
    assert payload["budget"]["name"] == "payments monthly" and payload["actual"] == "1200.00"
    a80.refresh_from_db()
    assert a80.webhook_delivered_at and a80.webhook_attempts == 2 and a80.email_sent_at
    # A redelivered task sends nothing again.
    assert notify.deliver_alert(a80.pk) == "nothing to send"
    assert len(Receiver.calls) == 2 and len(mail.outbox) == 1


def test_webhook_that_keeps_failing_raises_a_transient_error_after_the_email(budget, cluster,
                                                                           monkeypatch):
    monkeypatch.setenv("PAYMENTS_HOOK_SECRET", SECRET)
    budget.webhook_url = "http://127.0.0.1:9/nothing-listens-here"
    budget.webhook_secret_env = "PAYMENTS_HOOK_SECRET"
    budget.save()
    add_day(cluster, date(2026, 3, 1), "payments", 900)
    (alert,) = budgets.check_budget(budget, date(2026, 3, 2))[:1]
    with pytest.raises(notify.WebhookError, match="after 3 attempts"):
        notify.deliver_alert(alert.pk, base_delay=0, sleep=lambda s: None)
    alert.refresh_from_db()
    assert alert.email_sent_at and not alert.webhook_delivered_at and alert.last_error
    assert isinstance(notify.WebhookError("x"), ConnectionError)  # tasks retry it with backoff
    with pytest.raises(notify.WebhookError):
        notify.deliver_alert(alert.pk, base_delay=0, sleep=lambda s: None)
    assert len(mail.outbox) == 1  # the e-mail is not sent twice
