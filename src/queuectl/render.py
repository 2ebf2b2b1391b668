"""Output: tables, JSON documents, safe text, colour (off with NO_COLOR or when not a tty)."""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any, Iterable, Sequence

from .models import (
    MAX_TIME,
    READY_STATES,
    Job,
    JobState,
    Schedule,
    WorkerInfo,
    WorkerStatus,
    format_time,
    to_json_ready,
)
from .text import UNSAFE_IN_JSON, printable

# Keyed by the enums; a state read back from a store as a plain string finds the same entry.
STATE_COLOURS: dict[str, str] = {
    JobState.PENDING: "33",
    JobState.PROCESSING: "36",
    JobState.COMPLETED: "32",
    JobState.FAILED: "35",
    JobState.DEAD: "31",
    WorkerStatus.IDLE: "32",
    WorkerStatus.BUSY: "36",
    WorkerStatus.STOPPING: "33",
    WorkerStatus.LOST: "31",
}


def use_colour() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set."""
    return "NO_COLOR" not in os.environ and sys.stdout.isatty()


def colour(text: str, key: str) -> str:
    """Wrap text in the colour for a state, when colour is on."""
    code = STATE_COLOURS.get(key)
    return f"\x1b[{code}m{text}\x1b[0m" if code and use_colour() else text


def emit_json(document: Any) -> None:
    """Print one JSON document. Characters a terminal could act on are written as \\u escapes
    (json leaves DEL, C1 controls and bidi overrides raw when ensure_ascii is off)."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    sys.stdout.write(UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain table (tabulate imported only when one is printed)."""
    from tabulate import tabulate

    table: str = tabulate(
        list(rows), headers=list(headers), tablefmt="simple", disable_numparse=True
    )
    return table


def jobs_table(jobs: Sequence[Job], state: str | None) -> str:
    """ID, State, Attempts, Priority, Command (shortened), Run At or Updated At."""
    waiting = state in READY_STATES
    when = "Run At" if waiting else "Updated At"
    rows = [
        (
            printable(j.id, 40),
            colour(j.state, j.state),
            j.attempts,
            j.priority,
            printable(j.command, 48),
            format_time(j.run_at if waiting else j.updated_at),
        )
        for j in jobs
    ]
    return table(rows, ["ID", "State", "Attempts", "Priority", "Command", when])


def job_json(job: Job) -> dict[str, Any]:
    """A job as `--json` prints it."""
    return to_json_ready(job)


def show_job(job: Job) -> str:
    """Every field of a job, one per line; outputs by their size (`log` prints them)."""
    data = to_json_ready(job)
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if key in ("stdout", "stderr") and value is not None:
            size = len(value.encode("utf-8", "replace"))
            value = f"{size} bytes (see: queuectl log {job.id})" if size else "(empty)"
        shown = "-" if value is None else printable(str(value), 200)
        if key == "state":
            shown = colour(shown, str(value))
        lines.append(f"{key.ljust(width)}  {shown}")
    return "\n".join(lines)


def worker_json(worker: WorkerInfo, now: float) -> dict[str, Any]:
    """A worker as `worker list --json` prints it."""
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "status": worker.status,
        "current_job": worker.current_job,
        "started_at": format_time(worker.started_at),
        "last_heartbeat": format_time(worker.last_heartbeat),
        "heartbeat_age": round(max(now - worker.last_heartbeat, 0.0), 3),
        "jobs_done": worker.jobs_done,
        "jobs_failed": worker.jobs_failed,
    }


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    """A schedule as `schedule list --json` prints it; next_run_at is null while paused."""
    upcoming = None if schedule.paused or schedule.next_run_at >= MAX_TIME else schedule.next_run_at
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "tz": schedule.tz,
        "command": schedule.command,
        "next_run_at": format_time(upcoming),
        "last_run_at": format_time(schedule.last_run_at),
        "paused": schedule.paused,
    }


def workers_table(workers: Sequence[WorkerInfo], now: float | None = None) -> str:
    """ID, Host, PID, Status, Current Job, Heartbeat age, Done, Failed."""
    now = time.time() if now is None else now
    rows = [
        (
            printable(w.id, 40),
            printable(w.host, 30),
            w.pid,
            colour(w.status, w.status),
            printable(w.current_job or "-", 30),
            f"{max(now - w.last_heartbeat, 0):.0f}s ago",
            w.jobs_done,
            w.jobs_failed,
        )
        for w in workers
    ]
    return table(
        rows, ["ID", "Host", "PID", "Status", "Current Job", "Heartbeat", "Done", "Failed"]
    )


def status_text(counts: dict[str, int], active: int) -> str:
    """The `status` summary of SPEC §5."""
    labels = (
        ("Pending", JobState.PENDING),
        ("Processing", JobState.PROCESSING),
        ("Completed", JobState.COMPLETED),
        ("Failed", JobState.FAILED),
        ("Dead (DLQ)", JobState.DEAD),
    )
    lines = [f"{label}: {counts.get(key, 0)}" for label, key in labels]
    lines.append(f"Active Workers: {active}")
    return "\n".join(lines)
