"""JobManager for queues, cancel and dependencies (SPEC §7.1-§7.3) over every store, with a
movable clock: no worker processes, attempts ended by hand as a worker would end them."""

from __future__ import annotations

import time

import pytest

from queuectl.app import App
from queuectl.errors import DependencyNotFound, InvalidInput
from queuectl.executor import Result
from queuectl.jobs import JobManager

OK = Result(0, "", "", 0.1, None)
FAILED = Result(1, "", "", 0.1, "exit status 1")


@pytest.fixture
def nudged() -> list[str]:
    """Worker ids the manager asked to look for a cancel at once."""
    return []


@pytest.fixture
def jobs(store, clock, nudged) -> JobManager:
    """A JobManager on a fresh store whose cancel nudges are recorded, not sent."""
    manager = App(store=store, clock=clock).jobs
    manager._nudge_cancel = nudged.append
    return manager


def enqueue(jobs: JobManager, *specs: dict) -> list[str]:
    """Enqueue specs as one batch; their ids."""
    return [j.id for j in jobs.enqueue([(f"line {n}", s) for n, s in enumerate(specs, 1)])]


def run(jobs: JobManager, job_id: str, ok: bool = True, queues=()) -> None:
    """Claim the next job (it must be `job_id`) and end its attempt."""
    claimed = jobs.claim("w1", queues)
    assert claimed is not None and claimed.id == job_id, claimed
    if ok:
        assert jobs.complete(claimed, OK)
    else:
        assert jobs.fail(claimed, "exit status 1", FAILED)[0]


def state(store, job_id: str) -> tuple[str, str | None]:
    """A job's state and last_error."""
    found = store.get_job(job_id)
    return found.state, found.last_error


# -- enqueue ------------------------------------------------------------------------------------


def test_after_must_name_an_earlier_line_or_a_stored_job(jobs, store):
    with pytest.raises(DependencyNotFound):
        enqueue(
            jobs, {"id": "a", "command": "true", "after": ["b"]}, {"id": "b", "command": "true"}
        )
    with pytest.raises(DependencyNotFound):
        enqueue(jobs, {"id": "a", "command": "true", "after": ["nope"]})
    assert store.count_by_state() == {}
    with pytest.raises(InvalidInput, match="cannot run after itself"):
        enqueue(jobs, {"id": "a", "command": "true", "after": ["a"]})
    for bad in ("a", [1], ["bad id"], [""]):
        with pytest.raises(InvalidInput, match="after"):
            enqueue(jobs, {"command": "true", "after": bad})
    for bad in ("", "x" * 65, "a b", 7):
        with pytest.raises(InvalidInput, match="queue"):
            enqueue(jobs, {"command": "true", "queue": bad})


def test_waiting_for_names_the_unfinished_dependencies(jobs, store):
    enqueue(
        jobs,
        {"id": "a", "command": "true"},
        {"id": "b", "command": "true"},
        {"id": "c", "command": "true", "after": ["a", "b"]},
    )
    run(jobs, "a")
    blocked = jobs.waiting_for([store.get_job("c"), store.get_job("b")])
    assert blocked == {"c": [("b", "pending")]}


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_pending_and_failed_at_once_and_report_the_rest(jobs, store, clock, nudged):
    enqueue(
        jobs,
        {"id": "p", "command": "true", "priority": -1},
        {"id": "f", "command": "false", "max_retries": 2, "priority": 3},
        {"id": "done", "command": "true", "priority": 2},
        {"id": "run", "command": "sleep 30", "priority": 1},
    )
    run(jobs, "f", ok=False)
    run(jobs, "done")
    running = jobs.claim("w-remote")
    assert running.id == "run"
    canceled, problems = jobs.cancel(["p", "f", "done", "run", "ghost", "p"])
    assert canceled == ["p", "f", "run"]
    assert problems == [("done", "is already completed"), ("ghost", "does not exist")]
    assert state(store, "p") == ("dead", "canceled")
    assert state(store, "f") == ("dead", "canceled")
    assert store.get_job("f").attempts == 1
    # A running job is only flagged: its worker kills it and records the end.
    assert store.get_job("run").state == "processing"
    assert store.get_job("run").cancel_requested is True
    assert nudged == ["w-remote"]
    assert jobs.cancel_running(running, Result(-9, "", "", 0.5, "canceled while running"))
    found = store.get_job("run")
    assert (found.state, found.last_error, found.attempts) == ("dead", "canceled while running", 1)
    assert found.cancel_requested is False
    _, problems = jobs.cancel(["p"])
    assert problems == [("p", "is already dead")]


def test_cancel_all_pending_of_one_queue(jobs, store):
    enqueue(
        jobs,
        {"id": "a1", "command": "true", "queue": "a"},
        {"id": "a2", "command": "true", "queue": "a", "after": ["a1"]},
        {"id": "b1", "command": "true", "queue": "b"},
    )
    canceled, problems = jobs.cancel(None, "a")
    assert sorted(canceled) == ["a1", "a2"] and problems == []
    # Dependents first, so each says it was canceled rather than its dependency.
    assert state(store, "a2") == ("dead", "canceled")
    assert state(store, "b1") == ("pending", None)
    canceled, _ = jobs.cancel(None)
    assert canceled == ["b1"]


