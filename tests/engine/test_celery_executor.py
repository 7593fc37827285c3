"""The Celery executor without a broker: what it sends, remembers, resends, revokes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core.management import CommandError
from kombu.exceptions import OperationalError

from scheduler_app.celery.entry_points import run_execution
from scheduler_app.checks import check_scheduler_settings
from scheduler_app.engine.celery_executor import (
    RUN_EXECUTION,
    CeleryExecutor,
    send_options,
)
from scheduler_app.engine.executor import InlineExecutor
from scheduler_app.management.commands.runscheduler import make_executor
from scheduler_app.models import TaskExecution
from scheduler_app.services import execution_cancel
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db


class FakeApp:
    """Records what would be sent; after `fail_after` sends, the broker is down."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, list[Any], dict[str, Any]]] = []
        self.fail_after = fail_after

    @contextmanager
    def producer_or_acquire(self) -> Iterator[object]:
        yield object()

    def send_task(
        self, name: str, args: list[Any], producer: object, **options: Any
    ) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise OperationalError(
                "Error 111 connecting to 127.0.0.1:6379. Connection refused."
            )
        self.sent.append((name, args, options))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def handed_over(*executions: TaskExecution) -> list[TaskExecution]:
    return list(
        TaskExecution.objects.select_related("task").filter(
            pk__in=[execution.pk for execution in executions]
        )
    )


def test_the_message_names_the_worker_task_and_carries_only_the_execution_id() -> None:
    app = FakeApp()
    [execution] = handed_over(make_execution())

    CeleryExecutor(app=app).submit([execution])  # type: ignore[arg-type]

    assert app.sent == [
        (
            RUN_EXECUTION,
            [execution.pk],
            {"queue": "scheduler", "task_id": "execution-%d" % execution.pk},
        )
    ]
    assert run_execution.name == RUN_EXECUTION


