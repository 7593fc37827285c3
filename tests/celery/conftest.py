"""Real Celery workers on a real Redis broker, against the test database.

Each test gets its own Redis key prefix (`redis_url`), which the broker's keys share
(CELERY_BROKER_TRANSPORT_OPTIONS global_keyprefix), and its own queue, so test runs
never see each other's messages. Workers are `celery -A config worker` subprocesses
(tests/processes.py) in their own session, so a test can kill a whole worker (main
and pool processes).
Without Redis these tests skip locally; under CI=true the run fails (tests/conftest.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from scheduler_app.engine.celery_executor import CeleryExecutor
from tests.processes import (
    Processes,
    WorkerProcess,
    child_env,
    stop_all,
    venv_command,
)

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
    "holds_the_database.py": '''"""Holds its task's row, then never lets go of the GIL.

Only killing its process ends it, and until then the database waits for it: the
row lock on PostgreSQL, the whole database on SQLite.
"""

import re

from django.db import transaction

from scheduler_app.models import ScheduledTask


def run(task: str = "") -> dict:
    with transaction.atomic():
        ScheduledTask.objects.filter(name=task).update(description="held")
        while True:
            try:
                re.match(r"(a+)+$", "a" * 64 + "b")
            except BaseException:
                pass
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


@pytest.fixture
def start_worker(
    processes: Processes, broker: Broker, scripts_dir: Path, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Start Celery workers on this test's broker and database; all stop at teardown.

    By default a 2-process prefork worker on the test's own queue; `command` runs
    another command line (the README's). They stop here, before the broker's keys
    are deleted (`processes`, set up before the broker, stops them after).
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
        return processes.start(worker)

    yield start
    stop_all(workers)
