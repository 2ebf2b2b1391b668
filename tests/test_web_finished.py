"""The web's per-minute history of finished jobs and its counters (queuectl.web.finished),
on every store, with a clock moved by hand. Pure Python: no web library needed."""

from __future__ import annotations

from queuectl.app import App
from queuectl.models import Job
from queuectl.web.chart import build_chart
from queuectl.web.finished import MINUTES, FinishedJobs

START = 1_800_000_000.0 - 1_800_000_000.0 % 60 + 30  # half past a minute


def finish(store, job_id: str, when: float, state: str = "completed", duration: float = 1.0):
    store.insert_jobs(
        [
            Job(
                id=job_id,
                command="true",
                state=state,
                run_at=when - duration,
                created_at=when - duration,
                updated_at=when,
                started_at=when - duration,
                finished_at=when,
                duration=duration,
                seq=int(when * 1e6),
            )
        ]
    )


def bars(tracker: FinishedJobs) -> list[tuple[int, int, bool]]:
    return [(m.completed, m.dead, m.known) for m in tracker.minutes()]


def test_the_past_hour_is_filled_at_the_first_read_and_counts_nothing(store, clock):
    clock.now = START
    finish(store, "old", START - 2 * 3600)  # outside the hour
    finish(store, "a", START - 600)
    finish(store, "b", START - 590, state="dead")
    finish(store, "c", START - 5)
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, min_interval=0)
    tracker.refresh()
    shown = bars(tracker)
    assert len(shown) == MINUTES
    assert shown[-1] == (1, 0, True)  # this minute: c
    assert shown[-11] == (1, 1, True)  # ten minutes ago: a and b
    assert sum(c for c, _, _ in shown) == 2 and all(known for _, _, known in shown)
    totals, buckets, seconds = tracker.counted()
    assert totals == {"completed": 0, "dead": 0} and sum(buckets) == 0 and seconds == 0


def test_jobs_finishing_later_are_counted_once(store, clock):
    clock.now = START
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, min_interval=0)
    tracker.refresh()
    finish(store, "x", START + 1, duration=0.2)
    finish(store, "y", START + 2, state="dead")
    clock.advance(3)
    tracker.refresh()
    tracker.refresh()
    finish(store, "z", START + 70, duration=7.0)
    clock.advance(70)
    tracker.refresh()
    totals, buckets, seconds = tracker.counted()
    assert totals == {"completed": 2, "dead": 1}
    assert (buckets[1], buckets[5], sum(buckets), seconds) == (1, 1, 2, 7.2)
    assert bars(tracker)[-2:] == [(1, 1, True), (1, 0, True)]


def test_a_job_stamped_a_moment_before_the_last_read_is_still_counted(store, clock):
    # updated_at is taken before the write commits: a job can appear after a newer one.
    clock.now = START
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, min_interval=0)
    tracker.refresh()
    finish(store, "newer", START + 5)
    clock.advance(6)
    tracker.refresh()
    finish(store, "late", START + 4.5)
    clock.advance(1)
    tracker.refresh()
    assert tracker.counted()[0]["completed"] == 2


def test_minutes_older_than_a_full_backfill_are_unknown_not_zero(store, clock):
    clock.now = START
    for n in range(5):
        finish(store, f"j{n}", START - 60 * (n + 1))  # one per minute, 1..5 minutes ago
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, backfill=3, min_interval=0)
    tracker.refresh()
    shown = bars(tracker)
    assert shown[-4:] == [(1, 0, False), (1, 0, True), (1, 0, True), (0, 0, True)]
    assert not any(known for _, _, known in shown[:-4])
    chart = build_chart(tracker.minutes())
    assert chart.unknown == MINUTES - 3 and chart.total_completed == 2 and chart.peak == 1


def test_more_finished_than_one_read_takes_marks_the_minutes_between(store, clock):
    clock.now = START
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, cap=4, min_interval=0)
    tracker.refresh()
    for n in range(6):  # 2 to 5 minutes after START; a read takes only the newest 4
        finish(store, f"k{n}", START + 120 + 30 * n)
    clock.advance(400)
    tracker.refresh()
    assert tracker.counted()[0]["completed"] == 4
    shown = bars(tracker)
    minute_of_start = MINUTES - 1 - 7  # START + 400 s is seven minutes on
    unknown = [i - minute_of_start for i, (_, _, known) in enumerate(shown) if not known]
    assert unknown == [0, 1, 2, 3]  # from the last read up to the oldest job this read got


def test_the_chart_scales_to_the_busiest_known_minute(store, clock):
    clock.now = START
    for n in range(4):
        finish(store, f"c{n}", START - 61)
    finish(store, "d", START - 1, state="dead")
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, min_interval=0)
    tracker.refresh()
    chart = build_chart(tracker.minutes(), width=600, height=118)
    assert (chart.peak, chart.total_completed, chart.total_dead) == (4, 4, 1)
    tallest, last = chart.bars[-2], chart.bars[-1]
    assert tallest.completed_h == chart.base - 16 and tallest.dead_h == 0
    assert last.dead_h == (chart.base - 16) / 4 and last.completed_h == 0
    assert "4 completed, 0 dead" in tallest.title
