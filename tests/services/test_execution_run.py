"""The one execution path: claim, lock, evaluate, run, record, retry."""

from __future__ import annotations

import datetime as dt
import gc
import logging
from typing import Any

import pytest
from django.dispatch import receiver

from scheduler_app import signals
from scheduler_app.choices import AuditAction
from scheduler_app.exceptions import InvalidTransition
from scheduler_app.locks import get_lock_backend, lock_key, task_lock_key
from scheduler_app.models import (
    AuditEntry,
    ScheduledTask,
    SchedulerInstance,
    TaskExecution,
)
from scheduler_app.runtime import overlap
from scheduler_app.runtime.run import Run
from scheduler_app.services import (
    alerts_record,
    execution_cancel,
    execution_run,
    executions_cancel,
    instance_id,
    run_claimed,
    runs_claim,
    runs_finish,
    task_request_run,
)
from scheduler_app.services.audit import CLI, audit_record
from scheduler_app.tasklog import RunLog
from tests.factories import make_execution, make_task
from tests.factories import make_sample_task as make
from tests.helpers import DatabaseAway, run_in_thread, wait_until
from tests.sample_handlers import runs

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status


def run(task: ScheduledTask, **request: Any) -> TaskExecution:
    return execution_run(execution=task_request_run(task=task, **request))


def status_of(execution: TaskExecution) -> str:
    return TaskExecution.objects.values_list("status", flat=True).get(pk=execution.pk)


def test_a_run_records_the_defaults_it_ran_with_beside_the_given_values() -> None:
    task = make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "3"})

    execution = run(task, overrides={"target": "'orders'"})

    execution.refresh_from_db()
    assert execution.status == Status.SUCCESS
    assert execution.kwargs == {
        "days": 3,
        "target": "orders",
        "start_date": None,  # the handler's defaults, which it fell back on
        "options": None,
    }


def test_successful_run_records_result_timing_kwargs_and_counters() -> None:
    task = make("add", handler_kwargs={"a": "2 + 3", "b": 10})

    execution = run(task)

    execution.refresh_from_db()
    task.refresh_from_db()
    assert execution.status == Status.SUCCESS
    assert execution.result == {"sum": 15}
    assert execution.kwargs == {"a": 5, "b": 10}
    assert (
        execution.started_at is not None
        and execution.finished_at >= execution.started_at
    )
    assert execution.duration_ms is not None
    assert execution.instance_id == instance_id()
    assert "adding 5 and 10" in execution.log_output
    assert (task.run_count, task.success_count, task.fail_count) == (1, 1, 0)
    assert task.last_run_at == execution.started_at


def test_finished_runs_add_their_durations_to_the_task_average() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    boom = make("boom")

    ran = [run(task), run(task), run(boom)]
    skipped = make_execution(task, status=Status.SKIPPED)
    cancelled = task_request_run(task=task)
    execution_cancel(execution=cancelled)

    task.refresh_from_db()
    boom.refresh_from_db()
    assert (task.duration_count, task.duration_total_ms) == (
        2,
        ran[0].duration_ms + ran[1].duration_ms,
    )
    assert task.average_duration_ms == pytest.approx(task.duration_total_ms / 2)
    assert (boom.duration_count, boom.duration_total_ms) == (1, ran[2].duration_ms)
    assert skipped.duration_ms is None


def test_async_handler_runs_on_an_event_loop() -> None:
    execution = run(make("async_add", handler_kwargs={"a": 1}))

    assert execution.status == Status.SUCCESS
    assert execution.result == {"sum": 2}


def test_overrides_replace_the_task_parameters_for_one_run() -> None:
    task = make("add", handler_kwargs={"a": "1"})

    execution = run(task, overrides={"a": "40", "b": "2"})

    assert execution.result == {"sum": 42}
    task.refresh_from_db()
    assert task.handler_kwargs == {"a": "1"}


def test_raising_handler_fails_with_message_and_traceback() -> None:
    task = make("boom")

    execution = run(task)

    execution.refresh_from_db()
    task.refresh_from_db()
    assert execution.status == Status.FAILED
    assert execution.failure_kind == TaskExecution.FailureKind.ERROR
    assert execution.error_message == "RuntimeError: the database is on fire"
    assert "def boom" not in execution.error_traceback
    assert "sample_handlers/runs.py" in execution.error_traceback
    assert "about to fail" in execution.log_output
    assert (task.run_count, task.success_count, task.fail_count) == (1, 0, 1)


