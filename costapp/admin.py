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
