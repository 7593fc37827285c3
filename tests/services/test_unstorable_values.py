"""Nothing a handler produces strands a run: odd text is made storable, bad rows fall back."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import DataError, OperationalError, connection
from django.test import Client
from django.utils import timezone

from scheduler_app import signals
from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import (
    EndsNotRecorded,
    execution_run,
    executions_create_scheduled,
    run_claimed,
    runs_claim,
    runs_finish,
    task_request_run,
)
from scheduler_app.services import fires as fires_module
from scheduler_app.services import records as records_module
from scheduler_app.services import runs as runs_module
from scheduler_app.services.workers import execution_record_broken
from scheduler_app.storable import REPLACEMENT
from tests.factories import make_sample_task as make

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status
R = REPLACEMENT
#: What the run's log says when a value was made storable.
ALTERED = (
    "NUL characters or lone surrogates, which the database cannot store, were replaced"
)


def stored(execution: TaskExecution) -> TaskExecution:
    return TaskExecution.objects.get(pk=execution.pk)


def assert_pages_answer(client: Client, execution: TaskExecution, *texts: str) -> None:
    """The admin execution page and the API detail show the execution."""
    page = client.get("/admin/scheduler_app/taskexecution/%d/change/" % execution.pk)
    detail = client.get("/api/v1/tasks/executions/%d" % execution.pk)
    assert (page.status_code, detail.status_code) == (200, 200)
    for text in texts:
        assert text in page.content.decode()
        assert text in detail.content.decode()


@pytest.fixture
def failed_signals() -> Iterator[list[TaskExecution]]:
    received: list[TaskExecution] = []

    def receiver(sender: Any, execution: TaskExecution, **kwargs: Any) -> None:
        received.append(execution)

    signals.execution_failed.connect(receiver)
    yield received
    signals.execution_failed.disconnect(receiver)


@pytest.mark.parametrize("expression", ["'x\\x00y'", "'x\\ud800y'"])
def test_a_run_now_override_evaluating_to_odd_text_is_stored_replaced(
    expression: str, admin_client: Client
) -> None:
    task = make("echo")

    execution = execution_run(
        execution=task_request_run(task=task, overrides={"target": expression})
    )

    row = stored(execution)
    task.refresh_from_db()
    assert row.status == Status.SUCCESS
    assert row.kwargs_overrides == {"target": expression}
    assert row.kwargs == {"target": "x%sy" % R}
    assert row.result == {"target": "x%sy" % R}
    assert "target is x%sy" % R in row.log_output
    assert (
        ALTERED in row.log_output
        and "evaluated parameters, log, result" in row.log_output
    )
    assert (task.run_count, task.success_count) == (1, 1)
    assert_pages_answer(admin_client, row, "x%sy" % R)


@pytest.mark.parametrize(
    ("handler", "status", "field", "value", "named"),
    [
        ("returns_nul", Status.SUCCESS, "result", {"s": "a%sb" % R}, "result"),
        (
            "returns_surrogate",
            Status.SUCCESS,
            "result",
            {"s": "a%sb" % R, "a%skey" % R: 1},
            "result",
        ),
        (
            "raises_nul",
            Status.FAILED,
            "error_message",
            "ValueError: a%sb" % R,
            "error, traceback",
        ),
        ("fails_with_odd_error", Status.FAILED, "error_message", "a%sb" % R, "error"),
        ("logs_nul", Status.SUCCESS, "log_output", "x%sy" % R, "log"),
        ("logs_undecodable", Status.SUCCESS, "log_output", "file caf%s.txt" % R, "log"),
    ],
)
def test_odd_text_from_a_handler_is_stored_replaced_and_the_log_says_so(
    handler: str, status: str, field: str, value: Any, named: str, admin_client: Client
) -> None:
    task = make(handler)

    execution = execution_run(execution=task_request_run(task=task))

    row = stored(execution)
    task.refresh_from_db()
    assert row.status == status
    stored_value = getattr(row, field)
    assert value in stored_value if field == "log_output" else stored_value == value
    assert "\x00" not in row.error_traceback and "\x00" not in row.log_output
    if handler == "raises_nul":
        assert "ValueError: a%sb" % R in row.error_traceback
    last_line = row.log_output.splitlines()[-1]
    assert ALTERED in last_line and last_line.endswith("in: %s." % named)
    assert task.run_count == 1
    assert_pages_answer(admin_client, row, ALTERED)


def test_innocent_runs_of_a_batch_beside_poisoned_ones_all_end() -> None:
    innocent = [
        make("add", name="add-%d" % n, handler_kwargs={"a": str(n)}) for n in range(6)
    ]
    poisoned = [make("echo", name="echo-nul"), make("echo", name="echo-surrogate")]
    executions = [task_request_run(task=task) for task in innocent]
    executions += [
        task_request_run(task=poisoned[0], overrides={"target": "'x\\x00y'"}),
        task_request_run(task=poisoned[1], overrides={"target": "'x\\ud800y'"}),
    ]

    runs = runs_claim(executions)
    for run in runs:
        run_claimed(run)
    written = runs_finish(runs)

    assert written == {execution.pk for execution in executions}
    rows = TaskExecution.objects.in_bulk([execution.pk for execution in executions])
    assert {row.status for row in rows.values()} == {Status.SUCCESS}
    assert [rows[e.pk].result for e in executions[:6]] == [
        {"sum": n + 1} for n in range(6)
    ]
    assert [rows[e.pk].result for e in executions[6:]] == [{"target": "x%sy" % R}] * 2
    assert all(ALTERED not in rows[e.pk].log_output for e in executions[:6])


@pytest.fixture
def flaky_finals(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The final write fails for any batch, and for the listed executions' results."""
    real = records_module.write_finals
    bad: list[int] = []

    def write_finals(*, executions: list[TaskExecution]) -> set[int]:
        if len(executions) > 1:
            raise DataError("forced failure of the batch statement")
        execution = executions[0]
        if execution.pk in bad and execution.result is not None:
            raise DataError("value too large for the result column")
        return real(executions=executions)

    monkeypatch.setattr(records_module, "write_finals", write_finals)
    return bad


