"""The scheduler process's own figures, for Prometheus (`runscheduler --metrics-port`).

What no database query can give: how late fires start, how long a claimed run
waits for its handler to start, how many fires and claims this process makes, and
how late the engine's loop wakes. They live in a registry of this process
(`REGISTRY`), not prometheus_client's global one, and are only served when
runscheduler is asked to (`serve`, with --metrics-port or SCHEDULER_METRICS_PORT):
by default nothing listens.

The measuring points cost a few microseconds each (an `observe()` or an `inc()`,
no query, no lock of the engine's): they are made whether or not the figures are
served, so there is no switch to get wrong. No histogram has a label: one process
has one executor and one isolation, which the scrape's own `instance`/`job`
labels tell apart, and a task label would make a series per task.

- `scheduler_fire_lateness_seconds`: a scheduled fire's `scheduled_for` to its
  handler's start (`started_at`, the value its row gets), for the scheduled runs
  this process starts (not retries, whose delay is no lateness, nor run-now
  requests, which have no fire time).
- `scheduler_claim_to_start_seconds`: the moment a claimed run may start (its
  claim, or its fire time when it was claimed ahead of it, as staged fires are:
  waiting for its time is no delay) to its handler's start: the part of the
  lateness spent after the claim (a free thread, the GIL).
- `scheduler_fires_total`: scheduled fires the engine handed to its executor
  (each staged ahead as an execution row, handed over at or up to
  HANDOVER_AHEAD_SECONDS before its time). Fires dropped as missed, withdrawn
  after an edit, or left to another leader are not in it.
- `scheduler_claims_total`: executions this process claimed (pending -> running):
  scheduled fires, run-now requests and retries alike, including a `skip` run
  refused its lock at claim time. With SCHEDULER_EXECUTOR=celery the workers
  claim and start runs, so this and the two histograms above stay at 0 here.
- `scheduler_loop_tick_delay_seconds`: how much later than it meant the engine's
  loop woke from a sleep that ran its course (a wake-up by a notification or a
  stop is early by design, and not counted).
"""

from __future__ import annotations

import datetime as dt

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from ..choices import TriggerType
from ..runtime import threads
from ..runtime.run import Run
from ..services.metrics import PROCESS_METRICS

#: The process's registry: what --metrics-port serves, and nothing else.
REGISTRY = CollectorRegistry(auto_describe=True)

#: Seconds: a scheduler that fires within milliseconds, up to a minute behind.
BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

#: Names, types and help texts: the product's one list of them (services/metrics.py,
#: what the README and the Grafana dashboard are checked against).
_SPECS = {spec.name: spec for spec in PROCESS_METRICS}


def _histogram(name: str) -> Histogram:
    return Histogram(name, _SPECS[name].help, buckets=BUCKETS, registry=REGISTRY)


def _counter(name: str) -> Counter:
    return Counter(name, _SPECS[name].help, registry=REGISTRY)


FIRE_LATENESS = _histogram("scheduler_fire_lateness_seconds")
CLAIM_TO_START = _histogram("scheduler_claim_to_start_seconds")
FIRES = _counter("scheduler_fires_total")
CLAIMS = _counter("scheduler_claims_total")
LOOP_TICK_DELAY = _histogram("scheduler_loop_tick_delay_seconds")

_SCHEDULED = TriggerType.SCHEDULED.value


def run_started(run: Run, claimed_at: dt.datetime | None) -> None:
    """A claimed run's handler starts now (its execution's `started_at` says when).

    `claimed_at` is when it was claimed (the `started_at` the claim gave it).
    """
    execution = run.execution
    started = execution.started_at
    if started is None:
        return
    fire = execution.scheduled_for
    if fire is not None and execution.trigger_type == _SCHEDULED:
        FIRE_LATENESS.observe(max(0.0, (started - fire).total_seconds()))
    ready = claimed_at
    due = execution.run_after
    if due is not None and (ready is None or due > ready):
        ready = due
    if ready is not None:
        CLAIM_TO_START.observe(max(0.0, (started - ready).total_seconds()))


def fires_handed_over(count: int) -> None:
    """The engine handed `count` staged fires to its executor."""
    FIRES.inc(count)


def claimed(count: int) -> None:
    """The inline executor claimed `count` executions (not those given back early)."""
    CLAIMS.inc(count)


def loop_woke(late_seconds: float) -> None:
    """The loop woke `late_seconds` after the end of the sleep it meant (< 0: 0)."""
    LOOP_TICK_DELAY.observe(max(0.0, late_seconds))


class Server:
    """The HTTP server of REGISTRY on a port of this process (a daemon thread)."""

    def __init__(self, port: int, addr: str) -> None:
        """Listen on `addr`:`port` now; OSError if it cannot (the port is taken)."""
        self.port = port
        self.addr = addr
        self._httpd, self._thread = start_http_server(port, addr, registry=REGISTRY)
        # The thread is prometheus_client's: named as the list of threads says.
        self._thread.name = threads.ENGINE_METRICS.name

    def close(self) -> None:
        """Stop serving and free the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve(port: int, addr: str) -> Server:
    """Serve REGISTRY's figures at http://addr:port/metrics (any path answers)."""
    return Server(port, addr)
