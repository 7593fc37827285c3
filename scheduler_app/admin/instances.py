"""Scheduler instances and Celery worker processes: read-only, kept by their heartbeats."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import SchedulerInstance
from .display import relative_time


@admin.register(SchedulerInstance)
class SchedulerInstanceAdmin(admin.ModelAdmin):
    list_display = [
        "instance_id",
        "kind",
        "hostname",
        "pid",
        "is_leader",
        "heartbeat",
        "started_at",
        "stopped_at",
        "version",
    ]
    list_filter = ["kind", "is_leader"]
    readonly_fields = [
        "instance_id",
        "kind",
        "hostname",
        "pid",
        "is_leader",
        "last_heartbeat_at",
        "started_at",
        "stopped_at",
        "version",
    ]

    @admin.display(description=_("last heartbeat"), ordering="last_heartbeat_at")
    def heartbeat(self, obj: SchedulerInstance) -> str:
        return relative_time(obj.last_heartbeat_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
