"""Execution pages: a list that never counts, filters, the run page, its live log and cancel."""

from __future__ import annotations

import datetime as dt
import re
from html import unescape as html_unescape
from typing import Any

import pytest
from django.contrib import messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from scheduler_app import selectors
from scheduler_app.models import TaskExecution
from tests.admin.helpers import (
    EXECUTION_CHANGELIST,
    HOSTILE,
    HOSTILE_ESCAPED,
    captured_sql,
    count_queries,
    execution_url,
    sent_messages,
    staff_user,
    task_url,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

Status = TaskExecution.Status


def log_url(execution: TaskExecution, **params: Any) -> str:
    return reverse("admin:scheduler_app_taskexecution_log", args=[execution.pk])


def download_url(execution: TaskExecution) -> str:
    return reverse(
        "admin:scheduler_app_taskexecution_log_download", args=[execution.pk]
    )


def cancel_url(execution: TaskExecution) -> str:
    return reverse("admin:scheduler_app_taskexecution_cancel", args=[execution.pk])


def listed_ids(response: Any) -> list[int]:
    return [execution.pk for execution in response.context["cl"].result_list]


def date_choice(client: Client, title: str) -> str:
    """The query string of one choice of the "created" date filter, as the page links it."""
    changelist = client.get(EXECUTION_CHANGELIST).context["cl"]
    spec = next(spec for spec in changelist.filter_specs if spec.title == "created")
    return next(
        choice["query_string"]
        for choice in spec.choices(changelist)
        if choice["display"] == title
    )


# The list


def test_list_shows_task_status_trigger_times_duration_and_attempt(
    admin_client: Client,
) -> None:
    task = make_task(name="nightly")
    started = timezone.now() - dt.timedelta(minutes=1)
    make_execution(
        task,
        status=Status.SUCCESS,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        scheduled_for=started,
        started_at=started,
        duration_ms=2500,
        attempt=2,
    )

    content = admin_client.get(EXECUTION_CHANGELIST).content.decode()

    assert '<a href="%s">nightly</a>' % task_url("change", task) in content
    assert 'data-status="success"' in content
    assert "Scheduled" in content
    assert timezone.localtime(started).strftime("%Y-%m-%d %H:%M:%S") in content
    assert "2.5 s" in content
    assert '<td class="field-attempt">2</td>' in content


@pytest.mark.parametrize(
    "choice, expected",
    [
        ("failed", {"error", "timeout", "abandoned"}),
        ("timeout", {"timeout"}),
        ("abandoned", {"abandoned"}),
        ("success", {"ok"}),
    ],
)
def test_status_filter_includes_timed_out_and_abandoned(
    admin_client: Client, choice: str, expected: set[str]
) -> None:
    runs = {
        "ok": make_execution(status=Status.SUCCESS),
        "error": make_execution(status=Status.FAILED, failure_kind="error"),
        "timeout": make_execution(status=Status.FAILED, failure_kind="timeout"),
        "abandoned": make_execution(status=Status.FAILED, failure_kind="abandoned"),
    }

    response = admin_client.get(EXECUTION_CHANGELIST, {"status": choice})

    assert set(listed_ids(response)) == {runs[name].pk for name in expected}


def test_timed_out_runs_are_badged_as_such(admin_client: Client) -> None:
    make_execution(status=Status.FAILED, failure_kind="timeout")

    content = admin_client.get(EXECUTION_CHANGELIST).content.decode()

    assert 'data-status="timeout">Timed out<' in content


def test_filter_by_trigger_task_and_date(admin_client: Client) -> None:
    task = make_task()
    mine = make_execution(task, trigger_type=TaskExecution.TriggerType.RETRY)
    other = make_execution(created_at=timezone.now() - dt.timedelta(days=40))

    by_trigger = admin_client.get(
        EXECUTION_CHANGELIST, {"trigger_type__exact": "retry"}
    )
    by_task = admin_client.get(EXECUTION_CHANGELIST, {"task__id__exact": task.pk})
    by_date = admin_client.get(
        EXECUTION_CHANGELIST + date_choice(admin_client, "Today")
    )

    assert listed_ids(by_trigger) == listed_ids(by_task) == [mine.pk]
    assert other.pk not in listed_ids(by_date)
    assert mine.pk in listed_ids(by_date)


def test_the_task_filter_is_a_search_not_a_link_per_task(admin_client: Client) -> None:
    tasks = [make_task(name="export-%02d" % number) for number in range(30)]
    make_execution(tasks[0])

    content = admin_client.get(EXECUTION_CHANGELIST).content.decode()

    assert 'name="task_q"' in content
    assert not [task for task in tasks if task.name in content.split("<tbody>")[0]]


def test_the_task_search_keeps_the_runs_of_tasks_whose_name_matches(
    admin_client: Client,
) -> None:
    export, report = make_task(name="nightly-export"), make_task(name="weekly-report")
    mine = make_execution(export)
    make_execution(report)

    response = admin_client.get(
        EXECUTION_CHANGELIST, {"task_q": "EXPORT", "status": "pending"}
    )

    assert listed_ids(response) == [mine.pk]
    # The search box keeps the other filters when it is submitted again.
    assert '<input type="hidden" name="status" value="pending">' in (
        response.content.decode()
    )


def test_a_task_picked_by_its_id_is_named_in_the_filter(admin_client: Client) -> None:
    task = make_task(name="picked-task")
    make_execution(task)

    content = admin_client.get(
        EXECUTION_CHANGELIST, {"task__id__exact": task.pk}
    ).content.decode()

    assert '<li class="selected">' in content
    assert ">picked-task</a></li>" in content


@pytest.mark.parametrize("params", [{"task__id__exact": "abc"}, {"task_q": "a\x00b"}])
def test_a_task_id_that_is_no_number_or_a_nul_is_an_incorrect_lookup(
    admin_client: Client, params: dict[str, str]
) -> None:
    response = admin_client.get(EXECUTION_CHANGELIST, params)

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_a_task_id_out_of_any_range_finds_nothing(admin_client: Client) -> None:
    make_execution()

    response = admin_client.get(
        EXECUTION_CHANGELIST, {"task__id__exact": "9" * 20, "q": "9" * 20}
    )

    assert response.status_code == 200
    assert listed_ids(response) == []


def test_search_finds_a_run_by_id_or_by_its_task_name(admin_client: Client) -> None:
    export, other = make_task(name="export-7"), make_task(name="report")
    by_name = make_execution(export)
    unrelated = make_execution(other)

    assert listed_ids(admin_client.get(EXECUTION_CHANGELIST, {"q": "xport"})) == [
        by_name.pk
    ]
    assert set(
        listed_ids(admin_client.get(EXECUTION_CHANGELIST, {"q": str(unrelated.pk)}))
    ) >= {unrelated.pk}
    assert listed_ids(admin_client.get(EXECUTION_CHANGELIST, {"q": "nothing"})) == []


def test_a_search_naming_many_tasks_finds_the_runs_of_each(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selectors, "TASK_IDS_INLINED", 1)
    first, second = make_task(name="sync-a"), make_task(name="sync-b")
    runs = {make_execution(first).pk, make_execution(second).pk}
    make_execution(make_task(name="other"))

    for params in ({"q": "sync"}, {"task_q": "sync"}):
        assert set(listed_ids(admin_client.get(EXECUTION_CHANGELIST, params))) == runs


def test_search_does_not_join_the_history_to_the_tasks(admin_client: Client) -> None:
    make_execution(make_task(name="export"))

    statements = captured_sql(admin_client, EXECUTION_CHANGELIST + "?q=export")

    page_query = next(
        sql for sql in statements if "LIMIT" in sql and "taskexecution" in sql
    )
    assert "JOIN" not in page_query.split("WHERE")[1]


@pytest.mark.parametrize(
    "params", ["", "?task_q=task", "?q=task", "?status=success", "?p=2"]
)
def test_list_queries_do_not_grow_with_rows_or_tasks(
    admin_client: Client, params: str, django_assert_num_queries: Any
) -> None:
    tasks = [make_task() for _ in range(20)]
    TaskExecution.objects.bulk_create(
        TaskExecution(task=tasks[number % 20], status=Status.SUCCESS)
        for number in range(250)
    )
    expected = count_queries(admin_client, EXECUTION_CHANGELIST + params)
    tasks += [make_task() for _ in range(20)]
    TaskExecution.objects.bulk_create(
        TaskExecution(task=tasks[number % 40], status=Status.SUCCESS)
        for number in range(250)
    )

    with django_assert_num_queries(expected):
        response = admin_client.get(EXECUTION_CHANGELIST + params)

    assert response.status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "?created_at__gte=0001-01-01",
        "?created_at__lt=0001-01-01+00:00:00",
        "?created_at__gte=not-a-date",
    ],
)
def test_a_date_filter_no_column_can_hold_is_an_incorrect_lookup(
    admin_client: Client, query: str
) -> None:
    make_execution()

    response = admin_client.get(EXECUTION_CHANGELIST + query)

    # What the admin does with any lookup it cannot apply: back to the list, ?e=1.
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_list_never_counts_rows(admin_client: Client) -> None:
    for _ in range(3):
        make_execution(status=Status.SUCCESS)

    for params in ("", "?status=failed", "?q=task", "?p=1"):
        statements = captured_sql(admin_client, EXECUTION_CHANGELIST + params)
        assert not [sql for sql in statements if "COUNT(" in sql.upper()], params


