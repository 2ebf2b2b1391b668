"""The wire lane: a MongoDB wire-protocol server on loopback, so the MongoDB store runs across
real processes and real sockets instead of mongomock's one in-process client.

The server is nx-27017 (PyPI `nx-27017`, a test extra): a MongoDB wire-protocol server backed by
SQLite. It is a stand-in, not MongoDB. `WireServer` starts it on a free 127.0.0.1 port with a
private data directory (one SQLite file per logical database, so every test gets a database of
its own by naming one), waits until it answers `ping`, and stops it. `tests/conftest.py` runs
one per test session; a test that cannot start it is skipped with the reason.

What nx-27017 does not do (each seen with `python tests/wire_probe.py URL`, which prints the
same probes against any server, a real MongoDB included):

- It is a standalone server: no replica set, so no failover, no secondaries (a URL's
  `readPreference` has nothing to choose from), no majority write concern (any `w`, even `w: 2`,
  is acknowledged), and pymongo never retries a write on it (retryable writes need a replica
  set). A lost write reply is therefore always the application's problem here, which is what
  the fault tests need; on a replica set with `retryWrites=true` pymongo hides some of them.
- It accepts transactions and `replSetGetStatus` that a real standalone server refuses.
- Comparisons do not bracket by BSON type: `{f: {$gt: 0}}` also matches strings, dates and
  booleans (SQLite's order), `$lt: "z"` matches numbers, `$gte: null` matches nothing. MongoDB
  compares only values of the same type. queuectl's own documents hold numbers or null in every
  field it compares, so its queries mean the same on both.
- Missing and null fields: `{f: {$ne: null}}` matches documents that lack `f` (MongoDB
  excludes null and missing alike), `{f: {$exists: false}}` matches a null `f` (MongoDB: only
  a missing one), `{f: {$type: "null"}}` matches a missing `f`; `$type: "date"` matches
  nothing. The store says `$type: "number"` where it means "has a number": the same on both.
- Arrays: a find with `{f: v}` on an indexed field compares `v` with the whole value (an
  array holding `v` does not match; an update with that filter does look inside);
  `{f: {$eq: v}}` never looks inside an array; `{f: {$ne: v}}` matches an array holding `v`
  (and in an update misses a document without `f`). `$in: [v]` and `$nin: [v]` behave as on
  MongoDB, so the store's dependency queries use them.
- `$not` and update pipelines (`update_one(q, [{"$set": ...}])`) are not implemented; `$expr`
  treats a missing field differently.
- A `findAndModify` that fails on the server (e.g. `$inc` on a string) answers "no document"
  instead of an error.
- A write with `w: 0` still gets a reply, which desynchronises that connection (the next
  command fails with `ProtocolError`).
- `maxTimeMS` is ignored; there is no server-side operation timeout.
- Index names are not kept (`listIndexes` shows generated names) and a query may scan where
  MongoDB would use the index: timings on this lane say nothing about MongoDB's.
- ObjectId sorts before strings (MongoDB: strings before ObjectId).
- Every command on one database runs under one lock, so every single-document operation is
  atomic, as on MongoDB, but nothing runs in parallel.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REAL_MONGODB = os.environ.get("QUEUECTL_TEST_MONGODB_URI")
# Servers reached over a socket by separate processes: the wire lane, and a real MongoDB when
# QUEUECTL_TEST_MONGODB_URI names one.
MONGO_SERVERS = ["wire"] + (["mongodb"] if REAL_MONGODB else [])
# Where the multi-process tests run: a SQLite file, and each server.
LANES = ["sqlite", *MONGO_SERVERS]
START_TIMEOUT = 30.0
# The server's own entry point, run by this interpreter: no console script on PATH needed.
SERVER = [sys.executable, "-c", "from nx_27017.nx_27017 import main; main()"]


class WireLaneUnavailable(RuntimeError):
    """The wire-protocol server could not be started here (the reason is the message)."""


def server_url(request: Any, kind: str) -> str | None:
    """A fresh database's URL for a lane: None for "sqlite", else on the wire lane ("wire")
    or the real server ("mongodb"), through those fixtures (so it is dropped afterwards)."""
    if kind == "sqlite":
        return None
    return str(request.getfixturevalue("wire_url" if kind == "wire" else "mongodb_url"))


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def unique_db(prefix: str = "qt") -> str:
    """A database name no other test uses (nx-27017 maps it to a file: letters, digits, _)."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def ping(url: str, timeout: float = 1.0) -> bool:
    """Whether a server at `url` answers `ping` within `timeout` seconds."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    ms = int(timeout * 1000)
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms
    )
    try:
        client.admin.command("ping")
        return True
    except PyMongoError:
        return False
    finally:
        client.close()


def drop_database(url: str, name: str) -> None:
    """Drop one database, quietly: a server already gone has nothing left to drop."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=3000)
    try:
        client.drop_database(name)
    except PyMongoError:
        pass
    finally:
        client.close()


class WireServer:
    """One nx-27017 process on a free loopback port, its data in `root`."""

    def __init__(self, root: Path, host: str = HOST) -> None:
        self.root = root
        self.host = host
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.output = root / "server.out"

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) it listens on."""
        return self.host, self.port

    def url(self, db: str = "") -> str:
        """`mongodb://127.0.0.1:PORT/<db>`."""
        return f"mongodb://{self.host}:{self.port}/{db}"

    def alive(self) -> bool:
        """Whether the process runs and answers ping."""
        return self.proc is not None and self.proc.poll() is None and ping(self.url())

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait (bounded) until it answers ping; raise
        WireLaneUnavailable with the reason when it cannot. A port taken between our pick
        and the server's bind is retried with another."""
        try:
            import nx_27017  # noqa: F401
        except ImportError as exc:
            raise WireLaneUnavailable(
                f"nx-27017 is not installed ({exc}); pip install -e '.[test]'"
            ) from None
        reason = "no attempt made"
        for _ in range(3):
            reason = self._start_once(timeout)
            if not reason:
                return
        raise WireLaneUnavailable(reason)

    def _start_once(self, timeout: float) -> str:
        self.port = free_port(self.host)
        data = self.root / f"data-{self.port}"
        data.mkdir(parents=True, exist_ok=True)
        # A clean environment: a test's QUEUECTL_HOME must not mark the server as one of
        # that test's processes (its cleanup kills every process carrying it).
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUECTL_", "MONGODB"))}
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    *SERVER,
                    "--data-dir",
                    str(data),
                    "--host",
                    self.host,
                    "-p",
                    str(self.port),
                    "--log-file",
                    str(self.root / f"server-{self.port}.log"),
                    "--pid-file",
                    str(self.root / f"server-{self.port}.pid"),
                ],
                cwd=self.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"nx-27017 exited with status {self.proc.returncode}: {self._tail()}"
            if ping(self.url(), timeout=0.5):
                return ""
            time.sleep(0.1)
        self.stop()
        return f"nx-27017 did not answer ping within {timeout:g}s: {self._tail()}"

    def _tail(self) -> str:
        try:
            return self.output.read_text(errors="replace")[-1500:].strip()
        except OSError:
            return "(no output)"

    def ensure_running(self) -> None:
        """Restart the server if it died (a crash in one test must not fail every later one)."""
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
