"""The public Python API (`scheduler_app.scheduler`): ordinary ScheduledTask rows from code."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.utils import timezone

from scheduler_app import scheduler
from scheduler_app.exceptions import (
    HandlerNotFound,
    InvalidTransition,
    ParameterError,
    SystemTaskProtected,
    TaskBusy,
    TaskNotFound,
)
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.scheduler import Expr
from scheduler_app.services import TaskInvalid
from tests.factories import make_execution, make_task
from tests.sample_handlers.public_api import send_report

pytestmark = pytest.mark.django_db

HANDLER = "tests.sample_handlers.public_api:send_report"
UTC = dt.UTC


class ReportSender:
    def send(self, report_id: int) -> None:
        """A method: its object cannot be rebuilt by the scheduler process."""


def in_a_day() -> dt.datetime:
    return timezone.now() + dt.timedelta(days=1)


# add_cron_job


def test_add_cron_job_creates_a_cron_task_with_values_stored_as_expressions() -> None:
    task = scheduler.add_cron_job(
        "scripts:data_sync",
        "0 2 * * *",
        name="nightly_sync",
        kwargs={
            "days": 7,
            "target": "orders",
            "start_date": dt.datetime(2024, 1, 2, 3, 4, 5),
            "options": {"dry_run": True, "tables": ["a", "b"]},
        },
    )

    task.refresh_from_db()
    assert task.name == "nightly_sync"
    assert task.task_type == ScheduledTask.TaskType.CRON
    assert task.cron_expression == "0 2 * * *"
    assert task.handler_path == "scripts:data_sync"
    assert task.handler_kwargs == {
        "days": 7,
        "target": "'orders'",
        "start_date": "datetime(2024, 1, 2, 3, 4, 5, 0)",
        "options": {"dry_run": True, "tables": ["a", "b"]},
    }
    assert task.status == ScheduledTask.Status.ACTIVE
    assert task.next_run_at is not None and task.next_run_at > timezone.now()


def test_expr_values_are_kept_as_written() -> None:
    task = scheduler.add_cron_job(
        "scripts:data_sync",
        "@daily",
        kwargs={
            "start_date": Expr("datetime.now() - timedelta(days=1)"),
            "days": Expr("3"),
        },
    )

    assert task.handler_kwargs == {
        "start_date": "datetime.now() - timedelta(days=1)",
        "days": "3",
    }


def test_str_that_looks_like_code_is_stored_as_a_string_literal() -> None:
    task = scheduler.add_cron_job(
        "scripts:data_sync", "@daily", kwargs={"target": "date.today()"}
    )

    assert task.handler_kwargs == {"target": "'date.today()'"}


def test_aware_datetime_is_stored_as_wall_clock_time_in_the_project_zone(
    settings: Any,
) -> None:
    settings.TIME_ZONE = "Asia/Shanghai"

    task = scheduler.add_cron_job(
        "scripts:data_sync",
        "@daily",
        kwargs={"start_date": dt.datetime(2024, 1, 2, 3, 0, tzinfo=UTC)},
    )

    assert task.handler_kwargs == {"start_date": "datetime(2024, 1, 2, 11, 0, 0, 0)"}


def test_aware_datetime_is_stored_as_wall_clock_time_in_the_task_zone(
    settings: Any,
) -> None:
    settings.TIME_ZONE = "Asia/Shanghai"

    task = scheduler.add_cron_job(
        "scripts:data_sync",
        "@daily",
        timezone="Europe/Paris",
        kwargs={"start_date": dt.datetime(2024, 1, 2, 3, 0, tzinfo=UTC)},
    )

    assert task.timezone == "Europe/Paris"
    assert task.handler_kwargs == {"start_date": "datetime(2024, 1, 2, 4, 0, 0, 0)"}


def test_other_date_and_time_values_are_stored_as_expressions() -> None:
    task = scheduler.add_cron_job(
        "tests.sample_handlers.registry:sync_accounts",
        "@daily",
        kwargs={
            "day": dt.date(2024, 5, 6),
            "at": dt.time(8, 30),
            "window": dt.timedelta(hours=2),
            "pair": (1, 2),
            "nothing": None,
            "ratio": 0.5,
        },
    )

    assert task.handler_kwargs == {
        "day": "date(2024, 5, 6)",
        "at": "time(8, 30, 0, 0)",
        "window": "timedelta(seconds=7200.0)",
        "pair": [1, 2],
        "nothing": None,
        "ratio": 0.5,
    }


def test_cron_job_is_named_after_its_handler_by_default() -> None:
    task = scheduler.add_cron_job("scripts:example_task", "*/5 * * * *")

    assert task.name == "scripts:example_task"


def test_value_that_cannot_be_stored_raises_naming_the_parameter() -> None:
    with pytest.raises(
        ParameterError, match="Parameter “target”: a set cannot be stored"
    ) as excinfo:
        scheduler.add_cron_job("scripts:data_sync", "@daily", kwargs={"target": {"a"}})

    assert excinfo.value.field == "target"
    assert not ScheduledTask.objects.filter(handler_path="scripts:data_sync").exists()


def test_bad_cron_expression_raises_task_invalid_on_its_field() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        scheduler.add_cron_job("scripts:example_task", "61 * * * *", name="bad")

    assert [error.field for error in excinfo.value.errors] == ["cron_expression"]
    assert not ScheduledTask.objects.filter(name="bad").exists()


def test_wrongly_typed_parameter_raises_task_invalid_naming_it() -> None:
    with pytest.raises(
        TaskInvalid, match="Parameter “days”: expected an integer"
    ) as excinfo:
        scheduler.add_cron_job("scripts:data_sync", "@daily", kwargs={"days": "seven"})

    assert [error.field for error in excinfo.value.errors] == ["days"]


# add_interval_job


def test_add_interval_job_adds_up_the_units() -> None:
    task = scheduler.add_interval_job(
        "scripts:example_task", hours=1, minutes=30, seconds=15
    )

    assert task.task_type == ScheduledTask.TaskType.INTERVAL
    assert task.interval_seconds == 5415
    assert task.handler_kwargs == {}
    assert task.next_run_at is not None


def test_module_level_function_becomes_a_module_function_handler() -> None:
    task = scheduler.add_interval_job(
        send_report, minutes=5, args=[42], kwargs={"to": "me@example.com"}
    )

    assert task.name == HANDLER
    assert task.handler_path == HANDLER
    assert task.handler_kwargs == {"report_id": 42, "to": "'me@example.com'"}
    assert task.interval_seconds == 300


def test_interval_job_passes_execution_options_through() -> None:
    task = scheduler.add_interval_job(
        "scripts:example_task",
        seconds=30,
        name="fast",
        timeout_seconds=10,
        overlap_policy=ScheduledTask.OverlapPolicy.REPLACE,
        max_retries=2,
        status=ScheduledTask.Status.PAUSED,
    )

    assert (task.timeout_seconds, task.overlap_policy, task.max_retries) == (
        10,
        "replace",
        2,
    )
    assert task.status == ScheduledTask.Status.PAUSED
    assert task.next_run_at is None


def test_unknown_option_raises_type_error() -> None:
    with pytest.raises(TypeError, match="unknown fields: colour"):
        scheduler.add_interval_job("scripts:example_task", seconds=30, colour="red")


def test_zero_interval_raises_task_invalid_on_interval_seconds() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        scheduler.add_interval_job("scripts:example_task")

    assert [error.field for error in excinfo.value.errors] == ["interval_seconds"]


@pytest.mark.parametrize(
    "units", [{"seconds": 2**31}, {"days": 10**9}, {"days": 10**12, "hours": 1}]
)
def test_an_interval_beyond_its_bound_raises_task_invalid_not_overflow(
    units: dict[str, int],
) -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        scheduler.add_interval_job("scripts:example_task", **units)

    [error] = excinfo.value.errors
    assert error.field == "interval_seconds"
    assert "from 0 to 2147483647" in error.message


def test_an_option_beyond_its_bound_raises_task_invalid() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        scheduler.add_interval_job(
            "scripts:example_task", seconds=30, timeout_seconds=10**14
        )

    assert [error.field for error in excinfo.value.errors] == ["timeout_seconds"]


# add_date_job


def test_add_date_job_at_a_run_date() -> None:
    run_date = in_a_day().replace(microsecond=0)

    task = scheduler.add_date_job("scripts:example_task", run_date, name="once")

    task.refresh_from_db()
    assert task.task_type == ScheduledTask.TaskType.DATE
    assert task.run_date == run_date
    assert task.next_run_at == run_date


def test_naive_run_date_is_wall_clock_time_in_the_task_zone() -> None:
    naive = (timezone.now() + dt.timedelta(days=2)).replace(tzinfo=None, microsecond=0)

    task = scheduler.add_date_job(
        "scripts:example_task", naive, timezone="Europe/Paris"
    )

    assert task.run_date == naive.replace(tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))


def test_naive_run_date_without_a_task_zone_is_in_the_project_zone() -> None:
    naive = (timezone.now() + dt.timedelta(days=2)).replace(tzinfo=None, microsecond=0)

    task = scheduler.add_date_job("scripts:example_task", naive)

    assert task.run_date == timezone.make_aware(naive)


def test_add_date_job_after_a_delay_maps_positional_args_to_parameter_names() -> None:
    before = timezone.now()

    task = scheduler.add_date_job(
        send_report, delay_seconds=30, args=[42, "me@example.com"]
    )

    after = timezone.now()
    assert task.handler_path == HANDLER
    assert task.handler_kwargs == {"report_id": 42, "to": "'me@example.com'"}
    assert (
        before + dt.timedelta(seconds=30)
        <= task.run_date
        <= after + dt.timedelta(seconds=30)
    )
    assert task.name.startswith(HANDLER + "@")


def test_each_date_job_of_the_same_handler_gets_its_own_task() -> None:
    first = scheduler.add_date_job(send_report, delay_seconds=60, args=[1])
    second = scheduler.add_date_job(send_report, delay_seconds=60, args=[2])

    assert first.pk != second.pk
    assert first.name != second.name


def test_date_job_needs_exactly_one_of_run_date_and_delay() -> None:
    with pytest.raises(ParameterError, match="Give either run_date or delay_seconds"):
        scheduler.add_date_job("scripts:example_task")
    with pytest.raises(ParameterError, match="Give either run_date or delay_seconds"):
        scheduler.add_date_job("scripts:example_task", in_a_day(), delay_seconds=5)


@pytest.mark.parametrize("delay", [1e12, 1e20])
def test_a_delay_beyond_the_supported_years_raises_task_invalid_on_run_date(
    delay: float,
) -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        scheduler.add_date_job("scripts:example_task", delay_seconds=delay)

    assert [error.field for error in excinfo.value.errors] == ["run_date"]
    assert "between 1970 and 9000" in excinfo.value.message


def test_date_job_in_the_past_raises_task_invalid_on_run_date() -> None:
    with pytest.raises(TaskInvalid) as excinfo:
        scheduler.add_date_job(
            "scripts:example_task", timezone.now() - dt.timedelta(hours=1)
        )

    assert [error.field for error in excinfo.value.errors] == ["run_date"]


def test_more_positional_args_than_parameters_raises() -> None:
    with pytest.raises(
        ParameterError, match="takes 3 parameters, 4 positional arguments given"
    ):
        scheduler.add_date_job(
            send_report, delay_seconds=5, args=[1, "a", None, "extra"]
        )


def test_parameter_given_positionally_and_by_name_raises() -> None:
    with pytest.raises(ParameterError, match="Parameter “report_id” given twice"):
        scheduler.add_date_job(
            send_report, delay_seconds=5, args=[1], kwargs={"report_id": 2}
        )


# Handlers the scheduler process could not import again


def test_lambda_raises_handler_not_found_with_a_hint() -> None:
    with pytest.raises(
        HandlerNotFound,
        match="cannot be a handler: use a function or BaseTask class defined at the top level",
    ):
        scheduler.add_interval_job(lambda: None, seconds=30)

    assert not ScheduledTask.objects.filter(handler_path__startswith="tests.").exists()


def test_nested_function_raises_handler_not_found_with_a_hint() -> None:
    def nested() -> None:
        pass

    with pytest.raises(
        HandlerNotFound, match="not a lambda, a nested function, a method"
    ):
        scheduler.add_cron_job(nested, "@daily")


def test_method_raises_handler_not_found() -> None:
    with pytest.raises(HandlerNotFound, match="cannot be a handler"):
        scheduler.add_cron_job(ReportSender().send, "@daily")


def test_unknown_handler_string_raises_task_invalid_on_handler_path() -> None:
    with pytest.raises(TaskInvalid, match="scripts:no_such_script") as excinfo:
        scheduler.add_cron_job("scripts:no_such_script", "@daily")

    assert [error.field for error in excinfo.value.errors] == ["handler_path"]


# Names: replace_existing and duplicates


def test_replace_existing_updates_the_task_with_that_name() -> None:
    original = scheduler.add_cron_job(
        "scripts:data_sync", "0 2 * * *", name="nightly_sync"
    )

    replaced = scheduler.add_cron_job(
        "scripts:data_sync",
        "30 3 * * *",
        name="nightly_sync",
        kwargs={"days": 1},
        replace_existing=True,
    )

    assert replaced.pk == original.pk
    assert ScheduledTask.objects.filter(name="nightly_sync").count() == 1
    replaced.refresh_from_db()
    assert replaced.cron_expression == "30 3 * * *"
    assert replaced.handler_kwargs == {"days": 1}


def test_replace_existing_creates_the_task_when_there_is_none() -> None:
    task = scheduler.add_cron_job(
        "scripts:example_task", "@daily", name="fresh", replace_existing=True
    )

    assert ScheduledTask.objects.get(name="fresh").pk == task.pk


def test_duplicate_name_without_replace_existing_raises_on_the_name_field() -> None:
    original = scheduler.add_cron_job(
        "scripts:data_sync", "0 2 * * *", name="nightly_sync"
    )

    with pytest.raises(
        TaskInvalid, match="A task named “nightly_sync” already exists"
    ) as excinfo:
        scheduler.add_cron_job("scripts:data_sync", "30 3 * * *", name="nightly_sync")

    assert [error.field for error in excinfo.value.errors] == ["name"]
    original.refresh_from_db()
    assert original.cron_expression == "0 2 * * *"


# pause, resume, get, remove


def test_pause_job_and_resume_job_change_status_and_next_run() -> None:
    scheduler.add_interval_job("scripts:example_task", minutes=1, name="ticker")

    paused = scheduler.pause_job("ticker")

    assert paused.status == ScheduledTask.Status.PAUSED
    assert paused.next_run_at is None

    resumed = scheduler.resume_job("ticker")

    assert resumed.status == ScheduledTask.Status.ACTIVE
    assert resumed.next_run_at is not None and resumed.next_run_at > timezone.now()


@pytest.mark.parametrize("method", ["pause_job", "resume_job"])
def test_pause_job_and_resume_job_refuse_a_disabled_task_as_the_admin_does(
    method: str,
) -> None:
    make_task(name="ticker", status=ScheduledTask.Status.DISABLED)

    with pytest.raises(InvalidTransition, match="“ticker” is disabled"):
        getattr(scheduler, method)("ticker")

    assert scheduler.get_job("ticker").status == ScheduledTask.Status.DISABLED


def test_pause_job_of_an_unknown_task_raises_task_not_found() -> None:
    make_task(name="ticker")

    with pytest.raises(TaskNotFound, match="No task “tiker”. Did you mean: ticker"):
        scheduler.pause_job("tiker")


def test_get_job_finds_a_task_by_name_or_id() -> None:
    task = make_task(name="ticker")

    assert scheduler.get_job("ticker") == task
    assert scheduler.get_job(task.pk) == task
    assert scheduler.get_job("no such task") is None


def test_get_jobs_lists_tasks_by_name_optionally_by_status() -> None:
    ScheduledTask.objects.all().delete()
    make_task(name="b")
    make_task(name="a")
    make_task(name="c", status=ScheduledTask.Status.PAUSED)

    assert [task.name for task in scheduler.get_jobs()] == ["a", "b", "c"]
    assert [task.name for task in scheduler.get_jobs(status="paused")] == ["c"]


def test_remove_job_deletes_the_task_and_its_history() -> None:
    task = make_task(name="ticker")
    make_execution(task, status="success")

    scheduler.remove_job("ticker")

    assert not ScheduledTask.objects.filter(pk=task.pk).exists()
    assert not TaskExecution.objects.filter(task_id=task.pk).exists()


def test_remove_job_of_a_task_with_a_pending_run_raises_unless_it_cancels_it() -> None:
    task = make_task(name="ticker")
    make_execution(task)

    with pytest.raises(TaskBusy, match="has runs pending or running"):
        scheduler.remove_job("ticker")
    assert ScheduledTask.objects.filter(pk=task.pk).exists()
    scheduler.remove_job("ticker", cancel_runs=True)

    assert not ScheduledTask.objects.filter(pk=task.pk).exists()


def test_remove_job_of_a_system_task_raises_and_keeps_it() -> None:
    task = make_task(name="cleanup", is_system=True)

    with pytest.raises(SystemTaskProtected, match="“cleanup” is a system task"):
        scheduler.remove_job("cleanup")

    assert ScheduledTask.objects.filter(pk=task.pk).exists()


def test_remove_job_of_an_unknown_task_raises_task_not_found() -> None:
    with pytest.raises(TaskNotFound):
        scheduler.remove_job("no such task")


# run_job


def test_run_job_requests_a_pending_manual_run_with_overrides_as_expressions() -> None:
    task = scheduler.add_cron_job("scripts:data_sync", "@daily", name="nightly_sync")

    execution = scheduler.run_job(
        "nightly_sync",
        days=1,
        target="users",
        start_date=dt.datetime(2024, 1, 2, 3, 4, 5),
    )

    execution.refresh_from_db()
    assert execution.task_id == task.pk
    assert execution.status == TaskExecution.Status.PENDING
    assert execution.trigger_type == TaskExecution.TriggerType.MANUAL
    assert execution.started_at is None
    assert execution.kwargs_overrides == {
        "days": 1,
        "target": "'users'",
        "start_date": "datetime(2024, 1, 2, 3, 4, 5, 0)",
    }
    task.refresh_from_db()
    assert task.handler_kwargs == {}


def test_run_job_without_overrides_requests_a_plain_run() -> None:
    make_task(name="ticker")

    execution = scheduler.run_job("ticker")

    assert execution.status == TaskExecution.Status.PENDING
    assert execution.kwargs_overrides == {}


def test_run_job_with_a_wrongly_typed_override_raises_and_requests_nothing() -> None:
    make_task(name="nightly_sync", handler_path="scripts:data_sync")

    with pytest.raises(TaskInvalid, match="Parameter “days”: expected an integer"):
        scheduler.run_job("nightly_sync", days="seven")

    assert not TaskExecution.objects.exists()


def test_function_from_main_is_refused_since_no_scheduler_could_import_it() -> None:
    def job() -> None:
        pass

    job.__module__ = "__main__"
    job.__qualname__ = "job"

    with pytest.raises(HandlerNotFound, match="code in __main__"):
        scheduler.add_interval_job(job, seconds=30)


def test_get_stats_and_enable_disable_job() -> None:
    task = scheduler.add_interval_job("scripts:example_task", seconds=60, name="timed")
    for duration in (1000, 3000):
        make_execution(task, status="success", duration_ms=duration)

    [stats] = [item for item in scheduler.get_stats() if item.name == "timed"]
    assert (stats.count, stats.min_ms, stats.max_ms, stats.avg_ms) == (
        2,
        1000,
        3000,
        2000,
    )
    assert [item.name for item in scheduler.get_stats(slow_over=1.5)] == ["timed"]
    assert scheduler.get_stats(slow_over=2.5) == []

    assert scheduler.disable_job("timed", reason="upgrade").status == "disabled"
    assert scheduler.enable_job("timed").status == "active"
