"""Handler results: the TaskResult helpers and return values made storable."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from ..choices import ExecutionStatus

#: The statuses a handler may report: the ends of a run it decides. Plain str
#: values (not the members): they are stored as they are, and the recording's fast
#: path takes exactly str.
SUCCESS = ExecutionStatus.SUCCESS.value
FAILED = ExecutionStatus.FAILED.value
SKIPPED = ExecutionStatus.SKIPPED.value
STATUSES = (SUCCESS, FAILED, SKIPPED)

# A repr longer than this is cut: one odd object must not bloat the result column.
MAX_REPR_LENGTH = 1000
CYCLE_MARKER = "<cycle>"
DEPTH_MARKER = "<too deep>"

MSG_FAILED_WITHOUT_ERROR = _(
    "The handler returned TaskResult.failed() without an error."
)


@dataclass
class TaskResult:
    """What a handler may return to say how the run went (seed 001)."""

    status: str
    message: str = ""
    error: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                "TaskResult status must be one of %s, not %r"
                % (", ".join(STATUSES), self.status)
            )

    @classmethod
    def success(cls, message: str = "", **data: Any) -> TaskResult:
        return cls(status=SUCCESS, message=message, data=data)

    @classmethod
    def failed(cls, error: str = "", message: str = "", **data: Any) -> TaskResult:
        return cls(status=FAILED, message=message, error=error, data=data)

    @classmethod
    def skipped(cls, message: str = "", **data: Any) -> TaskResult:
        return cls(status=SKIPPED, message=message, data=data)


@dataclass(frozen=True)
class Outcome:
    """How a run ended, as the execution record stores it."""

    status: str
    result: Any
    error_message: str


def outcome_from_return(value: Any) -> Outcome:
    """Turn a handler's return value into an Outcome.

    A TaskResult gives its status and {"message": ..., **data} (plus "error" when
    failed); anything else (a dict, None, ...) is a success storing json_safe(value).
    """
    if not isinstance(value, TaskResult):
        return Outcome(status=SUCCESS, result=json_safe(value), error_message="")
    result: dict[str, Any] = {"message": value.message}
    error_message = ""
    if value.status == FAILED:
        result["error"] = value.error
        # str(): a handler may pass an exception as the error.
        error_message = str(value.error or value.message or MSG_FAILED_WITHOUT_ERROR)
    result.update(value.data)
    return Outcome(
        status=value.status, result=json_safe(result), error_message=error_message
    )


def json_safe(value: Any, *, max_depth: int = 20) -> Any:
    """Return a copy of `value` that a JSONField can store; never raises.

    Dates and times become ISO strings, timedeltas seconds, containers lists and
    dicts with string keys, dataclasses dicts, other objects their repr. Cycles and
    nesting deeper than `max_depth` are replaced by a marker string.
    """
    try:
        return _safe(value, max_depth, set())
    except Exception:  # noqa: BLE001 - last resort; a result must always be storable
        return _repr(value)


def _safe(value: Any, depth: int, seen: set[int]) -> Any:
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is dict and not value:  # what most handlers return, on the hot path
        return {}
    if type(value) is float:
        # NaN and infinities are not JSON (PostgreSQL's jsonb refuses them).
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, enum.Enum):
        return _safe(value.value, depth, seen)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _safe(float(value), depth, seen)
    if isinstance(value, (str, Promise)):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (Decimal, uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _repr(bytes(value))
    is_dataclass = dataclasses.is_dataclass(value) and not isinstance(value, type)
    if not (is_dataclass or isinstance(value, (Mapping, list, tuple, set, frozenset))):
        return _repr(value)
    if id(value) in seen:
        return CYCLE_MARKER
    if depth <= 0:
        return DEPTH_MARKER
    seen.add(id(value))
    try:
        if is_dataclass:
            return {
                f.name: _safe(getattr(value, f.name), depth - 1, seen)
                for f in dataclasses.fields(value)
            }
        if isinstance(value, Mapping):
            return {
                _key(key, depth, seen): _safe(item, depth - 1, seen)
                for key, item in value.items()
            }
        items = list(value)
        if isinstance(value, (set, frozenset)):
            items = _sorted_if_possible(items)
        return [_safe(item, depth - 1, seen) for item in items]
    finally:
        seen.discard(id(value))


def _key(key: Any, depth: int, seen: set[int]) -> str:
    if type(key) is str:
        return key
    converted = _safe(key, depth - 1, seen)
    return converted if isinstance(converted, str) else str(converted)


def _sorted_if_possible(items: list[Any]) -> list[Any]:
    # Sets have no order; sorting keeps stored results stable between runs.
    try:
        return sorted(items)
    except TypeError:
        return items


def _repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not lose the result
        return "<unrepresentable %s object>" % type(value).__name__
    if len(text) > MAX_REPR_LENGTH:
        text = text[: MAX_REPR_LENGTH - 1] + "…"
    return text
