"""Text for `log` and `stats`."""

from __future__ import annotations

from typing import Any

from ..models import PENDING, PROCESSING, Job
from ..text import describe_exit, safe_block


def has_run(job: Job) -> bool:
    """Whether any attempt of the job has finished and left a result."""
    return job.finished_at is not None or job.exit_code is not None


def log_text(job: Job) -> str:
    """Outputs of the latest attempt, headed by the state and exit status."""
    if not has_run(job):
        if job.state == PROCESSING:
            return f"Job {job.id} is running (attempt {job.attempts}); no output is stored yet."
        return f"Job {job.id} has not run yet (state: {job.state})."
    code = describe_exit(job.exit_code)
    attempt = f"{job.attempts}/{job.max_retries + 1}"
    if job.state in (PENDING, PROCESSING):
        # The stored output is then an earlier attempt's (before the one running, a hand-back
        # or a DLQ retry): never pair it with the current attempt.
        running = f" (attempt {attempt} is running)" if job.state == PROCESSING else ""
        head = f"Job {job.id}: {job.state}{running}; output of the previous attempt"
        lines = [f"{head}, {code}"]
    else:
        lines = [f"Job {job.id}: {job.state}, {code}, attempt {attempt}"]
    if job.last_error:
        lines.append(f"Last error: {safe_block(job.last_error)}")
    for name, text in (("stdout", job.stdout), ("stderr", job.stderr)):
        lines.append(f"--- {name} ---")
        lines.append(safe_block(text.rstrip("\n")) if text else "(empty)")
    return "\n".join(lines)


def log_json(job: Job) -> dict[str, Any]:
    """The same as a JSON document."""
    return {
        "id": job.id,
        "state": job.state,
        "attempts": job.attempts,
        "exit_code": job.exit_code,
        "last_error": job.last_error,
        "has_run": has_run(job),
        "stdout": job.stdout,
        "stderr": job.stderr,
    }


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


def stats_text(data: dict[str, Any]) -> str:
    """`stats` for people."""
    jobs, duration, throughput = data["jobs"], data["duration"], data["throughput"]
    rate = data["success_rate"]
    lines = [
        "Jobs: " + ", ".join(f"{k} {v}" for k, v in jobs.items()),
        f"Duration of completed jobs: mean {_seconds(duration['mean'])}, "
        f"p50 {_seconds(duration['p50'])}, p95 {_seconds(duration['p95'])}",
        f"Success rate: {'-' if rate is None else f'{rate:.1%}'} (completed vs dead)",
        f"Retries: {data['retries']}",
        f"Completed in the last minute: {throughput['last_minute']}, "
        f"last hour: {throughput['last_hour']}",
    ]
    for queue, counts in data.get("queues", {}).items():
        lines.append(f"Queue {queue}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return "\n".join(lines)
