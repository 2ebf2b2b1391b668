"""Webhooks after a job's final state (SPEC §7.6), sent off the worker's path.

`Notifier.job_finished` only puts the job's id on a bounded queue and returns: a few
background threads read the job (so the body is exactly what `show --json` prints) and POST
it with a 5 s timeout, 3 tries, 1 s then 2 s apart. A slow, failing or hanging endpoint
therefore never delays a job or changes its outcome; it only fills the queue, and when the
queue is full a notification is dropped and logged rather than waiting for room.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any, Callable, Sequence
from urllib.parse import urlsplit

from . import __version__
from .config import Config
from .errors import JobNotFound
from .jobs import JobManager
from .models import COMPLETED, DEAD, to_json_ready

JOB_DEAD, JOB_COMPLETED = "job.dead", "job.completed"
EVENT_OF_STATE: dict[str, str] = {DEAD.value: JOB_DEAD, COMPLETED.value: JOB_COMPLETED}
TIMEOUT = 5.0
DELAYS = (1.0, 2.0)  # between the 3 tries
SENDERS = 4  # threads: hanging endpoints block at most this many sends at a time
CAPACITY = 1000  # notifications waiting to be sent before new ones are dropped


def post_json(url: str, body: bytes, timeout: float) -> int:
    """POST a JSON body; the response status (2xx). Raises OSError (URLError, HTTPError,
    timeouts) or http.client.HTTPException for anything else. urllib is imported here, not
    at start-up: it loads OpenSSL, megabytes no worker without notifications needs."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A redirect would turn the POST into a GET without its body: a failure."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            """No request to follow the redirect with: urllib raises the 3xx as an error."""
            return None

    if urlsplit(url).scheme not in ("http", "https"):
        raise urllib.error.URLError(f"not an http(s) URL: {urlsplit(url).scheme}")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": f"queuectl/{__version__}"},
    )
    opener = urllib.request.build_opener(NoRedirect)
    with opener.open(request, timeout=timeout) as response:
        status: int = response.status
    return status


class Notifier:
    """Sends `{"event": ..., "job": ...}` to config `notify_url` for the events config
    `notify_on` selects. `config` returns the current config (a worker's refreshed copy)."""

    def __init__(
        self,
        jobs: JobManager,
        config: Callable[[], Config],
        log: Callable[[str], None],
        *,
        delays: Sequence[float] = DELAYS,
        timeout: float = TIMEOUT,
        senders: int = SENDERS,
        capacity: int = CAPACITY,
        post: Callable[[str, bytes, float], int] = post_json,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.jobs = jobs
        self.config = config
        self.log = log
        self.delays = tuple(delays)
        self.timeout = timeout
        self.post = post
        self.sleep = sleep
        self._senders = senders
        self._queue: queue.Queue[tuple[str, str, str | None]] = queue.Queue(capacity)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def job_finished(self, job_id: str, event: str | None = None) -> None:
        """Queue a notification that `job_id` reached a final state, and return at once.
        `event` is job.dead or job.completed; None means "whatever final state the job is
        in when it is read" (the reaper's path: a released job may have been retried
        rather than killed, and then nothing is sent)."""
        config = self.config()
        url = config.notify_url
        if not url or (event == JOB_COMPLETED and config.notify_on != "all"):
            return
        try:
            self._queue.put_nowait((url, job_id, event))
        except queue.Full:
            self.log(f"notification for job {job_id} dropped: {self._queue.maxsize} waiting")
            return
        self._start_sender()

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for queued notifications to be sent (a stopping
        worker's last jobs still get theirs). Returns how many were left unsent."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._queue.all_tasks_done.wait(left)
            unsent = self._queue.unfinished_tasks
        if unsent:
            self.log(f"{unsent} notification(s) not sent: the worker stopped")
        return unsent

    def _start_sender(self) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) < self._senders:
                thread = threading.Thread(target=self._send_loop, name="notify", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _send_loop(self) -> None:
        while True:
            url, job_id, event = self._queue.get()
            try:
                self._send(url, job_id, event)
            except Exception as exc:  # a sender thread must outlive any one notification
                self.log(f"notification for job {job_id} failed: {exc}")
            finally:
                self._queue.task_done()

    def _send(self, url: str, job_id: str, event: str | None) -> None:
        import http.client

        try:
            job = self.jobs.get(job_id)
        except JobNotFound:
            self.log(f"notification for job {job_id} skipped: the job is gone")
            return
        event = event or EVENT_OF_STATE.get(job.state)
        if event is None:
            return  # not final (the reaper scheduled a retry)
        body = json.dumps({"event": event, "job": to_json_ready(job)}).encode("utf-8")
        tries = len(self.delays) + 1
        for attempt in range(1, tries + 1):
            try:
                self.post(url, body, self.timeout)
                return
            # URLError, HTTPError and timeouts are OSErrors; a garbled reply is an HTTPException.
            except (OSError, ValueError, http.client.HTTPException) as exc:
                error = _describe(exc)
            if attempt < tries:
                self.sleep(self.delays[attempt - 1])
        self.log(
            f"notification {event} for job {job_id} to {url_host(url)} "
            f"failed after {tries} tries: {error}"
        )


def url_host(url: str) -> str:
    """Where a notify_url sends, as it may be logged or printed: the host only, never the
    path or query (webhook services put a token there) nor a user and password."""
    return urlsplit(url).hostname or ""


def _describe(exc: Exception) -> str:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__
