"""Ownership configuration (rule keys, default team) and the audit trail of rule changes.

The explicit namespace → team table is `NamespaceTeam` (core); teams and cost centres are core
too. What lives here is the rest of the rule set the resolver needs, as one row, and one row per
change so an admin can see who moved cost between teams, when, and what was recomputed.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from costapp.models.core import Job, Team

DEFAULT_RULE_KEYS = ["team", "owner", "app.kubernetes.io/part-of"]


def _default_keys() -> list[str]:
    return list(DEFAULT_RULE_KEYS)


class OwnershipSettings(models.Model):
    """The label/annotation keys every label rule tries, in order, and the default team (one row).

    `default_team` empty means a pod no rule matches stays `__unallocated__`.
    """

    keys = models.JSONField(default=_default_keys, help_text="label/annotation keys, in order")
    default_team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(max_length=300, blank=True, help_text="'ui' or the YAML file path")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "ownership settings"

    @classmethod
    def current(cls) -> OwnershipSettings:
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    def __str__(self) -> str:
        return f"keys {', '.join(self.keys)}; default {self.default_team or 'none'}"


class OwnershipChange(models.Model):
    """One applied change of the ownership rules, with what it changed and what it recomputed.

    `diff` is a list of human-readable lines ("+ namespace legacy → payments (all clusters)").
    `recompute` is 'none' (history kept), 'all' or 'since:YYYY-MM-DD'; `job` tracks the recompute.
    """

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    source = models.CharField(max_length=300, default="ui")
    diff = models.JSONField(default=list, blank=True)
    recompute = models.CharField(max_length=30, default="none")
    days_marked = models.PositiveIntegerField(default=0)
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ownership change #{self.pk} from {self.source}"
