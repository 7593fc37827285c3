"""WRITE_FINALS: the final state of ended runs, written back exactly, running rows only."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from scheduler_app.db import finals
from scheduler_app.db.finals import FINAL_FIELDS, write_finals
from scheduler_app.models import TaskExecution
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

Status = TaskExecution.Status
T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def ended(execution: TaskExecution, n: int) -> TaskExecution:
    execution.status = Status.FAILED if n % 2 else Status.SUCCESS
    execution.started_at = T0
    execution.finished_at = dt.datetime(
        2026, 3, 29, 3, 30, 0, n, tzinfo=ZoneInfo("Europe/Paris")
    )
    execution.duration_ms = 1000 + n
    execution.result = [{"n": n, "text": "é"}, None] if n % 3 else None
    execution.error_message = "error %d" % n if n % 2 else ""
    execution.error_traceback = "Traceback %d" % n if n % 2 else ""
    execution.failure_kind = TaskExecution.FailureKind.ERROR if n % 2 else ""
    execution.log_output = "line 1\nline %d" % n
    execution.progress_done = n
    execution.progress_total = None if n % 2 else 10
    execution.kwargs = {"n": n, "nested": {"list": [1, 2]}}
    return execution


def stored(execution: TaskExecution) -> dict[str, object]:
    row = TaskExecution.objects.get(pk=execution.pk)
    return {name: getattr(row, name) for name in FINAL_FIELDS}


def test_final_values_of_running_rows_come_back_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(finals, "FINALS_PER_STATEMENT", 2)  # several statements
    task = make_task()
    executions = [
        ended(make_execution(task, status=Status.RUNNING), n) for n in range(5)
    ]

    written = write_finals(executions=executions)

    assert written == {e.pk for e in executions}
    for execution in executions:
        expected = {name: getattr(execution, name) for name in FINAL_FIELDS}
        assert stored(execution) == expected


def test_rows_no_longer_running_are_left_as_they_are() -> None:
    task = make_task()
    running = make_execution(task, status=Status.RUNNING)
    cancelled = make_execution(task, status=Status.CANCELLED, error_message="stop")

    written = write_finals(executions=[ended(running, 1), ended(cancelled, 2)])

    assert written == {running.pk}
    row = TaskExecution.objects.get(pk=cancelled.pk)
    assert (row.status, row.error_message) == (Status.CANCELLED, "stop")
