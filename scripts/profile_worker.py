#!/usr/bin/env python3
"""Where a worker's own CPU goes per job: one in-process worker runs N `true` jobs on a fresh
SQLite store, and this prints CPU per job (this process, and its reaped children apart), and
optionally a cProfile of the worker's main thread.

    .venv/bin/python scripts/profile_worker.py [--jobs N] [--profile] [--sort cumulative]

BENCHMARKS.md records what it found. The CPU figures are `getrusage` of this process (the
worker, heartbeat thread included) and of the job shells it reaped.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from queuectl.deps import require_dependencies  # noqa: E402

require_dependencies("scripts/profile_worker.py")

from queuectl.app import App  # noqa: E402


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def switched() -> tuple[int, int]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw, usage.ru_nivcsw


def bare_spawns(n: int) -> tuple[float, float]:
    """CPU ms per `/bin/sh -c true` spawned as the executor spawns it, this process and its
    children apart: the floor a worker's per-job cost is compared with."""
    import subprocess

    own, kids = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
    for _ in range(n):
        subprocess.run(
            ["/bin/sh", "-c", "true"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            start_new_session=True,
            check=True,
        )
    own = cpu(resource.RUSAGE_SELF) - own
    kids = cpu(resource.RUSAGE_CHILDREN) - kids
    return own * 1000 / n, kids * 1000 / n


def store_only(n: int) -> None:
    """CPU per job of the store calls alone (no command run): a result then a claim, and
    the two as one `complete_and_claim`, alternated so both see the same load."""
    from queuectl.executor import Result
    from queuectl.jobs import NextClaim

    result = Result(0, "", "", 0.001, None)
    for mode in ("apart", "together", "apart", "together"):
        with tempfile.TemporaryDirectory(prefix="queuectl-profile-") as root:
            app = App(str(Path(root) / "queue.db"))
            app.jobs.enqueue([(None, {"command": "true"}) for _ in range(n + 1)])
            worker = app.workers.register(1)
            job = app.jobs.claim(worker.id, (), app.jobs.new_token(), lease_seconds=600)
            before = cpu(resource.RUSAGE_SELF)
            while job is not None:
                token = app.jobs.new_token()
                if mode == "apart":
                    app.jobs.complete(job, result)
                    job = app.jobs.claim(worker.id, (), token, lease_seconds=600)
                else:
                    claim = NextClaim(worker.id, (), token, 600.0)
                    _, job = app.jobs.complete_and_claim(job, result, claim)
            used = cpu(resource.RUSAGE_SELF) - before
            print(f"store calls, {mode}: {used * 1000 / n:.3f} ms CPU per job")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the loop")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (default tottime)")
    parser.add_argument("--lines", type=int, default=35)
    parser.add_argument(
        "--store-only", action="store_true", help="time the store calls alone, apart and as one"
    )
    args = parser.parse_args(argv)
    if args.store_only:
        store_only(args.jobs)
        return 0
    with tempfile.TemporaryDirectory(prefix="queuectl-profile-") as root:
        app = App(str(Path(root) / "queue.db"))
        app.jobs.enqueue([(None, {"command": "true"}) for _ in range(args.jobs)])
        worker = app.worker(1, burst=True, log=lambda _line: None)
        worker.start()
        profiler = cProfile.Profile() if args.profile else None
        own, kids, wall = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN), time.time()
        switches = switched()
        if profiler:
            profiler.enable()
        worker.run()
        if profiler:
            profiler.disable()
        wall = time.time() - wall
        switches = tuple(b - a for a, b in zip(switches, switched(), strict=True))
        own = cpu(resource.RUSAGE_SELF) - own
        kids = cpu(resource.RUSAGE_CHILDREN) - kids
        worker.close()
        done = app.jobs.counts()["completed"]
    n = args.jobs
    parent, child = bare_spawns(n)
    print(f"bare spawn, parent CPU: {parent:.3f} ms; its shell: {child:.3f} ms")
    print(f"{done}/{n} jobs completed in {wall:.2f} s ({n / wall:,.0f}/s, one worker)")
    print(f"worker process CPU per job: {own * 1000 / n:.3f} ms")
    print(f"job shells' CPU per job:    {kids * 1000 / n:.3f} ms")
    print(
        f"worker context switches per job: {switches[0] / n:.1f} voluntary, "
        f"{switches[1] / n:.1f} involuntary"
    )
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(args.sort).print_stats(args.lines)
        print(out.getvalue())
    return 0 if done == n else 1


if __name__ == "__main__":
    sys.exit(main())
