"""SPEC §6 worker guarantees, proven with real `queuectl worker start` processes: exactly-once
under concurrency, recovery from a SIGKILLed worker, graceful and immediate stops, timeouts
that kill a whole process tree, and a job that kills its own worker. Those where the store
matters run on SQLite and on the MongoDB store over the wire lane (and a real MongoDB when
QUEUECTL_TEST_MONGODB_URI is set): workers in separate processes share the server only
through its sockets."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from collections import Counter
from typing import Iterator

import pytest
from procutil import QUEUECTL, QueueEnv, job_processes, kill_quietly, unique, wait_for
from wirelane import LANES, server_url

# Tests of signals, process trees and start-up, whose store writes the contract suite already
# covers on every store, run on SQLite only, to keep the suite's time down.
SQLITE_ONLY = pytest.mark.parametrize("q", ["sqlite"], indirect=True)

# Small timings keep each test to a few seconds; stale_after is long so only the
# pid-gone path of the reaper (immediate on the same host) can release a job here.
FAST = {"poll_interval": 0.1, "heartbeat_interval": 0.2, "stale_after": 60}


@pytest.fixture(params=LANES)
def q(request, tmp_path) -> Iterator[QueueEnv]:
    """A private store (of each lane in turn) and home; every process started under it is
    killed afterwards."""
    with QueueEnv(tmp_path, server_url(request, request.param)) as env:
        env.config(**FAST)
        yield env


def test_four_workers_run_each_of_400_jobs_exactly_once(q):
    runs = q.home / "runs.txt"
    ids = [f"once-{n:03d}" for n in range(400)]
    command = f'echo "$QUEUECTL_JOB_ID $QUEUECTL_WORKER_ID" >> {shlex.quote(str(runs))}'
    q.enqueue({"id": job_id, "command": command} for job_id in ids)

    assert q.start_workers("--count", "4", "--burst").wait(60) == 0

    lines = [line.split() for line in runs.read_text().splitlines()]
    ran = Counter(job_id for job_id, _worker in lines)
    assert sorted(ran) == ids
    assert [job_id for job_id, n in ran.items() if n != 1] == []
    assert q.counts() == {"completed": 400}
    assert [job["id"] for job in q.jobs() if job["attempts"] != 1] == []
    # The runs were shared out: more than one worker process took jobs.
    assert len({worker for _job, worker in lines}) >= 2
    assert sum(worker["jobs_done"] for worker in q.workers()) == 400


def test_sigkilled_worker_job_is_released_at_once_and_completed_by_another(q):
    q.config(backoff_base=2)
    job_id = unique("crash")
    # The first attempt sleeps until its worker is killed; the retry finishes at once.
    q.cli(
        "enqueue",
        "--id",
        job_id,
        "--max-retries",
        "3",
        'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 30; fi; echo "ran on $QUEUECTL_WORKER_ID"',
    )
    first = q.start_workers()
    wait_for(lambda: job_processes(job_id), 15, "the first attempt's command to run")
    listed = json.loads(q.cli("worker", "list", "--json").stdout)
    victim = next(w for w in listed if w["current_job"] == job_id)

    kill_quietly(victim["pid"], signal.SIGKILL)
    # The supervisor sees its worker die and releases the job at once: the lost attempt is
    # recorded as a failure (retrying in backoff_base**1 = 2 s) before it even exits.
    assert first.wait(10) == 1
    assert "killed by SIGKILL" in first.output()
    assert f"job {job_id} released from the dead worker" in first.output()
    lost = q.job(job_id)
    assert (lost["state"], lost["attempts"]) == ("failed", 1)
    assert victim["id"] in lost["last_error"] and "exited" in lost["last_error"]
    assert lost["locked_by"] is None
    # The dead worker's command (still sleeping in its own session) was killed with it,
    # so the retry never runs beside it.
    assert job_processes(job_id) == []

    second = q.start_workers("--burst")
    # ... and the retry runs on the new worker.
    assert second.wait(20) == 0
    job = q.job(job_id)
    assert (job["state"], job["attempts"], job["exit_code"]) == ("completed", 2, 0)
    assert victim["id"] not in job["stdout"] and job["stdout"].startswith("ran on ")


def test_worker_stop_wait_returns_after_running_jobs_finish(q):
    job_id = unique("stop")
    # The job runs until the test lets it end, after its worker heard the stop: on a slow
    # machine a fixed-length job could end before `worker stop` reached its worker.
    release = q.home / f"{job_id}.go"
    q.cli(
        "enqueue",
        "--id",
        job_id,
        f"while [ ! -e {shlex.quote(str(release))} ]; do sleep 0.05; done; echo finished",
    )
    supervisor = q.start_workers("--count", "2")
    wait_for(lambda: job_processes(job_id), 15, "the job to start")

    stopping = subprocess.Popen(
        [*QUEUECTL, "--db", q.url, "worker", "stop", "--wait", "--timeout", "30"],
        cwd=q.home,
        env=q.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: "finishing the current job" in supervisor.output(),
            15,
            "the running job's worker to hear the stop",
        )
        assert stopping.poll() is None, "worker stop --wait returned while the job still ran"
        release.touch()
        out, err = stopping.communicate(timeout=40)
    finally:
        if stopping.poll() is None:
            stopping.kill()
    assert stopping.returncode == 0, err

    assert "Stop requested for 2 worker(s)" in out
    job = q.job(job_id)  # read as soon as --wait returned: the job must be done already
    assert (job["state"], job["exit_code"], job["stdout"]) == ("completed", 0, "finished\n")
    assert q.counts() == {"completed": 1}
    assert json.loads(q.cli("worker", "list", "--json").stdout) == []
    assert supervisor.wait(10) == 0
    # `worker stop` signals local workers with SIGTERM: the log says what each one does.
    assert "stopping: finishing the current job (a second signal stops at once)" in (
        supervisor.output()
    )
    assert "stopping: no job is running (a second signal stops at once)" in supervisor.output()


@SQLITE_ONLY
def test_sigint_is_graceful_the_running_job_finishes_and_no_new_one_starts(q):
    running, queued = unique("graceful"), unique("queued")
    q.cli("enqueue", "--id", running, "--priority", "5", "sleep 1; echo graceful-done")
    q.cli("enqueue", "--id", queued, "echo must-not-run")
    supervisor = q.start_workers()
    wait_for(lambda: job_processes(running), 15, "the job to start")

    supervisor.proc.send_signal(signal.SIGINT)

    assert supervisor.wait(15) == 0
    job = q.job(running)
    assert (job["state"], job["attempts"], job["stdout"]) == ("completed", 1, "graceful-done\n")
    assert q.job(queued)["state"] == "pending"
    assert "Ctrl+C again stops at once" in supervisor.output()


@SQLITE_ONLY
def test_second_sigint_kills_the_command_and_hands_the_job_back(q):
    q.config(backoff_max=0.2)
    job_id = unique("abort")
    # Attempt 1 fails so the interrupted attempt is the second: attempts must go back to 1.
    q.cli(
        "enqueue",
        "--id",
        job_id,
        "--max-retries",
        "5",
        '[ "$QUEUECTL_ATTEMPT" = 1 ] && exit 3; sleep 30',
    )
    supervisor = q.start_workers()
    wait_for(
        lambda: q.job(job_id)["attempts"] == 2 and job_processes(job_id),
        15,
        "the second attempt to run",
    )

    supervisor.proc.send_signal(signal.SIGINT)
    wait_for(
        lambda: "finishing the current job" in supervisor.output(),
        10,
        "the worker to start its graceful stop",
    )
    supervisor.proc.send_signal(signal.SIGINT)

    assert supervisor.wait(10) == 0
    job = q.job(job_id)
    assert (job["state"], job["attempts"], job["locked_by"]) == ("pending", 1, None)
    assert job["last_error"].startswith("exit status 3")  # the real failure is kept
    wait_for(lambda: not job_processes(job_id), 5, "the killed command to be gone")
    assert "stopping now: killing the running command" in supervisor.output()


@SQLITE_ONLY
def test_timeout_kills_every_process_the_command_spawned(q):
    job_id = unique("tree")
    q.cli(
        "enqueue",
        "--id",
        job_id,
        "--timeout",
        "1",
        "--max-retries",
        "0",
        "sh -c 'sleep 30 & sleep 30 & wait'",
    )
    supervisor = q.start_workers("--burst")
    # sh -c, the inner sh and its two sleeps
    wait_for(lambda: len(job_processes(job_id)) >= 4, 15, "the command's process tree")

    assert supervisor.wait(15) == 0
    job = q.job(job_id)
    assert (job["state"], job["last_error"]) == ("dead", "timed out after 1s")
    wait_for(lambda: not job_processes(job_id), 5, "every process of the job to be gone")


@SQLITE_ONLY
def test_job_that_kills_its_worker_ends_in_the_dlq_after_max_retries_plus_one(q):
    q.config(backoff_max=0.2)
    job_id = unique("poison")
    q.cli("enqueue", "--id", job_id, "--max-retries", "2", "kill -9 $PPID")
    deaths, codes = 0, []
    for _ in range(8):  # 3 attempts kill 3 workers; the 4th worker only reaps
        codes.append(q.start_workers("--burst").wait(20))
        if codes[-1] == 0:
            break
        deaths += 1
    assert codes[-1] == 0, f"the poison job kept killing workers: exit codes {codes}"
    assert deaths == 3
    job = q.job(job_id)
    assert (job["state"], job["attempts"]) == ("dead", 3)
    assert "exited" in job["last_error"]


@SQLITE_ONLY
def test_a_second_worker_stop_does_not_turn_into_an_immediate_stop(q):
    # A long heartbeat: the worker's `stopping` status must reach the store at once, or the
    # second `worker stop` signals it again, and a second signal means "stop at once".
    q.config(heartbeat_interval=10)
    job_id = unique("twice")
    q.cli("enqueue", "--id", job_id, "sleep 1.5; echo finished")
    supervisor = q.start_workers()
    wait_for(lambda: job_processes(job_id), 15, "the job to start")

    assert "Stop requested for 1 worker(s)" in q.cli("worker", "stop").stdout
    q.cli("worker", "stop")

    assert supervisor.wait(15) == 0
    job = q.job(job_id)
    assert (job["state"], job["attempts"], job["stdout"]) == ("completed", 1, "finished\n")
    assert "killing the running command" not in supervisor.output()


@SQLITE_ONLY
def test_detach_starts_workers_in_the_background_with_private_logs(q):
    job_id = unique("detached")
    started = q.cli("worker", "start", "--count", "2", "--detach")

    lines = started.stdout.splitlines()
    assert lines[0].startswith("Started 2 of 2 worker(s) in the background")
    listed = {w["id"] for w in json.loads(q.cli("worker", "list", "--json").stdout)}
    assert {line.strip() for line in lines[1:3]} == listed
    log = next(line for line in lines if line.startswith("Logs: ")).removeprefix("Logs: ")
    logs_dir = q.home / "logs"
    assert (logs_dir.stat().st_mode & 0o777, os.stat(log).st_mode & 0o777) == (0o700, 0o600)

    q.cli("enqueue", "--id", job_id, "echo from the background")
    wait_for(lambda: q.job(job_id)["state"] == "completed", 15, "the job to complete")
    assert f"job {job_id} completed" in wait_for(
        lambda: (text := open(log).read()) and f"job {job_id} completed" in text and text,
        5,
        "the worker's log line",
    )
    q.cli("worker", "stop", "--wait", "--timeout", "20")
    assert json.loads(q.cli("worker", "list", "--json").stdout) == []
