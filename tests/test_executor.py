"""The executor on its own: timeouts enforced on the process, not on its pipes; a kill that
comes after the command exited leaves its result alone."""

from __future__ import annotations

import os
import threading
import time

from queuectl.executor import Execution


def run(command: str, timeout: float | None = None, kill_after: float | None = None):
    execution = Execution(command, timeout, dict(os.environ))
    if kill_after is not None:
        timer = threading.Timer(kill_after, execution.kill, args=("interrupted",))
        timer.start()
    started = time.monotonic()
    result = execution.run()
    return result, time.monotonic() - started


def test_a_command_that_closes_its_pipes_still_times_out():
    result, took = run("exec >/dev/null 2>&1; sleep 5", timeout=0.5)
    assert result.error == "timed out after 0.5s"
    assert took < 3


def test_a_command_that_ignores_sigterm_is_killed_after_the_grace():
    result, took = run("trap '' TERM; exec >/dev/null 2>&1; sleep 8", timeout=0.3)
    assert result.error == "timed out after 0.3s" and result.exit_code == -9
    assert took < 5


def test_a_background_child_holding_the_pipes_is_not_a_timeout():
    # The shell exits 0 at once; its child keeps stdout open past the deadline.
    result, took = run("echo hi; sleep 3 &", timeout=1.0)
    assert (result.error, result.exit_code, result.stdout) == (None, 0, "hi\n")
    assert took < 1.0


def test_a_kill_after_the_command_exited_keeps_its_success():
    result, _ = run("echo done; sleep 5 &", kill_after=0.2)
    assert (result.error, result.exit_code, result.stdout) == (None, 0, "done\n")


def test_a_kill_while_running_is_the_error():
    result, took = run("sleep 5", kill_after=0.2)
    assert result.error == "interrupted" and took < 3


def test_binary_stderr_is_stored_escaped_and_bounded_in_the_error():
    # 3072 bytes of binary noise on stderr and no newline: all of it is the "last line".
    noise = "".join(f"\\{b:03o}" for b in range(128, 256)) * 24
    result, _ = run(f"printf '{noise}' >&2; exit 3")
    assert result.exit_code == 3
    error = result.error
    assert error.startswith("exit status 3: ")
    assert "\ufffd" not in error
    assert "\\x80\\x81" in error  # the bytes themselves, escaped
    assert len(error) <= 320 and error.endswith("…")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in error)


def test_text_stderr_keeps_its_last_line_in_the_error():
    result, _ = run("echo first >&2; printf 'caf\\303\\251 \\033[31mred\\n' >&2; exit 1")
    assert result.error == "exit status 1: café \\x1b[31mred"
