"""Settings: production (DEBUG=false) passes `check --deploy`; `make run` serves plain http."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Requests /admin/login/ with the settings of its environment; prints what came back.
LOGIN_PAGE = """
import json, sys
import django
django.setup()
from django.test import Client
response = Client().get("/admin/login/", HTTP_HOST="127.0.0.1:8000", **json.loads(sys.argv[1]))
print(json.dumps({
    "status": response.status_code,
    "location": response.get("Location", ""),
    "hsts": response.get("Strict-Transport-Security", ""),
    "cookies": {name: bool(cookie["secure"]) for name, cookie in response.cookies.items()},
}))
"""


def dotenv(text: str) -> dict[str, str]:
    """The variables a `.env` text sets; `<placeholder>` values become random strings."""
    variables = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, value = line.split("=", 1)
        variables[name] = re.sub(r"<[^>]*>", lambda _: secrets.token_urlsafe(50), value)
    return variables


def readme_production_env() -> dict[str, str]:
    """The README's production `.env`: the Production section's block with DEBUG=false."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Production\n", 1)[1].split("\n## ", 1)[0]
    [block] = [
        part.split("```", 1)[0]
        for part in section.split("```sh\n")[1:]
        if "DEBUG=false" in part
    ]
    return dotenv(block)


def make_run_env() -> dict[str, str]:
    """What `make run` puts in `.env`: .env.example with a fresh SECRET_KEY."""
    variables = dotenv((REPO_ROOT / ".env.example").read_text())
    variables["SECRET_KEY"] = secrets.token_urlsafe(50)
    return variables


def run_with(variables: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run Python with only these variables (plus PATH and HOME), from the repository."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        **variables,
    }
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def login_page(variables: dict[str, str], **headers: str) -> dict[str, object]:
    done = run_with(variables, "-c", LOGIN_PAGE, json.dumps(headers))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_check_deploy_has_no_warning_with_the_readme_production_env(
    tmp_path: Path,
) -> None:
    variables = {**readme_production_env(), "SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    assert variables["DEBUG"] == "false"

    done = run_with(
        variables, "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout
    assert "WARNINGS" not in done.stdout + done.stderr


def test_production_redirects_http_and_trusts_the_proxy_header_for_https(
    tmp_path: Path,
) -> None:
    variables = {
        **readme_production_env(),
        "ALLOWED_HOSTS": "127.0.0.1",
        "SQLITE_PATH": str(tmp_path / "db.sqlite3"),
    }

    plain = login_page(variables)
    proxied = login_page(variables, HTTP_X_FORWARDED_PROTO="https")

    assert plain["status"] == 301
    assert plain["location"] == "https://127.0.0.1:8000/admin/login/"
    assert proxied["status"] == 200
    assert proxied["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert proxied["cookies"] == {"csrftoken": True}


def test_make_run_settings_serve_plain_http(tmp_path: Path) -> None:
    variables = {**make_run_env(), "SQLITE_PATH": str(tmp_path / "db.sqlite3")}
    assert variables["DEBUG"] == "true"

    page = login_page(variables)

    assert page["status"] == 200, page
    assert page["hsts"] == ""
    assert page["cookies"] == {"csrftoken": False}
