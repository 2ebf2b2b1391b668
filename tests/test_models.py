"""Pure rules: job spec validation, ids, time formatting, and the backoff decision."""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import pytest

from queuectl.backoff import after_failure, retry_delay
from queuectl.errors import InvalidInput
from queuectl.models import (
    DEAD,
    FAILED,
    MAX_COMMAND_BYTES,
    PENDING,
    build_job,
    format_time,
    new_job_id,
    parse_time,
    validate_command,
    validate_id,
)

NOW = 1_800_000_000.0


def build(spec: dict, *, max_retries: int = 3, timeout: float = 0):
    """build_job with the config defaults a fresh store has."""
    return build_job(spec, now=NOW, default_max_retries=max_retries, default_timeout=timeout)


def utc(*args: int) -> float:
    """Epoch seconds of a UTC wall-clock time."""
    return datetime(*args, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def eastern(monkeypatch):
    """Local time five hours behind UTC (POSIX TZ, so no tz database is needed)."""
    monkeypatch.setenv("TZ", "EST5")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- build_job ---------------------------------------------------------------------------------


def test_minimal_spec_gets_the_documented_defaults():
    job = build({"command": "echo hi"})
    assert job.command == "echo hi"
    assert job.state == PENDING
    assert job.attempts == 0
    assert job.max_retries == 3
    assert job.priority == 0
    assert job.timeout is None
    assert job.run_at == NOW
    assert job.created_at == job.updated_at == NOW
    assert job.started_at is job.finished_at is job.exit_code is job.last_error is None
    assert validate_id(job.id) == job.id


def test_config_defaults_apply_when_the_spec_is_silent():
    job = build({"command": "true"}, max_retries=7, timeout=30)
    assert job.max_retries == 7
    assert job.timeout == 30.0


def test_spec_fields_override_config_defaults():
    job = build(
        {"command": "true", "id": "job1", "max_retries": 0, "priority": -5, "timeout": 1.5},
        max_retries=7,
        timeout=30,
    )
    assert (job.id, job.max_retries, job.priority, job.timeout) == ("job1", 0, -5, 1.5)


def test_delay_moves_run_at():
    assert build({"command": "true", "delay": 30}).run_at == NOW + 30
    assert build({"command": "true", "delay": 0}).run_at == NOW
    assert build({"command": "true", "delay": 0.25}).run_at == NOW + 0.25


def test_run_at_with_an_offset_is_exact():
    job = build({"command": "true", "run_at": "2027-03-01T10:00:00+02:00"})
    assert job.run_at == utc(2027, 3, 1, 8, 0, 0)


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"command": "true", "colour": "red"}, "unknown field 'colour'"),
        ({}, "command is required"),
        ({"command": 42}, "command is required"),
        ({"command": "   \n"}, "must not be blank"),
        ({"command": "true", "id": "has space"}, "is not allowed"),
        ({"command": "true", "max_retries": -1}, "max_retries must be between 0"),
        ({"command": "true", "max_retries": 1.5}, "max_retries must be an integer"),
        ({"command": "true", "max_retries": "3"}, "max_retries must be an integer"),
        ({"command": "true", "max_retries": True}, "max_retries must be an integer"),
        ({"command": "true", "priority": 2**31}, "priority must be between"),
        ({"command": "true", "priority": "high"}, "priority must be an integer"),
        ({"command": "true", "delay": -1}, "delay must be >= 0"),
        ({"command": "true", "delay": "soon"}, "delay must be a number"),
        ({"command": "true", "delay": math.nan}, "delay must be >= 0"),
        ({"command": "true", "delay": math.inf}, "delay must be >= 0"),
        ({"command": "true", "timeout": 0}, "timeout must be > 0"),
        ({"command": "true", "timeout": -3}, "timeout must be > 0"),
        ({"command": "true", "delay": 5, "run_at": "2027-01-01T00:00:00Z"}, "not both"),
        ({"command": "true", "run_at": "tomorrow"}, "is not an ISO 8601 time"),
        ({"command": "true", "run_at": 12}, "must be an ISO 8601 time"),
    ],
)
def test_a_broken_rule_is_invalid_input_naming_it(spec, words):
    with pytest.raises(InvalidInput) as caught:
        build(spec)
    assert words in str(caught.value)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("spec", [[], "echo hi", None, 3])
def test_a_spec_must_be_an_object(spec):
    with pytest.raises(InvalidInput, match="JSON object"):
        build(spec)


# -- validate_id / validate_command -----------------------------------------------------------


@pytest.mark.parametrize("job_id", ["a", "job-1", "A.b_c:d-9", "x" * 128])
def test_valid_ids(job_id):
    assert validate_id(job_id) == job_id


@pytest.mark.parametrize("job_id", ["", "x" * 129, "a b", "a/b", "é", "a\n", "job;rm", 7, None])
def test_invalid_ids_name_the_allowed_characters(job_id):
    with pytest.raises(InvalidInput, match=r"1-128 characters of A-Z a-z 0-9 \. _ : -"):
        validate_id(job_id)


