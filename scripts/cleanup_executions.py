"""System task: delete execution records older than SCHEDULER_HISTORY_DAYS, in batches.

Also the alerts decided as long ago (with their deliveries and attempts), the
rows of scheduler instances (schedulers, workers, `run_task`) not heard of for as
long, and the audit entries older than SCHEDULER_AUDIT_DAYS (a year by default:
the trail outlives the history it tells of).
"""

from scheduler_app import task_log
from scheduler_app.conf import app_settings
from scheduler_app.services import (
    alerts_cleanup,
    executions_cleanup,
    instances_cleanup,
)
from scheduler_app.services.audit import audit_cleanup

TASK_INFO = {
    "name": "Clean up execution history",
    "description": (
        "Deletes finished executions older than SCHEDULER_HISTORY_DAYS (default 30), "
        "the alerts decided as long ago, the rows of instances not heard of for "
        "as long, and the audit entries older than SCHEDULER_AUDIT_DAYS (365)."
    ),
    "params": {
        "days": {
            "label": "Keep days",
            "help": "Empty: the SCHEDULER_HISTORY_DAYS setting.",
        },
        "batch_size": {"label": "Batch size", "help": "Rows deleted per statement."},
    },
    "schedule": {"cron": "0 2 * * *"},
}


def run(days: int | None = None, batch_size: int = 1000) -> dict:
    keep = app_settings.SCHEDULER_HISTORY_DAYS if days is None else days
    task_log("Deleting finished executions older than", keep, "days")
    deleted = executions_cleanup(days=keep, batch_size=batch_size)
    task_log("Deleted", deleted, "executions")
    alerts = alerts_cleanup(days=keep, batch_size=batch_size)
    task_log("Deleted", alerts, "alerts")
    instances = instances_cleanup(days=keep)
    task_log("Deleted", instances, "instances not heard of since then")
    audit = audit_cleanup()
    task_log(
        "Deleted",
        audit,
        "audit entries older than",
        app_settings.SCHEDULER_AUDIT_DAYS,
        "days",
    )
    return {
        "deleted": deleted,
        "alerts_deleted": alerts,
        "instances_deleted": instances,
        "audit_deleted": audit,
        "kept_days": keep,
    }
