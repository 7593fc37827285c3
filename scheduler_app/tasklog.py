"""task_log / task_progress / task_extend_lock: a run's live log, progress and lock.

The execution path binds a `RunLog` to the running handler through a context
variable. `task_log` appends a timestamped line to it; one publisher thread per
process writes the logs that changed to their sinks at most every
SCHEDULER_LOG_PUBLISH_INTERVAL seconds, so logging stays cheap however much a
handler writes. A sink receives the whole text (the execution row); a line sink
receives only the lines written since its previous call (Redis, `livelog`). Nothing
here writes to the database or Redis itself: the sinks are given by the caller, as
is the run's lock extender that `task_extend_lock` calls.

Lines are numbered from 0 in the order they were written, one number per line of
text (a message with newlines takes several). `StoredLog` reads a stored text back
by these numbers, so readers of the row and of Redis agree on offsets.

A run's log is bounded in lines (SCHEDULER_LOG_BUFFER_MAX_LINES) and in bytes
(SCHEDULER_LOG_MAX_BYTES, UTF-8): however much a handler writes, a `RunLog` holds
at most that much, so the process running it does not grow with the output. A
line longer than a quarter of the byte cap is cut as it is written, with a marker
saying how much was cut.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from .exceptions import ExecutionCancelled
from .runtime import threads
from .storable import storable_text

logger = logging.getLogger(__name__)
console_logger = logging.getLogger("scheduler_app.task")

# The line RunLog writes in place of the lines it dropped from a long log:
# "[... 6 lines dropped (6144 bytes): ...", the bytes since issue 14 (older rows
# have none). Ordinary lines start with "[HH:MM:SS]", so the marker cannot be
# mistaken for one.
_DROPPED_MARKER = re.compile(r"^\[\.\.\. (\d+) lines dropped(?: \(\d+ bytes\))?: ")

#: SCHEDULER_LOG_MAX_BYTES's default, for a RunLog built without one.
DEFAULT_MAX_BYTES = 1024 * 1024
#: Bytes of the cap left for the "lines dropped" marker line, so that the whole
#: text (head, marker, tail) stays within SCHEDULER_LOG_MAX_BYTES.
_MARKER_ROOM = 400
#: What a line cut at write time ends with (its kept start before it).
_CUT_MARKER = (
    " [... %d characters cut: a log line keeps at most %d bytes, a quarter of "
    "SCHEDULER_LOG_MAX_BYTES=%d ...]"
)


def utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (what the row and Redis store); cheap for ASCII."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def utf8_prefix(text: str, max_bytes: int) -> str:
    """The longest start of `text` that is at most `max_bytes` bytes of UTF-8."""
    if len(text) <= max_bytes // 4 or (len(text) <= max_bytes and text.isascii()):
        return text
    start = text[:max_bytes]  # never fewer bytes than characters
    if start.isascii():
        return start
    return start.encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore")


def utf8_suffix(text: str, max_bytes: int) -> str:
    """The longest end of `text` that is at most `max_bytes` bytes of UTF-8."""
    if max_bytes <= 0:
        return ""
    end = text[-max_bytes:]  # never fewer bytes than characters
    if end.isascii():
        return end
    return end.encode("utf-8", "surrogatepass")[-max_bytes:].decode("utf-8", "ignore")


@dataclass(frozen=True)
class LogSnapshot:
    """What a sink receives: the whole (capped) log text and the progress."""

    text: str
    progress_done: int | None
    progress_total: int | None


@dataclass(frozen=True)
class LogLines:
    """What a line sink receives: the lines written since its previous call.

    `first` is the number of `lines[0]`. It is past the end of the previous batch
    when the capped buffer dropped lines in between (they are in no sink).
    """

    first: int
    lines: tuple[str, ...]
    progress_done: int | None
    progress_total: int | None

    @property
    def end(self) -> int:
        """The number the next line will get: every line written so far."""
        return self.first + len(self.lines)


Sink = Callable[[LogSnapshot], None]
LineListener = Callable[[str], None]


class LineSink(Protocol):
    """Receives a live log line by line (livelog.RedisLogSink)."""

    def __call__(self, batch: LogLines) -> None:
        """Take the lines written since the previous call (maybe none); never raise."""

    def snapshot_every(self) -> float:
        """While this sink works, the text sink runs at most this often (seconds)."""

    def close(self, batch: LogLines) -> None:
        """The run ended: take its last lines (maybe none). Called once; never raise."""


@dataclass(frozen=True)
class StoredLog:
    """A log text as RunLog wrote it, read back by line number.

    A "lines dropped" marker stands for the `dropped` lines it replaced: the head
    has numbers 0..len(head)-1, the tail starts at len(head) + dropped.
    """

    head: list[str]
    marker: str
    dropped: int
    tail: list[str]

    @classmethod
    def parse(cls, text: str) -> StoredLog:
        lines = text.split("\n") if text else []
        for index, line in enumerate(lines):
            match = _DROPPED_MARKER.match(line)
            if match:
                return cls(lines[:index], line, int(match.group(1)), lines[index + 1 :])
        return cls(lines, "", 0, [])

    @property
    def end(self) -> int:
        """The number of lines written: the offset after the last one."""
        return len(self.head) + self.dropped + len(self.tail)

    def lines(self, start: int, stop: int | None = None) -> list[str]:
        """Lines numbered start..stop-1; a marker stands in for dropped ones."""
        stop = self.end if stop is None else min(stop, self.end)
        start = max(0, start)
        if start >= stop:
            return []
        tail_start = len(self.head) + self.dropped
        found = self.head[start:stop]
        if self.dropped and start < tail_start and stop > len(self.head):
            missed = min(stop, tail_start) - max(start, len(self.head))
            if missed == self.dropped:
                found.append(self.marker)
            else:  # part of the gap: its bytes are not known
                prefix = "[... %d lines dropped: " % missed
                found.append(_DROPPED_MARKER.sub(prefix, self.marker, count=1))
        found.extend(self.tail[max(0, start - tail_start) : max(0, stop - tail_start)])
        return found


class RunLog:
    """The capped, thread-safe log buffer of one execution.

    When more than `max_lines` lines, or more than `max_bytes` bytes (UTF-8), are
    written, the first half and the most recent half are kept: the start says
    what the run set out to do, the end says how it finished. A marker line says
    how many lines (and bytes) were dropped in between. Lines are counted as lines
    of text: a message with newlines is several lines. A line longer than a
    quarter of `max_bytes` keeps its start and a marker saying how many
    characters were cut; the line still counts as one.

    What it holds is bounded whatever is written: `retained_bytes` is at most
    `max_bytes` (for `max_bytes` of a few KiB or more), `text()` too.
    """

    def __init__(
        self,
        *,
        max_lines: int,
        max_bytes: int = DEFAULT_MAX_BYTES,
        echo: bool = False,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._head_limit = max(1, max_lines // 2)
        self._head: list[str] = []
        self._tail_limit = max(1, max_lines - self._head_limit)
        self._tail: deque[str] = deque()
        # The bytes of each tail line (its newline included), in step with _tail.
        self._tail_sizes: deque[int] = deque()
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        budget = max(2, max_bytes - _MARKER_ROOM)
        self._head_bytes_limit = budget // 2
        self._tail_bytes_limit = budget - self._head_bytes_limit
        # One line keeps at most half of the head's bytes: a huge line never
        # pushes all the others out of the tail.
        self._line_limit = max(16, self._head_bytes_limit // 2)
        self._head_bytes = 0
        self._tail_bytes = 0
        # Closed by the first line that did not fit: later lines go to the tail,
        # so the head stays the unbroken start of the log.
        self._head_open = True
        self._dropped = 0
        self._dropped_bytes = 0
        self._written = 0
        self._altered = 0
        self._cut = 0
        # Bumped by every change; each sink remembers the version it last saw.
        self._version = 0
        self._progress: tuple[int | None, int | None] = (None, None)
        self._listeners: list[LineListener] = []
        self._clock = clock or (lambda: dt.datetime.now())
        self.echo = echo
        # Set by the execution path on timeout or cancel: the handler's next
        # task_log/task_progress raises, so a cooperative sync handler stops.
        self.cancelled = False
        # Set by the execution path: extends the run's task lock now, for
        # task_extend_lock(seconds); True while the lock is held (or none is).
        self.lock_extender: Callable[[float | None], bool] | None = None

    def add_listener(self, listener: LineListener) -> None:
        """Call `listener(line)` for every line written from now on (e.g. the CLI)."""
        self._listeners.append(listener)

    def write(self, message: str) -> str:
        """Append one line, prefixed with [HH:MM:SS]; return the line (as kept).

        NUL characters and lone surrogates are replaced (`storable_text`): every
        sink (the row, Redis, a console) can then take the line as it is.
        `altered_lines` counts the lines that had some. Each line of text is cut
        to a quarter of `max_bytes` here, before anything else is done with it,
        so a huge message costs no more memory than that (`cut_lines` counts
        them). For a message of many lines, the line returned (and given to the
        listeners) is its start, at most as long as one line may be.
        """
        stamp = "[%s] " % self._clock().strftime("%H:%M:%S")
        limit = self._line_limit
        echoed: list[str] = []
        echoed_size = 0
        start = 0
        with self._lock:
            altered = cut = False
            while True:
                end = message.find("\n", start)
                stop = len(message) if end < 0 else end
                # At most `limit` characters are looked at: never fewer bytes.
                raw = message[start : min(stop, start + limit)]
                stored = storable_text(raw)
                altered = altered or stored is not raw
                kept = utf8_prefix(stored, limit)
                if len(kept) < len(stored) or stop - start > len(raw):
                    cut = True
                    missing = stop - start - len(raw) + len(stored) - len(kept)
                    kept += _CUT_MARKER % (missing, limit, self._max_bytes)
                if start == 0:
                    kept = stamp + kept
                size = utf8_size(kept) + 1
                self._keep(kept, size)
                if echoed_size < limit:
                    echoed.append(kept)
                    echoed_size += size
                if end < 0:
                    break
                start = end + 1
            if altered:
                self._altered += 1
            if cut:
                self._cut += 1
            self._version += 1
        line = "\n".join(echoed)
        for listener in self._listeners:
            listener(line)
        return line

    def _keep(self, line: str, size: int) -> None:
        """Add one line of text of `size` bytes to the head or the tail (locked)."""
        self._written += 1
        if (
            self._head_open
            and len(self._head) < self._head_limit
            and self._head_bytes + size <= self._head_bytes_limit
        ):
            self._head.append(line)
            self._head_bytes += size
            return
        self._head_open = False
        self._tail.append(line)
        self._tail_sizes.append(size)
        self._tail_bytes += size
        while len(self._tail) > 1 and (
            len(self._tail) > self._tail_limit
            or self._tail_bytes > self._tail_bytes_limit
        ):
            self._tail.popleft()
            dropped_size = self._tail_sizes.popleft()
            self._tail_bytes -= dropped_size
            self._dropped += 1
            self._dropped_bytes += dropped_size

    def set_progress(self, done: int, total: int | None) -> None:
        with self._lock:
            self._progress = (done, total)
            self._version += 1

    def text(self) -> str:
        with self._lock:
            return self._text_locked()

    def _text_locked(self) -> str:
        lines = list(self._head)
        if self._dropped:
            lines.append(
                "[... %d lines dropped (%d bytes): the log keeps the first %d and the "
                "last %d lines of a run, at most SCHEDULER_LOG_BUFFER_MAX_LINES=%d "
                "lines and SCHEDULER_LOG_MAX_BYTES=%d bytes ...]"
                % (
                    self._dropped,
                    self._dropped_bytes,
                    len(self._head),
                    len(self._tail),
                    self._max_lines,
                    self._max_bytes,
                )
            )
        lines.extend(self._tail)
        return "\n".join(lines)

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def dropped_bytes(self) -> int:
        """Bytes (UTF-8, newlines included) of the lines dropped from the middle."""
        return self._dropped_bytes

    @property
    def cut_lines(self) -> int:
        """How many messages had a line cut at write time (too long)."""
        return self._cut

    @property
    def retained_bytes(self) -> int:
        """Bytes (UTF-8, newlines included) of the lines this buffer holds now."""
        with self._lock:
            return self._head_bytes + self._tail_bytes

    @property
    def altered_lines(self) -> int:
        """How many lines had characters replaced to be storable."""
        return self._altered

    @property
    def version(self) -> int:
        """A number that changes whenever a line or the progress is written."""
        return self._version

    def snapshot(self) -> LogSnapshot:
        with self._lock:
            return LogSnapshot(self._text_locked(), *self._progress)

    def lines_since(self, number: int) -> LogLines:
        """The lines numbered `number` on, as far as the buffer still holds them.

        When the cap dropped some of them, the batch starts after the gap; lines
        kept at the head before a gap are left out too, so a batch is always one
        unbroken run of lines that ends with the latest.
        """
        with self._lock:
            tail_start = len(self._head) + self._dropped
            if number < len(self._head) and not self._dropped:
                first = number
                lines = [*self._head[number:], *self._tail]
            else:
                first = max(number, tail_start)
                wanted = max(0, self._written - first)
                lines = list(islice(reversed(self._tail), wanted))
                lines.reverse()
            return LogLines(first, tuple(lines), *self._progress)


@dataclass(eq=False)
class _Subscription:
    """One live log and its sinks, with what each sink has seen so far."""

    run_log: RunLog
    sink: Sink | None
    line_sink: LineSink | None
    sink_version: int = 0
    sink_at: float = float("-inf")
    line_end: int = 0


class LogPublisher:
    """One daemon thread that flushes every live RunLog that changed to its sinks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # One flush at a time: the thread's and a test's never interleave.
        self._flush_lock = threading.Lock()
        self._live: dict[int, _Subscription] = {}
        self._closing: list[_Subscription] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval = 0.3

    def register(
        self,
        run_log: RunLog,
        sink: Sink | None,
        *,
        interval: float,
        line_sink: LineSink | None = None,
    ) -> None:
        with self._lock:
            self._live[id(run_log)] = _Subscription(run_log, sink, line_sink)
            if interval != self.interval:
                # The setting changed: cut the current wait short to apply it.
                self.interval = interval
                self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threads.LOG_PUBLISHER.start(self._loop)

    def unregister(self, run_log: RunLog) -> None:
        """Stop publishing `run_log`; its line sink gets the last lines next flush.

        The text sink gets nothing more: the execution path writes the final state.
        """
        with self._lock:
            subscription = self._live.pop(id(run_log), None)
            # A run that wrote nothing (most runs) has nothing to close: no wake-up
            # of this thread for each of them.
            if (
                subscription is not None
                and subscription.line_sink is not None
                and run_log.version
            ):
                self._closing.append(subscription)
                self._wake.set()

    def live_logs(self) -> list[RunLog]:
        with self._lock:
            return [subscription.run_log for subscription in self._live.values()]

    def flush_all(self) -> None:
        """Write every changed log to its sinks now (the loop calls it; tests may)."""
        with self._flush_lock:
            with self._lock:
                live = list(self._live.values())
                closing, self._closing = self._closing, []
            now = time.monotonic()
            for subscription in live:
                self._flush_lines(subscription)
                self._flush_snapshot(subscription, now)
            for subscription in closing:
                # The row gets the final log from the execution path, not from here.
                self._close(subscription)

    @staticmethod
    def _close(subscription: _Subscription) -> None:
        if subscription.line_sink is None:
            return
        try:
            subscription.line_sink.close(
                subscription.run_log.lines_since(subscription.line_end)
            )
        except Exception:
            # Like a failed flush: the run's final state still carries the whole log.
            logger.exception("Could not close a live log sink")

    def _flush_lines(self, subscription: _Subscription) -> None:
        # Called on every flush, new lines or not: a sink with lines it could not
        # send yet (Redis was down) retries even when the run has gone quiet.
        if subscription.line_sink is None:
            return
        batch = subscription.run_log.lines_since(subscription.line_end)
        try:
            subscription.line_sink(batch)
        except Exception:
            # Line sinks handle their own failures; this is a bug, retried next flush.
            logger.exception("Could not publish live log lines; retrying next flush")
            return
        subscription.line_end = batch.end

    def _flush_snapshot(self, subscription: _Subscription, now: float) -> None:
        sink, run_log = subscription.sink, subscription.run_log
        version = run_log.version
        if sink is None or version == subscription.sink_version:
            return
        if subscription.line_sink is not None:
            # The line sink carries the live view; the row is its fallback.
            every = subscription.line_sink.snapshot_every()
            if now - subscription.sink_at < every:
                return
        try:
            sink(run_log.snapshot())
        except Exception:
            # A failed live flush must not kill the publisher: the final state
            # of the run still carries the whole log.
            logger.exception("Could not publish a live log; retrying next flush")
            return
        subscription.sink_version = version
        subscription.sink_at = now

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
def bind(
    run_log: RunLog,
    *,
    sink: Sink | None,
    interval: float,
    line_sink: LineSink | None = None,
) -> Iterator[RunLog]:
    """Make `run_log` the current log of this context (and the threads it copies to).

    While bound, the publisher flushes it every `interval` seconds to `sink` (the
    whole text) and `line_sink` (new lines); with a line sink, `sink` runs only as
    often as the line sink's `snapshot_every()` says.
    """
    token = _current.set(run_log)
    published = sink is not None or line_sink is not None
    if published:
        publisher.register(run_log, sink, interval=interval, line_sink=line_sink)
    try:
        yield run_log
    finally:
        if published:
            publisher.unregister(run_log)
        _current.reset(token)


