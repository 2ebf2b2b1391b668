"""ConfigManager over every store: defaults, key spellings, the rules of SPEC §5 `config`."""

from __future__ import annotations

import re

import pytest

from queuectl.config import ConfigManager, canonical_key
from queuectl.errors import InvalidInput

DEFAULTS = {
    "max_retries": 3,
    "backoff_base": 2,
    "backoff_max": 3600,
    "backoff_jitter": 0,
    "job_timeout": 0,
    "poll_interval": 1,
    "heartbeat_interval": 30,
    "stale_after": 600,
    "retention": 604800,
    "notify_url": "",
    "notify_on": "dead",
}

# (key, values that break its rule, values at the edge of the rule that are allowed)
RULES = [
    ("max_retries", ["-1", "1.5", "three", "", "nan", "1000001"], ["0", "10", "1000000"]),
    ("backoff_base", ["0.99", "0", "-2", "inf", "nan", "two", "1000.5"], ["1", "1.5", "1000"]),
    ("backoff_max", ["0", "-1", "inf", "0.001", "604801"], ["0.01", "0.5", "86400", "604800"]),
    ("backoff_jitter", ["-0.01", "1.01", "2", "nan", "inf"], ["0", "0.5", "1"]),
    ("job_timeout", ["-1", "-0.5", "inf", "0.001", "604801"], ["0", "0.01", "0.1", "604800"]),
    (
        "poll_interval",
        ["0", "-1", "x", "0.0000001", "0.009", "3601", "-inf"],
        ["0.01", "5", "3600"],
    ),
    (
        "heartbeat_interval",
        ["0", "-3", "0.001", "0.09", "600", "700", "86401", "nan"],
        ["0.1", "0.5", "599"],
    ),
    ("stale_after", ["0", "-1", "0.5", "30", "29.9", "604801", "inf"], ["30.5", "31", "604800"]),
    (
        "retention",
        ["-1", "0.5", "7d", "inf", "nan", "315360001", ""],
        ["0", "1", "86400", "604800", "315360000"],
    ),
]


@pytest.fixture
def config(store) -> ConfigManager:
    """A ConfigManager on a fresh store of each backend."""
    return ConfigManager(store)


def test_every_key_has_its_default(config, store):
    assert config.all() == DEFAULTS
    assert store.get_config() == {}
    for key, value in DEFAULTS.items():
        assert config.get(key) == value


@pytest.mark.parametrize(
    "spelling, key, value",
    [
        ("max_retries", "max_retries", 7),
        ("max-retries", "max_retries", 7),
        ("maxRetries", "max_retries", 7),
        ("backoff-base", "backoff_base", 7),
        ("backoffJitter", "backoff_jitter", 0.25),
        ("jobTimeout", "job_timeout", 7),
        ("poll-interval", "poll_interval", 7),
        ("heartbeatInterval", "heartbeat_interval", 7),
        ("staleAfter", "stale_after", 700),
    ],
)
def test_keys_may_be_written_with_dashes_or_in_camel_case(config, store, spelling, key, value):
    assert canonical_key(spelling) == key
    assert config.set(spelling, str(value)) == (key, value)
    assert config.get(key) == value
    assert config.get(spelling) == value
    assert store.get_config() == {key: value}


def test_set_parses_the_value_to_the_key_type(config, store):
    assert config.set("max_retries", "5") == ("max_retries", 5)
    assert config.set("backoff_base", "2.5") == ("backoff_base", 2.5)
    assert config.set("backoff_max", "120.0") == ("backoff_max", 120)
    assert config.set("job_timeout", 45) == ("job_timeout", 45)
    assert config.set("poll_interval", " 0.25 ") == ("poll_interval", 0.25)
    assert store.get_config() == {
        "max_retries": 5,
        "backoff_base": 2.5,
        "backoff_max": 120,
        "job_timeout": 45,
        "poll_interval": 0.25,
    }
    assert isinstance(config.get("max_retries"), int)
    assert config.all() == {**DEFAULTS, **store.get_config()}


def test_a_second_set_replaces_the_first(config):
    config.set("max_retries", "5")
    config.set("maxRetries", "1")
    assert config.get("max_retries") == 1


@pytest.mark.parametrize(
    "key, bad",
    [(key, value) for key, bads, _ in RULES for value in bads],
)
def test_a_bad_value_is_refused_and_changes_nothing(config, store, key, bad):
    config.set("max_retries", "4")  # something already stored must survive the refusal
    before = store.get_config()
    with pytest.raises(InvalidInput) as caught:
        config.set(key, bad)
    assert caught.value.exit_code == 2
    assert key in str(caught.value)
    assert store.get_config() == before
    assert config.all() == {**DEFAULTS, "max_retries": 4}


