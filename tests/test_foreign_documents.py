"""Documents of another shape in queuectl's collections (SPEC §7.8): a database once written by
the Node version holds jobs keyed by an ObjectId, with BSON dates and no `run_at`. They must
never crash a worker or a command: commands succeed and skip them (issue 10, defect 8).

Run on mongomock (in-process) and on the wire lane (a real server, the CLI in real processes).
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Iterator

import pytest
from procutil import QueueEnv, unique

from queuectl import cli as cli_module
from queuectl.app import App
from queuectl.store.mongo import MongoStore

NODE_STATES = ("pending", "processing", "completed", "failed", "dead")


def node_job(state: str) -> dict[str, Any]:
    """A job as the Node version wrote it (seed design, SPEC §7.8)."""
    from bson import ObjectId

    created = datetime.datetime(2025, 3, 1, 12, 0, 0)
    doc: dict[str, Any] = {
        "_id": ObjectId(),
        "id": f"node-{state}",
        "command": "echo from node",
        "state": state,
        "attempts": 1 if state != "pending" else 0,
        "max_retries": 3,
        "created_at": created,
        "updated_at": created,
        "next_retry_at": created if state == "failed" else None,
    }
    if state == "processing":
        doc.update(locked_by="node-worker-1", locked_at=created)
    return doc


class Lane:
    """The CLI and the store of one MongoDB lane. Commands run in-process through
    `cli.main(argv)`, the real error boundary, on the lane's one store; the wire lane also
    has a QueueEnv for real worker processes."""

    def __init__(self, kind: str, store: MongoStore, q: QueueEnv | None = None) -> None:
        self.kind = kind
        self.store = store
        self.q = q

    def run(self, *args: str, capsys: Any) -> tuple[int, str, str]:
        """`queuectl ARGS`: (exit code, stdout, stderr)."""
        capsys.readouterr()
        try:
            code = cli_module.main(list(args))
        except Exception as exc:  # noqa: BLE001 - a crash is what the test looks for
            return 1, "", f"Traceback (in-process): {type(exc).__name__}: {exc}"
        out, err = capsys.readouterr()
        return code, out, err


@pytest.fixture(params=["mongomock", "wire"])
def lane(request, tmp_path, monkeypatch, home) -> Iterator[Lane]:
    """A fresh MongoDB store on each lane; the CLI, given its URL, gets that store."""
    from queuectl.store import mongo

    if request.param == "wire":
        url = request.getfixturevalue("wire_url")
        store = mongo.connect(url, url)
        q = QueueEnv(tmp_path, url)
    else:
        import mongomock

        url = "mongodb://db.invalid/q"
        store = mongo.MongoStore(mongomock.MongoClient(), "q", url)
        q = None
    # One client for the test, whichever command opens the store (and none left open).
    monkeypatch.setattr(mongo, "connect", lambda *_args, **_kwargs: store)
    monkeypatch.setattr(store, "close", lambda: None)
    monkeypatch.setenv("QUEUECTL_DB", url)
    try:
        yield Lane(request.param, store, q)
    finally:
        if q is not None:
            q.kill_all()
        store.client.close()


@pytest.fixture
def seeded(lane, capsys) -> tuple[Lane, str]:
    """The lane with Node-version jobs in every state and one job of ours."""
    lane.store.jobs.insert_many([node_job(state) for state in NODE_STATES])
    ours = unique("ours")
    code, _out, err = lane.run("enqueue", "--id", ours, "echo ours", capsys=capsys)
    assert code == 0, err
    return lane, ours


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("list",), id="list"),
        pytest.param(("list", "--state", "pending"), id="list-pending"),
        pytest.param(("dlq", "list"), id="dlq-list"),
        pytest.param(("worker", "list"), id="worker-list"),
        pytest.param(("status",), id="status"),
    ],
)
def test_read_commands_skip_a_node_version_document(seeded, capsys, command):
    lane, ours = seeded
    code, out, err = lane.run(*command, capsys=capsys)
    assert code == 0, err
    assert "Traceback" not in err
    if command[0] == "list":
        assert ours in out


def test_status_and_stats_count_around_a_node_version_document(seeded, capsys):
    lane, _ours = seeded
    code, out, err = lane.run("status", "--json", capsys=capsys)
    assert (code, "Traceback" in err) == (0, False), err
    assert json.loads(out)["jobs"]["pending"] >= 1
    # A completed document without a duration is not a completed run of ours.
    code, out, err = lane.run("stats", "--json", capsys=capsys)
    assert (code, "Traceback" in err) == (0, False), err
    assert json.loads(out)["duration"] == {"mean": None, "p50": None, "p95": None}


def test_a_worker_runs_its_jobs_beside_a_node_version_document(seeded):
    lane, ours = seeded
    if lane.q is not None:  # real processes: the exit status and output a user sees
        lane.q.config(poll_interval=0.1)
        supervisor = lane.q.start_workers("--burst")
        code = supervisor.wait(30)
        assert "Traceback" not in supervisor.output(), supervisor.output()
        assert code == 0, supervisor.output()
    else:
        worker = App(store=lane.store).worker(burst=True, log=lambda line: None)
        assert worker.run() == 0
    job = lane.store.get_job(ours)
    assert job is not None and (job.state, job.stdout) == ("completed", "ours\n")


@pytest.fixture
def foreign_config_and_schedule(seeded) -> tuple[Lane, str]:
    """Beside the Node jobs: a `config` document without a value and a `schedules` document
    of another shape, as another program sharing the database may leave."""
    from bson import ObjectId

    lane, ours = seeded
    lane.store.config.insert_one({"_id": ObjectId(), "key": "max-retries"})
    lane.store.config.insert_one({"_id": "poll_interval", "setting": 0.1})
    lane.store.schedules.insert_one({"_id": ObjectId(), "name": "nightly", "every": "1d"})
    lane.store.schedules.insert_one({"_id": "half", "cron": "* * * * *", "command": 7})
    return lane, ours


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("config", "list"), id="config-list"),
        pytest.param(("config", "get", "max_retries"), id="config-get"),
        pytest.param(("config", "set", "max_retries", "4"), id="config-set"),
        pytest.param(("worker", "list"), id="worker-list"),
        pytest.param(("schedule", "list"), id="schedule-list"),
        pytest.param(("status",), id="status"),
        pytest.param(("show", "node-pending"), id="show"),
    ],
)
def test_commands_skip_config_and_schedule_documents_of_another_shape(
    foreign_config_and_schedule, capsys, command
):
    lane, _ours = foreign_config_and_schedule
    code, out, err = lane.run(*command, capsys=capsys)
    assert "Traceback" not in err and "unexpected" not in err, err
    if command[0] == "show":  # asked for by its id: said what it is, exit 1
        assert code == 1 and "is not a queuectl job" in err, err
    else:
        assert code == 0, err


def test_a_worker_runs_beside_config_and_schedule_documents_of_another_shape(
    foreign_config_and_schedule,
):
    test_a_worker_runs_its_jobs_beside_a_node_version_document(foreign_config_and_schedule)
