"""No full scans on hot paths (SPEC §8): every statement `status`, `stats`, `list`, the
dashboard, claims, the worker's writes and the reaper send to the store reads an index or a
counter, never every job.

SQLite: each hot operation runs with a trace on the connection, and every statement it sent
is put through EXPLAIN QUERY PLAN. A `SCAN jobs` without an index fails; a `SCAN jobs USING
INDEX` passes only for an index walked in its own order and stopped by LIMIT (ORDERED_WALKS:
the newest-first list, and the claim order), which reads the rows it returns and no others
(a claim also passes over jobs not yet due ahead of the first due one). A SCAN of a counter
table (a few rows per queue) is fine.

MongoDB: the same operations run with command monitoring, and each command on `jobs` is
explained on the server: no COLLSCAN, and some index stage. That needs MongoDB's explain;
the wire lane's nx-27017 answers explain with a plan of its own SQLite tables (no MongoDB
stages), so there the check is skipped, saying so, and runs only on a real MongoDB
(QUEUECTL_TEST_MONGODB_URI).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import pytest
from wirelane import MONGO_SERVERS, server_url

from queuectl.app import App
from queuectl.dashboard import take_snapshot
from queuectl.executor import Result
from queuectl.models import STATES
from queuectl.store.sqlite import SqliteStore
from queuectl.store.sqlite_counters import EXACT_WALK

# Indexes a hot statement may walk in index order (SCAN ... USING INDEX) when it has a LIMIT.
ORDERED_WALKS = {"jobs_updated", "jobs_claim", "jobs_blocked"}


def fill(app: App, clock, runs: int = 2 * EXACT_WALK + 10) -> None:
    """Jobs in every state, in two queues, some retried and some waiting; by default more
    completed durations than EXACT_WALK in one bucket (so `stats` takes its approximate path
    on SQLite too)."""
    app.configs.set("backoff_base", "1")
    specs = [
        (None, {"command": "true", "queue": "mail" if i % 3 == 0 else "default"})
        for i in range(runs + 30)
    ]
    specs.append((None, {"command": "true", "id": "later", "delay": 3600}))
    app.jobs.enqueue(specs)
    app.jobs.enqueue([(None, {"command": "true", "id": "blocked", "after": ["later"]})])
    for i in range(runs):
        job = app.jobs.claim("w1")
        assert job is not None
        result = Result(0, "", "", 1.0 + (i % 7) / 1000, None)
        if i % 50 == 1:
            app.jobs.fail(job, "exit status 1", Result(1, "", "", 0.5, "exit status 1"))
        else:
            assert app.jobs.complete(job, result)
    app.jobs.cancel(None, "mail")
    app.jobs.claim("w1")  # one processing


def hot_operations(app: App, clock) -> dict[str, Callable[[], Any]]:
    """Each hot path, as the commands and the worker call it."""
    now = clock()
    config = app.configs.load()

    def claim_and_finish(queues: tuple[str, ...]) -> None:
        job = app.jobs.claim("w2", queues)
        if job is not None:
            app.jobs.complete(job, Result(0, "", "", 0.2, None))

    def claim_and_fail() -> None:
        job = app.jobs.claim("w2")
        if job is not None:
            app.jobs.fail(job, "exit status 1", Result(1, "", "", 0.2, "exit status 1"))

    operations: dict[str, Callable[[], Any]] = {
        "status": lambda: (app.jobs.counts(), app.workers.active()),
        "status --queue": lambda: (app.jobs.counts("mail"), app.workers.active("mail")),
        "stats": lambda: app.jobs.stats(),
        "stats --queue": lambda: app.jobs.stats("mail"),
        "dashboard": lambda: take_snapshot(app, 2.0),
        "claim": lambda: claim_and_finish(()),
        "claim --queue": lambda: claim_and_finish(("mail",)),
        "claim --queue a,b,c": lambda: claim_and_finish(("mail", "default", "other")),
        "claim, fail": claim_and_fail,
        "next run": lambda: (app.jobs.next_run_at(), app.jobs.next_run_at(("mail", "default"))),
        "reaper": lambda: (
            app.store.stale_jobs(now - 600, now),
            app.jobs.locked_by("w1"),
            app.workers.reap(config),
        ),
    }
    for state in (None, *STATES):
        name = f"list --state {state}" if state else "list"
        operations[name] = lambda s=state: app.jobs.list(s, 50)
        operations[f"{name} --queue"] = lambda s=state: app.jobs.list(s, 50, queue="mail")
    return operations


OPERATIONS = [
    "status",
    "status --queue",
    "stats",
    "stats --queue",
    "dashboard",
    "claim",
    "claim --queue",
    "claim --queue a,b,c",
    "claim, fail",
    "next run",
    "reaper",
    "list",
    "list --queue",
    *(f"list --state {s}{q}" for s in STATES for q in ("", " --queue")),
]


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory):
    from conftest import FakeClock

    clock = FakeClock()
    store = SqliteStore(str(tmp_path_factory.mktemp("plans") / "plans.db"))
    app = App(store=store, clock=clock)
    fill(app, clock)
    yield app, clock
    store.close()


def traced(store: SqliteStore, operation: Callable[[], Any]) -> list[str]:
    """The statements `operation` sent, with their parameters written in."""
    conn = store._file.connection(write=True)
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        operation()
    finally:
        conn.set_trace_callback(None)
    return [sql for sql in dict.fromkeys(seen) if re.match(r"\s*(SELECT|UPDATE|DELETE|WITH)", sql)]


def full_scans(store: SqliteStore, sql: str) -> list[str]:
    """The steps of the statement's plan that read every row of `jobs`."""
    conn = store._file.connection(write=True)
    steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    bad = []
    for step in steps:
        walk = re.match(r"SCAN jobs(?: USING (?:COVERING )?INDEX (\w+))?$", step)
        if walk is None:
            continue
        index = walk.group(1)
        if index in ORDERED_WALKS and re.search(r"\bLIMIT\b", sql):
            continue
        bad.append(step)
    return bad