@pytest.mark.parametrize(
    "key, good",
    [(key, value) for key, _, goods in RULES for value in goods],
)
def test_values_at_the_edge_of_a_rule_are_allowed(config, key, good):
    stored_key, value = config.set(key, good)
    assert stored_key == key
    assert value == float(good)
    assert config.get(key) == value


@pytest.mark.parametrize(
    "key, bad, words",
    [
        ("max_retries", "x", "max_retries must be an integer, got 'x'"),
        ("max_retries", "-1", "max_retries must be between 0 and 1000000, got '-1'"),
        ("backoff_base", "0.5", "backoff_base must be between 1 and 1000, got '0.5'"),
        ("backoff_max", "0", "backoff_max must be between 0.01 and 604800 seconds (a week)"),
        ("backoff_jitter", "3", "backoff_jitter must be between 0 and 1, got '3'"),
        ("job_timeout", "-1", "job_timeout must be 0 (none) or between 0.01 and 604800 seconds"),
        ("poll_interval", "0.0000001", "poll_interval must be between 0.01 and 3600 seconds"),
        ("heartbeat_interval", "0.001", "heartbeat_interval must be between 0.1 and 86400"),
        ("stale_after", "0.5", "stale_after must be between 1 and 604800 seconds (a week)"),
    ],
)
def test_the_error_names_the_range(config, key, bad, words):
    with pytest.raises(InvalidInput, match=re.escape(words)):
        config.set(key, bad)


@pytest.mark.parametrize("key", sorted(k for k, v in DEFAULTS.items() if not isinstance(v, str)))
@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "Infinity", "NaN", "1e999"])
def test_inf_and_nan_are_refused_by_name(config, key, bad):
    """Not "must be >= 1": the value is not a finite number at all."""
    kind = "an integer" if key == "max_retries" else "a finite number"
    with pytest.raises(InvalidInput, match=f"^{key} must be {kind}, got '{re.escape(bad)}'$"):
        config.set(key, bad)


def test_booleans_are_not_numbers(config, store):
    with pytest.raises(InvalidInput):
        config.set("max_retries", True)
    assert store.get_config() == {}


@pytest.mark.parametrize("operation", ["get", "set", "unset"])
@pytest.mark.parametrize("name", ["retries", "max__retries", "MaxRetriesX", ""])
def test_unknown_keys_are_refused_naming_the_keys(config, store, operation, name):
    with pytest.raises(InvalidInput) as caught:
        if operation == "set":
            config.set(name, "1")
        else:
            getattr(config, operation)(name)
    assert caught.value.exit_code == 2
    assert "unknown config key" in str(caught.value)
    assert all(key in str(caught.value) for key in DEFAULTS)
    assert store.get_config() == {}


def test_stale_after_must_stay_above_heartbeat_interval(config, store):
    with pytest.raises(
        InvalidInput,
        match=r"stale_after \(600\) must be greater than "
        r"heartbeat_interval \(600\)",
    ):
        config.set("heartbeat_interval", "600")
    config.set("heartbeat_interval", "10")
    config.set("stale_after", "20")
    with pytest.raises(InvalidInput, match="greater than heartbeat_interval"):
        config.set("stale_after", "10")
    with pytest.raises(InvalidInput, match="greater than heartbeat_interval"):
        config.set("heartbeat_interval", "25")
    assert store.get_config() == {"heartbeat_interval": 10, "stale_after": 20}


def test_unset_goes_back_to_the_default(config, store):
    config.set("max_retries", "9")
    config.set("backoff_base", "3")
    assert config.unset("max-retries") == "max_retries"
    assert config.get("max_retries") == 3
    assert store.get_config() == {"backoff_base": 3}
    assert config.unset("maxRetries") == "max_retries"  # unsetting twice is harmless
    assert config.all() == {**DEFAULTS, "backoff_base": 3}


def test_unset_that_would_break_the_pair_rule_is_refused(config, store):
    config.set("heartbeat_interval", "10")
    config.set("stale_after", "20")
    with pytest.raises(InvalidInput, match="greater than heartbeat_interval"):
        config.unset("heartbeat_interval")  # the default 30 is not below 20
    assert store.get_config() == {"heartbeat_interval": 10, "stale_after": 20}
    config.unset("stale_after")
    config.unset("heartbeat_interval")
    assert config.all() == DEFAULTS


def test_a_broken_value_written_by_hand_reads_as_the_default(config, store):
    store.set_config("max_retries", -4)
    store.set_config("poll_interval", "fast")
    assert config.get("max_retries") == 3
    assert config.get("poll_interval") == 1


def test_config_is_shared_through_the_store(store):
    ConfigManager(store).set("backoff_max", "90")
    assert ConfigManager(store).get("backoff_max") == 90
