"""Security of `queuectl web` (SPEC §7.7): the token on every route, login cookies, CSRF and
same-origin checks on every change, loopback host names, and job text shown only as text."""

from __future__ import annotations

import re
import time
import warnings
from typing import Iterator

import pytest

pytest.importorskip("starlette", reason="the web extra is not installed")

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note on httpx2: httpx works everywhere
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

from queuectl.app import App  # noqa: E402
from queuectl.models import Job  # noqa: E402
from queuectl.store.base import Store  # noqa: E402
from queuectl.web.app import create_app  # noqa: E402
from queuectl.web.binding import local_host_names  # noqa: E402
from queuectl.web.security import CSRF_COOKIE, SESSION_COOKIE  # noqa: E402

TOKEN = "s3cret-token-for-tests-0123456789"
EVIL = """<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">"""
# What Jinja2's autoescape writes for EVIL: every <, >, " and ' is an entity.
EVIL_ESCAPED = (
    "&lt;script&gt;window.__xss=1&lt;/script&gt;&#34;&gt;"
    "&lt;img src=x onerror=&#34;window.__xss=2&#34;&gt;"
)


def seed(store: Store, job_id: str, state: str = "pending", **fields: object) -> None:
    now = time.time()
    values: dict[str, object] = {
        "command": f"echo {job_id}",
        "run_at": now,
        "created_at": now,
        "updated_at": now,
        "seq": time.time_ns(),
    }
    values.update(fields)
    store.insert_jobs([Job(id=job_id, state=state, **values)])  # type: ignore[arg-type]


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[Store]:
    from queuectl.store.sqlite import SqliteStore

    store = SqliteStore(str(tmp_path / "web.db"))
    yield store
    store.close()


@pytest.fixture
def guarded(sqlite_store) -> Iterator[TestClient]:
    """The application with a token."""
    with TestClient(create_app(App(store=sqlite_store), token=TOKEN)) as client:
        yield client


@pytest.fixture
def open_app(sqlite_store) -> Iterator[TestClient]:
    """The application without a token (as on 127.0.0.1)."""
    with TestClient(create_app(App(store=sqlite_store))) as client:
        yield client


def every_request(app) -> list[tuple[str, str]]:
    """(method, path) for every route of the application, ids filled in."""
    found = []
    for route in app.routes:
        if isinstance(route, Route):
            path = route.path.replace("{id}", "job1")
            for method in sorted(route.methods or ()):
                found.append((method, path))
        elif isinstance(route, Mount):
            found.append(("GET", route.path + "/app.css"))
            found.append(("GET", route.path + "/app.js"))
    return found


# -- the token ------------------------------------------------------------------------------
def test_every_route_answers_401_without_the_token(guarded, sqlite_store):
    seed(sqlite_store, "job1", "dead")
    requests = every_request(guarded.app)
    assert ("GET", "/") in requests and ("POST", "/api/jobs") in requests
    assert ("GET", "/metrics") in requests and ("GET", "/api/schedules") in requests
    assert ("GET", "/metrics") in requests and ("GET", "/static/app.css") in requests
    for method, path in requests:
        if (method, path) == ("POST", "/login"):
            continue  # how the token is given; checked below
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            response = guarded.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
    # Nothing was changed by any of them.
    assert sqlite_store.get_job("job1").state == "dead"
    assert [j.id for j in sqlite_store.list_jobs(None, 10)] == ["job1"]


def test_the_bearer_token_opens_every_route(guarded, sqlite_store):
    seed(sqlite_store, "job1")
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for method, path in every_request(guarded.app):
        if method == "GET":
            response = guarded.get(path, headers=bearer)
            assert response.status_code == 200, (path, response.text)
    enqueued = guarded.post("/api/jobs", json={"command": "echo hi"}, headers=bearer)
    assert enqueued.status_code == 201


