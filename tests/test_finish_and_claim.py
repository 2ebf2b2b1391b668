"""`Store.finish_and_claim` (through JobManager's `*_and_claim`): the end of one attempt and
the claim of the next in one store operation must leave every store exactly as the two calls
one after the other do. Each case is built twice, on two fresh stores of the same kind: one
takes the two calls, the other the combined one, and everything stored is compared."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Iterator

import pytest
from conftest import BACKENDS, make_store
from wirelane import REAL_MONGODB, drop_database, unique_db

from queuectl.app import App
from queuectl.errors import ClaimUnanswered, StoreUnavailable
from queuectl.executor import Result
from queuectl.jobs import NextClaim
from queuectl.models import Job, WorkerInfo

T = 1_800_000_000.0
WORKER = "elsewhere:4242:1-abcd"
OK = Result(0, "out\n", "", 0.25, None)
BROKEN = Result(3, "", "boom\n", 0.5, "exit status 3: boom")


@pytest.fixture(params=BACKENDS)
def twins(request, tmp_path) -> Iterator[tuple[Any, Any]]:
    """Two fresh, empty stores of one kind."""
    kind = request.param
    made, urls = [], []
    for n in range(2):
        url = None
        if kind == "wire":
            server = request.getfixturevalue("wire_server")
            server.ensure_running()
            url = server.url(unique_db())
            urls.append((server.url(), url.rsplit("/", 1)[1]))
        elif kind == "mongodb":
            if not REAL_MONGODB:
                pytest.skip("QUEUECTL_TEST_MONGODB_URI is not set")
            name = unique_db("queuectl_test")
            url = f"{REAL_MONGODB.split('?')[0].rsplit('/', 1)[0]}/{name}"
            urls.append((REAL_MONGODB, name))
        directory = tmp_path / f"twin{n}"
        directory.mkdir()
        made.append(make_store(kind, directory, url))
    yield made[0][0], made[1][0]
    for _, dispose in made:
        dispose()
    for server, name in urls:
        drop_database(server, name)


def job(job_id: str, **fields: Any) -> Job:
    """A pending job due at T; the same seq on both twins (by id)."""
    values = {"command": "true", "run_at": T - 1, "created_at": T - 1, "updated_at": T - 1}
    values["seq"] = fields.pop("seq", int(job_id.encode().hex(), 16) % 10**12)
    values.update(fields)
    return Job(id=job_id, **values)


def app(store: Any) -> App:
    """An App on that store whose clock stands still at T, with no backoff jitter."""
    made = App(store=store, clock=lambda: T)
    made.configs.set("backoff_jitter", "0")
    return made


def claimed(a: App, job_id: str, token: str = "t-a") -> Job:
    """Claim `job_id` (the first in claim order) for WORKER under `token`."""
    taken = a.store.claim(WORKER, T, token, lease_expires_at=T + 60)
    assert taken is not None and taken.id == job_id
    return taken


def snapshot(store: Any) -> dict[str, Any]:
    """Every job (with its lease and dependency bookkeeping) and the worker's counters."""
    jobs = {j.id: j for j in store.list_jobs(None, 1000)}
    row = store.get_worker(WORKER)
    return {"jobs": jobs, "worker": (row.jobs_done, row.jobs_failed) if row else None}


# Each case: what it stores before the end of the attempt, and which end it takes. `build`
# returns the job whose attempt ends.
Build = Callable[[App], Job]


def plain(a: App) -> Job:
    a.store.insert_jobs([job("a"), job("b")])
    return claimed(a, "a")


def refused(a: App) -> Job:
    """The lease of `a` was taken (a reaper released it and another worker claimed it)."""
    ours = plain(a)
    assert a.store.update_if("a", {"lease_token": "t-a"}, {"lease_token": "someone-else"})
    return ours


def cancel_asked(a: App) -> Job:
    """A cancel was asked for the running job; another job was canceled while pending."""
    a.store.insert_jobs([job("a"), job("gone"), job("b")])
    ours = claimed(a, "a")
    a.jobs.cancel(["gone", "a"])
    return ours


def dependents(a: App) -> Job:
    """`c` waits on `a` and comes first in claim order once free; `d` waits on `c`."""
    a.store.insert_jobs([job("a"), job("b")])
    ours = claimed(a, "a")
    a.store.insert_jobs([job("c", after=["a"], priority=5), job("d", after=["c"], priority=9)])
    return ours


def queues(a: App) -> Job:
    """The worker serves q2 only: q1's job comes first in claim order but is not its."""
    a.store.insert_jobs(
        [job("a", queue="q2"), job("x", queue="q1", priority=3), job("b", queue="q2")]
    )
    taken = a.store.claim(WORKER, T, "t-a", queues=("q2",), lease_expires_at=T + 60)
    assert taken is not None and taken.id == "a"
    return taken


