"""Shared fixtures: one `store` fixture over every backend, a movable clock, a private home."""

from __future__ import annotations

import os
import uuid
from typing import Iterator

import pytest

from queuectl.store.base import Store

REAL_MONGODB = os.environ.get("QUEUECTL_TEST_MONGODB_URI")
BACKENDS = ["sqlite", "mongomock"] + (["mongodb"] if REAL_MONGODB else [])


def make_store(kind: str, tmp_path) -> tuple[Store, callable]:
    """A fresh, empty store of one kind, and a function that disposes of it."""
    if kind == "sqlite":
        from queuectl.store.sqlite import SqliteStore

        store = SqliteStore(str(tmp_path / f"queue-{uuid.uuid4().hex[:8]}.db"))
        return store, store.close
    if kind == "mongomock":
        import mongomock

        from queuectl.store.mongo import MongoStore

        return MongoStore(mongomock.MongoClient(), "queuectl_test"), lambda: None
    from pymongo import MongoClient

    from queuectl.store.mongo import MongoStore

    name = f"queuectl_test_{uuid.uuid4().hex[:12]}"
    client = MongoClient(REAL_MONGODB, serverSelectionTimeoutMS=5000)
    store = MongoStore(client, name, "mongodb://test")

    def drop() -> None:
        client.drop_database(name)
        client.close()

    return store, drop


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> Iterator[Store]:
    """The contract suite's store: every test that takes it runs once per backend."""
    made, dispose = make_store(request.param, tmp_path)
    yield made
    dispose()


class FakeClock:
    """A clock tests move by hand, so retry timing is checked without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A FakeClock starting at a fixed time."""
    return FakeClock()


def watch(apps, clock: FakeClock, seconds: float, step: float = 10.0) -> None:
    """Let `seconds` pass while each App keeps talking to its store, as a live worker does
    every poll: a reaper counts staleness only over time it could see the store (SPEC §8),
    so a test's reaper must have watched for as long as it judges."""
    from queuectl.errors import StoreUnavailable

    for _ in range(round(seconds / step)):
        clock.advance(step)
        for app in apps:
            try:
                app.configs.load()
            except StoreUnavailable:
                pass


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A private QUEUECTL_HOME, no store variables from the outside, and a clean cwd."""
    home_dir = tmp_path / "home"
    monkeypatch.setenv("QUEUECTL_HOME", str(home_dir))
    for name in ("QUEUECTL_DB", "MONGODB_URI", "NO_COLOR", "QUEUECTL_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return home_dir
