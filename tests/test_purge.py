"""Purge and retention (SPEC §7.2) through JobManager, the worker and `queuectl purge`, on
every store, with a movable clock: what goes, what never goes, the batches, and one
retention sweep per heartbeat_interval for a whole fleet."""

from __future__ import annotations

import itertools
import sys
import threading
from dataclasses import replace
from typing import Iterator

import pytest
from test_cli import CLI_BACKENDS, Cli, make_cli

from queuectl.app import App
from queuectl.config import Config
from queuectl.errors import InvalidInput
from queuectl.jobs import JobManager
from queuectl.models import STATES, Job

DAY = 86_400.0
_seq = itertools.count(1)


def seed(store, clock, job_id: str, state: str, age: float = 0.0, **fields) -> None:
    """A job in `state` that ended (or last changed) `age` seconds before the clock's now."""
    at = clock() - age
    values = {"command": "true", "run_at": at, "created_at": at - 1, "updated_at": at}
    if state in ("completed", "dead"):
        values["finished_at"] = at
    values.update(fields)
    store.insert_jobs([Job(id=job_id, state=state, seq=next(_seq), **values)])


def ids(store) -> set[str]:
    return {j.id for j in store.list_jobs(None, 10_000)}


@pytest.fixture
def jobs(store, clock) -> JobManager:
    """A JobManager on a fresh store whose pauses between batches are recorded, not slept."""
    manager = App(store=store, clock=clock).jobs
    pauses: list[float] = []
    manager.pause = pauses.append
    manager.paused = pauses  # type: ignore[attr-defined]
    return manager


def settings(**values) -> Config:
    return replace(Config.defaults(), **values)


# -- JobManager.purge -----------------------------------------------------------------------------


def test_purge_deletes_completed_jobs_in_batches_with_a_pause_after_each(jobs, store, clock):
    for n in range(6):
        seed(store, clock, f"done-{n}", "completed", age=10 + n)
    for state in STATES:
        seed(store, clock, f"keep-{state}", state, age=30 * DAY)
    jobs.purge_batch_size = 2
    progress: list[int] = []
    assert jobs.purge(progress=progress.append) == 7  # keep-completed is completed too
    assert progress == [2, 4, 6, 7]
    # A pause after each full batch; the short one was the last.
    assert len(jobs.paused) == 3 and all(p > 0 for p in jobs.paused)
    assert ids(store) == {f"keep-{s}" for s in STATES if s != "completed"}


def test_purge_by_age_state_and_queue(jobs, store, clock):
    seed(store, clock, "done-8d", "completed", age=8 * DAY)
    seed(store, clock, "done-6d", "completed", age=6 * DAY)
    seed(store, clock, "mail-8d", "completed", age=8 * DAY, queue="mail")
    seed(store, clock, "dead-8d", "dead", age=8 * DAY)
    seed(store, clock, "dead-1h", "dead", age=3600)
    assert jobs.purge("completed", 7 * DAY, "mail") == 1
    assert jobs.purge("completed", 7 * DAY) == 1
    assert ids(store) == {"done-6d", "dead-8d", "dead-1h"}
    assert jobs.purge("dead", 7 * DAY) == 1
    assert jobs.purge("dead") == 1
    assert ids(store) == {"done-6d"}


def test_jobs_that_end_while_a_purge_runs_are_kept(jobs, store, clock):
    seed(store, clock, "old", "completed", age=1)
    batches = []

    def pause(seconds: float) -> None:
        clock.advance(1)
        seed(store, clock, f"new-{len(batches)}", "completed")
        batches.append(seconds)

    jobs.pause = pause
    jobs.purge_batch_size = 1
    seed(store, clock, "older", "completed", age=2)
    assert jobs.purge() == 2
    assert ids(store) == {"new-0", "new-1"}


@pytest.mark.parametrize(
    "state, older_than, queue",
    [
        ("pending", 0, None),
        ("processing", 0, None),
        ("failed", 0, None),
        ("everything", 0, None),
        ("completed", -1, None),
        ("completed", float("nan"), None),
        ("completed", float("inf"), None),
        ("completed", 0, "no spaces"),
    ],
)
def test_bad_purge_input_deletes_nothing(jobs, store, clock, state, older_than, queue):
    for name in STATES:
        seed(store, clock, name, name, age=DAY)
    with pytest.raises(InvalidInput):
        jobs.purge(state, older_than, queue)
    assert ids(store) == set(STATES)


