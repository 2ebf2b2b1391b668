"""The store's purge and turn primitives (SPEC §7.2), one suite for every backend: what a
purge batch deletes and never touches, its bound and order, dependency records, and the
fleet-wide compare-and-set behind retention sweeps."""

from __future__ import annotations

import itertools
import json
import threading

import mongomock
import pytest

from queuectl.errors import DependencyNotFound
from queuectl.models import STATES, Job
from queuectl.store.base import MARKER_PREFIX
from queuectl.store.mongo import MongoStore
from queuectl.store.sqlite import SqliteStore, _purge_pick

T = 1_800_000_000.0
HOUR = 3600.0
_seq = itertools.count(1)


def job(job_id: str, state: str = "pending", age: float = 0.0, **fields) -> Job:
    """A job in `state` that ended (or, if not final, last changed) `age` seconds before T."""
    at = T - age
    values = {
        "command": "true",
        "run_at": at - 10,
        "created_at": at - 10,
        "updated_at": at,
        "seq": next(_seq),
        "state": state,
    }
    if state in ("completed", "dead", "failed"):
        values.update(finished_at=at, attempts=1, exit_code=0 if state == "completed" else 1)
    if state == "processing":
        values.update(lease_token="tok", locked_by="w", lease_renewed_at=at, attempts=1)
    values.update(fields)
    return Job(id=job_id, **values)


def remaining(store) -> set[str]:
    return {j.id for j in store.list_jobs(None, 1000)}


def dead_dependency(dep: str) -> dict:
    return {"state": "dead", "last_error": f"dependency {dep} is dead", "updated_at": T}


def purge_all(store, state: str, cutoff: float = T, queue: str | None = None) -> int:
    total = 0
    while deleted := store.purge_batch(state, cutoff, queue, 1000, dead_dependency):
        total += deleted
    return total


# -- what a batch deletes ----------------------------------------------------------------------


@pytest.mark.parametrize("state", ["completed", "dead"])
def test_purge_deletes_only_that_state_and_never_an_unfinished_job(store, state):
    store.insert_jobs([job(f"{s}-old", s, age=30 * 86_400) for s in STATES])
    assert purge_all(store, state) == 1
    assert remaining(store) == {f"{s}-old" for s in STATES if s != state}


@pytest.mark.parametrize("state", ["pending", "processing", "failed", "bogus"])
def test_purge_refuses_any_other_state(store, state):
    store.insert_jobs([job(f"{s}-old", s, age=86_400) for s in STATES])
    with pytest.raises(ValueError):
        store.purge_batch(state, T, None, 100, dead_dependency)
    assert remaining(store) == {f"{s}-old" for s in STATES}


def test_completed_jobs_age_by_finished_at_and_dead_ones_by_updated_at(store):
    store.insert_jobs(
        [
            job("done-2h", "completed", age=2 * HOUR),
            job("done-30m", "completed", age=0.5 * HOUR),
            job("dead-2h", "dead", age=2 * HOUR),
            job("dead-30m", "dead", age=0.5 * HOUR),
            # Canceled before it ever ran: a dead job with no finished_at, aged by its update.
            job("canceled-2h", "dead", age=2 * HOUR, finished_at=None, attempts=0),
        ]
    )
    assert purge_all(store, "completed", T - HOUR) == 1
    assert purge_all(store, "dead", T - HOUR) == 2
    assert remaining(store) == {"done-30m", "dead-30m"}
    assert purge_all(store, "completed", T - 0.5 * HOUR) == 1  # the cutoff itself is included
    assert remaining(store) == {"dead-30m"}


def test_a_batch_deletes_at_most_its_limit_oldest_first(store):
    store.insert_jobs([job(f"done-{age}", "completed", age=age) for age in (50, 10, 40, 20, 30)])
    assert store.purge_batch("completed", T, None, 2, dead_dependency) == 2
    assert remaining(store) == {"done-10", "done-20", "done-30"}
    assert store.purge_batch("completed", T, None, 2, dead_dependency) == 2
    assert remaining(store) == {"done-10"}
    assert store.purge_batch("completed", T, None, 2, dead_dependency) == 1
    assert store.purge_batch("completed", T, None, 2, dead_dependency) == 0


