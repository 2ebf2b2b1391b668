"""Schema versions (SPEC §7.9): every store records its version in `meta`; a newer queuectl
upgrades an older store on first use (a store written by the second release's first version,
frozen below, and a MongoDB database without `meta`); an older queuectl refuses a newer store
with one `Error:` line naming both versions, exit 1. On SQLite, mongomock and the wire lane."""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any, Callable, Iterator

import pytest

from queuectl import cli as cli_module
from queuectl.errors import SchemaTooNew
from queuectl.models import Job
from queuectl.store import mongo_schema
from queuectl.store.sqlite import SCHEMA_VERSION, SqliteStore

# A store as the release before `meta` wrote it (schema version 5): its tables and indexes
# exactly as that release created them, with a few rows.
RELEASE_5 = """
CREATE TABLE jobs (
    id TEXT PRIMARY KEY, command TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL,
    max_retries INTEGER NOT NULL, priority INTEGER NOT NULL, timeout REAL,
    run_at REAL NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL, started_at REAL,
    finished_at REAL, locked_by TEXT, locked_at REAL, exit_code INTEGER, last_error TEXT,
    stdout TEXT, stderr TEXT, duration REAL, seq INTEGER NOT NULL, lease_token TEXT,
    lease_renewed_at REAL, lease_expires_at REAL, queue TEXT NOT NULL DEFAULT 'default',
    after TEXT, waiting INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0, live_stdout TEXT, live_stderr TEXT
);
CREATE INDEX jobs_state_updated ON jobs (state, updated_at, seq);
CREATE INDEX jobs_updated ON jobs (updated_at, seq);
CREATE INDEX jobs_done_duration ON jobs (duration) WHERE state = 'completed';
CREATE INDEX jobs_done_finished ON jobs (finished_at) WHERE state = 'completed';
CREATE INDEX jobs_retried ON jobs (attempts) WHERE attempts > 1;
CREATE INDEX jobs_locked_by ON jobs (locked_by) WHERE state = 'processing';
CREATE TABLE workers (
    id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL, status TEXT NOT NULL,
    current_job TEXT, started_at REAL NOT NULL, last_heartbeat REAL NOT NULL,
    jobs_done INTEGER NOT NULL DEFAULT 0, jobs_failed INTEGER NOT NULL DEFAULT 0,
    stop_requested INTEGER NOT NULL DEFAULT 0, machine TEXT NOT NULL DEFAULT '',
    expires_at REAL, counted_lease TEXT, queues TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX workers_status ON workers (status);
CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE schedules (
    name TEXT PRIMARY KEY, cron TEXT NOT NULL, tz TEXT NOT NULL, command TEXT NOT NULL,
    options TEXT NOT NULL, next_run_at REAL NOT NULL, last_run_at REAL,
    paused INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_run_at) WHERE paused = 0;
CREATE TABLE job_deps (dep_id TEXT NOT NULL, job_id TEXT NOT NULL,
    PRIMARY KEY (dep_id, job_id)) WITHOUT ROWID;
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX jobs_claim_queue ON jobs (queue, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX jobs_next ON jobs (run_at)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX jobs_next_queue ON jobs (queue, run_at)
    WHERE state IN ('pending', 'failed') AND waiting = 0;
CREATE INDEX jobs_blocked ON jobs (run_at, priority DESC, seq)
    WHERE state = 'pending' AND waiting > 0;
CREATE INDEX jobs_blocked_queue ON jobs (queue, run_at, priority DESC, seq)
    WHERE state = 'pending' AND waiting > 0;
CREATE INDEX jobs_queue_state ON jobs (queue, state, updated_at, seq);
CREATE INDEX jobs_queue_duration ON jobs (queue, duration)
    WHERE state = 'completed';
INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, created_at,
    updated_at, finished_at, duration, seq, queue)
VALUES ('r5-pending', 'echo r5', 'pending', 0, 3, 0, 1.0, 1.0, 1.0, NULL, NULL, 1, 'default'),
       ('r5-done', 'true', 'completed', 1, 3, 0, 1.0, 1.0, 2.0, 2.0, 0.5, 2, 'default'),
       ('r5-dead', 'false', 'dead', 4, 3, 0, 1.0, 1.0, 3.0, 3.0, 0.1, 3, 'other');
INSERT INTO config VALUES ('max_retries', '4');
INSERT INTO workers (id, host, pid, status, started_at, last_heartbeat)
VALUES ('w-r5', 'h', 1, 'stopped', 1.0, 1.0);
PRAGMA user_version = 5;
"""


