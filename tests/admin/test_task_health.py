"""The task admin's health and alerts: the badge, filter and sort of the list, the
task page's health and its Alerts fieldset (thresholds and channels)."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape as html_unescape
from typing import Any

import pytest
from django.contrib import messages
from django.test import Client
from django.utils import timezone

from scheduler_app import services
from scheduler_app.admin.display import health_badge
from scheduler_app.models import AlertChannel, ScheduledTask
from tests.admin.helpers import (
    HOSTILE,
    HOSTILE_ESCAPED,
    TASK_ADD,
    TASK_CHANGELIST,
    add_form_data,
    form_errors,
    sent_messages,
    task_url,
)
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def opened_with(page: Any) -> dict[str, str]:
    html = page.content.decode()
    return {
        name: html_unescape(match.group(1))
        for name in ("loaded_version", "loaded_state")
        if (match := re.search(r'name="%s" value="([^"]*)"' % name, html))
    }


def edit_data(task: ScheduledTask, **overrides: Any) -> dict[str, Any]:
    return add_form_data(
        name=task.name,
        handler_path=task.handler_path,
        handler_kwargs="{}",
        task_type=ScheduledTask.TaskType.INTERVAL,
        cron_expression="",
        interval_seconds="60",
        **overrides,
    )


def make_channel(name: str, **fields: Any) -> AlertChannel:
    return AlertChannel.objects.create(
        name=name, kind="email", target="%s@example.com" % name, **fields
    )


# The list


def test_the_list_shows_each_tasks_health_badge_with_since_when(
    admin_client: Client,
) -> None:
    since = timezone.now() - dt.timedelta(minutes=5)
    make_task(name="broken", health="failing", health_since=since)
    make_task(name="fine", health="up", health_since=since)
    make_task(name="fresh")

    page = admin_client.get(TASK_CHANGELIST).content.decode()

    assert re.search(
        r'class="scheduler-health scheduler-health--bad" data-health="failing" '
        r'title="Since [^"]+ \(5\xa0minutes ago\)">Failing<',
        page,
    )
    assert 'scheduler-health--good" data-health="up"' in page
    assert 'data-health="new" title="Not checked by a scheduler yet">New<' in page


@pytest.mark.parametrize(
    ("state", "tone"),
    [
        ("up", "good"),
        ("new", "quiet"),
        ("paused", "quiet"),
        ("late", "warning"),
        ("running_long", "warning"),
        ("failing", "bad"),
        ("missed", "bad"),
    ],
)
def test_each_health_state_has_its_colour(state: str, tone: str) -> None:
    assert "scheduler-health--%s" % tone in health_badge(state)


def test_a_badge_of_an_unknown_value_is_escaped() -> None:
    badge = health_badge(HOSTILE)

    assert HOSTILE not in badge and HOSTILE_ESCAPED in badge
    assert "scheduler-health--quiet" in badge


def test_the_list_filters_by_health(admin_client: Client) -> None:
    make_task(name="broken", health="failing")
    make_task(name="late-one", health="late")
    make_task(name="fine", health="up")

    response = admin_client.get(TASK_CHANGELIST, {"health__exact": "failing"})

    assert [task.name for task in response.context["cl"].result_list] == ["broken"]


def test_the_list_sorts_by_health(admin_client: Client) -> None:
    make_task(name="b", health="up")
    make_task(name="a", health="failing")
    make_task(name="c", health="late")
    response = admin_client.get(TASK_CHANGELIST)
    column = response.context["cl"].list_display.index("health_display")

    response = admin_client.get(TASK_CHANGELIST, {"o": str(column)})

    names = [
        task.name
        for task in response.context["cl"].result_list
        if task.name in ("a", "b", "c")
    ]
    assert names == ["a", "c", "b"]  # failing, late, up: by the stored value


def test_the_health_column_costs_no_query_per_row(
    admin_client: Client, django_assert_max_num_queries: Any
) -> None:
    for index in range(20):
        make_task(name="t%02d" % index, health="up")
    admin_client.get(TASK_CHANGELIST)
    with django_assert_max_num_queries(12) as few:
        admin_client.get(TASK_CHANGELIST)
    ScheduledTask.objects.all().delete()
    make_task(name="only", health="up")
    with django_assert_max_num_queries(len(few)):
        admin_client.get(TASK_CHANGELIST)


# The task page


def test_the_task_page_shows_health_since_read_only_and_the_alerts_fieldset(
    admin_client: Client,
) -> None:
    make_channel("ops")
    task = make_task(health="running_long", health_since=timezone.now())

    response = admin_client.get(task_url("change", task))

    page = response.content.decode()
    assert 'data-health="running_long"' in page
    assert "scheduler-health-since" in page and "Since " in page
    assert "health" not in response.context["adminform"].form.fields
    fieldsets = dict(response.context["adminform"].fieldsets)
    assert fieldsets["Alerts"]["fields"] == [
        "failure_threshold",
        "recovery_threshold",
        "alert_grace_seconds",
        "max_run_seconds",
        "alert_channels",
    ]
    assert 'type="checkbox" name="alert_channels"' in page


def test_a_task_is_created_with_its_thresholds_and_channels(
    admin_client: Client,
) -> None:
    ops = make_channel("ops")
    make_channel("other")

    response = admin_client.post(
        TASK_ADD,
        add_form_data(
            failure_threshold="3",
            recovery_threshold="2",
            alert_grace_seconds="300",
            max_run_seconds="600",
            alert_channels=[str(ops.pk)],
        ),
    )

    assert response.status_code == 302, form_errors(response)
    task = ScheduledTask.objects.get(name="nightly_sync")
    assert (
        task.failure_threshold,
        task.recovery_threshold,
        task.alert_grace_seconds,
        task.max_run_seconds,
    ) == (3, 2, 300, 600)
    assert list(task.alert_channels.all()) == [ops]


def test_a_change_of_channels_alone_bumps_the_version_and_a_plain_save_does_not(
    admin_client: Client,
) -> None:
    ops = make_channel("ops")
    task = make_task(name="every_minute")
    version = task.version

    opened = opened_with(admin_client.get(task_url("change", task)))
    response = admin_client.post(
        task_url("change", task),
        edit_data(task, alert_channels=[str(ops.pk)], **opened),
    )
    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert list(task.alert_channels.all()) == [ops]
    assert task.version == version + 1

    opened = opened_with(admin_client.get(task_url("change", task)))
    response = admin_client.post(
        task_url("change", task),
        edit_data(task, alert_channels=[str(ops.pk)], **opened),
    )
    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.version == version + 1  # saved as it was: nothing written

    opened = opened_with(admin_client.get(task_url("change", task)))
    admin_client.post(task_url("change", task), edit_data(task, **opened))
    task.refresh_from_db()
    assert list(task.alert_channels.all()) == []
    assert task.version == version + 2


def test_channels_changed_meanwhile_are_named_in_the_refusal(
    admin_client: Client,
) -> None:
    ops = make_channel("ops")
    task = make_task(name="every_minute")
    opened = opened_with(admin_client.get(task_url("change", task)))
    services.task_update(task=task, changes={"alert_channels": [ops.pk]})

    response = admin_client.post(
        task_url("change", task), edit_data(task, description="mine", **opened)
    )

    [message] = form_errors(response)["__all__"]
    assert "Alert channels" in message


def test_a_zero_threshold_gets_the_services_message_on_its_field(
    admin_client: Client,
) -> None:
    response = admin_client.post(TASK_ADD, add_form_data(failure_threshold="0"))

    [message] = form_errors(response)["failure_threshold"]
    assert message.startswith("Failure threshold: enter a whole number from 1")


def test_a_disabled_channel_is_accepted_with_a_warning(admin_client: Client) -> None:
    off = make_channel("quiet", enabled=False)

    page = admin_client.get(TASK_ADD).content.decode()
    assert "quiet (E-mail) — disabled: gets no alert" in page
    response = admin_client.post(
        TASK_ADD, add_form_data(alert_channels=[str(off.pk)]), follow=True
    )

    task = ScheduledTask.objects.get(name="nightly_sync")
    assert list(task.alert_channels.all()) == [off]
    warnings = [
        text for level, text in sent_messages(response) if level == messages.WARNING
    ]
    assert warnings and "quiet" in warnings[0]