@pytest.mark.parametrize("name", OPERATIONS)
def test_sqlite_hot_statements_read_indexes_or_counters(sqlite_app, name):
    app, clock = sqlite_app
    operation = hot_operations(app, clock)[name]
    statements = traced(app.store, operation)
    assert statements, f"{name} sent no statement to look at"
    for sql in statements:
        assert not full_scans(app.store, sql), (name, " ".join(sql.split()))


def test_stats_reads_no_job_table_but_through_an_index(sqlite_app):
    """`stats` reads the counter tables; the jobs it reads at all are index ranges: the last
    hour's completions and, for a percentile near a bucket's end, up to EXACT_WALK entries."""
    app, clock = sqlite_app
    statements = traced(app.store, lambda: app.jobs.stats())
    on_jobs = [sql for sql in statements if re.search(r"\bFROM jobs\b", sql)]
    assert on_jobs and all("INDEXED BY" in sql for sql in on_jobs), on_jobs
    walks = [int(n) for sql in statements for n in re.findall(r"\bOFFSET (\d+)", sql)]
    assert all(n < EXACT_WALK for n in walks), walks


def test_counts_by_state_and_queue_read_the_counters_only(sqlite_app):
    """The overview, /metrics and `status` read the maintained counters: no statement of
    theirs touches the jobs table, however many jobs there are."""
    app, _ = sqlite_app
    for read in (
        lambda: app.jobs.counts(),
        lambda: app.jobs.counts("mail"),
        lambda: app.jobs.queue_counts(),
    ):
        statements = traced(app.store, read)
        assert statements and all("job_counts" in sql for sql in statements), statements
        assert not [sql for sql in statements if re.search(r"\bjobs\b", sql)], statements


def test_the_web_follower_and_search_read_index_ranges(sqlite_app):
    """/metrics' follower reads one range of (state, updated_at, seq); a text search reads
    a bounded walk of the list's order."""
    app, clock = sqlite_app
    for read in (
        lambda: app.jobs.finished_after("completed", clock() - 60, 0, 1000),
        lambda: app.jobs.search("echo", "completed", scan=100),
        lambda: app.jobs.search("echo", None, "mail", scan=100),
        lambda: app.jobs.search("echo", "pending", scan=100),
        lambda: app.jobs.search("echo", scan=100),
    ):
        for sql in traced(app.store, read):
            assert not full_scans(app.store, sql), " ".join(sql.split())


