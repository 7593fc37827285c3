"""Locks, for operators: releasing one whose holder is gone.

A task lock names its holder as "<instance> exec:<execution id>" (runtime/overlap.py
lock_owner). Before a release, the holder is looked up: if its execution is still
running on an instance whose heartbeat is fresh, the run is alive, releasing its
lock does not stop it, and the caller must say it means it (`force`). Every
release is logged and written to the task's admin history, whoever asked for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.contrib.admin.models import CHANGE, LogEntry
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..exceptions import LockHolderAlive
from ..locks import get_lock_backend, task_id_of_lock_key
from ..models import ScheduledTask, TaskExecution
from .instances import instances_alive_ids
from .validation import Actor

logger = logging.getLogger(__name__)

#: Where a release came from, as the task's history says it.
ORIGINS = {"admin": gettext_lazy("the admin"), "api": gettext_lazy("the API")}

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


def lock_force_release(
    key: str, *, actor: Actor | None, origin: str, force: bool = False
) -> bool:
    """Release a task lock whatever its owner; True if one was held.

    A holder still running on a live instance is refused (LockHolderAlive) unless
    `force`. The release is logged, and written to the task's admin history when
    `actor` is a user. `origin` says where it came from ("admin", "api").
    """
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
        "Lock %s force-released by %s (%s); it was %s",
        key,
        actor or "code",
        origin,
        (
            "held by %s, %s"
            % (holder.owner, "still running" if holder.alive else "not running")
            if released and holder is not None
            else "not held"
        ),
    )
    if released:
        _log_release(key, holder, actor=actor, origin=origin)
    return released


def _log_release(
    key: str, holder: LockHolder | None, *, actor: Actor | None, origin: str
) -> None:
    """The release in the task's history (the admin log), when a user asked for it."""
    task_id = task_id_of_lock_key(key)
    task = ScheduledTask.objects.filter(pk=task_id).first() if task_id else None
    user_id = getattr(actor, "pk", None)
    if task is None or user_id is None:
        return
    if holder is None:
        message = _("Force-released its lock (through %(origin)s).")
    elif holder.alive:
        message = _(
            "Force-released its lock, held by execution #%(execution)s which was "
            "still running on %(instance)s (through %(origin)s)."
        )
    else:
        message = _(
            "Force-released its lock, held by %(owner)s, no longer running (through "
            "%(origin)s)."
        )
    LogEntry.objects.log_actions(
        user_id,
        [task],
        CHANGE,
        change_message=message
        % {
            "origin": ORIGINS.get(origin, origin),
            "execution": holder.execution_id if holder else "",
            "instance": holder.instance_id if holder else "",
            "owner": holder.owner if holder else "",
        },
        single_object=True,
    )
