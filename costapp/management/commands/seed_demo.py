"""python manage.py seed_demo --days 30: a populated demo on a simulated cluster."""

from __future__ import annotations

import sys
import time

from django.core.management.base import BaseCommand

from costapp import demo


class Command(BaseCommand):
    help = "Simulate N days of a cluster, price and allocate them, and create demo logins."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=30)

    def handle(self, *args, days: int, **options) -> None:
        started = time.monotonic()

        def progress(done: int, total: int, message: str) -> None:
            sys.stdout.write(f"\r  [{done}/{total}] {message:<60}")
            sys.stdout.flush()

        self.stdout.write(f"Simulating and allocating {days} days of the demo cluster…")
        demo.seed(days, progress=progress)
        self.stdout.write(f"\nDone in {time.monotonic() - started:.1f} s. Demo logins:")
        for username, (password, role, teams) in demo.DEMO_USERS.items():
            extra = f" (team {', '.join(teams)})" if teams else ""
            self.stdout.write(f"  {username:<14} {password:<20} {role}{extra}")
