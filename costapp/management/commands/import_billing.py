"""manage.py import_billing FILE [--cluster NAME] [--currency USD] [--reallocate MODE]

The whole use case (costapp.billing.service.import_bill): import the file, re-price the node-hours
it covers, re-allocate their cluster-days — printing progress as it goes.
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from costapp.billing.focus import BillingFileError
from costapp.billing.importer import import_focus_file
from costapp.billing.service import import_bill
from costapp.models import Cluster


class Command(BaseCommand):
    help = (
        "Import a FOCUS bill (CSV or CSV.gz), replacing earlier imports of the same period; "
        "re-price the node-hours it covers and re-allocate their days."
    )

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--cluster", help="cluster of charges whose tags name none")
        parser.add_argument("--currency", help="the file's currency when it has no column")
        parser.add_argument(
            "--reallocate",
            choices=["auto", "inline", "queue", "none"],
            default="auto",
            help="re-allocate affected days here (inline), through Celery (queue), not at all "
            "(none); auto = queue when REDIS_URL is set, else inline",
        )
        parser.add_argument(
            "--no-reprice", action="store_true", help="only import: no re-pricing, no re-allocation"
        )

    def handle(self, *args, **opts):
        cluster = None
        if opts["cluster"]:
            try:
                cluster = Cluster.objects.get(name=opts["cluster"])
            except Cluster.DoesNotExist:
                raise CommandError(f"no cluster named {opts['cluster']!r}") from None
        tty = sys.stdout.isatty() and self.stdout._out is sys.stdout

        def progress(done: int, total: int, message: str) -> None:
            pct = f"{100 * done // total:3d} % " if total else ""
            if tty:
                self.stdout.write(f"\r\033[K{pct}{message}", ending="")
            else:
                self.stdout.write(f"{pct}{message}")
            self.stdout.flush()

        try:
            if opts["no_reprice"]:
                result = import_focus_file(
                    opts["file"], cluster=cluster, currency=opts["currency"], progress=progress
                )
                summary = (
                    f"import {result.import_id}: {result.rows:,} rows, EffectiveCost "
                    f"{result.total_effective_cost}, replaced {result.replaced_rows:,}"
                )
            else:
                mode = None if opts["reallocate"] == "auto" else opts["reallocate"]
                outcome = import_bill(
                    opts["file"],
                    cluster=cluster,
                    currency=opts["currency"],
                    progress=progress,
                    reallocate=mode,
                )
                summary = outcome.summary()
                for name, counts in outcome.repriced.items():
                    if counts:
                        summary += f"\nre-priced {name}: {counts}"
        except BillingFileError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"{opts['file']}: {exc}") from None
        except DatabaseError as exc:  # e.g. PostgreSQL restarted: the transaction rolled back
            raise CommandError(
                f"{opts['file']}: the database failed during the import, so nothing of it was "
                f"saved; run the import again. ({str(exc).splitlines()[0]})"
            ) from None
        if tty:
            self.stdout.write("")
        self.stdout.write(summary)
