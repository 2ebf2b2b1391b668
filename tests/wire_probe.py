"""Where a MongoDB wire-protocol server differs from MongoDB, in the operations a queue store
might use. Prints one line per probe: what the server did, and what MongoDB 4.4+ does.

    .venv/bin/python tests/wire_probe.py mongodb://127.0.0.1:27017/

Run it against the wire lane's nx-27017 and against a real server to compare; the gaps it
finds on nx-27017 are listed in wirelane.py and in the README. It works in a database of its
own and drops it at the end.
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import Any, Callable

from bson import ObjectId
from pymongo import MongoClient, ReturnDocument, WriteConcern
from pymongo.collection import Collection

DATE = datetime.datetime(2020, 1, 1)
# _id: value of `a` (missing in 5)
TYPED = [
    {"_id": 1, "a": 0},
    {"_id": 2, "a": "x"},
    {"_id": 3, "a": 1},
    {"_id": 4, "a": None},
    {"_id": 5},
    {"_id": 6, "a": DATE},
    {"_id": 7, "a": True},
]


# _id: value of `tags` (missing in 5); the field has an index, as `after` has in the store
ARRAYS = [
    {"_id": 1, "tags": ["x"]},
    {"_id": 2, "tags": ["y", "x"]},
    {"_id": 3, "tags": "x"},
    {"_id": 4, "tags": []},
    {"_id": 5},
]


def ids(coll: Collection[dict[str, Any]], query: dict[str, Any]) -> list[Any]:
    """Sorted _ids of the documents matching `query`."""
    return sorted(d["_id"] for d in coll.find(query))


def updated(coll: Collection[dict[str, Any]], query: dict[str, Any], mark: str) -> list[Any]:
    """Sorted _ids of the documents an update_many with `query` changes (marked by `mark`)."""
    coll.update_many(query, {"$set": {mark: True}})
    return ids(coll, {mark: True})


def probes(db: Any) -> list[tuple[str, Callable[[], Any], Any]]:
    """(name, what to run, what MongoDB answers; None where that depends on the deployment)."""
    t: Collection[dict[str, Any]] = db.typed
    t.insert_many(TYPED)
    s: Collection[dict[str, Any]] = db.sorted
    s.insert_many([{"_id": "b", "k": 2}, {"_id": ObjectId("0" * 24), "k": 1}, {"_id": "a"}])
    n: Collection[dict[str, Any]] = db.numbers
    n.insert_many([{"_id": i, "v": i} for i in range(300)])
    fam = db.fam
    fam.insert_one({"_id": 1, "attempts": "x"})
    a: Collection[dict[str, Any]] = db.arrays
    a.insert_many(ARRAYS)
    a.create_index("tags")

    def first_error(call: Callable[[], Any]) -> str:
        try:
            call()
            return "no error"
        except Exception as exc:  # noqa: BLE001 - the probe reports whatever happens
            return type(exc).__name__

    return [
        ("$gt 0 (numbers only)", lambda: ids(t, {"a": {"$gt": 0}}), [3]),
        ("$gte 0", lambda: ids(t, {"a": {"$gte": 0}}), [1, 3]),
        ("$lte 1", lambda: ids(t, {"a": {"$lte": 1}}), [1, 3]),
        ("$lt 'z' (strings only)", lambda: ids(t, {"a": {"$lt": "z"}}), [2]),
        (
            "$lt date (dates only)",
            lambda: ids(t, {"a": {"$lt": datetime.datetime(2030, 1, 1)}}),
            [6],
        ),
        ("$gte null", lambda: ids(t, {"a": {"$gte": None}}), [4, 5]),
        ("$ne null", lambda: ids(t, {"a": {"$ne": None}}), [1, 2, 3, 6, 7]),
        ("eq null (null or missing)", lambda: ids(t, {"a": None}), [4, 5]),
        ("$exists false (null exists)", lambda: ids(t, {"a": {"$exists": False}}), [5]),
        ("$type number", lambda: ids(t, {"a": {"$type": "number"}}), [1, 3]),
        ("$type null (not missing)", lambda: ids(t, {"a": {"$type": "null"}}), [4]),
        ("$type date", lambda: ids(t, {"a": {"$type": "date"}}), [6]),
        ("{f: v}, f an indexed array field", lambda: ids(a, {"tags": "x"}), [1, 2, 3]),
        ("{f: v} in update_many", lambda: updated(a, {"tags": "x"}, "m1"), [1, 2, 3]),
        ("$eq v on an array field", lambda: ids(a, {"tags": {"$eq": "x"}}), [1, 2, 3]),
        ("$in [v] on an array field", lambda: ids(a, {"tags": {"$in": ["x"]}}), [1, 2, 3]),
        ("$ne v on an array field", lambda: ids(a, {"tags": {"$ne": "x"}}), [4, 5]),
        ("$ne v in update_many", lambda: updated(a, {"tags": {"$ne": "x"}}, "m2"), [4, 5]),
        ("$nin [v] on an array field", lambda: ids(a, {"tags": {"$nin": ["x"]}}), [4, 5]),
        ("$nin [v] in update_many", lambda: updated(a, {"tags": {"$nin": ["x"]}}, "m3"), [4, 5]),
        ("$not", lambda: first_error(lambda: ids(t, {"a": {"$not": {"$gt": 0}}})), "no error"),
        (
            "sort asc: missing, numbers, strings, ObjectId",
            lambda: [str(d["_id"]) for d in s.find().sort([("k", 1), ("_id", 1)])],
            ["a", "0" * 24, "b"],
        ),
        (
            "sort _id: strings before ObjectId",
            lambda: [str(d["_id"]) for d in s.find().sort("_id", 1)],
            ["a", "b", "0" * 24],
        ),
        ("getMore past the first batch", lambda: len(list(n.find().batch_size(50))), 300),
        (
            "skip + limit on a sort",
            lambda: [d["v"] for d in n.find().sort("v", -1).skip(5).limit(2)],
            [294, 293],
        ),
        (
            "update of equal value: (matched, modified)",
            lambda: (lambda r: (r.matched_count, r.modified_count))(
                n.update_one({"_id": 1}, {"$set": {"v": 1}})
            ),
            (1, 0),
        ),
        (
            "findAndModify that fails on the server",
            lambda: first_error(
                lambda: fam.find_one_and_update(
                    {"_id": 1}, {"$inc": {"attempts": 1}}, return_document=ReturnDocument.AFTER
                )
            ),
            "OperationFailure",
        ),
        (
            "update pipeline",
            lambda: first_error(lambda: n.update_one({"_id": 2}, [{"$set": {"w": "$v"}}])),
            "no error",
        ),
        (
            "w: 2 on a standalone server",
            lambda: first_error(
                lambda: db.get_collection(
                    "wc", write_concern=WriteConcern(w=2, wtimeout=500)
                ).insert_one({})
            ),
            "an error",  # a standalone server cannot honour w > 1
        ),
        (
            "replica set name in hello",
            lambda: db.client.admin.command("hello").get("setName"),
            None,  # the set's name on a replica set; None on a standalone server
        ),
    ]


def main(url: str) -> int:
    """Run every probe against `url`; print each result beside MongoDB's."""
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    db = client[f"wire_probe_{int(time.time() * 1000)}"]
    differs = 0
    try:
        for name, run, mongodb in probes(db):
            try:
                got = run()
            except Exception as exc:  # noqa: BLE001
                got = f"{type(exc).__name__}: {str(exc)[:120]}"
            if mongodb is None:  # depends on the deployment: shown, not judged
                print(f"  info  {name}: {got!r}")
                continue
            same = got == mongodb or (mongodb == "an error" and got != "no error")
            differs += not same
            print(f"{'  same' if same else 'DIFFER'}  {name}: {got!r}  (MongoDB: {mongodb!r})")
    finally:
        client.drop_database(db.name)
        client.close()
    print(f"{differs} probe(s) differ from MongoDB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "mongodb://127.0.0.1:27017/"))
