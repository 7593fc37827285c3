"""End to end: real `manage.py runscheduler` processes against the test database.

Each test starts one or two scheduler processes with short timings, drives them
through the services (as the admin and the API do) and reads the rows they write.
The processes use the test's own database (the SQLite file or the PostgreSQL test
database), so the tests commit for real (`transaction=True`).
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from scheduler_app import selectors
from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from scheduler_app.services import task_create, task_pause, task_request_run
from tests.engine.e2e import (
    ENDED,
    INSTANCE_STALE_SECONDS,
    LEADER_LOCK_TTL,
    SHUTDOWN_GRACE_SECONDS,
    Status,
    Trigger,
    make_interval,
    make_manual,
    row_of,
    scheduled_runs,
    succeeded,
)
from tests.factories import make_execution, make_task
from tests.processes import (
    STARTUP_TIMEOUT,
    Processes,
    RedisServer,
    SchedulerProcess,
    TcpProxy,
    free_port,
    reports,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


# 1. Firing ------------------------------------------------------------------------


def test_runscheduler_fires_interval_and_cron_tasks_and_records_each_fire(
    start_scheduler: Callable[..., SchedulerProcess],
) -> None:
    scheduler = start_scheduler()
    wait_for(scheduler.is_leader, STARTUP_TIMEOUT, scheduler)
    # Created after the start: the running process must pick them up.
    interval = make_interval("e2e interval")
    cron = task_create(
        task=ScheduledTask(
            name="e2e cron",
            task_type="cron",
            cron_expression="*/1 * * * * *",
            handler_path="scripts:data_sync",
        )
    )

    def three_successes_each() -> bool:
        return all(
            scheduled_runs(task).filter(status=Status.SUCCESS).count() >= 3
            for task in (interval, cron)
        )

    wait_for(three_successes_each, 15, scheduler)

    for task in (interval, cron):
        runs = list(scheduled_runs(task).exclude(status=Status.PENDING))
        fire_times = [run.scheduled_for for run in runs]
        assert None not in fire_times, reports(scheduler)
        assert len(set(fire_times)) == len(fire_times), (fire_times, reports(scheduler))
        for run in runs:
            assert run.started_at is not None, run
            assert run.started_at >= run.scheduled_for, (run, run.started_at)
            assert run.instance_id == scheduler.instance_id
        failures = [
            (run.status, run.error_message)
            for run in runs
            if run.is_finished and run.status != Status.SUCCESS
        ]
        assert not failures, (task.name, failures)


# 2. Changes while running -----------------------------------------------------------


def test_pause_stops_fires_and_run_now_is_executed_while_runscheduler_runs(
    start_scheduler: Callable[..., SchedulerProcess],
) -> None:
    paused = make_interval("e2e to pause")
    active = make_interval("e2e stays active")
    manual = make_manual("e2e manual")
    scheduler = start_scheduler()
    wait_for(lambda: scheduled_runs(paused).exists(), STARTUP_TIMEOUT, scheduler)

    task_pause(task=paused)
    first = task_request_run(task=manual)
    wait_for(lambda: succeeded(first), 5, scheduler)
    # The run-now was requested after the pause committed, and a tick fires before
    # it starts pending runs: from the tick after, the paused task is unloaded.
    second = task_request_run(task=manual)
    wait_for(lambda: succeeded(second), 5, scheduler)
    fires_after_pause = scheduled_runs(paused).count()
    # Let two more seconds pass, seen as two more fires of the active task.
    active_fires = scheduled_runs(active).count()
    wait_for(lambda: scheduled_runs(active).count() >= active_fires + 2, 5, scheduler)

    assert scheduled_runs(paused).count() == fires_after_pause, reports(scheduler)
    paused.refresh_from_db()
    assert paused.status == ScheduledTask.Status.PAUSED
    assert TaskExecution.objects.get(pk=first.pk).trigger_type == Trigger.MANUAL


def test_a_row_with_a_handler_that_is_not_allowed_runs_nothing_in_runscheduler(
    start_scheduler: Callable[..., SchedulerProcess], tmp_path: Path
) -> None:
    """A row written behind the services' back (SQL, a restored dump) with os:system."""
    canary = tmp_path / "canary"
    hostile = make_task(
        name="e2e hostile",
        task_type="interval",
        interval_seconds=1,
        handler_path="os:system",
        handler_kwargs={"command": repr("touch %s" % canary)},
        next_run_at=timezone.now(),
        # The run-now request must reach the handler lookup, not a held lock.
        overlap_policy=ScheduledTask.OverlapPolicy.ALLOW,
    )
    requested = make_execution(
        hostile, status=Status.PENDING, trigger_type=Trigger.MANUAL
    )
    active = make_interval("e2e stays active")
    scheduler = start_scheduler()

    wait_for(
        lambda: scheduled_runs(hostile).filter(status=Status.FAILED).exists(),
        STARTUP_TIMEOUT,
        scheduler,
    )
    wait_for(
        lambda: TaskExecution.objects.filter(
            pk=requested.pk, status=Status.FAILED
        ).exists(),
        5,
        scheduler,
    )
    wait_for(
        lambda: scheduled_runs(active).filter(status=Status.SUCCESS).exists(),
        5,
        scheduler,
    )

    assert "Task e2e hostile will not run: Handler “os:system” is not allowed" in (
        scheduler.output()
    ), reports(scheduler)
    # Fires staged ahead of their time are still pending, and one may be between its
    # claim and its end (running for a millisecond); every run that ended failed.
    for execution in TaskExecution.objects.filter(task=hostile).exclude(
        status__in=[Status.PENDING, Status.RUNNING]
    ):
        assert execution.status == Status.FAILED, reports(scheduler)
        assert "is not allowed" in execution.error_message
        assert "@scheduler_app.handler" in execution.error_message
    assert not canary.exists()


