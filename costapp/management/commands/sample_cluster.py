"""python manage.py sample_cluster NAME [--dry-run]

Takes one sample of a registered cluster now and folds it into hourly rows — the same path as
the Celery beat task (costapp.collect.sample_cluster). --dry-run only reads and reports.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from costapp.kube.client import KubeError
from costapp.kube.credentials import CredentialsError
from costapp.models import Cluster


class Command(BaseCommand):
    help = "Take one sample of a cluster now (and fold it into hourly rows unless --dry-run)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("--dry-run", action="store_true", help="read and report, store nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            cluster = Cluster.objects.get(name=options["name"])
        except Cluster.DoesNotExist as exc:
            names = ", ".join(Cluster.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no cluster {options['name']!r} (clusters: {names})") from exc
        started = time.perf_counter()
        if options["dry_run"]:
            self._dry_run(cluster)
        else:
            from costapp import collect

            try:
                result = collect.sample_cluster(cluster.pk)
            except (KubeError, CredentialsError) as exc:
                raise CommandError(f"{cluster.name}: {exc}") from exc
            cluster.refresh_from_db()
            self.stdout.write(
                f"{cluster.name}: {result}; {cluster.node_count} nodes, {cluster.pod_count} pods, "
                f"usage {'available' if cluster.usage_available else 'unavailable'}, "
                f"{cluster.skipped_objects} malformed objects skipped"
            )
        self.stdout.write(f"in {time.perf_counter() - started:.2f} s")

    def _dry_run(self, cluster: Cluster) -> None:
        if cluster.simulated:
            from django.utils import timezone

            from costapp.simulate import SimulatedCluster

            sample = SimulatedCluster(cluster.name).sample(timezone.now())
        else:
            from costapp.kube.connect import take_cluster_sample

            try:
                sample = take_cluster_sample(cluster)
            except (KubeError, CredentialsError) as exc:
                raise CommandError(f"{cluster.name}: {exc}") from exc
        self.stdout.write(
            f"{cluster.name}: {len(sample.nodes)} nodes, {len(sample.pods)} pods, "
            f"{len(sample.namespaces)} namespaces, metrics "
            f"{'available' if sample.metrics_available else 'unavailable'}, "
            f"{len(sample.skipped)} skipped (not stored: --dry-run)"
        )
        for skipped in sample.skipped[:20]:
            self.stdout.write(f"  skipped {skipped.kind} {skipped.name}: {skipped.reason}")
