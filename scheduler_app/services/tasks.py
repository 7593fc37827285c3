"""Task use cases: validate, create, update, delete, pause/resume, request a run."""

from __future__ import annotations

import datetime as dt
import difflib
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from apscheduler.triggers.base import BaseTrigger
from django.db import IntegrityError, router, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import notify
from ..db.batch import task_rows_lock
from ..db.next_runs import record_next_runs
from ..db.polls import tasks_version_values
from ..exceptions import (
    HandlerNotAllowed,
    InvalidTransition,
    SchedulerError,
    StatusChangeForbidden,
    SystemTaskProtected,
    TaskNotFound,
)
from ..handlers.registry import get_handler, list_scripts, refusal
from ..locks import get_lock_backend
from ..models import ScheduledTask, SchedulerState, TaskExecution
from ..schedules import (
    build_trigger,
    next_fire_times,
    resolve_timezone,
    validate_schedule,
)
from ..storable import is_unstorable
from .params import parameters_validate

logger = logging.getLogger(__name__)

#: A Celery queue name: a broker key and routing key, kept to plain characters.
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MSG_QUEUE_NAME = gettext_lazy(
    "Queue “%(queue)s”: use letters, digits, dots, dashes and underscores, starting "
    "with a letter or digit (e.g. reports or high-priority); leave it blank for the "
    "default queue."
)

#: The permission behind every change of a task's status: pause, resume, enable,
#: disable, and `status` edited in the admin form or through the API's PUT/PATCH.
PAUSE_PERMISSION = "scheduler_app.pause_scheduledtask"
MSG_STATUS_NEEDS_PERMISSION = gettext_lazy(
    "Status of task “%(name)s”: changing it needs the “Can pause and resume tasks” "
    "permission; leave it “%(status)s” or ask an administrator for that permission."
)
MSG_PAUSE_DISABLED = gettext_lazy(
    "Task “%(name)s” is disabled, so it was not paused: a disabled task does not fire "
    "anyway. Enable it (set its status to active) to turn it back on."
)
MSG_RESUME_DISABLED = gettext_lazy(
    "Task “%(name)s” is disabled, so it was not resumed: resume restarts paused tasks "
    "only. Enable it (set its status to active) to turn it back on."
)


class Actor(Protocol):
    """Who asks for a change: a Django user, or anything that answers has_perm()."""

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


def may_change_status(actor: Actor | None) -> bool:
    """Whether `actor` may change a task's status; None is trusted code (Python API, CLI)."""
    return actor is None or actor.has_perm(PAUSE_PERMISSION)


def _check_status_change(
    task: ScheduledTask, *, new_status: str, stored_status: str, actor: Actor | None
) -> None:
    """Refuse a status that differs from the stored one unless `actor` may change it."""
    if new_status == stored_status or may_change_status(actor):
        return
    raise StatusChangeForbidden(
        MSG_STATUS_NEEDS_PERMISSION
        % {"name": task.name, "status": ScheduledTask.Status(stored_status).label}
    )


#: The largest value of a PostgreSQL integer column. SQLite would store up to 2**63,
#: which would make what a task accepts depend on the database (and 10**14 s
#: overflows time arithmetic), so every database gets this bound.
INTEGER_MAX = 2_147_483_647
#: Inclusive bounds of a task's integer fields: the one rule that the admin form,
#: the API (which documents them in its schema) and the Python API apply, through
#: task_validate. A positive interval for interval tasks is the schedule's rule.
INTEGER_BOUNDS: dict[str, tuple[int, int]] = {
    "interval_seconds": (0, INTEGER_MAX),
    "max_instances": (0, INTEGER_MAX),
    "timeout_seconds": (0, INTEGER_MAX),
    "max_retries": (0, INTEGER_MAX),
    "retry_delay_seconds": (0, INTEGER_MAX),
    "misfire_grace_seconds": (0, INTEGER_MAX),
    "jitter_seconds": (0, INTEGER_MAX),
}
MSG_INTEGER_RANGE = gettext_lazy(
    "%(field)s: enter a whole number from %(min)s to %(max)s (got %(value)s)."
)
#: Text fields of a task, checked for characters no database column can store.
TEXT_FIELDS = (
    "name",
    "description",
    "cron_expression",
    "timezone",
    "handler_path",
    "queue",
)
MSG_UNSTORABLE_TEXT = gettext_lazy(
    "%(field)s: remove the NUL character (\\u0000) or unpaired surrogate "
    "(\\ud800-\\udfff); it cannot be stored."
)

