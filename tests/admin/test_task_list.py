"""The task list: schedules in words, stats from annotations, filters, actions, the banner."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib import messages
from django.test import Client
from django.utils import timezone, translation

from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from tests.admin.helpers import (
    TASK_CHANGELIST,
    confirm_action,
    count_queries,
    post_action,
    sent_messages,
    staff_user,
    task_url,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

NO_SCHEDULER = "No scheduler is running."


def listed(response: Any) -> dict[str, ScheduledTask]:
    return {task.name: task for task in response.context["cl"].result_list}


def row_html(response: Any, name: str) -> str:
    """The HTML of the changelist row whose first cell names `name` (no-break spaces as spaces)."""
    content = response.content.decode().replace("\xa0", " ")
    # The list lets a name break after its underscores (<wbr>).
    start = content.index(">%s</a></th>" % name.replace("_", "_<wbr>"))
    return content[start : content.index("</tr>", start)]


# Columns


def test_a_cron_schedule_is_described_in_words(admin_client: Client) -> None:
    make_task(
        name="nightly",
        task_type="cron",
        cron_expression="0 2 * * *",
        interval_seconds=None,
    )

    row = row_html(admin_client.get(TASK_CHANGELIST), "nightly")

    assert "At 02:00 AM" in row
    assert "0 2 * * *" in row


def test_a_cron_schedule_is_described_in_chinese_for_a_chinese_browser(
    admin_client: Client,
) -> None:
    make_task(
        name="weekly",
        task_type="cron",
        cron_expression="0 2 * * 1",
        interval_seconds=None,
    )

    response = admin_client.get(TASK_CHANGELIST, HTTP_ACCEPT_LANGUAGE="zh-hans")

    row = row_html(response, "weekly")
    assert "在 02:00" in row
    assert "星期一" in row
    assert "Monday" not in row


def test_a_macro_is_described_like_its_expression(admin_client: Client) -> None:
    make_task(
        name="daily", task_type="cron", cron_expression="@daily", interval_seconds=None
    )

    assert "At 12:00 AM" in row_html(admin_client.get(TASK_CHANGELIST), "daily")


def test_an_interval_is_described_in_words(admin_client: Client) -> None:
    make_task(name="six_hourly", interval_seconds=6 * 3600)

    assert "every 6 hours" in row_html(admin_client.get(TASK_CHANGELIST), "six_hourly")


def test_next_run_is_shown_absolute_and_relative(admin_client: Client) -> None:
    make_task(
        name="soon", next_run_at=timezone.now() + dt.timedelta(hours=3, minutes=5)
    )

    row = row_html(admin_client.get(TASK_CHANGELIST), "soon")

    assert "in 3 hours" in row
    assert (
        timezone.localtime(timezone.now() + dt.timedelta(hours=3, minutes=5)).strftime(
            "%Y-%m-%d"
        )
        in row
    )


def test_last_run_shows_the_latest_execution_result(admin_client: Client) -> None:
    task = make_task(name="flaky", last_run_at=timezone.now() - dt.timedelta(minutes=5))
    make_execution(task, status=TaskExecution.Status.SUCCESS)
    make_execution(task, status=TaskExecution.Status.FAILED)

    row = row_html(admin_client.get(TASK_CHANGELIST), "flaky")

    assert 'data-status="failed"' in row
    assert "5 minutes ago" in row


def test_success_rate_and_average_duration(admin_client: Client) -> None:
    make_task(
        name="measured",
        success_count=3,
        fail_count=1,
        duration_count=3,
        duration_total_ms=6000,
    )

    response = admin_client.get(TASK_CHANGELIST)

    row = row_html(response, "measured")
    assert "75%" in row
    assert "2.0 s" in row
    assert listed(response)["measured"].avg_duration_ms == pytest.approx(2000)


def test_the_average_duration_is_read_from_the_task_not_its_executions(
    admin_client: Client,
) -> None:
    # The engine keeps the totals as runs end; the list never averages the history.
    task = make_task(name="kept", duration_count=2, duration_total_ms=500)
    make_execution(task, status=TaskExecution.Status.SUCCESS, duration_ms=100_000)

    task_row = listed(admin_client.get(TASK_CHANGELIST))["kept"]

    assert task_row.avg_duration_ms == pytest.approx(250)


def test_slow_tasks_come_first_when_sorting_by_average_duration(
    admin_client: Client,
) -> None:
    quick, slow, never = (
        make_task(name="quick"),
        make_task(name="slow"),
        make_task(name="never"),
    )
    ScheduledTask.objects.filter(pk=quick.pk).update(
        duration_count=1, duration_total_ms=10
    )
    ScheduledTask.objects.filter(pk=slow.pk).update(
        duration_count=2, duration_total_ms=20_000
    )

    column = (
        admin_client.get(TASK_CHANGELIST)
        .context["cl"]
        .list_display.index("avg_duration")
    )
    response = admin_client.get(TASK_CHANGELIST, {"o": str(column)})

    names = [task.name for task in response.context["cl"].result_list]
    assert names.index("slow") < names.index("quick") < names.index(never.name)


def test_task_list_queries_do_not_grow_with_rows(
    admin_client: Client, django_assert_num_queries: Any
) -> None:
    task = make_task()
    make_execution(task, status=TaskExecution.Status.SUCCESS, duration_ms=5)
    one_row = count_queries(admin_client, TASK_CHANGELIST)
    for _ in range(29):
        task = make_task(run_count=3, success_count=2, fail_count=1)
        make_execution(task, status=TaskExecution.Status.FAILED, duration_ms=50)
        make_execution(task, status=TaskExecution.Status.SUCCESS, duration_ms=70)

    with django_assert_num_queries(one_row):
        response = admin_client.get(TASK_CHANGELIST)

    assert (
        len(response.context["cl"].result_list) == ScheduledTask.objects.count() >= 30
    )


# Filters and search


def test_filter_by_type_status_and_handler(admin_client: Client) -> None:
    make_task(name="a", task_type="manual", interval_seconds=None)
    make_task(name="b", status=ScheduledTask.Status.PAUSED)
    make_task(name="c", handler_path="scripts:data_sync")

    assert set(
        listed(admin_client.get(TASK_CHANGELIST, {"task_type__exact": "manual"}))
    ) == {"a"}
    assert set(
        listed(admin_client.get(TASK_CHANGELIST, {"status__exact": "paused"}))
    ) == {"b"}
    assert set(
        listed(admin_client.get(TASK_CHANGELIST, {"handler": "scripts:data_sync"}))
    ) == {"c"}


def test_filter_by_last_result(admin_client: Client) -> None:
    failing, passing, never = (
        make_task(name="failing"),
        make_task(name="passing"),
        make_task(name="never"),
    )
    make_execution(failing, status=TaskExecution.Status.SUCCESS)
    make_execution(failing, status=TaskExecution.Status.FAILED)
    make_execution(passing, status=TaskExecution.Status.SUCCESS)

    assert set(
        listed(admin_client.get(TASK_CHANGELIST, {"last_result": "failed"}))
    ) == {"failing"}
    assert set(
        listed(admin_client.get(TASK_CHANGELIST, {"last_result": "success"}))
    ) == {"passing"}
    assert "never" in listed(
        admin_client.get(TASK_CHANGELIST, {"last_result": "never"})
    )
    assert never.pk


@pytest.mark.parametrize(
    "query",
    ["orders", "Synchronise the orders", "data_sync"],
    ids=["name", "description", "handler"],
)
def test_search_by_name_description_or_handler(
    admin_client: Client, query: str
) -> None:
    make_task(
        name="orders_sync",
        description="Synchronise the orders every night",
        handler_path="scripts:data_sync",
    )
    make_task(name="other")

    assert set(listed(admin_client.get(TASK_CHANGELIST, {"q": query}))) == {
        "orders_sync"
    }


# Actions


def test_disable_sets_status_disabled_and_reports_the_count(
    admin_client: Client,
) -> None:
    tasks = [make_task(), make_task(status=ScheduledTask.Status.PAUSED)]

    response = confirm_action(admin_client, TASK_CHANGELIST, "disable", tasks)

    assert set(
        ScheduledTask.objects.filter(pk__in=[t.pk for t in tasks]).values_list(
            "status", flat=True
        )
    ) == {ScheduledTask.Status.DISABLED}
    assert sent_messages(response) == [(messages.SUCCESS, "Disabled 2 tasks.")]


def test_enable_turns_only_disabled_tasks_active(admin_client: Client) -> None:
    disabled = make_task(status=ScheduledTask.Status.DISABLED)
    paused = make_task(status=ScheduledTask.Status.PAUSED)

    response = post_action(admin_client, TASK_CHANGELIST, "enable", [disabled, paused])

    disabled.refresh_from_db()
    paused.refresh_from_db()
    assert disabled.status == ScheduledTask.Status.ACTIVE
    assert disabled.next_run_at is not None
    assert paused.status == ScheduledTask.Status.PAUSED
    assert sent_messages(response) == [(messages.SUCCESS, "Enabled 1 task.")]


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_and_resume_refuse_disabled_tasks_by_name(
    admin_client: Client, action: str
) -> None:
    disabled = make_task(name="switched_off", status=ScheduledTask.Status.DISABLED)

    response = post_action(
        admin_client, TASK_CHANGELIST, action, [disabled], post="yes"
    )

    disabled.refresh_from_db()
    assert disabled.status == ScheduledTask.Status.DISABLED
    (success, warning) = sent_messages(response)
    assert success[0] == messages.SUCCESS and " 0 tasks." in success[1]
    assert warning[0] == messages.WARNING
    assert "switched_off" in warning[1]
    assert "Enable selected tasks" in warning[1]


@pytest.mark.parametrize("action", ["enable", "disable"])
def test_enable_and_disable_need_the_pause_permission(
    client: Client, action: str
) -> None:
    client.force_login(staff_user("view_scheduledtask", "change_scheduledtask"))
    task = make_task(
        status=ScheduledTask.Status.DISABLED if action == "enable" else "active"
    )

    post_action(client, TASK_CHANGELIST, action, [task], post="yes")

    assert ScheduledTask.objects.get(pk=task.pk).status == task.status


# The no-scheduler banner


def test_banner_warns_when_no_scheduler_heartbeats(admin_client: Client) -> None:
    content = admin_client.get(TASK_CHANGELIST).content.decode()

    assert NO_SCHEDULER in content
    assert "python manage.py runscheduler" in content
    assert "make run" in content


def test_banner_is_gone_while_a_scheduler_heartbeats(admin_client: Client) -> None:
    SchedulerInstance.objects.create(
        instance_id="host:1:abc", last_heartbeat_at=timezone.now()
    )

    assert NO_SCHEDULER not in admin_client.get(TASK_CHANGELIST).content.decode()


def test_banner_counts_a_stale_or_stopped_instance_as_not_running(
    admin_client: Client,
) -> None:
    SchedulerInstance.objects.create(
        instance_id="old:1:abc",
        last_heartbeat_at=timezone.now() - dt.timedelta(minutes=5),
    )
    SchedulerInstance.objects.create(
        instance_id="stopped:1:abc",
        last_heartbeat_at=timezone.now(),
        stopped_at=timezone.now(),
    )

    assert NO_SCHEDULER in admin_client.get(TASK_CHANGELIST).content.decode()


def test_banner_is_not_shown_on_other_apps_pages(admin_client: Client) -> None:
    content = admin_client.get("/admin/auth/user/").content.decode()

    assert NO_SCHEDULER not in content


def test_translation_is_active_only_for_the_request() -> None:
    # Guard for the tests above: a Chinese request leaves English active here.
    assert translation.get_language() in ("en", "en-us")


def test_a_task_whose_handler_cannot_run_is_marked_in_the_list_and_on_its_page(
    admin_client: Client, settings: Any, tmp_path: Any
) -> None:
    settings.SCHEDULER_SCRIPTS_PATH = str(tmp_path)
    (tmp_path / "fine.py").write_text("def run() -> None:\n    pass\n")
    (tmp_path / "broken.py").write_text("def run(:\n")
    missing = make_task(name="missing", handler_path="scripts:gone_<b>")
    broken = make_task(name="broken", handler_path="scripts:broken")
    fine = make_task(name="fine", handler_path="scripts:fine")

    listing = admin_client.get(TASK_CHANGELIST).content.decode()
    pages = {
        task.name: admin_client.get(task_url("change", task)).content.decode()
        for task in (missing, broken, fine)
    }

    rows = {
        task.name: listing.split('href="%s"' % task_url("change", task), 1)[1].split(
            "</tr>", 1
        )[0]
        for task in (missing, broken, fine)
    }
    assert "handler cannot run" in rows["missing"]
    assert "handler cannot run" in rows["broken"]
    assert "handler cannot run" not in rows["fine"]
    assert 'id="scheduler-handler-problem"' in pages["missing"]
    assert "gone_&lt;b&gt;" in pages["missing"] and "gone_<b>" not in pages["missing"]
    assert "is broken" in pages["broken"]
    assert "register the function" in pages["broken"]
    assert 'id="scheduler-handler-problem"' not in pages["fine"]


def test_a_long_name_may_break_after_underscores_and_stays_escaped(
    admin_client: Client,
) -> None:
    make_task(name="nightly_<b>report</b>")

    content = admin_client.get(TASK_CHANGELIST).content.decode()

    assert "nightly_<wbr>&lt;b&gt;report&lt;/b&gt;</a>" in content
    assert "<b>report" not in content
