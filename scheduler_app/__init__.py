"""Scheduled tasks for Django: register handlers with `handler`; they call `task_log` and its siblings."""

from .handlers.registry import handler
from .tasklog import task_extend_lock, task_log, task_progress

__all__ = ["handler", "task_extend_lock", "task_log", "task_progress"]
