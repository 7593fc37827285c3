"""The public Python API: schedule tasks from application code (seed 004).

Every function is a thin call into the services and works on ordinary
`ScheduledTask` rows, so jobs added here show up in the admin, the API and the
running scheduler like any other task::

    from scheduler_app import scheduler

    scheduler.add_cron_job("scripts:data_sync", "0 2 * * *", name="nightly_sync",
                           kwargs={"days": 7})
    scheduler.add_interval_job(myapp.jobs.refresh, minutes=5)
    scheduler.add_date_job(myapp.mail.send_report, delay_seconds=30,
                           args=[42], kwargs={"to": "ops@example.com"})
    scheduler.pause_job("nightly_sync"); scheduler.resume_job("nightly_sync")
    scheduler.run_job("nightly_sync", days=1)   # a pending run, started by the scheduler
    scheduler.remove_job("nightly_sync")

Handlers are a `"scripts:<file>"` / `"module:function"` string or a module-level
callable, which must be an allowed handler: a script, or a function or BaseTask
class registered with `@scheduler_app.handler` (or listed in
SCHEDULER_HANDLER_MODULES); anything else is refused with HandlerNotAllowed.
Argument values are Python values (stored as literal JSON or as the
equivalent safe_eval expression); to store an expression evaluated at each run,
wrap it: `kwargs={"since": Expr("date.today() - timedelta(days=1)")}`.
Health and alerts take the task's options like any other:
`failure_threshold=3, alert_grace_seconds=300, alert_channels=["ops"]` (channel
names, ids or AlertChannel rows; none: the default channels).

Errors: what is wrong with the call's own arguments is raised at once, before
any task is built: HandlerNotAllowed for a handler that is not allowed (the
default name and positional arguments are read from it), ParameterError for a
value that cannot be stored or surplus positional arguments, TypeError for an
unknown option. Everything the task's fields break is one TaskInvalid listing
each problem with its field, from the same validation as the admin form and the
API (which show the same errors, HandlerNotAllowed among them, per field).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _

from .exceptions import ParameterError, ScheduleError, TaskNotFound
from .handlers.registry import check_allowed, get_handler, handler_path_for
from .models import ScheduledTask, TaskExecution
from .schedules import RUN_DATE_RANGE, resolve_timezone
from .selectors import DurationStats, duration_stats
from .services import (
    EDITABLE_FIELDS,
    PYTHON,
    TaskInvalid,
    task_create,
    task_delete,
    task_disable,
    task_enable,
    task_get,
    task_pause,
    task_request_run,
    task_resume,
    task_update,
)
from .services.params import Expr, to_expression

__all__ = [
    "Expr",
    "add_cron_job",
    "add_date_job",
    "add_interval_job",
    "disable_job",
    "enable_job",
    "get_job",
    "get_jobs",
    "get_stats",
    "handler_path_of",
    "pause_job",
    "remove_job",
    "resume_job",
    "run_job",
]

Handler = str | Callable[..., Any]


def handler_path_of(handler: Handler) -> str:
    """The handler id for a string or a module-level callable.

    The callable must be an allowed handler (decorated with @scheduler_app.handler,
    or in a module of SCHEDULER_HANDLER_MODULES): the services refuse any other,
    with a HandlerNotAllowed that says so.
    """
    if isinstance(handler, str):
        return handler
    return handler_path_for(handler)


def _zone(name: str) -> dt.tzinfo:
    """The task's zone; an unknown name is left for task validation to report."""
    try:
        return resolve_timezone(name)
    except ScheduleError:
        return timezone.get_default_timezone()


def _handler_kwargs(
    path: str, args: Sequence[Any], kwargs: Mapping[str, Any] | None, tz: dt.tzinfo
) -> dict[str, Any]:
    values = dict(kwargs or {})
    if args:
        names = [spec.name for spec in get_handler(path).params]
        if len(args) > len(names):
            raise ParameterError(
                _(
                    "%(handler)s takes %(count)d parameters, %(given)d positional arguments given."
                )
                % {"handler": path, "count": len(names), "given": len(args)},
                field="args",
            )
        for name, value in zip(names, args, strict=False):
            if name in values:
                raise ParameterError(
                    _("Parameter “%(name)s” given twice (positionally and by name).")
                    % {"name": name},
                    field=name,
                )
            values[name] = value
    return {name: to_expression(name, value, tz=tz) for name, value in values.items()}


def _add(
    handler: Handler,
    *,
    name: str | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any] | None,
    replace_existing: bool,
    default_name: Callable[[str], str],
    **fields: Any,
) -> ScheduledTask:
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError("unknown fields: %s" % ", ".join(sorted(unknown)))
    path = handler_path_of(handler)
    # The handler is this call's argument, checked first: the default name and
    # positional arguments come from it. HandlerNotAllowed names the decorator and
    # the setting (see the module docstring).
    check_allowed(path)
    name = name or default_name(path)
    existing = ScheduledTask.objects.filter(name=name).first()
    zone_name = fields.get(
        "timezone", existing.timezone if existing and replace_existing else ""
    )
    fields["handler_path"] = path
    fields["handler_kwargs"] = _handler_kwargs(path, args, kwargs, _zone(zone_name))
    if existing is not None and replace_existing:
        return task_update(task=existing, changes=fields, origin=PYTHON)
    # A relation, not a column: given to the service beside the new row.
    channels = fields.pop("alert_channels", None)
    return task_create(
        task=ScheduledTask(name=name, **fields), alert_channels=channels, origin=PYTHON
    )


