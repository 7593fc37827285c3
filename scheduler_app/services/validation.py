"""Task validation: the one place that knows what a task may hold.

task_validate is every rule a task's fields obey, for every way in: the admin
form, the API serializer, the Python API, the importer and the write path of
services/tasks.py. It decides from the stored row what only the stored row
knows: whether the task is new, whether its run date changed, whether its status
changed (which needs the pause permission). Callers report its errors; none
keeps a copy of a rule.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from django.db.models import Model, Q
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import HandlerNotAllowed, SchedulerError, StatusChangeForbidden
from ..handlers.registry import get_handler
from ..models import AlertChannel, ScheduledTask
from ..schedules import Schedule
from ..storable import is_unstorable
from .params import parameters_validate, task_local_now

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
    # Health and alerts (blank: the project's default, SCHEDULER_ALERT_*).
    "failure_threshold": (1, INTEGER_MAX),
    "recovery_threshold": (1, INTEGER_MAX),
    "alert_grace_seconds": (1, INTEGER_MAX),
    "max_run_seconds": (1, INTEGER_MAX),
}
#: Integer fields that may be None: blank, the project's default (or, for
#: `interval_seconds`, no interval: tasks of other types have none).
NULLABLE_INTEGERS = frozenset(
    [
        "interval_seconds",
        "failure_threshold",
        "recovery_threshold",
        "alert_grace_seconds",
        "max_run_seconds",
    ]
)
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
MSG_TEXT_TOO_LONG = gettext_lazy(
    "%(field)s: enter at most %(max)s characters (got %(length)s); shorten it."
)
MSG_UNSTORABLE_TEXT = gettext_lazy(
    "%(field)s: remove the NUL character (\\u0000) or unpaired surrogate "
    "(\\ud800-\\udfff); it cannot be stored."
)


class TaskInvalid(SchedulerError):
    """Several problems with a task's fields at once; `errors` holds each one."""

    code = "invalid_task"

    def __init__(self, errors: list[SchedulerError]):
        super().__init__("; ".join(error.message for error in errors))
        self.errors = errors


class Actor(Protocol):
    """Who asks for a change: a Django user, or anything that answers has_perm()."""

    def has_perm(self, perm: str, obj: Any = None) -> bool: ...


def may_change_status(actor: Actor | None) -> bool:
    """Whether `actor` may change a task's status; None is trusted code (Python API, CLI)."""
    return actor is None or actor.has_perm(PAUSE_PERMISSION)


def field_label(name: str, model: type[Model] = ScheduledTask) -> str:
    field = model._meta.get_field(name)
    return capfirst(str(getattr(field, "verbose_name", name)))


def text_fields_validate(
    values: Mapping[str, Any], model: type[Model] = ScheduledTask
) -> list[SchedulerError]:
    """Each text among `values` within its column's length, and storable (no NUL,
    no lone surrogate): one error per field at fault. SQLite would store any
    length, so the rule is applied here, for every database and entry point."""
    errors: list[SchedulerError] = []
    for name, value in values.items():
        if not isinstance(value, str):
            continue
        longest = getattr(model._meta.get_field(name), "max_length", None)
        if longest is not None and len(value) > longest:
            message = MSG_TEXT_TOO_LONG % {
                "field": field_label(name, model),
                "max": longest,
                "length": len(value),
            }
            errors.append(SchedulerError(message, field=name, code="invalid"))
        elif is_unstorable(value):
            message = MSG_UNSTORABLE_TEXT % {"field": field_label(name, model)}
            errors.append(SchedulerError(message, field=name, code="invalid"))
    return errors


def _shown(value: Any) -> str:
    text = repr(value) if not isinstance(value, int) else str(value)
    return text if len(text) <= 24 else text[:20] + "…"


def task_fields_validate(values: Mapping[str, Any]) -> list[SchedulerError]:
    """The bounds of the integer fields and storable text of the text fields among `values`.

    One error per field at fault (empty list when all are fine); task_validate
    applies it to every field, the schedule preview to the interval it is given.
    The fields of NULLABLE_INTEGERS may be None (`interval_seconds`: tasks of
    other types have none; the alert thresholds: the project's default).
    """
    errors: list[SchedulerError] = []
    for name, (low, high) in INTEGER_BOUNDS.items():
        if name not in values or (name in NULLABLE_INTEGERS and values[name] is None):
            continue
        value = values[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not low <= value <= high
        ):
            message = MSG_INTEGER_RANGE % {
                "field": field_label(name),
                "min": low,
                "max": high,
                "value": _shown(value),
            }
            errors.append(SchedulerError(message, field=name, code="invalid"))
    errors += text_fields_validate(
        {name: values[name] for name in TEXT_FIELDS if name in values}
    )
    return errors


MSG_CHANNELS_NOT_LIST = gettext_lazy(
    "Alert channels: give a list of channel ids, e.g. [1, 3] (an empty list: the "
    "default channels)."
)
MSG_CHANNELS_UNKNOWN = gettext_lazy(
    "Alert channels: there is no channel %(channels)s; choose among the alert "
    "channels of the admin, or none for the default channels."
)
#: The largest primary key a lookup may name (a BigAutoField).
_ID_MAX = 2**63 - 1


