"""The service layer: every write and use case. Admin, API, CLI, engine and Celery call these."""

from ..runtime.run import Run
from .fires import executions_create_scheduled, executions_unstage
from .history import executions_cleanup
from .instances import (
    instance_heartbeat,
    instance_heartbeating,
    instance_id,
    instance_stopped,
    instances_alive_ids,
    instances_cleanup,
)
from .locks import lock_force_release
from .outcomes import (
    executions_fail,
    executions_interrupt,
    executions_recover_abandoned,
)
from .params import parameters_evaluate, parameters_validate, task_local_now
from .previews import SchedulePreview, schedule_preview
from .records import runs_finish
from .run_requests import RunRequests, task_request_run, tasks_request_run
from .runs import (
    ExecutionsCancelled,
    execution_cancel,
    execution_run,
    executions_cancel,
    run_claimed,
    runs_claim,
    runs_release,
)
from .tasks import (
    EDITABLE_FIELDS,
    StatusChange,
    task_check_version,
    task_create,
    task_delete,
    task_get,
    task_next_run,
    task_pause,
    task_resume,
    task_snapshot,
    task_update,
    tasks_delete,
    tasks_disable,
    tasks_enable,
    tasks_ensure_declared,
    tasks_pause,
    tasks_record_next_runs,
    tasks_resume,
    tasks_set_status,
    tasks_version,
    tasks_with_refused_handlers,
)
from .validation import (
    PAUSE_PERMISSION,
    TaskInvalid,
    may_change_status,
    task_validate,
)

__all__ = [
    "EDITABLE_FIELDS",
    "PAUSE_PERMISSION",
    "RunRequests",
    "Run",
    "SchedulePreview",
    "StatusChange",
    "TaskInvalid",
    "execution_cancel",
    "ExecutionsCancelled",
    "execution_run",
    "executions_cancel",
    "executions_cleanup",
    "executions_create_scheduled",
    "executions_fail",
    "executions_interrupt",
    "executions_recover_abandoned",
    "executions_unstage",
    "instance_heartbeat",
    "instance_heartbeating",
    "instance_id",
    "instance_stopped",
    "instances_alive_ids",
    "instances_cleanup",
    "lock_force_release",
    "may_change_status",
    "parameters_evaluate",
    "run_claimed",
    "runs_claim",
    "runs_finish",
    "runs_release",
    "parameters_validate",
    "schedule_preview",
    "task_check_version",
    "task_create",
    "task_delete",
    "task_get",
    "task_local_now",
    "task_next_run",
    "task_pause",
    "task_request_run",
    "task_resume",
    "task_snapshot",
    "task_update",
    "task_validate",
    "tasks_delete",
    "tasks_disable",
    "tasks_enable",
    "tasks_ensure_declared",
    "tasks_with_refused_handlers",
    "tasks_pause",
    "tasks_record_next_runs",
    "tasks_request_run",
    "tasks_resume",
    "tasks_set_status",
    "tasks_version",
]
