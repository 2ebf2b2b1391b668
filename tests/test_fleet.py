"""SPEC §8 in-process, on every store: config changes, store outages, lost replies, the
reaper's race, unbounded id sets, and documents of another shape.

Faults are injected by `Faulty`, a store that forwards every call except while it is `down`
(an outage: every call raises StoreUnavailable) or where a reply is set to be lost (the call
is applied, then raises). Time is a FakeClock; a job "runs" as a real shell command that
waits for a file the test creates, so the test decides when it ends.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import watch

from queuectl.app import App
from queuectl.config import ConfigManager
from queuectl.errors import QueuectlError, StoreUnavailable
from queuectl.models import Job, WorkerInfo
from queuectl.worker import Worker
from queuectl.worker import _poke as poke

DEADLINE = 10.0  # seconds any wait in this file may take before the test fails
REFUSED = "result refused: the job's lease was lost (it was reclaimed)"
LEASE_LOST = "lease lost; killing its command"


class Faulty:
    """A store that forwards every call to `inner`, except while `down` (each call raises
    StoreUnavailable, like an unreachable server) and for calls named in `lose` (applied,
    then StoreUnavailable: the reply was lost). `hooks[name]` runs after a call is applied."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.down = False
        self.lose: dict[str, int] = {}
        self.hooks: dict[str, Callable[..., None]] = {}
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            if self.down:
                raise StoreUnavailable("MongoDB at mongodb://db.example: connection refused")
            result = attr(*args, **kwargs)
            if name in self.hooks:
                self.hooks[name](result, *args, **kwargs)
            if self.lose.get(name):
                self.lose[name] -= 1
                raise StoreUnavailable("MongoDB at mongodb://db.example: connection reset")
            return result

        return call


@pytest.fixture
def lines() -> list[str]:
    """The log of every worker a test builds."""
    return []


def start_worker(store: Any, clock: Any, lines: list[str], **options: Any) -> Worker:
    """A started worker logging into `lines` that never really sleeps between retries."""
    worker = App(store=store, clock=clock).worker(log=lines.append, **options)
    worker._wait = lambda _seconds: None  # type: ignore[method-assign]
    worker.start()
    return worker


def add(store: Any, clock: Any, *specs: dict) -> list[str]:
    """Insert jobs built as `enqueue` builds them (no wake-up signal to this process)."""
    jobs = App(store=store, clock=clock).jobs.build([(None, s) for s in specs])
    store.insert_jobs(jobs)
    return [job.id for job in jobs]


def gated(gate: Path, then: str = "echo done") -> str:
    """A command that runs until `gate` exists."""
    return f"while [ ! -e {gate} ]; do sleep 0.02; done; {then}"


