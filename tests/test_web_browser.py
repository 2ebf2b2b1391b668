"""`queuectl web` in a real browser: Debian's chromium, headless, driven by Selenium through
Debian's chromedriver (nothing is downloaded). The server is a real `queuectl web` process on
a free loopback port; jobs come from the real CLI and real workers. Each page is saved as a
screenshot under tests/artifacts/ for review.

Skipped, with the reason, where the browser or Selenium is not installed (`.ci/run` installs
chromium and chromium-driver when it runs as root on Debian).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from procutil import QueueEnv, wait_for

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TOKEN = "s3cret-token-for-tests-0123456789"
EVIL = """<script>window.__xss=1</script>"><img src=x onerror="window.__xss=2">"""


def _missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"no {path}: apt-get install chromium chromium-driver (package {package})"
    for module in ("selenium", "uvicorn", "starlette"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed: pip install -e '.[test]'"
    return None


MISSING = _missing()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"browser tests: {MISSING}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module, with a fresh profile."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="queuectl-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1280,1000",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Site:
    """A running `queuectl web` on a private store, and that store's CLI."""

    env: QueueEnv
    url: str
    proc: subprocess.Popen[str]


def start_site(env: QueueEnv, *args: str) -> Site:
    from test_web_cli import start_web

    proc, url = start_web(env, *args)
    return Site(env, url.rstrip("/"), proc)


def stop_site(site: Site) -> None:
    if site.proc.poll() is None:
        os.killpg(site.proc.pid, signal.SIGINT)
        try:
            site.proc.wait(15)
        except subprocess.TimeoutExpired:
            site.proc.kill()
            site.proc.wait(5)


@pytest.fixture
def site(tmp_path) -> Iterator[Site]:
    with QueueEnv(tmp_path) as env:
        env.config(poll_interval=0.2)
        running = start_site(env)
        try:
            yield running
        finally:
            stop_site(running)


def shot(driver: Any, name: str) -> None:
    """Save what the browser shows as tests/artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def text_of(driver: Any, selector: str) -> str:
    """The text of the first element matching a CSS selector ('' when there is none).
    Read by script in one step: the live part may be replaced between two driver calls."""
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        selector,
    )
    return found if isinstance(found, str) else ""


def mark_page(driver: Any) -> None:
    """A value that lives only as long as this page: a reload would lose it."""
    driver.execute_script("window.__samePage = 'yes';")


def same_page(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__samePage === 'yes';"))


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def run_burst(env: QueueEnv, count: int = 2) -> None:
    """Workers that run every ready job, then exit."""
    supervisor = env.start_workers("--burst", "--count", str(count))
    assert supervisor.wait(120) == 0, supervisor.output()


# -- the pages ------------------------------------------------------------------------------
def seed_history(db: Path, minutes: int = 60) -> None:
    """Jobs that finished over the last hour, a few more each minute, some dead: the
    chart's past, which the server reads when it first draws it."""
    from queuectl.models import Job
    from queuectl.store.sqlite import SqliteStore

    now = time.time()
    jobs = []
    for minute in range(minutes):
        for n in range(3 + (minute * 7) % 11):
            when = now - (minutes - minute) * 60 + n * 3
            dead = (minute + n) % 17 == 0
            jobs.append(
                Job(
                    id=f"hist-{minute:02d}-{n:02d}",
                    command=f"./report.sh --part {n}",
                    state="dead" if dead else "completed",
                    attempts=4 if dead else 1,
                    exit_code=1 if dead else 0,
                    last_error="exit status 1" if dead else None,
                    run_at=when - 1,
                    created_at=when - 1,
                    updated_at=when,
                    started_at=when - 0.8,
                    finished_at=when,
                    duration=0.8,
                    seq=time.time_ns() + len(jobs),
                )
            )
    store = SqliteStore(str(db))
    store.insert_jobs(jobs)
    store.close()


def test_overview_loads_with_counts_chart_and_workers(browser, site):
    env = site.env
    seed_history(env.db)
    env.enqueue(
        [{"command": f"echo job {n}"} for n in range(24)]
        + [{"command": "echo failing >&2; exit 3", "max_retries": 0} for _ in range(3)]
    )
    run_burst(env)
    env.enqueue([{"id": f"slow-{n}", "command": "sleep 60"} for n in range(2)], "slow.jsonl")
    env.enqueue(
        [{"command": "./send-digest.sh", "delay": 3600, "queue": "emails"} for _ in range(4)],
        "later.jsonl",
    )
    env.start_workers("--count", "2")  # stay up: the page shows them busy
    wait_for(lambda: env.counts().get("processing") == 2, 60, "both slow jobs to be running")
    browser.get(site.url + "/")
    counts = env.counts()
    for state in ("pending", "processing", "completed", "failed", "dead"):
        wait_for(
            lambda state=state: (
                text_of(browser, f'[data-count="{state}"]') == str(counts.get(state, 0))
            ),
            10,
            f"the {state} count to read {counts.get(state, 0)}",
        )
    wait_for(lambda: text_of(browser, '[data-count="workers"]') == "2", 10, "2 active workers")
    assert browser.title == "Overview · queuectl"
    bars = browser.find_elements("css selector", "svg.chart rect.completed")
    assert bars, "the chart shows no completed jobs"
    assert browser.find_elements("css selector", "svg.chart rect.dead")
    assert "slow-" in text_of(browser, "table.workers")
    pending_emails = '[data-queue="emails"] [data-queue-count="pending"]'
    wait_for(lambda: text_of(browser, pending_emails) == "4", 10, "4 pending emails")
    wait_for(lambda: "live ·" in text_of(browser, "#live-status"), 10, "a live refresh")
    shot(browser, "overview")
    browser.get(site.url + "/workers")
    assert len(browser.find_elements("css selector", "table.workers tbody tr")) == 2
    shot(browser, "workers")
    browser.get(site.url + "/jobs")
    shot(browser, "jobs")
    env.cli("schedule", "add", "nightly-report", "--cron", "30 2 * * *", "./report.sh --all")
    env.cli("schedule", "add", "hourly-sync", "--cron", "@hourly", "--tz", "Europe/Paris", "sync")
    browser.get(site.url + "/schedules")
    wait_for(lambda: text_of(browser, '[data-schedule="hourly-sync"]'), 10, "the schedules")
    shot(browser, "schedules")
    assert console_errors(browser) == []


def test_a_job_enqueued_from_the_cli_shows_without_reload(browser, site):
    browser.get(site.url + "/jobs")
    wait_for(lambda: "No jobs yet." in text_of(browser, "#live"), 10, "the empty jobs page")
    mark_page(browser)
    site.env.cli("enqueue", "--id", "fresh-from-cli", "echo hello from the CLI")
    enqueued = time.monotonic()
    wait_for(
        lambda: text_of(browser, '[data-job="fresh-from-cli"]'),
        10,
        "the new job on the open page",
        interval=0.05,
    )
    elapsed = time.monotonic() - enqueued
    assert same_page(browser), "the page was reloaded"
    # The page refreshes every second; ~2 s is the promise, with room for a loaded machine.
    assert elapsed < 3.5, f"the job showed after {elapsed:.2f} s"
    assert "echo hello from the CLI" in text_of(browser, '[data-job="fresh-from-cli"]')
    browser.get(site.url + "/")
    wait_for(lambda: text_of(browser, '[data-count="pending"]') == "1", 10, "pending = 1")


def test_the_dlq_retry_button_moves_a_dead_job_back_to_pending(browser, site):
    from selenium.common.exceptions import StaleElementReferenceException

    env = site.env
    env.cli("enqueue", "--id", "doomed", "--max-retries", "0", "echo no >&2; exit 4")
    env.cli("enqueue", "--id", "also-dead", "--max-retries", "0", "exit 5")
    run_burst(env)
    assert env.job("doomed")["state"] == "dead"
    browser.get(site.url + "/dlq")
    wait_for(lambda: text_of(browser, '[data-job="doomed"]'), 10, "the dead job in the DLQ")
    shot(browser, "dlq")

    def click_retry() -> bool:
        try:
            browser.find_element("css selector", '[data-job="doomed"] button.retry').click()
            return True
        except StaleElementReferenceException:  # the live part was just replaced
            return False

    wait_for(click_retry, 10, "a click on the retry button")
    wait_for(lambda: env.job("doomed")["state"] == "pending", 10, "the job back in pending")
    assert env.job("doomed")["attempts"] == 0
    assert env.job("also-dead")["state"] == "dead"
    wait_for(
        lambda: browser.current_url.endswith("/dlq") and text_of(browser, '[data-job="also-dead"]'),
        10,
        "the DLQ page again",
    )
    assert text_of(browser, '[data-job="doomed"]') == ""


def click(browser: Any, selector: str) -> Callable[[], bool]:
    """A condition for wait_for: a click on the element, retried while the live part is
    being replaced under it."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    def attempt() -> bool:
        try:
            browser.find_element("css selector", selector).click()
            return True
        except (StaleElementReferenceException, NoSuchElementException):
            return False

    return attempt


def accept_confirm(browser: Any) -> str:
    """Say yes to the page's confirm() question; its text."""
    from selenium.common.exceptions import NoAlertPresentException

    def answered() -> str | None:
        try:
            alert = browser.switch_to.alert
        except NoAlertPresentException:
            return None
        text = str(alert.text)
        alert.accept()
        return text

    return wait_for(answered, 10, "the confirm question")


def test_the_cancel_buttons_cancel_a_waiting_and_a_running_job(browser, site):
    env = site.env
    env.cli("enqueue", "--id", "done", "true")
    run_burst(env, 1)  # (a burst waits for delayed jobs too: this one comes after)
    env.cli("enqueue", "--id", "later", "--delay", "3600", "echo later")
    browser.get(site.url + "/jobs?state=pending")
    wait_for(lambda: text_of(browser, '[data-job="later"]'), 10, "the waiting job listed")
    shot(browser, "jobs-cancel")
    wait_for(click(browser, '[data-job="later"] button.cancel'), 10, "a click on cancel")
    assert "goes to the DLQ" in accept_confirm(browser)
    wait_for(lambda: env.job("later")["state"] == "dead", 10, "the job canceled")
    assert env.job("later")["last_error"] == "canceled"
    wait_for(lambda: browser.current_url.endswith("/jobs?state=pending"), 10, "the same list")
    browser.get(site.url + "/jobs")
    wait_for(lambda: text_of(browser, '[data-job="done"]'), 10, "the completed job listed")
    assert browser.find_elements("css selector", '[data-job="done"] button.cancel') == []

    env.cli("enqueue", "--id", "long", "sleep 60")
    env.start_workers("--count", "1")
    wait_for(lambda: env.job("long")["state"] == "processing", 30, "the long job running")
    browser.get(site.url + "/jobs/long")
    wait_for(lambda: text_of(browser, ".summary .state") == "processing", 10, "processing")
    wait_for(click(browser, "button.cancel"), 10, "a click on cancel")
    assert "Its command is killed" in accept_confirm(browser)
    # Dead within 20 s of a `sleep 60`: its command was killed, not waited for.
    wait_for(lambda: text_of(browser, ".summary .state") == "dead", 20, "the job dead")
    assert env.job("long")["last_error"] == "canceled while running"
    assert "canceled while running" in text_of(browser, "#live")


def test_the_dlq_page_cancels_a_job_waiting_for_its_retry(browser, site):
    from queuectl.models import Job
    from queuectl.store.sqlite import SqliteStore

    env = site.env
    now = time.time()
    store = SqliteStore(str(env.db))
    failed = Job(
        id="flaky",
        command="exit 1",
        state="failed",
        attempts=1,
        exit_code=1,
        last_error="exit status 1",
        run_at=now + 3600,  # its retry is an hour away
        created_at=now - 5,
        updated_at=now,
        finished_at=now,
        seq=time.time_ns(),
    )
    store.insert_jobs([failed])
    store.close()
    browser.get(site.url + "/dlq")
    wait_for(lambda: text_of(browser, '.retrying [data-job="flaky"]'), 10, "the failing job")
    assert "The DLQ is empty." in text_of(browser, "#live")
    mark_page(browser)
    wait_for(click(browser, '.retrying [data-job="flaky"] button.cancel'), 10, "cancel")
    accept_confirm(browser)
    wait_for(lambda: env.job("flaky")["state"] == "dead", 10, "the job in the DLQ")
    assert env.job("flaky")["last_error"] == "canceled"
    wait_for(lambda: text_of(browser, '[data-job="flaky"] button.retry'), 10, "its retry button")
    assert text_of(browser, ".retrying") == ""
    shot(browser, "dlq-after-cancel")


def test_the_dlq_purge_button_deletes_every_dead_job(browser, site):
    env = site.env
    env.cli("enqueue", "--id", "bad-1", "--max-retries", "0", "exit 1")
    env.cli("enqueue", "--id", "bad-2", "--max-retries", "0", "exit 2")
    env.cli("enqueue", "--id", "fine", "true")
    run_burst(env)
    browser.get(site.url + "/dlq")
    wait_for(lambda: text_of(browser, '[data-job="bad-2"]'), 10, "the dead jobs")
    # Asked first: saying no deletes nothing.
    wait_for(click(browser, ".purge button"), 10, "a click on purge")
    from selenium.common.exceptions import NoAlertPresentException

    def dismissed() -> bool:
        try:
            browser.switch_to.alert.dismiss()
            return True
        except NoAlertPresentException:
            return False

    wait_for(dismissed, 10, "the question, answered no")
    assert env.job("bad-1")["state"] == "dead"
    wait_for(click(browser, ".purge button"), 10, "a click on purge")
    assert "cannot be undone" in accept_confirm(browser)
    wait_for(lambda: "The DLQ is empty." in text_of(browser, "#live"), 10, "the empty DLQ")
    assert [j["id"] for j in env.jobs()] == ["fine"]


def test_the_chart_shows_jobs_as_they_finish_without_reload(browser, site):
    env = site.env
    browser.get(site.url + "/")
    wait_for(lambda: "live ·" in text_of(browser, "#live-status"), 10, "a live refresh")
    assert browser.find_elements("css selector", "svg.chart rect.completed") == []
    mark_page(browser)
    env.enqueue([{"command": "true"} for _ in range(5)])
    run_burst(env)

    def completed_bars() -> list[Any]:
        return browser.execute_script(
            "return Array.from(document.querySelectorAll('svg.chart rect.completed'))"
            ".map(r => Number(r.getAttribute('height')));"
        )

    heights = wait_for(completed_bars, 10, "a completed bar on the chart")
    assert len(heights) in (1, 2) and all(h > 0 for h in heights)  # this minute (and the last)
    assert "completed 5" in text_of(browser, ".legend")
    assert same_page(browser), "the page was reloaded"


def test_the_job_page_follows_a_running_job(browser, site):
    # Output is stored when an attempt ends (streaming while it runs is not built yet), so
    # the page shows the state change live and the output as soon as it is stored. The job
    # runs 2 s so that the page, refreshing every second, is sure to see it running.
    env = site.env
    env.cli("enqueue", "--id", "follow-me", "sh -c 'echo one; sleep 2; echo two'")
    browser.get(site.url + "/jobs/follow-me")
    wait_for(lambda: text_of(browser, ".summary .state") == "pending", 10, "the pending job")
    assert "Not run yet." in text_of(browser, "#live")
    mark_page(browser)
    supervisor = env.start_workers("--burst")
    wait_for(lambda: text_of(browser, ".summary .state") == "processing", 20, "the running state")
    assert "Running." in text_of(browser, "#live")
    shot(browser, "job-running")
    wait_for(lambda: text_of(browser, ".summary .state") == "completed", 20, "the completed state")
    wait_for(lambda: text_of(browser, "#stdout") == "one\ntwo\n", 10, "the stored output")
    assert same_page(browser), "the page was reloaded"
    assert supervisor.wait(60) == 0
    shot(browser, "job")


def test_job_text_shows_as_text_in_the_browser(browser, site):
    from queuectl.models import Job
    from queuectl.store.sqlite import SqliteStore

    now = time.time()
    store = SqliteStore(str(site.env.db))
    store.insert_jobs(
        [
            Job(
                id="evil",
                command=f"echo '{EVIL}'",
                state="dead",
                attempts=1,
                exit_code=1,
                stdout=EVIL + "\n",
                stderr=EVIL,
                last_error=EVIL,
                run_at=now,
                created_at=now,
                updated_at=now,
                finished_at=now,
                seq=time.time_ns(),
            )
        ]
    )
    store.close()
    for path in ("/jobs/evil", "/jobs?q=script", "/dlq", "/"):
        browser.get(site.url + path)
        wait_for(lambda: "live ·" in text_of(browser, "#live-status"), 10, "a live refresh")
        assert browser.execute_script("return window.__xss === undefined;"), path
        assert browser.find_elements("css selector", "main img") == [], path
        assert "<script>window.__xss=1</script>" in text_of(browser, "main"), path
        if path == "/jobs/evil":
            assert text_of(browser, "#stdout") == EVIL + "\n"
            assert text_of(browser, "#stderr") == EVIL
            assert text_of(browser, "#command") == f"echo '{EVIL}'"
            shot(browser, "job-escaped")


def test_with_a_token_the_browser_logs_in_through_the_form(browser, tmp_path):
    with QueueEnv(tmp_path) as env:
        env.cli("enqueue", "--id", "j1", "echo hi")
        site = start_site(env, "--token", TOKEN)
        try:
            browser.delete_all_cookies()
            browser.get(site.url + "/jobs?state=pending")
            assert browser.title == "Log in · queuectl"
            shot(browser, "login")
            field = browser.find_element("css selector", 'input[name="token"]')
            field.send_keys("wrong-token-0123456789")
            field.submit()
            wait_for(lambda: "That token is not right." in text_of(browser, "form"), 10, "no")
            field = browser.find_element("css selector", 'input[name="token"]')
            field.send_keys(TOKEN)
            field.submit()
            wait_for(lambda: browser.title == "Jobs · queuectl", 10, "the jobs page")
            assert browser.current_url == site.url + "/jobs?state=pending"
            wait_for(lambda: text_of(browser, '[data-job="j1"]'), 10, "the job listed")
            cookie = browser.get_cookie("queuectl_session")
            assert cookie["httpOnly"] and TOKEN not in cookie["value"]
            assert browser.execute_script("return document.cookie;") == ""
        finally:
            stop_site(site)