def test_task_result_failed_and_skipped_set_the_status() -> None:
    failed = run(make("says_failed"))
    skipped = run(make("says_skipped"))

    assert failed.status == Status.FAILED
    assert failed.error_message == "upstream returned 503"
    assert skipped.status == Status.SKIPPED
    assert skipped.result["message"] == "nothing to do"


def test_results_are_made_json_safe() -> None:
    execution = run(make("returns_odd_values"))

    execution.refresh_from_db()
    assert execution.result == {
        "when": "2024-01-01T08:00:00",
        "amount": "1.50",
        "tags": ["a"],
    }


def test_parameter_error_at_run_time_fails_naming_the_parameter() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    # Changed behind the services' back, as a bad migration or raw SQL could.
    ScheduledTask.objects.filter(pk=task.pk).update(handler_kwargs={"a": "'abc'"})

    execution = run(task)

    assert execution.status == Status.FAILED
    assert "Parameter “a”" in execution.error_message


def test_a_parameter_nested_too_deeply_fails_the_run_naming_it() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    ScheduledTask.objects.filter(pk=task.pk).update(
        handler_kwargs={"a": "-" * 6000 + "1", "b": "2"}
    )

    execution = run(task)

    assert execution.status == Status.FAILED
    assert execution.error_message == (
        "Parameter “a”: Expression too deeply nested (at most 50 levels)"
    )
    assert execution.finished_at is not None


def test_missing_handler_at_run_time_fails_naming_it() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    ScheduledTask.objects.filter(pk=task.pk).update(handler_path="scripts:gone_away")

    execution = run(task)

    assert execution.status == Status.FAILED
    assert "scripts:gone_away" in execution.error_message


def test_an_execution_that_is_not_pending_is_never_run_again() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    execution = run(task)

    again = execution_run(execution=execution)

    assert again.status == Status.SUCCESS
    assert len(runs.calls) == 1
    task.refresh_from_db()
    assert task.run_count == 1


def test_two_deliveries_of_one_execution_run_the_handler_once() -> None:
    task = make("log_then_block")
    execution = task_request_run(task=task)
    first = run_in_thread(execution)
    second = run_in_thread(TaskExecution.objects.get(pk=execution.pk))
    assert runs.started.wait(10)
    runs.release.set()
    first.join(10)
    second.join(10)

    task.refresh_from_db()
    assert status_of(execution) == Status.SUCCESS
    assert task.run_count == 1


def test_skip_policy_records_skipped_while_the_lock_is_held(lock_backend: str) -> None:
    task = make("add", handler_kwargs={"a": "1"})
    backend = get_lock_backend()
    token = backend.acquire(
        task_lock_key(task.pk), owner="other-host exec:1", ttl_seconds=30
    )

    execution = run(task)

    task.refresh_from_db()
    assert execution.status == Status.SKIPPED
    assert "still going" in execution.result["message"]
    assert "other-host exec:1" in execution.result["message"]
    assert runs.calls == []
    assert task.run_count == 0
    assert backend.get(task_lock_key(task.pk)).token == token


def test_skip_policy_lock_is_released_after_the_run(lock_backend: str) -> None:
    task = make("add", handler_kwargs={"a": "1"})

    run(task)

    assert get_lock_backend().get(task_lock_key(task.pk)) is None


def test_allow_policy_with_a_cap_skips_when_every_slot_is_taken() -> None:
    task = make(
        "add",
        handler_kwargs={"a": "1"},
        overlap_policy=ScheduledTask.OverlapPolicy.ALLOW,
        max_instances=1,
    )
    get_lock_backend().acquire(
        lock_key("task-slot", "%s:0" % task.pk), owner="x", ttl_seconds=30
    )

    execution = run(task)

    assert execution.status == Status.SKIPPED
    assert "1 runs of this task are already running" in execution.result["message"]


def test_allow_policy_without_a_cap_runs_concurrently() -> None:
    task = make("log_then_block", overlap_policy=ScheduledTask.OverlapPolicy.ALLOW)
    first = task_request_run(task=task)
    thread = run_in_thread(first)
    assert runs.started.wait(10)

    second = run(make("add", name="other", handler_kwargs={"a": "1"}))
    also = task_request_run(task=task)
    runs.release.set()
    execution_run(execution=also)
    thread.join(10)

    assert second.status == Status.SUCCESS
    assert status_of(first) == Status.SUCCESS
    assert status_of(also) == Status.SUCCESS


