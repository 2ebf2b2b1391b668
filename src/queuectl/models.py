"""The job: its fields, its states, and the validation of a job spec. Pure: no I/O."""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from .errors import ForeignRecord, InvalidInput


class _Text(str, Enum):
    """A str enum whose members are their values wherever text is made (str(), f-strings,
    JSON, the stores), so they compare equal to and replace the plain strings."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)


class JobState(_Text):
    """The five states of SPEC §4."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    DEAD = "dead"


class WorkerStatus(_Text):
    """A worker row's status: live (idle, busy, stopping) or gone (stopped, lost)."""

    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"
    STOPPED = "stopped"
    LOST = "lost"


PENDING, PROCESSING, COMPLETED = JobState.PENDING, JobState.PROCESSING, JobState.COMPLETED
FAILED, DEAD = JobState.FAILED, JobState.DEAD
STATES = tuple(JobState)
READY_STATES = (PENDING, FAILED)

MAX_COMMAND_BYTES = 64 * 1024
# Integers are kept inside 32 bits so both stores hold them exactly and no overflow can occur.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
QUEUE_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")
DEFAULT_QUEUE = "default"
MAX_AFTER = 10_000  # dependencies of one job: a fan-in of ten thousand, and bounded
SPEC_FIELDS = (
    "id",
    "command",
    "max_retries",
    "priority",
    "delay",
    "run_at",
    "timeout",
    "queue",
    "after",
)

# Public fields, in the order `show` prints them (SPEC §4).
PUBLIC_FIELDS = (
    "id",
    "command",
    "state",
    "attempts",
    "max_retries",
    "priority",
    "timeout",
    "run_at",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "locked_by",
    "locked_at",
    "exit_code",
    "last_error",
    "stdout",
    "stderr",
    "duration",
    "queue",
    "after",
)
TIME_FIELDS = ("run_at", "created_at", "updated_at", "started_at", "finished_at", "locked_at")
# run_at must be a time every store, and format_time, can hold: 1970-01-01 up to 9999-12-30 UTC.
MAX_TIME = 253402128000.0


def shown(value: Any, limit: int = 60) -> str:
    """repr() of a value the user gave (JSON's true, false and null spelt as JSON does),
    cut so that an error message stays one short line."""
    text = (
        {True: "true", False: "false", None: "null"}.get(value, "")
        if (value is None or isinstance(value, bool))
        else repr(value)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Job:
    """A job as the stores keep it. Times are seconds since the epoch (UTC), floats."""

    id: str
    command: str
    state: str = PENDING
    attempts: int = 0
    max_retries: int = 3
    priority: int = 0
    timeout: float | None = None
    run_at: float = 0.0
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    locked_by: str | None = None
    locked_at: float | None = None
    exit_code: int | None = None
    last_error: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    duration: float | None = None
    queue: str = DEFAULT_QUEUE
    after: list[str] = field(default_factory=list)
    # Internal: enqueue order (a nanosecond stamp), the fencing token of the current claim
    # (kept after the worker's own result, so it can tell a stored result from a lost lease),
    # when that claim's lease was last renewed, and the deadline its owner wrote with it
    # (renewal time + stale_after as the owner knew it; None on rows of older releases).
    seq: int = 0
    lease_token: str | None = None
    lease_renewed_at: float | None = None
    lease_expires_at: float | None = None
    # Internal: how many of `after` are not completed yet (0 = claimable); a cancel asked
    # for while the job runs; the running attempt's output so far (cleared when it ends).
    waiting: int = 0
    cancel_requested: bool = False
    live_stdout: str | None = None
    live_stderr: str | None = None

    def to_record(self) -> dict[str, Any]:
        """Every field, internal ones included, as the stores write them."""
        return asdict(self)

    def public(self) -> dict[str, Any]:
        """The fields of SPEC §4, raw (times still epoch floats)."""
        data = {name: getattr(self, name) for name in PUBLIC_FIELDS}
        data["after"] = list(self.after)
        return data

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Job:
        """Build a job from a store record, ignoring keys it does not know (e.g. `_id`).
        A record of another shape (another program's document) raises ForeignRecord."""
        problem = shape_problem(record, _JOB_SHAPE)
        if problem:
            raise ForeignRecord("job", record.get("id"), problem)
        data = {k: v for k, v in record.items() if k in _JOB_SHAPE}
        # A record written before queues and dependencies existed has neither field.
        if data.get("queue") is None:
            data["queue"] = DEFAULT_QUEUE
        after = data.get("after")
        if isinstance(after, str):  # SQLite keeps the array as JSON text
            after = json.loads(after)
        data["after"] = list(after or [])
        data["waiting"] = int(data.get("waiting") or 0)
        data["cancel_requested"] = bool(data.get("cancel_requested"))
        return cls(**data)


JOB_COLUMNS = tuple(f.name for f in fields(Job))

# What each field of a stored record may hold: its types, and whether it must be there.
_NUMBER = (int, float)
_TEXT = (str,)
_INT = (int,)
_JOB_SHAPE: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": (_TEXT, True),
    "command": (_TEXT, True),
    "state": (_TEXT, True),
    "attempts": (_INT, True),
    "max_retries": (_INT, True),
    "priority": (_INT, False),
    "timeout": (_NUMBER, False),
    "run_at": (_NUMBER, True),
    "created_at": (_NUMBER, True),
    "updated_at": (_NUMBER, True),
    "started_at": (_NUMBER, False),
    "finished_at": (_NUMBER, False),
    "locked_by": (_TEXT, False),
    "locked_at": (_NUMBER, False),
    "exit_code": (_INT, False),
    "last_error": (_TEXT, False),
    "stdout": (_TEXT, False),
    "stderr": (_TEXT, False),
    "duration": (_NUMBER, False),
    "seq": (_INT, True),
    "lease_token": (_TEXT, False),
    "lease_renewed_at": (_NUMBER, False),
    "lease_expires_at": (_NUMBER, False),
    "queue": (_TEXT, False),
    "after": ((list, str), False),
    "waiting": (_INT, False),
    "cancel_requested": ((bool, int), False),
    "live_stdout": (_TEXT, False),
    "live_stderr": (_TEXT, False),
}


