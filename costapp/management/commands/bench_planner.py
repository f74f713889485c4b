"""Benchmark the capacity planner: one pool from 90 days of hourly demand, and every pool of a
cluster with demand read from the database (ARCHITECTURE.md: target under 1 s per pool).

    python manage.py bench_planner [--cluster demo] [--days 90] [--simulate-days N]

`--simulate-days N` first builds N days of simulated history for a cluster named
`bench-planner` and benchmarks that instead (slow: about 1.5 s per simulated day).
"""

from __future__ import annotations

import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from allocation.plan import PlanOptions, backtest, plan
from costapp import planner
from costapp.models import Cluster, Recommendation


class Command(BaseCommand):
    help = "Time the capacity planner (pure plan, and reading demand from the database)."

    def add_arguments(self, parser):
        parser.add_argument("--cluster", default="demo")
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--simulate-days", type=int, default=0)

    def handle(self, *args, cluster: str, days: int, simulate_days: int, **opts):
        self._pure(days)
        if simulate_days:
            from costapp import demo, services

            demo.ensure_world()
            target, _ = Cluster.objects.get_or_create(
                name="bench-planner",
                defaults={"simulated": True, "provider": "aws", "region": "us-east-1"},
            )
            services.simulate_history(target, simulate_days)
            cluster = target.name
        try:
            target = Cluster.objects.get(name=cluster)
        except Cluster.DoesNotExist:
            raise CommandError(f"--cluster: no cluster named {cluster!r}") from None
        t = planner.timed_refresh(target, days)
        pools = max(t["pools"], 1)
        self.stdout.write(
            f"cluster {cluster}: {t['pools']} pools x {t['hours']} hours from the DB: "
            f"read demand {t['read_seconds'] * 1000:.0f} ms, plan + backtest "
            f"{t['plan_seconds'] * 1000:.1f} ms; per pool "
            f"{(t['read_seconds'] + t['plan_seconds']) / pools * 1000:.0f} ms"
        )
        start = time.perf_counter()
        rows = planner.refresh_cluster(target, days=days)
        total = time.perf_counter() - start
        start = time.perf_counter()
        for rec in Recommendation.objects.filter(cluster=target):
            planner.chart(planner.evaluate(rec))
        page = (time.perf_counter() - start) / max(len(rows), 1)
        self.stdout.write(
            f"cluster {cluster}: full refresh (read, price, plan, backtest, store) "
            f"{total * 1000:.0f} ms for {len(rows)} pools = {total / max(len(rows), 1) * 1000:.0f}"
            f" ms per pool; one page's re-plan + chart {page * 1000:.1f} ms"
        )

    def _pure(self, days: int) -> None:
        rng = np.random.default_rng(0)
        hours = days * 24
        t = np.arange(hours)
        demand = np.maximum(
            120 + 40 * np.sin(2 * np.pi * t / 24) + 15 * np.sin(2 * np.pi * t / 168)
            + rng.normal(0, 6, hours) + (rng.random(hours) < 0.01) * 120, 0)
        opts = PlanOptions(on_demand_hourly=0.048, on_demand_cap=160, reserved_hourly=0.03,
                           spot_hourly=0.022, serverless_hourly=0.058)
        eligible = demand * 0.3
        plan(demand, opts, eligible, units_per_node=8)
        start = time.perf_counter()
        runs = 50
        for _ in range(runs):
            plan(demand, opts, eligible, units_per_node=8)
            backtest(demand, opts, 0.75, eligible)
        each = (time.perf_counter() - start) / runs
        self.stdout.write(
            f"pure: one pool, {hours} hours ({days} days): plan (whole nodes) + backtest "
            f"{each * 1000:.2f} ms"
        )
