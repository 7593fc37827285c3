"""History: deleting old finished executions."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from ..conf import app_settings
from ..models import TaskExecution


def executions_cleanup(
    *, days: int | None = None, batch_size: int = 1000, now: dt.datetime | None = None
) -> int:
    """Delete finished executions older than `days` (SCHEDULER_HISTORY_DAYS), in batches.

    Each batch is its own short statement so a large backlog never holds a long
    write lock (which SQLite would feel as "database is locked" elsewhere).
    """
    days = app_settings.SCHEDULER_HISTORY_DAYS if days is None else days
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    old = TaskExecution.objects.older_than(cutoff).filter(
        status__in=TaskExecution.FINISHED_STATUSES
    )
    deleted = 0
    while True:
        batch = list(old.order_by().values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += TaskExecution.objects.filter(pk__in=batch).delete()[0]
