"""Exactly one job per tick across processes on one SQLite file (SPEC §7.5): four processes
ticking an hour of fake minutes in lockstep, and four real worker processes on a real tick."""

from __future__ import annotations

import multiprocessing
import random
import re
import shlex
import time
from collections import Counter
from datetime import datetime, timezone

import pytest
from procutil import QueueEnv, wait_for

from queuectl.app import App
from queuectl.schedules import tick_job_id
from queuectl.store.sqlite import SqliteStore

MINUTE = 60.0
START = datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc).timestamp()
PROCESSES, MINUTES = 4, 60


def tick_in_lockstep(url: str, barrier, seed: int, results) -> None:
    """One process on the store `url` names: tick each fake minute at a random second of it,
    after every process finished the minute before (clocks agree to within the minute, as
    NTP keeps them)."""
    manager = App(url).schedules
    rng = random.Random(seed)
    won: list[str] = []
    for minute in range(1, MINUTES + 1):
        barrier.wait(timeout=60)
        for _ in range(rng.randint(1, 3)):  # a worker may poll more than once a minute
            won += manager.tick(START + minute * MINUTE + rng.uniform(0, 59.9))
    results.put(won)


def test_four_processes_ticking_together_enqueue_each_tick_exactly_once(tmp_path):
    path = str(tmp_path / "queue.db")
    store = SqliteStore(path)
    setup = App(store=store, clock=lambda: START).schedules
    setup.add("every", "* * * * *", "true")
    setup.add("seventh", "*/7 * * * *", "true")
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    processes = [
        context.Process(target=tick_in_lockstep, args=(path, barrier, seed, results))
        for seed in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    try:
        won = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    ticks = [START + m * MINUTE for m in range(1, MINUTES + 1)]
    expected = sorted(
        [tick_job_id("every", t) for t in ticks]
        + [
            tick_job_id("seventh", t)
            for t in ticks
            if datetime.fromtimestamp(t, timezone.utc).minute % 7 == 0
        ]
    )
    everything = sorted(job_id for ids in won for job_id in ids)
    assert everything == expected  # every tick enqueued by exactly one process
    assert sorted(j.id for j in store.list_jobs(None, 1000)) == expected
    assert store.get_schedule("every").next_run_at == START + (MINUTES + 1) * MINUTE


@pytest.fixture
def q(tmp_path):
    """A private store and home; every process started under it is killed afterwards."""
    with QueueEnv(tmp_path) as env:
        env.config(poll_interval=0.1, heartbeat_interval=0.2, stale_after=60)
        yield env


def test_four_worker_processes_run_a_due_tick_once(q):
    runs = q.home / "runs.txt"
    command = f'echo "$QUEUECTL_JOB_ID" >> {shlex.quote(str(runs))}'
    q.cli("schedule", "add", "minutely", "--cron", "* * * * *", command)
    supervisor = q.start_workers("--count", "4")
    wait_for(
        lambda: len(q.sql("SELECT id FROM workers WHERE status = 'idle'")) == 4,
        30,
        "4 idle workers",
    )
    # The tick of the current minute falls due now, while all four poll.
    minute = time.time() // MINUTE * MINUTE
    q.sql("UPDATE schedules SET next_run_at = ? WHERE name = 'minutely'", (minute,))
    first = tick_job_id("minutely", minute)
    done = "SELECT id FROM jobs WHERE id = ? AND state = 'completed'"
    wait_for(lambda: q.sql(done, (first,)), 30, f"{first} to complete")
    q.cli("worker", "stop", "--wait", "--timeout", "30")
    assert supervisor.wait(30) == 0

    # A minute may turn during the test: then its tick is enqueued too, once.
    jobs = [r["id"] for r in q.sql("SELECT id FROM jobs ORDER BY id")]
    assert jobs in ([first], [first, tick_job_id("minutely", minute + MINUTE)])
    ran = Counter(runs.read_text().split())
    assert ran == Counter({job_id: 1 for job_id in ran}) and sorted(ran) == jobs
    enqueued = re.findall(r"job (\S+) enqueued by its schedule", supervisor.output())
    assert sorted(enqueued) == jobs  # one worker enqueued each tick; the others found it done
    [row] = q.sql("SELECT * FROM schedules")
    last = minute + MINUTE * (len(jobs) - 1)
    assert (row["last_run_at"], row["next_run_at"]) == (last, last + MINUTE)
