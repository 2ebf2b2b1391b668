"""Recurring jobs (SPEC §7.5): cron schedules whose ticks become jobs with fixed ids.

Exactly one job per tick for a whole fleet, however many workers tick: the job of a tick has
the id `NAME.<tick in UTC as YYYYMMDDTHHMMZ>`, so a second insert of the same tick is refused
by the store ("already enqueued"), and `next_run_at` moves on through a compare-and-set on its
old value, so a worker that read the schedule before another moved it changes nothing. A
worker inserts the job before it moves `next_run_at`: if it dies between the two, the tick is
still due and the next worker finds the job already there, so no tick is lost either.

After a time with no worker, only the most recent missed tick gets a job: a tick looks for the
latest cron time at or before now, never walks the missed ones.

cronsim parses the expressions (imported here only, so CLI start-up never loads it).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Callable, Iterator, List

from .errors import DuplicateJob, InvalidInput, ScheduleNotFound
from .jobs import JobManager
from .models import MAX_TIME, SCHEDULE_NAME_PATTERN, SPEC_FIELDS, Schedule, build_job, shown

if TYPE_CHECKING:
    from cronsim import CronSim

# crontab(5)'s nicknames; @reboot has no meaning for a fleet and is refused.
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
CRON_HELP = (
    "use 5 fields (minute hour day-of-month month day-of-week), e.g. '*/15 * * * *', "
    "or one of @hourly, @daily, @weekly, @monthly, @yearly"
)
# Enqueue fields a schedule may set for its jobs (`queue` too, once jobs have one). A job's
# id, command and timing come from the schedule itself.
OPTION_FIELDS = tuple(
    f for f in SPEC_FIELDS if f not in ("id", "command", "delay", "run_at", "after")
)
# Schedules handled per tick; more that are due wait for the next tick (a second later).
DUE_BATCH = 100

Clock = Callable[[], float]


# -- cron arithmetic (pure) --------------------------------------------------------------------
def cron_expression(expr: str) -> str:
    """The 5-field expression `expr` stands for (an alias expanded), checked; InvalidInput
    naming the problem and what is allowed."""
    if not isinstance(expr, str) or not expr.isascii() or not expr.isprintable():
        raise InvalidInput(f"bad cron expression {shown(expr)}; {CRON_HELP}")
    text = " ".join(expr.split())
    text = ALIASES.get(text.lower(), text)
    if text.startswith("@"):
        raise InvalidInput(f"unknown cron nickname {shown(expr)}; {CRON_HELP}")
    if len(text.split()) != 5:
        count = len(text.split())
        raise InvalidInput(f"bad cron expression {shown(expr)}: {count} fields, not 5; {CRON_HELP}")
    _cronsim(text, datetime(2000, 1, 1, tzinfo=timezone.utc), expr)
    return text


def _cronsim(text: str, start: datetime, shown_as: str, reverse: bool = False) -> CronSim:
    from cronsim import CronSim, CronSimError

    try:
        return CronSim(text, start, reverse=reverse)
    except (CronSimError, ValueError, KeyError, IndexError) as exc:
        detail = str(exc).lower() or "not understood"
        raise InvalidInput(
            f"bad cron expression {shown(shown_as)}: {detail}; {CRON_HELP}"
        ) from None


def time_zone(name: str) -> tzinfo:
    """The zone an IANA name stands for; UTC needs no time zone database."""
    if name == "UTC":
        return timezone.utc
    from zoneinfo import ZoneInfo, available_timezones

    try:
        if not isinstance(name, str) or not name.isprintable():
            raise ValueError
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        hint = ""
        if not available_timezones():
            hint = "; this system has no time zone database: install tzdata (pip install tzdata)"
        raise InvalidInput(
            f"unknown time zone {shown(name)}; use an IANA name such as Europe/Paris, "
            f"America/New_York or UTC{hint}"
        ) from None


def _ticks(expr: str, zone: tzinfo, start: float, reverse: bool) -> Iterator[float]:
    # Whole seconds: cron times are whole minutes, and cronsim treats a start with
    # microseconds differently from one version to the next.
    begin = datetime.fromtimestamp(int(start), zone)
    for when in _cronsim(expr, begin, expr, reverse):
        yield when.timestamp()


def next_tick(expr: str, zone: tzinfo, after: float) -> float | None:
    """The first cron time strictly after `after` (None if there is none for 50 years)."""
    return next(_ticks(expr, zone, after, reverse=False), None)


def last_tick(expr: str, zone: tzinfo, at: float) -> float | None:
    """The latest cron time at or before `at`."""
    return next(_ticks(expr, zone, at + 1, reverse=True), None)


def tick_job_id(name: str, tick: float) -> str:
    """`NAME.YYYYMMDDTHHMMZ`: the one id a tick's job can have."""
    return f"{name}.{datetime.fromtimestamp(tick, timezone.utc):%Y%m%dT%H%MZ}"


def check_name(name: str) -> str:
    """Schedule names: 1-64 of the id characters."""
    if not isinstance(name, str) or not SCHEDULE_NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"schedule name {shown(name, 50)} is not allowed; use 1-64 characters of "
            "A-Z a-z 0-9 . _ : -"
        )
    return name