# 3. SIGTERM -------------------------------------------------------------------------


def test_sigterm_exits_cleanly_after_the_grace_period_and_interrupts_long_runs(
    start_scheduler: Callable[..., SchedulerProcess], scripts_dir: Path
) -> None:
    sleeper = make_manual("e2e sleeper", handler="scripts:sleeper")
    scheduler = start_scheduler(extra_env={"SCHEDULER_SCRIPTS_PATH": str(scripts_dir)})
    run = task_request_run(task=sleeper)
    wait_for(
        row_of(run, status=Status.RUNNING),
        STARTUP_TIMEOUT,
        scheduler,
    )
    instance = scheduler.instance_id

    scheduler.send_signal(signal.SIGTERM)
    try:
        code = scheduler.popen.wait(timeout=SHUTDOWN_GRACE_SECONDS + 6)
    except subprocess.TimeoutExpired:
        pytest.fail("runscheduler did not exit after SIGTERM\n" + reports(scheduler))

    assert code == 0, reports(scheduler)
    row = SchedulerInstance.objects.get(instance_id=instance)
    assert row.stopped_at is not None, reports(scheduler)
    assert not row.is_leader
    run.refresh_from_db()
    assert (run.status, run.failure_kind) == (Status.FAILED, "interrupted"), (
        run.error_message,
        reports(scheduler),
    )
    assert run.instance_id == instance
    assert instance in run.error_message