def alert_channels_resolve(
    values: Any,
) -> tuple[list[AlertChannel], list[SchedulerError]]:
    """The channels `values` names, by id, name or row, and the error of those unknown.

    One query. The channels come ordered by id, each once; the error (field
    `alert_channels`) names every value that names no stored channel. A disabled
    channel is a valid choice (it gets nothing until enabled again:
    `alert_channels_disabled` names them, for the caller to say so).
    """
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        return [], [
            SchedulerError(
                str(MSG_CHANNELS_NOT_LIST), field="alert_channels", code="invalid"
            )
        ]
    ids: set[int] = set()
    names: set[str] = set()
    unknown: list[str] = []
    for value in values:
        if isinstance(value, AlertChannel) and value.pk is not None:
            ids.add(value.pk)
        elif isinstance(value, int) and not isinstance(value, bool):
            if 0 < value <= _ID_MAX:
                ids.add(value)
            else:
                unknown.append(str(value))
        elif isinstance(value, str) and not is_unstorable(value):
            names.add(value)
        else:
            unknown.append(_shown(value))
    found: dict[int, AlertChannel] = {}
    if ids or names:
        for channel in AlertChannel.objects.filter(
            Q(pk__in=ids) | Q(name__in=names)
        ).order_by("pk"):
            found[channel.pk] = channel
    named = {channel.name for channel in found.values()}
    unknown += [str(each) for each in sorted(ids - set(found))]
    unknown += ["“%s”" % each for each in sorted(names - named)]
    if unknown:
        error = SchedulerError(
            MSG_CHANNELS_UNKNOWN % {"channels": ", ".join(unknown)},
            field="alert_channels",
            code="invalid",
        )
        return list(found.values()), [error]
    return list(found.values()), []


def alert_channels_disabled(channels: Iterable[AlertChannel]) -> list[str]:
    """The names of the disabled ones among `channels`: a task may name them, but
    they get none of its alerts until enabled again (worth telling whoever chose)."""
    return [channel.name for channel in channels if not channel.enabled]


def _status_forbidden(
    task: ScheduledTask, *, stored_status: str, actor: Actor | None
) -> StatusChangeForbidden | None:
    """The refusal of a status that differs from the stored one, unless `actor` may."""
    if task.status == stored_status or may_change_status(actor):
        return None
    return StatusChangeForbidden(
        MSG_STATUS_NEEDS_PERMISSION
        % {"name": task.name, "status": ScheduledTask.Status(stored_status).label}
    )


def _fields_problems(
    task: ScheduledTask,
    *,
    now: dt.datetime,
    run_date_must_be_future: bool,
    handler_must_be_allowed: bool,
) -> list[SchedulerError]:
    """Every problem with the task's own fields: bounds, schedule, handler, queue, policy."""
    errors: list[SchedulerError] = task_fields_validate(
        {name: getattr(task, name) for name in (*INTEGER_BOUNDS, *TEXT_FIELDS)}
    )
    schedule_fields = {"interval_seconds", "timezone", "cron_expression"}
    if not any(error.field in schedule_fields for error in errors):
        # (Otherwise the schedule cannot be read: its field's error says why.)
        try:
            # Jitter's bounds are task_fields_validate's: not reported twice.
            schedule = replace(Schedule.of(task), jitter_seconds=0)
            schedule.validate(now=now, require_future_run_date=run_date_must_be_future)
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
    return errors


def task_validate(
    *,
    task: ScheduledTask,
    actor: Actor | None = None,
    now: dt.datetime | None = None,
    handler_must_be_allowed: bool = True,
    alert_channels: Any = None,
) -> None:
    """Check a task as it would be saved; raise listing every problem at once.

    `alert_channels` (ids, names or rows; None: not being set) must name stored
    channels (`alert_channels_resolve`).

    `task` is unsaved (new) or a stored task with its edits applied; the stored
    row says what changed. A one-off task's run date must lie ahead when it is set
    (the task is new, or the date changed), not at every later edit (it may have
    fired since). A status other than the stored one needs the pause permission
    (`may_change_status(actor)`; None is trusted code): StatusChangeForbidden
    alone, or among the errors of TaskInvalid when there are others, so a form
    shows them all. Only an allowed handler passes (a script, or one registered
    in code); `handler_must_be_allowed=False` lets the importer keep a task whose
    handler is not registered yet, paused, with its parameters unchecked.
    """
    now = now or timezone.now()
    stored = (
        None
        if task.pk is None
        else ScheduledTask.objects.filter(pk=task.pk)
        .values("run_date", "status")
        .first()
    )
    forbidden = (
        None
        if stored is None
        else _status_forbidden(task, stored_status=stored["status"], actor=actor)
    )
    run_date_must_be_future = task.task_type == ScheduledTask.TaskType.DATE and (
        stored is None or task.run_date != stored["run_date"]
    )
    errors = _fields_problems(
        task,
        now=now,
        run_date_must_be_future=run_date_must_be_future,
        handler_must_be_allowed=handler_must_be_allowed,
    )
    if alert_channels is not None:
        errors.extend(alert_channels_resolve(alert_channels)[1])
    if errors:
        raise TaskInvalid([forbidden, *errors] if forbidden else errors)
    if forbidden is not None:
        raise forbidden
