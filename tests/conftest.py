"""Shared fixtures: one `store` fixture over every backend, the wire lane (a MongoDB
wire-protocol server on loopback, see wirelane.py), a movable clock, a private home."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest
from idlesim import FakeClock
from wirelane import (
    MONGO_SERVERS,
    REAL_MONGODB,
    WireLaneUnavailable,
    WireServer,
    drop_database,
    server_url,
    unique_db,
)

from queuectl.store.base import Store

BACKENDS = ["sqlite", "mongomock", *MONGO_SERVERS]


def make_store(kind: str, tmp_path, url: str | None = None) -> tuple[Store, callable]:
    """A fresh, empty store of one kind, and a function that disposes of it. `url` names the
    fresh database of a server kind ("wire", "mongodb")."""
    if kind == "sqlite":
        from queuectl.store.sqlite import SqliteStore

        store = SqliteStore(str(tmp_path / f"queue-{uuid.uuid4().hex[:8]}.db"))
        return store, store.close
    if kind == "mongomock":
        import mongomock

        from queuectl.store.mongo import MongoStore

        return MongoStore(mongomock.MongoClient(), "queuectl_test"), lambda: None
    from queuectl.store import mask_url, url_secrets
    from queuectl.store.mongo import MongoStore, connect

    assert url is not None, f"a {kind} store needs the URL of its database"
    # connect() builds the client exactly as the CLI does (its timeouts and options).
    store = connect(url, mask_url(url), url_secrets(url))
    assert isinstance(store, MongoStore)

    def drop() -> None:
        store.client.drop_database(store.db.name)
        store.close()

    return store, drop


@pytest.fixture(params=BACKENDS)
def store(request, tmp_path) -> Iterator[Store]:
    """The contract suite's store: every test that takes it runs once per backend."""
    url = server_url(request, request.param) if request.param in MONGO_SERVERS else None
    made, dispose = make_store(request.param, tmp_path, url)
    yield made
    dispose()


@pytest.fixture(scope="session")
def wire_server(tmp_path_factory) -> Iterator[WireServer]:
    """One nx-27017 server for the whole session, on a free loopback port; the tests that
    need it are skipped, with the reason, where it cannot start."""
    server = WireServer(tmp_path_factory.mktemp("wirelane"))
    try:
        server.start()
    except WireLaneUnavailable as exc:
        pytest.skip(f"the wire lane's server (nx-27017) cannot start here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def wire_url(wire_server) -> Iterator[str]:
    """`mongodb://127.0.0.1:PORT/<fresh database>` on the wire lane; dropped afterwards."""
    try:
        wire_server.ensure_running()
    except WireLaneUnavailable as exc:
        pytest.skip(f"the wire lane's server (nx-27017) cannot start here: {exc}")
    name = unique_db()
    yield wire_server.url(name)
    drop_database(wire_server.url(), name)


@pytest.fixture
def mongodb_url() -> Iterator[str]:
    """A fresh database on the server QUEUECTL_TEST_MONGODB_URI names; dropped afterwards."""
    from pymongo.uri_parser import parse_uri

    if not REAL_MONGODB:
        pytest.skip("QUEUECTL_TEST_MONGODB_URI is not set")
    name = unique_db("queuectl_test")
    given = parse_uri(REAL_MONGODB).get("database")
    base, _, query = REAL_MONGODB.partition("?")
    if given:
        base = base.rsplit("/", 1)[0]
        if "authsource=" not in query.lower():  # the URL's database was its auth database
            query = "&".join(filter(None, [query, f"authSource={given}"]))
    url = f"{base.rstrip('/')}/{name}" + (f"?{query}" if query else "")
    yield url
    drop_database(REAL_MONGODB, name)


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
