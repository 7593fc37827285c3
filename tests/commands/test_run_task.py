"""`manage.py run_task` runs a task in the foreground; `manage.py ensure_admin` makes a login.

run_task tests are transactional: the handler runs on its own thread and database
connection, which must see the rows the test made.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.management.commands.ensure_admin import PASSWORD_FILE
from scheduler_app.models import (
    AuditEntry,
    ScheduledTask,
    SchedulerInstance,
    TaskExecution,
)
from tests.factories import make_task, make_user

run_task_db = pytest.mark.django_db(transaction=True)

FAILING_SCRIPT = """
def run(count: int = 1) -> None:
    raise RuntimeError("the database is on fire")
"""


# Counts the instances alive by kind while its own run goes on.
LOOKING_SCRIPT = """
from scheduler_app.models import SchedulerInstance
from scheduler_app.services import instances_alive_ids

def run() -> dict:
    alive = instances_alive_ids()
    kinds = SchedulerInstance.objects.filter(instance_id__in=alive)
    return {kind: kinds.filter(kind=kind).count() for kind in ("scheduler", "cli")}
"""


def run_task(*args: str) -> tuple[str, str]:
    """Call run_task and return what it wrote to stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    call_command("run_task", *args, stdout=stdout, stderr=stderr)
    return stdout.getvalue(), stderr.getvalue()


def make_sync_task(**overrides: Any) -> ScheduledTask:
    return make_task(
        name="nightly_sync",
        handler_path="scripts:data_sync",
        handler_kwargs={"days": "7", "target": "'orders'"},
        **overrides,
    )


@pytest.fixture
def failing_task(settings: Any, tmp_path: Path) -> ScheduledTask:
    settings.SCHEDULER_SCRIPTS_PATH = str(tmp_path)
    (tmp_path / "on_fire.py").write_text(FAILING_SCRIPT)
    return make_task(name="on_fire", handler_path="scripts:on_fire", max_retries=3)


@run_task_db
def test_run_task_prints_the_log_and_the_result_and_records_a_cli_success() -> None:
    task = make_sync_task()

    out, _err = run_task("nightly_sync")

    execution = TaskExecution.objects.get(task=task)
    assert execution.status == TaskExecution.Status.SUCCESS
    assert execution.trigger_type == TaskExecution.TriggerType.CLI
    assert execution.result["days"] == 7
    assert execution.result["target"] == "orders"
    assert "Synchronising 7 days of 'orders' from" in out
    assert "Synchronising 7 days of 'orders' from" in execution.log_output
    assert '"status": "completed"' in out
    assert "Execution #%s: success in" % execution.pk in out


@run_task_db
def test_run_task_counts_the_run_on_the_task() -> None:
    task = make_sync_task()

    run_task("nightly_sync")

    task.refresh_from_db()
    assert (task.run_count, task.success_count, task.fail_count) == (1, 1, 0)
    assert task.last_run_at is not None


@run_task_db
def test_run_task_accepts_the_task_id() -> None:
    task = make_sync_task()

    run_task(str(task.pk))

    assert TaskExecution.objects.get(task=task).status == TaskExecution.Status.SUCCESS


@run_task_db
def test_param_overrides_a_parameter_for_this_run_only() -> None:
    task = make_sync_task()

    out, _err = run_task(
        "nightly_sync", "--param", "days=2", "--param", "options={'dry_run': True}"
    )

    execution = TaskExecution.objects.get(task=task)
    assert execution.kwargs_overrides == {"days": "2", "options": "{'dry_run': True}"}
    assert execution.result["days"] == 2
    assert execution.result["target"] == "orders"
    assert execution.result["options"] == {"dry_run": True}
    assert "Synchronising 2 days" in out
    task.refresh_from_db()
    assert task.handler_kwargs == {"days": "7", "target": "'orders'"}


@run_task_db
def test_unknown_task_name_raises_naming_the_closest_names() -> None:
    make_sync_task()
    make_task(name="nightly_cleanup")
    make_task(name="unrelated")

    with pytest.raises(
        CommandError, match="No task “nightly_synk”. Did you mean: nightly_sync"
    ):
        run_task("nightly_synk")

    assert not TaskExecution.objects.exists()


