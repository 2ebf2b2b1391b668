"""Chaos: 1,000 short jobs, 4 worker processes, and every second one of them is SIGKILLed
and replaced, on SQLite and on the MongoDB store over the wire lane (400 jobs there by
default; and a real MongoDB when QUEUECTL_TEST_MONGODB_URI is set). Every job must complete,
none may be lost, a job may run again only because its worker was killed, and two live
workers never run the same job at once.

Each run appends a `start` and an `end` line (job id, worker id, timestamp) to one log file.
Appends of short lines are atomic and land in the order they happen, so the line number is
the clock the interval checks use (immune to timestamp granularity).
"""

from __future__ import annotations

import math
import os
import random
import shlex
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Iterable, Iterator

import pytest
from procutil import QueueEnv, Supervisor, kill_quietly, wait_for
from wirelane import LANES, server_url

# The wire lane's one server process is the bottleneck of its fleet, and the part a loaded
# machine slows most (1,000 jobs: ~18 s on 2 quiet cores, ~150 s under a load of 13), so a
# server lane runs fewer jobs by default. QUEUECTL_CHAOS_JOBS sets the number for every lane.
JOBS = {"sqlite": 1000, "server": 400}
WORKERS = 4
KILL_EVERY = 1.0
# Generous bounds: on 2 quiet cores the run takes about 10-15 s on SQLite and 20 s on the wire
# lane, whose one server process feels a loaded machine most.
TIME_LIMIT = {"sqlite": 120.0, "server": 300.0}


@dataclass
class Run:
    """One attempt's command as the log shows it: line numbers of its start and end."""

    job: str
    worker: str
    start: int
    end: float = math.inf  # no end line: the command never finished


def parse_runs(lines: Iterable[str]) -> list[Run]:
    """Pair each `start` line with the next `end` line of the same job and worker."""
    runs: list[Run] = []
    open_runs: dict[tuple[str, str], Run] = {}
    for number, line in enumerate(lines):
        kind, job, worker, _stamp = line.split()
        if kind == "start":
            open_runs[(job, worker)] = run = Run(job, worker, number)
            runs.append(run)
        else:
            open_runs.pop((job, worker)).end = number
    return runs


def overlapping(runs: list[Run], killed: set[str]) -> list[str]:
    """Runs that broke exclusivity: the same job in two workers at once when the earlier
    worker was not killed, or one worker running two jobs at once."""
    problems = []
    by_job: dict[str, list[Run]] = defaultdict(list)
    by_worker: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        by_job[run.job].append(run)
        by_worker[run.worker].append(run)
    for job_runs in by_job.values():
        for first, later in combinations(sorted(job_runs, key=lambda r: r.start), 2):
            if later.start < first.end and first.worker not in killed:
                problems.append(f"{first} overlaps {later}")
    for worker_runs in by_worker.values():
        for first, later in zip(worker_runs, worker_runs[1:], strict=False):
            if later.start < first.end:
                problems.append(f"{first} and {later} ran at once in one worker")
    return problems


def worker_pid(worker_id: str) -> int:
    """The pid inside a worker id `<host>:<pid>:<n>-<suffix>`."""
    return int(worker_id.split(":")[-2])


@pytest.fixture(params=LANES)
def q(request, tmp_path) -> Iterator[QueueEnv]:
    """A private store (of each lane in turn) and home; every process started under it is
    killed afterwards."""
    with QueueEnv(tmp_path, server_url(request, request.param)) as env:
        yield env


def kill_one(rng: random.Random, pool: list[Supervisor]) -> int | None:
    """SIGKILL the worker process of a random supervisor; returns its pid."""
    candidates = [(s, s.workers()) for s in pool if s.proc.poll() is None]
    candidates = [(s, pids) for s, pids in candidates if pids]
    if not candidates:
        return None
    supervisor, pids = rng.choice(candidates)
    kill_quietly(pids[0], signal.SIGKILL)
    pool.remove(supervisor)
    return pids[0]