def test_command_limit_is_64_kib_of_utf8():
    assert validate_command("x" * MAX_COMMAND_BYTES) == "x" * MAX_COMMAND_BYTES
    assert validate_command("é" * (MAX_COMMAND_BYTES // 2))  # two bytes each: exactly 64 KiB
    with pytest.raises(InvalidInput, match="65537 bytes"):
        validate_command("x" * (MAX_COMMAND_BYTES + 1))
    with pytest.raises(InvalidInput, match="64 KiB"):
        validate_command("é" * (MAX_COMMAND_BYTES // 2) + "x")


@pytest.mark.parametrize("command", ["echo a\x00b", "\ud800"])
def test_commands_that_cannot_reach_a_shell_are_refused(command):
    with pytest.raises(InvalidInput):
        validate_command(command)


# -- times -------------------------------------------------------------------------------------


def test_parse_time_with_z_and_offsets():
    assert parse_time("2026-11-22T14:05:09Z") == utc(2026, 11, 22, 14, 5, 9)
    assert parse_time("2026-11-22T14:05:09.5z") == utc(2026, 11, 22, 14, 5, 9) + 0.5
    assert parse_time("2026-11-22T14:05:09-03:30") == utc(2026, 11, 22, 17, 35, 9)


def test_parse_time_without_offset_is_local_time(eastern):
    assert parse_time("2026-01-15T12:00:00") == utc(2026, 1, 15, 17, 0, 0)
    assert parse_time(" 2026-01-15 12:00 ") == utc(2026, 1, 15, 17, 0, 0)


@pytest.mark.parametrize("text", ["", "   ", "2026-13-01T00:00:00Z", "yesterday", "12:00"])
def test_parse_time_rejects_what_is_not_a_time(text):
    with pytest.raises(InvalidInput, match="ISO 8601"):
        parse_time(text)


def test_parse_time_names_the_field_in_its_error():
    with pytest.raises(InvalidInput, match="^--run-at 'x'"):
        parse_time("x", "--run-at")


def test_format_time_is_iso_utc_with_milliseconds():
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
    assert format_time(utc(2026, 11, 22, 14, 5, 9) + 0.123) == "2026-11-22T14:05:09.123Z"
    assert format_time(None) is None


def test_format_then_parse_round_trips_to_the_millisecond(eastern):
    for ts in (NOW, NOW + 0.5, 1.25, utc(2030, 6, 30, 23, 59, 59) + 0.999):
        assert parse_time(format_time(ts)) == pytest.approx(ts, abs=0.001)


def test_new_job_ids_sort_by_time_and_are_unique():
    times = [NOW, NOW + 0.001, NOW + 1, NOW + 3600, NOW + 10**6]
    ids = [new_job_id(t) for t in times]
    assert ids == sorted(ids)
    assert all(len(i) == 20 and validate_id(i) == i for i in ids)
    same_ms = {new_job_id(NOW) for _ in range(200)}
    assert len(same_ms) == 200
    assert new_job_id(NOW - 1) < min(same_ms)


def test_new_job_id_defaults_to_the_current_time():
    before = new_job_id(time.time() - 1)
    assert before < new_job_id() < new_job_id(time.time() + 1)


# -- backoff -----------------------------------------------------------------------------------


def test_retry_delay_is_base_to_the_nth_capped_by_max():
    assert [retry_delay(n, 2, 3600) for n in (1, 2, 3, 4)] == [2, 4, 8, 16]
    assert retry_delay(3, 3, 3600) == 27
    assert retry_delay(12, 2, 3600) == 3600
    assert retry_delay(5, 2, 10) == 10
    assert retry_delay(1, 1, 3600) == 1


def test_retry_delay_survives_huge_exponents():
    assert retry_delay(10**6, 2, 50) == 50
    assert retry_delay(10**6, 10**9, 3600) == 3600


def test_jitter_scales_the_delay_down_by_at_most_x():
    assert retry_delay(3, 2, 3600, jitter=0.5, rand=0.0) == 8
    assert retry_delay(3, 2, 3600, jitter=0.5, rand=0.5) == 6
    assert retry_delay(3, 2, 3600, jitter=1.0, rand=0.75) == 2
    delays = {retry_delay(3, 2, 3600, jitter=0.25) for _ in range(200)}
    assert all(6 <= d <= 8 for d in delays)
    assert len(delays) > 1  # the factor really is random


def test_no_jitter_means_exact_delays():
    assert {retry_delay(2, 2, 3600, jitter=0.0) for _ in range(50)} == {4}


def test_after_failure_three_retries_then_dead():
    outcomes = [after_failure(n, 3, NOW, 2, 3600) for n in (1, 2, 3, 4)]
    assert [(o.state, o.delay, o.run_at) for o in outcomes[:3]] == [
        (FAILED, 2, NOW + 2),
        (FAILED, 4, NOW + 4),
        (FAILED, 8, NOW + 8),
    ]
    assert (outcomes[3].state, outcomes[3].run_at, outcomes[3].delay) == (DEAD, None, None)


def test_after_failure_with_no_retries_goes_straight_to_dead():
    assert after_failure(1, 0, NOW, 2, 3600).state == DEAD


def test_after_failure_respects_backoff_max_and_jitter():
    capped = after_failure(9, 10, NOW, 2, 100)
    assert (capped.state, capped.delay, capped.run_at) == (FAILED, 100, NOW + 100)
    jittered = after_failure(2, 3, NOW, 2, 3600, jitter=0.5)
    assert 2 <= jittered.delay <= 4
    assert jittered.run_at == NOW + jittered.delay
