"""Task use cases: validation with actionable messages, next fire times, status changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from scheduler_app.choices import AuditSource
from scheduler_app.exceptions import (
    InvalidTransition,
    StatusChangeForbidden,
    SystemTaskProtected,
    TaskBusy,
    TaskChanged,
    TaskNotFound,
)
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import (
    Origin,
    TaskInvalid,
    may_change_status,
    task_check_version,
    task_create,
    task_delete,
    task_get,
    task_pause,
    task_request_run,
    task_resume,
    task_snapshot,
    task_update,
    tasks_delete,
    tasks_pause,
    tasks_record_next_runs,
    tasks_resume,
    tasks_set_status,
)
from tests.factories import make_execution

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 3, 2, 10, 15, tzinfo=dt.UTC)  # 18:15 in Shanghai


def create(**fields: Any) -> ScheduledTask:
    defaults: dict[str, Any] = {
        "name": "nightly",
        "task_type": "cron",
        "cron_expression": "0 2 * * *",
        "handler_path": "scripts:data_sync",
    }
    defaults.update(fields)
    return task_create(task=ScheduledTask(**defaults), now=NOW)


def errors_of(excinfo: pytest.ExceptionInfo[TaskInvalid]) -> dict[str | None, str]:
    return {error.field: error.message for error in excinfo.value.errors}


def test_cron_task_gets_its_next_fire_time_in_the_project_zone() -> None:
    task = create()

    assert task.next_run_at == dt.datetime(2026, 3, 2, 18, 0, tzinfo=dt.UTC)


def test_cron_task_in_its_own_zone() -> None:
    task = create(timezone="Europe/Paris")

    assert task.next_run_at == dt.datetime(2026, 3, 3, 1, 0, tzinfo=dt.UTC)


def test_interval_task_next_fire_is_one_interval_away() -> None:
    task = create(task_type="interval", cron_expression="", interval_seconds=600)

    assert task.next_run_at == NOW + dt.timedelta(seconds=600)


def test_date_task_fires_at_its_run_date_and_manual_never() -> None:
    when = NOW + dt.timedelta(hours=1)
    date_task = create(task_type="date", cron_expression="", run_date=when)
    manual = create(name="by-hand", task_type="manual", cron_expression="")

    assert date_task.next_run_at == when
    assert manual.next_run_at is None


def test_bad_cron_expression_names_the_wrong_field() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(cron_expression="61 * * * *")

    assert "minute field “61” is out of range" in errors_of(excinfo)["cron_expression"]


def test_unknown_handler_names_it_and_where_it_looked() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(handler_path="scripts:no_such_script")

    message = errors_of(excinfo)["handler_path"]
    assert "scripts:no_such_script" in message
    assert "no_such_script.py" in message


def test_parameter_of_the_wrong_type_names_parameter_and_type() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(handler_kwargs={"days": "'abc'"})

    assert (
        errors_of(excinfo)["days"]
        == "Parameter “days”: expected an integer, got 'abc' (str)."
    )


def test_unknown_parameter_is_refused_listing_the_known_ones() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(handler_kwargs={"dayz": "1"})

    message = " ".join(errors_of(excinfo).values())
    assert "dayz" in message and "days, target, start_date, options" in message


def test_unsafe_expression_is_refused_at_save() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(handler_kwargs={"days": "__import__('os').system('true')"})

    assert "Parameter “days”" in errors_of(excinfo)["days"]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(cron_expression="* *", handler_kwargs={"days": "'x'"}, max_instances=3)

    assert {"cron_expression", "days", "max_instances"} <= set(errors_of(excinfo))


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(timezone="Mars/Base")

    assert "Unknown time zone “Mars/Base”" in errors_of(excinfo)["timezone"]


def test_interval_must_be_positive_and_run_date_in_the_future() -> None:
    with pytest.raises(TaskInvalid) as interval:
        create(task_type="interval", cron_expression="", interval_seconds=0)
    with pytest.raises(TaskInvalid) as past:
        create(
            task_type="date", cron_expression="", run_date=NOW - dt.timedelta(days=1)
        )

    assert "interval_seconds" in errors_of(interval)
    assert "in the past" in errors_of(past)["run_date"]


@pytest.mark.parametrize("way", ["changes", "edited instance"])
def test_a_run_date_must_be_ahead_when_changed_not_when_the_task_is_edited_later(
    way: str,
) -> None:
    def edit(task: ScheduledTask, **fields: Any) -> None:
        if way == "changes":  # the API's and the Python API's way
            task_update(task=task, changes=fields, now=later)
        else:  # the admin's way: the form edits the instance, then saves it
            for name, value in fields.items():
                setattr(task, name, value)
            task_update(task=task, now=later)

    task = create(
        task_type="date", cron_expression="", run_date=NOW + dt.timedelta(hours=1)
    )
    later = NOW + dt.timedelta(days=2)  # the run date has passed (it fired)

    edit(task, description="still editable")
    with pytest.raises(TaskInvalid) as moved:
        edit(ScheduledTask.objects.get(pk=task.pk), run_date=NOW + dt.timedelta(days=1))

    assert "in the past" in errors_of(moved)["run_date"]


def test_task_name_taken_is_a_field_error() -> None:
    create()

    with pytest.raises(TaskInvalid) as excinfo:
        create()

    assert (
        errors_of(excinfo)["name"]
        == "A task named “nightly” already exists; choose another name."
    )


def test_create_takes_a_new_task_and_update_known_fields_only() -> None:
    task = create()

    with pytest.raises(ValueError, match="use task_update"):
        task_create(task=task, now=NOW)
    with pytest.raises(TypeError, match="unknown fields: colour, run_count"):
        task_update(task=task, changes={"colour": "red", "run_count": 7}, now=NOW)


def test_update_recomputes_the_next_fire_time() -> None:
    task = create()

    task_update(task=task, changes={"cron_expression": "30 19 * * *"}, now=NOW)

    assert task.next_run_at == dt.datetime(2026, 3, 2, 11, 30, tzinfo=dt.UTC)


def test_two_updates_of_different_fields_from_stale_copies_both_land() -> None:
    """Two clients loaded the task, then each changed one field: neither loses."""
    create()
    first = ScheduledTask.objects.get(name="nightly")
    second = ScheduledTask.objects.get(name="nightly")

    task_update(task=first, changes={"description": "the nightly sync"}, now=NOW)
    task_update(task=second, changes={"status": "paused"}, now=NOW)

    stored = ScheduledTask.objects.get(name="nightly")
    assert (stored.description, stored.status) == ("the nightly sync", "paused")
    assert stored.next_run_at is None
    assert (second.description, second.status) == ("the nightly sync", "paused")


def test_an_update_of_a_task_deleted_meanwhile_is_refused_and_recreates_nothing() -> (
    None
):
    task = create()
    ScheduledTask.objects.filter(pk=task.pk).delete()

    with pytest.raises(TaskNotFound, match="deleted meanwhile"):
        task_update(task=task, changes={"description": "late"}, now=NOW)

    assert not ScheduledTask.objects.filter(name="nightly").exists()


def test_every_change_of_definition_or_status_bumps_the_version_and_only_those() -> (
    None
):
    task = create()
    task_update(task=task, changes={"description": "a"}, now=NOW)
    task_pause(task=task, now=NOW)
    task_resume(task=task, now=NOW)
    tasks_record_next_runs({task.pk: NOW})  # the engine's bookkeeping

    assert ScheduledTask.objects.get(pk=task.pk).version == 4


def test_an_update_expecting_another_version_is_refused_naming_what_changed() -> None:
    task = create()
    seen = task_snapshot(task)
    task_update(task=ScheduledTask.objects.get(pk=task.pk), changes={"queue": "q"})

    with pytest.raises(TaskChanged) as caught:
        task_update(
            task=task, changes={"description": "late"}, expected_version=1, now=NOW
        )
    with pytest.raises(TaskChanged) as named:
        task_check_version(task=task, expected_version=1, seen=seen)

    assert caught.value.current_version == 2
    assert named.value.changed == ["Queue"]
    assert "(changed: Queue)" in named.value.message
    assert ScheduledTask.objects.get(pk=task.pk).description == ""


def test_a_whole_row_edit_keeps_the_engines_bookkeeping() -> None:
    """The admin form's instance was loaded before the runs that counted since."""
    task = create(task_type="date", cron_expression="", run_date=NOW + dt.timedelta(1))
    form_instance = ScheduledTask.objects.get(pk=task.pk)
    ran_at = NOW + dt.timedelta(days=1, seconds=1)
    ScheduledTask.objects.filter(pk=task.pk).update(
        last_run_at=ran_at, run_count=1, success_count=1
    )

    form_instance.description = "edited"
    task_update(task=form_instance, now=NOW)

    stored = ScheduledTask.objects.get(pk=task.pk)
    assert (stored.description, stored.run_count, stored.success_count) == (
        "edited",
        1,
        1,
    )
    assert stored.last_run_at == ran_at
    assert stored.next_run_at is None  # fired once: it never fires again


