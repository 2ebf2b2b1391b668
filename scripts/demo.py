#!/usr/bin/env python3
"""`make demo`: a short tour of queuectl on a private store, narrated step by step.

By default the store is a fresh SQLite file in a new temporary directory, removed at the end
(--keep keeps it). With --db the demo runs on that store instead, which must hold no job yet
(the demo changes its config). Every step runs the real CLI (`python -m queuectl`) from this
checkout, so what you see is what a user gets. The tour takes about 15 seconds.

Example: python scripts/demo.py --keep
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
sys.path.insert(0, SRC)

from queuectl.deps import require_dependencies  # noqa: E402

require_dependencies("scripts/demo.py")

from queuectl.store import mask_url  # noqa: E402

# Small values keep the tour short: retries after 1.5 s and 2.25 s, idle workers poll often.
CONFIG = {"backoff_base": "1.5", "poll_interval": "0.2", "max_retries": "2"}
FLAKY = (
    'test "$QUEUECTL_ATTEMPT" -ge 3 || { echo "attempt $QUEUECTL_ATTEMPT: not yet" >&2; '
    'exit 1; }; echo "worked on attempt $QUEUECTL_ATTEMPT"'
)
JOBS = [  # (what it shows, queuectl enqueue arguments)
    ("succeeds", ["--id", "hello", "echo Hello from queuectl"]),
    ("succeeds after 1 s", ["--id", "nap", "sleep 1; echo rested"]),
    ("runs first: priority 10", ["--id", "urgent", "--priority", "10", "echo I jump the queue"]),
    ("given as JSON", ['{"id": "json-spec", "command": "uname -s", "max_retries": 0}']),
    ("fails twice, then works", ["--id", "flaky", FLAKY]),
    ("always fails: 2 retries, then the DLQ", ["--id", "broken", "echo about to fail >&2; exit 3"]),
    ("command not found: 1 retry", ["--id", "typo", "--max-retries", "1", "ech0 oops"]),
    ("delayed by 3 s", ["--id", "later", "--delay", "3", "echo I waited 3 seconds"]),
    (
        "killed by its 1 s timeout",
        ["--id", "slow", "--timeout", "1", "--max-retries", "0", "sleep 30"],
    ),
]


class Demo:
    """Runs `python -m queuectl` against one store and narrates what it does."""

    def __init__(self, url: str, home: str) -> None:
        self.url = url
        self.step_no = 0
        # The URL travels in the environment: commands shown stay short, passwords unseen.
        path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
        self.env = dict(os.environ, QUEUECTL_DB=url, QUEUECTL_HOME=home, PYTHONPATH=path)

    def step(self, title: str) -> None:
        """Announce the next step."""
        self.step_no += 1
        print(f"\n=== Step {self.step_no}: {title}", flush=True)

    def run(self, *args: str, quiet: bool = False, ok: tuple[int, ...] = (0,)) -> str:
        """Run one queuectl command, echoing it and (unless quiet) its output."""
        shown = shlex.join(args)
        print(f"$ queuectl {shown}", flush=True)
        proc = subprocess.run(
            [sys.executable, "-m", "queuectl", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            # An `Error:` line is part of the story (e.g. `wait` naming dead jobs).
            stderr=None if quiet else subprocess.STDOUT,
            text=True,
        )
        if not quiet:
            print(proc.stdout, end="", flush=True)
        if proc.returncode not in ok:
            raise SystemExit(f"demo: `queuectl {shown}` exited {proc.returncode}; stopping")
        return proc.stdout

    def state_of(self, job_id: str) -> str:
        """A job's state, read without narrating it (the tour waits on it)."""
        proc = subprocess.run(
            [sys.executable, "-m", "queuectl", "show", job_id, "--json"],
            env=self.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        return str(json.loads(proc.stdout)["state"]) if proc.returncode == 0 else "unknown"

    def stream(self, *args: str) -> None:
        """Run a command whose output should appear as it happens (the workers)."""
        print(f"$ queuectl {shlex.join(args)}", flush=True)
        code = subprocess.call([sys.executable, "-m", "queuectl", *args], env=self.env)
        if code:
            raise SystemExit(f"demo: `queuectl {shlex.join(args)}` exited {code}; stopping")


def tour(demo: Demo) -> None:
    """The steps of the demo, in order."""
    demo.step("check the store is empty, and make retries quick for the demo")
    counts = json.loads(demo.run("status", "--json"))["jobs"]
    if any(counts.values()):
        raise SystemExit(
            f"demo: the store {mask_url(demo.url)} already has jobs ({counts}); "
            "run the demo on an empty store, or without --db"
        )
    for key, value in CONFIG.items():
        demo.run("config", "set", key, value)
    demo.step(f"enqueue {len(JOBS)} jobs: some succeed, some fail, one waits, one times out")
    for what, args in JOBS:
        print(f"# {what}")
        demo.run("enqueue", *args)
    demo.run("status")
    demo.step("run two workers in burst mode: they exit once nothing is left to run")
    started = time.monotonic()
    demo.stream("worker", "start", "--count", "2", "--burst")
    print(f"# the workers finished in {time.monotonic() - started:.1f}s")
    demo.step("where everything ended up")
    demo.run("status")
    demo.run("list")
    demo.step("the dead letter queue: jobs that used up their retries")
    demo.run("dlq", "list")
    demo.step("the captured output of one failed job, then of the flaky one")
    demo.run("log", "broken")
    demo.run("log", "flaky")
    demo.step("statistics")
    demo.run("stats")
    workflows(demo)


def workflows(demo: Demo) -> None:
    """Queues, a dependency chain and a cancel."""
    demo.step("a dependency chain in the `build` queue, and a job in the `mail` queue")
    demo.run("enqueue", "--id", "fetch", "--queue", "build", "sleep 0.5; echo fetched")
    demo.run("enqueue", "--id", "compile", "--queue", "build", "--after", "fetch", "echo built")
    demo.run("enqueue", "--id", "test", "--queue", "build", "--after", "compile", "echo passed")
    demo.run("enqueue", "--id", "newsletter", "--queue", "mail", "echo sent")
    demo.run("list", "--state", "pending")
    demo.step("a worker for the `build` queue only: the chain runs in order, mail waits")
    demo.stream("worker", "start", "--queue", "build", "--burst")
    demo.run("list", "--queue", "mail")
    demo.step("cancel a job while it runs: its worker kills it, and it goes to the DLQ")
    demo.run("enqueue", "--id", "forever", "sleep 600")
    demo.run("enqueue", "--id", "report", "--after", "forever", "echo never printed")
    demo.run("worker", "start", "--queue", "default", "--detach")
    try:
        for _ in range(100):  # at most 10 s for the worker to pick it up
            if demo.state_of("forever") == "processing":
                break
            time.sleep(0.1)
        demo.run("cancel", "forever")
        demo.run("wait", "forever", "report", "--timeout", "30", ok=(1,))
        demo.run("dlq", "list")
    finally:
        demo.run("worker", "stop", "--wait", "--timeout", "30")


def main(argv: list[str] | None = None) -> int:
    """Set up the demo store, run the tour, tidy up."""
    parser = argparse.ArgumentParser(
        description="A narrated tour of queuectl: enqueue a mix of succeeding, failing, "
        "delayed and timed-out jobs, run two workers, then show status, DLQ, log and stats.",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        help="an empty store to use (default: a fresh SQLite file in a temporary directory)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory and its store afterwards"
    )
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="queuectl-demo-")
    url = args.db or os.path.join(workdir, "demo.db")
    where = mask_url(url) if args.db else f"a fresh SQLite file, {url}"
    print(f"queuectl demo - store: {where}", flush=True)
    try:
        tour(Demo(url, workdir))
    finally:
        if args.keep and not args.db:
            print(f"\nKept {workdir}. Look around with: bin/queuectl --db {url} list")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
            print(f"\nRemoved {workdir} (use --keep to keep it).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
