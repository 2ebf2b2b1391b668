"""Property tests of every command's arguments and options other than `enqueue` and
`config set` (those are in test_properties.py): random values, odd ids and unknown options give
exit 0, 1 or 2 exactly as SPEC §3 and §5 define, one `Error:` line on failure, no raw control
characters on stdout, and no change to the store from a read command or a failing one.

Runs in-process through `cli.main` (see test_cli.Cli) on every store. Workers are never started
and the dashboard never runs: both are replaced by a tripwire, so only refusals are exercised.
One subprocess test passes bytes that are not UTF-8 through a real argv.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import CLI_BACKENDS, CONFIG_DEFAULTS, Cli, Result, assert_one_error_line, make_cli
from test_properties import RAW_CONTROL

from queuectl.models import STATES, WorkerInfo

# `log` prints captured output as a block: tabs and newlines are kept, nothing else raw.
RAW_CONTROL_IN_BLOCK = re.compile(RAW_CONTROL.pattern.replace("\x09", "\x08"))
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FOREIGN = "elsewhere.invalid"  # seeded workers live on another machine: never signalled
# Set in the store by `seed`; unsetting stale_after then breaks "stale_after > heartbeat".
SEEDED_CONFIG = {"max_retries": 5, "heartbeat_interval": 700, "stale_after": 800}
PENDING_IDS = ("job-a", "job.b:1", "-dash")
RAN_ID = "job-ran"
DEAD_IDS = ("dead-1", "dead-2")
fresh = itertools.count()


@pytest.fixture(params=CLI_BACKENDS)
def cli(request, home, tmp_path, capsys, monkeypatch) -> Iterator[Cli]:
    """The CLI on each store, seeded, with workers and the dashboard unable to start."""
    from queuectl import dashboard, supervisor

    def tripwire(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("this command should have been refused before starting")

    for module, name in ((supervisor, "run"), (supervisor, "detach"), (dashboard, "run_dashboard")):
        monkeypatch.setattr(module, name, tripwire)
    for made in make_cli(request.param, tmp_path, capsys, monkeypatch):
        seed(made)
        yield made


def seed(cli: Cli) -> None:
    """Jobs in several states (one with hostile output), foreign workers, and some config."""
    for job_id in PENDING_IDS:
        cli.seed(job_id)
    now = time.time()
    cli.seed(
        RAN_ID,
        "completed",
        attempts=1,
        exit_code=0,
        started_at=now - 1,
        finished_at=now,
        duration=1.0,
        stdout="red \x1b[31mtext\x1b[0m\tand\n\u202eeverse\r\x07",
        stderr="\x00\x9b\u2028",
    )
    for job_id in DEAD_IDS:
        cli.seed(job_id, "dead", attempts=4, last_error="exit status 1\x1b]0;title\x07")
    for key, value in SEEDED_CONFIG.items():
        cli.store.set_config(key, value)
    seed_workers(cli, ("idle", now), ("stopped", now - 60), ("idle", now - 10_000))


def seed_workers(cli: Cli, *rows: tuple[str, float]) -> None:
    """Workers of another machine (pids that exist nowhere here), as (status, heartbeat)."""
    for n, (status, heartbeat) in enumerate(rows):
        cli.store.register_worker(
            WorkerInfo(
                id=f"{FOREIGN}:4242424:{n}-ab{n}",
                host=FOREIGN,
                pid=4242424,
                status=status,
                started_at=heartbeat - 5,
                last_heartbeat=heartbeat,
                machine=FOREIGN,
            )
        )


def worker_ids(cli: Cli, statuses: Sequence[str] | None = None) -> set[str]:
    """The ids of the store's workers (of those statuses)."""
    return {w.id for w in cli.store.list_workers(statuses=statuses)}