def test_invalid_update_changes_nothing_in_the_database() -> None:
    task = create()

    with pytest.raises(TaskInvalid):
        task_update(task=task, changes={"cron_expression": "nope"}, now=NOW)

    assert ScheduledTask.objects.get(pk=task.pk).cron_expression == "0 2 * * *"


def test_pause_clears_next_run_and_resume_counts_from_now() -> None:
    task = create(task_type="interval", cron_expression="", interval_seconds=60)

    task_pause(task=task, now=NOW)
    assert (task.status, task.next_run_at) == ("paused", None)

    later = NOW + dt.timedelta(days=7)
    task_resume(task=task, now=later)
    assert task.status == "active"
    assert task.next_run_at == later + dt.timedelta(seconds=60)


@pytest.mark.parametrize(
    ("action", "says"), [(task_pause, "not paused"), (task_resume, "not resumed")]
)
def test_pause_and_resume_refuse_a_disabled_task(action: Any, says: str) -> None:
    task = create(status="disabled")

    with pytest.raises(InvalidTransition, match=says) as raised:
        action(task=task, now=NOW)

    assert "set its status to active" in raised.value.message
    assert ScheduledTask.objects.get(pk=task.pk).status == "disabled"


@pytest.mark.parametrize(
    ("action", "status"), [(tasks_pause, "paused"), (tasks_resume, "active")]
)
def test_bulk_pause_and_resume_leave_disabled_tasks_alone_and_name_them(
    action: Any, status: str
) -> None:
    create(name="on", status="active")
    create(name="held", status="paused")
    create(name="off_b", status="disabled")
    create(name="off_a", status="disabled")

    change = action(
        tasks=ScheduledTask.objects.filter(name__in=["on", "held", "off_a", "off_b"])
    )

    assert change.changed == 1
    assert change.disabled == ["off_a", "off_b"]
    assert dict(
        ScheduledTask.objects.filter(name__in=["on", "held"]).values_list(
            "name", "status"
        )
    ) == {"on": status, "held": status}
    assert set(
        ScheduledTask.objects.filter(name__startswith="off_").values_list(
            "status", flat=True
        )
    ) == {"disabled"}


