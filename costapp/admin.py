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


# Billing sources (costapp.models.sources): configured here; secrets are env var NAMES only.
@admin.register(models.BillingSource)
class BillingSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "location", "cluster", "enabled", "status", "last_checked_at",
                    "failures")
    readonly_fields = ("status", "last_checked_at", "last_success_at", "last_error", "failures",
                       "next_attempt_at")
    fieldsets = (
        (None, {"fields": ("name", "kind", "cluster", "currency", "enabled")}),
        ("S3", {"fields": ("bucket", "prefix", "region", "endpoint_url", "access_key_id_env",
                           "secret_access_key_env", "session_token_env")}),
        ("Local folder", {"fields": ("path",)}),
        ("Status", {"fields": readonly_fields}),
    )


@admin.register(models.BillingDelivery)
class BillingDeliveryAdmin(admin.ModelAdmin):
    list_display = ("source", "slot", "billing_period", "status", "rows", "total_effective_cost",
                    "started_at")
    list_filter = ("source", "status")
    readonly_fields = [f.name for f in models.BillingDelivery._meta.fields] + ["parts"]
