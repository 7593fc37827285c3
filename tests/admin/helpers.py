"""Helpers shared by the admin tests: URLs, posting actions, reading messages and errors."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.admin import helpers
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from tests.factories import make_user

TASK_CHANGELIST = reverse("admin:scheduler_app_scheduledtask_changelist")
TASK_ADD = reverse("admin:scheduler_app_scheduledtask_add")
EXECUTION_CHANGELIST = reverse("admin:scheduler_app_taskexecution_changelist")
INSTANCE_CHANGELIST = reverse("admin:scheduler_app_schedulerinstance_changelist")
HOSTILE = "<script>alert(1)</script>"
HOSTILE_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def scheduler_alive() -> SchedulerInstance:
    """A scheduler instance with a fresh heartbeat, as a running runscheduler keeps."""
    return SchedulerInstance.objects.create(
        instance_id="sched-1:4242:abcdef", hostname="sched-1", pid=4242
    )


def task_url(view: str, task: ScheduledTask) -> str:
    return reverse("admin:scheduler_app_scheduledtask_%s" % view, args=[task.pk])


def execution_url(execution: TaskExecution) -> str:
    return reverse("admin:scheduler_app_taskexecution_change", args=[execution.pk])


def post_action(
    client: Client, url: str, action: str, objects: list[Any], **extra: Any
) -> Any:
    """POST an admin action for `objects` as the changelist's action form does;
    `extra` are more fields (post="yes", reason=...: its confirmation page's answer)."""
    return client.post(
        url,
        {
            "action": action,
            "index": 0,
            helpers.ACTION_CHECKBOX_NAME: [str(obj.pk) for obj in objects],
            **extra,
        },
    )


def confirm_action(
    client: Client, url: str, action: str, objects: list[Any], reason: str = ""
) -> Any:
    """POST an action's confirmation page (pause, disable, delete_tasks), as its
    "Yes" button does: the selection, the action, post=yes and the reason."""
    return client.post(
        url,
        {
            "action": action,
            helpers.ACTION_CHECKBOX_NAME: [str(obj.pk) for obj in objects],
            "post": "yes",
            "reason": reason,
        },
    )


def sent_messages(response: Any) -> list[tuple[int, str]]:
    return [
        (message.level, str(message)) for message in get_messages(response.wsgi_request)
    ]


def offered_actions(client: Client, url: str) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200
    action_form = response.context["action_form"]  # None when no action is offered
    if action_form is None:
        return set()
    return {name for name, _label in action_form.fields["action"].choices}


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200
    return len(context.captured_queries)


def add_form_data(**overrides: str) -> dict[str, str]:
    """Every field of the add form's fieldsets plus the inline's management form."""
    data = {
        "name": "nightly_sync",
        "description": "",
        "status": ScheduledTask.Status.ACTIVE,
        "handler_path": "scripts:data_sync",
        "handler_kwargs": json.dumps({"days": "7"}),
        "task_type": ScheduledTask.TaskType.CRON,
        "cron_expression": "0 2 * * *",
        "interval_seconds": "",
        "run_date_0": "",
        "run_date_1": "",
        "timezone": "",
        "overlap_policy": ScheduledTask.OverlapPolicy.SKIP,
        "max_instances": "0",
        "timeout_seconds": "0",
        "max_retries": "0",
        "retry_delay_seconds": "60",
        "misfire_grace_seconds": "60",
        "coalesce": "on",
        "jitter_seconds": "0",
        "queue": "",
        "executions-TOTAL_FORMS": "0",
        "executions-INITIAL_FORMS": "0",
        "executions-MIN_NUM_FORMS": "0",
        "executions-MAX_NUM_FORMS": "0",
        "_save": "Save",
    }
    data.update(overrides)
    return data


def form_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, "the form was accepted"
    return {
        field: [str(message) for message in errors]
        for field, errors in response.context["adminform"].form.errors.items()
    }


def staff_user(*codenames: str, username: str = "staff") -> User:
    """A staff user holding exactly these scheduler_app permissions."""
    return make_user(username, *codenames, is_staff=True)


def captured_sql(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200, response.status_code
    return [query["sql"] for query in context.captured_queries]
