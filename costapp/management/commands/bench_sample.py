"""python manage.py bench_sample [--nodes 5000 --pods 150000 --seed 1 --page-size 500]

One sample of a generated cluster through the real client over HTTP: seconds, peak RSS, and
parse time against json.loads. See costapp.kube.bench.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from costapp.kube import bench


class Command(BaseCommand):
    help = "Benchmark one sample of a generated 5,000-node, 150,000-pod cluster."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--nodes", type=int, default=5000)
        parser.add_argument("--pods", type=int, default=150_000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--page-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        bench.main(
            [
                "--nodes",
                str(options["nodes"]),
                "--pods",
                str(options["pods"]),
                "--seed",
                str(options["seed"]),
                "--page-size",
                str(options["page_size"]),
            ]
        )