class User:
    """An actor holding exactly `perms` (no stored user: its entries name nobody)."""

    is_authenticated = False

    def __init__(self, *perms: str) -> None:
        self.perms = set(perms)

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return perm in self.perms


EDITOR = User("scheduler_app.change_scheduledtask")
OPERATOR = User(
    "scheduler_app.change_scheduledtask", "scheduler_app.pause_scheduledtask"
)


def by(user: User) -> Origin:
    """The origin of a change by `user` (a permission stub)."""
    return Origin(source=AuditSource.API, user=user)  # type: ignore[arg-type]


def test_changing_the_status_needs_the_pause_permission() -> None:
    task = create(description="before")

    with pytest.raises(
        StatusChangeForbidden, match="Can pause and resume tasks"
    ) as raised:
        task_update(
            task=task,
            changes={"status": "paused", "description": "after"},
            origin=by(EDITOR),
            now=NOW,
        )

    assert raised.value.field == "status" and raised.value.http_status == 403
    stored = ScheduledTask.objects.get(pk=task.pk)
    assert (stored.status, stored.description) == ("active", "before")
    assert (
        task_update(
            task=task, changes={"status": "paused"}, origin=by(OPERATOR), now=NOW
        ).status
        == "paused"
    )


def test_an_edit_that_keeps_the_status_needs_no_pause_permission() -> None:
    task = create(status="paused")

    task_update(
        task=task,
        changes={"status": "paused", "description": "edited"},
        origin=by(EDITOR),
        now=NOW,
    )

    assert ScheduledTask.objects.get(pk=task.pk).description == "edited"


def test_an_edited_instance_has_its_status_checked_against_the_stored_one() -> None:
    task = create()
    task.status = "disabled"

    with pytest.raises(StatusChangeForbidden):
        task_update(task=task, origin=by(EDITOR), now=NOW)

    assert ScheduledTask.objects.get(pk=task.pk).status == "active"
    task_update(task=task, origin=by(OPERATOR), now=NOW)
    assert ScheduledTask.objects.get(pk=task.pk).status == "disabled"