@run_task_db
def test_failing_handler_raises_and_records_a_failed_run_with_traceback(
    failing_task: ScheduledTask,
) -> None:
    stderr = io.StringIO()

    with pytest.raises(
        CommandError, match=r"failed in \d+ ms\. RuntimeError: the database is on fire"
    ):
        call_command("run_task", "on_fire", stdout=io.StringIO(), stderr=stderr)

    execution = TaskExecution.objects.get(task=failing_task)
    assert execution.status == TaskExecution.Status.FAILED
    assert execution.failure_kind == TaskExecution.FailureKind.ERROR
    assert execution.error_message == "RuntimeError: the database is on fire"
    assert "Traceback (most recent call last)" in execution.error_traceback
    assert "RuntimeError: the database is on fire" in execution.error_traceback
    assert "RuntimeError: the database is on fire" in stderr.getvalue()


@run_task_db
def test_failing_cli_run_is_not_retried(failing_task: ScheduledTask) -> None:
    with pytest.raises(CommandError):
        run_task("on_fire")

    assert TaskExecution.objects.filter(task=failing_task).count() == 1
    failing_task.refresh_from_db()
    assert (failing_task.run_count, failing_task.fail_count) == (1, 1)


@run_task_db
def test_run_task_heartbeats_as_a_command_line_instance_not_a_scheduler() -> None:
    make_sync_task()

    run_task("nightly_sync")

    execution = TaskExecution.objects.get()
    instance = SchedulerInstance.objects.get(instance_id=execution.instance_id)
    assert instance.kind == SchedulerInstance.Kind.CLI
    assert instance.stopped_at is not None


@run_task_db
def test_while_its_run_goes_on_run_task_is_alive_as_cli_not_as_a_scheduler(
    settings: Any, tmp_path: Path
) -> None:
    settings.SCHEDULER_SCRIPTS_PATH = str(tmp_path)
    (tmp_path / "look.py").write_text(LOOKING_SCRIPT)
    make_task(name="look", handler_path="scripts:look")

    run_task("look")

    assert TaskExecution.objects.get().result == {"scheduler": 0, "cli": 1}


@run_task_db
def test_run_skipped_by_a_held_lock_exits_with_code_2() -> None:
    task = make_sync_task()
    backend = get_lock_backend()
    token = backend.acquire(task_lock_key(task.pk), owner="another run", ttl_seconds=60)
    assert token

    try:
        with pytest.raises(CommandError, match="skipped.*another run") as excinfo:
            run_task("nightly_sync")
    finally:
        backend.release(task_lock_key(task.pk), token)

    assert excinfo.value.returncode == 2
    assert TaskExecution.objects.get(task=task).status == TaskExecution.Status.SKIPPED


@pytest.mark.django_db
@pytest.mark.parametrize("param", ["days", "=2", " =2"])
def test_param_without_name_and_equals_sign_raises_with_the_syntax_hint(
    param: str,
) -> None:
    make_sync_task()

    with pytest.raises(
        CommandError, match="write it as name=expression, e.g. --param days=7"
    ):
        run_task("nightly_sync", "--param", param)

    assert not TaskExecution.objects.exists()


@pytest.mark.django_db
def test_param_of_the_wrong_type_raises_naming_the_parameter() -> None:
    make_sync_task()

    with pytest.raises(
        CommandError, match="Parameter “days”: expected an integer, got 'abc'"
    ):
        run_task("nightly_sync", "--param", "days='abc'")

    assert not TaskExecution.objects.exists()


@pytest.mark.django_db
def test_unknown_param_raises_naming_the_parameter() -> None:
    make_sync_task()

    with pytest.raises(CommandError, match="Parameter “dayz” is not accepted"):
        run_task("nightly_sync", "--param", "dayz=2")


@pytest.mark.django_db
def test_param_with_an_unsafe_expression_raises_naming_the_parameter() -> None:
    make_sync_task()

    with pytest.raises(CommandError, match="Parameter “days”"):
        run_task("nightly_sync", "--param", "days=__import__('os').getpid()")

    assert not TaskExecution.objects.exists()


# ensure_admin


@pytest.fixture
def project_dir(settings: Any, tmp_path: Path) -> Path:
    """BASE_DIR in a temporary folder, where ensure_admin keeps the generated password."""
    settings.BASE_DIR = tmp_path
    return tmp_path


