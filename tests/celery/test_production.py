"""The README's "Production" commands, run as shown (worker, scheduler: test_workers)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.celery.conftest import Broker, process_env
from tests.helpers import readme_command, readme_production_commands
from tests.processes import (
    STARTUP_TIMEOUT,
    LoggedProcess,
    Processes,
    free_port,
    http_status,
    run_to_end,
    venv_command,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_readme_shows_only_commands_that_tests_run() -> None:
    assert readme_production_commands() == [
        "python manage.py migrate --noinput",
        "python manage.py collectstatic --noinput",
        "gunicorn config.wsgi --bind 127.0.0.1:8000 --workers 4",
        "python manage.py runscheduler",  # test_workers: runs on workers, kills
        "celery -A config worker -Q scheduler --loglevel INFO",  # test_workers
    ]


def no_broker() -> Broker:
    return Broker(url="", prefix="scheduler:", queue="scheduler")


def test_migrate_and_collectstatic_run_as_shown(tmp_path: Path) -> None:
    env = process_env(no_broker(), {"STATIC_ROOT": str(tmp_path / "static")})
    for prefix in ("python manage.py migrate", "python manage.py collectstatic"):
        done = run_to_end(venv_command(readme_command(prefix)), env)
        assert done.returncode == 0, (prefix, done.stdout, done.stderr)
    assert (tmp_path / "static" / "admin" / "css" / "base.css").is_file()


def test_gunicorn_as_shown_serves_the_admin(
    processes: Processes, tmp_path: Path
) -> None:
    port = free_port()
    command = readme_command("gunicorn ").replace(
        "127.0.0.1:8000", "127.0.0.1:%d" % port
    )
    # Behind the README's proxy, which terminates TLS and says so in a header.
    proxy = {"SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https"}
    web = processes.start(
        LoggedProcess(
            venv_command(command),
            process_env(no_broker(), proxy),
            tmp_path / "web.log",
            label="gunicorn",
        )
    )

    def login_page() -> int | None:
        return http_status(
            "http://127.0.0.1:%d/admin/login/" % port, {"X-Forwarded-Proto": "https"}
        )

    assert wait_for(login_page, STARTUP_TIMEOUT, web) == 200
    assert "Booting worker" in web.output()