def wait_until(condition: Callable[[], Any], what: str) -> Any:
    """Poll a condition; fail the test if it does not hold within DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return value


def in_background(action: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


def run_gated(worker: Worker, store: Any, job_id: str) -> threading.Thread:
    """Start `worker.step()` in the background; return once it holds `job_id`."""
    thread = in_background(worker.step)
    wait_until(lambda: worker.busy and store.get_job(job_id).state == "processing", "the claim")
    return thread


def remote(worker_id: str, clock: Any, **fields: Any) -> WorkerInfo:
    """A worker row of another machine (its pid is not ours to judge)."""
    values = {"host": "far.example", "pid": 1, "started_at": clock(), "last_heartbeat": clock()}
    values.update(fields)
    return WorkerInfo(id=worker_id, machine="far", **values)


# -- 1. a live config change -------------------------------------------------------------------


def test_a_live_config_change_never_makes_a_live_worker_look_lost(store, clock, lines, tmp_path):
    gate = tmp_path / "go"
    [job_id] = add(store, clock, {"command": gated(gate), "max_retries": 0})
    worker = start_worker(store, clock, lines)
    thread = run_gated(worker, store, job_id)
    worker.heartbeat()  # heartbeat_interval 30, stale_after 600: the defaults
    observer = App(store=store, clock=clock)
    observer.configs.set("heartbeat_interval", "1")
    observer.configs.set("stale_after", "5")
    for _ in range(17):  # the worker still sleeps on its 30 s interval; reapers apply 5 s
        clock.advance(1)
        assert observer.workers.reap(observer.configs.load()) == []
        [shown] = observer.workers.list()
        assert (shown.id, shown.status, shown.current_job) == (worker.info.id, "busy", job_id)
        assert [w.id for w in observer.workers.active()] == [worker.info.id]
    worker.heartbeat()  # its next beat uses the new values
    gate.touch()
    thread.join(DEADLINE)
    job = store.get_job(job_id)
    assert (job.state, job.attempts) == ("completed", 1), job.last_error
    assert not [line for line in lines if LEASE_LOST in line or "released" in line]


def test_a_dead_worker_is_still_found_after_the_change(store, clock, lines, tmp_path):
    gate = tmp_path / "go"
    [job_id] = add(store, clock, {"command": gated(gate), "max_retries": 1})
    worker = start_worker(store, clock, lines)
    thread = run_gated(worker, store, job_id)
    observer = App(store=store, clock=clock)
    observer.configs.set("heartbeat_interval", "1")
    observer.configs.set("stale_after", "5")
    watch([observer], clock, 600, step=10)  # the observer has watched the store all along
    worker.heartbeat()  # the worker renews once with the new values, then goes silent
    watch([observer], clock, 4, step=1)
    assert observer.workers.reap(observer.configs.load()) == []
    watch([observer], clock, 2, step=1)
    assert observer.workers.reap(observer.configs.load()) == [job_id]
    assert [w.status for w in observer.workers.list()] == ["lost"]
    gate.touch()
    thread.join(DEADLINE)
    assert lines[-1].endswith(REFUSED)


def test_the_heartbeat_renews_at_once_when_its_interval_or_stale_after_changes(store, clock, lines):
    worker = start_worker(store, clock, lines)
    beat = in_background(worker._heartbeat_loop)  # sleeps on the default 30 s interval
    try:
        ConfigManager(store).set("heartbeat_interval", "1")
        clock.advance(3)
        worker._next_refresh = 0.0
        worker._refresh(None)  # the main loop's refresh sees the change and wakes the beat
        wait_until(
            lambda: store.get_worker(worker.info.id).last_heartbeat == clock(), "a new heartbeat"
        )
    finally:
        worker._heartbeat_stop.set()
        poke(worker._beat_w)
        beat.join(DEADLINE)
        worker.close()


# -- 2. a store outage longer than stale_after ---------------------------------------------------


def test_a_store_outage_longer_than_stale_after_runs_nothing_twice(store, clock, lines, tmp_path):
    faulty = Faulty(store)
    gate = tmp_path / "go"
    [job_id, orphan_id] = add(
        store,
        clock,
        {"command": gated(gate, "echo kept"), "max_retries": 0},
        {"command": "true", "max_retries": 1},
    )
    worker = start_worker(faulty, clock, lines)
    thread = run_gated(worker, store, job_id)
    store.register_worker(remote("far:1:1-dead", clock))
    assert store.claim("far:1:1-dead", clock(), "dead-token").id == orphan_id
    reaper_app = App(store=faulty, clock=clock)
    reaper = reaper_app.workers
    config = reaper_app.configs.load()
    watch([reaper_app], clock, 60)
    worker.heartbeat()
    assert reaper.reap(config) == []

    faulty.down = True  # 700 s with no store: longer than stale_after (600)
    for _ in range(70):
        clock.advance(10)
        for beat in (worker.heartbeat, lambda: reaper.reap(config)):
            with pytest.raises(StoreUnavailable):
                beat()
    faulty.down = False

    assert reaper.reap(config) == []  # the first reaper back sees every lease as old
    assert store.get_job(job_id).state == "processing"
    worker.heartbeat()  # the live worker renews as soon as it can
    for _ in range(60):
        clock.advance(10)
        worker.heartbeat()
        assert reaper.reap(config) == []
        assert store.get_job(orphan_id).state == "processing"
    # The dead worker's job goes once the reapers have seen the store for stale_after.
    clock.advance(10)
    worker.heartbeat()
    reaper.reap(config)
    orphan = store.get_job(orphan_id)
    assert (orphan.state, orphan.attempts) == ("failed", 1)
    gate.touch()
    thread.join(DEADLINE)
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.stdout) == ("completed", 1, "kept\n"), job.last_error
    assert not [line for line in lines if REFUSED in line or LEASE_LOST in line]


def test_a_frozen_process_does_not_release_its_neighbours_jobs(store, clock, lines, tmp_path):
    # Two workers in one process (or one frozen VM): when it resumes, the first heartbeat
    # must not release the other's job before that one had a chance to renew.
    gate = tmp_path / "go"
    [job_id] = add(store, clock, {"command": gated(gate), "max_retries": 0})
    first = start_worker(store, clock, lines)
    second = start_worker(store, clock, lines)
    thread = run_gated(second, store, job_id)
    first.heartbeat()
    second.heartbeat()
    clock.advance(700)  # frozen: nothing ran for 700 s
    first.heartbeat()
    assert store.get_job(job_id).state == "processing"
    second.heartbeat()
    gate.touch()
    thread.join(DEADLINE)
    assert (store.get_job(job_id).state, store.get_job(job_id).attempts) == ("completed", 1)


# -- 3. a lost claim reply -----------------------------------------------------------------------


def test_a_lost_claim_reply_runs_the_job_as_if_the_reply_had_come(store, clock, lines):
    faulty = Faulty(store)
    [job_id] = add(store, clock, {"command": "echo ran", "max_retries": 0})
    worker = start_worker(faulty, clock, lines)
    faulty.lose["claim"] = 1
    with pytest.raises(StoreUnavailable):
        worker.step()  # the claim was applied; its reply was lost
    assert store.get_job(job_id).state == "processing"
    assert worker.step() is True
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.stdout) == ("completed", 1, "ran\n")
    assert any(f"job {job_id} completed" in line for line in lines)


def test_a_claim_applied_after_the_check_is_handed_back(store, clock, lines):
    faulty = Faulty(store)
    [job_id] = add(store, clock, {"command": "echo ran", "max_retries": 0})
    worker = start_worker(faulty, clock, lines)
    delayed: list[tuple] = []

    def claim_late(*args: Any, **kwargs: Any) -> Any:
        if not delayed:  # the request is stuck in the network; the worker sees an error
            delayed.append((args, kwargs))
            raise StoreUnavailable("MongoDB at mongodb://db.example: timed out")
        if len(delayed) == 1:  # ... and reaches the server just after the worker looked
            delayed.append(())
            store.claim(*delayed[0][0], **delayed[0][1])
        return store.claim(*args, **kwargs)

    faulty.claim = claim_late  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable):
        worker.step()
    assert worker.step() is False  # the job is processing under the delayed claim
    assert store.get_job(job_id).locked_by == worker.info.id
    worker.heartbeat()  # hands back what it holds in the store but not in its hands
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.locked_by) == ("pending", 0, None)
    assert worker.step() is True
    job = store.get_job(job_id)
    assert (job.state, job.attempts) == ("completed", 1)


# -- 4. a lost finish reply ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command, state, counter, said",
    [
        ("echo ok", "completed", "jobs_done", "completed in"),
        ("exit 3", "dead", "jobs_failed", "moved to DLQ"),
        ("exit 3", "failed", "jobs_failed", "retry in 2s"),
    ],
)
def test_a_lost_finish_reply_is_a_stored_result(store, clock, lines, command, state, counter, said):
    faulty = Faulty(store)
    retries = 0 if state == "dead" else 3
    [job_id] = add(store, clock, {"command": command, "max_retries": retries})
    worker = start_worker(faulty, clock, lines)
    # A completed or dead end is written by `settle` (it passes the end on to dependents).
    faulty.lose["finish"] = faulty.lose["settle"] = 1
    assert worker.step() is True
    job = store.get_job(job_id)
    assert (job.state, job.attempts) == (state, 1)
    assert not [line for line in lines if REFUSED in line]
    assert any(f"job {job_id}" in line and said in line for line in lines), lines
    worker.heartbeat()
    assert getattr(store.get_worker(worker.info.id), counter) == 1


def test_a_result_refused_after_a_lost_reply_is_still_refused(store, clock, lines, tmp_path):
    # The first write never reached the store; meanwhile the job was reclaimed.
    faulty = Faulty(store)
    [job_id] = add(store, clock, {"command": "echo late", "max_retries": 3})
    worker = start_worker(faulty, clock, lines)

    real_settle = store.settle
    calls: list[int] = []

    def settle(*args: Any, **kwargs: Any) -> Any:  # a completed end is written by settle
        calls.append(1)
        if len(calls) == 1:
            job = store.get_job(job_id)
            assert store.update_if(
                job_id,
                {"state": "processing", "lease_token": job.lease_token},
                {"state": "pending", "lease_token": None, "locked_by": None},
            )
            store.claim("other", clock(), "other-token")
            raise StoreUnavailable("MongoDB at mongodb://db.example: connection refused")
        return real_settle(*args, **kwargs)

    faulty.settle = settle  # type: ignore[attr-defined]
    assert worker.step() is True
    assert lines[-1].endswith(REFUSED)
    assert store.get_job(job_id).lease_token == "other-token"


# -- 5. the reaper never takes a live lease ------------------------------------------------------


def test_the_reaper_never_overwrites_a_lease_renewed_after_its_read(store, clock):
    [job_id] = add(store, clock, {"command": "true"})
    store.register_worker(remote("far:1:1-slow", clock))
    assert store.claim("far:1:1-slow", clock(), "tok").id == job_id
    faulty = Faulty(store)

    def renewed_meanwhile(found: list[Job], *_args: Any, **_kwargs: Any) -> None:
        for job in found:  # the owner renews between the reaper's read and its write
            assert store.renew_lease(job.id, "tok", clock())

    faulty.hooks["stale_jobs"] = renewed_meanwhile
    reaper = App(store=faulty, clock=clock)
    watch([reaper], clock, 610)
    assert reaper.workers.reap(reaper.configs.load()) == []
    job = store.get_job(job_id)
    assert (job.state, job.lease_token, job.attempts) == ("processing", "tok", 1)


def test_decisive_reads_go_to_the_primary_whatever_the_url_says():
    from pymongo import ReadPreference

    from queuectl.store.mongo import connect

    url = "mongodb://db.invalid/q?readPreference=secondary"
    store = connect(url, url)
    try:
        assert store.client.read_preference == ReadPreference.SECONDARY
        assert store.jobs.read_preference == ReadPreference.PRIMARY
        assert store.workers.read_preference == ReadPreference.PRIMARY
        assert store.config.read_preference == ReadPreference.PRIMARY
        options = store.client.options
        assert options.retry_writes and options.retry_reads
    finally:
        store.close()


# -- 6. unbounded id sets ------------------------------------------------------------------------


def test_dlq_retry_of_many_jobs_writes_in_bounded_batches(store, clock):
    many = 1_200
    now = clock()
    store.insert_jobs(
        [
            Job(id=f"d{n:05d}", command="false", state="dead", attempts=1, run_at=now, seq=n)
            for n in range(many)
        ]
    )
    faulty = Faulty(store)
    retried, missing = App(store=faulty, clock=clock).jobs.retry_dead(None)
    assert (len(retried), missing) == (many, [])
    writes = sum(n for name, n in faulty.calls.items() if name.startswith("update"))
    assert writes <= 3, faulty.calls  # batches of 500, not one transaction per job
    assert store.count_by_state() == {"pending": many}


class SizeLimited:
    """A MongoDB collection that refuses a command over 16 MiB, as a server does (mongomock
    does not)."""

    LIMIT = 16 * 1024 * 1024

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            import bson
            from pymongo.errors import DocumentTooLarge

            for arg in (*args, *kwargs.values()):
                if isinstance(arg, dict) and len(bson.encode(arg)) > self.LIMIT:
                    raise DocumentTooLarge("BSON document too large")
            return attr(*args, **kwargs)

        return call


def test_request_stop_of_many_workers_is_sent_in_bounded_batches(store):
    ids = [f"{n:06d}-" + "w" * 120 for n in range(140_000)]  # ~18 MB of ids in all
    if hasattr(store, "workers"):
        store.workers = SizeLimited(store.workers)
    store.register_worker(WorkerInfo(id=ids[-1], host="h", pid=1))
    store.request_stop(ids)
    assert store.get_worker(ids[-1]).stop_requested


def test_dlq_retry_of_over_100k_ids_never_builds_one_oversized_command(store, clock):
    store.insert_jobs([Job(id="d-last", command="false", state="dead", run_at=clock(), seq=1)])
    if hasattr(store, "jobs"):
        store.jobs = SizeLimited(store.jobs)
    wanted = [f"{n:06d}-" + "x" * 120 for n in range(120_000)] + ["d-last"]
    jobs = App(store=store, clock=clock).jobs
    jobs.batch_size = 2_000  # fewer, larger batches keep mongomock's scans short
    retried, missing = jobs.retry_dead(wanted)
    assert (retried, len(missing)) == (["d-last"], 120_000)
    assert store.get_job("d-last").state == "pending"


def test_a_document_too_large_is_a_store_error_not_a_crash(store):
    if not hasattr(store, "jobs"):
        pytest.skip("a MongoDB error")

    class Oversized:
        def __getattr__(self, name: str) -> Any:
            def fail(*_args: Any, **_kwargs: Any) -> Any:
                from pymongo.errors import DocumentTooLarge

                raise DocumentTooLarge("BSON document too large (17000000 bytes)")

            return fail

    store.get_job("x")  # the indexes exist
    store.jobs = Oversized()
    with pytest.raises(QueuectlError, match="too large"):
        store.get_job("x")
    with pytest.raises(QueuectlError, match="too large"):
        store.claim("w", 1.0, "tok")


# -- 7. no "lease lost" after the job ended ------------------------------------------------------


def test_no_lease_lost_line_after_a_job_that_completed(store, clock, lines, tmp_path):
    gate = tmp_path / "go"
    [job_id] = add(store, clock, {"command": gated(gate)})
    faulty = Faulty(store)
    worker = start_worker(faulty, clock, lines)
    thread = run_gated(worker, store, job_id)
    real_renew = store.renew_lease

    def renew_after_the_end(*args: Any, **kwargs: Any) -> bool:
        # The heartbeat took its snapshot while the command ran; the job ends and is
        # settled before the renewal reaches the store.
        gate.touch()
        wait_until(lambda: store.get_job(job_id).state == "completed", "the result")
        return real_renew(*args, **kwargs)

    faulty.renew_lease = renew_after_the_end  # type: ignore[attr-defined]
    worker.heartbeat()
    thread.join(DEADLINE)
    assert not [line for line in lines if LEASE_LOST in line], lines


# -- 8. documents of another shape ---------------------------------------------------------------


def node_job(**fields: Any) -> dict[str, Any]:
    """A job as the Node version stored it (SPEC §7.8)."""
    from datetime import datetime, timezone

    from bson import ObjectId

    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    doc = {
        "_id": ObjectId(),
        "id": f"node-{uuid.uuid4().hex[:8]}",
        "command": "echo from node",
        "state": "pending",
        "attempts": 0,
        "max_retries": 3,
        "created_at": when,
        "updated_at": when,
        "next_retry_at": None,
        "processing_by": None,
        "locked_at": None,
    }
    doc.update(fields)
    return doc


@pytest.fixture
def mongo_store(store):
    if not hasattr(store, "jobs"):
        pytest.skip("documents of another shape are a MongoDB matter")
    return store


def test_node_documents_never_crash_a_worker(mongo_store, clock, lines, capsys):
    store = mongo_store
    foreign = [
        node_job(),
        node_job(state="dead"),
        node_job(state="processing", processing_by="w-1"),
        node_job(state="failed", next_retry_at=node_job()["created_at"]),
    ]
    store.jobs.insert_many(foreign)
    [job_id] = add(store, clock, {"command": "echo mine"})
    worker = start_worker(store, clock, lines)
    assert worker.step() is True
    assert worker.step() is False
    assert worker._idle() is True
    worker.heartbeat()
    assert store.get_job(job_id).state == "completed"
    assert store.next_run_at() is None
    assert [j.id for j in store.list_jobs(None, 100)] == [job_id]
    assert store.list_jobs("dead", 100) == []
    assert store.stale_jobs(clock() + 10_000, clock() + 10_000) == []
    err = capsys.readouterr().err
    assert "another shape" in err


def plant_foreign_records(store: Any) -> str:
    """Records of another shape in a store's jobs and workers; the id `show` is given."""
    if hasattr(store, "jobs"):  # MongoDB: what the Node version left
        from bson import ObjectId

        docs = [node_job(), node_job(state="dead"), node_job(state="processing", locked_by="w")]
        store.jobs.insert_many(docs)
        store.workers.insert_one({"_id": ObjectId(), "name": "node-worker", "startedAt": 1})
        return str(docs[0]["id"])
    import sqlite3  # SQLite: rows written by hand, with text where times belong

    name = f"hand-{uuid.uuid4().hex[:8]}"
    with sqlite3.connect(store.path) as conn:
        store.get_job("x")  # the schema exists
        for state in ("pending", "dead", "processing"):
            conn.execute(
                "INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at,"
                " created_at, updated_at, seq) VALUES (?, 'echo', ?, 0, 3, 0, 1.0,"
                " '2025-01-02T03:04:05Z', 1.0, 1)",
                (f"{name}-{state}" if state != "pending" else name, state),
            )
        conn.execute(
            "INSERT INTO workers (id, host, pid, status, started_at, last_heartbeat)"
            " VALUES (?, 'h', 'not a pid', 'idle', 1.0, 1.0)",
            (name,),
        )
    return name


