"""A damaged SQLite file, made by overwriting a page of a real store: every command that meets
the damage says so and how to recover, exit 1, and nothing more is written to the file."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

PAGE = 4096
TIMEOUT = 60


def queuectl(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One real `queuectl --db DB ARGS` process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["QUEUECTL_HOME"] = str(db.parent / "home")
    return subprocess.run(
        [sys.executable, "-m", "queuectl", "--db", str(db), *args],
        env=env,
        cwd=db.parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


def damage_error(proc: subprocess.CompletedProcess[str], db: Path) -> str:
    """The one `Error:` line of a command that met the damage."""
    assert proc.returncode == 1, proc
    err = proc.stderr
    assert err.startswith(f"Error: SQLite store {db} is damaged") and err.count("\n") == 1, err
    assert ".recover" in err and "backup" in err and "Traceback" not in err
    return err


def digest(db: Path) -> str:
    """The store's bytes, WAL included: equal digests mean nothing was written."""
    parts = [db.read_bytes()]
    wal = Path(f"{db}-wal")
    if wal.exists():
        parts.append(wal.read_bytes())
    return hashlib.sha256(b"".join(parts)).hexdigest()


def overwrite_page(db: Path, page: int, data: bytes) -> None:
    """Write `data` over the start of page `page` (1-based), as a disk fault would."""
    with open(db, "r+b") as handle:
        handle.seek((page - 1) * PAGE)
        handle.write(data)


def root_page(db: Path, name: str) -> int:
    """The root page of a table or index (read before the damage is done)."""
    with sqlite3.connect(db) as conn:
        return int(
            conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (name,)).fetchone()[0]
        )


@pytest.fixture
def db(tmp_path) -> Path:
    """A store of 300 jobs, long enough to span many pages, closed and checkpointed."""
    path = tmp_path / "queue.db"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "".join(
            json.dumps({"id": f"j{n:03d}", "command": f"echo {n} {'x' * 300}"}) + "\n"
            for n in range(300)
        )
    )
    assert queuectl(path, "enqueue", "--file", str(jobs), "--quiet").returncode == 0
    assert not Path(f"{path}-wal").exists()  # the last connection checkpointed it
    return path


def test_damage_where_no_read_goes_is_found_before_the_first_write(db):
    overwrite_page(db, root_page(db, "workers"), os.urandom(PAGE))
    before = digest(db)

    damage_error(queuectl(db, "enqueue", "--id", "more", "echo more"), db)
    damage_error(queuectl(db, "config", "set", "max_retries", "5"), db)
    assert digest(db) == before
    # Reads that do not touch the damaged page still work, to help salvage...
    listed = queuectl(db, "list", "--state", "pending", "--limit", "1000", "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 300
    # ...and those that do say what is wrong.
    damage_error(queuectl(db, "worker", "list", "--all"), db)


@pytest.mark.parametrize(
    "structure, commands",
    [
        ("jobs_state_updated", (["enqueue", "echo more"], ["dlq", "retry", "--all"])),
        # status and stats read the maintained counters, not the jobs.
        ("job_counts", (["status"], ["stats"], ["enqueue", "echo more"])),
    ],
)
def test_a_damaged_index_stops_status_stats_and_enqueue(db, structure, commands):
    overwrite_page(db, root_page(db, structure), os.urandom(PAGE))
    before = digest(db)

    for args in commands:
        damage_error(queuectl(db, *args), db)
    assert digest(db) == before


def test_workers_refuse_a_damaged_store_and_exit(db):
    overwrite_page(db, root_page(db, "workers"), os.urandom(PAGE))
    before = digest(db)

    proc = queuectl(db, "worker", "start", "--burst", "--count", "2")

    assert proc.returncode == 1, proc
    assert re.search(r"Error: worker \d: SQLite store .* is damaged", proc.stderr), proc.stderr
    assert digest(db) == before


def test_a_file_that_is_not_a_database_any_more(db):
    overwrite_page(db, 1, b"\0" * 100)
    before = digest(db)
    for args in (["status"], ["list"], ["enqueue", "echo more"]):
        assert "not a database" in damage_error(queuectl(db, *args), db)
    assert digest(db) == before


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 command is not installed")
def test_the_recovery_command_in_the_message_gives_a_working_store(db):
    overwrite_page(db, root_page(db, "jobs_state_updated"), os.urandom(PAGE))
    err = damage_error(queuectl(db, "list", "--state", "dead"), db)
    found = re.search(
        r"with: (sqlite3 .*?) \(if your sqlite3 has no \.recover: (sqlite3 .*?)\), "
        r"then use --db (\S+);",
        err,
    )
    assert found, err
    fixed = Path(found.group(3))
    for command in found.group(1, 2):  # .recover where this sqlite3 has it, else .dump
        fixed.unlink(missing_ok=True)
        dump, load = command.split(" | ")
        made = subprocess.run(
            f"set -o pipefail; {dump} | {load}",
            shell=True,
            executable="/bin/bash",
            cwd=db.parent,
            capture_output=True,
            timeout=TIMEOUT,
        )
        if made.returncode == 0:
            break

    status = queuectl(fixed, "status", "--json")
    assert status.returncode == 0, status
    assert json.loads(status.stdout)["jobs"]["pending"] == 300
    assert queuectl(fixed, "enqueue", "echo after recovery").returncode == 0
