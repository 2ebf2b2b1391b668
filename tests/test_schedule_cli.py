"""`queuectl schedule …` as a user sees it (SPEC §7.5), in-process on every store."""

from __future__ import annotations

import re
import time
from typing import Iterator

import pytest
from test_cli import CLI_BACKENDS, ISO_UTC, Cli, make_cli

from queuectl.app import App

LIST_FIELDS = ["name", "cron", "tz", "command", "next_run_at", "last_run_at", "paused"]


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


def schedules(cli: Cli) -> list[dict]:
    return [s.to_record() for s in cli.store.list_schedules()]


def fails(cli: Cli, code: int, *args: str) -> str:
    """A failing command: one Error line, and no schedule (nor job or config) changed."""
    before = schedules(cli)
    err = cli.fails(code, *args)
    assert schedules(cli) == before
    return err


def test_add_prints_the_next_run_and_list_shows_it(cli):
    out = cli.ok(
        "schedule",
        "add",
        "backup",
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Paris",
        "tar czf b.tgz d",
    )
    match = re.fullmatch(r"Added schedule backup; next run at (\S+)\n", out)
    assert match and ISO_UTC.match(match.group(1))
    assert match.group(1)[11:16] in ("01:30", "00:30")  # 02:30 in Paris, winter or summer
    [doc] = cli.json("schedule", "list")
    assert list(doc) == LIST_FIELDS
    assert doc == {
        "name": "backup",
        "cron": "30 2 * * *",
        "tz": "Europe/Paris",
        "command": "tar czf b.tgz d",
        "next_run_at": match.group(1),
        "last_run_at": None,
        "paused": False,
    }
    table = cli.ok("schedule", "list")
    assert table.splitlines()[0].split() == [
        "Name", "Cron", "TZ", "Next", "Run", "Last", "Run", "Paused", "Command",
    ]  # fmt: skip
    assert "backup" in table and "Europe/Paris" in table and match.group(1) in table


def test_add_carries_the_enqueue_options_into_the_jobs(cli):
    cli.ok(
        "schedule", "add", "opts", "--cron", "@hourly",
        "--priority", "9", "--max-retries", "0", "--timeout", "2.5", "echo hi",
    )  # fmt: skip
    [row] = cli.store.list_schedules()
    assert row.options == {"priority": 9, "max_retries": 0, "timeout": 2.5}
    [job_id] = App(store=cli.store).schedules.tick(row.next_run_at)
    job = cli.store.get_job(job_id)
    assert (job.command, job.priority, job.max_retries, job.timeout) == ("echo hi", 9, 0, 2.5)
    assert job_id == f"opts.{time.strftime('%Y%m%dT%H%MZ', time.gmtime(row.next_run_at))}"


def test_a_taken_name_is_exit_1(cli):
    cli.ok("schedule", "add", "x", "--cron", "@daily", "true")
    assert fails(cli, 1, "schedule", "add", "x", "--cron", "@hourly", "false") == (
        "Error: schedule 'x' already exists; nothing was added\n"
    )


@pytest.mark.parametrize(
    "args, words",
    [
        (["--cron", "61 * * * *", "true"], "bad cron expression '61 * * * *': bad minute"),
        (["--cron", "* * *", "true"], "3 fields, not 5"),
        (["--cron", "@reboot", "true"], "unknown cron nickname '@reboot'"),
        (["--cron", "* * * * *", "--tz", "Mars/Base", "true"], "unknown time zone 'Mars/Base'"),
        (["--cron", "* * * * *", "--max-retries", "-1", "true"], "max_retries must be"),
        (["--cron", "* * * * *", "--timeout", "0", "true"], "timeout must be > 0"),
        (["--cron", "* * * * *", "--priority", "x", "true"], "Invalid value for '--priority'"),
        (["--cron", "* * * * *", " "], "command must not be blank"),
        (["true"], "Missing option '--cron'"),
        (["--cron", "* * * * *"], "Missing argument 'COMMAND'"),
    ],
)
def test_bad_input_is_exit_2_with_a_clear_error(cli, args, words):
    err = fails(cli, 2, "schedule", "add", "x", *args)
    assert words in err


def test_a_bad_name_is_exit_2(cli):
    err = fails(cli, 2, "schedule", "add", "a b", "--cron", "* * * * *", "true")
    assert "schedule name 'a b' is not allowed; use 1-64 characters" in err


def test_pause_resume_remove(cli):
    cli.ok("schedule", "add", "x", "--cron", "*/5 * * * *", "true")
    assert cli.ok("schedule", "pause", "x") == "Paused schedule x\n"
    [doc] = cli.json("schedule", "list")
    assert (doc["paused"], doc["next_run_at"]) == (True, None)
    assert "yes" in cli.ok("schedule", "list")
    out = cli.ok("schedule", "resume", "x")
    [doc] = cli.json("schedule", "list")
    assert out == f"Resumed schedule x; next run at {doc['next_run_at']}\n"
    assert doc["paused"] is False and ISO_UTC.match(doc["next_run_at"])
    assert cli.ok("schedule", "remove", "x") == "Removed schedule x\n"
    assert cli.json("schedule", "list") == []
    assert cli.ok("schedule", "list") == "No schedules.\n"


@pytest.mark.parametrize("action", ["remove", "pause", "resume"])
def test_an_unknown_name_is_exit_1(cli, action):
    cli.ok("schedule", "add", "x", "--cron", "@daily", "true")
    assert fails(cli, 1, "schedule", action, "nope") == "Error: no schedule named 'nope'\n"


def test_last_run_shows_after_a_tick(cli):
    cli.ok("schedule", "add", "x", "--cron", "* * * * *", "true")
    [before] = cli.json("schedule", "list")
    [row] = cli.store.list_schedules()
    App(store=cli.store).schedules.tick(row.next_run_at + 1)
    [after] = cli.json("schedule", "list")
    assert after["last_run_at"] == before["next_run_at"]
    assert after["next_run_at"] > before["next_run_at"]


def test_the_group_without_a_command_prints_its_help(cli):
    out = cli.ok("schedule")
    for word in ("add", "list", "remove", "pause", "resume"):
        assert word in out
