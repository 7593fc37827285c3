"""The Timeline page: every task a row, the last day, week or month as columns, the day ahead.

Reads come from services.timeline (a bounded number of queries); this module
only draws them. A row is a CSS grid with one column per slot; each cell is one
element placed over the columns it spans, so the page's size follows the
changes of outcome, not the number of runs. The hover text says what a cell
holds; a click opens its run, or its runs (the execution list filtered to the
task, the cell's fire times and its status), or the task for a missed or
upcoming fire.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html_join
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..choices import ExecutionStatus, HealthState, TaskStatus
from ..models import ScheduledTask, TaskExecution
from ..services import timeline as timelines
from ..services.timeline import Cell, CellKind, Timeline
from .display import health_badge
from .operations import operations_context

if TYPE_CHECKING:
    from .task_admin import ScheduledTaskAdmin

#: Rows a page: 500 tasks render well within a second (bench/timeline.py).
ROWS_PER_PAGE = 500

#: The legend, in the order of a cell's precedence.
KIND_LABELS = {
    CellKind.FAILED: _("failed"),
    CellKind.RUNNING: _("running or due"),
    CellKind.MISSED: _("missed"),
    CellKind.SUCCESS: _("success"),
    CellKind.SKIPPED: _("skipped"),
    CellKind.CANCELLED: _("cancelled"),
    CellKind.UPCOMING: _("upcoming"),
}
#: The status a cell's link filters the runs by (none: every run of the cell).
KIND_STATUS = {
    CellKind.FAILED: ExecutionStatus.FAILED,
    CellKind.MISSED: ExecutionStatus.MISSED,
    CellKind.SUCCESS: ExecutionStatus.SUCCESS,
    CellKind.SKIPPED: ExecutionStatus.SKIPPED,
    CellKind.CANCELLED: ExecutionStatus.CANCELLED,
}
#: Axis labels: one every so many seconds, in this date format.
TICKS = {"24h": (3 * 3600, "H:i"), "7d": (86400, "M j"), "30d": (2 * 86400, "M j")}


class TimelineFilterForm(forms.Form):
    """The page's query string: span, health, status, handler, page."""

    span = forms.ChoiceField(
        label=_("Range"),
        required=False,
        choices=[(span.key, span.label) for span in timelines.SPANS],
    )
    health = forms.ChoiceField(
        label=_("Health"),
        required=False,
        choices=[("", _("Any health")), *HealthState.choices],
    )
    status = forms.ChoiceField(
        label=_("Status"),
        required=False,
        choices=[("", _("Any status")), *TaskStatus.choices],
    )
    handler = forms.ChoiceField(label=_("Handler"), required=False)

    def __init__(self, *args: Any, handlers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["handler"].choices = [  # type: ignore[attr-defined]
            ("", _("Any handler")),
            *[(path, path) for path in handlers],
        ]

    def value(self, name: str) -> str:
        """The field's clean value; "" (no filter) when it was not valid."""
        if not hasattr(self, "cleaned_data"):
            self.is_valid()
        return str(self.cleaned_data.get(name) or "")


def timeline_view(
    request: HttpRequest, model_admin: ScheduledTaskAdmin
) -> HttpResponse:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    handlers = list(
        ScheduledTask.objects.order_by("handler_path")
        .values_list("handler_path", flat=True)
        .distinct()
    )
    form = TimelineFilterForm(request.GET, handlers=handlers)
    form.is_valid()
    span = timelines.SPANS_BY_KEY.get(form.value("span"), timelines.DEFAULT_SPAN)
    tasks = timelines.timeline_tasks(
        health=form.value("health"),
        status=form.value("status"),
        handler=form.value("handler"),
    )
    page = Paginator(tasks, ROWS_PER_PAGE).get_page(request.GET.get("p"))
    drawn = timelines.timeline(list(page.object_list), span=span)
    kept = {
        name: value
        for name in ("span", "health", "status", "handler")
        if (value := form.value(name))
    }
    executions = model_admin.admin_site.get_model_admin(TaskExecution)
    painter = Painter(drawn, shows_runs=executions.has_view_permission(request))
    context = {
        **operations_context(model_admin, request, gettext("Timeline")),
        "form": form,
        "timeline": drawn,
        "page": page,
        "page_query": urlencode(kept),
        "axis": axis(drawn),
        "rows": [
            (row.task, health_badge(row.task.health), painter.row(row.task, row.cells))
            for row in drawn.rows
        ],
        "legend": [(kind.value, label) for kind, label in KIND_LABELS.items()],
        "slots": drawn.grid.count,
        "ahead_column": drawn.now_slot + 2,
        "span_minutes": drawn.grid.step // 60,
    }
    return TemplateResponse(request, "admin/scheduler_app/timeline.html", context)


def axis(drawn: Timeline) -> SafeString:
    """The time labels over the rows: one each TICKS interval, local time."""
    every, shown = TICKS.get(drawn.span.key, (86400, "M j"))
    grid = drawn.grid
    labels = []
    previous: dt.date | None = None
    for slot in range(grid.count):
        local = timezone.localtime(grid.slot_start(slot))
        if every < 86400:
            shows = local.minute == 0 and (local.hour * 3600) % every == 0
        else:
            # The first slot of each local day (of every other one for 30 days):
            # slots kept in UTC start an hour off local midnight across a DST
            # change.
            day = local.date()
            shows = (
                day != previous
                and previous is not None
                and not day.toordinal() % (every // 86400)
            )
            previous = day
        if shows:
            labels.append((slot + 1, date_format(local, shown)))
    return format_html_join(
        "", '<span class="tl-tick" style="grid-column:{}">{}</span>', labels
    )


class Painter:
    """Draws the cells of one page: the URLs, labels and slot times are worked
    out once, so a cell costs a few string operations (500 rows of 20 cells
    are 10,000 of them)."""

    def __init__(self, drawn: Timeline, *, shows_runs: bool = True) -> None:
        self.grid = drawn.grid
        #: Whether the reader may view executions: else no run ids, no run links.
        self.shows_runs = shows_runs
        placeholder = 2_147_483_647
        self.run_url = reverse(
            "admin:scheduler_app_taskexecution_change", args=[placeholder]
        ).replace(str(placeholder), "%d")
        self.task_url = reverse(
            "admin:scheduler_app_scheduledtask_change", args=[placeholder]
        ).replace(str(placeholder), "%d")
        # The execution list filtered to a task's runs fired in a cell's slots
        # (FiredWithinFilter), of the status that coloured it; nothing to quote.
        self.runs_query = (
            reverse("admin:scheduler_app_taskexecution_changelist")
            + "?task__id__exact=%d&amp;fired_gte=%s&amp;fired_lt=%s%s"
        )
        self.labels = {status: str(label) for status, label in ExecutionStatus.choices}
        self.texts = {
            "next": gettext("Next fire at %(time)s"),
            "ahead": gettext("%(range)s: fires ahead"),
            "due": gettext("No run of the fire due at %(time)s"),
            "missed": gettext("%(range)s: fires were due and no run was recorded"),
            "run": gettext("Run #%(id)s, %(range)s: %(counts)s"),
            "no_fire": gettext("No run of the fires due here"),
        }
        #: slot -> its start, local ("2026-12-04 17:00"), and in UTC for links.
        self.slot_texts: dict[int, tuple[str, str]] = {}

    def slot_text(self, slot: int) -> tuple[str, str]:
        texts = self.slot_texts.get(slot)
        if texts is None:
            moment = self.grid.slot_start(slot)
            texts = self.slot_texts[slot] = (
                timezone.localtime(moment).strftime("%Y-%m-%d %H:%M"),
                moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%MZ"),
            )
        return texts

    def span(self, cell: Cell) -> str:
        """The cell's slots: "2026-12-04 17:00 – 20:00" (the end's date if another day)."""
        start = self.slot_text(cell.first)[0]
        end = self.slot_text(cell.first + cell.width)[0]
        if end[:10] == start[:10]:
            end = end[11:]
        return "%s – %s" % (start, end)

    def title(self, cell: Cell) -> str:
        """What the hover says of a cell."""
        if cell.kind == CellKind.UPCOMING or (
            cell.kind == CellKind.MISSED and not cell.runs
        ):
            upcoming = cell.kind == CellKind.UPCOMING
            if cell.fire_at is not None and cell.width == 1:
                return self.texts["next" if upcoming else "due"] % {
                    "time": _time(cell.fire_at)
                }
            return self.texts["ahead" if upcoming else "missed"] % {
                "range": self.span(cell)
            }
        counts = ", ".join(
            "%d %s" % (runs, self.labels.get(status, status))
            for status, runs in sorted(cell.counts.items(), key=lambda item: -item[1])
        )
        if cell.run_id is not None and self.shows_runs:
            text = self.texts["run"] % {
                "id": cell.run_id,
                "range": self.span(cell),
                "counts": counts,
            }
        else:
            text = ngettext(
                "%(range)s: %(runs)d run (%(counts)s)",
                "%(range)s: %(runs)d runs (%(counts)s)",
                cell.runs,
            ) % {"range": self.span(cell), "runs": cell.runs, "counts": counts}
        if cell.kind == CellKind.MISSED and not _recorded_missed(cell):
            # Runs now only, in slots whose fires went missing.
            return "%s. %s" % (self.texts["no_fire"], text)
        return text

    def url(self, cell: Cell, task: ScheduledTask) -> str:
        """Where a click on a cell goes: its run, its runs, or the task; written
        for an HTML attribute (its only character to escape, &, is)."""
        if not self.shows_runs or (not cell.runs and cell.run_id is None):
            return self.task_url % task.pk
        if cell.run_id is not None:
            return self.run_url % cell.run_id
        status = KIND_STATUS.get(cell.kind)
        if cell.kind == CellKind.MISSED and not _recorded_missed(cell):
            status = None  # its runs are runs now, of other statuses
        return self.runs_query % (
            task.pk,
            self.slot_text(cell.first)[1],
            self.slot_text(cell.first + cell.width)[1],
            "&amp;status=%s" % status if status else "",
        )

    def row(self, task: ScheduledTask, cells: list[Cell]) -> SafeString:
        """A row's cells, each over its columns (1-based: the grid's first is 1)."""
        return mark_safe(
            "".join(
                '<a class="tl-cell tl-%s" style="grid-column:%d / span %d" '
                'href="%s" title="%s"></a>'
                % (
                    cell.kind.value,
                    cell.first + 1,
                    cell.width,
                    self.url(cell, task),
                    escape(self.title(cell)),
                )
                for cell in cells
            )
        )


def _recorded_missed(cell: Cell) -> bool:
    return ExecutionStatus.MISSED in cell.counts


def _time(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S")
