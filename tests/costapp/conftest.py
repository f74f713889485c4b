"""The fixture world (a finance user, two team members of different teams, an outsider, an
admin) and a real Celery worker on Redis for integration tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User

from costapp.models import Team

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(db):
    """Users and teams every access test starts from."""
    finance_group, _ = Group.objects.get_or_create(name="finance")
    payments = Team.objects.create(name="payments")
    search = Team.objects.create(name="search")
    admin = User.objects.create_superuser("admin", password="pw-admin-123")
    finance = User.objects.create_user("finance", password="pw-finance-123")
    finance.groups.add(finance_group)
    alice = User.objects.create_user("alice", password="pw-alice-123")
    payments.members.add(alice)
    bob = User.objects.create_user("bob", password="pw-bob-123")
    search.members.add(bob)
    outsider = User.objects.create_user("outsider", password="pw-out-123")

    class World:
        pass

    w = World()
    w.admin, w.finance, w.alice, w.bob, w.outsider = admin, finance, alice, bob, outsider
    w.payments, w.search = payments, search
    return w


def _redis_url() -> str:
    """A Redis database of its own per pytest-xdist worker, so workers never steal tasks."""
    base = os.environ.get("COSTAPP_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").rsplit("/", 1)[0]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return f"{base}/{10 + int(worker.removeprefix('gw') or 0) % 6}"


@pytest.fixture
def celery_worker_process(transactional_db, settings):
    """A real Celery worker process on a real Redis broker, using this test's database.

    Tasks sent from the test go through Redis to the worker, which writes to the same
    (test) database; the test sees the committed results.
    """
    from django.db import connection

    from costapp.celery import app

    url = _redis_url()
    db = connection.settings_dict
    db_url = (
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    )
    if "sqlite" in db["ENGINE"]:
        pytest.fail("Celery integration tests need PostgreSQL: set DATABASE_URL")
    # A queue of its own per test process: concurrent suites sharing Redis never steal tasks.
    queue = f"costapp-test-{os.getpid()}"
    app.conf.broker_url  # noqa: B018  load the Django settings first, then override them
    # With the CELERY_ settings namespace, the CELERY_* names are the ones Celery reads.
    app.conf.update(
        CELERY_BROKER_URL=url,
        CELERY_RESULT_BACKEND=url,
        CELERY_TASK_ALWAYS_EAGER=False,
        broker_url=url,
        result_backend=url,
        task_always_eager=False,
        CELERY_TASK_DEFAULT_QUEUE=queue,
        task_default_queue=queue,
    )
    _reset_backend(app)
    import redis

    redis.Redis.from_url(url).flushdb()
    env = dict(
        os.environ, DATABASE_URL=db_url, REDIS_URL=url, DJANGO_SETTINGS_MODULE="costapp.settings"
    )
    env.pop("COSTAPP_TEST_REDIS_URL", None)
    env["CELERY_QUEUE"] = queue  # tasks the worker itself sends (groups) stay on this queue
    (REPO / "var").mkdir(exist_ok=True)
    log = open(REPO / "var" / f"celery-worker-{os.getpid()}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "costapp",
            "worker",
            "--pool=solo",
            "--loglevel=info",
            "-Q",
            queue,
            "-n",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.inspect(timeout=1).ping():
            break
        if proc.poll() is not None:
            pytest.fail(f"celery worker exited: see {log.name}")
    else:
        proc.kill()
        pytest.fail("celery worker did not answer ping within 60 s")
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    app.conf.update(
        CELERY_BROKER_URL="memory://",
        CELERY_RESULT_BACKEND=None,
        CELERY_TASK_ALWAYS_EAGER=True,
        broker_url="memory://",
        result_backend=None,
        task_always_eager=True,
        CELERY_TASK_DEFAULT_QUEUE="celery",
        task_default_queue="celery",
    )
    _reset_backend(app)


def _reset_backend(app) -> None:
    """Celery caches the result backend per thread and the broker connection pool per app;
    drop both so the new settings apply (a pool closed by an earlier test is never reused)."""
    try:
        del app._local.backend
    except AttributeError:
        pass
    from kombu import pools

    pools.reset()  # closes and forgets every pooled connection (kombu keeps a global registry)
    app._pool = None
    app.amqp._producer_pool = None
