"""Plain factories: valid model rows with defaults, any field overridable.

They save with `objects.create` (no services, no validation) so a test can build
any state, including ones the services would refuse. Every test builds its tasks,
executions and users here.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import (
    ScheduledTask,
    SchedulerInstance,
    TaskExecution,
    UserAPIKey,
)

_sequence = itertools.count(1)


def make_task(**overrides: Any) -> ScheduledTask:
    """A saved ScheduledTask: an active interval task running scripts:example_task every 60 s."""
    fields: dict[str, Any] = {
        "name": "task-%d" % next(_sequence),
        "task_type": ScheduledTask.TaskType.INTERVAL,
        "interval_seconds": 60,
        "handler_path": "scripts:example_task",
    }
    fields.update(overrides)
    return ScheduledTask.objects.create(**fields)


def make_sample_task(handler: str, **overrides: Any) -> ScheduledTask:
    """A saved manual task running tests.sample_handlers.runs:<handler>."""
    fields: dict[str, Any] = {
        "name": "task-%s" % handler,
        "task_type": ScheduledTask.TaskType.MANUAL,
        "interval_seconds": None,
        "handler_path": "tests.sample_handlers.runs:" + handler,
    }
    fields.update(overrides)
    return make_task(**fields)


def make_execution(
    task: ScheduledTask | None = None, **overrides: Any
) -> TaskExecution:
    """A saved TaskExecution (pending, manual) of `task`, or of a new task."""
    fields: dict[str, Any] = {
        "task": task if task is not None else make_task(),
        "status": TaskExecution.Status.PENDING,
        "trigger_type": TaskExecution.TriggerType.MANUAL,
    }
    fields.update(overrides)
    return TaskExecution.objects.create(**fields)


def make_cron_task(
    cron: str, *, created: dt.datetime | None = None, **overrides: Any
) -> ScheduledTask:
    """A saved cron task in UTC, created at `created` (default: now)."""
    fields: dict[str, Any] = {
        "task_type": ScheduledTask.TaskType.CRON,
        "cron_expression": cron,
        "interval_seconds": None,
        "timezone": "UTC",
    }
    fields.update(overrides)
    task = make_task(**fields)
    if created is not None:
        ScheduledTask.objects.filter(pk=task.pk).update(created_at=created)
        task.refresh_from_db()
    return task


def make_fire(
    task: ScheduledTask,
    at: dt.datetime,
    status: str = "success",
    *,
    staged: dt.timedelta = dt.timedelta(0),
    **overrides: Any,
) -> TaskExecution:
    """A saved run of the task's fire at `at`, recorded `staged` before it."""
    return make_execution(
        task,
        status=status,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        scheduled_for=at,
        created_at=at - staged,
        **overrides,
    )


def make_user(
    username: str = "", *codenames: str, superuser: bool = False, **fields: Any
) -> User:
    """A saved user (password "pw") holding exactly these scheduler_app permissions.

    `superuser=True` makes a superuser (every permission); `is_staff=True` lets a
    user into the admin; any other field (`password`, `email`) is overridable.
    """
    fields.setdefault("password", "pw")
    username = username or "user-%d" % next(_sequence)
    if superuser:
        user = User.objects.create_superuser(username=username, **fields)
    else:
        user = User.objects.create_user(username=username, **fields)
    if codenames:
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="scheduler_app", codename__in=codenames
            )
        )
    return user


def key_for(user: User, **fields: Any) -> str:
    """Create an API key for `user` and return the plain key (shown only once)."""
    _api_key, key = UserAPIKey.objects.create_key(
        name="key of %s" % user.username, user=user, **fields
    )
    return key


def key_client(key: str) -> APIClient:
    """An API client that sends `key` in the X-Api-Key header."""
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


def make_live_run_holding_lock(
    task: ScheduledTask, *, instance: str = "web-1:7:live"
) -> TaskExecution:
    """A run still going on a live instance (fresh heartbeat), holding its task lock."""
    SchedulerInstance.objects.create(
        instance_id=instance, hostname="web-1", pid=7, last_heartbeat_at=timezone.now()
    )
    execution = make_execution(task, status="running", instance_id=instance)
    assert get_lock_backend().acquire(
        task_lock_key(task.pk),
        owner="%s exec:%s" % (instance, execution.pk),
        ttl_seconds=60,
    )
    return execution
