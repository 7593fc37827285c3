"""Scheduled tasks for Django: handlers call `task_log` / `task_progress` from here."""

from .tasklog import task_log, task_progress

__all__ = ["task_log", "task_progress"]
