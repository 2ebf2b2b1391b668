"""The progress line of long commands (SPEC §7 intro): on stderr when it is a terminal,
silent otherwise. `purge` and `import-node` are checked in their own files; here the line
itself, `wait`, `dlq retry` and `enqueue --file`, in-process on every store."""

from __future__ import annotations

import sys
from typing import Iterator

import pytest
from test_cli import CLI_BACKENDS, Cli, make_cli

from queuectl.cli.progress import Progress

ERASE = "\r\x1b[K"


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn (as in test_cli.py)."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


def terminal(monkeypatch, yes: bool = True) -> None:
    """stderr (pytest's capture, which the test's own phase replaces, so call this from the
    test itself) says it is a terminal, or not."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: yes, raising=False)


# -- the line -----------------------------------------------------------------------------------


def test_the_line_is_rewritten_in_place_and_erased_at_the_end(capsys, monkeypatch):
    terminal(monkeypatch)
    with Progress() as line:
        assert line.on
        line.show("one")
        line.show("two")
    assert capsys.readouterr().err == "\rone\rtwo" + ERASE


def test_the_line_is_erased_when_the_block_fails(capsys, monkeypatch):
    terminal(monkeypatch)
    with pytest.raises(RuntimeError), Progress() as line:
        line.show("half way")
        raise RuntimeError("boom")
    assert capsys.readouterr().err == "\rhalf way" + ERASE


def test_nothing_shown_nothing_erased(capsys, monkeypatch):
    terminal(monkeypatch)
    with Progress():
        pass
    assert capsys.readouterr().err == ""


def test_off_a_terminal_the_line_is_silent(capsys, monkeypatch):
    terminal(monkeypatch, yes=False)
    with Progress() as line:
        assert not line.on
        line.show("never seen")
    assert capsys.readouterr().err == ""


def test_a_closed_stderr_is_no_terminal(monkeypatch):
    def closed() -> bool:
        raise ValueError("I/O operation on closed file")

    monkeypatch.setattr(sys.stderr, "isatty", closed, raising=False)
    assert not Progress().on


# -- the commands -------------------------------------------------------------------------------


def test_wait_counts_the_jobs_done_on_a_terminal(cli, monkeypatch):
    terminal(monkeypatch)
    for n in range(3):
        cli.seed(f"ok{n}", "completed")
    result = cli("wait", "ok0", "ok1", "ok2")
    assert (result.code, result.out, result.err) == (0, "", "\r3/3 done" + ERASE)
    result = cli("wait", "ok0")  # one job: no count to show
    assert (result.code, result.err) == (0, "")


def test_wait_erases_its_line_before_the_error(cli, monkeypatch):
    terminal(monkeypatch)
    cli.seed("ok", "completed")
    cli.seed("slow", "pending")
    result = cli("wait", "ok", "slow", "--timeout", "0.2")
    assert result.code == 1
    line, error = result.err.split(ERASE)
    assert set(line.split("\r")) == {"", "1/2 done"}
    assert error == "Error: timed out after 0.2s; not finished: 'slow'\n"


def test_dlq_retry_all_counts_the_jobs_retried_on_a_terminal(cli, monkeypatch):
    monkeypatch.setattr("queuectl.jobs.ID_BATCH", 2)
    for n in range(5):
        cli.seed(f"d{n}", "dead")
    result = cli("dlq", "retry", "--all")
    assert (result.code, result.out, result.err) == (0, "Retried 5 job(s)\n", "")
    for n in range(5):
        cli.seed(f"again{n}", "dead")
    terminal(monkeypatch)
    result = cli("dlq", "retry", "--all")
    assert (result.code, result.out) == (0, "Retried 5 job(s)\n")
    assert result.err.split("\r") == [
        "",
        "retried 2 job(s)…",
        "retried 4 job(s)…",
        "retried 5 job(s)…",
        "\x1b[K",
    ]


def test_a_long_enqueue_file_shows_what_it_read_then_what_it_writes(cli, monkeypatch):
    monkeypatch.setattr("queuectl.cli.jobs.LINES_PER_UPDATE", 2)
    batch = "".join(f'{{"id": "j{n}", "command": "true"}}\n' for n in range(5))
    result = cli("enqueue", "--file", "-", stdin=batch)
    assert (result.code, result.out, result.err) == (0, "Enqueued 5 jobs\n", "")
    terminal(monkeypatch)
    result = cli("enqueue", "--file", "-", stdin=batch.replace('"j', '"k'))
    assert (result.code, result.out) == (0, "Enqueued 5 jobs\n")
    assert result.err.split("\r") == [
        "",
        "read 2 job(s)…",
        "read 4 job(s)…",
        "enqueuing 5 job(s)…",
        "\x1b[K",
    ]


def test_a_short_enqueue_file_shows_nothing_even_on_a_terminal(cli, monkeypatch):
    terminal(monkeypatch)
    result = cli("enqueue", "--file", "-", stdin='{"command": "true"}\n' * 3)
    assert (result.code, result.out, result.err) == (0, "Enqueued 3 jobs\n", "")


def test_a_bad_line_erases_the_line_before_the_error(cli, monkeypatch):
    terminal(monkeypatch)
    monkeypatch.setattr("queuectl.cli.jobs.LINES_PER_UPDATE", 2)
    batch = '{"command": "true"}\n' * 2 + "not json\n"
    result = cli("enqueue", "--file", "-", stdin=batch)
    assert result.code == 2
    assert result.err.startswith("\rread 2 job(s)…" + ERASE + "Error: line 3 is not valid JSON")
    assert cli.store.list_jobs(None, 10) == []