def shape_problem(record: dict[str, Any], shape: dict[str, tuple[tuple[type, ...], bool]]) -> str:
    """Why a record is not of that shape (a missing field, a value of another type), or ''."""
    for name, (types, required) in shape.items():
        value = record.get(name)
        if value is None:
            if required:
                return f"field {name!r} is missing"
        elif not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return f"field {name!r} holds {type(value).__name__} {shown(value, 40)}"
    return ""


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_job_id(now: float | None = None) -> str:
    """A ULID-like id: 10 characters of millisecond time, then 10 random; sorts by time."""
    ms = int((time.time() if now is None else now) * 1000)
    rand = int.from_bytes(os.urandom(7), "big")
    chars = []
    for value, width in ((ms, 10), (rand, 10)):
        part = []
        for _ in range(width):
            part.append(_CROCKFORD[value & 31])
            value >>= 5
        chars.append("".join(reversed(part)))
    return "".join(chars)


def format_time(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds, e.g. 2026-11-22T14:05:09.123Z."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_time(text: str, what: str = "run_at") -> float:
    """ISO 8601 to epoch seconds; without an offset the time is local (SPEC §5)."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput(f"{what} must be an ISO 8601 time, e.g. 2026-11-22T14:05:00Z")
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    # Python 3.10's fromisoformat takes only 3 or 6 fraction digits: write 6.
    raw = re.sub(r"(?<=\d)\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], raw)
    try:
        parsed = datetime.fromisoformat(raw)
        if parsed.tzinfo is None:
            parsed = parsed.astimezone()  # local time
        stamp = parsed.timestamp()
    except (ValueError, OverflowError, OSError):
        raise InvalidInput(
            f"{what} {shown(text)} is not an ISO 8601 time; use e.g. 2026-11-22T14:05:00Z"
        ) from None
    if not 0 <= stamp <= MAX_TIME:
        raise InvalidInput(f"{what} {shown(text)} must be between 1970-01-01 and 9999-12-30")
    return stamp


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
DURATION_PATTERN = re.compile(r"(\d+(?:\.\d+)?|\.\d+)([smhd]?)", re.ASCII)
MAX_DURATION = 100 * 365 * 86_400  # a hundred years: older than that is "all of them"


def parse_duration(text: str, what: str = "--older-than") -> float:
    """`90s`, `30m`, `12h`, `7d` or a bare number of seconds (fractions allowed, case and
    surrounding spaces ignored) as seconds; anything else is InvalidInput naming the forms."""
    match = DURATION_PATTERN.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"{what} {shown(text, 40)} is not a duration; use e.g. 90s, 30m, 12h, 7d "
            "or a number of seconds"
        )
    seconds = float(match.group(1)) * DURATION_UNITS[match.group(2) or "s"]
    if seconds > MAX_DURATION:
        raise InvalidInput(f"{what} {shown(text, 40)} is more than a hundred years")
    return seconds


def _integer(spec: dict[str, Any], name: str, minimum: int = INT_MIN) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer, got {shown(value)}")
    if not minimum <= value <= INT_MAX:
        raise InvalidInput(
            f"{name} must be between {minimum} and {INT_MAX}, got {shown(value, 30)}"
        )
    return value


def _seconds(spec: dict[str, Any], name: str, *, positive: bool) -> float | None:
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInput(f"{name} must be a number of seconds, got {shown(value)}")
    rule_ok = value > 0 if positive else value >= 0
    if not math.isfinite(value) or not rule_ok or value > 10**9:
        rule = "> 0" if positive else ">= 0"
        raise InvalidInput(f"{name} must be {rule} and at most 1e9 seconds, got {shown(value)}")
    return float(value)


def validate_command(command: Any) -> str:
    """A command is a non-blank string of at most 64 KiB of UTF-8."""
    if not isinstance(command, str):
        raise InvalidInput("command is required and must be a string")
    if not command.strip():
        raise InvalidInput("command must not be blank")
    try:
        size = len(command.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("command must be valid UTF-8 text") from None
    if size > MAX_COMMAND_BYTES:
        raise InvalidInput(f"command is {size} bytes; the limit is {MAX_COMMAND_BYTES} (64 KiB)")
    if "\x00" in command:
        raise InvalidInput("command must not contain a NUL character")
    return command


def validate_id(job_id: Any) -> str:
    """Ids are 1-128 characters of A-Z a-z 0-9 . _ : -"""
    if not isinstance(job_id, str) or not ID_PATTERN.fullmatch(job_id):
        raise InvalidInput(
            f"id {shown(job_id, 50)} is not allowed; use 1-128 characters of A-Z a-z 0-9 . _ : -"
        )
    return job_id


def validate_queue(queue: Any) -> str:
    """Queue names are 1-64 characters of A-Z a-z 0-9 . _ : -"""
    if not isinstance(queue, str) or not QUEUE_PATTERN.fullmatch(queue):
        raise InvalidInput(
            f"queue {shown(queue, 50)} is not allowed; use 1-64 characters of A-Z a-z 0-9 . _ : -"
        )
    return queue


def validate_after(after: Any) -> list[str]:
    """`after` is an array of job ids (repeats are dropped, order kept)."""
    if not isinstance(after, list):
        raise InvalidInput(f"after must be an array of job ids, got {shown(after)}")
    if len(after) > MAX_AFTER:
        raise InvalidInput(f"after lists {len(after)} jobs; the limit is {MAX_AFTER}")
    for dep in after:
        if not isinstance(dep, str) or not ID_PATTERN.fullmatch(dep):
            raise InvalidInput(
                f"after: {shown(dep, 50)} is not a job id; use 1-128 characters of "
                "A-Z a-z 0-9 . _ : -"
            )
    return list(dict.fromkeys(after))


def build_job(
    spec: dict[str, Any], *, now: float, default_max_retries: int, default_timeout: float
) -> Job:
    """Validate a job spec (SPEC §5 `enqueue`) and return the pending job it describes.

    Raises InvalidInput naming the rule that was broken; nothing else is checked here
    (uniqueness is the store's business).
    """
    if not isinstance(spec, dict):
        raise InvalidInput("a job spec must be a JSON object")
    unknown = sorted(set(spec) - set(SPEC_FIELDS))
    if unknown:
        raise InvalidInput(
            f"unknown field {shown(unknown[0], 40)}; allowed fields: {', '.join(SPEC_FIELDS)}"
        )
    command = validate_command(spec.get("command"))
    job_id = validate_id(spec["id"]) if spec.get("id") is not None else new_job_id(now)
    max_retries = _integer(spec, "max_retries", minimum=0)
    priority = _integer(spec, "priority")
    delay = _seconds(spec, "delay", positive=False)
    timeout = _seconds(spec, "timeout", positive=True)
    if spec.get("run_at") is not None and delay is not None:
        raise InvalidInput("give either delay or run_at, not both")
    run_at = now + (delay or 0.0)
    if spec.get("run_at") is not None:
        run_at = parse_time(spec["run_at"])
    if timeout is None and default_timeout > 0:
        timeout = float(default_timeout)
    queue = validate_queue(spec["queue"]) if spec.get("queue") is not None else DEFAULT_QUEUE
    after = validate_after(spec["after"]) if spec.get("after") is not None else []
    if job_id in after:
        raise InvalidInput(f"job {job_id} cannot run after itself")
    return Job(
        id=job_id,
        command=command,
        max_retries=default_max_retries if max_retries is None else max_retries,
        priority=priority or 0,
        timeout=timeout,
        run_at=run_at,
        created_at=now,
        updated_at=now,
        queue=queue,
        after=after,
    )


def check_state(state: str | None) -> str | None:
    """None or one of the five states; anything else is InvalidInput naming them."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"unknown state {shown(state, 40)}; use one of: {', '.join(STATES)}")
    return state


def to_json_ready(job: Job) -> dict[str, Any]:
    """The public fields with times as ISO 8601 strings (SPEC §3)."""
    data = job.public()
    for name in TIME_FIELDS:
        data[name] = format_time(data[name])
    return data


LIVE_WORKER_STATUSES = (WorkerStatus.IDLE, WorkerStatus.BUSY, WorkerStatus.STOPPING)


@dataclass
class WorkerInfo:
    """A worker's row in `workers` (SPEC §5 `worker start`)."""

    id: str
    host: str
    pid: int
    status: str = WorkerStatus.IDLE
    current_job: str | None = None
    started_at: float = 0.0
    last_heartbeat: float = 0.0
    jobs_done: int = 0
    jobs_failed: int = 0
    stop_requested: bool = False
    # The queues it serves; empty means every queue.
    queues: list[str] = field(default_factory=list)
    # Internal: which machine and pid namespace `pid` belongs to (hostnames can repeat, e.g.
    # containers sharing the host's network), so only a true neighbour judges its pid; and
    # until when the worker vouches for itself (last heartbeat + stale_after as it knew it
    # then; None on rows of older releases).
    machine: str = ""
    expires_at: float | None = None

    def to_record(self) -> dict[str, Any]:
        """Every field, as the stores write them."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> WorkerInfo:
        """Build from a store record, ignoring unknown keys. A record of another shape
        raises ForeignRecord."""
        problem = shape_problem(record, _WORKER_SHAPE)
        if problem:
            raise ForeignRecord("worker", record.get("id"), problem)
        data = {k: v for k, v in record.items() if k in _WORKER_SHAPE}
        data["stop_requested"] = bool(data.get("stop_requested"))
        queues = data.get("queues")
        if isinstance(queues, str):  # SQLite keeps the array as JSON text
            queues = json.loads(queues)
        data["queues"] = list(queues or [])
        return cls(**data)


WORKER_COLUMNS = tuple(f.name for f in fields(WorkerInfo))
_WORKER_SHAPE: dict[str, tuple[tuple[type, ...], bool]] = {
    "id": (_TEXT, True),
    "host": (_TEXT, True),
    "pid": (_INT, True),
    "status": (_TEXT, True),
    "current_job": (_TEXT, False),
    "started_at": (_NUMBER, True),
    "last_heartbeat": (_NUMBER, True),
    "jobs_done": (_INT, False),
    "jobs_failed": (_INT, False),
    "stop_requested": ((bool, int), False),
    "machine": (_TEXT, False),
    "expires_at": (_NUMBER, False),
    "queues": ((list, str), False),
}


# -- schedules (SPEC §7.5) ----------------------------------------------------------------------
SCHEDULE_NAME_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass
class Schedule:
    """A recurring job as the stores keep it. `options` holds the enqueue fields every job of
    the schedule gets (priority, max_retries, timeout, ...); times are epoch seconds."""

    name: str
    cron: str
    tz: str
    command: str
    options: dict[str, Any] = field(default_factory=dict)
    next_run_at: float = 0.0
    last_run_at: float | None = None
    paused: bool = False
    created_at: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """Every field, as the stores write them."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Schedule:
        """Build from a store record, ignoring unknown keys."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in record.items() if k in known}
        data["paused"] = bool(data.get("paused"))
        return cls(**data)


SCHEDULE_COLUMNS = tuple(f.name for f in fields(Schedule))