def test_replace_policy_cancels_the_holder_and_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(overlap, "REPLACE_GRACE_SECONDS", 0.1)
    task = make(
        "add",
        handler_kwargs={"a": "1"},
        overlap_policy=ScheduledTask.OverlapPolicy.REPLACE,
    )
    # A run held by another (unreachable) process: it never lets go by itself.
    old = make_execution(task, status=Status.RUNNING, instance_id="elsewhere")
    get_lock_backend().acquire(
        task_lock_key(task.pk), owner="elsewhere", ttl_seconds=30
    )

    execution = run(task)

    old.refresh_from_db()
    assert execution.status == Status.SUCCESS
    assert old.status == Status.CANCELLED
    assert "Replaced by execution #%s" % execution.pk in old.error_message


def test_async_timeout_cancels_the_handler_and_fails_the_run() -> None:
    task = make("async_block", timeout_seconds=1)

    execution = run(task)

    assert execution.status == Status.FAILED
    assert execution.failure_kind == TaskExecution.FailureKind.TIMEOUT
    assert "Timed out after 1 s" in execution.error_message


def test_sync_timeout_fails_the_run_and_ignores_the_late_result() -> None:
    task = make("block_ignoring_cancel", timeout_seconds=1)

    execution = run(task)
    runs.release.set()

    execution.refresh_from_db()
    assert execution.status == Status.FAILED
    assert execution.failure_kind == TaskExecution.FailureKind.TIMEOUT
    assert execution.result is None


def test_log_is_visible_while_the_run_is_going(settings: Any) -> None:
    settings.SCHEDULER_LOG_PUBLISH_INTERVAL = 0.05
    execution = task_request_run(task=make("log_then_block"))
    thread = run_in_thread(execution)

    live = wait_until(
        lambda: TaskExecution.objects.filter(
            pk=execution.pk, status=Status.RUNNING, log_output__contains="first line"
        ).first()
    )
    assert live.progress_done == 1 and live.progress_total == 4
    runs.release.set()
    thread.join(10)

    execution.refresh_from_db()
    assert execution.status == Status.SUCCESS
    assert execution.log_output.splitlines()[-1].endswith("released")


def test_log_keeps_head_and_tail_with_a_marker_when_capped(settings: Any) -> None:
    settings.SCHEDULER_LOG_BUFFER_MAX_LINES = 10
    execution = run(make("many_lines", handler_kwargs={"count": 25}))

    lines = execution.log_output.splitlines()
    assert len(lines) == 11
    assert lines[0].endswith("line 1") and lines[4].endswith("line 5")
    assert "15 lines dropped" in lines[5]
    assert lines[6].endswith("line 21") and lines[-1].endswith("line 25")


def test_log_lines_have_a_time_prefix() -> None:
    execution = run(make("add", handler_kwargs={"a": "1"}))

    assert execution.log_output.startswith("[")
    assert dt.datetime.strptime(execution.log_output[1:9], "%H:%M:%S")


def test_task_log_from_a_thread_the_handler_started_reaches_the_run() -> None:
    execution = run(make("log_from_thread"))

    assert "from a helper thread" in execution.log_output


def test_failed_run_schedules_a_retry_linked_to_the_first_attempt() -> None:
    task = make("boom", max_retries=2, retry_delay_seconds=30, retry_backoff=True)

    first = run(task)
    retry = TaskExecution.objects.get(retry_of=first)

    assert retry.status == Status.PENDING
    assert retry.trigger_type == TaskExecution.TriggerType.RETRY
    assert retry.attempt == 2
    assert retry.run_after == pytest.approx(
        first.finished_at + dt.timedelta(seconds=30), abs=dt.timedelta(seconds=1)
    )

    TaskExecution.objects.filter(pk=retry.pk).update(run_after=None)
    second = execution_run(execution=retry)
    third = TaskExecution.objects.get(attempt=3)
    assert second.status == Status.FAILED
    assert third.retry_of_id == first.pk
    # Exponential backoff: the second retry waits twice as long.
    assert third.run_after - second.finished_at == pytest.approx(
        dt.timedelta(seconds=60), abs=dt.timedelta(seconds=1)
    )

    TaskExecution.objects.filter(pk=third.pk).update(run_after=None)
    execution_run(execution=third)
    assert not TaskExecution.objects.filter(attempt=4).exists()


