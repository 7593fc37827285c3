"""Locks, for operators: releasing one whose holder is gone.

A task lock names its holder as "<instance> exec:<execution id>" (runtime/overlap.py
lock_owner). Before a release, the holder is looked up: if its execution is still
running on an instance whose heartbeat is fresh, the run is alive, releasing its
lock does not stop it, and the caller must say it means it (`force`). Every
release is logged and audited (services/audit.py), whoever asked for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.utils.translation import gettext_lazy

from ..choices import AuditAction
from ..exceptions import LockHolderAlive
from ..locks import get_lock_backend, task_id_of_lock_key
from ..models import ScheduledTask, TaskExecution
from .audit import Origin, audit_record, reason_check
from .instances import instances_alive_ids

logger = logging.getLogger(__name__)

MSG_HOLDER_ALIVE = gettext_lazy(
    "The lock “%(key)s” is held by execution #%(execution)s, still running on "
    "%(instance)s, which is alive: releasing it does not stop that run, and another "
    "run may take the lock beside it. Cancel the run instead; release it anyway only "
    "if you know the run is stuck (force)."
)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a task lock, as far as the database knows."""

    owner: str
    execution_id: int | None
    instance_id: str
    #: Its execution is still `running`.
    running: bool
    #: And its instance's heartbeat is fresh: the run is still going.
    alive: bool


def lock_holder(owner: str) -> LockHolder:
    """The holder a lock's owner names, looked up in the executions and instances."""
    instance, _sep, execution = owner.rpartition(" exec:")
    if not execution.isdigit():
        return LockHolder(owner, None, owner, running=False, alive=False)
    row = (
        TaskExecution.objects.filter(pk=int(execution))
        .values_list("status", "instance_id")
        .first()
    )
    running = row is not None and row[0] == TaskExecution.Status.RUNNING
    instance_id = row[1] if row is not None and row[1] else instance
    alive = running and instance_id in instances_alive_ids()
    return LockHolder(owner, int(execution), instance_id, running=running, alive=alive)


def lock_force_release(key: str, *, origin: Origin, force: bool = False) -> bool:
    """Release a task lock whatever its owner; True if one was held.

    A holder still running on a live instance is refused (LockHolderAlive) unless
    `force`. SCHEDULER_REQUIRE_REASON_FOR may require a reason (ReasonInvalid,
    nothing released). The release is logged, and audited as `origin`'s on the
    task (its reason, and the holder in `changes`: lock owner before and after).
    """
    reason_check(origin, action=AuditAction.RELEASE_LOCK)
    backend = get_lock_backend()
    info = backend.get(key)
    holder = lock_holder(info.owner) if info is not None else None
    if holder is not None and holder.alive and not force:
        raise LockHolderAlive(
            MSG_HOLDER_ALIVE
            % {
                "key": key,
                "execution": holder.execution_id,
                "instance": holder.instance_id,
            }
        )
    released = backend.force_release(key)
    logger.warning(
        "Lock %s force-released by %s; it was %s",
        key,
        origin.label,
        (
            "held by %s, %s"
            % (holder.owner, "still running" if holder.alive else "not running")
            if released and holder is not None
            else "not held"
        ),
    )
    if released:
        task_id = task_id_of_lock_key(key)
        task = ScheduledTask.objects.filter(pk=task_id).first() if task_id else None
        if task is not None:
            audit_record(
                origin=origin,
                action=AuditAction.RELEASE_LOCK,
                tasks=[task],
                changes={"lock": [holder.owner if holder else "", ""]},
            )
    return released
