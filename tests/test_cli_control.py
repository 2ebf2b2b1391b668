"""The command line of SPEC §7.1-§7.4 as a user sees it, in-process on every store: queues,
dependencies, cancel, wait and log --follow. Outputs are checked word for word."""

from __future__ import annotations

import json
import threading
import time
from typing import Iterator

import pytest
from test_cli import CLI_BACKENDS, Cli, make_cli

from queuectl.models import WorkerInfo


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn (as in test_cli.py)."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


def enqueue(cli: Cli, *args: str) -> str:
    """Run `enqueue ARGS` and return the printed line."""
    return cli.ok("enqueue", *args)


def states(cli: Cli, *ids: str) -> dict[str, tuple[str, str | None]]:
    """State and last_error of each job."""
    return {i: (cli.store.get_job(i).state, cli.store.get_job(i).last_error) for i in ids}


# -- queues -------------------------------------------------------------------------------------


def test_enqueue_with_a_queue_and_show_json_has_queue_and_after(cli):
    assert enqueue(cli, "--id", "a", "--queue", "mail", "true") == "Enqueued job a\n"
    enqueue(cli, '{"id": "b", "command": "true", "after": ["a"], "queue": "x.y:z-1"}')
    a, b = cli.json("show", "a"), cli.json("show", "b")
    assert (a["queue"], a["after"]) == ("mail", [])
    assert (b["queue"], b["after"]) == ("x.y:z-1", ["a"])
    assert list(a)[-2:] == ["queue", "after"]
    enqueue(cli, "--id", "c", "true")
    assert cli.json("show", "c")["queue"] == "default"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--queue", "bad queue", "true"], "queue 'bad queue' is not allowed"),
        (["--queue", "x" * 65, "true"], "1-64 characters"),
        (['{"command": "true", "queue": 5}'], "queue 5 is not allowed"),
        (['{"command": "true", "after": "a"}'], "after must be an array of job ids"),
        (["--after", "a,,b", "true"], "--after takes job ids separated by commas"),
        (['{"id": "s", "command": "true", "after": ["s"]}'], "cannot run after itself"),
    ],
)
def test_bad_queue_or_after_is_exit_2(cli, args, words):
    err = cli.fails(2, "enqueue", *args)
    assert words in err


def test_an_after_id_that_does_not_exist_is_exit_1_and_enqueues_nothing(cli, tmp_path):
    err = cli.fails(1, "enqueue", "--after", "ghost", "true")
    assert "'ghost', which does not exist" in err
    batch = tmp_path / "jobs.jsonl"
    batch.write_text(
        '{"id": "first", "command": "true"}\n'
        '{"id": "second", "command": "true", "after": ["first", "third"]}\n'
        '{"id": "third", "command": "true"}\n'
    )
    err = cli.fails(1, "enqueue", "--file", str(batch))
    assert "job 'second' is to run after 'third', which does not exist" in err


def test_list_status_and_stats_by_queue(cli):
    enqueue(cli, "--id", "m1", "--queue", "mail", "true")
    enqueue(cli, "--id", "m2", "--queue", "mail", "true")
    enqueue(cli, "--id", "d1", "true")
    rows = cli.ok("list", "--queue", "mail").splitlines()[2:]
    assert sorted(r.split()[0] for r in rows) == ["m1", "m2"]
    assert [j["id"] for j in cli.json("list", "--queue", "default", "--state", "pending")] == ["d1"]
    assert cli.ok("status", "--queue", "mail") == (
        "Pending: 2\nProcessing: 0\nCompleted: 0\nFailed: 0\nDead (DLQ): 0\nActive Workers: 0\n"
    )
    assert cli.json("status", "--queue", "nobody") == {
        "jobs": {"pending": 0, "processing": 0, "completed": 0, "failed": 0, "dead": 0},
        "workers": {"active": 0},
    }
    assert set(cli.json("status")) == {"jobs", "workers"}, "status --json keeps its shape"
    stats = cli.json("stats")
    assert stats["queues"] == {
        "default": {"pending": 1, "processing": 0, "completed": 0, "failed": 0, "dead": 0},
        "mail": {"pending": 2, "processing": 0, "completed": 0, "failed": 0, "dead": 0},
    }
    mail = cli.json("stats", "--queue", "mail")
    assert mail["jobs"]["pending"] == 2 and "queues" not in mail
    assert "Queue mail: pending 2" in cli.ok("stats")
    cli.fails(2, "status", "--queue", "no way")


