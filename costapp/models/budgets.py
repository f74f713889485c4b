"""Budgets and the alerts they fired.

A budget caps the cost of one scope (a team, a cost centre, a namespace, a cluster) per period
(calendar month, or ISO week starting Monday, UTC). Thresholds are percentages of the amount,
each measured against the actual cost so far or the forecast to the period's end. A threshold
fires at most once per period: `BudgetAlert` is unique on (budget, period_start, threshold, basis),
so re-checking never re-sends.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from costapp.models.core import MONEY, Cluster, CostCentre, Team


def default_thresholds() -> list[dict]:
    return [
        {"percent": 80, "basis": "actual"},
        {"percent": 100, "basis": "actual"},
        {"percent": 100, "basis": "forecast"},
    ]


class Budget(models.Model):
    """A spending cap for one scope and period, with who to notify when a threshold is crossed.

    Scope fields: `team` for team, `cost_centre` for cost centre, `namespace` (+ optional
    `cluster`) for namespace, `cluster` for cluster. Money is in the clusters' billing currency.
    The webhook secret is stored encrypted (`webhook_secret_encrypted`, see costapp.notify) or
    read from the environment variable named in `webhook_secret_env`; it is never shown back.
    """

    class Scope(models.TextChoices):
        TEAM = "team"
        COST_CENTRE = "cost_centre", "cost centre"
        NAMESPACE = "namespace"
        CLUSTER = "cluster"

    class Period(models.TextChoices):
        MONTHLY = "monthly"
        WEEKLY = "weekly"

    name = models.CharField(max_length=200)
    scope = models.CharField(max_length=12, choices=Scope.choices)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE,
                             related_name="budgets")
    cost_centre = models.ForeignKey(CostCentre, null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="budgets")
    cluster = models.ForeignKey(Cluster, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="budgets")
    namespace = models.CharField(max_length=253, blank=True)
    period = models.CharField(max_length=8, choices=Period.choices, default=Period.MONTHLY)
    amount = models.DecimalField(max_digits=20, decimal_places=2)
    thresholds = models.JSONField(default=default_thresholds)
    emails = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(blank=True, max_length=500)
    webhook_secret_encrypted = models.TextField(blank=True, editable=False)
    webhook_secret_env = models.CharField(max_length=100, blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope_label}, {self.period} {self.amount})"

    @property
    def scope_label(self) -> str:
        if self.scope == self.Scope.TEAM:
            return f"team {self.team}"
        if self.scope == self.Scope.COST_CENTRE:
            return f"cost centre {self.cost_centre}"
        if self.scope == self.Scope.NAMESPACE:
            where = f"{self.cluster}/" if self.cluster_id else ""
            return f"namespace {where}{self.namespace}"
        return f"cluster {self.cluster}"

    def clean(self) -> None:
        need = {
            self.Scope.TEAM: self.team_id is not None,
            self.Scope.COST_CENTRE: self.cost_centre_id is not None,
            self.Scope.NAMESPACE: bool(self.namespace),
            self.Scope.CLUSTER: self.cluster_id is not None,
        }
        if not need.get(self.scope, False):
            raise ValidationError(f"a {self.scope} budget needs its {self.scope}")
        if self.amount is not None and self.amount <= 0:
            raise ValidationError("amount must be positive")

    def period_bounds(self, day: date) -> tuple[date, date]:
        """[start, end) of the period containing `day`: a calendar month or a Monday-start week."""
        return period_bounds(self.period, day)

    def threshold_amount(self, percent: float | Decimal) -> Decimal:
        return (self.amount * Decimal(str(percent)) / Decimal(100)).quantize(Decimal("0.01"))


def period_bounds(period: str, day: date) -> tuple[date, date]:
    if period == Budget.Period.WEEKLY:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = (start + timedelta(days=32)).replace(day=1)
    return start, end


class BudgetAlert(models.Model):
    """One threshold of one budget crossed in one period; notifications hang off this row.

    Created once (the unique constraint makes the check idempotent); delivery fields record what
    was sent so a retried delivery never sends an e-mail twice.
    """

    class Basis(models.TextChoices):
        ACTUAL = "actual"
        FORECAST = "forecast"

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateField()
    period_end = models.DateField()
    threshold = models.DecimalField(max_digits=6, decimal_places=2, help_text="percent")
    basis = models.CharField(max_length=8, choices=Basis.choices)
    value = models.DecimalField(**MONEY, help_text="actual or forecast cost when it fired")
    actual = models.DecimalField(**MONEY)
    forecast = models.DecimalField(**MONEY)
    amount = models.DecimalField(max_digits=20, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)
    email_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_delivered_at = models.DateTimeField(null=True, blank=True)
    webhook_attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold", "basis"], name="budget_alert_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget.name}: {self.threshold}% of {self.basis} ({self.period_start})"
