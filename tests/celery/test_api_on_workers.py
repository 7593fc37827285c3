"""The API on runs of Celery workers: a live log while a run lasts; a cancel revokes."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery, current_app
from rest_framework.test import APIClient

from scheduler_app import livelog
from scheduler_app.engine.celery_executor import CeleryExecutor
from scheduler_app.models import TaskExecution
from scheduler_app.services import task_request_run
from tests.celery.conftest import Broker
from tests.celery.helpers import manual, pending, running
from tests.processes import STARTUP_TIMEOUT, WorkerProcess, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

Status = TaskExecution.Status


@pytest.fixture
def current_celery_app(celery_app: Celery) -> Iterator[Celery]:
    """This test's Celery app as the current one: the one a cancel revokes through."""
    previous = current_app._get_current_object()
    celery_app.set_current()
    yield celery_app
    previous.set_current()


def in_output(worker: WorkerProcess, text: str) -> Callable[[], bool]:
    return lambda: text in worker.output()


def log_url(execution: TaskExecution) -> str:
    return "/api/v1/tasks/executions/%d/log" % execution.pk


def messages(lines: list[str]) -> list[str]:
    """The lines without their "[HH:MM:SS] " prefix."""
    return [line.split("] ", 1)[1] for line in lines]


def test_live_log_lines_from_a_worker_are_readable_through_the_api_while_the_run_lasts(
    start_worker: Callable[..., WorkerProcess],
    executor: CeleryExecutor,
    api: APIClient,
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    task = manual("waits", "scripts:waits", handler_kwargs={"until": repr(str(go))})
    execution = pending(task_request_run(task=task))
    worker = start_worker()
    worker.wait_ready(processes=2)

    executor.submit([execution])

    def three_lines() -> dict[str, Any] | None:
        body = api.get(log_url(execution)).json()
        return body if len(body["lines"]) >= 3 else None

    live = wait_for(three_lines, STARTUP_TIMEOUT, worker)
    assert (live["status"], live["finished"]) == ("running", False), worker.report()
    assert messages(live["lines"]) == ["live line 1", "live line 2", "live line 3"]
    assert livelog.read(execution.pk, 0) is not None  # tailed through Redis
    assert TaskExecution.objects.get(pk=execution.pk).status == Status.RUNNING

    go.touch()

    def finished() -> dict[str, Any] | None:
        body = api.get(log_url(execution), {"offset": live["offset"]}).json()
        return body if body["finished"] else None

    rest = wait_for(finished, 10, worker)
    assert rest["status"] == "success"
    assert messages(rest["lines"]) == ["released"]
    execution.refresh_from_db()
    assert messages(execution.log_output.split("\n")) == [
        "live line 1",
        "live line 2",
        "live line 3",
        "released",
    ]


def test_a_cancelled_pending_execution_is_revoked_and_never_runs(
    start_worker: Callable[..., WorkerProcess],
    executor: CeleryExecutor,
    current_celery_app: Celery,
    broker: Broker,
    api: APIClient,
    settings: Any,
    tmp_path: Path,
) -> None:
    settings.SCHEDULER_EXECUTOR = "celery"
    go, calls = tmp_path / "go", tmp_path / "calls.txt"
    # One pool process, kept busy, so the next message waits in the queue.
    worker = start_worker(
        command="celery -A config worker --pool prefork -c 1 -Q %s -n one-%s@%%h "
        "--without-mingle --without-gossip --loglevel INFO"
        % (broker.queue, uuid.uuid4().hex[:6])
    )
    worker.wait_ready(processes=1)
    blocker = manual("busy", "scripts:waits", handler_kwargs={"until": repr(str(go))})
    counted = manual(
        "counted", "scripts:counted", handler_kwargs={"path": repr(str(calls))}
    )
    busy = pending(task_request_run(task=blocker))
    executor.submit([busy])
    wait_for(running(busy), STARTUP_TIMEOUT, worker)
    waiting = pending(task_request_run(task=counted))
    executor.submit([waiting])

    response = api.post("/api/v1/tasks/executions/%d/cancel" % waiting.pk)
    assert response.status_code == 200, response.json()
    revoked = "Tasks flagged as revoked: execution-%d" % waiting.pk
    wait_for(in_output(worker, revoked), 10, worker)
    go.touch()

    discarded = "Discarding revoked task: scheduler_app.run_execution[execution-%d]"
    wait_for(in_output(worker, discarded % waiting.pk), 10, worker)
    wait_for(lambda: broker.waiting() == 0, 10, worker)
    waiting.refresh_from_db()
    assert (waiting.status, waiting.started_at) == (Status.CANCELLED, None)
    assert not calls.exists()
