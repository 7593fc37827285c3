"""Signals sent by the execution path, so projects can hook their own monitoring.

Every signal is sent with `sender=ScheduledTask` and the keyword arguments `task`
and `execution`. Receivers run in the process that runs the execution (the
scheduler, a Celery worker or `run_task`); an exception in a receiver is logged and
never changes the run's outcome.

    from django.dispatch import receiver
    from scheduler_app.signals import execution_failed

    @receiver(execution_failed)
    def page_someone(sender, task, execution, **kwargs):
        ...
"""

from django.dispatch import Signal

#: The handler is about to run (the execution is `running`).
execution_started = Signal()
#: The run ended with status `success`.
execution_succeeded = Signal()
#: The run ended with status `failed` (error, timeout, abandoned or interrupted).
execution_failed = Signal()
#: The run was recorded `skipped` (overlap policy, or the handler said so).
execution_skipped = Signal()
