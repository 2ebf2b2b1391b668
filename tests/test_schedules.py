"""Recurring jobs (SPEC §7.5) over every store, with a movable clock and no sleeps: one job
per tick whoever ticks, none lost, no back-fill after downtime, time zones, pause/resume."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from queuectl.app import App
from queuectl.config import ConfigManager
from queuectl.errors import DuplicateSchedule, InvalidInput, ScheduleNotFound
from queuectl.models import Schedule
from queuectl.schedules import ScheduleManager, cron_expression, tick_job_id

MINUTE, HOUR = 60.0, 3600.0
# The FakeClock starts at 2027-01-15T08:00:00Z.
START = datetime(2027, 1, 15, 8, 0, tzinfo=timezone.utc).timestamp()


def at(text: str, zone: str = "UTC") -> float:
    """Epoch seconds of an ISO local time in a zone, e.g. at("2026-03-29T09:00", "Europe/Paris")."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


@pytest.fixture
def schedules(store, clock) -> ScheduleManager:
    """A ScheduleManager on a fresh store, its time given by the test's clock."""
    assert clock() == START
    return App(store=store, clock=clock).schedules


def job_ids(store) -> list[str]:
    return sorted(job.id for job in store.list_jobs(None, 10_000))


# -- add, list, remove, validation -------------------------------------------------------------


def test_add_stores_the_schedule_with_its_first_tick_after_now(schedules, store, clock):
    added = schedules.add("report", "*/5 * * * *", "make report", options={"priority": 3})
    assert added == store.get_schedule("report")
    assert (added.cron, added.tz, added.command, added.options) == (
        "*/5 * * * *",
        "UTC",
        "make report",
        {"priority": 3},
    )
    # 08:00:00 is itself a tick, but the first tick is the first one *after* the add.
    assert added.next_run_at == START + 5 * MINUTE
    assert (added.last_run_at, added.paused, added.created_at) == (None, False, START)
    assert schedules.list() == [added]


def test_aliases_and_spacing_are_understood(schedules):
    assert schedules.add("h", "@hourly", "true").next_run_at == START + HOUR
    assert schedules.add("d", " @DAILY ", "true").next_run_at == at("2027-01-16T00:00")
    assert schedules.add("w", "@weekly", "true").next_run_at == at("2027-01-17T00:00")  # Sunday
    assert schedules.add("m", "0  0 1 * *", "true").cron == "0 0 1 * *"
    assert cron_expression("@yearly") == cron_expression("@annually") == "0 0 1 1 *"


@pytest.mark.parametrize(
    "cron, words",
    [
        ("61 * * * *", "bad minute"),
        ("* * *", "3 fields, not 5"),
        ("* * * * * *", "6 fields, not 5"),  # seconds are not standard cron
        ("", "0 fields"),
        ("@reboot", "unknown cron nickname"),
        ("* * 31 2 *", "bad day-of-month"),
        ("*/0 * * * *", "bad minute"),
        ("* * * * \x1b", "bad cron expression"),
    ],
)
def test_a_bad_cron_expression_is_refused_naming_the_rule(schedules, store, cron, words):
    with pytest.raises(InvalidInput) as error:
        schedules.add("x", cron, "true")
    assert words in str(error.value) and "5 fields" in str(error.value)
    assert store.list_schedules() == []


@pytest.mark.parametrize("zone", ["Mars/Base", "europe/paris", "Europe", "../etc", "", "A\x00"])
def test_a_bad_zone_is_refused(schedules, store, zone):
    with pytest.raises(InvalidInput, match="unknown time zone .*IANA name"):
        schedules.add("x", "* * * * *", "true", tz=zone)
    assert store.list_schedules() == []


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "é", "a/b", "-\udcff"])
def test_a_bad_name_is_refused(schedules, store, name):
    with pytest.raises(InvalidInput, match="1-64 characters"):
        schedules.add(name, "* * * * *", "true")
    assert store.list_schedules() == []


def test_the_longest_name_still_makes_a_valid_job_id(schedules, clock, store):
    name = "n" * 64
    schedules.add(name, "* * * * *", "true")
    clock.advance(MINUTE)
    assert schedules.tick() == [f"{name}.20270115T0801Z"]


@pytest.mark.parametrize(
    "options, words",
    [
        ({"priority": "high"}, "priority must be an integer"),
        ({"max_retries": -1}, "max_retries must be between 0"),
        ({"timeout": 0}, "timeout must be > 0"),
        ({"delay": 5}, "unknown option 'delay'"),
        ({"id": "x"}, "unknown option 'id'"),
    ],
)
def test_bad_job_options_are_refused_at_add(schedules, store, options, words):
    with pytest.raises(InvalidInput, match=words):
        schedules.add("x", "* * * * *", "true", options=options)
    assert store.list_schedules() == []


