"""The README's API examples, run with curl against real web servers.

`runserver` (the Procfile's web process, which `make run` starts) and `gunicorn`
(the README's "Production" command line) each serve this test's database on a free
loopback port. A WSGI server refuses a header value that is not exactly `str`
(runserver answers 500), which Django's test client lets through: only a real
server shows it. The README's curl lines run as written, through bash, with `$KEY`
set and the README's address replaced by the server's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from scheduler_app.services import execution_run, task_create, task_request_run
from tests.factories import key_for
from tests.helpers import readme_command, readme_section, sh_blocks
from tests.processes import (
    REPO_ROOT,
    STARTUP_TIMEOUT,
    LoggedProcess,
    Processes,
    child_env,
    free_port,
    http_status,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: The address the README's examples use; the tests put the server's instead.
README_ADDRESS = "http://localhost:8000"
#: Every curl call: `-q` (first) keeps a ~/.curlrc from changing the request.
CURL_OPTIONS = ["-q", "--silent", "--show-error", "--max-time", "30"]
#: The servers' SCHEDULER_METRICS_TOKEN (README, "Metrics").
METRICS_TOKEN = "readme-metrics-token"
#: Wraps the curl of a README line, so the response headers go to a file.
CURL_FUNCTION = 'curl() { command curl %s --dump-header "$CURL_HEADERS" "$@"; }\n' % (
    " ".join(CURL_OPTIONS)
)


def procfile_command(process: str) -> str:
    """The command line of a Procfile process (what `make run` starts, via honcho)."""
    for line in (REPO_ROOT / "Procfile").read_text().splitlines():
        name, _colon, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise AssertionError("the Procfile has no %r process" % process)


def server_command(server: str) -> str:
    """The shell command line that starts `server` on $HOST:$PORT."""
    if server == "runserver":
        command = procfile_command("web")
        assert "${HOST:-127.0.0.1}:${PORT:-8000}" in command, command
        return command
    command = readme_command("gunicorn ")
    assert "127.0.0.1:8000" in command, command
    return command.replace("127.0.0.1:8000", "$HOST:$PORT")


# What the tests read from the README ---------------------------------------------


def shell_commands(block: str) -> list[str]:
    """A shell block's command lines, continuations joined (bash skips comments)."""
    lines = block.replace("\\\n", "").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def readme_api_examples() -> list[str]:
    """Every command line of the ```sh blocks in the README's "API" section."""
    return [
        command
        for block in sh_blocks(readme_section("API"))
        for command in shell_commands(block)
    ]


def method_and_path(command: str) -> tuple[str, str]:
    method = re.search(r"-X (\w+)", command)
    path = re.search(re.escape(README_ADDRESS) + r"(/[^\"\s?]*)", command)
    assert path, "no %s URL in %r" % (README_ADDRESS, command)
    return (method.group(1) if method else "GET", path.group(1))


def readme_error_example() -> dict[str, Any]:
    """The JSON error body the README's "API" section shows."""
    section = readme_section("API")
    block = section.split("```json\n", 1)[1].split("```", 1)[0]
    return dict(json.loads(block))


def readme_endpoint_table() -> list[tuple[str, str]]:
    """(method, path) of each endpoint of the README's method | path | does table."""
    table = readme_section("API").split("| method | path | does |\n", 1)[1]
    endpoints = []
    for row in table.splitlines()[1:]:
        if not row.startswith("|"):
            break
        methods, paths = row.strip("|").split("|")[:2]
        previous = ""
        for path in re.findall(r"`([^`]+)`", paths):
            if path.startswith(".../"):  # ".../resume": the same prefix as before
                path = previous.rsplit("/", 1)[0] + path[3:]
            previous = path
            for method in methods.split(","):
                endpoints.append((method.strip(), path))
    return endpoints


def test_the_readme_shows_only_api_examples_that_these_tests_run() -> None:
    assert [method_and_path(command) for command in readme_api_examples()] == [
        ("POST", "/api/v1/tasks"),
        ("POST", "/api/v1/tasks/my_task/run"),
        ("GET", "/api/v1/tasks/executions/7/log"),
        ("POST", "/api/v1/tasks"),  # the error example
    ]
    assert sorted(readme_endpoint_table()) == sorted(ENDPOINT_STATUS)


# Servers and curl -------------------------------------------------------------------


