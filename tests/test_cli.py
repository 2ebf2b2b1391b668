"""The command line as a user sees it (SPEC §3 and §5), in-process through `cli.main(argv)`.

Every test takes the `cli` fixture, so it runs once on SQLite and once on MongoDB (mongomock,
reached through a `mongodb://` URL exactly as a user would give it).
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from queuectl import __version__
from queuectl import cli as cli_module
from queuectl.config import Config
from queuectl.models import PUBLIC_FIELDS, STATES, Job, WorkerInfo
from queuectl.store.base import Store

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CONFIG_DEFAULTS = {
    "max_retries": 3,
    "backoff_base": 2,
    "backoff_max": 3600,
    "backoff_jitter": 0,
    "job_timeout": 0,
    "poll_interval": 1,
    "heartbeat_interval": 30,
    "stale_after": 600,
    "retention": 604800,
    "notify_url": "",
    "notify_on": "dead",
}
CLI_BACKENDS = ["sqlite", "mongomock"]


@dataclass
class Result:
    """What one run of the CLI left: its exit code and both streams."""

    code: int
    out: str
    err: str


class Cli:
    """Runs `queuectl` in-process against one store, and looks into that store directly."""

    def __init__(self, kind: str, url: str, store: Store, capsys, monkeypatch) -> None:
        self.kind = kind
        self.url = url
        self.store = store
        self._capsys = capsys
        self._monkeypatch = monkeypatch
        # SQLite is named with --db, MongoDB through QUEUECTL_DB: both ways get exercised.
        self._prefix = ["--db", url] if kind == "sqlite" else []
        if kind != "sqlite":
            monkeypatch.setenv("QUEUECTL_DB", url)

    def __call__(self, *args: str, stdin: str | bytes | None = None) -> Result:
        """Run `queuectl <args>`; `stdin` is what a `-` file reads."""
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            self._monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        self._capsys.readouterr()
        code = cli_module.main([*self._prefix, *args])
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str, stdin: str | None = None) -> str:
        """Run a command that must succeed silently on stderr; its stdout."""
        result = self(*args, stdin=stdin)
        assert (result.code, result.err) == (0, ""), result
        return result.out

    def json(self, *args: str) -> Any:
        """Run a read command with --json and parse its one document."""
        return json.loads(self.ok(*args, "--json"))

    def fails(self, code: int, *args: str, stdin: str | None = None) -> str:
        """Run a command that must fail with `code`, one `Error:` line and no change to the
        store; the error line."""
        before = self.dump()
        result = self(*args, stdin=stdin)
        assert result.code == code, result
        assert_one_error_line(result.err)
        assert self.dump() == before
        return result.err

    def dump(self) -> dict[str, Any]:
        """Everything the store holds, for before/after comparisons."""
        return {
            "jobs": sorted(
                (j.to_record() for j in self.store.list_jobs(None, 10**6)), key=lambda r: r["id"]
            ),
            "config": self.store.get_config(),
            "workers": sorted(
                (w.to_record() for w in self.store.list_workers()), key=lambda r: r["id"]
            ),
        }

    def seed(self, job_id: str, state: str = "pending", **fields: Any) -> Job:
        """Put a job straight into the store (e.g. a dead one, without running workers)."""
        now = time.time()
        values: dict[str, Any] = {
            "command": f"echo {job_id}",
            "run_at": now,
            "created_at": now,
            "updated_at": now,
            "seq": time.time_ns(),
        }
        values.update(fields)
        job = Job(id=job_id, state=state, **values)
        self.store.insert_jobs([job])
        return job


def assert_one_error_line(err: str) -> None:
    """SPEC §3: stderr is exactly one line starting `Error: `, and never a traceback."""
    assert err.startswith("Error: "), err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err


def make_cli(kind: str, tmp_path: Path, capsys, monkeypatch) -> Iterator[Cli]:
    """A Cli on a fresh store of `kind` ("sqlite" or "mongomock")."""
    if kind == "sqlite":
        from queuectl.store.sqlite import SqliteStore

        path = tmp_path / "cli-queue.db"
        store: Store = SqliteStore(str(path))
        yield Cli(kind, f"sqlite:///{path}", store, capsys, monkeypatch)
        store.close()
        return
    import mongomock

    from queuectl.store import mongo

    client = mongomock.MongoClient()
    opened: list[str] = []

    def connect(url: str, masked: str, secret: str | None = None) -> mongo.MongoStore:
        opened.append(masked)
        name = url.rsplit("/", 1)[-1].split("?")[0] or "queuectl"
        return mongo.MongoStore(client, name, masked, secret)

    # open_store() imports `connect` when it meets a mongodb:// URL, so the CLI gets a
    # MongoStore on this shared in-memory server instead of a real client.
    monkeypatch.setattr(mongo, "connect", connect)
    yield Cli(
        kind,
        "mongodb://tester:hunter2@db.invalid/queuectl_cli",
        mongo.MongoStore(client, "queuectl_cli"),
        capsys,
        monkeypatch,
    )
    assert all("hunter2" not in url for url in opened)  # only a masked URL reaches messages


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn, with a private QUEUECTL_HOME and a clean environment."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


@pytest.fixture
def eastern():
    """Local time is US Eastern for the test (restored afterwards, tzset included)."""
    import os

    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def enqueued_id(out: str) -> str:
    match = re.fullmatch(r"Enqueued job (\S+)\n", out)
    assert match, out
    return match.group(1)


# -- enqueue ------------------------------------------------------------------------------------


def test_enqueue_a_json_spec(cli):
    out = cli.ok("enqueue", '{"id":"job1","command":"sleep 2","max_retries":3}')
    assert out == "Enqueued job job1\n"
    job = cli.json("show", "job1")
    assert (job["command"], job["state"], job["attempts"], job["max_retries"]) == (
        "sleep 2",
        "pending",
        0,
        3,
    )
    assert (job["priority"], job["timeout"]) == (0, None)


def test_enqueue_a_plain_command_gets_a_generated_id(cli):
    before = time.time()
    job_id = enqueued_id(cli.ok("enqueue", "echo Hello World"))
    assert re.fullmatch(r"[0-9A-Z]{20}", job_id)
    job = cli.json("show", job_id)
    assert job["command"] == "echo Hello World"
    assert job["run_at"] == job["created_at"]
    assert cli.store.get_job(job_id).created_at == pytest.approx(before, abs=5)


def test_enqueue_with_every_option(cli):
    cli.ok(
        "enqueue",
        "--command",
        "echo hi",
        "--id",
        "job2",
        "--priority",
        "10",
        "--delay",
        "30",
        "--max-retries",
        "5",
        "--timeout",
        "60",
    )
    job = cli.store.get_job("job2")
    assert (job.command, job.priority, job.max_retries, job.timeout) == ("echo hi", 10, 5, 60)
    assert job.run_at == pytest.approx(job.created_at + 30, abs=0.01)
    shown = cli.json("show", "job2")
    assert shown["timeout"] == 60 and shown["priority"] == 10


def test_options_override_the_same_fields_of_the_spec(cli):
    spec = '{"id":"a","command":"echo spec","priority":1,"run_at":"2030-01-01T00:00:00Z"}'
    cli.ok("enqueue", spec, "-c", "echo option", "--priority", "7", "--delay", "5")
    job = cli.store.get_job("a")
    assert (job.command, job.priority) == ("echo option", 7)
    assert job.run_at == pytest.approx(job.created_at + 5, abs=0.01)


def test_run_at_with_a_zone_and_without_one(cli, eastern):
    cli.ok("enqueue", "true", "--id", "utc", "--run-at", "2030-01-01T00:00:00Z")
    cli.ok("enqueue", "true", "--id", "local", "--run-at", "2030-01-01T00:00:00")
    assert cli.json("show", "utc")["run_at"] == "2030-01-01T00:00:00.000Z"
    assert cli.json("show", "local")["run_at"] == "2030-01-01T05:00:00.000Z"


def test_enqueue_quiet_prints_only_the_id(cli):
    assert cli.ok("enqueue", "-q", "true", "--id", "quiet1") == "quiet1\n"
    assert cli.ok("enqueue", "--quiet", "true").strip() == cli.store.list_jobs(None, 1)[0].id


def test_enqueue_json_prints_the_job_object(cli):
    doc = json.loads(cli.ok("enqueue", "--json", '{"id":"j","command":"true"}'))
    assert isinstance(doc, dict)
    assert list(doc) == list(PUBLIC_FIELDS)
    assert doc == cli.json("show", "j")


def test_enqueue_uses_the_configured_defaults(cli):
    cli.ok("config", "set", "max_retries", "7")
    cli.ok("config", "set", "job-timeout", "45")
    cli.ok("enqueue", "true", "--id", "d")
    cli.ok("enqueue", "true", "--id", "e", "--max-retries", "0", "--timeout", "2")
    assert (cli.store.get_job("d").max_retries, cli.store.get_job("d").timeout) == (7, 45)
    assert (cli.store.get_job("e").max_retries, cli.store.get_job("e").timeout) == (0, 2)


JSONL = (
    '{"id":"f1","command":"echo 1"}\n\n{"id":"f2","command":"echo 2","priority":3}\n'
    '{"command":"echo 3"}\n'
)


def test_enqueue_a_file_of_json_lines(cli, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(JSONL)
    assert cli.ok("enqueue", "--file", str(path)) == "Enqueued 3 jobs\n"
    commands = sorted(j.command for j in cli.store.list_jobs(None, 10))
    assert commands == ["echo 1", "echo 2", "echo 3"]
    assert cli.store.get_job("f2").priority == 3


def test_enqueue_a_file_from_stdin(cli):
    out = cli.ok("enqueue", "--file", "-", "--quiet", stdin=JSONL)
    ids = out.split()
    assert ids[:2] == ["f1", "f2"] and len(ids) == 3
    assert {j.id for j in cli.store.list_jobs(None, 10)} == set(ids)


def test_a_batch_of_one_says_one_job(cli):
    # SPEC §5, details that scripts rely on: "Enqueued 1 job" for a batch of one.
    assert cli.ok("enqueue", "-f", "-", stdin='{"command":"true"}\n') == "Enqueued 1 job\n"
    assert cli.ok("enqueue", "-f", "-", stdin='{"command":"a"}\n{"command":"b"}\n') == (
        "Enqueued 2 jobs\n"
    )


def test_a_batch_with_json_prints_an_array(cli):
    docs = json.loads(cli.ok("enqueue", "-f", "-", "--json", stdin='{"command":"true"}\n'))
    assert isinstance(docs, list) and len(docs) == 1
    assert docs[0]["command"] == "true" and list(docs[0]) == list(PUBLIC_FIELDS)


def test_a_batch_line_ends_only_at_a_newline(cli, tmp_path):
    # JSON allows U+2028, U+0085 and form feeds raw inside strings; CRLF files are common.
    commands = ["echo a\u2028b", "echo c\x85d", "echo e\x0cf"]
    text = "".join(json.dumps({"command": c}, ensure_ascii=False) + "\r\n" for c in commands)
    path = tmp_path / "odd.jsonl"
    path.write_bytes(text.encode())
    assert cli.ok("enqueue", "--file", str(path)) == "Enqueued 3 jobs\n"
    assert sorted(j.command for j in cli.store.list_jobs(None, 10)) == sorted(commands)


def test_options_apply_to_every_line_of_a_batch(cli):
    cli.ok("enqueue", "-f", "-", "--priority", "9", stdin=JSONL)
    assert {j.priority for j in cli.store.list_jobs(None, 10)} == {9}


def test_one_bad_line_refuses_the_whole_batch(cli):
    cli.ok("enqueue", "true", "--id", "existing")
    bad = '{"id":"b1","command":"true"}\n{"id":"b2","command":""}\n{"id":"b3","command":"x"}\n'
    err = cli.fails(2, "enqueue", "--file", "-", stdin=bad)
    assert "line 2" in err and "blank" in err
    err = cli.fails(2, "enqueue", "--file", "-", stdin='{"command":"a"}\nnot json\n')
    assert "line 2" in err and "JSON" in err


def test_a_repeated_or_taken_id_fails_the_whole_batch_with_exit_1(cli):
    cli.ok("enqueue", "true", "--id", "taken")
    err = cli.fails(
        1, "enqueue", "-f", "-", stdin='{"id":"n1","command":"a"}\n{"id":"n1","command":"b"}\n'
    )
    assert "n1" in err
    err = cli.fails(
        1, "enqueue", "-f", "-", stdin='{"id":"n2","command":"a"}\n{"id":"taken","command":"b"}\n'
    )
    assert "taken" in err


def test_a_duplicate_id_is_exit_1_and_keeps_the_first_job(cli):
    cli.ok("enqueue", "echo first", "--id", "dup")
    err = cli.fails(1, "enqueue", "echo second", "--id", "dup")
    assert "dup" in err and "exists" in err
    assert cli.store.get_job("dup").command == "echo first"


@pytest.mark.parametrize(
    "args, words",
    [
        (["{bad"], "not valid JSON"),
        (['{"command":"x","foo":1}'], "unknown field 'foo'"),
        (['{"command":"x","max_retries":-1}'], "max_retries"),
        (['{"command":"x","max_retries":"3"}'], "max_retries must be an integer"),
        (['{"command":"   "}'], "blank"),
        (['{"command":"x","delay":NaN}'], "NaN"),
        (['{"command":"x","timeout":Infinity}'], "Infinity"),
        (['{"command":"x","timeout":1e999}'], "timeout"),
        (['{"id":"x y","command":"x"}'], "A-Z a-z 0-9 . _ : -"),
        (['{"command":"x","run_at":"2030-01-01T00:00:00Z","delay":3}'], "not both"),
        (["true", "--delay", "3", "--run-at", "2030-01-01T00:00:00Z"], "not both"),
        (["true", "--run-at", "tomorrow"], "ISO 8601"),
        (["true", "--run-at", "0001-01-01T00:00:00+01:00"], "1970"),
        (["true", "--priority", "high"], "--priority"),
        (["true", "--priority", str(2**31)], "priority must be between"),
        (["true", "--delay", "-1"], "delay must be >= 0"),
        (["true", "--delay", "nan"], "delay"),
        (["true", "--timeout", "0"], "timeout must be > 0"),
        (["true", "--max-retries", "-1"], "max_retries"),
        (["true", "--id", ""], "A-Z a-z 0-9"),
        (["x" * (64 * 1024 + 1)], "64 KiB"),
        (["--id", "a"], "no command given"),
        ([], "no command given"),
        (["true", "--file", "-"], "--file takes no SPEC"),
        (["--file", "/nonexistent/jobs.jsonl"], "cannot read"),
        (["--file", "-"], "batch is empty"),
        (["true", "--bogus"], "--bogus"),
    ],
)
def test_invalid_enqueue_input_is_exit_2_and_enqueues_nothing(cli, args, words):
    err = cli.fails(2, "enqueue", *args, stdin="")
    assert words in err


def test_a_long_bad_value_still_gives_a_short_error_line(cli):
    err = cli.fails(2, "enqueue", json.dumps({"command": "x", "priority": "9" * 100_000}))
    assert "priority must be an integer" in err and len(err) < 300
    err = cli.fails(2, "enqueue", json.dumps({"command": "x", "k" * 100_000: 1}))
    assert "unknown field" in err and len(err) < 300
    err = cli.fails(1, "show", "y" * 1_000_000)
    assert "no job" in err and len(err) < 1100


# -- status -------------------------------------------------------------------------------------


def seed_one_of_each(cli: Cli) -> None:
    """Jobs in every state, and workers: one active, one silent (lost), one stopped."""
    for state, count in (
        ("pending", 4),
        ("processing", 1),
        ("completed", 3),
        ("failed", 0),
        ("dead", 2),
    ):
        for n in range(count):
            cli.seed(f"{state}-{n}", state)
    now = time.time()
    for wid, status, beat in (
        ("w-live", "busy", now),
        ("w-silent", "idle", now - 10_000),
        ("w-gone", "stopped", now),
    ):
        # Another host and an impossible pid: nothing here may ever be signalled.
        cli.store.register_worker(
            WorkerInfo(
                id=wid,
                host="elsewhere.invalid",
                pid=2**22 + 1,
                status=status,
                started_at=now - 60,
                last_heartbeat=beat,
            )
        )


def test_status_text_is_exactly_as_the_spec_shows(cli):
    seed_one_of_each(cli)
    assert cli.ok("status") == (
        "Pending: 4\nProcessing: 1\nCompleted: 3\nFailed: 0\nDead (DLQ): 2\nActive Workers: 1\n"
    )


def test_status_json(cli):
    seed_one_of_each(cli)
    assert cli.json("status") == {
        "jobs": {"pending": 4, "processing": 1, "completed": 3, "failed": 0, "dead": 2},
        "workers": {"active": 1},
    }


def test_status_of_an_empty_store_prints_every_state(cli):
    assert cli.ok("status").splitlines() == [
        "Pending: 0",
        "Processing: 0",
        "Completed: 0",
        "Failed: 0",
        "Dead (DLQ): 0",
        "Active Workers: 0",
    ]


# -- list ---------------------------------------------------------------------------------------


def header(table: str) -> list[str]:
    return re.split(r"\s{2,}", table.splitlines()[0].strip())


def test_list_table_columns(cli):
    cli.ok("enqueue", "echo a", "--id", "a")
    assert header(cli.ok("list")) == [
        "ID",
        "State",
        "Attempts",
        "Priority",
        "Command",
        "Updated At",
    ]
    assert header(cli.ok("list", "--state", "pending")) == [
        "ID",
        "State",
        "Attempts",
        "Priority",
        "Command",
        "Run At",
        "Ready",
    ]
    row = cli.ok("list").splitlines()[2].split()
    assert row[:5] == ["a", "pending", "0", "0", "echo"]
    assert ISO_UTC.match(row[-1])


def test_list_shortens_long_commands(cli):
    long_command = "echo " + "x" * 300
    cli.ok("enqueue", long_command, "--id", "long")
    out = cli.ok("list")
    assert long_command not in out and "…" in out
    assert max(len(line) for line in out.splitlines()) < 200


def test_pending_and_failed_are_listed_in_claim_order(cli):
    now = time.time()
    # Ready ones by priority, then earliest run_at, then enqueue order (seq); then the
    # waiting ones, by run_at: the order workers will take them in.
    cli.seed("low-early", priority=0, run_at=now - 100, seq=1)
    cli.seed("high-late", priority=5, run_at=now + 100, seq=2)
    cli.seed("high-early", priority=5, run_at=now - 50, seq=3)
    cli.seed("low-early-2", priority=0, run_at=now - 100, seq=4)
    cli.seed("neg", priority=-3, run_at=now - 1000, seq=5)
    # Jobs ready now come first; high-late waits for its run_at, so it comes last.
    expected = ["high-early", "low-early", "low-early-2", "neg", "high-late"]
    assert [j["id"] for j in cli.json("list", "--state", "pending")] == expected
    rows = cli.ok("list", "--state", "pending").splitlines()[2:]
    assert [r.split()[0] for r in rows] == expected
    for n, job_id in enumerate(["f-b", "f-a"]):
        cli.seed(job_id, "failed", run_at=now + n, seq=10 + n)
    assert [j["id"] for j in cli.json("list", "--state", "failed")] == ["f-b", "f-a"]


def test_other_states_and_all_are_listed_most_recently_updated_first(cli):
    now = time.time()
    cli.seed("old", "completed", updated_at=now - 30)
    cli.seed("new", "completed", updated_at=now - 10)
    cli.seed("mid", "dead", updated_at=now - 20)
    cli.seed("p", "pending", updated_at=now - 40)
    assert [j["id"] for j in cli.json("list", "--state", "completed")] == ["new", "old"]
    assert [j["id"] for j in cli.json("list")] == ["new", "mid", "old", "p"]


def test_list_limit(cli):
    for n in range(60):
        cli.seed(f"j{n:02d}", seq=n)
    assert len(cli.json("list")) == 50  # the default
    assert [j["id"] for j in cli.json("list", "--state", "pending", "--limit", "3")] == [
        "j00",
        "j01",
        "j02",
    ]
    # header, rule, two rows, and the note that more exist
    assert len(cli.ok("list", "--limit", "2").splitlines()) == 5
    assert len(cli.json("list", "--limit", str(10**30))) == 60
    cli.fails(2, "list", "--limit", "0")
    cli.fails(2, "list", "--limit", "many")


def test_list_of_nothing(cli):
    assert cli.json("list") == []
    assert cli.ok("list", "--state", "dead") == "No dead jobs.\n"


@pytest.mark.parametrize("state", ["bogus", "PENDING", "", "dlq"])
def test_list_of_an_unknown_state_is_exit_2_naming_the_five(cli, state):
    err = cli.fails(2, "list", "--state", state)
    assert all(s in err for s in STATES)


# -- show ---------------------------------------------------------------------------------------


def test_show_json_has_exactly_the_spec_fields_with_nulls_and_iso_times(cli):
    cli.ok("enqueue", "echo hi", "--id", "s1")
    doc = cli.json("show", "s1")
    assert list(doc) == list(PUBLIC_FIELDS)
    for name in (
        "started_at",
        "finished_at",
        "locked_by",
        "locked_at",
        "exit_code",
        "last_error",
        "stdout",
        "stderr",
        "duration",
        "timeout",
    ):
        assert doc[name] is None, name
    for name in ("run_at", "created_at", "updated_at"):
        assert ISO_UTC.match(doc[name]), doc[name]


def test_show_json_of_a_finished_job(cli):
    start = 1_800_000_000.25
    cli.seed(
        "done",
        "completed",
        attempts=2,
        started_at=start,
        finished_at=start + 1.5,
        exit_code=0,
        stdout="hello\n",
        stderr="",
        duration=1.5,
        last_error="exit status 1",
    )
    doc = cli.json("show", "done")
    assert doc["started_at"] == "2027-01-15T08:00:00.250Z"
    assert doc["finished_at"] == "2027-01-15T08:00:01.750Z"
    assert (doc["exit_code"], doc["duration"], doc["stdout"], doc["attempts"]) == (
        0,
        1.5,
        "hello\n",
        2,
    )
    assert isinstance(doc["duration"], float)


def test_show_text_prints_every_field(cli):
    cli.ok("enqueue", "echo hi", "--id", "s2")
    out = cli.ok("show", "s2")
    keys = [line.split()[0] for line in out.splitlines()]
    assert keys == list(PUBLIC_FIELDS)
    assert "echo hi" in out


def test_show_of_an_unknown_id_is_exit_1(cli):
    err = cli.fails(1, "show", "nope")
    assert err == "Error: no job with id 'nope'\n"
    cli.fails(1, "show", "nope", "--json")
    cli.fails(1, "log", "nope")


def test_log_of_a_job_that_has_not_run(cli):
    cli.ok("enqueue", "echo hi", "--id", "l1")
    assert "has not run yet" in cli.ok("log", "l1")


# -- dlq ----------------------------------------------------------------------------------------


def seed_dead(cli: Cli, *ids: str) -> None:
    for job_id in ids:
        cli.seed(
            job_id,
            "dead",
            attempts=4,
            max_retries=3,
            exit_code=1,
            last_error="exit status 1: boom",
            run_at=time.time() - 3600,
        )


def test_dlq_list(cli):
    assert cli.ok("dlq", "list") == "The DLQ is empty.\n"
    assert cli.json("dlq", "list") == []
    seed_dead(cli, "d1", "d2")
    cli.seed("alive", "pending")
    out = cli.ok("dlq", "list")
    assert header(out) == ["ID", "Attempts", "Command", "Last Error"]
    assert "d1" in out and "d2" in out and "alive" not in out and "exit status 1: boom" in out
    docs = cli.json("dlq", "list")
    assert sorted(d["id"] for d in docs) == ["d1", "d2"]
    assert all(list(d) == list(PUBLIC_FIELDS) for d in docs)


def test_dlq_retry_ids(cli):
    seed_dead(cli, "d1", "d2", "d3")
    before = time.time()
    assert cli.ok("dlq", "retry", "d1", "d2") == "Retried 2 job(s)\n"
    for job_id in ("d1", "d2"):
        job = cli.store.get_job(job_id)
        assert (job.state, job.attempts, job.last_error) == ("pending", 0, "exit status 1: boom")
        assert before - 1 <= job.run_at <= time.time() + 1
    assert cli.store.get_job("d3").state == "dead"


def test_dlq_retry_of_a_job_not_in_the_dlq_is_reported_and_the_others_still_retried(cli):
    seed_dead(cli, "d1", "d2")
    pending = cli.seed("alive", "pending")
    result = cli("dlq", "retry", "d1", "alive", "ghost", "d2")
    assert result.code == 1
    assert result.out == "Retried 2 job(s)\n"
    assert_one_error_line(result.err)
    assert "'alive'" in result.err and "'ghost'" in result.err and "DLQ" in result.err
    assert "d1" not in result.err
    assert [cli.store.get_job(i).state for i in ("d1", "d2")] == ["pending", "pending"]
    assert cli.store.get_job("alive") == pending
    assert cli.store.get_job("ghost") is None


def test_dlq_retry_names_the_ids_not_in_the_dlq_exactly(cli):
    seed_dead(cli, "d1")
    one = cli("dlq", "retry", "d1", "ghost")
    assert (one.code, one.out) == (1, "Retried 1 job(s)\n")
    assert one.err == "Error: job 'ghost' is not in the DLQ (left unchanged)\n"
    many = [f"g{n}" for n in range(22)]
    result = cli("dlq", "retry", *many)
    listed = ", ".join(f"'g{n}'" for n in range(20))
    assert result.err == f"Error: jobs {listed} and 2 more are not in the DLQ (left unchanged)\n"
    assert result.code == 1


def test_dlq_retry_all(cli):
    seed_dead(cli, "d1", "d2", "d3")
    cli.seed("c", "completed")
    assert cli.ok("dlq", "retry", "--all") == "Retried 3 job(s)\n"
    assert cli.json("dlq", "list") == []
    assert cli.store.get_job("c").state == "completed"
    assert cli.ok("dlq", "retry", "--all") == "Retried 0 job(s)\n"


@pytest.mark.parametrize("args", [[], ["d1", "--all"]])
def test_dlq_retry_needs_ids_or_all_but_not_both(cli, args):
    seed_dead(cli, "d1")
    assert "--all" in cli.fails(2, "dlq", "retry", *args)


# -- config -------------------------------------------------------------------------------------


def test_config_list_json_has_every_key_with_defaults(cli):
    assert cli.json("config", "list") == CONFIG_DEFAULTS
    out = cli.ok("config", "list")
    assert all(key in out for key in CONFIG_DEFAULTS)


@pytest.mark.parametrize("spelling", ["max_retries", "max-retries", "maxRetries"])
def test_config_set_get_unset_with_aliases(cli, spelling):
    assert cli.ok("config", "set", spelling, "5") == "max_retries = 5\n"
    assert cli.ok("config", "get", spelling) == "5\n"
    assert cli.ok("config", "get", "maxRetries") == "5\n"
    assert cli.json("config", "get", spelling) == {"max_retries": 5}
    assert cli.json("config", "list") == {**CONFIG_DEFAULTS, "max_retries": 5}
    assert "max_retries = 3" in cli.ok("config", "unset", spelling)
    assert cli.ok("config", "get", "max_retries") == "3\n"
    assert cli.store.get_config() == {}


def test_config_numbers_keep_their_type(cli):
    cli.ok("config", "set", "backoff-base", "2.5")
    cli.ok("config", "set", "backoffJitter", "0.25")
    assert cli.ok("config", "get", "backoff_base") == "2.5\n"
    assert cli.json("config", "set", "poll_interval", "3.0") == {"poll_interval": 3}
    assert cli.json("config", "list") == {
        **CONFIG_DEFAULTS,
        "backoff_base": 2.5,
        "backoff_jitter": 0.25,
        "poll_interval": 3,
    }


def test_config_unknown_key_is_exit_2_naming_the_keys(cli):
    for args in (["get", "nope"], ["set", "nope", "1"], ["unset", "nope"]):
        err = cli.fails(2, "config", *args)
        assert "unknown config key 'nope'" in err
        assert all(key in err for key in CONFIG_DEFAULTS)


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("max_retries", "-1", "between 0 and 1000000"),
        ("max_retries", "x", "must be an integer"),
        ("max_retries", "2.5", "must be an integer"),
        ("backoff_base", "0.5", "between 1 and 1000"),
        ("backoff_base", "inf", "backoff_base must be a finite number, got 'inf'"),
        ("backoff_max", "0", "between 0.01 and 604800 seconds"),
        ("backoff_jitter", "1.5", "between 0 and 1"),
        ("job_timeout", "-3", "0 (none) or between 0.01 and 604800 seconds"),
        ("poll_interval", "nan", "poll_interval must be a finite number"),
        ("poll_interval", "0.0000001", "poll_interval must be between 0.01 and 3600 seconds"),
        ("heartbeat_interval", "inf", "heartbeat_interval must be a finite number"),
        ("heartbeat_interval", "0.001", "heartbeat_interval must be between 0.1 and 86400"),
        ("stale_after", "0.5", "stale_after must be between 1 and 604800 seconds"),
        ("stale_after", "30", "greater than heartbeat_interval"),
        ("heartbeat_interval", "600", "greater than heartbeat_interval"),
    ],
)
def test_config_bad_value_is_exit_2_naming_the_rule(cli, key, value, words):
    cli.ok("config", "set", "max_retries", "4")
    err = cli.fails(2, "config", "set", key, value)
    assert words in err


def test_config_unset_that_would_break_a_rule_is_refused(cli):
    cli.ok("config", "set", "stale_after", "2000")
    cli.ok("config", "set", "heartbeat_interval", "1000")
    assert "greater than" in cli.fails(2, "config", "unset", "stale_after")


# -- errors, exit codes, the program itself -----------------------------------------------------


@pytest.mark.parametrize(
    "args, words",
    [
        (["bogus"], "No such command"),
        (["show"], "Missing argument"),
        (["list", "--nope"], "--nope"),
        (["config", "set", "max_retries"], "Missing argument"),
        (["worker", "start", "--count", "0"], "--count"),
        (["worker", "stop", "--timeout", "nan"], "--timeout"),
        (["dashboard", "--interval", "0"], "--interval"),
        (["--db", "redis://localhost/0", "status"], "unsupported store URL"),
        (["--db", "sqlite://", "status"], "bad SQLite URL"),
    ],
)
def test_usage_errors_are_exit_2_with_one_line(cli, args, words):
    err = cli.fails(2, *args)
    assert words in err


def test_version_and_help(cli):
    assert cli.ok("--version") == f"queuectl {__version__}\n"
    assert "enqueue" in cli.ok("--help")
    assert "retry" in cli.ok("dlq", "--help")


def test_a_bare_group_prints_its_help(cli, capsys):
    assert cli_module.main([]) == 0
    assert capsys.readouterr().out.startswith("Usage: queuectl")
    assert "start" in cli.ok("worker")
    assert "Missing command" in cli.fails(2, "--db", cli.url)


def test_a_store_that_cannot_be_opened_is_exit_1(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    err = cli.fails(1, "--db", f"sqlite:///{blocker}/queue.db", "status")
    assert "SQLite" in err


def test_an_unexpected_error_is_one_line_unless_debugging(cli, monkeypatch):
    from queuectl.jobs import JobManager

    def broken(self, *_args):
        raise RuntimeError("something odd")

    monkeypatch.setattr(JobManager, "counts", broken)
    err = cli.fails(1, "status")
    assert "RuntimeError: something odd" in err and "QUEUECTL_DEBUG" in err
    monkeypatch.setenv("QUEUECTL_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli("status")


def test_read_commands_print_one_json_document(cli):
    cli.ok("enqueue", "true", "--id", "r1")
    for args in (
        ["status"],
        ["list"],
        ["show", "r1"],
        ["log", "r1"],
        ["stats"],
        ["dlq", "list"],
        ["config", "list"],
        ["config", "get", "max_retries"],
        ["worker", "list"],
    ):
        json.loads(cli.ok(*args, "--json"))  # raises if there is anything else on stdout


def test_stats_json_shape(cli):
    assert cli.json("stats") == {
        "jobs": {s: 0 for s in STATES},
        "duration": {"mean": None, "p50": None, "p95": None},
        "success_rate": None,
        "retries": 0,
        "throughput": {"last_minute": 0, "last_hour": 0},
        "queues": {},
    }


def test_control_characters_never_reach_the_terminal_raw(cli):
    command = "printf '\x1b[31mred\x1b[0m'\n\x9b\u202eevil\x07"
    cli.ok("enqueue", command, "--id", "ctl")
    for args in (["list"], ["show", "ctl"], ["list", "--json"], ["show", "ctl", "--json"]):
        out = cli.ok(*args)
        assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202e]", out), (args, out)
    assert json.loads(cli.ok("show", "ctl", "--json"))["command"] == command


# -- messages a new user meets --------------------------------------------------------------


def test_an_empty_db_option_is_bad_input(cli):
    assert "--db needs a URL" in cli.fails(2, "--db", "", "status")


def test_a_dash_id_gets_a_hint_to_use_double_dash(cli):
    err = cli.fails(2, "show", "-j8")
    assert err.endswith("an id starting with '-' goes after --, e.g. queuectl show -- -job7\n")
    # A mistyped flag elsewhere keeps the pointer to the command's help.
    assert cli.fails(2, "list", "-s", "pending").endswith("(see: queuectl list --help)\n")


def test_stop_timeout_needs_wait(cli):
    assert "--timeout only applies with --wait" in cli.fails(2, "worker", "stop", "--timeout", "5")


def test_a_config_range_error_names_only_the_rule(cli):
    assert cli.fails(2, "config", "set", "backoff_jitter", "2") == (
        "Error: backoff_jitter must be between 0 and 1, got '2'\n"
    )


def test_json_true_is_spelt_as_json_in_errors(cli):
    err = cli.fails(2, "enqueue", '{"command":"x","max_retries":true}')
    assert "got true" in err and "True" not in err


def test_a_timed_out_job_shows_the_signal_not_a_negative_status(cli):
    from queuectl.executor import Result

    store = cli.store
    cli.ok("enqueue", "--id", "slow", "--max-retries", "0", "sleep 9")
    job = store.claim("w", store.get_job("slow").run_at, "tok")
    from queuectl.app import App

    App(store=store).jobs.fail(
        job,
        "timed out after 1s",
        Result(-15, "", "", 1.0, "timed out after 1s"),
        now=job.run_at,
        config=replace(Config.defaults(), backoff_base=2, backoff_max=60, backoff_jitter=0),
    )
    out = cli.ok("log", "slow")
    assert out.startswith("Job slow: dead, killed by SIGTERM, attempt 1/1\n")
    assert [
        line.split()
        for line in cli.ok("show", "slow").splitlines()
        if line.startswith(("stdout", "stderr"))
    ] == [["stdout", "(empty)"], ["stderr", "(empty)"]]
