"""The API's one exception handler: every error is {detail, code, field, errors}."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from ..exceptions import ParameterError, SchedulerError
from ..services import TaskInvalid

#: The top-level `code` of every 400 that lists field errors.
VALIDATION_CODE = "invalid"
#: Where task parameters live in a task's body; a run's overrides use "kwargs".
PARAMETERS_FIELD = "handler_kwargs"


class SchedulerAPIError(exceptions.APIException):
    """A SchedulerError raised by a service, carried to the response unchanged."""

    def __init__(self, error: SchedulerError):
        super().__init__(detail=error.message, code=error.code)
        self.status_code = error.http_status
        self.field = error.field


def error_field(
    error: SchedulerError, *, parameters_field: str = PARAMETERS_FIELD
) -> str:
    """The request field an error is about; a parameter's is "<parameters>.<name>"."""
    if isinstance(error, ParameterError):
        # A ParameterError's field is the parameter's name, or the whole mapping.
        if not error.field or error.field == PARAMETERS_FIELD:
            return parameters_field
        return "%s.%s" % (parameters_field, error.field)
    return error.field or api_settings.NON_FIELD_ERRORS_KEY


def errors_by_field(
    errors: Iterable[SchedulerError], *, parameters_field: str = PARAMETERS_FIELD
) -> dict[str, list[str]]:
    """Group service errors by request field, as a DRF ValidationError's detail."""
    grouped: dict[str, list[str]] = {}
    for error in errors:
        field = error_field(error, parameters_field=parameters_field)
        grouped.setdefault(field, []).append(error.message)
    return grouped


def flatten_errors(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error detail into {"dotted.field": [messages]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(data, dict):
        for key, value in data.items():
            path = "%s.%s" % (prefix, key) if prefix else str(key)
            for field, messages in flatten_errors(value, path).items():
                flat.setdefault(field, []).extend(messages)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            if isinstance(item, dict | list):
                # A list serializer's per-item errors: the index joins the path.
                path = "%s.%d" % (prefix, index) if prefix else str(index)
                for field, messages in flatten_errors(item, path).items():
                    flat.setdefault(field, []).extend(messages)
            else:
                flat.setdefault(prefix or api_settings.NON_FIELD_ERRORS_KEY, []).append(
                    str(item)
                )
    else:
        flat.setdefault(prefix or api_settings.NON_FIELD_ERRORS_KEY, []).append(
            str(data)
        )
    return flat


def error_body(
    *, detail: str, code: str, errors: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The JSON of every error response; `field` is the first field at fault, if any."""
    errors = errors or {}
    field = next(
        (name for name in errors if name != api_settings.NON_FIELD_ERRORS_KEY), None
    )
    return {"detail": detail, "code": code, "field": field, "errors": errors}


def _validation_detail(errors: dict[str, list[str]]) -> str:
    count = sum(len(messages) for messages in errors.values())
    if not count:
        return _("Invalid input.")
    field, messages = next(iter(errors.items()))
    first = messages[0]
    if field != api_settings.NON_FIELD_ERRORS_KEY:
        first = _("%(field)s: %(message)s") % {"field": field, "message": first}
    if count == 1:
        return first
    return ngettext(
        "%(first)s (and %(count)d more problem, listed in “errors”)",
        "%(first)s (and %(count)d more problems, listed in “errors”)",
        count - 1,
    ) % {"first": first, "count": count - 1}


def _to_api_exception(exc: Exception) -> Exception:
    """Turn service and Django errors into the DRF exception with the right status."""
    if isinstance(exc, TaskInvalid):
        return exceptions.ValidationError(errors_by_field(exc.errors))
    if isinstance(exc, SchedulerError):
        if exc.http_status == status.HTTP_400_BAD_REQUEST and exc.field:
            return exceptions.ValidationError(errors_by_field([exc]))
        return SchedulerAPIError(exc)
    if isinstance(exc, DjangoValidationError):
        return exceptions.ValidationError(as_serializer_error(exc))
    # Converted here rather than left to DRF's handler, so the body is built from
    # the exception that is answered (e.g. ?format=unknown raises Http404).
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    return exc


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: JSON {detail, code, field, errors} for every error.

    Unexpected exceptions are left alone (None), so they reach Django's 500
    handling and its logging.
    """
    exc = _to_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        response.data = error_body(
            detail=_validation_detail(errors), code=VALIDATION_CODE, errors=errors
        )
        return response
    if not isinstance(exc, exceptions.APIException):
        return response
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
    field = getattr(exc, "field", None)
    errors = {field: [str(detail)]} if field else {}
    response.data = error_body(detail=str(detail), code=str(code), errors=errors)
    return response
