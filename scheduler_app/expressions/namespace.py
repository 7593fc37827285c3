"""The names and attributes an expression may use, and the safe stand-ins behind them.

Names resolve to the datetime classes, a json stand-in with loads() and dumps()
only, and a few builtins (round() and sum() wrapped to stay bounded). Attributes
are the datetime ones listed here and json's two; nothing else is reachable.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from .errors import UnsafeExpressionError
from .limits import (
    DATETIME_TYPES,
    MAX_NESTING_DEPTH,
    MAX_POWER_EXPONENT,
    json_depth_ok,
)


class JsonNamespace:
    """Stands in for the json module: only loads() and dumps() are reachable."""

    def __repr__(self) -> str:
        return "json"


JSON = JsonNamespace()

DATETIME_ATTRIBUTES = frozenset(
    {
        "now",
        "today",
        "combine",
        "fromisoformat",
        "strptime",
        "min",
        "max",
        "date",
        "time",
        "replace",
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "microsecond",
        "weekday",
        "isoweekday",
        "isoformat",
        "strftime",
        "timestamp",
        "total_seconds",
        "days",
        "seconds",
        "microseconds",
    }
)
JSON_ATTRIBUTES = frozenset({"loads", "dumps"})
ALLOWED_ATTRIBUTES: frozenset[str] = DATETIME_ATTRIBUTES | JSON_ATTRIBUTES

# `datetime.datetime.now()` is how the seed's examples were written (module
# style); those four module attributes are rewritten to the bare names.
MODULE_STYLE_NAMES = frozenset({"datetime", "date", "time", "timedelta"})


def json_loads(text: object, **options: object) -> Any:
    """json.loads() limited to a str argument of bounded nesting."""
    if options:
        # object_hook, parse_int, cls... would take callables or run code.
        raise UnsafeExpressionError("json.loads() accepts no keyword arguments")
    if not isinstance(text, str):
        raise UnsafeExpressionError(
            f"json.loads() expects a string, got {type(text).__name__}"
        )
    # The C decoder recurses per level; refuse deep input before it runs.
    if not json_depth_ok(text):
        raise UnsafeExpressionError(
            f"JSON too deeply nested (at most {MAX_NESTING_DEPTH} levels)"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsafeExpressionError(f"Invalid JSON: {exc}") from exc


def json_dumps(value: object, **options: object) -> str:
    """json.dumps() without indent/default/cls, which could blow up or run code."""
    if set(options) - {"sort_keys"}:
        raise UnsafeExpressionError(
            "json.dumps() accepts only the keyword argument sort_keys"
        )
    return json.dumps(value, sort_keys=bool(options.get("sort_keys", False)))


def _round(number: Any, ndigits: int | None = None) -> Any:
    """round() with bounded ndigits: int.__round__ computes 10 ** -ndigits."""
    if ndigits is None:
        return round(number)
    if type(ndigits) is not int or abs(ndigits) > MAX_POWER_EXPONENT:
        raise UnsafeExpressionError(
            f"round() ndigits must be an integer between -{MAX_POWER_EXPONENT} "
            f"and {MAX_POWER_EXPONENT}"
        )
    return round(number, ndigits)


def _sum(items: Any, start: Any = 0) -> Any:
    """sum() of numbers or timedeltas only: summing lists or strings is quadratic."""
    values = list(items)
    for value in [start, *values]:
        if not isinstance(value, (int, float, datetime.timedelta)):
            raise UnsafeExpressionError(
                f"sum() only adds numbers or timedeltas, not {type(value).__name__}"
            )
    return sum(values, start)


BUILTINS: dict[str, Any] = {
    "abs": abs,
    "bool": bool,
    "dict": dict,
    "float": float,
    "int": int,
    "len": len,
    "list": list,
    "max": max,
    "min": min,
    "round": _round,
    "sorted": sorted,
    "str": str,
    "sum": _sum,
}
NAMESPACE: dict[str, Any] = {
    "datetime": datetime.datetime,
    "date": datetime.date,
    "time": datetime.time,
    "timedelta": datetime.timedelta,
    "json": JSON,
    **BUILTINS,
}
ALLOWED_NAMES: frozenset[str] = frozenset(NAMESPACE) | {"True", "False", "None"}
NAMES_HINT = ", ".join(sorted(NAMESPACE))


def allowed_help() -> str:
    """One line describing what expressions may use, for admin help text."""
    return (
        "Python literals (numbers, strings, lists, tuples, sets, dicts, True, False, "
        "None), arithmetic, comparisons, and/or/not, x if c else y, indexing; "
        "datetime, date, time, timedelta (e.g. date.today() - timedelta(days=30)), "
        f"json.loads, json.dumps and {', '.join(sorted(BUILTINS))}."
    )


def is_datetime_family(obj: object) -> bool:
    """Whether obj is one of the datetime classes or an instance of one."""
    # Identity, not ==: data values must never be compared against classes.
    return any(obj is kind or type(obj) is kind for kind in DATETIME_TYPES)


def is_date_family(obj: object) -> bool:
    """Whether obj is date/datetime (class or instance): the ones with a clock."""
    return any(
        obj is kind or type(obj) is kind for kind in (datetime.date, datetime.datetime)
    )
