"""Seed 001-style class handlers: BaseTask, TaskSchedule, the TaskResult re-export."""

from __future__ import annotations

import datetime

import pytest

from scheduler_app.handlers import base, results
from scheduler_app.handlers.base import BaseTask, ScheduleType, TaskSchedule


def test_task_result_is_importable_from_base_as_in_the_seed() -> None:
    assert base.TaskResult is results.TaskResult


def test_schedule_type_values_match_task_types() -> None:
    assert [member.value for member in ScheduleType] == [
        "cron",
        "interval",
        "date",
        "manual",
    ]
    assert ScheduleType.CRON == "cron"


def test_cron_schedule_becomes_task_fields() -> None:
    schedule = TaskSchedule(
        schedule_type=ScheduleType.CRON, cron_expression="0 2 * * *"
    )

    assert schedule.as_task_fields() == {
        "task_type": "cron",
        "cron_expression": "0 2 * * *",
        "interval_seconds": None,
        "run_date": None,
        "overlap_policy": "skip",
        "timeout_seconds": 0,
    }


def test_interval_schedule_allowing_concurrency_uses_the_allow_policy() -> None:
    schedule = TaskSchedule(
        schedule_type=ScheduleType.INTERVAL,
        interval_seconds=3600,
        allow_concurrent=True,
        timeout_seconds=300,
    )

    fields = schedule.as_task_fields()

    assert fields["task_type"] == "interval"
    assert fields["interval_seconds"] == 3600
    assert fields["overlap_policy"] == "allow"
    assert fields["timeout_seconds"] == 300


def test_date_schedule_keeps_its_run_date() -> None:
    when = datetime.datetime(2030, 1, 1, 9, 0, tzinfo=datetime.UTC)

    fields = TaskSchedule(
        schedule_type=ScheduleType.DATE, run_date=when
    ).as_task_fields()

    assert (fields["task_type"], fields["run_date"]) == ("date", when)


def test_schedule_type_given_as_plain_text_is_accepted() -> None:
    schedule = TaskSchedule(schedule_type="manual")  # type: ignore[arg-type]

    assert schedule.as_task_fields()["task_type"] == "manual"


def test_task_name_defaults_to_the_class_name_in_snake_case() -> None:
    class SyncInventoryTask(BaseTask):
        pass

    class HTTPPing(BaseTask):
        pass

    assert SyncInventoryTask.name == "sync_inventory_task"
    assert HTTPPing.name == "http_ping"


def test_explicit_task_name_is_kept_and_not_inherited_by_subclasses() -> None:
    class Parent(BaseTask):
        name = "sync_inventory"

    class ChildTask(Parent):
        pass

    assert Parent.name == "sync_inventory"
    assert ChildTask.name == "child_task"


def test_task_defaults_match_the_seed() -> None:
    class Quiet(BaseTask):
        pass

    assert (Quiet.description, Quiet.schedule, Quiet.enabled) == ("", None, True)


def test_base_run_must_be_implemented() -> None:
    class Lazy(BaseTask):
        pass

    with pytest.raises(NotImplementedError, match="Lazy must implement run"):
        Lazy().run()
