"""WorkerManager over every store: what `worker list`, `status` and `worker stop` see."""

from __future__ import annotations

from dataclasses import replace

import pytest

from queuectl.app import App
from queuectl.config import Config
from queuectl.errors import QueuectlError
from queuectl.models import Job, WorkerInfo
from queuectl.workers import FORGET_WORKERS_AFTER


def remote(worker_id: str, clock, **fields) -> WorkerInfo:
    values = {
        "host": "far.example",
        "pid": 1,
        "started_at": clock(),
        "last_heartbeat": clock(),
        "machine": "far",
    }
    values.update(fields)
    return WorkerInfo(id=worker_id, **values)


def test_list_shows_live_and_lost_workers_with_their_jobs(store, clock):
    store.register_worker(remote("busy-one", clock))
    store.register_worker(remote("idle-one", clock))
    store.register_worker(remote("silent", clock, last_heartbeat=clock() - 601))
    store.register_worker(remote("marked-lost", clock, status="lost"))
    store.register_worker(remote("done", clock, status="stopped"))
    store.insert_jobs([Job(id="j1", command="true", run_at=clock(), seq=1)])
    store.claim("busy-one", clock(), "tok")

    shown = {w.id: (w.status, w.current_job) for w in App(store=store, clock=clock).workers.list()}

    assert shown == {
        "busy-one": ("busy", "j1"),
        "idle-one": ("idle", None),
        "silent": ("lost", None),
        "marked-lost": ("lost", None),
    }
    everything = App(store=store, clock=clock).workers.list(include_stopped=True)
    assert {w.id for w in everything} == set(shown) | {"done"}


def test_active_counts_only_live_workers_that_heartbeat(store, clock):
    store.register_worker(remote("a", clock))
    store.register_worker(remote("b", clock, status="stopping"))
    store.register_worker(remote("silent", clock, last_heartbeat=clock() - 601))
    store.register_worker(remote("gone", clock, status="stopped"))
    assert sorted(w.id for w in App(store=store, clock=clock).workers.active()) == ["a", "b"]


def test_the_reaper_forgets_workers_gone_for_a_week(store, clock):
    store.register_worker(remote("gone", clock, status="stopped"))
    store.register_worker(remote("recent", clock, status="stopped"))
    clock.advance(FORGET_WORKERS_AFTER - 10)
    store.update_worker("recent", {"last_heartbeat": clock()})
    clock.advance(20)
    App(store=store, clock=clock).workers.reap(
        replace(
            Config.defaults(), stale_after=600, backoff_base=2, backoff_max=3600, backoff_jitter=0
        )
    )
    assert [w.id for w in store.list_workers()] == ["recent"]


def test_wait_stopped_returns_once_the_workers_are_gone_and_gives_up_at_the_timeout(store, clock):
    workers = App(store=store, clock=clock).workers
    store.register_worker(remote("a", clock))
    asked = workers.active()
    store.update_worker("a", {"status": "stopped"})
    workers.wait_stopped(asked, timeout=5)  # returns at once: nothing is active
    store.register_worker(remote("b", clock))
    with pytest.raises(QueuectlError, match=r"^workers still running after 0\.2s$"):
        workers.wait_stopped(workers.active(), timeout=0.2, poll=0.05)
