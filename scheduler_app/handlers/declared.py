"""A declared schedule (TASK_INFO["schedule"], BaseTask.schedule) as ScheduledTask fields.

A handler may say how it should be scheduled; the registry turns that into the
field values of a task made from it, and reports a malformed one as the reason the
handler is broken.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from ..choices import OverlapPolicy, TaskType
from .base import TaskSchedule
from .info import Broken

SCHEDULE_KINDS = ("cron", "interval_seconds", "run_date")
SCHEDULE_OPTIONS = ("timeout_seconds", "allow_concurrent", "overlap_policy")

# Kept in English like the other reasons a handler is broken (see scripts.py).
ERROR_SCHEDULE = (
    "the declared schedule must be a dict with exactly one of %s (plus optionally "
    "%s), or a TaskSchedule; got %s"
)
ERROR_SCHEDULE_VALUE = "the declared schedule has an invalid %s: %r"


def declared_schedule_fields(raw: Any) -> dict[str, Any] | None:
    """Turn a declared schedule into ScheduledTask field values, or refuse it."""
    if raw is None:
        return None
    if isinstance(raw, TaskSchedule):
        return raw.as_task_fields()
    shape_error = Broken(
        ERROR_SCHEDULE
        % (", ".join(SCHEDULE_KINDS), ", ".join(SCHEDULE_OPTIONS), _short(raw))
    )
    if not isinstance(raw, Mapping):
        raise shape_error
    kinds = [key for key in SCHEDULE_KINDS if key in raw]
    # Unknown keys are refused so that a typo ("interval") is not silently lost.
    if len(kinds) != 1 or any(
        key not in SCHEDULE_KINDS + SCHEDULE_OPTIONS for key in raw
    ):
        raise shape_error
    kind = kinds[0]
    value = raw[kind]
    fields: dict[str, Any]
    if kind == "cron":
        if not isinstance(value, str) or not value.strip():
            raise Broken(ERROR_SCHEDULE_VALUE % ("cron expression", value))
        fields = {"task_type": TaskType.CRON, "cron_expression": value.strip()}
    elif kind == "interval_seconds":
        if not _is_int(value) or value <= 0:
            raise Broken(ERROR_SCHEDULE_VALUE % ("interval_seconds", value))
        fields = {"task_type": TaskType.INTERVAL, "interval_seconds": value}
    else:
        fields = {"task_type": TaskType.DATE, "run_date": _run_date(value)}
    if "timeout_seconds" in raw:
        timeout = raw["timeout_seconds"]
        if not _is_int(timeout) or timeout < 0:
            raise Broken(ERROR_SCHEDULE_VALUE % ("timeout_seconds", timeout))
        fields["timeout_seconds"] = timeout
    if "allow_concurrent" in raw:
        fields["overlap_policy"] = (
            OverlapPolicy.ALLOW if raw["allow_concurrent"] else OverlapPolicy.SKIP
        )
    if "overlap_policy" in raw:
        if raw["overlap_policy"] not in OverlapPolicy.values:
            raise Broken(
                ERROR_SCHEDULE_VALUE % ("overlap_policy", raw["overlap_policy"])
            )
        fields["overlap_policy"] = raw["overlap_policy"]
    return fields


def _run_date(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value)
        except ValueError:
            pass  # Reported below with the other invalid values.
    raise Broken(ERROR_SCHEDULE_VALUE % ("run_date", value))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:199] + "…"
