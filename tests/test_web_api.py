"""The JSON API and /metrics of `queuectl web` (SPEC §7.7), through Starlette's TestClient.

Every test takes the `cli` fixture, so it runs on SQLite and on MongoDB (mongomock), and the
web application reads the very store the CLI writes: each API answer is compared with what
the CLI's `--json` prints for the same store, and each error with the CLI's `Error:` line.
"""

from __future__ import annotations

import json
import time
import warnings
from typing import Any, Iterator

import pytest
from test_cli import CLI_BACKENDS, Cli, make_cli

pytest.importorskip("starlette", reason="the web extra is not installed")
pytest.importorskip("prometheus_client", reason="the web extra is not installed")

with warnings.catch_warnings():
    # Newer Starlette prefers httpx2 for its TestClient; httpx works with every version.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from queuectl.app import App  # noqa: E402
from queuectl.models import STATES  # noqa: E402
from queuectl.web.app import create_app  # noqa: E402


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn (as in test_cli)."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


@pytest.fixture
def web(cli: Cli) -> Iterator[TestClient]:
    """The web application on the CLI's store."""
    app = create_app(App(store=cli.store))
    app.state.web.finished.min_interval = 0  # every scrape reads: no throttling in tests
    app.state.web.counts.min_interval = 0
    with TestClient(app) as client:
        yield client


def get_json(web: TestClient, path: str, status: int = 200) -> Any:
    response = web.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def cli_error(err: str) -> str:
    """The message of an `Error: …` line."""
    assert err.startswith("Error: ") and err.endswith("\n")
    return err[len("Error: ") : -1]


def seed_mix(cli: Cli) -> None:
    """One job in each state, with outputs, durations and errors."""
    now = time.time()
    cli.seed("p1", command="echo pending one")
    cli.seed("p2", priority=5, command="echo pending two")
    cli.seed(
        "c1",
        "completed",
        attempts=2,
        started_at=now - 1.5,
        finished_at=now - 0.5,
        duration=1.0,
        exit_code=0,
        stdout="hello\n",
        stderr="",
        updated_at=now - 0.5,
    )
    cli.seed(
        "d1",
        "dead",
        attempts=4,
        exit_code=1,
        last_error="exit status 1",
        finished_at=now - 2,
        updated_at=now - 2,
    )
    cli.seed("f1", "failed", attempts=1, run_at=now + 60, last_error="exit status 2")
    cli.seed("r1", "processing", attempts=1, locked_by="h:1:1-ab", started_at=now)


# -- reads: the same documents as --json ----------------------------------------------------
def test_status_stats_list_and_show_equal_the_cli_json(cli, web):
    seed_mix(cli)
    assert get_json(web, "/api/status") == cli.json("status")
    assert get_json(web, "/api/stats") == cli.json("stats")
    assert get_json(web, "/api/jobs") == cli.json("list")
    for state in STATES:
        assert get_json(web, f"/api/jobs?state={state}") == cli.json("list", "--state", state)
    assert get_json(web, "/api/jobs?limit=2") == cli.json("list", "--limit", "2")
    for job_id in ("p1", "c1", "d1", "f1", "r1"):
        assert get_json(web, f"/api/jobs/{job_id}") == cli.json("show", job_id)


