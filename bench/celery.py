"""Scenario 7 (issue 6): the Celery executor, and celery beat + django-celery-beat.

PostgreSQL + Redis pass only (the broker is the bench's Redis, under its key prefix).
Executions run on 2 Celery workers: two `celery -A config worker --pool prefork -c 1`
processes (two worker nodes of one pool process each, as two machines of a fleet
would run them), with the scheduler under test's environment and
SCHEDULER_EXECUTOR=celery; `runscheduler` sends each execution to their queue.

  a. run-now throughput: scenario 4 (1000 requests in one go), executed on the workers;
  b. burst: scenario 2 (5000 cron tasks due at the same instant), executed on the workers;
  c. lateness at 200 tasks/s: scenario 1 (spread), executed on the workers; lateness =
     started_at - scheduled_for, started_at being the worker's claim of the run;
  d. the same 200 tasks/s on celery beat (DatabaseScheduler of django-celery-beat) and one
     worker (-c 2), in a virtualenv of their own (bench/celerybeat_app.py); lateness =
     the task's start - its due time, the due time being last_run_at + 1 s as beat
     computes it (see bench/README.md); beat's CPU is sampled like our scheduler's.

The ratios ours / theirs (p99 lateness, scheduler CPU) print with the table, and at the
end of `python -m bench.run`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import burst, fires, throughput
from .common import (
    PYTHON,
    Context,
    Outcome,
    PostgresDatabase,
    Process,
    ProcSampler,
    base_env,
    next_whole_second,
    progress,
    sleep_until,
    summary_ms,
    wait_until,
)

#: Two worker nodes of one prefork pool process each: "2 workers".
NODES = 2
CONCURRENCY = 1
QUEUE = "bench-celery"
#: Worker start (Django setup, pool forked, consumer connected) on a busy 2-core machine.
WORKER_STARTUP_TIMEOUT = 60.0
#: The burst's runs take longer on 2 worker processes than inline (its tasks are then
#: hourly, not once a minute: the next fires do not come during the wait).
BURST_TIMEOUT_SECONDS = 170.0
#: Load of the lateness comparison (tasks every 1 s, spread).
RATE = 200

BEAT_QUEUE = "bench-beat"
#: What the comparison's virtualenv gets (the project's Celery release).
BEAT_REQUIREMENTS = [
    "django==5.2.*",
    "celery[redis]==5.7.0",
    "django-celery-beat",
    "psycopg[binary]",
]
PIP_TIMEOUT = 600.0
#: Between scheduling the periodic tasks and T0 (beat's start and initial read).
BEAT_LEAD_SECONDS = 8.0
#: After the window: beat keeps sending until then, and the worker drains after.
BEAT_DRAIN_SECONDS = 3.0


def _broker_app(url: str, prefix: str) -> Any:
    """A Celery app of the bench process on a broker (only to ping workers)."""
    from celery import Celery

    app = Celery("bench", set_as_current=False)
    app.conf.update(
        broker_url=url,
        broker_transport_options={"global_keyprefix": prefix},
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
    )
    return app


def _wait_pong(app: Any, nodes: list[str], processes: list[Process]) -> None:
    """Until every node answers `ping` (its consumer is connected and takes work)."""
    missing = set(nodes)

    def answered() -> bool:
        for process in processes:
            if not process.alive():
                raise RuntimeError("a Celery worker exited:\n" + process.log_tail())
        for reply in app.control.ping(destination=sorted(missing), timeout=0.5) or []:
            missing.difference_update(reply)
        return not missing

    if not wait_until(answered, timeout=WORKER_STARTUP_TIMEOUT, every=0.2):
        raise RuntimeError(
            "Celery worker(s) %s did not answer:\n%s"
            % (", ".join(sorted(missing)), "\n".join(p.log_tail() for p in processes))
        )


class CeleryWorkers:
    """`celery -A config worker` processes (bench.common.Workers) on the bench's broker."""

    def __init__(
        self, ctx: Context, *, nodes: int = NODES, concurrency: int = CONCURRENCY
    ):
        assert isinstance(ctx.db, PostgresDatabase)
        self.ctx = ctx
        self.db: PostgresDatabase = ctx.db
        self.nodes = nodes
        self.concurrency = concurrency
        self.processes: list[Process] = []
        self.samplers: list[ProcSampler] = []

    def describe(self) -> str:
        return "%d x `celery -A config worker --pool prefork -c %d -Q %s`" % (
            self.nodes,
            self.concurrency,
            QUEUE,
        )

    def scheduler_env(self) -> dict[str, str]:
        return {"SCHEDULER_EXECUTOR": "celery", "SCHEDULER_DEFAULT_QUEUE": QUEUE}

    def start(self, name: str) -> None:
        env = {
            **base_env(),
            **self.db.env(),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            **self.scheduler_env(),
        }
        host = socket.gethostname()
        nodes = []
        for number in range(1, self.nodes + 1):
            node = "bench%d-w%d@%s" % (os.getpid(), number, host)
            nodes.append(node)
            process = Process(
                [
                    PYTHON,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "--pool",
                    "prefork",
                    "-c",
                    str(self.concurrency),
                    "-Q",
                    QUEUE,
                    "-n",
                    node,
                    "--without-mingle",
                    "--without-gossip",
                    "--loglevel",
                    "WARNING",
                ],
                env=env,
                log=self.ctx.workdir
                / ("%s-%s-worker%d.log" % (self.db.label, name, number)),
                session=True,
            )
            self.processes.append(process.start())
            self.samplers.append(ProcSampler(process.pid, session=True).start())
        app = _broker_app(self.db.redis_url, self.db.prefix)
        try:
            _wait_pong(app, nodes, self.processes)
        finally:
            app.close()

    def figures(self, start: float, end: float) -> dict[str, Any]:
        cpu = [sampler.cpu_percent(start, end) for sampler in self.samplers]
        rss = [sampler.peak_rss_mb(start, end) for sampler in self.samplers]
        return {
            "workers": self.describe(),
            "workers_cpu_percent": _total(cpu),
            "workers_peak_rss_mb": _total(rss),
        }

    def stop(self) -> None:
        for sampler in self.samplers:
            sampler.stop()
        for process in self.processes:
            process.stop(timeout=20)
        self.samplers, self.processes = [], []