@dataclass
class Answer:
    """What curl received: the status and headers of the last response, the body."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class WebServer(LoggedProcess):
    """A web server subprocess, started from its shell command line."""

    def __init__(self, name: str, log_dir: Path, key: str) -> None:
        self.label = name
        self.key = key
        self.log_dir = log_dir
        port = free_port()
        self.address = "http://127.0.0.1:%d" % port
        env = child_env(
            HOST="127.0.0.1",
            PORT=str(port),
            # make run serves with .env.example's DEBUG=true; production without.
            DEBUG="true" if name == "runserver" else "false",
            # In production a TLS proxy stands in front of gunicorn (README,
            # Production) and the https redirect is on; these requests reach it
            # directly over plain http, as the proxy's would.
            SECURE_SSL_REDIRECT="false",
            # As `make run` does, so `python` and `gunicorn` are the virtualenv's.
            PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
            SCHEDULER_METRICS_TOKEN=METRICS_TOKEN,
        )
        command = ["bash", "-c", "exec " + server_command(name)]
        super().__init__(command, env, log_dir / ("%s.log" % name))
        self._calls = 0

    def url(self, path: str) -> str:
        return self.address + path

    def wait_ready(self) -> None:
        login_page = self.url("/admin/login/")
        status = wait_for(lambda: http_status(login_page), STARTUP_TIMEOUT, self)
        assert status == 200, self.report()

    def shell(self, command: str, **variables: str) -> Answer:
        """Run a README command line (bash), pointed at this server, with $KEY set.

        `variables` are set too (SCHEDULER_METRICS_TOKEN ...).
        """
        assert README_ADDRESS in command, command
        headers = self._headers_file()
        script = CURL_FUNCTION + command.replace(README_ADDRESS, self.address)
        env = {"PATH": os.environ["PATH"], "KEY": self.key, "CURL_HEADERS": headers}
        return self._answer(["bash", "-c", script], headers, {**env, **variables})

    def curl(self, *arguments: str) -> Answer:
        """curl with these arguments, `$KEY` standing for the key, at this server."""
        headers = self._headers_file()
        command = ["curl", *CURL_OPTIONS, "--dump-header", headers] + [
            argument.replace("$KEY", self.key).replace(README_ADDRESS, self.address)
            for argument in arguments
        ]
        return self._answer(command, headers, {"PATH": os.environ["PATH"]})

    def _headers_file(self) -> str:
        self._calls += 1
        return str(self.log_dir / ("curl-%d.headers" % self._calls))

    def _answer(self, command: list[str], headers: str, env: dict[str, str]) -> Answer:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, (command, done.stderr, self.report())
        return parse_answer(Path(headers).read_text(), done.stdout)


def parse_answer(dumped_headers: str, body: str) -> Answer:
    """The last response of curl's --dump-header file (read with universal newlines)."""
    responses = [part for part in dumped_headers.split("\n\n") if part.strip()]
    status_line, *lines = responses[-1].splitlines()
    headers = {}
    for line in lines:
        name, _colon, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status=int(status_line.split()[1]), headers=headers, body=body)


@pytest.fixture
def key(superuser: User) -> str:
    return key_for(superuser)


@pytest.fixture(params=["runserver", "gunicorn"])
def server(
    request: pytest.FixtureRequest, processes: Processes, tmp_path: Path, key: str
) -> WebServer:
    """A running web server on this test's database; stopped (SIGTERM) at teardown."""
    web = processes.start(WebServer(request.param, tmp_path, key))
    web.wait_ready()
    return web


# The tests -------------------------------------------------------------------------


def test_the_readme_curl_examples_answer_as_documented(server: WebServer) -> None:
    create, run, log, error = readme_api_examples()

    created = server.shell(create)
    assert created.status == 201, (created, server.report())
    task = ScheduledTask.objects.get(name="my_task")
    body = created.json()
    assert (body["id"], body["task_type"], body["interval_seconds"]) == (
        task.pk,
        "interval",
        3600,
    )
    assert body["handler_path"] == "scripts:example_task"
    assert created.headers["location"] == body["url"]
    assert body["url"] == server.url("/api/v1/tasks/%d" % task.pk)

    requested = server.shell(run)
    assert requested.status == 202, (requested, server.report())
    execution = TaskExecution.objects.get(task=task)  # the one request made one run
    body = requested.json()
    assert (body["id"], body["status"]) == (execution.pk, "pending")
    assert requested.headers["location"] == body["url"]
    assert body["url"] == server.url("/api/v1/tasks/executions/%d" % execution.pk)

    # The log example reads the run the run example answered with.
    shown = re.search(r'# -> \{"id": (\d+)', run)
    assert shown, run
    example_path = "/executions/%s/" % shown.group(1)
    assert example_path in log, (run, log)
    execution_run(execution=execution)  # what the scheduler would do
    tail = server.shell(log.replace(example_path, "/executions/%d/" % execution.pk))
    assert tail.status == 200, (tail, server.report())
    body = tail.json()
    assert (body["status"], body["finished"]) == ("success", True)
    assert body["lines"][0].endswith("Example task started")
    assert body["offset"] == len(body["lines"])

    refused = server.shell(error)
    assert refused.status == 400, (refused, server.report())
    assert refused.json() == readme_error_example()
    assert not ScheduledTask.objects.filter(name="sync").exists()


