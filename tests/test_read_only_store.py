"""A store this user may only read (a 0400 file, or a directory nobody can write): reads work
through a read-only connection, and writes fail at once with the reason, in the foreground and
with --detach alike. Root may write anything, so as root the real processes run as `nobody`."""

from __future__ import annotations

import gc
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from queuectl.cli import main

SRC = Path(__file__).resolve().parents[1] / "src"
NOBODY = 65534
TIMEOUT = 60


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """`queuectl ARGV` in-process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def deny_writes(monkeypatch):
    """Make paths unwritable for this test. A chmod does it for a normal user; root passes
    every permission check, so for root os.access is told the same (SQLite's own read-only
    open is then real either way)."""

    def deny(*paths: Path, mode: int) -> None:
        for path in paths:
            os.chmod(path, mode)
        if os.geteuid() == 0:
            denied = {str(p) for p in paths}
            real = os.access

            def access(path, how, *args, **kwargs):  # type: ignore[no-untyped-def]
                if how & os.W_OK and os.path.abspath(path) in denied:
                    return False
                return real(path, how, *args, **kwargs)

            monkeypatch.setattr(os, "access", access)

    return deny


@pytest.fixture
def store(home, tmp_path, capsys) -> Iterator[Path]:
    """A store with one pending job, in a directory of its own."""
    directory = tmp_path / "ro"
    directory.mkdir()
    db = directory / "queue.db"
    assert run(capsys, "--db", str(db), "enqueue", "--id", "kept", "echo kept")[0] == 0
    gc.collect()  # closes the command's connection: the last one out removes -wal and -shm
    yield db
    os.chmod(directory, 0o700)
    os.chmod(db, 0o600)


def assert_reads_work_and_writes_say_why(capsys, db: Path, reason: str) -> None:
    before = db.read_bytes()
    for argv in (["status"], ["list"], ["show", "kept"], ["stats"], ["config", "list"]):
        code, out, err = run(capsys, "--db", str(db), *argv)
        assert (code, err) == (0, ""), (argv, err)
    code, out, _err = run(capsys, "--db", str(db), "list", "--json")
    assert [j["id"] for j in json.loads(out)] == ["kept"]
    for argv in (["enqueue", "true"], ["config", "set", "max_retries", "1"], ["worker", "stop"]):
        code, out, err = run(capsys, "--db", str(db), *argv)
        assert (code, out) == (1, ""), (argv, err)
        assert err.startswith(f"Error: cannot write to SQLite store {db}: {reason}"), err
        assert err.count("\n") == 1 and "reads work" in err
    assert db.read_bytes() == before


def test_a_file_this_user_cannot_write(capsys, store, deny_writes):
    deny_writes(store, mode=0o400)
    assert_reads_work_and_writes_say_why(capsys, store, "the file is not writable by this user")


def test_a_directory_nobody_can_write(capsys, store, deny_writes):
    deny_writes(store.parent, mode=0o500)
    assert not Path(f"{store}-shm").exists()
    assert_reads_work_and_writes_say_why(capsys, store, f"its directory {store.parent} is not")
    assert sorted(p.name for p in store.parent.iterdir()) == ["queue.db"]


# -- real processes, as a user who may only read ------------------------------------------------


def reader_command() -> list[str]:
    """How to run Python as a user who cannot write the store: ourselves when not root,
    else `nobody` through setpriv, with an interpreter that user may run."""
    if os.geteuid() != 0:
        return [sys.executable]
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot act as a user who may only read")
    drop = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    # The probe starts a child too: the workers are started from sys.executable.
    probe = "import subprocess, sys; subprocess.run([sys.executable, '-c', ''], check=True)"
    for python in (sys.executable, "/usr/bin/python3"):
        version = subprocess.run(
            [python, "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
        )
        if version.stdout != f"{sys.version_info[:2]}\n":
            continue
        if subprocess.run([*drop, python, "-c", probe], capture_output=True).returncode == 0:
            return [*drop, python]
    pytest.skip("no Python that the unprivileged user may run")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can enter (pytest's own tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="queuectl-ro-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_worker_start_says_why_in_the_foreground_and_detached(shared_dir):
    prefix = reader_command()
    db = shared_dir / "queue.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    site = sysconfig.get_paths()["purelib"]
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), site])
    subprocess.run(
        [sys.executable, "-m", "queuectl", "--db", str(db), "enqueue", "true"],
        env=env,
        check=True,
        timeout=TIMEOUT,
    )
    home = shared_dir / "home"
    home.mkdir()
    if os.geteuid() == 0:
        os.chmod(db, 0o644)  # readable by the other user, writable by none but root
        os.chown(home, NOBODY, NOBODY)
    else:
        os.chmod(db, 0o444)
    env["QUEUECTL_HOME"] = str(home)

    def queuectl(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*prefix, "-m", "queuectl", "--db", str(db), *args],
            env=env,
            cwd=shared_dir,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            stdin=subprocess.DEVNULL,
        )

    status = queuectl("status", "--json")
    assert status.returncode == 0, status
    assert json.loads(status.stdout)["jobs"]["pending"] == 1
    reason = f"cannot write to SQLite store {db}: the file is not writable by this user"
    foreground = queuectl("worker", "start", "--burst")
    assert foreground.returncode == 1 and reason in foreground.stderr, foreground
    detached = queuectl("worker", "start", "--detach")
    assert detached.returncode == 1, detached
    assert detached.stderr.startswith("Error: no worker started: worker 1: " + reason), detached
    assert detached.stderr.count("\n") == 1
    assert stat.S_IMODE(db.stat().st_mode) in (0o644, 0o444)


def test_a_queuectl_home_in_a_directory_this_user_cannot_write(shared_dir):
    prefix = reader_command()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), sysconfig.get_paths()["purelib"]])
    locked = shared_dir / "locked"
    locked.mkdir(mode=0o755)
    if os.geteuid() != 0:
        os.chmod(locked, 0o555)
    env["QUEUECTL_HOME"] = str(locked / "home")
    proc = subprocess.run(
        [*prefix, "-m", "queuectl", "enqueue", "true"],
        env=env,
        cwd=shared_dir,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    os.chmod(locked, 0o755)
    assert (proc.returncode, proc.stdout) == (1, ""), proc
    assert proc.stderr == (
        f"Error: cannot create QUEUECTL_HOME {locked / 'home'}: permission denied; "
        "set QUEUECTL_HOME to a directory you can write\n"
    )
