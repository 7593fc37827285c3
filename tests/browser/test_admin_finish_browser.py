"""The admin's finishing touches in a real browser: runs named in words, stored
messages translated, the product's name and favicon, the Operations links, the
browsable API, a system task's delete refused with a reason, a run_task process
shown as a command line instance; times to the second; the dashboard's links."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from scheduler_app.models import (
    ScheduledTask,
    SchedulerInstance,
    TaskExecution,
    UserAPIKey,
)
from tests.browser.conftest import InProcessExecutor, new_page
from tests.factories import make_execution, make_sample_task, make_task, make_user
from tests.sample_handlers.browser import RELEASE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

try:
    from playwright.sync_api import expect
except ImportError:  # the fixtures skip (or fail under CI) before expect is needed
    expect = None  # type: ignore[assignment]

#: Longest a poll of the database waits for what the browser caused (seconds).
DEADLINE = 15


def _run_url(live_server: Any, execution: TaskExecution) -> str:
    return live_server.url + "/admin/scheduler_app/taskexecution/%d/change/" % (
        execution.pk
    )


def _task_url(live_server: Any, task: ScheduledTask, view: str = "change") -> str:
    return live_server.url + "/admin/scheduler_app/scheduledtask/%d/%s/" % (
        task.pk,
        view,
    )


def _poll_until(condition: Callable[[], bool], what: str) -> None:
    """Wait for what another thread does, up to DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "waited %d s for %s" % (DEADLINE, what)
        threading.Event().wait(0.05)


# Item 3: no raw internal labels


@pytest.mark.parametrize(
    ("language", "on_its_page", "on_the_task_page"),
    [
        (
            "en",
            "nightly_export, run #{id} (Success)",
            "nightly_export, run #{id} (Success)",
        ),
        (
            "zh-hans",
            "nightly_export，运行 #{id}（成功）",
            "nightly_export，运行 #{id}（成功）",
        ),
    ],
)
def test_a_run_is_named_by_its_task_number_and_translated_status(
    browser: Any,
    live_server: Any,
    admin_user: User,
    language: str,
    on_its_page: str,
    on_the_task_page: str,
) -> None:
    task = make_task(name="nightly_export")
    execution = make_execution(task, status="success")
    raw = "%d#%d" % (task.pk, execution.pk)
    page = new_page(browser, live_server, admin_user, language=language)

    page.goto(_run_url(live_server, execution))
    crumb = page.locator('.breadcrumbs [data-live-field="title"]')
    expect(crumb).to_have_text(on_its_page.format(id=execution.pk))
    expect(page.locator(".breadcrumbs")).not_to_contain_text(raw)

    # The task page's inline names each run the same way.
    page.goto(_task_url(live_server, task))
    inline = page.locator("#executions-group")
    name = inline.locator("tr.has_original td.original p")
    expect(name).to_have_count(1)
    expect(name).to_contain_text(on_the_task_page.format(id=execution.pk))
    expect(inline).not_to_contain_text(raw)
    expect(inline).not_to_contain_text("success")
    name.locator("a.inlineviewlink").click()
    expect(page).to_have_url(_run_url(live_server, execution))
    page.context.close()


def test_a_cancelled_run_s_stored_message_shows_in_the_reader_s_language(
    browser: Any, live_server: Any, admin_user: User
) -> None:
    # What the engine stores when a running run stops on request (in English,
    # the language of the process that ended it).
    execution = make_execution(
        make_task(name="stopped_early"),
        status="cancelled",
        error_message="Cancelled on request.",
    )

    english = new_page(browser, live_server, admin_user)
    english.goto(_run_url(live_server, execution))
    expect(english.locator(".field-error_display")).to_contain_text(
        "Cancelled on request."
    )
    english.context.close()

    chinese = new_page(browser, live_server, admin_user, language="zh-hans")
    chinese.goto(_run_url(live_server, execution))
    error = chinese.locator(".field-error_display")
    expect(error).to_contain_text("已按请求取消。")
    expect(error).not_to_contain_text("Cancelled on request.")
    expect(chinese.locator(".breadcrumbs")).to_contain_text("（已取消）")
    # The task page's recent runs too (their error column).
    chinese.goto(_task_url(live_server, execution.task))
    expect(chinese.locator("#executions-group td.field-error_display")).to_have_text(
        "已按请求取消。"
    )
    chinese.context.close()


