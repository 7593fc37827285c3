"""Scenario 6: the scenario-1 workload on django-apscheduler's documented setup.

bench/djapscheduler_runner.py runs it (BlockingScheduler + DjangoJobStore, as
django-apscheduler's README shows) on a fresh copy of the same database. Each run
is recorded by django-apscheduler itself as a DjangoJobExecution row.

  lateness  start of the job function - its scheduled run time (from the
            EVENT_JOB_EXECUTED listener; runs of one job are paired in order,
            which max_instances=1 makes sequential)
  missed    expected fires - DjangoJobExecution rows with status "Executed"
  duplicates runs beyond the first for one (job, scheduled time)
plus the process's CPU and peak RSS, and how much of the wall time the job store's
per-fire writes took (the reason DjangoJobStore is not this project's live store).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter, defaultdict

from django.db.models import Avg
from django.db.models.functions import Length
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from .common import (
    PYTHON,
    Context,
    Outcome,
    Process,
    base_env,
    next_whole_second,
    progress,
    sleep_until,
    summary_ms,
    utc,
    wait_until,
)
from .fires import DRAIN_SECONDS

#: Their scheduler inserts one DjangoJob row per job at start, one transaction each.
LEAD_SECONDS = 12.0


def measure(ctx: Context, count: int, phase: str) -> dict:
    ctx.settle()
    ctx.db.reset()
    t0 = next_whole_second(time.time() + LEAD_SECONDS)
    end = t0 + ctx.duration
    name = "djapscheduler-%d-%s" % (count, phase)
    out = ctx.workdir / ("%s-%s.json" % (ctx.db.label, name))
    ready = ctx.workdir / ("%s-%s.ready" % (ctx.db.label, name))
    for path in (out, ready):
        path.unlink(missing_ok=True)
    env = {**base_env(), **ctx.db.env(), "DJANGO_SETTINGS_MODULE": "bench.settings"}
    process = Process(
        [
            PYTHON,
            "-m",
            "bench.djapscheduler_runner",
            "--tasks",
            str(count),
            "--phase",
            phase,
            "--t0",
            repr(t0),
            "--out",
            str(out),
            "--ready",
            str(ready),
        ],
        env=env,
        log=ctx.workdir / ("%s-%s.log" % (ctx.db.label, name)),
    )
    process.start()
    sampler = ctx.sampler(process.pid)
    try:
        if not wait_until(ready.exists, timeout=LEAD_SECONDS + 30, every=0.05):
            raise RuntimeError(
                "django-apscheduler did not start:\n" + process.log_tail()
            )
        ready_at = float(ready.read_text() or time.time())
        sleep_until(end + DRAIN_SECONDS)
        cpu = sampler.cpu_percent(t0, end)
        rss = sampler.peak_rss_mb(t0, end)
        others = sampler.others_percent(t0, end)
        db_cpu = sampler.db_percent(t0, end)
    finally:
        sampler.stop()
        # Its results are on disk once SIGTERM is handled; a stuck shutdown is killed.
        process.stop(timeout=15)
    if not out.exists():
        raise RuntimeError(
            "django-apscheduler wrote no results:\n" + process.log_tail()
        )
    data = json.loads(out.read_text())

    offsets = [(i / count if phase == "spread" else 0.0) for i in range(count)]
    expected = sum(max(0, math.ceil(end - (t0 + offset))) for offset in offsets)
    starts: dict[int, list[float]] = defaultdict(list)
    for index, at in data["starts"]:
        starts[index].append(at)
    scheduled: dict[int, list[float]] = defaultdict(list)
    for job_id, at in data["executed"]:
        if job_id.startswith("bench-"):
            scheduled[int(job_id.split("-")[1])].append(at)
    lateness = []
    per_fire: Counter[tuple[int, float]] = Counter()
    for index, times in scheduled.items():
        for when, began in zip(sorted(times), sorted(starts[index]), strict=False):
            if t0 <= when < end:
                lateness.append(began - when)
                per_fire[(index, round(when, 6))] += 1
    recorded = DjangoJobExecution.objects.filter(
        job__id__startswith="bench-",
        run_time__gte=utc(t0),
        run_time__lt=utc(end),
        status=DjangoJobExecution.SUCCESS,
    ).count()
    pickled = DjangoJob.objects.filter(id__startswith="bench-").aggregate(
        size=Avg(Length("job_state"))
    )["size"]
    timings = data["timings"]
    # update_job runs from the first fire until SIGTERM (window + drain).
    firing = end + DRAIN_SECONDS - t0
    return {
        "tasks": count,
        "phase": phase,
        "ready_before_t0_s": t0 - ready_at,
        "expected": expected,
        "ran": len(per_fire),
        "recorded": recorded,
        "missed": expected - recorded,
        "duplicates": sum(n - 1 for n in per_fire.values() if n > 1),
        "refused": data["refused"],
        "lateness_ms": summary_ms(lateness),
        "cpu_percent": cpu,
        "peak_rss_mb": rss,
        "db_cpu_percent": db_cpu,
        "others_cpu_percent": others,
        "job_state_bytes": pickled,
        "timings": timings,
        # Share of the time the single scheduler thread spent rewriting job rows.
        "update_job_share": timings["update_job"]["seconds"] / firing,
        "update_job_per_fire_ms": (
            1000 * timings["update_job"]["seconds"] / timings["update_job"]["calls"]
            if timings["update_job"]["calls"]
            else None
        ),
    }


def run(ctx: Context, *, counts: list[int], phases: list[str]) -> Outcome:
    outcome = Outcome(
        "djapscheduler",
        "6. django-apscheduler 0.7.0 (BlockingScheduler + DjangoJobStore), same workload, %d s"
        % ctx.duration,
        [
            "tasks",
            "phase",
            "expected",
            "ran",
            "recorded",
            "missed",
            "dups",
            "late p50 ms",
            "late p99 ms",
            "late max ms",
            "CPU %",
            "peak RSS MB",
            "DB CPU %",
            "others CPU %",
            "update_job calls",
            "update_job ms/call",
            "update_job % wall",
            "max-inst/missed ev",
        ],
    )
    for count in counts:
        for phase in phases:
            result = measure(ctx, count, phase)
            outcome.metrics["%s-%d" % (phase, count)] = result
            late = result["lateness_ms"]
            cells = [
                count,
                phase,
                result["expected"],
                result["ran"],
                result["recorded"],
                result["missed"],
                result["duplicates"],
                late["p50"],
                late["p99"],
                late["max"],
                result["cpu_percent"],
                result["peak_rss_mb"],
                result["db_cpu_percent"],
                result["others_cpu_percent"],
                result["timings"]["update_job"]["calls"],
                result["update_job_per_fire_ms"],
                100 * result["update_job_share"],
                "%d/%d"
                % (result["refused"]["max_instances"], result["refused"]["missed"]),
            ]
            outcome.rows.append(cells)
            print("   ", progress(cells), flush=True)
            if result["ready_before_t0_s"] < 0:
                outcome.notes.append(
                    "%d %s: django-apscheduler started %.1f s after T0"
                    % (count, phase, -result["ready_before_t0_s"])
                )
            outcome.notes.append(
                "%d %s: pickled job_state %.0f bytes per row, rewritten by update_job on every fire"
                % (count, phase, result["job_state_bytes"] or 0)
            )
    return outcome
