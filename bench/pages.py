"""Every admin and API page of a large installation, timed (issue 14).

    python -m bench.pages                      # build, measure, drop the database
    python -m bench.pages --keep               # keep the database for the next run
    python -m bench.pages --reuse --keep       # measure again on the kept database

Builds a PostgreSQL database with `--tasks` tasks (10,000) and `--executions`
executions (1,000,000) in bulk SQL (generate_series, no ORM row by row), then
requests each page through Django's test client as a superuser: one warm-up, then
`--repeat` timed requests, then one more inside CaptureQueriesContext for the
query count. A page over `--budget` ms (median) is flagged. After the pages: the
leader's health check (`health check`) and a Prometheus scrape of GET /metrics
with its bearer token (`metrics scrape`), e.g. at 1,000 tasks:

    python -m bench.pages --tasks 1000 --only "metrics scrape" --repeat 9

Django is set up in this process on that database, with the project's settings
(DEBUG off). Run it from a checkout: the pages and data follow that checkout's
code and migrations.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import BUSY_PERCENT, host_others_percent, table

DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/postgres"
#: The tasks with runs; the rest (10 %) never ran.
WITH_RUNS_SHARE = 0.9
#: The bearer token the `metrics scrape` figure sends.
METRICS_TOKEN = "bench-metrics"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pages", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="a PostgreSQL URL allowed to CREATE DATABASE (default %(default)s)",
    )
    parser.add_argument(
        "--db-name",
        default="bench_pages",
        help="the database built and measured (default %(default)s)",
    )
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed requests a page")
    parser.add_argument("--budget", type=float, default=300.0, help="ms a page")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the database --db-name as it is, if it exists (else build it)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the database at the end"
    )
    parser.add_argument(
        "--only", default="", help="measure only pages whose label contains this"
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before measuring, wait up to this long for other processes to use "
        "under %d %%%% of a core" % BUSY_PERCENT,
    )
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    return parser.parse_args(argv)


def database_url(admin_url: str, name: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, ""))


def admin_execute(admin_url: str, *statements: str) -> list[Any]:
    import psycopg

    rows: list[Any] = []
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        for statement in statements:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
            if cursor.description:
                rows.extend(cursor.fetchall())
    return rows


def database_exists(admin_url: str, name: str) -> bool:
    return bool(
        admin_execute(
            admin_url, "SELECT 1 FROM pg_database WHERE datname = '%s'" % name
        )
    )


# -- the data ---------------------------------------------------------------------


def build(args: argparse.Namespace) -> None:
    """Migrate the database, then fill it: tasks by bulk_create, executions by SQL."""
    from django.core.management import call_command
    from django.db import connection

    from bench.common import create_tasks
    from scheduler_app.models import ScheduledTask, TaskExecution

    started = time.monotonic()
    call_command("migrate", verbosity=0, interactive=False)
    with_runs = int(args.tasks * WITH_RUNS_SHARE)
    # A realistic mix: cron and interval tasks, a tenth paused.
    create_tasks("bench", with_runs, task_type="cron", cron_expression="*/5 * * * *")
    create_tasks(
        "bench-idle",
        args.tasks - with_runs,
        task_type="interval",
        interval_seconds=60,
        status=ScheduledTask.Status.PAUSED,
    )
    first = ScheduledTask.objects.filter(name__startswith="bench-0").order_by("pk")[0]
    # Columns newer than this insert (requested_by, the audit trail's) get their
    # model default from the database while it runs.
    blank = [
        name
        for name in ("requested_by",)
        if name in {field.name for field in TaskExecution._meta.get_fields()}
    ]
    with connection.cursor() as cursor:
        for name in blank:
            cursor.execute(
                "ALTER TABLE scheduler_app_taskexecution ALTER COLUMN %s SET DEFAULT ''"
                % name
            )
        # One run every 2.5 s over the last ~29 days, round-robin over the tasks that
        # run; 90 % succeed, 8 % fail (1 % of them timed out), 2 % skipped; the
        # latest 20 still pending and 5 running.
        cursor.execute(
            """
            INSERT INTO scheduler_app_taskexecution (
                task_id, status, failure_kind, trigger_type, scheduled_for, attempt,
                kwargs_overrides, kwargs, created_at, started_at, finished_at,
                duration_ms, result, error_message, error_traceback, log_output,
                instance_id, cancel_requested
            )
            SELECT
                %(first)s + (i %% %(with_runs)s),
                CASE WHEN i > %(n)s - 20 THEN 'pending'
                     WHEN i > %(n)s - 25 THEN 'running'
                     WHEN i %% 50 = 0 THEN 'skipped'
                     WHEN i %% 100 < 8 THEN 'failed' ELSE 'success' END,
                CASE WHEN i %% 100 = 1 THEN 'timeout'
                     WHEN i %% 100 < 8 AND i %% 50 <> 0 THEN 'error' ELSE '' END,
                CASE WHEN i %% 97 = 0 THEN 'manual' ELSE 'scheduled' END,
                CASE WHEN i %% 97 = 0 THEN NULL
                     ELSE now() - (%(n)s - i) * interval '2.5 seconds' END,
                1, '{}', '{}',
                now() - (%(n)s - i) * interval '2.5 seconds',
                CASE WHEN i > %(n)s - 20 THEN NULL
                     ELSE now() - (%(n)s - i) * interval '2.5 seconds' END,
                CASE WHEN i > %(n)s - 25 THEN NULL
                     ELSE now() - (%(n)s - i) * interval '2.5 seconds'
                        + ((i::bigint * 7919) %% 5000) * interval '1 millisecond' END,
                CASE WHEN i > %(n)s - 25 THEN NULL ELSE (i::bigint * 7919) %% 5000 END,
                '{"rows": 42}',
                CASE WHEN i %% 100 < 8 AND i %% 50 <> 0 THEN 'ValueError: bench'
                     ELSE '' END,
                '',
                repeat('a log line of a bench run' || chr(10), 4),
                'bench-host:1', false
            FROM generate_series(1, %(n)s) AS i
            """,
            {"first": first.pk, "with_runs": with_runs, "n": args.executions},
        )
        for name in blank:
            cursor.execute(
                "ALTER TABLE scheduler_app_taskexecution ALTER COLUMN %s DROP DEFAULT"
                % name
            )
    fill_counters()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        "  built %s: %d tasks, %d executions in %.0f s"
        % (args.db_name, args.tasks, args.executions, time.monotonic() - started),
        flush=True,
    )


def fill_counters() -> None:
    """The tasks' counters from their executions, as the engine would have kept them."""
    from django.db import connection

    from scheduler_app.models import ScheduledTask

    fields = {field.name for field in ScheduledTask._meta.get_fields()}
    durations = (
        ", duration_total_ms = s.duration_total, duration_count = s.durations"
        if "duration_total_ms" in fields
        else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE scheduler_app_scheduledtask AS t
            SET run_count = s.ran, success_count = s.ok, fail_count = s.failed,
                last_run_at = s.latest%s
            FROM (
                SELECT task_id,
                    count(*) FILTER (WHERE status <> 'skipped') AS ran,
                    count(*) FILTER (WHERE status = 'success') AS ok,
                    count(*) FILTER (WHERE status = 'failed') AS failed,
                    max(started_at) AS latest,
                    coalesce(sum(duration_ms) FILTER (
                        WHERE status IN ('success', 'failed')), 0) AS duration_total,
                    count(duration_ms) FILTER (
                        WHERE status IN ('success', 'failed')) AS durations
                FROM scheduler_app_taskexecution GROUP BY task_id
            ) AS s
            WHERE t.id = s.task_id
            """
            % durations
        )


# -- the pages --------------------------------------------------------------------


@dataclass
class Figures:
    label: str
    url: str
    status: int
    median_ms: float
    max_ms: float
    queries: int
    size_kb: float


def pages() -> list[tuple[str, str]]:
    """(label, URL) of every page measured, on the data `build` made."""
    from django.urls import reverse

    from scheduler_app.models import ScheduledTask, TaskExecution

    busy = ScheduledTask.objects.filter(name="bench-00042").get()
    idle = ScheduledTask.objects.filter(name="bench-idle-00042").get()
    execution = TaskExecution.objects.filter(task=busy).order_by("-id")[0]
    # Where page 9,999 starts when reached by its Next link: after page 9,998's last row.
    newest_first = TaskExecution.objects.order_by("-id").values_list("pk", flat=True)
    # (A smaller history than the default has no page 9,999: the link then
    # starts after the busy task's latest run.)
    deep = list(newest_first[9998 * 100 - 1 : 9998 * 100])
    deep_after = deep[0] if deep else execution.pk
    tasks = reverse("admin:scheduler_app_scheduledtask_changelist")
    runs = reverse("admin:scheduler_app_taskexecution_changelist")
    api = "/api/v1/"
    listed = [
        ("admin index", reverse("admin:index")),
        ("tasks", tasks),
        *[
            ("tasks sorted by %s" % name, "%s?o=%s" % (tasks, order))
            for name, order in [
                ("name desc", "-1"),
                ("type", "2"),
                ("status", "4"),
                ("next run", "5"),
                ("last run", "6"),
                ("success rate", "7"),
                ("avg duration", "8"),
                ("avg duration asc", "-8"),
            ]
        ],
        ("tasks type=cron", tasks + "?task_type__exact=cron"),
        ("tasks status=paused", tasks + "?status__exact=paused"),
        ("tasks handler", tasks + "?handler=bench.handlers%3Anoop"),
        ("tasks last result=failed", tasks + "?last_result=failed"),
        ("tasks last result=never", tasks + "?last_result=never"),
        ("tasks system", tasks + "?is_system__exact=1"),
        ("tasks search", tasks + "?q=bench-0004"),
        ("tasks page 50", tasks + "?p=50"),
        (
            "task change",
            reverse("admin:scheduler_app_scheduledtask_change", args=[busy.pk]),
        ),
        ("task add", reverse("admin:scheduler_app_scheduledtask_add")),
        (
            "task delete confirm",
            reverse("admin:scheduler_app_scheduledtask_delete", args=[busy.pk]),
        ),
        ("executions", runs),
        ("executions task with runs", "%s?task__id__exact=%d" % (runs, busy.pk)),
        ("executions task no runs", "%s?task__id__exact=%d" % (runs, idle.pk)),
        ("executions task search", runs + "?task_q=bench-00042"),
        ("executions status=failed", runs + "?status=failed"),
        ("executions status=running", runs + "?status=running"),
        ("executions status=pending", runs + "?status=pending"),
        ("executions status=timeout", runs + "?status=timeout"),
        ("executions trigger=manual", runs + "?trigger_type__exact=manual"),
        ("executions sorted id asc", runs + "?o=1"),
        ("executions search id", "%s?q=%d" % (runs, execution.pk)),
        ("executions search name", runs + "?q=bench-00042"),
        ("executions page 500", runs + "?p=500"),
        ("executions page 5000", runs + "?p=5000"),
        ("executions page 9999", runs + "?p=9999"),
        ("executions page 9999 by link", "%s?p=9999&after=%d" % (runs, deep_after)),
        (
            "execution change",
            reverse("admin:scheduler_app_taskexecution_change", args=[execution.pk]),
        ),
        (
            "execution log",
            reverse("admin:scheduler_app_taskexecution_log", args=[execution.pk]),
        ),
        ("instances", reverse("admin:scheduler_app_schedulerinstance_changelist")),
        ("health", reverse("admin:scheduler_app_schedulerinstance_health")),
        ("locks", reverse("admin:scheduler_app_schedulerlock_changelist")),
        ("api keys", reverse("admin:scheduler_app_userapikey_changelist")),
        ("API root", api),
        ("API tasks", api + "tasks/"),
        ("API tasks by last run", api + "tasks/?ordering=-last_run_at"),
        ("API tasks search", api + "tasks/?search=bench-0004"),
        ("API tasks paused", api + "tasks/?status=paused"),
        ("API tasks page 100", api + "tasks/?page=100"),
        ("API task", "%stasks/%d/" % (api, busy.pk)),
        ("API task executions", "%stasks/%d/executions/" % (api, busy.pk)),
        ("API task executions none", "%stasks/%d/executions/" % (api, idle.pk)),
        ("API task lock", "%stasks/%d/lock/" % (api, busy.pk)),
        ("API executions", api + "tasks/executions/"),
        ("API executions task", "%stasks/executions/?task=%d" % (api, busy.pk)),
        ("API executions task none", "%stasks/executions/?task=%d" % (api, idle.pk)),
        ("API executions failed", api + "tasks/executions/?status=failed"),
        ("API executions running", api + "tasks/executions/?status=running"),
        ("API executions page_size 500", api + "tasks/executions/?page_size=500"),
        ("API execution", "%stasks/executions/%d/" % (api, execution.pk)),
        ("API execution log", "%stasks/executions/%d/log/" % (api, execution.pk)),
        ("API handlers", api + "tasks/handlers/"),
        ("API locks", api + "tasks/locks/"),
        ("API scheduler status", api + "scheduler/status/"),
    ]
    return listed


def measure(client: Any, label: str, url: str, repeat: int) -> Figures:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, secure=True)  # warm-up: caches, the plan, the pages of the index
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url, secure=True)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, secure=True)
    return Figures(
        label=label,
        url=url,
        status=response.status_code,
        median_ms=statistics.median(times),
        max_ms=max(times),
        queries=len(queries.captured_queries),
        size_kb=len(response.content) / 1024,
    )


def measure_all(args: argparse.Namespace) -> list[Figures]:
    from django.contrib.auth import get_user_model
    from django.test import Client

    user, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    results = []
    for label, url in pages():
        if args.only and args.only not in label:
            continue
        figures = measure(client, label, url, args.repeat)
        results.append(figures)
        print(
            "  %-32s %4d %8.1f ms %8.1f ms %4d q %8.1f KB%s"
            % (
                label,
                figures.status,
                figures.median_ms,
                figures.max_ms,
                figures.queries,
                figures.size_kb,
                ("  OVER" if figures.median_ms > args.budget else "")
                + ("" if figures.status == 200 else "  NOT 200"),
            ),
            flush=True,
        )
    return results


def measure_health_check(repeat: int) -> Figures:
    """The leader's health check (every SCHEDULER_HEALTH_CHECK_SECONDS) on this data.

    Its first pass writes every task's first state (as after the upgrade that adds
    health); the figures are of the passes after it, which change nothing.
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from scheduler_app.services import health_check

    started = time.perf_counter()
    changes = health_check()
    print(
        "  health check, first pass: %d change(s) in %.0f ms"
        % (len(changes), (time.perf_counter() - started) * 1000),
        flush=True,
    )
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        health_check()
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        health_check()
    return Figures(
        label="health check (no change)",
        url="services.health_check()",
        status=200,
        median_ms=statistics.median(times),
        max_ms=max(times),
        queries=len(queries.captured_queries),
        size_kb=0.0,
    )


