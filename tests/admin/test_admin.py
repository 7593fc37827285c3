"""The admin: every page loads, changelists stay flat, actions behave, text is escaped.

The task admin's forms are tested in test_task_form.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib import messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from scheduler_app.choices import AuditAction
from scheduler_app.exceptions import SystemTaskProtected
from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from scheduler_app.services.audit import CLI, audit_record
from tests.admin.helpers import (
    EXECUTION_CHANGELIST,
    HOSTILE,
    HOSTILE_ESCAPED,
    INSTANCE_CHANGELIST,
    TASK_ADD,
    TASK_CHANGELIST,
    confirm_action,
    count_queries,
    execution_url,
    offered_actions,
    post_action,
    scheduler_alive,
    sent_messages,
    task_url,
)
from tests.factories import make_execution, make_task, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client: Client) -> Client:
    """A staff user with the model permissions but not run_/pause_scheduledtask."""
    user = make_user(
        "staff",
        "view_scheduledtask",
        "change_scheduledtask",
        "delete_scheduledtask",
        "view_taskexecution",
        is_staff=True,
    )
    client.force_login(user)
    return client


# Smoke


def every_scheduler_admin_url() -> list[str]:
    """Every page and endpoint of the app's admin, with rows for the object pages."""
    task = make_task(description="Nightly", handler_path="scripts:data_sync")
    execution = make_execution(
        task,
        status=TaskExecution.Status.FAILED,
        kwargs={"days": 7},
        result={"deleted": 3},
        error_message="ValueError: boom",
        error_traceback='Traceback (most recent call last):\n  File "x.py"\nValueError: boom',
        log_output="[02:00:00] started\n[02:00:01] failed",
        progress_done=1,
        progress_total=3,
    )
    instance = SchedulerInstance.objects.create(
        instance_id="host:1:abcdef", hostname="host", pid=1
    )
    key = task_lock_key(task.pk)
    get_lock_backend().acquire(key, owner="host:1:abcdef", ttl_seconds=60)
    [entry] = audit_record(
        origin=CLI,
        action=AuditAction.UPDATE,
        tasks=[task],
        changes={"description": ["", "Nightly"]},
    )

    def admin_url(name: str, *args: Any) -> str:
        return reverse("admin:scheduler_app_%s" % name, args=args)

    return [
        reverse("admin:index"),
        reverse("admin:app_list", args=["scheduler_app"]),
        TASK_CHANGELIST,
        TASK_ADD,
        TASK_ADD + "?handler_path=scripts:data_sync",
        task_url("change", task),
        task_url("history", task),
        task_url("delete", task),
        task_url("run_with_parameters", task),
        admin_url("scheduledtask_handler_parameters") + "?path=scripts:data_sync",
        admin_url("scheduledtask_preview")
        + "?task_type=cron&cron_expression=0+2+*+*+*",
        admin_url("schedulerlock_changelist"),
        admin_url("schedulerlock_release") + "?key=" + key,
        admin_url("schedulerinstance_health"),
        EXECUTION_CHANGELIST,
        EXECUTION_CHANGELIST + "?status=timeout&trigger_type__exact=manual",
        execution_url(execution),
        admin_url("taskexecution_log", execution.pk) + "?offset=1",
        admin_url("taskexecution_log_download", execution.pk),
        admin_url("taskexecution_history", execution.pk),
        INSTANCE_CHANGELIST,
        admin_url("schedulerinstance_change", instance.pk),
        admin_url("auditentry_changelist"),
        admin_url("auditentry_changelist") + "?action__exact=update&actor=-",
        admin_url("auditentry_change", entry.pk),
    ]


def test_every_admin_page_of_the_app_loads_for_a_superuser(
    admin_client: Client,
) -> None:
    urls = every_scheduler_admin_url()

    statuses = {url: admin_client.get(url).status_code for url in urls}

    assert statuses == dict.fromkeys(urls, 200)


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_every_admin_page_loads_in_each_language(
    admin_client: Client, language: str
) -> None:
    urls = every_scheduler_admin_url()

    statuses = {
        url: admin_client.get(url, HTTP_ACCEPT_LANGUAGE=language).status_code
        for url in urls
    }

    assert statuses == dict.fromkeys(urls, 200)