# Item 9: smaller things


def test_a_new_api_key_is_for_the_signed_in_user_by_default(
    page: Any, live_server: Any, admin_user: User
) -> None:
    make_user("someone_else", is_staff=True)

    page.goto(live_server.url + "/admin/scheduler_app/userapikey/add/")
    user = page.locator("select#id_user")
    expect(user).to_have_value(str(admin_user.pk))
    expect(user.locator("option:checked")).to_have_text("admin")

    page.fill("#id_name", "deploy bot")
    page.click("input[name=_save]")
    expect(page.locator("ul.messagelist")).to_contain_text(
        "The API key for deploy bot is:"
    )
    assert UserAPIKey.objects.get(name="deploy bot").user == admin_user


def test_a_run_page_lists_the_defaults_the_run_used(
    page: Any, live_server: Any, executor: InProcessExecutor
) -> None:
    # add(a, b=1): b is not set on the task, so the run uses its default.
    task = make_sample_task("add", name="adds", handler_kwargs={"a": "2"})
    page.goto(_task_url(live_server, task))
    page.click("#scheduler-run-now")
    expect(page).to_have_url(re.compile(r"/taskexecution/\d+/change/$"))
    expect(page.locator("[data-live-status]").first).to_contain_text("Success")

    page.reload()  # the evaluated parameters are rendered with the page
    parameters = page.locator(".fieldBox.field-parameters")
    expect(parameters.locator("label")).to_have_text("Evaluated parameters:")
    expect(parameters).to_contain_text('"a": 2')
    expect(parameters).to_contain_text('"b": 1')
    expect(page.locator(".field-result_display")).to_contain_text('"sum": 3')


def test_the_favicon_resolves_to_an_image(page: Any, live_server: Any) -> None:
    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/")
    icon = page.locator("link[rel=icon]")
    expect(icon).to_have_count(1)
    href = icon.evaluate("link => link.href")  # absolute, as the browser resolves it

    response = page.request.get(href)

    assert response.status == 200, href
    assert response.headers["content-type"].startswith("image/"), response.headers
    assert b"<svg" in response.body()


def test_the_header_and_title_name_the_product(
    browser: Any, live_server: Any, admin_user: User
) -> None:
    page = new_page(browser, live_server, admin_user)
    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/")
    expect(page.locator("#site-name")).to_have_text("Scheduled tasks")
    expect(page).to_have_title(re.compile(r"\| Scheduled tasks$"))
    expect(page.locator("#header")).not_to_contain_text("Django administration")
    page.context.close()

    chinese = new_page(browser, live_server, admin_user, language="zh-hans")
    chinese.goto(live_server.url + "/admin/")
    expect(chinese.locator("#site-name")).to_have_text("定时任务")
    expect(chinese).to_have_title(re.compile(r"\| 定时任务$"))
    chinese.context.close()


def test_the_product_name_is_a_setting_read_per_request(
    page: Any, live_server: Any, settings: Any
) -> None:
    settings.ADMIN_SITE_HEADER = "Acme <jobs>"

    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/")

    expect(page.locator("#site-name")).to_have_text("Acme <jobs>")
    expect(page.locator("#site-name b")).to_have_count(0)
    expect(page).to_have_title(re.compile(r"\| Acme <jobs>$"))


@pytest.mark.parametrize(
    ("link", "heading"),
    [
        ("Scheduler health", "Scheduler health"),
        ("Locks", "Locks"),
        ("Timeline", "Timeline"),
    ],
)
def test_the_admin_index_links_the_operations_pages(
    page: Any, live_server: Any, link: str, heading: str
) -> None:
    page.goto(live_server.url + "/admin/")
    operations = page.locator("#scheduler-operations")
    expect(operations.locator("h2")).to_have_text("Operations")
    expect(operations.locator("li a")).to_have_text(
        ["Scheduler health", "Locks", "Timeline"]
    )

    operations.get_by_role("link", name=link, exact=True).click()

    expect(page.locator("#content h1")).to_have_text(heading)
    expect(page).to_have_title(re.compile("^%s " % re.escape(heading)))


