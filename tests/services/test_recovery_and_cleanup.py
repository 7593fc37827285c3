"""Abandoned-run recovery by heartbeat, and retention cleanup."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from scheduler_app.services import (
    executions_cleanup,
    executions_recover_abandoned,
    instance_heartbeat,
    instance_id,
    instances_alive_ids,
    instances_cleanup,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

Status = TaskExecution.Status


@pytest.fixture
def task() -> ScheduledTask:
    return make_task(name="t", task_type="manual", interval_seconds=None)


def running(
    task: ScheduledTask, instance: str, started_at: dt.datetime
) -> TaskExecution:
    return make_execution(
        task, status=Status.RUNNING, instance_id=instance, started_at=started_at
    )


def test_runs_of_an_instance_with_a_stale_heartbeat_are_marked_abandoned(
    task: ScheduledTask,
) -> None:
    now = timezone.now()
    SchedulerInstance.objects.create(
        instance_id="dead-host:12:abc", last_heartbeat_at=now - dt.timedelta(minutes=5)
    )
    orphan = running(task, "dead-host:12:abc", now - dt.timedelta(minutes=6))

    recovered = executions_recover_abandoned(now=now)

    orphan.refresh_from_db()
    assert recovered == 1
    assert orphan.status == Status.FAILED
    assert orphan.failure_kind == TaskExecution.FailureKind.ABANDONED
    assert orphan.error_message.startswith(
        "Abandoned: instance “dead-host:12:abc” stopped"
    )
    assert orphan.finished_at == now


def test_runs_of_live_instances_and_fresh_runs_are_left_alone(
    task: ScheduledTask,
) -> None:
    now = timezone.now()
    instance_heartbeat(now=now)
    mine = running(task, instance_id(), now - dt.timedelta(hours=1))
    # Claimed seconds ago by a process that may not have beaten yet.
    fresh = running(task, "new-host:1:xyz", now - dt.timedelta(seconds=2))

    assert executions_recover_abandoned(now=now) == 0
    assert (
        TaskExecution.objects.filter(
            pk__in=[mine.pk, fresh.pk], status=Status.RUNNING
        ).count()
        == 2
    )


def test_an_instance_that_stopped_cleanly_is_not_alive(task: ScheduledTask) -> None:
    now = timezone.now()
    SchedulerInstance.objects.create(
        instance_id="gone", last_heartbeat_at=now, stopped_at=now
    )

    assert "gone" not in instances_alive_ids(now=now)


def test_heartbeat_creates_then_refreshes_the_instance_row() -> None:
    start = timezone.now()
    instance_heartbeat(now=start)
    instance_heartbeat(now=start + dt.timedelta(seconds=5), is_leader=True)

    row = SchedulerInstance.objects.get(instance_id=instance_id())
    assert row.started_at == start
    assert row.last_heartbeat_at == start + dt.timedelta(seconds=5)
    assert row.is_leader


def test_cleanup_deletes_only_old_finished_runs_in_batches(task: ScheduledTask) -> None:
    now = timezone.now()
    old = now - dt.timedelta(days=31)
    for _ in range(5):
        make_execution(task, status=Status.SUCCESS, created_at=old)
    first = make_execution(task, status=Status.FAILED, created_at=old)
    recent = make_execution(task, status=Status.SUCCESS, created_at=now)
    retry = make_execution(
        task, status=Status.FAILED, retry_of=first, attempt=2, created_at=now
    )
    stuck = make_execution(task, status=Status.RUNNING, created_at=old)

    deleted = executions_cleanup(days=30, batch_size=2, now=now)

    assert deleted == 6
    assert set(TaskExecution.objects.values_list("pk", flat=True)) == {
        recent.pk,
        retry.pk,
        stuck.pk,
    }
    retry.refresh_from_db()
    assert retry.retry_of is None


def test_cleanup_uses_the_history_setting(task: ScheduledTask, settings) -> None:
    settings.SCHEDULER_HISTORY_DAYS = 2
    now = timezone.now()
    make_execution(task, status=Status.SUCCESS, created_at=now - dt.timedelta(days=3))

    assert executions_cleanup(now=now) == 1


def test_instance_rows_not_heard_of_for_the_history_days_are_deleted() -> None:
    now = timezone.now()
    for name, days in [("long-gone", 31), ("recent", 29), ("alive", 0)]:
        SchedulerInstance.objects.create(
            instance_id=name, last_heartbeat_at=now - dt.timedelta(days=days, seconds=1)
        )

    assert instances_cleanup(days=30, now=now) == 1
    assert set(SchedulerInstance.objects.values_list("instance_id", flat=True)) == {
        "recent",
        "alive",
    }


def test_an_abandoned_run_is_counted_keeps_its_log_and_is_retried(
    task: ScheduledTask,
) -> None:
    task.max_retries = 2
    task.save()
    now = timezone.now()
    SchedulerInstance.objects.create(
        instance_id="dead", last_heartbeat_at=now - dt.timedelta(minutes=5)
    )
    orphan = running(task, "dead", now - dt.timedelta(minutes=6))
    TaskExecution.objects.filter(pk=orphan.pk).update(log_output="[10:00] step 1\n")

    assert executions_recover_abandoned(now=now) == 1

    orphan.refresh_from_db()
    task.refresh_from_db()
    assert orphan.log_output == "[10:00] step 1\n"
    assert orphan.duration_ms == 6 * 60 * 1000
    assert (task.run_count, task.fail_count, task.last_run_at) == (
        1,
        1,
        orphan.started_at,
    )
    retry = TaskExecution.objects.get(retry_of=orphan)
    assert retry.status == Status.PENDING and retry.attempt == 2


def test_an_abandoned_run_frees_the_task_lock_it_held_and_no_other(
    task: ScheduledTask,
) -> None:
    now = timezone.now()
    SchedulerInstance.objects.create(
        instance_id="dead", last_heartbeat_at=now - dt.timedelta(minutes=5)
    )
    orphan = running(task, "dead", now - dt.timedelta(minutes=6))
    other = make_task(name="other", task_type="manual", interval_seconds=None)
    backend = get_lock_backend()
    backend.acquire(
        task_lock_key(task.pk), owner="dead exec:%s" % orphan.pk, ttl_seconds=600
    )
    # Another task's lock, held by a live run of another process, stays.
    backend.acquire(task_lock_key(other.pk), owner="alive exec:1", ttl_seconds=600)

    assert executions_recover_abandoned(now=now) == 1

    assert backend.get(task_lock_key(task.pk)) is None
    assert backend.get(task_lock_key(other.pk)).owner == "alive exec:1"


def test_recovery_leaves_a_task_lock_another_run_took_since(
    task: ScheduledTask,
) -> None:
    now = timezone.now()
    SchedulerInstance.objects.create(
        instance_id="dead", last_heartbeat_at=now - dt.timedelta(minutes=5)
    )
    running(task, "dead", now - dt.timedelta(minutes=6))
    backend = get_lock_backend()
    backend.acquire(task_lock_key(task.pk), owner="alive exec:99", ttl_seconds=600)

    assert executions_recover_abandoned(now=now) == 1

    assert backend.get(task_lock_key(task.pk)).owner == "alive exec:99"
