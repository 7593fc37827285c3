"""Handler processes: where handlers run when SCHEDULER_ISOLATION=process (the default).

Each thread of the inline executor's pool drives one `HandlerProcess`: a child
process (`runtime/child.py`) in a process group of its own that runs one handler
at a time. The scheduler process keeps everything else (claims, locks, the
record, the live log), so what a handler does to its process costs only its run:

- the process exits or crashes (`os._exit`, a segfault, the kernel's OOM killer):
  the run is recorded failed at once with the exit code or signal, and the next
  run gets a new process;
- the run passes its `timeout_seconds`, or is cancelled and does not stop within
  SCHEDULER_KILL_GRACE_SECONDS: the whole group (the handler's own child
  processes too) gets SIGTERM, then SIGKILL after the grace, and the run is
  recorded only once they are gone, so its task lock is freed only then;
- it blocks an event loop: the loop is the process's own;
- it leaks: the process is replaced after SCHEDULER_WORKER_MAX_RUNS runs, or once
  its resident memory passes SCHEDULER_WORKER_MAX_MEMORY_MB.

What the handler logs, prints and reports as progress comes over the socket line
by line into the run's `RunLog`, which caps it; nothing is kept whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from django.db import connections
from django.utils.translation import gettext as _

from ..models import TaskExecution
from .invocation import cancelled
from .run import Result

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger(__name__)

Status = TaskExecution.Status
FailureKind = TaskExecution.FailureKind

#: How long a new process may take to start Django before its first run fails.
START_TIMEOUT_SECONDS = 60.0


def failed(message: str, kind: str = FailureKind.ERROR) -> Result:
    """A run the handler process could not carry to its end."""
    return Result(status=Status.FAILED, error_message=message, failure_kind=kind)


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "signal %d" % number


class HandlerProcess:
    """One handler process, started on first use and replaced when it ends or is retired.

    Used by one thread at a time (its pool thread); `ProcessCall.cancel` may come
    from any thread.
    """

    def __init__(
        self,
        *,
        max_runs: int = 0,
        max_memory_bytes: int = 0,
        kill_grace_seconds: float = 5.0,
        name: str = "",
    ) -> None:
        self.max_runs = max_runs
        self.max_memory_bytes = max_memory_bytes
        self.kill_grace_seconds = kill_grace_seconds
        self.name = name
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._pidfd: int | None = None
        self._ready = False
        self._runs = 0
        self._retired: list[subprocess.Popen[bytes]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- the process -------------------------------------------------------------------

    def start(self) -> None:
        """Start a process now (it sets Django up while the pool waits for work)."""
        self._reap()
        ours, theirs = socket.socketpair()
        from django.conf import settings

        env = dict(os.environ)
        # How this process found its settings (an override_settings holder has no
        # SETTINGS_MODULE of its own).
        env["DJANGO_SETTINGS_MODULE"] = os.environ.get(
            "DJANGO_SETTINGS_MODULE", settings.SETTINGS_MODULE
        )
        env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "scheduler_app.runtime.child",
                    str(theirs.fileno()),
                ],
                pass_fds=[theirs.fileno()],
                start_new_session=True,  # its own group: a timeout kills it all
                env=env,
            )
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._conn.send(
            (
                "hello",
                {
                    alias: str(connections[alias].settings_dict["NAME"])
                    for alias in connections
                },
            )
        )
        self._pidfd = None
        with contextlib.suppress(AttributeError, OSError):  # Linux 5.3+
            self._pidfd = os.pidfd_open(self._proc.pid)
        self._ready = False
        self._runs = 0

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> bool:
        """Wait until the process has set Django up; False if it died or took too long."""
        if self._ready:
            return True
        deadline = time.monotonic() + timeout
        while self._conn is not None and not self._ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._conn.poll(remaining):
                return False
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                return False
            self._ready = message[0] == "ready"
        return self._ready

    def close(self, timeout: float = 2.0) -> None:
        """Retire the process (it ends itself once its socket closes) and reap it."""
        self._retire()
        for proc in self._retired:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self._reap()

    def _retire(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None
        if self._proc is not None:
            self._retired.append(self._proc)
            self._proc = None

    def _reap(self) -> None:
        self._retired = [proc for proc in self._retired if proc.poll() is None]

    def _kill_group(self, sig: int) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    def _stop(self) -> int:
        """Terminate the process group, kill it after the grace; returns the exit code."""
        assert self._proc is not None
        proc = self._proc
        self._kill_group(signal.SIGTERM)
        try:
            code = proc.wait(self.kill_grace_seconds)
        except subprocess.TimeoutExpired:
            self._kill_group(signal.SIGKILL)
            code = proc.wait()
        self._kill_group(signal.SIGKILL)  # children that outlived their parent
        self._retire()
        return code

    def _ended(self) -> int:
        """The process ended by itself: its code, once its group is gone too."""
        assert self._proc is not None
        code = self._proc.wait()
        self._kill_group(signal.SIGKILL)
        self._retire()
        return code

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- one run -------------------------------------------------------------------

    def call(self, run: Run, handler_path: str, kwargs: dict[str, Any]) -> Result:
        """Run the handler for `run` in the process, under its timeout and cancels."""
        if not self._alive():
            if self._proc is not None:
                self._ended()
            try:
                self.start()
            except OSError as error:  # no fork, no memory, too many processes
                logger.exception("Could not start a handler process")
                return failed(
                    _("Could not start a handler process: %(error)s") % {"error": error}
                )
        assert self._conn is not None
        run.invocation = ProcessCall(self)
        if run.cancel_event.is_set():
            return cancelled()
        try:
            payload = pickle.dumps(
                ("run", run.execution.pk, handler_path, kwargs, run.run_log.echo),
                pickle.HIGHEST_PROTOCOL,
            )
        except Exception as error:  # an object pickle cannot take
            return failed(
                _(
                    "The parameters cannot be sent to a handler process (%(error)s): "
                    "give the handler values pickle can copy, or run it with "
                    "SCHEDULER_ISOLATION=thread."
                )
                % {"error": error}
            )
        try:
            self._conn.send_bytes(payload)
        except OSError:  # it died since the check: a new one gets the run
            self._ended()
            self.start()
            assert self._conn is not None
            self._conn.send_bytes(payload)
        return self._wait(run)

    def _wait(self, run: Run) -> Result:
        assert self._conn is not None and self._proc is not None
        conn = self._conn
        timeout = run.task.timeout_seconds
        started = time.monotonic()
        deadline = started + timeout if timeout else None
        give_up_at: float | None = None  # once a cancel was passed on
        waited_on: list[Any] = [conn, self._wake_r]
        if self._pidfd is not None:
            waited_on.append(self._pidfd)
        while True:
            now = time.monotonic()
            ends = [t for t in (deadline, give_up_at) if t is not None]
            if not self._ready:
                ends.append(started + START_TIMEOUT_SECONDS)
            ready = wait(waited_on, timeout=max(0.0, min(ends) - now) if ends else None)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            if conn in ready:
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    return self._died(run)
                result = self._handle(run, message)
                if result is not None:
                    return result
                continue  # drain what it sent before looking at anything else
            if self._pidfd is not None and self._pidfd in ready:
                return self._died(run)
            now = time.monotonic()
            if run.cancel_event.is_set() and give_up_at is None:
                with contextlib.suppress(OSError):
                    conn.send(("cancel", run.execution.pk))
                give_up_at = now + self.kill_grace_seconds
            if give_up_at is not None and now >= give_up_at:
                self._stop_for(run, "cancelled")
                return cancelled()
            if deadline is not None and now >= deadline:
                self._stop_for(run, "timed out")
                run.run_log.cancelled = True
                return failed(
                    _(
                        "Timed out after %(seconds)s s (timeout_seconds); its handler "
                        "process was stopped."
                    )
                    % {"seconds": timeout},
                    FailureKind.TIMEOUT,
                )
            if not self._ready and now >= started + START_TIMEOUT_SECONDS:
                self._stop_for(run, "did not start")
                return failed(
                    _(
                        "The handler process did not start within %(seconds)d s; see "
                        "the scheduler's log."
                    )
                    % {"seconds": START_TIMEOUT_SECONDS}
                )

    def _handle(self, run: Run, message: tuple[Any, ...]) -> Result | None:
        kind = message[0]
        if kind == "log":
            run.run_log.write(message[1])
        elif kind == "progress":
            run.run_log.set_progress(message[1], message[2])
        elif kind == "extend":
            held = run.extend_lock(message[1])
            with contextlib.suppress(OSError):
                assert self._conn is not None
                self._conn.send(("extended", held))
        elif kind == "ready":
            self._ready = True
        elif kind == "done":
            _kind, fields, stopped, rss = message
            self._after_run(rss)
            if stopped and run.cancel_event.is_set():
                return cancelled()
            return Result(**fields)
        return None

    def _after_run(self, rss: int) -> None:
        self._runs += 1
        reason = ""
        if self.max_runs and self._runs >= self.max_runs:
            reason = "after %d runs (SCHEDULER_WORKER_MAX_RUNS)" % self._runs
        elif self.max_memory_bytes and rss > self.max_memory_bytes:
            reason = "at %d MB resident (SCHEDULER_WORKER_MAX_MEMORY_MB)" % (
                rss // 2**20
            )
        if reason:
            logger.info("Handler process %s replaced %s", self.pid, reason)
            self._retire()
            self.start()

    def _stop_for(self, run: Run, why: str) -> None:
        pid = self.pid
        code = self._stop()
        logger.warning(
            "Execution %s %s: its handler process %s was stopped (%s)",
            run.execution.pk,
            why,
            pid,
            _describe_exit(code),
        )
        self.start()

    def _died(self, run: Run) -> Result:
        pid, was_ready = self.pid, self._ready
        code = self._ended()
        what = _describe_exit(code)
        logger.error(
            "The handler process %s of execution %s (task %s) %s",
            pid,
            run.execution.pk,
            run.task.name,
            what,
        )
        self.start()
        if not was_ready:
            message = _(
                "The handler process %(what)s before it was ready: see the "
                "scheduler's log for its error."
            ) % {"what": what}
        else:
            message = _("The handler process %(what)s while running the handler.") % {
                "what": what
            }
        return failed(message)

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")


def _describe_exit(code: int) -> str:
    if code < 0:
        return _("exited with signal %(number)d (%(name)s)") % {
            "number": -code,
            "name": signal_name(-code),
        }
    return _("exited with code %(code)d") % {"code": code}


class ProcessCall:
    """A run's handler call in a process: what `Run.cancel` reaches."""

    def __init__(self, process: HandlerProcess) -> None:
        self._process = process

    def cancel(self) -> None:
        """Wake the pool thread, which passes the cancel on (and stops the process if need be)."""
        self._process.wake()