#: In a handler process (runtime/child.py): the log of the one run it is running,
#: whatever thread the handler writes from.
_process_log: RunLog | None = None


def set_process_log(run_log: RunLog | None) -> None:
    """Make `run_log` the log of everything this process runs (a handler process)."""
    global _process_log
    _process_log = run_log


def bound() -> RunLog | None:
    """The log bound to this context, or the process's one run; None outside a run."""
    run_log = _current.get()
    return run_log if run_log is not None else _process_log


def current() -> RunLog | None:
    """The log of the run this code belongs to.

    Threads started by a handler do not inherit context variables; when exactly one
    run is live in this process, its log is the only sensible target.
    """
    run_log = bound()
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


def task_extend_lock(seconds: float | None = None) -> bool:
    """Extend the current run's task lock now: it expires `seconds` from now.

    seconds: None means SCHEDULER_TASK_LOCK_TTL. The run's lock is extended
    automatically every third of that TTL; call this before something that may
    stall the whole process (or to ask for longer): the automatic extension never
    shortens it. Returns True while the run holds its lock, and when it holds
    none (the `allow` policy without max_instances); False once the lock was lost
    (another run may start), which the run's log says. Outside a run there is no
    lock to extend: False, with a warning on the `scheduler_app.task` logger.
    Like task_log, raises ExecutionCancelled once the run was cancelled or timed out.
    """
    if seconds is not None and not seconds > 0:
        raise ValueError("task_extend_lock() takes a positive number of seconds")
    run_log = current()
    if run_log is None or run_log.lock_extender is None:
        console_logger.warning("task_extend_lock() outside a run: no lock to extend")
        return False
    if run_log.cancelled:
        raise ExecutionCancelled("the run was cancelled or timed out")
    return run_log.lock_extender(None if seconds is None else float(seconds))