def test_status_counts_the_active_workers_serving_a_queue(cli):
    now = time.time()
    for worker_id, queues in (("w-all", []), ("w-mail", ["mail"]), ("w-cpu", ["cpu"])):
        cli.store.register_worker(
            WorkerInfo(
                id=worker_id,
                host="elsewhere",
                pid=1,
                started_at=now,
                last_heartbeat=now,
                queues=queues,
            )
        )
    assert cli.ok("status", "--queue", "mail").endswith("Active Workers: 2\n")
    assert cli.json("status")["workers"] == {"active": 3}
    listed = {w["id"]: w["queues"] for w in cli.json("worker", "list")}
    assert listed == {"w-all": [], "w-mail": ["mail"], "w-cpu": ["cpu"]}
    table = cli.ok("worker", "list")
    assert "Queues" in table.splitlines()[0] and "(all)" in table


def test_worker_start_rejects_a_bad_queue_name(cli):
    err = cli.fails(2, "worker", "start", "--queue", "ok,not ok")
    assert "queue 'not ok' is not allowed" in err


# -- dependencies -----------------------------------------------------------------------------


def test_show_and_list_say_what_a_job_waits_for(cli):
    enqueue(cli, "--id", "a", "true")
    enqueue(cli, "--id", "b", "true")
    enqueue(cli, "--id", "c", "--after", "a,b", "true")
    shown = cli.ok("show", "c")
    assert "after        a, b\n" in shown
    assert "waits_for    a (pending), b (pending)" in shown
    header, _rule, *rows = cli.ok("list", "--state", "pending").splitlines()
    assert header.split()[-2:] == ["Waits", "For"]
    row = next(r for r in rows if r.startswith("c "))
    assert row.endswith("a (pending), b (pending)")
    assert "waits_for" not in cli.ok("show", "a")


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_pending_jobs_and_report_the_rest(cli):
    enqueue(cli, "--id", "a", "true")
    enqueue(cli, "--id", "b", "--after", "a", "true")
    cli.seed("done", "completed")
    result = cli("cancel", "a", "done", "ghost")
    assert result.code == 1
    assert result.out == "Canceled 1 job(s)\n"
    assert result.err == (
        "Error: not canceled: 'done' is already completed; 'ghost' does not exist\n"
    )
    assert states(cli, "a", "b") == {
        "a": ("dead", "canceled"),
        "b": ("dead", "dependency a is dead"),
    }
    assert cli.ok("dlq", "retry", "a") == "Retried 1 job(s)\n"
    assert states(cli, "a") == {"a": ("pending", "canceled")}


def test_cancel_all_pending_of_a_queue(cli):
    enqueue(cli, "--id", "m1", "--queue", "mail", "true")
    enqueue(cli, "--id", "d1", "true")
    assert cli.ok("cancel", "--all-pending", "--queue", "mail") == "Canceled 1 job(s)\n"
    assert states(cli, "m1", "d1") == {"m1": ("dead", "canceled"), "d1": ("pending", None)}
    assert cli.ok("cancel", "--all-pending") == "Canceled 1 job(s)\n"


@pytest.mark.parametrize(
    "args",
    [[], ["a", "--all-pending"], ["a", "--queue", "q"], ["--all-pending", "--queue", "bad q"]],
)
def test_cancel_usage_errors_are_exit_2(cli, args):
    cli.fails(2, "cancel", *args)


def test_cancel_of_a_running_job_flags_it_for_its_worker(cli):
    cli.seed("run", "processing", locked_by="w-remote", lease_token="tok")
    assert cli.ok("cancel", "run") == "Canceled 1 job(s)\n"
    job = cli.store.get_job("run")
    assert (job.state, job.cancel_requested) == ("processing", True)


# -- wait ---------------------------------------------------------------------------------------


