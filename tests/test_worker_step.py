"""The worker, one step at a time, on every store: real tiny shell commands, a fake clock for
everything time decides (backoff, leases), and the reaper and fence around it."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import watch

from queuectl.app import App
from queuectl.config import ConfigManager
from queuectl.errors import ClaimUnanswered, StoreUnavailable
from queuectl.localproc import hostname, machine_key, pid_alive
from queuectl.models import WorkerInfo, format_time
from queuectl.worker import Worker

REFUSED = "result refused: the job's lease was lost (it was reclaimed)"
DEADLINE = 10.0  # seconds any wait in this file may take before the test fails


@pytest.fixture
def lines() -> list[str]:
    """The worker's log, one string per line."""
    return []


@pytest.fixture
def make_worker(store, clock, lines):
    """Build and start workers logging into `lines`, their time given by `clock`."""

    def make(log=None, **options) -> Worker:
        worker = App(store=store, clock=clock).worker(log=log or lines.append, **options)
        worker.start()
        return worker

    return make


def add(store, clock, *specs: dict) -> list[str]:
    """Enqueue jobs. Inserted directly rather than through JobManager.enqueue so no wake-up
    signal is aimed at the idle worker rows this test process registers."""
    jobs = App(store=store, clock=clock).jobs.build(
        [(f"line {n}", s) for n, s in enumerate(specs, 1)]
    )
    store.insert_jobs(jobs)
    return [job.id for job in jobs]


