"""Billing sources: where cloud billing exports land, and each delivery read from them.

Secrets are never stored: an S3 source names the *environment variables* that hold its keys
(or names none, and the standard AWS chain applies: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`,
a profile, an IAM role of the worker). See `costapp.billing.sync` for how sources are read.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from costapp.models.billing import BILL_MONEY, BillingImport
from costapp.models.core import Cluster, Job

ENV_NAME = RegexValidator(
    r"^[A-Za-z_][A-Za-z0-9_]*$", "the NAME of an environment variable (e.g. PROD_BILLING_KEY)"
)


class BillingSource(models.Model):
    """One place cloud billing exports are delivered to: an S3 location or a local folder.

    `cluster` is the cluster of charges whose tags name none (an account dedicated to one
    cluster); leave it empty for a shared account whose charges carry cluster tags. Status is
    the health of the last check; a failing source is retried with backoff (`next_attempt_at`).
    """

    class Kind(models.TextChoices):
        S3 = "s3", "S3 bucket (AWS Data Exports, or any S3-compatible store)"
        LOCAL = "local", "local folder"

    class Status(models.TextChoices):
        NEW = "new"
        OK = "ok"
        SYNCING = "syncing"
        FAILING = "failing"

    name = models.SlugField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.LOCAL)
    cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="billing_sources",
        help_text="cluster of charges whose tags name none (an account dedicated to one cluster)",
    )
    currency = models.CharField(
        max_length=3, blank=True, help_text="expected BillingCurrency; blank: the file's own"
    )
    enabled = models.BooleanField(default=True)
    # S3
    bucket = models.CharField(max_length=255, blank=True)
    prefix = models.CharField(
        max_length=1024, blank=True, help_text="the export's S3 prefix (without the export name)"
    )
    region = models.CharField(max_length=50, blank=True)
    endpoint_url = models.URLField(
        max_length=500, blank=True, help_text="for S3-compatible stores (MinIO, Ceph, R2 ...)"
    )
    access_key_id_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[ENV_NAME],
        help_text="NAME of the env var holding the access key id; blank: AWS default chain",
    )
    secret_access_key_env = models.CharField(
        max_length=100, blank=True, validators=[ENV_NAME], help_text="NAME of the env var"
    )
    session_token_env = models.CharField(
        max_length=100, blank=True, validators=[ENV_NAME], help_text="NAME of the env var"
    )
    # Local folder
    path = models.CharField(max_length=1024, blank=True, help_text="folder on the worker")
    # Health
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.NEW)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    failures = models.PositiveIntegerField(default=0, help_text="consecutive failed checks")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="a worker is checking it until then"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    BACKOFF_FIRST = timedelta(minutes=5)
    BACKOFF_MAX = timedelta(hours=6)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.kind == self.Kind.S3 and not self.bucket:
            raise ValidationError({"bucket": "an S3 source needs a bucket"})
        if self.kind == self.Kind.LOCAL and not self.path:
            raise ValidationError({"path": "a local source needs a folder"})
        if bool(self.access_key_id_env) != bool(self.secret_access_key_env):
            raise ValidationError("name both key variables, or neither (AWS default chain)")

    @property
    def location(self) -> str:
        """Where it reads from, for pages and logs (never a credential)."""
        if self.kind == self.Kind.S3:
            where = f"s3://{self.bucket}/{self.prefix.strip('/')}".rstrip("/")
            return f"{where} ({self.endpoint_url})" if self.endpoint_url else where
        return self.path

    def backoff(self) -> timedelta:
        """Wait before the next attempt after `failures` consecutive failures: 5 min doubling,
        at most 6 h."""
        if self.failures <= 0:
            return timedelta(0)
        return min(self.BACKOFF_MAX, self.BACKOFF_FIRST * (2 ** min(self.failures - 1, 16)))

    def is_due(self, now=None) -> bool:
        now = now or timezone.now()
        return self.enabled and (self.next_attempt_at is None or self.next_attempt_at <= now)


class BillingDelivery(models.Model):
    """One delivery of one export for one billing period: a manifest and the parts it names
    (or one loose file in a local folder), imported atomically as one BillingImport.

    `slot` is what a newer delivery replaces: the export and billing period (for AWS Data
    Exports, `<export-name>/BILLING_PERIOD=YYYY-MM`), or the path of a loose file.
    `fingerprint` is a hash over the manifest's and parts' ETag, size and modified time, so an
    unchanged delivery is recognised from a listing alone, without reading it.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REPLACED = "replaced"

    source = models.ForeignKey(BillingSource, on_delete=models.CASCADE, related_name="deliveries")
    slot = models.CharField(max_length=1024)
    manifest_key = models.CharField(max_length=1024, blank=True)
    execution_id = models.CharField(max_length=200, blank=True)
    billing_period = models.CharField(max_length=7, blank=True, help_text="YYYY-MM")
    fingerprint = models.CharField(max_length=64)
    parts = models.JSONField(
        default=list, blank=True, help_text="[{key, etag, size, modified}] as listed"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    billing_import = models.ForeignKey(
        BillingImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    rows = models.PositiveIntegerField(default=0)
    total_effective_cost = models.DecimalField(**BILL_MONEY, default=0)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["source", "slot", "-started_at"])]
        verbose_name_plural = "billing deliveries"

    def __str__(self) -> str:
        return f"{self.source}: {self.slot} ({self.status})"