def _total(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def _others(metrics: dict) -> float | None:
    """Other processes' CPU: the scheduler's sampler counts the workers as others."""
    others, workers = (
        metrics.get("others_cpu_percent"),
        metrics.get("workers_cpu_percent"),
    )
    if others is None:
        return None
    return max(0.0, others - (workers or 0.0))


# -- celery beat + django-celery-beat ----------------------------------------------------


class Skipped(Exception):
    """The comparison cannot run here (its reason is printed)."""


def beat_virtualenv(path: Path) -> Path:
    """The comparison's virtualenv (created and filled with pip when missing); its python."""
    python = path / "bin" / "python"
    marker = path / ".bench-installed"
    if marker.exists():
        return python
    print(
        "   creating %s (pip install %s) ..." % (path, " ".join(BEAT_REQUIREMENTS)),
        flush=True,
    )
    started = time.monotonic()
    try:
        subprocess.run(
            [PYTHON, "-m", "venv", str(path)],
            check=True,
            capture_output=True,
            text=True,
        )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *BEAT_REQUIREMENTS],
            check=True,
            capture_output=True,
            text=True,
            timeout=PIP_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise Skipped("pip install took over %.0f s" % PIP_TIMEOUT) from None
    except (OSError, subprocess.CalledProcessError) as exc:
        output = getattr(exc, "stderr", "") or getattr(exc, "stdout", "") or str(exc)
        lines = [line for line in output.splitlines() if line.strip()]
        raise Skipped(
            "could not install %s: %s"
            % (" ".join(BEAT_REQUIREMENTS), (lines or [str(exc)])[-1])
        ) from None
    marker.write_text(str(time.time()))
    print("   (virtualenv ready in %.0f s)" % (time.monotonic() - started), flush=True)
    return python