@pytest.mark.parametrize("state", ["completed", "dead"])
def test_purge_of_one_queue_leaves_the_others(store, state):
    store.insert_jobs(
        [
            job("in-default", state, age=HOUR),
            job("in-mail", state, age=HOUR, queue="mail"),
            job("in-other", state, age=HOUR, queue="other"),
            job("mail-pending", "pending", age=HOUR, queue="mail"),
        ]
    )
    assert purge_all(store, state, queue="mail") == 1
    assert remaining(store) == {"in-default", "in-other", "mail-pending"}
    assert purge_all(store, state, queue="default") == 1
    assert remaining(store) == {"in-other", "mail-pending"}


# -- dependencies --------------------------------------------------------------------------------


def test_a_purged_dependency_counts_as_completed_for_those_that_named_it(store):
    store.insert_jobs([job("dep", "pending")])
    store.insert_jobs([job("child", "pending", after=["dep"]), job("other", "pending")])
    assert store.get_job("child").waiting == 1
    fence = {"state": "pending"}
    done = {"state": "completed", "updated_at": T, "finished_at": T}
    assert store.settle("dep", fence, done, lambda d: {}) == []
    assert store.get_job("child").waiting == 0
    assert purge_all(store, "completed") == 1
    assert store.get_job("dep") is None
    # The child still runs; sent to the DLQ and back, it counts the purged job as completed.
    claimed = [store.claim("w", T, f"t{n}") for n in range(2)]
    assert {c.id for c in claimed} == {"child", "other"}
    dead = {"state": "dead", "updated_at": T, "last_error": "boom"}
    assert store.settle("child", {"state": "processing"}, dead, lambda d: {}) == []
    back = {"state": "pending", "attempts": 0, "run_at": T, "updated_at": T}
    assert store.requeue("child", {"state": "dead"}, back, lambda d: {"state": "dead"})
    again = store.get_job("child")
    assert (again.state, again.waiting, again.after) == ("pending", 0, ["dep"])
    # A new job cannot wait on a job that is gone (SPEC §7.3: it must exist).
    with pytest.raises(DependencyNotFound):
        store.insert_jobs([job("late", "pending", after=["dep"])])


def test_purging_dependencies_and_dependents_leaves_no_dependency_records(store):
    store.insert_jobs([job("a", "pending"), job("b", "pending")])
    store.insert_jobs([job("c", "pending", after=["a", "b"])])
    done = {"state": "completed", "updated_at": T, "finished_at": T}
    for name in ("a", "b"):
        assert store.settle(name, {"state": "pending"}, done, lambda d: {}) == []
    assert store.settle("c", {"state": "pending", "waiting": 0}, done, lambda d: {}) == []
    assert purge_all(store, "completed") == 3
    assert remaining(store) == set()
    if isinstance(store, SqliteStore):
        rows = store._query("SELECT COUNT(*) AS n FROM job_deps")
        assert rows[0]["n"] == 0


def test_a_dead_dependency_and_the_dependents_it_killed_purge_together(store):
    # As a cascade leaves them (seeded: the cascade itself is tested elsewhere).
    cascade = {"state": "dead", "last_error": "dependency root is dead"}
    store.insert_jobs(
        [job("root", "dead"), job("kid", "dead", after=["root"], last_error=cascade["last_error"])],
        lambda dep: cascade,
    )
    assert purge_all(store, "dead") == 2
    assert remaining(store) == set()


def test_a_completion_not_yet_passed_on_is_passed_on_before_the_purge(store):
    """MongoDB passes a final state on in steps: a process that died between them leaves a
    completed job whose dependents still wait for it. Purging it must free them."""
    if not isinstance(store, MongoStore):
        pytest.skip("SQLite passes a completion on in the transaction that stores it")
    store.insert_jobs([job("dep", "pending")])
    store.insert_jobs([job("child", "pending", after=["dep"])])
    # Completed without passing it on, as a settle cut short would leave it.
    assert store.update_if("dep", {"state": "pending"}, {"state": "completed", "finished_at": T})
    assert store.get_job("child").waiting == 1
    assert purge_all(store, "completed") == 1
    assert store.get_job("child").waiting == 0
    assert store.claim("w", T, "tok").id == "child"


# -- the fleet-wide turn ---------------------------------------------------------------------------


