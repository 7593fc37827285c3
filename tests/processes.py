"""Helpers for tests that start real processes (schedulers, workers, web servers).

Such a process runs the project's real settings against the database of the
running test (the SQLite file or the PostgreSQL test database): `database_env()`
says where it is, and the test run's own variables (`WITHHELD_VARIABLES`) stay out
of the child's environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import pytest
from django.db import connection

from tests.helpers import wait_until

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
#: Variables of the test run that must not leak into the processes it starts.
WITHHELD_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "SQLITE_PATH",
    "DJANGO_SETTINGS_MODULE",
)


def database_env() -> dict[str, str]:
    """Environment that points a subprocess at the database this test uses."""
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


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def readme_section(title: str) -> str:
    """The text of the README's `## <title>` section, up to the next `## ` heading."""
    text = README.read_text()
    marker = "\n## %s\n" % title
    assert marker in text, "README.md has no section %r" % title
    return text.split(marker, 1)[1].split("\n## ", 1)[0]


def sh_blocks(text: str) -> list[str]:
    """The bodies of the ```sh code blocks in `text`, in order."""
    return [part.split("```", 1)[0] for part in text.split("```sh\n")[1:]]


def readme_production_commands() -> list[str]:
    """The command lines of the README's "Production" section (first code block)."""
    block = sh_blocks(readme_section("Production"))[0]
    return [
        line.strip()
        for line in block.splitlines()
        if line.strip() and not line.startswith("#")
    ]


def readme_command(prefix: str) -> str:
    """The README's production command line that starts with `prefix`."""
    matches = [
        command
        for command in readme_production_commands()
        if command.startswith(prefix)
    ]
    assert len(matches) == 1, (prefix, readme_production_commands())
    return matches[0]


class LoggedProcess:
    """A subprocess in a session of its own; its stdout and stderr go to a file."""

    label = "process"

    def __init__(self, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log_file = log_path.open("wb")
        self.popen = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        #: Set when the test kills the process itself, so an exit is no failure.
        self.killed = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, tail: int = 8000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:]

    def report(self) -> str:
        code = self.popen.poll()
        state = "running" if code is None else "exited with %s" % code
        return "--- %s (pid %s, %s) output ---\n%s" % (
            self.label,
            self.pid,
            state,
            self.output(),
        )

    def died(self) -> bool:
        return not self.killed and self.popen.poll() is not None

    def stop(self) -> None:
        """SIGTERM (a clean shutdown); what is left after a few seconds is killed."""
        if self.popen.poll() is None:
            self.popen.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)  # children left behind, if any
        self.popen.wait(timeout=10)
        self._log_file.close()


class Watched(Protocol):
    def died(self) -> bool: ...

    def report(self) -> str: ...


def wait_for_processes(
    predicate: Callable[[], Any], timeout: float, *processes: Watched
) -> Any:
    """wait_until, failing at once if a process died, with the processes' output."""

    def check() -> Any:
        if any(process.died() for process in processes):
            raise AssertionError("a subprocess died")
        return predicate()

    try:
        return wait_until(check, timeout=timeout, interval=0.05)
    except AssertionError as exc:
        output = "\n".join(process.report() for process in processes)
        raise AssertionError("%s\n%s" % (exc, output)) from None
