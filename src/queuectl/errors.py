"""Typed errors. Each carries the exit code the CLI turns it into (SPEC §3)."""


class QueuectlError(Exception):
    """Base of every expected error: the request was valid but could not be done."""

    exit_code = 1


class InvalidInput(QueuectlError):
    """Bad option, bad JSON, unknown field, state or key, a value out of range."""

    exit_code = 2


class JobNotFound(QueuectlError):
    """No job has that id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class DuplicateJob(QueuectlError):
    """A job with that id already exists (or is repeated inside a batch)."""

    def __init__(self, job_id: str, detail: str = "already exists") -> None:
        super().__init__(f"job id {job_id!r} {detail}; nothing was enqueued")
        self.job_id = job_id


class StoreUnavailable(QueuectlError):
    """The store could not be reached or used. The message never holds a password."""


class StoreDamaged(QueuectlError):
    """The store's file is damaged: nothing more is written to it, and the message says how
    to recover it. Not a StoreUnavailable, so a worker stops instead of retrying."""
