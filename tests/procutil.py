"""Helpers for tests that run real queuectl processes on a private store: a SQLite file, or a
fresh MongoDB database (the wire lane's, or a real server's) given by its URL.

Every process a test starts (supervisors, worker processes, the commands they run and those
commands' children) inherits the private QUEUECTL_HOME, so `QueueEnv.kill_all()` can find
and kill every one of them by that marker in /proc/<pid>/environ, whatever session it moved to.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

QUEUECTL = [sys.executable, "-m", "queuectl"]
CLI_TIMEOUT = 30.0
# Runs a command as if on another machine: in a pid namespace of its own, where our pids
# mean nothing (and its machine key differs from ours).
UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc")


def namespaces_work() -> str:
    """Why a pid namespace cannot be made here, or "" when it can."""
    if os.geteuid() != 0:
        return "a pid namespace of its own needs root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    done = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=10)
    return "" if done.returncode == 0 else f"unshare failed: {done.stderr.decode().strip()}"


def wait_for(condition: Callable[[], T], timeout: float, message: str, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy (returned) or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


def _proc_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def pids_with_env(entry: str) -> list[int]:
    """Live (non-zombie) processes whose initial environment holds `entry` ("KEY=value")."""
    wanted = entry.encode()
    found = []
    for pid in _proc_pids():
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:  # gone, or not ours
            continue
        if wanted in environ:
            found.append(pid)
    return found


def children(pid: int) -> list[int]:
    """Direct children of `pid`, read from /proc/<child>/stat."""
    found = []
    for child in _proc_pids():
        try:
            with open(f"/proc/{child}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid and fields[0] != b"Z":
            found.append(child)
    return found


def job_processes(job_id: str) -> list[int]:
    """Live processes of a job's command (they inherit QUEUECTL_JOB_ID from the worker)."""
    return pids_with_env(f"QUEUECTL_JOB_ID={job_id}")


