"""The in-memory job store: one job per active scheduled task, ordered by next fire time."""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from dataclasses import dataclass, field

from ..models import ScheduledTask
from ..schedules import Trigger


@dataclass
class Job:
    """What the engine needs to fire one task; built from its ScheduledTask row."""

    task_id: int
    #: The whole row, attached to the executions it fires.
    task: ScheduledTask
    name: str
    trigger: Trigger
    next_run_at: dt.datetime | None
    misfire_grace_seconds: int
    coalesce: bool
    #: The row's updated_at when loaded: a different value means the task was edited.
    updated_at: dt.datetime
    generation: int = field(default=0, compare=False)

    def run_times(self, now: dt.datetime) -> list[dt.datetime]:
        """Every fire time from next_run_at up to `now` (APScheduler's Job._get_run_times)."""
        times: list[dt.datetime] = []
        when = self.next_run_at
        while when is not None and when <= now:
            times.append(when)
            following = self.trigger.get_next_fire_time(when, now)
            if following is not None and following <= when:
                break  # a trigger that does not advance would loop forever
            when = following
        return times


class JobStore:
    """A heap of (next fire time, job) with lazy deletion: O(log n) add, pop and reschedule."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._heap: list[tuple[float, int, int, int]] = []
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._jobs)

    def __contains__(self, task_id: int) -> bool:
        return task_id in self._jobs

    def get(self, task_id: int) -> Job | None:
        return self._jobs.get(task_id)

    def ids(self) -> set[int]:
        return set(self._jobs)

    def add(self, job: Job) -> None:
        """Add or replace the job of a task."""
        old = self._jobs.get(job.task_id)
        job.generation = (old.generation + 1) if old else 0
        self._jobs[job.task_id] = job
        self._push(job)

    def remove(self, task_id: int) -> None:
        self._jobs.pop(task_id, None)

    def clear(self) -> None:
        self._jobs.clear()
        self._heap.clear()

    def reschedule(self, job: Job, next_run_at: dt.datetime | None) -> None:
        """Move a popped job to its next fire time; a job with none leaves the store."""
        job.next_run_at = next_run_at
        if next_run_at is None:
            self._jobs.pop(job.task_id, None)
            return
        job.generation += 1
        self._push(job)

    def pop_due(self, now: dt.datetime) -> list[Job]:
        """Take every job due at `now` off the heap (the caller reschedules them)."""
        limit = now.timestamp()
        due: list[Job] = []
        while self._heap and self._heap[0][0] <= limit:
            _when, _seq, task_id, generation = heapq.heappop(self._heap)
            job = self._jobs.get(task_id)
            if job is not None and job.generation == generation:
                due.append(job)
        return due

    def next_run_at(self) -> dt.datetime | None:
        """The earliest next fire time of any job."""
        while self._heap:
            _when, _seq, task_id, generation = self._heap[0]
            job = self._jobs.get(task_id)
            if job is not None and job.generation == generation:
                return job.next_run_at
            heapq.heappop(self._heap)  # stale entry of a replaced or removed job
        return None

    def _push(self, job: Job) -> None:
        if job.next_run_at is not None:
            heapq.heappush(
                self._heap,
                (
                    job.next_run_at.timestamp(),
                    next(self._sequence),
                    job.task_id,
                    job.generation,
                ),
            )