def test_a_blank_command_is_refused(schedules, store):
    with pytest.raises(InvalidInput, match="command must not be blank"):
        schedules.add("x", "* * * * *", "  ")
    assert store.list_schedules() == []


def test_a_taken_name_is_refused_and_keeps_the_first(schedules, store):
    first = schedules.add("x", "* * * * *", "echo one")
    with pytest.raises(DuplicateSchedule, match="'x' already exists") as error:
        schedules.add("x", "@daily", "echo two")
    assert error.value.exit_code == 1
    assert store.list_schedules() == [first]


def test_remove_pause_resume_of_an_unknown_name_is_not_found(schedules):
    for action in (schedules.remove, schedules.pause, schedules.resume, schedules.get):
        for name in ("nope", "odd name", "\udcff"):
            with pytest.raises(ScheduleNotFound) as error:
                action(name)
            assert error.value.exit_code == 1


def test_list_is_by_name(schedules):
    for name in ("b", "a", "c"):
        schedules.add(name, "@hourly", "true")
    assert [s.name for s in schedules.list()] == ["a", "b", "c"]


# -- ticks -------------------------------------------------------------------------------------


def test_nothing_is_enqueued_before_the_first_tick(schedules, store, clock):
    schedules.add("x", "*/5 * * * *", "true")
    for _ in range(30):
        clock.advance(9.9)  # 08:00:00 .. 08:04:57
        assert schedules.tick() == []
    assert job_ids(store) == []


def test_each_tick_enqueues_one_job_named_for_its_utc_minute(schedules, store, clock):
    schedules.add("every", "* * * * *", "echo tick", options={"priority": 7, "timeout": 30})
    enqueued = []
    for _ in range(10 * 4):  # ten minutes, ticked every 15 s as polling workers would
        clock.advance(15)
        enqueued += schedules.tick()
    expected = [f"every.20270115T08{m:02d}Z" for m in range(1, 11)]
    assert enqueued == expected  # in order, none twice, none lost
    assert job_ids(store) == expected
    job = store.get_job("every.20270115T0801Z")
    assert (job.command, job.state, job.priority, job.timeout) == ("echo tick", "pending", 7, 30)
    assert job.run_at == job.created_at == START + MINUTE  # ticked exactly at 08:01:00
    row = store.get_schedule("every")
    assert (row.last_run_at, row.next_run_at) == (START + 10 * MINUTE, START + 11 * MINUTE)


def test_a_tick_is_enqueued_once_however_often_it_is_ticked(schedules, store, clock):
    schedules.add("x", "* * * * *", "true")
    clock.advance(MINUTE + 1)
    assert schedules.tick() == ["x.20270115T0801Z"]
    other = App(store=store, clock=clock).schedules  # another worker at the same moment
    for _ in range(5):
        assert schedules.tick() == [] and other.tick() == []
    assert job_ids(store) == ["x.20270115T0801Z"]


def test_jobs_get_the_config_defaults_in_force_at_the_tick(schedules, store, clock):
    schedules.add("x", "* * * * *", "true")
    ConfigManager(store).set("max_retries", "7")
    ConfigManager(store).set("job_timeout", "12")
    clock.advance(MINUTE)
    [job_id] = schedules.tick()
    assert (store.get_job(job_id).max_retries, store.get_job(job_id).timeout) == (7, 12)


def test_after_downtime_only_the_most_recent_missed_tick_is_enqueued(schedules, store, clock):
    schedules.add("hourly", "@hourly", "true")
    schedules.add("minutely", "* * * * *", "true")
    clock.advance(5 * HOUR + 30 * MINUTE + 20)  # no worker from 08:00 to 13:30:20
    assert sorted(schedules.tick()) == ["hourly.20270115T1300Z", "minutely.20270115T1330Z"]
    assert schedules.tick() == []
    assert store.get_schedule("hourly").next_run_at == at("2027-01-15T14:00")
    assert store.get_schedule("minutely").next_run_at == at("2027-01-15T13:31")
    clock.advance(40)
    assert schedules.tick() == ["minutely.20270115T1331Z"]


def test_a_stale_read_of_a_due_schedule_changes_nothing(schedules, store, clock):
    """A worker that read the schedule, then stalled while others ticked twice: its insert is
    'already enqueued' and its compare-and-set does not move the schedule back."""
    schedules.add("x", "* * * * *", "true")
    clock.advance(MINUTE + 5)
    stale = store.due_schedules(clock(), 100)
    others = App(store=store, clock=clock).schedules
    assert others.tick() == ["x.20270115T0801Z"]
    assert others.tick(clock() + MINUTE) == ["x.20270115T0802Z"]
    moved = store.get_schedule("x")
    assert (moved.last_run_at, moved.next_run_at) == (START + 2 * MINUTE, START + 3 * MINUTE)

    class StaleStore:
        def __getattr__(self, name):
            return getattr(store, name)

        def due_schedules(self, now, limit):
            return stale

    assert App(store=StaleStore(), clock=clock).schedules.tick() == []
    assert store.get_schedule("x") == moved
    assert job_ids(store) == ["x.20270115T0801Z", "x.20270115T0802Z"]


