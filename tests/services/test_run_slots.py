"""Run slots: the database's guarantee behind `skip` and max_instances.

The task locks may live in Redis, which can lose them (FLUSHALL, a restart without
persistence, a freeze past their TTL) while their runs go on. Each test here takes
the locks of a run still going away, the way such an outage does, and checks that
no second run of the task starts beside it (issue 20, item 1).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import IntegrityError, connections, transaction

from scheduler_app.db.claims import take_run_slot
from scheduler_app.locks import RedisLockBackend, get_lock_backend
from scheduler_app.models import ScheduledTask, SchedulerLock, TaskExecution
from scheduler_app.services import (
    execution_run,
    run_claimed,
    runs_claim,
    runs_finish,
    task_request_run,
)
from tests.factories import make_execution
from tests.factories import make_sample_task as make
from tests.helpers import run_in_thread, wait_until
from tests.sample_handlers import runs

pytestmark = pytest.mark.django_db(transaction=True)

Status = TaskExecution.Status
FINISHED = (Status.SUCCESS, Status.FAILED, Status.SKIPPED, Status.CANCELLED)


def lose_every_lock() -> None:
    """What a Redis FLUSHALL (or a database lock table emptied) does to the locks."""
    backend = get_lock_backend()
    if isinstance(backend, RedisLockBackend):
        keys = list(backend.client.scan_iter(backend.redis_key("*")))
        assert keys, "the run holds no lock to lose"
        backend.client.delete(*keys)
    else:
        assert SchedulerLock.objects.all().delete()[0], "no lock to lose"


def ended(execution: TaskExecution) -> TaskExecution:
    return wait_until(
        lambda: TaskExecution.objects.filter(
            pk=execution.pk, status__in=FINISHED
        ).first()
    )


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ({"overlap_policy": ScheduledTask.OverlapPolicy.SKIP}, "still going"),
        (
            {"overlap_policy": ScheduledTask.OverlapPolicy.ALLOW, "max_instances": 1},
            "1 runs of this task are already running",
        ),
    ],
    ids=["skip", "allow-max-1"],
)
def test_a_second_run_never_starts_beside_the_first_when_the_locks_are_lost(
    lock_backend: str, policy: dict[str, Any], says: str
) -> None:
    task = make("log_then_block", **policy)
    first = task_request_run(task=task)
    threads = [run_in_thread(first)]
    try:
        assert runs.started.wait(10)
        lose_every_lock()
        late = task_request_run(task=task)
        threads.append(run_in_thread(late))
        late = ended(late)  # before the first is released: it must not wait for it
    finally:
        runs.release.set()
        for thread in threads:
            thread.join(10)

    assert late.status == Status.SKIPPED
    assert says in late.result["message"]
    assert ended(first).status == Status.SUCCESS


def test_the_slot_is_free_again_once_the_run_ended(lock_backend: str) -> None:
    task = make("add", handler_kwargs={"a": "1"})

    first = execution_run(execution=task_request_run(task=task))
    second = execution_run(execution=task_request_run(task=task))

    assert (first.status, second.status) == (Status.SUCCESS, Status.SUCCESS)
    assert (first.run_slot, second.run_slot) == (0, 0)


def test_a_run_given_back_pending_takes_its_slot_afresh_when_claimed_again() -> None:
    task = make("add", handler_kwargs={"a": "1"})
    execution = make_execution(task, status=Status.PENDING)
    TaskExecution.objects.filter(pk=execution.pk).update(run_slot=0)
    make_execution(task, status=Status.SUCCESS, run_slot=0)

    ran = execution_run(execution=execution)

    assert (ran.status, ran.run_slot) == (Status.SUCCESS, 0)


def test_the_database_refuses_two_running_runs_of_a_task_in_one_slot() -> None:
    task = make("add")
    holder = make_execution(task, status=Status.RUNNING)
    other = make_execution(task, status=Status.RUNNING)

    assert take_run_slot(ids=[holder.pk], slot=0) == {holder.pk}
    assert take_run_slot(ids=[other.pk], slot=0) == set()
    with pytest.raises(IntegrityError), transaction.atomic():
        TaskExecution.objects.filter(pk=other.pk).update(run_slot=0)
    assert take_run_slot(ids=[other.pk], slot=1) == {other.pk}


def test_claims_at_once_with_every_lock_granted_start_one_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if the lock store granted every claim its lock (it lost them all): the
    run slot alone lets one through, on PostgreSQL through the unique constraint
    when two transactions find the slot free together."""
    monkeypatch.setattr(
        "scheduler_app.services.runs.take_claim_locks", lambda runs, backend: None
    )
    task = make("add", handler_kwargs={"a": "1"})
    executions = [task_request_run(task=task) for _ in range(6)]
    barrier = threading.Barrier(len(executions))
    claimed: list[Any] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def claim(execution: TaskExecution) -> None:
        try:
            barrier.wait(10)
            got = runs_claim([execution])
            with guard:
                claimed.extend(got)
        except BaseException as error:  # reported below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim, args=(e,)) for e in executions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert errors == []
    assert len(claimed) == len(executions)
    starting = [run for run in claimed if run.result is None]
    skipped = [run for run in claimed if run.result is not None]
    for run in starting:
        run_claimed(run)
    runs_finish(claimed)  # and off the lock watchdog
    assert len(starting) == 1
    assert starting[0].execution.run_slot == 0
    assert {run.result.status for run in skipped} == {Status.SKIPPED}
    held = "exec:%s" % starting[0].execution.pk
    assert all(held in run.result.result["message"] for run in skipped)


def test_max_instances_runs_take_distinct_slots_up_to_the_cap(
    lock_backend: str,
) -> None:
    task = make(
        "log_then_block",
        overlap_policy=ScheduledTask.OverlapPolicy.ALLOW,
        max_instances=2,
    )
    first, second = (task_request_run(task=task) for _ in range(2))
    threads = [run_in_thread(first), run_in_thread(second)]
    try:
        wait_until(
            lambda: (
                TaskExecution.objects.filter(
                    task=task, status=Status.RUNNING, run_slot__isnull=False
                ).count()
                == 2
            )
        )
        lose_every_lock()
        third = execution_run(execution=task_request_run(task=task))
    finally:
        runs.release.set()
        for thread in threads:
            thread.join(10)

    slots = sorted(ended(e).run_slot for e in (first, second))
    assert slots == [0, 1]
    assert third.status == Status.SKIPPED
    assert "2 runs of this task are already running" in third.result["message"]


def test_runs_claimed_while_redis_refuses_their_locks_are_pending_again(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    task = make("add", handler_kwargs={"a": "1"})
    execution = task_request_run(task=task)
    backend = get_lock_backend()

    def away(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("Redis is away (the test's outage)")

    monkeypatch.setattr(backend, "acquire_many", away)
    with pytest.raises(redis.ConnectionError):
        runs_claim([execution])
    stored = TaskExecution.objects.get(pk=execution.pk)
    monkeypatch.undo()

    assert (stored.status, stored.instance_id) == (Status.PENDING, "")
    assert execution_run(execution=stored).status == Status.SUCCESS
