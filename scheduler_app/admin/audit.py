"""Audit trail admin: every entry, read-only, and the pieces the task pages show.

Entries are written by services/audit.py alone; here nobody adds, changes or
deletes one (the cleanup_executions system task prunes them after
SCHEDULER_AUDIT_DAYS). The list never counts the table, as the execution list.
Every text that came from a user (task names, usernames, reasons, values) is
escaped; values are shown as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import selectors
from ..models import AuditEntry, ScheduledTask
from ..storable import storable_json
from .display import EMPTY, absolute_time
from .executions import (
    AFTER_VAR,
    BEFORE_VAR,
    CreatedDateFilter,
    ExecutionChangeList,
    HasNextPaginator,
    TaskFilter,
    _keyset_id,
)

#: The most of a value or a reason a list cell shows (the entry's page has it whole).
CELL_CHARS = 80
MSG_SUBTITLE = _("%(action)s of “%(task)s” at %(when)s")
#: The changed fields a list cell names (the entry's page has every one).
SUMMARY_FIELDS = 5
#: The users the "By user" filter offers at most (a link each).
ACTOR_CHOICES = 100
#: The query parameter of the task page's "All changes of this task" link.
TASK_PARAMETER = TaskFilter.id_parameter


def value_text(value: Any) -> str:
    """A value as JSON text (what the API answers), not yet escaped."""
    return json.dumps(storable_json(value), ensure_ascii=False, sort_keys=True)


def _short(text: str, chars: int = CELL_CHARS) -> str:
    return Truncator(text).chars(chars)


def changes_summary(changes: dict[str, Any]) -> str:
    """`field: before → after` for the first changed fields, values cut short, and
    how many more (a created task names all its fields); escaped."""
    if not changes:
        return EMPTY
    pairs = list(_pairs(changes))
    shown = format_html_join(
        "",
        '<div class="scheduler-audit-change"><code>{}</code>: {} → {}</div>',
        (
            (name, _short(value_text(before)), _short(value_text(after)))
            for name, (before, after) in pairs[:SUMMARY_FIELDS]
        ),
    )
    more = len(pairs) - SUMMARY_FIELDS
    if more <= 0:
        return shown
    return format_html(
        '{}<div class="scheduler-audit-change scheduler-muted">{}</div>',
        shown,
        ngettext("and %(count)d more field", "and %(count)d more fields", more)
        % {"count": more},
    )


def changes_table(changes: dict[str, Any]) -> str:
    """Every changed field, before → after, whole; escaped."""
    if not changes:
        return EMPTY
    rows = format_html_join(
        "",
        '<tr><td><code>{}</code></td><td><pre class="scheduler-pre">{}</pre></td>'
        '<td><pre class="scheduler-pre">{}</pre></td></tr>',
        (
            (name, value_text(before), value_text(after))
            for name, (before, after) in _pairs(changes)
        ),
    )
    return format_html(
        '<table class="scheduler-audit-changes"><thead><tr><th>{}</th><th>{}</th>'
        "<th>{}</th></tr></thead><tbody>{}</tbody></table>",
        gettext("field"),
        gettext("before"),
        gettext("after"),
        rows,
    )


def _pairs(changes: dict[str, Any]) -> Iterable[tuple[str, tuple[Any, Any]]]:
    """(field, (before, after)) in field order; a value that is no pair is shown as
    the "after" of an unknown before."""
    for name in sorted(changes):
        value = changes[name]
        if isinstance(value, list) and len(value) == 2:
            yield name, (value[0], value[1])
        else:
            yield name, (None, value)


def actor_text(entry: AuditEntry) -> str:
    """Who: the username with the API key's name beneath, or the entry point for
    trusted code (the command line, the Python API); escaped."""
    if not entry.actor_name:
        return format_html("<em>{}</em>", entry.get_source_display())
    if entry.api_key_name:
        return format_html(
            "{}<br><small>{}</small>",
            entry.actor_name,
            gettext("API key “%(name)s”") % {"name": entry.api_key_name},
        )
    return format_html("{}", entry.actor_name)


def task_text(entry: AuditEntry) -> str:
    """A link to the task while it exists; the name it had, once deleted; escaped."""
    if entry.task_id is None:
        return format_html(
            '{} <small class="scheduler-muted">({})</small>',
            entry.task_name,
            gettext("deleted"),
        )
    return format_html(
        '<a href="{}">{}</a>',
        reverse("admin:scheduler_app_scheduledtask_change", args=[entry.task_id]),
        entry.task_name,
    )


def reason_text(reason: str, *, chars: int | None = CELL_CHARS) -> str:
    if not reason:
        return EMPTY
    if chars is None:
        return format_html('<span class="scheduler-audit-reason">{}</span>', reason)
    return format_html(
        '<span class="scheduler-audit-reason" title="{}">{}</span>',
        reason,
        _short(reason, chars),
    )


def run_text(run_id: int | None) -> str:
    if run_id is None:
        return EMPTY
    return format_html(
        '<a href="{}">#{}</a>',
        reverse("admin:scheduler_app_taskexecution_change", args=[run_id]),
        run_id,
    )


def task_trail_table(entries: Iterable[AuditEntry]) -> str:
    """A task page's trail: when, who, source, action, changes, reason; escaped."""
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                format_html(
                    '<a href="{}">{}</a>',
                    reverse("admin:scheduler_app_auditentry_change", args=[entry.pk]),
                    absolute_time(entry.at, seconds=True),
                ),
                actor_text(entry),
                entry.get_source_display(),
                entry.get_action_display(),
                changes_summary(entry.changes),
                reason_text(entry.reason),
            )
            for entry in entries
        ),
    )
    if not rows:
        return format_html("<p>{}</p>", gettext("Nothing recorded yet."))
    return format_html(
        '<table class="scheduler-audit-trail"><thead><tr><th>{}</th><th>{}</th>'
        "<th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        gettext("when"),
        gettext("who"),
        gettext("source"),
        gettext("action"),
        gettext("changes"),
        gettext("reason"),
        rows,
    )