def test_recorded_fires_match_their_rows_and_share_nothing(
    django_assert_num_queries: Any,
) -> None:
    from scheduler_app.services import executions_create_scheduled

    task = make("add")
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    past, future = now - dt.timedelta(seconds=1), now + dt.timedelta(seconds=1)

    rows = executions_create_scheduled([(task, past), (task, future)], now=now)
    again = executions_create_scheduled([(task, future)], now=now)

    assert again == []  # the same fire is recorded once
    for row in rows:
        stored = TaskExecution.objects.get(pk=row.pk)
        fields = [f.attname for f in TaskExecution._meta.concrete_fields]
        assert {f: getattr(row, f) for f in fields} == {
            f: getattr(stored, f) for f in fields
        }
        assert not row._state.adding
    assert [(r.scheduled_for, r.run_after) for r in rows] == [
        (past, None),
        (future, future),
    ]
    with django_assert_num_queries(0):
        assert rows[0].task is task
    rows[0].kwargs["changed"] = True
    assert (
        rows[1].kwargs == {}
        and rows[0].kwargs_overrides is not rows[1].kwargs_overrides
    )


def test_a_retry_is_announced_to_the_schedulers(redis_url: str) -> None:
    from scheduler_app import notify

    task = make("boom", max_retries=1, retry_delay_seconds=5)
    received: list[str] = []
    listener = notify.Listener(received.append)
    listener.start()
    try:
        wait_until(lambda: listener.live, timeout=10)
        first = make_execution(task, status=Status.PENDING)
        execution_run(execution=first)
        wait_until(lambda: notify.RUN_REQUESTED in received, timeout=10)
    finally:
        listener.stop()
    assert TaskExecution.objects.filter(
        task=task, trigger_type=TaskExecution.TriggerType.RETRY
    ).exists()


def test_cli_runs_do_not_retry() -> None:
    task = make("boom", max_retries=3)

    run(task, trigger_type=TaskExecution.TriggerType.CLI)

    assert TaskExecution.objects.filter(task=task).count() == 1


def test_signals_announce_start_and_outcome_and_a_broken_receiver_changes_nothing() -> (
    None
):
    seen: list[tuple[str, str]] = []

    def record(name: str) -> Any:
        def handler(
            sender: Any, task: ScheduledTask, execution: TaskExecution, **kwargs: Any
        ) -> None:
            seen.append((name, task.name))

        return handler

    started, succeeded, failed = (
        record("started"),
        record("succeeded"),
        record("failed"),
    )
    signals.execution_started.connect(started)
    signals.execution_succeeded.connect(succeeded)
    signals.execution_failed.connect(failed)

    @receiver(signals.execution_succeeded)
    def broken(**kwargs: Any) -> None:
        raise ValueError("receiver bug")

    try:
        ok = run(make("add", handler_kwargs={"a": "1"}))
        run(make("boom"))
    finally:
        for signal, handler in (
            (signals.execution_started, started),
            (signals.execution_succeeded, succeeded),
            (signals.execution_failed, failed),
            (signals.execution_succeeded, broken),
        ):
            signal.disconnect(handler)

    assert ok.status == Status.SUCCESS
    assert seen == [
        ("started", "task-add"),
        ("succeeded", "task-add"),
        ("started", "task-boom"),
        ("failed", "task-boom"),
    ]


def test_skipped_signal_is_sent_when_the_lock_is_held() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    get_lock_backend().acquire(task_lock_key(task.pk), owner="x", ttl_seconds=30)
    seen: list[int] = []

    def on_skip(sender: Any, execution: TaskExecution, **kwargs: Any) -> None:
        seen.append(execution.pk)

    signals.execution_skipped.connect(on_skip)
    try:
        execution = run(task)
    finally:
        signals.execution_skipped.disconnect(on_skip)

    assert seen == [execution.pk]


def test_cancel_a_pending_execution_ends_it_at_once() -> None:
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))

    cancelled = execution_cancel(execution=execution)
    execution_run(execution=execution)

    assert cancelled.status == Status.CANCELLED
    assert status_of(execution) == Status.CANCELLED
    assert runs.calls == []


def test_cancel_of_a_pending_run_adds_one_to_the_cancelled_count_only() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    execution = task_request_run(task=task)

    execution_cancel(execution=execution)

    task.refresh_from_db()
    assert (task.cancelled_count, task.skipped_count, task.run_count) == (1, 0, 0)


def test_cancel_a_running_async_execution_stops_it() -> None:
    execution = task_request_run(task=make("async_block"))
    thread = run_in_thread(execution)
    assert runs.started.wait(10)

    execution_cancel(execution=TaskExecution.objects.get(pk=execution.pk))
    thread.join(10)

    execution.refresh_from_db()
    assert execution.status == Status.CANCELLED
    assert execution.result is None


