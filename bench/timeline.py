"""The admin's Timeline page at 500 tasks with 14 days of runs, timed (issue 18).

    python -m bench.timeline                        # both backends
    python -m bench.timeline --backend sqlite --repeat 9 --wait-quiet 60

Builds, per backend, a fresh database with `--tasks` tasks (500) and their runs
over the last `--days` days (14) in bulk SQL: 95 % success, 3 % failed, 2 %
skipped, and one fire in a hundred with no run (a missed cell). `--mix busy` (the
default): a fifth every 5 minutes, three tenths every 15 minutes, three tenths
hourly, a fifth daily at 03:00 UTC, about 650,000 runs; `--mix hourly`: four
fifths hourly, a fifth daily, about 135,000 runs. Then it requests the page
for each range (24 h, 7 days, 30 days) as a superuser through Django's test
client: one warm-up, `--repeat` timed requests, one more counting the queries.
Prints the median and worst time, queries, the page's size and its cells; a
range over `--budget` ms (1,000, the issue's bound) is flagged.

PostgreSQL: `--pg-url` / BENCH_PG_URL (CREATE DATABASE needed; the database is
dropped at the end unless --keep). SQLite: a temporary file. Each backend runs
in a process of its own (Django reads its database settings once).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BUSY_PERCENT
from bench.pages import admin_execute, database_url, settle

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DB_NAME = "bench_timeline"
#: The task mixes: (name prefix, share of the tasks, cron, seconds between fires).
MIXES = {
    # A fifth every 5 minutes: 650,000 runs in 14 days at 500 tasks.
    "busy": (
        ("every5", 0.2, "*/5 * * * *", 300),
        ("every15", 0.3, "*/15 * * * *", 900),
        ("hourly", 0.3, "0 * * * *", 3600),
        ("daily", 0.2, "0 3 * * *", 86400),
    ),
    # Hourly and slower: 135,000 runs in 14 days at 500 tasks.
    "hourly": (
        ("hourly", 0.8, "0 * * * *", 3600),
        ("daily", 0.2, "0 3 * * *", 86400),
    ),
}
SPANS = ("24h", "7d", "30d")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.timeline", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--backend", choices=["sqlite", "postgres", "both"], default="both"
    )
    parser.add_argument(
        "--pg-url", default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL)
    )
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument(
        "--mix", choices=sorted(MIXES), default="busy", help="the tasks' schedules"
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--budget", type=float, default=1000.0, help="ms a range")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before measuring, wait up to this long for other processes to use "
        "under %d %%%% of a core" % BUSY_PERCENT,
    )
    parser.add_argument(
        "--child", choices=["sqlite", "postgres"], help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


# -- the data ---------------------------------------------------------------------


def build(args: argparse.Namespace) -> int:
    """Migrate, create the tasks, insert their runs; return how many runs."""
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from bench.common import create_tasks
    from scheduler_app.models import ScheduledTask, TaskExecution

    call_command("migrate", verbosity=0, interactive=False)
    now = timezone.now()
    for prefix, share, cron, every in MIXES[args.mix]:
        next_run = _aligned(now, every) + dt.timedelta(seconds=every)
        create_tasks(
            prefix,
            int(args.tasks * share),
            task_type="cron",
            cron_expression=cron,
            timezone="UTC",
            next_run_at=functools.partial(_same, next_run),
        )
    ScheduledTask.objects.update(created_at=now - dt.timedelta(days=args.days + 1))
    vendor = connection.vendor
    for prefix, _share, _cron, every in MIXES[args.mix]:
        latest = _aligned(now, every if every < 86400 else 3600)
        if every == 86400:  # the latest 03:00 UTC
            latest = now.replace(hour=3, minute=0, second=0, microsecond=0)
            if latest > now:
                latest -= dt.timedelta(days=1)
        fires = args.days * 86400 // every
        _insert_runs(connection, vendor, prefix, latest, every, fires)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return TaskExecution.objects.count()


def _same(moment: dt.datetime, _index: int) -> dt.datetime:
    return moment


def _aligned(moment: dt.datetime, every: int) -> dt.datetime:
    seconds = int(moment.timestamp()) // every * every
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _insert_runs(
    connection: Any,
    vendor: str,
    prefix: str,
    latest: dt.datetime,
    every: int,
    fires: int,
) -> None:
    """One INSERT ... SELECT: the group's tasks times its fire times."""
    if vendor == "postgresql":
        series = "SELECT generate_series(0, %d) AS i" % (fires - 1)
        fire = "(%%(latest)s::timestamptz - s.i * interval '%d seconds')" % every

        def shift(expression: str, seconds: int) -> str:
            return "(%s + interval '%d seconds')" % (expression, seconds)

        latest_value: Any = latest
    else:
        series = (
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < %d) SELECT i FROM n" % (fires - 1)
        )
        fire = "datetime(%%(latest)s, '-' || (s.i * %d) || ' seconds')" % every

        def shift(expression: str, seconds: int) -> str:
            return "datetime(%s, '%+d seconds')" % (expression, seconds)

        latest_value = latest.strftime("%Y-%m-%d %H:%M:%S")
    # 3 % failed, 2 % skipped; one fire in a hundred has no run at all.
    status = (
        "CASE WHEN (t.id * 7 + s.i) %% 100 < 3 THEN 'failed'"
        " WHEN (t.id * 7 + s.i) %% 100 < 5 THEN 'skipped' ELSE 'success' END"
    )
    sql = f"""
        INSERT INTO scheduler_app_taskexecution (
            task_id, status, failure_kind, trigger_type, scheduled_for, attempt,
            kwargs_overrides, kwargs, created_at, started_at, finished_at,
            duration_ms, error_message, error_traceback, log_output,
            instance_id, cancel_requested, requested_by
        )
        SELECT t.id, {status}, '', 'scheduled', {fire}, 1, '{{}}', '{{}}',
            {shift(fire, -2)}, {fire}, {shift(fire, 1)}, 1000, '', '', '', 'bench-host:1', false, ''
        FROM scheduler_app_scheduledtask t CROSS JOIN ({series}) s
        WHERE t.name LIKE %(prefix)s AND (t.id * 13 + s.i) %% 100 <> 0
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, {"latest": latest_value, "prefix": prefix + "-%"})


# -- the measurement ----------------------------------------------------------------


def measure(span: str, repeat: int) -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    url = reverse("admin:scheduler_app_scheduledtask_timeline") + "?span=" + span
    client.get(url, secure=True)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, secure=True)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, secure=True)
    assert response.status_code == 200, response.status_code
    html = response.content.decode()
    return {
        "span": span,
        "median_ms": statistics.median(times),
        "max_ms": max(times),
        "queries": len(queries.captured_queries),
        "kb": len(response.content) / 1024,
        "rows": html.count('class="tl-row" data-task='),
        "cells": html.count('class="tl-cell '),
    }


def child(args: argparse.Namespace) -> None:
    import django

    django.setup()
    started = time.monotonic()
    runs = build(args)
    print(
        "  %s: %d tasks, %d runs over %d days, built in %.0f s"
        % (args.child, args.tasks, runs, args.days, time.monotonic() - started),
        flush=True,
    )
    settle(args.wait_quiet)
    for span in SPANS:
        figures = measure(span, args.repeat)
        print(
            "  %-8s %-4s %8.1f ms median %8.1f ms max %3d queries %7.1f KB "
            "%4d rows %6d cells%s"
            % (
                args.child,
                span,
                figures["median_ms"],
                figures["max_ms"],
                figures["queries"],
                figures["kb"],
                figures["rows"],
                figures["cells"],
                "  OVER" if figures["median_ms"] > args.budget else "",
            ),
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        child(args)
        return 0
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    passed = sys.argv[1:] if argv is None else argv
    failed = 0
    for backend in backends:
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "false",
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": "",
        }
        with tempfile.TemporaryDirectory(prefix="bench-timeline-") as folder:
            if backend == "postgres":
                admin_execute(
                    args.pg_url,
                    'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % DB_NAME,
                    'CREATE DATABASE "%s"' % DB_NAME,
                )
                environment["DATABASE_URL"] = database_url(args.pg_url, DB_NAME)
            else:
                environment.pop("DATABASE_URL", None)
                environment["SQLITE_PATH"] = str(Path(folder) / "bench.sqlite3")
            try:
                failed += subprocess.call(
                    [
                        sys.executable,
                        "-m",
                        "bench.timeline",
                        *passed,
                        "--child",
                        backend,
                    ],
                    env=environment,
                )
            finally:
                if backend == "postgres" and not args.keep:
                    admin_execute(
                        args.pg_url,
                        'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % DB_NAME,
                    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
