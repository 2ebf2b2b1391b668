"""Property tests of the command line: bad input of every kind is exit 2, one `Error:` line and
no change to the store; good input round-trips; odd text never reaches the terminal raw.

Runs in-process through `cli.main` (see test_cli.Cli) on every store.
"""

from __future__ import annotations

import json
import re
import string
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import CLI_BACKENDS, Cli, assert_one_error_line, make_cli

INT_MAX = 2**31 - 1
SPEC_FIELDS = ("id", "command", "max_retries", "priority", "delay", "run_at", "timeout")
ID_CHARS = string.ascii_letters + string.digits + "._:-"
# What a terminal must never receive raw (newlines only between lines of a text output).
RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")

# The store lives for the whole test, across examples: that is the point (nothing may change).
PROPERTY = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    yield from make_cli(request.param, tmp_path, capsys, monkeypatch)


# -- strategies ---------------------------------------------------------------------------------

commands = st.text(min_size=1, max_size=80).filter(lambda c: c.strip() and "\x00" not in c)
good_ids = st.text(alphabet=ID_CHARS, min_size=1, max_size=128)
not_iso = st.text(alphabet=string.ascii_letters + " :-/.", max_size=20)  # no digit: no date
far_times = st.integers(1, 1969).map(lambda y: f"{y:04d}-06-01T00:00:00Z")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def not_(*types: type) -> st.SearchStrategy[Any]:
    """JSON values that are not None and not of these types (bool counts as its own type)."""
    return json_values.filter(
        lambda v: v is not None and not (isinstance(v, types) and not isinstance(v, bool))
    )


