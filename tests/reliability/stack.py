"""A private, throw-away stack for crash tests: PostgreSQL, Redis, Django and Celery processes.

Crash tests kill and restart services. They must never touch the PostgreSQL (5432) and Redis
(6379) that the rest of the suite shares under `pytest -n 2`, so every service here is a private
instance on a free loopback port in a temporary directory, and the Django side (schema, seeding,
enqueueing, workers, commands) runs in subprocesses whose environment points at those instances.

PostgreSQL refuses to run as root, so its data directory belongs to the `postgres` user and its
binaries run through `runuser -u postgres --` when the tests run as root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("COSTAPP_PG_BIN", "/usr/lib/postgresql/15/bin"))
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll `predicate` until it returns a truthy value; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def scratch_dir(prefix: str) -> Path:
    """A temporary directory the postgres user can enter (pytest's tmp_path is root-only)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class PrivatePostgres:
    """`initdb` into a scratch directory, then start/stop/crash on a free port."""

    def __init__(self, base: Path):
        self.base = base
        self.data = base / "pgdata"
        self.sock = base / "pgsock"
        self.log = base / "postgres.log"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.sock.mkdir()
        self.data.mkdir(mode=0o700)
        if os.geteuid() == 0:
            shutil.chown(self.sock, "postgres")
            shutil.chown(self.data, "postgres")
            self.log.touch()
            shutil.chown(self.log, "postgres")
        subprocess.run(
            _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8", "--no-sync"]),
            check=True, capture_output=True, cwd=base,
        )

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1"
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                          str(self.log), "-w", "-t", "60", "start"]),
            check=True, capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions; `immediate` is a crash (recovery on start)."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                          "stop"]),
            capture_output=True,
        )

    def connect(self):
        import psycopg

        return psycopg.connect(self.url, autocommit=True)


class PrivateRedis:
    """redis-server on a free port; with `aof=True` every write is fsynced to an append-only
    file before Redis replies (the setting production needs for queued tasks to survive)."""

    def __init__(self, base: Path, aof: bool):
        self.dir = base / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.aof = aof
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                       else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             *persistence, "--dir", str(self.dir), "--daemonize", "no"],
            stdout=open(self.dir / "redis.log", "a"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        wait_for(self._ping, 20, "private redis to answer")

    def _ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except Exception:
            return False

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no goodbye: only what was already on disk survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)


PRELUDE = """
import json, os, sys
sys.path.insert(0, {repo!r})
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "costapp.settings")
import django
django.setup()
out = None
"""


class Stack:
    """Private PostgreSQL (+ optional Redis) and helpers to run Django code against them."""

    def __init__(self, prefix: str = "costapp-rel-", redis_aof: bool | None = None):
        self.base = scratch_dir(prefix)
        self.pg = PrivatePostgres(self.base)
        self.pg.start()
        self.redis = PrivateRedis(self.base, redis_aof) if redis_aof is not None else None
        if self.redis:
            self.redis.start()
        self.procs: list[subprocess.Popen] = []

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTEST", "COSTAPP_TEST", "DJANGO_"))}
        env.update(DATABASE_URL=self.pg.url, DJANGO_SETTINGS_MODULE="costapp.settings",
                   PYTHONPATH=str(REPO))
        env.pop("REDIS_URL", None)
        if self.redis:
            env["REDIS_URL"] = self.redis.url
        env.update(extra)
        return env

    def django(self, code: str, timeout: float = 300, **env: str):
        """Run `code` (which may set `out`) in a Django subprocess; return `out` (JSON)."""
        script = PRELUDE.format(repo=str(REPO)) + textwrap.dedent(code) + (
            "\nprint('@@OUT@@' + json.dumps(out, default=str))\n")
        proc = subprocess.run([PYTHON, "-c", script], cwd=REPO, env=self.env(**env),
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"django subprocess failed ({proc.returncode}):\n{proc.stderr}")
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@OUT@@")][-1]
        return json.loads(line[len("@@OUT@@"):])

    def create_schema(self) -> None:
        """Every table from the current models (like pytest's --nomigrations), so a test never
        depends on migration files another engineer has not regenerated yet."""
        self.django("""
            from django.conf import settings
            from django.core.management import call_command
            class _NoMigrations(dict):
                def __contains__(self, item): return True
                def __getitem__(self, item): return None
            settings.MIGRATION_MODULES = _NoMigrations()
            call_command("migrate", run_syncdb=True, verbosity=0)
        """)

    def manage(self, *args: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([PYTHON, "manage.py", *args], cwd=REPO, env=self.env(**env),
                              capture_output=True, text=True, timeout=timeout)

    def start_worker(self, name: str, *, pool: str = "solo", visibility_timeout: int = 3,
                     **env: str) -> tuple[subprocess.Popen, Path]:
        """A Celery worker on the private Redis. The broker's visibility timeout (1 h in
        settings) is shortened so a message left unacknowledged by a killed worker is handed
        out again within seconds rather than an hour."""
        log = self.base / f"worker-{name}.log"
        code = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(REPO)!r})
            from costapp.celery import app
            options = {{"visibility_timeout": {visibility_timeout}}}
            # Settings use the CELERY_ namespace: that name is the one Celery reads.
            app.conf.update(CELERY_BROKER_TRANSPORT_OPTIONS=options,
                            broker_transport_options=options)
            app.worker_main(["worker", "--pool={pool}", "--concurrency=1", "--loglevel=info",
                             "-n", "{name}@%h", "--without-gossip", "--without-mingle",
                             "--without-heartbeat"])
        """)
        proc = subprocess.Popen([PYTHON, "-c", code], cwd=REPO, env=self.env(**env),
                                stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                                start_new_session=True)
        self.procs.append(proc)
        wait_for(lambda: "ready." in log.read_text() or proc.poll() is not None, 90,
                 f"worker {name} to start")
        assert proc.poll() is None, f"worker {name} exited:\n{log.read_text()[-3000:]}"
        return proc, log

    def stop_workers(self) -> None:
        """SIGKILL every worker this stack started (and their pool processes)."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        self.procs.clear()

    def close(self) -> None:
        self.stop_workers()
        if self.redis:
            self.redis.kill()
        self.pg.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)