def ensure_admin() -> str:
    stdout = io.StringIO()
    call_command("ensure_admin", stdout=stdout)
    return stdout.getvalue()


@pytest.mark.django_db
def test_ensure_admin_creates_a_superuser_with_the_configured_password(
    settings: Any, project_dir: Path
) -> None:
    settings.ADMIN_USERNAME = "boss"
    settings.ADMIN_PASSWORD = "s3cret-pass"

    out = ensure_admin()

    user = User.objects.get(username="boss")
    assert user.is_superuser and user.is_staff
    assert user.check_password("s3cret-pass")
    assert "Created admin login: boss / s3cret-pass" in out
    assert not (project_dir / PASSWORD_FILE).exists()


@pytest.mark.django_db
def test_ensure_admin_generates_a_password_and_keeps_it_private(
    settings: Any, project_dir: Path
) -> None:
    settings.ADMIN_USERNAME = "boss"
    settings.ADMIN_PASSWORD = ""

    ensure_admin()

    password_file = project_dir / PASSWORD_FILE
    username, password = password_file.read_text().strip().split(" / ")
    assert username == "boss"
    assert User.objects.get(username="boss").check_password(password)
    assert password_file.stat().st_mode & 0o077 == 0


@pytest.mark.django_db
def test_ensure_admin_second_call_creates_no_other_user(
    settings: Any, project_dir: Path
) -> None:
    settings.ADMIN_USERNAME = "boss"
    settings.ADMIN_PASSWORD = ""
    ensure_admin()
    password = (project_dir / PASSWORD_FILE).read_text()

    out = ensure_admin()

    assert User.objects.filter(is_superuser=True).count() == 1
    assert (project_dir / PASSWORD_FILE).read_text() == password
    assert (
        "Admin login: %s (as generated into %s" % (password.strip(), PASSWORD_FILE)
        in out
    )


@pytest.mark.django_db
def test_ensure_admin_leaves_an_existing_superuser_alone(
    settings: Any, project_dir: Path
) -> None:
    make_user("root", superuser=True, password="old-password")
    settings.ADMIN_USERNAME = "boss"
    settings.ADMIN_PASSWORD = "new-password"

    out = ensure_admin()

    assert list(User.objects.values_list("username", flat=True)) == ["root"]
    assert User.objects.get(username="root").check_password("old-password")
    assert "superuser “root”" in out
    assert not (project_dir / PASSWORD_FILE).exists()


#: The control characters a handler may send; none reaches the terminal as it is.
CONTROL_CHARACTERS = ("\x1b", "\x07", "\r", "\x7f", "\x9b")


@run_task_db
@pytest.mark.parametrize(
    ("fail", "printed"),
    [
        (True, "RuntimeError: \\x1b[2Jcleared \\x9b31m"),
        (False, '"text": "del\\x7f csi\\x9b31m"'),
    ],
)
def test_run_task_prints_what_the_handler_wrote_with_control_characters_escaped(
    fail: bool, printed: str
) -> None:
    make_task(
        name="colourful",
        handler_path="tests.sample_handlers.runs:control_characters",
        handler_kwargs={"fail": repr(fail)},
    )
    stdout, stderr = io.StringIO(), io.StringIO()

    try:
        call_command("run_task", "colourful", stdout=stdout, stderr=stderr)
    except CommandError as error:  # the failed run: its error is the message
        stderr.write(str(error))
    shown = stdout.getvalue() + stderr.getvalue()

    assert TaskExecution.objects.get().status == (
        TaskExecution.Status.FAILED if fail else TaskExecution.Status.SUCCESS
    )
    assert "\\x1b[31mred\\x1b[0m bell\\x07 back\\rover" in shown
    assert printed in shown
    for char in CONTROL_CHARACTERS:
        assert char not in shown


@run_task_db
def test_run_task_records_who_asked_for_the_run() -> None:
    task = make_sync_task()

    run_task("nightly_sync")

    execution = TaskExecution.objects.get(task=task)
    assert execution.requested_by == "cli"
    [entry] = AuditEntry.objects.all()
    assert (entry.action, entry.source, entry.run_id, entry.task) == (
        "run_now",
        "cli",
        execution.pk,
        task,
    )