def test_records_of_another_shape_are_skipped_by_every_read_command(store, monkeypatch, capsys):
    from queuectl import cli
    from queuectl.store import mongo

    foreign_id = plant_foreign_records(store)
    if hasattr(store, "jobs"):
        monkeypatch.setattr(
            mongo,
            "connect",
            lambda _url, masked, _secret=None: mongo.MongoStore(
                store.client, store.db.name, masked
            ),
        )
        monkeypatch.setenv("QUEUECTL_DB", "mongodb://db.invalid/q")
    else:
        monkeypatch.setenv("QUEUECTL_DB", store.path)
    warned = []
    for argv in (["list"], ["dlq", "list"], ["worker", "list"], ["status"], ["stats"]):
        capsys.readouterr()
        code = cli.main(argv)
        captured = capsys.readouterr()
        assert code == 0, (argv, captured.err)
        assert "Traceback" not in captured.err and "unexpected" not in captured.err
        warned += [line for line in captured.err.splitlines() if line.startswith("Warning:")]
    assert any("another shape" in line for line in warned), warned
    assert len(warned) == len(set(warned)) <= 2  # one per record set, once per process
    code = cli.main(["show", foreign_id])
    err = capsys.readouterr().err
    assert code == 1 and "not a queuectl job" in err, err
    assert err.count("\n") == 1


