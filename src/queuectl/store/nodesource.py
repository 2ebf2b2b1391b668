"""A database the Node version wrote (SPEC §7.8), read as it is: the raw documents of its
`jobs` and `configs` collections. Nothing is ever written to it, not even the indexes or the
schema record queuectl's own MongoDB store adds on first use."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from ..errors import InvalidInput, QueuectlError, StoreUnavailable
from . import MONGO_SCHEMES, mask_url, url_secrets

JOBS, CONFIGS = "jobs", "configs"


class NodeSource:
    """The Node version's database a `mongodb://` URL names (its path: the database name,
    default `queuectl`). Connects lazily; an unreachable server is reported within ~5 s and
    no message holds a secret of the URL."""

    def __init__(self, url: str) -> None:
        if not url.startswith(MONGO_SCHEMES):
            raise InvalidInput(
                f"--from {mask_url(url)!r} is not a MongoDB URL; give the URL of the Node "
                "version's database, e.g. mongodb://localhost:27017/queuectl"
            )
        from .mongo import connect

        # connect() builds the client as for queuectl's own store (timeouts, URL checks,
        # masking); only its client and database are used here.
        self._store = connect(url, mask_url(url), url_secrets(url))
        self._secrets = url_secrets(url)
        self.url = mask_url(url)
        self.db = self._store.db

    @contextmanager
    def _errors(self) -> Iterator[None]:
        from pymongo.errors import PyMongoError

        from .mongo import _short

        try:
            yield
        except PyMongoError as exc:
            raise StoreUnavailable(
                f"Node version's database at {self.url}: {_short(exc, self._secrets)}"
            ) from None

    def check(self) -> None:
        """Raise unless the database holds a `jobs` or a `configs` collection: a URL naming
        another database (or none, so `queuectl`) is the likely mistake."""
        with self._errors():
            names = set(self.db.list_collection_names())
        if not names & {JOBS, CONFIGS}:
            raise QueuectlError(
                f"database {self.db.name!r} at {self.url} has no `jobs` or `configs` "
                "collection, so it is not a Node version's database; name that database in "
                "the URL's path (mongodb://host/DATABASE)"
            )

    def job_count(self) -> int | None:
        """About how many documents `jobs` holds (for progress), when the server says."""
        try:
            with self._errors():
                return int(self.db[JOBS].estimated_document_count())
        except StoreUnavailable:
            return None

    def jobs(self, batch: int) -> Iterator[list[dict[str, Any]]]:
        """Every document of `jobs`, `batch` at a time, in `_id` order (an ObjectId holds its
        creation time, so this is about the order they were enqueued)."""
        with self._errors():
            cursor = self.db[JOBS].find({}).sort("_id", 1).batch_size(batch)
            chunk: list[dict[str, Any]] = []
            for doc in cursor:
                chunk.append(doc)
                if len(chunk) >= batch:
                    yield chunk
                    chunk = []
            if chunk:
                yield chunk

    def configs(self) -> list[dict[str, Any]]:
        """Every document of `configs`."""
        with self._errors():
            return list(self.db[CONFIGS].find({}))

    def close(self) -> None:
        """Close the client."""
        self._store.close()