def run(
    cli: Cli,
    argv: Sequence[str],
    expected: int,
    *,
    changes: bool = False,
    raw: re.Pattern[str] = RAW_CONTROL,
) -> Result:
    """Run one command that must exit `expected` cleanly (SPEC §3). The store must be exactly
    as before, unless the command `changes` it (a write; then the caller checks the store)."""
    before = cli.dump()
    result = cli(*argv)
    assert result.code == expected, (argv, result)
    if expected:
        assert_one_error_line(result.err)
        if not changes:  # only `dlq retry` reports what it did before its error
            assert result.out == "", (argv, result)
        assert len(result.err) < 1100, result.err[:200]
        assert "QUEUECTL_DEBUG" not in result.err, (argv, result.err)  # main()'s catch-all
    else:
        assert result.err == "", (argv, result)
    assert "Traceback" not in result.out
    assert not raw.search(result.out), (argv, result.out[:300])
    if not changes:
        assert cli.dump() == before, argv
    return result


# -- strategies ---------------------------------------------------------------------------------

# Options no command has ("--zz…", upper-case short ones), with and without a value.
unknown_options = st.one_of(
    st.from_regex(r"--zz[a-z0-9-]{0,10}", fullmatch=True),
    st.builds(
        lambda name, value: f"--zz{name}={value}",
        st.text(string.ascii_lowercase, max_size=6),
        st.text(max_size=6),
    ),
    st.sampled_from(string.ascii_uppercase).map(lambda c: f"-{c}"),
)
extra_words = st.text(string.ascii_letters + string.digits + "._", min_size=1, max_size=10)
# What a user might append by mistake: unknown options and stray positional arguments.
extras = st.lists(unknown_options | extra_words, max_size=2)
# Letters and punctuation only: never parses as a number, except inf/nan spellings.
no_digits = st.text(string.ascii_letters + " _,/", max_size=10)
odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]), max_size=10),
    # What Python makes of argv bytes that are not UTF-8 (lone surrogates \udc80-\udcff).
    st.text(
        alphabet=st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF) | st.just("a"),
        min_size=1,
        max_size=5,
    ),
    st.sampled_from(
        [
            "",
            " ",
            "-",
            "--",
            "-x",
            "\n",
            "\x00",
            "\udcff\udcfe",
            "é" * 200,
            "x" * 10_000,
            "job-a ",
            "JOB-A",
            "dead-1\n",
            "\u202edead-1",
        ]
    ),
)
known_ids = st.sampled_from([*PENDING_IDS, RAN_ID, *DEAD_IDS])


