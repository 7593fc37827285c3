"""Test helpers: wait for a condition with a deadline instead of sleeping; read the README."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

README = Path(__file__).resolve().parents[1] / "README.md"


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {predicate}")
        time.sleep(interval)


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


class DatabaseAway:
    """write_finals, failing like a database that is away until `back()` is called."""

    def __init__(self, monkeypatch: Any) -> None:
        from scheduler_app.services import records

        self._real = records.write_finals
        self.away = True
        self.tries = 0
        monkeypatch.setattr(records, "write_finals", self)

    def __call__(self, **kwargs: object) -> set[int]:
        from django.db import OperationalError

        self.tries += 1
        if self.away:
            raise OperationalError("connection refused (the test's outage)")
        return self._real(**kwargs)

    def back(self) -> None:
        self.away = False


def run_in_thread(execution: Any, results: list[Any] | None = None) -> Any:
    """Start `execution_run` of `execution` in a thread of its own and return the
    thread; what it returns goes to `results`. The thread closes its database
    connection when it ends."""
    import threading

    from django.db import connections

    from scheduler_app.services import execution_run

    def target() -> None:
        try:
            ran = execution_run(execution=execution)
            if results is not None:
                results.append(ran)
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    return thread