def test_a_failed_batch_write_falls_back_to_row_by_row_writes(
    flaky_finals: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    tasks = [
        make("add", name="add-%d" % n, handler_kwargs={"a": str(n)}) for n in range(3)
    ]
    executions = [task_request_run(task=task) for task in tasks]
    runs = runs_claim(executions)
    for run in runs:
        run_claimed(run)

    written = runs_finish(runs)

    assert written == {execution.pk for execution in executions}
    assert [stored(e).result for e in executions] == [
        {"sum": 1},
        {"sum": 2},
        {"sum": 3},
    ]
    assert [
        (r.levelname, r.getMessage())
        for r in caplog.records
        if r.levelno >= logging.WARNING
    ] == [
        (
            "ERROR",
            "Could not record the end of 3 runs in one batch; recording them one by one",
        )
    ]
    assert all(
        task.run_count == task.success_count == 1
        for task in ScheduledTask.objects.filter(pk__in=[t.pk for t in tasks])
    )


def test_a_row_that_still_cannot_be_written_is_recorded_failed_like_any_failure(
    flaky_finals: list[int],
    failed_signals: list[TaskExecution],
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = make("add", name="good", handler_kwargs={"a": "1"})
    bad = make(
        "add",
        name="bad",
        handler_kwargs={"a": "2"},
        overlap_policy=ScheduledTask.OverlapPolicy.SKIP,
        max_retries=1,
    )
    executions = [task_request_run(task=good), task_request_run(task=bad)]
    flaky_finals.append(executions[1].pk)
    runs = runs_claim(executions)
    for run in runs:
        run_claimed(run)
    assert get_lock_backend().get(task_lock_key(bad.pk)) is not None

    written = runs_finish(runs)

    assert written == {execution.pk for execution in executions}
    assert stored(executions[0]).status == Status.SUCCESS
    row = stored(executions[1])
    assert row.status == Status.FAILED
    assert row.failure_kind == TaskExecution.FailureKind.ERROR
    assert row.result is None
    assert row.error_message.startswith(
        "The end of this run could not be stored (DataError: value too large for the "
        "result column), so it is recorded as failed without its result. The run "
        "itself ended “Success”."
    )
    assert "adding 2 and 1" in row.log_output  # only the value at fault is left out
    bad.refresh_from_db()
    assert (bad.run_count, bad.success_count, bad.fail_count) == (1, 0, 1)
    assert get_lock_backend().get(task_lock_key(bad.pk)) is None
    # Its handler ran (and succeeded): a retry would run it again, so none is queued.
    assert not TaskExecution.objects.filter(retry_of=row).exists()
    assert [execution.pk for execution in failed_signals] == [row.pk]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors[1:] == [
        "Execution %d of task bad could not be stored as it ended (DataError: value too "
        "large for the result column); recorded as failed without its result" % row.pk
    ]


def test_a_single_run_that_cannot_be_written_at_all_is_recorded_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = make("add", handler_kwargs={"a": "1"})
    real = records_module.write_finals

    def write_finals(*, executions: list[TaskExecution]) -> set[int]:
        if executions[0].status != Status.FAILED:
            raise DataError("the row is cursed")
        return real(executions=executions)

    monkeypatch.setattr(records_module, "write_finals", write_finals)

    execution = execution_run(execution=task_request_run(task=task))

    row = stored(execution)
    assert row.status == Status.FAILED
    assert row.error_message.startswith(
        "The end of this run could not be stored (DataError"
    )
    assert "without its result." in row.error_message


def test_a_failed_claim_batch_claims_one_by_one_and_fails_the_row_it_cannot_claim(
    monkeypatch: pytest.MonkeyPatch, failed_signals: list[TaskExecution]
) -> None:
    good = make("add", name="good", handler_kwargs={"a": "1"})
    bad = make("add", name="bad", handler_kwargs={"a": "2"})
    executions = [task_request_run(task=good), task_request_run(task=bad)]
    real = runs_module.claim_pending

    def claim_pending(*, ids: list[int], **kwargs: Any) -> set[int]:
        if len(ids) > 1 or ids == [executions[1].pk]:
            raise DataError("forced failure of the claim")
        return real(ids=ids, **kwargs)

    monkeypatch.setattr(runs_module, "claim_pending", claim_pending)

    runs = runs_claim(executions)

    assert [run.execution.pk for run in runs] == [executions[0].pk]
    run_claimed(runs[0])
    runs_finish(runs)
    assert stored(executions[0]).status == Status.SUCCESS
    row = stored(executions[1])
    assert row.status == Status.FAILED
    assert row.error_message == (
        "This run could not be started: its execution could not be claimed "
        "(DataError: forced failure of the claim)."
    )
    bad.refresh_from_db()
    assert (bad.run_count, bad.fail_count) == (1, 1)
    assert [execution.pk for execution in failed_signals] == [row.pk]


def test_failed_fire_inserts_fall_back_to_one_by_one_and_fail_the_fire_they_cannot_insert(
    monkeypatch: pytest.MonkeyPatch, failed_signals: list[TaskExecution]
) -> None:
    good = make("add", name="good")
    bad = make("add", name="bad")
    when = timezone.now() - dt.timedelta(seconds=1)

    def insert_fires(*, rows: list[TaskExecution]) -> None:
        raise DataError("forced failure of the fires statement")

    real_save = TaskExecution.save

    def save(self: TaskExecution, *args: Any, **kwargs: Any) -> None:
        if self.task_id == bad.pk and self.status == Status.PENDING:
            raise DataError("this fire is cursed")
        real_save(self, *args, **kwargs)

    monkeypatch.setattr(fires_module, "insert_fires", insert_fires)
    monkeypatch.setattr(TaskExecution, "save", save)

    recorded = executions_create_scheduled([(good, when), (bad, when)])

    assert [(row.task_id, row.status) for row in recorded] == [
        (good.pk, Status.PENDING)
    ]
    failed = TaskExecution.objects.get(task=bad)
    assert failed.status == Status.FAILED
    assert failed.scheduled_for == when
    assert failed.error_message == (
        "This fire could not be recorded as a pending run (DataError: this fire is cursed)."
    )
    bad.refresh_from_db()
    assert (bad.run_count, bad.fail_count) == (1, 1)
    assert [execution.pk for execution in failed_signals] == [failed.pk]


def test_a_worker_error_with_odd_text_is_stored_replaced() -> None:
    task = make("add")
    execution = task_request_run(task=task)
    TaskExecution.objects.filter(pk=execution.pk).update(
        status=Status.RUNNING, instance_id="w1", started_at=timezone.now()
    )

    assert execution_record_broken(
        execution.pk, error=ValueError("a\x00b"), instance="w1"
    )

    row = stored(execution)
    assert row.status == Status.FAILED
    assert (
        row.error_message == "The run broke outside its handler: ValueError: a%sb" % R
    )
    assert ALTERED in row.log_output


@pytest.mark.skipif(
    connection.vendor != "sqlite",
    reason="PostgreSQL never stored such a value: jsonb refuses it",
)
def test_pages_of_an_execution_stored_with_a_lone_surrogate_answer(
    admin_client: Client,
) -> None:
    task = make("add")
    execution = task_request_run(task=task)
    # As rows written before values were made storable hold it: a JSON escape.
    TaskExecution.objects.filter(pk=execution.pk).update(
        status=Status.SUCCESS, result={"s": "a\ud800b"}, kwargs={"t": "\udcff"}
    )
    assert stored(execution).result == {"s": "a\ud800b"}

    assert_pages_answer(admin_client, execution, "a%sb" % R)
    listed = admin_client.get("/api/v1/tasks/executions")
    assert listed.status_code == 200 and R in listed.content.decode()


# A database that is away is not a bad row: nothing is recorded failed for it


def test_fires_are_not_recorded_failed_while_the_database_is_away(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    task = make("add", name="punctual")

    def insert_fires(*, rows: list[TaskExecution]) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(fires_module, "insert_fires", insert_fires)

    with pytest.raises(OperationalError):
        executions_create_scheduled([(task, timezone.now() - dt.timedelta(seconds=1))])

    assert not TaskExecution.objects.filter(
        task=task
    ).exists()  # staged again next pass
    task.refresh_from_db()
    assert task.fail_count == 0


def test_ends_are_not_recorded_failed_while_the_database_is_away(
    monkeypatch: pytest.MonkeyPatch, failed_signals: list[TaskExecution]
) -> None:
    tasks = [
        make("add", name="add-%d" % n, handler_kwargs={"a": str(n)}) for n in range(2)
    ]
    executions = [task_request_run(task=task) for task in tasks]
    runs = runs_claim(executions)
    for run in runs:
        run_claimed(run)
    calls: list[int] = []

    def write_finals(*, executions: list[TaskExecution]) -> set[int]:
        calls.append(len(executions))
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(records_module, "write_finals", write_finals)
    monkeypatch.setattr(records_module.time, "sleep", lambda seconds: None)

    with pytest.raises(EndsNotRecorded) as raised:
        runs_finish(runs)

    assert raised.value.runs == runs  # for the caller to record again later
    assert isinstance(raised.value.__cause__, OperationalError)
    assert calls == [2] * 5  # the batch, retried; never row by row, never left out
    assert [stored(e).status for e in executions] == [Status.RUNNING, Status.RUNNING]
    assert failed_signals == []


@pytest.mark.parametrize("count", [1, 2])
def test_a_run_that_cannot_be_recorded_at_all_keeps_running_and_its_lock(
    monkeypatch: pytest.MonkeyPatch, failed_signals: list[TaskExecution], count: int
) -> None:
    tasks = [
        make(
            "add",
            name="add-%d" % n,
            handler_kwargs={"a": str(n)},
            overlap_policy="skip",
        )
        for n in range(count)
    ]
    executions = [task_request_run(task=task) for task in tasks]
    runs = runs_claim(executions)
    for run in runs:
        run_claimed(run)
    cursed = executions[-1].pk
    real = records_module.write_finals

    def write_finals(*, executions: list[TaskExecution]) -> set[int]:
        if len(executions) > 1 or executions[0].pk == cursed:
            raise DataError("the database refuses this row, even empty")
        return real(executions=executions)

    monkeypatch.setattr(records_module, "write_finals", write_finals)

    with pytest.raises(DataError):
        runs_finish(runs)

    assert stored(executions[-1]).status == Status.RUNNING
    assert get_lock_backend().get(task_lock_key(tasks[-1].pk)) is not None
    # The others of the batch are recorded, their locks freed, their signals sent.
    assert [stored(e).status for e in executions[:-1]] == [Status.SUCCESS] * (count - 1)
    assert all(get_lock_backend().get(task_lock_key(t.pk)) is None for t in tasks[:-1])
    assert failed_signals == []


def test_a_long_error_is_cut_in_a_record_and_says_how_much() -> None:
    short = records_module.error_text(ValueError("bad value"))
    long = records_module.error_text(ValueError("x" * 2000))
    cut = len("ValueError: ") + 2000 - records_module.ERROR_TEXT_MAX_CHARS

    assert short == "ValueError: bad value"
    assert long.startswith("ValueError: xxx")
    assert long.endswith("[... %d characters cut]" % cut)
    assert len(long) < records_module.ERROR_TEXT_MAX_CHARS + 40
