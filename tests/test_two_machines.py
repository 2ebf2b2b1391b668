"""Two machines on one MongoDB: a worker group in a pid namespace of its own (`unshare --pid
--fork --mount-proc`, so its pids mean nothing to the other group, as on another machine) and
one in the test's namespace, on the wire lane (and a real MongoDB when
QUEUECTL_TEST_MONGODB_URI is set). When a whole machine dies, the other machine cannot see
its processes: it must release their jobs by lease staleness, after stale_after, and never by
reading a pid of its own namespace. A cancel asked on one machine cannot signal a worker of
the other: that worker finds it in the store within about poll_interval. Needs root for the
namespace; skipped otherwise.
"""

from __future__ import annotations

import signal
import time
from typing import Iterator

import pytest
from procutil import (
    UNSHARE,
    QueueEnv,
    children,
    job_processes,
    kill_quietly,
    namespaces_work,
    unique,
    wait_for,
)
from wirelane import MONGO_SERVERS, server_url

from queuectl.localproc import machine_key

STALE_AFTER = 2.0
WAIT = 30.0


@pytest.fixture(params=MONGO_SERVERS)
def q(request, tmp_path) -> Iterator[QueueEnv]:
    """A private home and a fresh MongoDB database; every process goes afterwards."""
    reason = namespaces_work()
    if reason:
        pytest.skip(reason)
    with QueueEnv(tmp_path, server_url(request, request.param)) as env:
        env.config(
            poll_interval=0.1, heartbeat_interval=0.2, stale_after=STALE_AFTER, backoff_base=1
        )
        yield env


def test_a_dead_machines_job_is_released_by_staleness_on_the_other_machine(q):
    job_id = unique("machine")
    q.cli(
        "enqueue",
        "--id",
        job_id,
        "--max-retries",
        "2",
        'if [ "$QUEUECTL_ATTEMPT" = 1 ]; then sleep 30; fi; echo "ran on $QUEUECTL_WORKER_ID"',
    )
    machine_b = q.start_workers(prefix=UNSHARE)
    holder = wait_for(
        lambda: (job := q.job(job_id))["state"] == "processing" and job["locked_by"],
        WAIT,
        "machine B to run the job",
    )
    machine_a = q.start_workers()
    wait_for(lambda: len(q.workers()) == 2, WAIT, "machine A's worker to register")
    rows = {w["id"]: w for w in q.workers()}
    (a_id,) = set(rows) - {holder}
    assert rows[holder]["machine"] != rows[a_id]["machine"]

    # Machine B dies whole: its pid 1 goes, and the kernel kills everything in it.
    (init,) = children(machine_b.pid)
    renewed = q.job(job_id)["lease_renewed_at"]
    kill_quietly(init, signal.SIGKILL)
    released = wait_for(
        lambda: q.job(job_id)["state"] != "processing" and time.time(),
        WAIT,
        "machine A to release the job",
    )

    job = wait_for(
        lambda: (j := q.job(job_id))["state"] == "completed" and j, WAIT, "the retry to finish"
    )
    assert job["attempts"] == 2 and job["stdout"] == f"ran on {a_id}\n"
    # Released by staleness (no sooner than stale_after after the last renewal), not by
    # a pid check that means nothing across machines.
    assert released - renewed >= STALE_AFTER - 0.05, (released - renewed, machine_a.output())
    assert f"job {job_id} released from a lost worker" in machine_a.output()
    assert "exited" not in machine_a.output()


def test_a_cancel_on_one_machine_kills_the_job_running_on_the_other(q):
    poll = 1.0
    q.config(poll_interval=poll, stale_after=60)
    job_id = unique("remote-cancel")
    q.cli("enqueue", "--id", job_id, "--max-retries", "5", "sleep 60 & sleep 60; wait")
    machine_b = q.start_workers(prefix=UNSHARE)
    holder = wait_for(
        lambda: (job := q.job(job_id))["state"] == "processing" and job["locked_by"],
        WAIT,
        "machine B to run the job",
    )
    wait_for(lambda: len(job_processes(job_id)) >= 3, WAIT, "the command and its children")
    # The cancel runs here, on machine A: it cannot signal B's worker, only flag the job.
    (row,) = [w for w in q.workers() if w["id"] == holder]
    assert row["machine"] != machine_key()

    done = q.cli("cancel", job_id)
    asked = time.monotonic()

    assert done.stdout == "Canceled 1 job(s)\n"
    job = wait_for(
        lambda: (j := q.job(job_id))["state"] == "dead" and j, WAIT, "the job to be dead"
    )
    # Found by the worker's own look at the store, about every poll_interval; a loaded
    # machine adds a few seconds at most, far from the 60 s the command would run.
    assert time.monotonic() - asked < poll + 5, machine_b.output()[-2000:]
    assert (job["last_error"], job["attempts"]) == ("canceled while running", 1)
    wait_for(lambda: not job_processes(job_id), 10, "every process of the job to be gone")
    assert f"job {job_id} canceled while running; moved to DLQ" in machine_b.output()
    # A stop asked here reaches machine B through the store as well.
    q.cli("worker", "stop", "--wait", "--timeout", "20")
    assert machine_b.wait(20) == 0
