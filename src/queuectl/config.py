"""Configuration keys: names, aliases, defaults, rules; read and written through the store.

`Config` is one typed, frozen reading of every key; `ConfigManager` reads and writes them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import InvalidInput
from .models import shown
from .store.base import Store

HOUR, DAY, WEEK = 3600, 86_400, 604_800
TEN_YEARS = 3650 * DAY


@dataclass(frozen=True)
class Key:
    """One configuration key: its type, the values it allows, its default.

    A number has a range (`low` to `high`, both included): an idle worker polling every
    microsecond burns a CPU, and a week-long heartbeat makes a crashed worker's jobs wait a
    week. `zero_is` names what 0 means for a key that allows it below its floor
    (job_timeout: no timeout). A text key (kind str) has `check` and its rule in words."""

    name: str
    kind: type  # int, float, or str
    default: Any
    help: str
    low: float = 0
    high: float = 0
    seconds: bool = False
    high_words: str = ""  # the ceiling in words, e.g. "a week"
    zero_is: str = ""
    text_rule: str = ""
    text_span: str = ""  # the rule in a few words, for the `config list` table
    check: Callable[[str], bool] | None = None

    @property
    def rule(self) -> str:
        """What the key allows, in words, as errors print it."""
        if self.kind is str:
            return self.text_rule
        unit = " seconds" if self.seconds else ""
        words = f" ({self.high_words})" if self.high_words else ""
        rule = f"between {_number(self.low)} and {_number(self.high)}{unit}{words}"
        return f"0 ({self.zero_is}) or {rule}" if self.zero_is else rule

    @property
    def span(self) -> str:
        """What the key allows in short, for the `config list` table: `0.01-3600 s`."""
        if self.kind is str:
            return self.text_span or self.text_rule
        span = f"{_number(self.low)}-{_number(self.high)}{' s' if self.seconds else ''}"
        return f"0 or {span}" if self.zero_is else span

    def allows(self, value: Any) -> bool:
        """Whether a value (a finite number, or trimmed text) is allowed."""
        if self.kind is str:
            return self.check is None or self.check(value)
        return self.low <= value <= self.high or (bool(self.zero_is) and value == 0)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


KEYS: dict[str, Key] = {
    k.name: k
    for k in (
        Key("max_retries", int, 3, "retries after the first attempt", low=0, high=1_000_000),
        Key("backoff_base", float, 2, "delay after n-th failure: base**n", low=1, high=1000),
        Key(
            "backoff_max",
            float,
            3600,
            "longest retry delay",
            low=0.01,
            high=WEEK,
            seconds=True,
            high_words="a week",
        ),
        Key(
            "backoff_jitter",
            float,
            0,
            "scale each delay by a random factor in [1-x, 1]",
            low=0,
            high=1,
        ),
        Key(
            "job_timeout",
            float,
            0,
            "default job timeout (0 = none)",
            low=0.01,
            high=WEEK,
            seconds=True,
            high_words="a week",
            zero_is="none",
        ),
        Key(
            "poll_interval",
            float,
            1,
            "how often an idle worker polls",
            low=0.01,
            high=HOUR,
            seconds=True,
            high_words="an hour",
        ),
        Key(
            "heartbeat_interval",
            float,
            30,
            "worker heartbeat and lease renewal",
            low=0.1,
            high=DAY,
            seconds=True,
            high_words="a day",
        ),
        Key(
            "stale_after",
            float,
            600,
            "a lease or worker silent this long is lost",
            low=1,
            high=WEEK,
            seconds=True,
            high_words="a week",
        ),
        # Retention (SPEC §7.2): workers delete completed jobs older than this.
        Key(
            "retention",
            float,
            WEEK,
            "workers delete completed jobs older than this (0 = keep forever)",
            low=1,
            high=TEN_YEARS,
            seconds=True,
            high_words="ten years",
            zero_is="keep forever",
        ),
        # Notifications (SPEC §7.6): the first keys whose values are text.
        Key(
            "notify_url",
            str,
            "",
            "POST a JSON event here when a job ends (empty = off)",
            text_rule="an http:// or https:// URL, or empty (notifications off)",
            text_span="http(s) URL or empty",
            check=lambda v: valid_notify_url(v),  # defined below; looked up when called
        ),
        Key(
            "notify_on",
            str,
            "dead",
            "which ends to notify: dead, or all (completed too)",
            text_rule="one of: dead, all",
            text_span="dead or all",
            check=lambda v: v in ("dead", "all"),
        ),
    )
}


def canonical_key(name: str) -> str:
    """Accept `max_retries`, `max-retries` and `maxRetries`; reject unknown keys."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name.strip()).replace("-", "_").lower()
    if snake not in KEYS:
        raise InvalidInput(f"unknown config key {shown(name, 40)}; keys: {', '.join(KEYS)}")
    return snake


