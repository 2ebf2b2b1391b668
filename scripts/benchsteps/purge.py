"""The `purge` step of scripts/bench.py: `queuectl purge` of a million completed jobs on
SQLite while two workers run `true` jobs, and what it costs them.

Measured: the workers' throughput before, during and after the purge (from their jobs_done
counters), and how long a claim waits while the purge runs (a probe in this process claims
a job of its own queue every PROBE_EVERY seconds: the same statement, the same write lock as
the workers' claims). Also the size of the store file per million completed jobs.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from queuectl.models import JOB_COLUMNS
from queuectl.store.sqlite import SqliteStore

PROBE_EVERY = 0.02  # seconds between probe claims
WINDOW = 8.0  # seconds of throughput measured before and after the purge
WORK_RATE = 1500  # jobs/s the pending supply is sized for (more than 2 workers manage)


@dataclass
class PurgeRun:
    """What one run measured."""

    purged: int = 0
    purge_seconds: float = 0.0
    rate_before: float = 0.0
    rate_during: float = 0.0
    rate_after: float = 0.0
    claim_waits: list[float] = field(default_factory=list)  # ms, during the purge
    quiet_waits: list[float] = field(default_factory=list)  # ms, before the purge
    mib_per_million: float = 0.0
    output: str = ""
    ran_dry: bool = False  # the workers ran out of jobs: their throughput means nothing


def job_rows(start: int, count: int, now: float, **fields: Any) -> Iterator[tuple[Any, ...]]:
    """Rows in JOB_COLUMNS order: `true` jobs with `fields` (state, queue, times...)."""
    base_seq = time.time_ns()
    for i in range(start, start + count):
        row: dict[str, Any] = dict.fromkeys(JOB_COLUMNS)
        row.update(
            id=f"{fields.get('queue', 'default')}-{i:08d}",
            command="true",
            state="pending",
            attempts=0,
            max_retries=3,
            priority=0,
            run_at=now - 60,
            created_at=now - 60,
            updated_at=now - 60,
            seq=base_seq + i,
            queue="default",
            waiting=0,
            cancel_requested=0,
        )
        row.update(fields)
        if row["state"] == "completed":
            # A finished `true` job as a worker leaves it, spread over the last day.
            finished = now - 86_400 + i % 86_000
            row.update(
                attempts=1,
                started_at=finished - 0.005,
                finished_at=finished,
                updated_at=finished,
                exit_code=0,
                stdout="",
                stderr="",
                duration=0.005,
                locked_by=None,
                lease_token=secrets.token_hex(8),
            )
        yield tuple(row[c] for c in JOB_COLUMNS)


def bulk_insert(path: str, rows: Iterator[tuple[Any, ...]], rebuild: bool) -> None:
    """Direct inserts in big transactions; with `rebuild`, the jobs indexes are dropped
    meanwhile and rebuilt from their own definitions (a million rows in seconds)."""
    sql = (
        f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in JOB_COLUMNS)})"
    )
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -400000")
    conn.execute("PRAGMA synchronous = OFF")  # a throw-away store
    try:
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'jobs' AND sql IS NOT NULL"
        ).fetchall()
        if rebuild:
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
        if rebuild:
            for _, create in indexes:
                conn.execute(create)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def file_mib(path: str) -> float:
    """The store's size: the file and its WAL."""
    wal = path + "-wal"
    return (os.path.getsize(path) + (os.path.getsize(wal) if os.path.exists(wal) else 0)) / 2**20


class Probe:
    """Claims a job of queue `probe` every PROBE_EVERY seconds and records how long each
    claim took, in ms, with the time it started."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        store = SqliteStore(self.path)
        try:
            while not self._stop.wait(PROBE_EVERY):
                began = time.perf_counter()
                at = time.time()
                store.claim("probe", at, secrets.token_hex(8), ["probe"])
                self.samples.append((at, (time.perf_counter() - began) * 1000))
        finally:
            store.close()

    def between(self, start: float, end: float) -> list[float]:
        """The waits of claims started in [start, end)."""
        return [ms for at, ms in self.samples if start <= at < end]


def jobs_done(path: str) -> int:
    """Jobs the workers have finished so far (their counters)."""
    store = SqliteStore(path)
    try:
        return sum(w.jobs_done + w.jobs_failed for w in store.list_workers())
    finally:
        store.close()


def rate_over(path: str, seconds: float) -> float:
    """The workers' jobs per second over the next `seconds`."""
    began, done = time.monotonic(), jobs_done(path)
    time.sleep(seconds)
    return (jobs_done(path) - done) / (time.monotonic() - began)


def purge_under_load(
    path: str,
    size: int,
    start_workers: Callable[[], Any],
    run_purge: Callable[[], subprocess.CompletedProcess[str]],
    wait_for_workers: Callable[[], Any],
) -> PurgeRun:
    """Fill `path` with `size` completed jobs (measuring the file), then work for two
    workers and the probe; measure a window, the purge, and a window after it."""
    store = SqliteStore(path)
    store.set_config("retention", 0)  # no worker sweeps: the purge is the only deleter
    store.close()
    now = time.time()
    empty = file_mib(path)
    bulk_insert(path, job_rows(0, size, now, state="completed"), rebuild=True)
    run = PurgeRun(mib_per_million=(file_mib(path) - empty) * 1_000_000 / size)
    supply = int(WORK_RATE * (3 * WINDOW + 5 + size / 10_000))
    bulk_insert(path, job_rows(0, supply, now, queue="work"), rebuild=True)
    probes = int((3 * WINDOW + 10 + size / 10_000) / PROBE_EVERY)
    bulk_insert(path, job_rows(0, probes, now, queue="probe"), rebuild=False)
    start_workers()
    wait_for_workers()
    with Probe(path) as probe:
        quiet_from = time.time()
        run.rate_before = rate_over(path, WINDOW)
        run.quiet_waits = probe.between(quiet_from, time.time())
        done, began, wall = jobs_done(path), time.monotonic(), time.time()
        result = run_purge()
        run.purge_seconds = time.monotonic() - began
        run.rate_during = (jobs_done(path) - done) / run.purge_seconds
        run.claim_waits = probe.between(wall, time.time())
        run.rate_after = rate_over(path, WINDOW)
    run.output = result.stdout.strip()
    run.purged = int(json.loads(run.output.split()[1])) if run.output else 0
    left = SqliteStore(path)
    try:
        run.ran_dry = left.count_by_state("work").get("pending", 0) == 0
    finally:
        left.close()
    return run