def sqlite_versions(path: str) -> tuple[int, Any]:
    """(the file header's user_version, the `meta` record), read without queuectl."""
    with sqlite3.connect(path) as conn:
        header = conn.execute("PRAGMA user_version").fetchone()[0]
        try:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError:
            row = None
    return header, (row[0] if row else None)


class Lane:
    """One store's data, reachable by a fresh store object (`open()`, as a new process would
    open it) and by the CLI (`run(...)`, through the URL as a user gives it)."""

    def __init__(self, kind: str, url: str, opener: Callable[[], Any]) -> None:
        self.kind = kind
        self.url = url
        self.open = opener

    def run(self, capsys, *args: str) -> tuple[int, str, str]:
        """`queuectl --db URL ARGS` in-process: (exit code, stdout, stderr)."""
        capsys.readouterr()
        code = cli_module.main(["--db", self.url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    def recorded(self) -> Any:
        """The version the store records in `meta` (None when it records none)."""
        if self.kind == "sqlite":
            return sqlite_versions(self.url)[1]
        store = self.open()
        doc = store.db["meta"].find_one({"_id": "schema"})
        return doc["version"] if doc else None

    def set_recorded(self, version: int) -> None:
        """Write `version` as a newer (or other) release would have."""
        if self.kind == "sqlite":
            with sqlite3.connect(self.url) as conn:
                conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (version,))
                conn.execute(f"PRAGMA user_version = {version}")
            return
        store = self.open()
        store.db["meta"].update_one({"_id": "schema"}, {"$set": {"version": version}}, upsert=True)


@pytest.fixture(params=["sqlite", "mongomock", "wire"])
def lane(request, tmp_path, monkeypatch, home) -> Iterator[Lane]:
    """A fresh store of each kind; every store object opened on it sees the same data."""
    from queuectl.store import mongo

    if request.param == "sqlite":
        path = str(tmp_path / "versions.db")
        opened: list[Any] = []

        def open_sqlite() -> SqliteStore:
            opened.append(SqliteStore(path))
            return opened[-1]

        yield Lane("sqlite", path, open_sqlite)
        for store in opened:
            store.close()
        return
    if request.param == "wire":
        url = request.getfixturevalue("wire_url")
        clients: list[Any] = []

        def open_wire() -> Any:
            clients.append(mongo.connect(url, url))
            return clients[-1]

        yield Lane("wire", url, open_wire)
        for store in clients:
            store.close()
        return
    import mongomock

    client = mongomock.MongoClient()
    url = "mongodb://db.invalid/versions"

    def open_mock(*_args: Any, **_kwargs: Any) -> Any:
        return mongo.MongoStore(client, "versions", url)

    monkeypatch.setattr(mongo, "connect", open_mock)
    yield Lane("mongomock", url, open_mock)


def a_job(job_id: str) -> Job:
    now = time.time()
    return Job(id=job_id, command="true", run_at=now, created_at=now, updated_at=now, seq=1)


def test_a_fresh_store_records_its_schema_version(lane):
    assert lane.recorded() is None
    lane.open().insert_jobs([a_job("first")])
    assert lane.recorded() == SCHEMA_VERSION
    if lane.kind == "sqlite":
        assert sqlite_versions(lane.url) == (SCHEMA_VERSION, SCHEMA_VERSION)


def test_a_newer_store_is_refused_with_both_versions(lane, capsys):
    lane.open().insert_jobs([a_job("kept")])
    newer = SCHEMA_VERSION + 1
    lane.set_recorded(newer)
    with pytest.raises(SchemaTooNew) as caught:
        lane.open().get_job("kept")
    assert (caught.value.found, caught.value.supported) == (newer, SCHEMA_VERSION)
    for args in (["status"], ["list"], ["enqueue", "true"], ["config", "set", "max_retries", "1"]):
        code, out, err = lane.run(capsys, *args)
        assert (code, out) == (1, ""), (args, err)
        assert err.startswith("Error: store ") and err.count("\n") == 1, err
        assert (
            f"has schema version {newer}, but this queuectl supports up to {SCHEMA_VERSION}" in err
        )
        assert "upgrade queuectl (pip install -U queuectl)" in err
    assert lane.recorded() == newer  # nothing was written, the version least of all
    if lane.kind == "sqlite":
        assert sqlite_versions(lane.url)[0] == newer


def test_an_older_recorded_version_is_raised_and_the_store_works(lane, capsys):
    lane.open().insert_jobs([a_job("old")])
    lane.set_recorded(SCHEMA_VERSION - 1)
    code, out, err = lane.run(capsys, "list", "--json")
    assert (code, err) == (0, ""), err
    assert '"old"' in out
    assert lane.recorded() == SCHEMA_VERSION


def test_a_store_written_by_release_5_is_upgraded_and_works(tmp_path, capsys, home):
    path = str(tmp_path / "r5.db")
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASE_5)
    lane = Lane("sqlite", path, lambda: SqliteStore(path))
    code, out, err = lane.run(capsys, "status", "--json")
    assert (code, err) == (0, ""), err
    assert sqlite_versions(path) == (SCHEMA_VERSION, SCHEMA_VERSION)
    code, out, err = lane.run(capsys, "config", "get", "max_retries")
    assert (code, out) == (0, "4\n"), err
    code, out, err = lane.run(capsys, "dlq", "list", "--json")
    assert (code, err) == (0, "") and '"r5-dead"' in out, err
    assert lane.run(capsys, "enqueue", "--id", "r5-new", "echo new")[0] == 0
    store = SqliteStore(path)
    assert store.claim("w", time.time(), "tok").id == "r5-pending"
    assert store.count_by_state() == {"processing": 1, "pending": 1, "completed": 1, "dead": 1}
    store.close()