class AuditTaskFilter(TaskFilter):
    """The task, as the execution list's filter: `?task__id__exact=<id>` (the task
    page's link), or `?task_q=<text>`, the entries recorded under a name holding
    the text (a deleted task's too)."""

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.task_id is not None:
            queryset = queryset.filter(task_id=self.task_id)
        if self.search:
            queryset = queryset.filter(task_name__icontains=self.search)
        return queryset


class ActorFilter(admin.SimpleListFilter):
    """Who, by username as recorded (a deleted user's entries too), or trusted code."""

    title = _("user")
    parameter_name = "actor"
    #: The value for the entries of trusted code (CLI, Python API, sync, import).
    NOBODY = "-"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        # The names the trail recorded (a deleted user's too), not every
        # account: one scan of audit_actor_idx, never the entries.
        names = (
            AuditEntry.objects.exclude(actor_name="")
            .order_by("actor_name")
            .values_list("actor_name", flat=True)
            .distinct()[:ACTOR_CHOICES]
        )
        return [
            *((str(name), str(name)) for name in names),
            (self.NOBODY, _("No user (command line, Python API, sync, import)")),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if value == self.NOBODY:
            return queryset.filter(actor_name="")
        if value and "\x00" in value:  # no name holds one; PostgreSQL refuses it
            return queryset.none()
        if value:
            return queryset.filter(actor_name=value)
        return queryset


#: The entry page's fields, all read-only.
ENTRY_FIELDS = (
    "at_display",
    "task_display",
    "actor_display",
    "source",
    "action",
    "changes_display",
    "reason_display",
    "run_display",
)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """The audit trail, read-only: who changed which task, from where, what, and why."""

    list_display = [
        "at_display",
        "task_display",
        "actor_display",
        "source",
        "action",
        "changes_display_short",
        "reason_display_short",
    ]
    list_display_links = ["at_display"]
    list_filter = [
        AuditTaskFilter,
        ActorFilter,
        "action",
        "source",
        ("at", CreatedDateFilter),
    ]
    search_fields = ["task_name", "actor_name", "reason"]
    search_help_text = _("Part of a task name, a username or a reason.")
    # Newest first by primary key (entries are appended as they happen): the
    # paginator reads each page from where its neighbour ended.
    ordering = ["-id"]
    sortable_by = ()
    # No COUNT(*) anywhere: not for the total, not per filter choice, no "show all".
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = HasNextPaginator
    list_max_show_all = 0
    empty_value_display = EMPTY
    actions = None
    fields = ENTRY_FIELDS
    readonly_fields = ENTRY_FIELDS

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[AuditEntry],
        per_page: int,
        *args: Any,
        **kwargs: Any,
    ) -> Paginator:
        try:
            page_number = int(request.GET.get(PAGE_VAR, 1))
        except ValueError:
            page_number = 1
        return self.paginator(
            queryset,  # type: ignore[arg-type]
            per_page,
            *args,
            page_number=page_number,
            after=_keyset_id(request.GET.get(AFTER_VAR)),
            before=_keyset_id(request.GET.get(BEFORE_VAR)),
            **kwargs,
        )

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ExecutionChangeList

    @admin.display(description=_("when"))
    def at_display(self, obj: AuditEntry) -> str:
        return absolute_time(obj.at, seconds=True)

    @admin.display(description=_("task"))
    def task_display(self, obj: AuditEntry) -> str:
        return task_text(obj)

    @admin.display(description=_("user"))
    def actor_display(self, obj: AuditEntry) -> str:
        return actor_text(obj)

    @admin.display(description=_("changes"))
    def changes_display_short(self, obj: AuditEntry) -> str:
        return changes_summary(obj.changes)

    @admin.display(description=_("changes"))
    def changes_display(self, obj: AuditEntry) -> str:
        return changes_table(obj.changes)

    @admin.display(description=_("reason"))
    def reason_display_short(self, obj: AuditEntry) -> str:
        return reason_text(obj.reason)

    @admin.display(description=_("reason"))
    def reason_display(self, obj: AuditEntry) -> str:
        return reason_text(obj.reason, chars=None)

    @admin.display(description=_("run"))
    def run_display(self, obj: AuditEntry) -> str:
        return run_text(obj.run_id)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        entry = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if entry is not None:
            extra_context["subtitle"] = MSG_SUBTITLE % {
                "action": entry.get_action_display(),
                "task": entry.task_name,
                "when": absolute_time(entry.at, seconds=True),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    # Append-only: written by the services, pruned by the cleanup system task

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(request.user.has_perm("scheduler_app.view_auditentry"))


def task_trail_context(request: HttpRequest, task: ScheduledTask) -> dict[str, Any]:
    """What a task page shows of the task's trail, for who may read the trail."""
    if not request.user.has_perm("scheduler_app.view_auditentry"):
        return {}
    entries = selectors.task_audit_trail(task)
    return {
        "audit_trail": task_trail_table(entries),
        "audit_trail_limit": selectors.TASK_TRAIL_SHOWN,
        "audit_trail_url": "%s?%s=%d"
        % (
            reverse("admin:scheduler_app_auditentry_changelist"),
            TASK_PARAMETER,
            task.pk,
        ),
    }
