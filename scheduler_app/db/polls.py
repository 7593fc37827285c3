"""The scheduler's polls, each a queryset compiled once (`PreparedQuery`).

Without Redis a running scheduler asks these four times a second; with it, once a
second as a net under the notifications.
"""

from __future__ import annotations

from ..models import SchedulerState, TaskExecution
from .prepared import PreparedQuery

#: The ids of `TaskExecution.objects.startable(now=now)`, at most `limit`: run-now
#: requests, retries whose delay is over and fires left pending.
startable_ids = PreparedQuery(
    TaskExecution,
    lambda now, limit: TaskExecution.objects.startable(now=now).values_list(
        "pk", flat=True
    )[:limit],
)

#: The stored task-definition version, as a list of at most one value (none before
#: the first change); called without a time.
tasks_version_values = PreparedQuery(
    SchedulerState,
    lambda now, limit: SchedulerState.objects.filter(
        key=SchedulerState.TASKS_VERSION
    ).values_list("value", flat=True)[:1],
)
