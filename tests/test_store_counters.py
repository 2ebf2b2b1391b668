"""`status` and `stats` read no job one by one (SPEC §8): SQLite keeps counters by trigger,
MongoDB counts through indexes. Either way the figures must equal what a walk over every job
gives, through every transition, a purge's delete, an older worker's plain statements and an
upgrade from the release before."""

from __future__ import annotations

import math
import sqlite3

import pytest

from queuectl.app import App
from queuectl.executor import Result
from queuectl.models import STATES
from queuectl.store.base import quantile_rank
from queuectl.store.sqlite import BASE_SCHEMA, SCHEMA_VERSION, SqliteStore
from queuectl.store.sqlite_counters import BOUNDS, EXACT_WALK, HALF_STEP, add_counters

ALL = 1_000_000  # more than any test here holds


def truth(store, queue: str | None = None) -> dict:
    """Counts, retries and durations worked out from every job, one by one."""
    jobs = [j for j in store.list_jobs(None, ALL) if queue is None or j.queue == queue]
    counts = {s: sum(1 for j in jobs if j.state == s) for s in STATES}
    durations = sorted(
        j.duration for j in jobs if j.state == "completed" and j.duration is not None
    )
    n = len(durations)
    return {
        "jobs": counts,
        "retries": sum(j.attempts - 1 for j in jobs if j.attempts > 1),
        "mean": math.fsum(durations) / n if n else None,
        "p50": durations[quantile_rank(n, 0.5)] if n else None,
        "p95": durations[quantile_rank(n, 0.95)] if n else None,
    }


def figures(app: App, queue: str | None = None) -> dict:
    """The same figures as `stats` reports them."""
    stats = app.jobs.stats(queue)
    assert stats["jobs"] == app.jobs.counts(queue)
    return {"jobs": stats["jobs"], "retries": stats["retries"], **stats["duration"]}


def check(store, app: App) -> None:
    """The store's figures equal the walk's, overall and for each queue; on SQLite the
    counter tables also equal a fresh full count (no row drifts, zero rows aside)."""
    for queue in (None, "default", "mail"):
        got, want = figures(app, queue), truth(store, queue)
        assert got["mean"] == pytest.approx(want.pop("mean")), queue
        got.pop("mean")
        assert got == want, queue
    assert app.jobs.queue_counts() == {
        q: truth(store, q)["jobs"] for q in {j.queue for j in store.list_jobs(None, ALL)}
    }
    if isinstance(store, SqliteStore):
        conn = store._file.connection(write=True)
        kept = conn.execute(
            "SELECT queue, state, n, retried, retried_attempts FROM job_counts WHERE n != 0"
        ).fetchall()
        counted = conn.execute(
            "SELECT queue, state, COUNT(*), SUM(attempts > 1), "
            "SUM(CASE WHEN attempts > 1 THEN attempts ELSE 0 END) FROM jobs GROUP BY queue, state"
        ).fetchall()
        assert sorted(map(tuple, kept)) == sorted(map(tuple, counted))
        assert conn.execute("SELECT COUNT(*) FROM job_counts WHERE n < 0").fetchone()[0] == 0
        buckets = conn.execute("SELECT queue, lo, n FROM job_durations WHERE n != 0").fetchall()
        walked = conn.execute(
            "SELECT queue, (SELECT MAX(lo) FROM duration_bounds WHERE lo <= duration) AS b, "
            "COUNT(*) FROM jobs WHERE state = 'completed' AND duration IS NOT NULL "
            "GROUP BY queue, b"
        ).fetchall()
        assert sorted(map(tuple, buckets)) == sorted(map(tuple, walked))


def attempt(app: App, clock, ok: bool, duration: float, queues=()) -> str:
    """Claim the next job and end its attempt as a worker would; its id."""
    job = app.jobs.claim("w1", queues)
    assert job is not None
    result = Result(0 if ok else 1, "", "", duration, None if ok else "exit status 1")
    if ok:
        assert app.jobs.complete(job, result)
    else:
        assert app.jobs.fail(job, "exit status 1", result)[0]
    return job.id


