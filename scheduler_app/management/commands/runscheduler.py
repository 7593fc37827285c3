"""`manage.py runscheduler`: the scheduler loop (fires tasks, starts run-now requests)."""

from __future__ import annotations

import errno
import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from scheduler_app import checks
from scheduler_app.choices import ExecutorName, Isolation
from scheduler_app.conf import app_settings
from scheduler_app.engine import metrics
from scheduler_app.engine.executor import InlineExecutor
from scheduler_app.engine.loop import Engine, Executor
from scheduler_app.engine.watch import Watch
from scheduler_app.services import tasks_with_refused_handlers

logger = logging.getLogger("scheduler_app.engine")


class Command(BaseCommand):
    # The settings and model checks only: the URL checks import the admin and the
    # API (20+ MB of a process that serves neither); `manage.py check` runs them all.
    requires_system_checks = [checks.TAG, Tags.models]
    help = (
        "Run the scheduler: fires due tasks, starts run-now requests and retries, applies "
        "changes made in the admin/API, heartbeats, and recovers runs of dead instances. "
        "Run several for a standby; one leads. Stops cleanly on SIGTERM/SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--grace",
            type=float,
            default=None,
            help="Seconds running executions get to finish on shutdown "
            "(default: SCHEDULER_SHUTDOWN_GRACE_SECONDS).",
        )
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=None,
            help="Serve this process's Prometheus figures (fire lateness, "
            "claim-to-start, fires, claims, loop tick delay) at "
            "http://ADDR:PORT/metrics (default: SCHEDULER_METRICS_PORT; 0: off, "
            "nothing listens).",
        )
        parser.add_argument(
            "--metrics-addr",
            default=None,
            help="The address --metrics-port listens on (default: "
            "SCHEDULER_METRICS_ADDR, 127.0.0.1; 0.0.0.0 or :: for every interface).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        grace = options["grace"]
        if grace is None:
            grace = float(app_settings.SCHEDULER_SHUTDOWN_GRACE_SECONDS)
        # Before the executor, which starts handler processes: a taken port stops
        # the command before anything else starts.
        server = serve_metrics(options["metrics_port"], options["metrics_addr"])
        try:
            self._run(grace)
        finally:
            if server is not None:
                server.close()

    def _run(self, grace: float) -> None:
        engine = Engine(executor=make_executor())
        stop = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            logger.info(
                "Received %s: stopping (grace %.0f s)",
                signal.Signals(signum).name,
                grace,
            )
            stop.set()
            engine.wake.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        logger.info(
            "Scheduler %s starting: database %s, redis %s, executor %s (%s), "
            "firing %s, leader election %s, time zone %s",
            engine.instance,
            settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "on" if app_settings.redis_url else "off",
            app_settings.SCHEDULER_EXECUTOR,
            (
                "default queue %s" % app_settings.SCHEDULER_DEFAULT_QUEUE
                if app_settings.SCHEDULER_EXECUTOR == ExecutorName.CELERY
                else (
                    "%d handler processes" % app_settings.SCHEDULER_WORKER_PROCESSES
                    if app_settings.SCHEDULER_ISOLATION == Isolation.PROCESS
                    else "%d threads" % app_settings.SCHEDULER_THREAD_POOL_SIZE
                )
            ),
            "on" if app_settings.SCHEDULER_ENABLED else "OFF (SCHEDULER_ENABLED=false)",
            "on" if app_settings.SCHEDULER_LEADER_LOCK_ENABLED else "off",
            settings.TIME_ZONE,
        )
        try:
            for name, reason in tasks_with_refused_handlers():
                logger.warning("Task %s will not run: %s", name, reason)
        except DatabaseError:  # the engine waits for the database, and says so
            logger.warning("Could not check the tasks' handlers", exc_info=True)
        engine.start()
        # Health and alerts: the leader's work, beside the loop (engine/watch.py).
        watch = Watch(
            is_leader=lambda: engine.leadership.is_leader,
            may_check=lambda: engine.rounds_led > 0,
            degraded=engine.degraded,
        )
        watch.start()
        try:
            engine.run_forever(stop)
        finally:
            watch.stop()
            engine.stop(grace_seconds=grace)


def serve_metrics(port: int | None, addr: str | None) -> metrics.Server | None:
    """The server of the process's figures (engine/metrics.py), or None when off.

    The option wins over its setting; port 0 (the default) is off.
    """
    port = app_settings.SCHEDULER_METRICS_PORT if port is None else port
    addr = app_settings.SCHEDULER_METRICS_ADDR if addr is None else addr
    if not port:
        return None
    if not 0 < port < 65536:
        raise CommandError(
            "--metrics-port (or SCHEDULER_METRICS_PORT) must be a TCP port, 1 to "
            "65535, or 0 for none; got %d." % port
        )
    try:
        server = metrics.serve(port, addr)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            advice = (
                "Another process listens there (another runscheduler on this "
                "machine?): give each its own port, or stop what listens there."
            )
        else:
            advice = (
                "--metrics-addr (or SCHEDULER_METRICS_ADDR) must be an address of "
                "this machine (127.0.0.1, 0.0.0.0, ::), and a port below 1024 "
                "needs privileges: choose another."
            )
        raise CommandError(
            "Cannot serve the metrics on %s port %d (--metrics-port, or "
            "SCHEDULER_METRICS_PORT): %s. %s"
            % (addr, port, error.strerror or error, advice)
        ) from error
    logger.info(
        "Serving the scheduler's Prometheus figures at http://%s:%d/metrics",
        "[%s]" % addr if ":" in addr else addr,
        port,
    )
    return server


def make_executor() -> Executor:
    """The executor SCHEDULER_EXECUTOR names: "inline" (threads here) or "celery"."""
    name = app_settings.SCHEDULER_EXECUTOR
    if name == ExecutorName.CELERY:
        from scheduler_app.engine.celery_executor import CeleryExecutor

        return CeleryExecutor()
    if name == ExecutorName.INLINE:
        isolation = app_settings.SCHEDULER_ISOLATION
        if isolation not in tuple(Isolation):
            raise CommandError(checks.ISOLATION_UNKNOWN % isolation)
        if isolation == Isolation.PROCESS:
            return InlineExecutor(
                app_settings.SCHEDULER_WORKER_PROCESSES, isolation=Isolation.PROCESS
            )
        return InlineExecutor(
            app_settings.SCHEDULER_THREAD_POOL_SIZE, isolation=Isolation.THREAD
        )
    raise CommandError(checks.EXECUTOR_UNKNOWN % name)
