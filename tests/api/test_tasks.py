"""Tasks API: list, detail, create, update, delete, by id or name, validation, N+1."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.models import ScheduledTask
from scheduler_app.services.tasks import tasks_version
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks"
#: 6,001 characters, within the expression length limit, nested too deeply to parse.
DEEP_EXPRESSION = "-" * 6000 + "1"
VALID = {
    "name": "nightly_sync",
    "description": "Sync the last week",
    "task_type": "cron",
    "cron_expression": "0 2 * * *",
    "handler_path": "scripts:data_sync",
    "handler_kwargs": {"days": "7", "target": '"orders"'},
}


def task_url(task: ScheduledTask | str | int) -> str:
    ident = task.pk if isinstance(task, ScheduledTask) else task
    return "%s/%s" % (TASKS, ident)


def errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert body["field"] in body["errors"]
    return body["errors"]


def create(api: APIClient, **changes: Any) -> Any:
    return api.post(TASKS, {**VALID, **changes}, format="json")


# Reading


def test_list_shows_every_field_with_stats_and_last_status(api: APIClient) -> None:
    task = make_task(
        name="alpha",
        run_count=3,
        success_count=2,
        fail_count=1,
        duration_count=2,
        duration_total_ms=3000,
    )
    never = make_task(name="alpha-never")
    make_execution(task, status="failed")
    latest = make_execution(task, status="success")

    response = api.get(TASKS, {"search": "alpha"})

    assert response.status_code == 200
    row, row_never = response.json()["results"]
    assert row_never["id"] == never.pk and row_never["avg_duration_ms"] is None
    assert row["avg_duration_ms"] == pytest.approx(1500)
    assert row["id"] == task.pk
    assert row["url"] == "http://testserver/api/v1/tasks/%d" % task.pk
    assert (
        row["run_count"] == 3 and row["success_count"] == 2 and row["fail_count"] == 1
    )
    assert row["success_rate"] == pytest.approx(2 / 3)
    assert row["last_execution_status"] == "success"
    assert row["last_execution_id"] == latest.pk
    for field in (
        "handler_kwargs",
        "overlap_policy",
        "timeout_seconds",
        "next_run_at",
        "is_system",
    ):
        assert field in row


@pytest.mark.parametrize("rows", [1, 30])
def test_list_costs_the_same_queries_for_1_and_30_tasks(
    viewer: APIClient, rows: int, django_assert_num_queries: Any
) -> None:
    ScheduledTask.objects.all().delete()
    for index in range(rows):
        task = make_task(name="t%02d" % index)
        make_execution(task, status="success")

    viewer.get(TASKS)  # the key's first use of the minute also records it
    # The key with its user, the user's and groups' permissions, count, page,
    # the page's alert channels (one prefetch).
    with django_assert_num_queries(6):
        response = viewer.get(TASKS)

    assert response.json()["count"] == rows


def test_list_filters_by_type_status_system_and_handler(api: APIClient) -> None:
    make_task(name="cron-one", task_type="cron", cron_expression="0 2 * * *")
    make_task(name="paused-one", status="paused")
    make_task(name="sync-one", handler_path="scripts:data_sync")

    def names(**query: Any) -> set[str]:
        response = api.get(TASKS, query)
        assert response.status_code == 200
        return {row["name"] for row in response.json()["results"]}

    assert names(task_type="cron") == {"cron-one", "cleanup_executions"}
    assert names(status="paused") == {"paused-one"}
    assert names(is_system="true") == {"cleanup_executions"}
    assert names(handler_path="scripts:data_sync") == {"sync-one"}


def test_list_refuses_an_unknown_filter_value_with_400(api: APIClient) -> None:
    assert "status" in errors(api.get(TASKS, {"status": "sleeping"}))


def test_list_orders_by_the_allowed_fields(api: APIClient) -> None:
    now = timezone.now()
    make_task(name="b", next_run_at=now + dt.timedelta(minutes=1))
    make_task(name="a", next_run_at=now + dt.timedelta(minutes=2))

    def order(ordering: str) -> list[str]:
        response = api.get(TASKS, {"ordering": ordering, "is_system": "false"})
        return [row["name"] for row in response.json()["results"]]

    assert order("name") == ["a", "b"]
    assert order("-name") == ["b", "a"]
    assert order("next_run_at") == ["b", "a"]
    assert order("-created_at") == ["a", "b"]


def test_list_searches_name_description_and_handler(api: APIClient) -> None:
    make_task(name="mailer", description="Send the digest")
    make_task(name="other", handler_path="scripts:data_sync")

    def found(term: str) -> set[str]:
        return {
            row["name"] for row in api.get(TASKS, {"search": term}).json()["results"]
        }

    assert found("digest") == {"mailer"}
    assert found("data_sync") == {"other"}
    assert "search" in errors(api.get(TASKS, {"search": "a\x00b"}))


def test_list_is_paginated_50_by_default_and_500_at_most(api: APIClient) -> None:
    ScheduledTask.objects.bulk_create(
        [
            ScheduledTask(
                name="bulk-%03d" % index,
                task_type="manual",
                handler_path="scripts:example_task",
            )
            for index in range(60)
        ]
    )

    first = api.get(TASKS).json()
    assert first["count"] == 61 and len(first["results"]) == 50 and first["next"]
    assert len(api.get(TASKS, {"page": 2}).json()["results"]) == 11
    assert len(api.get(TASKS, {"page_size": 10}).json()["results"]) == 10
    assert len(api.get(TASKS, {"page_size": 100000}).json()["results"]) == 61
    assert api.get(TASKS, {"page": 99}).status_code == 404


def test_detail_by_id_and_by_name_with_or_without_slash(api: APIClient) -> None:
    task = make_task(name="weekly.report")

    for url in (task_url(task), task_url(task) + "/", task_url("weekly.report")):
        response = api.get(url)
        assert response.status_code == 200, url
        assert response.json()["id"] == task.pk


def test_a_numeric_name_resolves_as_an_id_first(api: APIClient) -> None:
    first = make_task(name="first")
    named_like_first = make_task(name=str(first.pk))
    numeric_only = make_task(name="987654")

    assert api.get(task_url(first.pk)).json()["id"] == first.pk
    assert api.get(task_url(named_like_first.pk)).json()["id"] == named_like_first.pk
    assert api.get(task_url("987654")).json()["id"] == numeric_only.pk


@pytest.mark.parametrize("ident", ["missing", "424242", "%C2%B2", "x%00y"])
def test_unknown_task_is_a_json_404(api: APIClient, ident: str) -> None:
    response = api.get(task_url(ident))

    assert response.status_code == 404
    assert response.json()["code"] == "task_not_found"


def test_unknown_task_404_suggests_close_names(api: APIClient) -> None:
    make_task(name="nightly_sync")

    assert "nightly_sync" in api.get(task_url("nightly_synk")).json()["detail"]


# Creating


def test_create_validates_and_answers_the_full_task(api: APIClient) -> None:
    response = create(api)

    assert response.status_code == 201, response.content
    body = response.json()
    task = ScheduledTask.objects.get(name="nightly_sync")
    assert body["id"] == task.pk
    assert body["next_run_at"] is not None
    assert body["handler_kwargs"] == {"days": "7", "target": '"orders"'}
    assert body["last_execution_status"] is None
    assert response["Location"] == body["url"]


def test_create_routes_the_task_to_a_celery_queue(api: APIClient) -> None:
    response = create(api, queue="reports.high-priority_2")

    assert response.status_code == 201, response.content
    assert response.json()["queue"] == "reports.high-priority_2"
    assert (
        ScheduledTask.objects.get(name=VALID["name"]).queue == "reports.high-priority_2"
    )


def test_create_ignores_is_system(api: APIClient) -> None:
    response = create(api, is_system=True)

    assert response.status_code == 201
    assert response.json()["is_system"] is False


def test_the_seed_curl_example_works_with_an_api_key_in_the_url(superuser: Any) -> None:
    from tests.factories import key_for

    key = key_for(superuser)
    client = APIClient()

    response = client.post(
        "/api/v1/tasks?api_key=%s" % key,
        data=(
            '{"name": "my_task", "description": "...", "task_type": "interval", '
            '"interval_seconds": 3600, "handler_path": "scripts:example_task"}'
        ),
        content_type="application/json",
    )

    assert response.status_code == 201, response.content
    task = ScheduledTask.objects.get(name="my_task")
    assert task.interval_seconds == 3600 and task.next_run_at is not None


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"cron_expression": "61 * * * *"}, "cron_expression", "minute field “61”"),
        ({"cron_expression": "* * *"}, "cron_expression", "expected 5 fields"),
        ({"cron_expression": "0 2 * 13 *"}, "cron_expression", "month field “13”"),
        (
            {"task_type": "interval", "interval_seconds": 0},
            "interval_seconds",
            "positive",
        ),
        (
            {"task_type": "interval", "interval_seconds": None},
            "interval_seconds",
            "interval",
        ),
        ({"task_type": "interval", "interval_seconds": -5}, "interval_seconds", "0"),
        ({"task_type": "date"}, "run_date", "run date"),
        (
            {"task_type": "date", "run_date": "2001-01-01T00:00:00Z"},
            "run_date",
            "in the past",
        ),
        ({"handler_path": "scripts:no_such_script"}, "handler_path", "not found"),
        ({"handler_path": "not a path"}, "handler_path", "not valid"),
        ({"handler_kwargs": {"days": '"seven"'}}, "handler_kwargs.days", "integer"),
        (
            {"handler_kwargs": {"days": "__import__('os')"}},
            "handler_kwargs.days",
            "days",
        ),
        (
            {"handler_kwargs": {"colour": '"red"'}},
            "handler_kwargs.colour",
            "not accepted",
        ),
        ({"handler_kwargs": ["days"]}, "handler_kwargs", "must be an object"),
        # Beyond the Python parser's own stack, which it reports as MemoryError.
        (
            {"handler_kwargs": {"days": DEEP_EXPRESSION}},
            "handler_kwargs.days",
            "Parameter “days”: Expression too deeply nested",
        ),
        ({"handler_kwargs": {"target": "a\x00b"}}, "handler_kwargs.target", "NUL"),
        ({"handler_kwargs": {"\x00": "1"}}, "handler_kwargs", "NUL"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
        (
            {"task_type": "date", "run_date": "1900-01-01T00:00:00Z"},
            "run_date",
            "between 1970 and 9000",
        ),
        ({"jitter_seconds": 2**40}, "jitter_seconds", "from 0 to 2147483647"),
        ({"task_type": "weekly"}, "task_type", "valid choice"),
        ({"name": ""}, "name", "blank"),
        ({"queue": "reports now"}, "queue", "letters, digits, dots"),
        ({"queue": "-reports"}, "queue", "starting with a letter or digit"),
        (
            {"queue": "q" * 101},
            "queue",
            "Queue: enter at most 100 characters (got 101)",
        ),
        ({"name": "n" * 201}, "name", "Name: enter at most 200 characters (got 201)"),
    ],
)
def test_create_names_the_field_at_fault(
    api: APIClient, changes: dict[str, Any], field: str, says: str
) -> None:
    response = create(api, **changes)

    found = errors(response)
    assert field in found, found
    assert any(says in message for message in found[field]), found[field]
    assert not ScheduledTask.objects.filter(name=VALID["name"]).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('"handler_kwargs": {"options": {"a": ["\\ud800"]}}', "handler_kwargs.options"),
        ('"handler_kwargs": {"options": {"\\udfff": 1}}', "handler_kwargs.options"),
        ('"handler_kwargs": {"target": "\'\\ud800\'"}', "handler_kwargs.target"),
        ('"description": "a\\ud800b"', "description"),
    ],
)
def test_create_refuses_an_unpaired_surrogate_no_answer_could_encode(
    api: APIClient, body: str, field: str
) -> None:
    # JSON may spell one (\ud800); stored, it would break every later answer
    # about the task, since UTF-8 cannot encode it.
    response = api.generic(
        "POST",
        TASKS,
        '{"name": "odd", "handler_path": "scripts:data_sync", "task_type": "manual", '
        + body
        + "}",
        content_type="application/json",
    )

    assert field in errors(response)
    assert not ScheduledTask.objects.filter(name="odd").exists()


def test_create_reports_a_missing_required_parameter(api: APIClient) -> None:
    response = create(
        api, handler_path="tests.sample_handlers.api:needs_day", handler_kwargs={}
    )

    found = errors(response)
    [field] = [name for name in found if name.startswith("handler_kwargs.")]
    assert "required" in found[field][0]


def test_create_reports_a_taken_name(api: APIClient) -> None:
    make_task(name=VALID["name"])

    found = errors(create(api))

    assert found["name"] == [
        "A task named “nightly_sync” already exists; choose another name."
    ]


def test_create_lists_every_problem_at_once(api: APIClient) -> None:
    response = create(
        api, cron_expression="99 * * * *", handler_kwargs={"days": '"x"', "colour": "1"}
    )

    found = errors(response)
    assert {"cron_expression", "handler_kwargs.days", "handler_kwargs.colour"} <= set(
        found
    )
    assert "more problems" in response.json()["detail"]


def test_create_needs_the_add_permission(viewer: APIClient, client_with: Any) -> None:
    assert create(viewer).status_code == 403
    assert create(client_with("add_scheduledtask")).status_code == 201


# Changing


def test_patch_changes_only_the_given_fields(api: APIClient) -> None:
    task = make_task(name="patch-me", interval_seconds=60)

    response = api.patch(task_url("patch-me"), {"interval_seconds": 120}, format="json")

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.interval_seconds == 120 and task.name == "patch-me"
    assert response.json()["interval_seconds"] == 120
    assert task.next_run_at is not None


def test_put_replaces_the_task(api: APIClient) -> None:
    task = make_task(name="put-me")
    make_execution(task, status="failed")

    response = api.put(task_url(task), {**VALID, "name": "put-me"}, format="json")

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.task_type == "cron" and task.handler_path == "scripts:data_sync"
    assert response.json()["last_execution_status"] == "failed"


def test_update_validates_like_create(api: APIClient) -> None:
    task = make_task(name="keep-me")

    found = errors(api.patch(task_url(task), {"interval_seconds": 0}, format="json"))

    assert "interval_seconds" in found
    task.refresh_from_db()
    assert task.interval_seconds == 60


def test_update_refuses_a_parameter_nested_too_deeply(api: APIClient) -> None:
    task = make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "7"})

    response = api.patch(
        task_url(task), {"handler_kwargs": {"days": DEEP_EXPRESSION}}, format="json"
    )

    found = errors(response)
    assert found["handler_kwargs.days"] == [
        "Parameter “days”: Expression too deeply nested (at most 50 levels)"
    ]
    task.refresh_from_db()
    assert task.handler_kwargs == {"days": "7"}


def test_update_keeps_a_past_run_date_that_did_not_change(api: APIClient) -> None:
    past = timezone.now() - dt.timedelta(days=1)
    task = make_task(
        name="one-off", task_type="date", run_date=past, interval_seconds=None
    )

    response = api.patch(task_url(task), {"description": "ran already"}, format="json")

    assert response.status_code == 200, response.content
    found = errors(
        api.patch(
            task_url(task),
            {"run_date": (past - dt.timedelta(days=1)).isoformat()},
            format="json",
        )
    )
    assert "run_date" in found


def test_update_reports_a_taken_name(api: APIClient) -> None:
    make_task(name="taken")
    task = make_task(name="mine")

    assert "name" in errors(api.patch(task_url(task), {"name": "taken"}, format="json"))


def test_update_cannot_clear_is_system(api: APIClient) -> None:
    response = api.patch(
        task_url("cleanup_executions"), {"is_system": False}, format="json"
    )

    assert response.status_code == 200
    assert ScheduledTask.objects.get(name="cleanup_executions").is_system


def test_update_needs_the_change_permission(viewer: APIClient) -> None:
    task = make_task()

    assert (
        viewer.patch(task_url(task), {"description": "x"}, format="json").status_code
        == 403
    )
    assert viewer.put(task_url(task), VALID, format="json").status_code == 403


CHANGE_ONLY = ("view_scheduledtask", "change_scheduledtask")


@pytest.mark.parametrize("status", ["paused", "disabled"])
def test_patch_of_the_status_needs_the_pause_permission(
    client_with: Any, status: str
) -> None:
    task = make_task(description="before")
    editor = client_with(*CHANGE_ONLY)

    response = editor.patch(
        task_url(task), {"status": status, "description": "after"}, format="json"
    )

    assert response.status_code == 403, response.content
    body = response.json()
    assert body["code"] == "permission_denied" and body["field"] == "status"
    assert "Can pause and resume tasks" in body["detail"]
    task.refresh_from_db()
    assert task.status == "active" and task.description == "before"
    # The same change-only user is refused /pause as well: one rule.
    assert editor.post(task_url(task) + "/pause").status_code == 403


def test_a_refused_status_change_is_listed_beside_the_other_errors(
    client_with: Any,
) -> None:
    # task_validate, as for the admin form: every problem at once.
    task = make_task(description="before")
    editor = client_with(*CHANGE_ONLY)

    response = editor.patch(
        task_url(task), {"status": "paused", "queue": "reports now"}, format="json"
    )

    assert response.status_code == 400, response.content
    found = errors(response)
    assert "Can pause and resume tasks" in found["status"][0]
    assert "letters, digits, dots" in found["queue"][0]
    task.refresh_from_db()
    assert task.status == "active" and task.queue == ""


def test_put_that_changes_the_status_needs_the_pause_permission(
    client_with: Any,
) -> None:
    task = make_task(status=ScheduledTask.Status.PAUSED)
    editor = client_with(*CHANGE_ONLY)

    response = editor.put(
        task_url(task), {**VALID, "name": task.name, "status": "active"}, format="json"
    )

    assert response.status_code == 403, response.content
    task.refresh_from_db()
    assert task.status == "paused" and task.task_type == "interval"


def test_a_change_only_user_may_edit_when_the_status_stays_as_it_is(
    client_with: Any,
) -> None:
    task = make_task(status=ScheduledTask.Status.PAUSED)
    editor = client_with(*CHANGE_ONLY)

    unchanged = editor.patch(
        task_url(task), {"status": "paused", "description": "x"}, format="json"
    )
    without = editor.put(task_url(task), {**VALID, "name": task.name}, format="json")

    assert unchanged.status_code == 200, unchanged.content
    assert without.status_code == 200, without.content
    task.refresh_from_db()
    assert task.status == "paused" and task.task_type == "cron"


def test_patch_of_the_status_with_the_pause_permission_pauses_the_task(
    client_with: Any,
) -> None:
    task = make_task()
    operator = client_with(*CHANGE_ONLY, "pause_scheduledtask")

    response = operator.patch(task_url(task), {"status": "paused"}, format="json")

    assert response.status_code == 200, response.content
    task.refresh_from_db()
    assert task.status == "paused" and task.next_run_at is None


def test_update_of_an_unknown_task_is_404(api: APIClient) -> None:
    patch = api.patch(task_url("ghost"), {"description": "x"}, format="json")
    put = api.put(task_url("ghost"), VALID, format="json")

    assert patch.status_code == put.status_code == 404
    assert put.json()["code"] == "task_not_found"


# Deleting


def test_delete_removes_the_task_and_its_history(api: APIClient) -> None:
    task = make_task(name="doomed")
    make_execution(task, status="success")

    response = api.delete(task_url("doomed"))

    assert response.status_code == 204
    assert not ScheduledTask.objects.filter(pk=task.pk).exists()


def test_delete_of_a_system_task_is_refused_with_409(api: APIClient) -> None:
    response = api.delete(task_url("cleanup_executions"))

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "system_task_protected"
    assert "not deleted" in body["detail"]
    assert ScheduledTask.objects.filter(name="cleanup_executions").exists()


def test_delete_needs_the_delete_permission(viewer: APIClient) -> None:
    task = make_task()

    assert viewer.delete(task_url(task)).status_code == 403
    assert ScheduledTask.objects.filter(pk=task.pk).exists()


def test_delete_of_an_unknown_task_is_404(api: APIClient) -> None:
    assert api.delete(task_url("ghost")).status_code == 404


# Permissions and authentication on every task route


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", ""),
        ("post", ""),
        ("get", "/1"),
        ("put", "/1"),
        ("patch", "/1"),
        ("delete", "/1"),
    ],
)
def test_every_task_route_needs_authentication(
    anonymous: APIClient, method: str, path: str
) -> None:
    response = getattr(anonymous, method)(TASKS + path)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Api-Key")


def test_reading_tasks_needs_the_view_permission(
    nobody: APIClient, viewer: APIClient
) -> None:
    task = make_task()

    assert nobody.get(TASKS).status_code == 403
    assert nobody.get(task_url(task)).status_code == 403
    assert viewer.get(TASKS).status_code == 200
    assert viewer.get(task_url(task)).status_code == 200


def test_every_write_reaches_the_scheduler_through_the_services(api: APIClient) -> None:
    """The running scheduler reloads when the task version moves, as for the admin."""
    versions = [tasks_version()]

    created = create(api).json()
    versions.append(tasks_version())
    api.patch(task_url(created["id"]), {"description": "x"}, format="json")
    versions.append(tasks_version())
    api.post(task_url(created["id"]) + "/pause")
    versions.append(tasks_version())
    api.delete(task_url(created["id"]))
    versions.append(tasks_version())

    assert versions == sorted(set(versions)), versions


@pytest.mark.django_db(transaction=True)
def test_simultaneous_patches_of_different_fields_both_land(superuser: Any) -> None:
    """Two clients PATCH one task at once, one its description, one its status.

    Each pair starts together (a barrier); every response is 200, and every pair's
    two changes are in the row. A PATCH writes only its own fields, onto the row
    read again under a lock, so neither overwrites the other with what it loaded.
    """
    from django.db import connection

    from tests.factories import key_client, key_for

    key = key_for(superuser)
    task = make_task(name="contended")
    statuses: list[int] = []

    def patch(barrier: threading.Barrier, body: dict[str, Any]) -> None:
        try:
            barrier.wait(10)
            statuses.append(
                key_client(key).patch(task_url(task), body, format="json").status_code
            )
        finally:
            connection.close()

    for pair in range(20):
        status = "paused" if pair % 2 == 0 else "active"
        barrier = threading.Barrier(2)
        threads = [
            threading.Thread(
                target=patch, args=(barrier, {"description": "pair %d" % pair})
            ),
            threading.Thread(target=patch, args=(barrier, {"status": status})),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        stored = ScheduledTask.objects.get(pk=task.pk)
        assert (stored.description, stored.status) == ("pair %d" % pair, status)
    assert statuses == [200] * 40


# Versions: ETag and If-Match


def test_a_task_answers_with_its_version_as_etag_and_each_change_bumps_it(
    api: APIClient,
) -> None:
    created = create(api)
    url = task_url(created.json()["id"])

    read = api.get(url)
    changed = api.patch(url, {"description": "x"}, format="json")
    paused = api.post(url + "/pause")

    assert (created["ETag"], created.json()["version"]) == ('"1"', 1)
    assert read["ETag"] == '"1"'
    assert (changed["ETag"], changed.json()["version"]) == ('"2"', 2)
    assert paused.status_code == 200
    assert api.get(url)["ETag"] == '"3"'


def test_if_match_with_the_current_etag_saves(api: APIClient) -> None:
    url = task_url(create(api).json()["id"])

    response = api.patch(
        url, {"description": "mine"}, format="json", HTTP_IF_MATCH='"1"'
    )

    assert response.status_code == 200
    assert response.json()["description"] == "mine"


def test_if_match_with_a_stale_etag_is_412_and_saves_nothing(api: APIClient) -> None:
    url = task_url(create(api).json()["id"])
    api.post(url + "/pause")  # someone else, meanwhile: version 2

    response = api.patch(url, {"status": "active"}, format="json", HTTP_IF_MATCH='"1"')

    assert response.status_code == 412
    body = response.json()
    assert body["code"] == "task_changed"
    assert "was changed by someone else since you loaded it" in body["detail"]
    assert api.get(url).json()["status"] == "paused"


@pytest.mark.parametrize("header", ['W/"1"', '"one"', '"99999999999999"'])
def test_if_match_with_an_etag_that_is_no_current_version_is_412(
    api: APIClient, header: str
) -> None:
    url = task_url(create(api).json()["id"])

    response = api.put(url, VALID, format="json", HTTP_IF_MATCH=header)

    assert response.status_code == 412


def test_if_match_star_saves_and_a_malformed_one_is_400(api: APIClient) -> None:
    url = task_url(create(api).json()["id"])

    star = api.patch(url, {"description": "a"}, format="json", HTTP_IF_MATCH="*")
    bare = api.patch(url, {"description": "b"}, format="json", HTTP_IF_MATCH="2")

    assert star.status_code == 200
    assert bare.status_code == 400
    assert bare.json()["code"] == "invalid_if_match"
    assert "quotes included" in bare.json()["detail"]
    assert api.get(url).json()["description"] == "a"


def test_a_bad_field_is_reported_before_a_stale_if_match(api: APIClient) -> None:
    url = task_url(create(api).json()["id"])

    response = api.patch(
        url, {"jitter_seconds": 2**31}, format="json", HTTP_IF_MATCH='"7"'
    )

    assert list(errors(response)) == ["jitter_seconds"]


def test_an_empty_patch_writes_nothing_and_keeps_the_version(api: APIClient) -> None:
    url = task_url(create(api).json()["id"])

    response = api.patch(url, {}, format="json")

    assert (response.status_code, response["ETag"]) == (200, '"1"')


@pytest.mark.parametrize(
    ("header", "status"),
    [('"7", "1"', 200), (' "1" ', 200), ('"03", "7"', 412), ('"1",', 400)],
)
def test_if_match_takes_a_list_of_tags_compared_exactly(
    api: APIClient, header: str, status: int
) -> None:
    url = task_url(create(api).json()["id"])

    response = api.patch(url, {"description": "x"}, format="json", HTTP_IF_MATCH=header)

    assert response.status_code == status


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_and_resume_honour_if_match_and_answer_with_the_new_etag(
    api: APIClient, action: str
) -> None:
    url = task_url(create(api).json()["id"])
    if action == "resume":
        api.post(url + "/pause")  # version 2
    current = api.get(url)["ETag"]
    api.patch(url, {"description": "theirs"}, format="json")  # someone else

    stale = api.post(url + "/" + action, HTTP_IF_MATCH=current)
    status_before = api.get(url).json()["status"]
    fresh = api.post(url + "/" + action, HTTP_IF_MATCH=api.get(url)["ETag"])

    assert stale.status_code == 412
    assert stale.json()["code"] == "task_changed"
    assert status_before == ("active" if action == "pause" else "paused")
    assert fresh.status_code == 200
    assert fresh.json()["status"] == ("paused" if action == "pause" else "active")
    assert fresh["ETag"] == '"%d"' % fresh.json()["version"] == api.get(url)["ETag"]


def test_a_change_to_the_values_stored_writes_nothing_and_keeps_the_etag(
    api: APIClient,
) -> None:
    created = create(api)
    url = task_url(created.json()["id"])
    before = ScheduledTask.objects.get(pk=created.json()["id"])

    same = api.patch(url, {"description": created.json()["description"]}, format="json")
    put = api.put(url, VALID, format="json")
    unwritten = ScheduledTask.objects.get(pk=before.pk).updated_at == before.updated_at
    paused_twice = [api.post(url + "/pause")["ETag"] for _ in range(2)]

    assert (same.status_code, same["ETag"]) == (200, '"1"')
    assert (put.status_code, put["ETag"]) == (200, '"1"')
    assert unwritten
    assert paused_twice == ['"2"', '"2"']


def test_delete_with_a_stale_if_match_is_412_and_keeps_the_task(api: APIClient) -> None:
    url = task_url(create(api).json()["id"])
    api.patch(url, {"description": "theirs"}, format="json")

    stale = api.delete(url, HTTP_IF_MATCH='"1"')
    current = api.delete(url, HTTP_IF_MATCH='"2"')

    assert (stale.status_code, current.status_code) == (412, 204)


def test_delete_of_a_task_with_runs_pending_or_running_is_409_unless_cancelled(
    api: APIClient,
) -> None:
    task = make_task(name="busy")
    running = make_execution(task, status="running")
    pending = make_execution(task)

    refused = api.delete(task_url("busy"))
    wrong = api.delete(task_url("busy") + "?cancel_runs=yes")
    deleted = api.delete(task_url("busy") + "?cancel_runs=true")

    assert refused.status_code == 409
    assert refused.json()["code"] == "task_busy"
    assert refused.json()["detail"] == (
        "Task “busy” has runs pending or running (#%s running, #%s pending): cancel "
        "them first, or delete it with its runs cancelled." % (running.pk, pending.pk)
    )
    assert wrong.status_code == 400
    assert wrong.json()["field"] == "cancel_runs"
    assert deleted.status_code == 204
    assert not ScheduledTask.objects.filter(pk=task.pk).exists()
