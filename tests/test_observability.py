"""`log`, `show` and `stats` through the CLI on every store, and the helper scripts."""

from __future__ import annotations

import json
import math
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from queuectl import cli
from queuectl.app import App
from queuectl.config import ConfigManager
from queuectl.executor import TAIL_BYTES, Result
from queuectl.store.mongo import MongoStore

REPO = Path(__file__).resolve().parent.parent
STATES = ("pending", "processing", "completed", "failed", "dead")


@pytest.fixture
def run_cli(store, home, monkeypatch, capsys):
    """queuectl.cli.main on the test's store: returns (exit code, stdout, stderr)."""
    if isinstance(store, MongoStore):
        url = "mongodb://test.invalid/queuectl_test"
        monkeypatch.setattr(
            "queuectl.store.mongo.connect", lambda _url, _masked, _secret=None: store
        )
    else:
        url = store.path

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli.main(["--db", url, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def run_worker(store, steps: int | None = None) -> None:
    """Run jobs in-process: `steps` claims, or in burst mode until nothing is left."""
    worker = App(store=store).worker(burst=True, log=lambda _line: None)
    if steps is None:
        worker.run()
        return
    worker.start()
    for _ in range(steps):
        assert worker.step(), "no job was ready"
    # A worker left `idle` would be sent SIGUSR1 (to this process) by the next enqueue.
    store.update_worker(worker.info.id, {"status": "stopped"})


def enqueue(run_cli, *args: str) -> None:
    code, out, err = run_cli("enqueue", *args)
    assert (code, err) == (0, ""), err
    assert out.startswith("Enqueued job")


# -- log ------------------------------------------------------------------------------------
def test_log_of_a_job_that_has_not_run_says_so(run_cli):
    enqueue(run_cli, "--id", "waiting", "echo hi")
    assert run_cli("log", "waiting") == (0, "Job waiting has not run yet (state: pending).\n", "")
    code, out, _ = run_cli("log", "waiting", "--json")
    assert code == 0 and json.loads(out)["has_run"] is False


def test_log_of_an_unknown_job_is_exit_1(run_cli):
    assert run_cli("log", "nope") == (1, "", "Error: no job with id 'nope'\n")


def test_log_after_a_run_shows_state_exit_status_and_both_streams(run_cli, store):
    enqueue(
        run_cli,
        "--id",
        "mixed",
        "--max-retries",
        "0",
        "echo to-out; echo line-2; echo to-err >&2; exit 4",
    )
    enqueue(run_cli, "--id", "fine", "printf 'ok\\033[2J\\n'")
    run_worker(store)
    code, out, err = run_cli("log", "mixed")
    assert (code, err) == (0, "")
    assert out == (
        "Job mixed: dead, exit status 4, attempt 1/1\n"
        "Last error: exit status 4: to-err\n"
        "--- stdout ---\nto-out\nline-2\n--- stderr ---\nto-err\n"
    )
    code, out, _ = run_cli("log", "fine")
    assert code == 0
    assert out.splitlines()[0] == "Job fine: completed, exit status 0, attempt 1/4"
    assert "ok\\x1b[2J" in out and "\x1b" not in out  # a job's output cannot drive the terminal
    assert out.endswith("--- stderr ---\n(empty)\n")
    code, out, _ = run_cli("log", "mixed", "--json")
    assert json.loads(out) == {
        "id": "mixed",
        "state": "dead",
        "attempts": 1,
        "exit_code": 4,
        "last_error": "exit status 4: to-err",
        "has_run": True,
        "stdout": "to-out\nline-2\n",
        "stderr": "to-err\n",
    }


def test_log_never_pairs_an_old_output_with_a_newer_attempt(run_cli, store):
    enqueue(run_cli, "--id", "again", "echo first try; exit 5")
    run_worker(store, steps=1)
    running = store.claim("far:1:1-beef", time.time() + 3600, "second")  # past the backoff
    assert running is not None and running.attempts == 2
    code, out, _ = run_cli("log", "again")
    assert code == 0
    assert out.splitlines()[0] == (
        "Job again: processing (attempt 2/4 is running); "
        "output of the previous attempt, exit status 5"
    )
    assert "first try" in out
    # The second attempt is lost (its worker stopped heartbeating): it left no output.
    error = "worker far:1:1-beef stopped heartbeating"
    assert App(store=store).jobs.fail(running, error)[0]
    code, out, _ = run_cli("log", "again")
    assert out == (
        f"Job again: failed, exit status -, attempt 2/4\nLast error: {error}\n"
        "--- stdout ---\n(empty)\n--- stderr ---\n(empty)\n"
    )


def test_output_keeps_the_last_64_KiB_and_says_it_was_cut(run_cli, store):
    printed = ("0123456789\n" * 20_000)[:200_000] + "END-MARKER\n"
    enqueue(
        run_cli,
        "--id",
        "chatty",
        "yes 0123456789 | head -c 200000; echo END-MARKER; echo small >&2",
    )
    run_worker(store)
    _, out, _ = run_cli("show", "chatty", "--json")
    stdout = json.loads(out)["stdout"]
    notice, body = stdout.split("\n", 1)
    assert notice == f"[queuectl: output cut, first {len(printed) - TAIL_BYTES} bytes dropped]"
    assert TAIL_BYTES == 64 * 1024
    assert body == printed[-TAIL_BYTES:]
    assert json.loads(out)["stderr"] == "small\n"
    code, out, _ = run_cli("log", "chatty")
    assert code == 0 and notice in out
    assert out.endswith("END-MARKER\n--- stderr ---\nsmall\n")


# -- show -----------------------------------------------------------------------------------
def test_show_includes_attempts_and_last_error(run_cli, store):
    enqueue(run_cli, "--id", "shaky", "--max-retries", "2", "echo nope >&2; exit 5")
    run_worker(store, steps=1)
    code, out, _ = run_cli("show", "shaky")
    assert code == 0
    assert re.search(r"^state\s+failed$", out, re.M)
    assert re.search(r"^attempts\s+1$", out, re.M)
    assert re.search(r"^max_retries\s+2$", out, re.M)
    assert re.search(r"^last_error\s+exit status 5: nope$", out, re.M)
    assert re.search(r"^exit_code\s+5$", out, re.M)
    assert re.search(r"^stderr\s+5 bytes \(see: queuectl log shaky\)$", out, re.M)
    code, out, _ = run_cli("show", "shaky", "--json")
    shown = json.loads(out)
    assert (shown["attempts"], shown["last_error"], shown["state"]) == (
        1,
        "exit status 5: nope",
        "failed",
    )


# -- stats ----------------------------------------------------------------------------------
EMPTY_STATS = {
    "jobs": dict.fromkeys(STATES, 0),
    "duration": {"mean": None, "p50": None, "p95": None},
    "success_rate": None,
    "retries": 0,
    "throughput": {"last_minute": 0, "last_hour": 0},
    "queues": {},
}


def test_stats_with_no_data_is_null_where_nothing_was_measured(run_cli):
    code, out, _ = run_cli("stats", "--json")
    assert code == 0 and json.loads(out) == EMPTY_STATS
    code, out, _ = run_cli("stats")
    assert code == 0
    assert "Duration of completed jobs: mean -, p50 -, p95 -" in out
    assert "Success rate: - " in out


def settle(
    store,
    job_id: str,
    outcomes: list[str],
    duration: float,
    finished_at: float,
    max_retries: int = 3,
) -> None:
    """Enqueue a job and take it through `outcomes` ("fail" / "ok") with a known duration."""
    spec = {"id": job_id, "command": "true", "max_retries": max_retries}
    jobs = App(store=store).jobs
    jobs.enqueue([(None, spec)])
    config = ConfigManager(store).load()
    for n, outcome in enumerate(outcomes):
        # Claiming "later" makes a retry's backoff already over.
        job = store.claim("test-worker", time.time() + 3600, f"{job_id}-{n}")
        assert job is not None and job.id == job_id
        result = Result(
            exit_code=0 if outcome == "ok" else 1,
            stdout="",
            stderr="",
            duration=duration,
            error=None if outcome == "ok" else "exit status 1",
        )
        if outcome == "ok":
            assert jobs.complete(job, result, now=finished_at)
        else:
            assert jobs.fail(job, "exit status 1", result, now=finished_at, config=config)[0]


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(q * len(ordered)) - 1]


def test_stats_match_known_durations(run_cli, store):
    durations = [0.25 * k for k in range(1, 21)]
    random.Random(7).shuffle(durations)
    now = time.time()
    ages = [5] * 15 + [600] * 3 + [7200] * 2  # 15 in the last minute, 18 in the last hour
    for n, (duration, age) in enumerate(zip(durations, ages, strict=True)):
        outcomes = ["fail", "fail", "ok"] if n == 0 else ["ok"]  # 2 retries
        settle(store, f"done-{n}", outcomes, duration, now - age)
    settle(store, "gone", ["fail"], 0.5, now - 5, max_retries=0)
    App(store=store).jobs.enqueue([(None, {"id": "queued", "command": "true"})])

    code, out, _ = run_cli("stats", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"jobs", "duration", "success_rate", "retries", "throughput", "queues"}
    assert data["jobs"] == {"pending": 1, "processing": 0, "completed": 20, "failed": 0, "dead": 1}
    assert data["duration"] == {
        "mean": pytest.approx(sum(durations) / 20),
        "p50": nearest_rank(durations, 0.50),
        "p95": nearest_rank(durations, 0.95),
    }
    assert data["success_rate"] == pytest.approx(20 / 21)
    assert data["retries"] == 2
    assert data["throughput"] == {"last_minute": 15, "last_hour": 18}

    code, out, _ = run_cli("stats")
    assert code == 0
    assert "Jobs: pending 1, processing 0, completed 20, failed 0, dead 1" in out
    assert "mean 2.625s, p50 2.500s, p95 4.750s" in out
    assert "Success rate: 95.2%" in out and "Retries: 2" in out
    assert "Completed in the last minute: 15, last hour: 18" in out


def test_percentiles_are_nearest_rank_values(run_cli, store):
    # 13 values: the 95th percentile by nearest rank is the largest one (rank ceil(12.35)).
    durations = [float(k) for k in (5, 1, 13, 2, 12, 3, 11, 4, 10, 6, 9, 7, 8)]
    for n, duration in enumerate(durations):
        settle(store, f"d-{n}", ["ok"], duration, time.time())
    code, out, _ = run_cli("stats", "--json")
    assert code == 0
    assert json.loads(out)["duration"] == {"mean": pytest.approx(7.0), "p50": 7.0, "p95": 13.0}


# -- scripts --------------------------------------------------------------------------------
def script(name: str, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("name", ["dashboard.py", "retry_all_dlq.py", "add_job.py", "demo.py"])
def test_scripts_have_help(name):
    done = script(name, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:") and "--db URL" in done.stdout
    assert done.stderr == ""


def test_add_job_and_retry_all_dlq_scripts_work_on_a_store(tmp_path):
    db = str(tmp_path / "scripts.db")
    env = {**os.environ, "QUEUECTL_HOME": str(tmp_path / "home")}
    done = script(
        "add_job.py", "--db", db, "--id", "s1", "--max-retries", "0", "exit", "9", env=env
    )
    assert (done.returncode, done.stdout) == (0, "Enqueued job s1\n"), done.stderr
    from queuectl.store.sqlite import SqliteStore

    store = SqliteStore(db)
    run_worker(store)
    assert store.get_job("s1").state == "dead"
    done = script("retry_all_dlq.py", "--db", db, "--list", env=env)
    assert done.returncode == 0, done.stderr
    assert "exit status 9" in done.stdout and done.stdout.endswith("Retried 1 job(s)\n")
    job = store.get_job("s1")
    assert (job.state, job.attempts, job.command) == ("pending", 0, "exit 9")