def _within(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll `condition` for up to `seconds`; whether it became true (no failure on timeout:
    the chaos loop uses this as its one-second tick)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def registered(q: QueueEnv, pool: list[Supervisor]) -> bool:
    """Whether every worker process of the pool has its row in the store."""
    pids = {pid for s in pool for pid in s.workers()}
    rows = [w for w in q.workers() if w["status"] in ("idle", "busy")]
    return len(pids) == len(pool) and pids <= {r["pid"] for r in rows}


def jobs_for(q: QueueEnv) -> int:
    """How many jobs the chaos run uses on this lane."""
    given = os.environ.get("QUEUECTL_CHAOS_JOBS")
    return int(given) if given else JOBS["server" if q.is_mongo else "sqlite"]


def run_with_kills(q: QueueEnv, rng: random.Random, jobs: int) -> tuple[list[int], float]:
    """Run WORKERS workers until every job completed, killing a random one every
    KILL_EVERY seconds and starting a replacement. Returns the killed pids and the wall
    time, after stopping the survivors and checking every supervisor's exit status."""
    started = time.monotonic()
    limit = TIME_LIMIT["server" if q.is_mongo else "sqlite"]
    pool = [q.start_workers() for _ in range(WORKERS)]
    killed_pids: list[int] = []
    dead: list[Supervisor] = []
    while not _within(lambda: q.counts().get("completed") == jobs, KILL_EVERY):
        assert time.monotonic() - started < limit, f"not done: {q.counts()}"
        before = list(pool)
        pid = kill_one(rng, pool)
        if pid is not None:
            killed_pids.append(pid)
            dead.extend(s for s in before if s not in pool)
            pool.append(q.start_workers())
    wall = time.monotonic() - started

    # `worker stop` asks the workers registered at that moment: let the newest register.
    wait_for(lambda: registered(q, pool), 15, "the replacement workers to register")
    q.cli("worker", "stop", "--wait", "--timeout", "30")
    failed = [s.output()[-3000:] for s in pool if s.wait(15) != 0]
    assert not failed, "a worker exited with an error:\n" + "\n---\n".join(failed)
    assert all(s.wait(15) == 1 for s in dead)  # each reports its killed worker
    # Commands orphaned by a kill run on; let them write their last lines.
    wait_for(lambda: not q.stray_pids(), 15, "orphaned commands to finish")
    return killed_pids, wall


def test_chaos_kills_lose_no_job_and_never_run_one_twice_at_once(q, capsys, record_property):
    q.config(poll_interval=0.1, heartbeat_interval=0.25, stale_after=2)
    log = shlex.quote(str(q.home / "runs.log"))
    line = '"{} $QUEUECTL_JOB_ID $QUEUECTL_WORKER_ID $(date +%s.%N)" >> ' + log
    command = f"echo {line.format('start')}; sleep 0.02; echo {line.format('end')}"
    jobs = jobs_for(q)
    ids = [f"chaos-{n:04d}" for n in range(jobs)]
    q.enqueue({"id": job_id, "command": command} for job_id in ids)
    seed = random.randrange(1 << 30)

    killed_pids, wall = run_with_kills(q, random.Random(seed), jobs)

    runs = parse_runs((q.home / "runs.log").read_text().splitlines())
    killed = {r.worker for r in runs if worker_pid(r.worker) in set(killed_pids)}
    duplicates = len(runs) - jobs
    figures = (
        f"chaos: jobs={jobs} kills={len(killed_pids)} duplicates={duplicates} "
        f"wall={wall:.1f}s workers={WORKERS} seed={seed}"
    )
    record_property("chaos", figures)
    with capsys.disabled():  # shown with or without -s
        print(f"\n{figures}")

    assert q.counts() == {"completed": jobs}
    assert sorted({r.job for r in runs}) == ids  # every job ran at least once
    assert 0 <= duplicates <= len(killed_pids), figures
    assert overlapping(runs, killed) == [], figures
    assert len(killed_pids) >= 3, f"the run ended before the chaos had a chance: {figures}"


def test_overlap_check_flags_a_live_worker_running_a_job_twice():
    # The checker itself must be able to fail: a second run starting before a live worker's
    # run ended is reported; the same when the first worker was killed is allowed.
    lines = ["start j1 h:1:1-a 0", "start j1 h:2:1-b 0", "end j1 h:1:1-a 0", "end j1 h:2:1-b 0"]
    runs = parse_runs(lines)
    assert len(overlapping(runs, killed=set())) == 1
    assert overlapping(runs, killed={"h:1:1-a"}) == []
    one_worker = [
        "start j1 h:1:1-a 0",
        "start j2 h:1:1-a 0",
        "end j1 h:1:1-a 0",
        "end j2 h:1:1-a 0",
    ]
    assert len(overlapping(parse_runs(one_worker), killed={"h:1:1-a"})) == 1
