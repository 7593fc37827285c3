"""Engine steps with an injected clock: firing, misfire/coalesce, changes, leadership, DST."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from scheduler_app.engine.leader import Leadership
from scheduler_app.engine.loop import Engine
from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import ScheduledTask, TaskExecution
from scheduler_app.services import (
    task_create,
    task_delete,
    task_pause,
    task_request_run,
    task_update,
    tasks_set_status,
)
from tests.factories import make_execution
from tests.helpers import wait_until

# The engine calls close_old_connections() every tick, which would close the
# connection of a test wrapped in a transaction: these tests commit for real.
pytestmark = pytest.mark.django_db(transaction=True)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")


class RecordingExecutor:
    """Collects what the engine hands over instead of running it."""

    lead_seconds = 0.0

    def __init__(self) -> None:
        self.submitted: list[TaskExecution] = []

    def submit(self, executions: list[TaskExecution]) -> None:
        self.submitted.extend(executions)

    def inflight(self) -> set[int]:
        return {execution.pk for execution in self.submitted}

    def shutdown(self, *, grace_seconds: float) -> set[int]:
        return set()

    def busy(self) -> bool:
        return False


def make_engine(**kwargs: Any) -> Engine:
    leadership = kwargs.pop("leadership", None) or Leadership(
        owner="test", enabled=False, ttl_seconds=30
    )
    executor = kwargs.pop("executor", None) or RecordingExecutor()
    return Engine(executor=executor, leadership=leadership, **kwargs)


def create(now: dt.datetime, **fields: Any) -> ScheduledTask:
    defaults: dict[str, Any] = {
        "name": "job",
        "task_type": "cron",
        "cron_expression": "0 2 * * *",
        "handler_path": "scripts:example_task",
    }
    defaults.update(fields)
    return task_create(task=ScheduledTask(**defaults), now=now)


def fires_of(engine: Engine, task: ScheduledTask) -> list[dt.datetime]:
    return [e.scheduled_for for e in engine.executor.submitted if e.task_id == task.pk]


def run_until(engine: Engine, end: dt.datetime) -> None:
    """Tick at every due time until `end`, as the loop would."""
    while True:
        due = engine.store.next_run_at()
        if due is None or due > end:
            return
        engine.tick(due)


def local(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    *,
    tz: ZoneInfo = SHANGHAI,
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=tz)


def test_cron_task_fires_at_its_time_and_persists_the_next_one() -> None:
    start = local(2026, 3, 2, 1, 0)
    task = create(start)
    engine = make_engine()
    engine.tick(start)

    engine.tick(local(2026, 3, 2, 1, 59))
    assert fires_of(engine, task) == []
    engine.tick(local(2026, 3, 2, 2, 0))

    assert fires_of(engine, task) == [local(2026, 3, 2, 2, 0)]
    execution = engine.executor.submitted[0]
    assert execution.status == TaskExecution.Status.PENDING
    assert execution.trigger_type == TaskExecution.TriggerType.SCHEDULED
    task.refresh_from_db()
    assert task.next_run_at == local(2026, 3, 3, 2, 0)


def test_interval_task_fires_every_interval() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="interval", cron_expression="", interval_seconds=30)
    engine = make_engine()
    engine.tick(start)

    run_until(engine, start + dt.timedelta(minutes=2))

    assert fires_of(engine, task) == [
        start + dt.timedelta(seconds=30 * n) for n in range(1, 5)
    ]


def test_manual_and_paused_tasks_never_fire() -> None:
    start = local(2026, 3, 2, 12, 0)
    manual = create(start, name="manual", task_type="manual", cron_expression="")
    paused = create(
        start,
        name="paused",
        task_type="interval",
        cron_expression="",
        interval_seconds=1,
    )
    task_pause(task=paused, now=start)
    engine = make_engine()
    engine.tick(start)

    engine.tick(start + dt.timedelta(days=1))

    assert manual.pk not in engine.store and paused.pk not in engine.store
    assert engine.executor.submitted == []


def test_date_task_fires_once_even_across_a_restart() -> None:
    start = local(2026, 3, 2, 12, 0)
    when = start + dt.timedelta(minutes=5)
    task = create(start, task_type="date", cron_expression="", run_date=when)
    engine = make_engine()
    engine.tick(start)

    engine.tick(when)
    engine.tick(when + dt.timedelta(hours=1))
    restarted = make_engine()
    restarted.tick(when + dt.timedelta(hours=2))

    assert fires_of(engine, task) == [when]
    # The restarted engine resumes the recorded (still pending) fire; it fires nothing new.
    assert list(
        TaskExecution.objects.filter(task=task).values_list("scheduled_for", flat=True)
    ) == [when]
    task.refresh_from_db()
    assert task.next_run_at is None


def test_after_downtime_a_coalescing_task_runs_once() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(
        start,
        task_type="interval",
        cron_expression="",
        interval_seconds=60,
        misfire_grace_seconds=3600,
        coalesce=True,
    )
    engine = make_engine()

    engine.tick(start + dt.timedelta(hours=1, seconds=1))

    assert fires_of(engine, task) == [start + dt.timedelta(hours=1)]


def test_after_downtime_a_non_coalescing_task_runs_the_fires_still_within_grace() -> (
    None
):
    start = local(2026, 3, 2, 12, 0)
    task = create(
        start,
        task_type="interval",
        cron_expression="",
        interval_seconds=60,
        misfire_grace_seconds=300,
        coalesce=False,
    )
    engine = make_engine()
    now = start + dt.timedelta(hours=1, seconds=1)

    engine.tick(now)

    fired = fires_of(engine, task)
    assert fired == [start + dt.timedelta(minutes=m) for m in range(56, 61)]
    task.refresh_from_db()
    assert task.next_run_at == start + dt.timedelta(minutes=61)


def test_fires_missed_beyond_grace_are_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = local(2026, 3, 2, 12, 0)
    create(
        start,
        task_type="interval",
        cron_expression="",
        interval_seconds=60,
        misfire_grace_seconds=10,
    )
    engine = make_engine()

    engine.tick(start + dt.timedelta(hours=1, seconds=30))

    assert engine.executor.submitted == []
    assert (
        "1 task(s) missed fires by more than their misfire grace, dropped: "
        "job (60 beyond 10 s)"
    ) in caplog.text


def test_fires_missed_beyond_grace_leave_one_missed_record_with_their_times() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(
        start,
        task_type="interval",
        cron_expression="",
        interval_seconds=60,
        misfire_grace_seconds=10,
    )
    now = start + dt.timedelta(hours=1, seconds=30)

    make_engine().tick(now)
    make_engine().tick(now)  # a second instance finds the same stretch

    [missed] = TaskExecution.objects.filter(task=task)
    assert missed.status == TaskExecution.Status.MISSED
    assert missed.is_finished
    assert missed.scheduled_for == start + dt.timedelta(minutes=1)
    assert missed.result == {
        "missed_fires": 60,
        "first": (start + dt.timedelta(minutes=1)).astimezone(dt.UTC).isoformat(),
        "last": (start + dt.timedelta(hours=1)).astimezone(dt.UTC).isoformat(),
        "misfire_grace_seconds": 10,
    }
    assert missed.error_message == (
        "Missed 60 fires, from 2026-03-02 12:01:00 to 2026-03-02 13:00:00: no "
        "scheduler started them within their misfire grace (10 s)."
    )
    task.refresh_from_db()
    assert task.run_count == 0  # a record, not a run


def test_a_one_off_task_whose_time_passed_unrun_says_so() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(
        start,
        task_type="date",
        cron_expression="",
        run_date=start + dt.timedelta(minutes=5),
        misfire_grace_seconds=60,
    )

    make_engine().tick(start + dt.timedelta(hours=2))

    [missed] = TaskExecution.objects.filter(task=task)
    assert missed.status == TaskExecution.Status.MISSED
    assert missed.error_message == (
        "Missed the fire of 2026-03-02 12:05:00: no scheduler started it within its "
        "misfire grace (60 s)."
    )
    task.refresh_from_db()
    assert task.next_run_at is None


def test_after_an_outage_many_tasks_missing_fires_make_one_line_each_kind(
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = local(2026, 3, 2, 12, 0)
    for index in range(25):
        create(
            start,
            name="job-%02d" % index,
            task_type="interval",
            cron_expression="",
            interval_seconds=60,
            misfire_grace_seconds=600,
            coalesce=True,
        )
    engine = make_engine()

    with caplog.at_level(logging.WARNING, logger="scheduler_app.engine.loop"):
        engine.tick(start + dt.timedelta(hours=1, seconds=1))

    lines = [r.getMessage() for r in caplog.records if r.name.endswith("engine.loop")]
    assert lines == [
        "25 task(s) missed fires by more than their misfire grace, dropped: "
        + ", ".join("job-%02d (50 beyond 600 s)" % i for i in range(10))
        + " and 15 more",
        "25 task(s) had missed fires coalesced into one run: "
        + ", ".join("job-%02d (10 into 1)" % i for i in range(10))
        + " and 15 more",
    ]
    assert len(engine.executor.submitted) == 25


def test_edits_pauses_resumes_and_deletes_are_picked_up() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start)
    other = create(start, name="other", cron_expression="0 3 * * *")
    engine = make_engine()
    engine.tick(start)
    assert engine.reconcile_if_changed(start) is False

    task_update(task=task, changes={"cron_expression": "0 4 * * *"}, now=start)
    assert engine.reconcile_if_changed(start) is True
    assert engine.store.get(task.pk).next_run_at == local(2026, 3, 3, 4, 0)

    tasks_set_status(tasks=ScheduledTask.objects.filter(pk=task.pk), status="paused")
    engine.reconcile_if_changed(start)
    assert task.pk not in engine.store

    tasks_set_status(
        tasks=ScheduledTask.objects.filter(pk=task.pk), status="active", now=start
    )
    engine.reconcile_if_changed(start)
    assert task.pk in engine.store

    task_delete(task=other)
    engine.reconcile_if_changed(start)
    assert other.pk not in engine.store


def test_a_new_task_is_fired_without_a_restart() -> None:
    start = local(2026, 3, 2, 12, 0)
    engine = make_engine()
    engine.tick(start)

    task = create(start, task_type="interval", cron_expression="", interval_seconds=10)
    engine.tick(start + dt.timedelta(seconds=10))

    assert fires_of(engine, task) == [start + dt.timedelta(seconds=10)]


def test_two_engines_firing_the_same_moment_record_it_once() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="interval", cron_expression="", interval_seconds=10)
    first, second = make_engine(), make_engine()
    first.tick(start)
    second.tick(start)

    first.tick(start + dt.timedelta(seconds=10))
    second.tick(start + dt.timedelta(seconds=10))

    assert len(fires_of(first, task)) == 1
    assert TaskExecution.objects.filter(task=task).count() == 1


def test_disabled_firing_still_starts_run_now_requests(settings: Any) -> None:
    settings.SCHEDULER_ENABLED = False
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="interval", cron_expression="", interval_seconds=10)
    engine = make_engine()
    requested = task_request_run(task=task)

    engine.tick(start + dt.timedelta(minutes=5))

    assert [e.pk for e in engine.executor.submitted] == [requested.pk]


def test_start_pending_leaves_cli_runs_and_does_not_resubmit_inflight() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="manual", cron_expression="")
    requested = task_request_run(task=task)
    task_request_run(task=task, trigger_type=TaskExecution.TriggerType.CLI)
    engine = make_engine()

    engine.start_pending(start)
    engine.start_pending(start)

    assert [e.pk for e in engine.executor.submitted] == [requested.pk]


def test_cron_fires_once_on_a_fall_back_night_in_new_york() -> None:
    start = local(2025, 11, 1, 12, 0, tz=NEW_YORK)
    task = create(start, cron_expression="30 1 * * *", timezone="America/New_York")
    engine = make_engine()
    engine.tick(start)

    run_until(engine, local(2025, 11, 3, 12, 0, tz=NEW_YORK))

    fired = [when.astimezone(NEW_YORK) for when in fires_of(engine, task)]
    assert [(w.day, w.hour, w.minute) for w in fired] == [(2, 1, 30), (3, 1, 30)]


def test_cron_does_not_lose_the_spring_forward_day_in_new_york() -> None:
    start = local(2025, 3, 8, 12, 0, tz=NEW_YORK)
    task = create(start, cron_expression="30 2 * * *", timezone="America/New_York")
    engine = make_engine()
    engine.tick(start)

    run_until(engine, local(2025, 3, 10, 12, 0, tz=NEW_YORK))

    days = [when.astimezone(NEW_YORK).day for when in fires_of(engine, task)]
    assert days == [9, 10]


def test_a_leader_that_cannot_refresh_stops_firing_before_its_lease_expires() -> None:
    ticks = {"now": 0.0}
    leader = Leadership(
        owner="a", enabled=True, ttl_seconds=10, clock=lambda: ticks["now"]
    )
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="interval", cron_expression="", interval_seconds=1)
    engine = make_engine(leadership=leader)
    engine.tick(start)
    assert leader.is_leader

    ticks["now"] = 8.5  # no refresh succeeded since 0 s; 80% of the 10 s TTL is gone
    engine.firing_enabled = True
    fired = engine.fire_due(start + dt.timedelta(seconds=5))

    assert fired == [] and not leader.is_leader
    assert fires_of(engine, task) == []


def test_a_standby_takes_over_when_the_leader_lease_expires() -> None:
    first = Leadership(owner="a", enabled=True, ttl_seconds=0.3)
    second = Leadership(owner="b", enabled=True, ttl_seconds=0.3)

    assert first.refresh() is True
    assert second.refresh() is False
    # The leader dies: nobody refreshes its lease.
    wait_until(lambda: second.refresh(), timeout=5)

    assert get_lock_backend().get("scheduler:leader").owner == "b"


def test_a_clean_release_lets_a_standby_lead_at_once() -> None:
    first = Leadership(owner="a", enabled=True, ttl_seconds=30)
    second = Leadership(owner="b", enabled=True, ttl_seconds=30)
    first.refresh()

    first.release()

    assert second.refresh() is True


def test_a_standby_does_not_fire_and_drops_its_jobs() -> None:
    start = local(2026, 3, 2, 12, 0)
    create(start, task_type="interval", cron_expression="", interval_seconds=1)
    holder = Leadership(owner="other", enabled=True, ttl_seconds=30)
    holder.refresh()
    engine = make_engine(
        leadership=Leadership(owner="me", enabled=True, ttl_seconds=30)
    )

    engine.tick(start + dt.timedelta(seconds=5))

    assert engine.executor.submitted == []
    assert len(engine.store) == 0


def test_declared_schedule_creates_a_task_once(settings: Any, tmp_path: Any) -> None:
    (tmp_path / "nightly_report.py").write_text(
        'TASK_INFO = {"description": "Report", "schedule": {"cron": "15 3 * * *"}}\n'
        "def run():\n    return {}\n"
    )
    settings.SCHEDULER_SCRIPTS_PATH = str(tmp_path)
    start = local(2026, 3, 2, 12, 0)
    make_engine(clock=lambda: start).start()
    task = ScheduledTask.objects.get(handler_path="scripts:nightly_report")
    assert (task.name, task.cron_expression) == ("nightly_report", "15 3 * * *")

    task_update(task=task, changes={"cron_expression": "0 5 * * *"})
    task_delete(task=task)
    make_engine(clock=lambda: start).start()

    assert not ScheduledTask.objects.filter(
        handler_path="scripts:nightly_report"
    ).exists()


def test_with_redis_a_change_wakes_the_scheduler_by_notification(
    redis_url: str,
) -> None:
    from scheduler_app import notify

    received: list[str] = []
    listener = notify.Listener(received.append)
    listener.start()
    try:
        # Publish until the subscription is live (it connects in the background).
        start = local(2026, 3, 2, 12, 0)
        task = create(start)

        def notified() -> bool:
            if notify.TASKS_CHANGED not in received:
                task_pause(task=task)
                task_update(task=task, changes={"description": "again"})
            return notify.TASKS_CHANGED in received

        wait_until(notified, timeout=10, interval=0.1)
        assert received[0] == notify.SUBSCRIBED
        assert listener.live
        task_request_run(task=task)
        wait_until(lambda: notify.RUN_REQUESTED in received, timeout=10)
    finally:
        listener.stop()
    assert not listener.live


def test_with_live_notifications_the_database_is_asked_when_told_and_once_a_second() -> (
    None
):
    from scheduler_app import notify

    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="manual", cron_expression="")
    engine = make_engine()
    engine._listener.live = True  # as once Redis confirmed the subscription
    engine.tick(start)
    at = lambda seconds: start + dt.timedelta(seconds=seconds)  # noqa: E731

    requested = task_request_run(task=task)
    engine.tick(at(0.3))  # housekeeping, but no notification: not asked
    assert engine.executor.submitted == []
    engine._on_notification(notify.RUN_REQUESTED)
    engine.tick(at(0.35))
    assert [e.pk for e in engine.executor.submitted] == [requested.pk]

    interval = create(
        start,
        name="every",
        task_type="interval",
        cron_expression="",
        interval_seconds=60,
    )
    engine.tick(at(0.6))
    assert engine.store.get(interval.pk) is None
    engine._on_notification(notify.TASKS_CHANGED)
    engine.tick(at(0.65))
    assert engine.store.get(interval.pk) is not None

    # A notification lost (its publishing failed) is made up for by the check
    # a second after the last one, at the first housekeeping from then on.
    again = task_request_run(task=task)
    engine.tick(at(0.9))
    assert again.pk not in {e.pk for e in engine.executor.submitted}
    engine.tick(at(1.15))
    assert again.pk in {e.pk for e in engine.executor.submitted}


def test_with_live_notifications_a_retry_starts_when_its_delay_is_over() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="manual", cron_expression="")
    engine = make_engine()
    engine._listener.live = True
    engine.tick(start)
    retry = make_execution(
        task,
        status=TaskExecution.Status.PENDING,
        trigger_type=TaskExecution.TriggerType.RETRY,
        run_after=start + dt.timedelta(seconds=0.6),
    )
    engine._on_notification("run")  # what recording the failed run publishes

    engine.tick(start + dt.timedelta(seconds=0.3))
    assert engine.executor.submitted == []
    engine.tick(start + dt.timedelta(seconds=0.6))

    assert [e.pk for e in engine.executor.submitted] == [retry.pk]


def test_without_live_notifications_every_housekeeping_asks_the_database() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="manual", cron_expression="")
    engine = make_engine()
    engine.tick(start)

    requested = task_request_run(task=task)
    engine.tick(start + dt.timedelta(seconds=0.3))

    assert [e.pk for e in engine.executor.submitted] == [requested.pk]


def test_stop_interrupts_runs_still_going_after_the_grace_period() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="manual", cron_expression="")

    class StuckExecutor(RecordingExecutor):
        def shutdown(self, *, grace_seconds: float) -> set[int]:
            return {running.pk}

    task_update(task=task, changes={"max_retries": 1})
    engine = Engine(
        executor=StuckExecutor(),
        leadership=Leadership(owner="t", enabled=False, ttl_seconds=30),
    )
    running = make_execution(
        task,
        status=TaskExecution.Status.RUNNING,
        instance_id=engine.instance,
        started_at=start,
    )
    backend = get_lock_backend()
    backend.acquire(
        task_lock_key(task.pk),
        owner=f"{engine.instance} exec:{running.pk}",
        ttl_seconds=60,
    )

    engine.stop(grace_seconds=0)

    running.refresh_from_db()
    assert running.status == TaskExecution.Status.FAILED
    assert running.failure_kind == TaskExecution.FailureKind.INTERRUPTED
    assert engine.instance in running.error_message
    # Recorded as any failed run is: counted, retried by the next scheduler, lock freed.
    task.refresh_from_db()
    assert (task.run_count, task.fail_count) == (1, 1)
    assert (
        TaskExecution.objects.get(retry_of=running).status
        == TaskExecution.Status.PENDING
    )
    assert backend.get(task_lock_key(task.pk)) is None


def test_stop_releases_the_lease_at_once_and_heartbeats_through_the_grace(
    settings: Any,
) -> None:
    from scheduler_app.models import SchedulerInstance

    settings.SCHEDULER_HEARTBEAT_INTERVAL = 0.05
    seen: dict[str, Any] = {}

    class SlowExecutor(RecordingExecutor):
        def shutdown(self, *, grace_seconds: float) -> set[int]:
            # The grace: a standby can lead now, and this instance keeps beating.
            seen["standby leads"] = standby.refresh()
            rows = SchedulerInstance.objects.filter(instance_id=engine.instance)
            first = rows.get().last_heartbeat_at
            wait_until(lambda: rows.get().last_heartbeat_at > first, timeout=5)
            seen["row"] = rows.get()
            return set()

    leader = Leadership(owner="stopping", enabled=True, ttl_seconds=30)
    standby = Leadership(owner="standby", enabled=True, ttl_seconds=30)
    engine = make_engine(leadership=leader, executor=SlowExecutor())
    engine.tick(local(2026, 3, 2, 12, 0))
    assert leader.is_leader and not standby.refresh()

    engine.stop(grace_seconds=10)

    assert seen["standby leads"] is True
    assert not seen["row"].is_leader and seen["row"].stopped_at is None
    assert SchedulerInstance.objects.get(instance_id=engine.instance).stopped_at


def test_a_new_leader_recovers_the_dead_leaders_runs_once_its_heartbeat_is_stale(
    settings: Any,
) -> None:
    from scheduler_app.models import SchedulerInstance

    settings.SCHEDULER_INSTANCE_STALE_SECONDS = 30
    start = local(2026, 3, 2, 12, 0)
    task = create(start, task_type="manual", cron_expression="")
    SchedulerInstance.objects.create(
        instance_id="dead-leader", last_heartbeat_at=start - dt.timedelta(seconds=5)
    )
    orphan = make_execution(
        task,
        status=TaskExecution.Status.RUNNING,
        instance_id="dead-leader",
        started_at=start - dt.timedelta(minutes=10),
    )
    engine = make_engine(
        leadership=Leadership(owner="new", enabled=True, ttl_seconds=30)
    )

    engine.tick(start)  # takes the lease; the dead leader still looks alive
    assert (
        TaskExecution.objects.get(pk=orphan.pk).status == TaskExecution.Status.RUNNING
    )

    engine.tick(start + dt.timedelta(seconds=31))  # well before the 60 s routine check

    orphan.refresh_from_db()
    assert orphan.status == TaskExecution.Status.FAILED
    assert orphan.failure_kind == TaskExecution.FailureKind.ABANDONED


# -- staging: fires recorded ahead of their time ------------------------------------


def staged_interval_task(
    engine: Engine, start: dt.datetime
) -> tuple[ScheduledTask, dt.datetime]:
    """A 10 s interval task whose first fire (start + 10 s) the engine has staged."""
    task = create(start, task_type="interval", cron_expression="", interval_seconds=10)
    engine.tick(start)
    due = start + dt.timedelta(seconds=10)
    engine.tick(due - dt.timedelta(seconds=0.5))
    return task, due


def test_fires_are_recorded_ahead_and_handed_over_at_their_time() -> None:
    start = local(2026, 3, 2, 12, 0)
    engine = make_engine()
    task, due = staged_interval_task(engine, start)

    staged = TaskExecution.objects.get(task=task)
    assert staged.status == TaskExecution.Status.PENDING
    assert staged.scheduled_for == due and staged.run_after == due
    assert fires_of(engine, task) == []
    assert not TaskExecution.objects.startable(
        now=due - dt.timedelta(seconds=0.1)
    ).exists()

    engine.tick(due)

    assert [e.pk for e in engine.executor.submitted] == [staged.pk]
    assert TaskExecution.objects.filter(task=task).count() == 1


def test_an_executor_with_a_lead_gets_fires_that_far_ahead_in_groups() -> None:
    start = local(2026, 3, 2, 12, 0)
    executor = RecordingExecutor()
    executor.lead_seconds = 0.2
    engine = make_engine(executor=executor)
    tasks = {
        offset: create(
            start + dt.timedelta(seconds=offset),
            name="at +%s s" % offset,
            task_type="interval",
            cron_expression="",
            interval_seconds=10,
        )
        for offset in (0, 0.05, 0.3)
    }
    due = start + dt.timedelta(seconds=10)
    engine.tick(start + dt.timedelta(seconds=0.3))
    engine.tick(due - dt.timedelta(seconds=0.5))  # all staged

    # Not yet: the first fire is more than half the lead away.
    engine.tick(due - dt.timedelta(seconds=0.11))
    assert executor.submitted == []
    # Half the lead before the first: every fire within the lead, together.
    engine.tick(due - dt.timedelta(seconds=0.1))
    handed = {offset: fires_of(engine, task) for offset, task in tasks.items()}
    assert handed == {0: [due], 0.05: [due + dt.timedelta(seconds=0.05)], 0.3: []}


def test_staging_waits_a_round_while_the_executor_is_busy_but_never_too_long() -> None:
    start = local(2026, 3, 2, 12, 0)
    executor = RecordingExecutor()
    engine = make_engine(executor=executor)
    task = create(start, task_type="interval", cron_expression="", interval_seconds=10)
    engine.tick(start)
    due = start + dt.timedelta(seconds=10)
    executor.busy = lambda: True  # type: ignore[method-assign]

    engine.housekeep(
        due - dt.timedelta(seconds=0.9)
    )  # would be staged 0.65 s ahead next round
    assert not TaskExecution.objects.filter(task=task).exists()
    engine.housekeep(due - dt.timedelta(seconds=0.7))  # next round would be too late
    assert TaskExecution.objects.get(task=task).scheduled_for == due


def test_pausing_a_task_withdraws_its_staged_fire() -> None:
    start = local(2026, 3, 2, 12, 0)
    engine = make_engine()
    task, due = staged_interval_task(engine, start)

    task_pause(task=task, now=due - dt.timedelta(seconds=0.4))
    engine.tick(due)

    assert not TaskExecution.objects.filter(task=task).exists()
    assert task.pk not in engine.store


@pytest.mark.parametrize("status", ["paused", "disabled"])
def test_an_edit_that_stops_a_task_withdraws_its_staged_fire(status: str) -> None:
    """The same as a pause, when the status is changed on the form or by PATCH."""
    start = local(2026, 3, 2, 12, 0)
    engine = make_engine()
    task, due = staged_interval_task(engine, start)
    assert TaskExecution.objects.filter(task=task).exists()

    task_update(
        task=task, changes={"status": status}, now=due - dt.timedelta(seconds=0.4)
    )

    assert not TaskExecution.objects.filter(task=task).exists()
    engine.tick(due)
    assert not TaskExecution.objects.filter(task=task).exists()
    assert task.pk not in engine.store


def test_editing_a_task_restages_its_fire_once() -> None:
    start = local(2026, 3, 2, 12, 0)
    task = create(start, cron_expression="* * * * *")
    engine = make_engine()
    engine.tick(start)
    due = start + dt.timedelta(minutes=1)
    engine.tick(due - dt.timedelta(seconds=0.5))
    first = TaskExecution.objects.get(task=task)

    task_update(
        task=task,
        changes={"description": "edited"},
        now=due - dt.timedelta(seconds=0.4),
    )
    engine.tick(due - dt.timedelta(seconds=0.1))
    engine.tick(due)

    restaged = TaskExecution.objects.get(task=task)
    assert restaged.pk != first.pk and restaged.scheduled_for == due
    assert [e.pk for e in engine.executor.submitted] == [restaged.pk]


def test_shutdown_withdraws_staged_fires_and_keeps_their_time_for_the_next_start() -> (
    None
):
    start = local(2026, 3, 2, 12, 0)
    engine = make_engine()
    task, due = staged_interval_task(engine, start)

    engine.stop(grace_seconds=0)

    assert not TaskExecution.objects.filter(task=task).exists()
    task.refresh_from_db()
    assert task.next_run_at == due
    restarted = make_engine()
    restarted.tick(due)
    assert fires_of(restarted, task) == [due]


def test_fires_staged_by_a_leader_that_died_are_started_by_the_next_one() -> None:
    start = local(2026, 3, 2, 12, 0)
    dead = make_engine()
    task, due = staged_interval_task(dead, start)
    staged = TaskExecution.objects.get(task=task)

    successor = make_engine()
    successor.tick(due + dt.timedelta(seconds=0.1))

    assert [e.pk for e in successor.executor.submitted] == [staged.pk]
    assert TaskExecution.objects.filter(task=task).count() == 1
