"""Task actions: run, pause, resume, executions, handlers, locks and release-lock."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.handlers import registry
from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import AuditEntry, ScheduledTask, TaskExecution
from tests.factories import make_execution, make_live_run_holding_lock, make_task

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks"


def url(task: ScheduledTask | str, action: str) -> str:
    ident = task.pk if isinstance(task, ScheduledTask) else task
    return "%s/%s/%s" % (TASKS, ident, action)


# run


def test_run_creates_a_pending_execution_and_answers_202_with_its_url(
    api: APIClient,
) -> None:
    task = make_task(name="runner")

    response = api.post(url("runner", "run"))

    assert response.status_code == 202, response.content
    body = response.json()
    execution = TaskExecution.objects.get(pk=body["id"])
    assert execution.task == task
    assert execution.status == "pending" and execution.trigger_type == "manual"
    assert body["url"] == "http://testserver/api/v1/tasks/executions/%d" % execution.pk
    assert response["Location"] == body["url"]
    assert api.get(body["url"]).status_code == 200


def test_run_takes_parameter_overrides_for_this_run_only(api: APIClient) -> None:
    task = make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "7"})

    response = api.post(url(task, "run"), {"kwargs": {"days": "1 + 2"}}, format="json")

    assert response.status_code == 202, response.content
    execution = TaskExecution.objects.get(pk=response.json()["id"])
    assert execution.kwargs_overrides == {"days": "1 + 2"}
    task.refresh_from_db()
    assert task.handler_kwargs == {"days": "7"}


@pytest.mark.parametrize(
    ("overrides", "field", "says"),
    [
        ({"days": '"many"'}, "kwargs.days", "integer"),
        ({"colour": '"red"'}, "kwargs.colour", "not accepted"),
        ({"days": "open('/etc/passwd')"}, "kwargs.days", "days"),
        (
            {"days": "-" * 6000 + "1"},
            "kwargs.days",
            "days”: Expression too deeply nested",
        ),
    ],
)
def test_run_validates_overrides_like_the_task_parameters(
    api: APIClient, overrides: dict[str, str], field: str, says: str
) -> None:
    task = make_task(handler_path="scripts:data_sync")

    response = api.post(url(task, "run"), {"kwargs": overrides}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["field"] == field
    assert says in body["errors"][field][0]
    assert not TaskExecution.objects.filter(task=task).exists()


@pytest.mark.parametrize(
    "kwargs",
    ['{"options": {"a": "\\ud800"}}', '{"target": "\\u0000"}', '{"\\ud800": "1"}'],
)
def test_run_refuses_overrides_no_database_can_store(
    api: APIClient, kwargs: str
) -> None:
    task = make_task(handler_path="scripts:data_sync")

    response = api.generic(
        "POST",
        url(task, "run"),
        '{"kwargs": %s}' % kwargs,
        content_type="application/json",
    )

    assert response.status_code == 400, response.content
    body = response.json()
    assert body["field"].startswith("kwargs")
    assert "cannot be stored" in body["detail"]
    assert not TaskExecution.objects.filter(task=task).exists()


def test_run_refuses_overrides_that_are_not_an_object(api: APIClient) -> None:
    task = make_task()

    response = api.post(url(task, "run"), {"kwargs": ["days"]}, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "kwargs"


def test_run_reports_a_missing_required_parameter(api: APIClient) -> None:
    # Saved without validation: a handler whose signature gained a required
    # parameter after the task was made.
    task = make_task(handler_path="tests.sample_handlers.api:needs_day")

    response = api.post(url(task, "run"), {"kwargs": {"note": '"x"'}}, format="json")

    assert response.status_code == 400
    assert response.json()["field"] == "kwargs.day"


def test_run_needs_the_run_permission(viewer: APIClient, client_with: Any) -> None:
    task = make_task()

    assert viewer.post(url(task, "run")).status_code == 403
    assert client_with("run_scheduledtask").post(url(task, "run")).status_code == 202


def test_run_of_an_unknown_task_is_404(api: APIClient) -> None:
    assert api.post(url("ghost", "run")).status_code == 404


# pause / resume


def test_pause_and_resume_change_the_status_through_the_services(
    api: APIClient,
) -> None:
    task = make_task(name="pausable")

    paused = api.post(url("pausable", "pause"))
    assert paused.status_code == 200
    assert paused.json() == {"id": task.pk, "status": "paused", "version": 2}
    task.refresh_from_db()
    assert task.next_run_at is None

    resumed = api.post(url("pausable", "resume"))
    assert resumed.status_code == 200
    assert resumed.json() == {"id": task.pk, "status": "active", "version": 3}
    task.refresh_from_db()
    assert task.status == "active" and task.next_run_at is not None


def test_pause_and_resume_need_the_pause_permission(
    viewer: APIClient, client_with: Any
) -> None:
    task = make_task()
    operator = client_with("pause_scheduledtask")

    assert viewer.post(url(task, "pause")).status_code == 403
    assert viewer.post(url(task, "resume")).status_code == 403
    assert operator.post(url(task, "pause")).status_code == 200
    assert operator.post(url(task, "resume")).status_code == 200


@pytest.mark.parametrize("action", ["pause", "resume"])
def test_pause_and_resume_answer_a_user_without_view_permission_id_status_version(
    client_with: Any, action: str
) -> None:
    task = make_task(description="secret plans", handler_kwargs={"token": "'s3cret'"})
    operator = client_with("pause_scheduledtask")

    response = operator.post(url(task, action))

    assert response.status_code == 200
    assert response.json() == {
        "id": task.pk,
        "status": "paused" if action == "pause" else "active",
        "version": 2 if action == "pause" else 1,  # resuming an active task: no change
    }
    assert operator.get("%s/%d" % (TASKS, task.pk)).status_code == 403


@pytest.mark.parametrize(
    ("action", "says"), [("pause", "not paused"), ("resume", "not resumed")]
)
def test_pause_and_resume_of_a_disabled_task_are_409_and_leave_it_disabled(
    api: APIClient, action: str, says: str
) -> None:
    task = make_task(name="switched_off", status=ScheduledTask.Status.DISABLED)

    response = api.post(url(task, action))

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "invalid_state"
    assert "switched_off" in body["detail"] and says in body["detail"]
    assert "set its status to active" in body["detail"]
    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.DISABLED


# enable / disable (seed 001)


def test_disable_and_enable_switch_a_task_off_and_on_through_the_services(
    api: APIClient,
) -> None:
    task = make_task(name="switchable")

    disabled = api.post(
        url("switchable", "disable"), {"reason": "upgrade"}, format="json"
    )
    assert disabled.status_code == 200, disabled.content
    assert disabled.json() == {"id": task.pk, "status": "disabled", "version": 2}
    assert disabled["ETag"] == '"2"'
    task.refresh_from_db()
    assert task.next_run_at is None

    enabled = api.post(url(task, "enable"))
    assert enabled.status_code == 200
    assert enabled.json() == {"id": task.pk, "status": "active", "version": 3}
    task.refresh_from_db()
    assert task.next_run_at is not None
    trail = AuditEntry.objects.filter(task=task).order_by("id")
    assert [(entry.action, entry.source, entry.reason) for entry in trail] == [
        ("disable", "api", "upgrade"),
        ("enable", "api", ""),
    ]


def test_enable_leaves_a_paused_task_paused_and_records_nothing(api: APIClient) -> None:
    task = make_task(status=ScheduledTask.Status.PAUSED)

    response = api.post(url(task, "enable"))

    assert response.status_code == 200
    assert response.json()["status"] == "paused"
    assert not AuditEntry.objects.filter(task=task).exists()


def test_disable_and_enable_need_the_pause_permission(
    viewer: APIClient, client_with: Any
) -> None:
    task = make_task()
    operator = client_with("pause_scheduledtask")

    assert viewer.post(url(task, "disable")).status_code == 403
    assert viewer.post(url(task, "enable")).status_code == 403
    assert operator.post(url(task, "disable")).status_code == 200
    assert operator.post(url(task, "enable")).status_code == 200


def test_disable_honours_if_match(api: APIClient) -> None:
    task = make_task()

    stale = api.post(url(task, "disable"), HTTP_IF_MATCH='"7"')
    fresh = api.post(url(task, "disable"), HTTP_IF_MATCH='"1"')

    assert stale.status_code == 412 and stale.json()["code"] == "task_changed"
    assert fresh.status_code == 200
    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.DISABLED


# trigger and history: run and executions by their seed 001 names


def test_trigger_is_run_by_another_name(api: APIClient, viewer: APIClient) -> None:
    task = make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "7"})

    response = api.post(url(task, "trigger"), {"kwargs": {"days": "2"}}, format="json")

    assert response.status_code == 202, response.content
    execution = TaskExecution.objects.get(pk=response.json()["id"])
    assert execution.task == task and execution.kwargs_overrides == {"days": "2"}
    assert response["Location"] == response.json()["url"]
    assert viewer.post(url(task, "trigger")).status_code == 403


def test_history_is_executions_by_another_name(
    api: APIClient, client_with: Any
) -> None:
    task = make_task()
    runs = [make_execution(task) for _ in range(3)]
    make_execution()  # another task's

    history = api.get(url(task, "history"))
    executions = api.get(url(task, "executions"))

    assert history.status_code == 200
    assert history.json() == executions.json()
    assert [run["id"] for run in history.json()["results"]] == [
        run.pk for run in reversed(runs)
    ]
    assert (
        client_with("view_scheduledtask").get(url(task, "history")).status_code == 403
    )


def test_pause_and_resume_of_an_unknown_task_is_404(api: APIClient) -> None:
    for action in ("pause", "resume", "enable", "disable", "trigger"):
        assert api.post(url("ghost", action)).status_code == 404
    assert api.get(url("ghost", "history")).status_code == 404


# executions


def test_executions_are_paginated_newest_first(api: APIClient) -> None:
    task = make_task()
    other = make_task()
    now = timezone.now()
    old = make_execution(task, created_at=now - dt.timedelta(hours=2))
    new = make_execution(task, created_at=now - dt.timedelta(hours=1))
    make_execution(other)

    response = api.get(url(task, "executions"), {"page_size": 1})

    body = response.json()
    assert response.status_code == 200
    assert body["next"] and "cursor=" in body["next"] and "count" not in body
    assert [row["id"] for row in body["results"]] == [new.pk]
    assert api.get(body["next"]).json()["results"][0]["id"] == old.pk
    assert "log_output" not in body["results"][0]


def test_executions_filter_by_status_trigger_failure_and_time(api: APIClient) -> None:
    task = make_task()
    now = timezone.now()
    failed = make_execution(
        task,
        status="failed",
        failure_kind="timeout",
        trigger_type="scheduled",
        created_at=now - dt.timedelta(days=2),
    )
    success = make_execution(task, status="success", created_at=now)

    def ids(**query: Any) -> list[int]:
        response = api.get(url(task, "executions"), query)
        assert response.status_code == 200, response.content
        return [row["id"] for row in response.json()["results"]]

    assert ids(status="failed") == [failed.pk]
    assert ids(trigger_type="manual") == [success.pk]
    assert ids(failure_kind="timeout") == [failed.pk]
    assert ids(created_after=(now - dt.timedelta(days=1)).isoformat()) == [success.pk]
    assert ids(created_before=(now - dt.timedelta(days=1)).isoformat()) == [failed.pk]
    # An offset PostgreSQL would refuse (beyond ±15:59) is turned into UTC first.
    far_east = (now + dt.timedelta(days=1)).astimezone(
        dt.timezone(dt.timedelta(hours=22))
    )
    assert ids(created_before=far_east.isoformat()) == [success.pk, failed.pk]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"status": "bored"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "0001-01-01T00:00:00+23:00"}, "created_before"),
    ],
)
def test_executions_refuse_a_bad_filter_with_400(
    api: APIClient, query: dict[str, str], field: str
) -> None:
    response = api.get(url(make_task(), "executions"), query)

    assert response.status_code == 400
    assert field in response.json()["errors"]


@pytest.mark.parametrize("rows", [1, 30])
def test_executions_cost_the_same_queries_for_1_and_30_rows(
    viewer: APIClient, rows: int, django_assert_num_queries: Any
) -> None:
    task = make_task(name="busy")
    for _ in range(rows):
        make_execution(task, status="success")

    viewer.get(
        url("busy", "executions")
    )  # the key's first use of the minute also records it
    # Key with user, permissions (2), the task, the page: no count.
    with django_assert_num_queries(5):
        response = viewer.get(url("busy", "executions"))

    assert len(response.json()["results"]) == rows


def test_executions_need_both_view_permissions(client_with: Any) -> None:
    task = make_task()

    assert (
        client_with("view_scheduledtask").get(url(task, "executions")).status_code
        == 403
    )
    assert (
        client_with("view_taskexecution").get(url(task, "executions")).status_code
        == 403
    )


def test_executions_of_an_unknown_task_is_404(api: APIClient) -> None:
    assert api.get(url("ghost", "executions")).status_code == 404


# handlers


@pytest.fixture
def scripts(tmp_path: Path, settings: Any) -> Iterator[Path]:
    """A scripts folder with one good and one broken script."""
    (tmp_path / "good.py").write_text(
        '"""Says hello."""\n\n\ndef run(name: str, times: int = 1) -> dict:\n'
        "    return {}\n"
    )
    (tmp_path / "broken.py").write_text("def run(:\n")
    settings.SCHEDULER_SCRIPTS_PATH = str(tmp_path)
    registry.clear_cache()
    yield tmp_path
    registry.clear_cache()


@pytest.mark.parametrize("path", ["handlers", "registered", "handlers/", "registered/"])
def test_handlers_lists_every_script_with_params_and_broken_ones(
    api: APIClient, scripts: Path, path: str
) -> None:
    response = api.get("%s/%s" % (TASKS, path))

    assert response.status_code == 200
    by_path = {
        row["path"]: row
        for row in response.json()["results"]
        if row["kind"] == "script"
    }
    assert set(by_path) == {"scripts:good", "scripts:broken"}
    good = by_path["scripts:good"]
    assert good["broken"] is False and good["description"] == "Says hello."
    params = {param["name"]: param for param in good["params"]}
    assert params["name"]["type_name"] == "str" and params["name"]["required"] is True
    assert params["times"]["default"] == 1 and params["times"]["required"] is False
    broken = by_path["scripts:broken"]
    assert broken["broken"] is True and "SyntaxError" in broken["error"]


def test_handlers_need_the_view_permission(
    nobody: APIClient, anonymous: APIClient
) -> None:
    for path in ("/handlers", "/registered"):
        assert nobody.get(TASKS + path).status_code == 403
        assert anonymous.get(TASKS + path).status_code == 401


# locks


@pytest.fixture(params=["database", "redis"])
def lock_backend(request: pytest.FixtureRequest) -> str:
    """Run the lock tests on both backends (Redis skips locally when absent)."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    backend = get_lock_backend()
    assert backend.name == request.param
    return request.param


