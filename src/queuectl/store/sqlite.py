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
from typing import Any, Callable, Sequence

from ..errors import DuplicateJob, DuplicateSchedule, ForeignRecord
from ..models import JOB_COLUMNS, SCHEDULE_COLUMNS, WORKER_COLUMNS, Job, Schedule, WorkerInfo
from .base import warn_foreign
from .sqlite_file import SqliteFile

BUSY_TIMEOUT_MS = 10_000
# Lowered by the reliability tests to reach the store-outage path without a 10 s wait.
BUSY_TIMEOUT_ENV = "QUEUECTL_SQLITE_BUSY_TIMEOUT_MS"
SCHEMA_VERSION = 4  # raised whenever SCHEMA gains a table, a column or an index
# Columns added since version 3 (the schedules release), added to older files by _upgrade:
# (table, column, type).
ADDED_COLUMNS = (
    ("jobs", "lease_expires_at", "REAL"),
    ("workers", "expires_at", "REAL"),
    ("workers", "counted_lease", "TEXT"),
)

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
    lease_expires_at REAL
);
-- Queries name their index (INDEXED BY): with no ANALYZE statistics SQLite would otherwise
-- pick a state-prefixed index and sort every ready row. The claim walks jobs_ready in claim
-- order and stops at the first row whose run_at has come; its WHERE repeats the index's
-- condition word for word, which is what lets SQLite use a partial index.
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (run_at) WHERE state IN ('pending', 'failed');
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
    counted_lease TEXT
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

