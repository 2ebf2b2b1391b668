"""Retention and purge (SPEC §7.2) with real `queuectl worker start` processes, on SQLite and
on the wire lane's MongoDB: running workers delete old completed jobs on their own and leave
dead ones, and `queuectl purge` runs beside them."""

from __future__ import annotations

from typing import Iterator

import pytest
from procutil import QueueEnv, wait_for

FAST = {"poll_interval": 0.1, "heartbeat_interval": 0.3, "stale_after": 60}


@pytest.fixture(params=["sqlite", "wire"])
def q(request, tmp_path) -> Iterator[QueueEnv]:
    """A private store and home; every process started under it is killed afterwards."""
    url = request.getfixturevalue("wire_url") if request.param == "wire" else None
    with QueueEnv(tmp_path, url) as env:
        env.config(**FAST)
        yield env


def test_running_workers_delete_old_completed_jobs_and_keep_dead_ones(q):
    q.enqueue([{"id": f"ok-{n}", "command": "true"} for n in range(12)])
    q.cli("enqueue", "--id", "broken", "--max-retries", "0", "exit 3")
    supervisor = q.start_workers("--count", "2")
    wait_for(lambda: q.counts() == {"completed": 12, "dead": 1}, 30, "every job to end")
    q.config(retention=1)
    wait_for(lambda: q.counts() == {"dead": 1}, 30, "retention to delete the completed jobs")
    assert "retention: deleted" in supervisor.output()
    # Keep forever: every sweep that starts from now on reads it (a sweep already running
    # deletes only jobs that ended a second before it started).
    q.config(retention=0)
    q.cli("enqueue", "--id", "late", "true")
    wait_for(lambda: q.counts().get("completed") == 1, 30, "the late job to complete")
    assert q.cli("purge", "--state", "dead").stdout == "Purged 1 job(s)\n"
    q.cli("worker", "stop", "--wait", "--timeout", "20")
    assert supervisor.wait(10) == 0
    assert q.counts() == {"completed": 1}
    assert q.cli("purge").stdout == "Purged 1 job(s)\n"
    assert q.counts() == {}
