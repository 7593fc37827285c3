"""Query-string filters of the task, execution, alert and audit lists."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField
from rest_framework import filters
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

from ..models import Alert, AuditEntry, ScheduledTask, TaskExecution

MSG_NUL = _("Remove the NUL character: it cannot be searched for.")


class SearchFilter(filters.SearchFilter):
    """DRF's search; a NUL character is a 400 that names the `search` parameter."""

    def get_search_terms(self, request: Request) -> list[str]:
        if "\x00" in request.query_params.get(self.search_param, ""):
            raise ValidationError({self.search_param: [MSG_NUL]})
        terms: list[str] = super().get_search_terms(request)
        return terms


class StrictIntegerField(forms.IntegerField):
    """Digits only: Django's IntegerField also takes "1.0" and " 1 "."""

    def to_python(self, value: Any) -> int | None:
        if value in self.empty_values:
            return None
        if not str(value).isascii() or not str(value).lstrip("-").isdigit():
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid")
        return int(value)


class IntegerFilter(django_filters.NumberFilter):
    """A whole number (NumberFilter alone accepts decimals such as 1.5)."""

    field_class = StrictIntegerField


class StrictBooleanField(forms.NullBooleanField):
    """true/false (or 1/0); anything else is an error, not "no filter" as in Django."""

    # NullBooleanField's select widget turns any unknown value into None itself.
    widget = forms.TextInput
    default_error_messages = {"invalid": _("Enter true or false.")}
    VALUES = {"true": True, "1": True, "false": False, "0": False}

    # The stubs type BooleanField's result; NullBooleanField's includes None.
    def to_python(self, value: Any) -> bool | None:  # type: ignore[override]
        if value in (None, ""):
            return None
        if isinstance(value, bool):
            return value
        try:
            return self.VALUES[str(value).lower()]
        except KeyError:
            raise forms.ValidationError(
                self.error_messages["invalid"], code="invalid"
            ) from None


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class TaskFilter(django_filters.FilterSet):
    is_system = StrictBooleanFilter()

    class Meta:
        model = ScheduledTask
        fields = ["task_type", "status", "is_system", "handler_path", "health"]


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, turned into UTC; one no database can store is an error.

    PostgreSQL refuses UTC offsets beyond ±15:59, which Python accepts (up to 24 h).
    """

    default_error_messages = {
        "out_of_range": _(
            "Enter a time between the years 1 and 9999, e.g. 2025-01-31T00:00:00Z."
        )
    }

    def to_python(self, value: Any) -> dt.datetime | None:
        try:
            parsed = super().to_python(value)
            return None if parsed is None else parsed.astimezone(dt.UTC)
        except OverflowError:
            raise forms.ValidationError(
                self.error_messages["out_of_range"], code="out_of_range"
            ) from None


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class ExecutionFilter(django_filters.FilterSet):
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        label=_("Created at or after (ISO 8601, e.g. 2025-01-31T00:00:00Z)"),
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        label=_("Created before (ISO 8601, e.g. 2025-02-01T00:00:00Z)"),
    )

    class Meta:
        model = TaskExecution
        fields = ["status", "trigger_type", "failure_kind"]


class AllExecutionsFilter(ExecutionFilter):
    """The executions of every task: the same filters plus the task's id."""

    # "task__id", not "task_id": the schema's type comes from the field named
    # (the id's AutoField: integer), and the filter still reads the column alone.
    task = IntegerFilter(field_name="task__id", label=_("Task id"))

    class Meta(ExecutionFilter.Meta):
        fields = [*ExecutionFilter.Meta.fields, "task"]


class OrderingFilter(filters.OrderingFilter):
    """DRF's ordering, then the primary key, so pages neither repeat nor skip rows."""

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> list[str]:
        ordering = list(super().get_ordering(request, queryset, view) or [])
        if ordering and not any(term.lstrip("-") in ("pk", "id") for term in ordering):
            ordering.append("pk")
        return ordering


class AlertFilter(django_filters.FilterSet):
    """The alerts list: by kind, by task, by when they were decided."""

    task = IntegerFilter(field_name="task__id", label=_("Task id"))
    created_after = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="gte",
        label=_("Decided at or after (ISO 8601, e.g. 2025-01-31T00:00:00Z)"),
    )
    created_before = UtcIsoDateTimeFilter(
        field_name="created_at",
        lookup_expr="lt",
        label=_("Decided before (ISO 8601, e.g. 2025-02-01T00:00:00Z)"),
    )

    class Meta:
        model = Alert
        fields = ["kind", "task", "state"]


class AuditFilter(django_filters.FilterSet):
    """The audit trail: by task (id or name), user, action, source, and since when."""

    task = django_filters.CharFilter(
        method="filter_task",
        label=_(
            "Task id or name (a deleted task's entries by the name they recorded; "
            "a purely numeric value is an id when such a task exists)"
        ),
    )
    actor = django_filters.CharFilter(
        field_name="actor_name", label=_("Username, as recorded")
    )
    since = UtcIsoDateTimeFilter(
        field_name="at",
        lookup_expr="gte",
        label=_("Recorded at or after (ISO 8601, e.g. 2025-01-31T00:00:00Z)"),
    )

    class Meta:
        model = AuditEntry
        fields = ["task", "actor", "action", "source", "since"]

    def filter_task(
        self, queryset: QuerySet[AuditEntry], name: str, value: str
    ) -> QuerySet[AuditEntry]:
        """By id when a task has it; else by name: the entries of the task now so
        named, and those recorded under that name (the deleted task's, too)."""
        # Beyond a 64-bit column no task has that id (and the database refuses it).
        number = int(value) if value.isascii() and value.isdigit() else None
        if (
            number is not None
            and number < 2**63
            and ScheduledTask.objects.filter(pk=number).exists()
        ):
            return queryset.filter(task_id=number)
        named = ScheduledTask.objects.filter(name=value).values("pk")
        return queryset.filter(Q(task_name=value) | Q(task_id__in=named))
