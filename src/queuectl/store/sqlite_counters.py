"""Counters a SQLite store maintains, so `status`, `stats` and the dashboard read a few small
rows instead of every job (SPEC §8, "No full scans on hot paths").

Triggers on `jobs` keep them, so every writer keeps them right without knowing of them:
this release's statements, a purge's bounded deletes, and workers of the release before
(their statements fire the same triggers once the file has them). Two tables:

- `job_counts`: per (queue, state), the number of jobs, how many of them have more than one
  attempt, and those jobs' attempts summed (what `stats` reports as retries).
- `job_durations`: per (queue, bucket), how many completed jobs have a duration in that
  bucket and those durations summed. Buckets are log-spaced, DURATION_STEPS per doubling,
  their lower bounds in `duration_bounds`. The count and mean are exact; a percentile is
  exact when its rank lies within EXACT_WALK durations of an end of its bucket (read through
  the duration index from there), else the bucket's geometric midpoint, within HALF_STEP
  (2.2 %) of the exact value.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
from typing import Any, Callable, Sequence

from .base import quantile_rank

DURATION_STEPS = 16  # buckets per doubling: each spans a factor 2 ** (1/16) = 1.044
LOWEST, HIGHEST = -10, 24  # 2 ** -10 s (about 1 ms) to 2 ** 24 s (about 194 days)
# Lower bounds of the buckets; the first holds everything below 2 ** LOWEST seconds.
BOUNDS: tuple[float, ...] = (
    -math.inf,
    *(2.0 ** (LOWEST + i / DURATION_STEPS) for i in range((HIGHEST - LOWEST) * DURATION_STEPS + 1)),
)
# The largest relative error of a bucket's midpoint against any value in it.
HALF_STEP = 2.0 ** (1 / (2 * DURATION_STEPS)) - 1
# How many index entries a percentile may walk from an end of its bucket to be exact.
EXACT_WALK = 1000

# The bucket of a duration: the largest lower bound at or below it (a primary-key search).
_BUCKET = "(SELECT MAX(lo) FROM duration_bounds WHERE lo <= {0}.duration)"
_RETRIED = "({0}.attempts > 1)"
_RETRIED_ATTEMPTS = "(CASE WHEN {0}.attempts > 1 THEN {0}.attempts ELSE 0 END)"


def _add(row: str) -> str:
    """The statements adding one job (`NEW`) to the counters."""
    return f"""
    INSERT INTO job_counts (queue, state, n, retried, retried_attempts)
        VALUES ({row}.queue, {row}.state, 1, {_RETRIED.format(row)},
            {_RETRIED_ATTEMPTS.format(row)})
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1,
            retried = retried + excluded.retried,
            retried_attempts = retried_attempts + excluded.retried_attempts;
    INSERT INTO job_durations (queue, lo, n, total)
        SELECT {row}.queue, {_BUCKET.format(row)}, 1, {row}.duration
        WHERE {row}.state = 'completed' AND {row}.duration IS NOT NULL
        ON CONFLICT (queue, lo) DO UPDATE SET n = n + 1, total = total + excluded.total;"""


def _remove(row: str) -> str:
    """The statements taking one job (`OLD`) out of the counters."""
    return f"""
    UPDATE job_counts SET n = n - 1, retried = retried - {_RETRIED.format(row)},
            retried_attempts = retried_attempts - {_RETRIED_ATTEMPTS.format(row)}
        WHERE queue = {row}.queue AND state = {row}.state;
    UPDATE job_durations SET n = n - 1, total = total - {row}.duration
        WHERE {row}.state = 'completed' AND {row}.duration IS NOT NULL
            AND queue = {row}.queue AND lo = {_BUCKET.format(row)};"""


# Each statement alone (the upgrade runs them one by one inside its transaction).
STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS job_counts (
    queue TEXT NOT NULL,
    state TEXT NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    retried INTEGER NOT NULL DEFAULT 0,
    retried_attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID""",
    "CREATE TABLE IF NOT EXISTS duration_bounds (lo REAL PRIMARY KEY) WITHOUT ROWID",
    """CREATE TABLE IF NOT EXISTS job_durations (
    queue TEXT NOT NULL,
    lo REAL NOT NULL,
    n INTEGER NOT NULL DEFAULT 0,
    total REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (queue, lo)
) WITHOUT ROWID""",
    f"CREATE TRIGGER IF NOT EXISTS job_counts_insert AFTER INSERT ON jobs BEGIN{_add('NEW')}\nEND",
    # Only changes of the counted columns fire it (a heartbeat or live output does not).
    "CREATE TRIGGER IF NOT EXISTS job_counts_update "
    "AFTER UPDATE OF state, queue, attempts, duration ON jobs "
    "WHEN OLD.state IS NOT NEW.state OR OLD.queue IS NOT NEW.queue "
    "OR OLD.attempts IS NOT NEW.attempts OR OLD.duration IS NOT NEW.duration "
    f"BEGIN{_remove('OLD')}{_add('NEW')}\nEND",
    f"CREATE TRIGGER IF NOT EXISTS job_counts_delete AFTER DELETE ON jobs BEGIN{_remove('OLD')}\n"
    "END",
)
# The same as one script (for a stand-in of a store that does not exist yet).
SCHEMA = "".join(f"{statement};\n" for statement in STATEMENTS)

