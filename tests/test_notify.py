"""Notifications (SPEC §7.6): a real HTTP endpoint on a free loopback port checks the body,
the retries, and that a slow or hanging endpoint never slows job processing."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from procutil import QueueEnv, wait_for
from test_cli import CLI_BACKENDS, CONFIG_DEFAULTS, Cli, make_cli

from queuectl import __version__, render
from queuectl.app import App
from queuectl.config import Config, ConfigManager
from queuectl.models import Job
from queuectl.notify import DELAYS, TIMEOUT, Notifier
from queuectl.worker import Worker


def settings(**values: Any) -> Config:
    """The default config with some keys changed."""
    return replace(Config.defaults(), **values)


DEADLINE = 20.0  # seconds any wait in this file may take before the test fails
FAST_DELAYS = (0.01, 0.02)


class Endpoint:
    """A webhook receiver: records every POST and answers with the planned statuses (then
    200), or hangs until released."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: list[int] = []
        self.hanging = False
        self.release = threading.Event()
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server convention
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with endpoint._lock:
                    endpoint.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body}
                    )
                    status = endpoint.plan.pop(0) if endpoint.plan else 200
                if endpoint.hanging:
                    endpoint.release.wait(DEADLINE)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/moved")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=s3cret"

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(r["body"]) for r in self.requests]

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        """The first `count` bodies, once that many arrived (failing after DEADLINE)."""
        return wait_for(
            lambda: len(self.requests) >= count and self.bodies(), DEADLINE, f"{count} POSTs"
        )

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    """A local webhook receiver, shut down after the test."""
    made = Endpoint()
    yield made
    made.close()


@pytest.fixture
def lines() -> list[str]:
    """The worker's log."""
    return []


@pytest.fixture
def make_worker(store, clock, lines):
    """A started worker on the test's store and clock, with the given config set first."""

    def make(**config: Any) -> Worker:
        for key, value in config.items():
            ConfigManager(store).set(key, str(value))
        worker = App(store=store, clock=clock).worker(log=lines.append)
        worker.notifier.delays = FAST_DELAYS
        worker.start()
        return worker

    return make


def add(store, clock, *specs: dict) -> list[str]:
    """Insert jobs directly (no wake-up signal aimed at this test's own worker rows)."""
    jobs = App(store=store, clock=clock).jobs.build([(None, spec) for spec in specs])
    store.insert_jobs(jobs)
    return [job.id for job in jobs]


def run_all(worker: Worker) -> None:
    while worker.step():
        pass


# -- what is sent ------------------------------------------------------------------------------


def test_a_dead_job_is_posted_as_show_json_prints_it(store, clock, endpoint, make_worker):
    worker = make_worker(notify_url=endpoint.url)
    [job_id] = add(store, clock, {"id": "boom", "command": "echo out; exit 3", "max_retries": 0})
    run_all(worker)
    [body] = endpoint.wait_for(1)
    job = store.get_job(job_id)
    assert (job.state, job.last_error, job.stdout) == ("dead", "exit status 3", "out\n")
    assert body == {"event": "job.dead", "job": render.job_json(job)}
    request = endpoint.requests[0]
    assert request["path"] == "/hook?token=s3cret"
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["User-Agent"] == f"queuectl/{__version__}"
    assert worker.notifier.close(DEADLINE) == 0


@pytest.mark.parametrize("notify_on", ["dead", "all"])
def test_completed_jobs_are_posted_only_with_notify_on_all(
    store, clock, endpoint, make_worker, notify_on
):
    worker = make_worker(notify_url=endpoint.url, notify_on=notify_on)
    add(store, clock, {"id": "ok", "command": "true"}, {"id": "retried", "command": "false"})
    add(store, clock, {"id": "bad", "command": "false", "max_retries": 0})
    run_all(worker)  # "retried" fails once and waits for its retry: not a final state
    assert worker.notifier.close(DEADLINE) == 0
    sent = sorted((b["event"], b["job"]["id"], b["job"]["state"]) for b in endpoint.bodies())
    expected = [("job.dead", "bad", "dead")]
    if notify_on == "all":
        expected.append(("job.completed", "ok", "completed"))
    assert sent == sorted(expected)


def test_nothing_is_sent_while_notify_url_is_empty(store, clock, make_worker):
    worker = make_worker()
    posts: list[str] = []
    worker.notifier.post = lambda url, body, timeout: posts.append(url) or 200
    add(store, clock, {"command": "false", "max_retries": 0}, {"command": "true"})
    run_all(worker)
    assert worker.notifier.close(DEADLINE) == 0
    assert posts == []


def test_the_reaper_path_posts_only_a_job_it_made_dead(store, clock, endpoint):
    dead, waiting = Job("lost", "true", state="dead"), Job("again", "true", state="failed")
    store.insert_jobs([dead, waiting])
    notifier = Notifier(
        App(store=store).jobs, lambda: settings(notify_url=endpoint.url), print, delays=FAST_DELAYS
    )
    notifier.job_finished("again")
    notifier.job_finished("lost")
    assert notifier.close(DEADLINE) == 0
    assert [(b["event"], b["job"]["id"]) for b in endpoint.bodies()] == [("job.dead", "lost")]


