"""The real program in real processes: entry points, environment, files, timing (SPEC §2, §3)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from queuectl import __version__

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
QUEUECTL = shutil.which("queuectl", path=str(VENV_BIN))
TIMEOUT = 60  # a bound on every child; none should come near it

ENTRY_POINTS = {
    "script": [QUEUECTL],
    "module": [sys.executable, "-m", "queuectl"],
    "checkout": [str(REPO / "bin" / "queuectl")],
}


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A child environment with a private QUEUECTL_HOME and no store variables."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("QUEUECTL_") and k not in ("MONGODB_URI", "NO_COLOR")
    }
    clean["QUEUECTL_HOME"] = str(tmp_path / "home")
    # bin/queuectl starts with `#!/usr/bin/env python3`: let that find this virtualenv.
    clean["PATH"] = f"{VENV_BIN}{os.pathsep}{clean.get('PATH', '')}"
    return clean


@pytest.fixture
def workdir(tmp_path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


def run(
    env: dict[str, str],
    cwd: Path,
    *args: str,
    entry: str = "script",
    stdin: str = "",
    umask: int = -1,
) -> subprocess.CompletedProcess[str]:
    """Run one queuectl process to completion (bounded by TIMEOUT)."""
    assert QUEUECTL, "the queuectl script is not installed next to this Python"
    return subprocess.run(
        [*ENTRY_POINTS[entry], *args],
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        umask=umask,
    )


def assert_error_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code`, nothing on stdout, exactly one `Error:` line on stderr, no traceback."""
    assert proc.returncode == code, proc
    assert proc.stdout == "", proc
    assert proc.stderr.startswith("Error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def job_ids(db: Path) -> list[str]:
    """The ids in an SQLite store file, read without queuectl."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT id FROM jobs ORDER BY id")]


# -- entry points -------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_every_entry_point_prints_the_version(env, workdir, entry):
    proc = run(env, workdir, "--version", entry=entry)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"queuectl {__version__}\n", "")


def test_the_entry_points_are_one_program_on_one_store(env, workdir):
    assert run(env, workdir, "enqueue", "echo hi", "--id", "e1", entry="module").returncode == 0
    assert run(env, workdir, "enqueue", "echo ho", "--id", "e2", entry="checkout").returncode == 0
    proc = run(env, workdir, "list", "--json")
    assert sorted(j["id"] for j in json.loads(proc.stdout)) == ["e1", "e2"]
    assert job_ids(Path(env["QUEUECTL_HOME"]) / "queue.db") == ["e1", "e2"]


@pytest.mark.parametrize("args", [["--help"], ["enqueue", "--help"], []])
def test_help_touches_no_store(env, workdir, args):
    proc = run(env, workdir, *args)
    assert proc.returncode == 0 and proc.stderr == ""
    assert "queuectl" in proc.stdout
    assert not Path(env["QUEUECTL_HOME"]).exists()
    assert list(workdir.iterdir()) == []


def test_pymongo_is_imported_only_for_a_mongodb_url(env, workdir):
    probe = (
        "import sys, contextlib, io\n"
        "from queuectl.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    codes = [main(['--help']), main(['status']), main(['enqueue', 'true'])]\n"
        "print(codes, 'pymongo' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert proc.stdout == "[0, 0, 0] False\n", proc


# -- which store (SPEC §2) ----------------------------------------------------------------------


def test_store_precedence(env, workdir, tmp_path):
    files = {name: tmp_path / f"{name}.db" for name in ("option", "env", "dotenv")}
    (workdir / ".env").write_text(f"QUEUECTL_DB=sqlite:///{files['dotenv']}\n")
    full = {
        **env,
        "QUEUECTL_DB": f"sqlite:///{files['env']}",
        "MONGODB_URI": "mongodb://u:pw@mongodb-uri.invalid:99999/q",
    }

    # --db beats everything
    assert (
        run(full, workdir, "--db", str(files["option"]), "enqueue", "true", "--id", "a").returncode
        == 0
    )
    # then QUEUECTL_DB, and the real environment wins over .env
    assert run(full, workdir, "enqueue", "true", "--id", "b").returncode == 0
    # then .env's QUEUECTL_DB, above a real MONGODB_URI
    without_db = {k: v for k, v in full.items() if k != "QUEUECTL_DB"}
    assert run(without_db, workdir, "enqueue", "true", "--id", "c").returncode == 0
    assert [job_ids(files[n]) for n in ("option", "env", "dotenv")] == [["a"], ["b"], ["c"]]

    # then MONGODB_URI (this one fails fast: its port is impossible)
    (workdir / ".env").unlink()
    err = assert_error_line(run(without_db, workdir, "status"), 2)
    assert "mongodb://u:***@mongodb-uri.invalid:99999/q" in err and "pw" not in err
    # and .env may provide MONGODB_URI too
    (workdir / ".env").write_text("MONGODB_URI=mongodb://dotenv.invalid:99999/q\n")
    bare = {k: v for k, v in without_db.items() if k != "MONGODB_URI"}
    assert "dotenv.invalid" in assert_error_line(run(bare, workdir, "status"), 2)

    # and last the default file in QUEUECTL_HOME
    (workdir / ".env").unlink()
    assert run(bare, workdir, "enqueue", "true", "--id", "d").returncode == 0
    assert job_ids(Path(env["QUEUECTL_HOME"]) / "queue.db") == ["d"]
    assert [job_ids(files[n]) for n in ("option", "env", "dotenv")] == [["a"], ["b"], ["c"]]


def test_sqlite_urls_relative_absolute_and_bare_paths(env, workdir, tmp_path):
    absolute = tmp_path / "abs" / "q.db"
    cases = [
        ("sqlite:///rel.db", workdir / "rel.db"),
        (f"sqlite:///{absolute}", absolute),
        ("sub/bare.db", workdir / "sub" / "bare.db"),
    ]
    assert f"sqlite:///{absolute}".startswith("sqlite:////")
    for _url, path in cases:
        path.parent.mkdir(exist_ok=True)
    for n, (url, path) in enumerate(cases):
        proc = run(env, workdir, "--db", url, "enqueue", "true", "--id", f"j{n}")
        assert proc.returncode == 0, proc
        assert job_ids(path) == [f"j{n}"]
    assert not Path(env["QUEUECTL_HOME"]).exists()


def test_a_store_in_a_missing_directory_is_an_error_not_a_new_queue(env, workdir):
    # A mistyped path must not quietly show an empty queue.
    proc = run(env, workdir, "--db", "nowhere/q.db", "status")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot create SQLite store nowhere/q.db: directory ")
    assert proc.stderr.rstrip().endswith("does not exist") and proc.stderr.count("\n") == 1
    assert not (workdir / "nowhere").exists()


def test_home_is_0700_and_the_database_0600_even_with_umask_000(env, workdir):
    home = Path(env["QUEUECTL_HOME"])
    proc = run(env, workdir, "enqueue", "true", umask=0)
    assert proc.returncode == 0, proc
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "queue.db").stat().st_mode) == 0o600
    for extra in home.glob("queue.db*"):  # WAL and shared-memory files, if left behind
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


# -- errors (SPEC §3) ---------------------------------------------------------------------------


def test_an_unreachable_mongodb_fails_fast_without_its_password(env, workdir):
    from queuectl.store.mongo import SERVER_SELECTION_TIMEOUT_MS

    # What bounds the wait must be the server-selection timeout queuectl sets, not pymongo's
    # 30 s. A process's start-up and exit (slow under load) are timed by a third one that
    # fails before any network use, started beside the two that need the server: all three
    # see the same load, so the difference is the wait for the server.
    selection = SERVER_SELECTION_TIMEOUT_MS / 1000
    url = "mongodb://user:secret@127.0.0.1:1/q"
    commands = {"status": ["status"], "enqueue": ["enqueue", "true"], "bad": ["enqueue", "{x"]}
    results: dict[str, tuple[float, subprocess.CompletedProcess[str]]] = {}

    def timed(name: str) -> None:
        started = time.monotonic()
        done = run(env, workdir, "--db", url, *commands[name])
        results[name] = (time.monotonic() - started, done)

    threads = [threading.Thread(target=timed, args=(name,)) for name in commands]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT + 5)
    reference, bad = results["bad"]
    assert_error_line(bad, 2)  # refused before the store was ever opened
    for name in ("status", "enqueue"):
        elapsed, result = results[name]
        err = assert_error_line(result, 1)
        assert "secret" not in err and "user:***@127.0.0.1:1" in err
        # It waited for the server (a refused connection is retried until the timeout)...
        assert elapsed >= selection * 0.9, (name, elapsed)
        # ...and no longer than that, give or take the driver's import and exit (~0.5 s).
        assert elapsed - reference < selection + 3.0, (name, elapsed, reference)


@pytest.mark.parametrize(
    "args, code",
    [
        (["enqueue", "{not json"], 2),
        (["nosuchcommand"], 2),
        (["list", "--limit", "x"], 2),
        (["config", "set", "max_retries", "-1"], 2),
        (["show", "missing"], 1),
        (["--db", "ftp://x", "status"], 2),
    ],
)
def test_errors_are_one_line_and_never_a_traceback(env, workdir, args, code):
    assert_error_line(run(env, workdir, *args), code)


def test_a_batch_from_stdin_through_a_real_pipe(env, workdir):
    lines = "".join(json.dumps({"id": f"b{n}", "command": f"echo {n}"}) + "\n" for n in range(5))
    proc = run(env, workdir, "enqueue", "--file", "-", stdin=lines)
    assert (proc.returncode, proc.stdout) == (0, "Enqueued 5 jobs\n")
    bad = lines + "{oops\n"
    err = assert_error_line(run(env, workdir, "enqueue", "--file", "-", stdin=bad), 2)
    assert "line 6" in err
    assert job_ids(Path(env["QUEUECTL_HOME"]) / "queue.db") == [f"b{n}" for n in range(5)]


def test_no_color_and_a_pipe_give_plain_tables(env, workdir):
    run(env, workdir, "enqueue", "true", "--id", "plain")
    for extra in ({}, {"NO_COLOR": "1"}):
        proc = run({**env, **extra}, workdir, "list")
        assert proc.returncode == 0 and "plain" in proc.stdout
        assert "\x1b[" not in proc.stdout


def test_worker_start_on_a_bad_store_is_one_error_before_any_worker_starts(env, workdir):
    proc = run(env, workdir, "--db", "nowhere/q.db", "worker", "start", "--count", "3", "--burst")
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cannot create SQLite store") and (
        proc.stderr.count("\n") == 1
    ), proc.stderr
