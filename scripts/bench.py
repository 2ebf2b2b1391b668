#!/usr/bin/env python3
"""Benchmarks of queuectl (`make bench`): throughput, pickup latency, CLI start-up, bulk
enqueue, behaviour at scale and memory, each printed beside its goal. BENCHMARKS.md holds
the figures of a full run and what they mean.

Everything runs on the embedded SQLite store, each step in its own QUEUECTL_HOME under one
temporary directory; throughput and latency run on MongoDB too when
QUEUECTL_BENCH_MONGODB_URI is set (in a throw-away database that is dropped afterwards).
Figures are medians of several runs with their min-max; a goal stated as a ratio compares two
figures measured in the same run.

    .venv/bin/python scripts/bench.py [--quick] [--json FILE] [--only STEP,...] [--keep]

The purge step (minutes long) runs only when named: `--only purge`.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import random
import resource
import secrets
import shlex
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))  # works from a checkout without the editable install

from queuectl.deps import require_dependencies  # noqa: E402

require_dependencies("scripts/bench.py")

from queuectl.app import App  # noqa: E402
from queuectl.models import JOB_COLUMNS  # noqa: E402
from queuectl.store import open_store  # noqa: E402
from queuectl.store.sqlite import SqliteStore  # noqa: E402
from queuectl.store.sqlite_counters import add_counters  # noqa: E402

MONGO_ENV = "QUEUECTL_BENCH_MONGODB_URI"
# The `hot` step's store sizes (SPEC §8: about the same time at 10 million jobs as at 10
# thousand), and the smaller ones of its MongoDB stand-in (the wire lane).
HOT_SIZES = (10_000, 10_000_000)
HOT_MONGO_SIZES = (1_000, 10_000)
# How MongoDB figures are labelled: `--wire` relabels them, its server being a stand-in.
MONGO_TAG = {"tag": " [mongodb]", "what": "MongoDB"}
MIB = 1024 * 1024
# The first claims on a freshly built store are slower (the WAL file grows to its working
# size, pages come into the cache): these are run untimed.
WARM_UP_CLAIMS = 150


class BenchError(Exception):
    """A measurement could not be taken (a command failed, a wait ran out)."""


# -- settings and results -------------------------------------------------------------------
@dataclass
class Settings:
    """How much of each measurement to do; `shrunk()` is the --quick version."""

    quick: bool = False
    runs: int = 3  # repetitions of the multi-second measurements
    spawn_runs: int = 5
    spawn_per_thread: int = 400
    throughput_jobs: int = 1000
    latency_samples: int = 20
    idle_window: float = 10.0  # seconds of idle CPU measured (and of idling before sampling)
    cli_reps: int = 15
    bulk_jobs: int = 100_000
    bulk_runs: int = 3
    scale_sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    scale_reps: int = 5
    claims: int = 200
    memory_runs: int = 2
    hot_sizes: tuple[int, ...] = HOT_SIZES
    hot_mongo_sizes: tuple[int, ...] = HOT_MONGO_SIZES
    idle_workers: int = 20  # idle worker processes whose store calls are counted
    idle_load_window: float = 60.0  # seconds counted (two heartbeats, one reap of each)
    idle_settle: float = 3.0  # past start-up (registration, the first reap and poll)
    mongo_claim_sizes: tuple[int, ...] = (10_000, 100_000)

    @classmethod
    def shrunk(cls) -> Settings:
        """The --quick settings: a check that everything works, not figures to publish."""
        return cls(
            quick=True,
            runs=2,
            spawn_runs=3,
            spawn_per_thread=150,
            latency_samples=8,
            idle_window=3.0,
            cli_reps=5,
            bulk_jobs=20_000,
            bulk_runs=2,
            scale_sizes=(10_000, 100_000),
            scale_reps=3,
            claims=100,
            memory_runs=1,
            idle_workers=5,
            idle_load_window=15.0,
            mongo_claim_sizes=(10_000,),
        )


@dataclass
class Figure:
    """One measured figure: its median, min-max, and its goal when it has one."""

    key: str
    name: str
    value: float | None
    unit: str = ""
    low: float | None = None
    high: float | None = None
    goal: str = ""
    met: bool | None = None  # None: no goal, or not measured
    note: str = ""
    samples: list[float] = field(default_factory=list)


def measured(
    key: str,
    name: str,
    values: Sequence[float],
    unit: str,
    goal: tuple[str, float, str] | None = None,
    note: str = "",
) -> Figure:
    """A figure from its samples; goal is (op, bound, text) with op '<=' or '>='."""
    value = statistics.median(values)
    fig = Figure(
        key,
        name,
        value,
        unit,
        min(values),
        max(values),
        note=note,
        samples=[round(v, 6) for v in values],
    )
    if goal:
        op, bound, text = goal
        fig.goal = text
        fig.met = value <= bound if op == "<=" else value >= bound
    return fig


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(len(ordered) * q)) - 1]


# -- processes ------------------------------------------------------------------------------
def queuectl_argv() -> list[str]:
    """The installed `queuectl` beside this interpreter, else the checkout's launcher."""
    script = Path(sys.executable).with_name("queuectl")
    if script.exists():
        return [str(script)]
    return [sys.executable, str(REPO / "bin" / "queuectl")]


