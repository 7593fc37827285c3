"""The harness for tests that start real processes: schedulers, workers, web servers.

A process runs the project's real settings against the database of the running test
(the SQLite file or the PostgreSQL test database): `child_env()` says where it is,
and the test run's own variables (`WITHHELD_VARIABLES`) stay out of it. Its output
goes to a file, quoted when a wait fails. Waits poll with a deadline (`wait_for`)
and fail at once when a process died. `Processes` (the `processes` fixture of
tests/conftest.py) stops every process it started: SIGTERM, then SIGKILL of the
whole process group after a grace period, and the exit reaped.

Neither pytest nor Django is imported here at import time: bench/ starts its
processes with `LoggedProcess` too.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import quote

from tests.helpers import wait_until

if TYPE_CHECKING:
    from scheduler_app.models import SchedulerInstance

T = TypeVar("T")
P = TypeVar("P", bound="LoggedProcess")

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Variables of the test run that must not leak into the processes it starts.
WITHHELD_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "DJANGO_SETTINGS_MODULE",
)
#: Process start (Django setup, checks, imports, forks) on a slow CI machine.
STARTUP_TIMEOUT = 30.0
#: Between SIGTERM and SIGKILL when a process is stopped.
STOP_GRACE_SECONDS = 10.0


# Environment and command lines ------------------------------------------------------


def database_env() -> dict[str, str]:
    """Environment that points a subprocess at the database this test uses."""
    import pytest
    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        path = str(db["NAME"])
        # DATABASE_URL too, so a DATABASE_URL in .env or the shell cannot win.
        return {"SQLITE_PATH": path, "DATABASE_URL": "sqlite:///%s" % path}
    if connection.vendor == "postgresql":
        auth = quote(db["USER"] or "", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = db.get("HOST") or "127.0.0.1"
        port = ":%s" % db["PORT"] if db.get("PORT") else ""
        url = "postgres://%s@%s%s/%s" % (auth, host, port, db["NAME"])
        return {"DATABASE_URL": url}
    pytest.skip("these tests need SQLite or PostgreSQL, not %s" % connection.vendor)


def child_env(**overrides: str) -> dict[str, str]:
    """The environment of a process a test starts: real settings, this test's database.

    The test run's own settings (and what .env put in os.environ) stay out.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SCHEDULER_", "CELERY_"))
        and key not in WITHHELD_VARIABLES
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        SECRET_KEY="test",
        DEBUG="false",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        REDIS_URL="",
    )
    env.update(overrides)
    env.update(database_env())
    return env


def venv_command(command: str) -> list[str]:
    """A shell command line as shown in the README, run with this virtualenv's tools."""
    words = command.split()
    if words[0] == "python":
        words[0] = sys.executable
    else:
        words[0] = str(Path(sys.executable).parent / words[0])
    return words


