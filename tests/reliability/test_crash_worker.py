"""kill -9 a Celery worker in the middle of allocating a day: the day completes exactly once.

How "the middle" is reached without any test hook in the code: the test holds a row lock on the
day's ClusterDay row (SELECT ... FOR UPDATE in its own transaction). `allocate_cluster_day`
deletes the day's lines, inserts the new ones and then updates that row, all in one
transaction, so the worker blocks *after* it has replaced the lines but *before* it commits.
The test waits until PostgreSQL shows the worker's backend waiting on that lock, kills the
worker with SIGKILL, releases the lock, and lets a new worker (or a new pool process) run the
redelivered message (acks_late: the message is acknowledged only after the task returns).
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.reliability.stack import wait_for

ENQUEUE = """
from costapp import tasks
tasks.allocate_day.delay({cluster}, "{day}")
out = True
"""


def _blocked_in_transaction(conn) -> int | None:
    """pid of a backend waiting on a lock while updating the cluster-day row (the worker)."""
    row = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND state = 'active' AND query ILIKE '%costapp_clusterday%' "
        "AND pid <> pg_backend_pid()"
    ).fetchone()
    return row[0] if row else None


def _succeeded(log) -> int:
    return sum("allocate_day[" in ln and "succeeded" in ln for ln in log.read_text().splitlines())


def _child_pid(parent: int) -> int | None:
    """The prefork pool process of a worker (the grandchild of our `python -c`)."""
    try:
        children = open(f"/proc/{parent}/task/{parent}/children").read().split()
    except OSError:
        return None
    return int(children[0]) if children else None


@pytest.mark.celery
@pytest.mark.parametrize("victim", ["whole-worker", "pool-process"])
def test_killing_a_worker_mid_transaction_leaves_the_day_allocated_exactly_once(
    allocation_stack, day_totals, victim
):
    stack, facts = allocation_stack
    stack.stop_workers()  # only this test's workers may take the message
    before = day_totals(stack, facts)
    assert before["dirty"] is False and int(before["money"]["n"]) > 0

    lock = stack.pg.connect()
    lock.autocommit = False
    lock.execute(
        "SELECT 1 FROM costapp_clusterday WHERE cluster_id = %s AND day = %s FOR UPDATE",
        (facts["cluster"], facts["day"]),
    )
    pool = "solo" if victim == "whole-worker" else "prefork"
    worker, log = stack.start_worker(f"a-{victim}", pool=pool)
    stack.django(ENQUEUE.format(**facts))

    watcher = stack.pg.connect()
    wait_for(lambda: _blocked_in_transaction(watcher), 60,
             "the worker to block inside the allocation transaction")
    # Mid-transaction: the worker has deleted and re-inserted the day's lines, uncommitted.
    # Every other connection still sees exactly the committed lines (MVCC).
    assert day_totals(stack, facts)["money"] == before["money"]

    if victim == "whole-worker":
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    else:
        child = wait_for(lambda: _child_pid(worker.pid), 10, "the pool process")
        os.kill(child, signal.SIGKILL)
    lock.rollback()  # the orphaned backend finishes its statement, finds no client, rolls back
    lock.close()
    wait_for(lambda: not _blocked_in_transaction(watcher), 30, "the orphaned backend to go")

    if victim == "whole-worker":
        # A new worker: the broker hands it the unacknowledged message once its visibility
        # timeout has passed (3 s here, 1 h in production settings). Kombu looks for such
        # messages when a worker starts and then only every ~100 s, so let the timeout pass.
        time.sleep(4)
        worker, log = stack.start_worker(f"b-{victim}", pool="solo")
    # else: reject_on_worker_lost requeues the message at once; the pool starts a new process.
    try:
        wait_for(lambda: _succeeded(log) >= 1, 90, "the redelivered task to succeed")
    except AssertionError:
        raise AssertionError(f"no success; worker log tail:\n{log.read_text()[-4000:]}") from None
    time.sleep(1)

    after = day_totals(stack, facts)
    assert after["money"] == before["money"], "totals changed after the crash"
    assert after["duplicate_keys"] == 0
    assert after["line_count"] == int(after["money"]["n"])
    assert after["dirty"] is False and after["allocated_at"] > before["allocated_at"]
    assert _succeeded(log) == 1, "the day was allocated more than once after the crash"
    watcher.close()
