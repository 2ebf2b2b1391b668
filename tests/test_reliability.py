"""Crashes and outages: an `enqueue --file` killed mid-batch stores all of it or none; a
worker whose store is unreachable when a job ends retries the write until it lands (SQLite
file locked by another process; MongoDB down, simulated)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from procutil import QUEUECTL, QueueEnv, has_open, job_processes, unique, wait_for

from queuectl.app import App
from queuectl.errors import StoreUnavailable
from queuectl.store.sqlite import BUSY_TIMEOUT_ENV

BATCH = 50_000


@pytest.fixture
def q(tmp_path) -> Iterator[QueueEnv]:
    """A private store and home; every process started under it is killed afterwards."""
    with QueueEnv(tmp_path) as env:
        yield env


# -- a crash during enqueue ---------------------------------------------------------------
def wal_size(db: Path) -> int:
    """Bytes in the SQLite write-ahead log: it grows while a transaction writes."""
    try:
        return Path(f"{db}-wal").stat().st_size
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("kill_point", ["validating", "writing"])
def test_enqueue_killed_midway_stores_all_of_the_batch_or_none(q, kill_point):
    batch = q.home / "batch.jsonl"
    batch.write_text(
        "".join(json.dumps({"id": f"bulk-{n:05d}", "command": "true"}) + "\n" for n in range(BATCH))
    )
    # Create the store first (a write does; a read creates nothing), so its WAL starts empty.
    q.cli("config", "set", "max_retries", "3")
    wal_before = wal_size(q.db)
    proc = subprocess.Popen(
        [*QUEUECTL, "--db", str(q.db), "enqueue", "--file", str(batch)],
        cwd=q.home,
        env=q.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        if kill_point == "validating":  # the store is open: the batch is being checked
            started = lambda: has_open(proc.pid, q.db)  # noqa: E731
        else:  # the insert's transaction is spilling pages into the WAL
            started = lambda: wal_size(q.db) > wal_before + 256 * 1024  # noqa: E731
        wait_for(lambda: started() or proc.poll() is not None, 20, f"enqueue {kill_point}")
        proc.send_signal(signal.SIGKILL)
    finally:
        code = proc.wait(10)

    stored = q.sql("SELECT COUNT(*) AS n FROM jobs")[0]["n"]
    print(f"enqueue killed while {kill_point}: exit {code}, {stored} of {BATCH} jobs stored")
    assert code == -signal.SIGKILL, "enqueue finished before it could be killed"
    assert stored in (0, BATCH)
    assert q.sql("PRAGMA integrity_check")[0]["integrity_check"] == "ok"
    if stored == 0 and kill_point == "writing":
        # Nothing half-written and no lock left behind: the same batch now goes in whole.
        q.cli("enqueue", "--file", str(batch), timeout=60)
        assert q.sql("SELECT COUNT(*) AS n FROM jobs")[0]["n"] == BATCH


# -- SQLite: the file is locked while a job runs ------------------------------------------
def test_worker_retries_its_result_through_a_locked_sqlite_file(q):
    # stale_after is shorter than the outage: the worker must keep its own lease alive
    # while it waits to record the result, or its own reaper would take the job back.
    q.config(poll_interval=0.1, heartbeat_interval=0.5, stale_after=2)
    job_id = unique("outage")
    q.cli("enqueue", "--id", job_id, "sleep 1; echo outage-result")
    supervisor = q.start_workers(env={BUSY_TIMEOUT_ENV: "300"})
    wait_for(lambda: job_processes(job_id), 15, "the job to start")

    lock = sqlite3.connect(q.db, timeout=10, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    try:
        wait_for(
            lambda: "retrying the write" in supervisor.output(), 10, "the worker to retry its write"
        )
        assert q.job(job_id)["state"] == "processing"
        # The outage lasts about 3 s in all: longer than stale_after, on purpose.
        time.sleep(max(0.0, 3.0 - (time.monotonic() - locked_at)))
    finally:
        lock.execute("ROLLBACK")
        lock.close()

    job = wait_for(
        lambda: (j := q.job(job_id))["state"] not in ("processing",) and j,
        15,
        "the result to be recorded",
    )
    assert (job["state"], job["attempts"], job["exit_code"]) == ("completed", 1, 0), (
        job["last_error"],
        supervisor.output(),
    )
    assert job["stdout"] == "outage-result\n"
    q.cli("worker", "stop", "--wait", "--timeout", "20")
    assert supervisor.wait(10) == 0
    log = supervisor.output()
    assert "store unavailable" in log and "lease was lost" not in log


# -- MongoDB (or any store) down when the result is written: a unit test -------------------
class FlakyFinish:
    """A store whose writes that end an attempt (`finish`, and `settle` for a final state)
    fail like an unreachable server the first `failures` times."""

    def __init__(self, inner: Any, failures: int) -> None:
        self.inner = inner
        self.failures = failures

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def finish(self, job_id: str, lease_token: str, changes: dict[str, Any], **kwargs: Any) -> bool:
        """Raise StoreUnavailable while failures remain, then write for real."""
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("cannot reach MongoDB at mongodb://db.example:27017")
        return self.inner.finish(job_id, lease_token, changes, **kwargs)

    def settle(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        dead: Any,
        **kwargs: Any,
    ) -> Any:
        """The same failures for a write that makes the job completed or dead."""
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("cannot reach MongoDB at mongodb://db.example:27017")
        return self.inner.settle(job_id, expected, changes, dead, **kwargs)


def run_one(store: Any, command: str, failures: int, **fields: Any):
    """Enqueue one job, let an in-process worker run it through `failures` failed writes.
    Returns the job afterwards, the worker's log lines and the waits it took."""
    (job,) = App(store=store).jobs.enqueue([(None, {"command": command, **fields})])
    flaky = FlakyFinish(store, failures)
    lines: list[str] = []
    worker = App(store=flaky).worker(log=lines.append)
    waits: list[float] = []
    worker._wait = waits.append  # type: ignore[method-assign]  # no real sleeping
    worker.start()
    assert worker.step() is True
    assert flaky.failures == 0
    return store.get_job(job.id), lines, waits


@pytest.mark.parametrize("failures", [1, 3])
def test_worker_retries_a_completed_result_until_the_store_is_back(store, failures):
    job, lines, waits = run_one(store, "echo mongo-result", failures)
    assert (job.state, job.attempts, job.exit_code) == ("completed", 1, 0)
    assert job.stdout == "mongo-result\n"
    retries = [line for line in lines if "retrying the write" in line]
    assert len(retries) == failures
    assert "mongodb://db.example" in retries[0]
    assert waits == [0.5, 1.0, 2.0][:failures]  # exponential backoff between tries
    assert any(f"job {job.id} completed" in line for line in lines)


def test_worker_retries_a_failed_result_until_the_store_is_back(store):
    job, lines, _waits = run_one(store, "echo broken >&2; exit 4", 2, max_retries=0)
    assert (job.state, job.attempts, job.exit_code) == ("dead", 1, 4)
    assert job.last_error == "exit status 4: broken"
    assert sum("retrying the write" in line for line in lines) == 2
