"""`make bench`: the scheduler's benchmarks (issue 3), on SQLite and on PostgreSQL + Redis.

    python -m bench.run [--backend sqlite|postgres|both] [--duration 60] [--only fires,burst]

Each backend runs in a child process of its own (Django reads the database settings
once), against a fresh database; every scenario starts from a fresh copy of it and
starts its own `manage.py runscheduler`. The tables print as each scenario ends;
the targets, marked PASS or MISS, print at the end. See bench/README.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PYTHON,
    Context,
    PostgresDatabase,
    SqliteDatabase,
    base_env,
    fmt,
    table,
)

SCENARIOS = (
    "fires",
    "idle",
    "burst",
    "changes",
    "throughput",
    "djapscheduler",
    "celery",
)
DEFAULT_PG_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Scheduler benchmarks (see bench/README.md).",
    )
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "both"), default="both"
    )
    parser.add_argument(
        "--duration",
        type=int,
        default=60,
        help="seconds of each firing window (default 60)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help="comma-separated scenarios among %s (default: all)" % ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "--tasks",
        default="200,1000",
        help="task counts of scenario 1 (default 200,1000)",
    )
    parser.add_argument(
        "--phases",
        default="spread,aligned",
        help="phases of scenario 1 (default spread,aligned)",
    )
    parser.add_argument(
        "--djapscheduler-tasks",
        default="200,1000",
        help="task counts run on django-apscheduler, spread (default 200,1000)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=10,
        help="SCHEDULER_THREAD_POOL_SIZE of the scheduler under test (default 10, the product's)",
    )
    parser.add_argument(
        "--isolation",
        choices=("process", "thread"),
        default=os.environ.get("SCHEDULER_ISOLATION", "process"),
        help="SCHEDULER_ISOLATION of the scheduler under test (default process, the "
        "product's; SCHEDULER_WORKER_PROCESSES from the environment, default 4)",
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL server to create the bench database on (default %s)"
        % DEFAULT_PG_URL,
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL),
        help="Redis for the PostgreSQL pass (default %s)" % DEFAULT_REDIS_URL,
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each measurement, wait up to this long for other processes to use "
        "under 25%% of a core (default 0: just warn)",
    )
    parser.add_argument(
        "--beat-venv",
        type=Path,
        help="virtualenv of the celery beat comparison (scenario celery): created there when "
        "missing and kept; default: a fresh one in the work dir",
    )
    parser.add_argument(
        "--json", type=Path, help="also write every figure to this JSON file"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work dir (logs) afterwards"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--results", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(args.only) - set(SCENARIOS)
    if unknown:
        parser.error("unknown scenario(s): %s" % ", ".join(sorted(unknown)))
    if args.duration < 2:
        parser.error("--duration must be at least 2 seconds")
    for name in ("tasks", "djapscheduler_tasks"):
        try:
            setattr(
                args,
                name,
                [int(n) for n in getattr(args, name).split(",") if n.strip()],
            )
        except ValueError:
            parser.error("--%s takes comma-separated integers" % name.replace("_", "-"))
    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if set(args.phases) - {"spread", "aligned"}:
        parser.error("--phases takes spread and/or aligned")
    return args


# -- one backend (child process) ----------------------------------------------------


def run_backend(args: argparse.Namespace) -> None:
    workdir: Path = args.workdir
    if args.backend == "sqlite":
        db: Any = SqliteDatabase(workdir)
    else:
        db = PostgresDatabase(args.pg_url, args.redis_url)
    os.environ.update(base_env())
    for name in ("DATABASE_URL", "SQLITE_PATH", "REDIS_URL"):
        os.environ.pop(name, None)
    os.environ.update(db.env())
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    import django

    django.setup()
    from django.conf import settings

    name = str(settings.DATABASES["default"]["NAME"])
    expected = str(db.path) if args.backend == "sqlite" else db.name
    if name != expected:
        raise SystemExit(
            "bench: the settings point at %s, not at %s" % (name, expected)
        )

    from bench import burst, celery, changes, djapscheduler, fires, throughput

    ctx = Context(
        db=db,
        workdir=workdir,
        duration=args.duration,
        threads=args.threads,
        wait_quiet=args.wait_quiet,
    )
    print("== %s: %s" % (db.label, db.describe()), flush=True)
    db.create()
    results: dict[str, Any] = {}
    runners = {
        "fires": lambda: fires.run(ctx, counts=args.tasks, phases=args.phases),
        "idle": lambda: fires.run_idle(ctx),
        "burst": lambda: burst.run(ctx),
        "changes": lambda: changes.run(ctx),
        "throughput": lambda: throughput.run(ctx),
        "djapscheduler": lambda: djapscheduler.run(
            ctx, counts=args.djapscheduler_tasks, phases=["spread"]
        ),
        "celery": lambda: celery.run(ctx, beat_venv=args.beat_venv),
    }
    try:
        for scenario in SCENARIOS:
            if scenario not in args.only:
                continue
            print("-- %s: %s ..." % (db.label, scenario), flush=True)
            started = time.monotonic()
            try:
                outcome = runners[scenario]()
            except Exception:
                traceback.print_exc()
                results[scenario] = {"error": traceback.format_exc(limit=3)}
                continue
            print("\n[%s] " % db.label + outcome.render() + "\n", flush=True)
            print("   (%.0f s)" % (time.monotonic() - started), flush=True)
            results[scenario] = {
                "title": outcome.title,
                "headers": outcome.headers,
                "rows": outcome.rows,
                "metrics": outcome.metrics,
                "notes": outcome.notes,
            }
    finally:
        db.drop()
    results["_backend"] = {
        "label": db.label,
        "redis": db.redis,
        "describe": db.describe(),
    }
    args.results.write_text(json.dumps(results, default=str))


# -- targets ---------------------------------------------------------------------------


def _get(results: dict, *path: str) -> Any:
    value: Any = results
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def targets(label: str, results: dict) -> list[list[str]]:
    """One row per target: what, target, measured, PASS/MISS (or - when not run)."""
    redis = _get(results, "_backend", "redis")
    latency_target = 100.0 if redis else 1000.0
    rows: list[list[str]] = []

    def check(
        what: str,
        goal: str,
        value: Any,
        ok: bool | None,
        shown: str | None = None,
        source: dict | None = None,
    ) -> None:
        verdict = "-" if ok is None else ("PASS" if ok else "MISS")
        others = (source or {}).get("others_cpu_percent")
        rows.append(
            [
                label,
                what,
                goal,
                shown if shown is not None else fmt(value),
                verdict,
                fmt(others),
            ]
        )

    def fire(key: str) -> dict | None:
        return _get(results, "fires", "metrics", key)

    spread200 = fire("spread-200")
    if spread200:
        p99 = spread200["lateness_ms"]["p99"]
        src = spread200
        check(
            "spread 200/s lateness p99",
            "<= 10 ms",
            p99,
            p99 is not None and p99 <= 10,
            source=src,
        )
        check("spread 200/s missed", "0", src["missed"], src["missed"] == 0, source=src)
        check(
            "spread 200/s duplicates",
            "0",
            src["duplicates"],
            src["duplicates"] == 0,
            source=src,
        )
        cpu = src["cpu_percent"]
        check(
            "CPU at 200 tasks/s",
            "<= 25 % of a core",
            cpu,
            cpu is not None and cpu <= 25,
            source=src,
        )
    spread1000 = fire("spread-1000")
    if spread1000:
        src = spread1000
        check(
            "spread 1000/s missed", "0", src["missed"], src["missed"] == 0, source=src
        )
        p99 = src["lateness_ms"]["p99"]
        check(
            "spread 1000/s lateness p99",
            "<= 50 ms",
            p99,
            p99 is not None and p99 <= 50,
            source=src,
        )
        rss = src["peak_rss_mb"]
        check(
            "scheduler RSS at 1000 tasks",
            "<= 100 MB",
            rss,
            rss is not None and rss <= 100,
            source=src,
        )
    aligned200 = fire("aligned-200")
    if aligned200:
        p99 = aligned200["lateness_ms"]["p99"]
        check(
            "aligned 200/s lateness p99",
            "<= 50 ms",
            p99,
            p99 is not None and p99 <= 50,
            source=aligned200,
        )
    burst = _get(results, "burst", "metrics")
    if burst:
        for key, what in (("all_started_s", "started"), ("all_recorded_s", "recorded")):
            value = burst[key]
            check(
                "burst 5000: all %s" % what,
                "<= 5 s",
                value,
                value is not None and value <= 5,
                "%.2f s" % value if value is not None else "not all",
                source=burst,
            )
    changes = _get(results, "changes", "metrics")
    if changes:
        for key, what in (
            ("propagation_ms", "change propagation p99"),
            ("run_now_ms", "run-now p99"),
        ):
            value = changes[key]["p99"]
            complete = not any(changes["lost"].values())
            check(
                what,
                "<= %d ms" % latency_target,
                value,
                value is not None and value <= latency_target and complete,
            )
    throughput = _get(results, "throughput", "metrics")
    if throughput:
        rate = throughput["rate_per_s"]
        check(
            "run-now throughput (1000)",
            ">= 500/s",
            rate,
            rate is not None and rate >= 500,
            source=throughput,
        )
    return rows


def comparison(label: str, results: dict) -> list[list[str]]:
    """Ours vs django-apscheduler at the same load: lateness p99, missed, CPU."""
    rows = []
    for count in (200, 1000):
        ours = _get(results, "fires", "metrics", "spread-%d" % count)
        theirs = _get(results, "djapscheduler", "metrics", "spread-%d" % count)
        if not ours or not theirs:
            continue
        for what, get in (
            ("lateness p99 ms", lambda r: r["lateness_ms"]["p99"]),
            ("missed fires", lambda r: r["missed"]),
            ("CPU % of a core", lambda r: r["cpu_percent"]),
            ("DB backends CPU %", lambda r: r.get("db_cpu_percent")),
        ):
            a, b = get(ours), get(theirs)
            if a is None and b is None:
                continue
            if a is None or b is None:
                ratio = "-"
            elif b == 0:
                ratio = "0 vs 0" if a == 0 else "inf"
            else:
                ratio = "%.3g" % (a / b)
            rows.append([label, "%d/s spread" % count, what, fmt(a), fmt(b), ratio])
    return rows


def celery_comparison(label: str, results: dict) -> list[list[str]]:
    """Ours on the Celery executor vs celery beat + django-celery-beat, 200 tasks/s."""
    ratios = _get(results, "celery", "metrics", "ratios") or []
    return [[label, what, fmt(a), fmt(b), ratio] for what, a, b, ratio in ratios]


def revision() -> str:
    """The commit measured (read-only git calls), "+changes" when the tree is dirty."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+changes" if dirty else "")


