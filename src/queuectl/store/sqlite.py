"""SqliteStore: one file shared by the CLI and every worker process on one machine.

WAL mode lets readers run beside the one writer; every write is a short transaction, and the
claim is a single UPDATE ... RETURNING inside BEGIN IMMEDIATE, so two workers can never take
the same job.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import time
from typing import Any, Callable, NamedTuple, Sequence, TypeVar

from ..errors import DependencyNotFound, DuplicateJob, DuplicateSchedule
from ..models import (
    JOB_COLUMNS,
    SCHEDULE_COLUMNS,
    STATES,
    WORKER_COLUMNS,
    Job,
    Schedule,
    WorkerInfo,
)
from . import sqlite_counters as counters
from .base import (
    CONTROL_KEY,
    MARKER_PREFIX,
    FinishedRow,
    Poll,
    check_purgeable,
    parse_records,
    renew_lease,
    text_matches,
)
from .sqlite_file import SqliteFile

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
# Lowered by the reliability tests to reach the store-outage path without a 10 s wait.
BUSY_TIMEOUT_ENV = "QUEUECTL_SQLITE_BUSY_TIMEOUT_MS"
# Raised whenever a schema below gains a table, a column or an index: 3 added schedules,
# 4 queues and dependencies (or, in another line of releases, lease deadlines), 5 both,
# 6 the maintained counters (sqlite_counters, added by its `add_counters` step).
SCHEMA_VERSION = 6

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    max_retries INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    timeout REAL,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    locked_by TEXT,
    locked_at REAL,
    exit_code INTEGER,
    last_error TEXT,
    stdout TEXT,
    stderr TEXT,
    duration REAL,
    seq INTEGER NOT NULL,
    lease_token TEXT,
    lease_renewed_at REAL,
    lease_expires_at REAL,
    queue TEXT NOT NULL DEFAULT 'default',
    after TEXT,
    waiting INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    live_stdout TEXT,
    live_stderr TEXT
);
-- Queries name their index (INDEXED BY): with no ANALYZE statistics SQLite would otherwise
-- pick a state-prefixed index and sort every ready row. The claim indexes are in
-- CONTROL_SCHEMA; each query's WHERE repeats its index's condition word for word, which is
-- what lets SQLite use a partial index.
CREATE INDEX IF NOT EXISTS jobs_state_updated ON jobs (state, updated_at, seq);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs (updated_at, seq);
-- Partial indexes are maintained only for the rows they hold, so a claim (which changes
-- state) does not touch the stats indexes.
CREATE INDEX IF NOT EXISTS jobs_done_duration ON jobs (duration) WHERE state = 'completed';
CREATE INDEX IF NOT EXISTS jobs_done_finished ON jobs (finished_at) WHERE state = 'completed';
CREATE INDEX IF NOT EXISTS jobs_retried ON jobs (attempts) WHERE attempts > 1;
CREATE INDEX IF NOT EXISTS jobs_locked_by ON jobs (locked_by) WHERE state = 'processing';
CREATE TABLE IF NOT EXISTS workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    status TEXT NOT NULL,
    current_job TEXT,
    started_at REAL NOT NULL,
    last_heartbeat REAL NOT NULL,
    jobs_done INTEGER NOT NULL DEFAULT 0,
    jobs_failed INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    machine TEXT NOT NULL DEFAULT '',
    expires_at REAL,
    -- The lease whose end was last counted in jobs_done/jobs_failed (a retry counts once).
    counted_lease TEXT,
    queues TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS workers_status ON workers (status);
CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# Recurring jobs (SPEC §7.5). The due index holds only active schedules, so a worker's tick
# reads nothing when no schedule is due.
SCHEDULES_SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    cron TEXT NOT NULL,
    tz TEXT NOT NULL,
    command TEXT NOT NULL,
    options TEXT NOT NULL,
    next_run_at REAL NOT NULL,
    last_run_at REAL,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_run_at) WHERE paused = 0;
"""


# Columns added after the first release (the same as in SCHEMA's tables): an older file gets
# them by ALTER TABLE on first use, before SCHEMA's indexes on them are created (each with
# its default, so existing rows are `default`-queue jobs with no dependencies).
ADDED_COLUMNS = {
    "jobs": (
        ("queue", "TEXT NOT NULL DEFAULT 'default'"),
        ("after", "TEXT"),  # JSON array of job ids; NULL = none
        ("waiting", "INTEGER NOT NULL DEFAULT 0"),
        ("cancel_requested", "INTEGER NOT NULL DEFAULT 0"),
        ("live_stdout", "TEXT"),
        ("live_stderr", "TEXT"),
        ("lease_expires_at", "REAL"),
    ),
    "workers": (
        ("queues", "TEXT NOT NULL DEFAULT '[]'"),
        ("expires_at", "REAL"),
        ("counted_lease", "TEXT"),
    ),
}

# Queues and dependencies. A job with unfinished dependencies has `waiting` > 0 and is left
# out of the claim indexes by their partial condition, so no claim ever walks a blocked job.
# `job_deps` is the reverse of `after`: who waits on a job, found by its primary key.
# Every index costs each job state change an index update, so there are few: the claim walks
# jobs_claim(_queue) in claim order and stops at the first job due; an idle worker reads its
# next due time from jobs_next(_queue); `list` merges the claimable jobs with the blocked ones
# (jobs_blocked(_queue), which only jobs with dependencies ever enter).
CONTROL_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_deps (dep_id TEXT NOT NULL, job_id TEXT NOT NULL,
    PRIMARY KEY (dep_id, job_id)) WITHOUT ROWID;
