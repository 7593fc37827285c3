"""The three overlap policies: what a run takes before its handler may start.

- `skip`: the task lock, taken at claim time for the whole batch
  (`take_claim_locks`); a run refused it is recorded `skipped`.
- `allow`: nothing, or with max_instances one of that many slots, taken when the
  handler's turn comes (`take_slot`); no free slot is a `skipped` run too.
- `replace`: the task lock, from the run holding it, which is cancelled first
  (`replace_running`) when the handler's turn comes.

The task locks may live in Redis, which can lose them (a flush, a restart without
persistence, a freeze past their TTL). So a `skip` run also takes run slot 0 of
its task, and an `allow` run with max_instances one of slots 0 to N-1, on its
execution row (`take_claim_slots`, `take_slot`): the database's unique constraint
exec_one_running_per_slot lets no two running runs of a task hold one slot,
whatever the lock store says. A run refused its slot is `skipped` like one refused
its lock. (`replace` takes none: it cancels the run it replaces, and records it
cancelled if it does not let go.)
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import app_settings
from ..db.claims import take_run_slot
from ..exceptions import SchedulerError
from ..locks import LockBackend, get_lock_backend, lock_key, task_lock_key
from ..models import ScheduledTask, TaskExecution
from .leases import RunLock, request_cancel
from .run import LockWanted, Result, Run

Status = TaskExecution.Status
Policy = ScheduledTask.OverlapPolicy

#: How long a `replace` run waits for the run it cancels to let go of the lock.
REPLACE_GRACE_SECONDS = 5.0


def lock_owner(execution: TaskExecution) -> str:
    """The owner a run's locks name: its instance and execution."""
    return "%s exec:%s" % (execution.instance_id, execution.pk)


def slot_key(task_id: int, slot: int) -> str:
    return lock_key("task-slot", "%s:%s" % (task_id, slot))


def lock_keys(task: ScheduledTask) -> list[str]:
    """The keys of every lock a run of `task` may hold: its task lock, or its slots."""
    if task.uses_lock:
        return [task_lock_key(task.pk)]
    return [slot_key(task.pk, n) for n in range(task.max_instances)]


def take_claim_locks(runs: Sequence[Run], backend: LockBackend) -> None:
    """Take the task lock of each `skip`/`replace` run (one call for the batch).

    A `skip` run refused it gets its `skipped` result; the others note the lock
    they still want when the handler's turn comes (`take_wanted_lock`).
    """
    ttl = float(app_settings.SCHEDULER_TASK_LOCK_TTL)
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        if run.result is not None:  # refused its run slot (take_claim_slots)
            continue
        if run.task.overlap_policy == Policy.ALLOW:
            run.lock_wanted = (
                LockWanted.SLOT if run.task.max_instances else LockWanted.NONE
            )
            continue
        by_key.setdefault(task_lock_key(run.task.pk), []).append(run)
    if not by_key:
        return
    tokens = backend.acquire_many(
        {key: lock_owner(waiting[0].execution) for key, waiting in by_key.items()},
        ttl_seconds=ttl,
    )
    for key, waiting in by_key.items():
        token = tokens.get(key)
        holder = ""
        if token is not None:
            waiting[0].lock = RunLock(backend, key, token, ttl)
            holder = lock_owner(waiting[0].execution)
            # Two runs of one task in a batch: the first one has it.
            waiting = waiting[1:]
        for run in waiting:
            if run.task.overlap_policy == Policy.REPLACE:
                run.lock_wanted = LockWanted.REPLACE
                continue
            if not holder:
                info = backend.get(key)
                holder = info.owner if info else _("another run")
            _skip(run, MSG_STILL_GOING % {"holder": holder})


MSG_STILL_GOING = _("Skipped: the previous run is still going (held by %(holder)s).")


def take_claim_slots(runs: Sequence[Run]) -> None:
    """Run slot 0 for the `skip` runs of a claim, in its transaction (one statement).

    The first run of a task in the batch takes it; when a running run of the task
    holds it already, every `skip` run of that task in the batch is skipped.
    """
    first: dict[int, Run] = {}
    for run in runs:
        if run.task.overlap_policy == Policy.SKIP and run.result is None:
            first.setdefault(run.task.pk, run)
    if not first:
        return
    taken = _take_run_slot(first.values(), 0)
    for run in first.values():
        if run.execution.pk in taken:
            run.execution.run_slot = 0
    refused = {
        task_id for task_id, run in first.items() if run.execution.run_slot is None
    }
    for run in runs:
        if run.task.pk in refused and run.task.overlap_policy == Policy.SKIP:
            _skip(run, MSG_STILL_GOING % {"holder": _slot_holder(run.task, 0)})