def test_sigterm_hands_the_lead_over_at_once_and_the_run_ends_on_its_instance(
    start_scheduler: Callable[..., SchedulerProcess],
    scripts_dir: Path,
    request: pytest.FixtureRequest,
    settings: Any,
) -> None:
    """During its grace a stopping leader heartbeats and no longer leads.

    The grace is longer than the staleness: an instance that stopped heartbeating
    then would have its run taken for abandoned, its lock freed, and the skip
    task started beside it by the standby.
    """
    if connection.vendor != "postgresql":
        pytest.skip("two schedulers at once are tested on PostgreSQL (with Redis)")
    redis = {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": settings.SCHEDULER_REDIS_PREFIX,
    }
    run_seconds, grace = 6, 15
    env = {
        "SCHEDULER_SCRIPTS_PATH": str(scripts_dir),
        "SCHEDULER_SHUTDOWN_GRACE_SECONDS": str(grace),
    }
    first = start_scheduler(extra_env=env, **redis)
    wait_for(first.is_leader, STARTUP_TIMEOUT, first)
    second = start_scheduler(extra_env=env, **redis)
    both = (first, second)
    wait_for(second.instance_row, STARTUP_TIMEOUT, *both)
    first_id, second_id = first.instance_id, second.instance_id
    # A skip task that fires every second and runs for longer.
    sleeper = task_create(
        task=ScheduledTask(
            name="e2e skip sleeper",
            task_type="interval",
            interval_seconds=1,
            handler_path="scripts:sleeper",
            handler_kwargs={"seconds": run_seconds},
            overlap_policy=ScheduledTask.OverlapPolicy.SKIP,
        )
    )
    runs = TaskExecution.objects.filter(task=sleeper)

    def run_going_for_a_second() -> TaskExecution | None:
        # A run is `running` from its claim, up to 0.2 s before its time: a second
        # on, its handler surely runs (a run not started yet is given back).
        since = timezone.now() - dt.timedelta(seconds=1)
        going = runs.filter(status=Status.RUNNING, instance_id=first_id)
        return going.filter(started_at__lte=since).first()

    long_run = wait_for(run_going_for_a_second, 10, *both)

    first.send_signal(signal.SIGTERM)
    signalled = timezone.now()

    # The standby leads at its next try, not a lease TTL later.
    wait_for(second.is_leader, 3, *both)
    took_over = (timezone.now() - signalled).total_seconds()
    assert took_over < LEADER_LOCK_TTL, (took_over, reports(*both))
    # The stopping instance heartbeats through its grace (past the staleness),
    # is not the leader any more, and its run ends there, recorded a success.
    wait_for(lambda: succeeded(long_run), run_seconds + 5, *both)
    row = SchedulerInstance.objects.get(instance_id=first_id)
    assert not row.is_leader
    assert row.last_heartbeat_at is not None
    assert row.last_heartbeat_at > signalled + dt.timedelta(
        seconds=INSTANCE_STALE_SECONDS
    ), reports(*both)
    code = first.popen.wait(timeout=10)
    assert code == 0, reports(*both)
    long_run.refresh_from_db()
    assert long_run.instance_id == first_id
    assert long_run.finished_at is not None
    # Meanwhile the standby, leading, fired the task every second and skipped it:
    # no other run of it started before the first one ended, none was abandoned.
    before_its_end = runs.exclude(pk=long_run.pk).filter(
        started_at__lt=long_run.finished_at
    )
    # A fire the standby claimed meanwhile is `running` from its claim until its
    # `skipped` is recorded: judge each once it has ended.
    wait_for(
        lambda: (
            not before_its_end.exclude(
                status__in=TaskExecution.FINISHED_STATUSES
            ).exists()
        ),
        10,
        *both,
    )
    overlapping = before_its_end.exclude(status=Status.SKIPPED)
    assert not overlapping.exists(), (list(overlapping.values()), reports(*both))
    assert not runs.filter(failure_kind="abandoned").exists(), reports(*both)
    assert (
        scheduled_runs(sleeper)
        .filter(instance_id=second_id, status=Status.SKIPPED)
        .exists()
    ), reports(*both)
    assert SchedulerInstance.objects.get(instance_id=first_id).stopped_at is not None


def test_a_skip_task_never_runs_twice_at_once_when_redis_loses_its_keys(
    start_scheduler: Callable[..., SchedulerProcess],
    scripts_dir: Path,
    redis_url: str,
    settings: Any,
) -> None:
    """What a FLUSHALL (or a Redis restart without persistence) does mid-run."""
    import redis

    scheduler = start_scheduler(
        redis_url=redis_url,
        redis_prefix=settings.SCHEDULER_REDIS_PREFIX,
        extra_env={"SCHEDULER_SCRIPTS_PATH": str(scripts_dir)},
    )
    wait_for(scheduler.is_leader, STARTUP_TIMEOUT, scheduler)
    sleeper = make_manual(
        "e2e flushed sleeper", handler="scripts:sleeper", handler_kwargs={"seconds": 8}
    )
    first = task_request_run(task=sleeper)
    wait_for(
        row_of(first, status=Status.RUNNING),
        10,
        scheduler,
    )
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(settings.SCHEDULER_REDIS_PREFIX + "*"))
    assert keys, "the run holds no key in Redis"
    client.delete(*keys)  # every key of this scheduler: its task lock too

    second = task_request_run(task=sleeper)
    second = wait_for(
        row_of(second, **ENDED),
        10,
        scheduler,
    )

    assert second.status == Status.SKIPPED, reports(scheduler)
    assert "still going" in second.result["message"]
    assert TaskExecution.objects.get(pk=first.pk).status == Status.RUNNING
    wait_for(lambda: succeeded(first), 15, scheduler)


