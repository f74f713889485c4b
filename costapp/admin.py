"""Admin: where platform engineers register clusters and edit teams, prices and rules."""

from django.contrib import admin

from costapp import models


@admin.register(models.Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "region", "health", "last_sample_at", "node_count",
                    "pod_count")
    readonly_fields = ("health", "last_sample_at", "last_attempt_at", "last_error", "node_count",
                       "pod_count", "usage_available", "skipped_objects")


@admin.register(models.Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "cost_centre")
    filter_horizontal = ("members",)


admin.site.register(models.CostCentre)
admin.site.register(models.NamespaceTeam)
admin.site.register(models.Overhead)
admin.site.register(models.AllocationPolicy)


# Ownership and budgets (costapp.models.ownership, costapp.models.budgets).
@admin.register(models.Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("name", "scope", "team", "cost_centre", "cluster", "namespace", "period",
                    "amount", "active")
    exclude = ("webhook_secret_encrypted",)  # set through the API; never shown back


@admin.register(models.BudgetAlert)
class BudgetAlertAdmin(admin.ModelAdmin):
    list_display = ("budget", "period_start", "threshold", "basis", "value", "created_at",
                    "email_sent_at", "webhook_delivered_at", "webhook_attempts")
    readonly_fields = [f.name for f in models.BudgetAlert._meta.fields]


admin.site.register(models.OwnershipSettings)


@admin.register(models.OwnershipChange)
class OwnershipChangeAdmin(admin.ModelAdmin):
    list_display = ("created_at", "created_by", "source", "recompute", "days_marked", "job")
    readonly_fields = ("created_at", "created_by", "source", "diff", "recompute", "days_marked",
                       "job")
