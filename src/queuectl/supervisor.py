"""`worker start`: run N worker processes, forward stop signals to them, or detach."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .errors import QueuectlError
from .settings import home_dir
from .store.base import Store
from .text import describe_exit

# How long a detaching start waits for its workers' reports; they come within a second or
# two, so only a worker stuck on a locked store comes near it.
START_CHECK_SECONDS = 30.0
STARTED_FD_ENV = "QUEUECTL_STARTED_FD"
CHILD_POLL_SECONDS = 0.2


def _child_env(url: str) -> dict[str, str]:
    # The URL travels in the environment, not argv, so `ps` never shows a password.
    env = dict(os.environ, QUEUECTL_DB=url, PYTHONUNBUFFERED="1")
    env.pop(STARTED_FD_ENV, None)  # given only where a report pipe is really passed on
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def _spawn(
    url: str, index: int, burst: bool, report: int | None, queues: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "queuectl.worker_process", "--index", str(index)]
    if burst:
        cmd.append("--burst")
    if queues:
        cmd += ["--queue", ",".join(queues)]
    # Each worker gets its own session: a terminal's Ctrl+C reaches only the supervisor,
    # which forwards it once, so one Ctrl+C is never seen twice.
    env = _child_env(url)
    if report is not None:
        env[STARTED_FD_ENV] = str(report)
    return subprocess.Popen(
        cmd,
        env=env,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        pass_fds=() if report is None else (report,),
    )


def run(url: str, count: int, burst: bool, queues: Sequence[str] = ()) -> int:
    """Start `count` workers (serving those queues; every queue if none) and wait for all
    of them. 0 after a graceful stop or a burst."""
    report = report_fd()
    children = [_spawn(url, n, burst, report, queues) for n in range(1, count + 1)]
    if report is not None:
        os.close(report)  # only the workers hold it now: its end of file means all reported

    def forward(signum: int, _frame: Any) -> None:
        """Pass a stop signal on to every worker still running."""
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    def hang_up(_signum: int, frame: Any) -> None:
        """SIGHUP (the terminal closed) is a stop request like SIGTERM."""
        forward(signal.SIGTERM, frame)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, hang_up)
    try:
        codes = _wait_all(url, children)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 1 if any(codes) else 0


def _wait_all(url: str, children: list[subprocess.Popen[bytes]]) -> list[int]:
    """Wait for every worker. One that dies (e.g. SIGKILL) has its job released and its
    orphaned command killed at once, not at another worker's next heartbeat."""
    from .store import open_store

    codes: dict[int, int] = {}
    store: Store | None = None
    exits = _exit_fds(children)
    try:
        while len(codes) < len(children):
            for n, child in enumerate(children, start=1):
                if n in codes or child.poll() is None:
                    continue
                codes[n] = child.returncode
                if child.returncode != 0:
                    how = describe_exit(child.returncode).replace(
                        "exit status", "exited with status"
                    )
                    sys.stderr.write(f"Error: worker {n} (pid {child.pid}) {how}\n")
                    store = store or open_store(url)
                    _reap_now(store)
            if len(codes) < len(children):
                running = [fd for n, fd in enumerate(exits, start=1) if n not in codes]
                _sleep_until_exit(running, CHILD_POLL_SECONDS)
    finally:
        if store is not None:
            store.close()
        for fd in exits:
            os.close(fd)
    return [codes[n] for n in sorted(codes)]


def _exit_fds(children: list[subprocess.Popen[bytes]]) -> list[int]:
    """A descriptor per child that becomes readable when it exits (Linux pidfds), so the
    supervisor sees a burst end at once rather than at its next poll; [] where the system
    has none (then it polls)."""
    fds: list[int] = []
    try:
        for child in children:
            fds.append(os.pidfd_open(child.pid))
    except (AttributeError, OSError):
        for fd in fds:
            os.close(fd)
        return []
    return fds


def _sleep_until_exit(fds: list[int], timeout: float) -> None:
    """Sleep up to `timeout` seconds, or until one of those children exits."""
    if fds:
        select.select(fds, [], [], timeout)
    else:
        time.sleep(timeout)


def _reap_now(store: Store) -> None:
    from .app import App

    try:
        workers = App(store=store).workers
        for job_id in workers.reap(workers.settings()):
            sys.stderr.write(f"job {job_id} released from the dead worker\n")
    except QueuectlError:
        pass  # the store is failing too; the other workers' reapers will release the job


