"""The service layer: every write and use case. Admin, API, CLI, engine and Celery call these."""

from .executions import (
    execution_cancel,
    execution_run,
    executions_cleanup,
    executions_recover_abandoned,
)
from .instances import (
    instance_heartbeat,
    instance_heartbeating,
    instance_id,
    instance_stopped,
    instances_alive_ids,
)
from .params import parameters_evaluate, parameters_validate
from .tasks import (
    TaskInvalid,
    task_create,
    task_delete,
    task_get,
    task_local_now,
    task_next_run,
    task_pause,
    task_request_run,
    task_resume,
    task_save,
    task_update,
    task_validate,
    tasks_delete,
    tasks_request_run,
    tasks_set_status,
)

__all__ = [
    "TaskInvalid",
    "execution_cancel",
    "execution_run",
    "executions_cleanup",
    "executions_recover_abandoned",
    "instance_heartbeat",
    "instance_heartbeating",
    "instance_id",
    "instance_stopped",
    "instances_alive_ids",
    "parameters_evaluate",
    "parameters_validate",
    "task_create",
    "task_delete",
    "task_get",
    "task_local_now",
    "task_next_run",
    "task_pause",
    "task_request_run",
    "task_resume",
    "task_save",
    "task_update",
    "task_validate",
    "tasks_delete",
    "tasks_request_run",
    "tasks_set_status",
]
