"""The overview's jobs finished per minute (counted by the store) and the /metrics counters
(queuectl.web.finished), on every store, with a clock moved by hand. Pure Python: no web
library needed."""

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


def bars(tracker: FinishedJobs) -> list[tuple[int, int]]:
    return [(m.completed, m.dead) for m in tracker.minutes()]


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
    assert shown[-1] == (1, 0)  # this minute: c
    assert shown[-11] == (1, 1)  # ten minutes ago: a and b
    assert sum(c for c, _ in shown) == 2
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
    assert bars(tracker)[-2:] == [(1, 1), (1, 0)]


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


def test_every_minute_of_the_hour_is_counted_by_the_store(store, clock):
    # However many finished: the minutes come from the store, not from what was followed.
    clock.now = START
    for n in range(5):
        finish(store, f"j{n}", START - 60 * (n + 1))  # one per minute, 1..5 minutes ago
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, min_interval=0)
    tracker.refresh()
    shown = bars(tracker)
    assert shown[-6:] == [(1, 0)] * 5 + [(0, 0)]
    chart = build_chart(tracker.minutes())
    assert chart.total_completed == 5 and chart.peak == 1


def test_every_job_finishing_between_reads_is_counted_however_many(store, clock):
    # More jobs than one page of the follower's reads: it pages on until it has caught up.
    clock.now = START
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, page=4, min_interval=0)
    tracker.refresh()
    for n in range(10):  # 2 to 6.5 minutes after START
        finish(store, f"k{n}", START + 120 + 30 * n, duration=0.3)
    finish(store, "d", START + 200, state="dead")
    clock.advance(500)
    tracker.refresh()
    totals, buckets, seconds = tracker.counted()
    assert totals == {"completed": 10, "dead": 1}
    assert (buckets[1], sum(buckets)) == (10, 10) and abs(seconds - 3.0) < 1e-9
    assert sum(c for c, _ in bars(tracker)) == 10


def test_jobs_with_the_same_time_are_paged_through_by_seq(store, clock):
    clock.now = START
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, page=2, min_interval=0)
    tracker.refresh()
    for n in range(5):
        store.insert_jobs(
            [
                Job(
                    id=f"same{n}",
                    command="true",
                    state="completed",
                    updated_at=START + 10,
                    finished_at=START + 10,
                    duration=1.0,
                    seq=n,
                )
            ]
        )
    clock.advance(20)
    tracker.refresh()
    tracker.refresh()
    assert tracker.counted()[0] == {"completed": 5, "dead": 0}


def test_the_follower_never_reads_commands_or_outputs(store, clock, monkeypatch):
    clock.now = START
    finish(store, "before", START - 1)
    jobs = App(store=store, clock=clock).jobs

    def refused(*_args, **_kwargs):
        raise AssertionError("read whole jobs")

    for name in ("list_jobs", "get_job", "get_jobs"):
        monkeypatch.setattr(store, name, refused, raising=False)
    tracker = FinishedJobs(jobs, clock, min_interval=0)
    tracker.refresh()
    finish(store, "after", START + 1, duration=2.0)
    clock.advance(5)
    tracker.refresh()
    assert tracker.counted()[0] == {"completed": 1, "dead": 0}


def test_the_minutes_are_read_at_most_once_per_interval(store, clock):
    clock.now = START
    tracker = FinishedJobs(App(store=store, clock=clock).jobs, clock, min_interval=3600)
    assert sum(c for c, _ in bars(tracker)) == 0
    finish(store, "new", START - 1)
    assert sum(c for c, _ in bars(tracker)) == 0  # the minutes read a moment ago
    assert sum(m.completed for m in tracker.minutes(force=True)) == 1


def test_finished_by_minute_counts_each_outcome_by_its_own_time(store):
    start = START - 30  # a whole minute

    def at(job_id: str, state: str, seq: int, updated: float, done: float | None) -> Job:
        return Job(
            id=job_id,
            command="true",
            state=state,
            run_at=start,
            created_at=start,
            updated_at=start + updated,
            finished_at=None if done is None else start + done,
            seq=seq,
        )

    store.insert_jobs(
        [
            # completed: by finished_at (a later update does not move it)
            at("c0", "completed", 1, 500, 0),
            at("c1", "completed", 2, 61, 119.9),
            at("c2", "completed", 3, 180, 180),  # past the window
            at("c3", "completed", 4, -1, -0.001),  # before it
            # dead: by updated_at (a job canceled while waiting has no finished_at)
            at("d0", "dead", 5, 59.99, None),
            at("d1", "dead", 6, 120, 0),
            # other states never count
            at("p0", "pending", 7, 1, 1),
            at("f0", "failed", 8, 1, 1),
        ]
    )
    assert store.finished_by_minute("completed", start, 3) == [1, 1, 0]
    assert store.finished_by_minute("dead", start, 3) == [1, 0, 1]
    assert store.finished_by_minute("completed", start, 4) == [1, 1, 0, 1]
    assert store.finished_by_minute("dead", start + 60, 1) == [0]


def test_the_chart_scales_to_the_busiest_minute(store, clock):
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


def test_finished_after_pages_by_update_then_seq_with_ids_times_and_durations(store):
    for n, (when, seq) in enumerate([(START + 5, 2), (START + 1, 9), (START + 5, 1)]):
        store.insert_jobs(
            [
                Job(
                    id=f"f{n}",
                    command="echo big",
                    state="completed",
                    updated_at=when,
                    finished_at=when,
                    duration=0.5 * n,
                    stdout="x" * 1000,
                    seq=seq,
                )
            ]
        )
    finish(store, "dead-one", START + 3, state="dead")
    rows = store.finished_after("completed", START, -1, 10)
    assert [(r.id, r.updated_at, r.seq, r.duration) for r in rows] == [
        ("f1", START + 1, 9, 0.5),
        ("f2", START + 5, 1, 1.0),
        ("f0", START + 5, 2, 0.0),
    ]
    assert [r.id for r in store.finished_after("completed", START + 5, 1, 10)] == ["f0"]
    assert [r.id for r in store.finished_after("completed", START, -1, 2)] == ["f1", "f2"]
    assert [r.id for r in store.finished_after("dead", 0.0, -1, 10)] == ["dead-one"]
    assert set(rows[0]._fields) == {"id", "updated_at", "seq", "duration"}