READY = "state IN ('pending', 'failed')"
CLAIM_ORDER = "priority DESC, run_at, seq"
# Waiting jobs become ready in run_at order; among equal run_at, claim order decides.
WAITING_ORDER = "run_at, priority DESC, seq"


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
            SCHEMA + SCHEDULES_SCHEMA,
            SCHEMA_VERSION,
            busy_timeout_ms(),
            make_directory,
            upgrade=_upgrade,
        )
        self._tx = self._file.transaction
        self._query = self._file.query

    def close(self) -> None:
        """Close this thread's connection."""
        self._file.close()

    # -- jobs -----------------------------------------------------------------------------
    def insert_jobs(self, jobs: Sequence[Job]) -> None:
        """All or nothing, in one transaction."""
        placeholders = ", ".join("?" for _ in JOB_COLUMNS)
        sql = f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) VALUES ({placeholders})"
        row_of = operator.attrgetter(*JOB_COLUMNS)
        rows = [row_of(job) for job in jobs]
        try:
            with self._tx() as conn:
                conn.executemany(sql, rows)
        except sqlite3.IntegrityError:
            taken = self._first_taken([job.id for job in jobs])
            raise DuplicateJob(taken) from None

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
        jobs, skipped = [], []
        for row in rows:
            try:
                jobs.append(Job.from_record(dict(row)))
            except ForeignRecord as exc:
                skipped.append((exc.record_id, exc.problem))
        if skipped:
            warn_foreign(f"{self.path}: jobs", skipped)
        return jobs

    def list_jobs(self, state: str | None, limit: int, now: float | None = None) -> list[Job]:
        """Pending/failed: those ready at `now` in claim order, then those waiting by run_at.
        Other states newest update first."""
        if state in ("pending", "failed"):
            now = time.time() if now is None else now
            ready = self._query(
                f"SELECT * FROM jobs INDEXED BY jobs_ready WHERE {READY} AND state = ? "
                f"AND run_at <= ? ORDER BY {CLAIM_ORDER} LIMIT ?",
                (state, now, limit),
            )
            waiting = self._query(
                f"SELECT * FROM jobs INDEXED BY jobs_waiting WHERE {READY} AND state = ? "
                f"AND run_at > ? ORDER BY {WAITING_ORDER} LIMIT ?",
                (state, now, limit - len(ready)),
            )
            return self._jobs([*ready, *waiting])
        if state:
            sql = (
                "SELECT * FROM jobs INDEXED BY jobs_state_updated WHERE state = ? "
                "ORDER BY updated_at DESC, seq DESC LIMIT ?"
            )
            params: tuple[Any, ...] = (state, limit)
        else:
            sql = "SELECT * FROM jobs ORDER BY updated_at DESC, seq DESC LIMIT ?"
            params = (limit,)
        return self._jobs(self._query(sql, params))

    def count_by_state(self) -> dict[str, int]:
        """Number of jobs per state."""
        rows = self._query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    def claim(
        self, worker_id: str, now: float, lease_token: str, lease_expires_at: float | None = None
    ) -> Job | None:
        """One UPDATE ... RETURNING under BEGIN IMMEDIATE: atomic against every process."""
        sql = f"""
            UPDATE jobs SET state = 'processing', attempts = attempts + 1,
                locked_by = ?, locked_at = ?, lease_token = ?, lease_renewed_at = ?,
                lease_expires_at = ?, started_at = ?, updated_at = ?
            WHERE id = (SELECT id FROM jobs INDEXED BY jobs_ready WHERE {READY} AND run_at <= ?
                        ORDER BY {CLAIM_ORDER} LIMIT 1)
            RETURNING *"""
        params = (worker_id, now, lease_token, now, lease_expires_at, now, now, now)
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

    def renew_lease(
        self, job_id: str, lease_token: str, now: float, lease_expires_at: float | None = None
    ) -> bool:
        """Extend the lease if it is still ours."""
        changes: dict[str, Any] = {"lease_renewed_at": now}
        if lease_expires_at is not None:
            changes["lease_expires_at"] = lease_expires_at
        return self.update_if(job_id, {"state": "processing", "lease_token": lease_token}, changes)

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
        conditions = "".join(f" AND {_column(k)} IS ?" for k in expected)
        conditions += "".join(f" AND ({_column(k)} IS NULL OR {k} < ?)" for k in below)
        sql = f"UPDATE jobs SET {assignments} WHERE id IN ({marks}){conditions} RETURNING id"
        params = (*changes.values(), *job_ids, *expected.values(), *below.values())
        with self._tx() as conn:
            return [r["id"] for r in conn.execute(sql, params).fetchall()]

    def job_ids(self, state: str, limit: int, updated_until: float | None = None) -> list[str]:
        """Ids of jobs in one state, least recently updated first."""
        until = "" if updated_until is None else " AND updated_at <= ?"
        params: tuple[Any, ...] = (state,) + (() if updated_until is None else (updated_until,))
        rows = self._query(
            "SELECT id FROM jobs INDEXED BY jobs_state_updated "
            f"WHERE state = ?{until} ORDER BY updated_at, seq LIMIT ?",
            (*params, limit),
        )
        return [r["id"] for r in rows]

    def next_run_at(self) -> float | None:
        """Earliest run_at of a ready-or-waiting job."""
        rows = self._query(
            f"SELECT MIN(run_at) AS t FROM jobs INDEXED BY jobs_waiting WHERE {READY}"
        )
        return rows[0]["t"] if rows else None

    def duration_summary(self) -> tuple[int, float | None]:
        """Count and mean of completed jobs' durations, computed by SQLite."""
        agg = self._query(
            "SELECT COUNT(duration) AS n, AVG(duration) AS mean FROM jobs "
            "INDEXED BY jobs_done_duration WHERE state = 'completed'"
        )[0]
        return int(agg["n"]), agg["mean"]

    def duration_at(self, rank: int) -> float | None:
        """One duration by rank, read through the index (never by loading jobs)."""
        rows = self._query(
            "SELECT duration FROM jobs INDEXED BY jobs_done_duration "
            "WHERE state = 'completed' AND duration IS NOT NULL "
            "ORDER BY duration LIMIT 1 OFFSET ?",
            (rank,),
        )
        return rows[0]["duration"] if rows else None

    def retried_totals(self) -> tuple[int, int]:
        """Jobs with more than one attempt, and their attempts summed."""
        row = self._query(
            "SELECT COUNT(*) AS n, COALESCE(SUM(attempts), 0) AS a FROM jobs "
            "INDEXED BY jobs_retried WHERE attempts > 1"
        )[0]
        return int(row["n"]), int(row["a"])

    def completed_since(self, since: float) -> int:
        """Completed jobs that finished at or after `since`."""
        rows = self._query(
            "SELECT COUNT(*) AS c FROM jobs INDEXED BY jobs_done_finished "
            "WHERE state = 'completed' AND finished_at >= ?",
            (since,),
        )
        return int(rows[0]["c"])

    # -- config ---------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Stored values, JSON-decoded."""
        return {r["key"]: json.loads(r["value"]) for r in self._query("SELECT * FROM config")}

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

    # -- workers --------------------------------------------------------------------------
    def register_worker(self, worker: WorkerInfo) -> None:
        """Insert a worker row."""
        marks = ", ".join("?" for _ in WORKER_COLUMNS)
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO workers ({', '.join(WORKER_COLUMNS)}) VALUES ({marks})",
                tuple(getattr(worker, c) for c in WORKER_COLUMNS),
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
        workers, skipped = [], []
        for row in rows:
            try:
                workers.append(WorkerInfo.from_record(dict(row)))
            except ForeignRecord as exc:
                skipped.append((exc.record_id, exc.problem))
        if skipped:
            warn_foreign(f"{self.path}: workers", skipped)
        return workers

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


def _upgrade(conn: sqlite3.Connection) -> None:
    """Bring a file of an older schema version (or a new file) to SCHEMA_VERSION. Added
    columns are nullable, so workers of the previous release keep working on the file."""
    conn.executescript(SCHEMA + SCHEDULES_SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    try:
        for table, column, kind in ADDED_COLUMNS:
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:  # another process may have added it meanwhile
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


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
