"""The task admin's forms: the add and change form, and the run-with-parameters form.

The add and change form: handler select, one input per parameter, saving, each error
on its field, the status permission, and the JSON endpoints behind its script
(parameters, preview). Then the run now button and the run-with-parameters form.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import textwrap
from collections.abc import Iterator
from html import unescape as html_unescape
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from scheduler_app import services
from scheduler_app.handlers import registry
from scheduler_app.models import ScheduledTask, TaskExecution
from tests.admin.helpers import (
    TASK_ADD,
    add_form_data,
    execution_url,
    form_errors,
    scheduler_alive,
    sent_messages,
    staff_user,
    task_url,
)
from tests.factories import key_client, key_for, make_task

pytestmark = pytest.mark.django_db

HANDLER_PARAMETERS = reverse("admin:scheduler_app_scheduledtask_handler_parameters")
PREVIEW = reverse("admin:scheduler_app_scheduledtask_preview")

REPORT_SCRIPT = '''
"""Build a report."""

TASK_INFO = {
    "description": "Build the <b>sales</b> report.",
    "params": {"target": {"label": "Target list", "help": "Who gets it."}},
}


def run(target: str, copies: int = 2, extra: dict | None = None) -> dict:
    return {"target": target, "copies": copies}
'''


@pytest.fixture(autouse=True)
def scripts(settings: Any, tmp_path: Path) -> Iterator[Path]:
    """The shipped scripts plus a report script with a required parameter and a broken one."""
    folder = tmp_path / "scripts"
    shutil.copytree(Path(django_settings.BASE_DIR) / "scripts", folder)
    (folder / "report.py").write_text(textwrap.dedent(REPORT_SCRIPT), encoding="utf-8")
    (folder / "broken.py").write_text("def run(:\n", encoding="utf-8")
    settings.SCHEDULER_SCRIPTS_PATH = str(folder)
    registry.clear_cache()
    yield folder
    registry.clear_cache()


def report_form_data(**overrides: str) -> dict[str, str]:
    data = add_form_data(
        name="weekly_report",
        handler_path="scripts:report",
        handler_kwargs="{}",
        param_target="'sales'",
        param_copies="",
        param_extra="",
    )
    data.update(overrides)
    return data


# Handler select


def test_handler_select_lists_each_handler_with_its_description(
    admin_client: Client,
) -> None:
    content = admin_client.get(TASK_ADD).content.decode()

    assert '<select name="handler_path"' in content
    assert (
        "Data sync (scripts:data_sync) — Synchronise the given number of days"
        in content
    )
    assert 'data-description="Build the &lt;b&gt;sales&lt;/b&gt; report."' in content


def test_a_broken_handler_is_listed_disabled_with_its_error(
    admin_client: Client,
) -> None:
    content = admin_client.get(TASK_ADD).content.decode()

    start = content.index('value="scripts:broken"')
    option = content[
        content.rindex("<option", 0, start) : content.index("</option>", start)
    ]
    assert "disabled" in option
    assert "broken: " in option
    assert "SyntaxError" in option or "invalid syntax" in option


# Parameter inputs


def test_one_input_per_parameter_with_type_default_label_and_help(
    admin_client: Client,
) -> None:
    response = admin_client.get(TASK_ADD, {"handler_path": "scripts:data_sync"})

    form = response.context["adminform"].form
    assert [name for name in form.fields if name.startswith("param_")] == [
        "param_days",
        "param_target",
        "param_start_date",
        "param_options",
    ]
    days = form["param_days"]
    assert days.label == "Days"
    assert days.field.widget.attrs["placeholder"] == "7"
    assert "Type: int" in days.help_text
    assert "default: 7" in days.help_text
    assert "How many days back to synchronise." in days.help_text
    assert "Type: datetime | None" in form["param_start_date"].help_text
    content = response.content.decode()
    assert 'name="param_days"' in content


def test_a_required_parameter_is_marked_required(admin_client: Client) -> None:
    response = admin_client.get(TASK_ADD, {"handler_path": "scripts:report"})

    content = response.content.decode()
    assert (
        '<label class="required" for="id_param_target">Target list:</label>' in content
    )
    assert '<label for="id_param_copies">' in content
    assert "required" in response.context["adminform"].form["param_target"].help_text


def test_parameter_inputs_are_stored_in_handler_kwargs(admin_client: Client) -> None:
    response = admin_client.post(
        TASK_ADD,
        report_form_data(param_copies="1 + 2", param_extra='{"dry_run": True}'),
    )

    assert response.status_code == 302, form_errors(response)
    task = ScheduledTask.objects.get(name="weekly_report")
    assert task.handler_kwargs == {
        "target": "'sales'",
        "copies": "1 + 2",
        "extra": '{"dry_run": True}',
    }


def test_an_empty_input_leaves_the_parameter_to_its_default(
    admin_client: Client,
) -> None:
    admin_client.post(TASK_ADD, report_form_data())

    assert ScheduledTask.objects.get(name="weekly_report").handler_kwargs == {
        "target": "'sales'"
    }


def test_a_missing_required_parameter_is_shown_on_its_input(
    admin_client: Client,
) -> None:
    response = admin_client.post(TASK_ADD, report_form_data(param_target=""))

    errors = form_errors(response)
    assert list(errors) == ["param_target"]
    assert "target" in errors["param_target"][0]
    assert not ScheduledTask.objects.filter(name="weekly_report").exists()


def test_an_unsafe_expression_is_shown_on_its_input(admin_client: Client) -> None:
    response = admin_client.post(
        TASK_ADD, report_form_data(param_copies="__import__('os')")
    )

    errors = form_errors(response)
    assert list(errors) == ["param_copies"]
    assert errors["param_copies"][0].startswith("Parameter “copies”")


@pytest.mark.parametrize(
    "changes",
    [
        {"param_copies": "-" * 6000 + "1"},
        {"handler_kwargs": json.dumps({"copies": "-" * 6000 + "1"})},
    ],
)
def test_an_expression_nested_too_deeply_is_a_form_error(
    admin_client: Client, changes: dict[str, str]
) -> None:
    response = admin_client.post(TASK_ADD, report_form_data(**changes))

    errors = form_errors(response)
    [messages_shown] = errors.values()
    assert messages_shown == [
        "Parameter “copies”: Expression too deeply nested (at most 50 levels)"
    ]
    assert not ScheduledTask.objects.filter(name="weekly_report").exists()


def test_a_bad_queue_name_is_shown_on_its_input(admin_client: Client) -> None:
    response = admin_client.post(TASK_ADD, report_form_data(queue="reports now!"))

    errors = form_errors(response)
    assert list(errors) == ["queue"]
    assert errors["queue"][0].startswith("Queue “reports now!”")
    assert not ScheduledTask.objects.filter(name="weekly_report").exists()


@pytest.mark.parametrize("field", ["timeout_seconds", "max_retries", "jitter_seconds"])
@pytest.mark.parametrize("value", ["-1", "3000000000"])
def test_a_number_out_of_bounds_gets_the_services_message(
    admin_client: Client, field: str, value: str
) -> None:
    response = admin_client.post(TASK_ADD, add_form_data(**{field: value}))

    [message] = form_errors(response)[field]
    assert "enter a whole number from 0 to 2147483647 (got %s)" % value in message
    assert not ScheduledTask.objects.filter(name="nightly_sync").exists()


@pytest.mark.parametrize(("field", "longest"), [("name", 200), ("queue", 100)])
def test_text_longer_than_its_column_gets_the_services_message(
    admin_client: Client, field: str, longest: int
) -> None:
    response = admin_client.post(
        TASK_ADD, add_form_data(**{field: "q" * (longest + 1)})
    )

    [message] = form_errors(response)[field]
    assert message.endswith(
        ": enter at most %d characters (got %d); shorten it." % (longest, longest + 1)
    )
    assert not ScheduledTask.objects.exclude(is_system=True).exists()


def test_other_parameters_that_are_no_object_get_the_services_message(
    admin_client: Client,
) -> None:
    response = admin_client.post(TASK_ADD, add_form_data(handler_kwargs="[1, 2]"))

    assert form_errors(response)["handler_kwargs"] == [
        "Parameters must be an object mapping parameter names to expressions."
    ]


def test_a_queue_routes_the_task_to_celery_workers_of_that_queue(
    admin_client: Client,
) -> None:
    response = admin_client.post(TASK_ADD, report_form_data(queue="high-priority.v2"))

    assert response.status_code == 302, form_errors(response)
    assert ScheduledTask.objects.get(name="weekly_report").queue == "high-priority.v2"


def test_each_bad_parameter_gets_its_own_error(admin_client: Client) -> None:
    response = admin_client.post(
        TASK_ADD, report_form_data(param_target="42", param_copies="'two'")
    )

    assert set(form_errors(response)) == {"param_target", "param_copies"}


def test_change_form_prefills_inputs_from_stored_parameters(
    admin_client: Client,
) -> None:
    task = make_task(
        handler_path="scripts:data_sync", handler_kwargs={"days": 3, "target": "'x'"}
    )

    form = admin_client.get(task_url("change", task)).context["adminform"].form

    assert form["param_days"].value() == "3"
    assert form["param_target"].value() == "'x'"
    assert form["param_start_date"].value() in (None, "")
    assert form["handler_kwargs"].value() == "{}"


def test_parameters_without_an_input_stay_in_the_other_parameters_field(
    admin_client: Client,
) -> None:
    task = make_task(
        handler_path="scripts:data_sync", handler_kwargs={"days": "3", "gone": "1"}
    )

    form = admin_client.get(task_url("change", task)).context["adminform"].form

    assert json.loads(form["handler_kwargs"].value()) == {"gone": "1"}


def test_an_unknown_parameter_in_other_parameters_is_refused_by_name(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        TASK_ADD, report_form_data(handler_kwargs=json.dumps({"colour": "'red'"}))
    )

    errors = form_errors(response)
    assert list(errors) == ["handler_kwargs"]
    assert "colour" in errors["handler_kwargs"][0]


def test_switching_handler_drops_the_old_handlers_inputs(admin_client: Client) -> None:
    task = make_task(
        name="switching", handler_path="scripts:data_sync", handler_kwargs={"days": "3"}
    )

    response = admin_client.post(
        task_url("change", task),
        report_form_data(name="switching", param_days="3"),
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.handler_path == "scripts:report"
    assert task.handler_kwargs == {"target": "'sales'"}


def test_a_view_only_user_sees_the_parameters_read_only(client: Client) -> None:
    client.force_login(staff_user("view_scheduledtask"))
    task = make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "3"})

    response = client.get(task_url("change", task))

    assert response.status_code == 200
    assert "&quot;days&quot;: &quot;3&quot;" in response.content.decode()


# Add and change forms: saving, and each error on its field


def test_add_form_creates_a_valid_task_with_its_next_run(admin_client: Client) -> None:
    response = admin_client.post(TASK_ADD, add_form_data())

    assert response.status_code == 302, form_errors(response)
    task = ScheduledTask.objects.get(name="nightly_sync")
    assert task.task_type == ScheduledTask.TaskType.CRON
    assert task.cron_expression == "0 2 * * *"
    assert task.handler_path == "scripts:data_sync"
    assert task.handler_kwargs == {"days": "7"}
    assert task.next_run_at is not None


def test_add_form_shows_a_bad_cron_expression_on_its_field(
    admin_client: Client,
) -> None:
    response = admin_client.post(TASK_ADD, add_form_data(cron_expression="61 * * * *"))

    errors = form_errors(response)
    assert list(errors) == ["cron_expression"]
    assert "61" in errors["cron_expression"][0]
    assert not ScheduledTask.objects.filter(name="nightly_sync").exists()


def test_add_form_shows_an_unknown_handler_on_its_field(admin_client: Client) -> None:
    response = admin_client.post(
        TASK_ADD, add_form_data(handler_path="scripts:no_such_script")
    )

    errors = form_errors(response)
    assert list(errors) == ["handler_path"]
    assert "scripts:no_such_script" in errors["handler_path"][0]


def test_add_form_shows_a_wrongly_typed_parameter_on_its_own_input(
    admin_client: Client,
) -> None:
    response = admin_client.post(
        TASK_ADD, add_form_data(handler_kwargs="{}", param_days="'abc'")
    )

    errors = form_errors(response)
    assert list(errors) == ["param_days"]
    assert errors["param_days"][0].startswith("Parameter “days”: expected an integer")


def test_add_form_shows_an_unknown_parameter_by_name(admin_client: Client) -> None:
    response = admin_client.post(
        TASK_ADD, add_form_data(handler_kwargs=json.dumps({"dayz": "7"}))
    )

    errors = form_errors(response)
    assert list(errors) == ["handler_kwargs"]
    assert errors["handler_kwargs"][0].startswith("Parameter “dayz” is not accepted")


def test_change_form_validates_the_submitted_values(admin_client: Client) -> None:
    task = make_task(
        name="nightly_sync",
        task_type=ScheduledTask.TaskType.CRON,
        cron_expression="0 2 * * *",
        interval_seconds=None,
        handler_path="scripts:data_sync",
    )

    response = admin_client.post(
        task_url("change", task), add_form_data(cron_expression="0 25 * * *")
    )

    assert list(form_errors(response)) == ["cron_expression"]
    task.refresh_from_db()
    assert task.cron_expression == "0 2 * * *"


def test_change_form_saves_a_valid_edit_and_recomputes_next_run(
    admin_client: Client,
) -> None:
    task = make_task(name="every_minute")

    response = admin_client.post(
        task_url("change", task),
        add_form_data(
            name="every_minute",
            handler_path="scripts:example_task",
            handler_kwargs="{}",
            task_type=ScheduledTask.TaskType.INTERVAL,
            cron_expression="",
            interval_seconds="300",
        ),
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.interval_seconds == 300
    assert task.next_run_at is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interval_seconds", "2147483648"),
        ("interval_seconds", str(10**14)),
        ("interval_seconds", "9" * 30),
        ("timeout_seconds", str(10**14)),
        ("max_retries", "2147483648"),
        ("retry_delay_seconds", str(10**14)),
        ("misfire_grace_seconds", str(10**14)),
        ("jitter_seconds", str(10**14)),
        ("max_instances", str(10**14)),
    ],
)
def test_add_form_applies_the_apis_integer_bounds(
    admin_client: Client, admin_user: User, field: str, value: str
) -> None:
    changes = {"task_type": "interval", "cron_expression": "", "interval_seconds": "60"}
    if field == "max_instances":
        changes["overlap_policy"] = ScheduledTask.OverlapPolicy.ALLOW
    changes[field] = value

    response = admin_client.post(TASK_ADD, add_form_data(**changes))

    errors = form_errors(response)
    assert list(errors) == [field]
    assert not ScheduledTask.objects.filter(name="nightly_sync").exists()
    # The same rule, so the same words, as the API's.
    body = {**changes, field: int(value), "name": "nightly_sync"}
    body.update(handler_path="scripts:data_sync")
    answer = key_client(key_for(admin_user)).post("/api/v1/tasks", body, format="json")
    assert answer.status_code == 400
    assert answer.json()["errors"][field] == errors[field]


def test_add_form_refuses_a_run_date_beyond_9000(admin_client: Client) -> None:
    response = admin_client.post(
        TASK_ADD,
        add_form_data(
            task_type="date",
            cron_expression="",
            run_date_0="9999-12-31",
            run_date_1="23:59:59",
        ),
    )

    assert form_errors(response) == {
        "run_date": [
            "Enter a run date between 1970 and 9000, e.g. 2030-01-31T02:00:00Z."
        ]
    }


def one_off_task(run_date: dt.datetime) -> ScheduledTask:
    return make_task(
        name="one_off",
        task_type=ScheduledTask.TaskType.DATE,
        interval_seconds=None,
        run_date=run_date,
        handler_path="scripts:data_sync",
    )


def one_off_form_data(run_date: dt.datetime, **changes: str) -> dict[str, str]:
    local = timezone.localtime(run_date)
    return add_form_data(
        name="one_off",
        task_type="date",
        cron_expression="",
        run_date_0=local.strftime("%Y-%m-%d"),
        run_date_1=local.strftime("%H:%M:%S"),
        **changes,
    )


def opened_with(page: Any) -> dict[str, str]:
    """The hidden inputs of a change page that say what it was opened with."""
    html = page.content.decode()
    found = {
        name: html_unescape(match.group(1))
        for name in ("loaded_version", "loaded_state")
        if (match := re.search(r'name="%s" value="([^"]*)"' % name, html))
    }
    assert len(found) == 2, "the change page lacks its hidden loaded_* inputs"
    return found


def edit_form_data(**overrides: str) -> dict[str, str]:
    return add_form_data(
        name="every_minute",
        handler_path="scripts:example_task",
        handler_kwargs="{}",
        task_type=ScheduledTask.TaskType.INTERVAL,
        cron_expression="",
        interval_seconds="60",
        **overrides,
    )


def test_the_change_form_refuses_to_save_over_a_change_made_since_it_opened(
    admin_client: Client,
) -> None:
    task = make_task(name="every_minute")
    opened = opened_with(admin_client.get(task_url("change", task)))
    services.task_update(
        task=task, changes={"status": "paused", "description": "theirs"}
    )

    response = admin_client.post(
        task_url("change", task),
        edit_form_data(description="mine", status="active", **opened),
    )

    [message] = form_errors(response)["__all__"]
    assert message == (
        "Task “every_minute” was changed by someone else since you loaded it "
        "(changed: Description, Status); load it again, then make your change again."
    )
    task.refresh_from_db()
    assert (task.status, task.description) == ("paused", "theirs")


def test_the_change_form_saves_when_nothing_changed_since_it_opened(
    admin_client: Client,
) -> None:
    task = make_task(name="every_minute")
    opened = opened_with(admin_client.get(task_url("change", task)))

    response = admin_client.post(
        task_url("change", task), edit_form_data(description="mine", **opened)
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert (task.description, task.version) == ("mine", 2)


def test_saving_the_change_form_unchanged_writes_nothing_and_keeps_the_version(
    admin_client: Client,
) -> None:
    task = make_task(name="every_minute", description="as it was")
    opened = opened_with(admin_client.get(task_url("change", task)))

    response = admin_client.post(
        task_url("change", task), edit_form_data(description="as it was", **opened)
    )

    assert response.status_code == 302, form_errors(response)
    stored = ScheduledTask.objects.get(pk=task.pk)
    assert (stored.version, stored.updated_at) == (task.version, task.updated_at)


def test_change_form_refuses_moving_a_one_off_run_date_into_the_past(
    admin_client: Client,
) -> None:
    ahead = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=0)
    task = one_off_task(ahead)
    past = dt.datetime(2001, 1, 1, 8, 0, tzinfo=dt.UTC)

    response = admin_client.post(task_url("change", task), one_off_form_data(past))

    errors = form_errors(response)
    assert list(errors) == ["run_date"]
    assert "is in the past; pick a future time" in errors["run_date"][0]
    task.refresh_from_db()
    assert task.run_date == ahead


def test_change_form_keeps_a_one_off_run_date_that_passed_unchanged(
    admin_client: Client,
) -> None:
    ran = (timezone.now() - dt.timedelta(days=2)).replace(microsecond=0)
    task = one_off_task(ran)

    response = admin_client.post(
        task_url("change", task), one_off_form_data(ran, description="ran already")
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.description == "ran already" and task.run_date == ran


def test_change_form_keeps_a_passed_run_date_stored_with_a_fraction_of_a_second(
    admin_client: Client,
) -> None:
    # Set through the API or the Python API (delay_seconds=30): the inputs show
    # whole seconds, so the date came back "changed", and into the past.
    ran = (timezone.now() - dt.timedelta(days=2)).replace(microsecond=250_000)
    task = one_off_task(ran)

    response = admin_client.post(
        task_url("change", task), one_off_form_data(ran, description="ran already")
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.description == "ran already" and task.run_date == ran


def test_change_form_moving_a_fractional_run_date_into_the_past_is_a_field_error(
    admin_client: Client,
) -> None:
    ahead = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=250_000)
    task = one_off_task(ahead)
    past = dt.datetime(2001, 1, 1, 8, 0, tzinfo=dt.UTC)

    response = admin_client.post(task_url("change", task), one_off_form_data(past))

    assert list(form_errors(response)) == ["run_date"]
    task.refresh_from_db()
    assert task.run_date == ahead


def test_system_flag_cannot_be_cleared_from_the_change_form(
    admin_client: Client,
) -> None:
    system = ScheduledTask.objects.get(name="cleanup_executions")
    data = add_form_data(
        name=system.name,
        cron_expression=system.cron_expression,
        handler_path=system.handler_path,
    )
    data.pop("is_system", None)

    admin_client.post(task_url("change", system), data)

    assert ScheduledTask.objects.get(pk=system.pk).is_system


# Status: changing it needs the pause permission, as the pause action does

CHANGE_ONLY = ("view_scheduledtask", "change_scheduledtask")


def test_status_is_read_only_without_the_pause_permission(client: Client) -> None:
    client.force_login(staff_user(*CHANGE_ONLY))
    task = make_task(name="nightly_sync")

    page = client.get(task_url("change", task))
    response = client.post(
        task_url("change", task),
        add_form_data(status=ScheduledTask.Status.PAUSED, description="edited"),
    )

    assert "status" not in page.context["adminform"].form.fields
    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.description == "edited"
    assert task.status == ScheduledTask.Status.ACTIVE


def test_status_is_editable_with_the_pause_permission(client: Client) -> None:
    client.force_login(staff_user(*CHANGE_ONLY, "pause_scheduledtask"))
    task = make_task(name="nightly_sync")

    response = client.post(
        task_url("change", task), add_form_data(status=ScheduledTask.Status.PAUSED)
    )

    assert response.status_code == 302, form_errors(response)
    task.refresh_from_db()
    assert task.status == ScheduledTask.Status.PAUSED
    assert task.next_run_at is None


def test_the_form_refuses_a_status_change_by_a_user_without_the_pause_permission(
    admin_client: Client,
) -> None:
    # The admin keeps the input read-only for such a user; the form still asks
    # the service, e.g. for a form built before the task was paused elsewhere.
    from scheduler_app.forms import ScheduledTaskForm, handler_info

    task = make_task(name="nightly_sync")
    form_class = type(
        "Form",
        (ScheduledTaskForm.for_handler(handler_info("scripts:data_sync")),),
        {"actor": staff_user(*CHANGE_ONLY)},
    )

    form = form_class(add_form_data(status=ScheduledTask.Status.PAUSED), instance=task)

    assert not form.is_valid()
    assert "Can pause and resume tasks" in form.errors["status"][0]
    assert ScheduledTask.objects.get(pk=task.pk).status == ScheduledTask.Status.ACTIVE


def test_a_refused_status_change_is_shown_beside_the_other_errors(
    admin_client: Client,
) -> None:
    from scheduler_app.forms import ScheduledTaskForm, handler_info

    task = make_task(name="nightly_sync")
    form_class = type(
        "Form",
        (ScheduledTaskForm.for_handler(handler_info("scripts:data_sync")),),
        {"actor": staff_user(*CHANGE_ONLY)},
    )

    form = form_class(
        add_form_data(status=ScheduledTask.Status.PAUSED, cron_expression="61 * * * *"),
        instance=task,
    )

    assert not form.is_valid()
    assert "Can pause and resume tasks" in form.errors["status"][0]
    assert form.errors["cron_expression"]


# The JSON endpoints behind the form's script


def test_handler_parameters_endpoint_describes_a_handler(admin_client: Client) -> None:
    data = admin_client.get(HANDLER_PARAMETERS, {"path": "scripts:report"}).json()

    assert data["found"] is True
    assert data["broken"] is False
    assert data["description"] == "Build the <b>sales</b> report."
    target, copies, extra = data["params"]
    assert target["field"] == "param_target"
    assert target["label"] == "Target list"
    assert target["required"] is True
    assert copies["placeholder"] == "2"
    assert copies["help"].startswith("Type: int · default: 2")
    assert extra["type_label"] == "dict | None"


def test_handler_parameters_endpoint_reports_a_broken_or_unknown_handler(
    admin_client: Client,
) -> None:
    broken = admin_client.get(HANDLER_PARAMETERS, {"path": "scripts:broken"}).json()
    unknown = admin_client.get(HANDLER_PARAMETERS, {"path": "scripts:nope"}).json()

    assert broken["broken"] is True and "broken" in broken["error"]
    assert unknown["found"] is False and "scripts:nope" in unknown["error"]
    assert broken["params"] == unknown["params"] == []


def test_preview_lists_the_next_five_fire_times_and_describes_the_cron(
    admin_client: Client,
) -> None:
    data = admin_client.get(
        PREVIEW,
        {"task_type": "cron", "cron_expression": "0 2 * * *", "timezone": "UTC"},
    ).json()

    assert data["ok"] is True
    assert data["description"] == "At 02:00 AM"
    assert data["timezone"] == "UTC"
    assert len(data["times"]) == 5
    assert all(time["iso"].endswith("T02:00:00+00:00") for time in data["times"])
    assert all(time["relative"].startswith("in ") for time in data["times"])


def test_preview_of_an_interval(admin_client: Client) -> None:
    data = admin_client.get(
        PREVIEW, {"task_type": "interval", "interval_seconds": "3600"}
    ).json()

    assert data["ok"] is True
    assert data["description"] == ""
    times = [dt.datetime.fromisoformat(time["iso"]) for time in data["times"]]
    assert len(times) == 5
    assert {
        (later - earlier).total_seconds()
        for earlier, later in zip(times, times[1:], strict=False)
    } == {3600}


def test_preview_notes_a_dst_change_among_the_fire_times(admin_client: Client) -> None:
    # Yearly on January 1st: five fires span years, so DST changes fall between them.
    data = admin_client.get(
        PREVIEW,
        {
            "task_type": "cron",
            "cron_expression": "0 3 1 1 *",
            "timezone": "Europe/Paris",
        },
    ).json()

    assert data["ok"] is True
    assert "daylight saving time" in data["dst_note"]
    assert "Europe/Paris" in data["dst_note"]


def test_preview_has_no_dst_note_in_a_zone_without_dst(admin_client: Client) -> None:
    data = admin_client.get(
        PREVIEW,
        {
            "task_type": "cron",
            "cron_expression": "0 3 1 1 *",
            "timezone": "Asia/Shanghai",
        },
    ).json()

    assert data["dst_note"] == ""


@pytest.mark.parametrize(
    ("query", "field", "says"),
    [
        (
            {"task_type": "interval", "interval_seconds": str(10**14)},
            "interval_seconds",
            "Interval (seconds): enter a whole number from 0 to 2147483647",
        ),
        (
            {"task_type": "interval", "interval_seconds": "9" * 40},
            "interval_seconds",
            "Interval (seconds): enter a whole number from 0 to 2147483647",
        ),
        (
            {"task_type": "date", "run_date_0": "9999-12-31", "run_date_1": "23:59:59"},
            "run_date",
            "Enter a run date between 1970 and 9000",
        ),
        (
            {
                "task_type": "date",
                "run_date_0": "9999-12-31",
                "run_date_1": "23:59:59",
                "timezone": "America/New_York",
            },
            "run_date",
            "Enter a run date between 1970 and 9000",
        ),
        (
            {
                "task_type": "cron",
                "cron_expression": "0 2 * * *",
                "timezone": "x" * 300,
            },
            "timezone",
            "Time zone: enter at most 64 characters (got 300)",
        ),
    ],
)
def test_preview_of_a_schedule_out_of_range_shows_a_message(
    admin_client: Client, query: dict[str, str], field: str, says: str
) -> None:
    data = admin_client.get(PREVIEW, query).json()

    assert data["ok"] is False
    assert data["field"] == field
    assert data["error"].startswith(says)


def test_preview_of_the_longest_interval_lists_its_times(admin_client: Client) -> None:
    data = admin_client.get(
        PREVIEW,
        {
            "task_type": "interval",
            "interval_seconds": "2147483647",
            "timezone": "Europe/Paris",
        },
    ).json()

    assert data["ok"] is True
    assert len(data["times"]) == 5


def test_preview_reports_an_invalid_schedule_with_its_field(
    admin_client: Client,
) -> None:
    data = admin_client.get(
        PREVIEW, {"task_type": "cron", "cron_expression": "61 * * * *"}
    ).json()

    assert data["ok"] is False
    assert data["field"] == "cron_expression"
    assert "61" in data["error"]
    assert data["description"] == ""  # not "At 61 minutes past the hour"


def test_preview_of_a_one_off_date_in_the_past_says_so(admin_client: Client) -> None:
    data = admin_client.get(
        PREVIEW,
        {"task_type": "date", "run_date_0": "2020-01-02", "run_date_1": "03:04:05"},
    ).json()

    assert data["ok"] is False
    assert data["field"] == "run_date"
    assert "2020-01-02 03:04 is in the past" in data["error"]


def test_preview_of_a_short_interval_shows_the_seconds(admin_client: Client) -> None:
    data = admin_client.get(
        PREVIEW, {"task_type": "interval", "interval_seconds": "10"}
    ).json()

    texts = [time["text"].split(" ")[1] for time in data["times"]]
    assert len(set(texts)) == 5, texts  # "08:19:00, 08:19:10, ...", not "08:19" x 5


def test_preview_of_a_manual_task_has_no_times(admin_client: Client) -> None:
    data = admin_client.get(PREVIEW, {"task_type": "manual"}).json()

    assert data == {**data, "ok": True, "times": []}


@pytest.mark.parametrize("url", [HANDLER_PARAMETERS, PREVIEW])
def test_form_endpoints_need_a_staff_login(client: Client, url: str) -> None:
    response = client.get(url, {"path": "scripts:data_sync", "task_type": "manual"})

    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize("url", [HANDLER_PARAMETERS, PREVIEW])
def test_form_endpoints_need_add_or_change_permission(client: Client, url: str) -> None:
    client.force_login(staff_user("view_scheduledtask"))

    assert (
        client.get(
            url, {"path": "scripts:data_sync", "task_type": "manual"}
        ).status_code
        == 403
    )


# Run now and run with parameters


def test_run_now_button_creates_a_pending_run_and_opens_it(
    admin_client: Client,
) -> None:
    task = make_task(name="button")
    scheduler_alive()

    response = admin_client.post(task_url("run", task))

    execution = TaskExecution.objects.get(task=task)
    assert execution.status == TaskExecution.Status.PENDING
    assert execution.trigger_type == TaskExecution.TriggerType.MANUAL
    assert response.status_code == 302
    assert response["Location"] == execution_url(execution)
    assert sent_messages(response) == [
        (
            messages.SUCCESS,
            "Requested a run of “button” (execution #%d); the scheduler starts it "
            "within a second." % execution.pk,
        )
    ]


def test_run_now_without_a_scheduler_says_the_run_waits_for_one(
    admin_client: Client,
) -> None:
    task = make_task(name="button")

    response = admin_client.post(task_url("run", task))

    execution = TaskExecution.objects.get(task=task)
    assert sent_messages(response) == [
        (
            messages.WARNING,
            "Requested a run of “button” (execution #%d); no scheduler is running, "
            "so it waits until one starts (python manage.py runscheduler)."
            % execution.pk,
        )
    ]


def test_run_now_is_post_only(admin_client: Client) -> None:
    task = make_task()

    assert admin_client.get(task_url("run", task)).status_code == 405
    assert not TaskExecution.objects.exists()


def test_change_page_offers_the_run_buttons_only_with_the_run_permission(
    admin_client: Client, client: Client
) -> None:
    task = make_task()
    client.force_login(staff_user("view_scheduledtask", "change_scheduledtask"))

    assert (
        task_url("run", task)
        in admin_client.get(task_url("change", task)).content.decode()
    )
    assert (
        task_url("run", task)
        not in client.get(task_url("change", task)).content.decode()
    )
    assert client.post(task_url("run", task)).status_code == 403
    assert client.get(task_url("run_with_parameters", task)).status_code == 403
    assert not TaskExecution.objects.exists()


def test_run_with_parameters_is_prefilled_with_the_tasks_values(
    admin_client: Client,
) -> None:
    task = make_task(handler_path="scripts:data_sync", handler_kwargs={"days": "3"})

    response = admin_client.get(task_url("run_with_parameters", task))

    form = response.context["form"]
    assert form["param_days"].value() == "3"
    assert 'name="param_days"' in response.content.decode()


def test_run_with_parameters_overrides_them_for_one_run(admin_client: Client) -> None:
    task = make_task(
        handler_path="scripts:data_sync", handler_kwargs={"days": "3", "target": "'a'"}
    )

    response = admin_client.post(
        task_url("run_with_parameters", task),
        {"param_days": "5", "param_target": "'a'"},
    )

    execution = TaskExecution.objects.get(task=task)
    assert response["Location"] == execution_url(execution)
    assert execution.kwargs_overrides == {"days": "5"}
    task.refresh_from_db()
    assert task.handler_kwargs == {"days": "3", "target": "'a'"}


def test_run_with_parameters_shows_a_bad_value_on_its_input(
    admin_client: Client,
) -> None:
    task = make_task(handler_path="scripts:data_sync")

    response = admin_client.post(
        task_url("run_with_parameters", task), {"param_days": "'many'"}
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["param_days"]
    assert errors["param_days"][0].startswith("Parameter “days”: expected an integer")
    assert not TaskExecution.objects.exists()


def test_run_with_parameters_refuses_an_expression_nested_too_deeply(
    admin_client: Client,
) -> None:
    task = make_task(handler_path="scripts:data_sync")

    response = admin_client.post(
        task_url("run_with_parameters", task), {"param_days": "-" * 6000 + "1"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "param_days": [
            "Parameter “days”: Expression too deeply nested (at most 50 levels)"
        ]
    }
    assert not TaskExecution.objects.exists()