def test_cancel_cascades_to_every_waiting_job_and_counts_named_ones(jobs, store):
    enqueue(
        jobs,
        {"id": "root", "command": "true"},
        {"id": "mid", "command": "true", "after": ["root"]},
        {"id": "leaf", "command": "true", "after": ["mid"]},
        {"id": "side", "command": "true"},
    )
    canceled, problems = jobs.cancel(["root", "leaf"])
    assert (canceled, problems) == (["root", "leaf"], [])
    assert state(store, "root") == ("dead", "canceled")
    assert state(store, "mid") == ("dead", "dependency root is dead")
    assert state(store, "leaf") == ("dead", "dependency mid is dead")
    assert state(store, "side") == ("pending", None)


def test_dlq_retry_revives_a_canceled_job_and_its_dependents_wait_again(jobs, store):
    enqueue(
        jobs,
        {"id": "a", "command": "true"},
        {"id": "b", "command": "true", "after": ["a"]},
    )
    jobs.cancel(["a"])
    retried, missing = jobs.retry_dead(["b"])
    assert (retried, missing) == (["b"], [])
    assert state(store, "b") == ("dead", "dependency a is dead"), "a is still dead"
    jobs.retry_dead(["a", "b"])
    assert store.get_job("b").state == "pending" and store.get_job("b").waiting == 1
    assert jobs.claim("w1").id == "a"
    assert jobs.claim("w1") is None
    a = store.get_job("a")
    assert jobs.complete(a, OK)
    run(jobs, "b")


def test_a_dependency_that_fails_for_good_takes_its_dependents_to_the_dlq(jobs, store):
    enqueue(
        jobs,
        {"id": "a", "command": "false", "max_retries": 0},
        {"id": "b", "command": "true", "after": ["a"]},
    )
    run(jobs, "a", ok=False)
    assert state(store, "b") == ("dead", "dependency a is dead")


def test_the_reaper_makes_a_job_whose_cancel_was_asked_for_dead(jobs, store, clock):
    enqueue(jobs, {"id": "a", "command": "sleep 30"})
    held = jobs.claim("w-gone")
    jobs.cancel(["a"])
    assert jobs.release(store.get_job("a"), "worker w-gone stopped heartbeating")
    assert state(store, "a") == ("dead", "canceled while running")
    assert held.attempts == 1


# -- queues and stats -----------------------------------------------------------------------


def test_stats_of_one_queue_and_counts_per_queue(jobs, store, clock):
    enqueue(
        jobs,
        {"id": "m1", "command": "true", "queue": "mail"},
        {"id": "m2", "command": "true", "queue": "mail"},
        {"id": "d1", "command": "true"},
    )
    run(jobs, "m1", queues=["mail"])
    mail = jobs.stats("mail")
    assert mail["jobs"]["completed"] == 1 and mail["jobs"]["pending"] == 1
    assert mail["throughput"]["last_minute"] == 1
    assert mail["duration"]["p50"] == pytest.approx(0.1)
    assert "queues" not in mail
    assert jobs.stats("default")["throughput"]["last_minute"] == 0
    everything = jobs.stats()
    assert everything["queues"]["mail"]["completed"] == 1
    assert everything["queues"]["default"]["pending"] == 1
    assert jobs.counts("mail")["pending"] == 1
    assert [j.id for j in jobs.list(queue="default")] == ["d1"]
    with pytest.raises(InvalidInput, match="queue"):
        jobs.counts("bad name")


# -- long workflows -------------------------------------------------------------------------

# mongomock evaluates every query in Python over the whole collection, so it gets a smaller
# workflow; the stores' logic is the same at any size.
SIZE = {"sqlite": 10_000, "mongomock": 400, "mongodb": 2_000}


def size_of(store) -> int:
    """The workflow size for this backend."""
    kind = "sqlite" if type(store).__name__ == "SqliteStore" else "mongomock"
    return SIZE[kind]


def test_a_long_chain_completes_in_order(jobs, store):
    n = size_of(store)
    # Later links get higher priority: only the dependency keeps them from running first.
    specs = [{"id": "c0", "command": "true"}] + [
        {"id": f"c{i}", "command": "true", "after": [f"c{i - 1}"], "priority": i}
        for i in range(1, n)
    ]
    started = time.monotonic()
    enqueue(jobs, *specs)
    order = []
    while (claimed := jobs.claim("w1")) is not None:
        order.append(claimed.id)
        assert jobs.complete(claimed, OK)
    assert order == [f"c{i}" for i in range(n)]
    assert time.monotonic() - started < 120


def test_a_wide_fan_in_completes_last(jobs, store):
    n = size_of(store)
    specs = [{"id": f"r{i}", "command": "true"} for i in range(n)]
    specs.append(
        {"id": "sink", "command": "true", "after": [f"r{i}" for i in range(n)], "priority": 10}
    )
    enqueue(jobs, *specs)
    order = []
    while (claimed := jobs.claim("w1")) is not None:
        order.append(claimed.id)
        assert jobs.complete(claimed, OK)
    assert len(order) == n + 1 and order[-1] == "sink"