def run_to_end(
    command: Sequence[str], env: dict[str, str], *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run a command from the repository to its end; its output is captured as text."""
    return subprocess.run(
        list(command),
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def path_param(path: Path) -> str:
    """A path as a parameter expression (a quoted string)."""
    return repr(str(path))


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its parent's wait counts)."""
    try:
        state = Path("/proc/%d/stat" % pid).read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


# Readiness -------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def http_status(url: str, headers: dict[str, str] | None = None) -> int | None:
    """The status a GET of `url` answers, or None while nothing answers there yet."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except OSError:  # not listening yet (URLError, refused, reset)
        return None


# Processes -------------------------------------------------------------------------


class LoggedProcess:
    """A subprocess started from the repository; its stdout and stderr go to a file.

    In a session of its own by default, so stopping it also ends whatever it forked
    (pool processes, gunicorn workers).
    """

    label = "process"

    def __init__(
        self,
        command: Sequence[str],
        env: dict[str, str],
        log_path: Path,
        *,
        label: str | None = None,
        new_session: bool = True,
        append: bool = False,
    ) -> None:
        if label is not None:
            self.label = label
        self.log_path = log_path
        self.new_session = new_session
        with log_path.open("ab" if append else "wb") as log:
            self.popen = subprocess.Popen(
                list(command),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=new_session,
            )
        #: Set when the test ends the process itself, so an exit is no failure.
        self.killed = False
        #: Set when the process outlived the grace period of `stop()` and was killed.
        self.forced = False
        #: Set once `reap()` has waited for it and killed what was left of its session.
        self.reaped = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, tail: int = 8000) -> str:
        """The last `tail` characters of what the process wrote."""
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def report(self) -> str:
        code = self.popen.poll()
        state = "running" if code is None else "exited with %s" % code
        return "--- %s (pid %s, %s) output ---\n%s" % (
            self.label,
            self.pid,
            state,
            self.output(),
        )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def died(self) -> bool:
        """It exited, and not because the test ended it."""
        return not self.killed and not self.alive()

    def wait_for_output(self, pattern: str, timeout: float = STARTUP_TIMEOUT) -> Any:
        """Wait until the process writes a line that matches `pattern` (a regex)."""
        return wait_for(lambda: re.search(pattern, self.output()), timeout, self)

    def send_signal(self, signum: int) -> None:
        """Send `signum` to the process itself; its exit is no failure from now on."""
        self.killed = True
        self.popen.send_signal(signum)

    def kill_all(self) -> None:
        """kill -9 the process and everything of its session at once, and reap it."""
        self.killed = True
        self._kill()
        self.popen.wait(timeout=10)
        self.reaped = True

    def terminate(self) -> None:
        """SIGTERM (a clean shutdown), if it still runs; `reap()` waits for the exit."""
        self.killed = True
        if self.alive():
            self.popen.terminate()

    def reap(self, deadline: float) -> int | None:
        """Wait for the exit until `deadline` (monotonic), then kill; the exit code.

        Once only: a second call (a fixture stopping what a test stopped already)
        returns the code, and signals nothing: the pid may belong to another
        process by then.
        """
        if self.reaped:
            return self.popen.returncode
        try:
            self.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.forced = True
        self._kill()  # also what it left behind in its session, if anything
        self.popen.wait(timeout=10)
        self.reaped = True
        return self.popen.returncode

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM, SIGKILL after `grace` seconds; returns the exit code."""
        self.terminate()
        return self.reap(time.monotonic() + grace)

    def _kill(self) -> None:
        if self.new_session:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        elif self.alive():
            self.popen.kill()


def stop_all(
    processes: Iterable[LoggedProcess], grace: float = STOP_GRACE_SECONDS
) -> None:
    """SIGTERM every process at once, then kill what outlives the grace period."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        process.reap(deadline)


class TcpProxy:
    """A loopback TCP proxy to `target` that a test cuts and restores: a database
    outage, as the processes behind it see one (their connections break, new ones
    are refused), without stopping the shared server."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        """Accept connections again, on the same port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Break every connection and refuse new ones, until restore()."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            listener.close()
        for each in sockets:
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            each.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _address = listener.accept()
            except OSError:  # closed by cut()
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(
                    target=self._pipe, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for each in (source, sink):
                with contextlib.suppress(OSError):
                    each.shutdown(socket.SHUT_RDWR)


class RedisServer(LoggedProcess):
    """A private redis-server on a loopback port, without persistence: what a test's
    outage stops and starts again (empty, as a restart without persistence is)."""

    label = "redis-server"

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        super().__init__(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            dict(os.environ),
            log_path,
        )

    @property
    def url(self) -> str:
        return "redis://127.0.0.1:%d/0" % self.port

    def wait_ready(self) -> None:
        self.wait_for_output(r"Ready to accept connections", 10)


class Processes:
    """The processes of one test: each one `start()` registers is stopped at the end."""

    def __init__(self) -> None:
        self.started: list[LoggedProcess] = []

    def start(self, process: P) -> P:
        """Register a process that was just started; returns it."""
        self.started.append(process)
        return process

    def stop(self) -> None:
        stop_all(self.started)

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class Watched(Protocol):
    def died(self) -> bool: ...

    def report(self) -> str: ...


def reports(*processes: Watched) -> str:
    """The processes' states and output, for an assertion message."""
    return "\n".join(process.report() for process in processes)


def wait_for(
    predicate: Callable[[], T | None], timeout: float, *processes: Watched
) -> T:
    """wait_until, with the processes' output in the failure message.

    Fails at once if one of `processes` died, rather than at the deadline.
    """

    def check() -> T | None:
        if any(process.died() for process in processes):
            raise AssertionError("a subprocess died")
        return predicate()

    try:
        value = wait_until(check, timeout=timeout, interval=0.05)
    except AssertionError as exc:
        raise AssertionError("%s\n%s" % (exc, reports(*processes))) from None
    assert value is not None
    return value


# The project's processes -----------------------------------------------------------


class SchedulerProcess(LoggedProcess):
    """One `manage.py runscheduler` subprocess."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_path: Path,
        args: Sequence[str] = (),
    ) -> None:
        super().__init__(
            [sys.executable, "manage.py", "runscheduler", *args],
            env,
            log_path,
            label="runscheduler %s" % name,
        )
        self.name = name
        self._instance_id = ""

    def instance_row(self) -> SchedulerInstance | None:
        from scheduler_app.models import SchedulerInstance

        rows = SchedulerInstance.objects.filter(pid=self.pid)
        return rows.order_by("-started_at").first()

    @property
    def instance_id(self) -> str:
        """The instance id this process registered (waits for its first heartbeat)."""
        if not self._instance_id:
            row = wait_for(self.instance_row, STARTUP_TIMEOUT, self)
            self._instance_id = row.instance_id
        return self._instance_id

    def is_leader(self) -> bool:
        row = self.instance_row()
        return bool(row and row.is_leader and row.stopped_at is None)


class WorkerProcess(LoggedProcess):
    """One `celery -A config worker` subprocess (its main and pool processes)."""

    label = "celery worker"

    def pool_rows(self) -> list[SchedulerInstance]:
        """The heartbeat rows of this worker's pool processes (its main's children)."""
        from scheduler_app.models import SchedulerInstance

        rows = SchedulerInstance.objects.filter(
            kind=SchedulerInstance.Kind.WORKER, stopped_at__isnull=True
        )
        return [
            row
            for row in rows
            if row.pid is not None and parent_pid(row.pid) == self.pid
        ]

    def wait_ready(self, processes: int) -> list[SchedulerInstance]:
        """Wait for the "ready" line and a heartbeat row per pool process."""
        self.wait_for_output(r"@\S+ ready\.")

        def every_pool_row() -> list[SchedulerInstance] | None:
            rows = self.pool_rows()
            return rows if len(rows) >= processes else None

        return wait_for(every_pool_row, STARTUP_TIMEOUT, self)


def parent_pid(pid: int) -> int | None:
    """The parent of process `pid`, from /proc; None once it is gone."""
    try:
        stat = Path("/proc/%d/stat" % pid).read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces, so split after the ")".
    return int(stat.rsplit(")", 1)[1].split()[1])
