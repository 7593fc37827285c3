"""The README's "Production" commands, run as shown (worker, scheduler: test_workers)."""

from __future__ import annotations

import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.celery.conftest import (
    WORKER_STARTUP_TIMEOUT,
    Broker,
    WorkerProcess,
    process_env,
    wait_for_workers,
)
from tests.processes import (
    REPO_ROOT,
    free_port,
    readme_command,
    readme_production_commands,
    venv_command,
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
        done = subprocess.run(
            venv_command(readme_command(prefix)),
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, (prefix, done.stdout, done.stderr)
    assert (tmp_path / "static" / "admin" / "css" / "base.css").is_file()


def test_gunicorn_as_shown_serves_the_admin(tmp_path: Path) -> None:
    port = free_port()
    command = readme_command("gunicorn ").replace(
        "127.0.0.1:8000", "127.0.0.1:%d" % port
    )
    # Behind the README's proxy, which terminates TLS and says so in a header.
    proxy = {"SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https"}
    web = WorkerProcess(
        venv_command(command), process_env(no_broker(), proxy), tmp_path / "web.log"
    )
    try:

        def login_page() -> int | None:
            request = urllib.request.Request(
                "http://127.0.0.1:%d/admin/login/" % port,
                headers={"X-Forwarded-Proto": "https"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except OSError:  # not listening yet (URLError, refused, reset)
                return None

        assert wait_for_workers(login_page, WORKER_STARTUP_TIMEOUT, web) == 200
        assert "Booting worker" in web.output()
    finally:
        web.stop()
