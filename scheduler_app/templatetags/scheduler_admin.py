"""Template tags of the scheduler admin: the no-scheduler banner and cheap pagination links."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.admin.views.main import PAGE_VAR
from django.http import HttpRequest

from .. import services
from ..admin import display
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