#: The status each endpoint of the README's table answers in the test below.
ENDPOINT_STATUS = {
    ("GET", "tasks"): 200,
    ("POST", "tasks"): 201,
    ("GET", "tasks/{id_or_name}"): 200,
    ("PUT", "tasks/{id_or_name}"): 200,
    ("PATCH", "tasks/{id_or_name}"): 200,
    ("DELETE", "tasks/{id_or_name}"): 204,
    ("POST", "tasks/{id_or_name}/run"): 202,
    ("POST", "tasks/{id_or_name}/trigger"): 202,
    ("POST", "tasks/{id_or_name}/pause"): 200,
    ("POST", "tasks/{id_or_name}/resume"): 200,
    ("POST", "tasks/{id_or_name}/disable"): 200,
    ("POST", "tasks/{id_or_name}/enable"): 200,
    ("GET", "tasks/{id_or_name}/executions"): 200,
    ("GET", "tasks/{id_or_name}/history"): 200,
    ("GET", "tasks/stats"): 200,
    ("GET", "tasks/executions"): 200,
    ("GET", "tasks/executions/{id}"): 200,
    ("GET", "tasks/executions/{id}/log?offset=N"): 200,
    ("POST", "tasks/executions/{id}/cancel"): 200,  # a pending run
    ("GET", "tasks/handlers"): 200,
    ("GET", "tasks/registered"): 200,
    ("GET", "tasks/locks"): 200,
    ("GET", "tasks/{id_or_name}/lock"): 200,
    ("POST", "tasks/{id_or_name}/release-lock"): 200,
    ("GET", "scheduler/status"): 200,
    ("GET", "alerts"): 200,
    ("GET", "audit"): 200,
}
TABLE_TASK = {
    "name": "readme_table",
    "task_type": "manual",
    "handler_path": "scripts:example_task",
}
ENDPOINT_BODY = {
    ("POST", "tasks"): {**TABLE_TASK, "name": "readme_table_new"},
    ("PUT", "tasks/{id_or_name}"): {**TABLE_TASK, "description": "replaced"},
    ("PATCH", "tasks/{id_or_name}"): {"description": "changed"},
}


def test_every_endpoint_of_the_readme_table_answers(server: WebServer) -> None:
    task = task_create(task=ScheduledTask(**TABLE_TASK))
    pending = task_request_run(task=task)
    # Deletes last, so the other rows still find the task.
    endpoints = sorted(readme_endpoint_table(), key=lambda row: row[0] == "DELETE")

    for method, path in endpoints:
        url = server.url(
            "/api/v1/"
            + path.replace("{id_or_name}", task.name)
            .replace("{id}", str(pending.pk))
            .replace("offset=N", "offset=0")
        )
        if method == "DELETE":  # the run row left a pending run: cancel it too
            url += "?cancel_runs=true"
        arguments = ["-X", method, "-H", "X-Api-Key: $KEY"]
        if (method, path) in ENDPOINT_BODY:
            arguments += ["-H", "Content-Type: application/json"]
            arguments += ["-d", json.dumps(ENDPOINT_BODY[(method, path)])]
        answer = server.curl(*arguments, url)
        expected = ENDPOINT_STATUS[(method, path)]
        assert answer.status == expected, (method, url, answer, server.report())
        if expected != 204:
            assert answer.headers["content-type"] == "application/json", answer
            answer.json()

    assert not ScheduledTask.objects.filter(pk=task.pk).exists()
    assert ScheduledTask.objects.filter(name="readme_table_new").exists()