def measure_metrics_scrape(repeat: int) -> Figures:
    """GET /metrics as Prometheus scrapes it (the bearer token), on this data."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(headers={"authorization": "Bearer " + METRICS_TOKEN})
    client.get("/metrics", secure=True)  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get("/metrics", secure=True)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/metrics", secure=True)
    return Figures(
        label="metrics scrape",
        url="/metrics",
        status=response.status_code,
        median_ms=statistics.median(times),
        max_ms=max(times),
        queries=len(queries.captured_queries),
        size_kb=len(response.content) / 1024,
    )


def settle(wait_quiet: float) -> None:
    deadline = time.monotonic() + wait_quiet
    while (busy := host_others_percent()) > BUSY_PERCENT:
        if time.monotonic() >= deadline:
            print("  ! other processes use %.0f%% of a core" % busy, flush=True)
            return
        time.sleep(2.0)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    reuse = args.reuse and database_exists(args.pg_url, args.db_name)
    if not reuse:
        admin_execute(
            args.pg_url,
            'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % args.db_name,
            'CREATE DATABASE "%s"' % args.db_name,
        )
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": database_url(args.pg_url, args.db_name),
            "REDIS_URL": "",
            "DEBUG": "false",
            "SECRET_KEY": "bench",
            "ALLOWED_HOSTS": "testserver",
            "LOG_LEVEL": "WARNING",
            "SCHEDULER_METRICS_TOKEN": METRICS_TOKEN,
        }
    )
    import django

    django.setup()
    from django.db import connections

    try:
        if not reuse:
            build(args)
        settle(args.wait_quiet)
        print(
            "  %-32s %4s %11s %11s %6s %11s"
            % ("page", "code", "median", "max", "", "size"),
            flush=True,
        )
        results = measure_all(args)
        if not args.only or args.only in "health check":
            figures = measure_health_check(args.repeat)
            results.append(figures)
            print(
                "  %-32s %4s %8.1f ms %8.1f ms %4d q"
                % (
                    figures.label,
                    "",
                    figures.median_ms,
                    figures.max_ms,
                    figures.queries,
                ),
                flush=True,
            )
        if not args.only or args.only in "metrics scrape":
            figures = measure_metrics_scrape(args.repeat)
            results.append(figures)
            print(
                "  %-32s %4d %8.1f ms %8.1f ms %4d q %8.1f KB"
                % (
                    figures.label,
                    figures.status,
                    figures.median_ms,
                    figures.max_ms,
                    figures.queries,
                    figures.size_kb,
                ),
                flush=True,
            )
    finally:
        connections.close_all()
        if not args.keep:
            admin_execute(
                args.pg_url, 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % args.db_name
            )
    over = [figures for figures in results if figures.median_ms > args.budget]
    print()
    print(
        table(
            "Pages over %.0f ms (median)" % args.budget,
            ["page", "median ms", "queries", "KB"],
            [[f.label, f.median_ms, f.queries, f.size_kb] for f in over],
        )
        if over
        else "Every page under %.0f ms (median)." % args.budget
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in results], indent=2))


if __name__ == "__main__":
    sys.exit(main())
