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
from typing import Mapping

from .text import describe_exit

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

    def feed(self, chunk: bytes) -> None:
        """Append, dropping the oldest bytes past the limit."""
        self.data += chunk
        excess = len(self.data) - self.limit
        if excess > 0:
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> str:
        """The kept bytes as text (invalid UTF-8 replaced), saying when output was cut."""
        body = bytes(self.data).decode("utf-8", errors="replace")
        if self.dropped:
            return f"[queuectl: output cut, first {self.dropped} bytes dropped]\n{body}"
        return body


class Execution:
    """One running command. `kill()` may be called from any thread or a signal handler."""

    def __init__(self, command: str, timeout: float | None, env: Mapping[str, str]) -> None:
        self.command = command
        self.timeout = timeout
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.kill_reason: str | None = None
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
        deadline = started + self.timeout if self.timeout else None
        timed_out, term_at, exited_at = False, 0.0, None
        exit_fd = _exit_fd(self.proc.pid)
        with selectors.DefaultSelector() as sel:
            for stream in tails:
                sel.register(stream, selectors.EVENT_READ)
            if exit_fd is not None:
                sel.register(exit_fd, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if exited_at is None and self.proc.poll() is not None:
                    exited_at = now
                    if exit_fd is not None:
                        sel.unregister(exit_fd)
                pipes_open = any(key.fileobj in tails for key in sel.get_map().values())
                if exited_at is not None and (not pipes_open or now - exited_at > DRAIN_AFTER_EXIT):
                    break
                if exited_at is None and deadline is not None and now >= deadline:
                    if not timed_out:
                        timed_out, term_at = True, now
                        _signal_group(self.proc, signal.SIGTERM)
                    elif now - term_at >= KILL_GRACE:
                        _signal_group(self.proc, signal.SIGKILL)
                for key, _ in sel.select(
                    self._next_wait(now, deadline, term_at, exited_at, exit_fd is not None)
                ):
                    if key.fileobj in tails:
                        chunk = os.read(key.fd, 65536)
                        if chunk:
                            tails[key.fileobj].feed(chunk)
                        else:
                            sel.unregister(key.fileobj)
        if exit_fd is not None:
            os.close(exit_fd)
        for stream in tails:
            stream.close()
        if timed_out:
            _signal_group(self.proc, signal.SIGKILL)  # stragglers that ignored SIGTERM
        return tails[self.proc.stdout], tails[self.proc.stderr], timed_out

    def _next_wait(
        self,
        now: float,
        deadline: float | None,
        term_at: float,
        exited_at: float | None,
        sees_exit: bool,
    ) -> float:
        # Without a pidfd the exit is only seen by polling, so poll often.
        wait = 1.0 if sees_exit and not self.kill_reason else 0.05
        if exited_at is not None:
            return max(min(wait, exited_at + DRAIN_AFTER_EXIT - now), 0.0)
        if term_at:
            return max(min(wait, term_at + KILL_GRACE - now), 0.01)
        if deadline is not None:
            return max(min(wait, deadline - now), 0.0)
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
        last_line = bytes(err.data).decode("utf-8", "replace").strip().splitlines()[-1:]
        detail = f": {last_line[0][:300]}" if last_line else ""
        return f"{describe_exit(code)}{detail}"


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