#: Ids that name no row: not a number, not whole, beyond a 64-bit column, negative.
NOT_AN_ID = ["abc", "1.5", "99999999999999999999", "-1", "7x"]
#: Every admin URL that takes an object id, with the method it answers.
OBJECT_URLS = [
    ("get", "taskexecution_change"),
    ("get", "taskexecution_history"),
    ("get", "taskexecution_log"),
    ("get", "taskexecution_log_download"),
    ("post", "taskexecution_cancel"),
    ("get", "scheduledtask_change"),
    ("get", "scheduledtask_history"),
    ("get", "scheduledtask_delete"),
    ("post", "scheduledtask_run"),
    ("get", "scheduledtask_run_with_parameters"),
    ("post", "scheduledtask_run_with_parameters"),
    ("get", "schedulerinstance_change"),
    ("get", "auditentry_change"),
]
#: The run page's own endpoints answer JSON or a file: an unknown id is a plain 404.
EXECUTION_ENDPOINTS = {
    "taskexecution_log",
    "taskexecution_log_download",
    "taskexecution_cancel",
}


@pytest.mark.parametrize("object_id", NOT_AN_ID)
def test_an_id_that_names_no_row_is_never_a_server_error(
    admin_client: Client, object_id: str
) -> None:
    make_execution(make_task())

    statuses = {
        (method, name): getattr(admin_client, method)(
            reverse("admin:scheduler_app_%s" % name, args=[object_id])
        ).status_code
        for method, name in OBJECT_URLS
    }

    # The stock pages redirect with "does not exist"; the run buttons go back
    # to the list; the execution endpoints answer 404.
    assert statuses == {
        (method, name): 404 if name in EXECUTION_ENDPOINTS else 302
        for method, name in OBJECT_URLS
    }


def test_a_staff_user_without_permissions_gets_none_of_the_pages(
    client: Client,
) -> None:
    client.force_login(make_user("nobody", is_staff=True))
    urls = every_scheduler_admin_url()[2:]  # the indexes load, listing nothing

    statuses = {url: client.get(url).status_code for url in urls}

    assert statuses == dict.fromkeys(urls, 403)


def test_the_post_views_refuse_a_staff_user_without_permissions(client: Client) -> None:
    client.force_login(make_user("nobody", is_staff=True))
    task = make_task()
    execution = make_execution(task)
    key = task_lock_key(task.pk)
    get_lock_backend().acquire(key, owner="x", ttl_seconds=60)

    responses = [
        client.post(task_url("run", task)),
        client.post(task_url("run_with_parameters", task), {}),
        client.post(
            reverse("admin:scheduler_app_taskexecution_cancel", args=[execution.pk])
        ),
        client.post(reverse("admin:scheduler_app_schedulerlock_release"), {"key": key}),
    ]

    assert [response.status_code for response in responses] == [403, 403, 403, 403]
    assert TaskExecution.objects.get().status == TaskExecution.Status.PENDING
    assert get_lock_backend().get(key) is not None


def test_execution_page_shows_result_traceback_and_log(admin_client: Client) -> None:
    execution = make_execution(
        status=TaskExecution.Status.FAILED,
        result={"deleted": 3},
        error_traceback="Traceback (most recent call last):\nValueError: boom",
        log_output="[02:00:00] Deleting old rows",
    )

    content = admin_client.get(execution_url(execution)).content.decode()

    assert "&quot;deleted&quot;: 3" in content
    assert "ValueError: boom" in content
    assert "[02:00:00] Deleting old rows" in content


# Changelists do not issue a query per row