def test_list_reads_neither_log_nor_traceback_nor_result(admin_client: Client) -> None:
    make_execution(status=Status.SUCCESS, log_output="x" * 1000)

    statements = captured_sql(admin_client, EXECUTION_CHANGELIST)

    execution_reads = [
        sql for sql in statements if 'FROM "scheduler_app_taskexecution"' in sql
    ]
    assert execution_reads
    for column in ("log_output", "error_traceback", "result", "kwargs"):
        assert not [sql for sql in execution_reads if '."%s"' % column in sql], column


def test_list_is_ordered_newest_first_by_id(admin_client: Client) -> None:
    first, second = make_execution(), make_execution()

    statements = captured_sql(admin_client, EXECUTION_CHANGELIST)

    assert listed_ids(admin_client.get(EXECUTION_CHANGELIST))[:2] == [
        second.pk,
        first.pk,
    ]
    page_query = next(
        sql for sql in statements if "LIMIT" in sql and "taskexecution" in sql
    )
    assert 'ORDER BY "scheduler_app_taskexecution"."id" DESC' in page_query


def test_pages_know_only_whether_a_next_page_exists(admin_client: Client) -> None:
    task = make_task()
    TaskExecution.objects.bulk_create(TaskExecution(task=task) for _ in range(105))

    first = admin_client.get(EXECUTION_CHANGELIST)
    second = admin_client.get(EXECUTION_CHANGELIST, {"p": 2})
    beyond = admin_client.get(EXECUTION_CHANGELIST, {"p": 3})

    assert len(listed_ids(first)) == 100
    assert 'rel="next"' in first.content.decode()
    assert len(listed_ids(second)) == 5
    assert 'rel="next"' not in second.content.decode()
    assert 'rel="prev"' in second.content.decode()
    assert beyond.status_code == 302  # the admin's "invalid page" redirect


