"""The admin in a real browser: the generated parameter form, run now, a live log tail."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone

from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from tests.browser.conftest import InProcessExecutor, new_page
from tests.factories import make_execution, make_task
from tests.sample_handlers.browser import FINISH, RELEASE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CI) before expect is needed
    expect = None


@pytest.fixture
def heartbeat() -> None:
    """A scheduler instance that looks alive, so pages show no "no scheduler" banner."""
    SchedulerInstance.objects.create(
        instance_id="web-1:4242:9f1c2a",
        hostname="web-1",
        pid=4242,
        version="0.1.0",
        is_leader=True,
        last_heartbeat_at=timezone.now() + dt.timedelta(minutes=5),
    )


def test_create_a_task_from_the_parameter_form_and_run_it(
    page: Any,
    live_server: Any,
    executor: InProcessExecutor,
    screenshot: Any,
    heartbeat: None,
) -> None:
    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/add/")
    page.fill("#id_name", "sync_three_days")
    page.fill("#id_description", "Synchronise the last three days of orders.")

    # Choosing the handler brings its parameter inputs, generated from run()'s signature.
    expect(page.locator("input[name=param_days]")).to_have_count(0)
    page.select_option("select[name=handler_path]", "scripts:data_sync")
    days = page.locator("input[name=param_days]")
    expect(days).to_be_visible()
    expect(days).to_have_attribute("placeholder", "7")
    expect(page.locator("label[for=id_param_days]")).to_have_text("Days:")
    expect(page.locator("#id_param_days_helptext")).to_contain_text("Type: int")
    expect(page.locator(".scheduler-handler-description")).to_contain_text(
        "Synchronise the given number of days"
    )
    days.fill("3")
    page.fill("input[name=param_target]", "'orders'")

    # A handler without parameters removes the inputs; coming back restores what was typed.
    page.select_option("select[name=handler_path]", "scripts:example_task")
    expect(page.locator("input[name=param_days]")).to_have_count(0)
    page.select_option("select[name=handler_path]", "scripts:data_sync")
    expect(page.locator("input[name=param_days]")).to_have_value("3")
    expect(page.locator("input[name=param_target]")).to_have_value("'orders'")

    # Only the chosen schedule type's fields show, with a live preview.
    page.select_option("select[name=task_type]", "interval")
    expect(page.locator(".form-row.field-cron_expression")).to_be_hidden()
    expect(page.locator(".form-row.field-interval_seconds")).to_be_visible()
    page.select_option("select[name=task_type]", "cron")
    expect(page.locator(".form-row.field-interval_seconds")).to_be_hidden()
    page.fill("#id_cron_expression", "0 2 * * *")
    preview = page.locator("#scheduler-preview")
    expect(preview).to_contain_text("At 02:00 AM")
    expect(preview.locator("li")).to_have_count(5)
    page.locator(
        "fieldset", has=page.locator("input[name=param_days]")
    ).scroll_into_view_if_needed()
    screenshot(page, "task-form")

    page.click("input[name=_save]")
    expect(page.locator("ul.messagelist")).to_contain_text("sync_three_days")
    task = ScheduledTask.objects.get(name="sync_three_days")
    assert task.handler_kwargs == {"days": "3", "target": "'orders'"}
    assert task.next_run_at is not None

    # Run now from the change page: the execution page opens and the run finishes there.
    page.click("text=sync_three_days")
    page.click("#scheduler-run-now")
    expect(page).to_have_url(
        re.compile(r"/admin/scheduler_app/taskexecution/\d+/change/$")
    )
    log = page.locator("#execution-log")
    expect(log).to_contain_text("Synchronising 3 days of 'orders'")
    expect(page.locator("[data-live-status]").first).to_contain_text("Success")
    execution = TaskExecution.objects.get(task=task)
    assert execution.status == TaskExecution.Status.SUCCESS
    assert execution.kwargs["days"] == 3
    expect(page.locator("#content")).to_contain_text('"days": 3')


def test_the_log_tails_live_while_the_run_goes_on(
    page: Any,
    live_server: Any,
    executor: InProcessExecutor,
    screenshot: Any,
    heartbeat: None,
) -> None:
    task = make_task(
        name="waits_for_the_test",
        description="Logs a line, then waits until the test releases it.",
        handler_path="tests.sample_handlers.browser:wait_for_release",
        task_type=ScheduledTask.TaskType.MANUAL,
        interval_seconds=None,
    )
    page.goto(
        live_server.url + "/admin/scheduler_app/scheduledtask/%d/change/" % task.pk
    )
    page.click("#scheduler-run-now")
    expect(page).to_have_url(re.compile(r"/taskexecution/\d+/change/$"))
    # Marks this document: if the page reloaded, the mark would be gone.
    page.evaluate("window.stillTheSamePage = true")

    log = page.locator("#execution-log")
    expect(log).to_contain_text("Waiting for the test to release me")
    expect(page.locator("[data-live-status]").first).to_contain_text("Running")
    assert page.evaluate("window.stillTheSamePage") is True
    execution = TaskExecution.objects.get(task=task)
    assert execution.status == TaskExecution.Status.RUNNING
    screenshot(page, "execution-live-log")

    RELEASE.set()

    expect(page.locator("[data-live-status]").first).to_contain_text("Success")
    expect(log).to_contain_text("Released; finishing")
    execution.refresh_from_db()
    assert execution.status == TaskExecution.Status.SUCCESS
    assert execution.result == {"released": True}


def test_the_task_list_and_the_health_page(
    browser: Any, live_server: Any, admin_user: Any, screenshot: Any
) -> None:
    now = timezone.now()
    nightly = make_task(
        name="nightly_orders_sync",
        description="Synchronise orders",
        handler_path="scripts:data_sync",
        handler_kwargs={"days": "3"},
        task_type="cron",
        cron_expression="0 2 * * *",
        interval_seconds=None,
        next_run_at=now + dt.timedelta(minutes=40),
        last_run_at=now - dt.timedelta(hours=22),
        run_count=30,
        success_count=27,
        fail_count=3,
        # The totals the engine would have kept for the 12 runs below (avg 2.0 s).
        duration_count=12,
        duration_total_ms=sum(1200 + 150 * index for index in range(12)),
    )
    for index in range(12):
        status = "failed" if index in (3, 9) else "success"
        make_execution(
            nightly,
            status=status,
            duration_ms=1200 + 150 * index,
            created_at=now - dt.timedelta(days=12 - index),
        )
    make_task(
        name="every_six_hours",
        interval_seconds=6 * 3600,
        next_run_at=now + dt.timedelta(hours=2),
    )
    make_task(name="paused_report", status="paused", interval_seconds=3600)
    SchedulerInstance.objects.create(
        instance_id="web-1:4242:9f1c2a",
        hostname="web-1",
        pid=4242,
        version="0.1.0",
        is_leader=True,
        last_heartbeat_at=now,
    )

    page = new_page(browser, live_server, admin_user)
    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/")
    row = page.locator("tr", has=page.locator("a", has_text="nightly_orders_sync"))
    expect(row).to_contain_text("At 02:00 AM")
    expect(row).to_contain_text("in 39 minutes")
    expect(row).to_contain_text("90%")
    expect(page.locator("#scheduler-warning")).to_have_count(0)
    screenshot(page, "task-list")

    page.goto(live_server.url + "/admin/")
    expect(page.locator("#dashboard-due")).to_contain_text("nightly_orders_sync")
    expect(page.locator("#dashboard-scheduler")).to_contain_text("Running")
    screenshot(page, "dashboard")

    page.goto(live_server.url + "/admin/scheduler_app/schedulerinstance/health/")
    expect(page.locator("#scheduler-instances")).to_contain_text("web-1:4242:9f1c2a")
    expect(page.locator("#scheduler-due")).to_contain_text("nightly_orders_sync")
    screenshot(page, "health")
    page.context.close()

    chinese = new_page(browser, live_server, admin_user, language="zh-hans")
    chinese.goto(live_server.url + "/admin/scheduler_app/scheduledtask/")
    expect(chinese.locator("tr", has_text="nightly_orders_sync")).to_contain_text(
        "在 02:00"
    )
    screenshot(chinese, "task-list-zh-hans")
    chinese.context.close()


def test_the_live_log_shows_control_characters_escaped_and_markup_as_text(
    page: Any, live_server: Any, executor: InProcessExecutor, heartbeat: None
) -> None:
    task = make_task(
        name="colourful",
        handler_path="tests.sample_handlers.browser:log_control_characters",
        task_type=ScheduledTask.TaskType.MANUAL,
        interval_seconds=None,
    )
    page.goto(
        live_server.url + "/admin/scheduler_app/scheduledtask/%d/change/" % task.pk
    )
    page.click("#scheduler-run-now")
    log = page.locator("#execution-log")
    expect(log).to_contain_text("Waiting for the test to release me")
    page.evaluate("window.stillTheSamePage = true")

    RELEASE.set()

    # The line came through the page's script, not a reload.
    expect(log).to_contain_text("\\x1b[31mred\\x1b[0m bell\\x07 <b>bold</b>")
    assert page.evaluate("window.stillTheSamePage") is True
    controls = log.locator(".scheduler-control")
    assert controls.all_text_contents() == ["\\x1b", "\\x1b", "\\x07"]
    assert controls.first.get_attribute("title") == "U+001B"
    assert log.locator("b").count() == 0
    assert "\x1b" not in log.text_content()
    FINISH.set()
    expect(page.locator("[data-live-status]").first).to_contain_text("Success")


@pytest.mark.parametrize("width", [1280, 1440])
def test_the_task_list_fits_a_laptop_screen(
    browser: Any, live_server: Any, admin_user: Any, width: int
) -> None:
    now = timezone.now()
    make_task(
        name="quarterly_finance_reconciliation_export",
        task_type="cron",
        cron_expression="15,45 8-18/2 1-7,15-21 1,4,7,10 mon-fri",
        interval_seconds=None,
        next_run_at=now + dt.timedelta(days=3),
        last_run_at=now - dt.timedelta(hours=5),
        run_count=10,
        success_count=9,
        fail_count=1,
        duration_count=10,
        duration_total_ms=123_456,
    )
    make_task(name="paused_report", status="paused", interval_seconds=3600)

    page = new_page(browser, live_server, admin_user)
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/")

    overflow = page.evaluate(
        """() => {
            const table = document.querySelector('#result_list');
            const box = table.closest('.results');
            return {
                table: table.scrollWidth,
                box: box.clientWidth,
                page: document.documentElement.clientWidth,
                scroll: document.documentElement.scrollWidth,
                columns: [...table.querySelectorAll('thead th')].map(
                    (th) => th.className + ':' + Math.round(th.getBoundingClientRect().width)
                ).join(' '),
            };
        }"""
    )
    assert overflow["scroll"] <= overflow["page"], overflow  # no sideways scrolling
    # The results box scrolls sideways when its table is wider: Avg duration and
    # Success rate would be out of sight.
    assert overflow["table"] <= overflow["box"], overflow["columns"]
    page.context.close()


def test_a_run_page_opened_while_pending_follows_the_run_as_a_whole(
    page: Any, live_server: Any
) -> None:
    task = make_task(name="followed", task_type="manual", interval_seconds=None)
    execution = make_execution(task)
    page.goto(
        live_server.url + "/admin/scheduler_app/taskexecution/%d/change/" % execution.pk
    )
    page.evaluate("window.stillTheSamePage = true")
    expect(page.locator(".breadcrumbs")).to_contain_text("(Pending)")
    started = page.locator('.field-started_display [data-live-field="started"]')
    expect(started).to_have_text("—")

    # What a scheduler's claim writes: the page shows it without a reload.
    TaskExecution.objects.filter(pk=execution.pk).update(
        status=TaskExecution.Status.RUNNING,
        started_at=timezone.now(),
        instance_id="worker-7:42:abcdef",
    )

    expect(page.locator(".breadcrumbs")).to_contain_text("followed, run #")
    expect(page.locator(".breadcrumbs")).to_contain_text("(Running)")
    expect(page.locator("[data-live-status]").first).to_contain_text("Running")
    expect(page.locator('[data-live-field="instance"]')).to_have_text(
        "worker-7:42:abcdef"
    )
    expect(started).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$"))
    assert page.evaluate("window.stillTheSamePage") is True


def test_cancel_this_run_asks_first(page: Any, live_server: Any) -> None:
    execution = make_execution(
        make_task(name="asked", task_type="manual", interval_seconds=None)
    )
    page.goto(
        live_server.url + "/admin/scheduler_app/taskexecution/%d/change/" % execution.pk
    )
    questions: list[str] = []

    def dismiss(dialog: Any) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    page.click("#scheduler-cancel")  # the dialog is answered before click returns

    assert page.url.endswith("/taskexecution/%d/change/" % execution.pk)
    assert questions and "Cancel this run?" in questions[0]
    assert TaskExecution.objects.get(pk=execution.pk).status == "pending"


def test_the_preview_shows_an_invalid_cron_s_error_and_a_past_date_as_past(
    page: Any, live_server: Any
) -> None:
    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/add/")
    page.select_option("select[name=task_type]", "cron")
    page.fill("#id_cron_expression", "61 * * * *")
    preview = page.locator("#scheduler-preview")

    expect(preview.locator(".scheduler-preview-error")).to_contain_text("61")
    expect(preview).not_to_contain_text("At 61 minutes past the hour")

    page.select_option("select[name=task_type]", "date")
    page.fill("#id_run_date_0", "2020-01-02")
    page.fill("#id_run_date_1", "03:04:05")
    page.locator("#id_run_date_1").dispatch_event("change")
    expect(preview.locator(".scheduler-preview-error")).to_contain_text(
        "is in the past"
    )
    expect(preview).not_to_contain_text("does not fire by itself")


def test_the_task_list_marks_a_handler_that_cannot_run_and_its_page_says_why(
    page: Any, live_server: Any, heartbeat: None
) -> None:
    task = make_task(name="orphan", handler_path="scripts:gone")

    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/")
    row = page.locator("tr", has=page.locator("a", has_text="orphan"))
    expect(row.locator(".scheduler-handler-problem")).to_be_visible()

    page.goto(
        live_server.url + "/admin/scheduler_app/scheduledtask/%d/change/" % task.pk
    )
    expect(page.locator("#scheduler-handler-problem")).to_contain_text("scripts:gone")


def test_staged_fires_show_as_upcoming_not_among_past_runs(
    page: Any, live_server: Any, heartbeat: None
) -> None:
    task = make_task(name="staged_ahead")
    done = make_execution(task, status="success", started_at=timezone.now())
    staged = make_execution(
        task,
        trigger_type="scheduled",
        scheduled_for=timezone.now() + dt.timedelta(minutes=5),
    )
    runs = live_server.url + "/admin/scheduler_app/taskexecution/"

    page.goto(runs)
    expect(page.locator("#result_list")).to_contain_text(str(done.pk))
    ids = page.locator("#result_list tbody th.field-id").all_inner_texts()
    assert str(staged.pk) not in ids
    page.click("#changelist-filter >> text=Upcoming (fires staged ahead)")
    expect(page.locator("#result_list tbody th.field-id")).to_have_text(
        [str(staged.pk)]
    )


def test_run_now_without_a_scheduler_says_the_run_waits(
    page: Any, live_server: Any
) -> None:
    task = make_task(
        name="waits_for_a_scheduler", task_type="manual", interval_seconds=None
    )
    page.goto(
        live_server.url + "/admin/scheduler_app/scheduledtask/%d/change/" % task.pk
    )
    expect(page.locator("#scheduler-warning")).to_be_visible()

    page.click("#scheduler-run-now")

    expect(page.locator("ul.messagelist li.warning")).to_contain_text(
        "no scheduler is running, so it waits until one starts"
    )
