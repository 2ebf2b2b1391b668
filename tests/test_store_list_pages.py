"""`list_jobs` a page at a time and by text (the dashboard's jobs page and `GET /api/jobs`):
every page is the matching slice of the one order `list` gives, on every store."""

from __future__ import annotations

import itertools

import pytest

from queuectl.app import App
from queuectl.errors import InvalidInput
from queuectl.models import STATES, Job

T = 1_800_000_000.0
_seq = itertools.count(1)
ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

COMMANDS = [
    "echo 100% done",
    "echo a_b",
    "echo a.b",
    "echo aXb",
    "ls C:\\temp\\x",
    "grep '[ab]*' file",
    "echo Café au lait",
    "echo CAFÉ",
    "printf 'tab\there'",
    "echo (a|b)+$",
    "Make Report",
    "make report --all",
]


def job(job_id: str, n: int, **fields) -> Job:
    values = {
        "command": COMMANDS[n % len(COMMANDS)],
        "run_at": T,
        "created_at": T,
        "updated_at": T + n,
        "seq": next(_seq),
        "queue": "emails" if n % 3 == 0 else "default",
        "priority": n % 4,
    }
    values.update(fields)
    return Job(id=job_id, **values)


def seed(store) -> None:
    """Every state in two queues; pending ones ready, delayed and blocked; failed ones due
    and waiting for their retry; commands full of LIKE and regex characters."""
    jobs = []
    states = ["pending", "pending", "failed", "completed", "dead", "processing", "pending"]
    for n in range(70):
        state = states[n % len(states)]
        fields = {"state": state}
        if state in ("pending", "failed") and n % 2:
            fields["run_at"] = T + 100 + n  # waiting for its time
        jobs.append(job(f"job-{n:02d}{'_x' if n % 5 == 0 else ''}", n, **fields))
    store.insert_jobs(jobs)
    blocked = [
        job(f"blocked-{n}", n, after=["job-01"], run_at=T - n, command=f"echo Blocked {n}")
        for n in range(4)
    ]
    store.insert_jobs(blocked)


def contains(job: Job, text: str) -> bool:
    needle = text.translate(ASCII_LOWER)
    return needle in job.id.translate(ASCII_LOWER) or needle in job.command.translate(ASCII_LOWER)


def ids(jobs) -> list[str]:
    return [j.id for j in jobs]


TEXTS = ["a", "A.B", "a_b", "100%", "%", "_", "\\temp", "[ab]*", "(a|b)+$", "é", "CAFÉ", "x"]


@pytest.mark.parametrize("queue", [None, "emails"])
def test_every_page_is_the_slice_of_the_whole_order(store, queue):
    seed(store)
    for state in [None, *STATES]:
        whole = ids(store.list_jobs(state, 500, now=T, queue=queue))
        assert whole, (state, queue)
        for limit in (1, 3, 7):
            for offset in range(0, len(whole) + 2):
                page = store.list_jobs(state, limit, now=T, queue=queue, offset=offset)
                assert ids(page) == whole[offset : offset + limit], (state, queue, limit, offset)


@pytest.mark.parametrize("queue", [None, "emails"])
def test_text_keeps_the_jobs_whose_id_or_command_contains_it(store, queue):
    seed(store)
    for state in [None, *STATES]:
        everything = store.list_jobs(state, 500, now=T, queue=queue)
        for text in TEXTS:
            expected = [j.id for j in everything if contains(j, text)]
            found = ids(store.list_jobs(state, 500, now=T, queue=queue, text=text))
            assert found == expected, (state, queue, text)
            for offset in (0, 1, 2, 5):
                page = store.list_jobs(state, 2, now=T, queue=queue, offset=offset, text=text)
                assert ids(page) == expected[offset : offset + 2], (state, queue, text, offset)


def test_text_is_never_a_pattern(store):
    seed(store)
    # Characters that mean something to LIKE or to a regular expression match only themselves.
    assert {j.command for j in store.list_jobs(None, 500, text="100%")} == {"echo 100% done"}
    assert {j.command for j in store.list_jobs(None, 500, text="a_b")} == {"echo a_b"}
    assert {j.command for j in store.list_jobs(None, 500, text="a.b")} == {"echo a.b"}
    assert {j.command for j in store.list_jobs(None, 500, text="(a|b)+$")} == {"echo (a|b)+$"}
    assert store.list_jobs(None, 500, text="a%b") == []
    assert store.list_jobs(None, 500, text=".*") == []
    # ASCII letters in either case; other letters as they are, on every store alike.
    assert {j.command for j in store.list_jobs(None, 500, text="MAKE REPORT")} == {
        "Make Report",
        "make report --all",
    }
    assert {j.command for j in store.list_jobs(None, 500, text="café")} == {"echo Café au lait"}


def test_the_manager_checks_offset_and_text(store):
    seed(store)
    jobs = App(store=store).jobs
    with pytest.raises(InvalidInput, match="offset must be between 0 and"):
        jobs.list(None, 5, offset=-1)
    assert jobs.list(None, 5, text="\x00") == []
    assert jobs.list(None, 5, text="\udcff") == []
    assert ids(jobs.list(None, 5, text="")) == ids(jobs.list(None, 5))
    assert (
        ids(jobs.list("dead", 2, offset=1, text="job"))
        == ids(jobs.list("dead", 50, text="job"))[1:3]
    )
