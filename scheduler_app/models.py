"""Tasks, their executions, scheduler instances, database-backed locks and API keys."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey

from .choices import (
    AlertKind,
    AuditAction,
    AuditSource,
    ChannelKind,
    DeliveryStatus,
    ExecutionStatus,
    FailureKind,
    HealthState,
    InstanceKind,
    OverlapPolicy,
    TaskStatus,
    TaskType,
    TriggerType,
)


class ScheduledTaskQuerySet(models.QuerySet["ScheduledTask"]):
    def active(self) -> ScheduledTaskQuerySet:
        return self.filter(status=ScheduledTask.Status.ACTIVE)

    def due(self, *, now: dt.datetime) -> ScheduledTaskQuerySet:
        """Active tasks whose next fire time has come (served by `task_due_idx`)."""
        return self.active().filter(next_run_at__lte=now)

    def schedulable(self) -> ScheduledTaskQuerySet:
        """Active tasks the scheduler fires on their schedule (manual ones: on request)."""
        return self.active().exclude(task_type=ScheduledTask.TaskType.MANUAL)


class ScheduledTask(models.Model):
    TaskType = TaskType
    Status = TaskStatus
    OverlapPolicy = OverlapPolicy

    name = models.CharField(
        _("name"),
        max_length=200,
        unique=True,
        help_text=_("Unique; the name used by `manage.py run_task`."),
    )
    description = models.TextField(_("description"), blank=True, default="")
    task_type = models.CharField(
        _("type"), max_length=16, choices=TaskType.choices, default=TaskType.CRON
    )
    cron_expression = models.CharField(
        _("cron expression"),
        max_length=200,
        blank=True,
        default="",
        help_text=_(
            "5 fields (minute hour day month weekday), 6 with seconds first, "
            "or a macro such as @daily."
        ),
    )
    interval_seconds = models.PositiveIntegerField(
        _("interval (seconds)"), null=True, blank=True
    )
    run_date = models.DateTimeField(_("run date"), null=True, blank=True)
    timezone = models.CharField(
        _("time zone"),
        max_length=64,
        blank=True,
        default="",
        help_text=_(
            "IANA name such as Europe/Paris; blank means the project time zone."
        ),
    )
    handler_path = models.CharField(
        _("handler"),
        max_length=255,
        help_text=_("scripts:<file> or module:function (or module:Class)."),
    )
    handler_kwargs = models.JSONField(
        _("parameters"),
        default=dict,
        blank=True,
        help_text=_(
            "Parameter name → expression evaluated at each run, e.g. "
            '{"days": "7", "since": "date.today() - timedelta(days=1)"}.'
        ),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE
    )
    is_system = models.BooleanField(
        _("system task"),
        default=False,
        help_text=_("System tasks can be paused but not deleted."),
    )
    overlap_policy = models.CharField(
        _("overlap policy"),
        max_length=16,
        choices=OverlapPolicy.choices,
        default=OverlapPolicy.SKIP,
    )
    max_instances = models.PositiveIntegerField(
        _("max concurrent runs"),
        default=0,
        help_text=_(
            "With the allow policy: at most this many runs at once (0 = no cap)."
        ),
    )
    queue = models.CharField(
        _("queue"),
        max_length=100,
        blank=True,
        default="",
        help_text=_("Celery queue; blank means the default queue."),
    )
    timeout_seconds = models.PositiveIntegerField(
        _("timeout (seconds)"), default=0, help_text=_("0 = no timeout.")
    )
    max_retries = models.PositiveIntegerField(_("max retries"), default=0)
    retry_delay_seconds = models.PositiveIntegerField(
        _("retry delay (seconds)"), default=60
    )
    retry_backoff = models.BooleanField(
        _("exponential backoff"),
        default=False,
        help_text=_("Double the retry delay after each failed attempt."),
    )
    misfire_grace_seconds = models.PositiveIntegerField(
        _("misfire grace (seconds)"),
        default=60,
        help_text=_(
            "A fire missed by more than this (e.g. during downtime) is dropped."
        ),
    )
    coalesce = models.BooleanField(
        _("coalesce"),
        default=True,
        help_text=_("Run missed fires once instead of once per missed fire."),
    )
    jitter_seconds = models.PositiveIntegerField(
        _("jitter (seconds)"),
        default=0,
        help_text=_("Delay each fire by a random 0..N seconds."),
    )
    last_run_at = models.DateTimeField(_("last run"), null=True, blank=True)
    next_run_at = models.DateTimeField(_("next run"), null=True, blank=True)
    run_count = models.PositiveIntegerField(_("runs"), default=0)
    success_count = models.PositiveIntegerField(_("successes"), default=0)
    fail_count = models.PositiveIntegerField(_("failures"), default=0)
    #: Runs skipped (overlap policy) and cancelled, counted as they end, so the
    #: figures (GET /metrics) keep counting whatever the cleanup deletes.
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    cancelled_count = models.PositiveIntegerField(_("cancelled"), default=0)
    #: Running totals of the finished runs (succeeded or failed) that have a
    #: duration, kept by the engine with the counters: the average duration is
    #: their quotient, read and sorted without touching the executions.
    duration_total_ms = models.PositiveBigIntegerField(
        _("total duration (ms)"),
        default=0,
        help_text=_("Sum of the durations of the finished runs, e.g. 12500."),
    )
    duration_count = models.PositiveIntegerField(
        _("timed runs"),
        default=0,
        help_text=_("How many finished runs the total duration adds up, e.g. 5."),
    )
    # -- health and alerts (services/health.py) ----------------------------------
    #: Kept by the leader's health check, never by a form: what the schedule and
    #: the runs say of the task, and since when.
    health = models.CharField(
        _("health"),
        max_length=16,
        choices=HealthState.choices,
        default=HealthState.NEW,
        editable=False,
    )
    health_since = models.DateTimeField(
        _("health since"), null=True, blank=True, editable=False
    )
    failure_threshold = models.PositiveIntegerField(
        _("failure threshold"),
        null=True,
        blank=True,
        help_text=_(
            "Failing after this many failed runs in a row, e.g. 3; blank: "
            "SCHEDULER_ALERT_FAILURE_THRESHOLD (1)."
        ),
    )
    recovery_threshold = models.PositiveIntegerField(
        _("recovery threshold"),
        null=True,
        blank=True,
        help_text=_(
            "Up again after this many successful runs in a row, e.g. 2; blank: "
            "SCHEDULER_ALERT_RECOVERY_THRESHOLD (1)."
        ),
    )
    alert_grace_seconds = models.PositiveIntegerField(
        _("alert grace (seconds)"),
        null=True,
        blank=True,
        help_text=_(
            "Late when a fire has not started this long after its time, e.g. 300; "
            "blank: SCHEDULER_ALERT_GRACE_SECONDS (60)."
        ),
    )
    max_run_seconds = models.PositiveIntegerField(
        _("expected maximum run time (seconds)"),
        null=True,
        blank=True,
        help_text=_(
            "A run going on longer is reported running long (it goes on; the "
            "timeout stops a run), e.g. 600; blank: SCHEDULER_ALERT_MAX_RUN_SECONDS "
            "(0: never)."
        ),
    )
    alert_channels: models.ManyToManyField[AlertChannel, Any] = models.ManyToManyField(
        "AlertChannel",
        blank=True,
        related_name="tasks",
        verbose_name=_("alert channels"),
        help_text=_(
            "Where this task's alerts go; none chosen: the default channels and "
            "SCHEDULER_ALERT_EMAILS / SCHEDULER_ALERT_WEBHOOK_URLS."
        ),
    )
    #: Kept with the counters (db/counters.py): the failed and the successful runs
    #: in a row at the end of the task's history (one of them is 0).
    fail_streak = models.PositiveIntegerField(
        _("failures in a row"), default=0, editable=False
    )
    success_streak = models.PositiveIntegerField(
        _("successes in a row"), default=0, editable=False
    )
    #: When the scheduler last found fires of the task that never ran (dropped
    #: past their misfire grace, or coalesced into one run).
    last_missed_at = models.DateTimeField(
        _("last missed fire"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    #: Bumped by every change of the task's definition or status (never by the
    #: engine's bookkeeping: next run, counters): the API's ETag, and what the admin
    #: form checks so that no one saves over a change made since they opened it.
    version = models.PositiveIntegerField(_("version"), default=1, editable=False)

    objects = ScheduledTaskQuerySet.as_manager()

    class Meta:
        verbose_name = _("scheduled task")
        verbose_name_plural = _("scheduled tasks")
        ordering = ["name"]
        permissions = [
            ("run_scheduledtask", _("Can run tasks now")),
            ("pause_scheduledtask", _("Can pause and resume tasks")),
            ("release_lock_scheduledtask", _("Can force-release task locks")),
        ]
        indexes = [
            # The scheduler's due-task query: status = active AND next_run_at <= now.
            models.Index(fields=["status", "next_run_at"], name="task_due_idx"),
            # The health filter and sort of the task list and the API.
            models.Index(fields=["health", "name"], name="task_health_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(task_type=TaskType.CRON) | ~Q(cron_expression=""),
                name="task_cron_needs_expression",
                violation_error_message=_("A cron task needs a cron expression."),
            ),
            models.CheckConstraint(
                condition=~Q(task_type=TaskType.INTERVAL) | Q(interval_seconds__gt=0),
                name="task_interval_needs_seconds",
                violation_error_message=_(
                    "An interval task needs a positive number of seconds."
                ),
            ),
            models.CheckConstraint(
                condition=~Q(task_type=TaskType.DATE) | Q(run_date__isnull=False),
                name="task_date_needs_run_date",
                violation_error_message=_("A one-off task needs a run date."),
            ),
            models.CheckConstraint(
                condition=Q(task_type__in=TaskType.values),
                name="task_type_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=TaskStatus.values),
                name="task_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(overlap_policy__in=OverlapPolicy.values),
                name="task_overlap_policy_valid",
            ),
            models.CheckConstraint(
                condition=Q(health__in=HealthState.values),
                name="task_health_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def uses_lock(self) -> bool:
        """Whether a run must hold the task lock (overlap policies skip and replace)."""
        return self.overlap_policy != self.OverlapPolicy.ALLOW

    @property
    def fired_once(self) -> bool:
        """A one-off (date) task that ran at or after its run date: it never fires again."""
        return (
            self.last_run_at is not None
            and self.run_date is not None
            and self.last_run_at >= self.run_date
        )

    @property
    def success_rate(self) -> float | None:
        finished = self.success_count + self.fail_count
        return self.success_count / finished if finished else None

    @property
    def average_duration_ms(self) -> float | None:
        """The mean duration of the finished runs (None before any)."""
        if not self.duration_count:
            return None
        return self.duration_total_ms / self.duration_count


class TaskExecutionQuerySet(models.QuerySet["TaskExecution"]):
    def pending(self) -> TaskExecutionQuerySet:
        return self.filter(status=TaskExecution.Status.PENDING)

    def still_pending(self, ids: Iterable[int]) -> TaskExecutionQuerySet:
        """Those of `ids` that are still pending (not claimed, cancelled or ended)."""
        return self.filter(pk__in=ids, status=TaskExecution.Status.PENDING)

    def not_staged(self, *, now: Any) -> TaskExecutionQuerySet:
        """Every run but the fires staged ahead of `now` (a time, or Now()): the
        runs that happened or are due, what "last run" and a history show."""
        return self.exclude(
            status=TaskExecution.Status.PENDING,
            trigger_type=TaskExecution.TriggerType.SCHEDULED,
            scheduled_for__gt=now,
        )

    def staged(self, *, after: dt.datetime) -> TaskExecutionQuerySet:
        """Fires the scheduler recorded ahead of their time (after `after`), not started."""
        return self.pending().filter(
            trigger_type=TaskExecution.TriggerType.SCHEDULED, scheduled_for__gt=after
        )

    def startable(self, *, now: dt.datetime) -> TaskExecutionQuerySet:
        """Pending runs whose retry delay (if any) has passed, oldest first.

        `run_task` runs its own (cli) executions in the foreground; nobody else may.
        """
        return (
            self.pending()
            .exclude(trigger_type=TaskExecution.TriggerType.CLI)
            .filter(Q(run_after__isnull=True) | Q(run_after__lte=now))
            .order_by("created_at", "id")
        )

    def waiting_for_delay(self, *, now: dt.datetime) -> dt.datetime | None:
        """When the first pending run still in its delay (a retry) becomes startable.

        Staged fires are left out: the scheduler that staged them starts them.
        """
        return (
            self.pending()
            .exclude(
                trigger_type__in=[
                    TaskExecution.TriggerType.CLI,
                    TaskExecution.TriggerType.SCHEDULED,
                ]
            )
            .filter(run_after__gt=now)
            .aggregate(first=models.Min("run_after"))["first"]
        )

    def running(self) -> TaskExecutionQuerySet:
        return self.filter(status=TaskExecution.Status.RUNNING)

    def unfinished(self) -> TaskExecutionQuerySet:
        return self.filter(
            status__in=[TaskExecution.Status.PENDING, TaskExecution.Status.RUNNING]
        )

    def older_than(self, when: dt.datetime) -> TaskExecutionQuerySet:
        return self.filter(created_at__lt=when)


class TaskExecution(models.Model):
    Status = ExecutionStatus
    TriggerType = TriggerType
    FailureKind = FailureKind

    FINISHED_STATUSES = (
        Status.SUCCESS,
        Status.FAILED,
        Status.SKIPPED,
        Status.CANCELLED,
        Status.MISSED,
    )
    #: Runs whose duration counts towards their task's average (the duration totals).
    TIMED_STATUSES = (Status.SUCCESS, Status.FAILED)

    task = models.ForeignKey(
        ScheduledTask,
        on_delete=models.CASCADE,
        related_name="executions",
        verbose_name=_("task"),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    failure_kind = models.CharField(
        _("failure kind"),
        max_length=16,
        choices=FailureKind.choices,
        blank=True,
        default="",
    )
    trigger_type = models.CharField(
        _("trigger"),
        max_length=16,
        choices=TriggerType.choices,
        default=TriggerType.MANUAL,
    )
    scheduled_for = models.DateTimeField(
        _("scheduled for"),
        null=True,
        blank=True,
        help_text=_("The fire time this run serves."),
    )
    attempt = models.PositiveIntegerField(_("attempt"), default=1)
    retry_of = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="retries",
        verbose_name=_("first attempt"),
    )
    run_after = models.DateTimeField(
        _("run after"),
        null=True,
        blank=True,
        help_text=_("A pending run does not start before this time (retry delay)."),
    )
    kwargs_overrides = models.JSONField(
        _("parameter overrides"),
        default=dict,
        blank=True,
        help_text=_("Expressions given for this run only, replacing the task's."),
    )
    kwargs = models.JSONField(_("evaluated parameters"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(
        _("duration (ms)"), null=True, blank=True
    )
    result = models.JSONField(_("result"), null=True, blank=True)
    error_message = models.TextField(_("error"), blank=True, default="")
    error_traceback = models.TextField(_("traceback"), blank=True, default="")
    log_output = models.TextField(_("log"), blank=True, default="")
    progress_done = models.PositiveBigIntegerField(
        _("progress done"), null=True, blank=True
    )
    progress_total = models.PositiveBigIntegerField(
        _("progress total"), null=True, blank=True
    )
    instance_id = models.CharField(
        _("instance"),
        max_length=200,
        blank=True,
        default="",
        help_text=_("The scheduler instance or worker that ran it."),
    )
    cancel_requested = models.BooleanField(_("cancel requested"), default=False)
    #: Who asked for the run, as services/audit.py's Origin.label tells it; empty
    #: for the scheduler's own fires and their retries.
    requested_by = models.CharField(
        _("requested by"),
        max_length=300,
        blank=True,
        default="",
        editable=False,
        help_text=_(
            "Who asked for this run and from where, e.g. “alice (admin)”; empty "
            "for a fire of the task's schedule."
        ),
    )
    run_slot = models.PositiveSmallIntegerField(
        _("run slot"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "Which of its task's places a run took when it started: 0 for a task "
            "that never overlaps itself, 0 to N-1 for N concurrent runs. The "
            "database lets no two running runs of a task hold one place, whatever "
            "the lock store says."
        ),
    )

    objects = TaskExecutionQuerySet.as_manager()

    class Meta:
        verbose_name = _("task execution")
        verbose_name_plural = _("task executions")
        ordering = ["-created_at", "-id"]
        indexes = [
            # A task's history, newest first (inline, latest run, run chart).
            models.Index(fields=["task", "-created_at"], name="exec_task_created_idx"),
            # A task's executions in the lists' order (admin list, API cursor pages):
            # filtering by a task with no runs is one index lookup, not a scan of
            # the whole history by primary key.
            models.Index(fields=["task", "-id"], name="exec_task_id_idx"),
            # Executions by status (pending pick-up, running recovery, admin filter).
            models.Index(
                fields=["status", "created_at"], name="exec_status_created_idx"
            ),
            # Retention cleanup and the time-ordered changelist.
            models.Index(fields=["created_at"], name="exec_created_idx"),
            # Each task's latest success (GET /metrics: the last success's time):
            # one probe a task, however long the history of a task that fails.
            models.Index(
                fields=["task", "-created_at"],
                condition=Q(status=ExecutionStatus.SUCCESS),
                name="exec_task_success_idx",
            ),
        ]
        constraints = [
            # A fire is recorded once, whichever scheduler instance fires it: a
            # second insert for the same task and fire time fails.
            models.UniqueConstraint(
                fields=["task", "scheduled_for"],
                condition=Q(trigger_type=TriggerType.SCHEDULED),
                name="exec_one_per_fire",
            ),
            # The guarantee behind the overlap policies (runtime/overlap.py): the
            # task locks live in Redis, which can lose them (a flush, a restart
            # without persistence); this cannot be lost.
            models.UniqueConstraint(
                fields=["task", "run_slot"],
                condition=Q(status=ExecutionStatus.RUNNING, run_slot__isnull=False),
                name="exec_one_running_per_slot",
            ),
            models.CheckConstraint(
                condition=Q(status__in=ExecutionStatus.values),
                name="exec_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(trigger_type__in=TriggerType.values),
                name="exec_trigger_type_valid",
            ),
        ]

    def __str__(self) -> str:
        # What the admin's breadcrumb and the task page's inline show: the task's
        # name when it is at hand (never a query for it), the number, the status.
        values = {"id": self.pk, "status": self.get_status_display()}
        if TaskExecution.task.is_cached(self):
            return gettext("%(task)s, run #%(id)s (%(status)s)") % {
                **values,
                "task": self.task.name,
            }
        return gettext("Run #%(id)s (%(status)s)") % values

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED_STATUSES

    @property
    def duration(self) -> dt.timedelta | None:
        if self.duration_ms is None:
            return None
        return dt.timedelta(milliseconds=self.duration_ms)

    @property
    def progress_percent(self) -> float | None:
        if not self.progress_total:
            return None
        return min(100.0, 100.0 * (self.progress_done or 0) / self.progress_total)

    def mark_running(self, *, instance_id: str, now: dt.datetime) -> None:
        """Set the fields of a run that starts (the caller saves)."""
        self.status = self.Status.RUNNING
        self.instance_id = instance_id
        self.started_at = now

    def mark_finished(
        self,
        *,
        status: str,
        now: dt.datetime,
        result: Any = None,
        error_message: str = "",
        error_traceback: str = "",
        failure_kind: str = "",
    ) -> None:
        """Set the fields of a run that ends (the caller saves)."""
        self.status = status
        self.finished_at = now
        if self.started_at is not None:
            self.duration_ms = max(
                0, int((now - self.started_at).total_seconds() * 1000)
            )
        self.result = result
        self.error_message = error_message
        self.error_traceback = error_traceback
        self.failure_kind = failure_kind


class SchedulerInstance(models.Model):
    """A live (or recently live) runscheduler process or worker, kept by its heartbeat."""

    Kind = InstanceKind

    instance_id = models.CharField(_("instance"), max_length=200, unique=True)
    kind = models.CharField(
        _("kind"),
        max_length=16,
        choices=Kind.choices,
        default=Kind.SCHEDULER,
        help_text=_(
            "A runscheduler process (scheduler), a Celery worker process that "
            "runs executions (worker), or a run_task command running one (cli)."
        ),
    )
    hostname = models.CharField(_("host"), max_length=255, blank=True, default="")
    pid = models.PositiveIntegerField(_("process id"), null=True, blank=True)
    version = models.CharField(_("version"), max_length=50, blank=True, default="")
    is_leader = models.BooleanField(_("leader"), default=False)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    last_heartbeat_at = models.DateTimeField(_("last heartbeat"), default=timezone.now)
    stopped_at = models.DateTimeField(_("stopped"), null=True, blank=True)
    degraded_reason = models.TextField(
        _("degraded because"),
        blank=True,
        default="",
        help_text=_(
            "What keeps this instance from doing its work, as its last heartbeat "
            "said; empty while it can. E.g. “Redis at redis://10.0.0.5:6379/0 is "
            "unreachable since 2026-03-02T12:00:05+00:00 (ConnectionError: …)”."
        ),
    )

    class Meta:
        verbose_name = _("scheduler instance")
        verbose_name_plural = _("scheduler instances")
        ordering = ["-last_heartbeat_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=InstanceKind.values),
                name="instance_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.instance_id


class SchedulerLock(models.Model):
    """A lock held in the database (the backend used when Redis is not configured)."""

    key = models.CharField(_("key"), max_length=255, unique=True)
    token = models.CharField(_("owner token"), max_length=64)
    owner = models.CharField(_("owner"), max_length=200, blank=True, default="")
    acquired_at = models.DateTimeField(_("acquired"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))

    class Meta:
        verbose_name = _("lock")
        verbose_name_plural = _("locks")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class SchedulerState(models.Model):
    """Small named values the scheduler keeps in the database.

    `tasks_version` is bumped by every change to task definitions; running
    schedulers compare it on every tick (one indexed read) to notice changes made
    by any process, whatever its clock says. `declared:<handler>` records that a
    handler's declared default schedule was turned into a task once.
    """

    TASKS_VERSION = "tasks_version"

    key = models.CharField(_("key"), max_length=255, unique=True)
    value = models.BigIntegerField(_("value"), default=0)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("scheduler state")
        verbose_name_plural = _("scheduler state")

    def __str__(self) -> str:
        return "%s=%s" % (self.key, self.value)


class AlertChannel(models.Model):
    """Somewhere alerts go: addresses to mail, or a URL to post to."""

    Kind = ChannelKind

    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(
        _("kind"), max_length=16, choices=ChannelKind.choices, default=ChannelKind.EMAIL
    )
    target = models.TextField(
        _("addresses or URL"),
        help_text=_(
            "E-mail: addresses, comma-separated, e.g. ops@example.com, "
            "oncall@example.com. Webhook and Slack: the URL to post to, e.g. "
            "https://alerts.example.com/hook."
        ),
    )
    secret = models.CharField(
        _("signing secret"),
        max_length=200,
        blank=True,
        default="",
        help_text=_(
            "Webhook: the key of the X-Scheduler-Signature header "
            "(sha256=HMAC-SHA256 of the body); blank: not signed."
        ),
    )
    timeout_seconds = models.FloatField(
        _("timeout (seconds)"),
        null=True,
        blank=True,
        help_text=_(
            "An attempt that gets no answer this soon fails (and is retried); "
            "blank: SCHEDULER_ALERT_TIMEOUT_SECONDS (10)."
        ),
    )
    is_default = models.BooleanField(
        _("default channel"),
        default=True,
        help_text=_("Used by every task that names no channel of its own."),
    )
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("alert channel")
        verbose_name_plural = _("alert channels")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ChannelKind.values),
                name="channel_kind_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Alert(models.Model):
    """One thing people are told about, decided once (the outbox's entry).

    Its deliveries, one per channel, carry it out; the sender in the leading
    scheduler delivers them, so an alert decided before a crash goes out after it.
    """

    Kind = AlertKind

    kind = models.CharField(_("kind"), max_length=16, choices=AlertKind.choices)
    task = models.ForeignKey(
        ScheduledTask,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="alerts",
        verbose_name=_("task"),
    )
    #: The task's name when the alert was decided (the task may be gone since).
    task_name = models.CharField(_("task name"), max_length=200, blank=True, default="")
    state = models.CharField(
        _("health"), max_length=16, choices=HealthState.choices, blank=True, default=""
    )
    previous_state = models.CharField(
        _("previous health"),
        max_length=16,
        choices=HealthState.choices,
        blank=True,
        default="",
    )
    message = models.TextField(_("message"))
    error = models.TextField(_("error"), blank=True, default="")
    execution = models.ForeignKey(
        TaskExecution,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("execution"),
    )
    details = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("decided"), default=timezone.now)

    class Meta:
        verbose_name = _("alert")
        verbose_name_plural = _("alerts")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["created_at"], name="alert_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=AlertKind.values), name="alert_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.message


class AlertDelivery(models.Model):
    """An alert on its way to one channel: pending until sent, retried until given up."""

    Status = DeliveryStatus

    alert = models.ForeignKey(
        Alert,
        on_delete=models.CASCADE,
        related_name="deliveries",
        verbose_name=_("alert"),
    )
    #: None for the channels of the settings (SCHEDULER_ALERT_EMAILS / _WEBHOOK_URLS).
    channel = models.ForeignKey(
        AlertChannel,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        verbose_name=_("channel"),
    )
    channel_kind = models.CharField(
        _("channel kind"), max_length=16, choices=ChannelKind.choices
    )
    target = models.TextField(_("addresses or URL"))
    status = models.CharField(
        _("status"),
        max_length=16,
        choices=DeliveryStatus.choices,
        default=DeliveryStatus.PENDING,
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), default=timezone.now)
    #: A sender that took the delivery (status sending) holds it until then; a
    #: sender that died with it leaves it to the next one after.
    lease_until = models.DateTimeField(_("taken until"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True, default="")
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    #: Sent as part of one summary message with this many alerts (0: on its own).
    summary_size = models.PositiveIntegerField(_("summarised with"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("alert delivery")
        verbose_name_plural = _("alert deliveries")
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sender's query: pending deliveries whose attempt is due.
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values),
                name="delivery_status_valid",
            ),
        ]

    def __str__(self) -> str:
        # Not the target: a Slack-compatible URL is its own key, and admin pages
        # print this to whoever may view alerts.
        return "%s → %s" % (self.alert_id, self.get_channel_kind_display())


class AlertAttempt(models.Model):
    """One try at a delivery: when, how it went, and what the other end said."""

    delivery = models.ForeignKey(
        AlertDelivery,
        on_delete=models.CASCADE,
        related_name="attempt_log",
        verbose_name=_("delivery"),
    )
    at = models.DateTimeField(_("at"), default=timezone.now)
    ok = models.BooleanField(_("delivered"))
    status_code = models.PositiveIntegerField(_("HTTP status"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    duration_ms = models.PositiveIntegerField(_("took (ms)"), default=0)

    class Meta:
        verbose_name = _("alert attempt")
        verbose_name_plural = _("alert attempts")
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return "%s %s" % (self.delivery_id, "ok" if self.ok else "failed")


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    def older_than(self, cutoff: dt.datetime) -> AuditEntryQuerySet:
        return self.filter(at__lt=cutoff)


class AuditEntry(models.Model):
    """One change to a task, or one operation on it: who, from where, what, why.

    Append-only, like the admin's LogEntry; services/audit.py (audit_record) is
    the only writer, in the transaction of the change it records. The task's
    name and the actor's username are kept as they were, so the entry still
    tells the story once the task or the user is gone.
    """

    Source = AuditSource
    Action = AuditAction

    at = models.DateTimeField(_("when"), default=timezone.now, editable=False)
    task = models.ForeignKey(
        "ScheduledTask",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_entries",
        verbose_name=_("task"),
        # audit_task_at_idx serves it (and the delete's SET NULL).
        db_index=False,
    )
    task_name = models.CharField(_("task name"), max_length=200)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )
    #: The username when the entry was written; empty for trusted code (CLI, Python).
    actor_name = models.CharField(_("user name"), max_length=150, blank=True)
    api_key_name = models.CharField(
        _("API key"),
        max_length=50,
        blank=True,
        help_text=_("The name of the API key the request authenticated with."),
    )
    source = models.CharField(_("source"), max_length=16, choices=AuditSource.choices)
    action = models.CharField(_("action"), max_length=24, choices=AuditAction.choices)
    #: Field name -> [before, after], as shown (services/audit.py audit_changes).
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    reason = models.TextField(_("reason"), blank=True)
    #: The run it concerns (run now, cancel): its id, kept when the run is gone.
    run_id = models.PositiveBigIntegerField(_("run"), null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit trail")
        ordering = ["-at", "-id"]
        indexes = [
            # A task's trail, newest first (its admin page, ?task= in the API).
            models.Index(fields=["task", "-at"], name="audit_task_at_idx"),
            # The whole trail by time (admin list, ?since=, the cleanup).
            models.Index(fields=["at"], name="audit_at_idx"),
            # ?task=<name> (a deleted task's entries) and ?actor=, and the
            # admin's user filter (the names recorded).
            models.Index(fields=["task_name", "-at"], name="audit_task_name_idx"),
            models.Index(fields=["actor_name", "-at"], name="audit_actor_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=AuditSource.values), name="audit_source_valid"
            ),
            models.CheckConstraint(
                condition=Q(action__in=AuditAction.values), name="audit_action_valid"
            ),
        ]

    def __str__(self) -> str:
        return "%s %s %s" % (self.at, self.action, self.task_name)


#: A key's last use is written again only once this much older (requests are many).
LAST_USE_PRECISION = dt.timedelta(minutes=1)


class UserAPIKey(AbstractAPIKey):
    """A key whose requests run as `user`, with exactly that user's permissions.

    Only a hash of the key is stored (`hashed_key`); the plain key is shown once,
    when the key is created in the admin.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=_("user"),
        help_text=_(
            "Requests made with this key act as this user, with their permissions; "
            "e.g. a “ci-bot” user allowed to view and run tasks."
        ),
    )

    last_used_at = models.DateTimeField(
        _("last used"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "When a request last authenticated with this key (to the minute). A key "
            "unused for long is a candidate for revoking."
        ),
    )

    class Meta:
        app_label = "scheduler_app"
        ordering = ("-created",)
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def record_use(self, now: dt.datetime) -> None:
        """Note that the key was used at `now`: at most one write a minute per key."""
        if (
            self.last_used_at is not None
            and now - self.last_used_at < LAST_USE_PRECISION
        ):
            return
        UserAPIKey.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
