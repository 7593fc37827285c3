"""Fencing: a claimed run that waited long starts only if its row is still its own.

A scheduler paused (SIGSTOP, a frozen VM) right after claiming a run is taken for
gone by the others, which mark the run abandoned and run the task themselves; when
it resumes, it must not start the handler it claimed (issue 20, item 5).
"""

from __future__ import annotations

import time

import pytest

from scheduler_app.models import TaskExecution
from scheduler_app.services import (
    run_claimed,
    runs_claim,
    runs_finish,
    task_request_run,
)
from scheduler_app.services.runs import fence_after_seconds
from tests.factories import make_sample_task as make
from tests.sample_handlers import runs

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status


def test_a_run_ended_elsewhere_while_it_waited_is_not_started() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    [run] = runs_claim([task_request_run(task=task)])
    # Meanwhile this instance was taken for gone: its run was marked abandoned.
    TaskExecution.objects.filter(pk=run.execution.pk).update(
        status=Status.FAILED, failure_kind="abandoned", error_message="theirs"
    )
    run.since = time.monotonic() - fence_after_seconds() - 1  # it waited that long

    run_claimed(run)
    runs_finish([run])

    assert runs.calls == []
    stored = TaskExecution.objects.get(pk=run.execution.pk)
    assert (stored.status, stored.error_message) == (Status.FAILED, "theirs")


def test_a_run_that_waited_long_and_is_still_its_own_starts() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    [run] = runs_claim([task_request_run(task=task)])
    run.since = time.monotonic() - fence_after_seconds() - 1

    run_claimed(run)
    runs_finish([run])

    assert runs.calls == [{"a": 1, "b": 1}]
    assert TaskExecution.objects.get(pk=run.execution.pk).status == Status.SUCCESS


def test_a_run_that_did_not_wait_starts_without_reading_its_row_again() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    [run] = runs_claim([task_request_run(task=task)])
    # Ended elsewhere, but it has not waited: the row is not read again.
    TaskExecution.objects.filter(pk=run.execution.pk).update(status=Status.FAILED)

    run_claimed(run)

    assert run.result is not None and run.result.status == Status.SUCCESS
    assert runs.calls == [{"a": 1, "b": 1}]
    runs_finish([run])
