"""`manage.py run_task <name>`: run one task now, in the foreground, through the execution path."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scheduler_app.controls import escape_controls
from scheduler_app.exceptions import SchedulerError
from scheduler_app.models import TaskExecution
from scheduler_app.runtime import capture
from scheduler_app.services import (
    CLI,
    TaskInvalid,
    execution_run,
    instance_as_cli,
    instance_heartbeating,
    task_get,
    task_request_run,
)


def _parse_param(text: str) -> tuple[str, str]:
    name, sep, expression = text.partition("=")
    if not sep or not name.strip():
        raise CommandError(
            "--param %r: write it as name=expression, e.g. --param days=7 "
            'or --param "since=date.today() - timedelta(days=1)".' % text
        )
    return name.strip(), expression


class Command(BaseCommand):
    """Run a task in the foreground, printing what its handler wrote, escaped.

    Control characters are escaped (`escape_controls`): a handler cannot send
    escape sequences to the operator's terminal.
    """

    help = (
        "Run a task now in the foreground: streams its log, prints its result, records "
        "a 'cli' execution and exits non-zero when the run fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Task name (or id).")
        parser.add_argument(
            "--param",
            action="append",
            default=[],
            metavar="NAME=EXPR",
            help="Override a parameter for this run (a safe_eval expression). Repeatable.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        overrides = dict(_parse_param(text) for text in options["param"])
        try:
            task = task_get(options["name"])
            execution = task_request_run(
                task=task,
                trigger_type=TaskExecution.TriggerType.CLI,
                overrides=overrides,
                origin=CLI,
            )
        except TaskInvalid as exc:
            raise CommandError(
                "\n".join(error.message for error in exc.errors)
            ) from exc
        except SchedulerError as exc:
            raise CommandError(exc.message) from exc

        self.stdout.write(
            "Running task %s (execution #%s)…" % (task.name, execution.pk)
        )
        capture.install()  # the handler's print() and logging go to its run's log
        # It heartbeats while its run goes on, as a run_task process: no scheduler.
        with instance_as_cli(), instance_heartbeating():
            execution = execution_run(
                execution=execution,
                log_listener=lambda line: self.stdout.write(escape_controls(line)),
                echo=False,
            )

        if execution.result is not None:
            self.stdout.write(
                escape_controls(
                    json.dumps(
                        execution.result, indent=2, ensure_ascii=False, default=str
                    )
                )
            )
        summary = "Execution #%s: %s in %s ms" % (
            execution.pk,
            execution.status,
            execution.duration_ms,
        )
        if execution.status == TaskExecution.Status.SUCCESS:
            self.stdout.write(self.style.SUCCESS(summary))
            return
        if execution.error_traceback:
            self.stderr.write(escape_controls(execution.error_traceback))
        if execution.status == TaskExecution.Status.SKIPPED:
            message = (execution.result or {}).get("message", "")
            raise CommandError(
                "%s. %s" % (summary, escape_controls(str(message))), returncode=2
            )
        raise CommandError(
            "%s. %s" % (summary, escape_controls(execution.error_message))
        )
