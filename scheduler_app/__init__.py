"""Scheduled tasks for Django: `handler` registers handlers, which call `task_log` and kin."""

from .handlers.registry import handler
from .tasklog import task_extend_lock, task_log, task_progress

__all__ = ["handler", "task_extend_lock", "task_log", "task_progress"]