def test_wait_exit_codes(cli):
    cli.seed("ok1", "completed")
    cli.seed("ok2", "completed")
    cli.seed("bad", "dead", last_error="exit status 1")
    assert cli("wait", "ok1", "ok2").code == 0
    result = cli("wait", "ok1", "bad")
    assert (result.code, result.err) == (
        1,
        "Error: job 'bad' is dead (see: queuectl dlq list)\n",
    )
    assert cli.fails(1, "wait", "ok1", "ghost") == "Error: no job with id 'ghost'\n"
    cli.seed("slow", "pending")
    started = time.monotonic()
    result = cli("wait", "slow", "--timeout", "0.3")
    assert result.code == 1 and time.monotonic() - started < 5
    assert result.err == "Error: timed out after 0.3s; not finished: 'slow'\n"
    cli.fails(2, "wait", "ok1", "--timeout", "0")


def test_wait_returns_once_the_jobs_finish(cli):
    cli.seed("later", "processing", lease_token="t")
    finisher = threading.Timer(
        0.3,
        lambda: cli.store.update_if("later", {"state": "processing"}, {"state": "completed"}),
    )
    finisher.start()
    started = time.monotonic()
    assert cli("wait", "later", "--timeout", "20").code == 0
    assert time.monotonic() - started < 10
    finisher.join()


# -- log --follow -------------------------------------------------------------------------------


def test_follow_of_a_finished_job_prints_its_output_and_state_line(cli):
    cli.seed(
        "done",
        "completed",
        stdout="hello\n",
        stderr="warn",
        exit_code=0,
        attempts=1,
        finished_at=time.time(),
    )
    result = cli("log", "--follow", "done")
    assert result.code == 0
    assert result.out == "hello\nJob done: completed, exit status 0, attempt 1/4\n"
    assert result.err == "warn\n"
    cli.fails(2, "log", "-f", "done", "--json")


def test_follow_prints_running_output_as_it_grows_then_the_end(cli):
    cli.seed("run", "processing", lease_token="tok", attempts=1, live_stdout="one\n")

    def grow() -> None:
        time.sleep(0.4)
        cli.store.progress("run", "tok", {"live_stdout": "one\ntwo\n"})
        time.sleep(0.4)
        cli.store.finish(
            "run",
            "tok",
            {
                "state": "failed",
                "stdout": "one\ntwo\nthree\n",
                "exit_code": 2,
                "finished_at": time.time(),
                "last_error": "exit status 2",
                "live_stdout": None,
            },
        )

    writer = threading.Thread(target=grow)
    writer.start()
    result = cli("log", "-f", "run")
    writer.join()
    assert result.code == 0
    assert result.out == (
        "one\ntwo\nthree\nJob run: failed, exit status 2, attempt 1/4; exit status 2\n"
    )


def test_follow_waits_for_a_job_to_start(cli):
    cli.seed("soon", "pending", attempts=0)

    def start_and_end() -> None:
        time.sleep(0.3)
        cli.store.update_if(
            "soon", {"state": "pending"}, {"state": "processing", "lease_token": "t", "attempts": 1}
        )
        time.sleep(0.3)
        cli.store.finish(
            "soon",
            "t",
            {"state": "completed", "stdout": "done\n", "exit_code": 0, "finished_at": 1.0},
        )

    thread = threading.Thread(target=start_and_end)
    thread.start()
    result = cli("log", "-f", "soon")
    thread.join()
    assert result.code == 0
    assert result.err == "Job soon has not started yet (pending); waiting for it\n"
    assert result.out == "done\nJob soon: completed, exit status 0, attempt 1/4\n"


def test_follow_skips_nothing_when_the_tail_was_cut():
    from queuectl.cli.follow import StreamTail

    class Out:
        text = ""

        def write(self, s: str) -> None:
            self.text += s

        def flush(self) -> None:
            pass

    out = Out()
    tail = StreamTail(out)  # type: ignore[arg-type]
    tail.show("abc")
    tail.show("[queuectl: output cut, first 2 bytes dropped]\ncdef")
    tail.show("[queuectl: output cut, first 10 bytes dropped]\nxyz")
    assert out.text == "abcdef[queuectl: 4 bytes of output not shown]\nxyz"
    assert json.dumps(out.text)


@pytest.mark.parametrize("command", ["cancel", "wait"])
def test_a_dash_id_gets_the_double_dash_hint_on_cancel_and_wait(cli, command):
    err = cli.fails(2, command, "-j8")
    assert f"an id starting with '-' goes after --, e.g. queuectl {command} -- -job7" in err