#: Fields a caller may set through task_create / task_update.
EDITABLE_FIELDS = (
    "name",
    "description",
    "task_type",
    "cron_expression",
    "interval_seconds",
    "run_date",
    "timezone",
    "handler_path",
    "handler_kwargs",
    "status",
    "is_system",
    "overlap_policy",
    "max_instances",
    "queue",
    "timeout_seconds",
    "max_retries",
    "retry_delay_seconds",
    "retry_backoff",
    "misfire_grace_seconds",
    "coalesce",
    "jitter_seconds",
)


class TaskInvalid(SchedulerError):
    """Several problems with a task's fields at once; `errors` holds each one."""

    code = "invalid_task"

    def __init__(self, errors: list[SchedulerError]):
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


def task_local_now(
    task: ScheduledTask, *, now: dt.datetime | None = None
) -> dt.datetime:
    """Naive wall-clock time in the task's zone: what `datetime.now()` means in its parameters."""
    now = now or timezone.now()
    return now.astimezone(resolve_timezone(task.timezone)).replace(tzinfo=None)


def _field_label(name: str) -> str:
    return capfirst(str(ScheduledTask._meta.get_field(name).verbose_name))


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= 24 else text[:20] + "…"


def task_fields_validate(values: Mapping[str, Any]) -> list[SchedulerError]:
    """The bounds of the integer fields and storable text of the text fields among `values`.

    One error per field at fault (empty list when all are fine); task_validate
    applies it to every field, the schedule preview to the interval it is given.
    `interval_seconds` may be None (tasks of other types have none).
    """
    errors: list[SchedulerError] = []
    for name, (low, high) in INTEGER_BOUNDS.items():
        if name not in values or (name == "interval_seconds" and values[name] is None):
            continue
        value = values[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not low <= value <= high
        ):
            message = MSG_INTEGER_RANGE % {
                "field": _field_label(name),
                "min": low,
                "max": high,
                "value": _shown(value),
            }
            errors.append(SchedulerError(message, field=name, code="invalid"))
    for name in TEXT_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and is_unstorable(value):
            message = MSG_UNSTORABLE_TEXT % {"field": _field_label(name)}
            errors.append(SchedulerError(message, field=name, code="invalid"))
    return errors


