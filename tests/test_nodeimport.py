"""`queuectl import-node --from URL [--dry-run]` (SPEC §7.8): a database the Node version
wrote (ObjectId `_id` plus a string `id`, BSON dates, `next_retry_at`, `processing_by`, a
`configs` collection with dashed keys) is copied into the current store, SQLite or MongoDB.

The Node database is built with mongomock and on the wire lane (nx-27017, real BSON over a
socket); the CLI runs in-process through `cli.main(argv)`, the real error boundary.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Iterator

import pytest

from queuectl import cli as cli_module
from queuectl.app import App
from queuectl.nodeimport import Unusable, node_job
from queuectl.store.base import Store

T0 = datetime.datetime(2025, 3, 1, 12, 0, 0, 250000)  # pymongo's BSON dates: naive UTC, ms
EPOCH0 = T0.replace(tzinfo=datetime.timezone.utc).timestamp()
PASSWORD = "s3cret-pw"
LATER = datetime.datetime(2099, 1, 1)


def at(seconds: float) -> datetime.datetime:
    return T0 + datetime.timedelta(seconds=seconds)


def node_jobs() -> list[dict[str, Any]]:
    """Jobs as the Node version wrote them, in every state, and a few it could not have."""
    from bson import ObjectId

    def job(job_id: str, state: str, attempts: int = 0, **extra: Any) -> dict[str, Any]:
        doc = {
            "_id": ObjectId(),
            "id": job_id,
            "command": f"echo {job_id}",
            "state": state,
            "attempts": attempts,
            "max_retries": 3,
            "created_at": T0,
            "updated_at": at(60),
        }
        doc.update(extra)
        return doc

    return [
        job("n-pending", "pending", next_run_at=None),
        job("n-running", "processing", 2, locked_by="node-w1", locked_at=at(30)),
        job("n-running2", "processing", 1, processing_by="node-w2", next_run_at=at(10)),
        job("n-done", "completed", 1, output="hello\n"),
        job("n-failed", "failed", 1, next_retry_at=at(120), error="exit 1"),
        job("n-dead", "dead", 4, max_retries=3, error="boom"),
        job("n-delayed", "pending", next_run_at=LATER),
        # What cannot be a job:
        {"_id": ObjectId(), "command": "echo no id", "state": "pending"},
        job("n bad id", "pending"),
        job("n-nocmd", "pending", command=None),
        job("n-weird", "paused"),
        job("n-attempts", "pending", attempts="two"),
        job("n-when", "pending", created_at="yesterday"),
        job("n-pending", "completed"),  # the same id again
    ]


NODE_CONFIGS = [
    {"key": "max-retries", "value": 5},
    {"key": "backoff-base", "value": 3},
    {"key": "colour", "value": "blue"},
    {"key": "job-timeout", "value": -1},
]
IMPORTED = {"n-pending", "n-running", "n-running2", "n-done", "n-failed", "n-dead", "n-delayed"}


class Lane:
    """A Node database (`source`) and a queuectl store (`target`) the CLI reaches by URL."""

    def __init__(self, source_url: str, source_db: Any, target_url: str, opener: Any) -> None:
        self.source_url = source_url
        self.source_db = source_db
        self.target_url = target_url
        self._open = opener
        self.opened: list[Store] = []

    def target(self) -> Store:
        """A fresh store object on the target, as a new process would open it."""
        self.opened.append(self._open())
        return self.opened[-1]

    def run(self, capsys, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli_module.main(["--db", self.target_url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    def seed(self) -> None:
        self.source_db["jobs"].insert_many(node_jobs())
        self.source_db["configs"].insert_many([dict(c) for c in NODE_CONFIGS])


LANES = [("mongomock", "sqlite"), ("mongomock", "mongomock"), ("wire", "sqlite"), ("wire", "wire")]


@pytest.fixture(params=LANES, ids=[f"{s}-to-{t}" for s, t in LANES])
def lane(request, tmp_path, monkeypatch, home) -> Iterator[Lane]:
    from queuectl.store import mongo
    from queuectl.store.sqlite import SqliteStore

    source_kind, target_kind = request.param
    path = str(tmp_path / "target.db")
    if source_kind == "mongomock":
        import mongomock

        client = mongomock.MongoClient()
        monkeypatch.setattr(client, "close", lambda: None)

        def connect(url: str, masked: str, secrets: Any = None) -> mongo.MongoStore:
            name = url.rsplit("/", 1)[-1].split("?")[0] or "queuectl"
            return mongo.MongoStore(client, name, masked, secrets)

        # open_store() and the Node source both import `connect` when they meet a
        # mongodb:// URL: both get this in-memory server.
        monkeypatch.setattr(mongo, "connect", connect)
        source_url = f"mongodb://node:{PASSWORD}@db.invalid/nodeapp"
        source_db = client["nodeapp"]
        target_url = "mongodb://db.invalid/target"
    else:
        base = request.getfixturevalue("wire_url")
        wire = request.getfixturevalue("wire_server")
        from wirelane import unique_db

        source_url = base
        target_url = wire.url(unique_db())
        source = mongo.connect(source_url, source_url)
        source_db = source.db
        connect = mongo.connect
    if target_kind == "sqlite":
        target_url = path
        lane = Lane(source_url, source_db, target_url, lambda: SqliteStore(path))
    else:
        lane = Lane(source_url, source_db, target_url, lambda: connect(target_url, target_url))
    yield lane
    for store in lane.opened:
        if target_kind == "wire":
            store.client.drop_database(store.db.name)
        store.close()
    if source_kind == "wire":
        source.close()


def snapshot(store: Store) -> dict[str, Any]:
    jobs = sorted((j.to_record() for j in store.list_jobs(None, 1000)), key=lambda r: r["id"])
    for record in jobs:
        record.pop("seq")
    return {"jobs": jobs, "config": store.get_config()}


def test_jobs_and_config_are_copied(lane, capsys):
    lane.seed()
    code, out, err = lane.run(capsys, "import-node", "--from", lane.source_url)
    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0].startswith(
        "Imported 7 job(s) (1 completed, 1 dead, 1 failed, 4 pending) and 2 config value(s) from "
    ), out
    assert lines[0].endswith("; skipped 7 job(s) and 2 config value(s)"), out
    assert PASSWORD not in out
    assert "  2 running job(s) come back as pending, attempts counted" in lines
    assert "  config: max_retries=5, backoff_base=3" in lines
    for reason in (
        "skipped 1 job(s): no `id` field",
        "skipped 1 job(s): `id` is not a job id",
        "skipped 1 job(s): `command` is missing",
        "skipped 1 job(s): unknown state 'paused' (n-weird)",
        "skipped 1 job(s): `attempts` is not a whole number >= 0 (n-attempts)",
        "skipped 1 job(s): `created_at` is not a time (n-when)",
        "skipped 1 job(s): id repeated in the Node database (first one kept) (n-pending)",
        "skipped 1 config value(s): not a queuectl config key (colour)",
        "skipped 1 config value(s): value is not 0 (none) or between",
    ):
        assert any(line.startswith(f"  {reason}") for line in lines), (reason, out)

    store = lane.target()
    jobs = {j.id: j for j in store.list_jobs(None, 100)}
    assert set(jobs) == IMPORTED
    pending = jobs["n-pending"]
    assert (pending.state, pending.attempts, pending.max_retries) == ("pending", 0, 3)
    assert pending.created_at == pytest.approx(EPOCH0)
    assert pending.updated_at == pytest.approx(EPOCH0 + 60)
    assert pending.run_at == pytest.approx(EPOCH0)
    running = jobs["n-running"]
    assert (running.state, running.attempts, running.locked_by) == ("pending", 2, None)
    assert "node-w1" in running.last_error and "attempts are counted" in running.last_error
    assert jobs["n-running2"].state == "pending" and "node-w2" in jobs["n-running2"].last_error
    done = jobs["n-done"]
    assert (done.state, done.stdout, done.finished_at) == ("completed", "hello\n", done.updated_at)
    failed = jobs["n-failed"]
    assert (failed.state, failed.last_error) == ("failed", "exit 1")
    assert failed.run_at == pytest.approx(EPOCH0 + 120)
    assert jobs["n-delayed"].run_at == pytest.approx(4070908800.0)
    assert (jobs["n-dead"].state, jobs["n-dead"].attempts) == ("dead", 4)
    assert store.get_config() == {"max_retries": 5, "backoff_base": 3}
    # The Node database was only read: no collection, index or document was added.
    assert set(lane.source_db.list_collection_names()) == {"jobs", "configs"}
    assert len(list(lane.source_db["jobs"].list_indexes())) == 1
    assert lane.source_db["jobs"].count_documents({}) == len(node_jobs())

    code, out, err = lane.run(capsys, "status", "--json")
    assert code == 0, err
    assert json.loads(out)["jobs"] == {
        "pending": 4,
        "processing": 0,
        "completed": 1,
        "failed": 1,
        "dead": 1,
    }
    code, out, err = lane.run(capsys, "dlq", "list", "--json")
    assert [j["id"] for j in json.loads(out)] == ["n-dead"]


def test_importing_twice_imports_nothing_new(lane, capsys):
    lane.seed()
    assert lane.run(capsys, "import-node", "--from", lane.source_url)[0] == 0
    before = snapshot(lane.target())
    code, out, err = lane.run(capsys, "import-node", "--from", lane.source_url, "--json")
    assert (code, err) == (0, ""), err
    report = json.loads(out)
    assert report["jobs"]["imported"] == 0 and report["config"]["imported"] == {}
    skipped = {s["reason"]: s["count"] for s in report["jobs"]["skipped"]}
    assert skipped["already in this store"] == len(IMPORTED)
    config_skips = {s["reason"]: s["examples"] for s in report["config"]["skipped"]}
    assert sorted(config_skips["already set to that value"]) == ["backoff_base", "max_retries"]
    assert snapshot(lane.target()) == before


def test_a_dry_run_reports_the_same_and_changes_nothing(lane, capsys):
    lane.seed()
    code, dry, err = lane.run(capsys, "import-node", "--from", lane.source_url, "--dry-run")
    assert (code, err) == (0, ""), err
    assert snapshot(lane.target()) == {"jobs": [], "config": {}}
    code, real, err = lane.run(capsys, "import-node", "--from", lane.source_url)
    assert code == 0, err
    first, *rest = dry.splitlines()
    assert first.startswith("Would import 7 job(s)")
    assert first.endswith(" (dry run: nothing was changed)")
    assert rest[0] == "  2 running job(s) would come back as pending, attempts counted"
    assert real.splitlines() == [
        first.replace("Would import", "Imported").removesuffix(" (dry run: nothing was changed)"),
        rest[0].replace("would come", "come"),
        *rest[1:],
    ]


def test_a_worker_runs_the_imported_jobs(lane, capsys):
    lane.seed()
    lane.source_db["jobs"].delete_one({"id": "n-delayed"})  # a burst worker would wait for it
    assert lane.run(capsys, "import-node", "--from", lane.source_url)[0] == 0
    store = lane.target()
    app = App(store=store)
    worker = app.worker(burst=True, log=lambda line: None)
    assert worker.run() == 0
    states = {j.id: j.state for j in store.list_jobs(None, 100)}
    assert states == {
        **{job_id: "completed" for job_id in ("n-pending", "n-running", "n-running2", "n-done")},
        "n-failed": "completed",
        "n-dead": "dead",
    }
    assert store.get_job("n-running").attempts == 3


def test_the_config_of_this_store_is_kept(lane, capsys):
    lane.seed()
    assert lane.run(capsys, "config", "set", "max_retries", "7")[0] == 0
    code, out, err = lane.run(capsys, "import-node", "--from", lane.source_url)
    assert code == 0, err
    assert "  skipped 1 config value(s): already set in this store (kept) (max_retries)" in out
    assert lane.target().get_config() == {"max_retries": 7, "backoff_base": 3}


def test_an_imported_notify_url_is_shown_by_its_host_only(lane, capsys):
    # A webhook URL often carries its token in the path or query: a worker logs only the
    # host, and so does the import's summary (the store keeps the URL whole).
    url = "https://hooks.example.com/services/T0KEN-PATH?token=T0KEN-QUERY"
    lane.source_db["configs"].insert_one({"key": "notify-url", "value": url})
    for args in ([], ["--json"]):
        code, out, err = lane.run(
            capsys, "import-node", "--from", lane.source_url, "--dry-run", *args
        )
        assert (code, err) == (0, ""), err
        assert "T0KEN" not in out, out
        assert "hooks.example.com (path and query hidden)" in out, out
    code, out, _ = lane.run(capsys, "import-node", "--from", lane.source_url)
    assert code == 0 and "T0KEN" not in out
    assert "  config: notify_url=hooks.example.com (path and query hidden)" in out.splitlines()
    assert lane.target().get_config() == {"notify_url": url}


def test_a_database_that_is_not_a_node_one_is_refused(lane, capsys):
    code, out, err = lane.run(capsys, "import-node", "--from", lane.source_url)
    assert (code, out) == (1, "")
    assert err.startswith("Error: database ") and "has no `jobs` or `configs`" in err, err
    assert err.count("\n") == 1 and PASSWORD not in err


def test_progress_goes_to_stderr_only_on_a_terminal(lane, capsys, monkeypatch):
    import sys

    lane.seed()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    code, out, err = lane.run(capsys, "import-node", "--from", lane.source_url, "--dry-run")
    assert code == 0
    assert "Reading the Node database: 14" in err and err.endswith("\r\x1b[K")
    assert "Reading" not in out


@pytest.mark.parametrize(
    "url, code, words",
    [
        ("sqlite:///x.db", 2, "is not a MongoDB URL"),
        (f"mongodb://u:{PASSWORD}@[bad/x", 2, "bad MongoDB URL mongodb://u:***@"),
        ("/tmp/node.db", 2, "is not a MongoDB URL"),
    ],
)
def test_a_bad_url_is_refused(tmp_path, capsys, home, url, code, words):
    capsys.readouterr()
    assert cli_module.main(["--db", str(tmp_path / "t.db"), "import-node", "--from", url]) == code
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("Error: ") and err.count("\n") == 1, err
    assert words in err and PASSWORD not in err
    assert not (tmp_path / "t.db").exists()


def test_an_unreachable_server_is_reported_without_the_password(tmp_path, capsys, home):
    from wirelane import free_port

    url = f"mongodb://u:{PASSWORD}@127.0.0.1:{free_port()}/node?serverSelectionTimeoutMS=300"
    capsys.readouterr()
    assert cli_module.main(["--db", str(tmp_path / "t.db"), "import-node", "--from", url]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("Error: Node version's database at mongodb://u:***@127.0.0.1:"), err
    assert PASSWORD not in err and err.count("\n") == 1


def test_a_shared_database_skips_queuectl_s_own_jobs(tmp_path, capsys, home, monkeypatch):
    # The Node version and queuectl used one database: the import reads queuectl's own jobs
    # in `jobs` too, and names them as such.
    import mongomock
    from bson import ObjectId

    from queuectl.store import mongo

    client = mongomock.MongoClient()
    monkeypatch.setattr(client, "close", lambda: None)
    monkeypatch.setattr(
        mongo, "connect", lambda url, masked, secrets=None: mongo.MongoStore(client, "shared")
    )
    url = "mongodb://db.invalid/shared"
    capsys.readouterr()
    assert cli_module.main(["--db", url, "enqueue", "--id", "ours", "true"]) == 0
    client["shared"]["jobs"].insert_one(
        {"_id": ObjectId(), "id": "theirs", "command": "true", "state": "pending", "attempts": 0}
    )
    capsys.readouterr()
    assert cli_module.main(["--db", url, "import-node", "--from", url]) == 0
    out, _err = capsys.readouterr()
    assert out.startswith("Imported 1 job(s) (1 pending)"), out
    assert "skipped 1 job(s): a queuectl job, not a Node one (the database is shared) (ours)" in out
    assert {j.id for j in mongo.MongoStore(client, "shared").list_jobs(None, 10)} == {
        "ours",
        "theirs",
    }


# -- one document at a time -------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        (T0, EPOCH0),
        (EPOCH0 * 1000, EPOCH0),  # JavaScript's Date.now(): milliseconds
        (EPOCH0, EPOCH0),
        ("2025-03-01T12:00:00.250Z", EPOCH0),
    ],
)
def test_times_in_every_form_the_node_version_may_have_written(value, expected):
    doc = {"id": "t", "command": "true", "state": "pending", "attempts": 0, "created_at": value}
    job = node_job(doc, default_max_retries=3, now=0.0)
    assert job.created_at == pytest.approx(expected)
    assert (job.max_retries, job.updated_at) == (3, job.created_at)


def test_a_job_without_created_at_takes_its_object_id_s_time():
    from bson import ObjectId

    oid = ObjectId.from_datetime(T0.replace(microsecond=0))
    doc = {"_id": oid, "id": "t", "command": "true", "state": "dead", "attempts": 4}
    job = node_job(doc, default_max_retries=3, now=0.0)
    assert job.created_at == pytest.approx(EPOCH0 - 0.25)


@pytest.mark.parametrize(
    "changes, reason",
    [
        ({"attempts": True}, "`attempts` is not a whole number >= 0"),
        ({"attempts": -1}, "`attempts` is not a whole number >= 0"),
        ({"max_retries": 1.5}, "`max_retries` is not a whole number >= 0"),
        ({"created_at": -5.0}, "`created_at` is outside 1970-9999"),
        ({"updated_at": {"$date": 1}}, "`updated_at` is not a time"),
        ({"command": "   "}, "`command` is missing, blank, not text, or over 64 KiB"),
        ({"id": 17}, "`id` is not a job id (1-128 characters of A-Z a-z 0-9 . _ : -)"),
    ],
)
def test_a_document_that_cannot_be_a_job_says_why(changes, reason):
    doc = {"id": "t", "command": "true", "state": "pending", "attempts": 0, **changes}
    with pytest.raises(Unusable) as caught:
        node_job(doc, default_max_retries=3, now=0.0)
    assert caught.value.reason == reason
