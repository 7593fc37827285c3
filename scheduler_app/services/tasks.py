"""The write path of tasks: create, update, delete, and the status changes.

One function per change, keyword-only and typed; each validates through
services/validation.py (task_validate), saves, withdraws the fires staged for a
task that stops firing, and bumps the task-definition version the scheduler
watches. Run requests live in services/run_requests.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import IntegrityError, router, transaction
from django.db.models import F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import notify
from ..choices import AuditAction
from ..db.batch import task_rows_lock
from ..db.next_runs import record_next_runs
from ..db.polls import tasks_version_values
from ..exceptions import (
    InvalidTransition,
    SchedulerError,
    SystemTaskProtected,
    TaskBusy,
    TaskChanged,
    TaskNotFound,
)
from ..handlers.registry import get_handler, list_scripts, refusal
from ..models import (
    ScheduledTask,
    SchedulerState,
    TaskExecution,
    TaskExecutionQuerySet,
)
from ..schedules import Schedule, next_fire_times
from .audit import PYTHON, SYNC, Origin, audit_changes, audit_record, reason_check
from .runs import cancel_execution
from .validation import (
    Actor,
    TaskInvalid,
    alert_channels_resolve,
    field_label,
    task_validate,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger(__name__)
Status = TaskExecution.Status

MSG_PAUSE_DISABLED = gettext_lazy(
    "Task “%(name)s” is disabled, so it was not paused: a disabled task does not fire "
    "anyway. Enable it (set its status to active) to turn it back on."
)
MSG_RESUME_DISABLED = gettext_lazy(
    "Task “%(name)s” is disabled, so it was not resumed: resume restarts paused tasks "
    "only. Enable it (set its status to active) to turn it back on."
)

#: Fields a caller may set: what the admin form edits, the API writes (less
#: `is_system`) and task_update's `changes` may hold. The rest (run counters,
#: last and next run times) is the scheduler's.
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
    "failure_threshold",
    "recovery_threshold",
    "alert_grace_seconds",
    "max_run_seconds",
    "alert_channels",
)
#: The editable fields that are many-to-many relations, not columns: given to
#: task_create / task_update (`alert_channels=`, or in `changes`), never set on
#: an instance, and stored after the row.
M2M_FIELDS = ("alert_channels",)
#: The editable fields that are columns of the task's row.
COLUMN_FIELDS = tuple(name for name in EDITABLE_FIELDS if name not in M2M_FIELDS)
#: How a snapshot shows channels that name no stored channel: never equal to a
#: stored task's, so the change goes on to validation, which reports them.
_UNRESOLVED = "?"


#: Columns the engine keeps (the last run, the counters): never written by an edit.
BOOKKEEPING_FIELDS = (
    "last_run_at",
    "run_count",
    "success_count",
    "fail_count",
    "skipped_count",
    "cancelled_count",
    "duration_total_ms",
    "duration_count",
)

MSG_TASK_CHANGED = gettext_lazy(
    "Task “%(name)s” was changed by someone else since you loaded it; load it "
    "again, then make your change again."
)
MSG_TASK_CHANGED_FIELDS = gettext_lazy(
    "Task “%(name)s” was changed by someone else since you loaded it (changed: "
    "%(fields)s); load it again, then make your change again."
)
MSG_TASK_DELETED = gettext_lazy(
    "Task “%(name)s” was deleted meanwhile; nothing was changed."
)


def task_snapshot(task: ScheduledTask, *, alert_channels: Any = None) -> dict[str, str]:
    """The task's editable fields as text, to tell later which of them changed.

    Its channels are `alert_channels` (ids, names or rows) when given, else the
    stored ones (none for a new task): a query unless they were prefetched.
    """
    snapshot = {
        name: json.dumps(getattr(task, name), default=str, sort_keys=True)
        for name in COLUMN_FIELDS
    }
    if alert_channels is not None:
        channels, errors = alert_channels_resolve(alert_channels)
        ids: Any = _UNRESOLVED if errors else sorted(each.pk for each in channels)
    elif task.pk is not None:
        ids = sorted(each.pk for each in task.alert_channels.all())
    else:
        ids = []
    snapshot["alert_channels"] = json.dumps(ids)
    return snapshot


def _locked(task: ScheduledTask) -> ScheduledTask:
    """The stored row of `task`, locked until the transaction ends (call inside one);
    TaskNotFound if it is gone."""
    # no_key: the engine may still insert the task's executions meanwhile (their
    # foreign key takes a key-share lock, which FOR UPDATE would block).
    stored = (
        ScheduledTask.objects.select_for_update(no_key=True).filter(pk=task.pk).first()
    )
    if stored is None:
        raise TaskNotFound(MSG_TASK_DELETED % {"name": task.name})
    return stored


def _check_version(
    stored: ScheduledTask,
    *,
    expected_version: int | None,
    seen: Mapping[str, str] | None = None,
) -> None:
    """TaskChanged if `expected_version` is given and the stored version differs,
    naming the fields that differ from `seen` (a task_snapshot of what the caller
    saw) when it is given."""
    if expected_version is None or stored.version == expected_version:
        return
    now_stored = task_snapshot(stored)
    changed = [
        field_label(name)
        for name in EDITABLE_FIELDS
        if seen is not None and seen.get(name) != now_stored[name]
    ]
    message = (
        MSG_TASK_CHANGED_FIELDS % {"name": stored.name, "fields": ", ".join(changed)}
        if changed
        else MSG_TASK_CHANGED % {"name": stored.name}
    )
    raise TaskChanged(message, current_version=stored.version, changed=changed)


def task_check_version(
    *,
    task: ScheduledTask,
    expected_version: int,
    seen: Mapping[str, str] | None = None,
) -> None:
    """Raise TaskChanged if the task changed since the caller read `expected_version`.

    Inside a transaction, the row stays locked until it ends, so the caller's save
    in the same transaction cannot be overtaken (the admin's change form).
    """
    _check_version(_locked(task), expected_version=expected_version, seen=seen)


def task_next_run(task: ScheduledTask, *, after: dt.datetime) -> dt.datetime | None:
    """The first fire time strictly after `after` for an active task (None otherwise)."""
    if task.status != ScheduledTask.Status.ACTIVE:
        return None
    trigger = Schedule.of(task).trigger(start_at=after)
    if task.task_type == ScheduledTask.TaskType.DATE:
        # A one-off task that already ran never fires again.
        if task.fired_once:
            return None
        return task.run_date
    times = next_fire_times(trigger, after=after, count=1)
    return times[0] if times else None


def _save(
    task: ScheduledTask,
    *,
    now: dt.datetime,
    update_fields: Collection[str] | None = None,
    alert_channels: Any = None,
) -> ScheduledTask:
    """Store the task with its next fire time: every column, or `update_fields` only;
    and its channels when `alert_channels` is given (validated: ids, names or rows)."""
    task.next_run_at = task_next_run(task, after=now)
    try:
        with transaction.atomic():
            if update_fields is None:
                task.save()
            else:
                task.save(update_fields={*update_fields, "next_run_at", "updated_at"})
            if alert_channels is not None:
                task.alert_channels.set(alert_channels_resolve(alert_channels)[0])
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


def task_create(
    *,
    task: ScheduledTask,
    alert_channels: Any = None,
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
    handler_must_be_allowed: bool = True,
) -> ScheduledTask:
    """Validate and insert a new task (unsaved, e.g. `ScheduledTask(**fields)`).

    Its next fire time is computed and stored; so are its `alert_channels` (a
    list of channel ids, names or rows; None or empty: the default channels).
    `handler_must_be_allowed=False` is for the importer only (see task_validate).
    The creation is audited as `origin`'s, with the task's initial fields.
    """
    if task.pk is not None:
        raise ValueError("task_create() takes a new task; use task_update()")
    reason_check(origin, action=AuditAction.CREATE)
    now = now or timezone.now()
    task_validate(
        task=task,
        now=now,
        handler_must_be_allowed=handler_must_be_allowed,
        alert_channels=alert_channels,
    )
    with transaction.atomic():
        _save(task, now=now, alert_channels=alert_channels)
        initial = task_snapshot(task, alert_channels=alert_channels)
        audit_record(
            origin=origin,
            action=AuditAction.CREATE,
            tasks=[task],
            changes={
                name: [None, json.loads(value)] for name, value in initial.items()
            },
        )
    return task


def _actor(origin: Origin) -> Actor | None:
    """Whose permission applies to a change: the origin's user (None: trusted code)."""
    return cast("Actor | None", origin.user)


def _update_action(before: Mapping[str, str], after: Mapping[str, str]) -> AuditAction:
    """What an edit is, for its audit entry: the status action when the status is
    all it changes (a PATCH of `status`), an update otherwise."""
    changed = {name for name in after if before.get(name) != after[name]}
    if changed == {"status"}:
        return _status_action(json.loads(before["status"]), json.loads(after["status"]))
    return AuditAction.UPDATE


def _status_action(old: str, new: str) -> AuditAction:
    """The action of a status change from `old` to `new`."""
    if new == ScheduledTask.Status.PAUSED:
        return AuditAction.PAUSE
    if new == ScheduledTask.Status.DISABLED:
        return AuditAction.DISABLE
    if old == ScheduledTask.Status.DISABLED:
        return AuditAction.ENABLE
    return AuditAction.RESUME


def task_status_reason_check(
    *, old_status: str, new_status: str, origin: Origin
) -> None:
    """ReasonInvalid (field "reason") if a change of status from `old_status` to
    `new_status` needs a reason `origin` does not give, or the reason is too long:
    what task_update will check, for a form to show on its reason field first."""
    action = (
        _status_action(old_status, new_status)
        if old_status != new_status
        else AuditAction.UPDATE
    )
    reason_check(origin, action=action)


def _check_status_reason(
    origin: Origin, *, before: Mapping[str, str], after: Mapping[str, str]
) -> None:
    """An edit that pauses or disables a task needs a reason as a pause or a
    disable does (SCHEDULER_REQUIRE_REASON_FOR)."""
    task_status_reason_check(
        old_status=json.loads(before.get("status", "null")) or "",
        new_status=json.loads(after["status"]),
        origin=origin,
    )


def task_update(
    *,
    task: ScheduledTask,
    changes: Mapping[str, Any] | None = None,
    alert_channels: Any = None,
    origin: Origin = PYTHON,
    expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> ScheduledTask:
    """Validate and save a stored task, with `changes` (field name → value) applied.

    The task's channels are set from `changes["alert_channels"]`, or without
    `changes` from `alert_channels` (channel ids, names or rows; None: kept as
    stored); a change of channels is a change of the task like any other.

    With `changes`, only those columns (and the next fire time) are written, onto
    the stored row read again under a row lock: two updates of different fields
    at once both land, whatever `task` held when it was loaded; `task` is then
    refreshed to the stored row. Empty `changes` write nothing. Without
    `changes` (None: the admin form edited `task` itself), every editable column
    is written; the engine's bookkeeping (last run, counters) is the row's. The
    task is validated against its stored row (task_validate): a new status needs
    the pause permission of `origin.user` (None is trusted code), a changed run
    date must lie ahead; an edit that pauses or disables it needs a reason as
    task_pause and tasks_disable do (ReasonInvalid). The change is audited as
    `origin`'s, with each changed field before and after. Its next fire time
    is recomputed and its version bumped; with `expected_version`, a task whose
    stored version differs is refused (TaskChanged, nothing saved). Values
    equal to the stored ones change nothing: a save that changes nothing writes
    nothing, keeps the version (and the ETag) and records no audit entry.
    """
    whole_row = changes is None
    changes = dict(changes or {})
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(
            "task_update() got unknown fields: %s" % ", ".join(sorted(unknown))
        )
    if not whole_row:
        alert_channels = changes.get("alert_channels")
    now = now or timezone.now()
    with transaction.atomic():
        # Bad fields are reported before a stale version: they need fixing anyway.
        stored = _locked(task)
        if whole_row:
            # The caller edited `task` itself (a form): its editable fields are the
            # caller's; the engine's bookkeeping (last run, counters) is the row's.
            before = task_snapshot(stored)
            after = task_snapshot(task, alert_channels=alert_channels)
            if after == before:
                changes = {}  # saved as it was: nothing to write
            else:
                for name in BOOKKEEPING_FIELDS:
                    setattr(task, name, getattr(stored, name))
                task_validate(
                    task=task,
                    actor=_actor(origin),
                    now=now,
                    alert_channels=alert_channels,
                )
                _check_version(stored, expected_version=expected_version)
                _check_status_reason(origin, before=before, after=after)
                task.version = stored.version + 1
                _save(
                    task,
                    now=now,
                    update_fields=[*COLUMN_FIELDS, "version"],
                    alert_channels=alert_channels,
                )
                audit_record(
                    origin=origin,
                    action=_update_action(before, after),
                    tasks=[task],
                    changes=audit_changes(before, after),
                )
                return task
        before = task_snapshot(stored)
        for name, value in changes.items():
            if name not in M2M_FIELDS:
                setattr(stored, name, value)
        after = task_snapshot(stored, alert_channels=alert_channels)
        changes = {
            name: value
            for name, value in changes.items()
            if before[name] != after[name]
        }
        if not changes:  # an empty PATCH, or values as stored: nothing to write
            _check_version(stored, expected_version=expected_version)
            _copy_row(stored, onto=task)
            return task
        version = stored.version
        channels = changes.get("alert_channels")
        task_validate(
            task=stored, actor=_actor(origin), now=now, alert_channels=channels
        )
        _check_version(stored, expected_version=expected_version)
        _check_status_reason(origin, before=before, after=after)
        stored.version = version + 1
        _save(
            stored,
            now=now,
            update_fields=[
                name for name in (*changes, "version") if name not in M2M_FIELDS
            ],
            alert_channels=channels,
        )
        audit_record(
            origin=origin,
            action=_update_action(before, after),
            tasks=[stored],
            changes=audit_changes(before, after),
        )
    _copy_row(stored, onto=task)
    return task


def _copy_row(stored: ScheduledTask, *, onto: ScheduledTask) -> None:
    for field in ScheduledTask._meta.concrete_fields:
        setattr(onto, field.attname, getattr(stored, field.attname))
    # Channels prefetched before the change are stale: read again when asked.
    getattr(onto, "_prefetched_objects_cache", {}).pop("alert_channels", None)


MSG_TASK_BUSY = gettext_lazy(
    "Task “%(name)s” has runs pending or running (%(runs)s): cancel them first, or "
    "delete it with its runs cancelled."
)
MSG_TASKS_BUSY = gettext_lazy(
    "Nothing was deleted: these tasks have runs pending or running: %(names)s. "
    "Cancel their runs first, or delete each with its runs cancelled."
)


def task_unfinished_runs(
    *, tasks: QuerySet[ScheduledTask], now: dt.datetime | None = None
) -> TaskExecutionQuerySet:
    """The runs of `tasks` pending or running, but for fires staged ahead of `now`.

    What a delete would lose; the fires the scheduler recorded ahead of their
    time are its own bookkeeping, withdrawn with the task.
    """
    now = now or timezone.now()
    return (
        TaskExecution.objects.filter(
            task__in=tasks, status__in=(Status.PENDING, Status.RUNNING)
        )
        .exclude(pk__in=TaskExecution.objects.staged(after=now).values("pk"))
        .order_by("pk")
    )


def _runs_text(runs: list[TaskExecution]) -> str:
    shown = ", ".join(
        "#%s %s" % (run.pk, run.get_status_display().lower()) for run in runs[:5]
    )
    return shown if len(runs) <= 5 else "%s, … (%d)" % (shown, len(runs))


def task_delete(
    *,
    task: ScheduledTask,
    cancel_runs: bool = False,
    origin: Origin = PYTHON,
    expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> None:
    """Delete a task and its history; system tasks refuse.

    The deletion is audited as `origin`'s, with its reason (which
    SCHEDULER_REQUIRE_REASON_FOR may require: ReasonInvalid, nothing deleted).

    A task with runs pending or running (task_unfinished_runs) is kept (TaskBusy)
    unless `cancel_runs`: then its pending runs are cancelled and its running ones
    asked to stop, and it is deleted with them; such a run's end is not recorded.
    With `expected_version`, a task whose stored version differs is kept
    (TaskChanged).
    """
    if task.is_system:
        raise SystemTaskProtected(task.name)
    reason_check(origin, action=AuditAction.DELETE)
    with transaction.atomic():
        stored = _locked(task)
        _check_version(stored, expected_version=expected_version)
        runs = list(
            task_unfinished_runs(
                tasks=ScheduledTask.objects.filter(pk=task.pk), now=now
            )
        )
        if runs and not cancel_runs:
            raise TaskBusy(
                MSG_TASK_BUSY % {"name": task.name, "runs": _runs_text(runs)}
            )
        for run in runs:
            with contextlib.suppress(InvalidTransition):  # it ended meanwhile
                cancel_execution(run, now=now)
        task.delete()
        audit_record(origin=origin, action=AuditAction.DELETE, tasks=[task])
        _tasks_changed()


def tasks_delete(
    *,
    tasks: QuerySet[ScheduledTask],
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> int:
    """Delete several tasks; refuses all of them if any is a system task, or has
    runs pending or running (TaskBusy: those are cancelled, or the tasks deleted
    one by one with task_delete's `cancel_runs`). Each deletion is audited as
    `origin`'s, with its reason (which may be required, as for task_delete)."""
    reason_check(origin, action=AuditAction.DELETE)
    with transaction.atomic():
        # The rows are read once and locked, so the checks, the delete and the
        # audit entries are of one set of tasks: a task added meanwhile to what
        # `tasks` matches is not deleted unaudited, and two deletes of the same
        # tasks at once audit each task once. (The caller's queryset may carry
        # what FOR UPDATE refuses, such as the changelist's annotations.)
        ids = list(tasks.order_by().values_list("pk", flat=True))
        locked = ScheduledTask.objects.filter(pk__in=ids)
        doomed = list(locked.select_for_update().order_by("pk"))
        system = [task.name for task in doomed if task.is_system]
        if system:
            raise SystemTaskProtected(", ".join(system))
        busy = sorted(
            set(
                task_unfinished_runs(tasks=locked, now=now).values_list(
                    "task__name", flat=True
                )
            )
        )
        if busy:
            raise TaskBusy(MSG_TASKS_BUSY % {"names": ", ".join(busy)})
        _total, per_model = ScheduledTask.objects.filter(
            pk__in=[task.pk for task in doomed]
        ).delete()
        for task in doomed:
            task.pk = None  # gone: its entry keeps the name, not the link
        audit_record(origin=origin, action=AuditAction.DELETE, tasks=doomed)
        _tasks_changed()
    return per_model.get(ScheduledTask._meta.label, 0)


def tasks_set_status(
    *,
    tasks: QuerySet[ScheduledTask],
    status: str,
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> int:
    """Set the status of tasks, whatever it was; returns how many changed.

    The primitive behind tasks_pause/_resume/_enable/_disable, which apply each
    action's rule; callers use those. Resumed tasks get a fresh next fire time
    counted from now, so a task paused for a week does not fire a week of missed runs.
    Each task that changed is audited as `origin`'s (pause, resume, enable or
    disable, with its status before and after); a pause or disable needs a
    reason when SCHEDULER_REQUIRE_REASON_FOR says so (ReasonInvalid, nothing changed).
    """
    now = now or timezone.now()
    if status not in ScheduledTask.Status.values:
        raise InvalidTransition(_("Unknown status “%(status)s”.") % {"status": status})
    if status != ScheduledTask.Status.ACTIVE:
        reason_check(origin, action=_status_action("", status))
    changed: list[int] = []
    audited: dict[tuple[str, str], list[ScheduledTask]] = {}
    with transaction.atomic():
        for task in tasks.exclude(status=status).select_for_update():
            audited.setdefault((task.status, status), []).append(task)
            task.status = status
            task.next_run_at = task_next_run(task, after=now)
            task.version += 1
            task.save(update_fields=["status", "next_run_at", "updated_at", "version"])
            changed.append(task.pk)
        for (old, new), group in audited.items():
            audit_record(
                origin=origin,
                action=_status_action(old, new),
                tasks=group,
                changes={"status": [old, new]},
                at=now,
            )
        if changed and status != ScheduledTask.Status.ACTIVE:
            # The fires the scheduler staged ahead of their time are withdrawn with it.
            TaskExecution.objects.staged(after=now).filter(task_id__in=changed).delete()
        if changed:
            _tasks_changed()
    return len(changed)


#: What pause and resume act on: the one rule of every way in (admin actions, the
#: API's pause/resume, pause_job/resume_job). Both leave a disabled task alone:
#: disabling is the deliberate, stronger "off", which a pause would not change (a
#: disabled task does not fire) and a resume, applied to a selection of paused
#: tasks, would switch back on unnoticed. Enabling (status set to active) is how a
#: disabled task comes back.
PAUSABLE_STATUSES = (ScheduledTask.Status.ACTIVE, ScheduledTask.Status.PAUSED)


@dataclass(frozen=True)
class StatusChange:
    """What a pause or resume of several tasks did."""

    #: How many tasks changed status.
    changed: int
    #: The names of the tasks it left alone because they are disabled.
    disabled: list[str]


def _tasks_pause_or_resume(
    tasks: QuerySet[ScheduledTask],
    status: str,
    *,
    origin: Origin,
    now: dt.datetime | None,
) -> StatusChange:
    with transaction.atomic():
        disabled = list(
            tasks.filter(status=ScheduledTask.Status.DISABLED)
            .order_by("name")
            .values_list("name", flat=True)
        )
        changed = tasks_set_status(
            tasks=tasks.filter(status__in=PAUSABLE_STATUSES),
            status=status,
            origin=origin,
            now=now,
        )
    return StatusChange(changed=changed, disabled=disabled)


def tasks_pause(
    *,
    tasks: QuerySet[ScheduledTask],
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> StatusChange:
    """Pause active tasks; disabled ones are left alone and named in the result.
    Each paused task is audited as `origin`'s (see tasks_set_status)."""
    return _tasks_pause_or_resume(
        tasks, ScheduledTask.Status.PAUSED, origin=origin, now=now
    )


def tasks_resume(
    *,
    tasks: QuerySet[ScheduledTask],
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> StatusChange:
    """Resume paused tasks from now on; disabled ones are left alone and named.
    Each resumed task is audited as `origin`'s."""
    return _tasks_pause_or_resume(
        tasks, ScheduledTask.Status.ACTIVE, origin=origin, now=now
    )


def tasks_enable(
    *,
    tasks: QuerySet[ScheduledTask],
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> int:
    """Turn disabled tasks back on (firing from now); others are left as they are.
    Each enabled task is audited as `origin`'s."""
    return tasks_set_status(
        tasks=tasks.filter(status=ScheduledTask.Status.DISABLED),
        status=ScheduledTask.Status.ACTIVE,
        origin=origin,
        now=now,
    )


def tasks_disable(
    *,
    tasks: QuerySet[ScheduledTask],
    origin: Origin = PYTHON,
    now: dt.datetime | None = None,
) -> int:
    """Switch tasks off until they are enabled again, whatever their status.
    Each disabled task is audited as `origin`'s, with its reason (which may be
    required: ReasonInvalid, nothing changed)."""
    return tasks_set_status(
        tasks=tasks, status=ScheduledTask.Status.DISABLED, origin=origin, now=now
    )


def _task_pause_or_resume(
    task: ScheduledTask,
    status: str,
    refused: StrOrPromise,
    *,
    origin: Origin,
    expected_version: int | None,
    now: dt.datetime | None,
) -> ScheduledTask:
    with transaction.atomic():
        _check_version(_locked(task), expected_version=expected_version)
        change = _tasks_pause_or_resume(
            ScheduledTask.objects.filter(pk=task.pk), status, origin=origin, now=now
        )
    if change.disabled:
        raise InvalidTransition(refused % {"name": task.name})
    task.refresh_from_db()
    return task


def task_pause(
    *,
    task: ScheduledTask,
    origin: Origin = PYTHON,
    expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> ScheduledTask:
    """Stop firing a task until it is resumed (run-now still works).

    A disabled task is refused (InvalidTransition): see PAUSABLE_STATUSES. With
    `expected_version`, a task whose stored version differs is left as it is
    (TaskChanged). Pausing a paused task changes nothing, its version neither,
    and records nothing. The pause is audited as `origin`'s, with its reason;
    SCHEDULER_REQUIRE_REASON_FOR may require one (ReasonInvalid, nothing changed).
    """
    return _task_pause_or_resume(
        task,
        ScheduledTask.Status.PAUSED,
        MSG_PAUSE_DISABLED,
        origin=origin,
        expected_version=expected_version,
        now=now,
    )


def task_resume(
    *,
    task: ScheduledTask,
    origin: Origin = PYTHON,
    expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> ScheduledTask:
    """Fire a paused task again, from now on; a disabled task is refused.

    `expected_version` as for task_pause; audited as `origin`'s.
    """
    return _task_pause_or_resume(
        task,
        ScheduledTask.Status.ACTIVE,
        MSG_RESUME_DISABLED,
        origin=origin,
        expected_version=expected_version,
        now=now,
    )


def task_enable(
    *,
    task: ScheduledTask,
    origin: Origin = PYTHON,
    expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> ScheduledTask:
    """Turn a disabled task back on, firing from now; a task that is not disabled
    (active, paused) is left as it is and nothing is recorded.

    `expected_version` as for task_pause; audited as `origin`'s.
    """
    return _task_set(task, tasks_enable, origin, expected_version, now)


def task_disable(
    *,
    task: ScheduledTask,
    origin: Origin = PYTHON,
    expected_version: int | None = None,
    now: dt.datetime | None = None,
) -> ScheduledTask:
    """Switch a task off, whatever its status, until it is enabled again.

    `expected_version` as for task_pause; audited as `origin`'s, with its reason,
    which SCHEDULER_REQUIRE_REASON_FOR may require (ReasonInvalid, nothing changed).
    """
    return _task_set(task, tasks_disable, origin, expected_version, now)


def _task_set(
    task: ScheduledTask,
    change: Callable[..., object],
    origin: Origin,
    expected_version: int | None,
    now: dt.datetime | None,
) -> ScheduledTask:
    with transaction.atomic():
        _check_version(_locked(task), expected_version=expected_version)
        change(tasks=ScheduledTask.objects.filter(pk=task.pk), origin=origin, now=now)
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


MSG_HANDLER_PROBLEM = gettext_lazy(
    "%(error)s Every run of this task fails until its handler can run: choose "
    "another handler, or fix the script or register the function (README, "
    "“Writing a task”)."
)


def handler_problem(path: str) -> str:
    """Why a task's handler cannot run (missing, broken, not allowed) and what to
    do, or "" when it can: for the admin's warning and marker."""
    try:
        get_handler(path)
    except SchedulerError as exc:
        return str(MSG_HANDLER_PROBLEM % {"error": exc.message})
    return ""


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


def tasks_ensure_declared(
    *, origin: Origin = SYNC, now: dt.datetime | None = None
) -> list[ScheduledTask]:
    """Create a task for each script that declares a default schedule in TASK_INFO, once.

    Each creation is audited as `origin`'s (the schedule sync).

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
                task = ScheduledTask(
                    name=name,
                    description=info.description,
                    handler_path=info.path,
                    **info.schedule,
                )
                created.append(task_create(task=task, origin=origin, now=now))
        except SchedulerError as exc:
            logger.error("Declared schedule of %s was not created: %s", info.path, exc)
    for task in created:
        logger.info(
            "Created task %s from the schedule declared by %s",
            task.name,
            task.handler_path,
        )
    return created