def test_a_redis_outage_is_said_once_shows_degraded_and_its_empty_restart_runs_nothing_twice(
    start_scheduler: Callable[..., SchedulerProcess],
    scripts_dir: Path,
    processes: Processes,
    tmp_path: Path,
) -> None:
    port = free_port()
    server = processes.start(RedisServer(port, tmp_path / "redis-1.log"))
    server.wait_ready()
    scheduler = start_scheduler(
        redis_url=server.url, extra_env={"SCHEDULER_SCRIPTS_PATH": str(scripts_dir)}
    )
    wait_for(scheduler.is_leader, STARTUP_TIMEOUT, scheduler, server)
    sleeper = make_manual(
        "e2e outage sleeper", handler="scripts:sleeper", handler_kwargs={"seconds": 14}
    )
    first = task_request_run(task=sleeper)
    wait_for(
        row_of(first, status=Status.RUNNING),
        10,
        scheduler,
    )

    server.kill_all()  # Redis goes away
    degraded = wait_for(
        lambda: selectors.scheduler_status().degraded_reasons, 10, scheduler
    )
    observed_from = len(scheduler.output(10**7))
    time.sleep(4)  # what the scheduler logs over 4 s of the outage
    during = scheduler.output(10**7)[observed_from:]
    restarted = processes.start(RedisServer(port, tmp_path / "redis-2.log"))
    restarted.wait_ready()  # empty: the run's task lock and the lease are gone
    wait_for(
        lambda: not selectors.scheduler_status().degraded and scheduler.is_leader(),
        20,
        scheduler,
    )
    second = task_request_run(task=sleeper)
    second = wait_for(
        row_of(second, **ENDED),
        10,
        scheduler,
    )

    assert any("127.0.0.1:%d" % port in line for line in degraded), degraded
    # Not a traceback a second: the outage was said when it began, then nothing.
    assert during.count("Traceback") == 0, during
    assert during.count("is unreachable") == 0, during
    assert "is back after" in scheduler.output(10**7)
    assert second.status == Status.SKIPPED, reports(scheduler)
    assert "still going" in second.result["message"]
    wait_for(lambda: succeeded(first), 20, scheduler)


def test_a_run_that_ends_while_the_database_is_away_is_recorded_once_it_is_back(
    start_scheduler: Callable[..., SchedulerProcess], scripts_dir: Path
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the outage is a cut of PostgreSQL's connections (a TCP proxy)")
    db = connection.settings_dict
    proxy = TcpProxy((db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)))
    url = "postgres://%s@127.0.0.1:%d/%s" % (db["USER"], proxy.port, db["NAME"])
    scheduler = start_scheduler(
        extra_env={"SCHEDULER_SCRIPTS_PATH": str(scripts_dir), "DATABASE_URL": url}
    )
    wait_for(scheduler.is_leader, STARTUP_TIMEOUT, scheduler)
    sleeper = make_manual(
        "e2e database outage sleeper",
        handler="scripts:sleeper",
        handler_kwargs={"seconds": 3},
    )
    run = task_request_run(task=sleeper)
    wait_for(
        row_of(run, status=Status.RUNNING),
        10,
        scheduler,
    )

    proxy.cut()  # the database goes away for the scheduler, mid-run
    scheduler.wait_for_output("is unreachable|ends of 1 run", 15)
    time.sleep(5)  # the handler ended meanwhile: its end waits for the database
    still = TaskExecution.objects.get(pk=run.pk).status
    proxy.restore()
    recorded = wait_for(
        row_of(run, **ENDED),
        45,
        scheduler,
    )

    assert still == Status.RUNNING
    assert (recorded.status, recorded.failure_kind) == (Status.SUCCESS, ""), (
        recorded.error_message,
        reports(scheduler),
    )
    assert recorded.result == {"slept": 3}
    assert scheduler.alive(), reports(scheduler)


# 4. Two instances -------------------------------------------------------------------


