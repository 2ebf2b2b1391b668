"""Taking over a Node-version database (SPEC §7.8): its jobs and config, copied into this
store.

A Node job document (seed design) has an ObjectId `_id` and a string `id`, `command`,
`state`, `attempts`, `max_retries`, BSON dates `created_at`, `updated_at`, `next_retry_at`
or `next_run_at`, `locked_by` or `processing_by`, `locked_at`. It becomes a queuectl job with
the same id, state and attempts; one that was running comes back `pending` (nothing holds
it here), its attempts as counted. A `configs` document `{key: "max-retries", value: 5}`
sets the key queuectl spells `max_retries`.

Nothing is overwritten: a job whose id this store holds, and a config key this store has
set, are skipped, so importing twice imports nothing new. A document that cannot be a job
is skipped with the reason. A dry run reads the same and writes nothing.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from .config import KEYS, ConfigManager, canonical_key, parse_value
from .errors import InvalidInput
from .jobs import JobManager
from .models import (
    COMPLETED,
    DEAD,
    FAILED,
    ID_PATTERN,
    INT_MAX,
    MAX_TIME,
    PENDING,
    PROCESSING,
    STATES,
    Job,
    parse_time,
    shown,
    validate_command,
)
from .store.base import ID_BATCH

EXAMPLES = 3  # ids named per skip reason
OUTPUT_LIMIT = 64 * 1024  # bytes kept per output stream, as a worker keeps them
REQUEUED = "was running when imported from the Node version; its attempts are counted"
# Millisecond epoch numbers (JavaScript's Date.now()) are above this; seconds are far below.
MS_THRESHOLD = 1e11

Progress = Callable[[int, "int | None"], None]


class Unusable(Exception):
    """Why a document cannot be imported (a reason shared by many, so it can be counted)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Skips:
    """Skipped records by reason: how many, and the first few of them by name."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, name: str) -> None:
        """Count one skipped record."""
        self.counts[reason] += 1
        named = self.examples.setdefault(reason, [])
        if len(named) < EXAMPLES:
            named.append(name)

    @property
    def total(self) -> int:
        """Records skipped for any reason."""
        return sum(self.counts.values())


@dataclass
class ImportReport:
    """What an import did (or, in a dry run, would do)."""

    source: str
    dry_run: bool
    imported: Counter[str] = field(default_factory=Counter)  # jobs by state
    requeued: int = 0  # running jobs that came back pending
    config: dict[str, Any] = field(default_factory=dict)  # keys set, with their values
    skipped_jobs: Skips = field(default_factory=Skips)
    skipped_config: Skips = field(default_factory=Skips)

    @property
    def jobs_imported(self) -> int:
        """Jobs imported, whatever their state."""
        return sum(self.imported.values())


def import_node_url(
    url: str,
    jobs: JobManager,
    configs: ConfigManager,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the Node version's database at `url` into the store of `jobs` and `configs`."""
    from .store.nodesource import NodeSource

    source = NodeSource(url)
    try:
        source.check()
        return import_node(source, jobs, configs, dry_run=dry_run, progress=progress)
    finally:
        source.close()


