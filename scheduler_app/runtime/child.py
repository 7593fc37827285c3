"""A handler process: runs the handlers `runtime/processes.py` sends it, one at a time.

Started by the scheduler as `python -m scheduler_app.runtime.child FD`, in a
session (and process group) of its own, with the settings module of the scheduler
in its environment. It talks to the scheduler over the socket FD with pickled
tuples:

    scheduler -> process   ("hello", {alias: database name})   first, once
                           ("run", id, handler path, kwargs, echo)
                           ("cancel", id)                       that run, if current
                           ("extended", held)                   reply to "extend"
    process -> scheduler   ("ready", pid)
                           ("log", message)                     task_log, print, logging
                           ("progress", done, total)
                           ("extend", seconds)                  task_extend_lock
                           ("done", fields, cancelled, rss)     the run's end

The process claims and records nothing: the scheduler does, so a process that
exits, crashes or is killed loses only the run it was running. When the scheduler
goes away (its end of the socket closes), the process kills its whole group, the
handler's children with it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import queue
import signal
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from django.db import close_old_connections

from .. import tasklog
from ..caps import capped_fields
from ..conf import app_settings
from ..exceptions import ExecutionCancelled
from ..handlers.registry import resolve_handler
from ..handlers.results import FAILED, outcome_from_return
from . import capture, threads

#: The line before a log message too big for any run's log, cut in this process.
MESSAGE_CUT_NOTE = (
    "[... the next message had %d characters; its last %d were cut before it left "
    "the handler process (SCHEDULER_LOG_MAX_BYTES) ...]"
)
#: How long task_extend_lock() waits for the scheduler's answer.
EXTEND_TIMEOUT_SECONDS = 10.0


def rss_bytes() -> int:
    """This process's resident memory now (Linux), or its peak elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Child:
    """The loop of a handler process: its main thread runs, a reader thread listens."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._send_lock = threading.Lock()
        self.runs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.replies: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self.loop = asyncio.new_event_loop()
        self._task: asyncio.Task[Any] | None = None
        self._lock = threading.Lock()
        self._current = 0  # the id of the run under way
        self._cancelled = 0  # the id of the last run a cancel came for
        self._log: RelayedLog | None = None  # the current run's
        self._reader = threads.CHILD_READER.start(self._read)

    def send(self, *message: Any) -> None:
        with self._send_lock:
            self.conn.send(message)

    def _read(self) -> None:
        """The reader thread: runs to the main thread, cancels and replies at once."""
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                _orphaned()
                return
            kind = message[0]
            if kind == "run":
                self.runs.put(message)
            elif kind == "cancel":
                self._cancel(message[1])
            elif kind == "extended":
                self.replies.put(bool(message[1]))

    def _cancel(self, run_id: int) -> None:
        with self._lock:
            # A cancel may overtake its run (then the run starts cancelled) or come
            # after its end (then it is ignored): runs are told apart by id.
            self._cancelled = run_id
            if run_id != self._current:
                return
            log, task = self._log, self._task
            if log is not None:
                log.cancelled = True
            if task is not None:
                self.loop.call_soon_threadsafe(task.cancel)

    def serve(self) -> None:
        self.send("ready", os.getpid())
        while True:
            message = self.runs.get()
            if message is None:
                return
            _kind, run_id, handler_path, kwargs, echo = message
            fields, stopped = self.run(run_id, handler_path, kwargs, echo=echo)
            self.send("done", self.bounded(fields), stopped, rss_bytes())

    def bounded(self, fields: dict[str, Any]) -> dict[str, Any]:
        """A run's end cut to the caps, as the record would: it crosses no bigger.

        A handler's 50 MB result or error never reaches the scheduler whole; the
        lines saying what was cut go first, to the run's log.
        """
        cut, notes = capped_fields(fields)
        for note in notes:
            self.send("log", note)
        return {**fields, **cut}

    def run(
        self, run_id: int, handler_path: str, kwargs: dict[str, Any], *, echo: bool
    ) -> tuple[dict[str, Any], bool]:
        """Call the handler; its result fields, and whether it stopped on a cancel."""
        run_log = RelayedLog(self, echo=echo)
        with self._lock:
            self._current, self._log = run_id, run_log
            run_log.cancelled = self._cancelled == run_id
        tasklog.set_process_log(run_log)
        try:
            _info, func = resolve_handler(handler_path)
            if inspect.iscoroutinefunction(func):
                value = self._await(func(**kwargs))
            else:
                value = func(**kwargs)
                if inspect.isawaitable(value):
                    value = self._await(value)
            outcome = outcome_from_return(value)
            fields = {
                "status": outcome.status,
                "result": outcome.result,
                "error_message": outcome.error_message,
                "failure_kind": "error" if outcome.status == FAILED else "",
            }
            return fields, False
        except BaseException as error:  # the handler boundary: everything is recorded
            stopped = isinstance(error, ExecutionCancelled) or (
                isinstance(error, asyncio.CancelledError) and run_log.cancelled
            )
            fields = {
                "status": FAILED,
                "error_message": "%s: %s" % (type(error).__name__, error),
                "error_traceback": "".join(traceback.format_exception(error)),
                "failure_kind": "error",
            }
            return fields, stopped
        finally:
            capture.end_of_run()
            tasklog.set_process_log(None)
            with self._lock:
                self._current, self._log, self._task = 0, None, None
            close_old_connections()

    def _await(self, awaitable: Any) -> Any:
        async def main() -> Any:
            return await awaitable

        task = self.loop.create_task(main())
        with self._lock:
            self._task = task
            if self._log is not None and self._log.cancelled:
                task.cancel()
        return self.loop.run_until_complete(task)

    def extend(self, seconds: float | None) -> bool:
        self.send("extend", seconds)
        try:
            return self.replies.get(timeout=EXTEND_TIMEOUT_SECONDS)
        except queue.Empty:
            return False


class RelayedLog(tasklog.RunLog):
    """The run log of a handler process: every line goes to the scheduler as written.

    The scheduler's RunLog of the run keeps, caps and publishes them; this one only
    carries the run's cancel flag and its lock extender.
    """

    def __init__(self, child: Child, *, echo: bool) -> None:
        super().__init__(max_lines=1, echo=echo)
        self._max_chars = app_settings.SCHEDULER_LOG_MAX_BYTES
        self._child = child
        self.lock_extender = child.extend

    def write(self, message: str) -> str:
        # The scheduler's RunLog keeps no more than SCHEDULER_LOG_MAX_BYTES of a
        # run: a bigger message is cut here, so it never crosses whole, and a line
        # before it says so (the RunLog's own marker counts only what it received).
        if len(message) > self._max_chars:
            self._child.send(
                "log", MESSAGE_CUT_NOTE % (len(message), len(message) - self._max_chars)
            )
            message = message[: self._max_chars]
        self._child.send("log", message)
        return message

    def set_progress(self, done: int, total: int | None) -> None:
        self._child.send("progress", done, total)


def _orphaned() -> None:
    """The scheduler is gone: end this process and everything the handler started."""
    try:
        os.killpg(os.getpgrp(), signal.SIGKILL)
    finally:
        os._exit(1)


def main(argv: list[str]) -> None:
    conn = Connection(int(argv[1]))
    os.set_inheritable(
        conn.fileno(), False
    )  # a handler's child processes do not get it
    _hello, databases = conn.recv()
    import django

    django.setup()
    from django.conf import settings

    for alias, name in databases.items():
        if alias in settings.DATABASES:
            settings.DATABASES[alias]["NAME"] = name
    capture.install()
    Child(conn).serve()


if __name__ == "__main__":
    main(sys.argv)
