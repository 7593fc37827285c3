"""The inline executor: runs the engine's executions inside the scheduler process.

Every execution goes through the one execution path, in its three stages
(`runs_claim`, `run_claimed`, `runs_finish`). What this executor adds is the
batching: one bookkeeper thread claims the executions handed over and records the
runs that ended, each in one transaction for everything that is waiting, while a
bounded pool of threads calls the handlers. Under load a batch holds many runs;
when idle it holds one, so nothing waits for a batch to fill.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable

from django.db import DatabaseError, close_old_connections, connections

from ..models import TaskExecution
from ..services import Run, run_claimed, runs_claim, runs_finish, runs_release

logger = logging.getLogger(__name__)

#: A thread whose database connection sat idle this long checks it before use
#: (servers drop idle connections; CONN_MAX_AGE/health checks apply then).
IDLE_RECHECK_SECONDS = 30.0
#: Runs claimed beyond the free threads, waiting for one (their locks are kept
#: alive meanwhile; a shutdown makes them pending again).
CLAIM_AHEAD = 50
#: Ended runs are recorded together once the oldest has waited this long (or
#: RECORD_BATCH of them wait): fewer record transactions when runs trickle in.
RECORD_EVERY_SECONDS = 0.02
RECORD_BATCH = 100


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
    """Runs executions in `max_workers` threads of this process.

    Async handlers run on the process's shared event loop, sync ones in the pool
    thread (or in a thread of their own when their task has a timeout).
    """

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max(1, int(max_workers))
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._intake: deque[TaskExecution] = deque()
        self._ended: deque[Run] = deque()
        self._inflight: set[int] = set()
        self._running: set[int] = set()  # claimed, not yet recorded
        self._ended_since = 0.0  # when the oldest run in _ended ended
        self._work: queue.SimpleQueue[Run | None] = queue.SimpleQueue()
        self._stopping = False
        self._bookkeeper = threading.Thread(
            target=self._bookkeep, name="scheduler-bookkeeper", daemon=True
        )
        self._workers = [
            threading.Thread(target=self._work_loop, name="scheduler-run-%d" % n, daemon=True)
            for n in range(self.max_workers)
        ]
        self._bookkeeper.start()
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
        and runs claimed but still waiting for a thread are made pending again, so
        the next scheduler to run starts them: nothing is lost.
        """
        with self._lock:
            self._stopping = True
            for execution in self._intake:
                self._inflight.discard(execution.pk)
            self._intake.clear()
        unstarted: list[Run] = []
        while True:
            try:
                run = self._work.get_nowait()
            except queue.Empty:
                break
            if run is not None:
                unstarted.append(run)
        try:
            runs_release(unstarted)
        except Exception:  # they end as interrupted instead, like the running ones
            logger.exception("Could not give back %d claimed run(s)", len(unstarted))
        else:
            with self._lock:
                for run in unstarted:
                    self._running.discard(run.execution.pk)
                    self._inflight.discard(run.execution.pk)
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
            return set(self._running)

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
                outstanding = len(self._running) - len(self._ended)
                free = self.max_workers + CLAIM_AHEAD - outstanding
                take = [self._intake.popleft() for _ in range(min(free, len(self._intake)))]
                # Recording can wait a little (RECORD_EVERY_SECONDS) to group runs:
                # nobody waits for it, while a claim is what lateness is made of.
                ended: list[Run] = []
                if self._ended and (
                    self._stopping
                    or len(self._ended) >= RECORD_BATCH
                    or time.monotonic() - self._ended_since >= RECORD_EVERY_SECONDS
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
            if ended:
                self._record(ended)

    def _record_due_in(self) -> float | None:
        """How long the oldest ended run may still wait to be recorded (None: none waits)."""
        with self._lock:
            if not self._ended:
                return None
            return max(0.0, self._ended_since + RECORD_EVERY_SECONDS - time.monotonic())

    def _run_ended(self, run: Run) -> None:
        """Queue an ended run for the next record (call with the lock held)."""
        if not self._ended:
            self._ended_since = time.monotonic()
        self._ended.append(run)

    def _record(self, ended: list[Run]) -> None:
        try:
            runs_finish(ended)
        except Exception:  # runs_finish retried already; the rows stay `running`
            logger.exception("Could not record the end of %d run(s)", len(ended))
            self._reset_connection()
        with self._lock:
            for run in ended:
                self._running.discard(run.execution.pk)
                self._inflight.discard(run.execution.pk)
        self._wake.set()  # their workers are free: claim what waits

    def _claim(self, take: list[TaskExecution]) -> None:
        try:
            runs = runs_claim(take)
        except Exception:  # e.g. SQLite busy beyond its timeout: they stay pending
            logger.exception("Could not claim %d execution(s); the engine offers them again", len(take))
            self._reset_connection()
            runs = []
        claimed = {run.execution.pk for run in runs}
        with self._lock:
            for execution in take:
                if execution.pk not in claimed:
                    self._inflight.discard(execution.pk)
            self._running.update(claimed)
            for run in runs:
                if run.result is not None:  # skipped at claim time: straight to the record
                    self._run_ended(run)
        for run in runs:
            if run.result is None:
                self._work.put(run)
        if any(run.result is not None for run in runs):
            self._wake.set()  # the skipped ones wait to be recorded

    @staticmethod
    def _reset_connection() -> None:
        try:
            connections.close_all()
        except DatabaseError:
            pass

    def _work_loop(self) -> None:
        keeper = ConnectionKeeper()
        while True:
            run = self._work.get()
            if run is None:
                connections.close_all()
                return
            keeper.before_use()
            try:
                run_claimed(run)
            except BaseException:  # the job boundary: run_claimed records what it can
                logger.exception("Execution %s could not be run", run.execution.pk)
            with self._lock:
                self._run_ended(run)
            self._wake.set()
