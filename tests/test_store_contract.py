"""The Store protocol, one suite for every backend: each primitive, and its atomicity."""

from __future__ import annotations

import itertools
import math
import random
import threading
from fractions import Fraction

import pytest

from queuectl.app import App
from queuectl.errors import DuplicateJob
from queuectl.models import Job, WorkerInfo

T = 1_800_000_000.0
_seq = itertools.count(1)


def job(job_id: str, **fields) -> Job:
    """A pending job due at T, enqueued after every job made before it."""
    values = {"command": "true", "run_at": T, "created_at": T, "updated_at": T, "seq": next(_seq)}
    values.update(fields)
    return Job(id=job_id, **values)


def worker(worker_id: str, **fields) -> WorkerInfo:
    """A worker row on another machine, heartbeating at T."""
    values = {"host": "elsewhere", "pid": 4242, "started_at": T, "last_heartbeat": T}
    values.update(fields)
    return WorkerInfo(id=worker_id, **values)


def ids(jobs) -> list[str]:
    """The ids of jobs, in their order."""
    return [j.id for j in jobs]


def claim_all(store, now: float = T) -> list[str]:
    """Claim until nothing is ready; the ids in the order they came."""
    taken = []
    for n in itertools.count():
        claimed = store.claim("w1", now, f"token-{n}")
        if claimed is None:
            return taken
        taken.append(claimed.id)


# -- insert, get, list, count ------------------------------------------------------------------


def test_a_job_round_trips_with_every_field(store):
    full = job(
        "full",
        command="echo 'hi' \"there\" é ✓",
        state="completed",
        attempts=2,
        max_retries=5,
        priority=-3,
        timeout=2.5,
        run_at=T + 0.125,
        created_at=T - 10,
        updated_at=T + 1,
        started_at=T + 0.5,
        finished_at=T + 0.75,
        locked_by=None,
        exit_code=0,
        last_error="exit status 1: boom",
        stdout="out\n",
        stderr="err\n",
        duration=0.25,
        seq=2**62,
    )
    bare = job("bare")
    store.insert_jobs([full, bare])
    assert store.get_job("full") == full
    assert store.get_job("bare") == bare
    assert store.get_job("nope") is None


def test_insert_of_a_taken_id_inserts_nothing(store):
    store.insert_jobs([job("b")])
    with pytest.raises(DuplicateJob) as caught:
        store.insert_jobs([job("a"), job("b", command="other"), job("c")])
    assert caught.value.job_id == "b"
    assert caught.value.exit_code == 1
    assert store.get_job("a") is None and store.get_job("c") is None
    assert store.get_job("b").command == "true"
    assert store.count_by_state() == {"pending": 1}


def test_a_duplicate_at_the_end_of_a_big_batch_inserts_nothing(store):
    store.insert_jobs([job("last")])
    batch = [job(f"j{i:04d}") for i in range(500)] + [job("last")]
    with pytest.raises(DuplicateJob):
        store.insert_jobs(batch)
    assert store.count_by_state() == {"pending": 1}


def test_an_id_repeated_inside_a_batch_inserts_nothing(store):
    with pytest.raises(DuplicateJob) as caught:
        store.insert_jobs([job("x"), job("y"), job("x")])
    assert caught.value.job_id == "x"
    assert store.count_by_state() == {}
    store.insert_jobs([job("x"), job("y")])  # the failed batch left nothing behind
    assert store.count_by_state() == {"pending": 2}


def test_pending_and_failed_are_listed_ready_in_claim_order_then_waiting_by_run_at(store):
    store.insert_jobs(
        [
            job("late", run_at=T + 5),
            job("low", priority=-1, run_at=T - 100),
            job("first-in"),
            job("urgent", priority=10, run_at=T + 50),
            job("second-in"),
            job("early", run_at=T - 5),
            job("f2", state="failed", run_at=T + 1),
            job("f1", state="failed", run_at=T - 1),
            job("done", state="completed"),
        ]
    )
    assert ids(store.list_jobs("pending", 50, now=T)) == [
        "early",
        "first-in",
        "second-in",
        "low",
        "late",
        "urgent",
    ]
    assert ids(store.list_jobs("failed", 50, now=T)) == ["f1", "f2"]
    assert ids(store.list_jobs("pending", 2, now=T)) == ["early", "first-in"]
    assert ids(store.list_jobs("pending", 5, now=T)) == [
        "early",
        "first-in",
        "second-in",
        "low",
        "late",
    ]
    # Later, what was waiting is ready, and takes its place in the claim order.
    assert ids(store.list_jobs("pending", 50, now=T + 60)) == [
        "urgent",
        "early",
        "first-in",
        "second-in",
        "late",
        "low",
    ]


