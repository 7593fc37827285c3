"""Handler parameters: evaluate expressions with safe_eval and check them against the signature."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import ParameterError
from ..expressions import UnsafeExpressionError, safe_eval
from ..handlers.params import ParamSpec, check_kwargs, coerce_value
from ..handlers.registry import HandlerInfo, get_handler
from ..storable import is_unstorable, storable_text

MSG_UNSTORABLE_PARAMETER = gettext_lazy(
    "Parameter “%(name)s”: remove the NUL character (\\u0000) or unpaired "
    "surrogate (\\ud800-\\udfff); it cannot be stored."
)
MSG_UNSTORABLE_NAME = gettext_lazy(
    "Parameter names: remove the NUL character (\\u0000) or unpaired surrogate "
    "(\\ud800-\\udfff) from “%(name)s”; it cannot be stored."
)


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
        raise ParameterError(
            _("Parameters must be an object mapping parameter names to expressions."),
            field="handler_kwargs",
        )
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
        return [
            ParameterError(
                _(
                    "Parameters must be an object mapping parameter names to expressions."
                ),
                field="handler_kwargs",
            )
        ]
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