def wait_until(condition, what: str) -> None:
    """Poll a condition, failing the test if it does not hold within DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def in_background(action) -> threading.Thread:
    """Run `action` in a daemon thread (what a signal handler or heartbeat would do)."""
    thread = threading.Thread(target=action, daemon=True)
    thread.start()
    return thread


# -- start, success, failure -------------------------------------------------------------------


def test_start_registers_the_worker(store, make_worker, lines):
    worker = make_worker()
    row = store.get_worker(worker.info.id)
    assert re.fullmatch(rf"{re.escape(hostname())}:{os.getpid()}:1-[0-9a-f]{{4}}", row.id)
    assert (row.host, row.pid, row.status, row.current_job) == (
        hostname(),
        os.getpid(),
        "idle",
        None,
    )
    assert lines == [f"[{row.id}] started (pid {os.getpid()})"]
    assert make_worker().info.id != row.id


def test_a_succeeding_command_completes(store, clock, make_worker, lines):
    first, second = add(
        store, clock, {"command": "echo hello", "id": "j1"}, {"command": "true", "id": "j2"}
    )
    worker = make_worker()
    wid = worker.info.id
    assert worker.step() is True
    job = store.get_job(first)
    assert (job.state, job.attempts, job.exit_code) == ("completed", 1, 0)
    assert (job.stdout, job.stderr, job.last_error) == ("hello\n", "", None)
    assert isinstance(job.duration, float) and 0 < job.duration < DEADLINE
    assert job.started_at == job.finished_at == job.updated_at == clock()
    # The token stays on a job its own worker ended (so a retried write can tell a stored
    # result from a lost lease); the lock and the lease times go.
    assert job.locked_by is None and job.lease_token is not None
    assert job.lease_renewed_at is None and job.lease_expires_at is None
    assert store.get_job(second).state == "pending"  # one job per step: no prefetch
    assert lines[1] == f"[{wid}] job j1 started (attempt 1/4): echo hello"
    assert re.fullmatch(rf"\[{re.escape(wid)}\] job j1 completed in \d+\.\d\ds", lines[2])
    worker.heartbeat()
    assert (store.get_worker(wid).jobs_done, store.get_worker(wid).jobs_failed) == (1, 0)


def test_nothing_ready_means_no_step(store, clock, make_worker):
    add(store, clock, {"command": "true", "delay": 5})
    worker = make_worker()
    assert worker.step() is False
    clock.advance(5)
    assert worker.step() is True


def test_failures_back_off_2_4_8_then_the_dlq(store, clock, make_worker, lines):
    [job_id] = add(store, clock, {"command": "false", "id": "j1", "max_retries": 3})
    worker = make_worker()
    wid = worker.info.id
    for attempt, delay in ((1, 2), (2, 4), (3, 8)):
        assert worker.step() is True
        job = store.get_job(job_id)
        assert (job.state, job.attempts, job.run_at) == ("failed", attempt, clock() + delay)
        assert (job.exit_code, job.last_error) == (1, "exit status 1")
        assert lines[-2] == f"[{wid}] job j1 started (attempt {attempt}/4): false"
        assert lines[-1] == f"[{wid}] job j1 failed: exit status 1; retry in {delay}s"
        clock.advance(delay - 0.5)
        assert worker.step() is False, "a retry must wait for its run_at"
        clock.advance(0.5)
    assert worker.step() is True
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.last_error) == ("dead", 4, "exit status 1")
    assert lines[-1] == f"[{wid}] job j1 failed: exit status 1; moved to DLQ"
    assert worker.step() is False
    assert store.next_run_at() is None
    worker.heartbeat()
    assert store.get_worker(wid).jobs_failed == 4


def test_failure_records_the_exit_status_and_stderr(store, clock, make_worker):
    ids = add(
        store,
        clock,
        {"command": "echo out; echo oops >&2; exit 3"},
        {"command": "no_such_command_queuectl_test"},
    )
    worker = make_worker()
    assert worker.step() and worker.step()
    code3, missing = (store.get_job(i) for i in ids)
    assert (code3.exit_code, code3.stdout, code3.stderr) == (3, "out\n", "oops\n")
    assert code3.last_error == "exit status 3: oops"
    assert missing.exit_code == 127
    assert re.fullmatch(
        r"exit status 127: .*no_such_command_queuectl_test.*not found", missing.last_error
    )


def test_a_timed_out_command_is_killed_and_fails(store, clock, make_worker, lines):
    [job_id] = add(store, clock, {"command": "sleep 5", "timeout": 0.3})
    worker = make_worker()
    started = time.monotonic()
    assert worker.step() is True
    assert time.monotonic() - started < 4
    job = store.get_job(job_id)
    assert (job.state, job.last_error) == ("failed", "timed out after 0.3s")
    assert lines[-1].endswith(f"job {job_id} failed: timed out after 0.3s; retry in 2s")


def test_config_changes_are_picked_up(store, clock, make_worker):
    [job_id] = add(store, clock, {"command": "false"})
    worker = make_worker()
    worker.step()
    assert store.get_job(job_id).run_at == clock() + 2
    ConfigManager(store).set("backoff_base", "3")
    worker._refresh(None)
    clock.advance(2)
    worker.step()
    assert store.get_job(job_id).run_at == clock() + 9


# -- the fence and the reaper ------------------------------------------------------------------


def test_a_reclaimed_job_refuses_the_old_workers_result(store, clock, make_worker, lines):
    [job_id] = add(store, clock, {"command": "echo late", "id": "j1"})
    released: list[str] = []
    reaper = App(store=store, clock=clock)
    reaper.configs.load()  # the reaper sees the store from now on

    def log(line: str) -> None:
        lines.append(line)
        if "job j1 started" in line:
            # While the command runs, the worker goes silent past stale_after: the reaper
            # releases the job and another worker takes it.
            watch([reaper], clock, 610)
            released.extend(reaper.workers.reap(ConfigManager(store).load()))
            clock.advance(2)
            assert store.claim("other", clock(), "other-token").id == job_id

    worker = make_worker(log=log)
    assert worker.step() is True
    assert released == [job_id]
    job = store.get_job(job_id)
    assert (job.state, job.locked_by, job.lease_token, job.attempts) == (
        "processing",
        "other",
        "other-token",
        2,
    )
    assert job.last_error == f"worker {worker.info.id} stopped heartbeating"
    assert job.stdout is None and job.exit_code is None
    assert lines[-1] == f"[{worker.info.id}] {REFUSED}"
    worker.heartbeat()
    assert store.get_worker(worker.info.id).jobs_done == 0


def test_a_lost_lease_kills_the_running_command(store, clock, make_worker, lines, tmp_path):
    marker = tmp_path / "running"
    [job_id] = add(store, clock, {"command": f"touch {marker}; sleep 5", "id": "j1"})
    worker = make_worker()
    reaper = App(store=store, clock=clock)
    reaper.configs.load()  # the reaper sees the store from now on

    def lose_the_lease() -> None:
        wait_until(marker.exists, "the command to start")
        watch([reaper], clock, 610)
        reaper.workers.reap(ConfigManager(store).load())
        worker.heartbeat()  # what the heartbeat thread does every heartbeat_interval

    helper = in_background(lose_the_lease)
    started = time.monotonic()
    assert worker.step() is True
    assert time.monotonic() - started < 4
    helper.join(DEADLINE)
    wid = worker.info.id
    assert f"[{wid}] job j1: lease lost; killing its command" in lines
    assert lines[-1] == f"[{wid}] {REFUSED}"
    job = store.get_job(job_id)
    assert (job.state, job.attempts) == ("failed", 1)
    assert job.last_error == f"worker {wid} stopped heartbeating"


def test_the_reaper_releases_jobs_of_silent_workers(store, clock):
    def remote(worker_id: str) -> WorkerInfo:
        return WorkerInfo(
            id=worker_id,
            host="far.example",
            pid=1,
            status="busy",
            started_at=clock(),
            last_heartbeat=clock(),
        )

    a, b, c = add(
        store,
        clock,
        {"command": "true", "id": "a", "max_retries": 3},
        {"command": "true", "id": "b", "max_retries": 0},
        {"command": "true", "id": "c"},
    )
    store.register_worker(remote("far:1:1-aaaa"))
    store.register_worker(remote("far:2:1-bbbb"))
    store.claim("far:1:1-aaaa", clock(), "t-a")
    store.claim("far:1:1-aaaa", clock(), "t-b")
    store.claim("far:2:1-bbbb", clock(), "t-c")
    reaper_app = App(store=store, clock=clock)
    reaper = reaper_app.workers
    reaper_app.configs.load()  # the reaper sees the store from now on
    watch([reaper_app], clock, 300)
    store.update_worker("far:2:1-bbbb", {"last_heartbeat": clock()})
    assert store.renew_lease(c, "t-c", clock())
    assert reaper.reap(ConfigManager(store).load()) == []
    watch([reaper_app], clock, 301, step=1)  # far:1 has been silent 601 s, far:2 only 301 s
    assert sorted(reaper.reap(ConfigManager(store).load())) == [a, b]
    job_a, job_b, job_c = (store.get_job(i) for i in (a, b, c))
    assert (job_a.state, job_a.attempts, job_a.run_at) == ("failed", 1, clock() + 2)
    assert job_a.last_error == "worker far:1:1-aaaa stopped heartbeating"
    assert job_a.locked_by is None and job_a.lease_token is None
    assert (job_b.state, job_b.attempts) == ("dead", 1)
    assert (job_c.state, job_c.locked_by) == ("processing", "far:2:1-bbbb")
    assert store.get_worker("far:1:1-aaaa").status == "lost"
    assert store.get_worker("far:2:1-bbbb").status == "busy"
    assert reaper.reap(ConfigManager(store).load()) == []  # a second reaper finds nothing
    assert store.get_job(a).attempts == 1


def test_a_dead_local_worker_process_loses_its_job_at_once(store, clock, make_worker, lines):
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert not pid_alive(gone.pid)
    dead_id = f"{hostname()}:{gone.pid}:1-dead"
    store.register_worker(
        WorkerInfo(
            id=dead_id,
            host=hostname(),
            pid=gone.pid,
            status="busy",
            started_at=clock(),
            last_heartbeat=clock(),
            machine=machine_key(),
        )
    )
    [job_id] = add(store, clock, {"command": "true"})
    store.claim(dead_id, clock(), "tok")
    worker = make_worker()  # start() reaps, with no time passing at all
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.last_error) == ("failed", 1, f"worker {dead_id} exited")
    assert store.get_worker(dead_id).status == "lost"
    assert f"[{worker.info.id}] job {job_id} released from a lost worker" in lines


def test_a_same_named_host_in_another_pid_namespace_is_not_judged_by_pid(store, clock, make_worker):
    # Containers sharing the host's network share its hostname, not its pids.
    gone = subprocess.Popen(["true"])
    gone.wait()
    other_id = f"{hostname()}:{gone.pid}:1-twin"
    store.register_worker(
        WorkerInfo(
            id=other_id,
            host=hostname(),
            pid=gone.pid,
            status="busy",
            started_at=clock(),
            last_heartbeat=clock(),
            machine=machine_key() + "-another-namespace",
        )
    )
    [job_id] = add(store, clock, {"command": "true"})
    store.claim(other_id, clock(), "tok")
    make_worker()
    assert store.get_job(job_id).state == "processing"
    assert store.get_worker(other_id).status == "busy"


def test_the_reaper_judges_leases_by_the_current_config(store, clock, make_worker):
    # A worker whose config was read long ago must not release a healthy job after
    # stale_after was raised.
    ConfigManager(store).set("stale_after", 60)
    reaper = make_worker()
    store.register_worker(
        WorkerInfo(
            id="far:1:1-aaaa",
            host="far.example",
            pid=1,
            status="busy",
            started_at=clock(),
            last_heartbeat=clock(),
        )
    )
    [job_id] = add(store, clock, {"command": "true"})
    store.claim("far:1:1-aaaa", clock(), "tok")
    ConfigManager(store).set("stale_after", 3600)
    clock.advance(120)  # stale by the old setting, fresh by the new one
    reaper.heartbeat()
    assert store.get_job(job_id).state == "processing"


# -- stopping ----------------------------------------------------------------------------------


def test_a_burst_worker_says_once_what_scheduled_job_it_waits_for(store, clock, make_worker, lines):
    ConfigManager(store).set("poll_interval", 0.01)
    add(store, clock, {"command": "true", "delay": 3600})
    worker = make_worker(burst=True)
    assert worker.step() is False
    assert worker._idle() is True and worker._idle() is True  # still waiting, said once
    due = format_time(clock() + 3600)
    told = [line for line in lines if "waiting for the next scheduled job" in line]
    assert told == [f"[{worker.info.id}] waiting for the next scheduled job, due at {due}"]


def test_burst_run_works_off_the_queue_then_stops(store, clock, make_worker, lines):
    ids = add(store, clock, *({"command": "true"} for _ in range(3)))
    worker = make_worker(burst=True)
    assert worker.run() == 0
    assert {store.get_job(i).state for i in ids} == {"completed"}
    row = store.get_worker(worker.info.id)
    assert (row.status, row.jobs_done, row.current_job) == ("stopped", 3, None)
    assert lines[-1] == f"[{worker.info.id}] stopped"


def test_a_late_heartbeat_cannot_make_a_stopped_worker_look_alive(store, clock, make_worker):
    worker = make_worker(burst=True)
    assert worker.run() == 0
    clock.advance(5)
    worker.heartbeat()  # a heartbeat thread that outlived run()'s join
    row = store.get_worker(worker.info.id)
    assert (row.status, row.last_heartbeat) == ("stopped", clock() - 5)


def test_a_stop_requested_through_the_store_is_noticed(store, clock, make_worker, lines):
    [job_id] = add(store, clock, {"command": "true"})
    worker = make_worker(burst=True)
    store.request_stop([worker.info.id])
    store.bump_control()  # as `worker stop` does: idle workers read only the version
    assert worker.run() == 0
    assert store.get_job(job_id).state == "pending"
    assert store.get_worker(worker.info.id).status == "stopped"
    assert f"[{worker.info.id}] stop requested through the store" in lines


def test_an_immediate_stop_hands_the_job_back(store, clock, make_worker, lines):
    [job_id] = add(store, clock, {"command": "sleep 5", "max_retries": 0})

    def log(line: str) -> None:
        lines.append(line)
        if "started (attempt" in line:
            worker.request_stop(immediate=True)  # a second Ctrl+C just as the job begins

    worker = make_worker(log=log)
    started = time.monotonic()
    assert worker.step() is True
    assert time.monotonic() - started < 4
    job = store.get_job(job_id)
    assert (job.state, job.attempts, job.run_at) == ("pending", 0, clock())
    assert job.locked_by is None and job.last_error is None
    assert lines[-1] == f"[{worker.info.id}] job {job_id} interrupted; returned to pending"
    assert worker.stopping


def test_an_immediate_stop_kills_a_running_command(store, clock, make_worker, tmp_path: Path):
    marker = tmp_path / "running"
    [job_id] = add(store, clock, {"command": f"touch {marker}; sleep 5", "max_retries": 0})
    worker = make_worker()

    def interrupt() -> None:
        wait_until(marker.exists, "the command to start")
        worker.request_stop(immediate=True)

    helper = in_background(interrupt)
    started = time.monotonic()
    assert worker.step() is True
    assert time.monotonic() - started < 4
    helper.join(DEADLINE)
    job = store.get_job(job_id)
    assert (job.state, job.attempts) == ("pending", 0)
    clock.advance(1)
    assert store.claim("next", clock(), "tok").id == job_id  # claimable again at once


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_close_releases_the_pipes_a_worker_opens(store, clock):
    def open_fds() -> set[str]:
        return set(os.listdir("/proc/self/fd"))

    before = open_fds()
    worker = App(store=store, clock=clock).worker(log=lambda _line: None)
    assert len(open_fds() - before) == 6  # the wake, heartbeat and watch pipes
    worker.close()
    assert open_fds() - before == set()
    worker.wake()  # a late wake-up after close is harmless
    worker.close()  # and so is a second close


# -- chained steps: a result and the next claim in one store operation ------------------------


def test_a_chained_step_claims_the_next_job_with_its_result(store, clock, make_worker, lines):
    first, second = add(store, clock, {"command": "true", "id": "j1"}, {"command": "true"})
    worker = make_worker()
    wid = worker.info.id
    assert worker.step(chain=True) is True
    assert store.get_job(first).state == "completed"
    held = store.get_job(second)
    assert (held.state, held.attempts, held.locked_by) == ("processing", 1, wid)
    assert worker.busy  # held, so the heartbeat renews its lease
    clock.advance(5)
    worker.heartbeat()
    assert store.get_job(second).lease_renewed_at == clock()
    assert worker.step(chain=True) is True  # runs the held job, claims nothing more
    assert store.get_job(second).state == "completed"
    assert not worker.busy
    assert worker.step(chain=True) is False
    assert store.get_worker(wid).jobs_done == 2
    assert sum("started (attempt 1/4)" in line for line in lines) == 2


def test_a_job_claimed_with_the_last_result_is_handed_back_at_a_stop(
    store, clock, make_worker, lines
):
    first, second = add(store, clock, {"command": "true"}, {"command": "true"})
    worker = make_worker()
    run_at = store.get_job(second).run_at
    assert worker.step(chain=True) is True
    assert store.get_job(second).state == "processing"
    worker.request_stop()
    assert worker.run() == 0
    job = store.get_job(second)
    assert (job.state, job.attempts, job.run_at, job.locked_by) == ("pending", 0, run_at, None)
    handed = f"[{worker.info.id}] job {second}: claimed but not started before the stop; "
    assert any(line.startswith(handed) for line in lines), lines


def test_a_job_held_from_the_last_result_is_not_started_once_a_stop_came(
    store, clock, make_worker, lines
):
    """A stop that lands between the loop's check and the next step: the job claimed with
    the last result stays unstarted and goes back at the stop, attempt unspent."""
    first, second = add(store, clock, {"command": "true"}, {"command": "true"})
    worker = make_worker()
    assert worker.step(chain=True) is True
    worker.request_stop()
    assert worker.step() is False
    assert not any(f"job {second} started" in line for line in lines), lines
    assert worker.run() == 0
    job = store.get_job(second)
    assert (job.state, job.attempts) == ("pending", 0)


def test_a_job_that_ran_while_the_loop_did_not_poll_ends_under_the_current_config(
    store, clock, make_worker
):
    """SPEC §5: running workers apply a config change within poll_interval. A long job keeps
    the loop from polling, so its end (whose notification follows notify_url and notify_on)
    reads the config first when the loop has not polled for longer than that."""
    (job_id,) = add(store, clock, {"command": "true"})
    worker = make_worker()
    App(store=store, clock=clock).configs.set("notify_on", "all")  # while the job would run
    assert worker.config.notify_on == "dead"
    assert worker.step() is True
    assert store.get_job(job_id).state == "completed"
    assert worker.config.notify_on == "all"


def test_a_stopping_worker_claims_nothing_with_its_result(store, clock, make_worker):
    first, second = add(store, clock, {"command": "true"}, {"command": "true"})

    def log(line: str) -> None:
        if "started (attempt" in line:
            worker.request_stop()  # Ctrl+C while the first job runs

    worker = make_worker(log=log)
    assert worker.step(chain=True) is True
    assert store.get_job(first).state == "completed"
    assert store.get_job(second).state == "pending"
    assert not worker.busy


class LostChainedClaimReply:
    """A store whose first `finish_and_claim` writes the result and applies the claim, then
    loses the claim's reply (as a MongoDB connection cut after the server applied it does)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.lost = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def finish_and_claim(self, end, worker_id, now, lease_token, queues=(), lease_expires_at=None):
        if self.lost:
            return self.inner.finish_and_claim(
                end, worker_id, now, lease_token, queues, lease_expires_at
            )
        self.lost += 1
        written = end()
        self.inner.claim(worker_id, now, lease_token, queues, lease_expires_at)
        raise ClaimUnanswered(written, "connection closed")


