"""`worker start --detach` with real processes: it reports the workers it started (and only
those), and when none can start it says why, as the foreground start does."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from procutil import QueueEnv, unique, wait_for

FAST = {"poll_interval": 0.1, "heartbeat_interval": 0.2, "stale_after": 60}


@pytest.fixture
def q(tmp_path) -> Iterator[QueueEnv]:
    """A private store and home; every process started under it is killed afterwards."""
    with QueueEnv(tmp_path) as env:
        env.config(**FAST)
        yield env


def reported_ids(stdout: str) -> list[str]:
    """The worker ids `worker start --detach` listed (the indented lines)."""
    return [line.strip() for line in stdout.splitlines() if line.startswith("  ")]


def test_detach_right_after_a_stopped_worker_reports_only_its_own_worker(q):
    q.cli("enqueue", "--id", unique("burst"), "true")
    q.cli("worker", "start", "--burst")
    burst_ids = {w["id"] for w in json.loads(q.cli("worker", "list", "--all", "--json").stdout)}

    started = q.cli("worker", "start", "--detach")

    assert started.stdout.startswith("Started 1 of 1 worker(s)"), started.stdout
    ids = reported_ids(started.stdout)
    assert len(ids) == 1 and ids[0] not in burst_ids, (ids, burst_ids)
    running = {w["id"] for w in json.loads(q.cli("worker", "list", "--json").stdout)}
    assert running == set(ids)
    stopped = q.cli("worker", "stop", "--wait", "--timeout", "20")
    assert "Stop requested for 1 worker(s)" in stopped.stdout
    assert json.loads(q.cli("worker", "list", "--json").stdout) == []


def test_a_detached_burst_after_another_reports_exactly_its_own_workers(q):
    first = q.cli("worker", "start", "--detach", "--burst", "--count", "2")
    second = q.cli("worker", "start", "--detach", "--burst", "--count", "2")

    assert first.stdout.startswith("Started 2 of 2 worker(s)"), first.stdout
    assert second.stdout.startswith("Started 2 of 2 worker(s)"), second.stdout
    first_ids, second_ids = reported_ids(first.stdout), reported_ids(second.stdout)
    assert len(set(first_ids)) == 2 and len(set(second_ids)) == 2
    assert not set(first_ids) & set(second_ids)
    # Burst workers with nothing to do exit by themselves.
    wait_for(
        lambda: json.loads(q.cli("worker", "list", "--json").stdout) == [],
        20,
        "the burst workers to exit",
    )
    every = {w["id"] for w in json.loads(q.cli("worker", "list", "--all", "--json").stdout)}
    assert set(first_ids) | set(second_ids) <= every


def test_the_worker_processes_do_not_hand_the_start_report_to_their_jobs(q):
    job_id = unique("env")
    out = q.home / "env.txt"
    q.cli("enqueue", "--id", job_id, f"env > {out}")
    q.cli("worker", "start", "--detach", "--burst")
    wait_for(lambda: q.job(job_id)["state"] == "completed", 20, "the job to complete")
    assert "QUEUECTL_STARTED_FD" not in out.read_text()
