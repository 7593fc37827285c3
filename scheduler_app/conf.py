"""The scheduler's settings: the one table of them, read from Django settings on access."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from .choices import ExecutorName, Isolation


@dataclass(frozen=True)
class Setting:
    """A SCHEDULER_* setting: its default, whose type is the setting's, and its use."""

    default: bool | int | float | str | tuple[str, ...]
    help: str
    #: A system check refuses a value <= 0 (checks.py).
    positive: bool = False
    #: A system check refuses a smaller value (checks.py), e.g. a cap with no room
    #: for the marker saying what it cut.
    at_least: int = 0


#: Every SCHEDULER_* setting, its default and what it does: the one table of them.
#: config/settings.py reads each from the environment variable of the same name
#: (the default's type picks the reader); .env.example lists each with its default,
#: and tests/test_settings.py keeps the three in agreement.
SETTINGS: dict[str, Setting] = {
    "SCHEDULER_ENABLED": Setting(
        True,
        "Fire tasks at all (a scheduler with this off still heartbeats and starts "
        "run-now requests).",
    ),
    "SCHEDULER_SCRIPTS_PATH": Setting(
        "scripts",
        "Folder scanned for `scripts:<file>` handlers; a relative path is relative to "
        "the project (settings.BASE_DIR, beside manage.py), resolved on access.",
    ),
    "SCHEDULER_HANDLER_MODULES": Setting(
        (),
        "Modules whose public functions and BaseTask subclasses may be handlers, for "
        "code that cannot use the @scheduler_app.handler decorator (comma-separated "
        "in the environment). Scripts and decorated handlers need no entry; standard "
        "library modules never count.",
    ),
    "SCHEDULER_HISTORY_DAYS": Setting(
        30,
        "Executions older than this many days are deleted by the cleanup_executions "
        "task (and instance rows not heard of for as long).",
        positive=True,
    ),
    "SCHEDULER_EXECUTOR": Setting(
        # The plain value: the default's type picks the environment's reader.
        ExecutorName.INLINE.value,
        'Where executions run: "inline" (inside runscheduler) or "celery" (workers).',
    ),
    "SCHEDULER_ISOLATION": Setting(
        Isolation.PROCESS.value,
        'How the inline executor runs handlers: "process" (in handler processes '
        "runscheduler supervises: a crash, a hang or a leak costs only its run) or "
        '"thread" (in threads of runscheduler itself: faster to start, no protection).',
    ),
    "SCHEDULER_WORKER_PROCESSES": Setting(
        4,
        "Handler processes of runscheduler (SCHEDULER_ISOLATION=process): at most "
        "this many runs at once.",
        positive=True,
    ),
    "SCHEDULER_WORKER_MAX_RUNS": Setting(
        0,
        "A handler process is replaced after this many runs (0: never).",
    ),
    "SCHEDULER_WORKER_MAX_MEMORY_MB": Setting(
        512,
        "A handler process is replaced after a run that leaves it with more resident "
        "memory than this (0: never).",
    ),
    "SCHEDULER_KILL_GRACE_SECONDS": Setting(
        5,
        "A handler process past its run's timeout (or not stopping on a cancel) gets "
        "SIGTERM, and SIGKILL this many seconds later, with its child processes.",
        positive=True,
    ),
    "SCHEDULER_THREAD_POOL_SIZE": Setting(
        10,
        "Threads running handlers inside runscheduler (SCHEDULER_ISOLATION=thread).",
        positive=True,
    ),
    "SCHEDULER_LEADER_LOCK_ENABLED": Setting(
        True, "Leader election among several runscheduler instances."
    ),
    "SCHEDULER_LEADER_LOCK_KEY": Setting(
        "scheduler:leader", "The key of the leader lease."
    ),
    "SCHEDULER_LEADER_LOCK_TTL": Setting(
        30,
        "Seconds the leader lease lasts unless refreshed.",
        positive=True,
    ),
    "SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL": Setting(
        10,
        "Seconds between two refreshes of the leader lease (at most half its TTL).",
    ),
    "SCHEDULER_TASK_LOCK_TTL": Setting(
        60,
        "Task lock lifetime in seconds; a running execution extends it while it lives.",
        positive=True,
    ),
    "SCHEDULER_REDIS_PREFIX": Setting(
        "scheduler:", "Prefix of every Redis key the scheduler (and its broker) writes."
    ),
    "SCHEDULER_LOG_PUBLISH_INTERVAL": Setting(
        0.3,
        "Live log: a run's new lines are flushed at most this often (seconds).",
        positive=True,
    ),
    "SCHEDULER_LOG_BUFFER_MAX_LINES": Setting(
        20000,
        "Live log: a run keeps at most this many lines.",
        positive=True,
    ),
    "SCHEDULER_LOG_REDIS_TTL": Setting(
        3600,
        "With Redis (livelog): a run's live lines expire this many seconds after its "
        "last write.",
        positive=True,
    ),
    "SCHEDULER_LOG_ROW_FLUSH_INTERVAL": Setting(
        5.0,
        "With Redis (livelog): a running run's row is updated only this often "
        "(seconds), while Redis carries the live view.",
        positive=True,
    ),
    "SCHEDULER_LOG_MAX_BYTES": Setting(
        1024 * 1024,
        "A run's log keeps at most this many bytes (UTF-8), its first and its last "
        "lines, with a marker saying how many were dropped; a line longer than a "
        "quarter of it is cut. With Redis, the live list keeps half of it.",
        positive=True,
    ),
    "SCHEDULER_ERROR_MAX_BYTES": Setting(
        64 * 1024,
        "A run's error message keeps at most this many bytes (UTF-8): its start and "
        "its end, with a line saying how many characters were cut between them.",
        positive=True,
        at_least=1024,
    ),
    "SCHEDULER_TRACEBACK_MAX_BYTES": Setting(
        256 * 1024,
        "A run's traceback keeps at most this many bytes (UTF-8): its start and its "
        "end (where the error was raised), with a line saying how many characters "
        "were cut between them.",
        positive=True,
        at_least=1024,
    ),
    "SCHEDULER_RESULT_MAX_BYTES": Setting(
        256 * 1024,
        "A run's result whose JSON has more bytes (UTF-8) than this is stored as "
        '{"truncated": true, "size_bytes": ..., "preview": ...} (its size and the '
        "start of its JSON); the run keeps its status, and its log says so.",
        positive=True,
        at_least=1024,
    ),
    "SCHEDULER_HEARTBEAT_INTERVAL": Setting(
        5.0, "Seconds between two heartbeats of an instance."
    ),
    "SCHEDULER_INSTANCE_STALE_SECONDS": Setting(
        30, "An instance silent for this many seconds is gone (its runs abandoned)."
    ),
    "SCHEDULER_CLOCK_SKEW_WARN_SECONDS": Setting(
        2.0,
        "Each heartbeat measures this machine's clock against the database "
        "server's; a difference over this many seconds is logged as a warning "
        "(fires follow this machine's clock).",
        positive=True,
    ),
    "SCHEDULER_SHUTDOWN_GRACE_SECONDS": Setting(
        30,
        "On SIGTERM, running executions get this long to finish before they are "
        "interrupted.",
    ),
    "SCHEDULER_METRICS_PORT": Setting(
        0,
        "runscheduler serves its own Prometheus figures (fire lateness, "
        "claim-to-start, fires, claims, loop tick delay) on this port, at /metrics "
        "(runscheduler --metrics-port overrides it; 0: off, nothing listens).",
    ),
    "SCHEDULER_METRICS_ADDR": Setting(
        "127.0.0.1",
        "The address SCHEDULER_METRICS_PORT listens on (runscheduler --metrics-addr "
        "overrides it; 0.0.0.0 or :: for every interface).",
    ),
    "SCHEDULER_DEFAULT_QUEUE": Setting(
        "scheduler", "Celery queue for tasks whose `queue` field is blank."
    ),
    "SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS": Setting(
        30,
        "On Celery a task's timeout_seconds is the soft time limit (an exception in "
        "the handler); the worker process is killed this many seconds later.",
        positive=True,
    ),
    # -- health and alerts (services/health.py, services/alerts.py) ---------------
    "SCHEDULER_HEALTH_CHECK_SECONDS": Setting(
        2.0,
        "The leader works out every task's health this often (seconds) and decides "
        "the alerts its changes call for.",
        positive=True,
    ),
    "SCHEDULER_ALERT_FAILURE_THRESHOLD": Setting(
        1,
        "A task is failing after this many failed runs in a row (a task's own "
        "failure threshold overrides it).",
        positive=True,
    ),
    "SCHEDULER_ALERT_RECOVERY_THRESHOLD": Setting(
        1,
        "A failing or missed task is up again after this many successful runs in a "
        "row (a task's own recovery threshold overrides it).",
        positive=True,
    ),
    "SCHEDULER_ALERT_GRACE_SECONDS": Setting(
        60,
        "A task is late when a fire has not started this many seconds after its "
        "time (a task's own alert grace overrides it).",
        positive=True,
    ),
    "SCHEDULER_ALERT_MAX_RUN_SECONDS": Setting(
        0,
        "A run going on longer than this many seconds makes its task running_long, "
        "a warning, unlike timeout_seconds which stops the run (a task's own "
        "expected maximum run time overrides it; 0: no such warning).",
    ),
    "SCHEDULER_ALERT_EMAILS": Setting(
        (),
        "Addresses every alert of the tasks that name no channel of their own is "
        "mailed to, with Django's mail settings (comma-separated in the "
        "environment), beside the default channels made in the admin.",
    ),
    "SCHEDULER_ALERT_WEBHOOK_URLS": Setting(
        (),
        "URLs every alert of the tasks that name no channel of their own is posted "
        "to as JSON (comma-separated in the environment); a hooks.slack.com URL "
        "gets Slack's format.",
    ),
    "SCHEDULER_ALERT_WEBHOOK_SECRET": Setting(
        "",
        "The key of the X-Scheduler-Signature header (HMAC-SHA256 of the body) of "
        "the posts to SCHEDULER_ALERT_WEBHOOK_URLS; empty: not signed.",
    ),
    "SCHEDULER_ALERT_TIMEOUT_SECONDS": Setting(
        10.0,
        "A webhook or mail server that has not answered within this many seconds "
        "fails the attempt (a channel's own timeout overrides it).",
        positive=True,
    ),
    "SCHEDULER_ALERT_MAX_ATTEMPTS": Setting(
        12,
        "Attempts at delivering an alert to a channel before it is given up "
        "(`failed`, shown in the admin).",
        positive=True,
    ),
    "SCHEDULER_ALERT_RETRY_SECONDS": Setting(
        5.0,
        "The wait before the second attempt at a delivery; each next wait doubles, "
        "up to 5 minutes.",
        positive=True,
    ),
    "SCHEDULER_ALERT_SUMMARY_AFTER": Setting(
        5,
        "A channel gets at most this many task alerts a minute one by one; more "
        "(a scheduler outage changes every task at once) go out as one summary.",
        positive=True,
    ),
    # -- audit trail (services/audit.py) ----------------------------------------
    "SCHEDULER_AUDIT_DAYS": Setting(
        365,
        "Audit entries older than this many days are deleted by the "
        "cleanup_executions task.",
        positive=True,
    ),
    "SCHEDULER_REQUIRE_REASON_FOR": Setting(
        (),
        "Operations that must say why (comma-separated in the environment): any of "
        "pause, disable, delete, release_lock. Without a reason they are refused.",
    ),
    "SCHEDULER_SITE_URL": Setting(
        "",
        "The admin's address as people reach it, e.g. https://jobs.example.com: "
        "alerts link to the task and the run with it (empty: paths only).",
    ),
    "SCHEDULER_HEARTBEAT_PING_URL": Setting(
        "",
        "A dead man's switch the leader pings (GET) every "
        "SCHEDULER_HEARTBEAT_PING_SECONDS, e.g. https://hc-ping.com/<uuid>; "
        '"/fail" is appended while the scheduler is degraded. Empty: no ping.',
    ),
    "SCHEDULER_HEARTBEAT_PING_SECONDS": Setting(
        60.0,
        "Seconds between two pings of SCHEDULER_HEARTBEAT_PING_URL.",
        positive=True,
    ),
    "SCHEDULER_METRICS_TOKEN": Setting(
        "",
        "The bearer token of GET /metrics (Prometheus: `Authorization: Bearer "
        "<token>`); empty: only a logged-in staff user may read the metrics.",
    ),
}

#: The default of each setting, by name.
DEFAULTS: dict[str, Any] = {name: setting.default for name, setting in SETTINGS.items()}


class AppSettings:
    """Attribute access to the SCHEDULER_* settings.

    Values are read from `django.conf.settings` on every access (never cached at
    import), so `override_settings` and pytest-django's `settings` fixture just work.
    """

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown scheduler setting: {name}")
        value = getattr(settings, name, DEFAULTS[name])
        if name == "SCHEDULER_SCRIPTS_PATH":
            # Relative paths are relative to the project (BASE_DIR), not to the
            # directory a process happens to start in.
            base = Path(getattr(settings, "BASE_DIR", "."))
            value = str(base / (value or DEFAULTS[name]))
        return value

    @property
    def redis_url(self) -> str:
        """The Redis URL, or "" when Redis is not configured."""
        return getattr(settings, "REDIS_URL", "") or ""


app_settings = AppSettings()
