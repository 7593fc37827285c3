"""Importing django-apscheduler's DjangoJobStore rows as tasks."""

from __future__ import annotations

import datetime as dt
import os
import pickle
from collections.abc import Iterator
from io import StringIO
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.core.management import CommandError, call_command
from django.db import connection

from scheduler_app.models import AuditEntry, ScheduledTask
from scheduler_app.services import (
    TaskInvalid,
    execution_run,
    task_request_run,
    task_resume,
)
from tests.factories import make_execution

pytestmark = pytest.mark.django_db


@pytest.fixture
def job_table() -> Iterator[None]:
    blob = "bytea" if connection.vendor == "postgresql" else "blob"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE django_apscheduler_djangojob "
            "(id varchar(255) PRIMARY KEY, next_run_time timestamp NULL, job_state %s)"
            % blob
        )
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE django_apscheduler_djangojob")


def store(
    job_id: str,
    trigger: Any,
    func: str = "tests.sample_handlers.runs:add",
    **job: Any,
) -> None:
    # What DjangoJobStore pickles: APScheduler 3's Job.__getstate__() dict.
    state = {
        "version": 1,
        "id": job_id,
        "func": func,
        "trigger": trigger,
        "executor": "default",
        "args": (),
        "kwargs": {},
        "name": job_id,
        "misfire_grace_time": 60,
        "coalesce": True,
        "max_instances": 1,
        "next_run_time": None,
    }
    state.update(job)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_apscheduler_djangojob (id, next_run_time, job_state) "
            "VALUES (%s, NULL, %s)",
            [job_id, pickle.dumps(state)],
        )


def test_cron_interval_and_date_jobs_become_paused_tasks(job_table: None) -> None:
    store(
        "weekday-report",
        CronTrigger.from_crontab("*/5 2 * * mon-fri", timezone="Europe/Paris"),
        kwargs={"a": 1, "b": 2},
    )
    store("every-hour", IntervalTrigger(hours=1, timezone="UTC"), kwargs={"a": 3})
    when = dt.datetime(2099, 1, 1, 8, 0, tzinfo=dt.UTC)
    store("once", DateTrigger(run_date=when), kwargs={"a": 4})
    out = StringIO()

    call_command("import_apscheduler_jobs", stdout=out)

    cron = ScheduledTask.objects.get(name="apscheduler:weekday-report")
    assert (cron.task_type, cron.cron_expression, cron.timezone) == (
        "cron",
        "*/5 2 * * mon-fri",
        "Europe/Paris",
    )
    assert cron.handler_kwargs == {"a": 1, "b": 2}
    assert cron.status == "paused"
    interval = ScheduledTask.objects.get(name="apscheduler:every-hour")
    assert (interval.task_type, interval.interval_seconds) == ("interval", 3600)
    date = ScheduledTask.objects.get(name="apscheduler:once")
    assert (date.task_type, date.run_date) == ("date", when)
    assert "3 created, 0 already there, 0 skipped" in out.getvalue()
    assert sorted(AuditEntry.objects.values_list("task_name", "action", "source")) == [
        ("apscheduler:every-hour", "create", "import"),
        ("apscheduler:once", "create", "import"),
        ("apscheduler:weekday-report", "create", "import"),
    ]


def test_numeric_apscheduler_weekdays_are_translated_to_crontab_names(
    job_table: None,
) -> None:
    store(
        "mondays", CronTrigger(day_of_week="0", hour=9, timezone="UTC"), kwargs={"a": 1}
    )

    call_command("import_apscheduler_jobs", "--active", stdout=StringIO())

    task = ScheduledTask.objects.get(name="apscheduler:mondays")
    assert task.cron_expression == "0 9 * * mon"
    assert task.status == "active"


def test_a_second_import_leaves_existing_tasks_alone(job_table: None) -> None:
    store("every-hour", IntervalTrigger(hours=1, timezone="UTC"), kwargs={"a": 3})
    call_command("import_apscheduler_jobs", stdout=StringIO())
    out = StringIO()

    call_command("import_apscheduler_jobs", stdout=out)

    assert "0 created, 1 already there" in out.getvalue()