def test_a_lost_reply_of_a_chained_claim_keeps_the_result_and_runs_the_job(store, clock, lines):
    first, second = add(store, clock, {"command": "true"}, {"command": "echo second"})
    flaky = LostChainedClaimReply(store)
    worker = App(store=flaky, clock=clock).worker(log=lines.append)
    worker.start()
    assert worker.step(chain=True) is True
    assert flaky.lost == 1
    assert store.get_job(first).state == "completed"
    assert any(f"job {first} completed" in line for line in lines), lines
    assert any("while claiming the next job" in line for line in lines), lines
    # The claim was applied: the next step finds it under its token and runs it, its
    # attempt counted once.
    assert worker.step(chain=True) is True
    job = store.get_job(second)
    assert (job.state, job.attempts, job.stdout) == ("completed", 1, "second\n")
    assert any("the claim's reply was lost; running it as claimed" in line for line in lines)
    assert store.get_worker(worker.info.id).jobs_done == 2


def test_a_worker_sleeps_on_a_pipe_numbered_past_1024():
    """A process holding many files gives a worker's pipes high numbers: select() refuses
    any from 1024 on, so the worker must wait another way."""
    from queuectl.worker import _sleep_on

    read_end, write_end = os.pipe()
    high = 1500
    try:
        os.dup2(read_end, high)
        os.set_blocking(high, False)
        os.write(write_end, b"x")
        _sleep_on(high, 5.0)  # poked already: returns at once, having drained the pipe
        with pytest.raises(BlockingIOError):
            os.read(high, 1)
    finally:
        for fd in (read_end, write_end, high):
            os.close(fd)


