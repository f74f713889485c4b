"""Bills and prices: imported FOCUS files and their rows, public catalog prices, custom prices.

Money from bills keeps the bill's own precision (FOCUS exports carry up to 11 decimals), so sums
over charges equal the invoice to the cent; node-hour costs derived from them are stored at the
core model's 8 decimals.
"""

from __future__ import annotations

from django.db import models

from costapp.models.core import Cluster

BILL_MONEY = {"max_digits": 28, "decimal_places": 11}
QUANTITY = {"max_digits": 30, "decimal_places": 15}


class BillingImport(models.Model):
    """One import of one FOCUS file: what it was, what it covered, how it went.

    Re-importing the same file, or a restated file for the same (provider, billing account,
    billing period), replaces the charges of the earlier import in one transaction; the earlier
    import is then marked `replaced` and keeps its record for the audit trail.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        REPLACED = "replaced"

    file_name = models.CharField(max_length=500)
    sha256 = models.CharField(max_length=64, db_index=True)
    provider = models.CharField(max_length=100, blank=True, help_text="ProviderName(s) seen")
    billing_account_id = models.CharField(max_length=300, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    billing_period_start = models.DateTimeField(null=True, blank=True)
    billing_period_end = models.DateTimeField(null=True, blank=True)
    default_cluster = models.ForeignKey(
        Cluster,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="cluster of charges whose tags name none (a bill of a dedicated account)",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    rows = models.PositiveIntegerField(default=0)
    replaced_rows = models.PositiveIntegerField(default=0)
    total_effective_cost = models.DecimalField(**BILL_MONEY, default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.status})"


class BillingCharge(models.Model):
    """One FOCUS row, as imported (see `costapp.billing.focus.FocusCharge` for each field).

    Derived at import: `resource_key` (the normalised key nodes are matched on), `kind` (node,
    control-plane, load-balancer, nat, volume, other) and `cluster_name` (from tags, else the
    import's default cluster; blank when unknown).

    Built for a fast COPY of a million rows (ARCHITECTURE.md: under 60 s): `tags` is the JSON
    object as *text* (`json.loads(charge.tags)`; no query filters on tags, and jsonb parsing was
    a sixth of the load time), the link to the import carries no database FK constraint (a
    deferred FK check per row cost another tenth; the importer writes the id of the import it
    just created, and Django still cascades deletes), and the only indexes are the ones queries
    use: (resource_key, charge_period_start) for bill pricing, (cluster_name,
    charge_period_start) for bill overhead, (provider, account, billing period) for the
    importer's replacement, and billing_import for re-pricing and deleting one import.
    """

    billing_import = models.ForeignKey(
        BillingImport, on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    row = models.PositiveIntegerField()
    charge_period_start = models.DateTimeField()
    charge_period_end = models.DateTimeField()
    billing_period_start = models.DateTimeField(null=True)
    billing_period_end = models.DateTimeField(null=True)
    provider_name = models.CharField(max_length=100, blank=True)
    billing_account_id = models.CharField(max_length=300, blank=True)
    sub_account_id = models.CharField(max_length=300, blank=True)
    billing_currency = models.CharField(max_length=3)
    effective_cost = models.DecimalField(**BILL_MONEY)
    billed_cost = models.DecimalField(**BILL_MONEY, null=True)
    list_cost = models.DecimalField(**BILL_MONEY, null=True)
    contracted_cost = models.DecimalField(**BILL_MONEY, null=True)
    charge_category = models.CharField(max_length=30, blank=True)
    charge_frequency = models.CharField(max_length=30, blank=True)
    charge_description = models.TextField(blank=True)
    pricing_category = models.CharField(max_length=30, blank=True)
    pricing_quantity = models.DecimalField(**QUANTITY, null=True)
    consumed_quantity = models.DecimalField(**QUANTITY, null=True)
    consumed_unit = models.CharField(max_length=100, blank=True)
    commitment_discount_id = models.CharField(max_length=500, blank=True)
    commitment_discount_type = models.CharField(max_length=100, blank=True)
    commitment_discount_status = models.CharField(max_length=20, blank=True)
    resource_id = models.TextField(blank=True)
    resource_name = models.TextField(blank=True)
    resource_type = models.CharField(max_length=200, blank=True)
    service_name = models.CharField(max_length=200, blank=True)
    service_category = models.CharField(max_length=100, blank=True)
    region_id = models.CharField(max_length=100, blank=True)
    availability_zone = models.CharField(max_length=100, blank=True)
    sku_id = models.CharField(max_length=200, blank=True)
    tags = models.TextField(default="{}", blank=True, help_text="JSON object, as text")
    resource_key = models.TextField(blank=True)
    kind = models.CharField(max_length=20)
    cluster_name = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["resource_key", "charge_period_start"]),
            models.Index(fields=["cluster_name", "charge_period_start"]),
            models.Index(fields=["provider_name", "billing_account_id", "billing_period_start"]),
        ]


class CatalogPrice(models.Model):
    """A public price: one instance type in one region and purchase option (see
    `costapp.billing.catalog.CatalogPrice`). Loaded by `manage.py load_prices`."""

    provider = models.CharField(max_length=20)
    region = models.CharField(max_length=50)
    instance_type = models.CharField(max_length=100)
    capacity_type = models.CharField(max_length=10)
    hourly = models.DecimalField(max_digits=20, decimal_places=8)
    currency = models.CharField(max_length=3)
    vcpu = models.PositiveIntegerField(null=True)
    memory_gib = models.DecimalField(max_digits=12, decimal_places=3, null=True)
    gpus = models.PositiveIntegerField(null=True)
    estimated = models.BooleanField(default=False)
    source_file = models.CharField(max_length=300)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "region", "instance_type", "capacity_type"],
                name="catalogprice_unique",
            )
        ]


class CustomPrice(models.Model):
    """A cluster's own per-unit prices (on-premises, negotiated rates), used for node-hours the
    bill and the catalog cannot price. Valid in [valid_from, valid_to); None means open."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="custom_prices")
    cpu_hourly = models.DecimalField(max_digits=20, decimal_places=8, help_text="per core-hour")
    ram_gib_hourly = models.DecimalField(max_digits=20, decimal_places=8, help_text="per GiB-hour")
    gpu_hourly = models.DecimalField(max_digits=20, decimal_places=8, default=0)
    spot_cpu_hourly = models.DecimalField(max_digits=20, decimal_places=8, null=True, blank=True)
    spot_ram_gib_hourly = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, blank=True
    )
    currency = models.CharField(max_length=3, default="USD")
    valid_from = models.DateTimeField(null=True, blank=True)
    valid_to = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.cluster}: {self.cpu_hourly}/core-h, {self.ram_gib_hourly}/GiB-h"