# What the triggers do on every job write: searches of counter tables by their keys.
TRIGGER_STEPS = [
    "UPDATE job_counts SET n = n - 1 WHERE queue = 'a' AND state = 'pending'",
    "SELECT MAX(lo) FROM duration_bounds WHERE lo <= 2.5",
    "UPDATE job_durations SET n = n - 1, total = total - 2.5 WHERE queue = 'a' AND lo = "
    "(SELECT MAX(lo) FROM duration_bounds WHERE lo <= 2.5)",
]


@pytest.mark.parametrize("sql", TRIGGER_STEPS)
def test_the_counter_triggers_search_by_key(sqlite_app, sql):
    app, _ = sqlite_app
    conn = app.store._file.connection(write=True)
    steps = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql)]
    assert any(step.startswith("SEARCH") for step in steps), steps
    assert not any(step.startswith("SCAN") for step in steps), steps


# -- MongoDB ------------------------------------------------------------------------------

JOB_COMMANDS = {"find", "aggregate", "count", "distinct", "findAndModify", "update", "delete"}
NOT_EXPLAINED = {
    "$db",
    "lsid",
    "$clusterTime",
    "$readPreference",
    "txnNumber",
    "cursor",
    "writeConcern",
    "readConcern",
}
INDEX_STAGES = {"IXSCAN", "COUNT_SCAN", "DISTINCT_SCAN", "IDHACK", "EXPRESS_IXSCAN"}


def stages(explained: Any) -> list[str]:
    """Every `stage` named anywhere in an explain answer (the shape differs by version)."""
    found: list[str] = []
    if isinstance(explained, dict):
        for key, value in explained.items():
            if key == "stage" and isinstance(value, str):
                found.append(value)
            else:
                found += stages(value)
    elif isinstance(explained, list):
        for item in explained:
            found += stages(item)
    return found


@pytest.fixture(params=MONGO_SERVERS)
def mongo_app(request, clock):
    import pymongo
    from pymongo import monitoring
    from pymongo.uri_parser import parse_uri

    from queuectl.store.mongo import MongoStore

    url = server_url(request, request.param)

    class Recorder(monitoring.CommandListener):
        def __init__(self) -> None:
            self.commands: list[dict[str, Any]] = []
            self.on = False

        def started(self, event: Any) -> None:
            if self.on and event.command_name in JOB_COMMANDS:
                command = dict(event.command)
                if command.get(event.command_name) == "jobs":
                    self.commands.append(command)

        def succeeded(self, event: Any) -> None:
            pass

        def failed(self, event: Any) -> None:
            pass

    recorder = Recorder()
    client = pymongo.MongoClient(url, event_listeners=[recorder])
    name = parse_uri(url)["database"]
    db = client[name]
    db["jobs"].insert_one({"_id": "probe", "state": "probe"})
    probe = explain(db, {"find": "jobs", "filter": {"state": "pending"}})
    db["jobs"].delete_one({"_id": "probe"})
    if not stages(probe):
        client.close()
        pytest.skip(
            "this server's explain names no MongoDB plan stages (nx-27017 answers with a plan "
            "of its own SQLite tables), so IXSCAN vs COLLSCAN cannot be seen here"
        )
    store = MongoStore(client, name, url)
    app = App(store=store, clock=clock)
    fill(app, clock, runs=120)
    yield app, clock, recorder, db
    client.close()


def explain(db: Any, command: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in command.items() if k not in NOT_EXPLAINED}
    if "pipeline" in body:
        body["cursor"] = {}
    return dict(db.command({"explain": body, "verbosity": "queryPlanner"}))


def test_mongodb_hot_commands_use_indexes(mongo_app):
    app, clock, recorder, db = mongo_app
    for name, operation in hot_operations(app, clock).items():
        recorder.commands.clear()
        recorder.on = True
        try:
            operation()
        finally:
            recorder.on = False
        assert recorder.commands, f"{name} sent no command on jobs"
        for command in recorder.commands:
            seen = stages(explain(db, command))
            assert "COLLSCAN" not in seen and INDEX_STAGES & set(seen), (name, command, seen)
