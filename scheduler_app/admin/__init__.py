"""The admin, the main UI: tasks, executions, scheduler instances, locks and health pages.

Split by model (operations.py: instances and locks, with the Health and Locks
pages; alerts.py: alert channels and alerts; audit.py: the audit trail);
importing this package registers everything with admin.site.
"""

from .alerts import AlertAdmin, AlertChannelAdmin
from .audit import AuditEntryAdmin
from .executions import TaskExecutionAdmin
from .operations import SchedulerInstanceAdmin, SchedulerLockAdmin
from .task_admin import ScheduledTaskAdmin

__all__ = [
    "AlertAdmin",
    "AlertChannelAdmin",
    "AuditEntryAdmin",
    "ScheduledTaskAdmin",
    "SchedulerInstanceAdmin",
    "SchedulerLockAdmin",
    "TaskExecutionAdmin",
]

from ..api import admin as _api_admin  # noqa: E402,F401