def test_a_later_page_skips_rows_as_ids_only(admin_client: Client) -> None:
    task = make_task()
    TaskExecution.objects.bulk_create(TaskExecution(task=task) for _ in range(205))
    everything = list(
        TaskExecution.objects.order_by("-id").values_list("pk", flat=True)
    )

    statements = captured_sql(admin_client, EXECUTION_CHANGELIST + "?p=2")

    listed = listed_ids(admin_client.get(EXECUTION_CHANGELIST, {"p": 2}))
    assert listed == everything[100:200]
    [skipping] = [sql for sql in statements if "OFFSET" in sql]
    assert skipping.split(" FROM ")[0] == (
        'SELECT "scheduler_app_taskexecution"."id" AS "pk"'
    )
    assert "JOIN" not in skipping


def link(page: Any, rel: str) -> str:
    """The href of a page's Next (rel="next") or Previous (rel="prev") link."""
    match = re.search(r'href="([^"]+)" rel="%s"' % rel, page.content.decode())
    assert match, "no %s link" % rel
    return EXECUTION_CHANGELIST + html_unescape(match.group(1))


def test_next_and_previous_links_read_from_the_neighbour_page_without_offset(
    admin_client: Client,
) -> None:
    task = make_task()
    TaskExecution.objects.bulk_create(TaskExecution(task=task) for _ in range(250))
    make_execution(make_task(name="other"), status="success")  # filtered out below
    everything = list(
        TaskExecution.objects.filter(task=task, status="pending")
        .order_by("-id")
        .values_list("pk", flat=True)
    )
    first = admin_client.get(EXECUTION_CHANGELIST, {"status": "pending"})

    second_url = link(first, "next")
    second = admin_client.get(second_url)
    third_url = link(second, "next")
    third = admin_client.get(third_url)
    back_url = link(third, "prev")
    back = admin_client.get(back_url)
    by_link = [
        captured_sql(admin_client, url) for url in (second_url, third_url, back_url)
    ]

    assert listed_ids(second) == everything[100:200]
    assert listed_ids(third) == everything[200:]
    assert 'rel="next"' not in third.content.decode()
    assert listed_ids(back) == everything[100:200]
    assert "Page 2" in back.content.decode() and 'rel="next"' in back.content.decode()
    assert "status=pending" in second_url and "after=" in second_url
    assert "before=" in back_url
    assert not [sql for sql in sum(by_link, []) if "OFFSET" in sql]


