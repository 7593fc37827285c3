"""celery beat + django-celery-beat: the comparison of scenario 7 (its own virtualenv).

Runs with the throw-away virtualenv that bench/celery.py creates (Django 5.2, the
project's Celery release, django-celery-beat, psycopg), never with the project's:
nothing of the project is imported. A minimal Django (only `django_celery_beat`
installed, USE_TZ, UTC) on the bench's PostgreSQL database, and a Celery app on the
bench's Redis with a key prefix and a queue of its own. Configuration comes from
the environment: BEAT_DATABASE_URL, BEAT_BROKER_URL, BEAT_PREFIX, BEAT_QUEUE.

    python -m bench.celerybeat_app migrate
    python -m bench.celerybeat_app schedule --tasks 200 --t0 <unix time>
    celery -A bench.celerybeat_app worker --pool prefork -c 2 -Q <BEAT_QUEUE> ...
    celery -A bench.celerybeat_app beat -S bench.celerybeat_app:DueStampingScheduler

`schedule` creates one IntervalSchedule (every 1 second) and N PeriodicTasks of
`bench_beat.noop` with `last_run_at` = T0 + i/N - 1 s: beat's interval schedules are
relative to the last run (due = last_run_at + every), so that puts task i's first
run at T0 + i/N, and every later one 1 s after beat sent the previous one.

Measurement is all that is added. Beat does not pass a run's due time to the task, so
`DueStampingScheduler` is django-celery-beat's DatabaseScheduler that notes, as it
sends an entry, the due time it has just acted on: `entry.last_run_at +
entry.schedule.run_every`, the very instant its `is_due()` compares with now. A
`before_task_publish` handler stamps it on the message (`bench_due`), with
`bench_sent` (time.time() as beat publishes); the task pushes [index, bench_due,
bench_sent, time.time() at its start] to the Redis list <BEAT_PREFIX>records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from typing import Any
from urllib.parse import unquote, urlsplit

import django
from celery import Celery
from celery.signals import before_task_publish
from celery.utils.time import maybe_make_aware
from django.conf import settings

TASK = "bench_beat.noop"
PREFIX = os.environ.get("BEAT_PREFIX", "bench-beat:")
QUEUE = os.environ.get("BEAT_QUEUE", "bench-beat")
BROKER_URL = os.environ.get("BEAT_BROKER_URL", "redis://127.0.0.1:6379/0")
RECORDS = PREFIX + "records"


def _database(url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        # As the project's settings on PostgreSQL (Django's default, 0, would have beat
        # reconnect on each tick: its schedule_changed() calls close_old_connections()).
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django_celery_beat"],
        DATABASES={"default": _database(os.environ.get("BEAT_DATABASE_URL", ""))},
        USE_TZ=True,
        TIME_ZONE="UTC",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        SECRET_KEY="bench",
        DEBUG=False,
    )
    django.setup()

app = Celery("bench_beat")
app.conf.update(
    broker_url=BROKER_URL,
    # Its own keys (and so its own queues) on the bench's Redis.
    broker_transport_options={"global_keyprefix": PREFIX},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
    timezone="UTC",
    beat_scheduler="bench.celerybeat_app:DueStampingScheduler",
)

from django_celery_beat.schedulers import DatabaseScheduler  # noqa: E402 (after setup)

_redis: Any = None
#: In beat, while it sends an entry: the due time of that run (unix time).
_sending_due: float | None = None


class DueStampingScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler, noting the due time of each run it sends.

    `tick()` reserves the entry (its next one gets last_run_at = now) and then calls
    apply_entry() with the entry it found due, whose last_run_at is still the
    previous run's: due = last_run_at + run_every, what `is_due()` compared with now.
    """

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        global _sending_due
        last_run_at = maybe_make_aware(entry.last_run_at)
        _sending_due = (last_run_at + entry.schedule.run_every).timestamp()
        try:
            super().apply_entry(entry, producer=producer)
        finally:
            _sending_due = None


@before_task_publish.connect
def _stamp(
    sender: str | None = None, headers: dict | None = None, **kwargs: Any
) -> None:
    """In beat: the run's due time, and when beat publishes it."""
    if sender == TASK and headers is not None:
        headers["bench_due"] = _sending_due
        headers["bench_sent"] = time.time()


@app.task(name=TASK, bind=True)
def noop(self: Any, index: int) -> None:
    """The benchmarks' task: notes when it started, when it was due and sent."""
    started = time.time()
    global _redis
    if _redis is None:
        import redis

        _redis = redis.Redis.from_url(BROKER_URL)
    headers = getattr(self.request, "headers", None) or {}
    due, sent = (
        getattr(self.request, name, None) or headers.get(name)
        for name in ("bench_due", "bench_sent")
    )
    _redis.rpush(RECORDS, json.dumps([index, due, sent, started]))


def schedule(tasks: int, t0: float) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

    every, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.bulk_create(
        PeriodicTask(
            name="bench-%05d" % i,
            task=TASK,
            interval=every,
            args=json.dumps([i]),
            # Due = last_run_at + 1 s: the first run of task i at T0 + i/N.
            last_run_at=dt.datetime.fromtimestamp(t0 + i / tasks - 1.0, tz=dt.UTC),
            enabled=True,
        )
        for i in range(tasks)
    )
    # bulk_create sends no signal: tell beat the schedule changed, as save() would.
    PeriodicTasks.update_changed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate")
    plan = sub.add_parser("schedule")
    plan.add_argument("--tasks", type=int, required=True)
    plan.add_argument("--t0", type=float, required=True)
    args = parser.parse_args()
    if args.command == "migrate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    else:
        schedule(args.tasks, args.t0)


if __name__ == "__main__":
    main()