def test_a_paused_leader_that_resumes_does_not_start_a_run_taken_from_it(
    start_scheduler: Callable[..., SchedulerProcess],
    scripts_dir: Path,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    settings: Any,
) -> None:
    """Fencing: a run claimed by a leader that was then paused (SIGSTOP, a frozen
    VM) is taken for abandoned and run by the standby; when the old leader
    resumes, it must not start the handler it claimed beside the new run."""
    if connection.vendor != "postgresql":
        pytest.skip("two schedulers at once are tested on PostgreSQL (with Redis)")
    redis = {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": settings.SCHEDULER_REDIS_PREFIX,
    }
    stale_seconds = LEADER_LOCK_TTL + 1  # as in the takeover test above
    env = {
        "SCHEDULER_SCRIPTS_PATH": str(scripts_dir),
        "SCHEDULER_INSTANCE_STALE_SECONDS": str(stale_seconds),
        "SCHEDULER_WORKER_PROCESSES": "1",  # so that a claimed run waits its turn
    }
    first = start_scheduler(extra_env=env, **redis)
    wait_for(first.is_leader, STARTUP_TIMEOUT, first)
    second = start_scheduler(extra_env=env, **redis)
    both = (first, second)
    wait_for(second.instance_row, STARTUP_TIMEOUT, *both)
    blocker = make_manual(
        "e2e fence blocker",
        handler="scripts:sleeper",
        handler_kwargs={"seconds": 8},
        overlap_policy=ScheduledTask.OverlapPolicy.ALLOW,
    )
    starts = tmp_path / "starts.txt"
    guarded = make_manual(
        "e2e fence guarded",
        handler="scripts:probe",
        handler_kwargs={"path": json.dumps(str(starts)), "seconds": 2},
    )
    busy = task_request_run(task=blocker)
    wait_for(
        row_of(busy, status=Status.RUNNING, instance_id=first.instance_id),
        10,
        *both,
    )
    claimed = task_request_run(task=guarded)  # claimed by the leader, waiting
    wait_for(
        row_of(claimed, status=Status.RUNNING, instance_id=first.instance_id),
        10,
        *both,
    )

    first.send_signal(signal.SIGSTOP)
    try:
        wait_for(second.is_leader, LEADER_LOCK_TTL + 6, *both)
        wait_for(
            lambda: TaskExecution.objects.filter(
                pk=claimed.pk, failure_kind="abandoned"
            ).exists(),
            stale_seconds + 8,
            *both,
        )
        rerun = task_request_run(task=guarded)  # the standby runs the task now
        wait_for(lambda: succeeded(rerun), 15, *both)
    finally:
        first.send_signal(signal.SIGCONT)
    first.wait_for_output("was ended elsewhere while it waited", 30)

    assert len(starts.read_text().splitlines()) == 1, reports(*both)
    row = TaskExecution.objects.get(pk=claimed.pk)
    assert (row.status, row.failure_kind) == (Status.FAILED, "abandoned")