def test_show_all_is_never_offered(admin_client: Client) -> None:
    make_execution()

    response = admin_client.get(EXECUTION_CHANGELIST, {"all": ""})

    assert response.context["cl"].can_show_all is False


# The run page


def test_run_page_shows_status_timings_parameters_result_error_and_progress(
    admin_client: Client,
) -> None:
    started = timezone.now() - dt.timedelta(seconds=3)
    execution = make_execution(
        status=Status.FAILED,
        failure_kind="error",
        started_at=started,
        finished_at=started + dt.timedelta(seconds=2),
        duration_ms=2000,
        kwargs={"days": 3},
        kwargs_overrides={"days": "3"},
        result={"rows": [1, 2]},
        error_message="ValueError: boom",
        error_traceback="Traceback (most recent call last):\nValueError: boom",
        progress_done=2,
        progress_total=5,
        log_output="[02:00:00] one\n[02:00:01] two",
    )

    content = admin_client.get(execution_url(execution)).content.decode()

    assert 'data-status="failed"' in content
    assert "2.0 s" in content
    assert "&quot;days&quot;: 3" in content
    assert "&quot;rows&quot;: [\n    1,\n    2\n  ]" in content
    assert "ValueError: boom" in content
    assert "Traceback (most recent call last)" in content
    assert '<progress data-live-progress value="2" max="5"' in content
    assert "[02:00:00] one\n[02:00:01] two</pre>" in content
    assert 'data-finished="true"' in content
    assert download_url(execution) in content


def test_a_running_execution_page_polls_its_log(admin_client: Client) -> None:
    execution = make_execution(
        status=Status.RUNNING, log_output="[02:00:00] a\n[02:00:01] b"
    )

    content = admin_client.get(execution_url(execution)).content.decode()

    assert 'data-finished="false"' in content
    assert 'data-offset="2"' in content
    assert 'data-log-url="%s"' % log_url(execution) in content
    assert "scheduler_app/execution_log.js" in content


def test_log_endpoint_returns_lines_after_the_offset_with_status_and_progress(
    admin_client: Client,
) -> None:
    execution = make_execution(
        status=Status.RUNNING,
        log_output="[02:00:00] a\n[02:00:01] b\n[02:00:02] c",
        progress_done=1,
        progress_total=4,
    )

    data = admin_client.get(log_url(execution), {"offset": 1}).json()

    assert data["lines"] == ["[02:00:01] b", "[02:00:02] c"]
    assert data["offset"] == 3
    assert data["finished"] is False
    assert data["status"] == "running"
    assert 'data-status="running"' in data["status_html"]
    assert (
        data["progress_done"],
        data["progress_total"],
        data["progress_percent"],
    ) == (1, 4, 25.0)


def test_log_endpoint_says_when_the_run_is_over(admin_client: Client) -> None:
    execution = make_execution(status=Status.SUCCESS, log_output="[02:00:00] a")

    data = admin_client.get(log_url(execution), {"offset": 1}).json()

    assert data == {
        **data,
        "lines": [],
        "offset": 1,
        "finished": True,
        "status": "success",
    }


def test_log_endpoint_tolerates_a_bad_offset(admin_client: Client) -> None:
    execution = make_execution(status=Status.RUNNING, log_output="[02:00:00] a")

    assert admin_client.get(log_url(execution), {"offset": "x"}).json()["lines"] == [
        "[02:00:00] a"
    ]


def test_log_download_is_plain_text_as_an_attachment(admin_client: Client) -> None:
    execution = make_execution(log_output="[02:00:00] a\n[02:00:01] b")

    response = admin_client.get(download_url(execution))

    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="execution-%d.log"' % execution.pk
    )
    assert response.content.decode() == "[02:00:00] a\n[02:00:01] b"


def test_log_pages_need_the_view_permission(client: Client) -> None:
    client.force_login(staff_user("view_scheduledtask"))
    execution = make_execution(log_output="secret")

    assert client.get(log_url(execution)).status_code == 403
    assert client.get(download_url(execution)).status_code == 403