def test_workers_equal_worker_list_json(cli, web):
    managers = App(store=cli.store).workers
    first, second = managers.register(1), managers.register(2)
    cli.store.update_worker(second.id, {"status": "stopped"})

    def without_age(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # heartbeat_age is "now - last heartbeat": the two reads are a moment apart.
        for doc in docs:
            assert 0 <= doc.pop("heartbeat_age") < 60
        return docs

    listed = without_age(get_json(web, "/api/workers"))
    assert [w["id"] for w in listed] == [first.id]
    assert listed == without_age(cli.json("worker", "list"))
    assert without_age(get_json(web, "/api/workers?all=1")) == without_age(
        cli.json("worker", "list", "--all")
    )


def test_schedules_equal_schedule_list_json(cli, web):
    assert get_json(web, "/api/schedules") == [] == cli.json("schedule", "list")
    cli.ok("schedule", "add", "nightly", "--cron", "30 2 * * *", "--tz", "Europe/Paris", "echo n")
    cli.ok("schedule", "add", "hourly", "--cron", "@hourly", "--priority", "3", "echo h")
    cli.ok("schedule", "pause", "hourly")
    listed = get_json(web, "/api/schedules")
    assert [s["name"] for s in listed] == ["hourly", "nightly"]
    assert listed == cli.json("schedule", "list")
    page = web.get("/schedules")
    assert page.status_code == 200
    assert 'data-schedule="nightly"' in page.text and "paused" in page.text


def test_read_errors_are_400_with_the_cli_messages(cli, web):
    cases = [
        ("/api/jobs?state=bogus", ("list", "--state", "bogus")),
        ("/api/jobs?limit=0", ("list", "--limit", "0")),
        ("/api/jobs?state=done&limit=5", ("list", "--state", "done", "--limit", "5")),
    ]
    for path, args in cases:
        assert get_json(web, path, 400) == {"error": cli_error(cli.fails(2, *args))}
    assert get_json(web, "/api/jobs?limit=abc", 400) == {
        "error": "limit must be an integer, got 'abc'"
    }
    assert get_json(web, "/api/jobs?offset=-1", 400) == {
        "error": "offset must be at least 0, got -1"
    }
    assert get_json(web, "/api/jobs?limit=1001", 400)["error"].startswith("limit must be at most")
    bad_queue = ("/api/jobs?queue=no%20spaces", ("list", "--queue", "no spaces"))
    assert get_json(web, bad_queue[0], 400) == {"error": cli_error(cli.fails(2, *bad_queue[1]))}
    assert get_json(web, "/api/jobs?offset=10000000000000", 400)["error"].startswith(
        "offset must be between 0 and"
    )


def test_unknown_ids_are_404_with_the_cli_message(cli, web):
    message = cli_error(cli.fails(1, "show", "nope"))
    assert get_json(web, "/api/jobs/nope", 404) == {"error": message}
    response = web.post("/api/jobs/nope/retry", json={})
    assert (response.status_code, response.json()) == (404, {"error": message})
    assert get_json(web, "/api/no-such-route", 404) == {"error": "not found"}


def test_pages_and_search(cli, web):
    now = time.time()
    for n in range(7):
        cli.seed(f"job-{n}", "completed", command=f"echo fruit {n}", updated_at=now - 100 + n)
    cli.seed("apple-7", "completed", command="echo APPLE pie", updated_at=now - 50)
    whole = cli.json("list", "--limit", "8")

    first = web.get("/api/jobs?limit=3")
    assert first.json() == whole[:3]
    assert first.headers["link"] == '</api/jobs?limit=3&offset=3>; rel="next"'
    assert get_json(web, "/api/jobs?limit=3&offset=3") == whole[3:6]
    last = web.get("/api/jobs?limit=3&offset=6")
    assert last.json() == whole[6:] and "link" not in last.headers

    # q: ASCII letters in any case, in the id or the command.
    assert [j["id"] for j in get_json(web, "/api/jobs?q=apple")] == ["apple-7"]
    assert [j["id"] for j in get_json(web, "/api/jobs?q=FRUIT%205")] == ["job-5"]
    assert [j["id"] for j in get_json(web, "/api/jobs?q=job-1")] == ["job-1"]
    assert get_json(web, "/api/jobs?q=job-1&state=pending") == []
    found = web.get("/api/jobs?q=fruit&limit=2")
    assert [j["id"] for j in found.json()] == ["job-6", "job-5"]
    assert found.headers["link"] == '</api/jobs?q=fruit&limit=2&offset=2>; rel="next"'
    assert [j["id"] for j in get_json(web, "/api/jobs?q=fruit&limit=2&offset=6")] == ["job-0"]


def test_pages_reach_every_job_exactly_once(cli, web):
    # Far past the newest 2,000 a page could once reach, in claim order, of one queue.
    batch = [
        {"id": f"j{n:04d}", "command": f"echo {n}", "queue": "bulk" if n % 2 else "default"}
        for n in range(2300)
    ]
    assert web.post("/api/jobs", json=batch).status_code == 201
    whole = [j["id"] for j in cli.json("list", "--state", "pending", "--limit", "5000")]
    bulk = [j["id"] for j in cli.json("list", "--queue", "bulk", "--limit", "5000")]
    assert len(whole) == 2300 and len(bulk) == 1150
    for query, expected in (("state=pending", whole), ("queue=bulk", bulk)):
        seen, offset = [], 0
        while True:
            page = web.get(f"/api/jobs?{query}&limit=1000&offset={offset}")
            seen += [j["id"] for j in page.json()]
            if "link" not in page.headers:
                break
            offset += 1000
        assert seen == expected, query
    pending_bulk = cli.json("list", "--state", "pending", "--queue", "bulk", "--limit", "5000")
    assert get_json(web, "/api/jobs?state=pending&queue=bulk&limit=2&offset=1149") == [
        pending_bulk[-1]
    ]
    assert get_json(web, "/api/jobs?queue=bulk&limit=3") == cli.json(
        "list", "--queue", "bulk", "--limit", "3"
    )


# -- cancel -------------------------------------------------------------------------------
def test_cancel_kills_a_waiting_job_like_the_cli(cli, web):
    seed_mix(cli)
    for job_id in ("p1", "f1"):
        response = web.post(f"/api/jobs/{job_id}/cancel", json={})
        assert response.status_code == 200, response.text
        doc = response.json()
        assert (doc["state"], doc["last_error"]) == ("dead", "canceled")
        assert doc == cli.json("show", job_id)
    # The same job canceled by the CLI ends the same way.
    cli.ok("cancel", "p2")
    by_cli, by_web = cli.json("show", "p2"), cli.json("show", "p1")
    for doc in (by_cli, by_web):
        for name in ("id", "command", "priority", "created_at", "updated_at", "run_at", "seq"):
            doc.pop(name, None)
    assert by_web == by_cli


def test_cancel_of_a_running_job_asks_its_worker(cli, web):
    seed_mix(cli)
    response = web.post("/api/jobs/r1/cancel", json={})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["state"] == "processing" and doc == cli.json("show", "r1")
    assert App(store=cli.store).jobs.get("r1").cancel_requested


def test_cancel_errors_are_the_cli_messages_as_404_and_409(cli, web):
    seed_mix(cli)
    unknown = cli_error(cli.fails(1, "cancel", "nope"))
    response = web.post("/api/jobs/nope/cancel", json={})
    assert (response.status_code, response.json()) == (404, {"error": unknown})
    for job_id in ("c1", "d1"):
        expected = cli_error(cli.fails(1, "cancel", job_id))
        before = cli.dump()
        refused = web.post(f"/api/jobs/{job_id}/cancel", json={})
        assert (refused.status_code, refused.json()) == (409, {"error": expected})
        assert cli.dump() == before


# -- writes -------------------------------------------------------------------------------
def test_enqueue_one_job_answers_like_enqueue_json(cli, web):
    spec = {"id": "a1", "command": "echo a", "priority": 3, "max_retries": 1, "timeout": 5}
    response = web.post("/api/jobs", json=spec)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/jobs/a1"
    assert response.json() == cli.json("show", "a1")
    # The CLI's own answer for the same spec has the same fields and values.
    cli_doc = cli.json("enqueue", json.dumps({**spec, "id": "a2"}))
    api_doc = response.json()
    for name in ("id", "created_at", "updated_at", "run_at"):
        cli_doc.pop(name), api_doc.pop(name)
    assert api_doc == cli_doc


def test_enqueue_a_batch_answers_with_an_array(cli, web):
    response = web.post("/api/jobs", json=[{"id": "b1", "command": "x"}, {"command": "y"}])
    assert response.status_code == 201, response.text
    docs = response.json()
    assert [d["command"] for d in docs] == ["x", "y"]
    assert docs == [cli.json("show", d["id"]) for d in docs]
    one = web.post("/api/jobs", json=[{"id": "b3", "command": "z"}])
    assert one.status_code == 201 and [d["id"] for d in one.json()] == ["b3"]


BAD_SPECS = [
    {},
    {"command": ""},
    {"command": "   "},
    {"command": 42},
    {"command": "x", "id": "bad id"},
    {"command": "x", "id": ""},
    {"command": "x", "colour": "red"},
    {"command": "x", "max_retries": -1},
    {"command": "x", "max_retries": 1.5},
    {"command": "x", "priority": "high"},
    {"command": "x", "priority": True},
    {"command": "x", "delay": -1},
    {"command": "x", "delay": 1, "run_at": "2030-01-01T00:00:00Z"},
    {"command": "x", "run_at": "yesterday"},
    {"command": "x", "timeout": 0},
    {"command": "x\u0000y"},
]


@pytest.mark.parametrize("spec", BAD_SPECS, ids=[json.dumps(s)[:40] for s in BAD_SPECS])
def test_enqueue_validation_is_400_with_the_cli_message(cli, web, spec):
    expected = cli_error(cli.fails(2, "enqueue", json.dumps(spec)))
    before = cli.dump()
    response = web.post("/api/jobs", json=spec)
    assert (response.status_code, response.json()) == (400, {"error": expected})
    assert cli.dump() == before


def test_enqueue_body_errors_are_400_and_change_nothing(cli, web):
    before = cli.dump()
    cases = {
        b"{not json": "the request body is not valid JSON: ",
        b'{"command": NaN}': "the request body is not valid JSON: NaN is not a number",
        b'"echo hi"': "the request body must be a JSON object or an array of objects",
        b"\xff\xfe": "the request body is not valid UTF-8",
        b"[]": "no job to enqueue: the batch is empty",
        b'[{"command": "ok"}, {"command": ""}]': "item 2: command must not be blank",
        b'[{"command": "ok"}, 7]': "item 2: a job spec must be a JSON object",
    }
    for body, message in cases.items():
        response = web.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"].startswith(message), (body, response.json())
    assert cli.dump() == before


def test_duplicate_ids_are_409_with_the_cli_message(cli, web):
    cli.seed("dup")
    expected = cli_error(cli.fails(1, "enqueue", '{"id": "dup", "command": "x"}'))
    before = cli.dump()
    response = web.post("/api/jobs", json={"id": "dup", "command": "x"})
    assert (response.status_code, response.json()) == (409, {"error": expected})
    batch = [{"id": "fresh", "command": "x"}, {"id": "dup", "command": "y"}]
    assert web.post("/api/jobs", json=batch).status_code == 409
    repeated = web.post(
        "/api/jobs", json=[{"id": "r", "command": "x"}, {"id": "r", "command": "y"}]
    )
    assert repeated.status_code == 409
    assert repeated.json() == {"error": "job id 'r' is repeated in the batch; nothing was enqueued"}
    assert cli.dump() == before


def test_retry_moves_a_dead_job_back_and_409s_any_other(cli, web):
    seed_mix(cli)
    response = web.post("/api/jobs/d1/retry", json={})
    assert response.status_code == 200, response.text
    doc = response.json()
    assert (doc["state"], doc["attempts"], doc["last_error"]) == ("pending", 0, "exit status 1")
    assert doc == cli.json("show", "d1")
    expected = cli_error(cli.fails(1, "dlq", "retry", "p1"))
    before = cli.dump()
    refused = web.post("/api/jobs/p1/retry", json={})
    assert (refused.status_code, refused.json()) == (409, {"error": expected})
    assert cli.dump() == before


def test_a_body_past_the_limit_is_413(cli, web):
    from queuectl.web.api import MAX_BODY

    body = b"[" + b" " * MAX_BODY + b"]"
    response = web.post("/api/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json() == {"error": "the request body is larger than 16 MiB"}


# -- /metrics -----------------------------------------------------------------------------
def scrape(web: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = web.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_in_the_prometheus_format(cli, web):
    seed_mix(cli)
    App(store=cli.store).workers.register(1)
    first = scrape(web)
    counts = cli.json("status")["jobs"]
    for state in STATES:
        assert first[("queuectl_jobs", (("queue", "default"), ("state", state)))] == counts[state]
    assert first[("queuectl_workers_active", ())] == 1
    # Finished jobs are counted from the server's start: the seeded ones came before.
    assert first[("queuectl_jobs_finished_total", (("outcome", "completed"),))] == 0
    assert first[("queuectl_jobs_finished_total", (("outcome", "dead"),))] == 0
    assert first[("queuectl_job_duration_seconds_count", ())] == 0

    now = time.time()
    cli.seed("c2", "completed", duration=0.3, finished_at=now, updated_at=now)
    cli.seed("c3", "completed", duration=42.0, finished_at=now, updated_at=now)
    cli.seed("d2", "dead", finished_at=now, updated_at=now)
    second = scrape(web)
    assert second[("queuectl_jobs_finished_total", (("outcome", "completed"),))] == 2
    assert second[("queuectl_jobs_finished_total", (("outcome", "dead"),))] == 1
    assert second[("queuectl_job_duration_seconds_count", ())] == 2
    assert second[("queuectl_job_duration_seconds_sum", ())] == pytest.approx(42.3)
    assert second[("queuectl_job_duration_seconds_bucket", (("le", "0.1"),))] == 0
    assert second[("queuectl_job_duration_seconds_bucket", (("le", "0.5"),))] == 1
    assert second[("queuectl_job_duration_seconds_bucket", (("le", "60.0"),))] == 2
    assert second[("queuectl_job_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    # Read again: nothing is counted twice.
    assert scrape(web)[("queuectl_jobs_finished_total", (("outcome", "completed"),))] == 2


def test_metrics_count_jobs_by_state_and_queue(cli, web):
    empty = scrape(web)
    for state in STATES:  # an empty store still says 0 for every state
        assert empty[("queuectl_jobs", (("queue", "default"), ("state", state)))] == 0
    seed_mix(cli)
    web.post("/api/jobs", json=[{"command": "x", "queue": "mail"} for _ in range(3)])
    cli.ok("cancel", "--all-pending", "--queue", "mail")
    web.post("/api/jobs", json={"command": "y", "queue": "mail"})
    samples = scrape(web)
    by_queue = cli.json("stats")["queues"]
    assert set(by_queue) == {"default", "mail"}
    jobs = {k: v for k, v in samples.items() if k[0] == "queuectl_jobs"}
    assert len(jobs) == 2 * len(STATES)
    for queue, counts in by_queue.items():
        for state in STATES:
            assert jobs[("queuectl_jobs", (("queue", queue), ("state", state)))] == counts[state]
    assert samples[("queuectl_jobs", (("queue", "mail"), ("state", "dead")))] == 3
    assert samples[("queuectl_workers_active", ())] == 0
    # The family types, as Prometheus reads them.
    types = {f.name: f.type for f in text_string_to_metric_families(web.get("/metrics").text)}
    assert types == {
        "queuectl_jobs": "gauge",
        "queuectl_workers_active": "gauge",
        "queuectl_jobs_finished": "counter",
        "queuectl_job_duration_seconds": "histogram",
    }


# -- the pages' filters and buttons ---------------------------------------------------------
def test_the_jobs_page_filters_by_queue_and_offers_cancel_where_it_applies(cli, web):
    seed_mix(cli)
    web.post("/api/jobs", json={"id": "m1", "command": "send mail", "queue": "mail"})
    page = web.get("/jobs?queue=mail").text
    assert 'data-job="m1"' in page and 'data-job="p1"' not in page
    assert 'name="queue" value="mail"' in page
    everything = web.get("/jobs?limit=1000").text
    for job_id in ("p1", "f1", "r1", "m1"):
        row = everything.split(f'data-job="{job_id}"')[1].split("</tr>")[0]
        assert f'action="/jobs/{job_id}/cancel"' in row and 'name="csrf"' in row, job_id
    for job_id in ("c1", "d1"):
        row = everything.split(f'data-job="{job_id}"')[1].split("</tr>")[0]
        assert "/cancel" not in row, job_id
    assert web.get("/jobs?queue=bad%20name").status_code == 400
    # The job page: cancel for a waiting job, retry for a dead one.
    assert 'action="/jobs/p1/cancel"' in web.get("/jobs/p1").text
    dead = web.get("/jobs/d1").text
    assert 'action="/jobs/d1/retry"' in dead and "/cancel" not in dead
    # The DLQ page: retry each, retry all, purge all (asking first), and cancel for the
    # failed jobs on their way to it; each form with its token.
    dlq = web.get("/dlq").text
    assert 'action="/dlq/purge"' in dlq and "data-confirm=" in dlq
    assert 'action="/jobs/f1/cancel"' in dlq and 'action="/jobs/p1/cancel"' not in dlq
    assert dlq.count('name="csrf"') == 4  # retry all, purge, d1's retry, f1's cancel


def test_the_overview_counts_by_queue(cli, web):
    seed_mix(cli)
    assert "<h2>Queues</h2>" not in web.get("/").text  # one queue: the cards say it all
    web.post("/api/jobs", json=[{"command": "x", "queue": "mail"} for _ in range(2)])
    page = web.get("/?partial=1").text
    assert "<h2>Queues</h2>" in page
    row = page.split('data-queue="mail"')[1].split("</tr>")[0]
    assert '<a href="/jobs?queue=mail&amp;state=pending" data-queue-count="pending">2</a>' in row


def purge_csrf(web: TestClient) -> str:
    import re

    page = web.get("/dlq").text
    csrf = re.search(
        r'action="/dlq/purge"[^>]*>\s*<input type="hidden" name="csrf" value="(\w+)"', page
    )
    assert csrf, page
    return csrf.group(1)


def test_the_dlq_purge_button_deletes_the_dead_jobs_only(cli, web):
    seed_mix(cli)
    cli.seed("d2", "dead", last_error="canceled")
    response = web.post("/dlq/purge", data={"csrf": purge_csrf(web)}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (303, "/dlq")
    assert web.app.state.web.purge.wait(timeout=30)
    assert cli.json("dlq", "list") == []
    assert sorted(j["id"] for j in cli.json("list")) == ["c1", "f1", "p1", "p2", "r1"]
    assert "The DLQ is empty." in web.get("/dlq").text


def test_the_dlq_purge_runs_apart_from_the_request_and_one_at_a_time(cli, web):
    import threading

    for n in range(3):
        cli.seed(f"dead{n}", "dead", last_error="exit status 1")
    jobs = web.app.state.web.jobs()
    jobs.purge_batch_size = 1  # a pause after each job: the purge is held in its first pause
    held, release = threading.Event(), threading.Event()

    def pause(_seconds: float) -> None:
        held.set()
        assert release.wait(30), "the test never released the purge"

    jobs.pause = pause
    csrf = purge_csrf(web)
    try:
        first = web.post("/dlq/purge", data={"csrf": csrf}, follow_redirects=False)
        # The request has answered while the purge is still held in its first pause.
        assert (first.status_code, first.headers["location"]) == (303, "/dlq")
        assert held.wait(30)
        page = web.get("/dlq?partial=1").text
        assert "Purging the dead jobs: 1 deleted so far." in page
        second = web.post("/dlq/purge", data={"csrf": csrf}, follow_redirects=False)
        assert second.status_code == 303
        busy = web.get(second.headers["location"]).text
        assert "A purge is already running" in busy and "1 deleted so far" in busy
        assert len(cli.json("dlq", "list")) == 2
    finally:
        release.set()
    assert web.app.state.web.purge.wait(timeout=30)
    assert cli.json("dlq", "list") == []
    done = web.get("/dlq").text
    assert "The purge deleted 3 dead jobs." in done and "already running" not in done
    # Once it is over, the button starts a new one.
    cli.seed("dead-later", "dead")
    again = web.post("/dlq/purge", data={"csrf": csrf}, follow_redirects=False)
    assert again.headers["location"] == "/dlq"
    assert web.app.state.web.purge.wait(timeout=30)
    assert cli.json("dlq", "list") == []


def test_the_overview_and_metrics_share_one_count_per_interval(cli, web, monkeypatch):
    seed_mix(cli)
    state = web.app.state.web
    state.counts.min_interval = 3600
    reads = []
    count_by_queue = state.store.count_by_queue
    monkeypatch.setattr(state.store, "count_by_queue", lambda: reads.append(1) or count_by_queue())
    for path in ("/", "/?partial=1", "/metrics", "/?partial=1"):
        assert web.get(path).status_code == 200
    assert len(reads) == 1
    assert 'data-count="pending">2<' in web.get("/").text
