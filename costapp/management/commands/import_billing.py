"""manage.py import_billing FILE [--cluster NAME] [--currency USD] [--no-reprice]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from costapp.billing.focus import BillingFileError
from costapp.billing.importer import import_focus_file
from costapp.billing.pricing import reprice_after_import
from costapp.models import Cluster


class Command(BaseCommand):
    help = "Import a FOCUS bill (CSV or CSV.gz), replacing earlier imports of the same period."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--cluster", help="cluster of charges whose tags name none")
        parser.add_argument("--currency", help="the file's currency when it has no column")
        parser.add_argument("--no-reprice", action="store_true", help="skip re-pricing")

    def handle(self, *args, **opts):
        cluster = None
        if opts["cluster"]:
            try:
                cluster = Cluster.objects.get(name=opts["cluster"])
            except Cluster.DoesNotExist:
                raise CommandError(f"no cluster named {opts['cluster']!r}") from None

        def progress(done: int, total: int, message: str) -> None:
            self.stdout.write(message)
            self.stdout.flush()

        try:
            result = import_focus_file(
                opts["file"], cluster=cluster, currency=opts["currency"], progress=progress
            )
        except BillingFileError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"{opts['file']}: {exc}") from None
        self.stdout.write(
            f"import {result.import_id}: {result.rows:,} rows, "
            f"EffectiveCost {result.total_effective_cost}, replaced {result.replaced_rows:,}, "
            f"clusters: {', '.join(result.clusters) or '-'}"
        )
        if not opts["no_reprice"]:
            for name, counts in reprice_after_import(result.import_id).items():
                self.stdout.write(f"re-priced {name}: {dict(counts)}")