def test_cancel_button_is_shown_for_unfinished_runs_only(admin_client: Client) -> None:
    pending = make_execution()
    finished = make_execution(status=Status.SUCCESS)

    assert (
        cancel_url(pending) in admin_client.get(execution_url(pending)).content.decode()
    )
    assert (
        cancel_url(finished)
        not in admin_client.get(execution_url(finished)).content.decode()
    )


def test_cancel_button_cancels_a_pending_run(admin_client: Client) -> None:
    execution = make_execution()

    response = admin_client.post(cancel_url(execution))

    execution.refresh_from_db()
    assert execution.status == Status.CANCELLED
    assert response["Location"] == execution_url(execution)
    assert sent_messages(response) == [
        (messages.SUCCESS, "Execution #%d was cancelled." % execution.pk)
    ]


def test_cancel_button_asks_a_running_run_to_stop(admin_client: Client) -> None:
    execution = make_execution(status=Status.RUNNING)

    response = admin_client.post(cancel_url(execution))

    execution.refresh_from_db()
    assert execution.cancel_requested is True
    assert sent_messages(response)[0][1].startswith(
        "Asked execution #%d to stop" % execution.pk
    )


def test_cancel_button_refuses_a_finished_run_clearly(admin_client: Client) -> None:
    execution = make_execution(status=Status.SUCCESS)

    response = admin_client.post(cancel_url(execution))

    ((level, text),) = sent_messages(response)
    assert level == messages.ERROR
    assert "only pending or running runs can be cancelled" in text


def test_cancel_needs_the_run_permission_and_a_post(
    admin_client: Client, client: Client
) -> None:
    execution = make_execution()
    client.force_login(staff_user("view_taskexecution", "view_scheduledtask"))

    assert admin_client.get(cancel_url(execution)).status_code == 405
    assert client.post(cancel_url(execution)).status_code == 403
    execution.refresh_from_db()
    assert execution.status == Status.PENDING


# The task page: recent runs chart and a link to all of them


def test_task_page_charts_recent_runs_with_min_avg_max(admin_client: Client) -> None:
    task = make_task()
    runs = [
        make_execution(task, status=Status.SUCCESS, duration_ms=1000),
        make_execution(task, status=Status.FAILED, duration_ms=3000),
        make_execution(task, status=Status.RUNNING),
    ]

    content = admin_client.get(task_url("change", task)).content.decode()

    assert '<svg class="scheduler-chart"' in content
    assert content.count('class="scheduler-bar scheduler-bar--') == 3
    assert "scheduler-bar--failed" in content
    for run in runs:
        assert 'href="%s"' % execution_url(run) in content
    assert "min 1.0 s · avg 2.0 s · max 3.0 s (latest 2 runs)" in content


def test_task_page_links_to_all_its_executions(admin_client: Client) -> None:
    task = make_task()

    content = admin_client.get(task_url("change", task)).content.decode()

    assert "%s?task__id__exact=%d" % (EXECUTION_CHANGELIST, task.pk) in content


def control(code: str, shown: str) -> str:
    """How the admin shows a control character: muted, named as Python writes it."""
    return '<span class="scheduler-control" title="U+%s">%s</span>' % (code, shown)


ESC = control("001B", "\\x1b")


def test_run_page_shows_control_characters_escaped_and_html_escaped(
    admin_client: Client,
) -> None:
    execution = make_execution(
        status=Status.FAILED,
        log_output="[02:00:00] \x1b[31mred\x1b[0m bell\x07 back\rover\ttab " + HOSTILE,
        error_message="RuntimeError: \x1b[2Jcleared " + HOSTILE,
        error_traceback="Traceback (most recent call last):\nRuntimeError: \x1b[2J",
        result={"text": "del\x7f csi\x9b " + HOSTILE},
    )

    content = admin_client.get(execution_url(execution)).content.decode()

    assert (
        "[02:00:00] %s[31mred%s[0m bell%s back%sover\ttab %s</pre>"
        % (
            ESC,
            ESC,
            control("0007", "\\x07"),
            control("000D", "\\r"),
            HOSTILE_ESCAPED,
        )
        in content
    )
    assert "RuntimeError: %s[2Jcleared %s" % (ESC, HOSTILE_ESCAPED) in content
    assert "Traceback (most recent call last):\nRuntimeError: %s[2J" % ESC in content
    # JSON escapes C0 characters itself; DEL and C1 are shown as the others are.
    assert (
        "del%s csi%s %s"
        % (
            control("007F", "\\x7f"),
            control("009B", "\\x9b"),
            HOSTILE_ESCAPED,
        )
        in content
    )
    for raw in ("\x1b", "\x07", "\r", "\x7f", "\x9b", HOSTILE):
        assert raw not in content


