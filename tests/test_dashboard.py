"""The live view: its frame as a pure function, its loop in-process, and the real command in
a pseudo-terminal (a job seen moving from pending to completed, then Ctrl+C)."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import signal
import sys
import time

import pytest

from queuectl import dashboard
from queuectl.app import App
from queuectl.dashboard import Snapshot, render_frame, run_dashboard
from queuectl.errors import StoreUnavailable
from queuectl.executor import Result
from queuectl.models import Job, WorkerInfo
from queuectl.render import STATE_COLOURS
from queuectl.store.sqlite import SqliteStore

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
NOW = 1_800_000_000.0


def visible(text: str) -> str:
    """Text as a terminal shows it: escape sequences gone."""
    return ANSI.sub("", text)


def job(job_id: str, state: str = "pending", command: str = "echo hi", **extra) -> Job:
    fields = dict(
        attempts=0, max_retries=3, created_at=NOW - 60, updated_at=NOW - 5, run_at=NOW - 60
    )
    fields.update(extra)
    return Job(id=job_id, command=command, state=state, **fields)


def busy_snapshot() -> Snapshot:
    long_command = "printf 'x\x1b[2J\n'; " + "echo long " * 30 + "\x1b[31m\r\x07"
    jobs = [
        job("a" * 120, "processing", long_command, attempts=2),
        job("j-ok", "completed", "echo ok", attempts=1, updated_at=NOW - 3700),
        job("j\tbad", "dead", "exit 3\x07"),
    ]
    workers = [
        WorkerInfo(
            id="host-" + "x" * 60 + ":4242:1-abcd",
            host="h",
            pid=4242,
            status="busy",
            current_job="a" * 120,
            last_heartbeat=NOW - 2,
            jobs_done=7,
            jobs_failed=1,
        )
    ]
    counts = {"pending": 3, "processing": 1, "completed": 10, "failed": 0, "dead": 2}
    return Snapshot(
        store="sqlite:////tmp/q.db",
        interval=2,
        counts=counts,
        workers=workers,
        jobs=jobs,
        taken_at=NOW,
    )


# -- render_frame ---------------------------------------------------------------------------
@pytest.mark.parametrize("colour", [False, True])
def test_frame_fits_80_columns_and_escapes_control_characters(colour):
    frame = render_frame(busy_snapshot(), 80, NOW, colour=colour)
    # The only escape sequences allowed are the colours of states, and only with colour on.
    colours = {f"\x1b[{code}m" for code in STATE_COLOURS.values()} | {"\x1b[0m"}
    assert set(re.findall(r"\x1b\[[^m]*m", frame)) <= (colours if colour else set())
    text = re.sub(r"\x1b\[\d+m", "", frame)
    lines = text.split("\n")
    assert max(len(line) for line in lines) <= 80
    assert all(ch >= " " for line in lines for ch in line), "a raw control character leaked"
    assert re.search(r"^j\\tbad\s+dead\s+0/4\s+5s ago\s+exit 3\\x07$", text, re.M)
    assert "pending 3" in text and "completed 10" in text and "dead 2" in text
    assert re.search(r"^host-x+…\s+busy\s+2s ago\s+7\s+1\s+a+…$", text, re.M)
    assert re.search(r"^a+…\s+processing\s+2/4\s+5s ago\s+printf 'x\\x1b\[2J\\n'", text, re.M)
    assert re.search(r"^j-ok\s+completed\s+1/4\s+1h ago\s+echo ok$", text, re.M)
    assert ("\x1b[" in frame) is colour


def test_frame_respects_narrow_widths_and_height():
    for width in (20, 40, 79, 120):
        frame = render_frame(busy_snapshot(), width, NOW)
        assert max(len(line) for line in frame.split("\n")) <= width
    short = render_frame(busy_snapshot(), 80, NOW, height=12).split("\n")
    assert len(short) == 12
    assert short[0].startswith("queuectl dashboard")


def test_frame_of_an_empty_store():
    snapshot = Snapshot(
        store="mongodb://h/q",
        interval=0.5,
        counts=dict.fromkeys(("pending", "processing", "completed", "failed", "dead"), 0),
        taken_at=NOW,
    )
    text = render_frame(snapshot, 80, NOW)
    assert "every 0.5s" in text
    assert "Workers: 0 active" in text and "(no worker is running)" in text
    assert "(no jobs)" in text


def test_frame_says_when_the_store_is_unreachable():
    never = Snapshot(store="", interval=2, error="MongoDB at mongodb://h/q: timed out")
    lines = render_frame(never, 80, NOW).split("\n")
    assert lines[1:3] == [
        "Store unreachable - retrying every 2s (never read):",
        "  MongoDB at mongodb://h/q: timed out",
    ]
    assert "Jobs: unknown" in lines
    stale = Snapshot(**{**busy_snapshot().__dict__, "error": "SQLite store: disk I/O error"})
    text = visible(render_frame(stale, 80, NOW + 90))
    assert (
        "Store unreachable - retrying every 2s (showing data from 1m ago):\n"
        "  SQLite store: disk I/O error\n" in text
    )
    assert "pending 3" in text  # the last good data stays on screen


def test_a_long_store_error_is_wrapped_escaped_and_cut():
    error = "MongoDB at mongodb://h/q: " + "no server\x1b[2J answered; " * 40
    lines = render_frame(Snapshot(store="", interval=1, error=error), 80, NOW).split("\n")
    shown = [line for line in lines if line.startswith("  ")][:3]
    assert len(shown) == 3 and all(len(line) <= 80 for line in lines)
    assert "\x1b" not in "".join(lines) and "no server\\x1b[2J" in shown[0]
    assert lines[5] == ""  # nothing of the error past its third line


def test_first_frame_is_shown_before_the_first_read():
    text = render_frame(Snapshot(store="mongodb://h/q", interval=2), 80, NOW)
    assert "Store: mongodb://h/q\nReading the store..." in text


# -- the loop, in-process -------------------------------------------------------------------
class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class FlakyStore:
    """Fails its first reads, then delegates to a real store."""

    def __init__(self, real: SqliteStore, failures: int) -> None:
        self.real, self.failures, self.url = real, failures, real.url

    def __getattr__(self, name):
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("SQLite store: database is locked")
        return getattr(self.real, name)


def test_loop_reports_an_unreachable_store_keeps_trying_and_ends_quietly(tmp_path, monkeypatch):
    real = SqliteStore(str(tmp_path / "q.db"))
    real.insert_jobs([job("visible-job", updated_at=time.time())])
    store = FlakyStore(real, failures=1)
    frames = []

    def fake_sleep(_seconds: float) -> None:
        frames.append(screen.getvalue())
        if len(frames) == 2:
            raise KeyboardInterrupt

    screen = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(dashboard.time, "sleep", fake_sleep)
    try:
        run_dashboard(lambda: App(store=store), 0.25, out=screen)
    except KeyboardInterrupt:
        pytest.fail("Ctrl+C must end the dashboard quietly, not escape from it")
    first, second = frames[0], frames[1][len(frames[0]) :]
    assert "Store unreachable" in first and "  SQLite store: database is locked" in first
    assert "Store unreachable" not in second and "visible-job" in second
    assert not re.search(r"\x1b\[\d+(;\d+)*m", frames[1]), "colour despite NO_COLOR"
    assert screen.getvalue().endswith("\n")


# -- the real command in a pseudo-terminal ---------------------------------------------------
class Terminal:
    """A child process on a pseudo-terminal of 80x24, read with bounded waits."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: becomes the program, the terminal is its own
            try:
                os.execve(argv[0], argv, env)
            finally:
                os._exit(127)
        self.output = b""
        self.closed = False

    def read_until(self, predicate, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while not predicate(self.screen()):
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"screen never matched; last frame:\n{self.screen()}")
            self._read(deadline - time.monotonic())
        return self.screen()

    def _read(self, timeout: float) -> None:
        ready, _, _ = select.select([self.fd], [], [], max(min(timeout, 0.5), 0))
        if ready:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            self.output += chunk
            self.closed = not chunk

    def screen(self) -> str:
        """The last complete frame (frames start at cursor-home), as plain text."""
        text = self.output.decode("utf-8", "replace")
        frames = text.split("\x1b[H")
        frame = frames[-2] if len(frames) > 2 else frames[-1]
        return visible(frame).replace("\r", "")

    def wait(self, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.closed:
                self._read(0.1)
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while not self.closed:  # whatever it printed last
                    self._read(0.5)
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        raise AssertionError("the dashboard did not exit")


def row_of(screen: str, job_id: str) -> str:
    return next((line for line in screen.split("\n") if line.startswith(job_id + " ")), "")


def test_dashboard_in_a_terminal_follows_a_job_and_quits_on_ctrl_c(tmp_path):
    db = str(tmp_path / "queue.db")
    store = SqliteStore(db)
    now = time.time()
    # Older finished jobs fill more than a screen: the frame must still fit 24 lines.
    store.insert_jobs([job(f"old-{n}", "completed", updated_at=now - 100) for n in range(40)])
    store.insert_jobs(
        [job("watched-job", command="echo watched", created_at=now, updated_at=now, run_at=now)]
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "TERM": "xterm",
        "COLUMNS": "80",
        "LINES": "24",
        "QUEUECTL_HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
    }
    term = Terminal(
        [sys.executable, "-m", "queuectl", "--db", db, "dashboard", "--interval", "0.2"], env
    )
    try:
        screen = term.read_until(lambda s: "pending" in row_of(s, "watched-job"))
        assert "(no worker is running)" in screen and "Workers: 0 active" in screen

        worker = App(store=store).workers.register(1)
        claimed = store.claim(worker.id, time.time(), "token-1")
        assert claimed is not None and claimed.id == "watched-job"
        screen = term.read_until(lambda s: "processing" in row_of(s, "watched-job"))
        assert re.search(rf"^{re.escape(worker.id)}\s+busy\s.*watched-job$", screen, re.M)

        result = Result(exit_code=0, stdout="watched\n", stderr="", duration=0.01, error=None)
        assert App(store=store).jobs.complete(claimed, result)
        screen = term.read_until(lambda s: "completed" in row_of(s, "watched-job"))
        assert re.search(r"completed 41\b", screen) and re.search(r"pending 0\b", screen)
        assert max(len(line) for line in screen.split("\n")) <= 80
        assert len(screen.split("\n")) == 24 and "\nold-" in screen  # filled, not scrolled
    finally:
        os.write(term.fd, b"\x03")  # Ctrl+C, through the terminal's line discipline
        code = term.wait()
    assert code == 0
    assert b"\x1b[32mcompleted" in term.output  # colour on a terminal without NO_COLOR
    assert b"Traceback" not in term.output
    assert b"Error" not in term.output


def test_bad_interval_or_url_is_an_input_error_before_any_screen(home, capsys):
    from queuectl.cli import main

    assert main(["--db", str(home / "q.db"), "dashboard", "--interval", "0"]) == 2
    assert main(["--db", "ftp://example.invalid/q", "dashboard"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0].startswith("Error: --interval must be between 0.1 and 3600")
    assert err.splitlines()[1].startswith("Error: unsupported store URL")
