"""task_log / task_progress: a run's own log and progress, visible while it runs.

The execution path binds a `RunLog` to the running handler through a context
variable. `task_log` appends a timestamped line to it; one publisher thread per
process writes the logs that changed to their sink (the execution row) at most
every SCHEDULER_LOG_PUBLISH_INTERVAL seconds, so logging stays cheap however much a
handler writes. Nothing here writes to the database itself: the sink is given by
the caller.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .exceptions import ExecutionCancelled

logger = logging.getLogger(__name__)
console_logger = logging.getLogger("scheduler_app.task")


@dataclass(frozen=True)
class LogSnapshot:
    """What a sink receives: the whole (capped) log text and the progress."""

    text: str
    progress_done: int | None
    progress_total: int | None


Sink = Callable[[LogSnapshot], None]
LineListener = Callable[[str], None]


class RunLog:
    """The capped, thread-safe log buffer of one execution.

    When more than `max_lines` lines are written, the first half and the most
    recent half are kept: the start says what the run set out to do, the end says
    how it finished. A marker line says how many lines were dropped in between.
    """

    def __init__(
        self,
        *,
        max_lines: int,
        echo: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._head_limit = max(1, max_lines // 2)
        self._head: list[str] = []
        self._tail: deque[str] = deque(maxlen=max(1, max_lines - self._head_limit))
        self._max_lines = max_lines
        self._dropped = 0
        self._dirty = False
        self._progress: tuple[int | None, int | None] = (None, None)
        self._listeners: list[LineListener] = []
        self._clock = clock or (lambda: dt.datetime.now())
        self.echo = echo
        # Set by the execution path on timeout or cancel: the handler's next
        # task_log/task_progress raises, so a cooperative sync handler stops.
        self.cancelled = False

    def add_listener(self, listener: LineListener) -> None:
        """Call `listener(line)` for every line written from now on (e.g. the CLI)."""
        self._listeners.append(listener)

    def write(self, message: str) -> str:
        """Append one line, prefixed with [HH:MM:SS]; return the line."""
        line = "[%s] %s" % (self._clock().strftime("%H:%M:%S"), message)
        with self._lock:
            if len(self._head) < self._head_limit:
                self._head.append(line)
            else:
                if len(self._tail) == self._tail.maxlen:
                    self._dropped += 1
                self._tail.append(line)
            self._dirty = True
        for listener in self._listeners:
            listener(line)
        return line

    def set_progress(self, done: int, total: int | None) -> None:
        with self._lock:
            self._progress = (done, total)
            self._dirty = True

    def text(self) -> str:
        with self._lock:
            return self._text_locked()

    def _text_locked(self) -> str:
        lines = list(self._head)
        if self._dropped:
            lines.append(
                "[... %d lines dropped: the log keeps the first %d and the last %d of "
                "a run (SCHEDULER_LOG_BUFFER_MAX_LINES=%d) ...]"
                % (self._dropped, self._head_limit, self._tail.maxlen, self._max_lines)
            )
        lines.extend(self._tail)
        return "\n".join(lines)

    @property
    def dropped(self) -> int:
        return self._dropped

    def snapshot(self) -> LogSnapshot:
        with self._lock:
            self._dirty = False
            return LogSnapshot(self._text_locked(), *self._progress)

    def take_if_dirty(self) -> LogSnapshot | None:
        """A snapshot if anything changed since the last one, else None."""
        with self._lock:
            if not self._dirty:
                return None
            self._dirty = False
            return LogSnapshot(self._text_locked(), *self._progress)


class LogPublisher:
    """One daemon thread that flushes every live RunLog that changed to its sink."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, tuple[RunLog, Sink]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval = 0.3

    def register(self, run_log: RunLog, sink: Sink, *, interval: float) -> None:
        with self._lock:
            self._live[id(run_log)] = (run_log, sink)
            if interval != self.interval:
                # The setting changed: cut the current wait short to apply it.
                self.interval = interval
                self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="scheduler-log-publisher", daemon=True
                )
                self._thread.start()

    def unregister(self, run_log: RunLog) -> None:
        with self._lock:
            self._live.pop(id(run_log), None)

    def live_logs(self) -> list[RunLog]:
        with self._lock:
            return [run_log for run_log, _ in self._live.values()]

    def flush_all(self) -> None:
        """Write every changed log to its sink now (the loop calls it; so may tests)."""
        with self._lock:
            entries = list(self._live.values())
        for run_log, sink in entries:
            snapshot = run_log.take_if_dirty()
            if snapshot is None:
                continue
            try:
                sink(snapshot)
            except Exception:
                # A failed live flush must not kill the publisher: the final state
                # of the run still carries the whole log.
                logger.exception("Could not publish a live log; retrying next flush")
                run_log._dirty = True

    def _loop(self) -> None:
        # The sinks write through Django's ORM on this thread's own connection.
        from django.db import close_old_connections, connections

        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush_all()
            with self._lock:
                idle = not self._live
            if idle:
                # Nothing to publish: do not hold a database connection meanwhile.
                connections.close_all()
            else:
                close_old_connections()


publisher = LogPublisher()
_current: contextvars.ContextVar[RunLog | None] = contextvars.ContextVar(
    "scheduler_run_log", default=None
)


@contextmanager
def bind(run_log: RunLog, *, sink: Sink | None, interval: float) -> Iterator[RunLog]:
    """Make `run_log` the current log of this context (and the threads it copies to)."""
    token = _current.set(run_log)
    if sink is not None:
        publisher.register(run_log, sink, interval=interval)
    try:
        yield run_log
    finally:
        if sink is not None:
            publisher.unregister(run_log)
        _current.reset(token)


def current() -> RunLog | None:
    """The log of the run this code belongs to.

    Threads started by a handler do not inherit context variables; when exactly one
    run is live in this process, its log is the only sensible target.
    """
    run_log = _current.get()
    if run_log is not None:
        return run_log
    live = publisher.live_logs()
    return live[0] if len(live) == 1 else None


def task_log(*args: object, print_console: bool | None = None) -> None:
    """Log like print(): to the current execution's log, prefixed with [HH:MM:SS].

    print_console: None follows DEBUG (or the CLI's choice), True/False force it.
    Outside a run it just logs through the `scheduler_app.task` logger.
    """
    message = " ".join(str(arg) for arg in args)
    run_log = current()
    if run_log is None:
        console_logger.info("%s", message)
        return
    if run_log.cancelled:
        raise ExecutionCancelled("the run was cancelled or timed out")
    line = run_log.write(message)
    echo = run_log.echo if print_console is None else print_console
    if echo:
        console_logger.info("%s", line)


def task_progress(done: int, total: int | None = None) -> None:
    """Report progress of the current execution (shown as a bar when total is known)."""
    if done < 0 or (total is not None and total < 0):
        raise ValueError("task_progress() takes non-negative numbers")
    run_log = current()
    if run_log is None:
        console_logger.info("progress %s/%s", done, total if total is not None else "?")
        return
    if run_log.cancelled:
        raise ExecutionCancelled("the run was cancelled or timed out")
    run_log.set_progress(int(done), None if total is None else int(total))
