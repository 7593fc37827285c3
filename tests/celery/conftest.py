"""Real Celery workers on a real Redis broker, against the test database.

Each test gets its own Redis key prefix (`redis_url`), which the broker's keys share
(CELERY_BROKER_TRANSPORT_OPTIONS global_keyprefix), and its own queue, so test runs
never see each other's messages. Workers are `celery -A config worker` subprocesses
in their own session, so a test can kill a whole worker (main and pool processes).
Without Redis these tests skip locally; under CI=true the run fails (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from scheduler_app.engine.celery_executor import CeleryExecutor
from scheduler_app.models import SchedulerInstance
from tests.processes import (
    LoggedProcess,
    child_env,
    venv_command,
)
from tests.processes import wait_for_processes as wait_for_workers

#: Worker start (Django setup, imports, pool processes forked) on a slow CI machine.
WORKER_STARTUP_TIMEOUT = 30.0
#: Short timings, so staleness and lock expiry play out in seconds.
HEARTBEAT_INTERVAL = 0.3
INSTANCE_STALE_SECONDS = 2
TASK_LOCK_TTL = 3

SCRIPTS = {
    "logger.py": '''"""Writes a few log lines."""

from scheduler_app import task_log, task_progress


def run(lines: int = 3) -> dict:
    for number in range(1, lines + 1):
        task_log("line", number)
        task_progress(number, lines)
    return {"lines": lines}
''',
    "sleeper.py": '''"""Sleeps, to stand for a long-running job."""

import time

from scheduler_app import task_log


def run(seconds: float = 60) -> dict:
    task_log("sleeping", seconds)
    time.sleep(seconds)
    return {"slept": seconds}
''',
    "waits.py": '''"""Logs a few lines, then waits for a file: the test's go-ahead."""

import os
import time

from scheduler_app import task_log


def run(until: str = "", lines: int = 3, timeout: float = 60) -> dict:
    for number in range(1, lines + 1):
        task_log("live line", number)
    deadline = time.monotonic() + timeout
    while not os.path.exists(until) and time.monotonic() < deadline:
        time.sleep(0.05)
    task_log("released")
    return {"released": os.path.exists(until)}
''',
    "first_sleeps.py": '''"""The first run sleeps (to be killed); later ones return."""

import os
import time

from scheduler_app import task_log


def run(marker: str = "") -> dict:
    if not os.path.exists(marker):
        open(marker, "w").close()
        task_log("first run: sleeping")
        time.sleep(60)
    return {"quick": True}
''',
    "counted.py": '''"""Appends a line to a file per call, so a test can count calls."""

import time


def run(path: str = "") -> dict:
    with open(path, "a") as file:
        file.write("ran\\n")
    time.sleep(1)
    return {"counted": True}
''',
    "stubborn.py": '''"""Never stops by itself: a regex that holds the GIL, again.

Nothing but killing the process ends it: no other thread of the process runs, and
the soft time limit's exception, if it gets in, is swallowed.
"""

import re


def run() -> dict:
    while True:
        try:
            re.match(r"(a+)+$", "a" * 64 + "b")
        except BaseException:
            pass