def add_cron_job(
    handler: Handler,
    cron_expression: str,
    *,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    replace_existing: bool = False,
    **options: Any,
) -> ScheduledTask:
    """Run `handler` on a cron schedule (5 fields, 6 with seconds first, or @daily...)."""
    return _add(
        handler,
        name=name,
        args=args,
        kwargs=kwargs,
        replace_existing=replace_existing,
        default_name=lambda path: path,
        task_type=ScheduledTask.TaskType.CRON,
        cron_expression=cron_expression,
        **options,
    )


def add_interval_job(
    handler: Handler,
    *,
    seconds: int = 0,
    minutes: int = 0,
    hours: int = 0,
    days: int = 0,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    replace_existing: bool = False,
    **options: Any,
) -> ScheduledTask:
    """Run `handler` every so often."""
    # Plain arithmetic, not timedelta, which overflows on huge values: the bounds
    # of interval_seconds are task_validate's to report, as for the admin and API.
    total = int(seconds + 60 * minutes + 3600 * hours + 86400 * days)
    return _add(
        handler,
        name=name,
        args=args,
        kwargs=kwargs,
        replace_existing=replace_existing,
        default_name=lambda path: path,
        task_type=ScheduledTask.TaskType.INTERVAL,
        interval_seconds=total,
        **options,
    )


def add_date_job(
    handler: Handler,
    run_date: dt.datetime | None = None,
    *,
    delay_seconds: float | None = None,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    replace_existing: bool = False,
    **options: Any,
) -> ScheduledTask:
    """Run `handler` once, at `run_date` or `delay_seconds` from now."""
    if (run_date is None) == (delay_seconds is None):
        raise ParameterError(
            _("Give either run_date or delay_seconds."), field="run_date"
        )
    if run_date is None:
        try:
            run_date = timezone.now() + dt.timedelta(seconds=float(delay_seconds or 0))
        except OverflowError:  # beyond year 9999
            raise TaskInvalid(
                [ScheduleError(str(RUN_DATE_RANGE), field="run_date")]
            ) from None
    elif timezone.is_naive(run_date):
        # Wall-clock time in the task's zone, as the schedules read a naive run date.
        run_date = timezone.make_aware(run_date, _zone(options.get("timezone", "")))
    return _add(
        handler,
        name=name,
        args=args,
        kwargs=kwargs,
        replace_existing=replace_existing,
        # One-off jobs of the same callable are independent runs: unique names.
        default_name=lambda path: "%s@%s" % (path, uuid.uuid4().hex[:8]),
        task_type=ScheduledTask.TaskType.DATE,
        run_date=run_date,
        **options,
    )


def get_job(name: str | int) -> ScheduledTask | None:
    """The task, or None when there is none by that name or id."""
    try:
        return task_get(name)
    except TaskNotFound:
        return None


def get_jobs(*, status: str | None = None) -> list[ScheduledTask]:
    """All tasks (optionally with one status), by name."""
    tasks = ScheduledTask.objects.all()
    if status is not None:
        tasks = tasks.filter(status=status)
    return list(tasks)


def pause_job(name: str | int, *, reason: str = "") -> ScheduledTask:
    """Stop firing the task until it is resumed; `reason` goes to its audit trail
    (ReasonInvalid when SCHEDULER_REQUIRE_REASON_FOR requires one and it is empty)."""
    return task_pause(task=task_get(name), origin=PYTHON.because(reason))


def resume_job(name: str | int) -> ScheduledTask:
    return task_resume(task=task_get(name), origin=PYTHON)


def disable_job(name: str | int, *, reason: str = "") -> ScheduledTask:
    """Switch the task off, whatever its status, until enable_job; `reason` as
    for pause_job."""
    return task_disable(task=task_get(name), origin=PYTHON.because(reason))


def enable_job(name: str | int) -> ScheduledTask:
    """Turn a disabled task back on, firing from now (a paused one stays paused)."""
    return task_enable(task=task_get(name), origin=PYTHON)


def get_stats(*, slow_over: float | None = None) -> list[DurationStats]:
    """Each task's durations over its latest finished runs (count, total, min, max,
    avg in ms), by name; with `slow_over` (seconds), only the tasks whose average
    is over it, slowest first (seed 003)."""
    return duration_stats(slow_over_seconds=slow_over)


def remove_job(name: str | int, *, cancel_runs: bool = False, reason: str = "") -> None:
    """Delete the task and its history (system tasks refuse).

    A task with runs pending or running raises TaskBusy, unless `cancel_runs`:
    its pending runs are then cancelled and its running ones asked to stop.
    `reason` goes to the audit trail, as for pause_job.
    """
    task_delete(
        task=task_get(name), cancel_runs=cancel_runs, origin=PYTHON.because(reason)
    )


def run_job(name: str | int, **overrides: Any) -> TaskExecution:
    """Request a run now (a pending execution the scheduler starts), with optional overrides."""
    task = task_get(name)
    tz = _zone(task.timezone)
    return task_request_run(
        task=task,
        origin=PYTHON,
        overrides={
            key: to_expression(key, value, tz=tz) for key, value in overrides.items()
        },
    )