-- The first release's ready-job indexes, superseded by the ones below, which leave out
-- blocked jobs. (A worker of that release, which would claim blocked jobs, now stops at
-- "no such index" rather than run a job before its dependencies.)
DROP INDEX IF EXISTS jobs_ready;
DROP INDEX IF EXISTS jobs_waiting;
CREATE INDEX IF NOT EXISTS jobs_claim ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX IF NOT EXISTS jobs_claim_queue ON jobs (queue, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (run_at)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX IF NOT EXISTS jobs_next_queue ON jobs (queue, run_at)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX IF NOT EXISTS jobs_blocked ON jobs (run_at, priority DESC, seq)
    WHERE state = 'pending' AND waiting > 0;
CREATE INDEX IF NOT EXISTS jobs_blocked_queue ON jobs (queue, run_at, priority DESC, seq)
    WHERE state = 'pending' AND waiting > 0;
CREATE INDEX IF NOT EXISTS jobs_queue_state ON jobs (queue, state, updated_at, seq);
CREATE INDEX IF NOT EXISTS jobs_queue_duration ON jobs (queue, duration)
    WHERE state = 'completed';
"""

# Every table and index but the counters, whose creation is a step of its own (add_counters).
BASE_SCHEMA = SCHEMA + SCHEDULES_SCHEMA + CONTROL_SCHEMA

CLAIMABLE = "state IN ('pending', 'failed') AND waiting = 0"
BLOCKED = "state = 'pending' AND waiting > 0"
CLAIM_ORDER = "priority DESC, run_at, seq"
# Waiting jobs become ready in run_at order; among equal run_at, claim order decides.
WAITING_ORDER = "run_at, priority DESC, seq"
CLAIM_COLUMNS = "id, priority, run_at, seq"
JSON_COLUMNS = ("after", "queues")
# What a text search reads of each job: what it matches, and the columns of list_jobs' orders.
SEARCH_COLUMNS = "id, command, priority, run_at, seq, updated_at"
BATCH = 500  # ids per IN (...) list: far below SQLite's limit of bound parameters


def _text_match(text: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition (and its parameters) keeping jobs whose id or command contains `text`
    ("" when there is no text): LIKE with its wildcards escaped, so the text is only ever
    text. LIKE ignores the case of ASCII letters only, as the MongoDB store's pattern does."""
    if not text:
        return "", ()
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = f"%{escaped}%"
    return "(id LIKE ? ESCAPE '\\' OR command LIKE ? ESCAPE '\\')", (like, like)


def _where(*conditions: str) -> str:
    """`WHERE a AND b ` of the conditions given, empty ones left out ("" when all are)."""
    kept = [c for c in conditions if c]
    return f"WHERE {' AND '.join(kept)} " if kept else ""


class _Scope(NamedTuple):
    """Which jobs a list in claim order reads: its conditions besides the state (a queue, a
    text), their parameters, and the suffix of the indexes that serve them."""

    conditions: tuple[str, ...]
    params: tuple[Any, ...]
    suffix: str


def _scope(queue: str | None, match: str, mp: tuple[str, ...]) -> _Scope:
    if queue is None:
        return _Scope((match,), mp, "")
    return _Scope(("queue = ?", match), (queue, *mp), "_queue")


def busy_timeout_ms() -> int:
    """How long a write waits for another writer's lock before the store counts as
    unavailable: $QUEUECTL_SQLITE_BUSY_TIMEOUT_MS when it is a whole number >= 0."""
    try:
        return max(int(os.environ[BUSY_TIMEOUT_ENV]), 0)
    except (KeyError, ValueError):
        return BUSY_TIMEOUT_MS


class SqliteStore:
    """The Store protocol on one SQLite file; each thread gets its own connection."""

    def __init__(self, path: str, make_directory: Callable[[], object] | None = None) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"
        self._file = SqliteFile(
            path,
            BASE_SCHEMA + counters.SCHEMA,
            SCHEMA_VERSION,
            busy_timeout_ms(),
            make_directory,
            before_schema=add_columns,
            upgrade=upgrade,
        )
        self._tx = self._file.transaction
        self._query = self._file.query

    def close(self) -> None:
        """Close this thread's connection."""
        self._file.close()

    # -- jobs -----------------------------------------------------------------------------
    def insert_jobs(
        self, jobs: Sequence[Job], dead_dependency: Callable[[str], dict[str, Any]] | None = None
    ) -> None:
        """All or nothing, in one transaction; a job's dependencies are counted (and a dead
        one makes it dead) inside that transaction."""
        placeholders = ", ".join("?" for _ in JOB_COLUMNS)
        sql = f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({placeholders})"
        row_of = operator.attrgetter(*JOB_COLUMNS)
        after_at = JOB_COLUMNS.index("after")
        rows = []
        for job in jobs:
            row = row_of(job)
            if job.after:
                row = (*row[:after_at], json.dumps(job.after), *row[after_at + 1 :])
            else:
                row = (*row[:after_at], None, *row[after_at + 1 :])
            rows.append(row)
        try:
            with self._tx() as conn:
                conn.executemany(sql, rows)
                waiting = [job for job in jobs if job.after]
                if waiting:
                    self._link(conn, waiting, dead_dependency or _no_cascade)
        except sqlite3.IntegrityError:
            taken = self._first_taken([job.id for job in jobs])
            raise DuplicateJob(taken) from None

    def _link(
        self,
        conn: sqlite3.Connection,
        jobs: Sequence[Job],
        dead_dependency: Callable[[str], dict[str, Any]],
    ) -> None:
        """Record who waits on whom, and set each new job's `waiting` from its dependencies'
        states now (earlier jobs of the batch are already inserted, so they count too)."""
        conn.executemany(
            "INSERT OR IGNORE INTO job_deps (dep_id, job_id) VALUES (?, ?)",
            [(dep, job.id) for job in jobs for dep in job.after],
        )
        for job in jobs:
            self._count_dependencies(conn, job.id, job.after, dead_dependency)

    def _count_dependencies(
        self,
        conn: sqlite3.Connection,
        job_id: str,
        after: Sequence[str],
        dead_dependency: Callable[[str], dict[str, Any]],
    ) -> bool:
        """Set `waiting` of a pending job to its unfinished dependencies; if one is dead
        (or gone), the job becomes dead as a cascade would make it. False when it did."""
        states = _states(conn, after)
        missing = [dep for dep in after if dep not in states]
        if missing:
            raise DependencyNotFound(job_id, missing[0])
        dead = [dep for dep in after if states[dep] == "dead"]
        if dead:
            _update(conn, job_id, dead_dependency(dead[0]))
            return False
        unfinished = sum(1 for dep in after if states[dep] != "completed")
        conn.execute("UPDATE jobs SET waiting = ? WHERE id = ?", (unfinished, job_id))
        return True

    def _first_taken(self, ids: list[str]) -> str:
        seen: set[str] = set()
        for job_id in ids:
            if job_id in seen or self.get_job(job_id) is not None:
                return job_id
            seen.add(job_id)
        return ids[0]

    def get_job(self, job_id: str) -> Job | None:
        """The job with that id, or None; ForeignRecord for a row of another shape."""
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return Job.from_record(dict(rows[0])) if rows else None

    def _jobs(self, rows: Sequence[sqlite3.Row]) -> list[Job]:
        """The jobs among `rows`; rows of another shape are skipped, with a warning."""
        return parse_records((dict(r) for r in rows), Job.from_record, f"{self.path}: jobs")

    def list_jobs(
        self,
        state: str | None,
        limit: int,
        now: float | None = None,
        queue: str | None = None,
        offset: int = 0,
        text: str | None = None,
    ) -> list[Job]:
        """Pending/failed: those ready at `now` in claim order, then those waiting (for their
        run_at or a dependency) by run_at. Other states newest update first. `offset` rows
        of that order are skipped; `text` keeps the jobs whose id or command contains it
        (ASCII letters in any case)."""
        rows = self._list_rows(state, limit, now, queue, offset, _text_match(text), "*")
        return self._jobs(rows)

    def search_job_ids(
        self,
        state: str | None,
        text: str,
        scan: int,
        now: float | None = None,
        queue: str | None = None,
    ) -> tuple[list[str], bool]:
        """The first `scan` jobs of list_jobs' order read as ids, commands and the order's
        columns only, matched in Python (text_matches, as the MongoDB store does)."""
        # One row past the scan tells whether any job lies beyond it.
        rows = self._list_rows(state, scan + 1, now, queue, 0, ("", ()), SEARCH_COLUMNS)
        ids = [r["id"] for r in rows[:scan] if text_matches(text, r["id"], r["command"])]
        return ids, len(rows) <= scan

    def get_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        """The jobs with those ids that exist, in the order asked (bounded batches)."""
        found: dict[str, sqlite3.Row] = {}
        unique = list(dict.fromkeys(job_ids))
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            marks = ", ".join("?" for _ in chunk)
            for row in self._query(f"SELECT * FROM jobs WHERE id IN ({marks})", chunk):
                found[row["id"]] = row
        return self._jobs([found[i] for i in unique if i in found])

    def _list_rows(
        self,
        state: str | None,
        limit: int,
        now: float | None,
        queue: str | None,
        offset: int,
        text: tuple[str, tuple[str, ...]],
        columns: str,
    ) -> list[sqlite3.Row]:
        """list_jobs' rows, each with `columns` (which hold the order's columns)."""
        match, mp = text
        if state in ("pending", "failed"):
            now = time.time() if now is None else now
            return self._list_ready(state, limit, now, offset, _scope(queue, match, mp), columns)
        params: tuple[Any, ...]
        if state and queue is not None:
            sql = (
                f"SELECT {columns} FROM jobs INDEXED BY jobs_queue_state "
                f"{_where('queue = ?', 'state = ?', match)}"
                "ORDER BY updated_at DESC, seq DESC LIMIT ? OFFSET ?"
            )
            params = (queue, state, *mp, limit, offset)
        elif state:
            sql = (
                f"SELECT {columns} FROM jobs INDEXED BY jobs_state_updated "
                f"{_where('state = ?', match)}"
                "ORDER BY updated_at DESC, seq DESC LIMIT ? OFFSET ?"
            )
            params = (state, *mp, limit, offset)
        elif queue is not None:
            # Newest of each state of the queue (one index range each), then the newest of those.
            parts = [
                f"SELECT * FROM (SELECT {columns} FROM jobs INDEXED BY jobs_queue_state "
                f"{_where('queue = ?', 'state = ?', match)}"
                "ORDER BY updated_at DESC, seq DESC LIMIT ?)"
                for _ in STATES
            ]
            sql = f"{' UNION ALL '.join(parts)} ORDER BY updated_at DESC, seq DESC LIMIT ? OFFSET ?"
            params = tuple(v for s in STATES for v in (queue, s, *mp, limit + offset))
            params += (limit, offset)
        else:
            sql = (
                f"SELECT {columns} FROM jobs {_where(match)}"
                "ORDER BY updated_at DESC, seq DESC LIMIT ? OFFSET ?"
            )
            params = (*mp, limit, offset)
        return self._query(sql, params)

    def _list_ready(
        self, state: str, limit: int, now: float, offset: int, scope: _Scope, columns: str
    ) -> list[sqlite3.Row]:
        """Claimable jobs due by `now` in claim order; then, by run_at, claimable jobs due
        later merged with jobs blocked by a dependency (a failed job is never blocked)."""
        due = (
            f"FROM jobs INDEXED BY jobs_claim{scope.suffix} "
            f"{_where(CLAIMABLE, *scope.conditions, 'state = ?', 'run_at <= ?')}"
        )
        params = (*scope.params, state, now)
        ready = self._query(
            f"SELECT {columns} {due} ORDER BY {CLAIM_ORDER} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        left = limit - len(ready)
        if left <= 0:
            return ready
        # The page reaches past the ready jobs: skip what of the offset they did not fill.
        skip = 0
        if offset and not ready:
            counted = self._query(f"SELECT COUNT(*) AS n {due}", params)
            skip = max(offset - counted[0]["n"], 0)
        return [*ready, *self._list_waiting(state, now, scope, left, skip, columns)]

    def _list_waiting(
        self, state: str, now: float, scope: _Scope, limit: int, offset: int, columns: str
    ) -> list[sqlite3.Row]:
        """Claimable jobs due after `now`, merged (when `state` is pending) with the jobs
        blocked by a dependency, by run_at: `limit` of them after the first `offset`."""
        # Each part reads no more rows than the page can take from it.
        parts = [
            f"SELECT * FROM (SELECT {columns} FROM jobs INDEXED BY jobs_next{scope.suffix} "
            f"{_where(CLAIMABLE, *scope.conditions, 'state = ?', 'run_at > ?')}"
            f"ORDER BY {WAITING_ORDER} LIMIT ?)"
        ]
        params: tuple[Any, ...] = (*scope.params, state, now, limit + offset)
        if state == "pending":
            parts.append(
                f"SELECT * FROM (SELECT {columns} FROM jobs INDEXED BY jobs_blocked{scope.suffix} "
                f"{_where(BLOCKED, *scope.conditions)}ORDER BY {WAITING_ORDER} LIMIT ?)"
            )
            params += (*scope.params, limit + offset)
        return self._query(
            f"{' UNION ALL '.join(parts)} ORDER BY {WAITING_ORDER} LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )

    def count_by_state(self, queue: str | None = None) -> dict[str, int]:
        """Number of jobs per state (of one queue, when given), from the maintained counters."""
        return counters.count_by_state(self._query, queue)

    def count_by_queue(self) -> dict[str, dict[str, int]]:
        """Number of jobs per queue and state, from the maintained counters."""
        return counters.count_by_queue(self._query)

    def job_states(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The state of each of those jobs that exists, read in bounded batches."""
        states: dict[str, str] = {}
        unique = list(dict.fromkeys(job_ids))
        for start in range(0, len(unique), BATCH):
            chunk = unique[start : start + BATCH]
            marks = ", ".join("?" for _ in chunk)
            for row in self._query(f"SELECT id, state FROM jobs WHERE id IN ({marks})", chunk):
                states[row["id"]] = row["state"]
        return states

    def claim(
        self,
        worker_id: str,
        now: float,
        lease_token: str,
        queues: Sequence[str] = (),
        lease_expires_at: float | None = None,
    ) -> Job | None:
        """One UPDATE ... RETURNING under BEGIN IMMEDIATE: atomic against every process.
        With queues, each queue's index is walked to its first ready job (LIMIT 1 each) and
        the best of those few wins: no other queue's job and no blocked job is looked at."""
        pick, pick_params = _claim_pick(now, queues)
        sql = f"""
            UPDATE jobs SET state = 'processing', attempts = attempts + 1,
                locked_by = ?, locked_at = ?, lease_token = ?, lease_renewed_at = ?,
                lease_expires_at = ?, started_at = ?, updated_at = ?
            WHERE id = ({pick})
            RETURNING *"""
        params = (worker_id, now, lease_token, now, lease_expires_at, now, now, *pick_params)
        with self._tx() as conn:
            row = conn.execute(sql, params).fetchone()
        claimed = self._jobs([row]) if row else []
        return claimed[0] if claimed else None

    def finish(
        self,
        job_id: str,
        lease_token: str,
        changes: dict[str, Any],
        tally: tuple[str, str] | None = None,
    ) -> bool:
        """Fenced: applied only while the job is processing under that token; the worker's
        counter moves in the same transaction."""
        assignments = ", ".join(f"{_column(k)} = ?" for k in changes)
        sql = (
            f"UPDATE jobs SET {assignments} "
            "WHERE id = ? AND state = 'processing' AND lease_token = ?"
        )
        with self._tx() as conn:
            applied = conn.execute(sql, (*changes.values(), job_id, lease_token)).rowcount == 1
            if applied and tally is not None:
                self._count(conn, tally[0], tally[1], lease_token)
        return applied

    def finish_and_claim(
        self,
        end: Callable[[], T],
        worker_id: str,
        now: float,
        lease_token: str,
        queues: Sequence[str] = (),
        lease_expires_at: float | None = None,
    ) -> tuple[T, Job | None]:
        """`end()` (this store's own fenced writes that end an attempt: finish, settle) and
        then `claim(...)` in one BEGIN IMMEDIATE ... COMMIT: the write lock is taken once per
        job instead of twice, and the claim sees what `end` released (dependents it made
        ready). All or nothing: if either raises, neither is stored."""
        with self._tx():
            ended = end()
            job = self.claim(worker_id, now, lease_token, queues, lease_expires_at)
        return ended, job

    def count_job_end(self, worker_id: str, counter: str, lease_token: str) -> None:
        """Count one attempt's end in the worker's row, once per lease."""
        with self._tx() as conn:
            self._count(conn, worker_id, counter, lease_token)

    @staticmethod
    def _count(conn: sqlite3.Connection, worker_id: str, counter: str, lease_token: str) -> None:
        name = _column(counter, ("jobs_done", "jobs_failed"))
        conn.execute(
            f"UPDATE workers SET {name} = {name} + 1, counted_lease = ? "
            "WHERE id = ? AND counted_lease IS NOT ?",
            (lease_token, worker_id, lease_token),
        )

    # The same fenced update on every store (base.renew_lease, over update_if).
    renew_lease = renew_lease

    def stale_jobs(self, cutoff: float, now: float) -> list[Job]:
        """Processing jobs whose lease was not renewed since `cutoff` and whose deadline,
        if it has one, has passed."""
        rows = self._query(
            "SELECT * FROM jobs WHERE state = 'processing' AND lease_renewed_at < ? "
            "AND (lease_expires_at IS NULL OR lease_expires_at < ?)",
            (cutoff, now),
        )
        return self._jobs(rows)

    def jobs_locked_by(self, worker_id: str) -> list[Job]:
        """Processing jobs held by that worker."""
        rows = self._query(
            "SELECT * FROM jobs WHERE state = 'processing' AND locked_by = ?", (worker_id,)
        )
        return self._jobs(rows)

    def settle(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        dead_dependency: Callable[[str], dict[str, Any]],
        tally: tuple[str, str] | None = None,
        below: dict[str, float] | None = None,
    ) -> list[str] | None:
        """Conditional like update_if, for changes that make a job completed or dead; in the
        same transaction its dependents count it done, or (dead) become dead in turn, and
        the worker's counter moves (`tally`, once per lease). Returns the ids of dependents
        made dead, or None when not applied."""
        with self._tx() as conn:
            if not _update(conn, job_id, changes, expected, below):
                return None
            if tally is not None and expected.get("lease_token"):
                self._count(conn, tally[0], tally[1], expected["lease_token"])
            return _resolve(conn, job_id, changes["state"], dead_dependency)

    def requeue(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        dead_dependency: Callable[[str], dict[str, Any]],
    ) -> bool:
        """Conditional like update_if, for changes that make a job pending again; its
        `waiting` is recounted in the same transaction (a dependency still dead sends it
        back to dead at once). Returns whether the change was applied."""
        with self._tx() as conn:
            rows = conn.execute(
                f"SELECT after FROM jobs WHERE id = ?{_conditions(expected)}",
                (job_id, *expected.values()),
            ).fetchall()
            if not rows:
                return False
            _update(conn, job_id, changes)
            after = json.loads(rows[0]["after"] or "[]")
            if after:
                try:
                    self._count_dependencies(conn, job_id, after, dead_dependency)
                except DependencyNotFound:  # purged meanwhile: it can no longer block
                    present = list(_states(conn, after))
                    self._count_dependencies(conn, job_id, present, dead_dependency)
        return True

    def progress(self, job_id: str, lease_token: str, changes: dict[str, Any]) -> bool | None:
        """While a job runs: apply `changes` (may be empty) under the lease, and say whether
        a cancel was asked for. None when the lease is no longer ours."""
        fence = "WHERE id = ? AND state = 'processing' AND lease_token = ?"
        if changes:
            assignments = ", ".join(f"{_column(k)} = ?" for k in changes)
            with self._tx() as conn:
                row = conn.execute(
                    f"UPDATE jobs SET {assignments} {fence} RETURNING cancel_requested",
                    (*changes.values(), job_id, lease_token),
                ).fetchone()
        else:
            rows = self._query(f"SELECT cancel_requested FROM jobs {fence}", (job_id, lease_token))
            row = rows[0] if rows else None
        return None if row is None else bool(row["cancel_requested"])

    def resolve_open_dependents(
        self, dead_dependency: Callable[[str], dict[str, Any]]
    ) -> list[str]:
        """Nothing to finish here: settle resolves dependents in its own transaction."""
        return []

    def update_if(
        self,
        job_id: str,
        expected: dict[str, Any],
        changes: dict[str, Any],
        below: dict[str, float] | None = None,
    ) -> bool:
        """Conditional: applied only while every expected field still has its value and
        every `below` field is null or under its bound."""
        return bool(self._update_where([job_id], expected, changes, below))

    def update_many_if(
        self, job_ids: Sequence[str], expected: dict[str, Any], changes: dict[str, Any]
    ) -> list[str]:
        """update_if for a batch of ids, in one transaction."""
        return self._update_where(job_ids, expected, changes) if job_ids else []

    def _update_where(
        self,
        job_ids: Sequence[str],
        expected: dict[str, Any],
        changes: dict[str, Any],
        below: dict[str, float] | None = None,
    ) -> list[str]:
        below = below or {}
        assignments = ", ".join(f"{_column(k)} = ?" for k in changes)
        marks = ", ".join("?" for _ in job_ids)
        conditions = _conditions(expected, below)
        sql = f"UPDATE jobs SET {assignments} WHERE id IN ({marks}){conditions} RETURNING id"
        params = (*changes.values(), *job_ids, *expected.values(), *below.values())
        with self._tx() as conn:
            return [r["id"] for r in conn.execute(sql, params).fetchall()]

    def job_ids(
        self,
        state: str,
        queue: str | None = None,
        limit: int | None = None,
        updated_until: float | None = None,
    ) -> list[str]:
        """Ids of the jobs in one state (and queue): every one in enqueue order; or, with
        `limit`, up to that many (updated at or before `updated_until`, when given), least
        recently updated first."""
        if limit is None and updated_until is None:
            if queue is None:
                rows = self._query("SELECT id FROM jobs WHERE state = ? ORDER BY seq", (state,))
            else:
                rows = self._query(
                    "SELECT id FROM jobs INDEXED BY jobs_queue_state "
                    "WHERE queue = ? AND state = ? ORDER BY seq",
                    (queue, state),
                )
            return [r["id"] for r in rows]
        where = "state = ?"
        params: tuple[Any, ...] = (state,)
        if queue is not None:
            where += " AND queue = ?"
            params += (queue,)
        if updated_until is not None:
            where += " AND updated_at <= ?"
            params += (updated_until,)
        rows = self._query(
            "SELECT id FROM jobs INDEXED BY jobs_state_updated "
            f"WHERE {where} ORDER BY updated_at, seq LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [r["id"] for r in rows]

    def purge_batch(
        self,
        state: str,
        cutoff: float,
        queue: str | None,
        limit: int,
        dead_dependency: Callable[[str], dict[str, Any]],
    ) -> int:
        """One DELETE of the oldest matching rows, found through the (queue,) state,
        updated_at index, in a short transaction; their rows in job_deps go with them
        (found by primary key: as a dependency by dep_id, as a dependent from `after`).
        A final state was passed on to dependents when it was stored (settle is one
        transaction), so `dead_dependency` is never needed here."""
        check_purgeable(state)
        sql, params = _purge_pick(state, cutoff, queue)
        # A read first: with nothing to purge, no write lock is taken (a retention sweep
        # that finds nothing costs workers nothing) and a store not created yet stays so.
        if not self._query(f"{sql} LIMIT 1", params):
            return 0
        with self._tx() as conn:
            rows = conn.execute(
                f"DELETE FROM jobs WHERE rowid IN ({sql} LIMIT ?) RETURNING id, after",
                (*params, limit),
            ).fetchall()
            conn.executemany("DELETE FROM job_deps WHERE dep_id = ?", [(r[0],) for r in rows])
            pairs = [(dep, r[0]) for r in rows if r[1] for dep in _json_list(r[1])]
            conn.executemany("DELETE FROM job_deps WHERE dep_id = ? AND job_id = ?", pairs)
        return len(rows)

    def next_run_at(self, queues: Sequence[str] = ()) -> float | None:
        """Earliest run_at of a pending or failed job not blocked by a dependency (of
        those queues, when given)."""
        if not queues:
            sql = f"SELECT MIN(run_at) AS t FROM jobs INDEXED BY jobs_next WHERE {CLAIMABLE}"
            rows = self._query(sql)
            return rows[0]["t"] if rows else None
        sql = (
            f"SELECT MIN(run_at) AS t FROM jobs INDEXED BY jobs_next_queue "
            f"WHERE {CLAIMABLE} AND queue = ?"
        )
        found = [r["t"] for q in queues for r in self._query(sql, (q,)) if r["t"] is not None]
        return min(found) if found else None

    def poll(self, queues: Sequence[str] = ()) -> Poll:
        """One statement: the control version, the next due job (the minimum of each
        queue's jobs_next_queue range, or of jobs_next) and the next due schedule."""
        if not queues:
            due = f"SELECT MIN(run_at) FROM jobs INDEXED BY jobs_next WHERE {CLAIMABLE}"
        else:
            due = " UNION ALL ".join(
                f"SELECT MIN(run_at) AS t FROM jobs INDEXED BY jobs_next_queue "
                f"WHERE {CLAIMABLE} AND queue = ?"
                for _ in queues
            )
            due = f"SELECT MIN(t) FROM ({due})"
        row = self._query(
            f"SELECT (SELECT value FROM config WHERE key = ?) AS v, ({due}) AS t, "
            "(SELECT MIN(next_run_at) FROM schedules INDEXED BY schedules_due "
            "WHERE paused = 0) AS s",
            (CONTROL_KEY, *queues),
        )[0]
        return Poll(_version(row["v"]), row["t"], row["s"])

    def ensure_control(self) -> None:
        """Insert the control version's row (0) unless it is there."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO config (key, value) VALUES (?, '0') ON CONFLICT (key) DO NOTHING",
                (CONTROL_KEY,),
            )

    def bump_control(self) -> None:
        """Add 1 to the control version (a row of the config table)."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO config (key, value) VALUES (?, '1') ON CONFLICT (key) "
                "DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
                (CONTROL_KEY,),
            )

    def duration_stats(
        self, quantiles: Sequence[float], queue: str | None = None
    ) -> tuple[int, float | None, list[float | None]]:
        """Count, mean and nearest-rank quantiles of completed jobs' durations, from the
        duration buckets (sqlite_counters says how exact)."""
        return counters.duration_stats(self._query, quantiles, queue)

    def retried_totals(self, queue: str | None = None) -> tuple[int, int]:
        """Jobs with more than one attempt, and their attempts summed (maintained counters)."""
        return counters.retried_totals(self._query, queue)

    def completed_since(self, since: float, queue: str | None = None) -> int:
        """Completed jobs that finished at or after `since`."""
        if queue is None:
            sql = (
                "SELECT COUNT(*) AS c FROM jobs INDEXED BY jobs_done_finished "
                "WHERE state = 'completed' AND finished_at >= ?"
            )
            params: tuple[Any, ...] = (since,)
        else:
            # updated_at >= finished_at always (the last change is at or after the end), so
            # the queue's range of recent updates holds every recent finish.
            sql = (
                "SELECT COUNT(*) AS c FROM jobs INDEXED BY jobs_queue_state WHERE queue = ? "
                "AND state = 'completed' AND updated_at >= ? AND finished_at >= ?"
            )
            params = (queue, since, since)
        rows = self._query(sql, params)
        return int(rows[0]["c"])

    def finished_by_minute(self, state: str, start: float, minutes: int) -> list[int]:
        """One statement of a range count per minute over the index (completed: the partial
        finished_at index; dead: the state, updated_at index). Counting ranges walks the
        index alone, four times faster than one GROUP BY of a computed minute, which sorts."""
        if state == "completed":
            source = "jobs INDEXED BY jobs_done_finished WHERE state = 'completed' AND"
            column = "finished_at"
        elif state == "dead":
            source = "jobs INDEXED BY jobs_state_updated WHERE state = 'dead' AND"
            column = "updated_at"
        else:
            raise ValueError(f"only completed and dead jobs have finished, not {state}")
        if minutes < 1:
            return []
        count = f"(SELECT COUNT(*) FROM {source} {column} >= ? AND {column} < ?)"
        bounds = [start + 60 * n for n in range(minutes + 1)]
        params = tuple(v for n in range(minutes) for v in (bounds[n], bounds[n + 1]))
        row = self._query(f"SELECT {', '.join([count] * minutes)}", params)[0]
        return [int(row[n]) for n in range(minutes)]

    def finished_after(
        self, state: str, updated_at: float, seq: int, limit: int
    ) -> list[FinishedRow]:
        """One range of jobs_state_updated in its own order, reading the index and, for the
        id and duration, the row (never the command or the output's overflow pages)."""
        rows = self._query(
            "SELECT id, updated_at, seq, duration FROM jobs INDEXED BY jobs_state_updated "
            "WHERE state = ? AND (updated_at, seq) > (?, ?) ORDER BY updated_at, seq LIMIT ?",
            (state, updated_at, seq, limit),
        )
        return [
            FinishedRow(r["id"], float(r["updated_at"]), int(r["seq"] or 0), r["duration"])
            for r in rows
            if isinstance(r["id"], str) and isinstance(r["updated_at"], (int, float))
        ]

    # -- config ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Stored values, JSON-decoded (markers and the control version left out)."""
        rows = self._query("SELECT * FROM config WHERE key != ?", (CONTROL_KEY,))
        return {
            r["key"]: json.loads(r["value"]) for r in rows if not r["key"].startswith(MARKER_PREFIX)
        }

    def set_config(self, key: str, value: Any) -> None:
        """Upsert one value."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO config (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def unset_config(self, key: str) -> None:
        """Delete one value."""
        with self._tx() as conn:
            conn.execute("DELETE FROM config WHERE key = ?", (key,))

    def take_turn(self, name: str, now: float, every: float) -> bool:
        """One upsert whose update is conditioned on the marker's age: a compare-and-set
        (the write lock makes two callers meet one after the other). A read first, so the
        usual answer (not yet) takes no write lock."""
        rows = self._query("SELECT value FROM config WHERE key = ?", (MARKER_PREFIX + name,))
        if rows and _number(rows[0]["value"]) > now - every:
            return False
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE "
                "SET value = excluded.value WHERE CAST(config.value AS REAL) <= ?",
                (MARKER_PREFIX + name, json.dumps(now), now - every),
            )
        return cursor.rowcount == 1

    # -- workers --------------------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        """Insert a worker row."""
        marks = ", ".join("?" for _ in WORKER_COLUMNS)
        values = tuple(
            json.dumps(getattr(worker, c)) if c in JSON_COLUMNS else getattr(worker, c)
            for c in WORKER_COLUMNS
        )
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO workers ({', '.join(WORKER_COLUMNS)}) VALUES ({marks})", values
            )

    def update_worker(
        self, worker_id: str, changes: dict[str, Any], increments: dict[str, int] | None = None
    ) -> None:
        """Set fields and bump counters in one statement."""
        parts = [f"{_column(k, WORKER_COLUMNS)} = ?" for k in changes]
        values = list(changes.values())
        for k, v in (increments or {}).items():
            parts.append(f"{_column(k, WORKER_COLUMNS)} = {k} + ?")
            values.append(v)
        if not parts:
            return
        with self._tx() as conn:
            conn.execute(
                f"UPDATE workers SET {', '.join(parts)} WHERE id = ?", (*values, worker_id)
            )

    def get_worker(self, worker_id: str) -> WorkerInfo | None:
        """One worker row (None for a row of another shape, after a warning)."""
        rows = self._query("SELECT * FROM workers WHERE id = ?", (worker_id,))
        found = self._workers(rows)
        return found[0] if found else None

    def list_workers(self, statuses: Sequence[str] | None = None) -> list[WorkerInfo]:
        """Worker rows (of those statuses, when given), newest first."""
        where, params = "", tuple(statuses or ())
        if statuses is not None:
            where = f"WHERE status IN ({', '.join('?' for _ in statuses)})"
        rows = self._query(f"SELECT * FROM workers {where} ORDER BY started_at DESC, id", params)
        return self._workers(rows)

    def _workers(self, rows: Sequence[sqlite3.Row]) -> list[WorkerInfo]:
        """The workers among `rows`; rows of another shape are skipped, with a warning."""
        where = f"{self.path}: workers"
        return parse_records((dict(r) for r in rows), WorkerInfo.from_record, where)

    def request_stop(self, worker_ids: Sequence[str]) -> None:
        """Set the stop flag."""
        with self._tx() as conn:
            conn.executemany(
                "UPDATE workers SET stop_requested = 1 WHERE id = ?", [(w,) for w in worker_ids]
            )

    def delete_workers(self, before: float) -> int:
        """Forget long-gone workers."""
        with self._tx() as conn:
            return conn.execute(
                "DELETE FROM workers WHERE status IN ('stopped', 'lost') AND last_heartbeat < ?",
                (before,),
            ).rowcount

    def mark_workers_lost(self, cutoff: float, now: float) -> list[str]:
        """Silent live workers whose own deadline has passed become lost."""
        with self._tx() as conn:
            rows = conn.execute(
                "UPDATE workers SET status = 'lost', current_job = NULL "
                "WHERE status IN ('idle', 'busy', 'stopping') AND last_heartbeat < ? "
                "AND (expires_at IS NULL OR expires_at < ?) RETURNING id",
                (cutoff, now),
            ).fetchall()
        return [r["id"] for r in rows]

    # -- schedules (SPEC §7.5) ----------------------------------------------------------
    def insert_schedule(self, schedule: Schedule) -> None:
        """Insert one schedule; a taken name raises DuplicateSchedule."""
        record = _schedule_row(schedule.to_record())
        marks = ", ".join("?" for _ in record)
        try:
            with self._tx() as conn:
                conn.execute(
                    f"INSERT INTO schedules ({', '.join(record)}) VALUES ({marks})",
                    tuple(record.values()),
                )
        except sqlite3.IntegrityError:
            raise DuplicateSchedule(schedule.name) from None

    def get_schedule(self, name: str) -> Schedule | None:
        """One schedule, or None."""
        rows = self._query("SELECT * FROM schedules WHERE name = ?", (name,))
        return _schedule(rows[0]) if rows else None

    def list_schedules(self) -> list[Schedule]:
        """Every schedule, by name."""
        return [_schedule(r) for r in self._query("SELECT * FROM schedules ORDER BY name")]

    def delete_schedule(self, name: str) -> bool:
        """Remove one schedule."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount == 1

    def update_schedule(
        self, name: str, changes: dict[str, Any], expected: dict[str, Any] | None = None
    ) -> bool:
        """One UPDATE whose WHERE holds the expected values: a compare-and-set."""
        new = _schedule_row(changes)
        old = _schedule_row(expected or {})
        sets = ", ".join(f"{_column(k, SCHEDULE_COLUMNS)} = ?" for k in new)
        checks = "".join(f" AND {_column(k, SCHEDULE_COLUMNS)} IS ?" for k in old)
        with self._tx() as conn:
            cursor = conn.execute(
                f"UPDATE schedules SET {sets} WHERE name = ?{checks}",
                (*new.values(), name, *old.values()),
            )
        return cursor.rowcount == 1

    def due_schedules(self, now: float, limit: int) -> list[Schedule]:
        """Active schedules due by `now`, through the partial due index."""
        rows = self._query(
            "SELECT * FROM schedules INDEXED BY schedules_due "
            "WHERE paused = 0 AND next_run_at <= ? ORDER BY next_run_at LIMIT ?",
            (now, limit),
        )
        return [_schedule(r) for r in rows]


def upgrade(conn: sqlite3.Connection) -> None:
    """Bring a new file, or one of an older version, to SCHEMA_VERSION: the tables and
    indexes (all IF NOT EXISTS), then each later step, then the version."""
    conn.executescript(BASE_SCHEMA)
    counters.add_counters(conn)  # 6
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _version(value: Any) -> int:
    """The stored control version as a number (0: none yet, or not a number)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def add_columns(conn: sqlite3.Connection) -> None:
    """Give the tables of a file written by an earlier release the columns added since
    (ADDED_COLUMNS), before the schema's indexes on them are created. Under the write lock,
    so two processes upgrading at once add each column once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in ADDED_COLUMNS.items():
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if not have:
                continue  # a new file: the schema creates the table whole
            for name, decl in columns:
                if name not in have:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {decl}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _claim_pick(now: float, queues: Sequence[str]) -> tuple[str, tuple[Any, ...]]:
    """The SELECT that names the next job to claim, and its parameters."""
    if not queues:
        sql = (
            f"SELECT id FROM jobs INDEXED BY jobs_claim WHERE {CLAIMABLE} AND run_at <= ? "
            f"ORDER BY {CLAIM_ORDER} LIMIT 1"
        )
        return sql, (now,)
    if len(queues) == 1:
        sql = (
            f"SELECT id FROM jobs INDEXED BY jobs_claim_queue WHERE {CLAIMABLE} AND queue = ? "
            f"AND run_at <= ? ORDER BY {CLAIM_ORDER} LIMIT 1"
        )
        return sql, (queues[0], now)
    # One index walk per queue, each stopped at its first ready job; then the best of those.
    heads = " UNION ALL ".join(
        f"SELECT * FROM (SELECT {CLAIM_COLUMNS} FROM jobs INDEXED BY jobs_claim_queue "
        f"WHERE {CLAIMABLE} AND queue = ? AND run_at <= ? ORDER BY {CLAIM_ORDER} LIMIT 1)"
        for _ in queues
    )
    sql = f"SELECT id FROM ({heads}) ORDER BY {CLAIM_ORDER} LIMIT 1"
    return sql, tuple(value for q in queues for value in (q, now))


def _purge_pick(state: str, cutoff: float, queue: str | None) -> tuple[str, tuple[Any, ...]]:
    """The SELECT of the rowids purge_batch deletes, oldest first (a LIMIT is added by the
    caller), and its parameters. Both states walk
    the (queue,) state, updated_at index from its oldest end: a dead job's age is its
    updated_at, and a completed job's finished_at is never later than its updated_at (its
    end is its last change), so every completed job finished by `cutoff` lies in the range
    updated_at <= cutoff too, and the range is walked only as far as the LIMIT."""
    age = "" if state == "dead" else " AND (finished_at IS NULL OR finished_at <= ?)"
    extra: tuple[Any, ...] = () if state == "dead" else (cutoff,)
    if queue is None:
        sql = (
            "SELECT rowid FROM jobs INDEXED BY jobs_state_updated "
            f"WHERE state = ? AND updated_at <= ?{age} ORDER BY updated_at, seq"
        )
        return sql, (state, cutoff, *extra)
    sql = (
        "SELECT rowid FROM jobs INDEXED BY jobs_queue_state "
        f"WHERE queue = ? AND state = ? AND updated_at <= ?{age} ORDER BY updated_at, seq"
    )
    return sql, (queue, state, cutoff, *extra)


def _number(text: str) -> float:
    """A marker's stored JSON number (anything else reads as 0: long ago)."""
    try:
        value = json.loads(text)
    except ValueError:
        return 0.0
    return float(value) if isinstance(value, (int, float)) else 0.0


def _json_list(text: str) -> list[str]:
    """A JSON array of ids as stored in `after`; anything else reads as none."""
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _states(conn: sqlite3.Connection, job_ids: Sequence[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    unique = list(dict.fromkeys(job_ids))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        marks = ", ".join("?" for _ in chunk)
        for row in conn.execute(f"SELECT id, state FROM jobs WHERE id IN ({marks})", chunk):
            states[row[0]] = row[1]
    return states


def _conditions(expected: dict[str, Any], below: dict[str, float] | None = None) -> str:
    """The WHERE terms after the id: each `expected` field has its value (None: null), each
    `below` field is null or under its bound; parameters in that order."""
    terms = "".join(f" AND {_column(k)} IS ?" for k in expected)
    return terms + "".join(f" AND ({_column(k)} IS NULL OR {_column(k)} < ?)" for k in below or {})


def _update(
    conn: sqlite3.Connection,
    job_id: str,
    changes: dict[str, Any],
    expected: dict[str, Any] | None = None,
    below: dict[str, float] | None = None,
) -> bool:
    expected = expected or {}
    below = below or {}
    assignments = ", ".join(f"{_column(k)} = ?" for k in changes)
    cursor = conn.execute(
        f"UPDATE jobs SET {assignments} WHERE id = ?{_conditions(expected, below)}",
        (*changes.values(), job_id, *expected.values(), *below.values()),
    )
    return cursor.rowcount == 1


def _resolve(
    conn: sqlite3.Connection,
    job_id: str,
    state: str,
    dead_dependency: Callable[[str], dict[str, Any]],
) -> list[str]:
    """A job reached a final state: its dependents count it done (completed), or become dead
    with every job that waits on them, however deep (dead). Returns the jobs made dead."""
    if state == "completed":
        conn.execute(
            "UPDATE jobs SET waiting = waiting - 1 WHERE waiting > 0 AND id IN "
            "(SELECT job_id FROM job_deps WHERE dep_id = ?)",
            (job_id,),
        )
        return []
    if state != "dead":
        return []
    killed: list[str] = []
    frontier = [job_id]
    while frontier:
        dep = frontier.pop()
        rows = conn.execute(
            "SELECT j.id FROM job_deps d JOIN jobs j ON j.id = d.job_id "
            "WHERE d.dep_id = ? AND j.state = 'pending' AND j.waiting > 0",
            (dep,),
        ).fetchall()
        changes = dead_dependency(dep)
        for (dependent,) in rows:
            if _update(conn, dependent, changes, {"state": "pending"}):
                killed.append(dependent)
                frontier.append(dependent)
    return killed


def _no_cascade(dep: str) -> dict[str, Any]:
    raise ValueError(f"dependency {dep} is dead, and no change was given for its dependents")


def _column(name: str, allowed: Sequence[str] = JOB_COLUMNS) -> str:
    # Column names are interpolated into SQL, so only known ones may pass.
    if name not in allowed:
        raise ValueError(f"unknown column {name!r}")
    return name


def _schedule_row(record: dict[str, Any]) -> dict[str, Any]:
    """Schedule fields as SQLite columns: options as JSON text, paused as 0 or 1."""
    row = dict(record)
    if "options" in row:
        row["options"] = json.dumps(row["options"], sort_keys=True)
    if "paused" in row:
        row["paused"] = int(bool(row["paused"]))
    return row


def _schedule(row: sqlite3.Row) -> Schedule:
    record = dict(row)
    record["options"] = json.loads(record["options"])
    return Schedule.from_record(record)
