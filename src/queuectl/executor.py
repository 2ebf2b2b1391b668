"""Run one shell command: its own process group, a timeout that kills the whole group, and
stdout/stderr kept as bounded tails."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

from .text import describe_exit, printable

TAIL_BYTES = 64 * 1024
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL of the group
# After the shell exits, a background child may still hold the pipes open; read this long.
DRAIN_AFTER_EXIT = 0.5


@dataclass
class Result:
    """What one attempt produced."""

    exit_code: int | None
    stdout: str
    stderr: str
    duration: float
    error: str | None  # None on success, else the words for last_error

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.error is None


class Tail:
    """Keeps the last TAIL_BYTES bytes of a stream and counts what it dropped."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit = limit
        self.data = bytearray()
        self.dropped = 0
        # The worker reads the tail while the command runs (to store its output so far).
        self._lock = threading.Lock()

    def feed(self, chunk: bytes) -> None:
        """Append, dropping the oldest bytes past the limit."""
        with self._lock:
            self.data += chunk
            excess = len(self.data) - self.limit
            if excess > 0:
                del self.data[:excess]
                self.dropped += excess

    @property
    def total(self) -> int:
        """Bytes fed so far (kept and dropped): it grows whenever output arrives."""
        return len(self.data) + self.dropped

    def snapshot(self) -> str:
        """text() of the tail as it is now, safe while another thread feeds it."""
        with self._lock:
            copy = Tail(self.limit)
            copy.data, copy.dropped = bytearray(self.data), self.dropped
        return copy.text()

    def text(self) -> str:
        """The kept bytes as text (invalid UTF-8 replaced), saying when output was cut. The
        text is at most `limit` bytes as UTF-8 too: a byte that is not UTF-8 becomes U+FFFD
        (3 bytes), so of output that is not text fewer bytes are kept."""
        data = bytes(self.data)
        body = data.decode("utf-8", errors="replace")
        dropped = self.dropped
        if len(body.encode("utf-8")) > self.limit:
            start = _fitting_start(data, self.limit)
            body = data[start:].decode("utf-8", errors="replace")
            dropped += start
        if dropped:
            return f"[queuectl: output cut, first {dropped} bytes dropped]\n{body}"
        return body


def _utf8_size(data: bytes) -> int:
    return len(data.decode("utf-8", errors="replace").encode("utf-8"))


def _fitting_start(data: bytes, limit: int) -> int:
    """About the smallest offset from which `data`, decoded, is at most `limit` bytes of
    UTF-8: a binary search (the size shrinks as the start moves on, give or take a
    character cut in two), then a few steps on until it fits."""
    low, high = 0, len(data)
    while low < high:
        middle = (low + high) // 2
        if _utf8_size(data[middle:]) <= limit:
            high = middle
        else:
            low = middle + 1
    while low < len(data) and _utf8_size(data[low:]) > limit:
        low += 1
    return low


