"""Store contract for queues and dependencies (SPEC §7.1, §7.3), on every backend: claims per
queue, blocked jobs never claimable, settle and its cascade, requeue, progress."""

from __future__ import annotations

import itertools

import pytest

from queuectl.errors import DependencyNotFound
from queuectl.models import Job

T = 1_800_000_000.0
_seq = itertools.count(1)


def job(job_id: str, **fields) -> Job:
    """A pending job due at T, enqueued after every job made before it."""
    values = {"command": "true", "run_at": T, "created_at": T, "updated_at": T, "seq": next(_seq)}
    values.update(fields)
    return Job(id=job_id, **values)


def dead_dependency(dep: str) -> dict:
    """What the manager hands the store for jobs whose dependency died."""
    return {"state": "dead", "last_error": f"dependency {dep} is dead", "updated_at": T + 1}


def claim_all(store, queues=(), now: float = T) -> list[str]:
    """Claim until nothing is ready; the ids in the order they came."""
    taken = []
    for n in itertools.count():
        claimed = store.claim("w1", now, f"tok-{n}", queues)
        if claimed is None:
            return taken
        taken.append(claimed.id)


def complete(store, job_id: str) -> list[str] | None:
    """Claim-free completion of a processing job through settle, as JobManager does."""
    current = store.get_job(job_id)
    return store.settle(
        job_id,
        {"state": "processing", "lease_token": current.lease_token},
        {"state": "completed", "updated_at": T, "lease_token": None},
        dead_dependency,
    )


def kill(store, job_id: str) -> list[str] | None:
    """Make a processing job dead through settle."""
    current = store.get_job(job_id)
    return store.settle(
        job_id,
        {"state": "processing", "lease_token": current.lease_token},
        {"state": "dead", "updated_at": T, "last_error": "exit status 1", "lease_token": None},
        dead_dependency,
    )


def take(store, job_id: str) -> None:
    """Claim exactly that job (it must be the next ready one)."""
    claimed = store.claim("w1", T, f"tok-{job_id}")
    assert claimed is not None and claimed.id == job_id


# -- queues -------------------------------------------------------------------------------------


def test_a_job_keeps_its_queue_and_after(store):
    store.insert_jobs([job("a", queue="emails"), job("b", after=["a"])], dead_dependency)
    assert store.get_job("a").queue == "emails" and store.get_job("a").after == []
    assert store.get_job("b").queue == "default" and store.get_job("b").after == ["a"]
    assert store.get_job("b").waiting == 1


def test_claims_take_only_the_queues_asked_for_in_claim_order(store):
    store.insert_jobs(
        [
            job("a1", queue="a"),
            job("b1", queue="b", priority=5),
            job("c1", queue="c", priority=9),
            job("a2", queue="a", priority=7),
            job("b2", queue="b", run_at=T - 10),
            job("a-later", queue="a", run_at=T + 10),
        ]
    )
    assert claim_all(store, ["a", "b"]) == ["a2", "b1", "b2", "a1"]
    assert claim_all(store, ["zzz"]) == []
    assert claim_all(store) == ["c1"]
    assert store.next_run_at(["a"]) == T + 10
    assert store.next_run_at(["b", "c"]) is None


def test_one_queue_claim_and_counts_by_queue(store):
    store.insert_jobs([job("x", queue="q1"), job("y", queue="q2"), job("z", queue="q2")])
    assert claim_all(store, ["q2"]) == ["y", "z"]
    assert store.count_by_state("q2") == {"processing": 2}
    assert store.count_by_state("q1") == {"pending": 1}
    assert store.count_by_queue() == {"q1": {"pending": 1}, "q2": {"processing": 2}}
    assert [j.id for j in store.list_jobs("pending", 10, queue="q1")] == ["x"]
    assert [j.id for j in store.list_jobs("processing", 10, queue="q1")] == []
    assert sorted(j.id for j in store.list_jobs(None, 10, queue="q2")) == ["y", "z"]
    assert store.job_ids("processing", "q2") == ["y", "z"]
    assert store.job_ids("pending", "q2") == []


# -- dependencies ------------------------------------------------------------------------------


def test_a_blocked_job_is_never_claimed_until_its_dependencies_complete(store):
    store.insert_jobs([job("a"), job("b"), job("c", after=["a", "b"], priority=100)])
    assert store.next_run_at() == T
    take(store, "a")
    assert store.claim("w1", T, "t").id == "b"
    assert store.claim("w1", T, "t2") is None, "c waits for a and b"
    assert store.next_run_at() is None, "a blocked job is not a job to wake up for"
    assert complete(store, "a") == []
    assert store.get_job("c").waiting == 1
    assert store.claim("w1", T, "t3") is None
    assert complete(store, "b") == []
    assert store.get_job("c").waiting == 0
    assert claim_all(store) == ["c"]