def test_task_page_shows_the_start_of_each_recent_error_escaped(
    admin_client: Client,
) -> None:
    task = make_task()
    make_execution(
        task,
        status=Status.FAILED,
        error_message="RuntimeError: \x1b[2J" + HOSTILE + "x" * 5000 + "NOT SHOWN",
    )

    content = admin_client.get(task_url("change", task)).content.decode()

    assert "RuntimeError: %s[2J%s" % (ESC, HOSTILE_ESCAPED) in content
    assert "NOT SHOWN" not in content
    assert "\x1b" not in content and HOSTILE not in content


def test_the_run_page_and_the_task_page_name_runs_in_words(
    admin_client: Client,
) -> None:
    task = make_task(name="nightly <report>")
    execution = make_execution(task, status=TaskExecution.Status.SUCCESS)

    with translation.override("zh-hans"):
        page = admin_client.get(
            execution_url(execution), HTTP_ACCEPT_LANGUAGE="zh-hans"
        ).content.decode()
    task_page = admin_client.get(
        reverse("admin:scheduler_app_scheduledtask_change", args=[task.pk])
    ).content.decode()

    breadcrumbs = page.split('class="breadcrumbs"', 1)[1].split("</div>", 1)[0]
    assert "nightly &lt;report&gt;" in breadcrumbs
    assert "#%d" % execution.pk in breadcrumbs and "成功" in breadcrumbs
    assert "%d#%d" % (task.pk, execution.pk) not in page
    assert "nightly &lt;report&gt;, run #%d (Success)" % execution.pk in task_page


def _staged_and_past(task: Any) -> tuple[TaskExecution, TaskExecution, TaskExecution]:
    """A finished run, a run-now due, and a fire the scheduler staged ahead."""
    now = timezone.now()
    done = make_execution(task, status=Status.SUCCESS, started_at=now)
    due = make_execution(task)
    staged = make_execution(
        task,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        scheduled_for=now + dt.timedelta(seconds=30),
    )
    return done, due, staged


def test_fires_staged_ahead_are_listed_only_as_upcoming(admin_client: Client) -> None:
    done, due, staged = _staged_and_past(make_task())

    default = admin_client.get(EXECUTION_CHANGELIST)
    upcoming = admin_client.get(EXECUTION_CHANGELIST, {"when": "upcoming"})
    both = admin_client.get(EXECUTION_CHANGELIST, {"when": "all"})

    assert listed_ids(default) == [due.pk, done.pk]
    assert listed_ids(upcoming) == [staged.pk]
    assert listed_ids(both) == [staged.pk, due.pk, done.pk]
    assert "Past and due" in default.content.decode()


def test_the_task_page_and_list_leave_out_fires_staged_ahead(
    admin_client: Client,
) -> None:
    task = make_task(name="staged")
    done, due, staged = _staged_and_past(task)
    due.delete()  # the last run is the success, not the fire still to come

    page = admin_client.get(task_url("change", task))
    listing = admin_client.get(reverse("admin:scheduler_app_scheduledtask_changelist"))

    shown = [
        form.instance.pk for form in page.context["inline_admin_formsets"][0].formset
    ]
    assert shown == [done.pk]
    row = next(row for row in listing.context["cl"].result_list if row.pk == task.pk)
    assert row.last_execution_id == done.pk
    assert row.last_execution_status == Status.SUCCESS


def test_run_and_task_pages_show_times_to_the_second(admin_client: Client) -> None:
    moment = timezone.now().replace(microsecond=0)
    task = make_task(name="timed", last_run_at=moment)
    execution = make_execution(
        task,
        status=Status.SUCCESS,
        scheduled_for=moment,
        created_at=moment,
        started_at=moment,
        finished_at=moment,
        duration_ms=5,
    )
    shown = timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")

    run_page = admin_client.get(execution_url(execution)).content.decode()
    task_page = admin_client.get(task_url("change", task)).content.decode()

    for field in ("scheduled_for", "created", "started", "finished"):
        cell = run_page.split("field-%s_display" % field, 1)[1][:800]
        assert shown in cell, field
    assert task_page.count(shown) >= 3  # last run, the run's scheduled for, started