# One full count: what the counters start from when a store gains them. Each reads an
# index in its own order (jobs per queue and state from a covering index, retried jobs from
# their partial index, each queue's durations as one index range per bucket), so counting
# ten million jobs takes seconds, not the minutes a GROUP BY over the rows would.
FILL_COUNTS = (
    "DELETE FROM job_counts",
    "DELETE FROM job_durations",
    "INSERT INTO job_counts (queue, state, n) "
    "SELECT queue, state, COUNT(*) FROM jobs INDEXED BY jobs_queue_state GROUP BY queue, state",
    "UPDATE job_counts SET retried = r.n, retried_attempts = r.a FROM "
    "(SELECT queue, state, COUNT(*) AS n, SUM(attempts) AS a FROM jobs INDEXED BY jobs_retried "
    "WHERE attempts > 1 GROUP BY queue, state) AS r "
    "WHERE job_counts.queue = r.queue AND job_counts.state = r.state",
)
_DONE = "FROM jobs INDEXED BY jobs_queue_duration WHERE state = 'completed' AND queue = ?"


def _fill_durations(conn: sqlite3.Connection) -> None:
    """Each queue's completed durations, bucket by bucket between its shortest and longest."""
    queues = conn.execute(
        "SELECT queue FROM job_counts WHERE state = 'completed' AND n > 0"
    ).fetchall()
    for (queue,) in queues:
        low = conn.execute(f"SELECT MIN(duration) {_DONE}", (queue,)).fetchone()[0]
        high = conn.execute(f"SELECT MAX(duration) {_DONE}", (queue,)).fetchone()[0]
        if low is None:
            continue
        first = bisect.bisect_right(BOUNDS, low) - 1
        last = bisect.bisect_right(BOUNDS, high) - 1
        for at in range(first, last + 1):
            lo = BOUNDS[at]
            if at + 1 < len(BOUNDS):
                sql = f"SELECT COUNT(*), SUM(duration) {_DONE} AND duration >= ? AND duration < ?"
                params: tuple[Any, ...] = (queue, lo, BOUNDS[at + 1])
            else:
                sql = f"SELECT COUNT(*), SUM(duration) {_DONE} AND duration >= ?"
                params = (queue, lo)
            n, total = conn.execute(sql, params).fetchone()
            if n:
                conn.execute(
                    "INSERT INTO job_durations (queue, lo, n, total) VALUES (?, ?, ?, ?)",
                    (queue, lo, n, total),
                )