def test_locks_list_live_locks_with_their_task(
    api: APIClient, lock_backend: str
) -> None:
    task = make_task(name="locked-task")
    get_lock_backend().acquire(
        task_lock_key(task.pk), owner="host:1:abc", ttl_seconds=60
    )

    response = api.get(TASKS + "/locks")

    assert response.status_code == 200
    [lock] = [row for row in response.json()["results"] if row["task_id"] == task.pk]
    assert lock["key"] == task_lock_key(task.pk)
    assert lock["task_name"] == "locked-task" and lock["owner"] == "host:1:abc"
    assert 0 < lock["ttl_seconds"] <= 60
    assert "token" not in lock


def test_task_lock_says_whether_the_task_is_locked(
    api: APIClient, lock_backend: str
) -> None:
    task = make_task(name="lockable")

    free = api.get(url("lockable", "lock")).json()
    assert free == {"locked": False, "key": task_lock_key(task.pk), "lock": None}

    get_lock_backend().acquire(task_lock_key(task.pk), owner="worker-7", ttl_seconds=30)
    held = api.get(url("lockable", "lock")).json()
    assert held["locked"] is True and held["lock"]["owner"] == "worker-7"


def test_release_lock_frees_a_held_lock(api: APIClient, lock_backend: str) -> None:
    task = make_task()
    key = task_lock_key(task.pk)
    get_lock_backend().acquire(key, owner="dead-host", ttl_seconds=60)

    response = api.post(url(task, "release-lock"))

    assert response.status_code == 200
    assert response.json() == {"key": key, "released": True}
    assert get_lock_backend().get(key) is None
    assert api.post(url(task, "release-lock")).json()["released"] is False


