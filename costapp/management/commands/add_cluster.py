"""python manage.py add_cluster NAME --kubeconfig PATH [--context CTX] | --in-cluster

Registers (or updates) a cluster to sample. The kubeconfig is reduced to the one context,
made self-contained, encrypted (COSTAPP_FERNET_KEY) and stored; the file itself is not kept.
Unless --no-check, the connection is checked first by listing namespaces and nodes once.
"""

from __future__ import annotations

from typing import Any

import yaml
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_slug

from costapp.kube.client import (
    KubeError,
    api_client_from_kubeconfig_dict,
    api_client_in_cluster,
    take_sample,
)
from costapp.kube.credentials import CredentialsError, encrypt_kubeconfig, prepare_kubeconfig
from costapp.models import Cluster


class Command(BaseCommand):
    help = "Register a Kubernetes cluster to sample, from a kubeconfig context or in-cluster."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="a short slug, e.g. prod-eu")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file to read")
        source.add_argument(
            "--in-cluster",
            action="store_true",
            help="use the pod's service account (costapp runs inside the measured cluster)",
        )
        parser.add_argument("--context", help="kubeconfig context (default: current-context)")
        parser.add_argument("--provider", default="", help="aws, gcp, azure, alibaba")
        parser.add_argument("--region", default="")
        parser.add_argument("--currency", default=None, help="billing currency, e.g. USD")
        parser.add_argument(
            "--no-check", action="store_true", help="store without checking the connection"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name: str = options["name"]
        try:
            validate_slug(name)
        except ValidationError as exc:
            raise CommandError(f"cluster name {name!r}: {exc.messages[0]}") from exc
        fields: dict[str, Any] = {"simulated": False}
        if options["in_cluster"]:
            if options["context"]:
                raise CommandError("--context goes with --kubeconfig, not --in-cluster")
            fields.update(in_cluster=True, kubeconfig_encrypted="", kube_context="")
            where = "in-cluster service account"
        else:
            try:
                prepared = prepare_kubeconfig(options["kubeconfig"], options["context"])
                encrypted = encrypt_kubeconfig(prepared.text)
            except CredentialsError as exc:
                raise CommandError(str(exc)) from exc
            for warning in prepared.warnings:
                self.stderr.write(self.style.WARNING(f"warning: {warning}"))
            fields.update(
                in_cluster=False, kubeconfig_encrypted=encrypted, kube_context=prepared.context
            )
            where = f"context {prepared.context!r} at {prepared.server}"
        for key in ("provider", "region", "currency"):
            if options[key]:
                fields[key] = options[key]

        if not options["no_check"]:
            self._check(options, prepared.text if not options["in_cluster"] else None)

        cluster, created = Cluster.objects.update_or_create(name=name, defaults=fields)
        verb = "Registered" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} cluster {cluster.name} ({where})."))

    def _check(self, options: dict[str, Any], kubeconfig: str | None) -> None:
        """Take one sample without storing it: proves reachability and RBAC."""
        try:
            if kubeconfig is None:
                api_client = api_client_in_cluster()
            else:
                api_client = api_client_from_kubeconfig_dict(yaml.safe_load(kubeconfig))
            try:
                sample = take_sample(api_client, tries=2, timeout=(5.0, 30.0))
            finally:
                api_client.close()
        except (KubeError, CredentialsError, OSError, ValueError) as exc:
            raise CommandError(
                f"connection check failed (nothing stored; --no-check to store anyway): {exc}"
            ) from exc
        metrics = "with usage" if sample.metrics_available else "requests only: no metrics API"
        self.stdout.write(
            f"Connection OK: {len(sample.nodes)} nodes, {len(sample.pods)} pods, "
            f"{len(sample.namespaces)} namespaces ({metrics})."
        )