@pytest.fixture
def revoked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The task ids the Celery app revokes (the broker is never reached)."""
    from celery import current_app

    ids: list[str] = []
    monkeypatch.setattr(
        current_app.control, "revoke", lambda task_id, **options: ids.append(task_id)
    )
    return ids


def test_cancelling_a_pending_execution_revokes_its_message(
    settings: Any, revoked: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    settings.SCHEDULER_EXECUTOR = "celery"
    execution = make_execution()
    running = make_execution(status=TaskExecution.Status.RUNNING)

    with django_capture_on_commit_callbacks(execute=True):
        execution_cancel(execution=execution)
        execution_cancel(
            execution=running
        )  # a running one has no message left to revoke

    assert revoked == ["execution-%d" % execution.pk]


def test_without_the_celery_executor_a_cancel_revokes_nothing(
    settings: Any, revoked: list[str], django_capture_on_commit_callbacks: Any
) -> None:
    settings.SCHEDULER_EXECUTOR = "inline"

    with django_capture_on_commit_callbacks(execute=True):
        execution_cancel(execution=make_execution())

    assert revoked == []


def test_a_revoke_the_broker_refuses_is_logged_and_the_cancel_stands(
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from celery import current_app

    def broker_down(task_id: str, **options: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379.")

    settings.SCHEDULER_EXECUTOR = "celery"
    monkeypatch.setattr(current_app.control, "revoke", broker_down)
    execution = make_execution()

    with django_capture_on_commit_callbacks(execute=True):
        execution = execution_cancel(execution=execution)

    assert execution.status == TaskExecution.Status.CANCELLED
    assert "Could not revoke Celery message execution-%d" % execution.pk in caplog.text


def test_a_task_queue_and_timeout_become_the_route_and_time_limits(
    settings: Any,
) -> None:
    settings.SCHEDULER_DEFAULT_QUEUE = "default-q"
    settings.SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS = 15

    assert send_options(make_task(queue="reports", timeout_seconds=60)) == {
        "queue": "reports",
        "soft_time_limit": 60,
        "time_limit": 75,
    }
    assert send_options(make_task()) == {"queue": "default-q"}


def test_an_execution_is_sent_once_while_it_waits_for_a_worker() -> None:
    app, clock = FakeApp(), Clock()
    executor = CeleryExecutor(app=app, clock=clock)  # type: ignore[arg-type]
    first, second = handed_over(make_execution(), make_execution())

    executor.submit([first])
    executor.submit([first, second])
    clock.now += executor.check_seconds
    inflight = executor.inflight()

    assert [args for _name, args, _options in app.sent] == [[first.pk], [second.pk]]
    assert inflight == {first.pk, second.pk}


def test_an_execution_a_worker_claimed_is_forgotten_at_the_next_check(
    django_assert_num_queries: Any,
) -> None:
    app, clock = FakeApp(), Clock()
    executor = CeleryExecutor(app=app, clock=clock)  # type: ignore[arg-type]
    claimed, waiting, deleted = handed_over(
        make_execution(), make_execution(), make_execution()
    )
    executor.submit([claimed, waiting, deleted])
    assert executor.inflight() == {claimed.pk, waiting.pk, deleted.pk}
    TaskExecution.objects.filter(pk=claimed.pk).update(status="running")
    TaskExecution.objects.filter(pk=deleted.pk).delete()

    with django_assert_num_queries(0):
        assert executor.inflight() == {
            claimed.pk,
            waiting.pk,
            deleted.pk,
        }  # not due yet
    clock.now += executor.check_seconds
    with django_assert_num_queries(1):
        assert executor.inflight() == {waiting.pk}


def test_an_execution_still_pending_long_after_it_was_sent_is_offered_again() -> None:
    app, clock = FakeApp(), Clock()
    executor = CeleryExecutor(app=app, clock=clock)  # type: ignore[arg-type]
    [execution] = handed_over(make_execution())
    executor.submit([execution])

    clock.now += executor.resend_seconds
    assert executor.inflight() == set()
    executor.submit([execution])

    assert len(app.sent) == 2


def test_executions_not_sent_while_the_broker_is_down_are_offered_again() -> None:
    app = FakeApp(fail_after=1)
    executor = CeleryExecutor(app=app)  # type: ignore[arg-type]
    first, second, third = handed_over(
        make_execution(), make_execution(), make_execution()
    )

    executor.submit([first, second, third])

    assert executor.inflight() == {first.pk}
    app.fail_after = None
    executor.submit([first, second, third])
    assert [args for _name, args, _options in app.sent] == [
        [first.pk],
        [second.pk],
        [third.pk],
    ]


def test_shutdown_leaves_the_messages_with_the_broker() -> None:
    executor = CeleryExecutor(app=FakeApp())  # type: ignore[arg-type]
    executor.submit(handed_over(make_execution()))

    assert executor.shutdown(grace_seconds=5) == set()


def test_runscheduler_picks_the_executor_from_the_setting(settings: Any) -> None:
    settings.SCHEDULER_EXECUTOR = "celery"
    assert isinstance(make_executor(), CeleryExecutor)

    settings.SCHEDULER_EXECUTOR = "threads"
    with pytest.raises(
        CommandError, match="must be 'inline' or 'celery', not 'threads'"
    ):
        make_executor()

    settings.SCHEDULER_EXECUTOR = "inline"
    executor = make_executor()
    assert isinstance(executor, InlineExecutor)
    executor.shutdown(grace_seconds=0)


def test_the_celery_executor_without_a_broker_is_a_configuration_error(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celery import current_app

    settings.SCHEDULER_EXECUTOR = "celery"
    monkeypatch.setattr(current_app.conf, "broker_url", "")

    errors = [
        error
        for error in check_scheduler_settings()
        if error.id == "scheduler_app.E006"
    ]

    assert len(errors) == 1 and "CELERY_BROKER_URL" in errors[0].hint
