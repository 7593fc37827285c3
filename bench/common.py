"""What every scenario shares: a fresh database, the process under test, /proc sampling,
statistics and tables.

Django is imported inside the functions that need it: `bench.run` sets the
environment and calls django.setup() first (the parent process never does).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from tests.processes import LoggedProcess

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
HANDLER = "bench.handlers:noop"
#: How long the process under test gets to stop after SIGTERM before it is killed.
STOP_TIMEOUT = 40.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def base_env() -> dict[str, str]:
    """The environment of every child process (the database's variables come on top)."""
    env = dict(os.environ)
    for name in ("DATABASE_URL", "SQLITE_PATH", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    env.update(
        {
            "DEBUG": "false",
            "SECRET_KEY": "bench",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            # The benchmarks' handler module (bench.handlers:noop), allowed the way a
            # project allows code it cannot decorate.
            "SCHEDULER_HANDLER_MODULES": "bench.handlers",
        }
    )
    return env


def utc(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC)


def next_whole_second(after: float) -> float:
    return float(math.ceil(after))


# -- databases -------------------------------------------------------------------


def _migrate(env: dict[str, str]) -> None:
    """`manage.py migrate` with the bench settings (project tables + django_apscheduler)."""
    env = {**env, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    done = subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError("migrate failed:\n%s%s" % (done.stdout, done.stderr))


def _close_django_connections() -> None:
    from django.db import connections

    connections.close_all()


class SqliteDatabase:
    """The embedded default: a SQLite file (WAL) in a temp dir, no Redis.

    Migrated once into a template file; every scenario starts from a copy of it.
    """

    label = "sqlite"
    redis = False
    #: Name of a server-side database whose backend processes use CPU (none here).
    server_database = None

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "bench.sqlite3"
        self.template = workdir / "template.sqlite3"

    def describe(self) -> str:
        return "SQLite file %s, no Redis" % self.path

    def env(self) -> dict[str, str]:
        return {"SQLITE_PATH": str(self.path), "REDIS_URL": ""}

    def create(self) -> None:
        _migrate({**base_env(), "SQLITE_PATH": str(self.template), "REDIS_URL": ""})

    def reset(self) -> None:
        _close_django_connections()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
        shutil.copyfile(self.template, self.path)

    def drop(self) -> None:
        _close_django_connections()


class PostgresDatabase:
    """PostgreSQL (a fresh database bench_<pid>) with Redis when it answers.

    Migrated once into bench_<pid>_tpl; every scenario gets bench_<pid> re-created
    from that template, and the Redis keys under its own prefix deleted.
    """

    label = "postgres"

    def __init__(self, admin_url: str, redis_url: str) -> None:
        self.admin_url = admin_url
        self.redis_url = redis_url
        self.redis = bool(redis_url)
        self.name = "bench_%d" % os.getpid()
        self.template_name = self.name + "_tpl"
        self.prefix = "bench%d:" % os.getpid()

    @property
    def server_database(self) -> str:
        return self.name

    def describe(self) -> str:
        return "PostgreSQL database %s, %s" % (
            self.name,
            "Redis %s (prefix %s)" % (self.redis_url, self.prefix)
            if self.redis
            else "no Redis",
        )

    def url(self, name: str) -> str:
        parts = urlsplit(self.admin_url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))

    def env(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.url(self.name),
            "REDIS_URL": self.redis_url,
            # Keys, lease and notification channel of our own: other runs stay apart.
            "SCHEDULER_REDIS_PREFIX": self.prefix,
            "CACHE_KEY_PREFIX": self.prefix + "cache",
        }

    def _admin(self, *statements: str) -> None:
        import psycopg

        with psycopg.connect(
            self.admin_url, autocommit=True, connect_timeout=5
        ) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]

    def create(self) -> None:
        self._admin(
            'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.template_name,
            'CREATE DATABASE "%s"' % self.template_name,
        )
        _migrate(
            {**base_env(), **self.env(), "DATABASE_URL": self.url(self.template_name)}
        )

    def reset(self) -> None:
        _close_django_connections()
        self._admin(
            'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name,
            'CREATE DATABASE "%s" TEMPLATE "%s"' % (self.name, self.template_name),
        )
        self._forget_redis_keys()

    def drop(self) -> None:
        _close_django_connections()
        self._admin(
            'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name,
            'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.template_name,
        )
        self._forget_redis_keys()

    def _forget_redis_keys(self) -> None:
        """Delete the keys under our prefix (locks, the leader lease) between scenarios."""
        if not self.redis:
            return
        import redis

        client = redis.Redis.from_url(self.redis_url)
        keys = list(client.scan_iter(match=self.prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


Database = SqliteDatabase | PostgresDatabase


#: Other processes using more than this share of a core make a measurement suspect.
BUSY_PERCENT = 25.0


def host_others_percent(seconds: float = 1.0) -> float:
    """CPU used by the whole machine over `seconds`, as a % of one core (nothing of ours runs)."""
    before, started = _host_busy_ticks(), time.time()
    time.sleep(seconds)
    return 100.0 * (_host_busy_ticks() - before) / CLOCK_TICKS / (time.time() - started)


@dataclass
class Context:
    """What a scenario gets: the database, a work dir for logs, the run's settings."""

    db: Database
    workdir: Path
    duration: int
    threads: int
    #: Wait up to this long for other processes to calm down before each measurement.
    wait_quiet: float = 0.0

    def executes(self) -> str:
        """How the scheduler under test runs handlers, in words."""
        if os.environ.get("SCHEDULER_ISOLATION", "process") == "process":
            return "%s handler processes" % os.environ.get(
                "SCHEDULER_WORKER_PROCESSES", "4"
            )
        return "%d threads" % self.threads

    def sampler(self, pid: int) -> ProcSampler:
        """A sampler of the process under test (and of its PostgreSQL backends)."""
        return ProcSampler(pid, database=self.db.server_database).start()

    def settle(self) -> None:
        """Before a measurement: say (and optionally wait) if the machine is busy."""
        deadline = time.monotonic() + self.wait_quiet
        while True:
            busy = host_others_percent()
            if busy <= BUSY_PERCENT:
                return
            if time.monotonic() >= deadline:
                print(
                    "  ! other processes use %.0f%% of a core: figures may suffer "
                    "(see the others CPU %% column)" % busy,
                    flush=True,
                )
                return
            time.sleep(2.0)


# -- the process under test --------------------------------------------------------


@dataclass
class Sample:
    at: float
    cpu_ticks: int
    rss_kb: int
    #: Busy ticks of the whole machine (/proc/stat), to see what else was running.
    host_ticks: int
    #: utime+stime of the PostgreSQL backends serving the bench database (0 on SQLite).
    db_ticks: int = 0
    #: utime+stime and RSS of the process's children (its handler processes).
    child_ticks: int = 0
    child_rss_kb: int = 0


def _children_totals(pid: int) -> tuple[int, int]:
    """CPU ticks and RSS (KB) of the processes whose parent is `pid`."""
    ticks = rss_kb = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry.name) as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[1]) != pid:  # field 4, ppid
                continue
            ticks += int(fields[11]) + int(fields[12])
            rss_kb += int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    return ticks, rss_kb


def _process_ticks(pid: int | str) -> int:
    with open("/proc/%s/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the ")" the fields start at field 3 (state): utime is 14, stime 15.
    return int(fields[11]) + int(fields[12])


class DatabaseBackends:
    """The PostgreSQL backend processes of one database ("postgres: user <db> ...")."""

    def __init__(self, database: str) -> None:
        self.marker = (" %s " % database).encode()
        self._known: dict[str, bool] = {}

    def ticks(self) -> int:
        total = 0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            ours = self._known.get(entry.name)
            try:
                if ours is None:
                    with open("/proc/%s/cmdline" % entry.name, "rb") as cmdline:
                        text = cmdline.read().replace(b"\0", b" ")
                    ours = self._known[entry.name] = (
                        text.startswith(b"postgres:") and self.marker in text
                    )
                if ours:
                    total += _process_ticks(entry.name)
            except (OSError, IndexError, ValueError):
                continue
        return total


class SessionProcesses:
    """Every process of one session (a Celery worker started with `Process(session=True)`:
    its main process and its pool processes), summed."""

    def __init__(self, session_id: int) -> None:
        self.session_id = str(session_id)
        self._known: dict[str, bool] = {}

    def totals(self) -> tuple[int, int]:
        """utime+stime ticks and RSS (kB) of the session's live processes."""
        ticks = rss_kb = 0
        page_kb = os.sysconf("SC_PAGE_SIZE") // 1024
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or self._known.get(entry.name) is False:
                continue
            try:
                with open("/proc/%s/stat" % entry.name) as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            # After the ")": state, ppid, pgrp, session, ... utime (11), stime (12), rss (21).
            ours = self._known[entry.name] = fields[3] == self.session_id
            if ours:
                ticks += int(fields[11]) + int(fields[12])
                rss_kb += int(fields[21]) * page_kb
        return ticks, rss_kb


def _host_busy_ticks() -> int:
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return user + nice + system + irq + softirq + steal


class ProcSampler:
    """Reads VmRSS (/proc/<pid>/status) and utime+stime (/proc/<pid>/stat) every `every` s.

    It also reads the machine's busy time (/proc/stat), so a figure taken while
    something else ran (a test suite, a build) can be told apart: `others_percent`.
    """

    def __init__(
        self,
        pid: int,
        every: float = 0.2,
        *,
        database: str | None = None,
        session: bool = False,
    ) -> None:
        self.pid = pid
        self.every = every
        self.backends = DatabaseBackends(database) if database else None
        #: session=True: CPU and RSS of every process of the session `pid` leads.
        self.session = SessionProcesses(pid) if session else None
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="bench-sampler", daemon=True
        )

    def start(self) -> ProcSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def read(self) -> Sample | None:
        if self.session is not None:
            ticks, rss_kb = self.session.totals()
            if not ticks and not rss_kb:
                return None
            return Sample(
                at=time.time(),
                cpu_ticks=ticks,
                rss_kb=rss_kb,
                host_ticks=_host_busy_ticks(),
            )
        try:
            ticks = _process_ticks(self.pid)
            with open("/proc/%d/status" % self.pid) as status:
                rss = next(
                    (
                        int(line.split()[1])
                        for line in status
                        if line.startswith("VmRSS:")
                    ),
                    0,
                )
        except (OSError, IndexError, ValueError):
            return None
        children = _children_totals(self.pid)
        return Sample(
            at=time.time(),
            cpu_ticks=ticks,
            rss_kb=rss,
            host_ticks=_host_busy_ticks(),
            db_ticks=self.backends.ticks() if self.backends else 0,
            child_ticks=children[0],
            child_rss_kb=children[1],
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self.read()
            if sample is not None:
                self.samples.append(sample)
            self._stop.wait(self.every)

    def window(self, start: float, end: float) -> list[Sample]:
        return [sample for sample in self.samples if start <= sample.at <= end]

    def _delta_percent(
        self, start: float, end: float, ticks: Callable[[Sample], int]
    ) -> float | None:
        """Growth of `ticks` over [start, end] as a % of one core."""
        inside = self.window(start, end)
        if len(inside) < 2:
            return None
        first, last = inside[0], inside[-1]
        wall = last.at - first.at
        if wall <= 0:
            return None
        return max(0.0, 100.0 * (ticks(last) - ticks(first)) / CLOCK_TICKS / wall)

    def cpu_percent(self, start: float, end: float) -> float | None:
        """CPU time of the process over [start, end] as a % of one core."""
        return self._delta_percent(start, end, lambda s: s.cpu_ticks)

    def db_percent(self, start: float, end: float) -> float | None:
        """CPU of the PostgreSQL backends of the bench database, % of one core (None: SQLite)."""
        if self.backends is None:
            return None
        return self._delta_percent(start, end, lambda s: s.db_ticks)

    def others_percent(self, start: float, end: float) -> float | None:
        """CPU used by every other process over [start, end], as a % of one core.

        Neither the process under test, its children, nor the backends of the bench
        database count.
        """
        return self._delta_percent(
            start,
            end,
            lambda s: s.host_ticks - s.cpu_ticks - s.db_ticks - s.child_ticks,
        )

    def children_percent(self, start: float, end: float) -> float | None:
        """CPU of the process's children (handler processes), % of one core."""
        return self._delta_percent(start, end, lambda s: s.child_ticks)

    def children_rss_mb(self, start: float, end: float) -> float | None:
        inside = self.window(start, end)
        return max(sample.child_rss_kb for sample in inside) / 1024 if inside else None

    def peak_rss_mb(self, start: float, end: float) -> float | None:
        inside = self.window(start, end)
        return max(sample.rss_kb for sample in inside) / 1024 if inside else None

    def figures(self, start: float, end: float) -> dict[str, float | None]:
        """Every figure of [start, end], under the keys the results use."""
        return {
            "cpu_percent": self.cpu_percent(start, end),
            "peak_rss_mb": self.peak_rss_mb(start, end),
            "db_cpu_percent": self.db_percent(start, end),
            "others_cpu_percent": self.others_percent(start, end),
            "handlers_cpu_percent": self.children_percent(start, end),
            "handlers_rss_mb": self.children_rss_mb(start, end),
        }


class Process:
    """A child process started from the repo root (the scheduler under test, or a runner).

    Started and stopped by the tests' harness (tests/processes.py, no pytest), its
    output appended to `log`. `session=True` starts it in a session of its own (a
    Celery worker and its pool processes): `stop()` then also kills whatever of the
    session is left.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str],
        log: Path,
        session: bool = False,
    ) -> None:
        self.args = list(args)
        self.env = env
        self.log = log
        self.session = session
        self.proc: LoggedProcess | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Process:
        self.proc = LoggedProcess(
            self.args, self.env, self.log, new_session=self.session, append=True
        )
        profiler = os.environ.get("BENCH_PYSPY")
        if profiler:
            # Where the time goes (bench/README.md, "Profiling"): collapsed stacks of
            # every thread, GIL holders only, next to the process's log.
            subprocess.Popen(
                [
                    profiler,
                    "record",
                    "--pid",
                    str(self.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    # BENCH_PYSPY_IDLE=1: every thread, waiting included (where time goes,
                    # not CPU: a thread blocked on the database shows up).
                    *(["--idle"] if os.environ.get("BENCH_PYSPY_IDLE") else ["--gil"]),
                    "--output",
                    str(self.log.with_suffix(".pyspy.txt")),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds; returns the exit code."""
        if self.proc is None:
            return None
        code = self.proc.stop(grace=timeout)
        if self.proc.forced:
            print("  ! %s did not stop in %.0f s: killed" % (self.log.name, timeout))
        return code


def scheduler_process(
    db: Database,
    workdir: Path,
    name: str,
    *,
    threads: int,
    extra_env: dict[str, str] | None = None,
) -> Process:
    """`manage.py runscheduler` with the project's settings on the bench database.

    `extra_env`: on top (SCHEDULER_EXECUTOR=celery and its queue, see `Workers`).
    """
    env = {
        **base_env(),
        **db.env(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SCHEDULER_THREAD_POOL_SIZE": str(threads),
        **(extra_env or {}),
    }
    return Process(
        [PYTHON, "manage.py", "runscheduler", "--grace", "5"],
        env=env,
        log=workdir / ("%s-%s.log" % (db.label, name)),
    )


class Workers(Protocol):
    """Processes that run the executions instead of the scheduler (Celery workers).

    fires/burst/throughput take one (`workers=`): started after the database is
    reset, before the scheduler (which gets `scheduler_env()`), stopped after it.
    """

    def start(self, name: str) -> None:
        """Start them and return once they take work (`stop()` follows even if it raises)."""

    def scheduler_env(self) -> dict[str, str]:
        """What the scheduler under test needs to hand its executions to them."""

    def figures(self, start: float, end: float) -> dict[str, Any]:
        """Their CPU % and peak RSS MB over [start, end] (keys workers_cpu_percent, ...)."""

    def stop(self) -> None:
        """Stop them all (nothing of theirs is left running)."""


@contextmanager
def running(workers: Workers | None, name: str) -> Iterator[dict[str, str]]:
    """Start `workers` (when given) for one measurement; yields the scheduler's extra env."""
    if workers is None:
        yield {}
        return
    try:
        workers.start(name)
        yield workers.scheduler_env()
    finally:
        workers.stop()


def wait_until(
    condition: Callable[[], Any], *, timeout: float, every: float = 0.05
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            return value
        time.sleep(every)


def wait_leader(process: Process, *, timeout: float = 30.0) -> float:
    """Wait until the scheduler leads (its first reconcile runs in that same tick).

    Returns the time it became ready; raises with its log if it died or never led.
    """
    from scheduler_app.models import SchedulerInstance

    def ready() -> bool:
        if not process.alive():
            raise RuntimeError("the scheduler exited:\n" + process.log_tail())
        return SchedulerInstance.objects.filter(
            pid=process.pid, is_leader=True, stopped_at__isnull=True
        ).exists()

    if not wait_until(ready, timeout=timeout, every=0.05):
        raise RuntimeError(
            "the scheduler did not become leader:\n" + process.log_tail()
        )
    return time.time()


def sleep_until(when: float) -> None:
    while True:
        left = when - time.time()
        if left <= 0:
            return
        time.sleep(min(left, 0.5))


# -- tasks --------------------------------------------------------------------------


def create_tasks(
    prefix: str,
    count: int,
    *,
    task_type: str,
    next_run_at: Callable[[int], dt.datetime | None] = lambda i: None,
    **fields: Any,
) -> None:
    """Bulk-create `count` noop tasks named <prefix>-<i> (the engine trusts next_run_at)."""
    from scheduler_app.models import ScheduledTask

    ScheduledTask.objects.bulk_create(
        (
            ScheduledTask(
                name="%s-%05d" % (prefix, i),
                task_type=task_type,
                handler_path=HANDLER,
                next_run_at=next_run_at(i),
                **fields,
            )
            for i in range(count)
        ),
        batch_size=1000,
    )


# -- statistics and tables -------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary_ms(seconds: Iterable[float]) -> dict[str, float | None]:
    values = [value * 1000.0 for value in seconds]
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return "{:,.{d}f}".format(value, d=digits)
    return str(value)


def progress(cells: Sequence[Any]) -> str:
    """One result as a line, printed as soon as it is measured."""
    return " | ".join(cell if isinstance(cell, str) else fmt(cell) for cell in cells)


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [
        [cell if isinstance(cell, str) else fmt(cell) for cell in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=False))
        ).rstrip()

    out = [title, line(cells[0]), line(["-" * width for width in widths])]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


@dataclass
class Outcome:
    """One scenario's figures on one backend: rows of a table plus named metrics."""

    scenario: str
    title: str
    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        text = table(self.title, self.headers, self.rows)
        if self.notes:
            text += "\n" + "\n".join("  note: " + note for note in self.notes)
        return text