def test_release_lock_of_a_live_run_is_409_unless_forced_and_leaves_a_trace(
    api: APIClient, lock_backend: str
) -> None:
    task = make_task(name="busy")
    run = make_live_run_holding_lock(task)
    key = task_lock_key(task.pk)

    refused = api.post(url(task, "release-lock"))
    bad = api.post(url(task, "release-lock") + "?force=yes")
    still_held = get_lock_backend().get(key) is not None
    forced = api.post(url(task, "release-lock") + "?force=true")

    assert refused.status_code == 409
    assert refused.json()["code"] == "lock_holder_alive"
    assert (
        "execution #%s, still running on web-1:7:live" % run.pk
        in (refused.json()["detail"])
    )
    assert (bad.status_code, bad.json()["field"]) == (400, "force")
    assert still_held
    assert forced.json() == {"key": key, "released": True}
    [entry] = AuditEntry.objects.filter(task=task)
    assert (entry.action, entry.source) == ("release_lock", "api")
    assert entry.changes == {"lock": ["web-1:7:live exec:%s" % run.pk, ""]}


def test_release_lock_needs_its_own_permission(
    viewer: APIClient, client_with: Any
) -> None:
    task = make_task()
    editor = client_with(
        "view_scheduledtask",
        "add_scheduledtask",
        "change_scheduledtask",
        "delete_scheduledtask",
    )

    assert viewer.post(url(task, "release-lock")).status_code == 403
    assert editor.post(url(task, "release-lock")).status_code == 403
    releaser = client_with("release_lock_scheduledtask")
    assert releaser.post(url(task, "release-lock")).status_code == 200


