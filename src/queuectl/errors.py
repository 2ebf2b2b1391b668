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


class DependencyNotFound(QueuectlError):
    """A job lists in `after` an id that is neither in the store nor earlier in its batch."""

    def __init__(self, job_id: str, dep: str) -> None:
        super().__init__(
            f"job {job_id!r} is to run after {dep!r}, which does not exist (an `after` id "
            "must be enqueued already or earlier in the same batch); nothing was enqueued"
        )
        self.job_id = job_id
        self.dep = dep


class StoreUnavailable(QueuectlError):
    """The store could not be reached or used. The message never holds a password."""


class SchemaTooNew(QueuectlError):
    """The store was written by a newer queuectl than this one (SPEC §7.9): its layout may
    hold what this release would misread or break, so nothing is read or written. Not a
    StoreUnavailable, so a worker stops instead of retrying."""

    def __init__(self, store: str, found: int, supported: int) -> None:
        super().__init__(
            f"store {store} has schema version {found}, but this queuectl supports up to "
            f"{supported}; upgrade queuectl (pip install -U queuectl)"
        )
        self.found = found
        self.supported = supported


class ClaimUnanswered(StoreUnavailable):
    """A store without transactions applied the end of an attempt (`written` is what that
    write returned) but the claim sent after it in `finish_and_claim` failed: that claim may
    or may not have been applied."""

    def __init__(self, written: object, reason: str) -> None:
        super().__init__(reason)
        self.written = written


class ForeignRecord(QueuectlError):
    """A stored record of another shape than queuectl writes (e.g. a document the Node version
    left in a shared database). Stores skip such records; asked for by id, it is this error."""

    def __init__(self, kind: str, record_id: object, problem: str) -> None:
        super().__init__(
            f"{_cut(repr(record_id), 80)} is not a queuectl {kind}: {problem} "
            "(a record of another shape, e.g. one the Node version wrote)"
        )
        self.kind = kind
        self.record_id = record_id
        self.problem = problem


class NotInDlq(QueuectlError):
    """Some of the ids given to `dlq retry` name no dead job (those were left unchanged)."""

    SHOWN = 20  # ids listed in the message; the rest are counted

    def __init__(self, job_ids: list[str]) -> None:
        listed = ", ".join(_cut(repr(job_id), 60) for job_id in job_ids[: self.SHOWN])
        more = len(job_ids) - self.SHOWN
        listed += f" and {more} more" if more > 0 else ""
        subject = "job {} is" if len(job_ids) == 1 else "jobs {} are"
        super().__init__(f"{subject.format(listed)} not in the DLQ (left unchanged)")
        self.job_ids = job_ids


class NotCancelable(QueuectlError):
    """Some of the ids given to `cancel` name no job, or a job already completed or dead."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        shown = [f"{_cut(repr(job_id), 60)} {why}" for job_id, why in problems[:20]]
        more = len(problems) - 20
        listed = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
        super().__init__(f"not canceled: {listed}")
        self.problems = problems


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ScheduleNotFound(QueuectlError):
    """No schedule has that name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named {name!r}")
        self.name = name


class DuplicateSchedule(QueuectlError):
    """A schedule with that name already exists."""

    def __init__(self, name: str) -> None:
        super().__init__(f"schedule {name!r} already exists; nothing was added")
        self.name = name


class StoreDamaged(QueuectlError):
    """The store's file is damaged: nothing more is written to it, and the message says how
    to recover it. Not a StoreUnavailable, so a worker stops instead of retrying."""