# -- retention ------------------------------------------------------------------------------------


def test_one_retention_sweep_per_heartbeat_interval_for_the_whole_fleet(store, clock):
    first, second = App(store=store, clock=clock).jobs, App(store=store, clock=clock).jobs
    config = settings(retention=DAY, heartbeat_interval=30)
    seed(store, clock, "old-1", "completed", age=2 * DAY)
    seed(store, clock, "young", "completed", age=DAY / 2)
    seed(store, clock, "dead-old", "dead", age=30 * DAY)
    assert first.sweep_retention(config) == 1
    seed(store, clock, "old-2", "completed", age=2 * DAY)
    assert second.sweep_retention(config) == 0  # the fleet swept within the interval
    assert first.sweep_retention(config) == 0
    clock.advance(29)
    assert second.sweep_retention(config) == 0
    clock.advance(1)
    assert second.sweep_retention(config) == 1
    assert ids(store) == {"young", "dead-old"}  # dead jobs only ever go by `purge`
    clock.advance(DAY)
    assert first.sweep_retention(config) == 1
    assert ids(store) == {"dead-old"}


def test_retention_0_keeps_everything_and_takes_no_turn(store, clock):
    manager = App(store=store, clock=clock).jobs
    seed(store, clock, "ancient", "completed", age=3650 * DAY)
    assert manager.sweep_retention(settings(retention=0)) == 0
    assert ids(store) == {"ancient"}
    # No turn was taken: a sweep with retention on goes ahead at once.
    assert manager.sweep_retention(settings(retention=DAY)) == 1


def test_a_retention_sweep_is_bounded(store, clock):
    manager = App(store=store, clock=clock).jobs
    manager.pause = lambda _seconds: None
    manager.purge_batch_size = 2
    for n in range(11):
        seed(store, clock, f"old-{n}", "completed", age=2 * DAY)
    config = settings(retention=DAY)
    assert manager.sweep_retention(config, max_batches=3) == 6
    clock.advance(config.heartbeat_interval)
    calls = iter([True, False])
    assert manager.sweep_retention(config, keep_going=lambda: next(calls)) == 4
    assert len(ids(store)) == 1


# -- the worker -----------------------------------------------------------------------------------


def test_a_worker_heartbeat_sweeps_in_a_thread_and_logs_what_it_deleted(store, clock):
    app = App(store=store, clock=clock)
    app.configs.set("retention", "86400")
    seed(store, clock, "old", "completed", age=2 * DAY)
    seed(store, clock, "young", "completed", age=60)
    lines: list[str] = []
    worker = app.worker(log=lines.append)
    worker.start()
    heartbeat = threading.current_thread()
    seen = []
    real = app.jobs.sweep_retention

    def sweep(config, **kwargs):
        seen.append(threading.current_thread())
        return real(config, **kwargs)

    app.jobs.sweep_retention = sweep  # type: ignore[method-assign]
    clock.advance(worker.config.stale_after)  # past the reaper's pace: sweeps go with it
    worker.heartbeat()
    assert worker.retention.wait(10)
    assert seen and seen[0] is not heartbeat  # never on the thread that renews leases
    assert ids(store) == {"young"}
    assert any("retention: deleted 1 completed job(s) older than 86400s" in line for line in lines)
    assert worker.retention.kick(worker.config)  # within the interval: no second sweep
    assert worker.retention.wait(10)
    assert len(seen) == 2 and sum("retention:" in line for line in lines) == 1
    worker.retention.stop()
    store.update_worker(worker.info.id, {"status": "stopped"})