def test_a_job_gone_before_its_notification_is_skipped_with_a_log_line(store):
    logged: list[str] = []
    notifier = Notifier(
        App(store=store).jobs, lambda: settings(notify_url="http://127.0.0.1:9/"), logged.append
    )
    notifier.job_finished("purged", "job.dead")
    assert notifier.close(DEADLINE) == 0
    assert logged == ["notification for job purged skipped: the job is gone"]


# -- retries and failures ----------------------------------------------------------------------


def test_a_500_is_retried_and_the_200_that_follows_ends_it(
    store, clock, endpoint, make_worker, lines
):
    endpoint.plan = [500]
    worker = make_worker(notify_url=endpoint.url)
    add(store, clock, {"id": "x", "command": "false", "max_retries": 0})
    run_all(worker)
    assert worker.notifier.close(DEADLINE) == 0
    first, second = endpoint.bodies()
    assert first == second and first["job"]["id"] == "x"
    assert not [line for line in lines if "notification" in line]


def test_three_failures_are_logged_without_the_url_token(
    store, clock, endpoint, make_worker, lines
):
    endpoint.plan = [500, 503, 500, 200]
    worker = make_worker(notify_url=endpoint.url)
    add(store, clock, {"id": "x", "command": "false", "max_retries": 0})
    run_all(worker)
    assert worker.notifier.close(DEADLINE) == 0
    assert len(endpoint.requests) == 3
    [logged] = [line for line in lines if "notification" in line]
    assert logged.endswith(
        "notification job.dead for job x to 127.0.0.1 failed after 3 tries: "
        "HTTP 500 Internal Server Error"
    )
    assert "s3cret" not in logged
    assert store.get_job("x").state == "dead"  # the job's outcome is untouched


def test_a_redirect_is_a_failure_not_a_get_without_the_body(store, endpoint):
    endpoint.plan = [302, 302, 302]
    store.insert_jobs([Job("x", "true", state="dead")])
    logged: list[str] = []
    notifier = Notifier(
        App(store=store).jobs,
        lambda: settings(notify_url=endpoint.url),
        logged.append,
        delays=(0, 0),
    )
    notifier.job_finished("x", "job.dead")
    assert notifier.close(DEADLINE) == 0
    assert [r["path"] for r in endpoint.requests] == ["/hook?token=s3cret"] * 3
    assert logged[0].endswith("failed after 3 tries: HTTP 302 Found")


def test_three_tries_5s_timeout_and_1s_then_2s_apart_by_default(store):
    store.insert_jobs([Job("x", "true", state="dead")])
    calls: list[tuple[str, float]] = []
    slept: list[float] = []

    def refuse(url: str, body: bytes, timeout: float) -> int:
        calls.append((url, timeout))
        raise ConnectionRefusedError("connection refused")

    logged: list[str] = []
    notifier = Notifier(
        App(store=store).jobs,
        lambda: settings(notify_url="http://h/"),
        logged.append,
        post=refuse,
        sleep=slept.append,
    )
    notifier.job_finished("x", "job.dead")
    assert notifier.close(DEADLINE) == 0
    assert (DELAYS, TIMEOUT) == ((1.0, 2.0), 5.0)
    assert calls == [("http://h/", 5.0)] * 3
    assert slept == [1.0, 2.0]
    assert logged == [
        "notification job.dead for job x to h failed after 3 tries: connection refused"
    ]


def test_a_hanging_endpoint_times_out_each_try(store, endpoint):
    endpoint.hanging = True
    store.insert_jobs([Job("x", "true", state="dead")])
    logged: list[str] = []
    notifier = Notifier(
        App(store=store).jobs,
        lambda: settings(notify_url=endpoint.url),
        logged.append,
        delays=(0, 0),
        timeout=0.2,
    )
    notifier.job_finished("x", "job.dead")
    assert notifier.close(DEADLINE) == 0
    assert len(endpoint.requests) == 3
    assert "failed after 3 tries: timed out" in logged[0]


# -- never in the way --------------------------------------------------------------------------


def test_a_hanging_endpoint_does_not_slow_processing(store, clock, endpoint, make_worker):
    """20 jobs end while every notification hangs for the whole 5 s timeout: processing takes
    a small fraction of the 20 x 5 s it would if jobs waited for their notifications."""
    endpoint.hanging = True
    worker = make_worker(notify_url=endpoint.url, notify_on="all")
    worker.notifier.delays = DELAYS  # the real timings: 5 s timeout, 1 s and 2 s apart
    add(
        store,
        clock,
        *({"command": "true" if n % 2 else "false", "max_retries": 0} for n in range(20)),
    )
    started = time.monotonic()
    run_all(worker)
    elapsed = time.monotonic() - started
    assert elapsed < 25, f"20 jobs took {elapsed:.1f}s with a hanging endpoint"
    assert App(store=store).jobs.counts() == {
        "pending": 0, "processing": 0, "completed": 10, "failed": 0, "dead": 10,
    }  # fmt: skip
    endpoint.wait_for(1)  # notifications were being sent, and hung
    endpoint.release.set()
    assert worker.notifier.close(DEADLINE) == 0
    # Once the endpoint answers, every job's notification gets through (a try that timed out
    # while it hung was received too, so some may have arrived twice).
    events = {(b["job"]["id"], b["event"]) for b in endpoint.bodies()}
    assert events == {(job.id, f"job.{job.state}") for job in store.list_jobs(None, 100)}


