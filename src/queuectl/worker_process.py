"""Entry point of one worker process (started by the supervisor): signals, then the loop.

Kept apart from the CLI so a worker process imports only what running jobs needs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

from .app import App
from .errors import QueuectlError
from .localproc import CANCEL_SIGNAL, WAKE_SIGNAL
from .supervisor import StartReport


def main(argv: list[str] | None = None) -> int:
    """Run one worker against the store named by $QUEUECTL_DB until it is stopped."""
    parser = argparse.ArgumentParser(prog="queuectl-worker")
    parser.add_argument("--index", type=int, default=1)
    parser.add_argument("--burst", action="store_true")
    parser.add_argument("--queue", default="", help="comma-separated queues (default: all)")
    args = parser.parse_args(argv)
    parent = os.getppid()
    queues = [q for q in args.queue.split(",") if q]
    report = StartReport()
    try:
        worker = App(os.environ["QUEUECTL_DB"]).worker(args.index, burst=args.burst, queues=queues)

        def on_stop(signum: int, _frame: object) -> None:
            """A stop signal: the first finishes the job, a second kills it; says which."""
            if worker.stop_asked:
                worker.log("stopping now: killing the running command")
            else:
                task = "finishing the current job" if worker.busy else "no job is running"
                again = "Ctrl+C again" if signum == signal.SIGINT else "a second signal"
                worker.log(f"stopping: {task} ({again} stops at once)")
            worker.request_stop()

        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(WAKE_SIGNAL, lambda _s, _f: worker.wake())
        signal.signal(CANCEL_SIGNAL, lambda _s, _f: worker.check_cancel())
        report.started(worker.start().id)
        try:
            return worker.run(parent_pid=parent)
        finally:
            # A stop or wake signal may still arrive (`worker stop` read us as active just
            # before we stopped). While the interpreter shuts down it restores the default
            # handlers, which would kill the process and turn a clean exit into a failure.
            for signum in (signal.SIGINT, signal.SIGTERM, WAKE_SIGNAL, CANCEL_SIGNAL):
                signal.signal(signum, signal.SIG_IGN)
            worker.close()
    except QueuectlError as exc:
        sys.stderr.write(f"Error: worker {args.index}: {exc}\n")
        report.failed(f"worker {args.index}: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
