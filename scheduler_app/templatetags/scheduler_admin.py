"""Template tags of the scheduler admin: the no-scheduler banner, the index's
dashboard and cheap pagination links."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.views.main import PAGE_VAR
from django.http import HttpRequest

from .. import selectors, services
from ..admin import display
from ..choices import ExecutorName, HealthState
from ..conf import app_settings
from ..models import ScheduledTask, SchedulerInstance, TaskExecution

register = template.Library()

APP_LABEL = "scheduler_app"


def is_scheduler_page(request: HttpRequest | None) -> bool:
    """The admin index, the app's index and every page of its models and tools."""
    match = getattr(request, "resolver_match", None)
    if match is None or "admin" not in match.namespaces:
        return False
    if match.url_name == "index":
        return True
    if match.url_name == "app_list":
        return match.kwargs.get("app_label") == APP_LABEL
    return bool(match.url_name) and match.url_name.startswith(APP_LABEL + "_")


@register.inclusion_tag(
    "admin/scheduler_app/includes/scheduler_warning.html", takes_context=True
)
def scheduler_warning(context: template.Context) -> dict[str, Any]:
    """A warning when no scheduler instance has a fresh heartbeat (one query)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if not (
        user is not None
        and user.is_active
        and user.is_staff
        and is_scheduler_page(request)
    ):
        return {"show": False}
    return {
        "show": not services.instances_alive_ids(kind=SchedulerInstance.Kind.SCHEDULER)
    }


@register.inclusion_tag(
    "admin/scheduler_app/includes/dashboard.html", takes_context=True
)
def scheduler_dashboard(context: template.Context) -> dict[str, Any]:
    """The admin index's dashboard, for who may view the tasks (bounded queries:
    selectors.dashboard)."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("scheduler_app.view_scheduledtask"):
        return {"show": False}
    board = selectors.dashboard()
    states = [
        (state, label, board.status.health_counts.get(state, 0))
        for state, label in HealthState.choices
    ]
    return {
        "show": True,
        "board": board,
        "states": states,
        "shows_workers": bool(board.status.workers)
        or app_settings.SCHEDULER_EXECUTOR == ExecutorName.CELERY,
        "may_view_runs": user.has_perm("scheduler_app.view_taskexecution"),
    }


@register.inclusion_tag("admin/scheduler_app/includes/page_links.html")
def scheduler_page_links(cl: Any) -> dict[str, Any]:
    """Previous / next links for a changelist whose paginator does not count."""
    page = cl.page_num
    paginator = cl.paginator
    has_next = getattr(paginator, "has_next", False)
    # A paginator that reads pages from where their neighbour ended (keyset) says
    # which ids the links start from; the others are by page number only.
    keyset = list(getattr(paginator, "keyset_vars", ()))
    after = paginator.next_params() if keyset else {}
    before = paginator.previous_params() if keyset else {}
    return {
        "cl": cl,
        "page": page,
        "previous_url": (
            cl.get_query_string({PAGE_VAR: page - 1, **before}, remove=keyset)
            if page > 1
            else ""
        ),
        "next_url": (
            cl.get_query_string({PAGE_VAR: page + 1, **after}, remove=keyset)
            if has_next
            else ""
        ),
        "first_url": (
            cl.get_query_string(remove=[PAGE_VAR, *keyset]) if page > 2 else ""
        ),
    }


@register.simple_tag
def scheduler_when(value: Any) -> str:
    """An absolute time with 'in 3 hours' / '5 minutes ago' beneath it."""
    return display.time_with_relative(value)


@register.simple_tag
def scheduler_badge(value: str, label: Any) -> str:
    return display.status_badge(value, label)


@register.simple_tag
def scheduler_status_label(value: str, execution: bool = False) -> str:
    """The translated label of a task (or, with execution=True, an execution) status."""
    choices = TaskExecution.Status if execution else ScheduledTask.Status
    try:
        return str(choices(value).label)
    except ValueError:
        return value


@register.simple_tag
def scheduler_schedule(task: ScheduledTask) -> str:
    return display.describe_schedule(task)


@register.filter
def scheduler_absolute(value: Any) -> str:
    """A moment as 2025-01-06 02:00 in the current time zone."""
    return display.absolute_time(value) if value else display.EMPTY


@register.filter
def scheduler_relative(value: Any) -> str:
    """'in 3 hours' or '5 minutes ago'."""
    return display.relative_time(value) if value else display.EMPTY


@register.simple_tag
def scheduler_health_badge(value: str) -> str:
    return display.health_badge(value)


@register.simple_tag
def scheduler_run_badge(execution: TaskExecution) -> str:
    return display.execution_badge(execution)
