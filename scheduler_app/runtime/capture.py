"""What a handler prints or logs goes to its run's log.

`install()` (once per process that runs handlers: the scheduler, a handler process,
`run_task`) puts two things in place:

- `sys.stdout` and `sys.stderr` become streams that send each line written while a
  run is bound (`tasklog.bind`) to that run's log, and everything else to the
  stream they replace;
- a handler on the root logger sends each record emitted while a run is bound to
  that run's log, as `LEVEL logger: message`, and the process's other root handlers
  leave such records alone, so a chatty handler fills its capped run log, not the
  scheduler's console.

Records of the app's own loggers (`scheduler_app.*`) are never captured: they are
the scheduler's account of the run, not the handler's. Output written below
Python (a C extension, a child process writing to file descriptor 1) is not seen
here; in a handler process it goes to the scheduler's stdout.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import TextIO

from .. import tasklog

#: Records of these loggers are the scheduler's own: never captured.
OWN_LOGGERS = "scheduler_app"
#: A printed line still without its newline is written once it is this long, so a
#: handler printing with end="" forever holds no more than that.
PARTIAL_LINE_MAX_CHARS = 64 * 1024

_installed = False
_install_lock = threading.Lock()
_reentry = threading.local()


def _target() -> tasklog.RunLog | None:
    """The log of the run the calling code belongs to, when one is bound here."""
    return tasklog.bound()


def _captured(record: logging.LogRecord) -> bool:
    name = record.name
    own = name == OWN_LOGGERS or name.startswith(OWN_LOGGERS + ".")
    return not own and _target() is not None


class RunStream(io.TextIOBase):
    """A text stream that writes the lines of a bound run to its log.

    A partial line waits for its newline (or the end of the run, `flush`); lines
    written outside a run go to the stream this one replaced, unchanged.
    """

    def __init__(self, fallback: TextIO) -> None:
        self.fallback = fallback
        self._partial = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        run_log = _target()
        if run_log is None or getattr(_reentry, "active", False):
            return self.fallback.write(text)
        pending: dict[int, tuple[tasklog.RunLog, str]] = self._pending()
        held = pending.get(id(run_log))
        buffer = (held[1] if held is not None else "") + text
        *lines, rest = buffer.split("\n")
        if len(rest) >= PARTIAL_LINE_MAX_CHARS:
            lines.append(rest)
            rest = ""
        if rest:
            pending[id(run_log)] = (run_log, rest)
        else:
            pending.pop(id(run_log), None)
        _reentry.active = True
        try:
            for line in lines:
                run_log.write(line)
        finally:
            _reentry.active = False
        return len(text)

    def flush(self) -> None:
        """Write a partial line of the bound run; flush the fallback."""
        self.end_of_run()
        self.fallback.flush()

    def end_of_run(self) -> None:
        """Write what the bound run printed without a final newline."""
        run_log = _target()
        if run_log is not None:
            held = self._pending().pop(id(run_log), None)
            if held is not None and held[1]:
                run_log.write(held[1])

    def _pending(self) -> dict[int, tuple[tasklog.RunLog, str]]:
        pending: dict[int, tuple[tasklog.RunLog, str]] | None = getattr(
            self._partial, "lines", None
        )
        if pending is None:
            pending = self._partial.lines = {}
        return pending

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.fallback.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.fallback, "encoding", None) or "utf-8"


class RunLogHandler(logging.Handler):
    """Writes each record emitted inside a run (not the app's own) to the run's log."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(_reentry, "active", False) or not _captured(record):
            return
        run_log = _target()
        if run_log is None:
            return
        _reentry.active = True
        try:
            run_log.write(self.format(record))
        except Exception:
            self.handleError(record)
        finally:
            _reentry.active = False


class _NotCaptured(logging.Filter):
    """On the process's other root handlers: leave out what a run's log took."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _captured(record)


def install() -> None:
    """Capture prints and log records of runs in this process (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        root = logging.getLogger()
        not_captured = _NotCaptured()
        for handler in root.handlers:
            handler.addFilter(not_captured)
        root.addHandler(RunLogHandler())
        if not isinstance(sys.stdout, RunStream):
            sys.stdout = RunStream(sys.stdout)
        if not isinstance(sys.stderr, RunStream):
            sys.stderr = RunStream(sys.stderr)
        _installed = True


def end_of_run() -> None:
    """Write what the bound run printed without a final newline (before its end)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, RunStream):
            stream.end_of_run()
