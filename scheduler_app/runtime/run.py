"""`Run`: a claimed execution on its way through the path, and `Result`, its outcome."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.utils.translation import gettext as _

from ..models import ScheduledTask, TaskExecution
from ..tasklog import RunLog
from .leases import RunLock, committed_at_once, lock_store_outage

logger = logging.getLogger(__name__)


class Call(Protocol):
    """A handler call under way (`invocation.Invocation`, `processes.ProcessCall`)."""

    def cancel(self) -> None:
        """Pass a cancel on to the handler; whoever waits for the call wakes up."""


@dataclass
class Result:
    """How a run ended, before it is recorded: the final values of its row."""

    status: str
    result: Any = None
    error_message: str = ""
    error_traceback: str = ""
    failure_kind: str = ""


class LockWanted(enum.Enum):
    """A lock a claimed run still has to take when the handler's turn comes."""

    #: None (it has its lock from the claim, or its policy takes none).
    NONE = ""
    #: One of the task's max_instances slots (`allow` with max_instances).
    SLOT = "slot"
    #: The task lock, after cancelling the run holding it (`replace`).
    REPLACE = "replace"


@dataclass(eq=False)
class Run:
    """A claimed execution on its way through the path: claimed, run, recorded.

    `runs_claim` makes them (pending -> running, locks taken), `run_claimed` calls
    the handler and sets `result`, `runs_finish` records them. `execution_run` is
    the three for one execution; the inline executor batches the first and last.
    """

    execution: TaskExecution
    task: ScheduledTask
    run_log: RunLog
    cancel_event: threading.Event = field(default_factory=threading.Event)
    lock: RunLock | None = None
    #: A lock still to take when the handler's turn comes.
    lock_wanted: LockWanted = LockWanted.NONE
    #: Set by the run stage; a run refused its lock at claim time has it already.
    result: Result | None = None
    invocation: Call | None = None
    since: float = field(default_factory=time.monotonic)
    #: Record the log and progress the row has (the run's process is gone), not run_log's.
    keep_log: bool = False
    #: When the run stage ended: the record (often batched, later) says so.
    ended_at: dt.datetime | None = None
    #: Fields whose values were made storable before the record (services.records).
    altered: list[str] = field(default_factory=list)
    #: Recorded failed only because its end could not be stored (services.records):
    #: its handler did run, so no retry runs it again.
    unstorable: bool = False

    def __post_init__(self) -> None:
        # The handler's task_extend_lock() finds the run through its bound log.
        # Through a weak reference: a cycle (run -> log -> run) would leave every
        # ended run to the garbage collector's full passes, which stop all threads.
        run = weakref.ref(self)

        def extend(seconds: float | None) -> bool:
            alive = run()
            return alive.extend_lock(seconds) if alive is not None else False

        self.run_log.lock_extender = extend

    def cancel(self) -> None:
        """Stop the run: async handlers at once, sync ones at their next task_log."""
        self.cancel_event.set()
        self.run_log.cancelled = True
        if self.invocation is not None:
            self.invocation.cancel()

    def extend_lock(self, seconds: float | None = None) -> bool:
        """Extend the run's task lock now (the watchdog; a handler's task_extend_lock).

        True while the run holds its lock or holds none (`allow` without
        max_instances); False once it is lost, which the run's log says once. A
        lock backend error is logged and changes nothing: the watchdog tries again.
        """
        lock = self.lock
        if lock is None:
            return True
        outage = lock_store_outage(lock.backend)
        try:
            extended = committed_at_once(
                lock.backend,
                functools.partial(lock.extend, seconds, on_lost=self._lock_lost),
            )
        except Exception as exc:  # Redis or the database away: the run goes on
            outage.failed(exc)  # logged once per outage, not once per run and try
            return not lock.lost
        outage.succeeded()
        return extended

    def _lock_lost(self) -> None:
        assert self.lock is not None
        if self.execution.run_slot is not None:
            # skip, allow with max_instances: the database still keeps others out.
            message = _(
                "WARNING: the task lock %(key)s was lost; its run slot still keeps "
                "another run of the task from starting beside this one."
            )
        else:
            message = _(
                "WARNING: the task lock %(key)s was lost; another run may start."
            )
        self.run_log.write(message % {"key": self.lock.key})
        logger.warning(
            "Execution %s lost its task lock %s", self.execution.pk, self.lock.key
        )
