"""What the user types, tried as a new user would: the enqueue argument (JSON or a command),
batch files with a byte order mark, unknown options and their hints, `-h`.

In-process through `cli.main(argv)`, on every store, like tests/test_cli.py.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from test_cli import CLI_BACKENDS, Cli, enqueued_id, make_cli

HINT = "use -c 'COMMAND' or put the command after --"


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store in turn."""
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


def command_of(cli: Cli, out: str) -> str:
    return cli.store.get_job(enqueued_id(out)).command


# -- the SPEC argument: a JSON object, or a command -----------------------------------------


@pytest.mark.parametrize(
    "spec, words",
    [
        ('{"command":"echo","command":"rm -rf x"}', "the key 'command' twice"),
        ('{"id":"a","command":"true","id":"b"}', "the key 'id' twice"),
        (' {"command":"true","priority":1,"priority":2}', "the key 'priority' twice"),
    ],
)
def test_a_duplicate_json_key_is_refused_naming_the_key(cli, spec, words):
    assert words in cli.fails(2, "enqueue", spec)


def test_a_duplicate_key_in_a_batch_line_is_refused_with_its_line(cli):
    batch = '{"command":"true"}\n{"command":"echo","command":"rm"}\n'
    err = cli.fails(2, "enqueue", "--file", "-", stdin=batch)
    assert "line 2" in err and "the key 'command' twice" in err


@pytest.mark.parametrize(
    "spec, kind",
    [
        ('[{"command":"echo"}]', "a JSON array"),
        ('"echo hi"', "a JSON string"),
        ("null", "JSON null"),
        ("123", "a JSON number"),
        ("1.5e3", "a JSON number"),
        (" [] ", "a JSON array"),
    ],
)
def test_json_that_is_not_an_object_is_refused_with_a_hint(cli, spec, kind):
    err = cli.fails(2, "enqueue", spec)
    assert f"SPEC is {kind}, not an object" in err and HINT in err


@pytest.mark.parametrize("spec", ["{ echo a; } > f", "{bad", "{", '{"command":"x"'])
def test_a_spec_that_starts_with_a_brace_but_is_not_json_gets_the_hint(cli, spec):
    err = cli.fails(2, "enqueue", spec)
    assert "SPEC starts with { but is not valid JSON" in err and HINT in err


def test_a_shell_group_goes_in_with_c_or_after_double_dash(cli, tmp_path):
    group = "{ echo a; } > f"
    assert command_of(cli, cli.ok("enqueue", "-c", group)) == group
    assert command_of(cli, cli.ok("enqueue", "--", group)) == group
    # After --, even a JSON object is a command: nothing after -- is read as a SPEC.
    assert command_of(cli, cli.ok("enqueue", "--", '{"command":"x"}')) == '{"command":"x"}'


def test_several_words_after_double_dash_are_one_command(cli):
    out = cli.ok("enqueue", "--id", "ls1", "--priority", "3", "--", "ls", "-la", "/tmp")
    job = cli.store.get_job("ls1")
    assert (job.command, job.priority) == ("ls -la /tmp", 3)
    assert out == "Enqueued job ls1\n"


def test_several_bare_words_are_one_command_as_pueue_add_does(cli):
    assert command_of(cli, cli.ok("enqueue", "echo", "hi", "there")) == "echo hi there"
    # Options may sit anywhere among the words, as everywhere else.
    cli.ok("enqueue", "echo", "--id", "mixed", "hello")
    assert cli.store.get_job("mixed").command == "echo hello"
    # `true` and `false` are JSON too, but first of all the shell's commands.
    assert command_of(cli, cli.ok("enqueue", "true")) == "true"
    assert command_of(cli, cli.ok("enqueue", "[", "x", "=", "x", "]")) == "[ x = x ]"


def test_a_command_option_among_bare_words_points_to_double_dash(cli):
    err = cli.fails(2, "enqueue", "ls", "-la")
    assert "No such option: -l" in err
    assert "if it belongs to the command, put the command after --" in err
    assert "queuectl enqueue -- ls -la" in err


def test_c_with_more_words_is_refused_not_dropped(cli):
    err = cli.fails(2, "enqueue", "-c", "echo", "hi")
    assert "-c takes the whole command as one argument" in err
    assert "'hi'" in err and "-c 'echo hi'" in err and "-- echo hi" in err


def test_c_and_double_dash_together_are_refused(cli):
    err = cli.fails(2, "enqueue", "-c", "echo a", "--", "echo", "b")
    assert "a command after -- and -c" in err


def test_words_before_and_after_double_dash_are_refused(cli):
    err = cli.fails(2, "enqueue", "echo", "--", "hi")
    assert "put the whole command after --" in err


