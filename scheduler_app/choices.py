"""The models' and settings' choices as enums; no model here, so any layer may use them.

The models' constraints are built from them (`Q(status__in=TaskStatus.values)`), and
each model carries its own under the usual names (ScheduledTask.Status,
TaskExecution.TriggerType ...). The order of the members is the order of the values
in the migrations: change one only with a migration. The members are str, so code
compares and stores them as it would their values.
"""

from __future__ import annotations

from enum import StrEnum

from django.db import models
from django.utils.translation import gettext_lazy as _


class TaskType(models.TextChoices):
    CRON = "cron", _("Cron")
    INTERVAL = "interval", _("Interval")
    DATE = "date", _("One-off date")
    MANUAL = "manual", _("Manual")


class TaskStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    PAUSED = "paused", _("Paused")
    DISABLED = "disabled", _("Disabled")


class OverlapPolicy(models.TextChoices):
    SKIP = "skip", _("Skip the new run while one is running")
    ALLOW = "allow", _("Allow concurrent runs")
    REPLACE = "replace", _("Cancel the running one and start the new run")


class ExecutionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCESS = "success", _("Success")
    FAILED = "failed", _("Failed")
    SKIPPED = "skipped", _("Skipped")
    CANCELLED = "cancelled", _("Cancelled")
    #: Fires that no scheduler ran within their misfire grace: a record, no run.
    MISSED = "missed", _("Missed")


class TriggerType(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    MANUAL = "manual", _("Manual (run now)")
    CLI = "cli", _("Command line")
    RETRY = "retry", _("Retry")


class FailureKind(models.TextChoices):
    """Why a failed run failed, so the admin and API can filter on it."""

    ERROR = "error", _("Error")
    TIMEOUT = "timeout", _("Timed out")
    ABANDONED = "abandoned", _("Abandoned")
    INTERRUPTED = "interrupted", _("Interrupted")


class InstanceKind(models.TextChoices):
    SCHEDULER = "scheduler", _("Scheduler")
    WORKER = "worker", _("Celery worker")
    #: A `manage.py run_task` process: it heartbeats while its run goes on (so no
    #: scheduler takes the run for abandoned), and is no scheduler.
    CLI = "cli", _("Command line (run_task)")


class HealthState(models.TextChoices):
    """What a task's schedule and runs say of it (services/health.py computes it)."""

    NEW = "new", _("New")
    UP = "up", _("Up")
    LATE = "late", _("Late")
    MISSED = "missed", _("Missed")
    FAILING = "failing", _("Failing")
    RUNNING_LONG = "running_long", _("Running long")
    PAUSED = "paused", _("Paused")


class AlertKind(models.TextChoices):
    """What an alert says: a task's health changed, or something of the system."""

    FAILING = "failing", _("Failing")
    TIMED_OUT = "timed_out", _("Timed out")
    ABANDONED = "abandoned", _("Abandoned")
    RECOVERED = "recovered", _("Recovered")
    MISSED = "missed", _("Missed")
    LATE = "late", _("Late")
    RUNNING_LONG = "running_long", _("Running long")
    #: No scheduler heartbeated for a while (told by the next one that starts).
    SCHEDULER_DOWN = "scheduler_down", _("No scheduler heartbeat")
    LEADER_CHANGED = "leader_changed", _("Leader changed")
    #: A standby took the lead from a leader that stopped heartbeating.
    TAKEOVER = "takeover", _("A standby took over")
    TEST = "test", _("Test alert")


class ChannelKind(models.TextChoices):
    EMAIL = "email", _("E-mail")
    WEBHOOK = "webhook", _("Webhook (JSON, signed)")
    SLACK = "slack", _("Slack-compatible incoming webhook")


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    #: Taken by a sender, which records the outcome (or its lease runs out).
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    #: Every attempt failed (SCHEDULER_ALERT_MAX_ATTEMPTS): given up.
    FAILED = "failed", _("Failed")


class AuditSource(models.TextChoices):
    """The entry point a change came through (services/audit.py records it)."""

    ADMIN = "admin", _("Admin")
    API = "api", _("API")
    CLI = "cli", _("Command line")
    PYTHON = "python", _("Python API")
    #: A script's or handler's TASK_INFO schedule, applied by the scheduler.
    SYNC = "sync", _("Schedule sync")
    IMPORT = "import", _("Import")


class AuditAction(models.TextChoices):
    """What was done to a task (one audit entry each)."""

    CREATE = "create", _("Create")
    UPDATE = "update", _("Update")
    DELETE = "delete", _("Delete")
    PAUSE = "pause", _("Pause")
    RESUME = "resume", _("Resume")
    ENABLE = "enable", _("Enable")
    DISABLE = "disable", _("Disable")
    RUN_NOW = "run_now", _("Run now")
    RUN_WITH_PARAMETERS = "run_with_parameters", _("Run with parameters")
    CANCEL = "cancel", _("Cancel a run")
    RELEASE_LOCK = "release_lock", _("Force-release a lock")


class ExecutorName(StrEnum):
    """Where executions run: the values of SCHEDULER_EXECUTOR.

    A setting's values, not a field's: no labels to translate, nothing shows them.
    """

    #: Inside runscheduler (in its handler processes, or threads: Isolation).
    INLINE = "inline"
    #: Celery workers.
    CELERY = "celery"


class Isolation(StrEnum):
    """How the inline executor runs handlers: the values of SCHEDULER_ISOLATION."""

    #: In handler processes runscheduler supervises (runtime/processes.py).
    PROCESS = "process"
    #: In threads of runscheduler itself.
    THREAD = "thread"