def test_counts_stay_exact_through_every_transition(store, clock):
    app = App(store=store, clock=clock)
    app.configs.set("backoff_base", "1")
    app.configs.set("max_retries", "1")
    check(store, app)
    app.jobs.enqueue([(None, {"command": "true", "id": f"d{i}"}) for i in range(6)])
    # In claim order m0, m1 (its retry too, once due), m2, m3.
    app.jobs.enqueue(
        [
            (None, {"command": "true", "id": f"m{i}", "queue": "mail", "priority": 3 - i})
            for i in range(4)
        ]
    )
    check(store, app)
    attempt(app, clock, True, 0.25)  # completed
    attempt(app, clock, True, 3.5, ["mail"])
    check(store, app)
    held = app.jobs.claim("w1", ["default"])  # processing
    check(store, app)
    failed = attempt(app, clock, False, 1.0, ["mail"])  # failed, one retry left
    check(store, app)
    clock.advance(10)
    again = app.jobs.claim("w1", ["mail"])
    assert again is not None and again.id == failed and again.attempts == 2
    check(store, app)  # a processing job on its second attempt is a retried one
    assert app.jobs.fail(again, "exit status 1", Result(1, "", "", 2.0, "exit status 1"))[0]
    assert store.get_job(failed).state == "dead"
    check(store, app)
    canceled, _ = app.jobs.cancel(["d4", "m3"])
    assert sorted(canceled) == ["d4", "m3"]
    check(store, app)
    retried, _ = app.jobs.retry_dead(None)  # attempts back to 0: no longer retried
    assert sorted(retried) == sorted([failed, "d4", "m3"])
    check(store, app)
    assert app.jobs.release(held, "worker lost")  # the reaper's transition
    check(store, app)
    clock.advance(10)
    for _ in range(5):
        attempt(app, clock, True, 0.5 + 0.1 * _)
    check(store, app)


def test_deletes_keep_the_counters_exact(tmp_path, clock):
    """A purge deletes rows by its own statements (bounded batches); the delete trigger
    takes each one out of the counters, whatever deleted it."""
    store = SqliteStore(str(tmp_path / "purge.db"))
    app = App(store=store, clock=clock)
    app.jobs.enqueue([(None, {"command": "true", "queue": q}) for q in ("default", "mail") * 5])
    for i in range(6):
        attempt(app, clock, True, 0.1 * (i + 1))
    check(store, app)
    conn = store._file.connection(write=True)
    conn.execute(
        "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'completed' "
        "ORDER BY finished_at LIMIT 4)"
    )
    check(store, app)
    conn.execute("DELETE FROM jobs")
    check(store, app)
    assert app.jobs.stats()["duration"] == {"mean": None, "p50": None, "p95": None}


def test_an_older_workers_plain_statements_keep_the_counters_exact(tmp_path, clock):
    """A worker of the release before writes the jobs table with its own statements, which
    know nothing of the counters: the triggers count them all the same."""
    path = tmp_path / "mixed.db"
    store = SqliteStore(str(path))
    app = App(store=store, clock=clock)
    app.jobs.enqueue([(None, {"command": "true", "id": f"j{i}"}) for i in range(4)])
    old = sqlite3.connect(path, isolation_level=None)
    old.execute("UPDATE jobs SET state = 'processing', attempts = attempts + 1 WHERE id = 'j0'")
    old.execute("UPDATE jobs SET state = 'completed', duration = 4.0 WHERE id = 'j0'")
    old.execute("UPDATE jobs SET state = 'failed', attempts = 2, queue = 'mail' WHERE id = 'j1'")
    old.execute("UPDATE jobs SET live_stdout = 'tick' WHERE id = 'j2'")  # no counted column
    old.close()
    check(store, app)