def _beat_run(python: Path, env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [str(python), "-m", "bench.celerybeat_app", *args],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(
            "celerybeat_app %s failed:\n%s%s" % (args[0], done.stdout, done.stderr)
        )


def beat_stats(records: list[list[Any]], *, t0: float, end: float, count: int) -> dict:
    """Lateness of beat's runs from the worker's records [index, due, sent, started].

    `due` is the due time beat acted on (last_run_at + 1 s, stamped by
    celerybeat_app.DueStampingScheduler); runs due in [t0, end) count. A run due in
    the window whose message never started is not recorded: after the last record of
    a task, its later runs are estimated 1 s apart and counted as not run.
    """
    runs: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
    unstamped = 0
    for index, due, sent, started in records:
        if due is None or sent is None:
            unstamped += 1
            continue
        runs[int(index)].append((float(due), float(sent), float(started)))
    lateness, send_lag, unstarted = [], [], 0
    for index in range(count):
        last_sent = None
        for due, sent, started in sorted(runs.get(index, [])):
            last_sent = sent
            if t0 <= due < end:
                lateness.append(started - due)
                send_lag.append(sent - due)
        due = last_sent + 1.0 if last_sent is not None else t0 + index / count
        while due < end:
            unstarted += due >= t0
            due += 1.0
    nominal = sum(max(0, math.ceil(end - (t0 + i / count))) for i in range(count))
    return {
        "tasks": count,
        "nominal": nominal,
        "scheduled": len(lateness) + unstarted,
        "ran": len(lateness),
        "unstarted": unstarted,
        "unstamped": unstamped,
        "lateness_ms": summary_ms(lateness),
        "send_lag_ms": summary_ms(send_lag),
    }


def measure_beat(ctx: Context, venv: Path) -> dict:
    """200 tasks every 1 s (spread) on celery beat + django-celery-beat and one worker."""
    import redis

    db = ctx.db
    assert isinstance(db, PostgresDatabase)
    python = beat_virtualenv(venv)
    ctx.settle()
    db.reset()
    prefix = db.prefix + "beat:"  # under the bench's prefix: deleted with its keys
    env = {
        **base_env(),
        "BEAT_DATABASE_URL": db.url(db.name),
        "BEAT_BROKER_URL": db.redis_url,
        "BEAT_PREFIX": prefix,
        "BEAT_QUEUE": BEAT_QUEUE,
    }
    celery = str(python.parent / "celery")
    _beat_run(python, env, "migrate")
    node = "bench%d-beatworker@%s" % (os.getpid(), socket.gethostname())
    worker = Process(
        [
            celery,
            "-A",
            "bench.celerybeat_app",
            "worker",
            "--pool",
            "prefork",
            "-c",
            "2",
            "-Q",
            BEAT_QUEUE,
            "-n",
            node,
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        log=ctx.workdir / ("%s-celerybeat-worker.log" % db.label),
        session=True,
    )
    beat = Process(
        [
            celery,
            "-A",
            "bench.celerybeat_app",
            "beat",
            "-S",
            "bench.celerybeat_app:DueStampingScheduler",
            "-s",
            str(ctx.workdir / "celerybeat-schedule"),
            "--loglevel",
            "WARNING",
        ],
        env=env,
        log=ctx.workdir / ("%s-celerybeat.log" % db.label),
    )
    client = redis.Redis.from_url(db.redis_url)
    worker_sampler = beat_sampler = None
    try:
        worker.start()
        worker_sampler = ProcSampler(worker.pid, session=True).start()
        app = _broker_app(db.redis_url, prefix)
        try:
            _wait_pong(app, [node], [worker])
        finally:
            app.close()
        t0 = next_whole_second(time.time() + BEAT_LEAD_SECONDS)
        end = t0 + ctx.duration
        _beat_run(python, env, "schedule", "--tasks", str(RATE), "--t0", repr(t0))
        beat.start()
        beat_sampler = ctx.sampler(beat.pid)
        beat_started = time.time()
        sleep_until(end + 1.0)
        if not beat.alive():
            raise RuntimeError("celery beat exited:\n" + beat.log_tail())
        cpu = beat_sampler.cpu_percent(t0, end)
        rss = beat_sampler.peak_rss_mb(t0, end)
        db_cpu = beat_sampler.db_percent(t0, end)
        host_others = beat_sampler.others_percent(t0, end)
        worker_cpu = worker_sampler.cpu_percent(t0, end)
        beat.stop(timeout=15)
        # The worker runs what beat sent before it stopped.
        wait_until(
            lambda: not client.llen(prefix + BEAT_QUEUE), timeout=BEAT_DRAIN_SECONDS * 5
        )
        time.sleep(BEAT_DRAIN_SECONDS)
        left = int(client.llen(prefix + BEAT_QUEUE))
    finally:
        for sampler in (beat_sampler, worker_sampler):
            if sampler is not None:
                sampler.stop()
        beat.stop(timeout=15)
        worker.stop(timeout=20)
    records = [json.loads(item) for item in client.lrange(prefix + "records", 0, -1)]
    client.close()
    stats = beat_stats(records, t0=t0, end=end, count=RATE)
    return {
        **stats,
        "cpu_percent": cpu,
        "peak_rss_mb": rss,
        "db_cpu_percent": db_cpu,
        "workers_cpu_percent": worker_cpu,
        "others_cpu_percent": (
            max(0.0, host_others - (worker_cpu or 0.0))
            if host_others is not None
            else None
        ),
        "left_in_queue": left,
        "started_before_t0_s": t0 - beat_started,
    }


# -- the scenario ----------------------------------------------------------------------


HEADERS = [
    "measure",
    "runs",
    "success / ran",
    "all started s",
    "all recorded s",
    "rate /s",
    "late p50 ms",
    "late p99 ms",
    "late max ms",
    "missed",
    "scheduler CPU %",
    "workers CPU %",
    "DB CPU %",
    "others CPU %",
]


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "-"
    if theirs == 0:
        return "0 vs 0" if ours == 0 else "inf"
    return "%.3g" % (ours / theirs)


def ratios(metrics: dict) -> list[list[Any]]:
    """Ours (Celery executor) vs celery beat at 200 tasks/s: what, ours, theirs, ratio."""
    ours, theirs = metrics.get("lateness-200"), metrics.get("beat-200")
    if not ours or not theirs or "lateness_ms" not in theirs:
        return []
    rows = []
    for what, get in (
        ("lateness p50 ms", lambda r: r["lateness_ms"]["p50"]),
        ("lateness p99 ms", lambda r: r["lateness_ms"]["p99"]),
        ("scheduler CPU % (runscheduler vs beat)", lambda r: r["cpu_percent"]),
        ("workers CPU %", lambda r: r.get("workers_cpu_percent")),
        ("DB backends CPU %", lambda r: r.get("db_cpu_percent")),
    ):
        a, b = get(ours), get(theirs)
        rows.append([what, a, b, _ratio(a, b)])
    return rows


def run(ctx: Context, *, beat_venv: Path | None = None, beat: bool = True) -> Outcome:
    workers_note = "%d x `celery -A config worker --pool prefork -c %d`" % (
        NODES,
        CONCURRENCY,
    )
    outcome = Outcome(
        "celery",
        "7. Celery executor (SCHEDULER_EXECUTOR=celery, %s) and celery beat"
        % workers_note,
        HEADERS,
    )
    if not (isinstance(ctx.db, PostgresDatabase) and ctx.db.redis):
        reason = (
            "skipped: the Celery executor needs Redis as its broker (the postgres backend "
            "with Redis only)"
        )
        print("   " + reason, flush=True)
        outcome.headers, outcome.rows = ["status"], [[reason]]
        return outcome
    workers = CeleryWorkers(ctx)

    runnow = throughput.measure(ctx, workers=workers, name="celery-throughput")
    outcome.metrics["throughput"] = runnow
    outcome.rows.append(
        [
            "run-now %d" % runnow["requests"],
            runnow["requests"],
            runnow["succeeded"],
            runnow["all_started_s"],
            runnow["all_finished_s"],
            runnow["rate_per_s"],
            None,
            None,
            None,
            runnow["requests"] - runnow["succeeded"],
            runnow["cpu_percent"],
            runnow["workers_cpu_percent"],
            runnow["db_cpu_percent"],
            _others(runnow),
        ]
    )
    print("    run-now: %s" % _brief(outcome.rows[-1]), flush=True)

    spike = burst.measure(
        ctx, workers=workers, name="celery-burst", timeout=BURST_TIMEOUT_SECONDS
    )
    outcome.metrics["burst"] = spike
    outcome.rows.append(
        [
            "burst %d" % spike["tasks"],
            spike["tasks"],
            spike["succeeded"],
            spike["all_started_s"],
            spike["all_recorded_s"],
            spike["rate_per_s"],
            spike["start_lateness_ms"]["p50"],
            spike["start_lateness_ms"]["p99"],
            spike["start_lateness_ms"]["max"],
            spike["tasks"] - spike["succeeded"],
            spike["cpu_percent"],
            spike["workers_cpu_percent"],
            spike["db_cpu_percent"],
            _others(spike),
        ]
    )
    print("    burst: %s" % _brief(outcome.rows[-1]), flush=True)
    if spike["succeeded"] < spike["tasks"]:
        outcome.notes.append(
            "burst: only %d of %d succeeded within %.0f s of the due instant (rate: of "
            "those)" % (spike["succeeded"], spike["tasks"], BURST_TIMEOUT_SECONDS)
        )

    late = fires.measure(ctx, RATE, "spread", workers=workers, name="celery-fires-200")
    outcome.metrics["lateness-%d" % RATE] = late
    outcome.rows.append(
        [
            "%d tasks/s spread, %d s" % (RATE, ctx.duration),
            late["expected"],
            late["ran"],
            None,
            None,
            None,
            late["lateness_ms"]["p50"],
            late["lateness_ms"]["p99"],
            late["lateness_ms"]["max"],
            late["missed"],
            late["cpu_percent"],
            late["workers_cpu_percent"],
            late["db_cpu_percent"],
            _others(late),
        ]
    )
    print("    lateness: %s" % _brief(outcome.rows[-1]), flush=True)
    if late["ready_before_t0_s"] < 0:
        outcome.notes.append(
            "%d tasks/s: the scheduler led only %.1f s after T0"
            % (RATE, -late["ready_before_t0_s"])
        )
    if late["unstarted"]:
        outcome.notes.append(
            "%d tasks/s: %d of the missed runs were still pending (queued for the workers) "
            "when the scheduler stopped, %.0f s after the window"
            % (RATE, late["unstarted"], fires.DRAIN_SECONDS)
        )
    if late["duplicates"]:
        outcome.notes.append(
            "%d tasks/s: %d duplicate runs" % (RATE, late["duplicates"])
        )

    if not beat:
        return outcome
    try:
        theirs = measure_beat(ctx, beat_venv or ctx.workdir / "beatvenv")
    except Skipped as exc:
        outcome.metrics["beat-%d" % RATE] = {"skipped": str(exc)}
        outcome.notes.append("celery beat comparison skipped: %s" % exc)
        print("   " + outcome.notes[-1], flush=True)
        return outcome
    outcome.metrics["beat-%d" % RATE] = theirs
    outcome.rows.append(
        [
            "celery beat + django-celery-beat, %d/s" % RATE,
            theirs["scheduled"],
            theirs["ran"],
            None,
            None,
            None,
            theirs["lateness_ms"]["p50"],
            theirs["lateness_ms"]["p99"],
            theirs["lateness_ms"]["max"],
            theirs["scheduled"] - theirs["ran"],
            theirs["cpu_percent"],
            theirs["workers_cpu_percent"],
            theirs["db_cpu_percent"],
            theirs["others_cpu_percent"],
        ]
    )
    print("    celery beat: %s" % _brief(outcome.rows[-1]), flush=True)
    outcome.notes.append(
        "celery beat: %d runs due in the window by its own schedule (each 1 s after it sent "
        "the previous one) against %d on a fixed 1 s grid; beat sent them %s / %s / %s ms "
        "(p50 / p99 / max) after their due time"
        % (
            theirs["scheduled"],
            theirs["nominal"],
            _ms(theirs["send_lag_ms"]["p50"]),
            _ms(theirs["send_lag_ms"]["p99"]),
            _ms(theirs["send_lag_ms"]["max"]),
        )
    )
    if theirs["started_before_t0_s"] < 1.0:
        outcome.notes.append(
            "celery beat started only %.1f s before T0" % theirs["started_before_t0_s"]
        )
    if theirs["left_in_queue"] or theirs["unstamped"]:
        outcome.notes.append(
            "celery beat: %d messages left in the queue, %d runs without a send stamp"
            % (theirs["left_in_queue"], theirs["unstamped"])
        )
    outcome.metrics["ratios"] = ratios(outcome.metrics)
    for what, a, b, ratio in outcome.metrics["ratios"]:
        outcome.notes.append(
            "ours / celery beat, %s: %s / %s = %s" % (what, _ms(a), _ms(b), ratio)
        )
    return outcome


def _ms(value: float | None) -> str:
    return "-" if value is None else "%.1f" % value


def _brief(row: list[Any]) -> str:
    return progress(row)
