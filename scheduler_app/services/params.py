"""Handler parameters: evaluate expressions with safe_eval and check them against the signature.

Also how a Python value is stored as a parameter (to_expression, Expr), which the
Python API and the importer both use, and what `now` means in a task's
parameters (task_local_now).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import ParameterError
from ..expressions import UnsafeExpressionError, safe_eval
from ..handlers.params import ParamSpec, check_kwargs, coerce_value
from ..handlers.registry import HandlerInfo, get_handler
from ..models import ScheduledTask
from ..schedules import resolve_timezone
from ..storable import is_unstorable, storable_text

#: Parameters are a JSON object; the admin form and the API parse it as one and
#: answer anything else with this message.
MSG_PARAMETERS_NOT_OBJECT = gettext_lazy(
    "Parameters must be an object mapping parameter names to expressions."
)
MSG_UNSTORABLE_PARAMETER = gettext_lazy(
    "Parameter “%(name)s”: remove the NUL character (\\u0000) or unpaired "
    "surrogate (\\ud800-\\udfff); it cannot be stored."
)
MSG_UNSTORABLE_NAME = gettext_lazy(
    "Parameter names: remove the NUL character (\\u0000) or unpaired surrogate "
    "(\\ud800-\\udfff) from “%(name)s”; it cannot be stored."
)


def task_local_now(
    task: ScheduledTask, *, now: dt.datetime | None = None
) -> dt.datetime:
    """Naive wall-clock time in the task's zone: what `datetime.now()` means in its parameters."""
    now = now or timezone.now()
    return now.astimezone(resolve_timezone(task.timezone)).replace(tzinfo=None)


def parameter_evaluate(
    spec: ParamSpec | None, name: str, raw: Any, *, now: dt.datetime
) -> Any:
    """One parameter's value: strings are expressions, other JSON values are literal."""
    if isinstance(raw, str):
        try:
            value = safe_eval(raw, now=now)
        except UnsafeExpressionError as exc:
            raise ParameterError(
                _("Parameter “%(name)s”: %(error)s") % {"name": name, "error": exc},
                field=name,
            ) from exc
    else:
        value = raw
    return value if spec is None else coerce_value(spec, value)


def parameters_evaluate(
    handler: HandlerInfo, raw_kwargs: Mapping[str, Any], *, now: dt.datetime
) -> dict[str, Any]:
    """Evaluate every given parameter and check names and types against the handler.

    `now` is naive wall-clock time in the task's zone: what `datetime.now()` and
    `date.today()` mean inside the expressions.
    """
    if not isinstance(raw_kwargs, Mapping):
        raise ParameterError(str(MSG_PARAMETERS_NOT_OBJECT), field="handler_kwargs")
    check_kwargs(
        list(handler.params),
        raw_kwargs.keys(),
        accepts_var_kwargs=handler.accepts_var_kwargs,
    )
    specs = {spec.name: spec for spec in handler.params}
    return {
        name: parameter_evaluate(specs.get(name), name, raw, now=now)
        for name, raw in raw_kwargs.items()
    }


def parameters_validate(
    handler_path: str, raw_kwargs: Mapping[str, Any], *, now: dt.datetime
) -> list[ParameterError]:
    """Every problem with these parameters for this handler (empty list when valid).

    Used when a task is saved (admin form, API, Python API) and a run is requested
    with overrides, so each error can be shown on its own parameter; at run time
    `parameters_evaluate` checks again. Text no database can store (NUL, unpaired
    surrogates) is refused here, before anything is written.
    """
    handler = get_handler(handler_path)
    if not isinstance(raw_kwargs, Mapping):
        return [ParameterError(str(MSG_PARAMETERS_NOT_OBJECT), field="handler_kwargs")]
    errors: list[ParameterError] = []
    unstorable_names = [name for name in raw_kwargs if is_unstorable(name)]
    if unstorable_names:
        # Nothing else is checked: the names would be shown in the messages.
        return [
            ParameterError(
                MSG_UNSTORABLE_NAME % {"name": storable_text(str(name))},
                field="handler_kwargs",
            )
            for name in unstorable_names
        ]
    specs = {spec.name: spec for spec in handler.params}
    try:
        check_kwargs(
            list(handler.params),
            raw_kwargs.keys(),
            accepts_var_kwargs=handler.accepts_var_kwargs,
        )
    except ParameterError as exc:
        errors.append(exc)
    for name, raw in raw_kwargs.items():
        if name not in specs and not handler.accepts_var_kwargs:
            continue  # already reported as unknown
        if is_unstorable(raw):
            errors.append(
                ParameterError(MSG_UNSTORABLE_PARAMETER % {"name": name}, field=name)
            )
            continue
        try:
            parameter_evaluate(specs.get(name), name, raw, now=now)
        except ParameterError as exc:
            errors.append(exc)
    return errors


class Expr(str):
    """A parameter value that is an expression, evaluated at each run."""


def to_expression(name: str, value: Any, *, tz: dt.tzinfo | None = None) -> Any:
    """A Python value as stored in handler_kwargs: a literal JSON value or an expression.

    An aware datetime becomes wall-clock time in `tz` (the task's zone; default: the
    project's), which is how handlers and expressions read naive datetimes.
    """
    if isinstance(value, Expr):
        return str(value)
    if isinstance(value, str):
        return repr(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dt.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value, tz).replace(tzinfo=None)
        return "datetime(%d, %d, %d, %d, %d, %d, %d)" % (
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
    if isinstance(value, dt.date):
        return "date(%d, %d, %d)" % (value.year, value.month, value.day)
    if isinstance(value, dt.time):
        return "time(%d, %d, %d, %d)" % (
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
        )
    if isinstance(value, dt.timedelta):
        return "timedelta(seconds=%r)" % value.total_seconds()
    if isinstance(value, (list, tuple, dict)):
        try:
            return json.loads(
                json.dumps(list(value) if isinstance(value, tuple) else value)
            )
        except (TypeError, ValueError):
            pass
    raise ParameterError(
        _(
            "Parameter “%(name)s”: a %(type)s cannot be stored; use str, int, float, bool, "
            "None, list, dict, datetime, date, time or timedelta."
        )
        % {"name": name, "type": type(value).__name__},
        field=name,
    )
