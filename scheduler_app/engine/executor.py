"""The inline executor: runs the engine's executions inside the scheduler process.

Every execution goes through the one execution path, in its three stages
(`runs_claim`, `run_claimed`, `runs_finish`). What this executor adds is the
batching: one bookkeeper thread claims the executions handed over and records the
runs that ended, each in one transaction for everything that is waiting, while a
bounded pool of threads calls the handlers. Under load a batch holds many runs;
when idle it holds one, so nothing waits for a batch to fill.

The engine hands staged fires over up to `lead_seconds` before their time. They
are claimed at once, in one transaction for the lot, and a timer thread gives
each to the pool at its time: at the fire time only the start is left to do.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable

from django.db import DatabaseError, close_old_connections, connections

from ..choices import Isolation
from ..conf import app_settings
from ..models import TaskExecution
from ..runtime import capture, threads
from ..runtime.processes import HandlerProcess
from ..services import (
    Run,
    run_claimed,
    runs_claim,
    runs_finish_when_back,
    runs_release,
)
from . import metrics

logger = logging.getLogger(__name__)

#: A thread whose database connection sat idle this long checks it before use
#: (servers drop idle connections; CONN_MAX_AGE/health checks apply then).
IDLE_RECHECK_SECONDS = 30.0
#: Runs claimed beyond the free threads, waiting for one (their locks are kept
#: alive meanwhile; a shutdown makes them pending again).
CLAIM_AHEAD = 50
#: Ended runs are recorded together once the oldest has waited this long (or
#: RECORD_BATCH of them wait): fewer record transactions when runs trickle in.
RECORD_EVERY_SECONDS = 0.05
RECORD_BATCH = 100
#: While runs wait for a thread, recording, which competes for the GIL, waits
#: until they have started, but no longer than this.
RECORD_AT_MOST_EVERY_SECONDS = 0.25
#: How long before their time the engine hands staged fires over (it does so in
#: groups, once the first is within half of it): the claim is done meanwhile.
HANDOVER_AHEAD_SECONDS = 0.2


def _due(execution: TaskExecution) -> float:
    """When an execution may start (a timestamp; 0 for "now")."""
    return execution.run_after.timestamp() if execution.run_after else 0.0


class ConnectionKeeper:
    """Keeps a long-lived thread's connection open between uses, checked after idling.

    Closing it after every use (what close_old_connections does with CONN_MAX_AGE=0,
    SQLite's default) would cost a reconnect per run.
    """

    def __init__(self) -> None:
        self._last_use = time.monotonic()

    def before_use(self) -> None:
        now = time.monotonic()
        if now - self._last_use >= IDLE_RECHECK_SECONDS:
            close_old_connections()
        self._last_use = now


class InlineExecutor:
    """Runs executions with `max_workers` threads of this process.

    `isolation="process"` (SCHEDULER_ISOLATION): each thread drives a handler
    process of its own (runtime/processes.py), which runs the handler. "thread":
    async handlers run on the process's shared event loop, sync ones in the pool
    thread (or in a thread of their own when their task has a timeout).
    """

    lead_seconds = HANDOVER_AHEAD_SECONDS

    def __init__(self, max_workers: int, *, isolation: str = Isolation.THREAD) -> None:
        self.max_workers = max(1, int(max_workers))
        self.isolation = Isolation(isolation)
        capture.install()  # what handlers print and log goes to their run's log
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._intake: deque[TaskExecution] = deque()
        self._ended: deque[Run] = deque()
        self._inflight: set[int] = set()
        self._running: set[int] = set()  # claimed, not yet recorded
        self._unrecorded: list[Run] = []  # ended, kept while the database is away
        self._ended_since = 0.0  # when the oldest run in _ended ended
        self._record_after_starts = (
            False  # a record waits for the runs waiting to start
        )
        self._claim_waits = (
            False  # executions wait to be claimed until a thread is free
        )
        self._work: queue.SimpleQueue[Run | None] = queue.SimpleQueue()
        #: Claimed runs waiting for their time, and executions whose claim waits for
        #: theirs: a heap of (timestamp, sequence, item), watched by the timer thread.
        self._timed: list[tuple[float, int, Run | TaskExecution]] = []
        self._timed_runs = 0
        self._sequence = itertools.count()
        self._timer_wake = threading.Condition(self._lock)
        self._stopping = False
        self._bookkeeper = threads.ENGINE_BOOKKEEPER.new(self._bookkeep)
        self._timer = threads.ENGINE_TIMER.new(self._time)
        processes: list[HandlerProcess | None] = [None] * self.max_workers
        if self.isolation == Isolation.PROCESS:
            processes = [self._handler_process() for _ in range(self.max_workers)]
            # Django is set up in all of them at once; the first fires find them ready.
            for process in processes:
                assert process is not None
                if not process.wait_ready():
                    logger.error(
                        "Handler process %s did not start; the first run it gets "
                        "starts another",
                        process.pid,
                    )
        self._workers = [
            threads.ENGINE_RUN.new(self._work_loop, args=(process,), suffix=str(n))
            for n, process in enumerate(processes)
        ]
        self._bookkeeper.start()
        self._timer.start()
        for worker in self._workers:
            worker.start()

    # -- the Executor protocol -------------------------------------------------------

    def submit(self, executions: Iterable[TaskExecution]) -> None:
        with self._lock:
            if self._stopping:
                return  # they stay pending in the database: the next scheduler starts them
            for execution in executions:
                if execution.pk not in self._inflight:
                    self._inflight.add(execution.pk)
                    self._intake.append(execution)
        self._wake.set()

    def inflight(self) -> set[int]:
        with self._lock:
            return set(self._inflight)

    def shutdown(self, *, grace_seconds: float) -> set[int]:
        """Start nothing new; wait up to the grace period; return the ids still running.

        Executions handed over but not claimed yet stay pending in the database,
        and runs claimed but still waiting for their time or a thread are made
        pending again, so the next scheduler to run starts them: nothing is lost.
        """
        unstarted: list[Run] = []
        with self._lock:
            self._stopping = True
            for execution in self._intake:
                self._inflight.discard(execution.pk)
            self._intake.clear()
            for _when, _n, item in self._timed:
                if isinstance(item, Run):
                    unstarted.append(item)
                else:
                    self._inflight.discard(item.pk)
            self._timed.clear()
            self._timed_runs = 0
            self._timer_wake.notify()
        while True:
            try:
                run = self._work.get_nowait()
            except queue.Empty:
                break
            if run is not None:
                unstarted.append(run)
        self._give_back(unstarted)
        self._wake.set()
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running and not self._ended:
                    break
            time.sleep(0.02)
        for _worker in self._workers:
            self._work.put(None)
        self._wake.set()  # the bookkeeper ends once nothing is left to record
        with self._lock:
            unrecorded = list(self._unrecorded)
            still = set(self._running)
        for run in unrecorded:
            result = run.result
            logger.error(
                "Execution %s of task %s ended (%s) but its end could not be "
                "recorded: the database is still away",
                run.execution.pk,
                run.task.name,
                result.status if result is not None else "unknown",
            )
        return still

    # -- the threads ----------------------------------------------------------------

    def _bookkeep(self) -> None:
        keeper = ConnectionKeeper()
        while True:
            self._wake.wait(self._record_due_in())
            self._wake.clear()
            with self._lock:
                # Claim up to CLAIM_AHEAD runs more than there are threads: a burst
                # then takes a few claim/record cycles instead of one per pool-full
                # (each cycle costs round trips and a commit); a run's started_at is
                # still set when its handler really starts.
                outstanding = len(self._running) - len(self._ended) - self._timed_runs
                free = self.max_workers + CLAIM_AHEAD - outstanding
                take = [
                    self._intake.popleft() for _ in range(min(free, len(self._intake)))
                ]
                # Left over for want of threads: the next run to end wakes us for them.
                self._claim_waits = bool(self._intake) and not take
                # Recording can wait a little (RECORD_EVERY_SECONDS) to group runs:
                # nobody waits for it, while a claim is what lateness is made of.
                ended: list[Run] = []
                if self._ended and (
                    self._stopping or self._record_due_in_locked() == 0
                ):
                    ended = list(self._ended)
                    self._ended.clear()
            if not ended and not take:
                with self._lock:
                    done = self._stopping and not self._running and not self._ended
                if done:
                    connections.close_all()
                    return
                continue
            keeper.before_use()
            if take:
                self._claim(take)
                self._wake.set()  # claim what is left now if threads are free
            if ended:
                self._record(ended)

    def _record_due_in(self) -> float | None:
        """How long the oldest ended run may still wait to be recorded (None: none waits)."""
        with self._lock:
            return self._record_due_in_locked()

    def _record_due_in_locked(self) -> float | None:
        """_record_due_in, with the lock held.

        When it puts the record off for runs waiting for a thread, it says so
        (`_record_after_starts`), so the worker that empties the queue wakes the
        bookkeeper rather than leaving the record to RECORD_AT_MOST_EVERY_SECONDS.
        """
        if not self._ended:
            return None
        if not self._work.empty():  # runs wait for a thread: they start first
            wait = RECORD_AT_MOST_EVERY_SECONDS
            self._record_after_starts = True
        elif len(self._ended) >= RECORD_BATCH:
            return 0.0
        else:
            wait = RECORD_EVERY_SECONDS
        return max(0.0, self._ended_since + wait - time.monotonic())

    def busy(self) -> bool:
        """Whether runs are being claimed, wait for their time, or wait for a thread.

        The engine puts off work that can wait (staging) while this is so.
        """
        with self._lock:
            return bool(self._intake or self._timed_runs or not self._work.empty())

    def _run_ended(self, run: Run) -> None:
        """Queue an ended run for the next record (call with the lock held)."""
        if not self._ended:
            self._ended_since = time.monotonic()
        self._ended.append(run)

    def _record(self, ended: list[Run]) -> None:
        """Record runs that ended; while the database is away, keep trying.

        Their ends are kept (and they count as running, so a shutdown waits for
        them for its grace) until the database is back, then recorded as they
        happened: a run that succeeded during an outage is not left `running`, to
        be taken for abandoned by the next scheduler.
        """
        try:
            runs_finish_when_back(ended, keeping=self._keep_unrecorded)
        except Exception:  # a fault of these rows, not the database's absence
            logger.exception("Could not record the end of %d run(s)", len(ended))
            self._reset_connection()
        with self._lock:
            self._unrecorded = []
            for run in ended:
                self._running.discard(run.execution.pk)
                self._inflight.discard(run.execution.pk)
        self._wake.set()  # their workers are free: claim what waits

    def _keep_unrecorded(self, runs: list[Run]) -> None:
        """The runs whose ends wait for the database (named by a shutdown meanwhile)."""
        with self._lock:
            self._unrecorded = list(runs)
        self._reset_connection()

    def _claim(self, take: list[TaskExecution]) -> None:
        try:
            runs = runs_claim(take)
        except Exception:  # e.g. SQLite busy beyond its timeout: they stay pending
            logger.exception(
                "Could not claim %d execution(s); the engine offers them again",
                len(take),
            )
            self._reset_connection()
            runs = []
        now = time.time()
        # A run claimed before its time and refused its task lock is not skipped
        # yet: the previous run may still end before then. It is given back and
        # claimed again at its time, when the refusal counts.
        early = [
            run for run in runs if run.result is not None and _due(run.execution) > now
        ]
        if early:
            try:
                runs_release(early)
            except (
                Exception
            ):  # recorded as skipped instead: a little early, but recorded
                logger.exception(
                    "Could not give back %d run(s) claimed early", len(early)
                )
                self._reset_connection()
                early = []
        deferred = {run.execution.pk for run in early}
        claimed = {run.execution.pk for run in runs} - deferred
        metrics.claimed(len(claimed))  # the deferred ones count when claimed again
        too_late: list[Run] = []  # claimed while shutting down, not due yet
        with self._lock:
            for execution in take:
                if execution.pk not in claimed and execution.pk not in deferred:
                    self._inflight.discard(execution.pk)
            self._running.update(claimed)
            for run in runs:
                if run.execution.pk in deferred:
                    if not self._stopping:
                        self._at(_due(run.execution), run.execution)
                    else:
                        self._inflight.discard(run.execution.pk)
                elif (
                    run.result is not None
                ):  # skipped at claim time: straight to the record
                    self._run_ended(run)
                elif _due(run.execution) <= now:
                    self._work.put(run)
                elif not self._stopping:
                    self._at(_due(run.execution), run)
                else:
                    too_late.append(run)
        if too_late:
            self._give_back(too_late)
        if any(run.result is not None for run in runs):
            self._wake.set()  # the skipped ones wait to be recorded

    def _give_back(self, runs: list[Run]) -> None:
        """Make claimed runs that never started pending again (at shutdown)."""
        try:
            runs_release(runs)
        except Exception:  # they end as interrupted instead, like the running ones
            logger.exception("Could not give back %d claimed run(s)", len(runs))
            return
        with self._lock:
            for run in runs:
                self._running.discard(run.execution.pk)
                self._inflight.discard(run.execution.pk)

    def _at(self, when: float, item: Run | TaskExecution) -> None:
        """Start a claimed run, or claim an execution, at `when` (call with the lock held)."""
        heapq.heappush(self._timed, (when, next(self._sequence), item))
        if isinstance(item, Run):
            self._timed_runs += 1
        self._timer_wake.notify()

    def _time(self) -> None:
        """The timer thread: hands each timed item on at its time, and nothing else."""
        with self._timer_wake:
            while not (self._stopping and not self._timed):
                if not self._timed:
                    self._timer_wake.wait()
                    continue
                delay = self._timed[0][0] - time.time()
                if delay > 0:
                    self._timer_wake.wait(delay)
                    continue
                claim = False
                while self._timed and self._timed[0][0] <= time.time():
                    _when, _n, item = heapq.heappop(self._timed)
                    if isinstance(item, Run):
                        self._timed_runs -= 1
                        self._work.put(item)
                    else:
                        self._intake.append(item)
                        claim = True
                if claim:
                    self._wake.set()

    @staticmethod
    def _reset_connection() -> None:
        with contextlib.suppress(DatabaseError):
            connections.close_all()

    @staticmethod
    def _handler_process() -> HandlerProcess:
        process = HandlerProcess(
            max_runs=app_settings.SCHEDULER_WORKER_MAX_RUNS,
            max_memory_bytes=app_settings.SCHEDULER_WORKER_MAX_MEMORY_MB * 2**20,
            kill_grace_seconds=app_settings.SCHEDULER_KILL_GRACE_SECONDS,
        )
        try:
            process.start()
        except OSError:  # its first run tries again, and records why it could not
            logger.exception("Could not start a handler process")
        return process

    def _work_loop(self, process: HandlerProcess | None) -> None:
        keeper = ConnectionKeeper()
        while True:
            run = self._work.get()
            if run is None:
                if process is not None:
                    process.close()
                connections.close_all()
                return
            keeper.before_use()
            try:
                run_claimed(run, process=process, on_start=metrics.run_started)
            except BaseException:  # the job boundary: run_claimed records what it can
                logger.exception("Execution %s could not be run", run.execution.pk)
            with self._lock:
                self._run_ended(run)
                # The bookkeeper sleeps until the first ended run's record is due,
                # or, when it put the record off, until no run waits for a thread.
                wake = (
                    len(self._ended) == 1
                    or self._claim_waits
                    or (self._record_after_starts and self._work.empty())
                )
                if wake:
                    self._record_after_starts = self._claim_waits = False
            if wake:
                self._wake.set()
