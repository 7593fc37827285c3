"""What the end-to-end tests share: short timings, sample scripts, polls of rows.

The fixtures that start the processes are in conftest.py (`start_scheduler`,
`scripts_dir`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import task_create

Status = TaskExecution.Status
Trigger = TaskExecution.TriggerType

# Short timings, so leadership, staleness and shutdown play out in seconds.
HEARTBEAT_INTERVAL = 0.5
INSTANCE_STALE_SECONDS = 3
LEADER_LOCK_TTL = 4
LEADER_LOCK_REFRESH_INTERVAL = 1
SHUTDOWN_GRACE_SECONDS = 2

SLEEPER_SCRIPT = '''"""Sleeps, to stand for a long-running job."""

import time


def run(seconds: int = 60) -> dict:
    time.sleep(seconds)
    return {"slept": seconds}
'''

PROBE_SCRIPT = '''"""Notes each start in a file, then sleeps: who ran, and how often."""

import os
import time


def run(path: str = "", seconds: float = 2) -> dict:
    with open(path, "a") as file:
        file.write("start %d\\n" % os.getpid())
    time.sleep(seconds)
    return {"slept": seconds}
'''

TICK_SCRIPT = '''"""Does nothing, quickly."""


def run() -> dict:
    return {"ticked": True}
'''


def scheduled_runs(task: ScheduledTask) -> Any:
    return TaskExecution.objects.filter(task=task, trigger_type=Trigger.SCHEDULED)


def make_interval(name: str, handler: str = "scripts:example_task") -> ScheduledTask:
    return task_create(
        task=ScheduledTask(
            name=name, task_type="interval", interval_seconds=1, handler_path=handler
        )
    )


def make_manual(
    name: str, handler: str = "scripts:example_task", **fields: Any
) -> ScheduledTask:
    return task_create(
        task=ScheduledTask(
            name=name, task_type="manual", handler_path=handler, **fields
        )
    )


def row_of(execution: TaskExecution, **lookups: Any) -> Callable[[], Any]:
    """A poll for `execution`'s row once it matches `lookups` (None until then)."""
    return lambda: TaskExecution.objects.filter(pk=execution.pk, **lookups).first()


ENDED = {"status__in": TaskExecution.FINISHED_STATUSES}


def succeeded(execution: TaskExecution) -> bool:
    return TaskExecution.objects.filter(pk=execution.pk, status=Status.SUCCESS).exists()
