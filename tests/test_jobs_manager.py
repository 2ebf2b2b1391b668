"""JobManager over every store, with a movable clock: enqueue, inspect, DLQ, stats."""

from __future__ import annotations

import time

import pytest

from queuectl.app import App
from queuectl.config import ConfigManager
from queuectl.errors import DuplicateJob, InvalidInput, JobNotFound
from queuectl.executor import Result
from queuectl.jobs import JobManager
from queuectl.models import STATES, Job

STATS_KEYS = {"jobs", "duration", "success_rate", "retries", "throughput", "queues"}


@pytest.fixture
def jobs(store, clock) -> JobManager:
    """A JobManager on a fresh store, its time given by the test's clock."""
    return App(store=store, clock=clock).jobs


def one(spec: dict) -> list[tuple[None, dict]]:
    """A single spec, as `enqueue SPEC` passes it (no label)."""
    return [(None, spec)]


def lines(*specs: dict) -> list[tuple[str, dict]]:
    """Specs labelled as the lines of a --file batch."""
    return [(f"line {n}", spec) for n, spec in enumerate(specs, start=1)]


def run_to_end(store, clock, job_id: str, ok: bool, duration: float = 0.5) -> None:
    """Claim the job and finish its attempt as a worker would."""
    claimed = store.claim("w1", clock(), f"tok-{job_id}-{clock()}")
    assert claimed is not None and claimed.id == job_id
    result = Result(0 if ok else 1, "", "", duration, None if ok else "exit status 1")
    if ok:
        assert App(store=store, clock=clock).jobs.complete(claimed, result)
    else:
        assert App(store=store, clock=clock).jobs.fail(claimed, "exit status 1", result)[0]


# -- enqueue -----------------------------------------------------------------------------------


def test_enqueue_one_job_with_defaults(jobs, store, clock):
    [job] = jobs.enqueue(one({"command": "echo hi", "id": "job1"}))
    assert store.get_job("job1") == job
    assert (job.state, job.attempts, job.max_retries, job.priority) == ("pending", 0, 3, 0)
    assert job.timeout is None
    assert job.run_at == job.created_at == clock()


def test_defaults_come_from_the_config_in_the_store(jobs, store):
    ConfigManager(store).set("max_retries", "5")
    ConfigManager(store).set("job_timeout", "30")
    [default, explicit] = jobs.enqueue(
        lines(
            {"command": "true"},
            {"command": "true", "max_retries": 0, "timeout": 2},
        )
    )
    assert (default.max_retries, default.timeout) == (5, 30.0)
    assert (explicit.max_retries, explicit.timeout) == (0, 2.0)
    assert store.get_job(default.id).max_retries == 5


def test_delay_is_counted_from_the_clock(jobs, clock):
    [job] = jobs.enqueue(one({"command": "true", "delay": 30}))
    assert job.run_at == clock() + 30


def test_a_batch_is_checked_whole_before_anything_is_written(jobs, store):
    batch = lines(
        {"command": "true", "id": "a"},
        {"command": "true", "id": "b"},
        {"command": "true", "priority": "high"},
        {"command": "true", "id": "d"},
    )
    with pytest.raises(InvalidInput) as caught:
        jobs.enqueue(batch)
    assert str(caught.value) == "line 3: priority must be an integer, got 'high'"
    assert caught.value.exit_code == 2
    assert store.count_by_state() == {}


def test_a_single_spec_error_has_no_label(jobs, store):
    with pytest.raises(InvalidInput) as caught:
        jobs.enqueue(one({"command": "  "}))
    assert str(caught.value) == "command must not be blank"
    assert store.count_by_state() == {}


def test_an_id_repeated_in_the_batch_is_a_duplicate(jobs, store):
    with pytest.raises(DuplicateJob) as caught:
        jobs.enqueue(
            lines(
                {"command": "true", "id": "x"},
                {"command": "true", "id": "y"},
                {"command": "false", "id": "x"},
            )
        )
    assert caught.value.job_id == "x"
    assert caught.value.exit_code == 1
    assert "repeated" in str(caught.value)
    assert store.count_by_state() == {}


