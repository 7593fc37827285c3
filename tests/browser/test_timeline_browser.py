"""The Timeline page in a real browser: its cells, where they lead, the filters, the width."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone

from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from scheduler_app.services.timeline import SPANS_BY_KEY, timeline_grid
from tests.factories import make_cron_task, make_fire

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CI) before expect is needed
    expect = None  # type: ignore[assignment]

TIMELINE = "/admin/scheduler_app/scheduledtask/timeline/"


def cron_task(name: str, cron: str, **fields: Any) -> ScheduledTask:
    created = timezone.now() - dt.timedelta(days=3)
    return make_cron_task(cron, created=created, name=name, **fields)


def fired(
    task: ScheduledTask, at: dt.datetime, status: str = "success"
) -> TaskExecution:
    finished = at + dt.timedelta(seconds=1)
    return make_fire(task, at, status, started_at=at, finished_at=finished)


@pytest.fixture
def history() -> dict[str, Any]:
    """A task every 15 minutes over the last day: successes, one failure, a gap;
    another one failing, and a scheduler that looks alive."""
    SchedulerInstance.objects.create(
        instance_id="web-1:4242:9f1c2a",
        hostname="web-1",
        pid=4242,
        is_leader=True,
        last_heartbeat_at=timezone.now() + dt.timedelta(minutes=5),
    )
    now = timezone.now()
    grid, now_slot = timeline_grid(SPANS_BY_KEY["24h"], now=now)
    ahead = grid.slot_start(now_slot + 1)
    steady = cron_task("orders_sync", "*/15 * * * *", next_run_at=ahead)
    failing = cron_task("nightly_report", "*/15 * * * *", next_run_at=ahead)
    ScheduledTask.objects.filter(pk=failing.pk).update(health="failing")
    runs: dict[str, Any] = {"steady": steady, "failing": failing}
    for slot in range(now_slot + 1):  # now's slot too: its fire went by
        at = grid.slot_start(slot)
        if slot in (40, 41):  # no run: two missed fires
            continue
        if slot == 60:
            runs["failed"] = fired(steady, at, "failed")
        else:
            fired(steady, at)
        fired(failing, at, "failed" if slot > 80 else "success")
    return runs


def test_the_timeline_colours_each_task_s_slots_and_opens_their_runs(
    page: Any, live_server: Any, history: dict[str, Any], screenshot: Any
) -> None:
    page.goto(live_server.url + TIMELINE)
    row = page.locator('.tl-row[data-task="orders_sync"]')
    legend = page.locator("#timeline-legend")
    expect(legend).to_contain_text("failed")
    expect(legend).to_contain_text("missed")
    expect(legend).to_contain_text("upcoming")

    # Successes as bars, the gap as missed, the failure alone, the day ahead upcoming.
    expect(row.locator(".tl-failed")).to_have_count(1)
    expect(row.locator(".tl-missed")).to_have_count(1)
    expect(row.locator(".tl-success")).to_have_count(3)
    expect(row.locator(".tl-upcoming")).to_have_count(1)
    failed = row.locator(".tl-failed")
    expect(failed).to_have_attribute(
        "title", re.compile(r"^Run #%d, .*: 1 Failed$" % history["failed"].pk)
    )
    expect(row.locator(".tl-missed")).to_have_attribute(
        "title", re.compile("fires were due and no run was recorded")
    )
    # The day ahead lies right of now.
    ahead = row.locator(".tl-ahead").bounding_box()
    upcoming = row.locator(".tl-upcoming").bounding_box()
    assert upcoming["x"] >= ahead["x"] - 1
    assert row.locator(".tl-failed").bounding_box()["x"] < ahead["x"]
    screenshot(page, "timeline")

    failed.click()
    expect(page).to_have_url(
        re.compile(
            r"/admin/scheduler_app/taskexecution/%d/change/$" % history["failed"].pk
        )
    )


def test_a_bar_of_runs_opens_exactly_its_runs(
    page: Any, live_server: Any, history: dict[str, Any]
) -> None:
    page.goto(live_server.url + TIMELINE + "?span=7d")
    # Hourly slots: the 15-minute task's last hours are one bar of successes.
    bar = page.locator('.tl-row[data-task="orders_sync"] .tl-success').last
    title = bar.get_attribute("title") or ""
    runs = int(re.search(r": (\d+) runs \(", title).group(1))  # type: ignore[union-attr]

    bar.click()

    expect(page.locator("#changelist-filter")).to_contain_text("fire time")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(runs)
    expect(page.locator("#result_list tbody")).not_to_contain_text("Failed")


def test_filters_narrow_the_rows(
    page: Any, live_server: Any, history: dict[str, Any]
) -> None:
    page.goto(live_server.url + TIMELINE)

    page.select_option("#id_health", "failing")
    page.click("#timeline-filters input[type=submit]")

    expect(page.locator(".tl-row[data-task]")).to_have_count(1)
    expect(page.locator(".tl-row[data-task]")).to_have_attribute(
        "data-task", "nightly_report"
    )
    expect(page.locator("#id_health")).to_have_value("failing")


def test_the_timeline_fits_a_laptop_screen(
    page: Any, live_server: Any, history: dict[str, Any]
) -> None:
    page.goto(live_server.url + TIMELINE + "?span=30d")

    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280
    track = page.locator('.tl-row[data-task="orders_sync"] .tl-track').bounding_box()
    assert track["width"] > 600
