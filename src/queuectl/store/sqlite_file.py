"""The SQLite file itself: how a connection to it is opened (writable, read-only, or an empty
stand-in while the file does not exist yet) and what SQLite's errors about it mean to a user.

A store is created by its first write, never by a read; a file this user cannot write is read
through a read-only connection; and a file SQLite finds damaged is reported with the way to
recover it, and never written to again by this process.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ..errors import QueuectlError, SchemaTooNew, StoreDamaged, StoreUnavailable

# Extended result codes are reduced to their primary code (the low byte).
SQLITE_READONLY = 8
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26
DAMAGE_WORDS = ("malformed", "file is not a database", "database corruption")
# A quick_check reads every page: ~25 ms for a 22 MB store, ~180 ms for 224 MB (warm cache,
# quiet machine). Past this budget it is interrupted and the write goes ahead, with SQLite's
# per-statement checks (cell_size_check, SQLITE_CORRUPT) still on guard.
QUICK_CHECK_BUDGET = 0.25


class Connection(sqlite3.Connection):
    """A connection that knows how it was opened."""

    stand_in = False  # an empty in-memory schema standing for a file not created yet
    read_only: str | None = None  # why this user may only read the file, when so
    checked = False  # whether a write through it has run the quick_check yet


def missing_directory(path: str) -> str | None:
    """The directory `path` would be created in, when that directory does not exist."""
    directory = os.path.dirname(os.path.abspath(path))
    return None if os.path.isdir(directory) else directory


def no_directory(path: str, directory: str) -> StoreUnavailable:
    """The error for a store whose directory is missing (a mistyped path, most likely)."""
    return StoreUnavailable(
        f"cannot create SQLite store {path}: directory {directory} does not exist"
    )


def create_private_file(path: str, make_directory: Callable[[], object] | None = None) -> None:
    """Create the database file with mode 0600 whatever the umask, if it is new. Its
    directory must exist, unless `make_directory` may create it (QUEUECTL_HOME)."""
    directory = missing_directory(path)
    if directory is not None:
        if make_directory is None:
            raise no_directory(path, directory)
        make_directory()
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        where = os.path.dirname(os.path.abspath(path))
        reason = (
            f"directory {where} is not writable by this user"
            if isinstance(exc, PermissionError)
            else exc.strerror or str(exc)
        )
        raise StoreUnavailable(f"cannot create SQLite store {path}: {reason}") from None
    try:
        if os.fstat(fd).st_size == 0:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def read_only_reason(path: str) -> str | None:
    """Why this user can only read the file (None when it may write it). WAL mode writes
    beside the file, so its directory must be writable too."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.access(path, os.W_OK):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        return f"the file is not writable by this user (mode {mode:04o})"
    if not os.access(directory, os.W_OK):
        return f"its directory {directory} is not writable by this user"
    return None


def connect(path: str, busy_ms: int, reason: str | None) -> Connection:
    """Open the file: read-write, or read-only when `reason` says this user cannot write.
    A read-only WAL file needs its -shm file; where that is missing and cannot be created
    (the directory is read-only) nobody can be writing it, so it is read as immutable."""
    if reason is None:
        target, uri = path, False
    else:
        from urllib.parse import quote  # only here: every command imports this module

        target = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
        directory = os.path.dirname(os.path.abspath(path))
        if not os.access(directory, os.W_OK) and not os.path.exists(path + "-shm"):
            target += "&immutable=1"
        uri = True
    conn = sqlite3.connect(
        target,
        timeout=busy_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
        factory=Connection,
    )
    conn.read_only = reason
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
    # Checks each page's cells as it is read, so damage is reported at once instead of
    # being read as data (or spread by a write).
    conn.execute("PRAGMA cell_size_check = ON")
    # Temporary storage (statement journals among it) in memory: with the counters' triggers
    # on `jobs`, an INSERT of a batch needs a statement journal, and with them on disk a
    # bulk enqueue of 100,000 jobs took 4.0 s instead of 3.2 s (measured in-process). The
    # hot queries are index walks, so no large sort lands in memory.
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


# The schema version as a record (SPEC §7.9), for people and tools, kept equal to the file
# header's user_version: the header is what each open reads first (no table needed), the
# record is what `sqlite3 queue.db 'SELECT * FROM meta'` shows. An open refuses a file whose
# header or record is newer than this release knows.
META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value)"
VERSION_KEY = "schema_version"