def test_the_browsable_api_root_describes_the_api_and_links_redoc(
    page: Any, live_server: Any
) -> None:
    # Signed in through the admin's login form: the session is enough.
    page.goto(live_server.url + "/api/v1/")
    content = page.locator("#content")
    expect(content.locator("h1")).to_have_text("Api Root")
    expect(content).to_contain_text("The scheduled tasks API, version 1.")
    expect(content).to_contain_text("Every endpoint needs an API key")
    redoc = content.locator(".response-info a", has_text=re.compile(r"/api/v1/redoc$"))
    expect(redoc).to_have_attribute("href", live_server.url + "/api/v1/redoc")

    redoc.click()

    expect(page).to_have_url(live_server.url + "/api/v1/redoc")
    # ReDoc (served from the sidecar package) renders the schema it fetched.
    expect(page.get_by_role("heading", name="Scheduled tasks API")).to_be_visible()
    expect(page.locator("body")).to_contain_text("/api/v1/tasks/")


def test_deleting_a_system_task_by_its_url_says_why(
    page: Any, live_server: Any
) -> None:
    task = make_task(name="nightly_cleanup", is_system=True)

    page.goto(_task_url(live_server, task, "delete"))

    expect(page).to_have_url(_task_url(live_server, task))
    error = page.locator("ul.messagelist li.error")
    expect(error).to_have_text(
        "Task “nightly_cleanup” is a system task: it can be paused but not deleted."
    )
    # The admin's own page, styled, rather than a bare error.
    expect(page.locator("#site-name")).to_have_text("Scheduled tasks")
    expect(page.locator("#content h1")).to_be_visible()
    background = error.evaluate("li => getComputedStyle(li).backgroundColor")
    assert background not in ("", "transparent", "rgba(0, 0, 0, 0)"), background
    assert ScheduledTask.objects.filter(pk=task.pk).exists()


def test_the_health_page_counts_no_celery_workers_with_the_inline_executor(
    page: Any, live_server: Any, settings: Any
) -> None:
    settings.SCHEDULER_EXECUTOR = "inline"

    page.goto(live_server.url + "/admin/scheduler_app/schedulerinstance/health/")

    summary = page.locator("#scheduler-health-summary")
    expect(summary).to_contain_text("Leader:")
    expect(summary).not_to_contain_text("Celery worker")
    expect(page.locator("#scheduler-workers")).to_have_count(0)
    expect(page.locator("#scheduler-instances")).to_be_visible()

    # What the same page says once runs go to Celery: the count is news then.
    settings.SCHEDULER_EXECUTOR = "celery"
    page.reload()
    expect(summary).to_contain_text("0 Celery worker processes alive")
    expect(page.locator("#scheduler-workers")).to_contain_text(
        "No Celery worker has started."
    )


