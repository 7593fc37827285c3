"""The admin, the main UI: tasks, executions, scheduler instances, locks and health pages.

Split by model; importing this package registers everything with admin.site.
"""

from .executions import TaskExecutionAdmin
from .instances import SchedulerInstanceAdmin
from .tasks import ScheduledTaskAdmin

__all__ = ["ScheduledTaskAdmin", "SchedulerInstanceAdmin", "TaskExecutionAdmin"]

from ..api import admin as _api_admin  # noqa: E402,F401