BREAKAGES: dict[str, st.SearchStrategy[tuple[str, Any]]] = {
    "unknown field": st.tuples(
        st.text(min_size=1, max_size=20).filter(lambda k: k not in SPEC_FIELDS), json_values
    ),
    "command type": st.tuples(st.just("command"), not_(str) | st.none()),
    "blank command": st.tuples(st.just("command"), st.text(" \t\n\r\x0b\x0c", max_size=10)),
    "long command": st.tuples(
        st.just("command"),
        st.sampled_from(["x" * (64 * 1024 + 1), "é" * (32 * 1024 + 1), "y" * 1_000_000]),
    ),
    "id type": st.tuples(st.just("id"), not_(str)),
    "bad id": st.tuples(
        st.just("id"),
        st.text(max_size=140).filter(lambda i: not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", i)),
    ),
    "int type": st.tuples(st.sampled_from(["max_retries", "priority"]), not_(int)),
    "max_retries range": st.tuples(
        st.just("max_retries"), st.integers(max_value=-1) | st.integers(min_value=INT_MAX + 1)
    ),
    "priority range": st.tuples(
        st.just("priority"),
        st.integers(max_value=-(2**31) - 1) | st.integers(min_value=INT_MAX + 1),
    ),
    "seconds type": st.tuples(st.sampled_from(["delay", "timeout"]), not_(int, float)),
    "delay range": st.tuples(
        st.just("delay"),
        st.floats(max_value=-1e-9)
        | st.floats(min_value=1e9 + 1, allow_infinity=False)
        | st.integers(max_value=-1),
    ),
    "timeout range": st.tuples(
        st.just("timeout"),
        st.floats(max_value=0) | st.integers(max_value=0) | st.integers(min_value=10**9 + 1),
    ),
    "run_at type": st.tuples(st.just("run_at"), not_(str)),
    "run_at text": st.tuples(
        st.just("run_at"),
        not_iso
        | far_times
        | st.sampled_from(
            ["2026-13-01T00:00:00Z", "2026-02-30", "2026-01-01T25:00", "2026-01-01T00:00+25:00"]
        ),
    ),
}


@st.composite
def bad_specs(draw) -> tuple[str, str]:
    """(what was broken, the SPEC argument as JSON text)."""
    spec: dict[str, Any] = {"command": draw(commands)}
    kind = draw(st.sampled_from([*BREAKAGES, "delay and run_at", "NaN"]))
    if kind == "delay and run_at":
        spec.update(delay=draw(st.integers(0, 100)), run_at="2030-01-01T00:00:00Z")
    elif kind == "NaN":
        field = draw(st.sampled_from(["delay", "timeout", "priority", "max_retries"]))
        constant = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return kind, json.dumps(spec)[:-1] + f', "{field}": {constant}}}'
    else:
        field, value = draw(BREAKAGES[kind])
        spec[field] = value
    return kind, json.dumps(spec)


def batch_of(bad: str, draw) -> tuple[str, int]:
    """A JSON lines batch of good jobs with the bad one at some line; (text, its line)."""
    before = draw(st.integers(0, 3))
    after = draw(st.integers(0, 2))
    good = [json.dumps({"command": f"echo {n}"}) for n in range(before + after)]
    lines = good[:before] + [bad] + good[before:]
    return "\n".join(lines) + "\n", before + 1


# -- bad input changes nothing ------------------------------------------------------------------


@PROPERTY
@given(case=bad_specs(), as_batch=st.booleans(), data=st.data())
def test_a_bad_enqueue_spec_is_exit_2_one_line_and_changes_nothing(cli, case, as_batch, data):
    kind, text = case
    if as_batch:
        batch, line = batch_of(text, data.draw)
        err = cli.fails(2, "enqueue", "--file", "-", stdin=batch)
        assert f"line {line}" in err, (kind, err)
    else:
        err = cli.fails(2, "enqueue", text)
    assert len(err) < 1100, kind


option_breakages = st.one_of(
    st.tuples(st.just("--priority"), st.sampled_from(["x", "1.5", str(2**31), str(-(2**31) - 1)])),
    st.tuples(st.just("--max-retries"), st.integers(max_value=-1).map(str)),
    st.tuples(st.just("--delay"), st.sampled_from(["-1", "nan", "inf", "1e10", "soon"])),
    st.tuples(st.just("--timeout"), st.sampled_from(["0", "-5", "nan", "-inf", "2e9"])),
    st.tuples(st.just("--run-at"), not_iso | far_times),
    st.tuples(
        st.just("--id"),
        st.text(max_size=20).filter(lambda i: not re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", i)),
    ),
)


@PROPERTY
@given(command=commands, broken=option_breakages)
def test_a_bad_enqueue_option_is_exit_2_one_line_and_changes_nothing(cli, command, broken):
    cli.fails(2, "enqueue", "-c", command, *broken)


def number_text(values: st.SearchStrategy[float]) -> st.SearchStrategy[str]:
    return values.map(lambda v: repr(v) if isinstance(v, float) else str(v))


# Values that break each key's rule (SPEC §5 config), as the user would type them.
BAD_CONFIG: dict[str, st.SearchStrategy[str]] = {
    "max_retries": number_text(
        st.integers(max_value=-1) | st.floats(0.01, 1e6).filter(lambda v: not v.is_integer())
    ),
    "backoff_base": number_text(st.floats(max_value=0.999)),
    "backoff_max": number_text(st.floats(max_value=0) | st.integers(max_value=0)),
    "backoff_jitter": number_text(st.floats(max_value=-1e-9) | st.floats(min_value=1.000001)),
    "job_timeout": number_text(st.floats(max_value=-1e-9) | st.integers(max_value=-1)),
    "poll_interval": number_text(st.floats(max_value=0)),
    "heartbeat_interval": number_text(st.floats(max_value=0) | st.floats(600, 1e9)),
    "stale_after": number_text(st.floats(max_value=30)),  # must exceed heartbeat_interval 30
}
spellings = {
    "max_retries": "max-retries",
    "backoff_base": "backoffBase",
    "heartbeat_interval": "heartbeat-interval",
    "stale_after": "staleAfter",
}


@st.composite
def bad_config(draw) -> tuple[str, str]:
    key = draw(st.sampled_from(sorted(BAD_CONFIG)))
    value = draw(
        BAD_CONFIG[key]
        | st.text(alphabet=string.ascii_letters + " _,", max_size=12)  # never a number
        | number_text(st.floats(min_value=1e9 + 1) | st.floats(max_value=-1e9 - 1))
    )
    if draw(st.booleans()):
        key = spellings.get(key, key)
    return key, value


@PROPERTY
@given(case=bad_config())
def test_a_bad_config_value_is_exit_2_one_line_and_changes_nothing(cli, case):
    key, value = case
    err = cli.fails(2, "config", "set", key, value)
    assert "must be" in err or "greater than" in err, err


@PROPERTY
@given(
    key=st.text(max_size=30).map(lambda k: k.lstrip("-") + "?"),
    action=st.sampled_from([["get"], ["unset"], ["set", "1"]]),
)
def test_an_unknown_config_key_is_exit_2_naming_the_keys(cli, key, action):
    err = cli.fails(2, "config", action[0], key, *action[1:])
    assert "max_retries" in err and "stale_after" in err


# -- good input round-trips ---------------------------------------------------------------------

when = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(9999, 12, 28),
    timezones=st.none()
    | st.timezones()
    | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439)),
)


