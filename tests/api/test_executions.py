"""Executions API: detail with log and result, live log tail, cancel, the list."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.models import TaskExecution
from scheduler_app.tasklog import RunLog
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

EXECUTIONS = "/api/v1/tasks/executions"


def url(execution: TaskExecution | str, action: str = "") -> str:
    ident = execution.pk if isinstance(execution, TaskExecution) else execution
    return "%s/%s%s" % (EXECUTIONS, ident, "/" + action if action else "")


def test_detail_has_log_result_error_traceback_and_progress(api: APIClient) -> None:
    task = make_task(name="reporter")
    execution = make_execution(
        task,
        status="failed",
        result={"rows": 3},
        error_message="RuntimeError: boom",
        error_traceback="Traceback (most recent call last): ...",
        log_output="[10:00:00] one\n[10:00:01] two",
        progress_done=1,
        progress_total=4,
        started_at=timezone.now(),
    )

    response = api.get(url(execution))

    assert response.status_code == 200
    body = response.json()
    assert body["task"] == task.pk and body["task_name"] == "reporter"
    assert body["result"] == {"rows": 3}
    assert body["error_message"] == "RuntimeError: boom"
    assert body["error_traceback"].startswith("Traceback")
    assert body["log_output"] == "[10:00:00] one\n[10:00:01] two"
    assert body["progress"] == {"done": 1, "total": 4, "percent": 25.0}
    assert body["log_url"].endswith("/api/v1/tasks/executions/%d/log" % execution.pk)


@pytest.mark.parametrize(
    "ident", ["999999", "abc", "%C2%B2", "99999999999999999999999"]
)
def test_unknown_execution_is_a_json_404(api: APIClient, ident: str) -> None:
    for path in (url(ident), url(ident, "log")):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "execution_not_found"
    assert api.post(url(ident, "cancel")).json()["code"] == "execution_not_found"


def test_log_returns_the_lines_after_the_offset(api: APIClient) -> None:
    execution = make_execution(
        status="running", log_output="a\nb\nc", progress_done=2, progress_total=8
    )

    first = api.get(url(execution, "log")).json()
    assert first == {
        "offset": 3,
        "lines": ["a", "b", "c"],
        "finished": False,
        "status": "running",
        "progress": {"done": 2, "total": 8, "percent": 25.0},
    }

    TaskExecution.objects.filter(pk=execution.pk).update(
        log_output="a\nb\nc\nd", status="success", finished_at=timezone.now()
    )
    later = api.get(url(execution, "log"), {"offset": first["offset"]}).json()
    assert later["lines"] == ["d"] and later["offset"] == 4
    assert later["finished"] is True and later["status"] == "success"
    assert api.get(url(execution, "log"), {"offset": 4}).json()["lines"] == []


def test_log_of_a_run_with_no_output_is_empty(api: APIClient) -> None:
    body = api.get(url(make_execution(), "log")).json()

    assert body["lines"] == [] and body["offset"] == 0 and body["status"] == "pending"


def test_log_tail_keeps_moving_after_the_buffer_drops_lines(api: APIClient) -> None:
    run_log = RunLog(max_lines=4)
    for number in range(1, 4):
        run_log.write("line %d" % number)
    execution = make_execution(status="running", log_output=run_log.text())
    seen = api.get(url(execution, "log")).json()
    assert seen["offset"] == 3

    for number in range(4, 9):
        run_log.write("line %d" % number)
    TaskExecution.objects.filter(pk=execution.pk).update(log_output=run_log.text())
    body = api.get(url(execution, "log"), {"offset": seen["offset"]}).json()

    # Written 8 lines; kept 1-2 and 7-8; the client had read 3.
    assert body["offset"] == 8
    assert "lines dropped" in body["lines"][0]
    assert [line.split("] ")[1] for line in body["lines"][1:]] == ["line 7", "line 8"]


@pytest.mark.parametrize("offset", ["-1", "x", "1.0"])
def test_log_refuses_a_bad_offset_with_400(api: APIClient, offset: str) -> None:
    response = api.get(url(make_execution(), "log"), {"offset": offset})

    assert response.status_code == 400
    assert response.json()["field"] == "offset"


def test_cancel_cancels_a_pending_run(api: APIClient) -> None:
    execution = make_execution(status="pending")

    response = api.post(url(execution, "cancel"))

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    execution.refresh_from_db()
    assert execution.status == "cancelled"


def test_cancel_of_a_finished_run_is_409(api: APIClient) -> None:
    execution = make_execution(status="success")

    response = api.post(url(execution, "cancel"))

    assert response.status_code == 409
    assert response.json()["code"] == "invalid_state"
    assert "already" in response.json()["detail"]


def test_cancel_needs_the_run_permission(viewer: APIClient, client_with: Any) -> None:
    execution = make_execution(status="pending")

    assert viewer.post(url(execution, "cancel")).status_code == 403
    runner = client_with("run_scheduledtask")
    assert runner.post(url(execution, "cancel")).status_code == 200


def test_cancel_answers_a_user_without_view_permission_id_and_status_only(
    client_with: Any,
) -> None:
    execution = make_execution(
        status="running",
        kwargs={"token": "s3cret"},
        log_output="[00:00:01] connecting with s3cret",
        error_message="s3cret failed",
        error_traceback="Traceback: s3cret",
    )
    runner = client_with("run_scheduledtask")

    response = runner.post(url(execution, "cancel"))

    assert response.status_code == 200
    assert response.json() == {"id": execution.pk, "status": "running"}
    assert "s3cret" not in response.content.decode()
    execution.refresh_from_db()
    assert execution.cancel_requested
    assert runner.get(url(execution)).status_code == 403


def test_list_of_all_executions_filters_by_task(api: APIClient) -> None:
    task = make_task()
    mine = make_execution(task)
    make_execution()

    response = api.get(EXECUTIONS, {"task": task.pk})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [mine.pk]
    assert api.get(EXECUTIONS, {"task": "1.5"}).status_code == 400
    assert api.get(EXECUTIONS, {"task": "1.0"}).status_code == 400


def test_the_list_is_read_a_cursor_at_a_time_newest_first(api: APIClient) -> None:
    task = make_task()
    runs = [make_execution(task) for _ in range(5)]

    pages, link = [], EXECUTIONS + "?page_size=2&task=%d" % task.pk
    while link:
        body = api.get(link).json()
        pages.append([row["id"] for row in body["results"]])
        link = body["next"]

    newest_first = [run.pk for run in reversed(runs)]
    assert pages == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert "count" not in body and body["previous"]


def test_a_cursor_page_does_not_move_when_newer_runs_arrive(api: APIClient) -> None:
    task = make_task()
    older = [make_execution(task) for _ in range(3)]
    first = api.get(EXECUTIONS, {"page_size": 2}).json()

    make_execution(task)
    second = api.get(first["next"]).json()

    assert [row["id"] for row in second["results"]] == [older[0].pk]


def test_page_numbers_are_refused_with_the_way_to_the_next_page(
    api: APIClient,
) -> None:
    task = make_task()

    for path in (EXECUTIONS, "/api/v1/tasks/%d/executions/" % task.pk):
        response = api.get(path, {"page": 2})

        assert response.status_code == 400, path
        message = str(response.json())
        assert "page" in message and "`next`" in message, message


def test_a_cursor_that_was_not_given_out_is_refused(api: APIClient) -> None:
    response = api.get(EXECUTIONS, {"cursor": "bogus"})

    assert response.status_code == 404
    assert "`next`" in response.json()["detail"]


def test_the_page_size_stays_strict(api: APIClient) -> None:
    assert api.get(EXECUTIONS, {"page_size": "0"}).status_code == 400
    assert api.get(EXECUTIONS, {"page_size": "ten"}).status_code == 400


@pytest.mark.parametrize("rows", [1, 30])
def test_list_of_all_executions_costs_the_same_queries_for_1_and_30_rows(
    viewer: APIClient, rows: int, django_assert_num_queries: Any
) -> None:
    for _ in range(rows):
        make_execution(status="success")

    viewer.get(EXECUTIONS)  # the key's first use of the minute also records it
    # The key with its user, the user's and groups' permissions, the page: no count.
    with django_assert_num_queries(4):
        response = viewer.get(EXECUTIONS)

    assert len(response.json()["results"]) == rows
    assert "count" not in response.json()


def test_reading_executions_needs_the_view_permission(
    nobody: APIClient, client_with: Any
) -> None:
    execution = make_execution()
    reader = client_with("view_taskexecution")

    for path in (EXECUTIONS, url(execution), url(execution, "log")):
        assert nobody.get(path).status_code == 403, path
        assert reader.get(path).status_code == 200, path


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", ""), ("get", "/1"), ("get", "/1/log"), ("post", "/1/cancel")],
)
def test_every_execution_route_needs_authentication(
    anonymous: APIClient, method: str, path: str
) -> None:
    response = getattr(anonymous, method)(EXECUTIONS + path)

    assert response.status_code == 401
