"""What an idle worker costs the store (SPEC §8): at most one indexed read per poll_interval,
plus its heartbeat, so 1,000 idle workers at the default settings cost the store at most about
1,100 operations per second.

Every store call of one worker is counted through a proxy while its loop runs over simulated
time: the clock is moved by the wait itself, so N poll intervals take no real time and the
count is the same on every run.
"""

from __future__ import annotations

import collections

import pytest
from idlesim import CountingStore, run_idle

from queuectl.app import App

# 1,000 idle workers may cost the store about 1,100 operations per second: 1.1 per worker.
BUDGET_PER_WORKER_SECOND = 1.1
# Long enough to cover the reaper's whole path: it counts staleness only after it has seen
# the store for stale_after (600 s by default).
SIMULATED = 1800.0


@pytest.fixture
def counted(store, clock):
    counting = CountingStore(store, clock)
    app = App(store=counting, clock=clock)  # type: ignore[arg-type]
    return counting, app


def test_an_idle_worker_costs_one_store_read_per_poll_interval(counted, clock, request):
    if request.node.callspec.params["store"] not in ("sqlite", "mongomock"):
        pytest.skip("the same calls; what they cost a server is measured by `make bench`")
    counting, app = counted
    worker = app.worker(log=lambda line: None)
    worker.start()
    counting.calls.clear()
    start = clock()
    run_idle(worker, clock, SIMULATED, lambda elapsed: None)
    end = start + SIMULATED
    calls = counting.names(start, end)
    by_name = collections.Counter(calls)
    # A sweep's batches are the fleet's, not each worker's: one worker of the fleet takes the
    # turn per heartbeat_interval (here the only one takes every turn), so they are left out
    # of what each idle worker costs.
    total = len(calls) - by_name["purge_batch"]
    per_second = total / SIMULATED
    # The loop itself: one poll per poll_interval (1 s by default) and nothing else.
    assert by_name["poll"] == pytest.approx(SIMULATED, abs=2), by_name
    for name in ("claim", "get_config", "get_worker", "next_run_at", "due_schedules"):
        assert by_name[name] <= 1, by_name  # at most the first claim after start
    # Its heartbeat (every 30 s) and the reaper (every 60 s, a tenth of stale_after).
    assert by_name["update_worker"] == pytest.approx(SIMULATED / 30, abs=2), by_name
    assert by_name["list_workers"] <= SIMULATED / 60 + 1, by_name
    # The retention sweep: started at the reaper's pace, in a thread of its own (so its calls
    # may land in any second): a turn asked for, and this worker's turn swept.
    sweep = {"take_turn", "purge_batch"}
    for name in sweep:
        assert by_name[name] <= SIMULATED / 60 + 1, by_name
    assert per_second <= BUDGET_PER_WORKER_SECOND, (per_second, by_name)
    # Every poll interval on its own keeps to one read plus whatever its heartbeat adds.
    beats = {at for at, name in counting.calls if name == "update_worker"}
    for second in range(int(SIMULATED)):
        window = [n for n in counting.names(start + second, start + second + 1) if n not in sweep]
        if not any(start + second <= at < start + second + 1 for at in beats):
            assert window == ["poll"], (second, window)


def test_a_stop_and_a_config_change_still_reach_an_idle_worker_within_a_poll(counted, clock):
    counting, app = counted
    other = App(store=counting._store, clock=clock)  # another machine's CLI
    lines: list[tuple[float, str]] = []
    worker = app.worker(log=lambda line: lines.append((clock(), line)))
    worker.start()
    start = clock()
    intervals: list[float] = []

    def during(elapsed: float) -> None:
        intervals.append(float(worker.config.poll_interval))
        if elapsed == 10.5:  # halfway between two polls
            other.configs.set("poll_interval", "2")
        if elapsed == 20:  # halfway again, the polls now 2 s apart (11, 13, ...)
            other.workers.request_stop()

    run_idle(worker, clock, 60, during)
    reads = [at - start for at, name in counting.calls if name == "get_config" and at > start]
    assert reads == [11, 21]  # the config is read at the poll after each change, only then
    stopped = [at - start for at, line in lines if "stop requested through the store" in line]
    assert stopped == [21]  # the next poll after the request
    assert app.store.get_worker(worker.info.id).status == "stopped"


def test_the_reaper_keeps_pace_with_a_live_change_of_its_timing(counted, clock):
    counting, app = counted
    other = App(store=counting._store, clock=clock)
    worker = app.worker(log=lambda line: None)
    worker.start()
    start = clock()

    def during(elapsed: float) -> None:
        if elapsed == 100.5:  # reaping every 60 s until now
            other.configs.set("heartbeat_interval", "1")
            other.configs.set("stale_after", "5")

    run_idle(worker, clock, 130, during)
    reaps = [at - start for at, name in counting.calls if name == "list_workers"]
    assert [at for at in reaps if at < 100] == [0, 30, 90]  # at its start, then every 60 s
    # From the next poll on, every heartbeat (1 s) reaps: stale_after / 10 is shorter.
    assert len([at for at in reaps if 101 <= at < 130]) >= 28, reaps


def test_an_idle_worker_claims_a_job_due_later_without_an_extra_read(counted, clock):
    counting, app = counted
    worker = app.worker(log=lambda line: None)
    worker.start()
    [job] = app.jobs.build([(None, {"command": "true", "delay": 5.5})])
    app.store.insert_jobs([job])
    counting.calls.clear()
    start = clock()
    run_idle(worker, clock, 10, lambda elapsed: None)
    assert app.store.get_job(job.id).state == "completed"
    job_after = app.store.get_job(job.id)
    assert job_after.started_at == pytest.approx(start + 5.5, abs=0.01)  # at its run_at
    claims = [name for name in counting.names(start, start + 10) if name == "claim"]
    assert len(claims) == 2  # the job's, then one more after it ran (nothing left)


def test_the_poll_answers_what_an_idle_worker_needs_in_one_read(store, clock):
    from queuectl.models import Schedule

    app = App(store=store, clock=clock)
    store.ensure_control()
    assert store.poll() == (0, None, None)
    built = app.jobs.build(
        [
            (None, {"id": "later", "command": "true", "delay": 50}),
            (None, {"id": "sooner", "command": "true", "delay": 20, "queue": "b"}),
            (None, {"id": "blocked", "command": "true", "after": ["later"]}),
        ]
    )
    store.insert_jobs(built)
    for name, paused, at in (("active", False, clock() + 70), ("paused", True, clock() + 5)):
        store.insert_schedule(Schedule(name, "* * * * *", "UTC", "true", next_run_at=at))
        if paused:
            store.update_schedule(name, {"paused": True})
    poll = store.poll()
    assert (poll.next_run_at, poll.next_schedule_at) == (clock() + 20, clock() + 70)
    assert store.poll(["default"]).next_run_at == clock() + 50  # "blocked" waits on "later"
    assert store.poll(["b", "c"]).next_run_at == clock() + 20
    assert store.poll(["c"]).next_run_at is None

    app.configs.set("poll_interval", "3")
    app.workers.request_stop()
    app.configs.unset("poll_interval")
    assert store.poll().version == 3  # each change moved it once
    store.ensure_control()  # a worker that starts never moves it
    assert store.poll().version == 3
    assert store.get_config() == {}  # the version is not a config key