def test_a_json_spec_is_one_argument(cli):
    err = cli.fails(2, "enqueue", '{"command":"true"}', "extra")
    assert "a JSON SPEC is one argument" in err


def test_nothing_after_double_dash_is_no_command(cli):
    assert "no command given" in cli.fails(2, "enqueue", "--")
    # An empty JSON object is a SPEC without its command, as on the web API.
    assert "command is required" in cli.fails(2, "enqueue", "{}")


def test_c_still_overrides_the_command_of_a_json_spec(cli):
    cli.ok("enqueue", '{"id":"o","command":"echo spec"}', "-c", "echo option")
    assert cli.store.get_job("o").command == "echo option"


def test_the_help_says_how_words_and_double_dash_work(cli):
    out = cli.ok("enqueue", "--help")
    assert "queuectl enqueue --priority 5 -- ls -la" in out and "joined" in out


# -- a batch file with a byte order mark ----------------------------------------------------


BOM = "\ufeff"
LINES = '{"id":"b1","command":"echo 1"}\n{"id":"b2","command":"echo 2"}\n'


def test_a_utf8_bom_at_the_start_of_a_file_is_accepted(cli, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_bytes((BOM + LINES).encode("utf-8"))
    assert cli.ok("enqueue", "--file", str(path)) == "Enqueued 2 jobs\n"
    assert cli.store.get_job("b1").command == "echo 1"


def test_a_utf8_bom_at_the_start_of_stdin_is_accepted(cli):
    assert cli.ok("enqueue", "--file", "-", "-q", stdin=(BOM + LINES).encode()) == "b1\nb2\n"


def test_a_bom_anywhere_else_is_still_refused(cli):
    err = cli.fails(2, "enqueue", "--file", "-", stdin=LINES + BOM + '{"command":"x"}\n')
    assert "line 3" in err


# -- options --------------------------------------------------------------------------------


def test_quiet_and_json_together_are_refused(cli):
    err = cli.fails(2, "enqueue", "-q", "--json", "true")
    assert "--quiet and --json" in err and "not both" in err


@pytest.mark.parametrize(
    "args",
    [[], ["enqueue"], ["list"], ["worker"], ["worker", "start"], ["dlq", "retry"], ["config"]],
)
def test_h_is_help_everywhere(cli, args):
    assert cli.ok(*args, "-h") == cli.ok(*args, "--help")
    assert "Usage: queuectl" in cli.ok(*args, "-h")


# -- unknown options and the '--' hint ------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["log", "-z", "job"],  # -f is --follow now: a real option
        ["show", "job1", "-x"],
        ["log", "--bogus", "job"],
        ["show", "-j8", "--json", "job1"],
    ],
)
def test_an_unknown_option_beside_an_id_is_a_plain_unknown_option(cli, args):
    err = cli.fails(2, *args)
    option = args[1] if args[1].startswith("-") else args[2]
    assert f"No such option: {option[:2] if not option.startswith('--') else option}" in err
    assert "goes after --" not in err
    assert err.endswith(f"(see: queuectl {args[0]} --help)\n")


@pytest.mark.parametrize(
    "args, path",
    [
        (["show", "-j8"], "queuectl show"),
        (["log", "-job7", "--json"], "queuectl log"),
        (["dlq", "retry", "ok", "-dead1"], "queuectl dlq retry"),
    ],
)
def test_a_dash_id_where_an_id_goes_gets_the_double_dash_hint(cli, args, path):
    err = cli.fails(2, *args)
    assert err.endswith(f"an id starting with '-' goes after --, e.g. {path} -- -job7\n")


def test_an_option_that_cannot_be_an_id_gets_no_hint(cli):
    # '=' is not allowed in an id, so this is a mistyped option, not an id.
    err = cli.fails(2, "show", "-x=1")
    assert "goes after --" not in err and "(see: queuectl show --help)" in err


def test_options_that_exist_elsewhere_are_plain_unknown_options(cli):
    err = cli.fails(2, "list", "-f")
    assert err == "Error: No such option: -f (see: queuectl list --help)\n"


def test_add_job_script_still_takes_a_json_object_or_command_words(tmp_path):
    """scripts/add_job.py hands its words to `enqueue`: after `--` they would never be JSON."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "add_job.py"
    db = str(tmp_path / "add.db")
    env = {**os.environ, "QUEUECTL_HOME": str(tmp_path / "home")}

    def add(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), "--db", db, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    assert add('{"id":"js","command":"echo hi"}').stdout == "Enqueued job js\n"
    assert add("--id", "ls", "--", "ls", "-la").stdout == "Enqueued job ls\n"
    from queuectl.store.sqlite import SqliteStore

    store = SqliteStore(db)
    assert (store.get_job("js").command, store.get_job("ls").command) == ("echo hi", "ls -la")
    store.close()
