"""The worker and SPEC §7: it serves only its queues, kills a job canceled while it runs
(found through the store, as from another machine), and stores running output about once a
second. In-process, on every store, with real tiny shell commands."""

from __future__ import annotations

import threading
import time

import pytest
from procutil import job_processes

from queuectl.app import App
from queuectl.config import ConfigManager

DEADLINE = 15.0


@pytest.fixture
def lines() -> list[str]:
    """The worker's log."""
    return []


def make_worker(store, clock, lines, **options):
    """A started worker logging into `lines`."""
    worker = App(store=store, clock=clock).worker(log=lines.append, **options)
    worker.start()
    return worker


def add(store, clock, *specs: dict) -> list[str]:
    """Insert jobs without waking anyone (this process's worker rows would be signalled)."""
    manager = App(store=store, clock=clock).jobs
    jobs = manager.build([(f"line {n}", s) for n, s in enumerate(specs, 1)])
    store.insert_jobs(jobs, manager._dead_dependency(clock()))
    return [job.id for job in jobs]


def wait_until(condition, what: str, deadline: float = DEADLINE):
    """Poll a condition; fail the test if it does not hold in time."""
    end = time.monotonic() + deadline
    while not (value := condition()):
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
    return value


def test_a_worker_serves_only_its_queues_and_says_so(store, clock, lines):
    add(
        store,
        clock,
        {"id": "mail", "command": "true", "queue": "mail"},
        {"id": "other", "command": "true", "queue": "other", "priority": 9},
        {"id": "plain", "command": "true"},
    )
    worker = make_worker(store, clock, lines, queues=["mail", "default"], burst=True)
    assert store.get_worker(worker.info.id).queues == ["mail", "default"]
    assert worker.run() == 0, "a burst worker stops once its own queues are empty"
    states = {j: store.get_job(j).state for j in ("mail", "other", "plain")}
    assert states == {"mail": "completed", "other": "pending", "plain": "completed"}
    everyone = make_worker(store, clock, lines)
    assert store.get_worker(everyone.info.id).queues == []
    assert everyone.step() and store.get_job("other").state == "completed"


def test_a_canceled_running_job_is_killed_through_the_store(store, clock, lines):
    ConfigManager(store).set("poll_interval", "0.1")
    [job_id] = add(store, clock, {"command": "sleep 30", "max_retries": 5})
    worker = make_worker(store, clock, lines)
    stepping = threading.Thread(target=worker.step, daemon=True)
    stepping.start()
    wait_until(lambda: job_processes(job_id), "the command to start")
    started = time.monotonic()
    canceled, problems = App(store=store, clock=clock).jobs.cancel([job_id])
    assert (canceled, problems) == ([job_id], [])
    stepping.join(DEADLINE)
    assert not stepping.is_alive()
    assert time.monotonic() - started < 5, "found within about poll_interval"
    job = store.get_job(job_id)
    assert (job.state, job.last_error, job.attempts) == ("dead", "canceled while running", 1)
    assert job.exit_code == -9 and job.cancel_requested is False
    assert wait_until(lambda: not job_processes(job_id), "its process group to be gone")
    assert lines[-1].endswith(f"job {job_id} canceled while running; moved to DLQ")


def test_running_output_is_stored_about_once_a_second(store, clock, lines):
    [job_id] = add(store, clock, {"command": "echo one; sleep 1.5; echo two; sleep 1.5"})
    worker = make_worker(store, clock, lines)
    stepping = threading.Thread(target=worker.step, daemon=True)
    stepping.start()
    wait_until(lambda: store.get_job(job_id).live_stdout == "one\n", "the first line stored")
    assert store.get_job(job_id).state == "processing"
    wait_until(lambda: store.get_job(job_id).live_stdout == "one\ntwo\n", "the second line")
    stepping.join(DEADLINE)
    job = store.get_job(job_id)
    assert (job.state, job.stdout, job.live_stdout, job.live_stderr) == (
        "completed",
        "one\ntwo\n",
        None,
        None,
    )


def test_a_short_job_costs_no_output_write(store, clock, lines, monkeypatch):
    writes = []
    real = store.progress

    def counting(job_id, token, changes):
        writes.append(changes)
        return real(job_id, token, changes)

    monkeypatch.setattr(store, "progress", counting)
    [job_id] = add(store, clock, {"command": "echo hi"})
    worker = make_worker(store, clock, lines)
    assert worker.step()
    assert store.get_job(job_id).stdout == "hi\n"
    assert [c for c in writes if c] == [], "a job that ends within a second flushes nothing"


def test_a_job_canceled_while_running_is_posted_as_dead_one_canceled_before_is_not(
    store, clock, lines
):
    from test_notify import FAST_DELAYS, Endpoint

    endpoint = Endpoint()
    try:
        ConfigManager(store).set("poll_interval", "0.1")
        ConfigManager(store).set("notify_url", endpoint.url)
        running, waiting = add(
            store,
            clock,
            {"id": "running", "command": "sleep 30", "priority": 1},
            {"id": "waiting", "command": "true"},
        )
        worker = make_worker(store, clock, lines)
        worker.notifier.delays = FAST_DELAYS
        stepping = threading.Thread(target=worker.step, daemon=True)
        stepping.start()
        wait_until(lambda: job_processes(running), "the command to start")
        App(store=store, clock=clock).jobs.cancel([running, waiting])
        stepping.join(DEADLINE)
        assert worker.notifier.close(DEADLINE) == 0
        sent = [(b["event"], b["job"]["id"], b["job"]["last_error"]) for b in endpoint.bodies()]
        assert sent == [("job.dead", "running", "canceled while running")]
    finally:
        endpoint.close()
