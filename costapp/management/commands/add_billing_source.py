"""`manage.py add_billing_source NAME (--s3-bucket B [--prefix P] [--region R] [--endpoint-url U]
[--access-key-env VAR --secret-key-env VAR [--session-token-env VAR]] | --path DIR)
[--cluster C] [--currency USD] [--sync]`

Registers (or updates) a billing source. Credentials are never taken on the command line:
name the environment variables that hold them on the workers, or name none and the AWS
default chain applies (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile, an IAM role).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from costapp.models import Cluster
from costapp.models.sources import BillingSource


class Command(BaseCommand):
    help = "Register a billing source (S3 location or local folder) that Celery syncs hourly."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        where = parser.add_mutually_exclusive_group(required=True)
        where.add_argument("--s3-bucket", help="bucket AWS Data Exports writes to")
        where.add_argument("--path", help="local folder on the workers")
        parser.add_argument("--prefix", default="", help="the export's S3 prefix")
        parser.add_argument("--region", default="")
        parser.add_argument("--endpoint-url", default="", help="S3-compatible store (MinIO ...)")
        parser.add_argument("--access-key-env", default="", help="NAME of the env var")
        parser.add_argument("--secret-key-env", default="", help="NAME of the env var")
        parser.add_argument("--session-token-env", default="", help="NAME of the env var")
        parser.add_argument("--cluster", help="cluster of charges whose tags name none")
        parser.add_argument("--currency", default="")
        parser.add_argument("--disabled", action="store_true")
        parser.add_argument("--sync", action="store_true", help="check it now, here")

    def handle(self, *args, **o) -> None:
        cluster = None
        if o["cluster"]:
            cluster = Cluster.objects.filter(name=o["cluster"]).first()
            if cluster is None:
                raise CommandError(f"no cluster named {o['cluster']!r}")
        source = BillingSource.objects.filter(name=o["name"]).first() or BillingSource(
            name=o["name"]
        )
        source.kind = BillingSource.Kind.S3 if o["s3_bucket"] else BillingSource.Kind.LOCAL
        source.bucket = o["s3_bucket"] or ""
        source.path = o["path"] or ""
        source.prefix, source.region = o["prefix"], o["region"]
        source.endpoint_url = o["endpoint_url"]
        source.access_key_id_env = o["access_key_env"]
        source.secret_access_key_env = o["secret_key_env"]
        source.session_token_env = o["session_token_env"]
        source.cluster, source.currency = cluster, o["currency"].upper()
        source.enabled = not o["disabled"]
        try:
            source.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        source.save()
        self.stdout.write(f"billing source {source.name}: {source.location}")
        if o["sync"]:
            from costapp.billing import sync

            r = sync.sync_source(source.pk, force=True)
            self.stdout.write(
                f"imported {len(r.imported)}, rejected {len(r.rejected)}, unchanged "
                f"{r.unchanged}" + (f"; error: {r.error}" if r.error else "")
            )