def test_cancel_reaches_a_running_sync_handler_at_its_next_task_log() -> None:
    execution = task_request_run(task=make("log_then_block"))
    thread = run_in_thread(execution)
    assert runs.started.wait(10)

    execution_cancel(execution=TaskExecution.objects.get(pk=execution.pk))
    # A sync handler cannot be interrupted: the run goes on, holding its lock,
    # until the handler next calls task_log, which raises ExecutionCancelled.
    assert status_of(execution) == Status.RUNNING
    runs.release.set()
    thread.join(10)

    execution.refresh_from_db()
    assert execution.status == Status.CANCELLED
    assert execution.result is None
    assert "released" not in execution.log_output


def test_a_cancel_requested_by_another_process_reaches_the_run() -> None:
    execution = task_request_run(task=make("async_block"))
    thread = run_in_thread(execution)
    assert runs.started.wait(10)

    # What execution_cancel does in another process: only the flag in the row.
    TaskExecution.objects.filter(pk=execution.pk).update(cancel_requested=True)
    thread.join(10)

    assert not thread.is_alive()
    assert status_of(execution) == Status.CANCELLED


def test_cancel_of_a_finished_execution_is_refused() -> None:
    execution = run(make("add", handler_kwargs={"a": "1"}))

    with pytest.raises(InvalidTransition, match="already Success"):
        execution_cancel(execution=execution)


def test_bulk_cancel_ends_the_pending_and_leaves_the_finished_alone() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    finished = run(task)
    pending = task_request_run(task=task)

    done = executions_cancel(executions=TaskExecution.objects.filter(task=task))

    assert (done.cancelled, done.refused) == (1, [])
    assert status_of(pending) == Status.CANCELLED
    assert status_of(finished) == Status.SUCCESS
    task.refresh_from_db()
    assert (task.cancelled_count, task.success_count) == (1, 1)


def test_concurrent_runs_update_the_counters_atomically() -> None:
    task = make(
        "add",
        handler_kwargs={"a": "1"},
        overlap_policy=ScheduledTask.OverlapPolicy.ALLOW,
    )
    executions = [task_request_run(task=task) for _ in range(6)]

    threads = [run_in_thread(execution) for execution in executions]
    for thread in threads:
        thread.join(20)

    task.refresh_from_db()
    assert task.run_count == 6
    assert task.success_count == 6


def test_a_seed_001_class_handler_runs_through_the_same_path() -> None:
    execution = run(make("NightlyTotals", handler_kwargs={"region": "'eu'"}))

    assert execution.status == Status.SUCCESS
    assert execution.result == {"message": "done", "region": "eu", "orders": 3}
    assert "totals for eu" in execution.log_output


@pytest.mark.parametrize("script", ["example_task", "data_sync", "cleanup_executions"])
def test_shipped_scripts_run_successfully(script: str) -> None:
    task = make_task(
        name="shipped-%s" % script,
        task_type="manual",
        interval_seconds=None,
        handler_path="scripts:%s" % script,
    )

    execution = run(task)

    assert execution.status == Status.SUCCESS, execution.error_traceback
    assert execution.log_output


def test_cleanup_script_reports_how_many_it_deleted() -> None:
    # Not the migration's system task: transactional tests flush it away.
    task = make_task(
        name="cleanup",
        task_type="manual",
        interval_seconds=None,
        handler_path="scripts:cleanup_executions",
    )
    old = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    for _ in range(3):
        make_execution(task, status=Status.SUCCESS, created_at=old)
    SchedulerInstance.objects.create(instance_id="gone:1:abc", last_heartbeat_at=old)
    alerts_record(kind="failing", message="old", task=task, destinations=[], now=old)
    audit_record(origin=CLI, action=AuditAction.UPDATE, tasks=[task], at=old)
    kept = audit_record(origin=CLI, action=AuditAction.UPDATE, tasks=[task])

    execution = run(task, overrides={"batch_size": "2"})

    assert execution.result == {
        "deleted": 3,
        "alerts_deleted": 1,
        "instances_deleted": 1,
        "audit_deleted": 1,
        "kept_days": 30,
    }
    # The run's own request (run with parameters) is recorded beside the kept entry.
    assert list(AuditEntry.objects.filter(action=AuditAction.UPDATE)) == kept
    assert "Deleted 3 executions" in execution.log_output
    assert "Deleted 1 alerts" in execution.log_output
    assert "Deleted 1 instances not heard of since then" in execution.log_output
    assert "Deleted 1 audit entries older than 365 days" in execution.log_output