def test_an_id_that_exists_fails_the_whole_batch(jobs, store):
    jobs.enqueue(one({"command": "true", "id": "taken"}))
    with pytest.raises(DuplicateJob) as caught:
        jobs.enqueue(lines({"command": "true", "id": "new"}, {"command": "true", "id": "taken"}))
    assert caught.value.job_id == "taken"
    assert store.get_job("new") is None
    assert jobs.counts()["pending"] == 1


def test_an_empty_batch_is_invalid(jobs):
    with pytest.raises(InvalidInput, match="empty"):
        jobs.enqueue([])


def test_a_batch_runs_in_the_order_it_was_given(jobs, store, clock):
    given = [f"j{n}" for n in (5, 1, 4, 2, 3)]
    jobs.enqueue(lines(*({"command": "true", "id": i} for i in given)))
    jobs.enqueue(one({"command": "true", "id": "after"}))
    assert [j.id for j in jobs.list("pending")] == given + ["after"]
    taken = [store.claim("w", clock(), f"t{n}").id for n in range(6)]
    assert taken == given + ["after"]


def test_generated_ids_are_unique_in_a_batch(jobs):
    made = jobs.enqueue(lines(*({"command": "true"} for _ in range(50))))
    assert len({j.id for j in made}) == 50


# -- import (a Node-version database taken over) ------------------------------------------------


def imported(job_id: str, state: str, clock, attempts: int = 0) -> Job:
    """A job as an import builds it: its own state and attempts, not a fresh pending one."""
    job = Job(id=job_id, command=f"echo {job_id}", state=state, attempts=attempts)
    job.seq = time.time_ns()
    job.run_at = job.created_at = job.updated_at = clock() - 60
    return job


def test_import_inserts_jobs_as_they_are_and_skips_ids_held(jobs, store, clock):
    jobs.enqueue(one({"command": "true", "id": "held"}))
    batch = [imported("a", "dead", clock, 4), imported("held", "completed", clock)]
    fresh, taken = jobs.import_jobs(batch)
    assert ([j.id for j in fresh], taken) == (["a"], ["held"])
    stored = store.get_job("a")
    assert (stored.state, stored.attempts) == ("dead", 4)
    assert store.get_job("held").state == "pending"


def test_an_import_dry_run_reads_the_same_and_inserts_nothing(jobs, store, clock):
    jobs.enqueue(one({"command": "true", "id": "held"}))
    batch = [imported("a", "failed", clock, 1), imported("held", "pending", clock)]
    fresh, taken = jobs.import_jobs(batch, dry_run=True)
    assert ([j.id for j in fresh], taken) == (["a"], ["held"])
    assert store.get_job("a") is None


def test_an_id_taken_meanwhile_is_skipped_and_the_rest_imported(jobs, store, clock, monkeypatch):
    read = jobs.states

    def then_another_process_inserts(ids):
        found = read(ids)
        store.insert_jobs([imported("b", "pending", clock)])  # between the read and the write
        return found

    monkeypatch.setattr(jobs, "states", then_another_process_inserts)
    batch = [imported(i, "completed", clock, 1) for i in ("a", "b", "c")]
    fresh, taken = jobs.import_jobs(batch)
    assert ([j.id for j in fresh], taken) == (["a", "c"], ["b"])
    assert [store.get_job(i).state for i in "abc"] == ["completed", "pending", "completed"]


# -- inspect -----------------------------------------------------------------------------------


def test_get_unknown_job_is_not_found(jobs):
    with pytest.raises(JobNotFound) as caught:
        jobs.get("ghost")
    assert caught.value.exit_code == 1
    assert "ghost" in str(caught.value)


def test_counts_always_has_all_five_states(jobs, store, clock):
    assert jobs.counts() == dict.fromkeys(STATES, 0)
    assert list(jobs.counts()) == list(STATES)
    jobs.enqueue(lines({"command": "true", "id": "a"}, {"command": "true", "id": "b"}))
    run_to_end(store, clock, "a", ok=True)
    assert jobs.counts() == {"pending": 1, "processing": 0, "completed": 1, "failed": 0, "dead": 0}


def test_list_checks_state_and_limit(jobs):
    with pytest.raises(InvalidInput) as caught:
        jobs.list("running")
    assert caught.value.exit_code == 2
    assert all(state in str(caught.value) for state in STATES)
    with pytest.raises(InvalidInput, match="at least 1"):
        jobs.list(None, 0)


