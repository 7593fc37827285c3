"""Tasks' health (services/health.py): the states, their changes, and one alert per change."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from scheduler_app.choices import AlertKind, FailureKind, HealthState
from scheduler_app.models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    ScheduledTask,
    SchedulerInstance,
    TaskExecution,
)
from scheduler_app.services import (
    executions_record_missed,
    health_check,
    leadership_taken,
)
from scheduler_app.services.health import Facts, health_of
from scheduler_app.services.records import add_counters
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
Status = TaskExecution.Status


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def end(
    task: ScheduledTask,
    status: str,
    *,
    when: dt.datetime,
    failure_kind: str = "",
    error: str = "",
) -> TaskExecution:
    """A run of `task` that ended at `when`, added to its counters as the engine does."""
    execution = make_execution(
        task,
        status=status,
        started_at=when - dt.timedelta(seconds=1),
        finished_at=when,
        duration_ms=1000,
        failure_kind=failure_kind,
        error_message=error,
    )
    add_counters([execution])
    return execution


def health(task: ScheduledTask) -> tuple[str, dt.datetime | None]:
    task.refresh_from_db()
    return task.health, task.health_since


def kinds() -> list[str]:
    return list(Alert.objects.order_by("id").values_list("kind", flat=True))


# -- the states, from the facts ----------------------------------------------------


def facts(**overrides: object) -> Facts:
    values: dict[str, object] = {
        "active": True,
        "run_count": 3,
        "fail_streak": 0,
        "success_streak": 3,
        "last_run_at": T0,
        "last_missed_at": None,
        "failure_threshold": 1,
        "recovery_threshold": 1,
    }
    values.update(overrides)
    return Facts(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "current", "expected"),
    [
        pytest.param({}, HealthState.NEW, HealthState.UP, id="ran-fine"),
        pytest.param({"run_count": 0}, HealthState.NEW, HealthState.NEW, id="new"),
        pytest.param({"active": False, "fail_streak": 9}, "up", "paused", id="paused"),
        pytest.param(
            {"fail_streak": 1, "success_streak": 0}, "up", "failing", id="failing"
        ),
        pytest.param(
            {"fail_streak": 1, "success_streak": 0, "failure_threshold": 2},
            "up",
            "up",
            id="below-threshold",
        ),
        pytest.param(
            {"success_streak": 1, "recovery_threshold": 2},
            "failing",
            "failing",
            id="one-success-of-two",
        ),
        pytest.param(
            {"success_streak": 2, "recovery_threshold": 2},
            "failing",
            "up",
            id="recovered",
        ),
        pytest.param(
            {"fail_streak": 1, "success_streak": 0, "running_long_since": T0},
            "up",
            "failing",
            id="failing-before-running-long",
        ),
        pytest.param(
            {"running_long_since": T0, "late_since": T0},
            "up",
            "running_long",
            id="running-long-before-late",
        ),
        pytest.param({"late_since": T0}, "up", "late", id="late"),
        pytest.param(
            {"last_missed_at": at(5), "late_since": T0},
            "up",
            "missed",
            id="missed-before-late",
        ),
        pytest.param(
            {"last_missed_at": at(-5), "last_run_at": at(-1)},
            "missed",
            "up",
            id="ran-after-the-miss",
        ),
        pytest.param(
            {"last_missed_at": at(-5), "last_run_at": at(-9)},
            "missed",
            "missed",
            id="not-run-since-the-miss",
        ),
    ],
)
def test_the_state_of_the_facts(
    given: dict[str, object], current: str, expected: str
) -> None:
    assert health_of(facts(**given), current=current, since=at(-2)) == expected


def test_a_miss_already_taken_in_is_not_a_new_one() -> None:
    """A task recovered since its last miss stays up (the miss is older than its state)."""
    given = facts(last_missed_at=at(-10), last_run_at=at(-8))

    assert health_of(given, current="up", since=at(-5)) == HealthState.UP
    assert health_of(given, current="up", since=at(-20)) == HealthState.MISSED


# -- the check, on the database ------------------------------------------------------


def test_fails_twice_then_succeeds_one_failing_alert_then_one_recovered() -> None:
    task = make_task(name="nightly")
    end(task, Status.SUCCESS, when=at(0))
    health_check(now=at(1))
    assert health(task) == (HealthState.UP, at(1))  # new -> up: nothing to tell

    failed = end(task, Status.FAILED, when=at(10), error="ValueError: no rows")
    health_check(now=at(11))
    end(task, Status.FAILED, when=at(20))
    health_check(now=at(21))
    assert health(task) == (HealthState.FAILING, at(11))
    end(task, Status.SUCCESS, when=at(30))
    health_check(now=at(31))

    assert kinds() == [AlertKind.FAILING, AlertKind.RECOVERED]
    failing, recovered = Alert.objects.order_by("id")
    assert failing.task == task and failing.execution == failed
    assert failing.error == "ValueError: no rows"
    assert failing.message == "nightly is failing: its last 1 run(s) failed."
    assert (failing.previous_state, failing.state) == ("up", "failing")
    assert recovered.message == "nightly is up again (it was Failing)."
    assert health(task) == (HealthState.UP, at(31))


def test_thresholds_are_the_task_s_own_or_the_settings(settings) -> None:
    settings.SCHEDULER_ALERT_FAILURE_THRESHOLD = 2
    own = make_task(failure_threshold=3, recovery_threshold=2)
    default = make_task()
    for second in (1, 2):
        end(own, Status.FAILED, when=at(second))
        end(default, Status.FAILED, when=at(second))
    health_check(now=at(3))
    assert health(own)[0] == HealthState.UP  # 2 of 3
    assert health(default)[0] == HealthState.FAILING
    end(own, Status.FAILED, when=at(4))
    health_check(now=at(5))
    assert health(own)[0] == HealthState.FAILING

    end(own, Status.SUCCESS, when=at(6))
    health_check(now=at(7))
    assert health(own)[0] == HealthState.FAILING  # 1 success of 2
    end(own, Status.SUCCESS, when=at(8))
    health_check(now=at(9))
    assert health(own)[0] == HealthState.UP


@pytest.mark.parametrize(
    ("failure_kind", "kind", "message"),
    [
        (
            FailureKind.TIMEOUT,
            AlertKind.TIMED_OUT,
            "t is failing: its last run timed out.",
        ),
        (
            FailureKind.ABANDONED,
            AlertKind.ABANDONED,
            "t is failing: its last run was abandoned (the process running it "
            "stopped heartbeating).",
        ),
    ],
)
def test_a_failure_by_timeout_or_abandonment_says_so(
    failure_kind: str, kind: str, message: str
) -> None:
    task = make_task(name="t")
    end(task, Status.FAILED, when=at(0), failure_kind=failure_kind)

    health_check(now=at(1))

    alert = Alert.objects.get()
    assert (alert.kind, alert.message) == (kind, message)


def test_a_paused_task_is_paused_and_tells_nothing() -> None:
    task = make_task(status=ScheduledTask.Status.PAUSED)
    end(task, Status.FAILED, when=at(0))

    health_check(now=at(1))

    assert health(task) == (HealthState.PAUSED, at(1))
    assert kinds() == []


def test_running_long_while_the_run_goes_on_then_recovered(settings) -> None:
    task = make_task(name="etl", max_run_seconds=60)
    quiet = make_task()  # SCHEDULER_ALERT_MAX_RUN_SECONDS = 0: no such warning
    run = make_execution(task, status=Status.RUNNING, started_at=at(0))
    make_execution(quiet, status=Status.RUNNING, started_at=at(0))
    health_check(now=at(59))
    assert kinds() == []

    health_check(now=at(90))

    alert = Alert.objects.get()
    assert (alert.kind, alert.execution) == (AlertKind.RUNNING_LONG, run)
    assert alert.message == (
        "etl has been running for 1.5 min, past its expected maximum run time "
        "(60 s); the run goes on."
    )
    assert health(quiet)[0] == HealthState.NEW
    run.mark_finished(status=Status.SUCCESS, now=at(100))
    run.save()
    add_counters([run])
    health_check(now=at(101))
    assert kinds() == [AlertKind.RUNNING_LONG, AlertKind.RECOVERED]
    assert Alert.objects.order_by("id")[1].message == (
        "etl is no longer running long: the run has ended."
    )


def test_late_when_a_fire_has_not_started_within_the_grace() -> None:
    task = make_task(name="hourly", alert_grace_seconds=30)
    fire = make_execution(
        task,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        scheduled_for=at(0),
    )
    health_check(now=at(30))
    assert health(task)[0] == HealthState.NEW

    health_check(now=at(31))
    assert health(task)[0] == HealthState.LATE
    alert = Alert.objects.get()
    assert alert.kind == AlertKind.LATE
    assert "has not started 31 s after its time" in alert.message

    fire.status = Status.RUNNING
    fire.save()
    health_check(now=at(32))
    assert health(task)[0] == HealthState.NEW  # started: late no more
    assert kinds() == [AlertKind.LATE, AlertKind.RECOVERED]
    assert Alert.objects.order_by("id")[1].message == (
        "hourly is no longer late: the fire has started."
    )


def test_late_when_nobody_stages_the_fire(settings) -> None:
    """A next fire time long past (firing off, a stuck loop) makes the task late."""
    settings.SCHEDULER_ALERT_GRACE_SECONDS = 60
    task = make_task(next_run_at=at(0))
    manual = make_task(task_type=ScheduledTask.TaskType.MANUAL, interval_seconds=None)

    health_check(now=at(61))

    assert health(task)[0] == HealthState.LATE
    assert health(manual)[0] == HealthState.NEW


def test_missed_fires_one_alert_for_the_stretch_then_recovered() -> None:
    task = make_task(name="every5s", success_count=1, run_count=1, last_run_at=at(-60))
    ScheduledTask.objects.filter(pk=task.pk).update(health=HealthState.UP)
    missed = make_execution(
        task,
        status=Status.MISSED,
        trigger_type=TaskExecution.TriggerType.SCHEDULED,
        scheduled_for=at(-55),
        created_at=at(0),
        error_message="Missed 11 fires, from 11:59:05 to 11:59:55: no scheduler ...",
    )
    ScheduledTask.objects.filter(pk=task.pk).update(last_missed_at=at(0))
    health_check(now=at(1))
    health_check(now=at(2))

    alert = Alert.objects.get()
    assert (alert.kind, alert.execution) == (AlertKind.MISSED, missed)
    assert alert.message == (
        "every5s missed fires: Missed 11 fires, from 11:59:05 to 11:59:55: no "
        "scheduler ..."
    )
    end(task, Status.SUCCESS, when=at(5))
    health_check(now=at(6))
    assert kinds() == [AlertKind.MISSED, AlertKind.RECOVERED]


def test_coalesced_fires_are_missed_too_even_when_the_run_already_succeeded() -> None:
    """The coalesced run may end before the next check: the miss is still told."""
    task = make_task(name="c", run_count=1, success_count=1, last_run_at=at(-60))
    ScheduledTask.objects.filter(pk=task.pk).update(
        health=HealthState.UP, health_since=at(-50), last_missed_at=at(0)
    )
    end(task, Status.SUCCESS, when=at(1))

    health_check(now=at(2))
    health_check(now=at(4))

    assert kinds() == [AlertKind.MISSED, AlertKind.RECOVERED]
    assert Alert.objects.order_by("id")[0].message == (
        "c missed fires: fires it missed while no scheduler ran were coalesced into "
        "one run."
    )


def test_a_change_is_written_once_when_two_checks_decide_it(monkeypatch) -> None:
    """Two leaders for a moment: the conditional update lets one decide the alert."""
    task = make_task()
    end(task, Status.FAILED, when=at(0))
    from scheduler_app.services import health as module

    real = module._write_changes
    rival: list[object] = []

    def racing(planned, **kwargs):  # the other check writes first
        rival.extend(real(planned, **kwargs))
        return real(planned, **kwargs)

    monkeypatch.setattr(module, "_write_changes", racing)

    assert health_check(now=at(1)) == []
    assert len(rival) == 1
    assert kinds() == [AlertKind.FAILING]


def test_the_alert_goes_to_the_task_s_channels_or_the_defaults(settings) -> None:
    settings.SCHEDULER_ALERT_EMAILS = ("ops@example.com",)
    default = AlertChannel.objects.create(
        name="hook", kind="webhook", target="http://127.0.0.1:9/a"
    )
    AlertChannel.objects.create(
        name="off", kind="webhook", target="http://127.0.0.1:9/b", enabled=False
    )
    own = AlertChannel.objects.create(
        name="team", kind="email", target="team@example.com", is_default=False
    )
    plain, named = make_task(name="plain"), make_task(name="named")
    named.alert_channels.set([own])
    end(plain, Status.FAILED, when=at(0))
    end(named, Status.FAILED, when=at(0))

    health_check(now=at(1))

    def targets(name: str) -> list[tuple[object, str]]:
        return sorted(
            (each.channel_id or 0, each.target)
            for each in AlertDelivery.objects.filter(alert__task_name=name)
        )

    assert targets("plain") == [
        (0, "ops@example.com"),
        (default.pk, "http://127.0.0.1:9/a"),
    ]
    assert targets("named") == [(own.pk, "team@example.com")]
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {"pending"}


def test_a_check_costs_the_same_few_queries_whatever_the_task_count() -> None:
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            health_check(now=at(1))
        return len(captured)

    make_task()
    health_check(now=at(0))
    few = queries()
    for _ in range(30):
        make_task()
    health_check(now=at(0))  # nothing changes after this: new stays new

    assert queries() == few <= 4


# -- system alerts when an instance starts leading -------------------------------------


def scheduler(name: str, **fields: object) -> SchedulerInstance:
    return SchedulerInstance.objects.create(instance_id=name, **fields)


def test_the_first_leader_tells_nothing_and_regaining_the_lead_neither() -> None:
    scheduler("a", started_at=at(0), last_heartbeat_at=at(0))

    assert leadership_taken(instance="a", now=at(1)) is None
    assert leadership_taken(instance="a", now=at(50)) is None
    assert kinds() == []


def test_a_scheduler_restarted_after_a_gap_tells_how_long_nothing_ran(settings) -> None:
    settings.SCHEDULER_INSTANCE_STALE_SECONDS = 30
    scheduler("a", started_at=at(0), last_heartbeat_at=at(10), is_leader=True)
    leadership_taken(instance="a", now=at(1))
    scheduler("b", started_at=at(70), last_heartbeat_at=at(70))

    alert = leadership_taken(instance="b", now=at(71))

    assert alert is not None and alert.kind == AlertKind.SCHEDULER_DOWN
    assert alert.task is None
    assert alert.details["seconds_without_scheduler"] == 61
    assert alert.message.startswith("No scheduler ran for 61 s, since ")


def test_a_standby_taking_over_from_a_leader_that_went_silent() -> None:
    scheduler("a", started_at=at(0), last_heartbeat_at=at(40), is_leader=True)
    scheduler("b", started_at=at(5), last_heartbeat_at=at(70))
    leadership_taken(instance="a", now=at(1))

    alert = leadership_taken(instance="b", now=at(71))

    assert alert is not None and alert.kind == AlertKind.TAKEOVER
    assert alert.message.startswith("The standby b took over from the leader a,")


def test_a_leader_that_handed_over_is_a_leader_change() -> None:
    scheduler("a", started_at=at(0), last_heartbeat_at=at(60), is_leader=False)
    scheduler("b", started_at=at(5), last_heartbeat_at=at(60))
    leadership_taken(instance="a", now=at(1))

    alert = leadership_taken(instance="b", now=at(61))

    assert alert is not None and alert.kind == AlertKind.LEADER_CHANGED
    assert alert.message == "b leads now (a handed over)."


def test_changes_that_tell_nothing_are_written_by_the_batch(monkeypatch) -> None:
    """The first check after an upgrade changes every task: a statement per batch."""
    from scheduler_app.services import health as module

    monkeypatch.setattr(module, "SILENT_BATCH", 2)
    tasks = [make_task(run_count=1, last_run_at=at(0)) for _ in range(5)]
    paused = make_task(status=ScheduledTask.Status.PAUSED)

    with CaptureQueriesContext(connection) as captured:
        changes = health_check(now=at(1))

    statements = [query["sql"].split()[0] for query in captured.captured_queries]
    # bounds, late fires, tasks (no task has a maximum run time); 5 new -> up by 2; paused
    assert statements.count("SELECT") == 3
    assert statements.count("UPDATE") == 3 + 1
    assert {each.task_id for each in changes} == {t.pk for t in [*tasks, paused]}
    assert [health(t)[0] for t in tasks] == [HealthState.UP] * 5
    assert health(paused)[0] == HealthState.PAUSED
    assert kinds() == []


def test_recovering_from_a_miss_takes_m_successes_after_it() -> None:
    """The successes before the miss do not count: the miss starts the run again."""
    task = make_task(name="m", recovery_threshold=2)
    for second in (1, 2, 3):
        end(task, Status.SUCCESS, when=at(-60 + second))
    health_check(now=at(-50))
    executions_record_missed([], coalesced=[task.pk], now=at(0))
    health_check(now=at(1))
    end(task, Status.SUCCESS, when=at(5))
    health_check(now=at(6))
    assert health(task)[0] == HealthState.MISSED  # one success of two

    end(task, Status.SUCCESS, when=at(10))
    health_check(now=at(11))

    assert health(task)[0] == HealthState.UP
    assert kinds() == [AlertKind.MISSED, AlertKind.RECOVERED]


def test_resuming_a_failing_task_tells_nothing_until_it_recovers() -> None:
    task = make_task(name="r")
    end(task, Status.FAILED, when=at(0))
    health_check(now=at(1))
    ScheduledTask.objects.filter(pk=task.pk).update(status=ScheduledTask.Status.PAUSED)
    health_check(now=at(2))
    end(task, Status.FAILED, when=at(3))  # a run now of the paused task
    ScheduledTask.objects.filter(pk=task.pk).update(status=ScheduledTask.Status.ACTIVE)
    health_check(now=at(4))
    assert health(task)[0] == HealthState.FAILING
    assert kinds() == [AlertKind.FAILING]

    end(task, Status.SUCCESS, when=at(5))
    health_check(now=at(6))

    assert kinds() == [AlertKind.FAILING, AlertKind.RECOVERED]


def test_the_alert_of_a_leadership_change_is_kept_with_the_leader_record(
    monkeypatch,
) -> None:
    """A failure deciding the alert leaves the last leader unchanged: told next time."""
    from scheduler_app.services import health as module

    scheduler("a", started_at=at(0), last_heartbeat_at=at(40), is_leader=True)
    scheduler("b", started_at=at(5), last_heartbeat_at=at(70))
    leadership_taken(instance="a", now=at(1))

    def fails(**kwargs: object) -> None:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(module, "alerts_record", fails)
    with pytest.raises(DatabaseError):
        leadership_taken(instance="b", now=at(71))
    monkeypatch.undo()

    alert = leadership_taken(instance="b", now=at(72))
    assert alert is not None and alert.kind == AlertKind.TAKEOVER
