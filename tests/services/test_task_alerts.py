"""Task alert settings through the write path: thresholds, channels, versions; and
the channel service's rules."""

from __future__ import annotations

from typing import Any

import pytest

from scheduler_app import scheduler
from scheduler_app.exceptions import TaskChanged
from scheduler_app.models import AlertChannel, ScheduledTask
from scheduler_app.services import (
    ChannelInvalid,
    TaskInvalid,
    alert_channels_disabled,
    channel_save,
    task_check_version,
    task_create,
    task_snapshot,
    task_update,
)
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def channel(name: str, **fields: Any) -> AlertChannel:
    return AlertChannel.objects.create(
        name=name, kind="email", target="%s@example.com" % name, **fields
    )


def new_task(**fields: Any) -> ScheduledTask:
    return ScheduledTask(
        name=fields.pop("name", "t"),
        task_type="interval",
        interval_seconds=60,
        handler_path="scripts:example_task",
        **fields,
    )


def problems(error: TaskInvalid) -> dict[str | None, str]:
    return {each.field: each.message for each in error.errors}


def test_a_task_is_created_with_its_thresholds_and_channels_by_id_name_or_row() -> None:
    ops, mail, hook = channel("ops"), channel("mail"), channel("hook")

    task = task_create(
        task=new_task(failure_threshold=3, alert_grace_seconds=120),
        alert_channels=[ops.pk, "mail", hook],
    )

    task.refresh_from_db()
    assert (task.failure_threshold, task.alert_grace_seconds) == (3, 120)
    assert set(task.alert_channels.all()) == {ops, mail, hook}


@pytest.mark.parametrize(
    "name",
    [
        "failure_threshold",
        "recovery_threshold",
        "alert_grace_seconds",
        "max_run_seconds",
    ],
)
@pytest.mark.parametrize("value", [0, -1, True, "3"])
def test_each_threshold_is_a_whole_number_from_1(name: str, value: Any) -> None:
    with pytest.raises(TaskInvalid) as caught:
        task_create(task=new_task(**{name: value}))

    assert "enter a whole number from 1" in problems(caught.value)[name]


def test_unknown_channels_are_named_with_the_field_beside_other_errors() -> None:
    channel("ops")

    with pytest.raises(TaskInvalid) as caught:
        task_create(
            task=new_task(failure_threshold=0),
            alert_channels=["ops", 987, "nope", 2**70, None],
        )

    found = problems(caught.value)
    assert "failure_threshold" in found
    message = found["alert_channels"]
    assert message.startswith("Alert channels: there is no channel ")
    for shown in ("987", "“nope”", str(2**70), "None"):
        assert shown in message
    assert not ScheduledTask.objects.filter(name="t").exists()


def test_channels_must_come_as_a_list() -> None:
    with pytest.raises(TaskInvalid) as caught:
        task_create(task=new_task(), alert_channels="ops")

    assert problems(caught.value)["alert_channels"].startswith(
        "Alert channels: give a list of channel ids"
    )


def test_a_disabled_channel_is_allowed_and_named() -> None:
    off = channel("off", enabled=False)

    task = task_create(task=new_task(), alert_channels=[off])

    assert list(task.alert_channels.all()) == [off]
    assert alert_channels_disabled([off, channel("on")]) == ["off"]


def test_a_change_of_channels_bumps_the_version_and_the_same_ones_keep_it() -> None:
    ops, mail = channel("ops"), channel("mail")
    task = make_task()
    version = task.version

    task_update(task=task, changes={"alert_channels": [ops.pk, mail.pk]})
    assert task.version == version + 1
    assert set(task.alert_channels.all()) == {ops, mail}

    task_update(task=task, changes={"alert_channels": ["mail", ops]})
    assert task.version == version + 1  # the same channels, another order

    task_update(task=task, changes={"alert_channels": []})
    assert task.version == version + 2
    assert not task.alert_channels.exists()