def test_a_signal_after_a_stop_seen_through_the_store_lets_the_job_finish(
    store, clock, make_worker, lines
):
    """`worker stop` asks through the store, then signals: a busy worker whose heartbeat saw
    the request first must take that signal as the first one (finish the job), not as a
    second one (kill it)."""
    [job_id] = add(store, clock, {"command": "true"})

    def log(line: str) -> None:
        lines.append(line)
        if "started (attempt" in line:
            store.request_stop([worker.info.id])
            store.bump_control()
            worker.heartbeat()  # a busy worker's heartbeat reads the control version
            assert worker.stopping
            worker.request_stop()  # the SIGTERM `worker stop` sends after its write

    worker = make_worker(log=log)
    assert worker.step() is True
    assert store.get_job(job_id).state == "completed", lines
    assert not worker.abort
    worker.request_stop()  # a second signal does stop at once
    assert worker.abort


def test_a_held_job_whose_lease_was_lost_is_not_run(store, clock, make_worker, lines, tmp_path):
    marker = tmp_path / "ran"
    first, second = add(store, clock, {"command": "true"}, {"command": f"touch {marker}"})
    worker = make_worker()
    assert worker.step(chain=True) is True
    held = store.get_job(second)
    # Another worker holds it now (its lease was released while this one was frozen).
    assert store.update_if(second, {"lease_token": held.lease_token}, {"lease_token": "other"})
    worker.heartbeat()
    assert not worker.busy
    assert worker.step(chain=True) is False
    assert not marker.exists()
    assert any(f"job {second}: lease lost before it started" in line for line in lines), lines


