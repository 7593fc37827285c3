"""The engine: keeps the job store in step with ScheduledTask and fires what is due.

`ScheduledTask` is the source of truth. The engine loads the active scheduled tasks
into an in-memory job store (APScheduler 3 triggers, a heap ordered by next fire
time). Housekeeping, every POLL_SECONDS or at once on a notification, keeps it in
step with the database and *stages* the fires of the next STAGE_AHEAD_SECONDS:
their executions are recorded ahead of time (pending, `run_after` = the fire time)
in one insert. At a fire time the loop then only hands the staged rows to the
executor, with no query in between, which is what makes fires punctual under load.
Every step is a method that tests call directly with an injected `now`.

Two clocks: fire times are wall-clock (`clock`, aware datetimes); every housekeeping
deadline (heartbeat, lease refresh, recovery, polls) is monotonic (`monotonic`,
seconds), so a step of the wall clock stops none of them. A step shows as the two
clocks drifting apart between ticks, and is logged once with what it means.
"""

from __future__ import annotations

import datetime as dt
import gc
import heapq
import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

from django.db import DatabaseError, close_old_connections
from django.utils import timezone
from redis.exceptions import RedisError

from .. import notify
from ..conf import app_settings
from ..db.polls import startable_ids
from ..exceptions import SchedulerError
from ..models import ScheduledTask, TaskExecution
from ..outages import Outage, database_address, redis_address
from ..schedules import Schedule, next_fire_times
from ..services import (
    SYNC,
    MissedFires,
    executions_create_scheduled,
    executions_interrupt,
    executions_record_missed,
    executions_recover_abandoned,
    executions_unstage,
    instance_heartbeat,
    instance_heartbeating,
    instance_id,
    instance_stopped,
    leadership_taken,
    tasks_ensure_declared,
    tasks_record_next_runs,
    tasks_version,
)
from . import metrics
from .executor import ConnectionKeeper
from .leader import Leadership
from .store import Job, JobStore
from .timers import Deadline, Every

logger = logging.getLogger(__name__)

#: Housekeeping interval: the bound on noticing a change or a run-now request
#: without Redis (with Redis a notification starts housekeeping at once).
POLL_SECONDS = 0.25
#: While Redis notifications are live, the database is asked for changed tasks and
#: pending runs this often only (notifications say when to ask sooner), as a net
#: for a notification whose publishing failed: such a change still applies in 1 s.
CHECK_SECONDS_WITH_NOTIFICATIONS = 1.0
#: Fires due within this long are recorded (staged) ahead of time. Longer than
#: POLL_SECONDS, so each fire is staged at least 0.75 s before it is due.
STAGE_AHEAD_SECONDS = 1.0
#: While the executor is busy starting runs, staging waits for the next round
#: unless a fire would then be staged less than this long before its time.
STAGE_AT_LEAST_SECONDS = 0.5
#: sys.setswitchinterval() of a running scheduler process (Python's default: 0.005).
GIL_SWITCH_INTERVAL = 0.001
#: How often the leader looks for runs abandoned by instances that died.
RECOVER_EVERY_SECONDS = 60.0
#: How often a standby tries to take the leader lease over.
STANDBY_RETRY_SECONDS = 1.0
#: Most pending executions started per tick (the rest wait for the next one).
PENDING_BATCH = 500
#: A change of the wall clock against the monotonic one larger than this between
#: two ticks is a step (NTP, an operator, a resumed machine), and is logged. Ticks
#: are at most a second apart, and slewing moves the clock far less than this.
CLOCK_STEP_SECONDS = 2.0


#: How many tasks a summary log line names; the rest are counted.
LOG_NAMES_AT_MOST = 10


def _listed(items: list[str]) -> str:
    """The first LOG_NAMES_AT_MOST items, and how many more there are."""
    shown = ", ".join(items[:LOG_NAMES_AT_MOST])
    more = len(items) - LOG_NAMES_AT_MOST
    return shown if more <= 0 else "%s and %d more" % (shown, more)


