"""Budget alert delivery: e-mail through Django's mail backend and a signed JSON webhook.

Webhook contract (for the receiving tool):
- `POST <webhook_url>`, `Content-Type: application/json`, body = the alert as JSON (see
  `alert_payload`), including `sent_at` so a replayed body is recognisable;
- `X-Costapp-Timestamp: <unix seconds>`;
- `X-Costapp-Signature: sha256=<hex HMAC-SHA256 of the raw body with the shared secret>`.
A 2xx answer counts as delivered; anything else (or no answer) is retried with exponential
backoff: a few quick attempts in process, then the Celery task retries for longer.

The shared secret comes from the budget: stored encrypted (Fernet with COSTAPP_FERNET_KEY, or a
key derived from SECRET_KEY when that is unset), or read from the environment variable the budget
names (`webhook_secret_env`), or COSTAPP_WEBHOOK_SECRET. It is never shown back.

Each alert is delivered at most once per channel: `email_sent_at` / `webhook_delivered_at` record
it, so a retried task never e-mails twice.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from costapp.models import Budget, BudgetAlert

SIGNATURE_HEADER = "X-Costapp-Signature"
TIMESTAMP_HEADER = "X-Costapp-Timestamp"
WEBHOOK_ATTEMPTS = 3
WEBHOOK_BASE_DELAY = 1.0
WEBHOOK_TIMEOUT = 10
ERR_NO_SECRET = "no webhook secret: set one on the budget or COSTAPP_WEBHOOK_SECRET"
ERR_UNDECRYPTABLE = "the stored webhook secret cannot be decrypted with the current key"


class WebhookError(ConnectionError):
    """The webhook was not accepted after the in-process attempts (a transient error: the task
    retries it with backoff)."""


# --- the secret ---------------------------------------------------------------------------------


def _fernet() -> Fernet:
    key = getattr(settings, "COSTAPP_FERNET_KEY", "")
    if not key:
        key = base64.urlsafe_b64encode(hashlib.sha256(
            b"costapp-webhook-secret:" + settings.SECRET_KEY.encode()).digest()).decode()
    return Fernet(key)


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode() if secret else ""


def webhook_secret(budget: Budget) -> str:
    """The budget's shared secret: stored (decrypted), its env variable, or the global one."""
    if budget.webhook_secret_encrypted:
        try:
            return _fernet().decrypt(budget.webhook_secret_encrypted.encode()).decode()
        except InvalidToken:
            raise WebhookError(ERR_UNDECRYPTABLE) from None
    secret = os.environ.get(budget.webhook_secret_env or "COSTAPP_WEBHOOK_SECRET", "")
    if not secret:
        raise WebhookError(ERR_NO_SECRET)
    return secret


def sign(body: bytes, secret: str) -> str:
    """The signature header value: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: str, header: str) -> bool:
    """What a receiver does (and what the tests do): constant-time compare."""
    return hmac.compare_digest(sign(body, secret), header or "")


# --- payload ------------------------------------------------------------------------------------


def alert_payload(alert: BudgetAlert) -> dict:
    budget = alert.budget
    return {
        "event": "budget.threshold_crossed",
        "alert_id": alert.pk,
        "budget": {"id": budget.pk, "name": budget.name, "scope": budget.scope,
                   "scope_label": budget.scope_label, "period": budget.period,
                   "amount": str(budget.amount)},
        "period_start": alert.period_start.isoformat(),
        "period_end": alert.period_end.isoformat(),
        "threshold_percent": str(alert.threshold),
        "basis": alert.basis,
        "value": str(round(alert.value, 2)),
        "actual": str(round(alert.actual, 2)),
        "forecast": str(round(alert.forecast, 2)),
        "sent_at": int(time.time()),
    }


def alert_text(alert: BudgetAlert) -> tuple[str, str]:
    b = alert.budget
    subject = (f"[costapp] {b.name}: {alert.basis} cost reached {alert.threshold:.0f}% "
               f"of budget")
    body = (f"Budget {b.name} ({b.scope_label}, {b.period} {b.amount}) for the period "
            f"{alert.period_start} to {alert.period_end}:\n\n"
            f"  actual so far: {alert.actual:.2f}\n  forecast to period end: {alert.forecast:.2f}\n"
            f"  threshold: {alert.threshold:.0f}% of the {alert.basis} cost\n")
    return subject, body


# --- delivery -----------------------------------------------------------------------------------


def post_webhook(url: str, payload: dict, secret: str, *, attempts: int = WEBHOOK_ATTEMPTS,
                 base_delay: float = WEBHOOK_BASE_DELAY,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """POST the signed payload, retrying non-2xx and network errors with exponential backoff.

    Returns the number of attempts used; raises WebhookError after the last failure.
    """
    body = json.dumps(payload, sort_keys=True).encode()
    last = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "costapp-budgets/1",
            TIMESTAMP_HEADER: str(payload["sent_at"]), SIGNATURE_HEADER: sign(body, secret),
        })
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:
                if 200 <= response.status < 300:
                    return attempt
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if attempt < attempts:
            sleep(base_delay * 2 ** (attempt - 1))
    raise WebhookError(f"webhook failed after {attempts} attempts: {last}")


def deliver_alert(alert_id: int, **webhook_options) -> str:
    """Send an alert's e-mail and webhook, each at most once. Raises WebhookError (transient)
    when the webhook is still failing, after recording the e-mail as sent."""
    alert = BudgetAlert.objects.select_related("budget", "budget__team",
                                               "budget__cost_centre").get(pk=alert_id)
    budget = alert.budget
    done = []
    if budget.emails and alert.email_sent_at is None:
        subject, body = alert_text(alert)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, list(budget.emails))
        BudgetAlert.objects.filter(pk=alert.pk).update(email_sent_at=timezone.now())
        done.append("e-mail")
    if budget.webhook_url and alert.webhook_delivered_at is None:
        try:
            used = post_webhook(budget.webhook_url, alert_payload(alert), webhook_secret(budget),
                                **webhook_options)
        except WebhookError as exc:
            BudgetAlert.objects.filter(pk=alert.pk).update(
                webhook_attempts=alert.webhook_attempts + webhook_options.get(
                    "attempts", WEBHOOK_ATTEMPTS), last_error=str(exc)[:2000])
            raise
        BudgetAlert.objects.filter(pk=alert.pk).update(
            webhook_delivered_at=timezone.now(), webhook_attempts=alert.webhook_attempts + used,
            last_error="")
        done.append("webhook")
    return ", ".join(done) or "nothing to send"