def version_number(value: Any) -> int | None:
    """A recorded schema version as a whole number, or None when it is not one. A whole
    float counts: a hand edit (mongosh, which stores every number as a double; a REAL in
    SQLite) of a newer version is still that version, never a record to replace."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def meta_version(conn: sqlite3.Connection) -> int | None:
    """The schema version the `meta` table records (None: no table, or no record)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (VERSION_KEY,)).fetchone()
    except sqlite3.OperationalError:  # no such table: written before `meta` existed
        return None
    return version_number(row[0] if row else None)


def record_version(conn: sqlite3.Connection, version: int) -> None:
    """Record `version` in `meta` and the header, never lowering either: under the write
    lock, so a newer release upgrading at the same moment keeps its higher number."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(META_TABLE)
        header = conn.execute("PRAGMA user_version").fetchone()[0]
        newest = max(version, header, meta_version(conn) or 0)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (VERSION_KEY, newest),
        )
        if header < newest:
            conn.execute(f"PRAGMA user_version = {int(newest)}")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def stand_in(schema: str) -> Connection:
    """An empty in-memory database with the store's tables: what a read of a store that
    does not exist yet sees, without creating it."""
    conn = sqlite3.connect(
        ":memory:", isolation_level=None, check_same_thread=False, factory=Connection
    )
    conn.row_factory = sqlite3.Row
    conn.executescript(schema)
    conn.stand_in = True
    return conn


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the file is damaged (or is not a database at all)."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
        return True
    return any(word in str(exc).lower() for word in DAMAGE_WORDS)


def is_read_only(exc: sqlite3.Error) -> bool:
    """Whether SQLite refused a write because the file (or its directory) is read-only."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == SQLITE_READONLY)
    return "readonly" in str(exc).lower()


def quick_check(conn: sqlite3.Connection, budget: float = QUICK_CHECK_BUDGET) -> str | None:
    """SQLite's quick_check: None when the file is sound (or the check ran past `budget`
    seconds and was interrupted), else SQLite's first complaint."""
    # The check runs inside one VDBE instruction, so a progress handler never sees it;
    # sqlite3_interrupt from a timer does. Once the timer is joined it can no longer fire,
    # and a flag it set after the check ended is cleared when the next statement starts.
    timer = threading.Timer(budget, conn.interrupt)
    timer.start()
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.OperationalError as exc:
        if "interrupt" in str(exc).lower():
            return None
        return str(exc)
    except sqlite3.DatabaseError as exc:
        return str(exc)
    finally:
        timer.cancel()
        timer.join()
    first = str(rows[0][0]) if rows else "ok"
    return None if first == "ok" else " ".join(first.split())


def damaged(path: str, detail: str) -> StoreDamaged:
    """The error for a damaged file: what SQLite said, and how to get the jobs back."""
    import shlex

    root, ext = os.path.splitext(path)
    fixed = f"{root}-recovered{ext or '.db'}"
    detail = detail if len(detail) <= 120 else detail[:117] + "..."
    source, target = shlex.quote(path), shlex.quote(fixed)
    return StoreDamaged(
        f"SQLite store {path} is damaged ({detail}); queuectl will not write to it. "
        f"Recover what is readable with: sqlite3 {source} .recover | sqlite3 {target} "
        f"(if your sqlite3 has no .recover: sqlite3 {source} .dump | sqlite3 {target}), "
        f"then use --db {target}; or restore a backup"
    )


def cannot_write(path: str, reason: str) -> QueuectlError:
    """The error for a write to a store this user may only read."""
    return StoreUnavailable(
        f"cannot write to SQLite store {path}: {reason}; reads work, writes need write "
        "access to the file and its directory"
    )