def test_task_changelist_query_count_does_not_grow_with_rows(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    make_task()
    one_row = count_queries(admin_client, TASK_CHANGELIST)
    for _ in range(29):
        make_task(run_count=3, success_count=2, fail_count=1)

    with django_assert_max_num_queries(one_row):
        response = admin_client.get(TASK_CHANGELIST)

    assert response.context["cl"].result_count == ScheduledTask.objects.count()


def test_execution_changelist_query_count_does_not_grow_with_rows(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    make_execution()
    one_row = count_queries(admin_client, EXECUTION_CHANGELIST)
    for _ in range(29):
        make_execution(status=TaskExecution.Status.SUCCESS, log_output="line\n" * 100)

    with django_assert_max_num_queries(one_row):
        response = admin_client.get(EXECUTION_CHANGELIST)

    assert len(response.context["cl"].result_list) == 30


def test_task_change_page_query_count_does_not_grow_with_executions(
    admin_client: Client,
) -> None:
    task = make_task()
    make_execution(task)
    one_execution = count_queries(admin_client, task_url("change", task))
    for _ in range(25):
        make_execution(task, status=TaskExecution.Status.SUCCESS)

    assert count_queries(admin_client, task_url("change", task)) == one_execution


def test_task_change_page_lists_only_the_latest_20_executions(
    admin_client: Client,
) -> None:
    task = make_task()
    executions = [make_execution(task) for _ in range(25)]

    response = admin_client.get(task_url("change", task))

    (inline,) = response.context["inline_admin_formsets"]
    shown = {form.instance.pk for form in inline.formset.forms}
    assert shown == {execution.pk for execution in executions[-20:]}


# Task actions


def test_run_now_creates_one_pending_manual_execution_per_task(
    admin_client: Client,
) -> None:
    first, second = make_task(), make_task()
    scheduler_alive()

    response = post_action(admin_client, TASK_CHANGELIST, "run_now", [first, second])

    assert response.status_code == 302
    executions = TaskExecution.objects.filter(task__in=[first, second])
    assert sorted(
        executions.values_list("task_id", "status", "trigger_type")
    ) == sorted(
        [
            (first.pk, TaskExecution.Status.PENDING, TaskExecution.TriggerType.MANUAL),
            (second.pk, TaskExecution.Status.PENDING, TaskExecution.TriggerType.MANUAL),
        ]
    )
    assert sent_messages(response) == [
        (
            messages.SUCCESS,
            "Requested a run of 2 tasks; the scheduler starts them within a second.",
        )
    ]


def test_run_now_without_a_scheduler_says_the_runs_wait_for_one(
    admin_client: Client,
) -> None:
    task = make_task()

    response = post_action(admin_client, TASK_CHANGELIST, "run_now", [task])

    assert TaskExecution.objects.filter(task=task).count() == 1
    assert sent_messages(response) == [
        (
            messages.WARNING,
            "Requested a run of 1 task; no scheduler is running, so it waits until "
            "one starts (python manage.py runscheduler).",
        )
    ]


def test_run_now_does_not_run_the_handler(admin_client: Client) -> None:
    task = make_task()

    post_action(admin_client, TASK_CHANGELIST, "run_now", [task])

    execution = TaskExecution.objects.get(task=task)
    assert execution.status == TaskExecution.Status.PENDING
    assert execution.started_at is None
    task.refresh_from_db()
    assert task.run_count == 0


def test_pause_sets_status_and_reports_the_count(admin_client: Client) -> None:
    active = [make_task(), make_task()]
    already_paused = make_task(status=ScheduledTask.Status.PAUSED)

    response = confirm_action(
        admin_client, TASK_CHANGELIST, "pause", [*active, already_paused]
    )

    statuses = set(
        ScheduledTask.objects.filter(
            pk__in=[t.pk for t in [*active, already_paused]]
        ).values_list("status", flat=True)
    )
    assert statuses == {ScheduledTask.Status.PAUSED}
    assert sent_messages(response) == [(messages.SUCCESS, "Paused 2 tasks.")]


def test_pause_clears_next_run_at(admin_client: Client) -> None:
    task = make_task(next_run_at=timezone.now())

    confirm_action(admin_client, TASK_CHANGELIST, "pause", [task])

    task.refresh_from_db()
    assert task.next_run_at is None


def test_resume_sets_status_and_next_run_at(admin_client: Client) -> None:
    task = make_task(status=ScheduledTask.Status.PAUSED)

    response = post_action(admin_client, TASK_CHANGELIST, "resume", [task])

    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.ACTIVE
    assert task.next_run_at is not None
    assert sent_messages(response) == [(messages.SUCCESS, "Resumed 1 task.")]


def test_run_pause_and_resume_are_not_offered_without_their_permissions(
    staff_client: Client,
) -> None:
    actions = offered_actions(staff_client, TASK_CHANGELIST)

    assert "delete_tasks" in actions
    assert actions.isdisjoint({"run_now", "pause", "resume"})


@pytest.mark.parametrize("action", ["run_now", "pause", "resume"])
def test_posting_an_action_without_its_permission_changes_nothing(
    staff_client: Client, action: str
) -> None:
    task = make_task(status=ScheduledTask.Status.ACTIVE)
    paused = make_task(status=ScheduledTask.Status.PAUSED)

    response = post_action(staff_client, TASK_CHANGELIST, action, [task, paused])

    assert response.status_code == 302
    assert not TaskExecution.objects.exists()
    assert ScheduledTask.objects.get(pk=task.pk).status == ScheduledTask.Status.ACTIVE
    assert ScheduledTask.objects.get(pk=paused.pk).status == ScheduledTask.Status.PAUSED
    assert sent_messages(response) == [(messages.WARNING, "No action selected.")]


def test_cancel_is_not_offered_without_the_run_permission(staff_client: Client) -> None:
    make_execution()

    assert "cancel" not in offered_actions(staff_client, EXECUTION_CHANGELIST)


def test_delete_action_refuses_a_system_task_and_names_it(admin_client: Client) -> None:
    system = make_task(name="nightly_cleanup", is_system=True)
    normal = make_task()

    response = confirm_action(
        admin_client, TASK_CHANGELIST, "delete_tasks", [system, normal]
    )

    assert response.status_code == 302
    assert sent_messages(response) == [
        (messages.ERROR, str(SystemTaskProtected("nightly_cleanup")))
    ]
    assert ScheduledTask.objects.filter(pk__in=[system.pk, normal.pk]).count() == 2


def test_delete_action_deletes_normal_tasks_and_their_executions(
    admin_client: Client,
) -> None:
    task = make_task()
    make_execution(task, status="success")

    response = confirm_action(admin_client, TASK_CHANGELIST, "delete_tasks", [task])

    assert not ScheduledTask.objects.filter(pk=task.pk).exists()
    assert not TaskExecution.objects.filter(task_id=task.pk).exists()
    assert sent_messages(response) == [(messages.SUCCESS, "Deleted 1 task.")]


def test_delete_action_refuses_tasks_with_runs_pending_or_running_and_names_them(
    admin_client: Client,
) -> None:
    idle, busy = make_task(name="idle"), make_task(name="busy")
    make_execution(busy, status="running")

    response = confirm_action(
        admin_client, TASK_CHANGELIST, "delete_tasks", [idle, busy]
    )

    assert ScheduledTask.objects.filter(pk__in=[idle.pk, busy.pk]).count() == 2
    assert sent_messages(response) == [
        (
            messages.ERROR,
            "Nothing was deleted: these tasks have runs pending or running: busy. "
            "Cancel their runs first, or delete each with its runs cancelled.",
        )
    ]


def test_stock_delete_selected_action_is_not_offered(admin_client: Client) -> None:
    make_task()

    assert "delete_selected" not in offered_actions(admin_client, TASK_CHANGELIST)


def test_delete_page_of_a_system_task_says_why_on_the_task_page(
    admin_client: Client,
) -> None:
    system = make_task(name="cleanup", is_system=True)

    shown = admin_client.get(task_url("delete", system))
    posted = admin_client.post(task_url("delete", system), {"post": "yes"})

    for response in (shown, posted):
        assert response.status_code == 302
        assert response["Location"] == task_url("change", system)
        assert sent_messages(response)[-1] == (
            messages.ERROR,
            "Task “cleanup” is a system task: it can be paused but not deleted.",
        )
    assert ScheduledTask.objects.filter(pk=system.pk).exists()


def test_delete_page_deletes_a_normal_task(admin_client: Client) -> None:
    task = make_task()

    response = admin_client.post(task_url("delete", task), {"post": "yes"})

    assert response.status_code == 302
    assert not ScheduledTask.objects.filter(pk=task.pk).exists()


def test_delete_page_of_a_task_with_history_counts_it_and_deletes_it(
    admin_client: Client,
) -> None:
    task = make_task(name="old")
    for _ in range(3):
        make_execution(task, status="success")

    page = admin_client.get(task_url("delete", task))
    response = admin_client.post(task_url("delete", task), {"post": "yes"})

    assert "3 executions (the history)" in page.content.decode()
    assert response.status_code == 302
    assert not TaskExecution.objects.filter(task_id=task.pk).exists()


def test_delete_page_of_a_busy_task_lists_its_runs_and_needs_the_box_ticked(
    admin_client: Client,
) -> None:
    task = make_task(name="busy")
    running = make_execution(task, status="running")
    url = task_url("delete", task)

    page = admin_client.get(url)
    unticked = admin_client.post(url, {"post": "yes"})
    kept = ScheduledTask.objects.filter(pk=task.pk).exists()
    ticked = admin_client.post(url, {"post": "yes", "cancel_runs": "on"})

    assert "This task has a run pending or running" in page.content.decode()
    assert 'name="cancel_runs"' in page.content.decode()
    assert reverse("admin:scheduler_app_taskexecution_change", args=[running.pk]) in (
        page.content.decode()
    )
    assert unticked.status_code == 302 and unticked["Location"] == url
    assert sent_messages(unticked) == [
        (
            messages.ERROR,
            "Task “busy” has runs pending or running (#%s running): cancel them "
            "first, or delete it with its runs cancelled." % running.pk,
        )
    ]
    assert kept
    assert ticked.status_code == 302
    assert not ScheduledTask.objects.filter(pk=task.pk).exists()


# Execution actions


def test_cancel_turns_a_pending_execution_cancelled(admin_client: Client) -> None:
    pending = make_execution()
    finished = make_execution(status=TaskExecution.Status.SUCCESS)

    response = post_action(
        admin_client, EXECUTION_CHANGELIST, "cancel", [pending, finished]
    )

    pending.refresh_from_db()
    finished.refresh_from_db()
    assert pending.status == TaskExecution.Status.CANCELLED
    assert pending.finished_at is not None
    assert finished.status == TaskExecution.Status.SUCCESS
    assert sent_messages(response) == [
        (messages.SUCCESS, "Cancelled (or asked to stop) 1 execution.")
    ]


def test_cancel_asks_a_running_execution_to_stop(admin_client: Client) -> None:
    running = make_execution(status=TaskExecution.Status.RUNNING)

    post_action(admin_client, EXECUTION_CHANGELIST, "cancel", [running])

    running.refresh_from_db()
    assert running.status == TaskExecution.Status.RUNNING
    assert running.cancel_requested is True


# Escaping


def test_execution_page_escapes_user_text(admin_client: Client) -> None:
    execution = make_execution(
        status=TaskExecution.Status.FAILED,
        error_message=HOSTILE,
        error_traceback="Traceback:\n" + HOSTILE,
        log_output="[02:00:00] " + HOSTILE,
        result={"note": HOSTILE},
        kwargs={"target": HOSTILE},
    )

    content = admin_client.get(execution_url(execution)).content.decode()

    assert HOSTILE not in content
    assert content.count(HOSTILE_ESCAPED) >= 3


def test_changelists_escape_user_text(admin_client: Client) -> None:
    task = make_task(name=HOSTILE)
    make_execution(task, error_message=HOSTILE)

    for url in (TASK_CHANGELIST, EXECUTION_CHANGELIST, task_url("change", task)):
        content = admin_client.get(url).content.decode()
        assert HOSTILE not in content, url
        assert HOSTILE_ESCAPED in content, url


def test_executions_cannot_be_deleted_from_the_admin(admin_client: Client) -> None:
    execution = make_execution()

    response = admin_client.get(
        reverse("admin:scheduler_app_taskexecution_delete", args=[execution.pk])
    )

    assert response.status_code == 403
    assert "delete_selected" not in offered_actions(
        admin_client, reverse("admin:scheduler_app_taskexecution_changelist")
    )
