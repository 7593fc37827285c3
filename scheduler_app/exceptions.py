"""Errors raised by the services; each caller (admin, API, CLI, engine) converts them once."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _


class SchedulerError(Exception):
    """Base error: a human message, a machine `code` and optionally the `field` at fault."""

    code = "scheduler_error"
    http_status = 400

    def __init__(
        self, message: str, *, field: str | None = None, code: str | None = None
    ):
        super().__init__(str(message))
        self.message = str(message)
        self.field = field
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class TaskNotFound(SchedulerError):
    code = "task_not_found"
    http_status = 404


class TaskChanged(SchedulerError):
    """The task changed since the caller read it (its version differs): nothing saved."""

    code = "task_changed"
    http_status = 412

    def __init__(self, message: str, *, current_version: int, changed: list[str]):
        super().__init__(message)
        self.current_version = current_version
        #: The verbose names of the fields that differ from what the caller saw.
        self.changed = changed


class TaskBusy(SchedulerError):
    """The task has runs pending or running, and the caller did not ask to cancel them."""

    code = "task_busy"
    http_status = 409


class LockHolderAlive(SchedulerError):
    """The run holding a lock is still going on a live instance: not released unforced."""

    code = "lock_holder_alive"
    http_status = 409


class ReasonInvalid(SchedulerError):
    """The operation's reason is missing though required, or too long (field "reason")."""

    code = "reason_invalid"


class ExecutionNotFound(SchedulerError):
    code = "execution_not_found"
    http_status = 404


class HandlerNotFound(SchedulerError):
    code = "handler_not_found"


class HandlerBroken(SchedulerError):
    code = "handler_broken"


class HandlerNotAllowed(SchedulerError):
    """The handler path is neither a script nor a handler registered in code."""

    code = "handler_not_allowed"


class ParameterError(SchedulerError):
    """A handler parameter is unknown, missing or of the wrong type (`field` = parameter)."""

    code = "invalid_parameter"


class ScheduleError(SchedulerError):
    """A schedule (cron expression, interval, run date, time zone) is not valid."""

    code = "invalid_schedule"


class TaskLocked(SchedulerError):
    code = "task_locked"
    http_status = 409


class SystemTaskProtected(SchedulerError):
    code = "system_task_protected"
    http_status = 409

    def __init__(self, task_name: str):
        super().__init__(
            _("Task “%(name)s” is a system task: it can be paused but not deleted.")
            % {"name": task_name}
        )


class StatusChangeForbidden(SchedulerError):
    """The acting user may not change a task's status (it needs the pause permission)."""

    code = "permission_denied"
    http_status = 403

    def __init__(self, message: str):
        super().__init__(message, field="status")


class InvalidTransition(SchedulerError):
    """The object is not in a state that allows the requested action."""

    code = "invalid_state"
    http_status = 409


class ExecutionCancelled(Exception):
    """Raised inside a handler, at its next task_log/task_progress, once its run is cancelled.

    Not a SchedulerError: it is control flow for the handler, not a user-facing error.
    """