def nothing_left(a: App) -> Job:
    a.store.insert_jobs([job("a"), job("later", run_at=T + 100)])
    return claimed(a, "a")


CASES: dict[str, Build] = {
    "plain": plain,
    "refused": refused,
    "cancel_asked": cancel_asked,
    "dependents": dependents,
    "queues": queues,
    "nothing_left": nothing_left,
}
ENDS = ["complete", "fail_retry", "fail_dead", "cancel_running"]


def end_then_claim(a: App, ending: Job, end: str, claim: NextClaim) -> tuple[Any, Job | None]:
    """The two calls one after the other (the worker's path before finish_and_claim)."""
    if end == "complete":
        ended: Any = a.jobs.complete(ending, OK)
    elif end.startswith("fail"):
        ended = a.jobs.fail(ending, BROKEN.error or "", BROKEN)
    else:
        ended = a.jobs.cancel_running(ending, BROKEN)
    nxt = a.jobs.claim(claim.worker_id, claim.queues, claim.token, lease_seconds=60)
    return ended, nxt


def end_and_claim(a: App, ending: Job, end: str, claim: NextClaim) -> tuple[Any, Job | None]:
    """The combined call."""
    if end == "complete":
        return a.jobs.complete_and_claim(ending, OK, claim)
    if end.startswith("fail"):
        return a.jobs.fail_and_claim(ending, BROKEN.error or "", BROKEN, claim)
    return a.jobs.cancel_running_and_claim(ending, BROKEN, claim)


def prepare(store: Any, build: Build, end: str) -> tuple[App, Job]:
    a = app(store)
    a.store.register_worker(
        WorkerInfo(id=WORKER, host="elsewhere", pid=4242, started_at=T, last_heartbeat=T)
    )
    ending = build(a)
    if end == "fail_dead":
        # No retry left: the failure is final (and cascades to its dependents).
        a.store.update_if(ending.id, {}, {"max_retries": 0})
        ending = replace(ending, max_retries=0)
    return a, ending


@pytest.mark.parametrize("end", ENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_finish_and_claim_stores_what_finish_then_claim_stores(twins, case, end):
    build = CASES[case]
    queues_served = ("q2",) if case == "queues" else ()
    claim = NextClaim(WORKER, queues_served, "t-next", 60.0)
    one, two = twins
    a1, ending1 = prepare(one, build, end)
    a2, ending2 = prepare(two, build, end)

    apart = end_then_claim(a1, ending1, end, claim)
    together = end_and_claim(a2, ending2, end, claim)

    assert together == apart
    assert snapshot(two) == snapshot(one)


def test_what_the_combined_step_does(twins):
    """The expectations the comparison above relies on, stated once: a completion frees its
    dependent, which the same step claims; the result is counted once in the worker's row."""
    store = twins[0]
    a, ending = prepare(store, dependents, "complete")
    applied, nxt = a.jobs.complete_and_claim(ending, OK, NextClaim(WORKER, (), "t-next", 60.0))
    assert applied is True
    assert nxt is not None and (nxt.id, nxt.lease_token, nxt.attempts) == ("c", "t-next", 1)
    assert nxt.lease_expires_at == T + 60
    stored = store.get_job("a")
    assert (stored.state, stored.stdout, stored.lease_token) == ("completed", "out\n", "t-a")
    assert store.get_worker(WORKER).jobs_done == 1
    assert store.get_job("d").waiting == 1  # d still waits on c, now running


def test_a_refused_result_still_claims_the_next_job(twins):
    store = twins[0]
    a, ending = prepare(store, refused, "complete")
    applied, nxt = a.jobs.complete_and_claim(ending, OK, NextClaim(WORKER, (), "t-next", 60.0))
    assert applied is False
    assert nxt is not None and nxt.id == "b"
    assert store.get_job("a").state == "processing"  # the other holder's, untouched
    assert store.get_worker(WORKER).jobs_done == 0


class FailingClaim:
    """A store whose claims cannot reach the server."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("cannot reach the server")


def test_a_failed_claim_after_the_result_keeps_the_result(twins, monkeypatch):
    """Where the two writes are one transaction (SQLite) a failed claim stores neither, and
    the error is the store's own; where they are not, the result stands and the error says
    what it returned."""
    store = twins[0]
    a, ending = prepare(store, plain, "complete")
    monkeypatch.setattr(type(store), "claim", FailingClaim.claim)
    with pytest.raises(StoreUnavailable) as raised:
        a.jobs.complete_and_claim(ending, OK, NextClaim(WORKER, (), "t-next", 60.0))
    monkeypatch.undo()
    state = store.get_job("a").state
    if isinstance(raised.value, ClaimUnanswered):
        assert raised.value.written is True
        assert state == "completed"
    else:
        assert state == "processing"  # all or nothing
    assert store.get_job("b").state == "pending"