def test_one_turn_per_interval_and_markers_stay_out_of_the_config(store):
    assert store.take_turn("sweep", T, 30)
    assert not store.take_turn("sweep", T, 30)
    assert not store.take_turn("sweep", T + 29.9, 30)
    assert store.take_turn("other", T + 1, 30)  # each marker keeps its own time
    assert store.take_turn("sweep", T + 30, 30)
    assert not store.take_turn("sweep", T + 59, 30)
    store.set_config("max_retries", 5)
    assert store.get_config() == {"max_retries": 5}
    assert not any(key.startswith(MARKER_PREFIX) for key in store.get_config())


@pytest.mark.parametrize("written", ["soon", None, True])
def test_a_marker_that_is_no_time_counts_as_long_ago(store, written):
    """A marker written by hand (or by another program) that holds no number must not stop
    the fleet's turns: every store takes it as long past, once."""
    if isinstance(store, SqliteStore):
        with store._tx() as conn:
            conn.execute(
                "INSERT INTO config (key, value) VALUES (?, ?)",
                (MARKER_PREFIX + "sweep", json.dumps(written)),
            )
    else:
        store.config.insert_one({"_id": MARKER_PREFIX + "sweep", "value": written})
    assert store.take_turn("sweep", T, 30)
    assert not store.take_turn("sweep", T + 1, 30)


@pytest.mark.parametrize("fresh", [True, False])
def test_callers_racing_for_a_turn_get_exactly_one(store, fresh):
    if not fresh:
        assert store.take_turn("sweep", T - 60, 30)  # an old marker: the update races
    barrier = threading.Barrier(6)
    won: list[bool] = []

    def race() -> None:
        barrier.wait(10)
        won.append(store.take_turn("sweep", T, 30))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(won) == [False] * 5 + [True]


# -- query plans ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["completed", "dead"])
@pytest.mark.parametrize("queue", [None, "mail"])
def test_sqlite_purge_reads_through_an_index_never_a_scan(tmp_path, state, queue):
    store = SqliteStore(str(tmp_path / "plan.db"))
    store.unset_config("-")  # a write: creates the file and the schema
    pick, params = _purge_pick(state, T, queue)
    statements = [
        (f"{pick} LIMIT 1", params),
        (f"DELETE FROM jobs WHERE rowid IN ({pick} LIMIT ?) RETURNING id, after", (*params, 500)),
        ("DELETE FROM job_deps WHERE dep_id = ?", ("x",)),
        ("DELETE FROM job_deps WHERE dep_id = ? AND job_id = ?", ("x", "y")),
    ]
    for sql, args in statements:
        plan = [r["detail"] for r in store._query(f"EXPLAIN QUERY PLAN {sql}", args)]
        assert not [step for step in plan if step.startswith("SCAN")], (sql, plan)
        assert not [step for step in plan if "TEMP B-TREE" in step], (sql, plan)
        assert any("USING" in step for step in plan), plan
    store.close()


def test_a_death_not_yet_passed_on_is_passed_on_before_the_purge(store):
    """The same for a dead job: its waiting dependents become dead, never wait forever."""
    if not isinstance(store, MongoStore):
        pytest.skip("SQLite passes a final state on in the transaction that stores it")
    store.insert_jobs([job("dep", "pending")])
    store.insert_jobs([job("child", "pending", after=["dep"])])
    died = {"state": "dead", "last_error": "x", "updated_at": T - 100}
    assert store.update_if("dep", {"state": "pending"}, died)
    assert purge_all(store, "dead", T - 50) == 1  # the child died just now: it stays
    child = store.get_job("child")
    assert (child.state, child.last_error) == ("dead", "dependency dep is dead")


@pytest.mark.parametrize("state", ["completed", "dead"])
@pytest.mark.parametrize("queue", [None, "mail"])
def test_mongodb_purge_reads_through_an_index_where_the_server_explains(store, state, queue):
    """On a server (the wire lane, or a real MongoDB): the purge's find is an index range."""
    if not isinstance(store, MongoStore) or isinstance(store.client, mongomock.MongoClient):
        pytest.skip("explain needs a server")
    from queuectl.store.mongo import _purge_filter

    store.get_job("x")  # the first call creates the indexes
    command = {
        "find": "jobs",
        "filter": _purge_filter(state, T, queue),
        "sort": {"updated_at": 1, "seq": 1},
        "limit": 500,
    }
    plan = str(store.db.command("explain", command)["queryPlanner"]["winningPlan"])
    assert "COLLSCAN" not in plan and "SCAN jobs" not in plan, plan
    assert "IXSCAN" in plan or "USING INDEX" in plan, plan