def test_keys_sent_the_three_documented_ways_authenticate(server: WebServer) -> None:
    section = readme_section("API")
    ways = re.search(r"Send it as `([^`]+)`,\s+`([^`]+)`,\s+or\s+`([^`]+)`", section)
    assert ways, "the README no longer lists the three ways to send a key"
    header, authorization, query = (
        way.replace("<key>", "$KEY") for way in ways.groups()
    )
    tasks = README_ADDRESS + "/api/v1/tasks"
    task_create(
        task=ScheduledTask(
            name="readme_auth", task_type="manual", handler_path="scripts:example_task"
        )
    )

    for arguments in (
        ["-H", header, tasks],
        ["-H", authorization, tasks],
        [tasks + query],
    ):
        answer = server.curl(*arguments)
        assert answer.status == 200, (arguments, answer, server.report())
        names = [task["name"] for task in answer.json()["results"]]
        assert "readme_auth" in names, answer

    missing = server.curl(tasks)
    assert missing.status == 401, missing
    assert missing.json()["code"] == "not_authenticated"
    assert missing.headers["www-authenticate"] == 'Api-Key realm="api"'
    unknown = server.curl("-H", "X-Api-Key: abc.def", tasks)
    assert unknown.status == 401, unknown
    assert unknown.json()["code"] == "authentication_failed"
    assert set(unknown.json()) == {"detail", "code", "field", "errors"}


def test_the_documented_schema_docs_and_admin_urls_answer(server: WebServer) -> None:
    key = ["-H", "X-Api-Key: $KEY"]

    schema = server.curl(*key, README_ADDRESS + "/api/v1/schema/?format=json")
    assert schema.status == 200, (schema, server.report())
    assert schema.json()["openapi"].startswith("3.")
    yaml = server.curl(*key, README_ADDRESS + "/api/v1/schema/")
    assert yaml.status == 200, yaml
    assert yaml.body.startswith("openapi: 3.")
    for page in ("/api/v1/docs/", "/api/v1/redoc/"):
        answer = server.curl(*key, README_ADDRESS + page)
        assert answer.status == 200, (page, answer, server.report())
        assert answer.headers["content-type"].startswith("text/html"), answer
    # "Every URL works with or without the trailing slash."
    assert server.curl(*key, README_ADDRESS + "/api/v1/tasks/").status == 200

    admin = server.curl(README_ADDRESS + "/admin/")
    assert admin.status == 302, admin
    assert admin.headers["location"] == "/admin/login/?next=/admin/"


def test_the_health_endpoint_answers_as_the_readme_shows(server: WebServer) -> None:
    section = readme_section("Production").split("### Health endpoint", 1)[1]
    documented = json.loads(section.split("```json\n", 1)[1].split("```", 1)[0])

    result = subprocess.run(
        [
            "curl",
            *CURL_OPTIONS,
            "--write-out",
            "\n%{http_code}",
            server.address + "/health/",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    text, _newline, code = result.stdout.rpartition("\n")
    status, body = int(code), json.loads(text)

    assert status == 503  # no scheduler runs beside this server
    assert body["status"] == "down"
    assert set(body) == set(documented)
    assert set(body["scheduler"]) == set(documented["scheduler"])
    assert set(body["executions"]) == set(documented["executions"])
    assert set(body["tasks"]["health"]) == set(documented["tasks"]["health"])


def readme_metric_names() -> list[str]:
    """The names of the README's "Metrics" table (what GET /metrics serves)."""
    return re.findall(
        r"^\| `(scheduler_[a-z_]+)` \|", readme_section("Metrics"), flags=re.MULTILINE
    )


def test_the_metrics_example_scrapes_the_documented_names(server: WebServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    (block,) = sh_blocks(readme_section("Metrics"))
    (command,) = shell_commands(block)
    task = task_create(
        task=ScheduledTask(
            name="readme_metrics",
            task_type="interval",
            interval_seconds=3600,
            handler_path="scripts:example_task",
        )
    )
    execution_run(execution=task_request_run(task=task))
    ScheduledTask.objects.filter(pk=task.pk).update(
        next_run_at=timezone.now() + dt.timedelta(hours=1)
    )
    SchedulerInstance.objects.create(instance_id="readme-host:1", is_leader=True)

    scraped = server.shell(command, SCHEDULER_METRICS_TOKEN=METRICS_TOKEN)
    refused = server.shell(command, SCHEDULER_METRICS_TOKEN="not-the-token")

    assert scraped.status == 200, (scraped, server.report())
    assert scraped.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    sampled = {
        sample.name
        for family in text_string_to_metric_families(scraped.body)
        for sample in family.samples
    }
    names = readme_metric_names()
    assert len(names) == 9, names
    for name in names:
        assert name in sampled, (name, sorted(sampled))
    assert 'scheduler_task_runs_total{status="success",task="readme_metrics"} 1.0' in (
        scraped.body
    )
    assert 'scheduler_leader{instance="readme-host:1"} 1.0' in scraped.body
    assert refused.status == 401, refused
    assert refused.headers["www-authenticate"] == 'Bearer realm="metrics"'