def test_list_honours_state_and_limit(jobs, store, clock):
    jobs.enqueue(lines(*({"command": "true", "id": f"j{n}"} for n in range(5))))
    run_to_end(store, clock, "j0", ok=True)
    assert [j.id for j in jobs.list("completed")] == ["j0"]
    assert [j.id for j in jobs.list("pending", limit=2)] == ["j1", "j2"]
    assert len(jobs.list()) == 5


# -- DLQ ---------------------------------------------------------------------------------------


def make_dead(jobs, store, clock, *job_ids: str) -> None:
    """Enqueue jobs with no retries and fail each once, so they land in the DLQ."""
    jobs.enqueue(lines(*({"command": "false", "id": i, "max_retries": 0} for i in job_ids)))
    for job_id in job_ids:
        run_to_end(store, clock, job_id, ok=False)
        assert store.get_job(job_id).state == "dead"


def test_retry_dead_returns_retried_and_missing(jobs, store, clock):
    make_dead(jobs, store, clock, "d1", "d2", "d3")
    jobs.enqueue(one({"command": "true", "id": "alive"}))
    clock.advance(100)
    retried, missing = jobs.retry_dead(["d1", "alive", "ghost", "d1", "d3"])
    assert sorted(retried) == ["d1", "d3"]
    assert missing == ["alive", "ghost"]
    d1 = store.get_job("d1")
    assert (d1.state, d1.attempts, d1.run_at) == ("pending", 0, clock())
    assert d1.last_error == "exit status 1"
    assert [j.id for j in jobs.dead()] == ["d2"]


def test_retry_dead_of_no_ids_retries_nothing(jobs, store, clock):
    make_dead(jobs, store, clock, "d1")
    assert jobs.retry_dead([]) == ([], [])
    assert store.get_job("d1").state == "dead"


def test_retry_dead_all(jobs, store, clock):
    make_dead(jobs, store, clock, "d1", "d2")
    retried, missing = jobs.retry_dead(None)
    assert (sorted(retried), missing) == (["d1", "d2"], [])
    assert jobs.counts()["dead"] == 0
    assert jobs.retry_dead(None) == ([], [])


# -- stats -------------------------------------------------------------------------------------


def test_stats_of_an_empty_queue(jobs):
    assert jobs.stats() == {
        "jobs": dict.fromkeys(STATES, 0),
        "duration": {"mean": None, "p50": None, "p95": None},
        "success_rate": None,
        "retries": 0,
        "throughput": {"last_minute": 0, "last_hour": 0},
        "queues": {},
    }


def test_stats_shape_and_figures(jobs, store, clock):
    jobs.enqueue(
        lines(
            {"command": "true", "id": "ok1"},
            {"command": "true", "id": "ok2"},
            {"command": "false", "id": "flaky", "max_retries": 1},
            {"command": "false", "id": "doomed", "max_retries": 0},
            {"command": "true", "id": "waiting", "delay": 10_000},
        )
    )
    run_to_end(store, clock, "ok1", ok=True, duration=1.0)
    clock.advance(120)
    run_to_end(store, clock, "ok2", ok=True, duration=3.0)
    run_to_end(store, clock, "flaky", ok=False)
    run_to_end(store, clock, "doomed", ok=False)
    clock.advance(2)
    run_to_end(store, clock, "flaky", ok=True, duration=2.0)
    stats = jobs.stats()
    assert set(stats) == STATS_KEYS
    assert stats["jobs"] == {"pending": 1, "processing": 0, "completed": 3, "failed": 0, "dead": 1}
    assert stats["duration"] == {"mean": pytest.approx(2.0), "p50": 2.0, "p95": 3.0}
    assert stats["success_rate"] == pytest.approx(3 / 4)
    assert stats["retries"] == 1
    assert stats["throughput"] == {"last_minute": 2, "last_hour": 3}


class _WorkersUnreadable:
    """A store whose worker table fails to answer, as during a brief outage."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def list_workers(self, statuses=None):
        from queuectl.errors import StoreUnavailable

        raise StoreUnavailable("worker table unreachable")


def test_enqueue_succeeds_when_waking_workers_fails(store, clock):
    # The jobs are stored: reporting failure now would invite a retry that duplicates them.
    enqueued = App(store=_WorkersUnreadable(store), clock=clock).jobs.enqueue(
        one({"command": "true"})
    )
    assert store.get_job(enqueued[0].id) is not None