class Execution:
    """One running command. `kill()` may be called from any thread or a signal handler."""

    def __init__(
        self, command: str, timeout: float | None, env: Mapping[str, str] | Mapping[bytes, bytes]
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.kill_reason: str | None = None
        self._tails: tuple[Tail, Tail] | None = None
        # Re-entrant: a signal handler may call kill() while the main thread is inside it.
        self._lock = threading.RLock()

    def kill(self, reason: str) -> None:
        """Kill the command's whole process group now; `reason` becomes its error unless
        the command had already exited (its result stands; only stragglers are killed)."""
        with self._lock:
            finished = self.proc is not None and self.proc.poll() is not None
            if self.kill_reason is None and not finished:
                self.kill_reason = reason
        _signal_group(self.proc, signal.SIGKILL)

    def output(self) -> tuple[str, str] | None:
        """stdout and stderr so far while the command runs (None before it started)."""
        tails = self._tails
        return None if tails is None else (tails[0].snapshot(), tails[1].snapshot())

    @property
    def output_total(self) -> int:
        """Bytes of output so far: a change means there is new output to store."""
        tails = self._tails
        return 0 if tails is None else tails[0].total + tails[1].total

    def run(self) -> Result:
        """Start the command and wait for it, its timeout, or a kill."""
        started = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", self.command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env=dict(self.env),
            )
        except OSError as exc:
            return Result(None, "", "", time.monotonic() - started, f"could not start: {exc}")
        if self.kill_reason:  # killed before the process existed
            _signal_group(self.proc, signal.SIGKILL)
        out, err, timed_out = self._supervise(started)
        code = self.proc.wait()
        duration = time.monotonic() - started
        return Result(code, out.text(), err.text(), duration, self._error(code, err, timed_out))

    def _supervise(self, started: float) -> tuple[Tail, Tail, bool]:
        """Read both pipes until the shell has exited and they are drained, enforcing the
        deadline on the process itself (a command may close its pipes and keep running)."""
        assert self.proc and self.proc.stdout and self.proc.stderr
        tails = {self.proc.stdout: Tail(), self.proc.stderr: Tail()}
        self._tails = (tails[self.proc.stdout], tails[self.proc.stderr])
        watch = _Watch(deadline=started + self.timeout if self.timeout else None)
        watch.exit_fd = _exit_fd(self.proc.pid)
        with selectors.DefaultSelector() as sel:
            for stream in tails:
                sel.register(stream, selectors.EVENT_READ)
            if watch.exit_fd is not None:
                sel.register(watch.exit_fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                self._note_exit(watch, sel, now)
                if self._drained(watch, sel, tails, now):
                    break
                self._enforce_deadline(watch, now)
                _read_ready(sel, tails, self._next_wait(watch, now))
        if watch.exit_fd is not None:
            os.close(watch.exit_fd)
        for stream in tails:
            stream.close()
        if watch.timed_out:
            _signal_group(self.proc, signal.SIGKILL)  # stragglers that ignored SIGTERM
        return tails[self.proc.stdout], tails[self.proc.stderr], watch.timed_out

    def _note_exit(self, watch: _Watch, sel: selectors.BaseSelector, now: float) -> None:
        """Record when the shell exited (once); its pidfd has then nothing more to say."""
        assert self.proc is not None
        if watch.exited_at is None and self.proc.poll() is not None:
            watch.exited_at = now
            if watch.exit_fd is not None:
                sel.unregister(watch.exit_fd)

    @staticmethod
    def _drained(
        watch: _Watch, sel: selectors.BaseSelector, tails: Mapping[Any, Tail], now: float
    ) -> bool:
        """Done once the shell has exited and its pipes are closed, or a background child
        has held them open for DRAIN_AFTER_EXIT seconds since."""
        if watch.exited_at is None:
            return False
        pipes_open = any(key.fileobj in tails for key in sel.get_map().values())
        return not pipes_open or now - watch.exited_at > DRAIN_AFTER_EXIT

    def _enforce_deadline(self, watch: _Watch, now: float) -> None:
        """Past the timeout: TERM the group once, then KILL it after KILL_GRACE."""
        if watch.exited_at is not None or watch.deadline is None or now < watch.deadline:
            return
        if not watch.timed_out:
            watch.timed_out, watch.term_at = True, now
            _signal_group(self.proc, signal.SIGTERM)
        elif now - watch.term_at >= KILL_GRACE:
            _signal_group(self.proc, signal.SIGKILL)

    def _next_wait(self, watch: _Watch, now: float) -> float:
        """How long the next select may block: until the next thing to check is due."""
        # Without a pidfd the exit is only seen by polling, so poll often.
        sees_exit = watch.exit_fd is not None
        wait = 1.0 if sees_exit and not self.kill_reason else 0.05
        if watch.exited_at is not None:
            return max(min(wait, watch.exited_at + DRAIN_AFTER_EXIT - now), 0.0)
        if watch.term_at:
            return max(min(wait, watch.term_at + KILL_GRACE - now), 0.01)
        if watch.deadline is not None:
            return max(min(wait, watch.deadline - now), 0.0)
        return wait

    def _error(self, code: int, err: Tail, timed_out: bool) -> str | None:
        if self.kill_reason:
            return self.kill_reason
        if timed_out:
            return f"timed out after {self.timeout:g}s"
        if code == 0:
            return None
        if code < 0:
            return describe_exit(code)
        line = _last_line(bytes(err.data))
        return f"{describe_exit(code)}: {line}" if line else describe_exit(code)


ERROR_DETAIL = 300  # characters of stderr's last line kept in last_error


def _last_line(data: bytes) -> str:
    """The last line of stderr for last_error: bytes that are not UTF-8 written as \\xNN
    (not as U+FFFD, which says nothing), terminal controls escaped, cut to ERROR_DETAIL."""
    last = data.strip().rsplit(b"\n", 1)[-1].strip()
    # Four bytes per character at most: decode no more than can be kept.
    text = last[: ERROR_DETAIL * 4].decode("utf-8", "backslashreplace")
    return printable(text, ERROR_DETAIL)


@dataclass
class _Watch:
    """What supervising one command has seen so far (monotonic times)."""

    deadline: float | None
    exit_fd: int | None = None
    exited_at: float | None = None
    timed_out: bool = False
    term_at: float = 0.0


def _read_ready(sel: selectors.BaseSelector, tails: Mapping[Any, Tail], timeout: float) -> None:
    """Wait up to `timeout` for output; feed what arrived to its tail, and stop watching a
    pipe at its end."""
    for key, _ in sel.select(timeout):
        if key.fileobj in tails:
            chunk = os.read(key.fd, 65536)
            if chunk:
                tails[key.fileobj].feed(chunk)
            else:
                sel.unregister(key.fileobj)


def _exit_fd(pid: int) -> int | None:
    """A descriptor that becomes readable when the process exits (Linux pidfd), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _signal_group(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is None:
        return
    try:
        os.killpg(proc.pid, sig)  # the group id is the shell's pid (start_new_session)
    except (ProcessLookupError, PermissionError):
        pass