@functools.cache
def cpu_reference() -> float:
    """Seconds a fixed pure-Python loop takes here (best of 3): the machine's speed now.

    Virtual machines differ, and one VM's speed drifts with its neighbours: CPU %
    and lateness figures compare only between runs with a similar reference.
    """
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for step in range(2_000_000):
            total += step
        best = min(best, time.perf_counter() - started)
    return best


def machine() -> str:
    return (
        "%s, %d cores (nproc), %s, Python %s, SQLite %s, commit %s, CPU reference %.3f s"
        % (
            platform.node(),
            os.cpu_count() or 0,
            platform.machine(),
            platform.python_version(),
            sqlite3.sqlite_version,
            revision(),
            cpu_reference(),
        )
    )


def reachable(args: argparse.Namespace) -> tuple[bool, str]:
    """Whether PostgreSQL answers, and the Redis URL to use ("" when Redis does not)."""
    try:
        import psycopg

        psycopg.connect(args.pg_url, connect_timeout=3).close()
    except Exception as exc:
        print(
            "PostgreSQL not reachable at %s (%s): skipping that pass."
            % (args.pg_url, exc)
        )
        return False, ""
    try:
        import redis

        redis.Redis.from_url(args.redis_url, socket_connect_timeout=3).ping()
    except Exception as exc:
        print(
            "Redis not reachable at %s (%s): PostgreSQL pass without Redis."
            % (args.redis_url, exc)
        )
        return True, ""
    return True, args.redis_url


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # The schedulers under test inherit it (bench.common.base_env).
    os.environ["SCHEDULER_ISOLATION"] = args.isolation
    if args.child:
        run_backend(args)
        return
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    print("bench: %s" % machine())
    print(
        "bench: scenarios %s; windows of %d s; %s"
        % (
            ", ".join(args.only),
            args.duration,
            (
                "%s handler processes" % os.environ.get("SCHEDULER_WORKER_PROCESSES", 4)
                if args.isolation == "process"
                else "%d scheduler threads" % args.threads
            ),
        ),
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    collected: dict[str, dict] = {}
    try:
        for backend in backends:
            redis_url = ""
            if backend == "postgres":
                ok, redis_url = reachable(args)
                if not ok:
                    continue
            results_file = workdir / ("%s-results.json" % backend)
            argv_child = [
                PYTHON,
                "-m",
                "bench.run",
                "--child",
                "--backend",
                backend,
                "--duration",
                str(args.duration),
                "--only",
                ",".join(args.only),
                "--tasks",
                ",".join(map(str, args.tasks)),
                "--phases",
                ",".join(args.phases),
                "--djapscheduler-tasks",
                ",".join(map(str, args.djapscheduler_tasks)),
                "--threads",
                str(args.threads),
                "--isolation",
                args.isolation,
                "--wait-quiet",
                str(args.wait_quiet),
                *(
                    ["--beat-venv", str(args.beat_venv.resolve())]
                    if args.beat_venv
                    else []
                ),
                "--pg-url",
                args.pg_url,
                "--redis-url",
                redis_url,
                "--results",
                str(results_file),
                "--workdir",
                str(workdir),
            ]
            done = subprocess.run(argv_child, cwd=ROOT, env=base_env())
            if done.returncode != 0 or not results_file.exists():
                print(
                    "bench: the %s pass failed (exit %s)" % (backend, done.returncode)
                )
                continue
            collected[backend] = json.loads(results_file.read_text())
    finally:
        if args.keep:
            print("bench: logs kept in %s" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    rows: list[list[str]] = []
    compared: list[list[str]] = []
    on_celery: list[list[str]] = []
    for backend, results in collected.items():
        label = backend + ("+redis" if _get(results, "_backend", "redis") else "")
        rows.extend(targets(label, results))
        compared.extend(comparison(label, results))
        on_celery.extend(celery_comparison(label, results))
    if on_celery:
        print()
        print(
            table(
                "Ours (Celery executor, 2 workers) vs celery beat + django-celery-beat, "
                "200 tasks/s spread (ratio = ours / theirs; lower is better)",
                ["backend", "measure", "ours", "theirs", "ratio"],
                on_celery,
            )
        )
    if compared:
        print()
        print(
            table(
                "Ours vs django-apscheduler (ratio = ours / theirs; lower is better)",
                ["backend", "load", "measure", "ours", "theirs", "ratio"],
                compared,
            )
        )
    if rows:
        print()
        print(
            table(
                "Targets (others CPU %: what other processes used meanwhile, % of a core)",
                ["backend", "target", "goal", "measured", "verdict", "others CPU %"],
                rows,
            )
        )
        misses = sum(1 for row in rows if row[4] == "MISS")
        print("\n%d target(s) met, %d missed." % (len(rows) - misses, misses))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": machine(), "results": collected}, indent=1, default=str
            )
        )
        print("bench: figures written to %s" % args.json)


if __name__ == "__main__":
    main()