def test_jobs_that_cannot_be_expressed_are_reported_and_the_rest_imported(
    job_table: None,
) -> None:
    store("positional", IntervalTrigger(hours=1, timezone="UTC"), args=(1,))
    store("bad-path", IntervalTrigger(hours=1, timezone="UTC"), func="not a path")
    store("fine", IntervalTrigger(hours=1, timezone="UTC"), kwargs={"a": 1})
    err = StringIO()

    with pytest.raises(CommandError, match="Some jobs were not imported"):
        call_command("import_apscheduler_jobs", stdout=StringIO(), stderr=err)

    assert "positional: it passes positional arguments" in err.getvalue()
    assert "bad-path:" in err.getvalue() and "is not valid" in err.getvalue()
    assert ScheduledTask.objects.filter(name="apscheduler:fine").exists()


@pytest.mark.parametrize("active", [False, True])
def test_a_job_whose_callable_is_not_registered_arrives_paused_saying_what_to_register(
    job_table: None, active: bool, tmp_path: Any
) -> None:
    canary = tmp_path / "canary"
    store(
        "shell",
        IntervalTrigger(hours=1, timezone="UTC"),
        func="os:system",
        kwargs={"command": "touch %s" % canary},
    )
    store(
        "legacy",
        IntervalTrigger(hours=1, timezone="UTC"),
        func="myproject.jobs:send_mail",
    )
    out = StringIO()

    call_command(
        "import_apscheduler_jobs", *(["--active"] if active else []), stdout=out
    )

    legacy = ScheduledTask.objects.get(name="apscheduler:legacy")
    assert (legacy.status, legacy.handler_path) == (
        "paused",
        "myproject.jobs:send_mail",
    )
    assert "Decorate it with @scheduler_app.handler" in legacy.description
    assert (
        "list the module myproject.jobs in SCHEDULER_HANDLER_MODULES"
        in legacy.description
    )
    shell = ScheduledTask.objects.get(name="apscheduler:shell")
    assert (shell.status, shell.handler_path) == ("paused", "os:system")
    # The standard library is never a handler: the note does not suggest listing os.
    assert "part of Python's standard library" in shell.description
    assert "SCHEDULER_HANDLER_MODULES" not in shell.description
    assert (
        "created  apscheduler:shell (paused: its callable is not a registered handler"
        in out.getvalue()
    )
    assert "2 created, 0 already there, 0 skipped" in out.getvalue()
    # Resumed anyway, it runs nothing: run-now is refused, and a fire fails saying why.
    task_resume(task=shell)
    with pytest.raises(TaskInvalid, match="is not allowed"):
        task_request_run(task=shell)
    fired = execution_run(execution=make_execution(shell, trigger_type="scheduled"))
    assert fired.status == "failed" and "is not allowed" in fired.error_message
    assert not canary.exists()


class _Hostile:
    """What an attacker would store in the job table: unpickling it runs a command."""

    def __init__(self, canary: Any) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("touch %s" % self.canary,))


def test_a_job_state_holding_anything_but_a_job_is_refused_unpickled(
    job_table: None, tmp_path: Any
) -> None:
    canary = tmp_path / "canary"
    store(
        "hostile",
        IntervalTrigger(hours=1, timezone="UTC"),
        kwargs={"x": _Hostile(canary)},
    )
    store(
        "fine",
        CronTrigger.from_crontab("0 2 * * *", timezone="Europe/Paris"),
        kwargs={"a": 1},
    )
    err = StringIO()

    with pytest.raises(CommandError, match="Some jobs were not imported"):
        call_command("import_apscheduler_jobs", stdout=StringIO(), stderr=err)

    assert "hostile: its pickled state refers to posix.system" in err.getvalue()
    assert not canary.exists()
    assert not ScheduledTask.objects.filter(name="apscheduler:hostile").exists()
    assert ScheduledTask.objects.get(name="apscheduler:fine").timezone == "Europe/Paris"


def test_without_the_table_the_command_says_there_is_nothing_to_import() -> None:
    with pytest.raises(CommandError, match="No django_apscheduler_djangojob table"):
        call_command("import_apscheduler_jobs", stdout=StringIO())