def parse_value(key: str, raw: Any) -> int | float | str:
    """Turn user text (or a JSON number) into the key's type, checking what it allows."""
    spec = KEYS[key]
    if spec.kind is str:
        return _parse_text(spec, raw)
    text = str(raw).strip()
    try:
        if isinstance(raw, bool):
            raise ValueError
        value: int | float = int(text) if spec.kind is int else float(text)
    except ValueError:
        kind = "an integer" if spec.kind is int else "a number"
        raise InvalidInput(f"{key} must be {kind}, got {shown(text)}") from None
    if not math.isfinite(value):  # inf and nan break no range: they are no number at all
        raise InvalidInput(f"{key} must be a finite number, got {shown(text)}")
    if not spec.allows(value):
        raise InvalidInput(f"{key} must be {spec.rule}, got {shown(text)}")
    if spec.kind is float and float(value).is_integer():
        value = int(value)
    return value


def _parse_text(spec: Key, raw: Any) -> str:
    """A text key: a string, trimmed, that obeys the key's rule. notify_on is a keyword,
    so its case does not matter."""
    if not isinstance(raw, str):
        raise InvalidInput(f"{spec.name} must be text, got {shown(raw)}")
    text = raw.strip()
    if spec.name == "notify_on":
        text = text.lower()
    if not spec.allows(text):
        raise InvalidInput(f"{spec.name} must be {spec.rule}, got {shown(raw)}")
    return text


def valid_notify_url(text: str) -> bool:
    """Empty, or an absolute http(s) URL with a host, no spaces or control characters, and
    at most 2048 characters."""
    if text == "":
        return True
    if len(text) > 2048 or any(c.isspace() or not c.isprintable() for c in text):
        return False
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


@dataclass(frozen=True)
class Config:
    """Every key's value at one moment (the stored one, else the default)."""

    max_retries: int
    backoff_base: float
    backoff_max: float
    backoff_jitter: float
    job_timeout: float
    poll_interval: float
    heartbeat_interval: float
    stale_after: float
    retention: float
    notify_url: str
    notify_on: str

    @classmethod
    def defaults(cls) -> Config:
        """Every key at its default value."""
        values: dict[str, Any] = {name: key.default for name, key in KEYS.items()}
        return cls(**values)


def _check_pair(values: dict[str, Any]) -> None:
    if values["stale_after"] <= values["heartbeat_interval"]:
        raise InvalidInput(
            f"stale_after ({values['stale_after']}) must be greater than "
            f"heartbeat_interval ({values['heartbeat_interval']})"
        )


class ConfigManager:
    """Reads and writes configuration in the store, so every worker shares it."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def all(self) -> dict[str, Any]:
        """Every key with its value: the stored one, else the default."""
        stored = self.store.get_config()
        values: dict[str, Any] = {}
        for name, key in KEYS.items():
            try:
                values[name] = parse_value(name, stored[name]) if name in stored else key.default
            except InvalidInput:
                values[name] = key.default  # a value written by hand that breaks a rule
        return values

    def load(self) -> Config:
        """The current values as a typed, frozen Config."""
        return Config(**self.all())

    def get(self, name: str) -> Any:
        """One key's value."""
        return self.all()[canonical_key(name)]

    def set(self, name: str, raw: Any) -> tuple[str, Any]:
        """Validate and store a value; returns the canonical key and the parsed value."""
        key = canonical_key(name)
        value = parse_value(key, raw)
        candidate = {**self.all(), key: value}
        _check_pair(candidate)
        self.store.set_config(key, value)
        self.store.bump_control()  # idle workers read only the version (SPEC §8)
        return key, value

    def unset(self, name: str) -> str:
        """Go back to the default value."""
        key = canonical_key(name)
        candidate = {**self.all(), key: KEYS[key].default}
        _check_pair(candidate)
        self.store.unset_config(key)
        self.store.bump_control()
        return key
