"""Import the jobs of an existing django-apscheduler installation as ordinary tasks."""

from __future__ import annotations

import datetime as dt
import importlib
import inspect
import io
import logging
import pickle
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from django.utils.translation import gettext as _

from ..db.apscheduler_jobs import (
    DJANGO_APSCHEDULER_TABLE,
    job_states,
    jobs_table_exists,
)
from ..exceptions import SchedulerError
from ..handlers.registry import is_standard_library, refusal
from ..models import ScheduledTask
from .audit import IMPORT, Origin
from .params import to_expression
from .tasks import task_create
from .validation import TaskInvalid

logger = logging.getLogger(__name__)

_APSCHEDULER_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

#: What an APScheduler 3 job state may refer to, by module: its triggers (and their
#: cron fields and expressions), datetimes and time zones. Unpickling anything else
#: could call any function, so a job state naming it is refused.
_PICKLE_MODULES = ("apscheduler.triggers",)
_PICKLE_GLOBALS = {
    ("datetime", name) for name in ("date", "datetime", "time", "timedelta", "timezone")
} | {
    ("zoneinfo", "ZoneInfo"),
    ("pytz", "_p"),
    ("pytz", "_UTC"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "object"),
    ("copyreg", "_reconstructor"),
}


def _zoneinfo_getattr(obj: Any, name: str) -> Any:
    """The one getattr a pickled ZoneInfo needs: ZoneInfo._unpickle."""
    if obj is zoneinfo.ZoneInfo and name == "_unpickle":
        # Private on purpose: it is what ZoneInfo.__reduce__ pickles (not in typeshed).
        return zoneinfo.ZoneInfo._unpickle  # type: ignore[attr-defined]
    raise pickle.UnpicklingError("a job state never asks for %r of %r" % (name, obj))


