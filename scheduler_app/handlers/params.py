"""Handler parameter specs read from signatures, and checks of evaluated values."""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import math
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Union

from django.utils.translation import gettext_lazy as _

from ..exceptions import ParameterError
from .results import json_safe

logger = logging.getLogger(__name__)

ANY = "any"
TYPE_NAMES: dict[Any, str] = {
    int: "int",
    str: "str",
    float: "float",
    bool: "bool",
    list: "list",
    dict: "dict",
    dt.datetime: "datetime",
    dt.date: "date",
    dt.time: "time",
    dt.timedelta: "timedelta",
}
KIND_POSITIONAL_OR_KEYWORD = "positional_or_keyword"
KIND_KEYWORD_ONLY = "keyword_only"
# Longest value shown inside an error message, so a huge list cannot flood a form.
MAX_SHOWN_VALUE_LENGTH = 80

MSG_NOT_NONE = _("Parameter “%(name)s” may not be None.")
MSG_EXPECTED = {
    "int": _("Parameter “%(name)s”: expected an integer, got %(value)s (%(type)s)."),
    "float": _("Parameter “%(name)s”: expected a number, got %(value)s (%(type)s)."),
    "str": _("Parameter “%(name)s”: expected a string, got %(value)s (%(type)s)."),
    "bool": _(
        "Parameter “%(name)s”: expected True or False, got %(value)s (%(type)s)."
    ),
    "list": _("Parameter “%(name)s”: expected a list, got %(value)s (%(type)s)."),
    "dict": _("Parameter “%(name)s”: expected a dict, got %(value)s (%(type)s)."),
    "datetime": _(
        "Parameter “%(name)s”: expected a datetime, a date or an ISO 8601 string "
        "such as '2024-01-01T08:00', got %(value)s (%(type)s)."
    ),
    "date": _(
        "Parameter “%(name)s”: expected a date or an ISO 8601 date string such as "
        "'2024-01-01', got %(value)s (%(type)s)."
    ),
    "time": _(
        "Parameter “%(name)s”: expected a time or a string such as '08:30' or "
        "'08:30:00', got %(value)s (%(type)s)."
    ),
    "timedelta": _(
        "Parameter “%(name)s”: expected a timedelta or a number of seconds, "
        "got %(value)s (%(type)s)."
    ),
}
MSG_DATE_HAS_TIME = _(
    "Parameter “%(name)s”: expected a date, got a datetime with a time of day "
    "(%(value)s); use .date() on it, or a datetime at exactly midnight."
)
MSG_UNKNOWN = _(
    "Parameter “%(name)s” is not accepted by this handler. Known parameters: %(known)s."
)
MSG_MISSING = _(
    "Parameter “%(name)s” is required and has no default. Known parameters: %(known)s."
)
MSG_NO_PARAMETERS = _("(none)")


