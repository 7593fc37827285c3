"""`manage.py runscheduler`: the scheduler loop (fires tasks, starts run-now requests)."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from scheduler_app.conf import app_settings
from scheduler_app.engine.executor import InlineExecutor
from scheduler_app.engine.scheduler import Engine

logger = logging.getLogger("scheduler_app.engine")


class Command(BaseCommand):
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

    def handle(self, *args: Any, **options: Any) -> None:
        grace = options["grace"]
        if grace is None:
            grace = float(app_settings.SCHEDULER_SHUTDOWN_GRACE_SECONDS)
        engine = Engine(executor=InlineExecutor(app_settings.SCHEDULER_THREAD_POOL_SIZE))
        stop = threading.Event()

        def request_stop(signum: int, frame: Any) -> None:
            logger.info("Received %s: stopping (grace %.0f s)", signal.Signals(signum).name, grace)
            stop.set()
            engine.wake.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        logger.info(
            "Scheduler %s starting: database %s, redis %s, executor %s (%d threads), "
            "firing %s, leader election %s, time zone %s",
            engine.instance,
            settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
            "on" if app_settings.redis_url else "off",
            app_settings.SCHEDULER_EXECUTOR,
            app_settings.SCHEDULER_THREAD_POOL_SIZE,
            "on" if app_settings.SCHEDULER_ENABLED else "OFF (SCHEDULER_ENABLED=false)",
            "on" if app_settings.SCHEDULER_LEADER_LOCK_ENABLED else "off",
            settings.TIME_ZONE,
        )
        engine.start()
        try:
            engine.run_forever(stop)
        finally:
            engine.stop(grace_seconds=grace)
