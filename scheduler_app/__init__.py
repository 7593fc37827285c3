"""Scheduled tasks for Django: handlers call `task_log` and its siblings from here."""

from .tasklog import task_extend_lock, task_log, task_progress

__all__ = ["task_extend_lock", "task_log", "task_progress"]
