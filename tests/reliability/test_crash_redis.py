"""Restart Redis while tasks are queued: nothing is lost — when Redis persists every write.

The guarantee needs Redis' append-only file with fsync on every write (`--appendonly yes
--appendfsync always`, as docker-compose runs it): the broker's queue is a Redis list, and a
Redis that keeps it only in memory (`--save ""`, the CI default for the shared test Redis)
loses every queued message on restart. The second test shows that loss, so the requirement on
production Redis is checked rather than assumed.
"""

from __future__ import annotations

import shutil

import pytest

from tests.reliability.stack import PrivateRedis, scratch_dir, wait_for

QUEUED = 5
ENQUEUE = """
from costapp import tasks
from costapp.models import ClusterDay
ClusterDay.objects.filter(cluster_id={cluster}, day="{day}").update(dirty={dirty})
out = [tasks.allocate_day.delay({cluster}, "{day}").id for _ in range({n})]
"""


def _succeeded(log) -> int:
    return sum("allocate_day[" in ln and "succeeded" in ln for ln in log.read_text().splitlines())


@pytest.mark.celery
def test_tasks_queued_before_a_redis_crash_all_run_after_it(allocation_stack, day_totals):
    stack, facts = allocation_stack
    stack.stop_workers()
    before = day_totals(stack, facts)
    broker = stack.redis.client()
    broker.delete("celery")

    ids = stack.django(ENQUEUE.format(n=QUEUED, dirty=True, **facts))
    assert broker.llen("celery") == QUEUED
    stack.redis.kill()  # SIGKILL: no shutdown, no final save
    stack.redis.start()
    broker = stack.redis.client()
    assert broker.llen("celery") == QUEUED, "queued tasks were lost in the Redis restart"

    worker, log = stack.start_worker("after-redis-restart")
    wait_for(lambda: _succeeded(log) >= QUEUED, 120, f"{QUEUED} queued tasks to run")
    text = log.read_text()
    assert all(f"allocate_day[{i}] succeeded" in text for i in ids)
    after = day_totals(stack, facts)
    assert after["money"] == before["money"] and after["duplicate_keys"] == 0
    assert after["dirty"] is False
    stack.stop_workers()


@pytest.mark.celery
def test_without_an_append_only_file_a_redis_restart_loses_the_queue(allocation_stack):
    """Why production Redis must run with AOF: the same restart on an in-memory Redis."""
    stack, facts = allocation_stack
    base = scratch_dir("costapp-redis-noaof-")
    volatile = PrivateRedis(base, aof=False)
    volatile.start()
    try:
        # (the day stays clean: these messages are never run)
        stack.django(ENQUEUE.format(n=QUEUED, dirty=False, **facts), REDIS_URL=volatile.url)
        assert volatile.client().llen("celery") == QUEUED
        volatile.kill()
        volatile.start()
        assert volatile.client().llen("celery") == 0
    finally:
        volatile.kill()
        shutil.rmtree(base, ignore_errors=True)
