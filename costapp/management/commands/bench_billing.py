"""manage.py bench_billing [--rows 1000000] [--seed 0] [--gzip] [--keep]

The billing-import benchmark (ARCHITECTURE.md: 1 million FOCUS rows in under 60 s, constant
memory): `costapp.billing.bench` generates a bill shaped like the FOCUS sample, imports it with
`import_focus_file` and compares with a plain PostgreSQL COPY of the same file; it prints rows/s
and peak memory of each.
"""

from __future__ import annotations

from contextlib import redirect_stdout

from django.core.management.base import BaseCommand, CommandError
from django.db import connection


class Command(BaseCommand):
    help = "Benchmark the billing import (rows/s, peak memory) against a plain COPY."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=1_000_000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--gzip", action="store_true", help="write and read a .csv.gz")
        parser.add_argument("--keep", action="store_true", help="keep the imported charges")

    def handle(self, *args, **opts):
        if connection.vendor != "postgresql":
            raise CommandError("bench_billing needs PostgreSQL: set DATABASE_URL")
        if opts["rows"] < 1:
            raise CommandError("--rows must be at least 1")
        from costapp.billing import bench
        from costapp.models import Cluster

        # A scratch database may lack every table: the bench creates the billing tables, and
        # BillingImport points at Cluster, so create that one too when it is missing.
        if Cluster._meta.db_table not in connection.introspection.table_names():
            with connection.schema_editor() as editor:
                editor.create_model(Cluster)

        argv = ["--rows", str(opts["rows"]), "--seed", str(opts["seed"])]
        argv += ["--gzip"] * opts["gzip"] + ["--keep"] * opts["keep"]
        with redirect_stdout(self.stdout._out):  # print() lines as they are
            bench.main(argv)
