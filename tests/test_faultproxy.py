"""The wire lane's tools, checked on their own: the nx-27017 server fixture and the
fault-injecting proxy (faultproxy.py) that the fleet tests rely on."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator

import pytest
from faultproxy import FaultProxy, parse_op_msg
from procutil import wait_for
from pymongo import MongoClient
from pymongo.errors import AutoReconnect, PyMongoError, ServerSelectionTimeoutError
from wirelane import WireServer, unique_db

FAST = {"serverSelectionTimeoutMS": 2000, "connectTimeoutMS": 2000, "socketTimeoutMS": 10000}


@pytest.fixture
def proxy(wire_server: WireServer) -> Iterator[FaultProxy]:
    """A proxy in front of the session's wire-lane server."""
    with FaultProxy(wire_server.address) as running:
        yield running


@pytest.fixture
def db_name(wire_server: WireServer) -> Iterator[str]:
    """A fresh database name, dropped afterwards."""
    name = unique_db()
    yield name
    MongoClient(wire_server.url()).drop_database(name)


def client_of(url: str, **options: Any) -> MongoClient[dict[str, Any]]:
    """A pymongo client with short timeouts."""
    return MongoClient(url, **{**FAST, **options})


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run `call` in a thread; the list receives its result or exception."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_the_wire_lane_gives_each_test_its_own_database(wire_server, wire_url):
    other = wire_server.url(unique_db())
    with client_of(wire_url) as mine, client_of(other) as theirs:
        mine.get_default_database().jobs.insert_one({"_id": "x"})
        assert theirs.get_default_database().jobs.find_one({"_id": "x"}) is None
        assert mine.get_default_database().jobs.find_one({"_id": "x"}) == {"_id": "x"}
        theirs.drop_database(theirs.get_default_database().name)


def test_the_proxy_forwards_commands_and_names_them(proxy, db_name):
    with client_of(proxy.url(db_name)) as client:
        client[db_name].jobs.insert_one({"_id": "a", "n": 1})
        assert client[db_name].jobs.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
    assert {"insert", "find"} <= set(proxy.commands)


def test_parse_op_msg_merges_document_sequences():
    import struct

    import bson

    body = bson.encode({"insert": "jobs", "$db": "q"})
    docs = bson.encode({"_id": 1}) + bson.encode({"_id": 2})
    sequence = b"documents\0" + docs
    message = (
        struct.pack("<I", 0)
        + b"\0"
        + body
        + b"\1"
        + struct.pack("<i", 4 + len(sequence))
        + sequence
    )
    assert parse_op_msg(message) == {
        "insert": "jobs",
        "$db": "q",
        "documents": [{"_id": 1}, {"_id": 2}],
    }


def test_drop_reply_loses_the_reply_of_a_write_the_server_applied(proxy, wire_server, db_name):
    fault = proxy.drop_reply("update", where=lambda c: c["updates"][0]["q"] == {"_id": "a"})
    with client_of(proxy.url(db_name)) as client, client_of(wire_server.url()) as direct:
        jobs = client[db_name].jobs
        jobs.insert_one({"_id": "a", "n": 1})
        jobs.insert_one({"_id": "b", "n": 1})
        jobs.update_one({"_id": "b"}, {"$set": {"n": 2}})  # not matched by the rule
        with pytest.raises(AutoReconnect):
            jobs.update_one({"_id": "a"}, {"$set": {"n": 2}})
        assert fault.wait_fired(1)["update"] == "jobs"
        assert direct[db_name].jobs.find_one({"_id": "a"})["n"] == 2  # applied all the same
        jobs.update_one({"_id": "a"}, {"$set": {"n": 3}})  # one-shot: the next one passes
        assert direct[db_name].jobs.find_one({"_id": "a"})["n"] == 3


def test_hold_reply_delivers_it_only_when_released(proxy, db_name):
    with client_of(proxy.url(db_name)) as client:
        jobs = client[db_name].jobs
        jobs.insert_one({"_id": "a"})
        fault = proxy.hold_reply("find")
        thread, out = in_thread(lambda: jobs.find_one({"_id": "a"}))
        assert fault.wait_fired(5)["filter"] == {"_id": "a"}
        assert thread.is_alive() and out == []  # the reply came, and is held
        fault.release()
        thread.join(5)
        assert out == [{"_id": "a"}]


def test_stall_holds_all_traffic_until_resumed(proxy, db_name):
    with client_of(proxy.url(db_name)) as client:
        client.admin.command("ping")
        proxy.stall()
        thread, out = in_thread(lambda: client.admin.command("ping"))
        wait_for(lambda: proxy.stalled >= 1, 5, "the ping to be held by the stall")
        assert thread.is_alive() and out == []
        proxy.resume()
        thread.join(5)
        assert out == [{"ok": 1}]


def test_cut_closes_every_open_connection(proxy, db_name):
    with client_of(proxy.url(db_name)) as client:
        client.admin.command("ping")
        assert proxy.cut() >= 1
        assert proxy.connection_count() == 0
        # The client finds its connection gone (the command on it fails, as a cut
        # network's would) and opens a new one for the next command.
        try:
            client.admin.command("ping")
        except AutoReconnect:
            pass
        assert client.admin.command("ping") == {"ok": 1}


def test_refuse_is_an_outage_until_accept(proxy, db_name):
    proxy.refuse()
    with client_of(proxy.url(db_name), serverSelectionTimeoutMS=300) as client:
        with pytest.raises(ServerSelectionTimeoutError):
            client.admin.command("ping")
    proxy.accept()
    with client_of(proxy.url(db_name)) as client:
        assert client.admin.command("ping") == {"ok": 1}


def test_close_ends_holds_and_connections(proxy, db_name):
    client = client_of(proxy.url(db_name), socketTimeoutMS=5000)
    try:
        client.admin.command("ping")
        held = proxy.hold_reply("ping")
        thread, out = in_thread(lambda: client.admin.command("ping"))
        held.wait_fired(5)
        proxy.close()
        thread.join(5)
        assert not thread.is_alive() and isinstance(out[0], (PyMongoError, dict))
    finally:
        client.close()