def test_trusted_code_without_an_actor_may_change_the_status() -> None:
    assert may_change_status(None)
    assert not may_change_status(EDITOR)
    task = create()

    assert (
        task_update(task=task, changes={"status": "disabled"}, now=NOW).status
        == "disabled"
    )


def test_set_status_counts_only_tasks_that_changed() -> None:
    create(name="a")
    create(name="b", status="paused")

    ours = ScheduledTask.objects.filter(name__in=["a", "b"])

    changed = tasks_set_status(tasks=ours, status="paused")

    assert changed == 1
    assert set(ours.values_list("status", flat=True)) == {"paused"}


def test_bulk_status_change_bumps_updated_at_so_the_scheduler_sees_it() -> None:
    task = create()
    before = ScheduledTask.objects.get(pk=task.pk).updated_at

    tasks_set_status(tasks=ScheduledTask.objects.filter(pk=task.pk), status="paused")

    assert ScheduledTask.objects.get(pk=task.pk).updated_at > before


def test_system_tasks_cannot_be_deleted_alone_or_in_bulk() -> None:
    system = ScheduledTask.objects.get(name="cleanup_executions")
    other = create()

    with pytest.raises(SystemTaskProtected, match="cleanup_executions"):
        task_delete(task=system)
    with pytest.raises(SystemTaskProtected):
        tasks_delete(tasks=ScheduledTask.objects.all())

    assert ScheduledTask.objects.filter(pk__in=[system.pk, other.pk]).count() == 2
    assert tasks_delete(tasks=ScheduledTask.objects.filter(pk=other.pk)) == 1


def test_system_task_exists_after_migrate_and_can_be_paused() -> None:
    system = ScheduledTask.objects.get(name="cleanup_executions")

    task_pause(task=system)

    assert system.is_system and system.status == "paused"
    assert system.handler_path == "scripts:cleanup_executions"
    assert system.cron_expression == "0 2 * * *"


def test_task_get_by_id_or_name_and_suggests_close_names() -> None:
    task = create(name="nightly_sync")

    assert task_get(task.pk) == task
    assert task_get(str(task.pk)) == task
    assert task_get("nightly_sync") == task
    with pytest.raises(TaskNotFound, match="Did you mean: nightly_sync"):
        task_get("nightly_synk")


def test_request_run_creates_a_pending_execution_only() -> None:
    task = create()

    execution = task_request_run(task=task, overrides={"days": "1"})

    assert execution.status == TaskExecution.Status.PENDING
    assert execution.trigger_type == TaskExecution.TriggerType.MANUAL
    assert execution.kwargs_overrides == {"days": "1"}
    assert execution.started_at is None


def test_request_run_validates_overrides_like_the_task() -> None:
    task = create()

    with pytest.raises(TaskInvalid) as excinfo:
        task_request_run(task=task, overrides={"days": "'many'"})

    assert "days" in errors_of(excinfo)
    assert not TaskExecution.objects.exists()


def test_startable_skips_cli_runs_and_retries_still_waiting() -> None:
    task = create()
    ready = task_request_run(task=task)
    task_request_run(task=task, trigger_type=TaskExecution.TriggerType.CLI)
    make_execution(
        task, trigger_type="retry", run_after=timezone.now() + dt.timedelta(minutes=5)
    )

    assert list(TaskExecution.objects.startable(now=timezone.now())) == [ready]


def test_database_refuses_a_cron_task_without_expression() -> None:
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ScheduledTask.objects.create(
            name="x", task_type="cron", handler_path="scripts:example_task"
        )


# Bounds: one rule for every way in (task_validate)

BOUNDED_FIELDS = [
    "interval_seconds",
    "max_instances",
    "timeout_seconds",
    "max_retries",
    "retry_delay_seconds",
    "misfire_grace_seconds",
    "jitter_seconds",
]