def test_a_full_queue_drops_a_notification_instead_of_waiting(store):
    store.insert_jobs([Job(f"j{n}", "true", state="dead") for n in range(3)])
    gate = threading.Event()
    logged: list[str] = []

    def stuck(url: str, body: bytes, timeout: float) -> int:
        gate.wait(DEADLINE)
        return 200

    notifier = Notifier(
        App(store=store).jobs,
        lambda: settings(notify_url="http://h/"),
        logged.append,
        senders=1,
        capacity=1,
        post=stuck,
    )
    started = time.monotonic()
    for n in range(3):
        notifier.job_finished(f"j{n}", "job.dead")
    assert time.monotonic() - started < 2
    wait_for(lambda: any("dropped" in line for line in logged), DEADLINE, "a dropped notification")
    assert notifier.close(0.05) >= 1  # still stuck: reported, not waited for
    gate.set()
    assert notifier.close(DEADLINE) == 0


# -- config keys -------------------------------------------------------------------------------


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


def test_notify_keys_default_to_off_and_dead(cli):
    assert CONFIG_DEFAULTS["notify_url"] == "" and CONFIG_DEFAULTS["notify_on"] == "dead"
    values = cli.json("config", "list")
    assert (values["notify_url"], values["notify_on"]) == ("", "dead")
    assert cli.ok("config", "get", "notify_url") == "\n"
    assert cli.ok("config", "get", "notifyOn") == "dead\n"
    assert "notify_url" in cli.ok("config", "list")


def test_notify_keys_set_get_unset(cli):
    url = "https://hooks.example.com/queue?key=abc"
    assert cli.ok("config", "set", "notify-url", url) == f"notify_url = {url}\n"
    assert cli.json("config", "get", "notify_url") == {"notify_url": url}
    assert cli.ok("config", "set", "notifyOn", "ALL") == "notify_on = all\n"
    assert cli.store.get_config() == {"notify_url": url, "notify_on": "all"}
    assert cli.json("config", "list")["notify_on"] == "all"
    cli.ok("config", "unset", "notify_url")
    cli.ok("config", "unset", "notify_on")
    assert cli.store.get_config() == {}
    cli.ok("config", "set", "notify_url", "http://127.0.0.1:8080/x")
    assert cli.ok("config", "set", "notify_url", "") == "notify_url = \n"  # empty: off again
    assert cli.json("config", "get", "notify_url") == {"notify_url": ""}


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("notify_url", "ftp://host/x", "an http:// or https:// URL, or empty"),
        ("notify_url", "http://", "an http:// or https:// URL"),
        ("notify_url", "hooks.example.com", "an http:// or https:// URL"),
        ("notify_url", "http://h/a b", "an http:// or https:// URL"),
        ("notify_url", "http://h:99999/", "an http:// or https:// URL"),
        ("notify_url", "http://h/" + "x" * 2100, "an http:// or https:// URL"),
        ("notify_on", "never", "notify_on must be one of: dead, all, got 'never'"),
        ("notify_on", "", "one of: dead, all"),
    ],
)
def test_bad_notify_values_are_exit_2_naming_the_rule(cli, key, value, words):
    cli.ok("config", "set", "notify_on", "all")
    err = cli.fails(2, "config", "set", key, value)
    assert words in err and err.startswith(f"Error: {key} must be")


def test_a_bad_value_written_by_hand_reads_as_the_default(cli):
    cli.store.set_config("notify_url", "file:///etc/passwd")
    cli.store.set_config("notify_on", 5)
    values = cli.json("config", "list")
    assert (values["notify_url"], values["notify_on"]) == ("", "dead")


# -- real worker processes ---------------------------------------------------------------------


def test_a_burst_worker_process_sends_its_last_notification_before_it_exits(tmp_path, endpoint):
    with QueueEnv(tmp_path) as q:
        q.config(poll_interval=0.1, notify_url=endpoint.url)
        q.cli("enqueue", "--id", "last", "--max-retries", "0", "exit 4")
        assert q.start_workers("--burst").wait(60) == 0
        [body] = endpoint.bodies()  # already there: the worker waited for it before exiting
        assert (body["event"], body["job"]["id"], body["job"]["exit_code"]) == (
            "job.dead",
            "last",
            4,
        )
        shown = json.loads(q.cli("show", "last", "--json").stdout)
        assert body["job"] == shown