def task_validate(
    task: ScheduledTask,
    *,
    now: dt.datetime | None = None,
    require_future_run_date: bool = False,
    handler_must_be_allowed: bool = True,
) -> None:
    """Check fields, schedule, handler and parameters; raise TaskInvalid listing every problem.

    The admin form, the API serializer and the Python API call this, so all give
    the same messages. Only an allowed handler passes (a script, or one registered
    in code: see the registry); `handler_must_be_allowed=False` lets the importer
    keep a task whose handler is not registered yet, paused, with its parameters
    unchecked.
    """
    now = now or timezone.now()
    errors: list[SchedulerError] = task_fields_validate(
        {name: getattr(task, name) for name in (*INTEGER_BOUNDS, *TEXT_FIELDS)}
    )
    schedule_fields = {"interval_seconds", "timezone", "cron_expression"}
    if not any(error.field in schedule_fields for error in errors):
        # (Otherwise the schedule cannot be read: its field's error says why.)
        try:
            validate_schedule(
                task_type=task.task_type,
                cron_expression=task.cron_expression,
                interval_seconds=task.interval_seconds,
                run_date=task.run_date,
                timezone_name=task.timezone,
                now=now,
                require_future_run_date=require_future_run_date,
            )
        except SchedulerError as exc:
            errors.append(exc)
    if not any(error.field == "handler_path" for error in errors):
        try:
            get_handler(task.handler_path)
        except HandlerNotAllowed as exc:
            if handler_must_be_allowed:
                errors.append(exc)
        except SchedulerError as exc:
            exc.field = exc.field or "handler_path"
            errors.append(exc)
        else:
            try:
                local_now = task_local_now(task, now=now)
            except SchedulerError:
                local_now = timezone.localtime(now).replace(tzinfo=None)
            errors.extend(
                parameters_validate(
                    task.handler_path, task.handler_kwargs, now=local_now
                )
            )
    if (
        task.queue
        and not QUEUE_NAME.fullmatch(task.queue)
        and not is_unstorable(task.queue)
    ):
        errors.append(
            SchedulerError(MSG_QUEUE_NAME % {"queue": task.queue}, field="queue")
        )
    if (
        task.overlap_policy != ScheduledTask.OverlapPolicy.ALLOW
        and isinstance(task.max_instances, int)
        and task.max_instances > 1
    ):
        errors.append(
            SchedulerError(
                _("“Max concurrent runs” only applies to the allow overlap policy."),
                field="max_instances",
            )
        )
    if errors:
        raise TaskInvalid(errors)


def task_trigger(task: ScheduledTask, *, start_at: dt.datetime) -> BaseTrigger | None:
    """The APScheduler trigger of a task's schedule (None for manual tasks).

    `start_at` anchors interval schedules: they fire at start_at + k * interval.
    """
    return build_trigger(
        task_type=task.task_type,
        cron_expression=task.cron_expression,
        interval_seconds=task.interval_seconds,
        run_date=task.run_date,
        timezone_name=task.timezone,
        start_at=start_at,
        jitter_seconds=task.jitter_seconds,
    )