@pytest.mark.parametrize("field", BOUNDED_FIELDS)
@pytest.mark.parametrize("value", [2**31, 10**14, 10**30, -1, "7", 1.5, True])
def test_an_integer_field_out_of_its_bounds_is_refused_naming_it(
    field: str, value: Any
) -> None:
    extra = {"task_type": "interval", "cron_expression": ""}
    if field != "interval_seconds":
        extra["interval_seconds"] = 60
    if field == "max_instances":
        extra["overlap_policy"] = "allow"

    with pytest.raises(TaskInvalid) as excinfo:
        create(**extra, **{field: value})

    message = errors_of(excinfo)[field]
    label = str(ScheduledTask._meta.get_field(field).verbose_name).capitalize()
    assert message.startswith(
        "%s: enter a whole number from 0 to 2147483647 (got " % label
    ), message
    assert not ScheduledTask.objects.filter(name="nightly").exists()


@pytest.mark.parametrize("field", BOUNDED_FIELDS)
def test_an_integer_field_at_its_bound_is_accepted(field: str) -> None:
    extra: dict[str, Any] = {"task_type": "interval", "cron_expression": ""}
    extra["interval_seconds"] = 60
    if field == "max_instances":
        extra["overlap_policy"] = "allow"
    extra[field] = 2**31 - 1

    task = create(**extra)

    task.refresh_from_db()
    assert getattr(task, field) == 2**31 - 1


def test_the_interval_bound_message_is_the_only_one_for_its_field() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(task_type="interval", cron_expression="", interval_seconds=10**14)

    assert [error.field for error in excinfo.value.errors] == ["interval_seconds"]
    assert errors_of(excinfo)["interval_seconds"] == (
        "Interval (seconds): enter a whole number from 0 to 2147483647 "
        "(got 100000000000000)."
    )


@pytest.mark.parametrize(
    "field", ["name", "description", "cron_expression", "timezone", "queue"]
)
@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"])
def test_text_no_database_can_store_is_refused_naming_its_field(
    field: str, text: str
) -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(**{field: text})

    assert "it cannot be stored" in errors_of(excinfo)[field]
    assert not ScheduledTask.objects.exclude(is_system=True).exists()


@pytest.mark.parametrize(
    ("field", "longest"),
    [("name", 200), ("cron_expression", 200), ("timezone", 64), ("queue", 100)],
)
def test_text_longer_than_its_column_is_refused_on_every_database(
    field: str, longest: int
) -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(**{field: "a" * (longest + 1)})

    assert errors_of(excinfo)[field].endswith(
        f": enter at most {longest} characters (got {longest + 1}); shorten it."
    )
    assert not ScheduledTask.objects.exclude(is_system=True).exists()


def test_a_name_of_the_columns_length_is_kept() -> None:
    task = create(name="n" * 200)

    assert ScheduledTask.objects.get(pk=task.pk).name == "n" * 200


@pytest.mark.parametrize(
    "kwargs",
    [{"target": "'a\x00b'"}, {"options": {"k": ["\ud800"]}}, {"a\x00": "1"}],
)
def test_parameters_no_database_can_store_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(handler_kwargs=kwargs)

    assert "cannot be stored" in excinfo.value.message


def test_run_overrides_no_database_can_store_are_refused() -> None:
    task = create()

    with pytest.raises(TaskInvalid) as excinfo:
        task_request_run(task=task, overrides={"target": "'\ud800'"}, now=NOW)

    assert errors_of(excinfo) == {
        "target": "Parameter “target”: remove the NUL character (\\u0000) or "
        "unpaired surrogate (\\ud800-\\udfff); it cannot be stored."
    }
    assert not TaskExecution.objects.filter(task=task).exists()


@pytest.mark.parametrize(
    "run_date",
    [
        dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC),
        dt.datetime(9999, 12, 31, 23, 59),  # naive: wall time in the task's zone
        dt.datetime(9000, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    ],
)
def test_a_run_date_beyond_the_supported_years_is_refused(
    run_date: dt.datetime,
) -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        create(
            task_type="date",
            cron_expression="",
            run_date=run_date,
            timezone="America/New_York",
        )

    assert errors_of(excinfo)["run_date"] == (
        "Enter a run date between 1970 and 9000, e.g. 2030-01-31T02:00:00Z."
    )


def test_fires_staged_ahead_never_block_a_delete_but_a_run_now_request_does() -> None:
    task = create()
    make_execution(
        task,
        trigger_type="scheduled",
        scheduled_for=NOW + dt.timedelta(seconds=1),
    )
    requested = make_execution(task, trigger_type="manual")

    with pytest.raises(TaskBusy, match="#%s pending" % requested.pk):
        task_delete(task=task, now=NOW)
    task_delete(task=task, cancel_runs=True, now=NOW)

    assert not ScheduledTask.objects.filter(pk=task.pk).exists()
