"""manage.py load_prices [--data-dir DIR]: load the public price catalogs into CatalogPrice."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from costapp.billing import catalog
from costapp.billing.focus import BillingFileError
from costapp.models.billing import CatalogPrice


class Command(BaseCommand):
    help = "Replace CatalogPrice with the staged AWS, GCP, Azure and Alibaba catalogs."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, help="the 03_prices folder")

    def handle(self, *args, **opts):
        try:
            with transaction.atomic():
                CatalogPrice.objects.all().delete()
                batch, n = [], 0
                for p in catalog.iter_catalog_prices(opts["data_dir"]):
                    batch.append(
                        CatalogPrice(
                            provider=p.provider,
                            region=p.region,
                            instance_type=p.instance_type,
                            capacity_type=p.capacity_type,
                            hourly=p.hourly,
                            currency=p.currency,
                            vcpu=p.vcpu,
                            memory_gib=p.memory_gib,
                            gpus=p.gpus,
                            estimated=p.estimated,
                            source_file=p.source_file,
                        )
                    )
                    if len(batch) == 5000:
                        CatalogPrice.objects.bulk_create(batch)
                        n += len(batch)
                        batch.clear()
                CatalogPrice.objects.bulk_create(batch)
                n += len(batch)
        except BillingFileError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"loaded {n:,} catalog prices")
