"""Functions and classes the registry and parameter tests describe (tests/handlers).

They cover module:function and module:Class handlers, good and broken.
"""

# No `from __future__ import annotations` here: these annotations stay real
# objects, while test_params.py covers string annotations.

import datetime
from typing import Any

from scheduler_app.handlers.base import (
    BaseTask,
    ScheduleType,
    TaskResult,
    TaskSchedule,
)

NOT_CALLABLE = 42


def sync_accounts(days: int = 7, target: str = "all", **kwargs: Any) -> dict[str, Any]:
    """Synchronise accounts.

    More text that is not part of the description.
    """
    return {"days": days, "target": target, **kwargs}


async def fetch_report(when: datetime.date, limit: int | None = None) -> dict:
    return {"when": when, "limit": limit}


def real_annotations(
    count: int,
    ratio: float = 0.5,
    since: datetime.datetime | None = None,
    window: datetime.timedelta = datetime.timedelta(hours=6),
    at: datetime.time = datetime.time(8, 30),
    tags: list[str] = ["a"],  # noqa: B006 - read only, for the default expression
    options: dict[str, int] | None = None,
    anything=None,
) -> None:
    """Every supported annotation written as a real object."""


def positional_only(a: int, /, b: int = 1) -> None:
    """Cannot be called with keyword arguments."""


class SyncInventoryTask(BaseTask):
    """Inventory sync (docstring)."""

    name = "sync_inventory"
    description = "Synchronise inventory every hour"
    schedule = TaskSchedule(
        schedule_type=ScheduleType.INTERVAL,
        interval_seconds=3600,
        allow_concurrent=False,
    )

    def run(self, warehouse: str = "main") -> TaskResult:
        return TaskResult.success("synced", warehouse=warehouse, count=100)


class AsyncReportTask(BaseTask):
    """Builds the nightly report."""

    schedule = TaskSchedule(
        schedule_type=ScheduleType.CRON,
        cron_expression="0 2 * * *",
        allow_concurrent=True,
        timeout_seconds=600,
    )
    enabled = False

    async def run(self, *, day: datetime.date | None = None) -> dict[str, Any]:
        return {"day": day}


class NoRunClass:
    """A class with nothing to run."""


class AbstractTask(BaseTask):
    """Forgot to implement run()."""


class NeedsArgumentsTask(BaseTask):
    def __init__(self, client: object) -> None:
        self.client = client

    def run(self) -> dict[str, Any]:
        return {}


class DuckTypedTask:
    """Not a BaseTask subclass, but it has a run() method."""

    def run(self, value: int = 1) -> dict[str, int]:
        return {"value": value}