class FinishOutage:
    """A store whose next `finish` calls cannot reach the server."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.failures = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def finish(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("cannot reach the server")
        return self.inner.finish(*args, **kwargs)


def test_a_held_job_is_handed_back_at_a_stop_through_a_store_outage(store, clock, lines):
    first, second = add(store, clock, {"command": "true"}, {"command": "true"})
    flaky = FinishOutage(store)
    worker = App(store=flaky, clock=clock).worker(log=lines.append)
    worker.start()
    assert worker.step(chain=True) is True
    assert store.get_job(second).state == "processing"
    flaky.failures = 2  # longer than both hand-backs of the stop (the held job, then orphans)
    worker.request_stop()
    assert worker.run() == 0
    job = store.get_job(second)
    assert (job.state, job.attempts, job.locked_by) == ("pending", 0, None), lines


def test_run_starts_with_a_job_held_from_a_chained_step(store, clock, make_worker, lines):
    """The loop claims only when its poll saw a job due; a job already held is not one the
    poll sees (it is processing), so the loop must run it without being told."""
    first, second = add(store, clock, {"command": "true"}, {"command": "true"})
    worker = make_worker()
    assert worker.step(chain=True) is True
    runner = in_background(worker.run)
    try:
        wait_until(lambda: store.get_job(second).state == "completed", "the held job to run")
    finally:
        worker.request_stop()
        runner.join(DEADLINE)
    assert not runner.is_alive()


class LostClaimReply:
    """A store whose first claim is applied and whose reply is then lost; `on_finish`, when
    set, runs once just before the next `finish` (what a heartbeat's hand-back writes)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.lost = 0
        self.on_finish = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def claim(self, *args, **kwargs):
        taken = self.inner.claim(*args, **kwargs)
        if not self.lost:
            self.lost += 1
            raise StoreUnavailable("connection closed")
        return taken

    def finish(self, *args, **kwargs):
        hook, self.on_finish = self.on_finish, None
        if hook is not None:
            hook()
        return self.inner.finish(*args, **kwargs)


def test_the_heartbeat_leaves_a_lost_claims_job_to_the_claim_that_looks_for_it(store, clock, lines):
    """A claim whose reply was lost is looked for by the next claim; the heartbeat's
    hand-back of orphans must not hand that job back once a claim of ours has taken it."""
    [job_id] = add(store, clock, {"command": "true"})
    flaky = LostClaimReply(store)
    worker = App(store=flaky, clock=clock).worker(log=lines.append)
    worker.start()
    with pytest.raises(StoreUnavailable):
        worker.step()
    assert store.get_job(job_id).state == "processing"  # the claim was applied
    taken: list = []
    # The next claim runs just after the heartbeat decided what to hand back.
    flaky.on_finish = lambda: taken.append(worker._claim_held(worker.info.id))
    worker.heartbeat()
    if taken:
        assert taken[0] is not None and taken[0].id == job_id
    else:
        assert worker._claim_held(worker.info.id).id == job_id
    assert store.get_job(job_id).state == "processing", lines