def test_two_instances_elect_one_leader_and_fire_every_second_of_every_task_once(
    start_scheduler: Callable[..., SchedulerProcess],
    request: pytest.FixtureRequest,
    settings: Any,
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("two schedulers at once are tested on PostgreSQL (with Redis)")
    redis = {
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_prefix": settings.SCHEDULER_REDIS_PREFIX,
    }
    first = start_scheduler(**redis)
    second = start_scheduler(**redis)
    both = (first, second)

    def leaders() -> list[str]:
        return list(
            SchedulerInstance.objects.filter(
                pid__in=[first.pid, second.pid], is_leader=True, stopped_at=None
            ).values_list("instance_id", flat=True)
        )

    wait_for(
        lambda: first.instance_row() and second.instance_row() and leaders(),
        STARTUP_TIMEOUT,
        *both,
    )
    tasks = [make_interval("e2e every second %02d" % index) for index in range(20)]

    seen_leaders: list[list[str]] = []

    def every_task_fired_eight_times() -> bool:
        seen_leaders.append(leaders())
        counts = TaskExecution.objects.filter(
            task__in=tasks, trigger_type=Trigger.SCHEDULED
        ).values_list("task_id", flat=True)
        per_task = {task.pk: 0 for task in tasks}
        for task_id in counts:
            per_task[task_id] += 1
        return min(per_task.values()) >= 8

    wait_for(every_task_fired_eight_times, 20, *both)
    checked_at = timezone.now()

    assert all(len(ids) == 1 for ids in seen_leaders), (seen_leaders, reports(*both))
    assert len({ids[0] for ids in seen_leaders}) == 1, (seen_leaders, reports(*both))
    leader = seen_leaders[-1][0]
    for task in tasks:
        fire_times = sorted(
            scheduled_runs(task)
            .filter(scheduled_for__lte=checked_at)
            .values_list("scheduled_for", flat=True)
        )
        assert len(set(fire_times)) == len(fire_times), (task.name, fire_times)
        # Every second fired: no gap between consecutive fires...
        gaps = [
            later - earlier
            for earlier, later in zip(fire_times, fire_times[1:], strict=False)
        ]
        assert set(gaps) == {dt.timedelta(seconds=1)}, (task.name, fire_times)
        # ...and none missing at either end (the newest may still be on its way).
        elapsed = (checked_at - task.created_at).total_seconds()
        assert len(fire_times) >= int(elapsed) - 2, (task.name, elapsed, fire_times)
    ran_on = set(
        TaskExecution.objects.filter(task__in=tasks)
        .exclude(instance_id="")
        .values_list("instance_id", flat=True)
    )
    assert ran_on == {leader}, (ran_on, leader, reports(*both))


# 5. kill -9 of the leader -----------------------------------------------------------


@pytest.mark.parametrize("lease", ["redis", "database"])
def test_standby_takes_over_after_leader_is_killed_and_marks_its_runs_abandoned(
    lease: str,
    start_scheduler: Callable[..., SchedulerProcess],
    scripts_dir: Path,
    request: pytest.FixtureRequest,
    settings: Any,
) -> None:
    redis_options: dict[str, str] = {}
    if lease == "redis":
        if connection.vendor != "postgresql":
            pytest.skip("the Redis lease is tested with PostgreSQL")
        redis_options = {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": settings.SCHEDULER_REDIS_PREFIX,
        }
    else:
        settings.REDIS_URL = ""
    # As with the default settings (30 s each), an instance counts as gone no sooner
    # than its lease expires: the killed leader still looks alive when the standby
    # takes over, so the new leader has to look for its runs again once it is stale.
    stale_seconds = LEADER_LOCK_TTL + 1
    env = {
        "SCHEDULER_SCRIPTS_PATH": str(scripts_dir),
        "SCHEDULER_INSTANCE_STALE_SECONDS": str(stale_seconds),
    }
    sleeper = make_manual("e2e sleeper", handler="scripts:sleeper")
    tick = make_interval("e2e tick", handler="scripts:tick")

    first = start_scheduler(extra_env=env, **redis_options)
    wait_for(first.is_leader, STARTUP_TIMEOUT, first)
    long_run = task_request_run(task=sleeper)
    wait_for(
        row_of(long_run, status=Status.RUNNING, instance_id=first.instance_id),
        10,
        first,
    )
    second = start_scheduler(extra_env=env, **redis_options)
    both = (first, second)
    wait_for(second.instance_row, STARTUP_TIMEOUT, *both)
    assert not second.is_leader(), reports(*both)
    first_id, second_id = first.instance_id, second.instance_id

    first.send_signal(signal.SIGKILL)
    first.popen.wait(timeout=10)
    killed_at = timezone.now()

    wait_for(second.is_leader, LEADER_LOCK_TTL + 6, *both)
    standby_fires = scheduled_runs(tick).filter(
        instance_id=second_id, scheduled_for__gt=killed_at
    )
    # It fires at once. A fire the killed leader had claimed ahead of its time
    # still holds the tick's task lock, so the first may be skipped...
    wait_for(standby_fires.exists, 5, *both)
    ended = TaskExecution.objects.filter(pk=long_run.pk, status=Status.FAILED)
    wait_for(ended.exists, stale_seconds + 6, *both)
    # ... until the recovery that ends the killed leader's runs frees their locks.
    wait_for(standby_fires.filter(status=Status.SUCCESS).exists, 5, *both)
    long_run.refresh_from_db()
    assert long_run.failure_kind == "abandoned", reports(*both)
    assert first_id in long_run.error_message
    assert long_run.instance_id == first_id
    row = SchedulerInstance.objects.get(instance_id=first_id)
    assert row.stopped_at is None  # killed: it never said goodbye