def test_the_pending_list_is_the_order_workers_claim_in(store):
    # Delayed jobs of high priority used to be listed first, though they run last.
    store.insert_jobs(
        [
            job("g", priority=9, run_at=T + 20),
            job("d", priority=5),
            job("a"),
            job("b"),
            job("c"),
            job("f", priority=9, run_at=T + 30),
            job("e", run_at=T + 10),
        ]
    )
    listed = ids(store.list_jobs("pending", 50, now=T))
    claimed = [*claim_all(store, T), *claim_all(store, T + 10), *claim_all(store, T + 20)]
    claimed += claim_all(store, T + 30)
    assert listed == claimed == ["d", "a", "b", "c", "e", "g", "f"]


def test_other_states_and_all_are_listed_newest_update_first(store):
    store.insert_jobs(
        [
            job("c1", state="completed", updated_at=T + 1),
            job("c3", state="completed", updated_at=T + 3),
            job("c2", state="completed", updated_at=T + 2),
            job("d1", state="dead", updated_at=T + 4),
            job("p1", updated_at=T + 5),
            job("r1", state="processing", updated_at=T + 0.5),
        ]
    )
    assert ids(store.list_jobs("completed", 50)) == ["c3", "c2", "c1"]
    assert ids(store.list_jobs("completed", 1)) == ["c3"]
    assert ids(store.list_jobs("dead", 50)) == ["d1"]
    assert ids(store.list_jobs("processing", 50)) == ["r1"]
    assert ids(store.list_jobs(None, 50)) == ["p1", "d1", "c3", "c2", "c1", "r1"]
    assert ids(store.list_jobs(None, 3)) == ["p1", "d1", "c3"]
    assert store.list_jobs("failed", 50) == []


def test_equal_update_times_list_the_latest_enqueued_first(store):
    # A batch shares one updated_at; both stores must break the tie the same way.
    store.insert_jobs([job(i, state="dead") for i in ("c", "a", "b", "d")])
    assert ids(store.list_jobs("dead", 50)) == ["d", "b", "a", "c"]
    assert ids(store.list_jobs(None, 50)) == ["d", "b", "a", "c"]


def test_count_by_state_counts_only_present_states(store):
    assert store.count_by_state() == {}
    store.insert_jobs([job("a"), job("b"), job("c", state="dead"), job("d", state="failed")])
    assert store.count_by_state() == {"pending": 2, "dead": 1, "failed": 1}


# -- claim -------------------------------------------------------------------------------------


def test_claim_takes_the_job_and_records_the_lease(store):
    store.insert_jobs([job("a", attempts=1, state="failed", run_at=T - 1)])
    claimed = store.claim("host:1:1-ab", T + 2, "tok")
    assert claimed is not None
    assert (claimed.id, claimed.state, claimed.attempts) == ("a", "processing", 2)
    assert (claimed.locked_by, claimed.lease_token) == ("host:1:1-ab", "tok")
    assert claimed.locked_at == claimed.lease_renewed_at == T + 2
    assert claimed.started_at == claimed.updated_at == T + 2
    assert store.get_job("a") == claimed


def test_claim_order_is_priority_then_run_at_then_enqueue_order(store):
    store.insert_jobs(
        [
            job("p0-b", seq=30),
            job("p0-a", seq=20),
            job("p0-early", run_at=T - 1, seq=40),
            job("p5", priority=5, seq=50),
            job("p-neg", priority=-5, run_at=T - 1000, seq=10),
            job("f-p5-early", priority=5, state="failed", run_at=T - 3, seq=60),
        ]
    )
    assert claim_all(store) == ["f-p5-early", "p5", "p0-early", "p0-a", "p0-b", "p-neg"]