def _stat_fields(pid: int) -> list[str]:
    # Fields after the command name, which may itself hold spaces and parentheses.
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def started_at(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, None once it is gone (or a
    zombie). With the pid it names one process: a pid alone may be reused."""
    try:
        fields = _stat_fields(pid)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (every thread), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kib_field(path: str, name: str) -> float:
    for line in Path(path).read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024 / MIB
    raise BenchError(f"no {name} in {path}")


def rss_mib(pid: int) -> float:
    """VmRSS of the process, in MiB: every resident page it maps, shared ones included."""
    return _kib_field(f"/proc/{pid}/status", "VmRSS")


def pss_mib(pid: int) -> float:
    """Proportional set size in MiB: shared pages divided among the processes sharing them."""
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss")


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through the parent pids in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until `condition()` is truthy; BenchError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class Home:
    """One QUEUECTL_HOME with the environment and store URL that go with it."""

    path: Path
    env: dict[str, str]
    url: str


class Lab:
    """The temporary directory of every home, and every long-lived process started in it;
    `close()` stops them all (also after Ctrl+C) and removes the directory."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="queuectl-bench-"))
        self.keep = keep
        self.procs: list[subprocess.Popen[bytes]] = []
        self.mongo_databases: list[tuple[str, str]] = []
        self._homes = 0
        self.cli = queuectl_argv()

    def home(self, name: str, mongo_uri: str | None = None) -> Home:
        """A fresh home; on MongoDB, a fresh database of its own."""
        self._homes += 1
        path = self.root / f"{self._homes:02d}-{name}"
        path.mkdir(mode=0o700)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("QUEUECTL_DB", "MONGODB_URI", "QUEUECTL_DEBUG")
        }
        env["QUEUECTL_HOME"] = str(path)
        url = str(path / "queue.db")
        if mongo_uri:
            database = f"queuectl_bench_{secrets.token_hex(4)}"
            url = with_database(mongo_uri, database)
            self.mongo_databases.append((mongo_uri, database))
            env["QUEUECTL_DB"] = url
        return Home(path, env, url)

    def run(self, home: Home, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run one queuectl command to completion; BenchError unless it exits 0."""
        proc = subprocess.run(
            [*self.cli, *args],
            env=home.env,
            cwd=self.root,
            text=True,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise BenchError(
                f"queuectl {' '.join(args)[:60]} exited {proc.returncode}: "
                f"{proc.stderr.strip()[-300:]}"
            )
        return proc

    def start_workers(
        self, home: Home, count: int, burst: bool = False, extra: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        """`worker start --count N [extra...]` in its own session, logging into the home."""
        argv = [*self.cli, "worker", "start", "--count", str(count), *(["--burst"] * burst)]
        argv += extra
        with open(home.path / "workers.log", "ab") as log:
            proc = subprocess.Popen(
                argv,
                env=home.env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
        """SIGTERM (a graceful stop, forwarded to the workers), then SIGKILL what is left,
        each process only while it is still the one that was found (pids get reused)."""
        tree = {pid: started_at(pid) for pid in descendants(proc.pid)}
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)

        def ours() -> list[int]:
            return [pid for pid, start in tree.items() if start and started_at(pid) == start]

        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (proc.poll() is None or ours()):
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        for pid in ours():
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait()

    def close(self) -> None:
        """Stop every process still running, drop MongoDB databases, remove the directory."""
        for proc in self.procs:
            if proc.poll() is None:
                self.stop(proc, grace=3.0)
        for uri, database in self.mongo_databases:
            drop_mongo_database(uri, database)
        if self.keep:
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)


def worker_pids(lab: Lab, home: Home, count: int, timeout: float = 30.0) -> list[int]:
    """Pids of the worker processes, from `worker list --json`, once `count` are listed."""

    def listed() -> list[int]:
        workers = json.loads(lab.run(home, "worker", "list", "--json").stdout)
        return [w["pid"] for w in workers] if len(workers) >= count else []

    pids = wait_for(listed, timeout, f"{count} worker(s) to register")
    for pid in pids:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        if b"queuectl.worker_process" not in cmdline:
            raise BenchError(f"pid {pid} is not a queuectl.worker_process")
    return list(pids)


# -- 8. web --------------------------------------------------------------------------------
WEB_WORKERS = 8


def start_web(lab: Lab, home: Home) -> tuple[subprocess.Popen[bytes], str]:
    """`queuectl web --port 0` in its own session; its URL, read from its log."""
    log_path = home.path / f"web-{len(lab.procs)}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [*lab.cli, "web", "--port", "0"],
            env=home.env,
            cwd=lab.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    lab.procs.append(proc)

    def url() -> str | None:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("queuectl web: http://"):
                return line.split()[2]
        if proc.poll() is not None:
            raise BenchError(f"queuectl web exited {proc.returncode}: {log_path.read_text()}")
        return None

    return proc, wait_for(url, 30, "queuectl web to listen")


def http_times(url: str, path: str, reps: int) -> tuple[float, list[float]]:
    """Milliseconds of the first GET (a fresh connection, nothing cached in the server),
    then of `reps` more on one kept-alive connection, like a dashboard's refreshes."""
    from http.client import HTTPConnection
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    times = []
    try:
        for _ in range(reps + 1):
            started = time.perf_counter()
            conn.request("GET", path, headers={"Accept": "text/html,application/json"})
            response = conn.getresponse()
            response.read()
            times.append((time.perf_counter() - started) * 1000)
            if response.status != 200:
                raise BenchError(f"GET {path} answered {response.status}")
    finally:
        conn.close()
    return times[0], times[1:]


def web(lab: Lab, cfg: Settings) -> list[Figure]:
    """`queuectl web` over a real socket: GET /api/status at 100,000 jobs, and the overview
    page at 1,000,000 jobs with 8 workers (rows registered and heartbeating, without
    processes, so that no claim changes the store while it is measured)."""
    from queuectl.app import App

    home = lab.home("web")
    manager = App(store=SqliteStore(home.url)).workers
    for n in range(WEB_WORKERS):
        manager.register(n)  # heartbeated now: active for stale_after (600 s)
    figures: list[Figure] = []
    reps = 20 if cfg.quick else 50
    big = cfg.scale_sizes[-1]
    built = 0
    for size in (100_000, big) if big > 100_000 else (100_000,):
        insert_history(home.url, built, size - built)
        built = size
        proc, url = start_web(lab, home)
        try:
            _, status = http_times(url, "/api/status", reps)
            figures.append(
                measured(
                    f"web_status_{size}",
                    f"GET /api/status p50, {size:,} jobs",
                    status,
                    "ms",
                    ("<=", 10.0, "<= 10 ms") if size == 100_000 else None,
                )
            )
            if size == big:
                first, overview = http_times(url, "/", max(reps // 5, 5))
                _, live = http_times(url, "/?partial=1", max(reps // 5, 5))
                workers = f"{WEB_WORKERS} workers, {size:,} jobs"
                figures.append(
                    measured(
                        "web_overview_first",
                        f"GET / (overview) first, {workers}",
                        [first],
                        "ms",
                        ("<=", 1000.0, "< 1 s"),
                        "the first view also reads the chart's last hour",
                    )
                )
                figures.append(
                    measured(
                        f"web_overview_{size}",
                        f"GET / (overview) p50, {workers}",
                        overview,
                        "ms",
                        ("<=", 1000.0, "< 1 s"),
                    )
                )
                figures.append(
                    measured(f"web_live_{size}", "  its live refresh (?partial=1) p50", live, "ms")
                )
                # Pages of the jobs list: deep in the order (an index walk), and a text
                # search that matches one job (a scan of the state's jobs: no index holds
                # text inside commands).
                few = max(reps // 10, 3)
                _, deep = http_times(url, f"/api/jobs?state=completed&offset={size // 2}", few)
                figures.append(
                    measured(
                        f"web_jobs_offset_{size}",
                        f"GET /api/jobs, completed, offset {size // 2:,}, p50",
                        deep,
                        "ms",
                    )
                )
                # `job 999999` is a dead job's command: among completed jobs the search
                # finds nothing and reads as far as it ever does (SEARCH_SCAN jobs).
                _, search = http_times(url, "/api/jobs?state=completed&q=job%20999999", few)
                figures.append(
                    measured(
                        f"web_jobs_search_{size}",
                        "GET /api/jobs, completed, q matching none (10,000 read), p50",
                        search,
                        "ms",
                    )
                )
                # A pasted job id, far down the order: looked up first, then the scan.
                exact = f"bench-{size // 2:08d}"
                _, found = http_times(url, f"/api/jobs?q={exact}", few)
                figures.append(
                    measured(
                        f"web_jobs_exact_{size}",
                        "GET /api/jobs, q = a job id deep in the list, p50",
                        found,
                        "ms",
                    )
                )
                # The open jobs page refreshing a search: answered from memory for 5 s.
                _, live_search = http_times(url, "/jobs?q=job%20999999&partial=1", few)
                figures.append(
                    measured(
                        f"web_jobs_search_live_{size}",
                        "  its live refresh (/jobs?q=…&partial=1) p50",
                        live_search,
                        "ms",
                    )
                )
        finally:
            lab.stop(proc)
    if big < 1_000_000:
        figures.append(
            Figure(
                "web_overview_1000000",
                "GET / (overview), 8 workers, 1,000,000 jobs",
                None,
                goal="< 1 s",
                note="skipped (--quick)",
            )
        )
    return figures


# -- MongoDB --------------------------------------------------------------------------------
def with_database(uri: str, database: str) -> str:
    """The MongoDB URI with its path (the database name) replaced, options kept. Credentials
    keep authenticating where they did: against the old path's database, else admin."""
    scheme, rest = uri.split("://", 1)
    rest, _, query = rest.partition("?")
    hosts, _, old_database = rest.partition("/")
    if "@" in hosts and "authsource=" not in query.lower():
        query = "&".join(filter(None, [query, f"authSource={old_database or 'admin'}"]))
    return f"{scheme}://{hosts}/{database}" + (f"?{query}" if query else "")


def drop_mongo_database(uri: str, database: str) -> None:
    """Best effort: remove a database the benchmark created."""
    try:
        from pymongo import MongoClient

        client: Any = MongoClient(uri, serverSelectionTimeoutMS=5000)
        client.drop_database(database)
        client.close()
    except Exception as exc:  # a cleanup failure must not hide the results
        print(f"could not drop MongoDB database {database}: {type(exc).__name__}")


# -- 1. spawn ceiling -----------------------------------------------------------------------
def cpu_used() -> float:
    """CPU seconds of this process and of every descendant it has reaped so far."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime


def spawn_rate(per_thread: int) -> tuple[float, float]:
    """`/bin/sh -c true` per second from two Python threads, spawned the way the executor
    spawns (own session, stdout and stderr piped): what two workers could do at best.
    Also returns the CPU milliseconds each spawn cost, parent and child together."""
    errors: list[BaseException] = []

    def loop() -> None:
        try:
            for _ in range(per_thread):
                subprocess.run(
                    ["/bin/sh", "-c", "true"],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    start_new_session=True,
                    check=True,
                )
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(2)]
    started, cpu = time.perf_counter(), cpu_used()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"spawning failed: {errors[0]}")
    spawns = 2 * per_thread
    return spawns / (time.perf_counter() - started), (cpu_used() - cpu) * 1000 / spawns


def spawn_ceiling(lab: Lab, cfg: Settings) -> list[Figure]:
    """The spawn ceiling alone, repeated."""
    rates, cpus = zip(
        *(spawn_rate(cfg.spawn_per_thread) for _ in range(cfg.spawn_runs)), strict=True
    )
    return [
        measured("spawn_ceiling", "spawn ceiling: sh -c true, 2 threads", rates, "/s"),
        measured("spawn_cpu", "  CPU per spawn, parent and child", cpus, "ms"),
    ]


# -- 2. end-to-end throughput ---------------------------------------------------------------
# The goals, each a ratio to (or a difference from) a figure of the same run.
THROUGHPUT_RATIO = 0.55  # end to end / spawn ceiling
STEADY_RATIO = 0.6  # first job start to last job end / spawn ceiling
OWN_CPU_MS = 0.6  # CPU per job of every process, minus a bare spawn's
PICKUP_P50_MS, PICKUP_P95_MS = 10.0, 50.0


def throughput(
    lab: Lab, cfg: Settings, mongo_uri: str | None = None, tag: str = ""
) -> list[Figure]:
    """N `true` jobs through `worker start --count 2 --burst`, timed from start to exit.
    Each run is paired with a spawn-ceiling run just before it, so that the ratios (and the
    CPU left after a bare spawn's is taken off) compare figures taken under the same load."""
    n = cfg.throughput_jobs
    jobs_file = lab.root / f"throughput-{n}.jsonl"
    jobs_file.write_text('{"command": "true"}\n' * n)
    rates, ratios, steady, steady_ratios, startup, cpus, own = [], [], [], [], [], [], []
    startups: list[float] = []
    steady_own: list[float] = []
    for _ in range(cfg.runs):
        home = lab.home("throughput", mongo_uri)
        lab.run(home, "enqueue", "--file", str(jobs_file))
        ceiling, spawn_cpu = spawn_rate(cfg.spawn_per_thread)
        began, ended, cpu = burst_run(lab, home, n)
        empty = lab.home("throughput-empty", mongo_uri)
        _, _, fixed = burst_run(lab, empty, 0)
        startups.append(fixed * 1000 / n)
        steady_own.append((cpu - fixed) * 1000 / n - spawn_cpu)
        rates.append(n / (ended - began))
        ratios.append(n / (ended - began) / ceiling)
        cpus.append(cpu * 1000 / n)
        own.append(cpu * 1000 / n - spawn_cpu)
        jobs = open_store(home.url).list_jobs("completed", n)
        first = min(j.started_at or ended for j in jobs)
        steady.append(n / (max(j.finished_at or 0 for j in jobs) - first))
        steady_ratios.append(steady[-1] / ceiling)
        startup.append((first - began) * 1000)
    if mongo_uri and not tag:
        tag = MONGO_TAG["tag"]
    return [
        measured(f"throughput{tag}", f"throughput, {n} jobs, 2 workers{tag}", rates, "/s"),
        measured(
            f"throughput_ratio{tag}",
            f"throughput / spawn ceiling{tag}",
            ratios,
            "x",
            (">=", THROUGHPUT_RATIO, f">= {THROUGHPUT_RATIO}"),
            note="each run paired with a ceiling run just before",
        ),
        measured(
            f"throughput_steady{tag}",
            f"  first job start to last job end{tag}",
            steady,
            "/s",
            note="excludes the start-up of the supervisor and its workers",
        ),
        measured(
            f"throughput_steady_ratio{tag}",
            f"  first job start to last job end / spawn ceiling{tag}",
            steady_ratios,
            "x",
            (">=", STEADY_RATIO, f">= {STEADY_RATIO}"),
        ),
        measured(
            f"throughput_startup{tag}", f"  `worker start` to first job start{tag}", startup, "ms"
        ),
        measured(
            f"throughput_cpu{tag}",
            f"  CPU per job, all processes{tag}",
            cpus,
            "ms",
            note="supervisor, workers and job shells, start-up included",
        ),
        measured(
            f"throughput_own_cpu{tag}",
            f"our own CPU per job (all processes minus a bare spawn's){tag}",
            own,
            "ms",
            ("<=", OWN_CPU_MS, f"<= {OWN_CPU_MS} ms"),
            note="CPU per job minus the paired ceiling run's CPU per spawn (parent and child)"
            + ("; the database server's own CPU is not counted" if mongo_uri else ""),
        ),
        measured(
            f"throughput_fixed_cpu{tag}",
            f"  of which start-up and shutdown, spread over the jobs{tag}",
            startups,
            "ms",
            note="the same `worker start --count 2 --burst` on an empty store, per job",
        ),
        measured(
            f"throughput_job_cpu{tag}",
            f"  the rest: our own CPU per job once running{tag}",
            steady_own,
            "ms",
        ),
    ]


def burst_run(lab: Lab, home: Home, n: int) -> tuple[float, float, float]:
    """Wall-clock start and end of `worker start --count 2 --burst` (all n jobs done), and
    the CPU seconds its whole process tree used. With n = 0, on an empty store: the cost of
    starting and stopping alone."""
    began, cpu = time.time(), cpu_used()
    proc = lab.start_workers(home, 2, burst=True)
    try:
        code = proc.wait(timeout=300)
    except subprocess.TimeoutExpired:
        raise BenchError("the burst workers did not finish within 300 s") from None
    ended, cpu = time.time(), cpu_used() - cpu
    done = open_store(home.url).count_by_state().get("completed", 0) if n else 0
    if code != 0 or done != n:
        raise BenchError(f"worker start exited {code} with {done}/{n} jobs completed")
    return began, ended, cpu


# -- 3. pickup latency and idle CPU ---------------------------------------------------------
def pickup_latency(
    lab: Lab, cfg: Settings, mongo_uri: str | None = None, tag: str = ""
) -> list[Figure]:
    """One idle worker: its CPU use, then the time from the start of an enqueue to the job's
    command starting (the command writes its own start time). Never from the enqueue's
    return: the wake-up lets the worker start the job while the CLI process is still
    exiting, and a figure taken from there came out negative."""
    home = lab.home("latency", mongo_uri)
    proc = lab.start_workers(home, 1)
    try:
        pid = worker_pids(lab, home, 1)[0]
        before, t0 = cpu_seconds(pid), time.monotonic()
        time.sleep(cfg.idle_window)  # also the idle time the worker has before the samples
        cpu = 100 * (cpu_seconds(pid) - before) / (time.monotonic() - t0)
        n = cfg.latency_samples
        cli = sample_pickups(home, n, lambda c: cli_enqueue(lab, home, c))
        library = sample_pickups(home, n, lambda c: lib_enqueue(home, c))
    finally:
        lab.stop(proc)
    if mongo_uri and not tag:
        tag = MONGO_TAG["tag"]
    window = f"over {cfg.idle_window:g} s" + (" (--quick)" if cfg.quick else "")
    return [
        Figure(
            f"idle_cpu{tag}",
            f"idle worker CPU, {window}{tag}",
            cpu,
            "%",
            goal="<= 1 %",
            met=cpu <= 1.0,
        ),
        *p50_p95(
            f"pickup_library{tag}",
            f"pickup from an in-process JobManager.enqueue call{tag}",
            library,
            (PICKUP_P50_MS, PICKUP_P95_MS),
        ),
        *p50_p95(
            f"pickup_cli{tag}",
            f"  from `queuectl enqueue` starting (what a user waits for){tag}",
            cli,
            note="includes the CLI's own start-up",
        ),
    ]


def p50_p95(
    key: str,
    name: str,
    samples: list[float],
    goals: tuple[float, float] | None = None,
    note: str = "",
) -> list[Figure]:
    """A p50 row (with min-max) and a p95 row, against their goals when given."""
    p50 = measured(
        f"{key}_p50",
        f"{name}, p50",
        samples,
        "ms",
        ("<=", goals[0], f"<= {goals[0]:g} ms") if goals else None,
        note=f"{len(samples)} samples" + (f"; {note}" if note else ""),
    )
    p95 = Figure(f"{key}_p95", f"{name}, p95", percentile(samples, 0.95), "ms")
    if goals:
        p95.goal, p95.met = f"<= {goals[1]:g} ms", p95.value is not None and p95.value <= goals[1]
    return [p50, p95]


def cli_enqueue(lab: Lab, home: Home, command: str) -> str:
    """Enqueue through a fresh `queuectl` process; returns the job id."""
    return lab.run(home, "enqueue", "-q", command).stdout.strip()


def lib_enqueue(home: Home, command: str) -> str:
    """Enqueue in this process, through the same manager the CLI calls."""
    return App(home.url).jobs.enqueue([(None, {"command": command})])[0].id


def sample_pickups(home: Home, samples: int, enqueue: Callable[[str], str]) -> list[float]:
    """Milliseconds from `enqueue` being called to the command starting, for `samples` jobs
    given to an idle worker one at a time. The job cannot exist before the call, so a
    figure below zero can only mean the wall clock stepped back: that is an error."""
    store = open_store(home.url)
    stamps = home.path / "stamps"
    stamps.mkdir(exist_ok=True)
    pickups = []
    for _ in range(samples):
        # A random pause puts each enqueue at a random phase of the worker's poll cycle.
        time.sleep(random.uniform(0.2, 0.8))
        stamp = stamps / secrets.token_hex(6)
        called = time.time()
        job_id = enqueue(f"date +%s%N > {shlex.quote(str(stamp))}")
        wait_for(functools.partial(completed, store, job_id), 15, f"job {job_id} to end")
        try:
            started = int(stamp.read_text()) / 1e9
        except (OSError, ValueError) as exc:
            raise BenchError(f"job {job_id} wrote no time stamp: {exc}") from None
        if started < called:
            raise BenchError(f"job {job_id} started before it was enqueued: the clock stepped")
        pickups.append((started - called) * 1000)
    return pickups


def completed(store: Any, job_id: str) -> bool:
    """Whether the job has reached the completed state."""
    job = store.get_job(job_id)
    return job is not None and job.state == "completed"


# -- 4. CLI latency -------------------------------------------------------------------------
def cli_latency(lab: Lab, cfg: Settings) -> list[Figure]:
    """Fresh-process wall time of `enqueue` and `status`, against `import typer` on the
    same interpreter, the three interleaved so that noise hits them alike."""
    home = lab.home("cli")
    lab.run(home, "enqueue", "true")
    argvs = {
        "import typer": [sys.executable, "-c", "import typer"],
        "enqueue": [*lab.cli, "enqueue", "true"],
        "status": [*lab.cli, "status"],
    }
    times: dict[str, list[float]] = {name: [] for name in argvs}
    for _ in range(cfg.cli_reps):
        for name, argv in argvs.items():
            started = time.perf_counter()
            subprocess.run(
                argv,
                env=home.env,
                cwd=lab.root,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=True,
            )
            times[name].append((time.perf_counter() - started) * 1000)
    base = statistics.median(times["import typer"])
    bound = ("<=", 2 * base, f"<= 2 x import typer = {2 * base:.0f} ms")
    return [
        measured(
            "import_typer",
            "python -c 'import typer' (this interpreter)",
            times["import typer"],
            "ms",
        ),
        measured("cli_enqueue", "`queuectl enqueue true` p50", times["enqueue"], "ms", bound),
        measured("cli_status", "`queuectl status` p50", times["status"], "ms", bound),
    ]


# -- 5. bulk enqueue ------------------------------------------------------------------------
def bulk_enqueue(lab: Lab, cfg: Settings) -> list[Figure]:
    """`enqueue --file` of a JSON lines file into an empty store, timed as a whole process."""
    n = cfg.bulk_jobs
    jobs_file = lab.root / f"bulk-{n}.jsonl"
    with open(jobs_file, "w") as out:
        out.writelines(f'{{"command": "echo job {i}"}}\n' for i in range(n))
    rates = []
    for _ in range(cfg.bulk_runs):
        home = lab.home("bulk")
        started = time.perf_counter()
        lab.run(home, "enqueue", "--file", str(jobs_file))
        rates.append(n / (time.perf_counter() - started))
        pending = SqliteStore(home.url).count_by_state().get("pending", 0)
        if pending != n:
            raise BenchError(f"bulk enqueue stored {pending} of {n} jobs")
    note = "--quick: fewer jobs" if cfg.quick else ""
    return [
        measured(
            "bulk_enqueue",
            f"bulk `enqueue --file`, {n:,} jobs",
            rates,
            "/s",
            (">=", 30_000, ">= 30,000/s"),
            note,
        )
    ]


# -- 6. scale -------------------------------------------------------------------------------
def scale(lab: Lab, cfg: Settings) -> list[Figure]:
    """One SQLite store grown through each size: claim latency in-process, and the wall time
    of `status`, `stats` and `list --state pending` as fresh processes."""
    home = lab.home("scale")
    SqliteStore(home.url).unset_config("-")  # a write: creates the file and the schema
    figures: list[Figure] = []
    claims: dict[int, list[float]] = {}
    built = 0
    for size in cfg.scale_sizes:
        started = time.perf_counter()
        insert_history(home.url, built, size - built)
        built = size
        print(f"   built {size:,} jobs (+{time.perf_counter() - started:.1f} s)", flush=True)
        claims[size] = claim_times(home.url, cfg.claims)
        figures.append(measured(f"claim_{size}", f"claim, {size:,} jobs", claims[size], "ms"))
        figures += store_queries(home.url, cfg.scale_reps, size)
        for args in (["status"], ["stats"], ["list", "--state", "pending"]):
            figures.append(cli_at_scale(lab, home, cfg, args, size))
    small, big = min(claims), max(claims)
    # Medians of matching chunks of claims, so that one slow claim moves one ratio only.
    ratios = [
        statistics.median(b) / statistics.median(s)
        for s, b in zip(chunks(claims[small], 5), chunks(claims[big], 5), strict=True)
    ]
    fig = measured(
        "claim_ratio",
        f"claim {label(big)} / claim {label(small)}",
        ratios,
        "x",
        ("<=", 2.0, "<= 2 (1M / 10k)"),
    )
    if big < 1_000_000:
        fig.met, fig.note = None, "--quick: the 1M step was skipped; not the goal's ratio"
        figures.append(
            Figure(
                "status_1000000",
                "`status`, 1,000,000 jobs",
                None,
                goal="<= 300 ms",
                note="skipped (--quick)",
            )
        )
    figures.append(fig)
    return figures


def chunks(values: list[float], count: int) -> list[list[float]]:
    """`values` cut into `count` consecutive pieces of (nearly) equal length."""
    size = max(1, len(values) // count)
    return [values[i : i + size] for i in range(0, size * count, size)]


def label(size: int) -> str:
    """10000 -> 10k, 1000000 -> 1M."""
    return f"{size // 1_000_000}M" if size >= 1_000_000 else f"{size // 1000}k"


SCALE_GOALS = {
    ("status", 1_000_000): ("<=", 300.0, "<= 300 ms"),
    ("stats", 100_000): ("<=", 500.0, "well under 1 s: <= 500 ms"),
}


def cli_at_scale(lab: Lab, home: Home, cfg: Settings, args: list[str], size: int) -> Figure:
    """Median wall time of a read command, after one untimed run that warms the cache."""
    times = []
    for rep in range(cfg.scale_reps + 1):
        started = time.perf_counter()
        lab.run(home, *args)
        if rep:
            times.append((time.perf_counter() - started) * 1000)
    goal = SCALE_GOALS.get((args[0], size))
    return measured(f"{args[0]}_{size}", f"`{' '.join(args)}`, {size:,} jobs", times, "ms", goal)


def history_rows(start: int, count: int, now: float) -> Iterator[tuple[Any, ...]]:
    """A store with a past: 90 % completed over the last two hours, 8 % pending and ready,
    1 % failed waiting for a retry, 1 % dead; rows in JOB_COLUMNS order."""
    base_seq = time.time_ns()
    for i in range(start, start + count):
        kind = i % 100
        duration = (i * 7919 % 2000) / 1000
        finished = now - (i * 104729 % 7200)
        row: dict[str, Any] = dict.fromkeys(JOB_COLUMNS)
        row.update(
            id=f"bench-{i:08d}",
            command=f"echo job {i}",
            attempts=1,
            max_retries=3,
            priority=5 if i % 10 == 0 else 0,
            run_at=finished - duration - 1,
            created_at=finished - duration - 1,
            updated_at=finished,
            seq=base_seq + i,
            queue="default",
            waiting=0,
            cancel_requested=0,
        )
        if kind < 90:
            row.update(
                state="completed",
                started_at=finished - duration,
                finished_at=finished,
                exit_code=0,
                stdout="",
                stderr="",
                duration=duration,
            )
        elif kind < 98:
            row.update(state="pending", attempts=0, updated_at=row["created_at"])
        elif kind < 99:
            row.update(
                state="failed",
                attempts=2,
                run_at=now + 3600,
                exit_code=1,
                last_error="exit status 1",
                finished_at=finished,
                duration=duration,
            )
        else:
            row.update(
                state="dead",
                attempts=4,
                exit_code=1,
                last_error="exit status 1",
                finished_at=finished,
                duration=duration,
            )
        yield tuple(row[c] for c in JOB_COLUMNS)


def insert_history(path: str, start: int, count: int, batch: int = 100_000) -> None:
    """Direct SQL inserts in big transactions, the secondary indexes dropped meanwhile and
    rebuilt from their own definitions: a million-job store in seconds, not minutes."""
    sql = (
        f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in JOB_COLUMNS)})"
    )
    now = time.time()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -400000")
    conn.execute("PRAGMA synchronous = OFF")  # a throw-away store: no need to survive a crash
    try:
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'jobs' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for offset in range(start, start + count, batch):
            conn.execute("BEGIN")
            conn.executemany(sql, history_rows(offset, min(batch, start + count - offset), now))
            conn.execute("COMMIT")
        for _, create in indexes:
            conn.execute(create)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def store_queries(path: str, reps: int, size: int) -> list[Figure]:
    """In-process time of the store calls behind `status`, `stats` and `list`: what the
    commands cost apart from starting a Python process."""
    store = SqliteStore(path)
    calls = {
        "count_by_state": store.count_by_state,
        # The raw aggregates and the arithmetic JobManager.stats adds to them.
        "job_stats": App(store=store).jobs.stats,
        "list_jobs": lambda: store.list_jobs("pending", 50),
    }
    figures = []
    for name, call in calls.items():
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            call()
            times.append((time.perf_counter() - started) * 1000)
        figures.append(
            measured(f"{name}_{size}", f"  in-process {name}(), {size:,} jobs", times, "ms")
        )
    store.close()
    return figures


def claim_times(path: str, claims: int, queues: Sequence[str] = ()) -> list[float]:
    """Milliseconds per SqliteStore.claim, on a fresh connection after a short warm-up."""
    store = SqliteStore(path)
    times = []
    for n in range(claims + WARM_UP_CLAIMS):
        started = time.perf_counter()
        job = store.claim("bench-worker", time.time(), secrets.token_hex(8), queues)
        elapsed = (time.perf_counter() - started) * 1000
        if job is None:
            raise BenchError("no ready job left to claim")
        if n >= WARM_UP_CLAIMS:
            times.append(elapsed)
    store.close()
    return times


# -- 6a. hot reads at ten million jobs (opt-in: `--only hot`) ----------------------------------
# A long-lived store, written by SQLite itself (a recursive counter, one statement): ten
# million rows in minutes instead of an hour. As in a store that has run for a month: the
# oldest 92 % are history (90 of each 92 completed, 1 failed waiting for its retry, 1 dead),
# finished in row order, the newest RECENT of them within the last two hours and the others
# over the 30 days before; the newest 8 % are pending, enqueued 10 ms apart, every tenth
# with a higher priority, all ready. Both sizes have the same recent load (what `stats`
# throughput counts) and differ in history only.
RECENT = 10_000
HISTORY_SQL = """
WITH RECURSIVE k(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i < :count - 1),
r AS (SELECT i, CASE WHEN i >= :history THEN 'pending' WHEN i % 92 < 90 THEN 'completed'
            WHEN i % 92 = 90 THEN 'failed' ELSE 'dead' END AS state,
        (i * 7919 % 2000) / 1000.0 AS d,
        :now - CASE WHEN :history - 1 - i < :recent THEN (:history - 1 - i) * 7200.0 / :recent
            ELSE 7200 + (:history - 1 - i - :recent) * 2592000.0 / :older END AS f,
        :now - (:count - i) * 0.01 AS enqueued
    FROM k)
INSERT INTO jobs (id, command, state, attempts, max_retries, priority, run_at, created_at,
    updated_at, started_at, finished_at, exit_code, last_error, stdout, stderr, duration, seq,
    queue, waiting, cancel_requested)
SELECT printf('bench-%08d', i), 'echo job ' || i, state,
    CASE state WHEN 'completed' THEN 1 WHEN 'pending' THEN 0 WHEN 'failed' THEN 2 ELSE 4 END,
    3, CASE WHEN i % 10 = 0 THEN 5 ELSE 0 END,
    CASE state WHEN 'pending' THEN enqueued WHEN 'failed' THEN :now + 3600 ELSE f - d - 1 END,
    CASE state WHEN 'pending' THEN enqueued ELSE f - d - 1 END,
    CASE state WHEN 'pending' THEN enqueued ELSE f END,
    CASE state WHEN 'completed' THEN f - d END,
    CASE WHEN state != 'pending' THEN f END,
    CASE state WHEN 'completed' THEN 0 WHEN 'pending' THEN NULL ELSE 1 END,
    CASE WHEN state IN ('failed', 'dead') THEN 'exit status 1' END,
    CASE state WHEN 'completed' THEN '' END, CASE state WHEN 'completed' THEN '' END,
    CASE WHEN state != 'pending' THEN d END,
    i, 'default', 0, 0
FROM r
"""


def insert_history_sql(path: str, count: int) -> float:
    """A new store of `count` jobs of the HISTORY_SQL kind, written as a store of the
    release before would be upgraded: the rows in one transaction (no journal: a
    throw-away store), the indexes built after them, then the counters' upgrade step, which
    counts every job once while holding the write lock. Returns that step's seconds."""
    store = SqliteStore(path)
    store.unset_config("-")  # a write: creates the file and the schema
    store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA cache_size = -1000000")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    try:
        conn.execute("BEGIN IMMEDIATE")
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'jobs'"
        ).fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'jobs' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        history = count - count * 8 // 100
        params = {
            "count": count,
            "history": history,
            "recent": RECENT,
            "older": max(1, history - RECENT),
            "now": time.time(),
        }
        conn.execute(HISTORY_SQL, params)
        for _, create in indexes:
            conn.execute(create)
        conn.execute("COMMIT")
        started = time.perf_counter()
        add_counters(conn)
        took = time.perf_counter() - started
        conn.execute("PRAGMA journal_mode = WAL")
    finally:
        conn.close()
    return took


def in_store(call: Callable[[], Any], reps: int) -> list[float]:
    """Milliseconds per call, after one untimed call."""
    call()
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def read_calls(app: App) -> dict[str, Callable[[], Any]]:
    """The store calls of `status` and `stats` (what they do apart from starting Python)."""
    return {
        "status": lambda: (app.jobs.counts(), app.workers.active()),
        "stats": app.jobs.stats,
    }


def hot(lab: Lab, cfg: Settings) -> list[Figure]:
    """SPEC §8, no full scans: `status` and `stats` as fresh processes and their in-store
    part, and claims, on a SQLite store of 10,000 jobs and one of 10,000,000 (their CLI
    runs interleaved, so a change of load moves both); then the same reads on MongoDB over
    the wire lane at small sizes (a stand-in, not MongoDB)."""
    sizes = (10_000, 100_000) if cfg.quick else cfg.hot_sizes
    small, big = sizes[0], sizes[-1]
    reps = max(cfg.scale_reps, 15)
    figures: list[Figure] = []
    homes = {}
    for size in sizes:
        homes[size] = lab.home(f"hot-{label(size)}")
        started = time.perf_counter()
        counting = insert_history_sql(homes[size].url, size)
        took = time.perf_counter() - started
        print(f"   built {size:,} jobs ({took:.1f} s)", flush=True)
        figures.append(
            Figure(f"hot_build_{size}", f"  building {label(size)} jobs", took * 1000, "ms")
        )
        figures.append(
            Figure(
                f"hot_upgrade_{size}",
                f"  upgrade: counting {label(size)} jobs into the counters (write lock held)",
                counting * 1000,
                "ms",
            )
        )
    inside: dict[tuple[str, int], list[float]] = {}
    for size in sizes:
        store = SqliteStore(homes[size].url)
        for name, call in read_calls(App(store=store)).items():
            inside[(name, size)] = in_store(call, reps * 3)
        store.close()
    wall: dict[tuple[str, int], list[float]] = {key: [] for key in inside}
    for rep in range(reps + 1):
        # Each size in turn, first one then the other, so that neither always runs first.
        for size in sizes if rep % 2 else sizes[::-1]:
            for name in ("status", "stats"):
                started = time.perf_counter()
                lab.run(homes[size], name)
                if rep:  # the first round only warms the cache
                    wall[(name, size)].append((time.perf_counter() - started) * 1000)
    claims = {size: claim_times(homes[size].url, cfg.claims) for size in sizes}
    for size in sizes:
        for name in ("status", "stats"):
            goal = ("<=", 5.0, "<= 5 ms") if size == big else None
            figures.append(
                measured(
                    f"hot_{name}_store_{size}",
                    f"  in-store part of `{name}`, {label(size)} jobs",
                    inside[(name, size)],
                    "ms",
                    goal,
                )
            )
            figures.append(
                measured(
                    f"hot_{name}_{size}", f"`{name}`, {label(size)} jobs", wall[(name, size)], "ms"
                )
            )
        figures.append(
            measured(f"hot_claim_{size}", f"claim, {label(size)} jobs", claims[size], "ms")
        )
    for name in ("status", "stats"):
        # Each run at 10M against the run at 10k beside it: a change of load moves both.
        ratios = [b / s for s, b in zip(wall[(name, small)], wall[(name, big)], strict=True)]
        figures.append(
            measured(
                f"hot_{name}_ratio",
                f"`{name}` {label(big)} / {label(small)}",
                ratios,
                "x",
                ("<=", 1.3, f"<= 1.3 ({label(big)} / {label(small)})"),
            )
        )
    ratios = [
        statistics.median(b) / statistics.median(s)
        for s, b in zip(chunks(claims[small], 5), chunks(claims[big], 5), strict=True)
    ]
    figures.append(
        measured(
            "hot_claim_ratio",
            f"claim {label(big)} / claim {label(small)}",
            ratios,
            "x",
            ("<=", 2.0, f"<= 2 ({label(big)} / {label(small)})"),
        )
    )
    if big < 10_000_000:
        for fig in figures:
            if fig.goal:
                fig.met, fig.note = None, f"at {label(big)}, not the goal's 10M"
    return figures + hot_mongo(lab, cfg)


def hot_mongo(lab: Lab, cfg: Settings) -> list[Figure]:
    """`status` and `stats`' store part on MongoDB over the wire lane (nx-27017, a wire-
    protocol server backed by SQLite): a stand-in that says nothing of MongoDB's speed."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from wirelane import WireLaneUnavailable, WireServer
    except ImportError as exc:  # the test extra is not installed
        return [Figure("hot_mongo", "MongoDB stand-in", None, note=f"skipped: {exc}")]
    server = WireServer(Path(lab.root) / "wirelane")
    try:
        server.start()
    except WireLaneUnavailable as exc:
        return [Figure("hot_mongo", "MongoDB stand-in", None, note=f"skipped: {exc}")]
    figures: list[Figure] = []
    try:
        url = server.url("hot")
        store = open_store(url)
        app = App(store=store)
        built = 0
        sizes = (1_000, 3_000) if cfg.quick else cfg.hot_mongo_sizes
        for size in sizes:
            store.get_job("-")  # creates the indexes
            docs = store.jobs  # type: ignore[attr-defined]
            rows = history_rows(built, size - built, time.time())
            batch: list[dict[str, Any]] = []
            for row in rows:
                doc = dict(zip(JOB_COLUMNS, row, strict=True))
                doc["_id"] = doc.pop("id")
                batch.append(doc)
                if len(batch) == 10_000:
                    docs.insert_many(batch)
                    batch = []
            if batch:
                docs.insert_many(batch)
            built = size
            for name, call in read_calls(app).items():
                figures.append(
                    measured(
                        f"hot_mongo_{name}_{size}",
                        f"  wire lane (stand-in): in-store `{name}`, {label(size)} jobs",
                        in_store(call, 3),
                        "ms",
                    )
                )
        store.close()
    finally:
        server.stop()
    if figures:
        figures[-1].note = (
            "nx-27017 is a wire-protocol stand-in backed by SQLite that scans where MongoDB "
            "reads an index: its times grow with the store and say nothing of MongoDB's"
        )
    return figures


# -- 6b. claims beside blocked jobs -----------------------------------------------------------
BLOCKED_JOBS = 100_000


def blocked_claims(lab: Lab, cfg: Settings) -> list[Figure]:
    """Claim time with 100,000 jobs blocked by a dependency in the store against none: the
    blocked jobs come first in claim order (higher priority, earlier run_at), so a claim that
    walked them would show it. Every queue, then a worker of two queues."""
    figures: list[Figure] = []
    times: dict[tuple[bool, tuple[str, ...]], list[float]] = {}
    for blocked in (False, True):
        for queues in ((), ("default", "other")):
            home = lab.home("blocked" if blocked else "unblocked")
            SqliteStore(home.url).unset_config("-")  # a write: creates the file and the schema
            fill_for_claims(home.url, cfg.claims + WARM_UP_CLAIMS, BLOCKED_JOBS if blocked else 0)
            times[blocked, queues] = claim_times(home.url, cfg.claims, queues)
            which = "2 queues" if queues else "every queue"
            name = (
                f"claim ({which}), {BLOCKED_JOBS:,} blocked jobs"
                if blocked
                else (f"claim ({which}), no blocked job")
            )
            key = f"claim_{'blocked' if blocked else 'free'}_{len(queues)}q"
            figures.append(measured(key, name, times[blocked, queues], "ms"))
    for queues in ((), ("default", "other")):
        ratios = [
            statistics.median(b) / statistics.median(f)
            for f, b in zip(
                chunks(times[False, queues], 5), chunks(times[True, queues], 5), strict=True
            )
        ]
        which = "2 queues" if queues else "every queue"
        figures.append(
            measured(
                f"claim_blocked_ratio_{len(queues)}q",
                f"claim with / without {BLOCKED_JOBS // 1000}k blocked ({which})",
                ratios,
                "x",
                ("<=", 2.0, "<= 2"),
            )
        )
    return figures


def fill_for_claims(path: str, ready: int, blocked: int) -> None:
    """`ready` claimable jobs, and `blocked` ones waiting on a running job (with their
    dependency rows), written directly in one transaction."""
    now = time.time()
    base = time.time_ns()

    def row(i: int, **fields: Any) -> tuple[Any, ...]:
        values: dict[str, Any] = dict.fromkeys(JOB_COLUMNS)
        values.update(
            id=f"job-{i:08d}",
            command="true",
            state="pending",
            attempts=0,
            max_retries=3,
            priority=0,
            run_at=now - 10,
            created_at=now - 10,
            updated_at=now - 10,
            seq=base + i,
            queue="default",
            waiting=0,
            cancel_requested=0,
        )
        values.update(fields)
        return tuple(values[c] for c in JOB_COLUMNS)

    rows = [row(0, id="root", state="processing", lease_token="t", locked_by="elsewhere")]
    rows += [row(i) for i in range(1, ready + 1)]
    rows += [
        row(i, priority=10, run_at=now - 100, waiting=1, after='["root"]')
        for i in range(ready + 1, ready + 1 + blocked)
    ]
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.executemany(
            f"INSERT INTO jobs ({', '.join(JOB_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in JOB_COLUMNS)})",
            rows,
        )
        conn.executemany(
            "INSERT INTO job_deps (dep_id, job_id) VALUES ('root', ?)",
            [(f"job-{i:08d}",) for i in range(ready + 1, ready + 1 + blocked)],
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# -- 7. memory ------------------------------------------------------------------------------
def memory(lab: Lab, cfg: Settings) -> list[Figure]:
    """VmRSS of one idle worker process, and of `worker start --count 8` as a whole."""
    one, eight, supervisor, eight_pss = [], [], [], []
    for _ in range(cfg.memory_runs):
        for count in (1, 8):
            home = lab.home(f"memory-{count}")
            proc = lab.start_workers(home, count)
            try:
                pids = worker_pids(lab, home, count)
                time.sleep(2.0)  # let the workers settle into their idle loop
                if count == 1:
                    one.append(rss_mib(pids[0]))
                    continue
                group = [proc.pid, *descendants(proc.pid)]
                eight.append(sum(map(rss_mib, group)))
                eight_pss.append(sum(map(pss_mib, group)))
                supervisor.append(rss_mib(proc.pid))
            finally:
                lab.stop(proc)
    return [
        measured(
            "rss_worker", "RSS of one idle worker process", one, "MiB", ("<=", 20.0, "<= 20 MiB")
        ),
        measured(
            "rss_eight",
            "RSS of `worker start --count 8`, all 9 processes",
            eight,
            "MiB",
            ("<=", 120.0, "<= 120 MB"),
        ),
        measured(
            "rss_supervisor", "  of which the supervisor (the CLI process)", supervisor, "MiB"
        ),
        measured(
            "pss_eight",
            "  PSS of the same 9 processes",
            eight_pss,
            "MiB",
            note="PSS divides shared pages (libpython, .so files) among their users",
        ),
    ]


# -- 9. purge under load ---------------------------------------------------------------------
PURGE_JOBS = 1_000_000


def purge(lab: Lab, cfg: Settings) -> list[Figure]:
    """`queuectl purge` of a million completed jobs (100,000 with --quick) while two workers
    run `true` jobs: their throughput during the purge against before and after it, and the
    longest claim wait while it runs (scripts/benchsteps/purge.py says how)."""
    from benchsteps.purge import WINDOW, purge_under_load

    size = PURGE_JOBS // 10 if cfg.quick else PURGE_JOBS
    home = lab.home("purge")
    SqliteStore(home.url).unset_config("-")  # a write: creates the file and the schema
    run = purge_under_load(
        home.url,
        size,
        lambda: lab.start_workers(home, 2, extra=["--queue", "work"]),
        lambda: lab.run(home, "purge", timeout=3600),
        lambda: worker_pids(lab, home, 2),
    )
    if run.ran_dry:
        raise BenchError("the workers ran out of jobs during the purge measurement")
    base = (run.rate_before + run.rate_after) / 2
    drop = 100 * (1 - run.rate_during / base) if base else math.nan
    longest = max(run.claim_waits) if run.claim_waits else math.nan
    tag = f"{size:,} completed jobs"
    figures = [
        measured(
            "purge_rate",
            f"`purge` of {tag}, 2 workers running",
            [run.purged / run.purge_seconds],
            "/s",
            note=f"{run.output} in {run.purge_seconds:.1f} s",
        ),
        measured(
            "purge_workers_before",
            "  workers' throughput before / after the purge",
            [run.rate_before, run.rate_after],
            "/s",
        ),
        measured(
            "purge_workers_during",
            "  workers' throughput during the purge",
            [run.rate_during],
            "/s",
        ),
        measured(
            "purge_throughput_drop",
            f"  throughput drop during the purge of {tag}",
            [drop],
            "%",
            ("<=", 20.0, "< 20 %"),
        ),
        measured(
            "purge_claim_wait_max",
            f"  longest claim wait during the purge of {tag}",
            [longest],
            "ms",
            ("<=", 100.0, "<= 100 ms"),
            note=f"{len(run.claim_waits)} probe claims, one every 20 ms; "
            f"p99 {percentile(run.claim_waits, 0.99):.1f} ms",
        ),
        measured(
            "purge_claim_wait_p99",
            "  claim wait p99 during the purge",
            [percentile(run.claim_waits, 0.99)],
            "ms",
        ),
        measured(
            "purge_claim_wait_quiet_p99",
            "  claim wait p99 before the purge",
            [percentile(run.quiet_waits, 0.99)],
            "ms",
        ),
        measured(
            "purge_claim_wait_quiet",
            "  longest claim wait before the purge",
            [max(run.quiet_waits)],
            "ms",
            note=f"{len(run.quiet_waits)} probe claims over {WINDOW:g} s; over 100 ms: "
            f"{over(run.quiet_waits, 100)} before, {over(run.claim_waits, 100)} during the purge",
        ),
        measured(
            "store_mib_per_million_completed",
            "  SQLite file size per million completed jobs",
            [run.mib_per_million],
            "MiB",
            note="jobs with empty output, written in bulk; every byte of output adds to it",
        ),
    ]
    if cfg.quick:
        for fig in figures:
            if fig.goal:
                fig.met, fig.note = None, f"--quick: {tag}, not the goal's million"
    return figures


def over(waits: list[float], bound: float) -> str:
    """How many of `waits` exceed `bound`, and their share: `3 (0.04 %)`."""
    n = sum(1 for w in waits if w > bound)
    return f"{n} ({100 * n / len(waits):.2f} %)" if waits else "-"


# -- MongoDB --------------------------------------------------------------------------------
def mongodb(lab: Lab, cfg: Settings) -> list[Figure]:
    """Throughput, pickup latency and claims at scale on MongoDB, when a server is given (or
    the wire lane's stand-in, with --wire); the `idle` step measures idle workers there."""
    uri = os.environ.get(MONGO_ENV)
    if not uri:
        return [
            Figure(
                "mongodb",
                "MongoDB throughput, latency, claims, idle load",
                None,
                note=f"skipped: {MONGO_ENV} is not set (or use --wire)",
            )
        ]
    return (
        throughput(lab, cfg, mongo_uri=uri)
        + pickup_latency(lab, cfg, mongo_uri=uri)
        + mongo_claims(lab, cfg, uri)
    )


def mongo_claims(lab: Lab, cfg: Settings, uri: str) -> list[Figure]:
    """MongoStore.claim timed in-process at each size: the store grown by insert_many of
    the same mix as step 6 (90 % completed, 8 % pending, 1 % failed, 1 % dead)."""
    tag = MONGO_TAG["tag"]
    figures, medians = [], {}
    for size in cfg.mongo_claim_sizes:
        home = lab.home(f"mongo-claims-{size}", uri)
        store: Any = open_store(home.url)
        now = time.time()
        docs = []
        for row in history_rows(0, size, now):
            doc = dict(zip(JOB_COLUMNS, row, strict=True))
            doc["_id"] = doc.pop("id")
            doc["after"] = []  # the store's own documents hold a list
            docs.append(doc)
            if len(docs) == 10_000:
                store.jobs.insert_many(docs, ordered=False)
                docs = []
        if docs:
            store.jobs.insert_many(docs, ordered=False)
        times = []
        # Fewer than step 6: a claim on a stand-in server may take a good part of a second.
        warm_up, claims = 10, min(cfg.claims, 40)
        for n in range(claims + warm_up):
            started = time.perf_counter()
            job = store.claim("bench-worker", time.time(), secrets.token_hex(8))
            elapsed = (time.perf_counter() - started) * 1000
            if job is None:
                raise BenchError("no ready job left to claim")
            if n >= warm_up:
                times.append(elapsed)
        store.close()
        medians[size] = times
        figures.append(
            measured(f"mongo_claim_{size}{tag}", f"claim, {label(size)} jobs{tag}", times, "ms")
        )
    sizes = sorted(medians)
    if len(sizes) > 1:
        low, high = sizes[0], sizes[-1]
        ratios = [
            statistics.median(b) / statistics.median(a)
            for a, b in zip(chunks(medians[low], 5), chunks(medians[high], 5), strict=True)
        ]
        figures.append(
            measured(
                f"mongo_claim_ratio{tag}",
                f"claim {label(high)} / claim {label(low)}{tag}",
                ratios,
                "x",
                ("<=", 2.0, f"<= 2 ({label(high)} / {label(low)})"),
            )
        )
    return figures


# -- 9. the store load of idle workers --------------------------------------------------------
# Loaded by every Python process of the idle step's home (PYTHONPATH): counts the store calls
# of the process (each public method of SqliteStore and MongoStore) and, on MongoDB, the
# commands its client sends and the driver's own monitoring checks, and writes the counts
# with the time to COUNT_DIR/<pid>.json twice a second.
COUNTING_SITECUSTOMIZE = """
import collections, json, os, threading, time

_dir = os.environ.get("QUEUECTL_BENCH_COUNT")
if _dir:
    _counts = collections.Counter()
    _lock = threading.Lock()

    def _count(key):
        with _lock:
            _counts[key] += 1

    def _wrap(cls):
        for name in [n for n in vars(cls) if not n.startswith("_") and n != "close"]:
            method = vars(cls)[name]
            if not callable(method):
                continue

            def counted(self, *args, _name=name, _method=method, **kwargs):
                _count("store." + _name)
                return _method(self, *args, **kwargs)

            setattr(cls, name, counted)

    from queuectl.store import mongo, sqlite

    _wrap(sqlite.SqliteStore)
    _wrap(mongo.MongoStore)
    try:
        from pymongo import monitoring

        class _Commands(monitoring.CommandListener):
            def started(self, event):
                _count("command." + event.command_name)

            def succeeded(self, event):
                pass

            def failed(self, event):
                pass

        class _Checks(monitoring.ServerHeartbeatListener):
            def started(self, event):
                _count("monitor.check")

            def succeeded(self, event):
                pass

            def failed(self, event):
                pass

        monitoring.register(_Commands())
        monitoring.register(_Checks())
    except ImportError:
        pass

    def _dump():
        path = os.path.join(_dir, f"{os.getpid()}.json")
        while True:
            with _lock:
                doc = {"time": time.monotonic(), "counts": dict(_counts)}
            with open(path + ".tmp", "w") as out:
                json.dump(doc, out)
            os.replace(path + ".tmp", path)
            time.sleep(0.5)

    threading.Thread(target=_dump, daemon=True).start()
"""
IDLE_GOAL_WORKERS = 1000
IDLE_GOAL_OPS = 1100.0


def read_counts(count_dir: Path, pids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The last counts each of those processes wrote."""
    found = {}
    for pid in pids:
        try:
            found[pid] = json.loads((count_dir / f"{pid}.json").read_text())
        except (OSError, ValueError) as exc:
            raise BenchError(f"no store-call counts from worker pid {pid}: {exc}") from None
    return found


def idle_rates(
    before: dict[int, dict[str, Any]], after: dict[int, dict[str, Any]]
) -> dict[str, list[float]]:
    """Per worker: its store calls, client commands and driver checks per second between two
    readings of its counts."""
    rates: dict[str, list[float]] = {"store": [], "command": [], "monitor": []}
    for pid, end in after.items():
        start = before[pid]
        seconds = end["time"] - start["time"]
        for kind in rates:
            count = sum(
                n - start["counts"].get(key, 0)
                for key, n in end["counts"].items()
                if key.startswith(kind + ".")
            )
            rates[kind].append(count / seconds)
    return rates


def idle_load(lab: Lab, cfg: Settings, mongo_uri: str | None = None) -> list[Figure]:
    """N idle worker processes with the default settings (`worker start --count N`): every
    store call of each is counted over a window, and on MongoDB every command its client
    sends; the projection to 1,000 workers is held against SPEC §8's ~1,100 operations/s."""
    home = lab.home("idle-load", mongo_uri)
    site = lab.root / "counting-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(COUNTING_SITECUSTOMIZE)
    count_dir = home.path / "counts"
    count_dir.mkdir()
    home.env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(site), str(REPO / "src"), home.env.get("PYTHONPATH", "")])
    )
    home.env["QUEUECTL_BENCH_COUNT"] = str(count_dir)
    n = cfg.idle_workers
    proc = lab.start_workers(home, n)
    try:
        pids = worker_pids(lab, home, n, timeout=60)
        time.sleep(cfg.idle_settle)
        before = read_counts(count_dir, pids)
        time.sleep(cfg.idle_load_window)
        after = read_counts(count_dir, pids)
    finally:
        lab.stop(proc)
    rates = idle_rates(before, after)
    tag = MONGO_TAG["tag"] if mongo_uri else ""
    window = f"{n} workers over {cfg.idle_load_window:g} s" + (" (--quick)" if cfg.quick else "")
    # On MongoDB the store's load is what the server receives: the client's commands. On
    # SQLite, the store calls (each one statement or one short transaction).
    # On MongoDB the driver's own checks of the server count too (one client per process).
    # The driver's own checks of the server are shown apart: they are pymongo's, one client
    # per process, whatever queuectl does (the URL's heartbeatFrequencyMS sets their pace).
    load = rates["command"] if mongo_uri else rates["store"]
    projected = [IDLE_GOAL_WORKERS * rate for rate in load]
    figures = [
        measured(
            f"idle_store_calls{tag}",
            f"store calls per idle worker per second, {window}{tag}",
            rates["store"],
            "",
            note="poll_interval 1 s, heartbeat_interval 30 s, stale_after 600 s (defaults)",
        )
    ]
    if mongo_uri:
        figures += [
            measured(
                f"idle_commands{tag}",
                f"  {MONGO_TAG['what']} commands per idle worker per second{tag}",
                rates["command"],
                "",
            ),
            measured(
                f"idle_monitor{tag}",
                f"  the driver's server checks per worker process per second{tag}",
                rates["monitor"],
                "",
                note="pymongo's own monitoring (hello), apart from queuectl's commands",
            ),
        ]
    figures.append(
        measured(
            f"idle_projected{tag}",
            f"store operations of {IDLE_GOAL_WORKERS:,} idle workers, projected{tag}",
            projected,
            "/s",
            ("<=", IDLE_GOAL_OPS, f"<= ~{IDLE_GOAL_OPS:,.0f}/s"),
            note="per-worker rate x 1,000"
            + (" (queuectl's commands; the driver's checks are above)" if mongo_uri else "")
            + "; the reaper's stale checks begin only after stale_after in sight: the "
            "simulated hour below counts the whole cycle",
        )
    )
    return figures


SIMULATED_HOUR = 3600.0


def idle_simulated(lab: Lab) -> list[Figure]:
    """One idle worker in-process over an hour of simulated time (tests/idlesim.py: the clock
    moves by each wait), every store call counted: the whole cycle, the reaper's stale
    checks included, at poll_interval 1 s (the default) and 5 s."""
    sys.path.insert(0, str(REPO / "tests"))
    from idlesim import idle_calls

    figures = []
    for poll in (1, 5):
        store = SqliteStore(str(lab.root / f"idle-simulated-{poll}.db"))
        config = {} if poll == 1 else {"poll_interval": str(poll)}
        calls = idle_calls(store, SIMULATED_HOUR, config)
        store.close()
        rate = sum(calls.values()) / SIMULATED_HOUR
        detail = ", ".join(f"{name} {n}" for name, n in calls.most_common())
        figures.append(
            Figure(
                f"idle_simulated_{poll}s",
                f"  the same, 1 h simulated in-process, poll_interval {poll} s",
                rate,
                "",
                note=f"store calls in the hour: {detail}",
            )
        )
        if poll == 1:
            projected = IDLE_GOAL_WORKERS * rate
            figures.append(
                Figure(
                    "idle_simulated_projected",
                    f"  store operations of {IDLE_GOAL_WORKERS:,} idle workers, whole cycle",
                    projected,
                    "/s",
                    goal=f"<= ~{IDLE_GOAL_OPS:,.0f}/s",
                    met=projected <= IDLE_GOAL_OPS,
                )
            )
    return figures


def idle_workers(lab: Lab, cfg: Settings) -> list[Figure]:
    """The idle load on the SQLite store, in real worker processes and over a simulated
    hour; and on MongoDB in real worker processes when a server is given (or with --wire)."""
    figures = idle_load(lab, cfg) + idle_simulated(lab)
    uri = os.environ.get(MONGO_ENV)
    return figures + (idle_load(lab, cfg, mongo_uri=uri) if uri else [])


WIRE_TAG = " [wire lane: nx-27017, a stand-in]"


def wire_lane(lab: Lab, cfg: Settings) -> list[Figure]:
    """Throughput and pickup latency over the MongoDB wire protocol, against nx-27017 (the
    test suite's wire lane, tests/wirelane.py) on loopback. A stand-in: a MongoDB
    wire-protocol server written in Python over SQLite, on the same two cores, so these are
    figures of the store's MongoDB code path, not of MongoDB."""
    sys.path.insert(0, str(REPO / "tests"))
    from wirelane import WireLaneUnavailable, WireServer

    root = lab.root / "wirelane"
    root.mkdir()
    server = WireServer(root)
    try:
        server.start()
    except WireLaneUnavailable as exc:
        return [Figure("wire", f"wire lane{WIRE_TAG}", None, note=f"skipped: {exc}")]
    uri = server.url()
    try:
        return throughput(lab, cfg, mongo_uri=uri, tag=WIRE_TAG) + pickup_latency(
            lab, cfg, mongo_uri=uri, tag=WIRE_TAG
        )
    finally:
        for entry in [e for e in lab.mongo_databases if e[0] == uri]:
            drop_mongo_database(*entry)
            lab.mongo_databases.remove(entry)
        server.stop()


STEPS: dict[str, Callable[[Lab, Settings], list[Figure]]] = {
    "spawn": spawn_ceiling,
    "throughput": throughput,
    "latency": pickup_latency,
    "cli": cli_latency,
    "bulk": bulk_enqueue,
    "scale": scale,
    "blocked": blocked_claims,
    "memory": memory,
    "purge": purge,
    "web": web,
    "idle": idle_workers,
    "mongodb": mongodb,
    "hot": hot,
    "wire": wire_lane,
}
# Steps that run only when --only names them: minutes long, beyond the full run's budget.
ON_REQUEST = ("purge", "hot")


# -- report ---------------------------------------------------------------------------------
def fmt(value: float | None, unit: str) -> str:
    """A value with its unit, rounded for reading."""
    if value is None:
        return "-"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "x":
        return f"{value:.2f}"
    if unit == "ms":
        return f"{value:.2f} ms" if abs(value) < 10 else f"{value:.1f} ms"
    if unit == "%":
        return f"{value:.2f} %"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if not unit:
        return f"{value:.3g}"
    return f"{value:g}"


def verdict(fig: Figure) -> str:
    """MET / NOT MET, or why there is no verdict."""
    if fig.value is None:
        return "FAILED" if fig.note.startswith("failed") else "SKIPPED"
    if fig.met is None:
        return "" if not fig.goal else "n/a"
    return "MET" if fig.met else "NOT MET"


def table(results: list[Figure]) -> str:
    """The results as a plain text table, notes under it."""
    rows = [("Measurement", "Median", "Min-max", "Goal", "Result")]
    for fig in results:
        span = (
            f"{fmt(fig.low, fig.unit)} - {fmt(fig.high, fig.unit)}" if fig.low is not None else ""
        )
        rows.append((fig.name, fmt(fig.value, fig.unit), span, fig.goal, verdict(fig)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"* {fig.name.strip()}: {fig.note}" for fig in results if fig.note]
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# -- main -----------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small settings, 1M-job step skipped: checks, not figures",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    parser.add_argument(
        "--only",
        metavar="STEP,...",
        help=f"run only these steps: {', '.join(STEPS)} "
        f"({', '.join(ON_REQUEST)} only when named here)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--wire",
        action="store_true",
        help="run the MongoDB step on a local nx-27017 (a wire-protocol stand-in, not "
        "MongoDB: its figures are labelled [wire lane])",
    )
    args = parser.parse_args(argv)
    wanted = args.only.split(",") if args.only else [s for s in STEPS if s not in ON_REQUEST]
    unknown = [s for s in wanted if s not in STEPS]
    if unknown:
        parser.error(f"unknown step {unknown[0]!r}; steps: {', '.join(STEPS)}")
    args.steps = [s for s in STEPS if s in wanted]
    return args


def run_steps(lab: Lab, cfg: Settings, steps: list[str]) -> list[Figure]:
    """Each step in turn; a step that fails is reported as such and the others still run."""
    results: list[Figure] = []
    for name in steps:
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            figures = STEPS[name](lab, cfg)
        except (BenchError, subprocess.SubprocessError, OSError) as exc:
            figures = [Figure(name, name, None, note=f"failed: {exc}")]
        for fig in figures:
            print(
                f"   {fig.name.strip()}: {fmt(fig.value, fig.unit)} {verdict(fig)}"
                f"{' (' + fig.note + ')' if fig.value is None else ''}",
                flush=True,
            )
        print(f"   ({time.monotonic() - started:.1f} s)", flush=True)
        results += figures
    return results


def start_wire_lane(lab: Lab) -> Any:
    """Start the test suite's wire lane (nx-27017 on a free loopback port) and point the
    MongoDB step at it, its figures labelled as the stand-in's."""
    sys.path.insert(0, str(REPO / "tests"))
    from wirelane import WireServer

    server = WireServer(lab.root / "wirelane")
    server.start()
    os.environ[MONGO_ENV] = server.url("queuectl_bench")
    MONGO_TAG.update(tag=" [wire lane]", what="nx-27017")
    print(f"wire lane: nx-27017 at {server.url()} (a stand-in, not MongoDB)", flush=True)
    return server


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt  # the same clean-up path as Ctrl+C


def bytecode_caches() -> str:
    """Make sure every process measured loads queuectl from bytecode caches, as an installed
    package does (pip writes them at install): with PYTHONDONTWRITEBYTECODE set, an editable
    install compiles every module in every process, which would add ~50 ms of CPU to each
    worker's and each command's start. Returns what was done, for the report."""
    import compileall

    unset = os.environ.pop("PYTHONDONTWRITEBYTECODE", None) is not None
    sys.dont_write_bytecode = False
    package = Path(__import__("queuectl").__file__).parent
    compileall.compile_dir(str(package), quiet=1)
    said = f"bytecode caches of {package} written"
    return said + ("; PYTHONDONTWRITEBYTECODE unset for the processes measured" if unset else "")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Settings.shrunk() if args.quick else Settings()
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    info = machine()
    print(
        f"queuectl benchmark{' (--quick)' if cfg.quick else ''}: {info['nproc']} x "
        f"{info['cpu']}, Python {info['python']}, SQLite {info['sqlite']}",
        flush=True,
    )
    info["bytecode"] = bytecode_caches()
    print(
        f"{info['bytecode']}; load average at the start {info['load_average'][0]:.2f}", flush=True
    )
    lab = Lab(keep=args.keep)
    wire = None
    try:
        if args.wire:
            wire = start_wire_lane(lab)
        results = run_steps(lab, cfg, args.steps)
    except KeyboardInterrupt:
        print("interrupted: stopping every process started", file=sys.stderr)
        return 130
    finally:
        # Clean-up is bounded (a few seconds); a second Ctrl+C must not cut it short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        lab.close()
        if wire is not None:
            wire.stop()
    elapsed = time.monotonic() - started
    print()
    print(table(results))
    print(f"\ntotal {elapsed:.0f} s; load average at the end {os.getloadavg()[0]:.2f}")
    if args.json:
        info["load_average_end"] = os.getloadavg()
        doc = {
            "machine": info,
            "quick": cfg.quick,
            "seconds": round(elapsed, 1),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "results": [asdict(f) | {"result": verdict(f)} for f in results],
        }
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 1 if any(f.value is None and f.note.startswith("failed") for f in results) else 0


if __name__ == "__main__":
    sys.exit(main())