def test_a_read_only_file_without_a_meta_record_is_still_read(tmp_path, capsys, home, monkeypatch):
    # A reader who may not write still reads a file of the current layout that has no
    # `meta` yet; the next process that may write records it.
    import os

    path = tmp_path / "ro" / "current.db"
    path.parent.mkdir()
    made = SqliteStore(str(path))  # this release's layout, then without its `meta` record
    made.insert_jobs([a_job("kept")])
    made.close()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE meta")
    assert sqlite_versions(str(path)) == (SCHEMA_VERSION, None)
    path.chmod(0o400)
    if os.geteuid() == 0:  # root passes every permission check: tell os.access the same
        real = os.access
        denied = os.path.abspath(path)

        def access(where, how, *args, **kwargs):  # type: ignore[no-untyped-def]
            if how & os.W_OK and os.path.abspath(where) == denied:
                return False
            return real(where, how, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    code, out, err = Lane("sqlite", str(path), lambda: None).run(capsys, "list", "--json")
    assert (code, err) == (0, ""), err
    assert '"kept"' in out
    assert sqlite_versions(str(path))[1] is None


def test_an_older_release_racing_an_upgrade_never_lowers_the_version(lane):
    store = lane.open()
    store.get_job("x")
    if lane.kind == "sqlite":
        from queuectl.store.sqlite_file import record_version

        conn = store._file.connection(write=True)
        record_version(conn, SCHEMA_VERSION - 1)
        assert sqlite_versions(lane.url) == (SCHEMA_VERSION, SCHEMA_VERSION)
    else:
        mongo_schema.record_version(store.db, SCHEMA_VERSION - 1)
        assert lane.recorded() == SCHEMA_VERSION


# -- MongoDB: a database without `meta` ------------------------------------------------------
def release_5_document(job_id: str, state: str = "pending") -> dict[str, Any]:
    """A job document as the release before `meta` wrote it."""
    return {
        "_id": job_id,
        "command": f"echo {job_id}",
        "state": state,
        "attempts": 0,
        "max_retries": 3,
        "priority": 0,
        "run_at": 1.0,
        "created_at": 1.0,
        "updated_at": 1.0,
        "seq": 1,
        "queue": "default",
        "waiting": 0,
    }


@pytest.fixture
def mongo_lane(lane) -> Lane:
    if lane.kind == "sqlite":
        pytest.skip("a database without a `meta` collection is a MongoDB one")
    return lane


def test_a_mongodb_database_without_meta_gets_it_and_its_indexes(mongo_lane, capsys):
    raw = mongo_lane.open().db
    raw["jobs"].insert_one(release_5_document("r5"))
    raw["config"].insert_one({"_id": "max_retries", "value": 4})
    assert "meta" not in raw.list_collection_names()
    code, out, err = mongo_lane.run(capsys, "list", "--json")
    assert (code, err) == (0, ""), err
    assert '"r5"' in out
    assert mongo_lane.recorded() == SCHEMA_VERSION
    assert len(list(raw["jobs"].list_indexes())) > 1
    store = mongo_lane.open()
    assert store.claim("w", time.time(), "tok").id == "r5"


def test_the_steps_between_the_recorded_version_and_this_one_run_once(mongo_lane, monkeypatch):
    ran: list[int] = []
    monkeypatch.setattr(
        mongo_schema,
        "STEPS",
        {
            SCHEMA_VERSION - 1: lambda store: ran.append(SCHEMA_VERSION - 1),
            SCHEMA_VERSION: lambda store: ran.append(SCHEMA_VERSION),
        },
    )
    mongo_lane.set_recorded(SCHEMA_VERSION - 1)
    mongo_lane.open().get_job("x")
    assert ran == [SCHEMA_VERSION]
    mongo_lane.open().get_job("x")  # now current: nothing more to do
    assert ran == [SCHEMA_VERSION]


def test_a_read_only_mongodb_user_reads_an_old_database(mongo_lane, capsys, monkeypatch):
    from pymongo.errors import OperationFailure

    raw = mongo_lane.open().db
    raw["jobs"].insert_one(release_5_document("r5"))

    def unauthorized(*_args: Any, **_kwargs: Any) -> None:
        raise OperationFailure("not authorized on versions to execute command", code=13)

    from queuectl.store.mongo import MongoStore

    monkeypatch.setattr(MongoStore, "_create_indexes", unauthorized)
    monkeypatch.setattr(mongo_schema, "record_version", unauthorized)
    for args in (["status"], ["list"], ["show", "r5"], ["stats"], ["config", "list"]):
        code, out, err = mongo_lane.run(capsys, *args)
        assert (code, err) == (0, ""), (args, err)
    assert mongo_lane.recorded() is None


def test_many_processes_opening_an_old_database_at_once(lane):
    if lane.kind != "wire":
        pytest.skip("concurrent clients need a server (mongomock shares one Python object)")
    raw = lane.open().db
    raw["jobs"].insert_one(release_5_document("r5"))
    stores = [lane.open() for _ in range(6)]
    barrier = threading.Barrier(len(stores), timeout=30)
    errors: list[BaseException] = []

    def first_use(store: Any) -> None:
        try:
            barrier.wait()
            assert store.get_job("r5") is not None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert list(raw["meta"].find()) == [{"_id": "schema", "version": SCHEMA_VERSION}]


def test_a_process_that_opened_the_store_before_it_became_newer_keeps_working(lane):
    # Running workers of the older release are not stopped by an upgrade elsewhere: the
    # version is checked when a process first uses the store.
    running = lane.open()
    running.insert_jobs([a_job("queued")])
    lane.set_recorded(SCHEMA_VERSION + 1)
    assert running.claim("w", time.time(), "tok").id == "queued"
    with pytest.raises(SchemaTooNew):
        lane.open().get_job("queued")


def test_worker_start_on_a_newer_store_says_why(tmp_path):
    import subprocess
    import sys

    path = str(tmp_path / "newer.db")
    SqliteStore(path).insert_jobs([a_job("waiting")])
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    done = subprocess.run(
        [sys.executable, "-m", "queuectl", "--db", path, "worker", "start", "--burst"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done
    assert f"has schema version {SCHEMA_VERSION + 1}, but this queuectl supports up to" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def test_an_upgrade_cut_short_by_the_store_is_tried_again(mongo_lane, monkeypatch):
    from pymongo.errors import AutoReconnect

    from queuectl.errors import StoreUnavailable

    calls: list[int] = []

    def flaky(store: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise AutoReconnect("connection reset")

    monkeypatch.setattr(mongo_schema, "STEPS", {SCHEMA_VERSION: flaky})
    mongo_lane.set_recorded(SCHEMA_VERSION - 1)
    store = mongo_lane.open()
    with pytest.raises(StoreUnavailable):
        store.get_job("x")
    assert mongo_lane.recorded() == SCHEMA_VERSION - 1
    assert store.get_job("x") is None
    assert (len(calls), mongo_lane.recorded()) == (2, SCHEMA_VERSION)


def test_a_newer_version_written_as_a_float_is_refused_too(lane):
    # mongosh stores every number as a double (`db.meta.updateOne({_id: "schema"}, {$set:
    # {version: 6}})` writes 6.0), and an SQLite hand edit may leave a REAL: still version 6,
    # not a record of another shape to replace with this release's number.
    lane.open().insert_jobs([a_job("kept")])
    newer = float(SCHEMA_VERSION + 1)
    if lane.kind == "sqlite":
        with sqlite3.connect(lane.url) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (newer,))
    else:
        lane.open().db["meta"].update_one({"_id": "schema"}, {"$set": {"version": newer}})
    with pytest.raises(SchemaTooNew) as caught:
        lane.open().get_job("kept")
    assert (caught.value.found, caught.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)
    assert lane.recorded() == newer