def task_next_run(task: ScheduledTask, *, after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after `after` for an active task (None otherwise)."""
    if task.status != ScheduledTask.Status.ACTIVE:
        return None
    trigger = task_trigger(task, start_at=after)
    if task.task_type == ScheduledTask.TaskType.DATE:
        # A one-off task that already ran never fires again.
        if task.fired_once:
            return None
        return task.run_date
    times = next_fire_times(trigger, after=after, count=1)
    return times[0] if times else None


def _save(task: ScheduledTask, *, now: dt.datetime) -> ScheduledTask:
    task.next_run_at = task_next_run(task, after=now)
    try:
        with transaction.atomic():
            task.save()
            if task.status != ScheduledTask.Status.ACTIVE:
                # Paused or disabled through an edit (form, PUT/PATCH): its fires
                # staged ahead are withdrawn, as tasks_set_status withdraws them.
                TaskExecution.objects.staged(after=now).filter(task_id=task.pk).delete()
            _tasks_changed()
    except IntegrityError as exc:
        if ScheduledTask.objects.filter(name=task.name).exclude(pk=task.pk).exists():
            raise TaskInvalid(
                [
                    SchedulerError(
                        _(
                            "A task named “%(name)s” already exists; choose another name."
                        )
                        % {"name": task.name},
                        field="name",
                        code="unique",
                    )
                ]
            ) from exc
        raise
    return task


def run_date_must_be_future(
    task: ScheduledTask, *, is_new: bool, previous_run_date: dt.datetime | None = None
) -> bool:
    """Whether validating `task` requires its run date to lie ahead.

    The one rule for every way in (service, admin, API): a one-off task's run date
    must be in the future when it is set (the task created, or the date changed),
    not every time the task is edited later (it may have fired since).
    """
    return task.task_type == ScheduledTask.TaskType.DATE and (
        is_new or task.run_date != previous_run_date
    )


def task_create(
    *,
    now: dt.datetime | None = None,
    handler_must_be_allowed: bool = True,
    **fields: Any,
) -> ScheduledTask:
    """Validate and create a task; its next fire time is computed and stored.

    `handler_must_be_allowed=False` is for the importer only (see task_validate).
    """
    now = now or timezone.now()
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(
            "task_create() got unknown fields: %s" % ", ".join(sorted(unknown))
        )
    task = ScheduledTask(**fields)
    task_validate(
        task,
        now=now,
        require_future_run_date=run_date_must_be_future(task, is_new=True),
        handler_must_be_allowed=handler_must_be_allowed,
    )
    return _save(task, now=now)


def task_update(
    task: ScheduledTask,
    *,
    actor: Actor | None = None,
    now: dt.datetime | None = None,
    **fields: Any,
) -> ScheduledTask:
    """Validate and apply changes to a task; its next fire time is recomputed.

    A new `status` needs the pause permission (`may_change_status(actor)`);
    `actor=None` is trusted code. Nothing is changed when it is refused.
    """
    now = now or timezone.now()
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(
            "task_update() got unknown fields: %s" % ", ".join(sorted(unknown))
        )
    if "status" in fields:
        _check_status_change(
            task, new_status=fields["status"], stored_status=task.status, actor=actor
        )
    previous_run_date = task.run_date
    for name, value in fields.items():
        setattr(task, name, value)
    must_be_future = run_date_must_be_future(
        task, is_new=False, previous_run_date=previous_run_date
    )
    task_validate(task, now=now, require_future_run_date=must_be_future)
    return _save(task, now=now)


def task_save_validate(
    task: ScheduledTask, *, actor: Actor | None = None, now: dt.datetime | None = None
) -> None:
    """Validate a task built or edited elsewhere exactly as task_save will; raise.

    The admin form calls this from clean(), so what task_save would refuse is a
    form error. The run date is compared with the stored row's
    (run_date_must_be_future): it must lie ahead when the task is new or the date
    was changed. As in task_update, a status other than the stored one needs the
    pause permission: StatusChangeForbidden alone, or among the errors of
    TaskInvalid when there are others, so a form shows them all at once.
    """
    is_new = task.pk is None
    stored = (
        None
        if is_new
        else ScheduledTask.objects.filter(pk=task.pk)
        .values("run_date", "status")
        .first()
    )
    forbidden: StatusChangeForbidden | None = None
    if stored is not None:
        try:
            _check_status_change(
                task,
                new_status=task.status,
                stored_status=stored["status"],
                actor=actor,
            )
        except StatusChangeForbidden as exc:
            forbidden = exc
    must_be_future = run_date_must_be_future(
        task, is_new=is_new, previous_run_date=stored["run_date"] if stored else None
    )
    try:
        task_validate(task, now=now, require_future_run_date=must_be_future)
    except TaskInvalid as exc:
        if forbidden is not None:
            raise TaskInvalid([forbidden, *exc.errors]) from None
        raise
    if forbidden is not None:
        raise forbidden


def task_save(
    task: ScheduledTask, *, actor: Actor | None = None, now: dt.datetime | None = None
) -> ScheduledTask:
    """Validate and save a task built or edited elsewhere (the admin form's instance)."""
    now = now or timezone.now()
    task_save_validate(task, actor=actor, now=now)
    return _save(task, now=now)


def task_delete(task: ScheduledTask) -> None:
    """Delete a task and its history; system tasks refuse."""
    if task.is_system:
        raise SystemTaskProtected(task.name)
    with transaction.atomic():
        task.delete()
        _tasks_changed()


def tasks_delete(tasks: QuerySet[ScheduledTask]) -> int:
    """Delete several tasks; refuses all of them if any is a system task."""
    system = list(tasks.filter(is_system=True).values_list("name", flat=True))
    if system:
        raise SystemTaskProtected(", ".join(system))
    with transaction.atomic():
        _total, per_model = tasks.delete()
        _tasks_changed()
    return per_model.get(ScheduledTask._meta.label, 0)


def tasks_set_status(
    tasks: QuerySet[ScheduledTask], status: str, *, now: dt.datetime | None = None
) -> int:
    """Set the status of tasks, whatever it was; returns how many changed.

    The primitive behind tasks_pause/_resume/_enable/_disable, which apply each
    action's rule; callers use those. Resumed tasks get a fresh next fire time
    counted from now, so a task paused for a week does not fire a week of missed runs.
    """
    now = now or timezone.now()
    if status not in ScheduledTask.Status.values:
        raise InvalidTransition(_("Unknown status “%(status)s”.") % {"status": status})
    changed: list[int] = []
    with transaction.atomic():
        for task in tasks.exclude(status=status).select_for_update():
            task.status = status
            task.next_run_at = task_next_run(task, after=now)
            task.save(update_fields=["status", "next_run_at", "updated_at"])
            changed.append(task.pk)
        if changed and status != ScheduledTask.Status.ACTIVE:
            # The fires the scheduler staged ahead of their time are withdrawn with it.
            TaskExecution.objects.staged(after=now).filter(task_id__in=changed).delete()
        if changed:
            _tasks_changed()
    return len(changed)


#: What pause and resume act on. Both leave a disabled task alone: disabling is the
#: deliberate, stronger "off", which a pause would not change (a disabled task does
#: not fire) and a resume, applied to a selection of paused tasks, would switch back
#: on unnoticed. Enabling (status set to active) is how a disabled task comes back.
PAUSABLE_STATUSES = (ScheduledTask.Status.ACTIVE, ScheduledTask.Status.PAUSED)


@dataclass(frozen=True)
class StatusChange:
    """What a pause or resume of several tasks did."""

    #: How many tasks changed status.
    changed: int
    #: The names of the tasks it left alone because they are disabled.
    disabled: list[str]


def _tasks_pause_or_resume(
    tasks: QuerySet[ScheduledTask], status: str, *, now: dt.datetime | None
) -> StatusChange:
    with transaction.atomic():
        disabled = list(
            tasks.filter(status=ScheduledTask.Status.DISABLED)
            .order_by("name")
            .values_list("name", flat=True)
        )
        changed = tasks_set_status(
            tasks.filter(status__in=PAUSABLE_STATUSES), status, now=now
        )
    return StatusChange(changed=changed, disabled=disabled)


def tasks_pause(
    tasks: QuerySet[ScheduledTask], *, now: dt.datetime | None = None
) -> StatusChange:
    """Pause active tasks; disabled ones are left alone and named in the result."""
    return _tasks_pause_or_resume(tasks, ScheduledTask.Status.PAUSED, now=now)


def tasks_resume(
    tasks: QuerySet[ScheduledTask], *, now: dt.datetime | None = None
) -> StatusChange:
    """Resume paused tasks from now on; disabled ones are left alone and named."""
    return _tasks_pause_or_resume(tasks, ScheduledTask.Status.ACTIVE, now=now)


def tasks_enable(
    tasks: QuerySet[ScheduledTask], *, now: dt.datetime | None = None
) -> int:
    """Turn disabled tasks back on (firing from now); others are left as they are."""
    return tasks_set_status(
        tasks.filter(status=ScheduledTask.Status.DISABLED),
        ScheduledTask.Status.ACTIVE,
        now=now,
    )


def tasks_disable(
    tasks: QuerySet[ScheduledTask], *, now: dt.datetime | None = None
) -> int:
    """Switch tasks off until they are enabled again, whatever their status."""
    return tasks_set_status(tasks, ScheduledTask.Status.DISABLED, now=now)


def task_pause(task: ScheduledTask, *, now: dt.datetime | None = None) -> ScheduledTask:
    """Stop firing a task until it is resumed (run-now still works).

    A disabled task is refused (InvalidTransition): see PAUSABLE_STATUSES.
    """
    change = tasks_pause(ScheduledTask.objects.filter(pk=task.pk), now=now)
    if change.disabled:
        raise InvalidTransition(MSG_PAUSE_DISABLED % {"name": task.name})
    task.refresh_from_db()
    return task


def task_resume(
    task: ScheduledTask, *, now: dt.datetime | None = None
) -> ScheduledTask:
    """Fire a paused task again, from now on; a disabled task is refused."""
    change = tasks_resume(ScheduledTask.objects.filter(pk=task.pk), now=now)
    if change.disabled:
        raise InvalidTransition(MSG_RESUME_DISABLED % {"name": task.name})
    task.refresh_from_db()
    return task


def task_get(id_or_name: int | str) -> ScheduledTask:
    """A task by primary key or by name; TaskNotFound names the closest names."""
    lookup: dict[str, Any]
    # isascii(): str.isdigit() also accepts digits such as "²" that int() refuses.
    if isinstance(id_or_name, int) or (
        isinstance(id_or_name, str) and id_or_name.isascii() and id_or_name.isdigit()
    ):
        lookup = {"pk": int(id_or_name)}
        task = ScheduledTask.objects.filter(**lookup).first()
        if task is None:
            task = ScheduledTask.objects.filter(name=str(id_or_name)).first()
    else:
        task = ScheduledTask.objects.filter(name=id_or_name).first()
    if task is not None:
        return task
    names = list(ScheduledTask.objects.values_list("name", flat=True)[:10000])
    close = difflib.get_close_matches(str(id_or_name), names, n=3, cutoff=0.5)
    if close:
        hint = _(" Did you mean: %(names)s?") % {"names": ", ".join(close)}
    else:
        hint = _(" List the tasks in the admin or with GET /api/v1/tasks.")
    raise TaskNotFound(_("No task “%(name)s”.") % {"name": id_or_name} + hint)


def task_request_run(
    task: ScheduledTask,
    *,
    trigger_type: str = TaskExecution.TriggerType.MANUAL,
    overrides: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> TaskExecution:
    """Create a pending execution for the scheduler (or a worker) to start; never runs it here.

    Parameter overrides are expressions validated like the task's own; they replace
    the task's values for this run only.
    """
    now = now or timezone.now()
    overrides = dict(overrides or {})
    # A task whose handler is not allowed (a row written behind the services'
    # back) would only fail: refuse to queue the run, saying what to register.
    refused = refusal(task.handler_path)
    if refused is not None:
        raise TaskInvalid([refused])
    if overrides:
        merged = {**task.handler_kwargs, **overrides}
        problems = parameters_validate(
            task.handler_path, merged, now=task_local_now(task, now=now)
        )
        if problems:
            raise TaskInvalid(list(problems))
    # task_id, not task: the run loads the task as it is when it starts.
    execution = TaskExecution.objects.create(
        task_id=task.pk,
        status=TaskExecution.Status.PENDING,
        trigger_type=trigger_type,
        kwargs_overrides=overrides,
        created_at=now,
    )
    if trigger_type != TaskExecution.TriggerType.CLI:
        notify.publish(notify.RUN_REQUESTED)
    return execution


@dataclass(frozen=True)
class RunRequests:
    """What a bulk run request did."""

    #: How many runs were requested.
    requested: int
    #: Why each task left out was refused ("Task “x”: Handler ... is not allowed").
    refused: list[str]


def tasks_request_run(
    tasks: Iterable[ScheduledTask], *, now: dt.datetime | None = None
) -> RunRequests:
    """Request a run of each task (the admin's bulk action).

    Like task_request_run it refuses tasks whose handler is not allowed: those
    are left out, and `refused` says which and why; the others are requested.
    """
    now = now or timezone.now()
    allowed: list[ScheduledTask] = []
    refused: list[str] = []
    for task in tasks:
        why = refusal(task.handler_path)
        if why is None:
            allowed.append(task)
        else:
            refused.append(
                _("Task “%(name)s”: %(error)s")
                % {"name": task.name, "error": why.message}
            )
    executions = [
        TaskExecution(
            task=task,
            status=TaskExecution.Status.PENDING,
            trigger_type=TaskExecution.TriggerType.MANUAL,
            created_at=now,
        )
        for task in allowed
    ]
    if executions:
        TaskExecution.objects.bulk_create(executions)
        notify.publish(notify.RUN_REQUESTED)
    return RunRequests(requested=len(executions), refused=refused)


def tasks_record_next_runs(next_runs: Mapping[int, dt.datetime | None]) -> None:
    """Persist the scheduler's next fire times in one transaction.

    One statement (`db.next_runs`; the scheduler calls this every quarter second),
    which leaves `updated_at` alone: the scheduler's own
    bookkeeping must not look like an edit to the change detection.
    """
    if not next_runs:
        return
    with (
        task_rows_lock,
        transaction.atomic(using=router.db_for_write(ScheduledTask)),
    ):
        record_next_runs(next_runs=next_runs)


def tasks_version() -> int:
    """The task-definition version: bumped by every create, edit, status change and delete.

    (A running scheduler asks four times a second: the query is compiled once.)
    """
    values = tasks_version_values()
    return (values[0] if values else 0) or 0


def _tasks_changed() -> None:
    """Announce a change to task definitions: bump the version, notify via Redis.

    Called inside the writing transaction, so the bump commits with the change.
    """
    bumped = SchedulerState.objects.filter(key=SchedulerState.TASKS_VERSION).update(
        value=F("value") + 1
    )
    if not bumped:
        SchedulerState.objects.get_or_create(
            key=SchedulerState.TASKS_VERSION, defaults={"value": 1}
        )
    notify.publish(notify.TASKS_CHANGED)


def tasks_with_refused_handlers() -> list[tuple[str, str]]:
    """(task name, why) for each task that is not disabled and whose handler may not run.

    Such a task is a row written behind the services' back, or one saved before
    handlers had to be registered (an upgrade): each of its runs fails saying
    why. The scheduler logs them at start, so an operator hears of them at once.
    """
    tasks = ScheduledTask.objects.exclude(status=ScheduledTask.Status.DISABLED)
    # One check per handler, not per task: installations have few handlers.
    reasons = {
        path: why.message
        for path in tasks.order_by().values_list("handler_path", flat=True).distinct()
        if (why := refusal(path)) is not None
    }
    if not reasons:
        return []
    refused = tasks.filter(handler_path__in=reasons).order_by("name")
    return [
        (name, reasons[path])
        for name, path in refused.values_list("name", "handler_path")
    ]


def tasks_ensure_declared(*, now: dt.datetime | None = None) -> list[ScheduledTask]:
    """Create a task for each script that declares a default schedule in TASK_INFO, once.

    Once means once: the `declared:<handler>` state row remembers it, so a task the
    admin edited, paused or deleted is never recreated or overwritten. A script
    whose declared schedule is invalid is logged and left alone.
    """
    created: list[ScheduledTask] = []
    for info in list_scripts():
        if info.broken or not info.schedule:
            continue
        try:
            with transaction.atomic():
                _state, first_time = SchedulerState.objects.get_or_create(
                    key="declared:%s" % info.path
                )
                if (
                    not first_time
                    or ScheduledTask.objects.filter(handler_path=info.path).exists()
                ):
                    continue
                name = info.path.split(":", 1)[1]
                if ScheduledTask.objects.filter(name=name).exists():
                    name = info.path
                created.append(
                    task_create(
                        now=now,
                        name=name,
                        description=info.description,
                        handler_path=info.path,
                        **info.schedule,
                    )
                )
        except SchedulerError as exc:
            logger.error("Declared schedule of %s was not created: %s", info.path, exc)
    for task in created:
        logger.info(
            "Created task %s from the schedule declared by %s",
            task.name,
            task.handler_path,
        )
    return created


def lock_force_release(key: str, *, by: str) -> bool:
    """Release a lock whatever its owner (its holder is gone); True if one was held.

    For operators (admin, API) only: a live holder keeps running without its lock.
    """
    released = get_lock_backend().force_release(key)
    logger.warning("Lock %s force-released by %s (was held: %s)", key, by, released)
    return released
