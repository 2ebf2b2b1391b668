"""What the commands print, tried as a new user would: pending jobs split into ready and
waiting, a note when `--limit` hid rows, local times, `--json` on every command that changes
something, shell completion.

In-process through `cli.main(argv)`, on every store, like tests/test_cli.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
from test_cli import CLI_BACKENDS, ISO_UTC, Cli, make_cli

QUEUECTL = shutil.which("queuectl", path=str(Path(sys.executable).parent))


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn."""
    monkeypatch.delenv("QUEUECTL_TZ", raising=False)
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


@pytest.fixture
def new_york() -> Iterator[None]:
    """Local time is US Eastern for the test (restored afterwards, tzset included)."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    yield
    if saved is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = saved
    time.tzset()


def rows(table: str) -> list[list[str]]:
    """The cells of a table's rows (header and rule left out)."""
    return [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[2:] if line.strip()]


# -- list: ready in claim order, then waiting by run_at --------------------------------------


def seed_mixed(cli: Cli) -> float:
    """The jobs of the report: the worker ran d,a,b,c,e,g,f while list showed g,d,a,b,c,f,e."""
    now = time.time()
    cli.seed("a", run_at=now - 100, seq=1)
    cli.seed("b", run_at=now - 90, seq=2)
    cli.seed("c", run_at=now - 80, seq=3)
    cli.seed("d", run_at=now - 50, priority=1, seq=4)
    cli.seed("e", run_at=now + 100, seq=5)
    cli.seed("f", run_at=now + 300, seq=6)
    cli.seed("g", run_at=now + 200, priority=9, seq=7)
    return now


def test_pending_lists_ready_jobs_in_claim_order_then_waiting_ones_by_run_at(cli):
    seed_mixed(cli)
    expected = ["d", "a", "b", "c", "e", "g", "f"]
    assert [j["id"] for j in cli.json("list", "--state", "pending")] == expected
    table = rows(cli.ok("list", "--state", "pending"))
    assert [r[0] for r in table] == expected
    # The last column says which is which.
    assert [r[-1] for r in table[:4]] == ["now"] * 4
    assert re.fullmatch(r"in 1m 3\ds", table[4][-1]), table[4]
    assert re.fullmatch(r"in 3m 1\ds", table[5][-1]), table[5]
    assert re.fullmatch(r"in 4m 5\ds", table[6][-1]), table[6]


def test_the_json_list_keeps_its_shape(cli):
    seed_mixed(cli)
    docs = cli.json("list", "--state", "pending")
    assert all(isinstance(d, dict) and "ready" not in d for d in docs)


def test_the_limit_takes_ready_jobs_first(cli):
    seed_mixed(cli)
    assert [j["id"] for j in cli.json("list", "--state", "pending", "--limit", "5")] == [
        "d",
        "a",
        "b",
        "c",
        "e",
    ]
    assert [j["id"] for j in cli.json("list", "--state", "pending", "--limit", "2")] == ["d", "a"]


def test_failed_jobs_waiting_for_their_retry_are_marked(cli):
    now = time.time()
    cli.seed("soon", "failed", run_at=now + 30, seq=1)
    cli.seed("due", "failed", run_at=now - 1, seq=2)
    table = rows(cli.ok("list", "--state", "failed"))
    assert [(r[0], r[-1][:3]) for r in table] == [("due", "now"), ("soon", "in ")]
    assert table[0][-2] != "Ready"


def test_the_ready_column_is_named(cli):
    seed_mixed(cli)
    header = re.split(r"\s{2,}", cli.ok("list", "--state", "pending").splitlines()[0].strip())
    assert header == ["ID", "State", "Attempts", "Priority", "Command", "Run At", "Ready"]


# -- more rows than --limit -------------------------------------------------------------------


def test_list_says_when_more_rows_exist(cli):
    for n in range(5):
        cli.seed(f"j{n}", seq=n)
    out = cli.ok("list", "--limit", "3")
    assert len(rows(out)) == 4  # three jobs and the note
    assert out.splitlines()[-1] == "(first 3 shown; more exist: raise --limit to see them)"
    assert "more exist" not in cli.ok("list", "--limit", "5")
    assert "more exist" not in cli.ok("list")
    assert len(cli.json("list", "--limit", "3")) == 3  # JSON: only the rows
    out = cli.ok("list", "--state", "pending", "--limit", "2")
    assert out.splitlines()[-1] == "(first 2 shown; more exist: raise --limit to see them)"


def test_dlq_list_takes_a_limit_and_says_when_more_rows_exist(cli):
    now = time.time()
    for n in range(4):
        cli.seed(f"dead{n}", "dead", updated_at=now - n)
    assert [j["id"] for j in cli.json("dlq", "list", "--limit", "2")] == ["dead0", "dead1"]
    out = cli.ok("dlq", "list", "--limit", "2")
    assert [r[0] for r in rows(out)[:2]] == ["dead0", "dead1"]
    assert out.splitlines()[-1] == "(first 2 shown; more exist: raise --limit to see them)"
    assert "more exist" not in cli.ok("dlq", "list")
    assert len(cli.json("dlq", "list")) == 4
    assert "--limit" in cli.fails(2, "dlq", "list", "--limit", "0")


