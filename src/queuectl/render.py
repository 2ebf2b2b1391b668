"""Output: tables, JSON documents, safe text, colour (off with NO_COLOR or when not a tty)."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime, timezone, tzinfo
from typing import Any, Iterable, Sequence, Union

from .models import (
    MAX_TIME,
    READY_STATES,
    TIME_FIELDS,
    Job,
    JobState,
    Schedule,
    WorkerInfo,
    WorkerStatus,
    format_time,
    to_json_ready,
)
from .text import UNSAFE_IN_JSON, printable, wait_words

LOCAL = "local"
# How times are shown to people: None is UTC (the default), LOCAL the machine's zone.
Zone = Union[tzinfo, str, None]

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


Blockers = dict[str, list[tuple[str, str]]]


def waits_for(blockers: Sequence[tuple[str, str]]) -> str:
    """`a (processing), b (pending)`: the dependencies a job still waits for."""
    return ", ".join(f"{dep} ({state})" for dep, state in blockers)


def display_time(ts: float | None, zone: Zone = None) -> str | None:
    """A time for people: ISO 8601 in UTC (`…Z`, as JSON prints it) unless a zone is given,
    then with that zone's offset (`2026-11-22T09:05:09.123-05:00`)."""
    if ts is None or zone is None:
        return format_time(ts)
    moment = datetime.fromtimestamp(ts, timezone.utc)
    # astimezone() with no zone applies the machine's rules for that moment (DST included).
    shown = moment.astimezone(zone) if isinstance(zone, tzinfo) else moment.astimezone()
    return shown.isoformat(timespec="milliseconds")


def jobs_table(
    jobs: Sequence[Job],
    state: str | None,
    blocked: Blockers | None = None,
    *,
    now: float | None = None,
    zone: Zone = None,
) -> str:
    """ID, State, Attempts, Priority, Command (shortened), Run At or Updated At; for pending
    and failed jobs also Ready: `now`, or how long until their run_at; and Waits For when a
    listed job waits for dependencies."""
    waiting = state in READY_STATES
    now = time.time() if now is None else now
    blocked = blocked or {}
    rows = []
    for j in jobs:
        row: list[Any] = [
            printable(j.id, 40),
            colour(j.state, j.state),
            j.attempts,
            j.priority,
            printable(j.command, 48),
            display_time(j.run_at if waiting else j.updated_at, zone),
        ]
        if waiting:
            if j.id in blocked:
                row.append("after its dependencies")
            else:
                row.append("now" if j.run_at <= now else wait_words(j.run_at - now))
        rows.append(row)
    headers = ["ID", "State", "Attempts", "Priority", "Command"]
    headers += ["Run At", "Ready"] if waiting else ["Updated At"]
    if blocked:
        headers.append("Waits For")
        for row, job in zip(rows, jobs, strict=True):
            row.append(printable(waits_for(blocked.get(job.id, [])), 40) or "-")
    return table(rows, headers)


def more_rows_note(shown: int) -> str:
    """The line under a table cut by --limit."""
    return f"(first {shown} shown; more exist: raise --limit to see them)"


def job_json(job: Job) -> dict[str, Any]:
    """A job as `--json` prints it."""
    return to_json_ready(job)


def show_job(job: Job, blockers: Sequence[tuple[str, str]] | None = None, zone: Zone = None) -> str:
    """Every field of a job, one per line; outputs by their size (`log` prints them); and,
    for a job blocked by dependencies, those it still waits for."""
    data: dict[str, Any] = to_json_ready(job)
    for name in TIME_FIELDS:
        data[name] = display_time(getattr(job, name), zone)
    data["after"] = ", ".join(job.after) or None
    if blockers:
        data["waits_for"] = waits_for(blockers)
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
        "queues": list(worker.queues),
    }


def upcoming_run(schedule: Schedule) -> float | None:
    """When the schedule runs next; None while it is paused (or has no next tick)."""
    return None if schedule.paused or schedule.next_run_at >= MAX_TIME else schedule.next_run_at


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    """A schedule as `schedule list --json` prints it; next_run_at is null while paused."""
    upcoming = upcoming_run(schedule)
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
            printable(",".join(w.queues), 30) or "(all)",
        )
        for w in workers
    ]
    return table(
        rows,
        ["ID", "Host", "PID", "Status", "Current Job", "Heartbeat", "Done", "Failed", "Queues"],
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