def _take_run_slot(runs: Iterable[Run], slot: int) -> set[int]:
    """Slot `slot` for each of `runs` (of distinct tasks) that can have it: their ids."""
    ids = [run.execution.pk for run in runs]
    try:
        with transaction.atomic():
            return take_run_slot(ids=ids, slot=slot)
    except IntegrityError:  # a concurrent claim took one of them first
        taken: set[int] = set()
        for pk in ids:  # each on its own now: the other claim has committed
            with contextlib.suppress(IntegrityError), transaction.atomic():
                taken |= take_run_slot(ids=[pk], slot=slot)
        return taken


def _slot_holder(task: ScheduledTask, slot: int) -> str:
    holder = TaskExecution.objects.filter(
        task=task, status=Status.RUNNING, run_slot=slot
    ).first()
    return lock_owner(holder) if holder is not None else _("another run")


def take_wanted_lock(run: Run) -> bool:
    """Take the lock the run still wants, now that its handler's turn has come.

    False when it may not run (no free slot): its `skipped` result is set.
    """
    if run.lock_wanted is LockWanted.SLOT:
        refused = take_slot(run)
        if refused:
            _skip(run, refused)
            return False
    elif run.lock_wanted is LockWanted.REPLACE:
        replace_running(run)
    return True


def _skip(run: Run, message: str) -> None:
    run.result = Result(status=Status.SKIPPED, result={"message": message})
    run.run_log.write(message)


def take_slot(run: Run) -> str:
    """Take one of the task's max_instances slots; why not, if none is free.

    A slot's lock, and a run slot on the execution row: the lock store may have
    lost the locks of runs still going, the database has not lost their rows.
    """
    backend = get_lock_backend()
    ttl = float(app_settings.SCHEDULER_TASK_LOCK_TTL)
    task = run.task
    for slot in range(task.max_instances):
        key = slot_key(task.pk, slot)
        token = backend.acquire(key, owner=lock_owner(run.execution), ttl_seconds=ttl)
        if token:
            if _take_free_run_slot(run):
                run.lock = RunLock(backend, key, token, ttl)
                return ""
            backend.release(key, token)
            break
    return _(
        "Skipped: %(count)d runs of this task are already running (max concurrent runs)."
    ) % {"count": task.max_instances}


def _take_free_run_slot(run: Run) -> bool:
    """One of the task's run slots that no running run of it holds; False if none."""
    task = run.task
    held = set(
        TaskExecution.objects.filter(
            task=task, status=Status.RUNNING, run_slot__isnull=False
        ).values_list("run_slot", flat=True)
    )
    for slot in range(task.max_instances):
        if slot not in held and _take_run_slot([run], slot):
            run.execution.run_slot = slot
            return True
    return False


def replace_running(run: Run) -> None:
    """Cancel the task's running executions and take the task lock from them."""
    backend = get_lock_backend()
    ttl = float(app_settings.SCHEDULER_TASK_LOCK_TTL)
    task, execution = run.task, run.execution
    key, owner = task_lock_key(task.pk), lock_owner(execution)
    running = TaskExecution.objects.filter(task=task, status=Status.RUNNING).exclude(
        pk=execution.pk
    )
    ids = list(running.values_list("pk", flat=True))
    for pk in ids:
        request_cancel(pk)
    deadline = time.monotonic() + REPLACE_GRACE_SECONDS
    token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
    while token is None and time.monotonic() < deadline:
        time.sleep(0.05)
        token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
    if token is None:
        # The old run did not let go in time: end its record and take the lock over.
        replaced = TaskExecution.objects.filter(
            pk__in=ids, status=Status.RUNNING
        ).update(
            status=Status.CANCELLED,
            finished_at=timezone.now(),
            error_message=_("Replaced by execution #%(id)s (overlap policy: replace).")
            % {"id": execution.pk},
        )
        ScheduledTask.objects.filter(pk=execution.task_id).update(
            cancelled_count=F("cancelled_count") + replaced
        )
        backend.force_release(key)
        token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
        if token is None:
            raise SchedulerError(
                _("Could not take over the task lock %(key)s.") % {"key": key}
            )
    run.lock = RunLock(backend, key, token, ttl)
