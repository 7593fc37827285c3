"""`manage.py import_apscheduler_jobs`: bring a django-apscheduler installation's jobs over."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scheduler_app.exceptions import SchedulerError
from scheduler_app.services import IMPORT
from scheduler_app.services.imports import tasks_import_from_apscheduler


class Command(BaseCommand):
    help = (
        "Create a task for each job in django-apscheduler's DjangoJobStore table "
        "(django_apscheduler_djangojob). Imported tasks are paused unless --active: stop "
        "the old scheduler first, then resume them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--active",
            action="store_true",
            help="Create the tasks active instead of paused.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = tasks_import_from_apscheduler(
                paused=not options["active"], origin=IMPORT
            )
        except SchedulerError as exc:
            raise CommandError(exc.message) from exc
        for name in report.created:
            if name in report.not_allowed:
                self.stdout.write(
                    "created  %s (paused: its callable is not a registered handler; "
                    "its description says what to register)" % name
                )
            else:
                self.stdout.write("created  %s" % name)
        for name in report.existing:
            self.stdout.write("exists   %s (left as it is)" % name)
        for job_id, reason in report.failed:
            self.stderr.write("skipped  %s: %s" % (job_id, reason))
        self.stdout.write(
            "%d created, %d already there, %d skipped"
            % (len(report.created), len(report.existing), len(report.failed))
        )
        if report.failed:
            raise CommandError("Some jobs were not imported; see above.", returncode=2)