@st.composite
def good_specs(draw) -> dict[str, Any]:
    spec: dict[str, Any] = {"command": draw(commands)}
    optional = {
        "id": good_ids,
        "max_retries": st.integers(0, INT_MAX),
        "priority": st.integers(-(2**31), INT_MAX),
        "timeout": st.floats(min_value=1e-6, max_value=1e9) | st.integers(1, 10**9),
    }
    for field, values in optional.items():
        if draw(st.booleans()):
            spec[field] = draw(values)
    start = draw(st.sampled_from(["now", "delay", "run_at"]))
    if start == "delay":
        spec["delay"] = draw(st.floats(min_value=0, max_value=1e9) | st.integers(0, 10**9))
    elif start == "run_at":
        spec["run_at"] = draw(when).isoformat()
    return spec


def as_argv(spec: dict[str, Any], as_options: set[str]) -> list[str]:
    """The spec as a JSON SPEC argument, with some fields moved to options."""
    options = {
        "id": "--id",
        "command": "-c",
        "max_retries": "--max-retries",
        "priority": "--priority",
        "delay": "--delay",
        "run_at": "--run-at",
        "timeout": "--timeout",
    }
    argv = ["enqueue", json.dumps({k: v for k, v in spec.items() if k not in as_options})]
    for field in sorted(as_options & set(spec)):
        value = spec[field]
        argv += [options[field], repr(value) if isinstance(value, float) else str(value)]
    return argv


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@PROPERTY
@given(spec=good_specs(), as_options=st.sets(st.sampled_from(SPEC_FIELDS)))
def test_a_valid_spec_round_trips_through_enqueue_and_show(cli, spec, as_options):
    if "id" in spec and cli.store.get_job(spec["id"]) is not None:
        assert "already exists" in cli.fails(1, *as_argv(spec, as_options))
        return
    printed = json.loads(cli.ok(*as_argv(spec, as_options), "--json"))
    # `--` because an id may start with a dash
    shown = json.loads(cli.ok("show", "--json", "--", printed["id"]))
    assert shown == printed
    assert shown["id"] == spec.get("id", shown["id"])
    assert shown["command"] == spec["command"]
    assert (shown["state"], shown["attempts"]) == ("pending", 0)
    assert shown["max_retries"] == spec.get("max_retries", 3)
    assert shown["priority"] == spec.get("priority", 0)
    assert shown["timeout"] == (float(spec["timeout"]) if "timeout" in spec else None)
    run_at, created = epoch(shown["run_at"]), epoch(shown["created_at"])
    if "run_at" in spec:
        given_time = datetime.fromisoformat(spec["run_at"])
        expected = given_time.astimezone().timestamp()  # naive means local time
    else:
        expected = created + spec.get("delay", 0)
    assert abs(run_at - expected) < 0.0021, (shown["run_at"], spec)


# -- odd text -----------------------------------------------------------------------------------

odd_text = st.one_of(
    st.text(
        alphabet=st.characters(
            codec="utf-8", categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Ll", "Nd"]
        ),
        max_size=40,
    ),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["a", "\n", "\x1b", "é", "\u202e", "-"]),
        st.sampled_from([1, 128, 129, 64 * 1024, 64 * 1024 + 1, 1_000_000]),
    ),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(job_id=st.none() | odd_text, command=odd_text)
def test_odd_ids_and_commands_are_stored_or_refused_cleanly(cli, job_id, command):
    spec = {"command": command} if job_id is None else {"command": command, "id": job_id}
    if job_id is not None and cli.store.get_job(job_id) is not None:
        return  # the same odd id again: covered by the duplicate tests
    before = cli.dump()
    result = cli("enqueue", "-q", json.dumps(spec))
    assert result.code in (0, 2), result.err[:500]
    if result.code == 2:
        assert_one_error_line(result.err)
        assert len(result.err) < 1100
        assert cli.dump() == before
        return
    stored_id = result.out.strip()
    for args in (
        ["show", "--", stored_id],
        ["list"],
        ["dlq", "list"],
        ["list", "--state", "pending"],
    ):
        out = cli.ok(*args)
        assert not RAW_CONTROL.search(out), (args, out[:300])
    rows = cli.ok("list", "--limit", "1000").splitlines()
    assert len(rows) == 2 + len(cli.store.list_jobs(None, 1000))  # one line per job
    shown = json.loads(cli.ok("show", "--json", "--", stored_id))
    assert shown["command"] == command
