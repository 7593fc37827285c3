"""Pagination: page numbers for tasks (50 a page, up to 500), a cursor for executions
and the audit trail.

The history has millions of rows: its lists never count them (a COUNT(*) costs
more than the page) and never skip rows with an OFFSET; they answer `next` and
`previous` links that hold a cursor instead.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import pagination
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

MSG_PAGE_SIZE = _("Enter a whole number of at least 1 (at most 500 are returned).")
MSG_NO_PAGE_NUMBERS = _(
    "Executions are not numbered in pages: follow the `next` link of the previous "
    "answer (it holds a `cursor`) instead of asking for a page."
)
MSG_AUDIT_NO_PAGE_NUMBERS = _(
    "The audit trail is not numbered in pages: follow the `next` link of the "
    "previous answer (it holds a `cursor`) instead of asking for a page."
)
PAGE_SIZE_HELP = _("Results per page: 50 by default, 500 at most.")
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
PAGE_SIZE_PARAM = "page_size"


def page_size_asked(request: Request, parameter: str, default: int, most: int) -> int:
    """The page size a request asks for; one that is not a positive integer is a 400.

    DRF would silently fall back to the default, so a client's typo would go
    unnoticed. Sizes above `most` are capped.
    """
    raw = request.query_params.get(parameter)
    if not raw:
        return default
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if size < 1:
        raise ValidationError({parameter: [MSG_PAGE_SIZE]})
    return min(size, most)


class StrictPageSize:
    """50 a page, up to 500, and a page_size that is not a positive integer is a 400.

    Mixed into both paginations, before the DRF class.
    """

    page_size: int | None = PAGE_SIZE
    page_size_query_param: str | None = PAGE_SIZE_PARAM
    max_page_size: int | None = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        return page_size_asked(request, PAGE_SIZE_PARAM, PAGE_SIZE, MAX_PAGE_SIZE)

    def schema_parameters(
        self, parameters: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The DRF class's schema parameters, with page_size's described."""
        for parameter in parameters:
            if parameter["name"] == PAGE_SIZE_PARAM:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = str(PAGE_SIZE_HELP)
        return parameters


class PageNumberPagination(StrictPageSize, pagination.PageNumberPagination):
    """DRF's page numbers, with a strict page_size (see page_size_asked)."""

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = self.schema_parameters(
            super().get_schema_operation_parameters(view)
        )
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters


class ExecutionCursorPagination(StrictPageSize, pagination.CursorPagination):
    """Executions newest first (by id), a page at a time through `next` / `previous`.

    Each page is one indexed range read whatever its depth: `id < cursor`, served
    by the primary key, or by `exec_task_id_idx` for one task's runs. No count.
    `?page=` is a 400 that says to follow `next`, not a silently ignored
    parameter that would return the first page again and again.
    """

    ordering: str | tuple[str, ...] = "-id"
    #: The page-number parameter of the other lists, refused here.
    page_query_param = "page"
    no_page_numbers_message = MSG_NO_PAGE_NUMBERS
    # A lazy string, as DRF's own default is; the stubs type it str.
    invalid_cursor_message = _(  # type: ignore[assignment]
        "This cursor was not given out by the API: follow a `next` or `previous` "
        "link, or start again without `cursor`."
    )

    def paginate_queryset(
        self, queryset: Any, request: Request, view: Any = None
    ) -> list[Any] | None:
        if self.page_query_param in request.query_params:
            raise ValidationError(
                {self.page_query_param: [self.no_page_numbers_message]}
            )
        return super().paginate_queryset(queryset, request, view)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = self.schema_parameters(
            super().get_schema_operation_parameters(view)
        )
        for parameter in parameters:
            if parameter["name"] == self.cursor_query_param:
                parameter["description"] = str(
                    _("Where a page starts: take it from a `next` or `previous` link.")
                )
        return parameters


class AuditCursorPagination(ExecutionCursorPagination):
    """The audit trail newest first, a page at a time through `next` / `previous`.

    By time, then id: `at` is served by `audit_at_idx`, and one task's entries
    (`?task=`) by `audit_task_at_idx`. No count, no page numbers.
    """

    ordering = ("-at", "-id")
    no_page_numbers_message = MSG_AUDIT_NO_PAGE_NUMBERS
