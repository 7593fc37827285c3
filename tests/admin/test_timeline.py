"""The Timeline page (admin/timeline.py): rows, cells and their links, filters, bounds."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from scheduler_app.admin import timeline as timeline_admin
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services.timeline import SPANS_BY_KEY, timeline_grid
from tests.admin.helpers import (
    EXECUTION_CHANGELIST,
    HOSTILE,
    HOSTILE_ESCAPED,
    execution_url,
    staff_user,
    task_url,
)
from tests.factories import make_cron_task, make_fire

pytestmark = pytest.mark.django_db

TIMELINE = reverse("admin:scheduler_app_scheduledtask_timeline")
ADMIN_INDEX = reverse("admin:index")
CELL = re.compile(
    r'<a class="tl-cell tl-(?P<kind>\w+)" style="grid-column:(?P<column>\d+) / span '
    r'(?P<width>\d+)" href="(?P<href>[^"]*)" title="(?P<title>[^"]*)"'
)


def hourly_task(name: str = "hourly", **fields: object) -> ScheduledTask:
    return make_cron_task(
        "0 * * * *",
        created=timezone.now() - dt.timedelta(days=40),
        name=name,
        timezone="",
        **fields,
    )


def fired(
    task: ScheduledTask, at: dt.datetime, status: str = "success"
) -> TaskExecution:
    return make_fire(task, at, status, staged=dt.timedelta(seconds=2))


def cells(response: object, task: ScheduledTask) -> list[dict[str, str]]:
    html = response.content.decode()  # type: ignore[attr-defined]
    start = html.index('data-task="%s"' % task.name)
    row = html[start : html.index("</div>", start)]
    return [match.groupdict() for match in CELL.finditer(row)]


def test_each_task_is_a_row_with_its_runs_missed_and_upcoming_fires(
    admin_client: Client,
) -> None:
    now = timezone.now()
    grid, now_slot = timeline_grid(SPANS_BY_KEY["7d"], now=now)
    task = hourly_task(next_run_at=grid.slot_start(now_slot + 1))
    lone = fired(task, grid.slot_start(now_slot - 2), "failed")
    for back in (0, 1):
        fired(task, grid.slot_start(now_slot - back))

    response = admin_client.get(TIMELINE + "?span=7d")

    assert response.status_code == 200
    found = cells(response, task)
    kinds = [(cell["kind"], int(cell["column"]), int(cell["width"])) for cell in found]
    # Columns count from 1; the task existed for 40 days, so every hour before
    # its first run is missed.
    assert kinds == [
        ("missed", 1, now_slot - 2),
        ("failed", now_slot - 1, 1),
        ("success", now_slot, 2),
        ("upcoming", now_slot + 2, 24),
    ]
    failed = next(cell for cell in found if cell["kind"] == "failed")
    assert failed["href"] == execution_url(lone)
    assert "Run #%d" % lone.pk in failed["title"]
    upcoming = next(cell for cell in found if cell["kind"] == "upcoming")
    assert upcoming["href"] == task_url("change", task)


def test_a_cell_of_several_runs_opens_exactly_those_runs(admin_client: Client) -> None:
    now = timezone.now()
    grid, now_slot = timeline_grid(SPANS_BY_KEY["7d"], now=now)
    task = hourly_task()
    inside = [fired(task, grid.slot_start(now_slot - back)) for back in (2, 3)]
    before = fired(task, grid.slot_start(now_slot - 5))
    fired(task, grid.slot_start(now_slot - 1), "failed")

    found = cells(admin_client.get(TIMELINE + "?span=7d"), task)
    [pair] = [
        cell for cell in found if cell["kind"] == "success" and cell["width"] == "2"
    ]
    listed = admin_client.get(pair["href"].replace("&amp;", "&"))

    assert "2 runs" in pair["title"]
    assert listed.status_code == 200
    assert sorted(run.pk for run in listed.context["cl"].result_list) == sorted(
        run.pk for run in inside
    )
    assert before.pk not in [run.pk for run in listed.context["cl"].result_list]


def test_the_fire_time_filter_refuses_what_is_not_a_time(admin_client: Client) -> None:
    response = admin_client.get(EXECUTION_CHANGELIST + "?fired_gte=yesterday")

    # The admin's answer to a lookup it cannot apply: back to the list, ?e=1.
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_filters_by_health_status_and_handler(admin_client: Client) -> None:
    hourly_task("plain")
    hourly_task("paused-one", status=ScheduledTask.Status.PAUSED)
    hourly_task("other-handler", handler_path="tests.sample_handlers.runs:ok")
    ScheduledTask.objects.filter(name="plain").update(health="failing")

    def names(query: str) -> set[str]:
        response = admin_client.get(TIMELINE + query)
        assert response.status_code == 200
        return {row.task.name for row in response.context["timeline"].rows}

    assert names("?health=failing") == {"plain"}
    assert names("?status=paused") == {"paused-one"}
    assert names("?handler=tests.sample_handlers.runs:ok") == {"other-handler"}
    assert {"plain", "paused-one", "other-handler"} <= names("")


def test_a_bad_filter_value_is_named_and_ignored(admin_client: Client) -> None:
    hourly_task("plain")

    response = admin_client.get(TIMELINE + "?span=1y&handler=os:system")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Range: " in html and "Handler: " in html
    assert "Select a valid choice" in html
    assert response.context["timeline"].span.key == "24h"
    assert "plain" in {row.task.name for row in response.context["timeline"].rows}


def test_the_page_needs_the_view_permission(client: Client) -> None:
    client.force_login(staff_user(username="nobody"))
    assert client.get(TIMELINE).status_code == 403

    client.force_login(staff_user("view_scheduledtask", username="viewer"))
    assert client.get(TIMELINE).status_code == 200


def test_task_names_are_escaped(admin_client: Client) -> None:
    hourly_task(HOSTILE)

    html = admin_client.get(TIMELINE).content.decode()

    assert HOSTILE not in html
    assert HOSTILE_ESCAPED in html


def test_queries_do_not_grow_with_the_tasks(admin_client: Client) -> None:
    now = timezone.now()
    grid, now_slot = timeline_grid(SPANS_BY_KEY["24h"], now=now)

    def add(count: int) -> None:
        for _ in range(count):
            task = hourly_task("t-%d" % ScheduledTask.objects.count())
            for slot in range(0, now_slot, 4):
                fired(task, grid.slot_start(slot))

    add(2)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(TIMELINE)
    add(10)
    with CaptureQueriesContext(connection) as many:
        response = admin_client.get(TIMELINE)

    assert len(response.context["timeline"].rows) == 13  # the system task too
    assert len(many.captured_queries) == len(few.captured_queries) <= 12


def test_rows_come_in_pages(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timeline_admin, "ROWS_PER_PAGE", 2)
    for name in ("a", "b", "c"):
        hourly_task("page-" + name)

    first = admin_client.get(TIMELINE + "?status=active")
    second = admin_client.get(TIMELINE + "?status=active&p=2")

    assert [row.task.name for row in first.context["timeline"].rows] == [
        "cleanup_executions",
        "page-a",
    ]
    assert [row.task.name for row in second.context["timeline"].rows] == [
        "page-b",
        "page-c",
    ]
    assert 'href="?status=active&amp;p=2"' in first.content.decode()


def test_the_operations_links_lead_to_the_timeline(admin_client: Client) -> None:
    assert TIMELINE in admin_client.get(ADMIN_INDEX).content.decode()
    assert (
        TIMELINE
        in admin_client.get(
            reverse("admin:scheduler_app_schedulerinstance_health")
        ).content.decode()
    )
    assert (
        TIMELINE
        in admin_client.get(
            reverse("admin:scheduler_app_scheduledtask_changelist")
        ).content.decode()
    )