class _JobStateUnpickler(pickle.Unpickler):
    """Unpickles django-apscheduler job states, refusing every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("builtins", "getattr"):
            return _zoneinfo_getattr
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        if module.startswith(tuple(prefix + "." for prefix in _PICKLE_MODULES)):
            found = getattr(importlib.import_module(module), name, None)
            if inspect.isclass(found) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(
            _(
                "its pickled state refers to %(name)s, which no APScheduler job state "
                "holds; it was not unpickled"
            )
            % {"name": "%s.%s" % (module, name)}
        )


def job_state_loads(blob: bytes) -> dict[str, Any]:
    """A pickled APScheduler 3 job state, unpickled with only the globals it may hold."""
    state = _JobStateUnpickler(io.BytesIO(blob)).load()
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(_("its pickled state is not a job state"))
    return state


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: Created (paused) although their callable is not an allowed handler yet.
    not_allowed: list[str] = field(default_factory=list)


def _not_allowed_note(handler_path: str) -> str:
    module = handler_path.partition(":")[0]
    if is_standard_library(module):
        return _(
            "Not runnable: its callable %(handler)s is part of Python's standard "
            "library, which is never a handler. Wrap what the job did in a function "
            "of your own decorated with @scheduler_app.handler, point the task at it, "
            "then resume it."
        ) % {"handler": handler_path}
    return _(
        "Not runnable yet: its callable %(handler)s is not a registered handler. "
        "Decorate it with @scheduler_app.handler (or list the module %(module)s in "
        "SCHEDULER_HANDLER_MODULES), restart, then resume this task."
    ) % {"handler": handler_path, "module": module}


def _weekday_names(expression: str) -> str:
    # APScheduler numbers weekdays from Monday = 0; crontab from Sunday = 0.
    return re.sub(
        r"\d+", lambda match: _APSCHEDULER_WEEKDAYS[int(match.group()) % 7], expression
    )


def _cron_expression(trigger: CronTrigger) -> str:
    fields = {f.name: f for f in trigger.fields}
    for name in ("year", "week"):
        if not fields[name].is_default:
            raise SchedulerError(
                _(
                    "its cron trigger uses the %(field)s field, which crontab cannot express"
                )
                % {"field": name}
            )
    parts = [
        str(fields["minute"]),
        str(fields["hour"]),
        str(fields["day"]),
        str(fields["month"]),
        _weekday_names(str(fields["day_of_week"])),
    ]
    if str(fields["second"]) != "0":
        parts.insert(0, str(fields["second"]))
    return " ".join(parts)


def apscheduler_job_fields(state: dict[str, Any]) -> dict[str, Any]:
    """ScheduledTask fields for one pickled APScheduler 3 job state."""
    trigger = state["trigger"]
    fields: dict[str, Any] = {
        "handler_path": state["func"],
        "description": _("Imported from django-apscheduler job “%(id)s”.")
        % {"id": state["id"]},
        "coalesce": bool(state.get("coalesce", True)),
        "misfire_grace_seconds": int(state.get("misfire_grace_time") or 3600),
        "overlap_policy": (
            ScheduledTask.OverlapPolicy.SKIP
            if state.get("max_instances", 1) == 1
            else ScheduledTask.OverlapPolicy.ALLOW
        ),
        "max_instances": 0
        if state.get("max_instances", 1) == 1
        else state["max_instances"],
    }
    if isinstance(trigger, CronTrigger):
        fields.update(
            task_type=ScheduledTask.TaskType.CRON,
            cron_expression=_cron_expression(trigger),
        )
        fields["timezone"] = str(trigger.timezone)
        fields["jitter_seconds"] = int(trigger.jitter or 0)
    elif isinstance(trigger, IntervalTrigger):
        fields.update(
            task_type=ScheduledTask.TaskType.INTERVAL,
            interval_seconds=int(trigger.interval_length),
        )
        fields["jitter_seconds"] = int(trigger.jitter or 0)
    elif isinstance(trigger, DateTrigger):
        fields.update(task_type=ScheduledTask.TaskType.DATE, run_date=trigger.run_date)
    else:
        raise SchedulerError(
            _("its trigger %(trigger)s has no equivalent here")
            % {"trigger": type(trigger).__name__}
        )
    if state.get("args"):
        # Positional arguments have no parameter names to show in the admin.
        raise SchedulerError(
            _("it passes positional arguments; give them names and import again")
        )
    fields["handler_kwargs"] = {
        key: to_expression(key, value)
        for key, value in (state.get("kwargs") or {}).items()
    }
    return fields


def tasks_import_from_apscheduler(
    *, paused: bool = True, origin: Origin = IMPORT, now: dt.datetime | None = None
) -> ImportReport:
    """Create a task for every job in django-apscheduler's table (skipping names taken).

    Tasks are created paused by default, so both schedulers never fire the same job:
    stop the old one, then resume the imported tasks. A job whose callable is not an
    allowed handler (registry) is created paused whatever `paused` says, its
    description saying what to register; until then its runs are refused. Job states
    are pickles: they are unpickled allowing only what a job state holds (triggers,
    datetimes, time zones), so a hostile row cannot run code. Each task created
    is audited as `origin`'s (the import).
    """
    report = ImportReport()
    if not jobs_table_exists():
        raise SchedulerError(
            _(
                "No %(table)s table in this database: nothing to import from django-apscheduler."
            )
            % {"table": DJANGO_APSCHEDULER_TABLE}
        )
    for job_id, blob in job_states():
        name = "apscheduler:%s" % job_id
        if ScheduledTask.objects.filter(name=name).exists():
            report.existing.append(name)
            continue
        try:
            state = job_state_loads(bytes(blob))
            fields = apscheduler_job_fields(state)
            if paused:
                fields["status"] = ScheduledTask.Status.PAUSED
            allowed = refusal(fields["handler_path"]) is None
            if not allowed:
                fields["status"] = ScheduledTask.Status.PAUSED
                fields["description"] += " " + _not_allowed_note(fields["handler_path"])
            task_create(
                task=ScheduledTask(name=name, **fields),
                origin=origin,
                now=now,
                handler_must_be_allowed=False,
            )
        except TaskInvalid as exc:
            report.failed.append(
                (job_id, "; ".join(error.message for error in exc.errors))
            )
        except (
            SchedulerError,
            pickle.UnpicklingError,
            AttributeError,
            ImportError,
            KeyError,
        ) as exc:
            report.failed.append((job_id, str(exc)))
        else:
            report.created.append(name)
            if not allowed:
                report.not_allowed.append(name)
    return report
