"""The scheduler's settings: defaults, read from Django settings on every access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    "SCHEDULER_ENABLED": True,
    # None: "scripts" beside manage.py (settings.BASE_DIR), resolved on access.
    "SCHEDULER_SCRIPTS_PATH": None,
    # Modules whose public functions and BaseTask classes may be handlers, beside
    # scripts and @handler-registered code (registry). Standard library modules never count.
    "SCHEDULER_HANDLER_MODULES": (),
    "SCHEDULER_HISTORY_DAYS": 30,
    "SCHEDULER_EXECUTOR": "inline",
    "SCHEDULER_THREAD_POOL_SIZE": 10,
    "SCHEDULER_LEADER_LOCK_ENABLED": True,
    "SCHEDULER_LEADER_LOCK_KEY": "scheduler:leader",
    "SCHEDULER_LEADER_LOCK_TTL": 30,
    "SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL": 10,
    "SCHEDULER_TASK_LOCK_TTL": 60,
    "SCHEDULER_REDIS_PREFIX": "scheduler:",
    "SCHEDULER_LOG_PUBLISH_INTERVAL": 0.3,
    "SCHEDULER_LOG_BUFFER_MAX_LINES": 20000,
    # With Redis (livelog): a run's live lines expire this long after its last write,
    # and its row is updated only this often while Redis carries the live view.
    "SCHEDULER_LOG_REDIS_TTL": 3600,
    "SCHEDULER_LOG_ROW_FLUSH_INTERVAL": 5.0,
    "SCHEDULER_HEARTBEAT_INTERVAL": 5.0,
    "SCHEDULER_INSTANCE_STALE_SECONDS": 30,
    "SCHEDULER_SHUTDOWN_GRACE_SECONDS": 30,
    "SCHEDULER_DEFAULT_QUEUE": "scheduler",
    "SCHEDULER_CELERY_HARD_LIMIT_GRACE_SECONDS": 30,
}


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
            value = str(base / (value or "scripts"))
        return value

    @property
    def redis_url(self) -> str:
        """The Redis URL, or "" when Redis is not configured."""
        return getattr(settings, "REDIS_URL", "") or ""


app_settings = AppSettings()