def test_claim_skips_future_and_unready_jobs(store):
    store.insert_jobs(
        [
            job("future", run_at=T + 10, priority=100),
            job("retry-later", state="failed", run_at=T + 1, priority=100),
            job("busy", state="processing"),
            job("done", state="completed"),
            job("dlq", state="dead"),
            job("now"),
        ]
    )
    assert claim_all(store) == ["now"]
    assert claim_all(store, T + 1) == ["retry-later"]
    assert claim_all(store, T + 10) == ["future"]
    assert store.get_job("dlq").state == "dead"


def test_claim_returns_none_when_empty(store):
    assert store.claim("w1", T, "tok") is None
    store.insert_jobs([job("a", run_at=T + 1)])
    assert store.claim("w1", T, "tok") is None


def test_two_claims_never_return_the_same_job(store):
    store.insert_jobs([job("a"), job("b")])
    first = store.claim("w1", T, "t1")
    second = store.claim("w2", T, "t2")
    assert {first.id, second.id} == {"a", "b"}
    assert store.claim("w3", T, "t3") is None
    assert store.get_job(first.id).locked_by == "w1"
    assert store.get_job(second.id).locked_by == "w2"


def test_concurrent_claims_take_every_job_exactly_once(store, request):
    if request.node.callspec.params["store"] == "mongomock":
        # mongomock runs find_one_and_update as separate Python steps without a lock, so
        # threads can interleave inside it; a real server does it atomically (that case runs
        # when QUEUECTL_TEST_MONGODB_URI is set).
        pytest.skip("mongomock does not model concurrent writers")
    store.insert_jobs([job(f"j{i:03d}") for i in range(200)])
    taken: dict[str, list[str]] = {}
    start_together = threading.Barrier(4, timeout=30)

    def hammer(worker_id: str) -> None:
        mine = []
        start_together.wait()
        while (claimed := store.claim(worker_id, T, f"{worker_id}-{len(mine)}")) is not None:
            mine.append(claimed.id)
        taken[worker_id] = mine

    threads = [threading.Thread(target=hammer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    everything = sorted(i for mine in taken.values() for i in mine)
    assert everything == [f"j{i:03d}" for i in range(200)]
    for worker_id, mine in taken.items():
        assert {store.get_job(i).locked_by for i in mine} <= {worker_id}
    assert store.count_by_state() == {"processing": 200}


# -- finish, renew, stale ----------------------------------------------------------------------


def test_finish_is_fenced_by_the_lease_token(store):
    store.insert_jobs([job("a")])
    claimed = store.claim("w1", T, "right")
    assert store.finish("a", "wrong", {"state": "completed", "exit_code": 0}) is False
    assert store.get_job("a") == claimed
    assert (
        store.finish("a", "right", {"state": "completed", "exit_code": 0, "lease_token": None})
        is True
    )
    assert (store.get_job("a").state, store.get_job("a").exit_code) == ("completed", 0)
    assert store.finish("a", "right", {"state": "failed", "exit_code": 1}) is False
    assert store.get_job("a").state == "completed"


def test_an_old_lease_cannot_write_after_a_reclaim(store):
    store.insert_jobs([job("a")])
    store.claim("w1", T, "old")
    assert store.finish("a", "old", {"state": "failed", "run_at": T, "last_error": "lost"})
    store.claim("w2", T + 1, "new")
    assert store.finish("a", "old", {"state": "completed"}) is False
    assert store.renew_lease("a", "old", T + 2) is False
    assert store.get_job("a").locked_by == "w2"
    assert store.finish("a", "new", {"state": "completed"}) is True
    assert store.get_job("a").attempts == 2


def test_finish_needs_a_processing_job(store):
    store.insert_jobs([job("a", lease_token="tok"), job("b", state="dead", lease_token="tok")])
    assert store.finish("a", "tok", {"state": "completed"}) is False
    assert store.finish("b", "tok", {"state": "pending"}) is False
    assert store.finish("missing", "tok", {"state": "completed"}) is False
    assert store.count_by_state() == {"pending": 1, "dead": 1}


def test_renew_lease(store):
    store.insert_jobs([job("a")])
    store.claim("w1", T, "tok")
    assert store.renew_lease("a", "tok", T + 30) is True
    assert store.get_job("a").lease_renewed_at == T + 30
    assert store.renew_lease("a", "other", T + 60) is False
    assert store.get_job("a").lease_renewed_at == T + 30
    store.finish("a", "tok", {"state": "completed"})
    assert store.renew_lease("a", "tok", T + 90) is False


def test_stale_jobs_are_processing_jobs_with_an_old_lease(store):
    # Leases of an older release (no deadline): stale by the reader's cutoff alone.
    store.insert_jobs([job("old"), job("fresh"), job("idle", lease_renewed_at=T - 1000)])
    store.claim("w1", T, "t1")
    store.claim("w2", T, "t2")
    store.renew_lease("fresh", "t2", T + 100)
    assert ids(store.stale_jobs(T + 50, T + 700)) == ["old"]
    assert store.stale_jobs(T, T + 700) == []  # renewed exactly at the cutoff is not stale
    assert sorted(ids(store.stale_jobs(T + 101, T + 700))) == ["fresh", "old"]


def test_a_lease_is_stale_only_past_its_own_deadline_too(store):
    store.insert_jobs([job("short"), job("long")])
    store.claim("w1", T, "t1", lease_expires_at=T + 5)
    store.claim("w2", T, "t2", lease_expires_at=T + 600)
    assert (store.get_job("short").lease_expires_at, store.get_job("long").lease_expires_at) == (
        T + 5,
        T + 600,
    )
    assert ids(store.stale_jobs(T + 1, T + 6)) == ["short"]
    assert store.stale_jobs(T + 1, T + 5) == []  # a deadline reached is not yet passed
    assert store.renew_lease("short", "t1", T + 10, lease_expires_at=T + 15)
    assert store.get_job("short").lease_expires_at == T + 15
    assert store.renew_lease("short", "t1", T + 12)  # no new deadline: the old one stays
    assert store.get_job("short").lease_expires_at == T + 15
    assert sorted(ids(store.stale_jobs(T + 13, T + 601))) == ["long", "short"]


def test_update_if_below_needs_each_field_null_or_under_its_bound(store):
    store.insert_jobs([job("a", lease_renewed_at=T, lease_expires_at=None)])
    assert not store.update_if("a", {}, {"priority": 1}, below={"lease_renewed_at": T})
    assert store.update_if("a", {}, {"priority": 2}, below={"lease_renewed_at": T + 1})
    assert store.update_if("a", {}, {"priority": 3}, below={"lease_expires_at": T})  # null
    store.update_if("a", {}, {"lease_expires_at": T + 10})
    assert not store.update_if(
        "a", {"priority": 3}, {"priority": 4}, below={"lease_expires_at": T + 10}
    )
    assert store.update_if(
        "a",
        {"priority": 3},
        {"priority": 5},
        below={"lease_expires_at": T + 11, "lease_renewed_at": T + 1},
    )
    assert store.get_job("a").priority == 5


def test_update_many_if_changes_only_the_ids_that_match(store):
    store.insert_jobs([job(f"d{n}", state="dead") for n in range(5)] + [job("p")])
    changed = store.update_many_if(
        ["d0", "d2", "p", "nope", "d4"], {"state": "dead"}, {"state": "pending", "attempts": 0}
    )
    assert sorted(changed) == ["d0", "d2", "d4"]
    assert store.count_by_state() == {"pending": 4, "dead": 2}
    assert store.update_many_if(["d0", "d2"], {"state": "dead"}, {"priority": 1}) == []
    assert store.update_many_if([], {"state": "dead"}, {"priority": 1}) == []


def test_finish_with_a_tally_counts_the_end_in_the_workers_row_once(store):
    store.register_worker(worker("w1"))
    store.insert_jobs([job("a"), job("b")])
    store.claim("w1", T, "ta")
    assert store.finish("a", "ta", {"state": "completed"}, tally=("w1", "jobs_done"))
    assert store.get_worker("w1").jobs_done == 1
    store.count_job_end("w1", "jobs_done", "ta")  # a retry after a lost reply: counted once
    assert store.get_worker("w1").jobs_done == 1
    store.claim("w1", T, "tb")
    assert not store.finish("b", "wrong", {"state": "dead"}, tally=("w1", "jobs_failed"))
    assert store.get_worker("w1").jobs_failed == 0
    store.count_job_end("w1", "jobs_failed", "tb")
    got = store.get_worker("w1")
    assert (got.jobs_done, got.jobs_failed) == (1, 1)


def test_jobs_locked_by(store):
    store.insert_jobs([job("a"), job("b"), job("c")])
    store.claim("w1", T, "t1")
    store.claim("w2", T, "t2")
    store.claim("w1", T, "t3")
    assert sorted(ids(store.jobs_locked_by("w1"))) == ["a", "c"]
    store.finish("a", "t1", {"state": "completed"})
    assert ids(store.jobs_locked_by("w1")) == ["c"]
    assert ids(store.jobs_locked_by("w2")) == ["b"]
    assert store.jobs_locked_by("w9") == []


# -- dead letter queue, schedule, stats ---------------------------------------------------------


def dlq_fixture(store) -> None:
    """Three dead jobs among a failed and a completed one."""
    store.insert_jobs(
        [
            job(
                "d1",
                state="dead",
                attempts=4,
                last_error="exit status 1",
                run_at=T - 50,
                locked_by="w1",
                lease_token="tok",
                lease_renewed_at=T - 45,
                finished_at=T - 40,
            ),
            job("d2", state="dead", attempts=1, last_error="timed out after 5s"),
            job("d3", state="dead", attempts=2),
            job("f1", state="failed", attempts=1, run_at=T + 5),
            job("c1", state="completed", attempts=1),
        ]
    )


def retry_dead(store, job_ids: list[str] | None, now: float) -> list[str]:
    """The DLQ retry as every caller makes it: JobManager over the store primitives."""
    return App(store=store, clock=lambda: now).jobs.retry_dead(job_ids)[0]


def test_retry_dead_by_id(store):
    dlq_fixture(store)
    moved = retry_dead(store, ["d1", "f1", "c1", "nope", "d2"], T + 100)
    assert sorted(moved) == ["d1", "d2"]
    d1 = store.get_job("d1")
    assert (d1.state, d1.attempts, d1.run_at, d1.updated_at) == ("pending", 0, T + 100, T + 100)
    assert d1.last_error == "exit status 1"
    assert d1.locked_by is None and d1.lease_token is None
    # The same unlock as every other transition: no lease time is left behind.
    assert d1.locked_at is None and d1.lease_renewed_at is None
    assert store.get_job("d2").last_error == "timed out after 5s"
    assert store.get_job("d3").state == "dead"
    assert (store.get_job("f1").state, store.get_job("f1").attempts) == ("failed", 1)
    assert store.get_job("c1").state == "completed"
    assert retry_dead(store, ["d1"], T + 200) == []
    assert retry_dead(store, [], T + 200) == []
    assert store.get_job("d3").state == "dead"


def test_retry_dead_all(store):
    dlq_fixture(store)
    assert sorted(retry_dead(store, None, T)) == ["d1", "d2", "d3"]
    assert store.count_by_state() == {"pending": 3, "failed": 1, "completed": 1}
    assert retry_dead(store, None, T) == []
    assert claim_all(store, T) == ["d1", "d2", "d3"]  # retried jobs keep their enqueue order


def test_update_if_applies_only_when_every_expected_field_matches(store):
    store.insert_jobs([job("a", state="dead", attempts=2), job("b", attempts=1)])
    assert not store.update_if("a", {"state": "pending"}, {"priority": 9})
    assert not store.update_if("a", {"state": "dead", "attempts": 3}, {"priority": 9})
    assert not store.update_if("nope", {"state": "dead"}, {"priority": 9})
    assert store.get_job("a").priority == 0
    assert store.update_if("a", {"state": "dead", "locked_by": None}, {"priority": 9})
    assert (store.get_job("a").priority, store.get_job("b").priority) == (9, 0)
    assert store.update_if("a", {"priority": 9}, {"state": "pending", "lease_token": None})
    assert store.get_job("a").state == "pending"


def test_job_ids_of_one_state_least_recently_updated_first(store):
    store.insert_jobs(
        [
            job("z", state="dead"),
            job("a", state="dead"),
            job("p"),
            job("old", state="dead", updated_at=T - 5),
            job("new", state="dead", updated_at=T + 5),
        ]
    )
    assert store.job_ids("dead", limit=10) == ["old", "z", "a", "new"]
    assert store.job_ids("dead", limit=2) == ["old", "z"]
    assert store.job_ids("dead", limit=10, updated_until=T) == ["old", "z", "a"]
    assert store.job_ids("failed", limit=10) == []


def test_next_run_at_looks_only_at_pending_and_failed(store):
    assert store.next_run_at() is None
    store.insert_jobs(
        [
            job("done", state="completed", run_at=T - 100),
            job("dlq", state="dead", run_at=T - 90),
            job("busy", state="processing", run_at=T - 80),
        ]
    )
    assert store.next_run_at() is None
    store.insert_jobs([job("later", run_at=T + 60)])
    assert store.next_run_at() == T + 60
    store.insert_jobs([job("retry", state="failed", run_at=T + 2.5)])
    assert store.next_run_at() == T + 2.5


def job_stats(store, now: float) -> dict:
    """Stats as `queuectl stats` computes them from the store's raw aggregates, flattened."""
    stats = App(store=store, clock=lambda: now).jobs.stats()
    return {**stats["duration"], **stats["throughput"], "retries": stats["retries"]}


def test_job_stats_of_an_empty_store(store):
    stats = job_stats(store, T)
    assert (stats["mean"], stats["p50"], stats["p95"]) == (None, None, None)
    assert (stats["retries"], stats["last_minute"], stats["last_hour"]) == (0, 0, 0)


def nearest_rank(values: list[float], q: str) -> float:
    """The textbook nearest-rank percentile: the ceil(q * n)-th smallest value."""
    return sorted(values)[max(1, math.ceil(Fraction(q) * len(values))) - 1]


@pytest.mark.parametrize("n", [1, 2, 4, 11, 20, 21])
def test_job_stats_durations_by_nearest_rank(store, n):
    durations = [round(0.1 * (i + 1), 3) for i in range(n)]
    shuffled = random.Random(n).sample(durations, n)
    store.insert_jobs(
        [
            job(f"c{i}", state="completed", duration=d, finished_at=T - 7200)
            for i, d in enumerate(shuffled)
        ]
        + [
            job("no-duration", state="completed", duration=None, finished_at=T - 7200),
            job("slow-dead", state="dead", duration=99.0),
            job("slow-run", duration=50.0),
        ]
    )
    stats = job_stats(store, T)
    assert stats["mean"] == pytest.approx(sum(durations) / n)
    assert stats["p50"] == nearest_rank(durations, "0.5")
    assert stats["p95"] == nearest_rank(durations, "0.95")


def test_job_stats_counts_retries_and_throughput(store):
    store.insert_jobs(
        [
            job("once", state="completed", attempts=1, finished_at=T - 10, duration=1.0),
            job("thrice", state="completed", attempts=3, finished_at=T - 59, duration=1.0),
            job("hour", state="completed", attempts=1, finished_at=T - 61, duration=1.0),
            job("hour2", state="completed", attempts=2, finished_at=T - 3599, duration=1.0),
            job("old", state="completed", attempts=1, finished_at=T - 3601, duration=1.0),
            job("dead", state="dead", attempts=4, finished_at=T - 5),
            job("retrying", state="failed", attempts=2, finished_at=T - 5),
            job("new", attempts=0),
        ]
    )
    stats = job_stats(store, T)
    assert stats["retries"] == 2 + 1 + 3 + 1
    assert stats["last_minute"] == 2
    assert stats["last_hour"] == 4


# -- config ------------------------------------------------------------------------------------


def test_config_get_set_unset(store):
    assert store.get_config() == {}
    store.set_config("max_retries", 5)
    store.set_config("backoff_base", 1.5)
    store.set_config("max_retries", 6)
    assert store.get_config() == {"max_retries": 6, "backoff_base": 1.5}
    store.unset_config("max_retries")
    store.unset_config("never_set")
    assert store.get_config() == {"backoff_base": 1.5}


# -- workers -----------------------------------------------------------------------------------


def test_register_and_get_a_worker(store):
    row = worker("h:1:1-aa", status="busy", current_job="j1", jobs_done=2, jobs_failed=1)
    store.register_worker(row)
    assert store.get_worker("h:1:1-aa") == row
    assert store.get_worker("nobody") is None


def test_update_worker_sets_fields_and_adds_counters(store):
    store.register_worker(worker("w1", jobs_done=1))
    store.update_worker(
        "w1",
        {"status": "busy", "current_job": "j1", "last_heartbeat": T + 5},
        {"jobs_done": 2, "jobs_failed": 1},
    )
    store.update_worker("w1", {}, {"jobs_done": 3})
    store.update_worker("w1", {"current_job": None})
    store.update_worker("w1", {}, {})
    got = store.get_worker("w1")
    assert (got.status, got.current_job, got.last_heartbeat) == ("busy", None, T + 5)
    assert (got.jobs_done, got.jobs_failed) == (6, 1)


def test_list_workers_newest_first_and_by_status(store):
    store.register_worker(worker("old", started_at=T - 100, status="stopped"))
    store.register_worker(worker("new", started_at=T + 100, status="idle"))
    store.register_worker(worker("mid", started_at=T, status="busy"))
    assert [w.id for w in store.list_workers()] == ["new", "mid", "old"]
    assert [w.id for w in store.list_workers(statuses=("idle", "busy"))] == ["new", "mid"]
    assert [w.id for w in store.list_workers(statuses=["stopped"])] == ["old"]
    assert store.list_workers(statuses=("lost",)) == []


def test_request_stop_flags_only_those_workers(store):
    for name in ("a", "b", "c"):
        store.register_worker(worker(name))
    store.request_stop(["a", "c", "unknown"])
    assert {w.id: w.stop_requested for w in store.list_workers()} == {
        "a": True,
        "b": False,
        "c": True,
    }


def test_mark_workers_lost_takes_only_silent_live_workers(store):
    store.register_worker(worker("silent-idle", last_heartbeat=T - 700))
    store.register_worker(
        worker("silent-busy", status="busy", current_job="j", last_heartbeat=T - 601)
    )
    store.register_worker(worker("silent-stopping", status="stopping", last_heartbeat=T - 900))
    store.register_worker(worker("alive", status="busy", current_job="k", last_heartbeat=T - 5))
    store.register_worker(worker("stopped", status="stopped", last_heartbeat=T - 9000))
    # Silent by the reader's stale_after, but within the deadline it wrote itself.
    store.register_worker(worker("vouched", last_heartbeat=T - 700, expires_at=T + 1))
    store.register_worker(worker("expired", last_heartbeat=T - 700, expires_at=T - 1))
    lost = store.mark_workers_lost(T - 600, T)
    assert sorted(lost) == ["expired", "silent-busy", "silent-idle", "silent-stopping"]
    statuses = {w.id: (w.status, w.current_job) for w in store.list_workers()}
    assert statuses == {
        "silent-idle": ("lost", None),
        "silent-busy": ("lost", None),
        "silent-stopping": ("lost", None),
        "alive": ("busy", "k"),
        "stopped": ("stopped", None),
        "vouched": ("idle", None),
        "expired": ("lost", None),
    }
    assert store.mark_workers_lost(T - 600, T) == []


def test_delete_workers_forgets_only_long_gone_ones(store):
    store.register_worker(worker("old-stopped", status="stopped", last_heartbeat=T - 9000))
    store.register_worker(worker("old-lost", status="lost", last_heartbeat=T - 9000))
    store.register_worker(worker("new-stopped", status="stopped", last_heartbeat=T - 10))
    store.register_worker(worker("old-but-idle", status="idle", last_heartbeat=T - 9000))
    assert store.delete_workers(T - 3600) == 2
    assert sorted(w.id for w in store.list_workers()) == ["new-stopped", "old-but-idle"]