def test_unauthorised_answers_say_how(guarded):
    api = guarded.get("/api/status")
    assert api.headers["www-authenticate"] == 'Bearer realm="queuectl"'
    assert "Authorization: Bearer" in api.json()["error"]
    page = guarded.get("/jobs?state=dead", headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert '<form method="post" action="/login">' in page.text
    assert 'name="next" value="/jobs?state=dead"' in page.text


def login_form_csrf(client: TestClient, path: str = "/") -> str:
    """The CSRF token of a form on that page (the login form, when logged out)."""
    page = client.get(path)
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
    assert match, page.text
    return match.group(1)


def test_login_form_sets_an_httponly_cookie_that_is_not_the_token(guarded):
    csrf = login_form_csrf(guarded)
    wrong = guarded.post("/login", data={"token": "nope", "csrf": csrf, "next": "/jobs"})
    assert wrong.status_code == 401 and "That token is not right." in wrong.text
    assert SESSION_COOKIE not in wrong.cookies

    response = guarded.post(
        "/login",
        data={"token": TOKEN, "csrf": csrf, "next": "/jobs"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/jobs"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert guarded.get("/").status_code == 200  # the client keeps the cookie
    assert guarded.get("/api/status").status_code == 200

    csrf = login_form_csrf(guarded)
    out = guarded.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    guarded.cookies.delete(SESSION_COOKIE)
    assert guarded.get("/").status_code == 401


def test_login_refuses_a_form_without_its_csrf_token_and_other_sites(guarded):
    login_form_csrf(guarded)
    assert guarded.post("/login", data={"token": TOKEN}).status_code == 403
    forged = guarded.post(
        "/login",
        data={"token": TOKEN, "csrf": "0" * 64},
        headers={"Origin": "http://testserver"},
    )
    assert forged.status_code == 403
    cross = guarded.post(
        "/login", data={"token": TOKEN}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status_code == 403
    assert SESSION_COOKIE not in guarded.cookies


def test_login_goes_back_only_to_a_page_of_this_server(guarded):
    csrf = login_form_csrf(guarded)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = guarded.post(
            "/login",
            data={"token": TOKEN, "csrf": csrf, "next": target},
            follow_redirects=False,
        )
        assert response.headers["location"] == "/"


# -- changes: origin, content type, CSRF ----------------------------------------------------
def test_a_cross_site_post_is_refused(open_app, sqlite_store):
    seed(sqlite_store, "gone", "dead")
    seed(sqlite_store, "waiting", "pending")
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "http://testserver.evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        api = open_app.post("/api/jobs", json={"command": "rm -rf ~"}, headers=headers)
        assert (api.status_code, api.json()) == (403, {"error": "cross-site request refused"})
        retry = open_app.post("/api/jobs/gone/retry", json={}, headers=headers)
        assert retry.status_code == 403
        form = open_app.post("/jobs/gone/retry", data={"csrf": "x"}, headers=headers)
        assert form.status_code == 403
        assert open_app.post("/dlq/retry-all", headers=headers).status_code == 403
        assert open_app.post("/dlq/purge", headers=headers).status_code == 403
        cancel = open_app.post("/api/jobs/waiting/cancel", json={}, headers=headers)
        assert cancel.status_code == 403
        form = open_app.post("/jobs/waiting/cancel", data={"csrf": "x"}, headers=headers)
        assert form.status_code == 403
    assert sorted((j.id, j.state) for j in sqlite_store.list_jobs(None, 10)) == [
        ("gone", "dead"),
        ("waiting", "pending"),
    ]
    # The same request from this server's own pages goes through.
    same = open_app.post(
        "/api/jobs",
        json={"id": "ok", "command": "echo ok"},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
    )
    assert same.status_code == 201


def test_api_posts_need_json_content(open_app, sqlite_store):
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        response = open_app.post(
            "/api/jobs", content=b'{"command": "x"}', headers={"Content-Type": content_type}
        )
        assert response.status_code == 403, content_type
    assert sqlite_store.list_jobs(None, 10) == []
    charset = open_app.post(
        "/api/jobs",
        content=b'{"command": "x"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 201


def test_forms_need_the_csrf_token_of_this_browser(open_app, sqlite_store):
    seed(sqlite_store, "d1", "dead")
    seed(sqlite_store, "d2", "dead")
    csrf = login_form_csrf(open_app, "/dlq")  # the page sets the CSRF cookie; forms carry it
    assert CSRF_COOKIE in open_app.cookies
    seed(sqlite_store, "p1", "pending")
    for data in ({}, {"csrf": ""}, {"csrf": "0" * 64}):
        assert open_app.post("/jobs/d1/retry", data=data).status_code == 403
        assert open_app.post("/dlq/retry-all", data=data).status_code == 403
        assert open_app.post("/dlq/purge", data=data).status_code == 403
        refused = open_app.post("/jobs/p1/cancel", data=data)
        assert (
            refused.status_code == 403 and "the form has expired; reload the page" in refused.text
        )
    assert sqlite_store.get_job("d1").state == "dead"
    assert sqlite_store.get_job("p1").state == "pending"
    # A token minted for another browser's cookie is refused too.
    with TestClient(open_app.app) as other:
        other_csrf = login_form_csrf(other, "/dlq")
    assert open_app.post("/jobs/d1/retry", data={"csrf": other_csrf}).status_code == 403

    done = open_app.post(
        "/jobs/d1/retry", data={"csrf": csrf, "next": "/jobs/d1"}, follow_redirects=False
    )
    assert (done.status_code, done.headers["location"]) == (303, "/jobs/d1")
    assert sqlite_store.get_job("d1").state == "pending"
    again = open_app.post("/jobs/d1/retry", data={"csrf": csrf})
    assert again.status_code == 409 and "is not in the DLQ" in again.text
    everything = open_app.post("/dlq/retry-all", data={"csrf": csrf}, follow_redirects=False)
    assert everything.status_code == 303
    assert sqlite_store.get_job("d2").state == "pending"

    canceled = open_app.post(
        "/jobs/p1/cancel",
        data={"csrf": csrf, "next": "/jobs?state=pending"},
        follow_redirects=False,
    )
    assert (canceled.status_code, canceled.headers["location"]) == (303, "/jobs?state=pending")
    assert (sqlite_store.get_job("p1").state, sqlite_store.get_job("p1").last_error) == (
        "dead",
        "canceled",
    )
    refused = open_app.post("/jobs/p1/cancel", data={"csrf": csrf})
    assert refused.status_code == 409 and "is already dead" in refused.text
    purged = open_app.post("/dlq/purge", data={"csrf": csrf}, follow_redirects=False)
    assert (purged.status_code, purged.headers["location"]) == (303, "/dlq")
    assert open_app.app.state.web.purge.wait(timeout=30)  # it runs apart from the request
    assert sqlite_store.get_job("p1") is None
    assert {j.id for j in sqlite_store.list_jobs(None, 10)} == {"d1", "d2"}  # pending now


# -- host names -----------------------------------------------------------------------------
def test_without_a_token_only_loopback_host_names_are_answered(sqlite_store):
    app = create_app(App(store=sqlite_store), allowed_hosts=local_host_names("127.0.0.1"))
    with TestClient(app, base_url="http://127.0.0.1:8080") as client:
        assert client.get("/api/status").status_code == 200
        for host in ("localhost:8080", "[::1]:8080", "127.0.0.1"):
            assert client.get("/api/status", headers={"Host": host}).status_code == 200
        # DNS rebinding: a page of evil.example whose name now points at 127.0.0.1.
        refused = client.get("/api/status", headers={"Host": "evil.example:8080"})
        assert refused.status_code == 400


# -- job text is text -----------------------------------------------------------------------
def test_job_text_is_escaped_on_every_page(open_app, sqlite_store):
    now = time.time()
    seed(
        sqlite_store,
        "evil",
        "dead",
        command=f"echo '{EVIL}'",
        stdout=EVIL + "\n",
        stderr=EVIL,
        last_error=EVIL,
        attempts=1,
        exit_code=1,
        finished_at=now,
    )
    App(store=sqlite_store).schedules.add("evil-schedule", "@daily", EVIL, "UTC", {})
    for path in ("/", "/jobs", "/jobs?q=script", "/jobs/evil", "/dlq", "/?partial=1", "/schedules"):
        response = open_app.get(path)
        assert response.status_code == 200, path
        assert "<script>window" not in response.text, path
        assert "<img src=x" not in response.text, path
        assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in response.text, path
    job_page = open_app.get("/jobs/evil").text
    assert job_page.count(EVIL_ESCAPED) >= 4  # command, stdout, stderr, last_error
    policy = open_app.get("/jobs/evil").headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert open_app.get("/api/jobs/evil").json()["stdout"] == EVIL + "\n"


def test_security_headers_on_every_answer(open_app):
    for path in ("/", "/api/status", "/metrics", "/nope"):
        headers = open_app.get(path).headers
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