def detach(url: str, count: int, burst: bool, queues: Sequence[str] = ()) -> None:
    """Start the workers in the background, logging to $QUEUECTL_HOME/logs/, and return once
    each has registered (or failed to). Raises with the workers' own reason when any failed."""
    logs = home_dir() / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    os.chmod(logs, 0o700)
    log_path = logs / f"workers-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    cmd = [sys.executable, "-m", "queuectl", "worker", "start", "--count", str(count)]
    if burst:
        cmd.append("--burst")
    if queues:
        cmd += ["--queue", ",".join(queues)]
    # Each worker reports on this pipe (named in its environment) once it has registered or
    # failed to: its workers are known by what they say, never guessed from the store, where
    # another worker that started (or stopped) a moment ago looks just the same.
    report_r, report_w = os.pipe()
    proc = subprocess.Popen(
        cmd,
        env={**_child_env(url), STARTED_FD_ENV: str(report_w)},
        stdin=subprocess.DEVNULL,
        stdout=fd,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        pass_fds=(report_w,),
    )
    os.close(fd)
    os.close(report_w)
    try:
        started, failed = _read_reports(report_r, count)
    finally:
        os.close(report_r)
    if not started:
        reason = "; ".join(failed) or _last_error(log_path, proc) or "no worker registered"
        raise QueuectlError(f"no worker started: {reason} (log: {log_path})")
    print(
        f"Started {len(started)} of {count} worker(s) in the background (supervisor pid {proc.pid})"
    )
    for worker_id in started:
        print(f"  {worker_id}")
    print(f"Logs: {log_path}")
    print("Stop them with: queuectl worker stop")
    if len(started) < count:
        reason = "; ".join(failed) or f"no report within {START_CHECK_SECONDS:g}s"
        raise QueuectlError(f"{count - len(started)} worker(s) did not start: {reason}")


def _read_reports(report_r: int, count: int) -> tuple[list[str], list[str]]:
    """Worker ids that registered and reasons of those that failed, read until every worker
    has reported, every writer has exited, or START_CHECK_SECONDS have passed."""
    started: list[str] = []
    failed: list[str] = []
    buffer = b""
    deadline = time.monotonic() + START_CHECK_SECONDS
    while len(started) + len(failed) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([report_r], [], [], remaining)[0]:
            break
        chunk = os.read(report_r, 65536)
        if not chunk:
            break  # every worker (and the supervisor) has exited or reported
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            kind, _, text = line.decode("utf-8", "replace").partition(" ")
            (started if kind == "started" else failed).append(text)
    return started, failed


def _last_error(log_path: Path, proc: subprocess.Popen[bytes]) -> str | None:
    """The last `Error:` line the supervisor logged, once it has exited (it failed before
    any worker could report)."""
    try:
        proc.wait(timeout=CHILD_POLL_SECONDS * 10)
        lines = log_path.read_text(errors="replace").splitlines()
    except (subprocess.TimeoutExpired, OSError):
        return None
    errors = [line.removeprefix("Error: ") for line in lines if line.startswith("Error: ")]
    return errors[-1] if errors else None


class StartReport:
    """How a worker process tells a detaching `worker start` that it registered or failed:
    one line on the pipe named by $QUEUECTL_STARTED_FD. Does nothing when that is unset."""

    def __init__(self) -> None:
        # Taken out of the environment at once, so the jobs a worker runs never see it.
        value = os.environ.pop(STARTED_FD_ENV, "")
        self.fd = int(value) if value.isdigit() else None

    def started(self, worker_id: str) -> None:
        """Report a registered worker and let go of the pipe."""
        self._send(f"started {worker_id}")

    def failed(self, reason: str) -> None:
        """Report why this worker could not start and let go of the pipe."""
        self._send(f"failed {' '.join(reason.split())}")

    def _send(self, line: str) -> None:
        if self.fd is None:
            return
        try:
            os.write(self.fd, line.encode("utf-8", "replace") + b"\n")
            os.close(self.fd)
        except OSError:
            pass  # nobody is listening any more (the detaching command gave up)
        self.fd = None


def report_fd() -> int | None:
    """The start-report pipe this supervisor was given, if any and still open."""
    value = os.environ.get(STARTED_FD_ENV, "")
    if not value.isdigit():
        return None
    try:
        os.fstat(int(value))
    except OSError:
        return None
    return int(value)
