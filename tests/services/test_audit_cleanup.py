"""The audit trail's retention: entries older than SCHEDULER_AUDIT_DAYS are deleted
by the cleanup_executions system task; newer ones, and the history's own days, do
not decide it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from scheduler_app.choices import AuditAction
from scheduler_app.models import AuditEntry, ScheduledTask, TaskExecution
from scheduler_app.services import execution_run, task_request_run
from scheduler_app.services.audit import CLI, audit_cleanup, audit_record
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def entry_at(task: ScheduledTask, at: dt.datetime) -> AuditEntry:
    [entry] = audit_record(origin=CLI, action=AuditAction.UPDATE, tasks=[task], at=at)
    return entry


def test_entries_older_than_the_audit_days_are_deleted_newer_kept(settings) -> None:
    settings.SCHEDULER_AUDIT_DAYS = 10
    now = timezone.now()
    task = make_task()
    entry_at(task, now - dt.timedelta(days=10, seconds=1))
    entry_at(task, now - dt.timedelta(days=400))
    kept = [
        entry_at(task, now - dt.timedelta(days=10) + dt.timedelta(seconds=1)),
        entry_at(task, now),
    ]

    assert audit_cleanup(now=now) == 2
    assert set(AuditEntry.objects.all()) == set(kept)


def test_the_default_keeps_a_year() -> None:
    now = timezone.now()
    task = make_task()
    entry_at(task, now - dt.timedelta(days=366))
    kept = entry_at(task, now - dt.timedelta(days=364))

    assert audit_cleanup(now=now) == 1
    assert list(AuditEntry.objects.all()) == [kept]


def test_the_cleanup_system_task_deletes_old_entries(settings) -> None:
    # The system task as the migration made it, run as the scheduler runs it.
    settings.SCHEDULER_HISTORY_DAYS = 1000  # the history's days do not decide it
    system = ScheduledTask.objects.get(name="cleanup_executions")
    task = make_task()
    old = entry_at(task, timezone.now() - dt.timedelta(days=366))
    recent = entry_at(task, timezone.now() - dt.timedelta(days=30))

    execution = execution_run(execution=task_request_run(task=system))

    assert execution.status == TaskExecution.Status.SUCCESS, execution.error_traceback
    assert execution.result["audit_deleted"] == 1
    assert not AuditEntry.objects.filter(pk=old.pk).exists()
    assert AuditEntry.objects.filter(pk=recent.pk).exists()
