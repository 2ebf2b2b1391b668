"""Stores written by the first release keep working: SQLite files gain the new columns and
indexes on first use; MongoDB documents without `queue` or `waiting` count as `default`-queue
jobs with no dependencies. And the claim's query plans stay index walks."""

from __future__ import annotations

import sqlite3
import time

import pytest

from queuectl.store.sqlite import SCHEMA_VERSION, SqliteStore, _claim_pick

# The jobs table and claim index as the first release created them (schema version 2).
FIRST_RELEASE = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, command TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
    max_retries INTEGER NOT NULL, priority INTEGER NOT NULL, timeout REAL, run_at REAL NOT NULL,
    created_at REAL NOT NULL, updated_at REAL NOT NULL, started_at REAL, finished_at REAL,
    locked_by TEXT, locked_at REAL, exit_code INTEGER, last_error TEXT, stdout TEXT,
    stderr TEXT, duration REAL, seq INTEGER NOT NULL, lease_token TEXT, lease_renewed_at REAL
);
CREATE INDEX jobs_ready ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed');
CREATE TABLE workers (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, status TEXT NOT NULL,
    current_job TEXT, started_at REAL NOT NULL, last_heartbeat REAL NOT NULL,
    jobs_done INTEGER NOT NULL DEFAULT 0, jobs_failed INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0, machine TEXT NOT NULL DEFAULT ''
);
CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO jobs VALUES ('old', 'echo old', 'pending', 0, 3, 0, NULL, 1.0, 1.0, 1.0, NULL,
    NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, NULL, NULL);
INSERT INTO workers VALUES ('w-old', 'h', 1, 'stopped', NULL, 1.0, 1.0, 0, 0, 0, '');
PRAGMA user_version = 2;
"""


def test_a_first_release_sqlite_file_is_upgraded_on_first_use(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(FIRST_RELEASE)
    store = SqliteStore(str(path))
    old = store.get_job("old")
    assert (old.queue, old.after, old.waiting, old.cancel_requested) == ("default", [], 0, False)
    assert store.get_worker("w-old").queues == []
    assert store.count_by_queue() == {"default": {"pending": 1}}
    assert store.claim("w", time.time(), "tok", ["default"]).id == "old"
    store.close()
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"jobs_claim", "jobs_claim_queue", "jobs_next", "jobs_blocked"} <= names
        assert "jobs_ready" not in names, "a first-release claim would ignore dependencies"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    again = SqliteStore(str(path))  # a second open finds nothing to do
    assert again.get_job("old").state == "processing"
    again.close()


def plan(store: SqliteStore, sql: str, params) -> list[tuple[int, int, str]]:
    """EXPLAIN QUERY PLAN rows: (id, parent, detail)."""
    rows = store._file.connection(write=True).execute("EXPLAIN QUERY PLAN " + sql, params)
    return [(r[0], r[1], r[3]) for r in rows.fetchall()]


@pytest.mark.parametrize("queues", [(), ("a",), ("a", "b", "c")])
def test_claims_walk_only_claimable_index_ranges(tmp_path, queues):
    store = SqliteStore(str(tmp_path / "plan.db"))
    sql, params = _claim_pick(1.0, queues)
    steps = plan(store, sql, params)
    reads = [detail for _, _, detail in steps if " jobs " in f" {detail} "]
    index = "jobs_claim_queue (queue=?)" if queues else "jobs_claim"
    assert reads and all(index in detail for detail in reads), steps
    # The only sort is of the few per-queue heads, outside every index walk.
    sorts = [(i, parent) for i, parent, detail in steps if "TEMP B-TREE" in detail]
    assert all(parent == 0 for _, parent in sorts), steps
    assert len(sorts) == (1 if len(queues) > 1 else 0)
    store.close()


def test_a_mongodb_document_of_the_first_release_is_a_default_job(store):
    if type(store).__name__ != "MongoStore":
        pytest.skip("documents without the new fields exist only in MongoDB")
    store.get_job("nothing")  # creates the indexes
    store.jobs.insert_one(
        {
            "_id": "legacy",
            "command": "true",
            "state": "pending",
            "attempts": 0,
            "max_retries": 3,
            "priority": 0,
            "run_at": 1.0,
            "created_at": 1.0,
            "updated_at": 1.0,
            "seq": 1,
        }
    )
    legacy = store.get_job("legacy")
    assert (legacy.queue, legacy.after, legacy.waiting) == ("default", [], 0)
    assert store.count_by_queue() == {"default": {"pending": 1}}
    assert store.count_by_state("default") == {"pending": 1}
    assert [j.id for j in store.list_jobs("pending", 5, queue="default")] == ["legacy"]
    assert store.next_run_at(["default"]) == 1.0
    assert store.claim("w", 2.0, "tok", ["other"]) is None
    assert store.claim("w", 2.0, "tok", ["default"]).id == "legacy"


# What each of the two version-4 schemas added to the first release's tables.
LEASE_DEADLINES = (
    "ALTER TABLE jobs ADD COLUMN lease_expires_at REAL;"
    "ALTER TABLE workers ADD COLUMN expires_at REAL;"
    "ALTER TABLE workers ADD COLUMN counted_lease TEXT;"
)
QUEUES_AND_DEPENDENCIES = (
    "ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';"
    "ALTER TABLE jobs ADD COLUMN after TEXT;"
    "ALTER TABLE jobs ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE jobs ADD COLUMN live_stdout TEXT;"
    "ALTER TABLE jobs ADD COLUMN live_stderr TEXT;"
    "ALTER TABLE workers ADD COLUMN queues TEXT NOT NULL DEFAULT '[]';"
)


@pytest.mark.parametrize("added", [LEASE_DEADLINES, QUEUES_AND_DEPENDENCIES])
def test_a_version_4_file_of_either_kind_gains_the_other_columns(tmp_path, added):
    path = tmp_path / "v4.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(FIRST_RELEASE + added + "PRAGMA user_version = 4;")
    store = SqliteStore(str(path))
    now = time.time()
    claimed = store.claim("w-old", now, "tok", ["default"], lease_expires_at=now + 30)
    assert (claimed.id, claimed.lease_expires_at) == ("old", now + 30)
    done = {"state": "completed", "updated_at": now}
    fence = {"state": "processing", "lease_token": "tok"}
    assert store.settle("old", fence, done, lambda dep: {}, tally=("w-old", "jobs_done")) == []
    assert store.get_worker("w-old").jobs_done == 1
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
