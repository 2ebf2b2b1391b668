"""The MongoDB store's schema version (SPEC §7.9): one document `{_id: "schema", version: N}`
in the `meta` collection, with N the same number as the SQLite store's SCHEMA_VERSION (one
number per release, whichever store it runs on).

Each process checks it once, on its first use of the database:

- newer than this release knows: SchemaTooNew, and nothing is written;
- missing (a database of a release before `meta`, or a new one) or older: the indexes are
  ensured, the steps of the versions in between run, then the version is recorded. Every
  step only adds (indexes, fields with a default), so workers of the older release that keep
  running are not disturbed, and every step is idempotent, so several processes upgrading at
  once (or one that died halfway) only repeat work. The record is raised with $max, never
  lowered, so a newer release's number survives an older one's upgrade racing it;
- current: the indexes are ensured (idempotent on the server), nothing else.

A user who may only read gets the check and no upgrade: the next process that may write
does it.
"""

from __future__ import annotations

from typing import Any, Callable

from ..errors import SchemaTooNew

SCHEMA_ID = "schema"
UNAUTHORIZED = 13  # the server's code for a write this user may not do

# What brings a database from version `key - 1` to `key`, beyond the indexes every version
# ensures (MongoStore._ensure_indexes). Each takes the MongoStore, is idempotent, and only
# adds: older workers may still be running.
STEPS: dict[int, Callable[[Any], None]] = {}


def supported_version() -> int:
    """The schema version of this release (the SQLite store's constant: one number)."""
    from .sqlite import SCHEMA_VERSION

    return SCHEMA_VERSION


def stored_version(db: Any) -> int | None:
    """The version the database records, or None when it records none (or one of another
    shape, which an upgrade then replaces)."""
    from .sqlite_file import version_number

    doc = db["meta"].find_one({"_id": SCHEMA_ID})
    return version_number(doc.get("version") if doc else None)


def ensure_schema(store: Any) -> None:
    """Refuse a newer database; bring an older one to this release's version (see above)."""
    from pymongo.errors import OperationFailure

    supported = supported_version()
    found = stored_version(store.db)
    if found is not None and found > supported:
        raise SchemaTooNew(store.url, found, supported)
    store._ensure_indexes()
    if found == supported:
        return
    try:
        for version in sorted(STEPS):
            if (found or 0) < version <= supported:
                STEPS[version](store)
        record_version(store.db, supported)
    except OperationFailure as exc:
        if exc.code != UNAUTHORIZED:  # a read-only user can still watch
            store._indexed = False  # not upgraded: the next operation tries again
            raise
    except BaseException:
        store._indexed = False
        raise


def record_version(db: Any, version: int) -> None:
    """Raise the recorded version to `version` (never lower it). Two processes inserting the
    first record at once: one insert wins, the other's retry is then an update."""
    from pymongo.errors import DuplicateKeyError

    meta = db["meta"]
    doc = meta.find_one({"_id": SCHEMA_ID})
    if doc is not None and stored_version(db) is None:
        # A record of another shape: $max would compare across BSON types.
        meta.update_one({"_id": SCHEMA_ID}, {"$set": {"version": version}})
        return
    for attempt in range(2):
        try:
            meta.update_one({"_id": SCHEMA_ID}, {"$max": {"version": version}}, upsert=True)
            return
        except DuplicateKeyError:
            if attempt:
                raise
