"""Class-based handlers in the seed 001 style: BaseTask, TaskSchedule and TaskResult."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..choices import OverlapPolicy, TaskType
from .results import TaskResult

__all__ = ["BaseTask", "ScheduleType", "TaskResult", "TaskSchedule", "snake_case"]


class ScheduleType(StrEnum):
    """The seed's name for the task types: TaskType's values (ScheduleType.CRON ...)."""

    CRON = TaskType.CRON.value
    INTERVAL = TaskType.INTERVAL.value
    DATE = TaskType.DATE.value
    MANUAL = TaskType.MANUAL.value


@dataclass
class TaskSchedule:
    """A schedule declared in code; `allow_concurrent=False` is the "skip" policy."""

    schedule_type: ScheduleType
    cron_expression: str = ""
    interval_seconds: int | None = None
    run_date: datetime | None = None
    allow_concurrent: bool = False
    timeout_seconds: int = 0

    def as_task_fields(self) -> dict[str, Any]:
        """Return the matching ScheduledTask field values."""
        return {
            "task_type": ScheduleType(self.schedule_type).value,
            "cron_expression": self.cron_expression or "",
            "interval_seconds": self.interval_seconds,
            "run_date": self.run_date,
            "overlap_policy": (
                OverlapPolicy.ALLOW if self.allow_concurrent else OverlapPolicy.SKIP
            ),
            "timeout_seconds": self.timeout_seconds,
        }


class BaseTask:
    """Subclass, set `name`/`description`/`schedule`, and implement `run()`.

    Register it with `@scheduler_app.handler` (or list its module in
    SCHEDULER_HANDLER_MODULES) and use it as the handler "your.module:YourTask":
    each run makes a new instance and calls `run(**kwargs)`, which may be
    `async def` and returns a dict or a TaskResult.
    """

    name: str = ""
    description: str = ""
    schedule: TaskSchedule | None = None
    enabled: bool = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Each class gets its own default name, even under a named parent class,
        # so two task classes never share one.
        if not cls.__dict__.get("name"):
            cls.name = snake_case(cls.__name__)

    # Typed loosely on purpose: subclasses narrow the parameters and may be
    # `async def`, and type checkers accept any override of (*args, **kwargs) -> Any.
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Do the work; return a dict or a TaskResult (raising marks the run failed)."""
        raise NotImplementedError("%s must implement run()" % type(self).__name__)


def snake_case(name: str) -> str:
    """Return a class name in snake_case: "HTTPPingTask" → "http_ping_task"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