@dataclass(frozen=True)
class ParamSpec:
    """One handler parameter as the admin, the API and the run-time checks see it."""

    name: str
    type_name: str
    optional: bool
    required: bool
    default: Any
    default_expression: str
    label: str
    help_text: str
    kind: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-safe description (for the API and the admin)."""
        return {
            "name": self.name,
            "type_name": self.type_name,
            "optional": self.optional,
            "required": self.required,
            "default": json_safe(self.default),
            "default_expression": self.default_expression,
            "label": self.label,
            "help_text": self.help_text,
            "kind": self.kind,
        }


class _Annotations:
    """A stand-in object so `typing.get_type_hints` can resolve one annotation alone."""

    def __init__(self, annotations: dict[str, Any]) -> None:
        self.__annotations__ = annotations


def specs_from_callable(
    func: Callable[..., Any], *, param_info: dict[str, dict[str, str]] | None = None
) -> tuple[list[ParamSpec], bool]:
    """Return the parameter specs of `func` and whether it accepts **kwargs.

    `self`/`cls` (first parameter) and `*args` are skipped. Raises ValueError (or
    TypeError, from inspect.signature) when the signature cannot be read or has a
    required positional-only parameter: such a handler cannot take keywords.
    """
    signature = inspect.signature(func)
    hints = _resolved_hints(func, signature)
    param_info = param_info or {}
    specs: list[ParamSpec] = []
    accepts_var_kwargs = False
    for index, parameter in enumerate(signature.parameters.values()):
        if index == 0 and parameter.name in ("self", "cls"):
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            accepts_var_kwargs = True
            continue
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            if parameter.default is inspect.Parameter.empty:
                raise ValueError(
                    "parameter %r is positional-only and required; handlers are "
                    "called with keyword arguments" % parameter.name
                )
            # It keeps its default: there is no way to pass it by name.
            continue
        specs.append(_spec_for(parameter, hints, param_info.get(parameter.name)))
    return specs, accepts_var_kwargs


def _resolved_hints(
    func: Callable[..., Any], signature: inspect.Signature
) -> dict[str, Any]:
    """Resolve string annotations; one that fails becomes empty (shown as "any")."""
    try:
        return typing.get_type_hints(func)
    # A name that does not resolve, or an object typing cannot read (a partial).
    except Exception as exc:  # noqa: BLE001
        logger.debug("Annotations of %r not resolved together: %s", func, exc)
    # Resolve each annotation on its own so one bad name does not lose the others.
    globalns = getattr(inspect.unwrap(func), "__globals__", {})
    hints: dict[str, Any] = {}
    for parameter in signature.parameters.values():
        if parameter.annotation is inspect.Parameter.empty:
            continue
        holder = _Annotations({parameter.name: parameter.annotation})
        try:
            hints.update(typing.get_type_hints(holder, globalns=globalns))
        except Exception as exc:  # noqa: BLE001 - an unresolvable annotation is "any"
            logger.debug(
                "Annotation of %r on %r not resolved: %s", parameter.name, func, exc
            )
    return hints


def _spec_for(
    parameter: inspect.Parameter, hints: dict[str, Any], info: Any
) -> ParamSpec:
    type_name, optional = describe_annotation(
        hints.get(parameter.name, inspect.Parameter.empty)
    )
    required = parameter.default is inspect.Parameter.empty
    default = None if required else parameter.default
    if not required and default is None:
        optional = True
    label, help_text = parameter.name, ""
    if isinstance(info, dict):
        label = str(info.get("label") or parameter.name)
        help_text = str(info.get("help") or "")
    elif isinstance(info, str) and info:
        label = info
    return ParamSpec(
        name=parameter.name,
        type_name=type_name,
        optional=optional,
        required=required,
        default=default,
        default_expression="" if required else default_expression(default),
        label=label,
        help_text=help_text,
        kind=(
            KIND_KEYWORD_ONLY
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
            else KIND_POSITIONAL_OR_KEYWORD
        ),
    )


def describe_annotation(annotation: Any) -> tuple[str, bool]:
    """Return (type name, whether None is allowed) for a resolved annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return ANY, False
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return describe_annotation(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        args = typing.get_args(annotation)
        others = [arg for arg in args if arg is not type(None)]
        optional = len(others) < len(args)
        if len(others) == 1:
            type_name, _inner_optional = describe_annotation(others[0])
            return type_name, optional
        return ANY, optional
    if origin is not None:
        annotation = origin
    try:
        return TYPE_NAMES.get(annotation, ANY), False
    except TypeError:  # an unhashable annotation object
        return ANY, False


def default_expression(value: Any) -> str:
    """Write a default as an expression safe_eval understands, or "" if it cannot."""
    try:
        return _expression(value)
    except ValueError:
        return ""


def _expression(value: Any) -> str:
    # Exact types only: the repr of a subclass (an Enum member, say) is no literal.
    if value is None or type(value) in (bool, int, str):
        return repr(value)
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError("no literal for inf/nan")
        return repr(value)
    if type(value) in (dt.datetime, dt.time):
        if value.tzinfo is not None:
            raise ValueError("no expression for an aware value")
        return repr(value).removeprefix("datetime.")
    if type(value) in (dt.date, dt.timedelta):
        return repr(value).removeprefix("datetime.")
    if type(value) is list:
        return "[%s]" % ", ".join(_expression(item) for item in value)
    if type(value) is tuple:
        items = [_expression(item) for item in value]
        return "(%s,)" % items[0] if len(items) == 1 else "(%s)" % ", ".join(items)
    if type(value) is dict:
        return "{%s}" % ", ".join(
            "%s: %s" % (_expression(key), _expression(item))
            for key, item in value.items()
        )
    raise ValueError("no expression for %s" % type(value).__name__)


def coerce_value(spec: ParamSpec, value: Any) -> Any:
    """Check an evaluated value against the spec's type; return it, maybe converted.

    Raises ParameterError (field = the parameter name) when the value does not fit.
    """
    if spec.type_name == ANY:
        return value
    if value is None:
        if spec.optional:
            return None
        raise ParameterError(MSG_NOT_NONE % {"name": spec.name}, field=spec.name)
    converter = _CONVERTERS.get(spec.type_name)
    if converter is None:
        return value
    try:
        return converter(value)
    except _DateHasTime:
        raise ParameterError(
            MSG_DATE_HAS_TIME % {"name": spec.name, "value": value.isoformat()},
            field=spec.name,
        ) from None
    except (TypeError, ValueError, OverflowError):
        raise ParameterError(
            MSG_EXPECTED[spec.type_name]
            % {
                "name": spec.name,
                "value": _shown(value),
                "type": type(value).__name__,
            },
            field=spec.name,
        ) from None


def check_kwargs(
    specs: list[ParamSpec], names: Iterable[str], *, accepts_var_kwargs: bool
) -> None:
    """Refuse an unknown parameter (unless **kwargs) or a missing required one."""
    given = list(names)
    known = [spec.name for spec in specs]

    def known_text() -> str:  # translated only when there is an error to report
        return ", ".join(known) if known else str(MSG_NO_PARAMETERS)

    if not accepts_var_kwargs:
        for name in given:
            if name not in known:
                raise ParameterError(
                    MSG_UNKNOWN % {"name": name, "known": known_text()}, field=name
                )
    for spec in specs:
        if spec.required and spec.name not in given:
            raise ParameterError(
                MSG_MISSING % {"name": spec.name, "known": known_text()},
                field=spec.name,
            )


class _DateHasTime(Exception):
    """A datetime with a time of day was given where a date is expected."""


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > MAX_SHOWN_VALUE_LENGTH:
        text = text[: MAX_SHOWN_VALUE_LENGTH - 1] + "…"
    return text


def _to_int(value: Any) -> int:
    # bool is an int subclass, but True for "days" is a mistake, not 1.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError


def _to_float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise TypeError


def _to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise TypeError


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError


def _to_list(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    raise TypeError


def _to_dict(value: Any) -> dict[Any, Any]:
    if isinstance(value, dict):
        return value
    raise TypeError


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time.min)
    if isinstance(value, str):
        return dt.datetime.fromisoformat(value)
    raise TypeError


def _to_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        if value.time() != dt.time.min:
            raise _DateHasTime
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    raise TypeError


def _to_time(value: Any) -> dt.time:
    if isinstance(value, dt.time):
        return value
    if isinstance(value, str):
        return dt.time.fromisoformat(value)
    raise TypeError


def _to_timedelta(value: Any) -> dt.timedelta:
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    raise TypeError


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": _to_int,
    "float": _to_float,
    "str": _to_str,
    "bool": _to_bool,
    "list": _to_list,
    "dict": _to_dict,
    "datetime": _to_datetime,
    "date": _to_date,
    "time": _to_time,
    "timedelta": _to_timedelta,
}