def number_text(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    """Numbers as a user types them (repr keeps 'nan', 'inf', '1e+300')."""
    return values.map(lambda v: repr(v) if isinstance(v, float) else str(v))


def as_float(text: str) -> float | None:
    """How an option of type float reads `text` (Click uses float()), or None."""
    try:
        return float(text)
    except ValueError:
        return None


def is_text(value: str) -> bool:
    """Whether a str could come from UTF-8 bytes (no lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- list ---------------------------------------------------------------------------------------


@PROPERTY
@given(
    state=st.none() | st.sampled_from(STATES) | odd_text,
    limit=st.none()
    | number_text(st.integers() | st.sampled_from([0, -1, 10**30, 2**63]))
    | no_digits
    | number_text(st.floats(allow_nan=True)),
    as_json=st.booleans(),
    extra=extras,
)
def test_list_options(cli, state, limit, as_json, extra):
    argv = [
        "list",
        *(["--state", state] if state is not None else []),
        *(["--limit", limit] if limit is not None else []),
        *(["--json"] if as_json else []),
        *extra,
    ]
    number = int(limit) if limit is not None and re.fullmatch(r"-?\d+", limit) else None
    bad_limit = limit is not None and (number is None or number < 1)
    bad = extra or bad_limit or (state is not None and state not in STATES)
    result = run(cli, argv, 2 if bad else 0)
    if bad:
        return
    wanted = [j for j in cli.store.list_jobs(state, 100) if state is None or j.state == state]
    shown = min(len(wanted), 50 if number is None else number)
    if as_json:
        assert [j["id"] for j in json.loads(result.out)] == [j.id for j in wanted][:shown]
    elif shown:
        assert len(result.out.splitlines()) == 2 + shown  # headers, rule, one line per job
    else:
        assert result.out.startswith("No ")


# -- show / log ---------------------------------------------------------------------------------


@PROPERTY
@given(
    command=st.sampled_from(["show", "log"]),
    job_id=known_ids | odd_text,
    as_json=st.booleans(),
    bad_options=st.lists(unknown_options, max_size=1),
    stray=st.lists(extra_words, max_size=1),
)
def test_show_and_log_take_any_id_after_a_double_dash(
    cli, command, job_id, as_json, bad_options, stray
):
    argv = [command, *(["--json"] if as_json else []), *bad_options, "--", job_id, *stray]
    exists = is_text(job_id) and cli.store.get_job(job_id) is not None
    expected = 2 if bad_options or stray else 0 if exists else 1
    block = command == "log" and not as_json
    result = run(cli, argv, expected, raw=RAW_CONTROL_IN_BLOCK if block else RAW_CONTROL)
    if expected == 1:
        assert "no job" in result.err
    if expected:
        return
    if not as_json:
        assert job_id in result.out  # ids that exist are plain text
        return
    document = json.loads(result.out)
    assert document["id"] == job_id
    stored = cli.store.get_job(job_id)
    assert (document["stdout"], document["stderr"]) == (stored.stdout, stored.stderr)


# -- dlq ----------------------------------------------------------------------------------------


@PROPERTY
@given(as_json=st.booleans(), extra=extras)
def test_dlq_list_flags(cli, as_json, extra):
    result = run(cli, ["dlq", "list", *(["--json"] if as_json else []), *extra], 2 if extra else 0)
    if not extra and as_json:
        dead = {j.id for j in cli.store.list_jobs("dead", 10**4)}
        assert {j["id"] for j in json.loads(result.out)} == dead == set(DEAD_IDS)


FRESH = ("<fresh 0>", "<fresh 1>")  # stand for dead jobs made anew for each example


@PROPERTY
@given(
    ids=st.lists(st.sampled_from([*FRESH, *PENDING_IDS, RAN_ID, *DEAD_IDS]) | odd_text, max_size=4),
    all_jobs=st.booleans(),
    bad_options=st.lists(unknown_options, max_size=1),
)
def test_dlq_retry_ids_and_all(cli, ids, all_jobs, bad_options):
    made = {stand_in: f"dead-x{next(fresh)}" for stand_in in FRESH}
    for job_id in made.values():
        cli.seed(job_id, "dead", attempts=4, last_error="boom")
    ids = [made.get(i, i) for i in ids]
    dump = cli.dump()
    before = {r["id"]: r for r in dump["jobs"]}
    dead = {i for i, r in before.items() if r["state"] == "dead"}
    argv = ["dlq", "retry", *(["--all"] if all_jobs else []), *bad_options, "--", *ids]
    if bad_options or bool(ids) == all_jobs:
        run(cli, argv, 2)
        return
    missing = [] if all_jobs else [i for i in dict.fromkeys(ids) if i not in dead]
    retried = dead if all_jobs else dead & set(ids)
    result = run(cli, argv, 1 if missing else 0, changes=True)
    assert result.out == f"Retried {len(retried)} job(s)\n"
    if missing:
        assert "not in the DLQ" in result.err
    dump_after = cli.dump()
    assert {k: v for k, v in dump_after.items() if k != "jobs"} == {
        k: v for k, v in dump.items() if k != "jobs"
    }
    after = {r["id"]: r for r in dump_after["jobs"]}
    assert after.keys() == before.keys()
    moved = {"state", "attempts", "run_at", "updated_at"}
    for job_id, record in after.items():
        if job_id in retried:
            assert (record["state"], record["attempts"]) == ("pending", 0)
            assert abs(record["run_at"] - time.time()) < 60
            assert record["last_error"] == before[job_id]["last_error"]
            assert {k: v for k, v in record.items() if k not in moved} == {
                k: v for k, v in before[job_id].items() if k not in moved
            }
        else:
            assert record == before[job_id], job_id


# -- config get / unset -------------------------------------------------------------------------

SPELLINGS = {
    "max_retries": ["max-retries", "maxRetries", " max_retries "],
    "backoff_base": ["backoffBase"],
    "stale_after": ["stale-after", "staleAfter"],
    "heartbeat_interval": ["heartbeatInterval"],
    "job_timeout": ["job-timeout"],
}
config_keys = st.one_of(
    st.sampled_from(sorted(CONFIG_DEFAULTS)).map(lambda k: (k, k)),
    st.sampled_from([(k, s) for k, ss in SPELLINGS.items() for s in ss]),
    (odd_text.map(lambda k: k + "?") | st.just("")).map(lambda k: (None, k)),
)


@PROPERTY
@given(
    action=st.sampled_from(["get", "unset"]),
    key=config_keys,
    as_json=st.booleans(),
    dash=st.booleans(),
    extra=extras,
)
def test_config_get_and_unset_keys(cli, action, key, as_json, dash, extra):
    canonical, typed = key
    flags = ["--json"] if as_json and action == "get" else []
    marker = ["--"] if dash or typed.startswith("-") else []
    argv = ["config", action, *flags, *extra, *marker, typed]
    breaks_pair = action == "unset" and canonical == "stale_after"  # 600 <= heartbeat 700
    expected = 2 if extra or canonical is None or breaks_pair else 0
    config = cli.store.get_config()
    result = run(cli, argv, expected, changes=action == "unset" and not expected)
    if expected:
        if canonical is None and not extra:
            assert "max_retries" in result.err and "stale_after" in result.err
        return
    value = config.get(canonical, CONFIG_DEFAULTS[canonical])
    if action == "get":
        shown = json.loads(result.out) if as_json else result.out.strip()
        assert shown == ({canonical: value} if as_json else str(value)), result.out
        return
    assert result.out.startswith(f"{canonical} = ")
    assert canonical not in cli.store.get_config()
    if canonical in config:
        cli.store.set_config(canonical, config[canonical])  # the next example starts the same


# -- worker list / stop / start -----------------------------------------------------------------


@PROPERTY
@given(flags=st.lists(st.sampled_from(["--all", "--json"]), max_size=3), extra=extras)
def test_worker_list_flags(cli, flags, extra):
    result = run(cli, ["worker", "list", *flags, *extra], 2 if extra else 0)
    if extra or "--json" not in flags:
        return
    listed = {w["id"]: w["status"] for w in json.loads(result.out)}
    hidden = set() if "--all" in flags else worker_ids(cli, ["stopped"])
    assert listed.keys() == worker_ids(cli) - hidden
    assert sorted(listed.values()) == (
        ["idle", "lost", "stopped"] if "--all" in flags else ["idle", "lost"]
    )


timeouts = (
    number_text(
        st.floats()
        | st.integers()
        | st.sampled_from(
            [0, -0.0, 1e-300, 10**6, 10**6 + 1, 10**30, math.inf, -math.inf, math.nan]
        )
    )
    | no_digits
)


@pytest.fixture
def idle_world(cli) -> Cli:
    """No worker is active, so a valid stop request asks nobody and `--wait` returns at once."""
    for worker in cli.store.list_workers(statuses=["idle"]):
        cli.store.update_worker(worker.id, {"status": "stopped"})
    return cli


@PROPERTY
@given(timeout=timeouts, wait=st.booleans(), extra=extras)
def test_worker_stop_timeout(idle_world, timeout, wait, extra):
    value = as_float(timeout)
    # --timeout belongs to --wait: alone it is refused rather than silently ignored.
    valid = value is not None and 0 < value <= 10**6 and wait
    argv = ["worker", "stop", *(["--wait"] if wait else []), "--timeout", timeout, *extra]
    result = run(idle_world, argv, 0 if valid and not extra else 2)
    if valid and not extra:
        assert result.out == "Stop requested for 0 worker(s)\n"
    elif value is not None and not extra:
        assert "--timeout" in result.err


bad_counts = (
    number_text(
        st.integers(max_value=0)
        | st.integers(min_value=257)
        | st.sampled_from([10**30, -(2**63)])
        | st.floats()
    )
    | no_digits
)


@PROPERTY
@given(
    count=bad_counts,
    short=st.booleans(),
    flags=st.lists(st.sampled_from(["--burst", "--detach"]), max_size=2),
    extra=extras,
)
def test_worker_start_refuses_a_bad_count_before_anything_starts(cli, count, short, flags, extra):
    argv = ["worker", "start", *flags, "-n" if short else "--count", count, *extra]
    result = run(cli, argv, 2)
    if not extra and re.fullmatch(r"-?\d+", count):
        assert "between 1 and 256" in result.err
    assert not (Path(os.environ["QUEUECTL_HOME"]) / "logs").exists()


# -- dashboard ----------------------------------------------------------------------------------

bad_intervals = (
    number_text(
        st.floats().filter(lambda v: not 0.1 <= v <= 3600)
        | st.integers(max_value=0)
        | st.integers(min_value=3601)
        | st.sampled_from([0.0999, 3600.001, 1e300, math.nan, -math.inf])
    )
    | no_digits
)


@PROPERTY
@given(interval=bad_intervals, extra=extras)
def test_dashboard_refuses_a_bad_interval(cli, interval, extra):
    value = as_float(interval)
    assert value is None or not 0.1 <= value <= 3600  # a valid one would block
    result = run(cli, ["dashboard", "--interval", interval, *extra], 2)
    if value is not None and not extra:
        assert "--interval" in result.err


# -- a real argv that is not UTF-8 --------------------------------------------------------------

QUEUECTL = shutil.which("queuectl", path=str(Path(sys.executable).parent))


def test_argv_bytes_that_are_not_utf8_are_refused_or_not_found_cleanly(tmp_path):
    """Linux hands Python such bytes as lone surrogates. What the code does: a command or an id
    given to `enqueue` is refused (exit 2, nothing stored); `show`, `log` and `dlq retry` of such
    an id find no job (exit 1) without the store ever seeing it; `config get` and
    `list --state` refuse it as an unknown key or state (exit 2). Every error is one ASCII-safe
    `Error:` line that shows the bytes escaped."""
    assert QUEUECTL, "the queuectl script is not installed next to this Python"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("QUEUECTL_") and k not in ("MONGODB_URI", "NO_COLOR")
    }
    env["QUEUECTL_HOME"] = str(tmp_path / "home")
    db = str(tmp_path / "queue.db").encode()

    def queuectl(*args: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [os.fsencode(QUEUECTL), b"--db", db, *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )

    assert queuectl(b"enqueue", b"--id", b"ok1", b"echo ok").returncode == 0
    cases = [
        ([b"enqueue", b"echo \xff\xfe"], 2),
        ([b"enqueue", b"--id", b"\xff\xfe", b"echo"], 2),
        ([b"enqueue", b'{"command": "echo \xff"}'], 2),
        ([b"show", b"--", b"\xff\xfe"], 1),
        ([b"log", b"\xffok1"], 1),
        ([b"dlq", b"retry", b"\xff", b"ok1"], 1),
        ([b"config", b"get", b"max\xff"], 2),
        ([b"list", b"--state", b"dead\xfe"], 2),
    ]
    for args, code in cases:
        proc = queuectl(*args)
        err = proc.stderr.decode("utf-8")  # strict: escaped, never the raw bytes
        assert proc.returncode == code, (args, proc)
        assert err.startswith("Error: ") and err.count("\n") == 1, (args, err)
        assert "Traceback" not in err and "QUEUECTL_DEBUG" not in err, (args, err)
        assert not RAW_CONTROL.search(err.rstrip("\n")) and err.isascii(), (args, err)
        assert proc.stdout in (b"", b"Retried 0 job(s)\n"), (args, proc.stdout)
    listed = json.loads(queuectl(b"list", b"--json").stdout)
    assert [(j["id"], j["command"], j["state"]) for j in listed] == [("ok1", "echo ok", "pending")]