def add_counters(conn: sqlite3.Connection) -> None:
    """Schema 6: the counter tables and their triggers, filled from one full count of the
    jobs in the same transaction as the triggers' creation, under the write lock: no write
    can fall between the count and the first trigger. A second process upgrading at the
    same time finds the triggers there and does nothing."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        have = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'job_counts_delete'"
        ).fetchone()
        if not have:
            for statement in STATEMENTS:
                conn.execute(statement)
            conn.executemany(
                "INSERT OR IGNORE INTO duration_bounds (lo) VALUES (?)", [(lo,) for lo in BOUNDS]
            )
            for statement in FILL_COUNTS:
                conn.execute(statement)
            _fill_durations(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


Read = Callable[[str, Sequence[Any]], list[sqlite3.Row]]


def count_by_state(read: Read, queue: str | None) -> dict[str, int]:
    """Jobs per state that has any (of one queue, when given), from `job_counts`."""
    if queue is None:
        rows = read("SELECT state, SUM(n) AS n FROM job_counts GROUP BY state", ())
    else:
        rows = read("SELECT state, n FROM job_counts WHERE queue = ?", (queue,))
    return {r["state"]: int(r["n"]) for r in rows if r["n"]}


def count_by_queue(read: Read) -> dict[str, dict[str, int]]:
    """Jobs per queue and state, for the queues that have any."""
    counts: dict[str, dict[str, int]] = {}
    for r in read("SELECT queue, state, n FROM job_counts WHERE n > 0", ()):
        counts.setdefault(r["queue"], {})[r["state"]] = int(r["n"])
    return counts


def retried_totals(read: Read, queue: str | None) -> tuple[int, int]:
    """Jobs with more than one attempt, and their attempts summed."""
    where, params = ("", ()) if queue is None else (" WHERE queue = ?", (queue,))
    row = read(
        "SELECT COALESCE(SUM(retried), 0) AS n, COALESCE(SUM(retried_attempts), 0) AS a "
        f"FROM job_counts{where}",
        params,
    )[0]
    return int(row["n"]), int(row["a"])


def duration_stats(
    read: Read, quantiles: Sequence[float], queue: str | None
) -> tuple[int, float | None, list[float | None]]:
    """How many completed jobs have a duration, their mean, and the nearest-rank duration
    at each quantile, from `job_durations` (see the module's docstring for how exact)."""
    if queue is None:
        rows = read(
            "SELECT lo, SUM(n) AS n, SUM(total) AS total FROM job_durations "
            "GROUP BY lo HAVING SUM(n) > 0 ORDER BY lo",
            (),
        )
    else:
        rows = read(
            "SELECT lo, n, total FROM job_durations WHERE queue = ? AND n > 0 ORDER BY lo",
            (queue,),
        )
    buckets = [(float(r["lo"]), int(r["n"])) for r in rows]
    count = sum(n for _, n in buckets)
    if not count:
        return 0, None, [None for _ in quantiles]
    mean = sum(float(r["total"]) for r in rows) / count
    return count, mean, [_at(read, buckets, quantile_rank(count, q), queue) for q in quantiles]


def _at(read: Read, buckets: list[tuple[float, int]], rank: int, queue: str | None) -> float:
    """The duration at zero-based `rank`: found in its bucket, then read exactly through the
    duration index when it is near an end of the bucket, else the bucket's midpoint."""
    before, at = 0, 0
    while at < len(buckets) - 1 and rank >= before + buckets[at][1]:
        before += buckets[at][1]
        at += 1
    lo, n = buckets[at]
    offset = rank - before
    hi = _upper(lo)
    index, where, params = (
        ("jobs_done_duration", "", ())
        if queue is None
        else ("jobs_queue_duration", " AND queue = ?", (queue,))
    )
    found: list[sqlite3.Row] = []
    if offset < EXACT_WALK:
        found = read(
            f"SELECT duration FROM jobs INDEXED BY {index} WHERE state = 'completed'{where} "
            "AND duration >= ? ORDER BY duration LIMIT 1 OFFSET ?",
            (*params, lo, offset),
        )
    elif n - 1 - offset < EXACT_WALK:
        found = read(
            f"SELECT duration FROM jobs INDEXED BY {index} WHERE state = 'completed'{where} "
            "AND duration < ? ORDER BY duration DESC LIMIT 1 OFFSET ?",
            (*params, hi, n - 1 - offset),
        )
    if found and found[0]["duration"] is not None:
        return float(found[0]["duration"])
    return midpoint(lo, hi)


def _upper(lo: float) -> float:
    """The upper bound of the bucket whose lower bound is `lo` (infinite for the last)."""
    at = bisect.bisect_right(BOUNDS, lo)
    return BOUNDS[at] if at < len(BOUNDS) else math.inf


def midpoint(lo: float, hi: float) -> float:
    """The value standing for a bucket: its geometric midpoint (half the upper bound for
    the first, open-ended one; the lower bound for the last)."""
    if lo == -math.inf:
        return hi / 2
    if hi == math.inf:
        return lo
    return math.sqrt(lo * hi)
