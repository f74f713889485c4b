"""manage.py bench_load: gunicorn + PostgreSQL under wrk, 50 connections for 60 s per endpoint.

1. A dedicated database (`--database`, default costapp_load) on the server of DATABASE_URL,
   created if missing, then `migrate` and `seed_demo --days 30` (skipped when it already holds
   allocated days, unless `--reseed`).
2. gunicorn on a free loopback port with that database, DEBUG off.
3. One API token (finance user) and one session cookie (a real login through the form).
4. wrk (Debian package) against each target: the allocations API (30-day window by team), the
   chargeback CSV, and the overview page, printing requests/s, p50, p99 and errors.

Exits non-zero when any request failed (socket errors, timeouts or non-2xx responses).
RELIABILITY.md keeps the latest figures.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

E_NO_WRK = "wrk is not installed (apt-get install wrk, or `make system-deps`)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ms(text: str) -> float:
    """wrk's latency ('812.00us', '12.3ms', '1.2s', '2m') in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> dict:
    """Requests/s, p50/p99 (ms), requests and errors from `wrk --latency` output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     output)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = (sum(int(g) for g in sock.groups()) if sock else 0) + (
        int(non2xx.group(1)) if non2xx else 0)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": _ms(p50.group(1)) if p50 else float("nan"),
        "p99_ms": _ms(p99.group(1)) if p99 else float("nan"),
        "errors": errors,
    }


class Command(BaseCommand):
    help = "Load-test gunicorn + PostgreSQL with wrk (50 connections, 60 s per endpoint)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--database", default="costapp_load")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--connections", type=int, default=50)
        parser.add_argument("--duration", type=int, default=60, help="seconds per endpoint")
        parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 2))
        parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 2) + 1,
                            help="gunicorn worker processes")
        parser.add_argument("--reseed", action="store_true", help="drop and seed again")

    def handle(self, *args, **opts) -> None:
        wrk = shutil.which("wrk")
        if not wrk:
            raise CommandError(E_NO_WRK)
        db = settings.DATABASES["default"]
        if "postgresql" not in db["ENGINE"]:
            raise CommandError("bench_load needs PostgreSQL: set DATABASE_URL")
        url = urlsplit(os.environ["DATABASE_URL"])
        load_url = urlunsplit(url._replace(path="/" + opts["database"]))
        env = dict(os.environ, DATABASE_URL=load_url, DEBUG="false",
                   ALLOWED_HOSTS="127.0.0.1,localhost", COSTAPP_LOGIN_ATTEMPTS="1000")
        env.pop("REDIS_URL", None)  # tasks inline, cache in memory: the web tier alone
        repo = Path(settings.BASE_DIR)
        python = sys.executable

        self._prepare_database(opts, env, repo, python)
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(repo / "var" / "bench_load_gunicorn.log", "w")  # noqa: SIM115
        server = subprocess.Popen(
            [python, "-m", "gunicorn", "costapp.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(opts["workers"]), "--access-logfile", "-", "--log-level",
             "warning"],
            cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        try:
            self._wait_up(base, server)
            token, cookie, month = self._credentials(env, repo, python, base)
            targets = [
                ("allocations API (30d by team)", "Authorization: Token " + token,
                 f"{base}/api/v1/allocations/?window=30d&aggregate=team"),
                ("chargeback CSV", "Authorization: Token " + token,
                 f"{base}/api/v1/chargeback/?month={month}&format=csv"),
                ("overview page", f"Cookie: sessionid={cookie}", f"{base}/"),
            ]
            results = []
            for name, header, target in targets:
                self.stdout.write(f"wrk -c{opts['connections']} -d{opts['duration']}s {target}")
                proc = subprocess.run(
                    [wrk, f"-t{opts['threads']}", f"-c{opts['connections']}",
                     f"-d{opts['duration']}s", "--timeout", "10s", "--latency", "-H", header,
                     target],
                    capture_output=True, text=True, check=True,
                )
                results.append((name, parse_wrk(proc.stdout)))
        finally:
            server.terminate()
            server.wait(30)
            log.close()

        self.stdout.write("")
        self.stdout.write(f"{'target':<32} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                          f"{'requests':>9} {'errors':>6}")
        for name, r in results:
            self.stdout.write(f"{name:<32} {r['rps']:>8.1f} {r['p50_ms']:>8.1f} "
                              f"{r['p99_ms']:>8.1f} {r['requests']:>9} {r['errors']:>6}")
        if any(r["errors"] for _, r in results):
            raise CommandError("some requests failed (see the errors column)")

    def _prepare_database(self, opts, env, repo: Path, python: str) -> None:
        import psycopg

        admin_url = os.environ["DATABASE_URL"]
        name = opts["database"]
        with psycopg.connect(admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                  (name,)).fetchone()
            if exists and opts["reseed"]:
                conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
                exists = None
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')
        (repo / "var").mkdir(exist_ok=True)
        subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=repo,
                       env=env, check=True)
        seeded = subprocess.run(
            [python, "manage.py", "shell", "-c",
             "from costapp.models import ClusterDay; "
             "print(ClusterDay.objects.filter(dirty=False).count())"],
            cwd=repo, env=env, capture_output=True, text=True, check=True,
        ).stdout.split()  # the last word: shell may print a banner first
        if int(seeded[-1] if seeded else 0) < opts["days"]:
            self.stdout.write(f"seeding {opts['days']} days into {name} …")
            subprocess.run([python, "manage.py", "seed_demo", "--days", str(opts["days"])],
                           cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)

    def _wait_up(self, base: str, server: subprocess.Popen) -> None:
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError("gunicorn exited: see var/bench_load_gunicorn.log")
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise CommandError("gunicorn did not answer /healthz within 60 s")

    def _credentials(self, env, repo: Path, python: str, base: str) -> tuple[str, str, str]:
        """The finance user's API token, a logged-in session cookie, and the latest month."""
        import requests

        out = subprocess.run(
            [python, "manage.py", "shell", "-c",
             "from django.contrib.auth.models import User; "
             "from rest_framework.authtoken.models import Token; "
             "from costapp.models import ClusterDay; "
             "u = User.objects.get(username='finance'); u.set_password('bench-load-pw'); "
             "u.save(); print(Token.objects.get_or_create(user=u)[0].key); "
             "print(ClusterDay.objects.order_by('-day').first().day.strftime('%Y-%m'))"],
            cwd=repo, env=env, capture_output=True, text=True, check=True,
        ).stdout.split()
        token, month = out[-2], out[-1]
        session = requests.Session()
        login = f"{base}/accounts/login/"
        session.get(login, timeout=10)
        resp = session.post(
            login, timeout=10, allow_redirects=False,
            data={"username": "finance", "password": "bench-load-pw",
                  "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
            headers={"Referer": login},
        )
        cookie = session.cookies.get("sessionid")
        if resp.status_code != 302 or not cookie:
            raise CommandError(f"login failed ({resp.status_code})")
        return token, cookie, month