def import_node(
    source: Any,
    jobs: JobManager,
    configs: ConfigManager,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> ImportReport:
    """Copy `source`'s config, then its jobs (a NodeSource, or anything with `url`,
    `configs()`, `jobs(batch)` and `job_count()`)."""
    report = ImportReport(source.url, dry_run)
    values = _import_config(source.configs(), configs, report, dry_run)
    max_retries = int(values["max_retries"])
    now = clock()
    seq = time.time_ns()
    seen: set[str] = set()
    read = 0
    total = source.job_count() if progress is not None else None
    for docs in source.jobs(ID_BATCH):
        batch: list[tuple[Job, bool]] = []
        for doc in docs:
            name = _name(doc)
            try:
                job = node_job(doc, default_max_retries=max_retries, now=now)
            except Unusable as exc:
                report.skipped_jobs.add(exc.reason, name)
                continue
            if job.id in seen:
                report.skipped_jobs.add("id repeated in the Node database (first one kept)", name)
                continue
            seen.add(job.id)
            job.seq = seq
            seq += 1
            batch.append((job, doc.get("state") == PROCESSING))
        _import_batch(batch, jobs, report, dry_run)
        read += len(docs)
        if progress is not None:
            progress(read, total)
    return report


def _import_batch(
    batch: list[tuple[Job, bool]], jobs: JobManager, report: ImportReport, dry_run: bool
) -> None:
    """Insert the jobs of one batch this store does not hold yet."""
    running = {job.id for job, was_running in batch if was_running}
    fresh, taken = jobs.import_jobs([job for job, _ in batch], dry_run=dry_run)
    for job_id in taken:
        report.skipped_jobs.add("already in this store", job_id)
    for job in fresh:
        report.imported[job.state] += 1
        report.requeued += job.id in running


# -- jobs -------------------------------------------------------------------------------------
def node_job(doc: dict[str, Any], *, default_max_retries: int, now: float) -> Job:
    """The queuectl job a Node job document describes; Unusable says why there is none
    (the first field found wrong, in the order they are checked here)."""
    job_id, command, state = _identity(doc)
    attempts = _count(doc, "attempts", 0)
    max_retries = _count(doc, "max_retries", default_max_retries)
    created, updated, due = _times(doc, now)
    job = Job(
        id=job_id,
        command=command,
        state=state,
        attempts=attempts,
        max_retries=max_retries,
        priority=_int(doc.get("priority")),
        run_at=created if due is None else due,
        created_at=created,
        updated_at=updated,
        last_error=_tail(_text(doc, "last_error") or _text(doc, "error")),
        exit_code=_exit_code(doc),
        stdout=_tail(_text(doc, "stdout") or _text(doc, "output")),
        stderr=_tail(_text(doc, "stderr")),
    )
    _take_over(job, doc, due, now)
    return job


def _identity(doc: dict[str, Any]) -> tuple[str, str, str]:
    """A job document's id, command and state, each checked."""
    job_id = doc.get("id")
    if job_id is None:
        if isinstance(doc.get("_id"), str) and isinstance(doc.get("seq"), int):
            raise Unusable("a queuectl job, not a Node one (the database is shared)")
        raise Unusable("no `id` field")
    if not isinstance(job_id, str) or not ID_PATTERN.fullmatch(job_id):
        raise Unusable("`id` is not a job id (1-128 characters of A-Z a-z 0-9 . _ : -)")
    try:
        command = validate_command(doc.get("command"))
    except InvalidInput:
        raise Unusable("`command` is missing, blank, not text, or over 64 KiB") from None
    state = doc.get("state")
    if state not in STATES:
        raise Unusable(f"unknown state {shown(state, 30)}")
    return job_id, command, state


def _times(doc: dict[str, Any], now: float) -> tuple[float, float, float | None]:
    """When the job was created (else its ObjectId's time), last updated (else created),
    and when it is due (None: the Node version did not say)."""
    created = _time(doc, "created_at")
    if created is None:
        created = _object_id_time(doc.get("_id"), now)
    updated = _time(doc, "updated_at")
    updated = created if updated is None else updated
    due = _time(doc, "next_retry_at")
    due = _time(doc, "next_run_at") if due is None else due
    return created, updated, due


def _take_over(job: Job, doc: dict[str, Any], due: float | None, now: float) -> None:
    """What the Node state means here: a running job is pending again (nothing runs it
    here), its attempts as counted; a finished one ended at its last update; a failed one
    with no retry time is due at its last update."""
    if job.state == PROCESSING:
        holder = _text(doc, "locked_by") or _text(doc, "processing_by")
        job.state = PENDING
        job.run_at = min(job.run_at, now)
        job.last_error = REQUEUED + (f" (it was held by {shown(holder, 60)})" if holder else "")
    elif job.state in (COMPLETED, DEAD):
        job.finished_at = job.updated_at
    elif job.state == FAILED and due is None:
        job.run_at = job.updated_at  # its retry is due: the Node version did not say when


def _name(doc: dict[str, Any]) -> str:
    value = doc.get("id")
    return shown(value if isinstance(value, str) else str(doc.get("_id")), 60).strip("'")


def _count(doc: dict[str, Any], name: str, default: int) -> int:
    value = doc.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a JavaScript number stored as a double
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT_MAX:
        raise Unusable(f"`{name}` is not a whole number >= 0")
    return value


def _int(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > INT_MAX:
        return 0
    return value


def _exit_code(doc: dict[str, Any]) -> int | None:
    for name in ("exit_code", "exitCode"):
        value = doc.get(name)
        if value is not None:
            code = _int(value)
            return code if code == value else None
    return None


def _text(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    return value if isinstance(value, str) and value else None


def _tail(text: str | None) -> str | None:
    """The last 64 KiB of an output or error text, as a worker keeps them."""
    if text is None:
        return None
    data = text.encode("utf-8", "replace")
    return text if len(data) <= OUTPUT_LIMIT else data[-OUTPUT_LIMIT:].decode("utf-8", "ignore")


def _time(doc: dict[str, Any], name: str) -> float | None:
    """A time field as epoch seconds: a BSON date, an ISO 8601 text, or a number (seconds,
    or milliseconds as JavaScript counts them); None when absent."""
    value = doc.get(name)
    if value is None:
        return None
    if isinstance(value, datetime):
        # pymongo hands BSON dates back naive, in UTC.
        aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        stamp = aware.timestamp()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        stamp = value / 1000 if value > MS_THRESHOLD else float(value)
    elif isinstance(value, str):
        try:
            stamp = parse_time(value, name)
        except InvalidInput:
            raise Unusable(f"`{name}` is not a time") from None
    else:
        raise Unusable(f"`{name}` is not a time")
    if not 0 <= stamp <= MAX_TIME:
        raise Unusable(f"`{name}` is outside 1970-9999")
    return float(stamp)


def _object_id_time(value: Any, now: float) -> float:
    """When an ObjectId was made (it holds its creation second); else `now`."""
    made = getattr(value, "generation_time", None)
    return float(made.timestamp()) if isinstance(made, datetime) else now


# -- config -----------------------------------------------------------------------------------
PAIR = ("heartbeat_interval", "stale_after")


def _import_config(
    docs: list[dict[str, Any]], configs: ConfigManager, report: ImportReport, dry_run: bool
) -> dict[str, Any]:
    """Set the keys the Node database holds and this store has not set; returns every key's
    value as it is afterwards (in a dry run: as it would be)."""
    stored = configs.store.get_config()
    values = configs.all()
    wanted = _wanted_config(docs, stored, values, report)
    after = _keep_the_pair_valid(wanted, values, report)
    if not dry_run:
        # Of the pair, the one that keeps stale_after > heartbeat_interval at every step first.
        first = "stale_after" if after["stale_after"] >= values["stale_after"] else PAIR[0]
        for key in sorted(wanted, key=lambda k: k != first):
            configs.set(key, wanted[key])
    report.config = wanted
    return after


def _wanted_config(
    docs: list[dict[str, Any]],
    stored: dict[str, Any],
    values: dict[str, Any],
    report: ImportReport,
) -> dict[str, Any]:
    """The keys and values to set: valid ones this store has not set, the first of a key
    repeated; every other document counted in the report with its reason."""
    wanted: dict[str, Any] = {}
    for doc in docs:
        name = _config_name(doc)
        try:
            key, value = _config_entry(doc)
        except Unusable as exc:
            report.skipped_config.add(exc.reason, name)
            continue
        if key in wanted:
            report.skipped_config.add("key repeated in the Node database (first kept)", name)
        elif key in stored:
            same = values[key] == value
            why = "already set to that value" if same else "already set in this store (kept)"
            report.skipped_config.add(why, key)
        else:
            wanted[key] = value
    return wanted


def _config_name(doc: dict[str, Any]) -> str:
    key = doc.get("key")
    return shown(key, 40).strip("'") if isinstance(key, str) else str(doc.get("_id"))


def _config_entry(doc: dict[str, Any]) -> tuple[str, Any]:
    """A config document's queuectl key and value, checked by `config set`'s rules."""
    raw_key = doc.get("key")
    if not isinstance(raw_key, str):
        raise Unusable("no `key` text")
    try:
        key = canonical_key(raw_key)
    except InvalidInput:
        raise Unusable("not a queuectl config key") from None
    try:
        return key, parse_value(key, doc.get("value"))
    except InvalidInput:
        raise Unusable(f"value is not {KEYS[key].rule}") from None


def _keep_the_pair_valid(
    wanted: dict[str, Any], values: dict[str, Any], report: ImportReport
) -> dict[str, Any]:
    """Every key's value once `wanted` is set. If that would leave stale_after not greater
    than heartbeat_interval, neither of the two is taken from the Node database."""
    after = {**values, **wanted}
    if after["stale_after"] <= after["heartbeat_interval"]:
        for key in PAIR:
            if key in wanted:
                report.skipped_config.add(
                    "would make stale_after not greater than heartbeat_interval", key
                )
                del wanted[key]
                after[key] = values[key]
    return after