# A store as the release before this one wrote it (schema 5): jobs in every state, retried,
# with durations, in two queues; no counters.
def release_five(path) -> None:
    """Write a schema-5 file of 300 jobs at `path` without this release's code paths."""

    conn = sqlite3.connect(path, isolation_level=None)
    # This release's tables and indexes are the release before's, unchanged: only the
    # counters (tables and triggers) are new in schema 6.
    conn.executescript(BASE_SCHEMA + "PRAGMA user_version = 5;")
    rows = []
    for i in range(300):
        state = STATES[i % len(STATES)]
        done = state == "completed"
        rows.append(
            (
                f"v5-{i}",
                "true",
                state,
                1 + i % 3,
                3,
                0,
                float(i),
                float(i),
                float(i),
                float(i) if done else None,
                0.01 * (i % 97) + 0.5 if done or state == "dead" else None,
                i,
                "mail" if i % 4 == 0 else "default",
            )
        )
    conn.executemany(
        "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, "
        "created_at, updated_at, finished_at, duration, seq, queue) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.close()


def test_a_store_of_the_release_before_gains_exact_counters(tmp_path, clock):
    path = tmp_path / "v5.db"
    release_five(path)
    store = SqliteStore(str(path))
    app = App(store=store, clock=clock)
    check(store, app)  # filled from one full count on first use
    conn = store._file.connection(write=True)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    app.jobs.enqueue([(None, {"command": "true"})])
    attempt(app, clock, True, 0.75)
    check(store, app)  # and kept by the triggers from then on
    store.close()
    again = SqliteStore(str(path))  # a second open finds nothing to do, and counts nothing twice
    check(again, App(store=again, clock=clock))
    again.close()


def test_an_upgrade_that_finds_the_counters_there_counts_nothing_twice(tmp_path, clock):
    """Two processes may upgrade at once: the second, holding the write lock after the
    first, finds the triggers and leaves the counters alone."""
    path = tmp_path / "v5.db"
    release_five(path)
    store = SqliteStore(str(path))
    app = App(store=store, clock=clock)
    before = app.jobs.stats()
    add_counters(store._file.connection(write=True))
    assert app.jobs.stats() == before
    check(store, app)


@pytest.mark.parametrize("spread", ["one bucket", "many buckets"])
def test_percentiles_of_a_large_store_are_within_the_stated_bound(tmp_path, clock, spread):
    """Past EXACT_WALK durations in a bucket, a percentile is the bucket's midpoint: within
    HALF_STEP of the exact value; the count and the mean stay exact."""
    store = SqliteStore(str(tmp_path / "many.db"))
    n = 3 * EXACT_WALK + 17
    if spread == "one bucket":
        durations = [1.0 + 0.04 * i / n for i in range(n)]  # all within [1, 1.044)
    else:
        durations = [0.001 * 1.002**i for i in range(n)]
    conn = store._file.connection(write=True)
    conn.executemany(
        "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, "
        "created_at, updated_at, finished_at, duration, seq) "
        "VALUES (?, 'true', 'completed', 1, 3, 0, 0, 0, 0, 0, ?, ?)",
        [(f"c{i}", d, i) for i, d in enumerate(durations)],
    )
    count, mean, values = store.duration_stats((0.5, 0.95, 0.0, 1.0))
    assert count == n and mean == pytest.approx(math.fsum(durations) / n)
    ordered = sorted(durations)
    for q, value in zip((0.5, 0.95, 0.0, 1.0), values, strict=True):
        exact = ordered[quantile_rank(n, q)]
        assert abs(value - exact) <= HALF_STEP * exact, (q, value, exact)
    assert values[2:] == [ordered[0], ordered[-1]]  # the ends of a bucket are read exactly
    assert len(BOUNDS) > 500


def test_a_duration_below_the_lowest_bucket_or_of_zero_is_counted(tmp_path):
    store = SqliteStore(str(tmp_path / "tiny.db"))
    conn = store._file.connection(write=True)
    conn.executemany(
        "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, "
        "created_at, updated_at, finished_at, duration, seq) "
        "VALUES (?, 'true', 'completed', 1, 3, 0, 0, 0, 0, 0, ?, ?)",
        [("zero", 0.0, 1), ("tiny", 0.0001, 2), ("huge", 10.0**9, 3)],
    )
    assert store.duration_stats((0.0, 0.5, 1.0)) == (
        3,
        pytest.approx((10.0**9 + 0.0001) / 3),
        [0.0, 0.0001, 10.0**9],
    )
