"""Same-machine process helpers: which pids are ours to judge, signals, orphaned commands.

Worker rows carry a host, a pid and a machine key; only a worker on this machine (and pid
namespace) can have its pid checked or signalled from here. Linux /proc gives the precise
answers; elsewhere the helpers fall back to what os.kill can tell.
"""

from __future__ import annotations

import functools
import os
import signal
import socket

from .models import WorkerInfo

WAKE_SIGNAL = signal.SIGUSR1
# Tells a worker to look at once whether its running job was canceled.
CANCEL_SIGNAL = signal.SIGUSR2


def hostname() -> str:
    """This machine's name, as worker ids and rows use it."""
    return socket.gethostname()


@functools.lru_cache(maxsize=1)
def machine_key() -> str:
    """Who can see our pids: the host name plus, where Linux tells, the boot id and the pid
    namespace. Two containers with one hostname get different keys."""
    parts = [hostname()]
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            parts.append(handle.read().strip())
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return "/".join(parts)


def is_neighbour(worker: WorkerInfo) -> bool:
    """Whether that worker's pid is a pid of this machine and namespace (and not us)."""
    return worker.machine == machine_key() and worker.pid != os.getpid()


def pid_alive(pid: int) -> bool:
    """Whether a local process with that pid exists and, where /proc tells, is a worker
    (a pid reused by another program does not keep a dead worker's job locked)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"queuectl.worker_process" in handle.read()
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_worker(worker: WorkerInfo, signum: int) -> None:
    """Signal a local worker process, never a process that merely reuses its pid."""
    if is_neighbour(worker) and pid_alive(worker.pid):
        try:
            os.kill(worker.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def kill_orphaned_commands(worker_id: str) -> int:
    """Kill the process groups of commands a dead local worker left running (found by the
    QUEUECTL_WORKER_ID their environment carries), so a released job never runs twice at
    once on this machine. Linux only (/proc); elsewhere a no-op. Returns groups killed."""
    marker = f"QUEUECTL_WORKER_ID={worker_id}".encode()
    groups = set()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    groups.add(os.getpgid(pid))
        except OSError:
            continue  # gone, or another user's process
    for group in groups - {os.getpgid(0)}:
        try:
            os.killpg(group, signal.SIGKILL)
        except OSError:
            pass
    return len(groups)
