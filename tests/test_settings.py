"""Settings: production (DEBUG=false) passes `check --deploy`; `make run` serves plain http."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import README, readme_section, sh_blocks
from tests.processes import REPO_ROOT, run_to_end

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
    [block] = [
        block
        for block in sh_blocks(readme_section("Production"))
        if "DEBUG=false" in block
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
    return run_to_end([sys.executable, *args], env)


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


# --- The SCHEDULER_* settings: one table, and .env.example and the README agree ---

#: Prints each SCHEDULER_* setting config/settings.py produced, with its type's name.
SCHEDULER_SETTINGS = """
import json
from django.conf import settings
from scheduler_app.conf import SETTINGS
print(json.dumps({
    name: [getattr(settings, name), type(getattr(settings, name)).__name__]
    for name in SETTINGS
}))
"""

#: `NAME=value`, or commented out: `# NAME=value   (a remark)`.
ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>SCHEDULER_[A-Z_]+)=(?P<value>\S*)")


def env_example_scheduler_lines() -> list[tuple[str, str, bool]]:
    """(name, value, commented out) for each SCHEDULER_* line of .env.example."""
    found = []
    for line in (REPO_ROOT / ".env.example").read_text().splitlines():
        match = ENV_LINE.match(line.strip())
        if match:
            found.append((match["name"], match["value"], bool(match["comment"])))
    return found


def settings_read_from(variables: dict[str, str]) -> dict[str, list[object]]:
    done = run_with(
        {"SECRET_KEY": "x", "DEBUG": "true", **variables},
        "-c",
        "import django; django.setup()\n" + SCHEDULER_SETTINGS,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def as_read(default: object) -> list[object]:
    """What SCHEDULER_SETTINGS prints for a setting whose value is `default`."""
    return json.loads(json.dumps([default, type(default).__name__]))


def as_printed(read: dict[str, list[object]]) -> dict[str, list[object]]:
    """`read`, a tuple of names taken for the list the environment's reader makes."""
    return {
        name: [value, "list" if kind == "tuple" else kind]
        for name, (value, kind) in read.items()
    }


def test_env_example_and_the_defaults_table_agree() -> None:
    """.env.example shows every SCHEDULER_* setting of the table with its default.

    The rule:
    - every setting of scheduler_app.conf.SETTINGS has exactly one line in
      .env.example, and every SCHEDULER_* line there names a setting of the table;
    - a line that sets the variable (`NAME=value`) sets it to its default:
      config/settings.py, reading .env.example's values, ends with every setting
      equal to its default and of its type (a list for a list of names);
    - a commented-out line (`# NAME=example`) shows an example instead, and is
      allowed only for a setting whose default is empty (nothing to show).
    """
    from scheduler_app.conf import DEFAULTS

    lines = env_example_scheduler_lines()
    names = [name for name, _value, _commented in lines]
    assert sorted(names) == sorted(set(names)), "a setting listed twice"
    assert set(names) == set(DEFAULTS)

    for name, _value, commented in lines:
        assert not commented or not DEFAULTS[name], (
            "%s is commented out in .env.example but has a default (%r): write "
            "%s=<default> instead" % (name, DEFAULTS[name], name)
        )

    variables = {name: value for name, value, commented in lines if not commented}
    read = settings_read_from(variables)
    expected = {name: as_read(default) for name, default in DEFAULTS.items()}
    assert as_printed(read) == as_printed(expected)


def test_settings_use_the_table_s_defaults_without_the_environment() -> None:
    from scheduler_app.conf import DEFAULTS

    read = settings_read_from({})

    assert read == {name: as_read(default) for name, default in DEFAULTS.items()}


def test_settings_read_each_type_from_the_environment() -> None:
    read = settings_read_from(
        {
            "SCHEDULER_ENABLED": "false",
            "SCHEDULER_HISTORY_DAYS": "7",
            "SCHEDULER_LOG_PUBLISH_INTERVAL": "2",
            "SCHEDULER_HANDLER_MODULES": "myapp.jobs,myapp.reports",
            "SCHEDULER_SCRIPTS_PATH": "/srv/scripts",
        }
    )

    assert read["SCHEDULER_ENABLED"] == [False, "bool"]
    assert read["SCHEDULER_HISTORY_DAYS"] == [7, "int"]
    assert read["SCHEDULER_LOG_PUBLISH_INTERVAL"] == [2.0, "float"]
    assert read["SCHEDULER_HANDLER_MODULES"] == [
        ["myapp.jobs", "myapp.reports"],
        "list",
    ]
    assert read["SCHEDULER_SCRIPTS_PATH"] == ["/srv/scripts", "str"]


