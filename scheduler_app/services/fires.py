"""Fires: staging them as pending executions, and withdrawing staged ones.

The scheduler records every fire through `executions_create_scheduled` (one
statement for a batch, `db.fires.insert_fires`); a fire that cannot be recorded
pending is recorded failed rather than lost, and fires missed beyond their
misfire grace are recorded `missed` (`executions_record_missed`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models.base import ModelState
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import signals
from ..db.batch import task_rows_lock
from ..db.fires import insert_fires
from ..models import ScheduledTask, TaskExecution
from .outcomes import count_failure
from .params import task_local_now
from .records import TRANSIENT_ERRORS, error_text, send_signal

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def executions_create_scheduled(
    fires: Sequence[tuple[ScheduledTask, dt.datetime]],
    *,
    now: dt.datetime | None = None,
) -> list[TaskExecution]:
    """Record fires as pending executions; returns the ones recorded here.

    A fire another scheduler instance already recorded (same task and fire time) is
    left out by the `exec_one_per_fire` constraint, so every fire runs exactly once
    however many instances fire it. Fires to come (staged ahead) get `run_after` =
    their time, so nothing starts them early. Each execution comes back with its
    task attached, so the execution path does not fetch it again.
    """
    if not fires:
        return []
    now = now or timezone.now()
    prototype = TaskExecution(
        status=Status.PENDING,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        created_at=now,
    )
    rows = [
        _copy_row(
            prototype,
            task=task,
            scheduled_for=scheduled_for,
            run_after=scheduled_for if scheduled_for > now else None,
        )
        for task, scheduled_for in fires
    ]
    try:
        with transaction.atomic():
            insert_fires(rows=rows)
    except TRANSIENT_ERRORS:
        # The database is away: nothing was recorded, and the engine stages these
        # fires again on its next pass (recording one failed would lose it).
        raise
    except Exception as error:  # one bad fire must not lose the others
        # A task deleted since the scheduler loaded it (IntegrityError), or any
        # other row the statement broke on: one by one, leaving out what fails.
        if not isinstance(error, IntegrityError):
            logger.error(
                "Could not record %d fire(s) in one statement; recording them one by one",
                len(rows),
                exc_info=True,
            )
        for row in rows:
            row.pk = None
            try:
                with transaction.atomic():
                    row.save(force_insert=True)
            except TRANSIENT_ERRORS:
                raise
            except IntegrityError:
                logger.warning(
                    "Fire of task %s at %s not recorded: the task is gone, or the fire "
                    "was recorded already",
                    row.task_id,
                    row.scheduled_for,
                )
                row.pk = None
            except Exception as row_error:  # recorded failed instead
                row.pk = None
                _fire_failed(row, row_error, now=now)
        return [row for row in rows if row.pk is not None]
    for row in rows:
        if row.pk is None:
            logger.warning(
                "Fire of task %s at %s was already recorded; not firing it twice",
                row.task_id,
                row.scheduled_for,
            )
    return [row for row in rows if row.pk is not None]


@dataclass(frozen=True)
class MissedFires:
    """The fires of one task that passed beyond their misfire grace, unrun."""

    task: ScheduledTask
    first: dt.datetime
    last: dt.datetime
    count: int


def executions_record_missed(
    missed: Sequence[MissedFires],
    *,
    coalesced: Sequence[int] = (),
    now: dt.datetime | None = None,
) -> None:
    """Record each task's stretch of missed fires as one `missed` execution.

    A fire missed while no scheduler ran (or dropped because it came too late)
    leaves a row saying which fire times it stands for, instead of nothing: a
    one-off task whose time passed shows it never ran. The row's fire time is the
    stretch's first, so another scheduler instance that finds the same stretch
    records nothing more (`exec_one_per_fire`).

    These tasks and those whose missed fires were `coalesced` into one run (ids)
    note `last_missed_at`, and their run of successes starts again: their health
    says they missed fires until M runs succeed after them (services/health.py).
    """
    if not missed and not coalesced:
        return
    now = now or timezone.now()
    rows = [
        TaskExecution(
            task=each.task,
            status=Status.MISSED,
            trigger_type=TaskExecution.TriggerType.SCHEDULED,
            scheduled_for=each.first,
            created_at=now,
            finished_at=now,
            result={
                "missed_fires": each.count,
                "first": each.first.astimezone(dt.UTC).isoformat(),
                "last": each.last.astimezone(dt.UTC).isoformat(),
                "misfire_grace_seconds": each.task.misfire_grace_seconds,
            },
            error_message=_missed_message(each),
        )
        for each in missed
    ]
    task_ids = sorted({each.task.pk for each in missed} | set(coalesced))
    with task_rows_lock, transaction.atomic():
        TaskExecution.objects.bulk_create(rows, ignore_conflicts=True)
        # A miss breaks the run of successes: recovering from it takes M new ones.
        ScheduledTask.objects.filter(pk__in=task_ids).update(
            last_missed_at=now, success_streak=0
        )


def _missed_message(missed: MissedFires) -> str:
    values = {
        "count": missed.count,
        # In the task's own zone, as its schedule reads.
        "first": task_local_now(missed.task, now=missed.first).strftime(TIME_FORMAT),
        "last": task_local_now(missed.task, now=missed.last).strftime(TIME_FORMAT),
        "grace": missed.task.misfire_grace_seconds,
    }
    if missed.count == 1:
        return (
            _(
                "Missed the fire of %(first)s: no scheduler started it within its "
                "misfire grace (%(grace)s s)."
            )
            % values
        )
    return (
        _(
            "Missed %(count)d fires, from %(first)s to %(last)s: no scheduler "
            "started them within their misfire grace (%(grace)s s)."
        )
        % values
    )


def _fire_failed(row: TaskExecution, error: Exception, *, now: dt.datetime) -> None:
    """Record as a failed execution a fire that cannot be recorded pending.

    Counters, retry and signal as for any failure; when even that cannot be
    written, the fire is left out and the error logged.
    """
    reason = error_text(error)
    logger.error(
        "Fire of task %s at %s could not be recorded (%s); recording it as failed",
        row.task_id,
        row.scheduled_for,
        reason,
        exc_info=error,
    )
    task = row.task
    failed = _copy_row(
        row,
        task=task,
        status=Status.FAILED,
        failure_kind=FailureKind.ERROR,
        run_after=None,
        started_at=now,
        finished_at=now,
        duration_ms=0,
        error_message=_("This fire could not be recorded as a pending run (%(error)s).")
        % {"error": reason},
    )
    try:
        with task_rows_lock, transaction.atomic():
            failed.save(force_insert=True)
            count_failure(failed, task, now=now)
    except Exception:  # nothing more can be done for this fire
        logger.exception(
            "Fire of task %s at %s is lost", row.task_id, row.scheduled_for
        )
        return
    send_signal(signals.execution_failed, task, failed)


def _copy_row(
    prototype: TaskExecution, *, task: ScheduledTask, **values: Any
) -> TaskExecution:
    """A new unsaved execution like `prototype`, for `task`, with `values` set.

    Model.__init__ (every field's default, the foreign key's descriptor) took
    20 µs a row, the most of staging a fire; this copies the prototype's field
    values (its dicts and lists fresh, as their defaults would be) in 1 µs.
    """
    row = TaskExecution.__new__(TaskExecution)
    state = prototype.__dict__
    fields = row.__dict__
    for name, value in state.items():
        if name != "_state":
            fields[name] = value.copy() if isinstance(value, (dict, list)) else value
    fields.update(values, task_id=task.pk)
    row._state = ModelState()
    row._state.fields_cache["task"] = task
    return row


def executions_unstage(execution_ids: Sequence[int]) -> set[int]:
    """Withdraw staged fires that have not started; returns the task ids they were of."""
    if not execution_ids:
        return set()
    staged = TaskExecution.objects.filter(
        pk__in=list(execution_ids), status=Status.PENDING
    )
    task_ids = set(staged.values_list("task_id", flat=True))
    staged.delete()
    return task_ids
