"""`worker start`: run N worker processes, forward stop signals to them, or detach."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .errors import QueuectlError
from .settings import home_dir
from .store.base import Store
from .text import describe_exit

START_CHECK_SECONDS = 10.0
CHILD_POLL_SECONDS = 0.2


def _child_env(url: str) -> dict[str, str]:
    # The URL travels in the environment, not argv, so `ps` never shows a password.
    env = dict(os.environ, QUEUECTL_DB=url, PYTHONUNBUFFERED="1")
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


def _spawn(url: str, index: int, burst: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "queuectl.worker_process", "--index", str(index)]
    if burst:
        cmd.append("--burst")
    # Each worker gets its own session: a terminal's Ctrl+C reaches only the supervisor,
    # which forwards it once, so one Ctrl+C is never seen twice.
    return subprocess.Popen(
        cmd, env=_child_env(url), stdin=subprocess.DEVNULL, start_new_session=True
    )


def run(url: str, count: int, burst: bool) -> int:
    """Start `count` workers and wait for all of them. 0 after a graceful stop or a burst."""
    children = [_spawn(url, n, burst) for n in range(1, count + 1)]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    # SIGHUP (the terminal closed) is a stop request like SIGTERM.
    def hang_up(_signum: int, frame: Any) -> None:
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
            time.sleep(CHILD_POLL_SECONDS)
    finally:
        if store is not None:
            store.close()
    return [codes[n] for n in sorted(codes)]


def _reap_now(store: Store) -> None:
    from .app import App

    try:
        workers = App(store=store).workers
        for job_id in workers.reap(workers.settings()):
            sys.stderr.write(f"job {job_id} released from the dead worker\n")
    except QueuectlError:
        pass  # the store is failing too; the other workers' reapers will release the job


def detach(url: str, count: int, burst: bool) -> None:
    """Start the workers in the background, logging to $QUEUECTL_HOME/logs/, and return once
    they have registered."""
    from .localproc import hostname
    from .store import open_store

    logs = home_dir() / "logs"
    logs.mkdir(mode=0o700, exist_ok=True)
    os.chmod(logs, 0o700)
    log_path = logs / f"workers-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    cmd = [sys.executable, "-m", "queuectl", "worker", "start", "--count", str(count)]
    if burst:
        cmd.append("--burst")
    started = time.time()
    proc = subprocess.Popen(
        cmd,
        env=_child_env(url),
        stdin=subprocess.DEVNULL,
        stdout=fd,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    os.close(fd)
    store = open_store(url)
    host, ids = hostname(), []
    deadline = time.monotonic() + START_CHECK_SECONDS
    while time.monotonic() < deadline:
        ids = [
            w.id
            for w in store.list_workers()
            if w.host == host
            and w.started_at >= started - 1
            and _parent_of(w.pid) in (proc.pid, None)
        ]
        if len(ids) >= count or proc.poll() is not None:
            break
        time.sleep(0.1)
    if not ids:
        raise QueuectlError(f"no worker registered within {START_CHECK_SECONDS:g}s; see {log_path}")
    print(f"Started {len(ids)} of {count} worker(s) in the background (supervisor pid {proc.pid})")
    for worker_id in ids:
        print(f"  {worker_id}")
    print(f"Logs: {log_path}")
    print("Stop them with: queuectl worker stop")


def _parent_of(pid: int) -> int | None:
    """The parent pid of a local process, from /proc (None where /proc is not there)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            # The command name may hold spaces or parentheses: fields follow the last ')'.
            return int(handle.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None
