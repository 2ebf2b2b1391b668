"""`queuectl log --follow`: a job's output as it comes, until its attempt ends.

Workers store a running job's output (its last 64 KiB per stream) about once a second; this
polls the job and prints only what is new, working out where the stored tail stands in the
whole stream from the count of bytes it says were cut.
"""

from __future__ import annotations

import re
import sys
import time
from typing import TextIO

from ..jobs import JobManager
from ..models import COMPLETED, DEAD, PROCESSING, Job
from ..text import describe_exit, printable, safe_block

POLL = 0.25  # seconds between reads of the job while following
CUT = re.compile(r"\A\[queuectl: output cut, first (\d+) bytes dropped\]\n")


class StreamTail:
    """What of one stream was printed already, as a byte offset into the whole stream."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.printed = 0
        self.ends_line = True

    def show(self, stored: str | None) -> None:
        """Print what `stored` (a tail as the worker keeps it) holds beyond what was shown."""
        if not stored:
            return
        match = CUT.match(stored)
        dropped = int(match.group(1)) if match else 0
        body = stored[match.end() :] if match else stored
        data = body.encode("utf-8", "replace")
        start = self.printed - dropped
        if start < 0:  # more came between two reads than the tail keeps
            self.out.write(f"[queuectl: {-start} bytes of output not shown]\n")
            start = 0
        if start < len(data):
            chunk = safe_block(data[start:].decode("utf-8", "replace"))
            self.out.write(chunk)
            self.out.flush()
            self.ends_line = chunk.endswith("\n")
        self.printed = dropped + len(data)


def follow_job(manager: JobManager, job: Job, poll: float = POLL) -> None:
    """Print the job's output so far, then new output until the attempt ends, then its
    state line. A job that has not started yet is waited for first."""
    if job.state not in (PROCESSING, COMPLETED, DEAD):
        sys.stderr.write(
            f"Job {printable(job.id)} has not started yet ({job.state}); waiting for it\n"
        )
        sys.stderr.flush()
        while job.state not in (PROCESSING, COMPLETED, DEAD):
            time.sleep(poll)
            job = manager.get(job.id)
    out, err = StreamTail(sys.stdout), StreamTail(sys.stderr)
    token = job.lease_token
    while job.state == PROCESSING and job.lease_token == token:
        out.show(job.live_stdout)
        err.show(job.live_stderr)
        time.sleep(poll)
        job = manager.get(job.id)
    if job.finished_at is not None or job.state in (COMPLETED, DEAD):
        out.show(job.stdout)
        err.show(job.stderr)
    for stream in (out, err):
        if not stream.ends_line:  # the state line starts a line of its own
            stream.out.write("\n")
    sys.stdout.write(state_line(job) + "\n")
    sys.stdout.flush()


def state_line(job: Job) -> str:
    """`Job j1: completed, exit status 0, attempt 1/4` (and the error when there is one)."""
    parts = [f"Job {printable(job.id)}: {job.state}"]
    if job.finished_at is not None or job.exit_code is not None:
        parts.append(describe_exit(job.exit_code))
    parts.append(f"attempt {job.attempts}/{job.max_retries + 1}")
    line = ", ".join(parts)
    if job.last_error and job.state != COMPLETED:
        line += f"; {printable(job.last_error, 200)}"
    return line
