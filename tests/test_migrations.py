"""The migrations describe the models exactly: no change is waiting to be written.

The models' constraints are built from the choice enums (scheduler_app/choices.py);
a reordered or renamed member would show here as a migration to write.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@pytest.mark.django_db
def test_the_models_need_no_new_migration() -> None:
    # --check exits non-zero (SystemExit) when a migration is missing.
    call_command("makemigrations", "scheduler_app", "--check", "--dry-run", verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_the_duration_totals_are_filled_from_the_history() -> None:
    executor = MigrationExecutor(connection)
    before = [("scheduler_app", "0010_missed_status")]
    after = [("scheduler_app", "0011_task_duration_totals")]
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    Task = apps.get_model("scheduler_app", "ScheduledTask")
    Execution = apps.get_model("scheduler_app", "TaskExecution")
    timed = Task.objects.create(name="timed", task_type="manual", handler_path="x:y")
    never = Task.objects.create(name="never", task_type="manual", handler_path="x:y")
    for status, duration in [
        ("success", 100),
        ("failed", 300),
        ("success", None),  # ended without a start time: no duration
        ("skipped", 5000),
        ("cancelled", 7000),
        ("running", None),
    ]:
        Execution.objects.create(task=timed, status=status, duration_ms=duration)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    apps = executor.loader.project_state(after).apps
    Task = apps.get_model("scheduler_app", "ScheduledTask")

    assert {
        name: (count, total)
        for name, count, total in Task.objects.filter(
            pk__in=[timed.pk, never.pk]
        ).values_list("name", "duration_count", "duration_total_ms")
    } == {"timed": (2, 400), "never": (0, 0)}
    # Back to the latest state for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