def test_a_worker_that_died_between_insert_and_advance_loses_no_tick(schedules, store, clock):
    schedules.add("x", "* * * * *", "true")
    clock.advance(MINUTE)
    # The job of the tick is in, but next_run_at was never moved on.
    [job] = App(store=store, clock=clock).jobs.build(
        [(None, {"id": "x.20270115T0801Z", "command": "a"})]
    )
    store.insert_jobs([job])
    assert schedules.tick() == []  # already enqueued: not ours, but done
    assert store.get_job("x.20270115T0801Z").command == "a"
    assert store.get_schedule("x").next_run_at == START + 2 * MINUTE
    clock.advance(MINUTE)
    assert schedules.tick() == ["x.20270115T0802Z"]


def test_a_compare_and_set_refuses_a_moved_schedule(schedules, store):
    added = schedules.add("x", "* * * * *", "true")
    old = {"next_run_at": added.next_run_at}
    assert store.update_schedule("x", {"next_run_at": 1.0}, expected=old)
    assert not store.update_schedule("x", {"next_run_at": 2.0}, expected=old)
    assert store.get_schedule("x").next_run_at == 1.0
    assert not store.update_schedule("gone", {"paused": True})


def test_due_schedules_leave_out_paused_and_future_ones(schedules, store, clock):
    for name in ("b", "a", "paused", "later"):
        schedules.add(name, "@hourly" if name != "later" else "@daily", "true")
    schedules.pause("paused")
    store.update_schedule("b", {"next_run_at": START + 10})
    store.update_schedule("a", {"next_run_at": START + 20})
    due = store.due_schedules(START + HOUR, 100)
    assert [s.name for s in due] == ["b", "a"]  # earliest first
    assert [s.name for s in store.due_schedules(START + HOUR, 1)] == ["b"]
    assert store.due_schedules(START, 100) == []


# -- time zones --------------------------------------------------------------------------------


def tick_days(schedules, clock, days: int) -> None:
    """Tick every 10 minutes for `days` days from now."""
    for _ in range(days * 24 * 6):
        clock.advance(10 * MINUTE)
        schedules.tick()


def test_nine_oclock_in_paris_stays_nine_oclock_across_both_dst_changes(store, clock):
    clock.now = at("2026-03-27T10:00", "Europe/Paris")
    schedules = App(store=store, clock=clock).schedules
    schedules.add("paris", "0 9 * * *", "true", tz="Europe/Paris")
    tick_days(schedules, clock, 4)
    # UTC+1 until 29 March, UTC+2 after: the UTC hour in the ids moves, local 09:00 does not.
    assert job_ids(store) == [
        "paris.20260328T0800Z",
        "paris.20260329T0700Z",
        "paris.20260330T0700Z",
        "paris.20260331T0700Z",
    ]
    clock.now = at("2026-10-23T10:00", "Europe/Paris")
    store.update_schedule("paris", {"next_run_at": at("2026-10-24T09:00", "Europe/Paris")})
    tick_days(schedules, clock, 3)
    assert job_ids(store)[4:] == [
        "paris.20261024T0700Z",
        "paris.20261025T0800Z",
        "paris.20261026T0800Z",
    ]


def test_a_time_in_the_repeated_or_skipped_hour_runs_once_that_day(store, clock):
    """Debian cron's rule: 02:30 runs at 03:00 on the day 02:00-03:00 is skipped, and only
    once on the day that hour happens twice."""
    clock.now = at("2026-03-28T12:00", "Europe/Paris")
    schedules = App(store=store, clock=clock).schedules
    schedules.add("night", "30 2 * * *", "true", tz="Europe/Paris")
    tick_days(schedules, clock, 2)
    assert job_ids(store) == ["night.20260329T0100Z", "night.20260330T0030Z"]
    clock.now = at("2026-10-24T12:00", "Europe/Paris")
    store.update_schedule("night", {"next_run_at": at("2026-10-25T02:30", "Europe/Paris")})
    tick_days(schedules, clock, 2)
    assert job_ids(store)[2:] == ["night.20261025T0030Z", "night.20261026T0130Z"]


def test_tick_ids_are_always_utc(schedules):
    assert tick_job_id("x", at("2026-07-01T09:00", "America/New_York")) == "x.20260701T1300Z"