# -- issue 11 item 16: worker counters at every job end ------------------------------------------


def test_worker_counters_are_current_at_every_job_end(store, clock, lines):
    add(store, clock, {"command": "true"}, {"command": "exit 1", "max_retries": 0})
    worker = start_worker(store, clock, lines)
    assert worker.step() is True
    row = store.get_worker(worker.info.id)
    assert (row.jobs_done, row.jobs_failed) == (1, 0)  # no heartbeat in between
    assert worker.step() is True
    row = store.get_worker(worker.info.id)
    assert (row.jobs_done, row.jobs_failed) == (1, 1)
    worker.heartbeat()
    row = store.get_worker(worker.info.id)
    assert (row.jobs_done, row.jobs_failed) == (1, 1)  # counted once


# -- upgrading a store of the first release ----------------------------------------------------

FIRST_RELEASE_TABLES = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, command TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL, max_retries INTEGER NOT NULL, priority INTEGER NOT NULL,
    timeout REAL, run_at REAL NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
    started_at REAL, finished_at REAL, locked_by TEXT, locked_at REAL, exit_code INTEGER,
    last_error TEXT, stdout TEXT, stderr TEXT, duration REAL, seq INTEGER NOT NULL,
    lease_token TEXT, lease_renewed_at REAL);
CREATE TABLE workers (id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
    status TEXT NOT NULL, current_job TEXT, started_at REAL NOT NULL,
    last_heartbeat REAL NOT NULL, jobs_done INTEGER NOT NULL DEFAULT 0,
    jobs_failed INTEGER NOT NULL DEFAULT 0, stop_requested INTEGER NOT NULL DEFAULT 0,
    machine TEXT NOT NULL DEFAULT '');
CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO jobs VALUES ('old-running', 'sleep 9', 'processing', 1, 3, 0, NULL, 1.0, 1.0, 1.0,
    1.0, NULL, 'old-worker', 1.0, NULL, NULL, NULL, NULL, NULL, 1, 'old-token', 1000.0);
INSERT INTO workers VALUES ('old-worker', 'far', 1, 'busy', 'old-running', 1.0, 1000.0, 4, 1,
    0, 'far');
PRAGMA user_version = 2;
"""


def test_a_first_release_sqlite_file_is_upgraded_in_place_and_judged_by_the_old_rule(tmp_path):
    import sqlite3

    from queuectl.store.sqlite import SqliteStore

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(FIRST_RELEASE_TABLES)
    store = SqliteStore(str(path))
    job = store.get_job("old-running")
    assert (job.lease_token, job.lease_expires_at) == ("old-token", None)
    row = store.get_worker("old-worker")
    assert (row.jobs_done, row.expires_at) == (4, None)
    # No deadline: silent once the reader's stale_after has passed since the last renewal.
    assert store.stale_jobs(1000.0, 5000.0) == []
    assert [j.id for j in store.stale_jobs(1000.5, 5000.0)] == ["old-running"]
    assert store.mark_workers_lost(1000.5, 5000.0) == ["old-worker"]
    store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] >= 4
