"""`GET /health/`: whether a scheduler runs, for uptime monitors and load balancers.

No authentication, by design: a probe has no credentials, and the answer says
only what a status page would (no task, no parameter, no error text of a run).
`200` while a scheduler instance heartbeats (`"status": "ok"`, or `"degraded"`
with the reasons: a dependency unreachable, nobody leading), `503` when none does
or the database does not answer. `executions` counts the runs pending and running
(the pending ones include fires staged ahead of their time), `pending_backlog`
the pending runs whose time has come, `tasks.health` the tasks in each health
state (no task named). A fixed handful of queries, whatever the size
of the installation (`selectors.scheduler_status`).
"""

from __future__ import annotations

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .. import selectors


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    try:
        status = selectors.scheduler_status()
    except DatabaseError as error:
        return JsonResponse(
            {
                "status": "down",
                "reasons": [
                    "The database does not answer (%s)." % type(error).__name__
                ],
                "checked_at": timezone.now().isoformat(),
            },
            status=503,
        )
    alive = [item for item in status.instances if item.alive]
    state = "down" if not status.running else "degraded" if status.degraded else "ok"
    reasons = list(status.degraded_reasons)
    if not status.running:
        reasons.insert(0, "No scheduler instance heartbeats: nothing fires or runs.")
    payload = {
        "status": state,
        "reasons": reasons,
        "scheduler": {
            "running": status.running,
            "leader": status.leader,
            "instances_alive": len(alive),
            "heartbeat_age_seconds": (
                round(min(item.heartbeat_age_seconds for item in alive), 1)
                if alive
                else None
            ),
        },
        "workers_alive": status.worker_count,
        "executions": status.execution_counts,
        # Pending runs whose time has come (not the fires staged ahead): a growing
        # number means runs wait for a scheduler or a free handler.
        "pending_backlog": status.pending_backlog,
        "tasks": {"health": status.health_counts},
        "checked_at": (status.checked_at or timezone.now()).isoformat(),
    }
    return JsonResponse(payload, status=200 if status.running else 503)