def test_a_sweep_that_fails_is_logged_and_the_worker_goes_on(store, clock):
    app = App(store=store, clock=clock)
    lines: list[str] = []
    worker = app.worker(log=lines.append)
    worker.start()

    def broken(config, **kwargs):
        raise RuntimeError("disk on fire")

    app.jobs.sweep_retention = broken  # type: ignore[method-assign]
    worker.heartbeat()
    assert worker.retention.wait(10)
    assert any("retention sweep failed: disk on fire" in line for line in lines)
    worker.heartbeat()  # the heartbeat itself is unharmed
    worker.retention.stop()
    store.update_worker(worker.info.id, {"status": "stopped"})


# -- queuectl purge -------------------------------------------------------------------------------


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


def test_purge_command_prints_how_many_and_keeps_what_it_must(cli):
    now = cli.seed("x").created_at
    cli.store.purge_batch("completed", now + 1, None, 10, lambda d: {})  # nothing to purge
    for state in STATES:
        cli.seed(f"{state}-old", state, updated_at=now - 8 * DAY, finished_at=now - 8 * DAY)
    cli.seed("done-new", "completed", finished_at=now)
    cli.seed("mail-old", "completed", queue="mail", updated_at=now - 8 * DAY, finished_at=0.0)
    assert cli.ok("purge", "--older-than", "7d", "--queue", "mail") == "Purged 1 job(s)\n"
    assert cli.ok("purge", "--older-than", "7d") == "Purged 1 job(s)\n"
    assert cli.ok("purge", "--state", "dead", "--older-than", "604800") == "Purged 1 job(s)\n"
    assert cli.ok("purge", "--state", "dead") == "Purged 0 job(s)\n"
    assert cli.ok("purge") == "Purged 1 job(s)\n"  # done-new: every completed job
    assert ids(cli.store) == {"x", "pending-old", "processing-old", "failed-old"}


@pytest.mark.parametrize(
    "args, words",
    [
        (["--state", "pending"], "purge deletes only completed or dead jobs"),
        (["--state", "failed"], "purge deletes only completed or dead jobs"),
        (["--state", "nope"], "purge deletes only completed or dead jobs"),
        (["--older-than", "7w"], "use e.g. 90s, 30m, 12h, 7d"),
        (["--older-than", "-5"], "use e.g. 90s, 30m, 12h, 7d"),
        (["--older-than", ""], "use e.g. 90s, 30m, 12h, 7d"),
        (["--older-than", "inf"], "use e.g. 90s, 30m, 12h, 7d"),
        (["--queue", "a b"], "queue 'a b' is not allowed"),
        (["--queue", ""], "is not allowed"),
        (["extra"], "unexpected extra argument"),
    ],
)
def test_bad_purge_input_is_exit_2_and_changes_nothing(cli, args, words):
    for state in STATES:
        cli.seed(f"{state}-old", state, updated_at=1.0, finished_at=1.0)
    err = cli.fails(2, "purge", *args)
    assert words in err, err


def test_purge_shows_progress_only_on_a_terminal(cli, monkeypatch):
    monkeypatch.setattr("queuectl.jobs.PURGE_MIN_PAUSE", 0.0)
    monkeypatch.setattr("queuectl.jobs.PURGE_BATCH", 2)
    for n in range(3):
        cli.seed(f"done-{n}", "completed", updated_at=1.0, finished_at=1.0)
    result = cli("purge")
    assert (result.code, result.out, result.err) == (0, "Purged 3 job(s)\n", "")
    for n in range(5):
        cli.seed(f"again-{n}", "completed", updated_at=1.0, finished_at=1.0)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    result = cli("purge")
    assert (result.code, result.out) == (0, "Purged 5 job(s)\n")
    shown = result.err.split("\r")
    assert shown == ["", "purged 2 job(s)…", "purged 4 job(s)…", "purged 5 job(s)…", "\x1b[K"]


def test_purge_of_a_store_not_created_yet_creates_nothing(cli, tmp_path):
    if cli.kind != "sqlite":
        pytest.skip("a MongoDB database appears with its first index, on any command")
    path = tmp_path / "never.db"
    assert cli.ok("--db", str(path), "purge") == "Purged 0 job(s)\n"
    assert not path.exists()


def test_purge_is_in_the_help(cli):
    out = cli.ok("purge", "--help")
    assert "--older-than DURATION" in out and "--state completed|dead" in out
    assert "Example: queuectl purge" in out
    assert "purge" in cli.ok("--help")