def test_a_dependency_completed_before_the_enqueue_does_not_block(store):
    store.insert_jobs([job("a")])
    take(store, "a")
    complete(store, "a")
    store.insert_jobs([job("b", after=["a"])], dead_dependency)
    assert store.get_job("b").waiting == 0
    assert claim_all(store) == ["b"]


def test_an_unknown_dependency_inserts_nothing(store):
    with pytest.raises(DependencyNotFound) as caught:
        store.insert_jobs([job("a"), job("b", after=["a", "ghost"])], dead_dependency)
    assert (caught.value.job_id, caught.value.dep, caught.value.exit_code) == ("b", "ghost", 1)
    assert store.count_by_state() == {}


def test_a_dead_dependency_cascades_through_every_level(store):
    store.insert_jobs(
        [
            job("root"),
            job("child", after=["root"]),
            job("other"),
            job("grandchild", after=["child", "other"]),
            job("free"),
        ]
    )
    take(store, "root")
    killed = kill(store, "root")
    assert sorted(killed) == ["child", "grandchild"]
    assert store.get_job("child").last_error == "dependency root is dead"
    assert store.get_job("grandchild").last_error == "dependency child is dead"
    assert store.get_job("grandchild").state == "dead"
    assert claim_all(store) == ["other", "free"]


def test_enqueue_after_a_dead_job_is_dead_at_once(store):
    store.insert_jobs([job("a")])
    take(store, "a")
    kill(store, "a")
    store.insert_jobs([job("b", after=["a"]), job("c", after=["b"])], dead_dependency)
    assert (store.get_job("b").state, store.get_job("b").last_error) == (
        "dead",
        "dependency a is dead",
    )
    assert store.get_job("c").last_error == "dependency b is dead"


def test_requeue_waits_again_or_goes_straight_back_to_dead(store):
    store.insert_jobs([job("a"), job("b", after=["a"])])
    take(store, "a")
    kill(store, "a")
    back = {"state": "pending", "attempts": 0, "run_at": T, "updated_at": T + 2}
    assert store.requeue("b", {"state": "dead"}, back, dead_dependency) is True
    assert (store.get_job("b").state, store.get_job("b").last_error) == (
        "dead",
        "dependency a is dead",
    )
    assert store.requeue("b", {"state": "pending"}, back, dead_dependency) is False
    assert store.requeue("a", {"state": "dead"}, back, dead_dependency) is True
    assert store.requeue("b", {"state": "dead"}, back, dead_dependency) is True
    assert (store.get_job("b").state, store.get_job("b").waiting) == ("pending", 1)
    assert claim_all(store) == ["a"]
    complete(store, "a")
    assert claim_all(store) == ["b"]


def test_resolve_open_dependents_finds_nothing_left_after_settles(store):
    store.insert_jobs([job("a"), job("b", after=["a"])])
    take(store, "a")
    complete(store, "a")
    assert store.resolve_open_dependents(dead_dependency) == []
    assert store.get_job("b").waiting == 0


def test_a_completed_dependency_counts_once_however_often_it_is_passed_on(store):
    # c's retry flags a again so its completion reaches c; a later sweep passes a's
    # completion on once more. b, which still waits for x, and c, already counted, must not
    # count a twice: b would run before x, and c would wait forever.
    store.insert_jobs([job("a"), job("x"), job("b", after=["a", "x"]), job("c", after=["a"])])
    assert store.update_if("c", {"state": "pending"}, {"state": "dead", "updated_at": T})
    take(store, "a")
    complete(store, "a")
    back = {"state": "pending", "attempts": 0, "run_at": T, "updated_at": T + 2}
    assert store.requeue("c", {"state": "dead"}, back, dead_dependency) is True
    store.resolve_open_dependents(dead_dependency)
    assert (store.get_job("b").waiting, store.get_job("c").waiting) == (1, 0)
    assert claim_all(store) == ["x", "c"]
    complete(store, "x")
    assert claim_all(store) == ["b"]


def test_progress_writes_under_the_lease_and_reports_a_cancel(store):
    store.insert_jobs([job("a")])
    take(store, "a")
    token = store.get_job("a").lease_token
    assert store.progress("a", token, {}) is False
    assert store.progress("a", token, {"live_stdout": "so far\n", "live_stderr": ""}) is False
    assert store.get_job("a").live_stdout == "so far\n"
    assert store.update_if("a", {"state": "processing"}, {"cancel_requested": True})
    assert store.progress("a", token, {}) is True
    assert store.progress("a", "not-ours", {"live_stdout": "x"}) is None
    assert store.get_job("a").live_stdout == "so far\n"


def test_job_states_reads_many_ids_at_once(store):
    store.insert_jobs([job(f"j{n}") for n in range(1200)])
    states = store.job_states([f"j{n}" for n in range(1200)] + ["missing"])
    assert len(states) == 1200 and set(states.values()) == {"pending"}