# -- pause, resume, remove ---------------------------------------------------------------------


def test_a_paused_schedule_enqueues_nothing_and_resumes_from_the_next_tick(schedules, store, clock):
    schedules.add("x", "*/10 * * * *", "true")
    clock.advance(10 * MINUTE)
    assert schedules.tick() == ["x.20270115T0810Z"]
    assert schedules.pause("x").paused
    assert schedules.pause("x").paused  # pausing twice is harmless
    clock.advance(35 * MINUTE)  # 08:45: the 08:20, 08:30 and 08:40 ticks pass while paused
    assert schedules.tick() == []
    resumed = schedules.resume("x")
    assert (resumed.paused, resumed.next_run_at) == (False, at("2027-01-15T08:50"))
    assert store.get_schedule("x") == resumed
    assert schedules.tick() == []  # no catch-up of the paused time
    clock.advance(5 * MINUTE)
    assert schedules.tick() == ["x.20270115T0850Z"]
    assert schedules.resume("x").next_run_at == at("2027-01-15T09:00")  # resuming twice: same


def test_a_removed_schedule_enqueues_nothing_and_its_jobs_stay(schedules, store, clock):
    schedules.add("x", "* * * * *", "true")
    clock.advance(MINUTE)
    assert schedules.tick() == ["x.20270115T0801Z"]
    schedules.remove("x")
    assert store.get_schedule("x") is None
    clock.advance(10 * MINUTE)
    assert schedules.tick() == []
    assert job_ids(store) == ["x.20270115T0801Z"]
    schedules.add("x", "* * * * *", "true")  # the name is free again
    clock.advance(MINUTE)
    assert schedules.tick() == ["x.20270115T0812Z"]


def test_a_schedule_broken_by_hand_is_skipped_once_with_a_warning(store, clock):
    warnings: list[str] = []
    schedules = ScheduleManager(
        App(store=store, clock=clock).jobs, clock=clock, log=warnings.append
    )
    schedules.add("good", "* * * * *", "true")
    store.insert_schedule(Schedule("bad", "every minute", "UTC", "true", {}, START))
    clock.advance(MINUTE)
    assert schedules.tick() == ["good.20270115T0801Z"]
    clock.advance(MINUTE)
    assert schedules.tick() == ["good.20270115T0802Z"]
    assert len(warnings) == 1 and warnings[0].startswith("schedule 'bad' skipped: bad cron")


# -- many workers at once ----------------------------------------------------------------------


def test_threads_ticking_at_the_same_moment_enqueue_each_tick_once(request, store, clock):
    if request.node.callspec.params["store"] == "mongomock":
        pytest.skip("mongomock's updates are not atomic between threads; a server's are")
    App(store=store, clock=clock).schedules.add("x", "* * * * *", "true")
    threads, minutes = 6, 15
    barrier = threading.Barrier(threads)
    won: list[list[str]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        manager = App(store=store, clock=clock).schedules
        try:
            for minute in range(1, minutes + 1):
                barrier.wait(timeout=30)
                won[n] += manager.tick(START + minute * MINUTE + n)
                barrier.wait(timeout=30)
        except BaseException as exc:  # reported below, with the thread's own error
            errors.append(exc)
            barrier.abort()

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in pool)
    everything = sorted(job_id for ids in won for job_id in ids)
    assert everything == [f"x.20270115T08{m:02d}Z" for m in range(1, minutes + 1)]
    assert job_ids(store) == everything


# -- the worker ticks --------------------------------------------------------------------------


def test_a_burst_worker_enqueues_and_runs_a_due_tick(store, clock):
    lines: list[str] = []
    App(store=store, clock=clock).schedules.add("x", "* * * * *", "echo scheduled")
    clock.advance(MINUTE + 3)
    worker = App(store=store, clock=clock).worker(burst=True, log=lines.append)
    worker.start()
    assert worker.run() == 0
    job = store.get_job("x.20270115T0801Z")
    assert (job.state, job.stdout) == ("completed", "scheduled\n")
    assert f"[{worker.info.id}] job x.20270115T0801Z enqueued by its schedule" in lines


def test_a_busy_worker_still_ticks_from_its_heartbeat(store, clock):
    App(store=store, clock=clock).schedules.add("x", "* * * * *", "true")
    app = App(store=store, clock=clock)
    worker = app.worker(log=lambda line: None)
    worker.start()
    app.jobs.enqueue([("long", {"command": "sleep 600"})])
    held = app.jobs.claim(worker.info.id)
    assert held is not None
    with worker._lock:  # busy: its loop runs the command and polls nothing meanwhile
        worker._held = held
    clock.advance(MINUTE)
    worker.heartbeat()
    assert job_ids(store) == sorted([held.id, "x.20270115T0801Z"])