# -- --json on the commands that change something ---------------------------------------------


def test_dlq_retry_takes_json(cli):
    cli.seed("d1", "dead")
    cli.seed("d2", "dead")
    assert cli.json("dlq", "retry", "d1", "d2") == {"retried": ["d1", "d2"], "not_in_dlq": []}
    cli.seed("d3", "dead")
    result = cli("dlq", "retry", "d3", "nope", "--json")
    assert result.code == 1
    assert json.loads(result.out) == {"retried": ["d3"], "not_in_dlq": ["nope"]}
    assert result.err.startswith("Error: job 'nope' is not in the DLQ")


def test_config_unset_takes_json(cli):
    cli.ok("config", "set", "max_retries", "7")
    assert cli.json("config", "unset", "max-retries") == {"max_retries": 3}
    assert cli.store.get_config() == {}


# -- times in local time ------------------------------------------------------------------------


def seed_at_noon_utc(cli: Cli) -> None:
    # 2030-01-15 12:00:00.250 UTC is 07:00:00.250 in New York (EST, -05:00).
    cli.seed("t1", run_at=1894708800.25, updated_at=1894708800.25, created_at=1894708800.25)


def test_local_shows_times_in_the_local_zone_and_json_stays_utc(cli, new_york):
    seed_at_noon_utc(cli)
    out = cli.ok("--local", "list", "--state", "pending")
    assert rows(out)[0][5] == "2030-01-15T07:00:00.250-05:00"
    shown = cli.ok("--local", "show", "t1")
    assert re.search(r"^run_at\s+2030-01-15T07:00:00.250-05:00$", shown, re.M), shown
    assert cli.json("--local", "show", "t1")["run_at"] == "2030-01-15T12:00:00.250Z"
    assert cli.json("--local", "list")[0]["run_at"] == "2030-01-15T12:00:00.250Z"
    assert ISO_UTC.match(rows(cli.ok("list"))[0][-1])  # UTC without --local


@pytest.mark.parametrize(
    "zone, shown",
    [
        ("local", "2030-01-15T07:00:00.250-05:00"),
        ("Asia/Tokyo", "2030-01-15T21:00:00.250+09:00"),
        ("UTC", "2030-01-15T12:00:00.250Z"),
    ],
)
def test_queuectl_tz_picks_the_zone(cli, new_york, monkeypatch, zone, shown):
    seed_at_noon_utc(cli)
    monkeypatch.setenv("QUEUECTL_TZ", zone)
    assert rows(cli.ok("list", "--state", "pending"))[0][5] == shown
    assert cli.json("show", "t1")["run_at"] == "2030-01-15T12:00:00.250Z"


def test_an_unknown_zone_is_bad_input(cli, monkeypatch):
    monkeypatch.setenv("QUEUECTL_TZ", "Mars/Olympus")
    err = cli.fails(2, "list")
    assert "QUEUECTL_TZ" in err and "'Mars/Olympus'" in err and "IANA" in err


# -- shell completion ---------------------------------------------------------------------------


def test_show_completion_prints_a_script_for_the_shell(cli, monkeypatch):
    # Typer's own switch: name the shell rather than detect the one running the tests.
    monkeypatch.setenv("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", "1")
    out = cli.ok("--show-completion", "bash")
    assert "_QUEUECTL_COMPLETE" in out and "complete" in out
    assert "--install-completion" in cli.ok("--help")
    assert "compdef queuectl" in cli.ok("--show-completion", "zsh")


def test_completion_answers_the_shell_in_a_real_process(tmp_path):
    """What the installed script does on Tab: run queuectl with Click's completion variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env.update(
        QUEUECTL_HOME=str(tmp_path / "home"),
        _QUEUECTL_COMPLETE="complete_bash",
        COMP_WORDS="queuectl dl",
        COMP_CWORD="1",
    )
    done = subprocess.run([QUEUECTL], env=env, capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.split(), done.stderr) == (0, ["dlq"], "")
    env.update(COMP_WORDS="queuectl list --st", COMP_CWORD="2")
    done = subprocess.run([QUEUECTL], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["--state"]


def test_schedule_times_follow_the_zone_too(cli, monkeypatch):
    monkeypatch.setenv("QUEUECTL_TZ", "Asia/Tokyo")
    out = cli.ok("schedule", "add", "noon", "--cron", "0 12 * * *", "echo noon")
    assert re.search(r"next run at \d{4}-\d\d-\d\dT21:00:00\.000\+09:00$", out.strip()), out
    row = rows(cli.ok("schedule", "list"))[0]
    assert row[0] == "noon" and row[3].endswith("T21:00:00.000+09:00")
    assert cli.json("schedule", "list")[0]["next_run_at"].endswith("T12:00:00.000Z")