def test_finished_at_is_when_the_handler_ended_not_when_the_run_was_recorded() -> None:
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    [claimed] = runs_claim([execution])
    run_claimed(claimed)
    ended_at = claimed.ended_at
    assert ended_at is not None

    # The inline executor records ended runs in batches, a little later.
    runs_finish([claimed])

    execution.refresh_from_db()
    assert execution.finished_at == ended_at
    assert execution.duration_ms == int(
        (ended_at - execution.started_at).total_seconds() * 1000
    )


def test_a_run_leaves_no_reference_cycle_for_the_garbage_collector() -> None:
    # Ended runs must be freed at once: objects in cycles wait for the collector's
    # full passes, which stop every thread of the scheduler for tens of ms.
    task = make("add", handler_kwargs={"a": "1"})
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        run(task)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, (Run, RunLog))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert left == []


def test_a_handler_that_disappeared_is_warned_about_once_then_again_after_it_loads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = make("add", handler_kwargs={"a": "1"})
    ScheduledTask.objects.filter(pk=task.pk).update(
        handler_path="tests.sample_handlers.runs:gone_away"
    )
    task.refresh_from_db()

    def warnings() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelname == "WARNING" and "cannot load its handler" in r.getMessage()
        ]

    def fire(task: ScheduledTask) -> TaskExecution:  # what the engine would run
        return execution_run(execution=make_execution(task))

    with caplog.at_level(logging.WARNING, logger="scheduler_app.services.runs"):
        first, second = fire(task), fire(task)
        assert len(warnings()) == 1
        ScheduledTask.objects.filter(pk=task.pk).update(
            handler_path="tests.sample_handlers.runs:add"
        )
        task.refresh_from_db()
        back = fire(task)
        ScheduledTask.objects.filter(pk=task.pk).update(
            handler_path="tests.sample_handlers.runs:gone_away"
        )
        task.refresh_from_db()
        fire(task)

    assert (first.status, second.status, back.status) == (
        Status.FAILED,
        Status.FAILED,
        Status.SUCCESS,
    )
    assert len(warnings()) == 2
    assert warnings()[0].startswith(
        "Task %s cannot load its handler tests.sample_handlers.runs:gone_away"
        % task.name
    )


def test_the_end_of_a_run_whose_task_was_deleted_meanwhile_is_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = make("add", handler_kwargs={"a": "1"})
    execution = task_request_run(task=task)
    [claimed] = runs_claim([execution])
    run_claimed(claimed)
    ScheduledTask.objects.filter(pk=task.pk).delete()  # its history goes with it

    with caplog.at_level(logging.WARNING, logger="scheduler_app.services.records"):
        runs_finish([claimed])

    assert not TaskExecution.objects.filter(pk=execution.pk).exists()
    assert (
        "Execution %s of task %s was deleted (with its task, or by the history "
        "cleanup) while it ran; its end (success) is not recorded"
        % (execution.pk, task.name)
    ) in caplog.text


def test_a_run_that_ends_while_the_database_is_away_waits_and_is_recorded_once_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-execution path (Celery workers, run_task) keeps the end too."""
    database = DatabaseAway(monkeypatch)
    execution = task_request_run(task=make("add", handler_kwargs={"a": "1"}))
    done: list[TaskExecution] = []
    thread = run_in_thread(execution, done)
    try:
        assert wait_until(lambda: database.tries > 5, timeout=30)  # retries spent
        assert status_of(execution) == Status.RUNNING  # kept, not dropped
    finally:
        database.back()
        thread.join(30)

    assert status_of(execution) == Status.SUCCESS
    assert done and done[0].status == Status.SUCCESS


def test_a_failed_attempt_whose_retry_is_to_come_leaves_the_streaks_alone() -> None:
    """A fire that fails, then fails on its last retry, is one failure in a row."""
    task = make("boom", max_retries=1, retry_delay_seconds=0)

    first = execution_run(execution=make_execution(task, status=Status.PENDING))
    task.refresh_from_db()
    assert (task.fail_count, task.fail_streak) == (1, 0)  # its retry is to come

    retry = TaskExecution.objects.get(retry_of=first)
    execution_run(execution=retry)
    task.refresh_from_db()

    assert retry.attempt == 2
    assert (task.fail_count, task.fail_streak) == (2, 1)  # the last attempt failed