def _fire_time(execution: TaskExecution) -> dt.datetime:
    """The time a staged execution fires at."""
    # Only scheduled fires are staged, and executions_create_scheduled gives each
    # its fire time (scheduled_for is empty only on a run-now request).
    assert execution.scheduled_for is not None, "a staged execution has a fire time"
    return execution.scheduled_for


class Executor(Protocol):
    #: How long before their time staged fires may be handed over (0: at their
    #: time). The executor must not start one before its `run_after`.
    lead_seconds: float

    def submit(self, executions: list[TaskExecution]) -> None: ...

    def inflight(self) -> set[int]: ...

    def shutdown(self, *, grace_seconds: float) -> set[int]: ...

    def busy(self) -> bool:
        """Whether it is starting runs now (the engine then puts off staging)."""
        ...


class Engine:
    """One scheduler instance's state and steps."""

    def __init__(
        self,
        *,
        executor: Executor,
        leadership: Leadership | None = None,
        clock: Callable[[], dt.datetime] = timezone.now,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.executor = executor
        self.instance = instance_id()
        self.leadership = leadership or Leadership(
            owner=self.instance,
            enabled=app_settings.SCHEDULER_LEADER_LOCK_ENABLED,
            ttl_seconds=app_settings.SCHEDULER_LEADER_LOCK_TTL,
            clock=monotonic,
        )
        #: The wall clock: fire times, and the times recorded in the database.
        self.clock = clock
        #: The monotonic clock: every housekeeping deadline (the timers below).
        self.monotonic = monotonic
        #: The last (wall, monotonic) reading, and the monotonic time of the step
        #: under way (what the timers are asked with).
        self._last_reading: tuple[dt.datetime, float] | None = None
        self._mono_now = monotonic()
        self.store = JobStore()
        self.firing_enabled = bool(app_settings.SCHEDULER_ENABLED)
        self.wake = threading.Event()
        self._loaded_version: int | None = None
        #: Housekeeping rounds done as the leader since it last took the lead (0
        #: until the first has loaded and staged the tasks): the health check waits
        #: for one, or it would take every fire a restart has yet to stage for late.
        self.rounds_led = 0
        self._next_runs: dict[int, dt.datetime | None] = {}
        # When each periodic step is due (a notification makes housekeeping due).
        self.housekeeping = Every(POLL_SECONDS)
        self.heartbeat = Every(app_settings.SCHEDULER_HEARTBEAT_INTERVAL)
        self.lease_refresh = Every(app_settings.SCHEDULER_LEADER_LOCK_REFRESH_INTERVAL)
        self.recovery = Every(RECOVER_EVERY_SECONDS)
        #: What the next housekeeping asks the database (see _plan_checks); set by
        #: the notification thread too, hence the lock.
        self._checks_lock = threading.Lock()
        self._check_tasks = True
        self._check_pending = True
        self._checks_net = Every(CHECK_SECONDS_WITH_NOTIFICATIONS)
        #: When the first pending run still in its retry delay becomes startable.
        self._first_retry = Deadline()
        #: Staged fires not handed over yet: (fire timestamp, execution id) heap + rows.
        self._staged_heap: list[tuple[float, int]] = []
        self._staged: dict[int, TaskExecution] = {}
        self._connection = ConnectionKeeper()
        self._listener = notify.Listener(self._on_notification)
        #: The dependencies the loop needs: one log line when each goes, one when back.
        self.database = Outage(
            "The database",
            database_address(),
            meanwhile="Nothing fires or starts meanwhile; fires missed are caught up "
            "within their misfire grace once it is back.",
            clock=lambda: self._mono_now,  # the time of the step that failed
            log=logger,
        )
        self.redis = Outage(
            "Redis",
            redis_address(app_settings.redis_url),
            meanwhile="The leader lease can be neither renewed nor taken (a leader "
            "stops firing before it could expire) and task locks cannot be taken: "
            "nothing fires or starts meanwhile; fires missed are caught up within "
            "their misfire grace once it is back.",
            clock=lambda: self._mono_now,  # the time of the step that failed
            log=logger,
        )

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> None:
        """Announce this instance, recover abandoned runs, create declared tasks."""
        now = self.clock()
        instance_heartbeat(now=now, is_leader=False)
        executions_recover_abandoned(now=now)
        tasks_ensure_declared(origin=SYNC, now=now)
        self._listener.start()

    def run_forever(self, stop: threading.Event) -> None:
        """Tick until `stop` is set (by SIGTERM/SIGINT)."""
        # The loop thread shares the GIL with the executor's threads; a shorter
        # switch interval (default 5 ms) lets it take the GIL back sooner when a
        # fire is due, which is what lateness p99 is made of (bench/README.md).
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        # What is loaded by now (Django, the app, the job store) lives as long as
        # the process: keep it out of the collector's full passes, which would
        # otherwise stop every thread for tens of milliseconds now and then.
        gc.freeze()
        while not stop.is_set():
            self.sleep(self.tick())

    def sleep(self, timeout: float) -> None:
        """Wait `timeout` seconds or until woken; a sleep that ran its course says
        how late it ended (scheduler_loop_tick_delay_seconds)."""
        meant = self.monotonic() + timeout
        woken = self.wake.wait(timeout)
        self.wake.clear()
        if not woken:
            metrics.loop_woke(self.monotonic() - meant)

    def stop(self, *, grace_seconds: float) -> None:
        """Stop firing and hand the lead over at once; let runs finish for the grace.

        The leader lease is released first (by its token), so a standby leads at
        its next try rather than a TTL later. This instance goes on heartbeating
        until its runs end or the grace is over, so nobody takes them for
        abandoned meanwhile; the ones still going then are marked interrupted.
        """
        self.firing_enabled = False
        self._listener.stop()
        try:
            self.unstage_all()
            self.persist_next_runs()
        except DatabaseError:
            logger.exception("Could not persist next fire times at shutdown")
        was_leader = self.leadership.enabled and self.leadership.is_leader
        try:
            self.leadership.release()
        except Exception:  # it expires by its TTL instead
            logger.warning(
                "Could not release the leader lease; a standby takes over once it "
                "expires (%.0f s)",
                self.leadership.ttl_seconds,
                exc_info=True,
            )
        else:
            if was_leader:
                logger.info("Released the leader lease: a standby can lead now")
        with instance_heartbeating(mark_stopped=False):
            still_running = self.executor.shutdown(grace_seconds=grace_seconds)
            if still_running:
                count = executions_interrupt(instance=self.instance)
                logger.warning(
                    "Shutdown grace period over: %d execution(s) marked interrupted",
                    count,
                )
        instance_stopped()
        logger.info("Scheduler instance %s stopped", self.instance)

    def _on_notification(self, event: str) -> None:
        with self._checks_lock:
            if event == notify.TASKS_CHANGED:
                self._check_tasks = True
            elif event == notify.RUN_REQUESTED:
                self._check_pending = True
            else:  # (re)subscribed: anything may have been missed meanwhile
                self._check_tasks = self._check_pending = True
        self.housekeeping.soon()
        self.wake.set()

    def _plan_checks(self) -> tuple[bool, bool]:
        """Whether this housekeeping asks for changed tasks and for pending runs.

        Without live notifications: every time. With them: when one said so, when
        a known pending run (a retry) comes due, and every
        CHECK_SECONDS_WITH_NOTIFICATIONS as a net.
        """
        if not self._listener.live or self._loaded_version is None:
            # No notifications, or (again) the leader: load, start what waits.
            every = True
            self._checks_net.restart(self._mono_now)
        else:
            every = self._checks_net.due(self._mono_now)
        retry_due = self._first_retry.passed(self._mono_now)
        with self._checks_lock:  # a notification arriving meanwhile is not lost
            tasks, pending = (
                self._check_tasks or every,
                self._check_pending or every or retry_due,
            )
            self._check_tasks = self._check_pending = False
        return tasks, pending

    # -- the tick ---------------------------------------------------------------

    def _read_clocks(
        self, now: dt.datetime | None = None, monotonic: float | None = None
    ) -> dt.datetime:
        """The wall-clock `now` of a step; sets the monotonic time that goes with it.

        With no arguments both clocks are read. A test passing `now` alone moves
        both clocks by as much (no step); passing `monotonic` too, it can step the
        wall clock alone.
        """
        last = self._last_reading
        if now is None:
            now = self.clock()
            if monotonic is None:
                monotonic = self.monotonic()
        elif monotonic is None:
            if last is None:
                monotonic = self.monotonic()
            else:
                monotonic = last[1] + (now - last[0]).total_seconds()
        if last is not None:
            self._notice_clock_step(last, (now, monotonic))
        self._last_reading = (now, monotonic)
        self._mono_now = monotonic
        return now

    def _notice_clock_step(
        self,
        before: tuple[dt.datetime, float],
        after: tuple[dt.datetime, float],
    ) -> None:
        """Log a step of the wall clock (once: the next tick compares with this one)."""
        wall = (after[0] - before[0]).total_seconds()
        step = wall - (after[1] - before[1])
        if abs(step) <= CLOCK_STEP_SECONDS:
            return
        if step < 0:
            logger.warning(
                "The wall clock stepped back by %.1f s (from %s to %s). Heartbeats, "
                "the leader lease and run-now requests go on as usual (they run on "
                "the monotonic clock). Fire times stay wall-clock: the fires of the "
                "next %.1f s of wall-clock time happen when the clock reaches them "
                "again, that much later than they would have; none is repeated.",
                -step,
                before[0].isoformat(),
                after[0].isoformat(),
                -step,
            )
        else:
            logger.warning(
                "The wall clock stepped forward by %.1f s (from %s to %s). Fires in "
                "the skipped interval are handled as after an outage: those within "
                "their misfire grace run now (coalesced into one if the task "
                "coalesces), the others are recorded `missed`.",
                step,
                before[0].isoformat(),
                after[0].isoformat(),
            )

    def tick(
        self, now: dt.datetime | None = None, *, monotonic: float | None = None
    ) -> float:
        """Hand over the fires due; housekeep when due; return how long to sleep.

        `now` and `monotonic` are for tests (see _read_clocks); the loop reads both.
        """
        injected = now is not None
        now = self._read_clocks(now, monotonic)
        mono = self._mono_now
        housekept = False
        try:
            self.dispatch_due(now)
            if self.housekeeping.due(mono):
                self.housekeep(now)
                housekept = True
                self.dispatch_due(now)  # fires staged just now that are due already
        except DatabaseError as exc:
            # A lost connection or a locked database: drop the connection and try
            # again, less and less often. Fires are not lost: next_run_at is only
            # persisted after they are recorded, and missed ones are caught up
            # within grace. The retry starts with the heartbeat (a database write).
            close_old_connections()
            self.heartbeat.soon()
            return self._retry_after(self.database.failed(exc), mono)
        except RedisError as exc:
            # The leader lease (and the task locks) live in Redis: the retry
            # records why in the heartbeat, then tries the lease, which tells
            # whether Redis is back.
            self.heartbeat.soon()
            self.lease_refresh.soon()
            return self._retry_after(self.redis.failed(exc), mono)
        except Exception:
            # The loop boundary: a bug in one step must not kill the scheduler.
            logger.exception("Error in the scheduler loop; retrying in 1 s")
            self.housekeeping.restart(mono, seconds=1.0)
            return 1.0
        if housekept and (self.database.down or self.redis.down):
            # It asked the database, and Redis (the lease) if that failed before.
            self.database.succeeded()
            self.redis.succeeded()
            self.heartbeat.soon()  # the next heartbeat says all is well again
        # The time this tick took counts against the sleep (an injected time stands).
        return self._sleep_seconds(now if injected else self._read_clocks())

    def _retry_after(self, seconds: float, mono: float) -> float:
        self.housekeeping.restart(mono, seconds=seconds)
        return seconds

    def degraded(self) -> list[str]:
        """Why this instance cannot do its work now (empty while it can)."""
        wall, mono = self._last_reading or (self.clock(), self._mono_now)
        return [
            "%s at %s is unreachable since %s (%s)"
            % (
                outage.name,
                outage.address,
                (wall - dt.timedelta(seconds=mono - outage.down_since)).isoformat(
                    timespec="seconds"
                ),
                outage.reason,
            )
            for outage in (self.database, self.redis)
            if outage.down_since is not None
        ]

    def housekeep(self, now: dt.datetime) -> None:
        """Every step that talks to the database (tick: every POLL_SECONDS)."""
        now = self._read_clocks(now)  # the tick's reading, or a test's `now`
        self._connection.before_use()
        started = time.monotonic()

        def dispatch_meanwhile() -> None:
            # Housekeeping takes milliseconds; a fire due meanwhile is handed over
            # between two steps rather than after all of them.
            self.dispatch_due(now + dt.timedelta(seconds=time.monotonic() - started))

        self.heartbeat_if_due(now)
        self.refresh_lease_if_due(now)
        if self.leadership.is_leader:
            check_tasks, check_pending = self._plan_checks()
            if check_tasks:
                self.reconcile_if_changed(now)
                dispatch_meanwhile()
            if self._stage_now(now):
                self.stage(now)
                dispatch_meanwhile()
            if check_pending:
                self.start_pending(now)
                dispatch_meanwhile()
            self.persist_next_runs()
            dispatch_meanwhile()
            self.recover_if_due(now)
            self.rounds_led += 1
        elif self._loaded_version is not None:
            self._unload()

    def _stage_now(self, now: dt.datetime) -> bool:
        """Stage now, or in the next round because runs are starting (fires cluster).

        Fires due at the same instant (cron tasks on the minute, intervals on
        the second) start as a burst; staging the next ones (an insert of up to a
        second's fires) meanwhile would hold the GIL the burst needs. It waits one
        round (POLL_SECONDS) when every fire to stage would still be staged
        STAGE_AT_LEAST_SECONDS ahead then.
        """
        first = self.store.next_run_at()
        if first is None or not self.executor.busy():
            return True
        latest = now + dt.timedelta(seconds=POLL_SECONDS + STAGE_AT_LEAST_SECONDS)
        return first < latest

    def _sleep_seconds(self, now: dt.datetime) -> float:
        """Until the next housekeeping (monotonic) or handover (wall clock), if sooner.

        Housekeeping is at most POLL_SECONDS away whatever the wall clock does, so a
        backward step never makes the loop sleep for its size.
        """
        mono = self._mono_now
        sleep = (self.housekeeping.next_at or mono) - mono
        if self._staged_heap and self.firing_enabled:
            sleep = min(sleep, self._handover_at() - now.timestamp())
        return max(0.0, sleep)

    def heartbeat_if_due(self, now: dt.datetime) -> None:
        if self.heartbeat.due(self._mono_now):
            instance_heartbeat(
                now=now,
                is_leader=self.leadership.is_leader,
                degraded_reason="; ".join(self.degraded()),
            )

    def refresh_lease_if_due(self, now: dt.datetime) -> None:
        """Extend the lease (leader) or try to take it (standby, every second)."""
        if not self.lease_refresh.due(self._mono_now):
            return
        was_leader = self.leadership.is_leader
        leader = self.leadership.refresh()
        if not leader:
            self.lease_refresh.restart(self._mono_now, seconds=STANDBY_RETRY_SECONDS)
        if leader != was_leader:
            # Leadership changed: tell the instances table now, not at the next beat.
            self.heartbeat.soon()
            self.heartbeat_if_due(now)
        if leader and not was_leader:
            self._tell_leadership_taken(now)
            # The previous leader may have just died, and its runs count as abandoned
            # only once its heartbeat is SCHEDULER_INSTANCE_STALE_SECONDS old, which
            # is often after the takeover: look now, and again once that is surely
            # so (1 s for this tick's own calls), not RECOVER_EVERY_SECONDS later.
            self.recovery.soon(
                then=self._mono_now + app_settings.SCHEDULER_INSTANCE_STALE_SECONDS + 1
            )

    def _tell_leadership_taken(self, now: dt.datetime) -> None:
        """The system alert of this instance starting to lead, if it calls for one."""
        try:
            leadership_taken(instance=self.instance, now=now)
        except DatabaseError:  # told by nobody then; firing comes first
            logger.warning(
                "Could not decide the alert of this instance's taking the lead",
                exc_info=True,
            )

    def recover_if_due(self, now: dt.datetime) -> None:
        if self.recovery.due(self._mono_now):
            executions_recover_abandoned(now=now)

    # -- staying in step with the database ----------------------------------------

    def reconcile_if_changed(self, now: dt.datetime) -> bool:
        """Reload the tasks if any changed since the last load; returns whether it did."""
        version = tasks_version()
        if version == self._loaded_version:
            return False
        self.reconcile(now, initial=self._loaded_version is None)
        self._loaded_version = version
        return True

    def reconcile(self, now: dt.datetime, *, initial: bool) -> None:
        """Make the job store match the active scheduled tasks.

        On the initial load the persisted next_run_at is trusted, so fires missed
        while no scheduler ran are caught up (within their misfire grace). A task
        edited later gets its next fire time counted from now, as the edit did.
        """
        # Whole rows: each job keeps its task, which its executions carry to the
        # execution path, so no fire fetches its task again.
        tasks = ScheduledTask.objects.schedulable()
        seen: set[int] = set()
        changed: set[int] = set()
        for task in tasks.iterator(chunk_size=2000):
            seen.add(task.pk)
            job = self.store.get(task.pk)
            if job is not None and job.updated_at == task.updated_at:
                continue
            if job is not None:
                changed.add(task.pk)
            # New tasks carry the next fire time their service computed; an edited
            # one restarts from now, as the edit itself did.
            self._load(task, now, trust_next_run=initial or job is None)
        gone = self.store.ids() - seen
        for task_id in gone:
            self.store.remove(task_id)
            self._next_runs.pop(task_id, None)
        self._unstage({*gone, *changed}, now)
        logger.info("Loaded %d scheduled task(s)", len(self.store))

    def _load(
        self, task: ScheduledTask, now: dt.datetime, *, trust_next_run: bool
    ) -> None:
        try:
            anchor = task.next_run_at if trust_next_run and task.next_run_at else now
            trigger = Schedule.of(task).trigger(start_at=anchor)
        except SchedulerError as exc:
            logger.error(
                "Task %s has an invalid schedule and is not scheduled: %s",
                task.name,
                exc,
            )
            self.store.remove(task.pk)
            return
        if task.task_type == ScheduledTask.TaskType.DATE:
            # Fired already: the engine cleared next_run_at, or the run recorded it.
            ran = task.next_run_at is None or task.fired_once
            next_run = None if ran else task.run_date
        elif trust_next_run and task.next_run_at is not None:
            next_run = task.next_run_at
        else:
            times = next_fire_times(trigger, after=now, count=1)
            next_run = times[0] if times else None
        if next_run != task.next_run_at:
            self._next_runs[task.pk] = next_run
        if next_run is None:
            self.store.remove(task.pk)
            return
        self.store.add(
            Job(
                task_id=task.pk,
                task=task,
                name=task.name,
                trigger=trigger,
                next_run_at=next_run,
                misfire_grace_seconds=task.misfire_grace_seconds,
                coalesce=task.coalesce,
                updated_at=task.updated_at,
            )
        )

    def _unload(self) -> None:
        """Leadership lost: forget the jobs. Staged rows stay: the new leader starts them."""
        self.store.clear()
        self._next_runs.clear()
        self._staged_heap.clear()
        self._staged.clear()
        self._loaded_version = None
        self.rounds_led = 0

    # -- firing -----------------------------------------------------------------

    def fire_due(self, now: dt.datetime) -> list[TaskExecution]:
        """Stage what is due up to `now` + STAGE_AHEAD_SECONDS, hand over what is due now."""
        self.stage(now)
        return self.dispatch_due(now)

    def stage(self, now: dt.datetime) -> list[TaskExecution]:
        """Record the fires due within STAGE_AHEAD_SECONDS as pending executions (one insert).

        Missed fires (before `now`) get the misfire grace and coalescing; fires to
        come are recorded with `run_after` = their time, so nothing starts them
        early, and a scheduler that dies before handing them over leaves them to
        the next leader, which starts them as pending runs: none is lost.
        """
        if not self.firing_enabled or not self.leadership.is_leader:
            return []
        horizon = now + dt.timedelta(seconds=STAGE_AHEAD_SECONDS)
        fires: list[tuple[ScheduledTask, dt.datetime]] = []
        dropped: list[str] = []
        missed_fires: list[MissedFires] = []
        coalesced: list[str] = []
        coalesced_ids: list[int] = []
        for job in self.store.pop_due(horizon):
            run_times = job.run_times(horizon)
            if not run_times:  # rounding of the heap key: not due yet after all
                self.store.reschedule(job, job.next_run_at)
                continue
            past = [when for when in run_times if when <= now]
            due = [
                when
                for when in past
                if (now - when).total_seconds() <= job.misfire_grace_seconds
            ]
            missed = past[: len(past) - len(due)]  # the oldest: beyond the grace
            if missed:
                dropped.append(
                    "%s (%d beyond %d s)"
                    % (job.name, len(missed), job.misfire_grace_seconds)
                )
                missed_fires.append(
                    MissedFires(job.task, missed[0], missed[-1], len(missed))
                )
            if job.coalesce and len(due) > 1:
                coalesced.append("%s (%d into 1)" % (job.name, len(due)))
                coalesced_ids.append(job.task_id)
                due = due[-1:]
            due += run_times[len(past) :]
            fires.extend((job.task, when) for when in due)
            following = job.trigger.get_next_fire_time(run_times[-1], horizon)
            self.store.reschedule(job, following)
            self._next_runs[job.task_id] = following
        # One line each for the round, however many tasks (after an outage, all).
        if dropped:
            logger.warning(
                "%d task(s) missed fires by more than their misfire grace, dropped: %s",
                len(dropped),
                _listed(sorted(dropped)),
            )
        if coalesced:
            logger.warning(
                "%d task(s) had missed fires coalesced into one run: %s",
                len(coalesced),
                _listed(sorted(coalesced)),
            )
        if missed_fires or coalesced_ids:
            try:
                executions_record_missed(missed_fires, coalesced=coalesced_ids, now=now)
            except DatabaseError:  # the warning above says it: fires come first
                logger.warning(
                    "Could not record the missed fires of %d task(s)",
                    len(missed_fires),
                    exc_info=True,
                )
        if not fires:
            return []
        executions = executions_create_scheduled(fires, now=now)
        for execution in executions:
            self._staged[execution.pk] = execution
            heapq.heappush(
                self._staged_heap, (_fire_time(execution).timestamp(), execution.pk)
            )
        return executions

    def dispatch_due(self, now: dt.datetime) -> list[TaskExecution]:
        """Hand the staged fires due at `now` to the executor: no query, just the handover.

        An executor with a lead (`lead_seconds`) gets them ahead of their time, in
        groups: once the first is within half the lead, every fire within the lead.
        """
        if (
            not self.firing_enabled
            or not self._staged_heap
            or not self.leadership.is_leader
        ):
            return []
        if self._handover_at() > now.timestamp():
            return []
        limit = now.timestamp() + self.executor.lead_seconds
        due = []
        while self._staged_heap and self._staged_heap[0][0] <= limit:
            _when, pk = heapq.heappop(self._staged_heap)
            execution = self._staged.pop(pk, None)
            if execution is not None:  # None: unstaged since
                due.append(execution)
        if due:
            self.executor.submit(due)
            metrics.fires_handed_over(len(due))
        return due

    def _handover_at(self) -> float:
        """When the next group of staged fires is handed over (a timestamp; fires staged).

        Once the first is within half the executor's lead: the loop sleeps until
        then, and dispatch_due hands over nothing sooner.
        """
        return self._staged_heap[0][0] - self.executor.lead_seconds / 2

    def _unstage(self, task_ids: set[int], now: dt.datetime) -> None:
        """Withdraw the staged fires to come of tasks edited, paused or deleted."""
        if not task_ids or not self._staged:
            return
        withdrawn = [
            pk
            for pk, execution in self._staged.items()
            if execution.task_id in task_ids and _fire_time(execution) > now
        ]
        for pk in withdrawn:
            del self._staged[pk]
        executions_unstage(withdrawn)

    def unstage_all(self) -> None:
        """At shutdown: withdraw every staged fire and put next_run_at back to the first.

        The next scheduler then fires them itself, with misfire grace and coalescing
        applied as to any fire missed while no scheduler ran.
        """
        if not self._staged:
            return
        first: dict[int, dt.datetime] = {}
        for execution in self._staged.values():
            fires_at = _fire_time(execution)
            when = first.get(execution.task_id)
            if when is None or fires_at < when:
                first[execution.task_id] = fires_at
        withdrawn = executions_unstage(list(self._staged))
        self._staged.clear()
        self._staged_heap.clear()
        self._next_runs.update({task_id: first[task_id] for task_id in withdrawn})

    def start_pending(self, now: dt.datetime) -> list[TaskExecution]:
        """Start run-now requests, retries whose delay is over, and fires left pending."""
        inflight = self.executor.inflight()
        wanted = PENDING_BATCH + len(inflight) + len(self._staged)
        ids = startable_ids(now, limit=1 << (wanted - 1).bit_length())  # a few limits
        new = [pk for pk in ids if pk not in inflight and pk not in self._staged][
            :PENDING_BATCH
        ]
        if self._listener.live:
            # A retry is recorded with its delay and no notification comes when the
            # delay is over: look again then.
            # The delay ends at a wall-clock time; the deadline is monotonic.
            retry_at = TaskExecution.objects.waiting_for_delay(now=now)
            self._first_retry.at = (
                None
                if retry_at is None
                else self._mono_now + (retry_at - now).total_seconds()
            )
        if not new:
            return []
        rows = TaskExecution.objects.still_pending(new).select_related("task")
        by_id = {execution.pk: execution for execution in rows}
        executions = [by_id[pk] for pk in new if pk in by_id]
        self.executor.submit(executions)
        return executions

    def persist_next_runs(self) -> None:
        """Write the next fire times that changed since the last call (one statement)."""
        if self._next_runs:
            next_runs, self._next_runs = self._next_runs, {}
            try:
                tasks_record_next_runs(next_runs)
            except DatabaseError:
                next_runs.update(self._next_runs)
                self._next_runs = next_runs
                raise
