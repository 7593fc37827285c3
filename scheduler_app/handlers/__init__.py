"""Task handlers: the registry and its parts, parameter specs, results and BaseTask."""

from .base import BaseTask, ScheduleType, TaskSchedule
from .params import ParamSpec, check_kwargs, coerce_value, specs_from_callable
from .registry import HandlerInfo, get_handler, handler, list_handlers, load_handler
from .results import Outcome, TaskResult, json_safe, outcome_from_return

__all__ = [
    "BaseTask",
    "HandlerInfo",
    "Outcome",
    "ParamSpec",
    "ScheduleType",
    "TaskResult",
    "TaskSchedule",
    "check_kwargs",
    "coerce_value",
    "get_handler",
    "handler",
    "json_safe",
    "list_handlers",
    "load_handler",
    "outcome_from_return",
    "specs_from_callable",
]
