"""Text search of the jobs list (JobManager.search, the /jobs page and /api/jobs `q`): an exact
id found first wherever it is, the rest from a bounded scan that says when more may match, the
same answers on every store, and live refreshes answered from memory for a few seconds."""

from __future__ import annotations

import warnings
from typing import Iterator

import pytest

from queuectl.app import App
from queuectl.models import Job

T0 = 1_800_000_000.0


def put(store, job_id: str, state: str = "completed", n: int = 0, **fields) -> None:
    values = {
        "command": f"echo {job_id}",
        "run_at": T0 - 1000 + n,
        "created_at": T0 - 1000 + n,
        "updated_at": T0 - 1000 + n,
        "seq": n,
    }
    values.update(fields)
    store.insert_jobs([Job(id=job_id, state=state, **values)])


@pytest.fixture
def jobs(store, clock):
    clock.now = T0
    return App(store=store, clock=clock).jobs


def ids(found) -> list[str]:
    return [j.id for j in found.jobs]


def test_an_exact_id_is_found_first_wherever_it_is(store, jobs):
    for n in range(30):
        put(store, f"job-{n:02d}", n=n, command=f"echo run {n}")
    # The newest 5 are job-29 .. job-25: job-02 lies far past the scan.
    found = jobs.search("job-02", scan=5)
    assert ids(found) == ["job-02"] and not found.has_more and not found.complete
    assert ids(jobs.search("JOB-02", scan=5)) == []  # not an id: matched within the scan only
    assert ids(jobs.search("job-02", state="completed", queue="default", scan=5)) == ["job-02"]
    assert ids(jobs.search("job-02", state="dead", scan=5)) == []
    assert ids(jobs.search("job-02", queue="other", scan=5)) == []
    assert ids(jobs.search("job-02", scan=100)) == ["job-02"]  # found once, not twice


def test_the_scan_stops_after_so_many_jobs_and_says_more_may_match(store, jobs):
    for n in range(12):
        put(store, f"j{n:02d}", n=n, command=f"echo Fruit {n}")
    found = jobs.search("fruit", scan=5, limit=3)
    assert ids(found) == ["j11", "j10", "j09"] and found.has_more and not found.complete
    rest = jobs.search("fruit", scan=5, limit=3, offset=3)
    assert ids(rest) == ["j08", "j07"] and not rest.has_more and not rest.complete
    whole = jobs.search("fruit", scan=12, limit=50)
    assert ids(whole) == [f"j{n:02d}" for n in range(11, -1, -1)] and whole.complete
    assert ids(jobs.search("FRUIT 1", scan=100)) == ["j11", "j10", "j01"]
    assert ids(jobs.search("%", scan=100)) == [] and ids(jobs.search("_", scan=100)) == []


def test_the_exact_job_leads_the_pages_and_the_rest_follow_once(store, jobs):
    put(store, "a1", n=1, command="true")
    put(store, "a10", n=2, command="true")
    put(store, "a11", n=3, command="true")
    first = jobs.search("a1", scan=2, limit=2)
    assert ids(first) == ["a1", "a11"] and first.has_more
    second = jobs.search("a1", scan=2, limit=2, offset=2)
    assert ids(second) == ["a10"] and not second.has_more


def test_pending_jobs_are_searched_in_claim_order_then_the_waiting_ones(store, jobs):
    put(store, "ready-low", "pending", n=1, run_at=T0 - 10)
    put(store, "ready-high", "pending", n=2, run_at=T0 - 10, priority=5)
    put(store, "later", "pending", n=3, run_at=T0 + 60)
    put(store, "other", "pending", n=4, command="sleep 1", run_at=T0 - 10)
    put(store, "blocked-parent", "processing", n=5)
    put(store, "blocked", "pending", n=6, run_at=T0 - 10, after=["blocked-parent"])
    found = jobs.search("echo", state="pending")
    assert ids(found) == ["ready-high", "ready-low", "blocked", "later"]
    assert ids(jobs.search("echo", state="pending", scan=2)) == ["ready-high", "ready-low"]
    assert ids(jobs.search("echo", queue="default")) == [
        "blocked",
        "blocked-parent",
        "later",
        "ready-high",
        "ready-low",
    ]


def test_the_search_reads_no_whole_job_but_the_page(store, jobs, monkeypatch):
    for n in range(20):
        put(store, f"big{n:02d}", n=n, stdout="x" * 10_000)
    monkeypatch.setattr(store, "list_jobs", lambda *a, **k: pytest.fail("read whole jobs"))
    asked: list[list[str]] = []
    get_jobs = store.get_jobs
    monkeypatch.setattr(store, "get_jobs", lambda i: asked.append(list(i)) or get_jobs(i))
    found = jobs.search("big", limit=3)
    assert ids(found) == ["big19", "big18", "big17"] and asked == [ids(found)]
    assert found.jobs[0].stdout == "x" * 10_000


# -- the web ------------------------------------------------------------------------------
@pytest.fixture
def web(store, jobs) -> Iterator:
    pytest.importorskip("starlette", reason="the web extra is not installed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    from queuectl.web.app import create_app

    app = create_app(App(store=store, clock=jobs.clock))
    with TestClient(app) as client:
        yield client


def test_the_api_finds_an_exact_id_and_says_when_more_may_match(store, web, monkeypatch):
    import queuectl.jobs

    for n in range(8):
        put(store, f"job-{n}", n=n)
    monkeypatch.setattr(queuectl.jobs, "SEARCH_SCAN", 3)
    response = web.get("/api/jobs?q=job-1")
    assert [j["id"] for j in response.json()] == ["job-1"]
    assert response.headers["x-search-scanned"] == "3"
    page = web.get("/jobs?q=echo").text
    assert "more may match" in page and 'data-job="job-7"' in page
    assert 'data-job="job-4"' not in page
    monkeypatch.setattr(queuectl.jobs, "SEARCH_SCAN", 100)
    whole = web.get("/api/jobs?q=echo")
    assert len(whole.json()) == 8 and "x-search-scanned" not in whole.headers
    assert "more may match" not in web.get("/jobs?q=echo").text


def test_a_live_refresh_runs_a_search_at_most_once_per_few_seconds(store, web):
    searches = web.app.state.web.searches
    now = [100.0]
    searches.clock = lambda: now[0]
    put(store, "first", n=1)
    assert 'data-job="first"' in web.get("/jobs?q=echo&partial=1").text
    put(store, "second", n=2)
    now[0] += searches.every / 2
    assert 'data-job="second"' not in web.get("/jobs?q=echo&partial=1").text
    assert 'data-job="second"' in web.get("/jobs?q=echo").text  # a page load searches anew
    now[0] += searches.every
    assert 'data-job="second"' in web.get("/jobs?q=echo&partial=1").text