def test_the_scripts_folder_is_relative_to_the_project(settings: Any) -> None:
    from scheduler_app.conf import app_settings

    settings.SCHEDULER_SCRIPTS_PATH = "scripts"
    relative = app_settings.SCHEDULER_SCRIPTS_PATH
    settings.SCHEDULER_SCRIPTS_PATH = "/srv/scripts"
    absolute = app_settings.SCHEDULER_SCRIPTS_PATH

    assert relative == str(REPO_ROOT / "scripts")
    assert absolute == "/srv/scripts"


#: "`SCHEDULER_X` (30", "`SCHEDULER_X` 30 s", "`SCHEDULER_X`, 60 s": a default quoted.
README_DEFAULT = re.compile(r"`(SCHEDULER_[A-Z_]+)`(?: \(|,? )(\d+(?:\.\d+)?)\b")


def test_the_readme_names_only_settings_of_the_table_with_their_defaults() -> None:
    from scheduler_app.conf import DEFAULTS

    text = README.read_text()

    assert set(re.findall(r"\bSCHEDULER_[A-Z_]*[A-Z]\b", text)) <= set(DEFAULTS)
    quoted = README_DEFAULT.findall(text)
    assert quoted, "the README quotes no default: is the pattern still right?"
    for name, number in quoted:
        assert float(number) == DEFAULTS[name], (name, number)


def test_the_checks_refuse_a_setting_the_table_says_must_be_positive(
    settings: Any,
) -> None:
    from scheduler_app.checks import check_scheduler_settings
    from scheduler_app.conf import SETTINGS

    positive = {name for name, setting in SETTINGS.items() if setting.positive}
    for name in positive:
        setattr(settings, name, 0)

    found = {
        (error.id, error.msg.split()[0])
        for error in check_scheduler_settings()
        if error.id in ("scheduler_app.E002", "scheduler_app.E004")
    }

    assert {name for _id, name in found} == positive
    assert ("scheduler_app.E002", "SCHEDULER_HISTORY_DAYS") in found
    assert ("scheduler_app.E004", "SCHEDULER_LOG_PUBLISH_INTERVAL") in found


def test_the_checks_refuse_a_cap_with_no_room_for_its_marker(settings: Any) -> None:
    from scheduler_app.checks import check_scheduler_settings

    settings.SCHEDULER_RESULT_MAX_BYTES = 100
    settings.SCHEDULER_ERROR_MAX_BYTES = 1024

    found = [
        error.msg
        for error in check_scheduler_settings()
        if error.id == "scheduler_app.E010"
    ]

    assert found == ["SCHEDULER_RESULT_MAX_BYTES must be at least 1024, not 100."]


@pytest.mark.parametrize(
    "value", ["pause,resume", ["pause", "run_now"], "Pause", "pause, delete,nap"]
)
def test_the_checks_refuse_a_required_reason_for_an_operation_that_takes_none(
    settings: Any, value: Any
) -> None:
    from scheduler_app.checks import check_scheduler_settings

    settings.SCHEDULER_REQUIRE_REASON_FOR = value

    [error] = [
        error
        for error in check_scheduler_settings()
        if error.id == "scheduler_app.E011"
    ]

    assert error.msg.startswith("SCHEDULER_REQUIRE_REASON_FOR names '")
    assert (
        error.hint
        == "Name only these, comma-separated: pause,disable,delete,release_lock."
    )


@pytest.mark.parametrize(
    "value", ["", "pause,disable,delete,release_lock", ["release_lock"], " pause , "]
)
def test_the_checks_accept_the_operations_that_take_a_reason(
    settings: Any, value: Any
) -> None:
    from scheduler_app.checks import check_scheduler_settings

    settings.SCHEDULER_REQUIRE_REASON_FOR = value

    assert not [
        error
        for error in check_scheduler_settings()
        if error.id == "scheduler_app.E011"
    ]
