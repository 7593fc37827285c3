"""This process's identity and heartbeat, and which instances are alive."""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from django.db import DatabaseError, close_old_connections
from django.db.models import QuerySet
from django.utils import timezone

from ..conf import app_settings
from ..db.clock import measure_offset
from ..models import SchedulerInstance
from ..outages import Outage, database_address
from ..runtime import threads

logger = logging.getLogger(__name__)

VERSION = "0.1.0"


@lru_cache(maxsize=1)
def _identity() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()


_instance_ids: dict[int, str] = {}
# What this process is; a Celery worker says so at start, and the pool processes it
# forks inherit it.
_process_kind: str = SchedulerInstance.Kind.SCHEDULER
_process_name: str = ""


def instance_id() -> str:
    """A name for this process, unique across machines and restarts: host:pid:random.

    In a Celery worker the worker's node name stands for the host
    (`celery@host:pid:random`), so a run names the worker that ran it.
    """
    pid = os.getpid()
    # Recomputed after fork (Celery prefork, runserver reload) so children differ.
    if pid not in _instance_ids:
        host, _ = _identity()
        _instance_ids[pid] = "%s:%d:%s" % (
            _process_name or host,
            pid,
            uuid.uuid4().hex[:6],
        )
    return _instance_ids[pid]


def instance_set_worker(*, node_name: str) -> None:
    """Make this process, and the processes it forks, Celery worker instances.

    Their heartbeat rows say `worker`, and their ids start with `node_name`.
    """
    global _process_kind, _process_name
    _process_kind = SchedulerInstance.Kind.WORKER
    _process_name = node_name
    _instance_ids.pop(os.getpid(), None)


@contextmanager
def instance_as_cli() -> Iterator[None]:
    """Be a command-line instance (run_task) while the block runs: its heartbeat
    row says `cli`, so it keeps its run from being taken for abandoned without
    counting as a scheduler (the no-scheduler banner, /health/, the alerts)."""
    global _process_kind
    kept = _process_kind
    _process_kind = SchedulerInstance.Kind.CLI
    try:
        yield
    finally:
        _process_kind = kept


def instance_heartbeat(
    *,
    now: dt.datetime | None = None,
    is_leader: bool = False,
    degraded_reason: str = "",
) -> None:
    """Record that this instance is alive (creates its row on the first beat).

    Each beat also measures this machine's clock against the database server's
    (`clock_check`). `degraded_reason` says what keeps it from doing its work
    (empty: nothing).
    """
    clock_check()
    now = now or timezone.now()
    host, pid = _identity()
    SchedulerInstance.objects.update_or_create(
        instance_id=instance_id(),
        defaults={
            "hostname": host,
            "pid": os.getpid(),
            "version": VERSION,
            "is_leader": is_leader,
            "last_heartbeat_at": now,
            "stopped_at": None,
            "degraded_reason": degraded_reason,
        },
        create_defaults={
            "kind": _process_kind,
            "hostname": host,
            "pid": os.getpid(),
            "version": VERSION,
            "is_leader": is_leader,
            "started_at": now,
            "last_heartbeat_at": now,
            "degraded_reason": degraded_reason,
        },
    )


#: Whether the last clock check found this machine's clock off by more than
#: SCHEDULER_CLOCK_SKEW_WARN_SECONDS (warned once until it is back within).
_clock_skewed = False


def clock_check() -> float:
    """Measure this machine's clock against the database server's; warn when off.

    The database lock backend then reads the server's clock (`db.clock`), so locks
    and the leader lease hold whatever this machine's clock says. Fires still
    follow this machine's clock: one that runs 25 s ahead fires 25 s early. A
    difference over SCHEDULER_CLOCK_SKEW_WARN_SECONDS is logged once, and once
    more when it is back within. Returns the offset (server minus this machine).
    """
    global _clock_skewed
    offset = measure_offset()
    limit = app_settings.SCHEDULER_CLOCK_SKEW_WARN_SECONDS
    skewed = abs(offset) > limit
    if skewed and not _clock_skewed:
        logger.warning(
            "This machine's clock is %.1f s %s the database server's (more than "
            "SCHEDULER_CLOCK_SKEW_WARN_SECONDS=%s): locks and leases follow the "
            "server's clock, but fires follow this one and happen %.1f s %s; "
            "synchronise the clocks (NTP)",
            abs(offset),
            "behind" if offset > 0 else "ahead of",
            limit,
            abs(offset),
            "late" if offset > 0 else "early",
        )
    elif _clock_skewed and not skewed:
        logger.warning(
            "This machine's clock is within %.1f s of the database server's again",
            abs(offset),
        )
    _clock_skewed = skewed
    return offset


def instance_stopped(*, now: dt.datetime | None = None) -> None:
    """Mark this instance as cleanly stopped."""
    SchedulerInstance.objects.filter(instance_id=instance_id()).update(
        stopped_at=now or timezone.now(), is_leader=False
    )


def instances_alive(*, now: dt.datetime | None = None) -> QuerySet[SchedulerInstance]:
    """The instances whose heartbeat is fresh and that have not stopped."""
    now = now or timezone.now()
    fresh_after = now - dt.timedelta(
        seconds=app_settings.SCHEDULER_INSTANCE_STALE_SECONDS
    )
    return SchedulerInstance.objects.filter(
        last_heartbeat_at__gte=fresh_after, stopped_at__isnull=True
    )


def instances_alive_ids(
    *, now: dt.datetime | None = None, kind: str | None = None
) -> set[str]:
    """Ids of instances whose heartbeat is fresh and that have not stopped.

    Schedulers and workers alike, or only those of `kind` ("scheduler", "worker").
    """
    alive = instances_alive(now=now)
    if kind is not None:
        alive = alive.filter(kind=kind)
    return set(alive.values_list("instance_id", flat=True))


def instances_cleanup(*, days: int, now: dt.datetime | None = None) -> int:
    """Delete the rows of instances not heard of for `days` days; returns how many.

    Every start of `runscheduler`, `run_task` or a worker adds a row; without this
    they would pile up. An instance that recent runs may name stays: the cutoff is
    the execution history's.
    """
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    return SchedulerInstance.objects.filter(last_heartbeat_at__lt=cutoff).delete()[0]


@contextmanager
def instance_heartbeating(
    *, interval: float | None = None, mark_stopped: bool = True
) -> Iterator[None]:
    """Heartbeat this instance from a background thread while the block runs.

    For processes that run executions without the scheduler's loop (run_task, a
    worker, a scheduler in its shutdown grace), so no scheduler takes their runs
    for abandoned. At the end the instance is marked stopped, unless
    `mark_stopped` is false (the caller still has runs to record first).
    """
    interval = interval or app_settings.SCHEDULER_HEARTBEAT_INTERVAL
    stop = threading.Event()
    # One line when the database goes away, one when it is back.
    database = Outage(
        "The database",
        database_address(),
        meanwhile="This instance cannot heartbeat meanwhile: once its heartbeat is "
        "stale a scheduler may take its runs for abandoned.",
        log=logger,
    )

    def beat_once() -> None:
        try:
            instance_heartbeat()
        except DatabaseError as exc:  # the next beat tries again
            database.failed(exc)
        else:
            database.succeeded()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                beat_once()
            finally:
                close_old_connections()  # the thread's own connection

    beat_once()
    thread = threads.HEARTBEAT.start(beat)
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 1)
        if mark_stopped:
            instance_stopped()