class SqliteFile:
    """The connections of one process to one store file, one per thread, and the two ways
    statements run on them: a read (`query`) and a write transaction (`transaction`)."""

    def __init__(
        self,
        path: str,
        schema: str,
        schema_version: int,
        busy_ms: int,
        make_directory: Callable[[], object] | None = None,
        before_schema: Callable[[sqlite3.Connection], None] | None = None,
        upgrade: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = path
        self._schema = schema
        # Run on a file of an older version before the schema script (e.g. adding columns
        # the script's indexes name).
        self._before_schema = before_schema
        self._version = schema_version
        # Brings a file of an older version to `schema_version` (default: run `schema`,
        # whose statements are all IF NOT EXISTS, and set the version).
        self._upgrade = upgrade
        self._busy_ms = busy_ms
        # What may create a missing directory on the first write (QUEUECTL_HOME), if any.
        self._make_directory = make_directory
        self._local = threading.local()
        self._schema_ready = False
        # Set once SQLite reports damage: from then on every statement is refused.
        self._damage: StoreDamaged | None = None

    def connection(self, write: bool = False) -> Connection:
        """This thread's connection. A read of a file that does not exist yet gets an empty
        stand-in (nothing is created); the first write, or the file appearing, replaces it."""
        if self._damage is not None:
            raise self._damage
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.stand_in and (write or os.path.exists(self.path)):
            conn.close()
            conn = None
        if conn is None:
            if write or os.path.exists(self.path):
                conn = self._open()
            else:
                directory = missing_directory(self.path)
                if directory is not None and self._make_directory is None:
                    raise no_directory(self.path, directory)
                conn = stand_in(self._schema)
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _open(self) -> Connection:
        if sqlite3.sqlite_version_info < (3, 35, 0):
            raise StoreUnavailable(
                f"SQLite {sqlite3.sqlite_version} is too old: queuectl needs 3.35 or newer "
                "(UPDATE ... RETURNING); use a newer Python build or a MongoDB URL"
            )
        try:
            if not os.path.exists(self.path):
                create_private_file(self.path, self._make_directory)
            conn = connect(self.path, self._busy_ms, read_only_reason(self.path))
            try:
                self._prepare(conn)
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise self._error(exc, "cannot open SQLite store") from None
        except OSError as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from None
        return conn

    def _prepare(self, conn: Connection) -> None:
        """WAL mode and the schema on a connection that may write; on one that may not, only
        the check that the schema is there."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        recorded = meta_version(conn)
        if max(version, recorded or 0) > self._version:
            raise SchemaTooNew(self.path, max(version, recorded or 0), self._version)
        if conn.read_only is not None:
            if version < self._version:
                raise cannot_write(
                    self.path, f"{conn.read_only}, and its tables need creating or upgrading"
                )
            return
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives any process crash; only a power cut can
        # lose the last few, and it never corrupts the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checking the version first keeps a CLI call on an existing file read-only.
        if not self._schema_ready and version < self._version:
            if self._before_schema is not None:
                self._before_schema(conn)
            if self._upgrade is not None:
                self._upgrade(conn)
            else:
                conn.executescript(self._schema + f"PRAGMA user_version = {self._version};")
        if recorded != self._version:
            record_version(conn, self._version)
        self._schema_ready = True

    def _error(self, exc: sqlite3.Error, doing: str = "SQLite store") -> QueuectlError:
        """SQLite's error as ours: damage (remembered, so nothing more is written), a
        read-only file, or the store being unavailable."""
        conn: Connection | None = getattr(self._local, "conn", None)
        detail = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and "decode" in detail and conn:
            # Text that is not UTF-8 was not written by queuectl: ask SQLite what it is.
            problem = quick_check(conn)
            if problem is None:
                return StoreUnavailable(f"{doing} {self.path}: {exc}")
            self._damage = damaged(self.path, problem)
        elif is_damage(exc):
            self._damage = damaged(self.path, detail)
        if self._damage is not None:
            return self._damage
        if is_read_only(exc):
            return cannot_write(self.path, conn.read_only if conn and conn.read_only else detail)
        return StoreUnavailable(f"{doing} {self.path}: {exc}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that holds the write lock from its start (BEGIN IMMEDIATE),
        so its reads are never of a snapshot another writer has moved past. The first one
        on each connection runs SQLite's quick_check: a damaged file is never written.
        IntegrityError passes through (a duplicate id is the caller's to report).

        One begun while this thread's connection is already inside one joins it: its
        statements commit, or roll back, with the outer transaction (how a store runs two of
        its own writes as one, e.g. a result and the next claim)."""
        joined: sqlite3.Connection | None = getattr(self._local, "open_tx", None)
        if joined is not None:
            yield joined
            return
        conn = self.connection(write=True)
        if conn.read_only is not None:
            raise cannot_write(self.path, conn.read_only)
        try:
            if not conn.checked:
                problem = quick_check(conn)
                if problem is not None:
                    self._damage = damaged(self.path, problem)
                    raise self._damage
                conn.checked = True
            conn.execute("BEGIN IMMEDIATE")
            self._local.open_tx = conn
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                self._local.open_tx = None
            conn.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            _rollback_quietly(conn)
            raise self._error(exc) from None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of one read statement."""
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise self._error(exc) from None


def _rollback_quietly(conn: sqlite3.Connection) -> None:
    # A failed COMMIT can leave the transaction open; the connection must not keep it.
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