def test_a_run_task_process_shows_as_a_command_line_instance(
    page: Any, live_server: Any
) -> None:
    task = make_task(
        name="run_from_the_shell",
        handler_path="tests.sample_handlers.browser:wait_for_release",
        task_type=ScheduledTask.TaskType.MANUAL,
        interval_seconds=None,
    )
    failures: list[BaseException] = []

    def run_task() -> None:
        try:
            call_command("run_task", task.name)
        except BaseException as exc:  # reported below
            failures.append(exc)
        finally:
            connections.close_all()  # or PostgreSQL keeps the test database open

    command = threading.Thread(target=run_task, name="run_task", daemon=True)
    command.start()
    try:
        # It heartbeats before it starts its run: once the run is running, the
        # process's row is there.
        _poll_until(
            lambda: TaskExecution.objects.filter(task=task, status="running").exists(),
            "run_task's run to start",
        )
        # While its run goes on, the process heartbeats as a command line instance.
        page.goto(live_server.url + "/admin/scheduler_app/schedulerinstance/")
        row = page.locator("#result_list tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator("td.field-kind")).to_have_text("Command line (run_task)")
        expect(row.locator("td.field-stopped_at")).to_have_text("-")

        # It is no scheduler: the health page lists none, and the banner stays.
        page.goto(live_server.url + "/admin/scheduler_app/schedulerinstance/health/")
        expect(page.locator("#scheduler-instances")).to_contain_text(
            "No scheduler has ever started."
        )
        expect(page.locator("#scheduler-warning")).to_be_visible()
    finally:
        RELEASE.set()
        command.join(timeout=DEADLINE)
    assert not command.is_alive() and not failures, failures
    assert TaskExecution.objects.get(task=task).status == "success"

    # Once it has ended: still a command line instance, stopped, not a scheduler.
    page.goto(
        live_server.url + "/admin/scheduler_app/schedulerinstance/?kind__exact=cli"
    )
    row = page.locator("#result_list tbody tr")
    expect(row.locator("td.field-kind")).to_have_text("Command line (run_task)")
    expect(row.locator("td.field-stopped_at")).not_to_have_text("-")
    page.goto(
        live_server.url
        + "/admin/scheduler_app/schedulerinstance/?kind__exact=scheduler"
    )
    expect(page.locator("#result_list")).to_have_count(0)
    assert not SchedulerInstance.objects.exclude(kind="cli").exists()


# Item 1: times to the second

SECONDS = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def test_a_ten_second_interval_previews_distinct_times_to_the_second(
    page: Any, live_server: Any
) -> None:
    page.goto(live_server.url + "/admin/scheduler_app/scheduledtask/add/")
    page.select_option("select[name=task_type]", "interval")
    page.fill("#id_interval_seconds", "10")
    page.locator("#id_interval_seconds").dispatch_event("change")

    times = page.locator("#scheduler-preview .scheduler-preview-times li")
    expect(times).to_have_count(5)
    texts = [text.split(" ", 2)[:2] for text in times.all_inner_texts()]
    shown = [" ".join(text) for text in texts]
    assert all(SECONDS.fullmatch(text) for text in shown), shown
    assert len(set(shown)) == 5, shown


def test_the_task_page_shows_its_runs_and_last_run_to_the_second(
    page: Any, live_server: Any
) -> None:
    started = timezone.now().replace(microsecond=0) - dt.timedelta(minutes=3, seconds=7)
    task = make_task(name="to_the_second", last_run_at=started)
    make_execution(
        task,
        status="success",
        started_at=started,
        finished_at=started + dt.timedelta(seconds=2),
        duration_ms=2000,
    )
    # In the server's zone (the test thread's active one may differ).
    local = started.astimezone(ZoneInfo(settings.TIME_ZONE)).strftime(
        "%Y-%m-%d %H:%M:%S"
    )

    page.goto(_task_url(live_server, task))

    expect(page.locator(".field-last_run_at_display")).to_contain_text(local)
    inline = page.locator("#executions-group tr.has_original")
    expect(inline.locator("td.field-started_display")).to_have_text(local)


# Item 11: the dashboard on the admin index


def test_the_dashboard_counts_and_links_to_the_filtered_lists(
    page: Any, live_server: Any
) -> None:
    failing = make_task(name="dash_failing")
    ScheduledTask.objects.filter(pk=failing.pk).update(health="failing")
    failed = make_execution(failing, status="failed", error_message="boom")
    long_one = make_execution(failing, status="running", instance_id="w:1:abc")
    TaskExecution.objects.filter(pk=long_one.pk).update(started_at=timezone.now())

    page.goto(live_server.url + "/admin/")
    dashboard = page.locator("#scheduler-dashboard")
    expect(dashboard.locator("#dashboard-failures")).to_contain_text("dash_failing")
    expect(dashboard.locator("#dashboard-running")).to_contain_text("dash_failing")
    expect(dashboard.locator("#dashboard-scheduler")).to_contain_text("Not running")

    dashboard.locator('#dashboard-health a[href*="health__exact=failing"]').click()
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text("dash_failing")

    page.goto(live_server.url + "/admin/")
    page.locator('#dashboard-failures a[href$="?status=failed"]').click()
    expect(page.locator("#result_list tbody th.field-id")).to_have_text(
        [str(failed.pk)]
    )