def unique(prefix: str) -> str:
    """A job id no other test (or leftover process) shares."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def has_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == str(path):
                return True
        except OSError:
            continue
    return False


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send a signal, ignoring a process that is already gone."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class Supervisor:
    """A running `queuectl worker start` with its output going to a log file."""

    def __init__(self, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.proc = proc
        self.log = log

    @property
    def pid(self) -> int:
        """The supervisor's pid (also its process group: it runs in its own session)."""
        return self.proc.pid

    def output(self) -> str:
        """Everything it (and its workers) logged so far."""
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        """Its exit status; fails the test if it has not exited within `timeout`."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"worker supervisor {self.pid} still running after {timeout:g}s; "
                f"its log:\n{self.output()[-3000:]}"
            ) from None

    def workers(self) -> list[int]:
        """Pids of its live worker processes."""
        return children(self.pid)


class QueueEnv:
    """A private QUEUECTL_HOME and store (a SQLite file unless `url` names a MongoDB
    database), the CLI on it, and cleanup of every process."""

    def __init__(self, root: Path, url: str | None = None) -> None:
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.db = self.home / "queue.db"
        self.url = url or str(self.db)
        self.is_mongo = self.url.startswith("mongodb")
        self._mongo: Any = None
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("QUEUECTL_DB", "MONGODB_URI", "QUEUECTL_DEBUG")
        }
        self.env.update(QUEUECTL_HOME=str(self.home), NO_COLOR="1", PYTHONUNBUFFERED="1")
        self.supervisors: list[Supervisor] = []
        self._logs = 0
        self._conn: sqlite3.Connection | None = None

    def __enter__(self) -> "QueueEnv":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.kill_all()

    # -- the CLI --------------------------------------------------------------------------
    def cli(
        self,
        *args: str,
        check: bool = True,
        timeout: float = CLI_TIMEOUT,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `queuectl --db <store> ARGS`; with `check`, fail unless it exits 0."""
        done = subprocess.run(
            [*QUEUECTL, "--db", self.url, *args],
            cwd=self.home,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"queuectl {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def config(self, **values: Any) -> None:
        """`config set` each key, all in one process: a process that used a MongoDB client
        spends about half a second exiting (pymongo joins its monitor threads)."""
        runs = [
            ["--db", self.url, "config", "set", key, str(value)] for key, value in values.items()
        ]
        script = (
            f"import sys; from queuectl.cli import main; sys.exit(max(main(a) for a in {runs!r}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"config set {values} failed:\n{done.stdout}{done.stderr}"

    def enqueue(self, specs: Iterable[dict[str, Any]], name: str = "jobs.jsonl") -> Path:
        """Write the specs to a JSON lines file and `enqueue --file` it."""
        path = self.home / name
        path.write_text("".join(json.dumps(spec) + "\n" for spec in specs))
        self.cli("enqueue", "--file", str(path), "--quiet")
        return path

    def start_workers(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        url: str | None = None,
        prefix: tuple[str, ...] = (),
    ) -> Supervisor:
        """Start `queuectl worker start ARGS` in its own session, logging to a file. `url`
        reaches the store another way (through a fault proxy); `prefix` runs the command
        under another one (e.g. `unshare` for a pid namespace of its own)."""
        self._logs += 1
        log = self.home / f"supervisor-{self._logs}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [*prefix, *QUEUECTL, "--db", url or self.url, "worker", "start", *args],
                cwd=self.home,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        supervisor = Supervisor(proc, log)
        self.supervisors.append(supervisor)
        return supervisor

    def worker_pids(self) -> list[int]:
        """Pids of the live workers `worker list --json` shows."""
        listed = json.loads(self.cli("worker", "list", "--json").stdout)
        return [w["pid"] for w in listed]

    # -- reading the store ----------------------------------------------------------------
    def mongo(self) -> Any:
        """The MongoDB database itself (pymongo), for reading behind the CLI's back."""
        assert self.is_mongo, "this environment's store is SQLite"
        if self._mongo is None:
            from pymongo import MongoClient

            self._mongo = MongoClient(self.url, serverSelectionTimeoutMS=10000)
        return self._mongo.get_default_database()

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query on the store file (autocommit: no lingering snapshot)."""
        assert not self.is_mongo, "sql() reads a SQLite store"
        if self._conn is None:
            self._conn = sqlite3.connect(self.db, timeout=10, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
        return [dict(row) for row in self._conn.execute(query, params).fetchall()]

    def job(self, job_id: str) -> dict[str, Any]:
        """One job's row (a MongoDB document with its `_id` as `id`)."""
        if self.is_mongo:
            found = self.mongo().jobs.find_one({"_id": job_id})
            rows = [_with_id(found)] if found else []
        else:
            rows = self.sql("SELECT * FROM jobs WHERE id = ?", (job_id,))
        assert rows, f"job {job_id} is not in the store"
        return rows[0]

    def jobs(self) -> list[dict[str, Any]]:
        """Every job's row."""
        if self.is_mongo:
            return [_with_id(doc) for doc in self.mongo().jobs.find()]
        return self.sql("SELECT * FROM jobs")

    def workers(self) -> list[dict[str, Any]]:
        """Every worker's row."""
        if self.is_mongo:
            return [_with_id(doc) for doc in self.mongo().workers.find()]
        return self.sql("SELECT * FROM workers")

    def counts(self) -> dict[str, int]:
        """Jobs per state (states with none are absent)."""
        if self.is_mongo:
            rows = self.mongo().jobs.aggregate([{"$group": {"_id": "$state", "n": {"$sum": 1}}}])
            return {r["_id"]: r["n"] for r in rows}
        rows = self.sql("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    # -- cleanup --------------------------------------------------------------------------
    def stray_pids(self) -> list[int]:
        """Every live process started under this home (workers, commands, their children)."""
        return pids_with_env(f"QUEUECTL_HOME={self.home}")

    def kill_all(self) -> None:
        """Kill every process this environment started, wherever it moved, and reap them."""
        for supervisor in self.supervisors:
            if supervisor.proc.poll() is None:
                try:
                    os.killpg(supervisor.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for _ in range(5):  # a process may fork while we kill; a few rounds catch it
            strays = self.stray_pids()
            if not strays:
                break
            for pid in strays:
                kill_quietly(pid)
            time.sleep(0.05)
        for supervisor in self.supervisors:
            try:
                supervisor.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None


def _with_id(doc: dict[str, Any]) -> dict[str, Any]:
    """A MongoDB document as the SQLite row of the same record: `_id` renamed `id`."""
    row = dict(doc)
    row["id"] = row.pop("_id")
    return row
