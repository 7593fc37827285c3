"""A run's huge result or error is stored cut to its cap, whichever path ran it.

Thread mode (`execution_run`, what runscheduler's thread isolation and run_task
use) and a Celery worker's entry point (`run_execution`, called here in this
process as a worker's pool process calls it); handler processes are in
tests/runtime/test_processes.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from scheduler_app.celery.entry_points import run_execution
from scheduler_app.celery.worker import heartbeat_stop
from scheduler_app.models import TaskExecution
from scheduler_app.services import execution_run, task_request_run
from tests.factories import make_sample_task

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status
RESULT_CUT = "WARNING: the result was bigger than SCHEDULER_RESULT_MAX_BYTES=8192 bytes"


def in_thread(execution: TaskExecution) -> None:
    execution_run(execution=execution)


def on_celery_worker(execution: TaskExecution) -> None:
    try:
        run_execution(execution.pk)
    finally:
        heartbeat_stop()  # the worker's, which run_execution started


PATHS = pytest.mark.parametrize("run", [in_thread, on_celery_worker])


@pytest.fixture(autouse=True)
def small_caps(settings: Any) -> None:
    settings.SCHEDULER_ERROR_MAX_BYTES = 4096
    settings.SCHEDULER_TRACEBACK_MAX_BYTES = 8192
    settings.SCHEDULER_RESULT_MAX_BYTES = 8192


def ran(handler: str, run: Callable[[TaskExecution], None]) -> TaskExecution:
    execution = task_request_run(
        task=make_sample_task(handler, handler_kwargs={"megabytes": "3"})
    )
    run(execution)
    return TaskExecution.objects.get(pk=execution.pk)


@PATHS
def test_a_huge_result_is_stored_as_its_size_and_a_preview_and_the_run_succeeds(
    run: Callable[[TaskExecution], None], admin_client: Client
) -> None:
    row = ran("huge_result", run)

    whole = json.dumps({"rows": ["r" * 1000] * 3 * 1024}, ensure_ascii=False)
    assert row.status == Status.SUCCESS
    assert row.result == {
        "truncated": True,
        "size_bytes": len(whole),
        "max_bytes": 8192,
        "setting": "SCHEDULER_RESULT_MAX_BYTES",
        "preview": whole[:1024],
    }
    assert RESULT_CUT in row.log_output.splitlines()[-1]
    detail = admin_client.get("/api/v1/tasks/executions/%d" % row.pk)
    assert detail.status_code == 200
    assert detail.json()["result"] == row.result
    assert detail.json()["status"] == Status.SUCCESS


@PATHS
def test_a_huge_error_keeps_its_start_and_end_with_a_line_saying_what_was_cut(
    run: Callable[[TaskExecution], None], admin_client: Client
) -> None:
    row = ran("huge_error", run)

    assert row.status == Status.FAILED
    message_head, message_marker, message_tail = row.error_message.split("\n")
    assert message_head.startswith("ValueError: START mmm")
    assert message_tail.endswith("mmm END")
    assert len(row.error_message.encode()) <= 4096
    assert message_marker == (
        "[... %d characters cut: the start and the end are kept, at most "
        "SCHEDULER_ERROR_MAX_BYTES=4096 bytes ...]"
        % (len("ValueError: START  END") + 3 * 2**20 - len(message_head + message_tail))
    )
    assert row.error_traceback.startswith("Traceback (most recent call last):")
    assert row.error_traceback.rstrip().endswith("mmm END")
    assert len(row.error_traceback.encode()) <= 8192
    assert "characters cut" in row.error_traceback
    assert "SCHEDULER_ERROR_MAX_BYTES=4096 bytes" in row.log_output
    assert "SCHEDULER_TRACEBACK_MAX_BYTES=8192 bytes" in row.log_output
    detail = admin_client.get("/api/v1/tasks/executions/%d" % row.pk).json()
    assert detail["error_message"] == row.error_message


def test_values_within_their_caps_are_stored_as_they_are() -> None:
    execution = task_request_run(
        task=make_sample_task("add", handler_kwargs={"a": "2"})
    )
    execution_run(execution=execution)
    row = TaskExecution.objects.get(pk=execution.pk)

    assert row.result == {"sum": 3}
    assert "SCHEDULER_RESULT_MAX_BYTES" not in row.log_output
