"""django-apscheduler's documented setup, running the bench workload (scenario 6).

It follows the `runapscheduler` management command of django-apscheduler's README:
a BlockingScheduler(timezone=settings.TIME_ZONE) in its own process, DjangoJobStore
added as the "default" job store, every job added with max_instances=1 and
replace_existing=True, the weekly delete_old_job_executions job, and
scheduler.start() until KeyboardInterrupt, then scheduler.shutdown(). It is a
script rather than a management command only to leave the project's commands alone.

Measurement is all that is added: the job (bench.handlers.timed_job) notes when it
starts, a listener notes the scheduled time of every run, and DjangoJobStore's
update_job / get_due_jobs and DjangoJobExecution.atomic_update_or_create are timed.
On SIGTERM the figures are written to --out as JSON.

    python -m bench.djapscheduler_runner --tasks 200 --phase spread --t0 <unix time> \
        --out result.json --ready ready.flag
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from django_apscheduler import util

_timings: dict[str, list[float]] = {}
_timings_lock = threading.Lock()


def _timed(owner: Any, name: str) -> None:
    original = getattr(owner, name)
    is_classmethod = isinstance(owner.__dict__.get(name), classmethod)
    func = original.__func__ if is_classmethod else original
    _timings[name] = [0, 0.0]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            spent = time.perf_counter() - started
            with _timings_lock:
                _timings[name][0] += 1
                _timings[name][1] += spent

    setattr(owner, name, classmethod(wrapper) if is_classmethod else wrapper)


@util.close_old_connections
def delete_old_job_executions(max_age: int = 604_800) -> None:
    """The README's housekeeping job (its callable must be importable for the job store)."""
    from django_apscheduler.models import DjangoJobExecution

    DjangoJobExecution.objects.delete_old_job_executions(max_age)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--phase", choices=("spread", "aligned"), default="spread")
    parser.add_argument(
        "--t0", type=float, required=True, help="first fire (unix time)"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()

    from apscheduler import events
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger
    from django.conf import settings
    from django_apscheduler.jobstores import DjangoJobStore
    from django_apscheduler.models import DjangoJobExecution

    from bench.handlers import STARTS, timed_job

    _timed(DjangoJobStore, "update_job")
    _timed(DjangoJobStore, "get_due_jobs")
    _timed(DjangoJobExecution, "atomic_update_or_create")

    executed: list[tuple[str, float]] = []
    refused: dict[str, int] = {"missed": 0, "max_instances": 0, "error": 0}

    def listener(event: Any) -> None:
        if event.code == events.EVENT_JOB_EXECUTED:
            executed.append((event.job_id, event.scheduled_run_time.timestamp()))
        elif event.code == events.EVENT_JOB_MISSED:
            refused["missed"] += 1
        elif event.code == events.EVENT_JOB_MAX_INSTANCES:
            refused["max_instances"] += 1
        elif event.code == events.EVENT_JOB_ERROR:
            refused["error"] += 1

    def started(event: Any) -> None:
        args.ready.write_text(str(time.time()))

    # --- the documented runapscheduler command -------------------------------------
    scheduler = BlockingScheduler(timezone=settings.TIME_ZONE)
    scheduler.add_jobstore(DjangoJobStore(), "default")
    for i in range(args.tasks):
        offset = i / args.tasks if args.phase == "spread" else 0.0
        scheduler.add_job(
            timed_job,
            trigger=IntervalTrigger(
                seconds=1,
                start_date=dt.datetime.fromtimestamp(args.t0 + offset, tz=dt.UTC),
            ),
            args=[i],
            id="bench-%05d" % i,
            max_instances=1,
            replace_existing=True,
        )
    scheduler.add_job(
        delete_old_job_executions,
        trigger=CronTrigger(day_of_week="mon", hour="00", minute="00"),
        id="delete_old_job_executions",
        max_instances=1,
        replace_existing=True,
    )
    # -------------------------------------------------------------------------------
    scheduler.add_listener(
        listener,
        events.EVENT_JOB_EXECUTED
        | events.EVENT_JOB_MISSED
        | events.EVENT_JOB_MAX_INSTANCES
        | events.EVENT_JOB_ERROR,
    )
    scheduler.add_listener(started, events.EVENT_SCHEDULER_STARTED)

    def write_results() -> None:
        with _timings_lock:
            timings = {
                name: {"calls": c, "seconds": s} for name, (c, s) in _timings.items()
            }
        args.out.write_text(
            json.dumps(
                {
                    "starts": list(STARTS),
                    "executed": list(executed),
                    "refused": refused,
                    "timings": timings,
                }
            )
        )

    def interrupt(signum: int, frame: Any) -> None:
        # Figures first: APScheduler swallows a KeyboardInterrupt raised while one of
        # its listeners runs (it catches BaseException there), and then the bench
        # kills the process.
        write_results()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        scheduler.start()
    except KeyboardInterrupt:
        scheduler.shutdown(wait=False)


if __name__ == "__main__":
    main()
