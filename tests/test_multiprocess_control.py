"""SPEC §7 with real `queuectl worker start` processes, on a SQLite file and on the wire lane
(and a real MongoDB when QUEUECTL_TEST_MONGODB_URI is set): a canceled running job is killed
with its process group, workers serve only their queues, dependencies hold across processes,
and `wait` and `log --follow` watch jobs that other processes run. A cancel across machines
is in test_two_machines.py."""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from typing import IO, Iterator

import pytest
from procutil import QUEUECTL, QueueEnv, job_processes, unique, wait_for
from wirelane import LANES, server_url

FAST = {"poll_interval": 0.1, "heartbeat_interval": 0.2, "stale_after": 60}


@pytest.fixture(params=LANES)
def q(request, tmp_path) -> Iterator[QueueEnv]:
    """A private store (of each lane) and home; every process started under it is killed
    afterwards."""
    with QueueEnv(tmp_path, server_url(request, request.param)) as env:
        env.config(**FAST)
        yield env


def first_line(stream: IO[str], timeout: float) -> str:
    """The next line of a child's output, waiting at most `timeout` seconds for it."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, f"no line within {timeout:g}s"
    return lines[0]


def test_cancel_kills_a_running_job_and_its_process_group(q):
    # A long poll_interval: only the local signal makes the cancel this quick.
    q.config(poll_interval=30)
    job_id = unique("cancel")
    q.cli("enqueue", "--id", job_id, "--max-retries", "5", "sleep 30 & sleep 30; wait")
    supervisor = q.start_workers()
    wait_for(lambda: len(job_processes(job_id)) >= 3, 15, "the command and its children")

    # A CLI call's own start-up and exit (about 0.9 s on the wire lane, more under load),
    # timed just before, is taken off: what is left is the cancel reaching the worker.
    started = time.monotonic()
    q.cli("show", job_id)
    reference = time.monotonic() - started
    started = time.monotonic()
    done = q.cli("cancel", job_id)

    assert done.stdout == "Canceled 1 job(s)\n"
    wait_for(lambda: q.job(job_id)["state"] == "dead", 10 + reference, "the job to be dead")
    elapsed = time.monotonic() - started
    assert elapsed - reference < 5, (elapsed, reference)  # poll_interval is 30 s
    job = q.job(job_id)
    assert (job["last_error"], job["attempts"]) == ("canceled while running", 1)
    wait_for(lambda: not job_processes(job_id), 5, "every process of the job to be gone")
    assert f"job {job_id} canceled while running; moved to DLQ" in supervisor.output()
    q.cli("worker", "stop", "--wait", "--timeout", "20")
    assert supervisor.wait(10) == 0


def test_workers_serve_only_their_queues_and_burst_waits_for_them_alone(q):
    q.enqueue(
        {"id": job_id, "queue": queue, "command": "true"}
        for job_id, queue in (("m1", "mail"), ("m2", "mail"), ("c1", "cpu"))
    )
    assert q.start_workers("--queue", "mail", "--burst").wait(30) == 0
    assert {j: q.job(j)["state"] for j in ("m1", "m2", "c1")} == {
        "m1": "completed",
        "m2": "completed",
        "c1": "pending",
    }
    assert q.start_workers("--queue", "mail,cpu", "--burst").wait(30) == 0
    assert q.job("c1")["state"] == "completed"


def test_workers_of_two_queues_side_by_side_never_take_each_others_jobs(q):
    # Each worker's commands say which worker ran them (the environment they inherit).
    command = 'sleep 0.2; echo "$SERVED_BY"'
    q.enqueue(
        {"id": f"{queue}{n}", "queue": queue, "command": command}
        for n in range(6)
        for queue in ("a", "b")
    )
    serving_a = q.start_workers("--queue", "a", "--burst", env={"SERVED_BY": "a"})
    serving_b = q.start_workers("--queue", "b", "--burst", env={"SERVED_BY": "b"})
    assert serving_a.wait(60) == 0, serving_a.output()[-2000:]
    assert serving_b.wait(60) == 0, serving_b.output()[-2000:]
    ran = {job["id"]: (job["state"], job["stdout"]) for job in q.jobs()}
    assert ran == {
        f"{queue}{n}": ("completed", f"{queue}\n") for n in range(6) for queue in ("a", "b")
    }


def test_a_chain_runs_in_order_across_worker_processes(q):
    runs = q.home / "order.txt"
    record = f"echo $QUEUECTL_JOB_ID >> {shlex.quote(str(runs))}"
    specs = [{"id": "s0", "command": record}]
    specs += [
        {"id": f"s{i}", "command": record, "after": [f"s{i - 1}"], "priority": i}
        for i in range(1, 6)
    ]
    specs.append({"id": "doomed", "command": "exit 1", "max_retries": 0})
    specs.append({"id": "never", "command": record, "after": ["s5", "doomed"]})
    q.enqueue(specs)
    waiters = [
        subprocess.Popen(
            [*QUEUECTL, "--db", q.url, "wait", *ids, "--timeout", "60"],
            env=q.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for ids in (["s0", "s5"], ["s5", "never"])
    ]
    assert q.start_workers("--count", "3", "--burst").wait(60) == 0
    completed, waited = waiters
    assert completed.communicate(timeout=30) == ("", "")
    assert completed.returncode == 0
    out, err = waited.communicate(timeout=30)
    assert runs.read_text().split() == [f"s{i}" for i in range(6)]
    assert (q.job("never")["state"], q.job("never")["last_error"]) == (
        "dead",
        "dependency doomed is dead",
    )
    assert waited.returncode == 1
    assert err == "Error: job 'never' is dead (see: queuectl dlq list)\n"


def test_log_follow_shows_output_while_another_process_runs_the_job(q):
    job_id = unique("follow")
    go = q.home / "go"
    # The job holds between its two lines until the test lets it go (at most 60 s).
    hold = f"for i in $(seq 1200); do [ -e {shlex.quote(str(go))} ] && break; sleep 0.05; done"
    q.cli("enqueue", "--id", job_id, f"echo one; {hold}; echo two")
    follower = subprocess.Popen(
        [*QUEUECTL, "--db", q.url, "log", "--follow", job_id],
        env=q.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None and follower.stderr is not None
    # The workers start once the follower is waiting, so it is sure to see the job pending.
    waiting = first_line(follower.stderr, 30)
    assert waiting == f"Job {job_id} has not started yet (pending); waiting for it\n"
    supervisor = q.start_workers()
    assert first_line(follower.stdout, 30) == "one\n"
    assert q.job(job_id)["state"] == "processing", "the first line came while it ran"
    go.touch()
    rest, err = follower.communicate(timeout=30)
    assert follower.returncode == 0
    assert (rest, err) == (f"two\nJob {job_id}: completed, exit status 0, attempt 1/4\n", "")
    q.cli("worker", "stop", "--wait", "--timeout", "20")
    assert supervisor.wait(10) == 0