def test_an_edited_row_with_its_channels_is_one_change() -> None:
    ops = channel("ops")
    task = make_task()
    version = task.version

    task.max_run_seconds = 600
    task_update(task=task, alert_channels=[ops])
    task.refresh_from_db()
    assert (task.max_run_seconds, task.version) == (600, version + 1)
    assert list(task.alert_channels.all()) == [ops]

    task_update(task=task, alert_channels=[ops.pk])
    task.refresh_from_db()
    assert task.version == version + 1  # saved as it was


def test_a_stale_version_names_the_channels_that_changed() -> None:
    ops = channel("ops")
    task = make_task()
    seen = task_snapshot(task)
    version = task.version
    task_update(task=task, changes={"alert_channels": [ops]})

    with pytest.raises(TaskChanged) as caught:
        task_check_version(task=task, expected_version=version, seen=seen)

    assert caught.value.changed == ["Alert channels"]
    with pytest.raises(TaskChanged):
        task_update(task=task, changes={"description": "x"}, expected_version=version)


def test_an_unknown_channel_in_an_update_changes_nothing() -> None:
    ops = channel("ops")
    task = make_task()
    task_update(task=task, changes={"alert_channels": [ops]})

    with pytest.raises(TaskInvalid) as caught:
        task_update(task=task, changes={"alert_channels": [ops.pk, 555]})

    assert "alert_channels" in problems(caught.value)
    assert list(task.alert_channels.all()) == [ops]


def test_the_python_api_takes_thresholds_and_channels() -> None:
    ops = channel("ops")

    task = scheduler.add_cron_job(
        "scripts:example_task",
        "0 2 * * *",
        name="nightly",
        failure_threshold=2,
        alert_channels=["ops"],
    )
    assert task.failure_threshold == 2
    assert list(task.alert_channels.all()) == [ops]

    again = scheduler.add_cron_job(
        "scripts:example_task",
        "0 2 * * *",
        name="nightly",
        replace_existing=True,
        alert_channels=[],
    )
    assert not again.alert_channels.exists()
    with pytest.raises(TaskInvalid) as caught:
        scheduler.add_interval_job(
            "scripts:example_task", minutes=5, name="x", alert_channels=["ghost"]
        )
    assert "“ghost”" in problems(caught.value)["alert_channels"]


# The channel service


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"name": "  "}, "name", "enter a name"),
        ({"kind": "pigeon"}, "kind", "choose one of"),
        ({"target": ""}, "target", "at least one e-mail address"),
        ({"target": "ops@example.com, x@"}, "target", "“x@”"),
        ({"kind": "webhook", "target": "not a url"}, "target", "http:// or https://"),
        ({"kind": "slack", "target": "file:///etc/passwd"}, "target", "http://"),
        ({"timeout_seconds": 0.0}, "timeout_seconds", "above 0"),
        ({"timeout_seconds": 301.0}, "timeout_seconds", "at most 300"),
        ({"timeout_seconds": float("nan")}, "timeout_seconds", "above 0"),
        ({"secret": "x" * 201}, "secret", "at most 200 characters"),
        ({"name": "a\x00b"}, "name", "NUL"),
    ],
)
def test_a_channel_breaking_a_rule_is_refused_naming_the_field(
    fields: dict[str, Any], field: str, words: str
) -> None:
    values: dict[str, Any] = {
        "name": "ops",
        "kind": "email",
        "target": "ops@example.com",
    }
    values.update(fields)

    with pytest.raises(ChannelInvalid) as caught:
        channel_save(channel=AlertChannel(**values))

    found = {each.field: each.message for each in caught.value.errors}
    assert words in found[field]
    assert not AlertChannel.objects.exists()


def test_a_valid_channel_is_saved_stripped_and_a_taken_name_refused() -> None:
    saved = channel_save(
        channel=AlertChannel(
            name=" ops ", kind="webhook", target=" https://alerts.example.com/h "
        )
    )
    assert (saved.name, saved.target) == ("ops", "https://alerts.example.com/h")

    with pytest.raises(ChannelInvalid) as caught:
        channel_save(
            channel=AlertChannel(name="ops", kind="email", target="a@example.com")
        )
    assert caught.value.errors[0].field == "name"