''',
}


@pytest.fixture
def scripts_dir(tmp_path: Path, settings: Any) -> Path:
    """The test scripts, for the workers and the test process alike."""
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, text in SCRIPTS.items():
        (folder / name).write_text(text)
    settings.SCHEDULER_SCRIPTS_PATH = str(folder)
    return folder


@dataclass
class Broker:
    """The Redis broker of one test: URL, key prefix, and a queue of its own."""

    url: str
    prefix: str
    queue: str

    def env(self) -> dict[str, str]:
        """What a worker or scheduler process needs to use this broker."""
        return {"REDIS_URL": self.url, "SCHEDULER_REDIS_PREFIX": self.prefix}

    def waiting(self, queue: str | None = None) -> int:
        """Messages in a queue plus messages delivered and not yet acknowledged."""
        import redis

        client = redis.Redis.from_url(self.url)
        queued = client.llen(self.prefix + (queue or self.queue))
        return int(queued) + int(client.hlen(self.prefix + "unacked"))


@pytest.fixture
def broker(redis_url: str, settings: Any) -> Broker:
    """This test's broker (REDIS_URL and its key prefix, as `redis_url` sets them)."""
    queue = "test-%s" % uuid.uuid4().hex[:8]
    settings.SCHEDULER_DEFAULT_QUEUE = queue
    return Broker(url=redis_url, prefix=settings.SCHEDULER_REDIS_PREFIX, queue=queue)


@pytest.fixture
def celery_app(broker: Broker) -> Iterator[Celery]:
    """A Celery app of the test process that sends to this test's broker."""
    app = Celery("tests", set_as_current=False)
    app.conf.update(
        broker_url=broker.url,
        broker_transport_options={"global_keyprefix": broker.prefix},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
    )
    yield app
    app.close()


@pytest.fixture
def executor(celery_app: Celery) -> CeleryExecutor:
    return CeleryExecutor(app=celery_app)


def process_env(broker: Broker, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A worker's or scheduler's environment: this test's database and broker."""
    env = child_env(
        SCHEDULER_HEARTBEAT_INTERVAL=str(HEARTBEAT_INTERVAL),
        SCHEDULER_INSTANCE_STALE_SECONDS=str(INSTANCE_STALE_SECONDS),
        SCHEDULER_TASK_LOCK_TTL=str(TASK_LOCK_TTL),
        **broker.env(),
    )
    env.update(extra or {})
    return env


class WorkerProcess(LoggedProcess):
    """One `celery -A config worker` subprocess, in a session of its own."""

    label = "celery worker"

    def pool_rows(self) -> list[SchedulerInstance]:
        """The heartbeat rows of this worker's pool processes (its main's children)."""
        rows = SchedulerInstance.objects.filter(
            kind=SchedulerInstance.Kind.WORKER, stopped_at__isnull=True
        )
        return [
            row
            for row in rows
            if row.pid is not None and _parent_pid(row.pid) == self.pid
        ]

    def wait_ready(self, processes: int) -> list[SchedulerInstance]:
        """Wait for the "ready" line and a heartbeat row per pool process."""
        wait_for_workers(
            lambda: re.search(r"@\S+ ready\.", self.output()),
            WORKER_STARTUP_TIMEOUT,
            self,
        )
        return wait_for_workers(
            lambda: len(rows := self.pool_rows()) >= processes and rows,
            WORKER_STARTUP_TIMEOUT,
            self,
        )

    def kill_all(self) -> None:
        """kill -9 the main process and its pool processes at once."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


def _parent_pid(pid: int) -> int | None:
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces, so split after the ")".
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.fixture
def start_worker(
    transactional_db: None, broker: Broker, scripts_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start Celery workers on this test's broker and database; all stop at teardown.

    By default a 2-process prefork worker on the test's own queue; `command` runs
    another command line (the README's). Depends on transactional_db, so workers
    are gone before the tables are flushed.
    """
    workers: list[WorkerProcess] = []

    def start(
        *, command: str | None = None, extra_env: dict[str, str] | None = None
    ) -> WorkerProcess:
        name = "w%d-%s" % (len(workers) + 1, uuid.uuid4().hex[:6])
        if command is None:
            command = (
                "celery -A config worker --pool prefork -c 2 -Q %s -n %s@%%h "
                "--without-mingle --without-gossip --loglevel INFO"
                % (broker.queue, name)
            )
        env = process_env(
            broker, {"SCHEDULER_SCRIPTS_PATH": str(scripts_dir), **(extra_env or {})}
        )
        worker = WorkerProcess(venv_command(command), env, tmp_path / ("%s.log" % name))
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def worker_instance(execution_instance_id: str) -> SchedulerInstance:
    return SchedulerInstance.objects.get(instance_id=execution_instance_id)


def now_monotonic() -> float:
    return time.monotonic()