def test_lock_routes_need_the_view_permission(nobody: APIClient) -> None:
    task = make_task()

    assert nobody.get(TASKS + "/locks").status_code == 403
    assert nobody.get(url(task, "lock")).status_code == 403


def test_lock_routes_of_an_unknown_task_are_404(api: APIClient) -> None:
    assert api.get(url("ghost", "lock")).status_code == 404
    assert api.post(url("ghost", "release-lock")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/1/run"),
        ("post", "/1/pause"),
        ("post", "/1/resume"),
        ("get", "/1/executions"),
        ("get", "/handlers"),
        ("get", "/registered"),
        ("get", "/locks"),
        ("get", "/1/lock"),
        ("post", "/1/release-lock"),
    ],
)
def test_every_action_needs_authentication(
    anonymous: APIClient, method: str, path: str
) -> None:
    response = getattr(anonymous, method)(TASKS + path)

    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


# stats (seed 003)


def _runs_lasting(
    task: ScheduledTask, *durations: int, status: str = "success"
) -> None:
    now = timezone.now()
    for index, duration in enumerate(durations):
        make_execution(
            task,
            status=status,
            duration_ms=duration,
            created_at=now - dt.timedelta(minutes=len(durations) - index),
        )


def test_stats_give_each_task_s_durations_over_its_latest_runs(api: APIClient) -> None:
    quick = make_task(name="a_quick")
    _runs_lasting(quick, 100, 300)
    make_execution(quick, status="running")  # not finished: not measured
    idle = make_task(name="b_idle")

    response = api.get(TASKS + "/stats")

    assert response.status_code == 200, response.content
    rows = {row["name"]: row for row in response.json()["results"]}
    assert rows["a_quick"] == {
        "task": quick.pk,
        "name": "a_quick",
        "count": 2,
        "total_ms": 400,
        "min_ms": 100,
        "max_ms": 300,
        "avg_ms": 200.0,
    }
    assert rows["b_idle"] == {
        "task": idle.pk,
        "name": "b_idle",
        "count": 0,
        "total_ms": 0,
        "min_ms": None,
        "max_ms": None,
        "avg_ms": None,
    }


def test_stats_slow_over_lists_the_slow_tasks_slowest_first(api: APIClient) -> None:
    _runs_lasting(make_task(name="slow"), 1500, 2500)  # avg 2 s
    _runs_lasting(make_task(name="slower"), 4000, status="failed")  # failures count
    _runs_lasting(make_task(name="fast"), 200)

    response = api.get(TASKS + "/stats?slow_over=1")

    assert response.status_code == 200
    assert [row["name"] for row in response.json()["results"]] == ["slower", "slow"]


@pytest.mark.parametrize("value", ["fast", "-1", "nan", "inf", ""])
def test_stats_refuse_a_slow_over_that_is_not_seconds(
    api: APIClient, value: str
) -> None:
    response = api.get(TASKS + "/stats?slow_over=" + value)

    assert response.status_code == 400
    assert response.json()["field"] == "slow_over"


def test_stats_need_the_view_permission(nobody: APIClient, viewer: APIClient) -> None:
    assert nobody.get(TASKS + "/stats").status_code == 403
    assert viewer.get(TASKS + "/stats").status_code == 200
