"""A handler call in this process: on the calling thread, or on a thread of its own.

`call_handler` runs a claimed run's handler under its timeout and its cancels and
turns what happened into a `Result`. An async handler runs on an event loop of its
own, in a thread of its own, so one that blocks its loop (`time.sleep` in an
`async def`) stalls nobody else; a sync handler runs in the calling thread, or in
a thread of its own when its task has a timeout to enforce. (With
SCHEDULER_ISOLATION=process the call happens in a handler process instead:
runtime/processes.py.)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import inspect
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.utils.translation import gettext as _

from ..exceptions import ExecutionCancelled
from ..handlers.results import outcome_from_return
from ..models import TaskExecution
from . import threads
from .run import Result

if TYPE_CHECKING:
    from .run import Run

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind


class Invocation:
    """One call of a handler.

    An async handler runs on a loop of its own. A sync handler runs in the calling
    thread (a thread of the executor's pool, or a Celery worker's), or, when the
    task has a timeout to enforce, in a thread of its own, so the run can be
    ended at the deadline whatever the handler does (its late result is ignored).
    """

    def __init__(self, func: Callable[..., Any], kwargs: dict[str, Any]):
        self.func = func
        self.kwargs = kwargs
        #: The handler returned or raised.
        self.done = threading.Event()
        #: `done`, or a cancel the waiting thread must look at.
        self.settled = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        #: The loop and task of an awaited call, while it runs.
        self._awaiting: tuple[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = (
            None
        )

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.func)

    def start_async(self) -> None:
        """Call an async handler on a loop of its own, in a thread of its own."""
        self.start_thread()

    def start_thread(self) -> None:
        """Call the handler in a thread of its own, with the caller's context."""

        def target() -> None:
            try:
                self._call()
            finally:
                connections.close_all()  # the handler's queries ran on this thread's connection

        context = contextvars.copy_context()
        threads.HANDLER.start(context.run, args=(target,))

    def call_here(self) -> None:
        """Call a sync handler in this thread; returns when it has."""
        self._call()

    def _call(self) -> None:
        try:
            value = self.func(**self.kwargs)
            if inspect.isawaitable(value):
                value = self._await(value)
            self.value = value
        except BaseException as exc:  # the handler boundary: everything is recorded
            self.error = exc
        finally:
            self._finish()

    def _await(self, awaitable: Any) -> Any:
        """Run `awaitable` to its end on a new event loop in this thread."""
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(_awaited(awaitable))
            with self._lock:
                self._awaiting = (loop, task)
                if self._cancelled:
                    task.cancel()
            return loop.run_until_complete(task)
        finally:
            with self._lock:
                self._awaiting = None
            loop.close()

    def _finish(self) -> None:
        self.done.set()
        self.settled.set()

    def cancel(self) -> None:
        """Cancel an async handler on its loop and wake whoever waits for the call."""
        with self._lock:
            self._cancelled = True
            if self._awaiting is not None:
                loop, task = self._awaiting
                with contextlib.suppress(RuntimeError):  # the loop just closed
                    loop.call_soon_threadsafe(task.cancel)
        self.settled.set()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def call_handler(
    run: Run, func: Callable[..., Any], kwargs: dict[str, Any], *, inline: bool
) -> Result:
    """Call `func(**kwargs)` for `run` under its task's timeout and its cancels.

    `inline=True` (Celery workers) calls a sync handler in this thread even when
    the task has a timeout: the worker's own time limits enforce it there.
    """
    task = run.task
    invocation = run.invocation = Invocation(func, kwargs)
    if run.cancel_event.is_set():
        return cancelled()
    deadline = None
    if task.timeout_seconds and (invocation.is_async or not inline):
        deadline = time.monotonic() + task.timeout_seconds
    if invocation.is_async:
        invocation.start_async()
    elif deadline is None:
        invocation.call_here()
    else:
        invocation.start_thread()
    return _wait_for_handler(run, invocation, deadline)


def _wait_for_handler(
    run: Run, invocation: Invocation, deadline: float | None
) -> Result:
    """Wait for the call to end, for its deadline, or for a cancel."""
    while not invocation.done.is_set():
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            run.run_log.cancelled = True
            invocation.cancel()
            invocation.done.wait(1.0)
            return Result(
                status=Status.FAILED,
                error_message=_("Timed out after %(seconds)s s (timeout_seconds).")
                % {"seconds": run.task.timeout_seconds},
                failure_kind=FailureKind.TIMEOUT,
            )
        invocation.settled.wait(remaining)
        if run.cancel_event.is_set() and not invocation.done.is_set():
            invocation.done.wait(1.0)  # an async handler gets its CancelledError
            if not invocation.done.is_set():
                return cancelled()
    if invocation.error is not None:
        return result_from_error(run, invocation.error)
    outcome = outcome_from_return(invocation.value)
    return Result(
        status=outcome.status,
        result=outcome.result,
        error_message=outcome.error_message,
        failure_kind=FailureKind.ERROR if outcome.status == Status.FAILED else "",
    )


def cancelled() -> Result:
    """The result of a run cancelled on request."""
    return Result(status=Status.CANCELLED, error_message=_("Cancelled on request."))


def is_soft_time_limit(error: BaseException) -> bool:
    """A Celery worker's soft time limit, raised inside the handler (issue: Celery)."""
    try:
        from celery.exceptions import SoftTimeLimitExceeded
    except ImportError:  # Celery is optional
        return False
    return isinstance(error, SoftTimeLimitExceeded)


def result_from_error(run: Run, error: BaseException) -> Result:
    """The result of a run its handler (or the path) ended with `error`."""
    if isinstance(error, ExecutionCancelled) or (
        isinstance(error, (asyncio.CancelledError, concurrent.futures.CancelledError))
        and run.cancel_event.is_set()
    ):
        return cancelled()
    if is_soft_time_limit(error):
        return Result(
            status=Status.FAILED,
            error_message=_(
                "Soft time limit reached after %(seconds)s s (timeout_seconds)."
            )
            % {"seconds": run.task.timeout_seconds},
            error_traceback=format_traceback(error),
            failure_kind=FailureKind.TIMEOUT,
        )
    return Result(
        status=Status.FAILED,
        error_message="%s: %s" % (type(error).__name__, error),
        error_traceback=format_traceback(error),
        failure_kind=FailureKind.ERROR,
    )


def format_traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))
