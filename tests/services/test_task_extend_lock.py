"""task_extend_lock() in a handler: the run's task lock extended now, or said lost."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import connection

from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.runtime.leases import watchdog
from scheduler_app.services import task_request_run
from tests.sample_handlers import runs
from tests.services.test_execution_run import make, run, run_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status
LOST = "WARNING: the task lock task:%s was lost; another run may start."
#: The same for a run that holds a run slot (skip, allow with max_instances).
LOST_WITH_SLOT = (
    "WARNING: the task lock task:%s was lost; its run slot still keeps another run "
    "of the task from starting beside this one."
)


def start_blocked(task: ScheduledTask) -> tuple[TaskExecution, threading.Thread]:
    """Run `task` in a thread; return once its handler made its first extension."""
    execution = task_request_run(task=task)
    thread = run_in_thread(execution)
    assert runs.started.wait(10)
    return execution, thread


def finish(execution: TaskExecution, thread: threading.Thread) -> TaskExecution:
    runs.release.set()
    thread.join(10)
    assert not thread.is_alive()
    execution.refresh_from_db()
    return execution


def test_the_lock_is_extended_to_the_seconds_the_handler_asks(
    lock_backend: str, settings: Any
) -> None:
    settings.SCHEDULER_TASK_LOCK_TTL = 30
    task = make("extends_lock", handler_kwargs={"seconds": "600"})

    execution, thread = start_blocked(task)
    lock = get_lock_backend().get(task_lock_key(task.pk))
    run = watchdog.get(execution.pk)
    execution = finish(execution, thread)

    assert lock is not None and lock.ttl_seconds > 500, lock
    # The watchdog's next extension (to 30 s) waits until it would not shorten it.
    assert run is not None and run.lock is not None
    assert run.lock.next_extend > time.monotonic() + 500
    assert execution.status == Status.SUCCESS, execution.error_message
    assert execution.result == {"held": [True, True, True]}
    assert get_lock_backend().get(task_lock_key(task.pk)) is None


@pytest.mark.parametrize(
    ("policy", "said"), [("skip", LOST_WITH_SLOT), ("replace", LOST)]
)
def test_a_lost_lock_is_false_and_said_once_on_the_run_log(
    lock_backend: str, policy: str, said: str
) -> None:
    task = make("extends_lock", overlap_policy=policy)
    execution, thread = start_blocked(task)

    # Expired and taken by another run, as after a long stall of this process.
    backend = get_lock_backend()
    backend.force_release(task_lock_key(task.pk))
    backend.acquire(task_lock_key(task.pk), owner="elsewhere", ttl_seconds=30)
    execution = finish(execution, thread)

    assert execution.result == {"held": [True, False, False]}
    assert execution.log_output.count(said % task.pk) == 1, execution.log_output
    assert backend.get(task_lock_key(task.pk)).owner == "elsewhere"


def test_an_extension_inside_the_handlers_transaction_commits_at_once(
    lock_backend: str, settings: Any
) -> None:
    if lock_backend == "database" and connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer: the handler's open transaction holds it")
    settings.SCHEDULER_TASK_LOCK_TTL = 30
    task = make(
        "extends_lock", handler_kwargs={"seconds": "600", "in_transaction": "True"}
    )

    execution, thread = start_blocked(task)
    # Read while the handler's transaction is still open.
    lock = get_lock_backend().get(task_lock_key(task.pk))
    execution = finish(execution, thread)

    assert lock is not None and lock.ttl_seconds > 500, lock
    assert execution.result == {"held": [True, True, True]}


def test_a_run_that_holds_no_lock_is_told_true() -> None:
    task = make("extends_lock", overlap_policy=ScheduledTask.OverlapPolicy.ALLOW)
    runs.release.set()

    execution = run(task)

    execution.refresh_from_db()
    assert execution.result == {"held": [True, True, True]}
