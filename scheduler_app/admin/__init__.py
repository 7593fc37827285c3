"""The admin, the main UI: tasks, executions, scheduler instances, locks and health pages.

Split by model (operations.py: instances and locks, with the Health and Locks
pages); importing this package registers everything with admin.site.
"""

from .executions import TaskExecutionAdmin
from .operations import SchedulerInstanceAdmin, SchedulerLockAdmin
from .task_admin import ScheduledTaskAdmin

__all__ = [
    "ScheduledTaskAdmin",
    "SchedulerInstanceAdmin",
    "SchedulerLockAdmin",
    "TaskExecutionAdmin",
]

from ..api import admin as _api_admin  # noqa: E402,F401