# -- the manager -------------------------------------------------------------------------------
class ScheduleManager:
    """Adds, lists, pauses and removes schedules, and turns due ticks into jobs."""

    def __init__(
        self,
        jobs: JobManager,
        *,
        clock: Clock = time.time,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.jobs = jobs
        self.store = jobs.store
        self.clock = clock
        self._log = log
        self._warned: set[str] = set()

    def add(
        self,
        name: str,
        cron: str,
        command: str,
        tz: str = "UTC",
        options: dict[str, Any] | None = None,
    ) -> Schedule:
        """Validate and store a schedule; its first tick is the first one after now.
        A taken name raises DuplicateSchedule."""
        check_name(name)
        expr = cron_expression(cron)
        zone = time_zone(tz)
        options = {k: v for k, v in (options or {}).items() if v is not None}
        unknown = sorted(set(options) - set(OPTION_FIELDS))
        if unknown:
            raise InvalidInput(
                f"unknown option {unknown[0]!r}; allowed: {', '.join(OPTION_FIELDS)}"
            )
        now = self.clock()
        first = next_tick(expr, zone, now)
        if first is None:
            raise InvalidInput(f"cron expression {shown(cron)} never fires in the next 50 years")
        # The jobs' fields are checked now, so a bad one is refused here, not at every tick.
        spec = {"id": tick_job_id(name, first), "command": command, **options}
        build_job(spec, now=now, default_max_retries=0, default_timeout=0)
        schedule = Schedule(
            name=name,
            cron=" ".join(cron.split()),
            tz=tz,
            command=command,
            options=options,
            next_run_at=first,
            created_at=now,
        )
        self.store.insert_schedule(schedule)
        return schedule

    def list(self) -> List[Schedule]:
        """Every schedule, by name."""
        return self.store.list_schedules()

    def get(self, name: str) -> Schedule:
        """The schedule, or ScheduleNotFound."""
        found = self.store.get_schedule(name) if _known_shape(name) else None
        if found is None:
            raise ScheduleNotFound(name)
        return found

    def remove(self, name: str) -> None:
        """Delete a schedule (jobs it already enqueued stay)."""
        if not (_known_shape(name) and self.store.delete_schedule(name)):
            raise ScheduleNotFound(name)

    def pause(self, name: str) -> Schedule:
        """Stop enqueuing jobs until resume."""
        schedule = self.get(name)
        if not schedule.paused:
            self._update(name, {"paused": True})
            schedule.paused = True
        return schedule

    def resume(self, name: str) -> Schedule:
        """Enqueue again from the first tick after now: ticks missed while paused are
        skipped, not caught up."""
        schedule = self.get(name)
        if schedule.paused:
            expr, zone = cron_expression(schedule.cron), time_zone(schedule.tz)
            following = next_tick(expr, zone, self.clock())
            schedule.next_run_at = MAX_TIME if following is None else following
            schedule.paused = False
            self._update(name, {"paused": False, "next_run_at": schedule.next_run_at})
        return schedule

    def _update(self, name: str, changes: dict[str, Any]) -> None:
        if not self.store.update_schedule(name, changes):
            raise ScheduleNotFound(name)  # removed meanwhile

    # -- ticks ---------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> List[str]:
        """Enqueue the job of every due schedule's latest tick and move each schedule on.
        Cheap when nothing is due (one indexed read). Returns the ids this call enqueued; a
        tick whose job another worker enqueued first counts as done, not as ours."""
        now = self.clock() if now is None else now
        enqueued = []
        for schedule in self.store.due_schedules(now, DUE_BATCH):
            try:
                job_id = self._fire(schedule, now)
            except InvalidInput as exc:  # a row edited by hand; the others still run
                self._warn(schedule.name, str(exc))
                continue
            if job_id is not None:
                enqueued.append(job_id)
        return enqueued

    def _fire(self, schedule: Schedule, now: float) -> str | None:
        expr, zone = cron_expression(schedule.cron), time_zone(schedule.tz)
        if not isinstance(schedule.options, dict):
            raise InvalidInput("its options are not an object")
        latest = last_tick(expr, zone, now)
        tick = max(latest if latest is not None else now, schedule.next_run_at)
        job_id = tick_job_id(schedule.name, tick)
        inserted = self._enqueue(schedule, job_id)
        following = next_tick(expr, zone, max(tick, now))
        self.store.update_schedule(
            schedule.name,
            {"next_run_at": MAX_TIME if following is None else following, "last_run_at": tick},
            expected={"next_run_at": schedule.next_run_at},
        )
        return job_id if inserted else None

    def _enqueue(self, schedule: Schedule, job_id: str) -> bool:
        spec = {**schedule.options, "id": job_id, "command": schedule.command}
        try:
            self.jobs.enqueue([(None, spec)])
        except DuplicateJob:
            return False  # already enqueued, by another worker or an earlier try
        return True

    def _warn(self, name: str, problem: str) -> None:
        if name not in self._warned and self._log is not None:
            self._warned.add(name)
            self._log(f"schedule {name!r} skipped: {problem}")


def _known_shape(name: str) -> bool:
    """Whether `name` could be a schedule's name. Others (odd characters, bytes that are not
    UTF-8) are simply not found, on every store alike."""
    return isinstance(name, str) and SCHEDULE_NAME_PATTERN.fullmatch(name) is not None
