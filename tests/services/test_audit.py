"""The audit trail as the services write it: one entry per task changed or acted on,
in the change's transaction, with who, from where, what, the field changes and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import transaction

from scheduler_app import scheduler
from scheduler_app.choices import AuditAction, AuditSource
from scheduler_app.exceptions import ReasonInvalid
from scheduler_app.models import AuditEntry, ScheduledTask
from scheduler_app.services import (
    CLI,
    PYTHON,
    SYNC,
    Origin,
    TaskInvalid,
    execution_cancel,
    task_create,
    task_delete,
    task_pause,
    task_request_run,
    task_update,
    tasks_disable,
    tasks_enable,
    tasks_ensure_declared,
    tasks_pause,
    tasks_resume,
)
from tests.factories import make_execution, make_task, make_user

pytestmark = pytest.mark.django_db

ALICE = "alice"


def entries(**filters: Any) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**filters).order_by("id"))


def by_alice(reason: str = "") -> Origin:
    return Origin(
        source=AuditSource.API,
        user=make_user(ALICE, superuser=True),
        api_key="ci-bot",
        reason=reason,
    )


# What each operation records


def test_a_create_records_the_initial_fields() -> None:
    task = task_create(
        task=ScheduledTask(
            name="nightly",
            task_type="cron",
            cron_expression="0 2 * * *",
            handler_path="scripts:example_task",
        ),
        origin=PYTHON,
    )

    [entry] = entries()
    assert (entry.task, entry.task_name, entry.action, entry.source) == (
        task,
        "nightly",
        "create",
        "python",
    )
    assert (entry.actor, entry.actor_name, entry.api_key_name) == (None, "", "")
    assert entry.changes["name"] == [None, "nightly"]
    assert entry.changes["cron_expression"] == [None, "0 2 * * *"]
    assert entry.changes["alert_channels"] == [None, []]


def test_an_update_records_each_changed_field_before_and_after() -> None:
    task = make_task(description="old", interval_seconds=60)

    task_update(
        task=task,
        changes={"description": "new", "interval_seconds": 120, "queue": ""},
        origin=by_alice("slower"),
    )

    [entry] = entries()
    assert entry.action == "update"
    assert entry.changes == {
        "description": ["old", "new"],
        "interval_seconds": [60, 120],
    }
    assert (entry.actor_name, entry.api_key_name, entry.source, entry.reason) == (
        ALICE,
        "ci-bot",
        "api",
        "slower",
    )
    assert entry.actor is not None and entry.actor.get_username() == ALICE


def test_a_whole_row_save_records_its_changes_and_a_status_change_its_action() -> None:
    task = make_task(description="old")
    task.description = "new"
    task_update(task=task, origin=PYTHON)
    task.status = ScheduledTask.Status.DISABLED
    task_update(task=task, origin=PYTHON.because("broken upstream"))

    first, second = entries()
    assert (first.action, first.changes) == ("update", {"description": ["old", "new"]})
    assert (second.action, second.changes, second.reason) == (
        "disable",
        {"status": ["active", "disabled"]},
        "broken upstream",
    )


def test_a_save_that_changes_nothing_records_nothing() -> None:
    task = make_task(description="same")

    task_update(task=task, changes={"description": "same"}, origin=PYTHON)
    task_update(task=task, origin=PYTHON)
    task_pause(task=task, origin=PYTHON)
    task_pause(task=task, origin=PYTHON)

    assert [entry.action for entry in entries()] == ["pause"]


def test_a_change_that_rolls_back_records_nothing() -> None:
    task = make_task()

    with pytest.raises(TaskInvalid):
        task_update(task=task, changes={"interval_seconds": -1}, origin=PYTHON)
    with pytest.raises(RuntimeError), transaction.atomic():
        task_pause(task=task, origin=PYTHON)
        raise RuntimeError("the caller's transaction fails after the pause")

    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.ACTIVE
    assert entries() == []


def test_a_bulk_change_records_one_entry_per_task_it_changed() -> None:
    active = [make_task(name="a"), make_task(name="b")]
    paused = make_task(name="c", status=ScheduledTask.Status.PAUSED)
    disabled = make_task(name="d", status=ScheduledTask.Status.DISABLED)
    every = ScheduledTask.objects.filter(
        pk__in=[t.pk for t in [*active, paused, disabled]]
    )

    tasks_pause(tasks=every, origin=PYTHON.because("maintenance"))

    recorded = entries()
    assert sorted(entry.task_name for entry in recorded) == ["a", "b"]
    assert {(entry.action, entry.reason) for entry in recorded} == {
        ("pause", "maintenance")
    }
    assert recorded[0].changes == {"status": ["active", "paused"]}


def test_status_actions_are_named_by_what_they_did() -> None:
    task = make_task(status=ScheduledTask.Status.PAUSED)
    tasks = ScheduledTask.objects.filter(pk=task.pk)

    tasks_resume(tasks=tasks, origin=PYTHON)
    tasks_disable(tasks=tasks, origin=PYTHON)
    tasks_enable(tasks=tasks, origin=PYTHON)

    assert [(e.action, e.changes["status"]) for e in entries()] == [
        ("resume", ["paused", "active"]),
        ("disable", ["active", "disabled"]),
        ("enable", ["disabled", "active"]),
    ]


def test_a_delete_keeps_the_name_and_the_reason_not_the_link() -> None:
    task = make_task(name="doomed")
    task_pause(task=task, origin=PYTHON)
    make_execution(task, status="pending")

    task_delete(task=task, cancel_runs=True, origin=by_alice("replaced by v2"))

    pause, delete = entries()
    assert (delete.action, delete.task, delete.task_name, delete.reason) == (
        "delete",
        None,
        "doomed",
        "replaced by v2",
    )
    # The cancel of its pending run is part of the delete: no entry of its own.
    assert pause.task is None and pause.task_name == "doomed"


def test_a_cancel_records_the_run() -> None:
    task = make_task()
    run = make_execution(task, status="pending")

    execution_cancel(execution=run, origin=by_alice())

    [entry] = entries()
    assert (entry.action, entry.task, entry.run_id) == ("cancel", task, run.pk)


def test_asking_a_running_run_to_stop_again_records_nothing_more() -> None:
    task = make_task()
    run = make_execution(task, status="running")
    alice = by_alice()

    for _ in range(3):
        execution_cancel(execution=run, origin=alice)

    assert [(entry.action, entry.run_id) for entry in entries()] == [("cancel", run.pk)]


# Run requests: requested_by, and an entry with the run


@pytest.mark.parametrize(
    ("origin", "label"),
    [(PYTHON, "python"), (CLI, "cli")],
)
def test_a_run_request_says_who_asked(origin: Origin, label: str) -> None:
    task = make_task()

    run = task_request_run(task=task, origin=origin)

    assert run.requested_by == label
    [entry] = entries()
    assert (entry.action, entry.run_id, entry.source) == ("run_now", run.pk, label)


def test_a_run_with_overrides_is_recorded_as_run_with_parameters() -> None:
    task = make_sample_task_with_days()

    run = task_request_run(task=task, overrides={"days": "3"}, origin=by_alice())

    assert run.requested_by == "alice (api, key ci-bot)"
    [entry] = entries()
    assert (entry.action, entry.run_id) == ("run_with_parameters", run.pk)
    assert entry.changes == {"kwargs": [None, {"days": "3"}]}


def make_sample_task_with_days() -> ScheduledTask:
    return make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "7"})


def test_the_python_api_records_its_source_and_a_run_job_its_requester() -> None:
    task = scheduler.add_interval_job("scripts:example_task", minutes=5, name="py")
    run = scheduler.run_job("py")
    scheduler.pause_job("py", reason="quiet hours")
    scheduler.remove_job("py", cancel_runs=True, reason="done")

    assert run.requested_by == "python"
    assert [(e.action, e.source, e.reason) for e in entries()] == [
        ("create", "python", ""),
        ("run_now", "python", ""),
        ("pause", "python", "quiet hours"),
        ("delete", "python", "done"),
    ]
    assert task.pk is not None


# A required reason


@pytest.mark.parametrize(
    ("setting", "operation"),
    [
        ("pause", lambda name: scheduler.pause_job(name)),
        ("delete", lambda name: scheduler.remove_job(name)),
        (
            ["disable"],
            lambda name: tasks_disable(
                tasks=ScheduledTask.objects.filter(name=name), origin=PYTHON
            ),
        ),
        (
            "disable",
            lambda name: task_update(
                task=ScheduledTask.objects.get(name=name),
                changes={"status": "disabled"},
                origin=PYTHON.because("   "),
            ),
        ),
    ],
)
def test_a_required_reason_missing_is_refused_and_changes_nothing(
    settings: Any, setting: Any, operation: Any
) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = setting
    task = make_task(name="guarded")

    with pytest.raises(ReasonInvalid, match="Say why") as raised:
        operation("guarded")

    assert raised.value.field == "reason"
    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.ACTIVE
    assert entries() == []


def test_a_required_reason_given_is_recorded(settings: Any) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = "pause,disable,delete,release_lock"
    make_task(name="guarded")

    scheduler.pause_job("guarded", reason="supplier down")

    [entry] = entries()
    assert (entry.action, entry.reason) == ("pause", "supplier down")


def test_an_operation_the_setting_does_not_name_needs_no_reason(settings: Any) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = "delete"
    task = make_task()

    task_pause(task=task, origin=PYTHON)

    assert [entry.action for entry in entries()] == ["pause"]


# The schedule sync and the importer


def test_the_schedule_sync_records_its_source(settings: Any, tmp_path: Path) -> None:
    (tmp_path / "nightly_report.py").write_text(
        'TASK_INFO = {"description": "Report", "schedule": {"cron": "15 3 * * *"}}\n'
        "def run():\n    return {}\n"
    )
    settings.SCHEDULER_SCRIPTS_PATH = str(tmp_path)

    [task] = tasks_ensure_declared(origin=SYNC)

    [entry] = entries()
    assert (entry.task, entry.action, entry.source, entry.actor_name) == (
        task,
        "create",
        "sync",
        "",
    )


def test_the_action_choices_are_the_ones_audited() -> None:
    assert {str(action) for action in AuditAction} >= {
        "create",
        "update",
        "delete",
        "pause",
        "resume",
        "enable",
        "disable",
        "run_now",
        "run_with_parameters",
        "cancel",
        "release_lock",
    }
