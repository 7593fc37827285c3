"""Create the system tasks (cleanup_executions, daily at 02:00) once; never overwrite edits."""

from django.db import migrations

SYSTEM_TASKS = [
    {
        "name": "cleanup_executions",
        "description": "Delete execution records older than SCHEDULER_HISTORY_DAYS (30 by default).",
        "task_type": "cron",
        "cron_expression": "0 2 * * *",
        "handler_path": "scripts:cleanup_executions",
        "is_system": True,
    },
]


def create_system_tasks(apps, schema_editor):
    ScheduledTask = apps.get_model("scheduler_app", "ScheduledTask")
    for fields in SYSTEM_TASKS:
        # get_or_create: a task the admin already edited (or renamed around) stays as is.
        # next_run_at is left empty; the scheduler computes it when it loads the task.
        ScheduledTask.objects.get_or_create(name=fields["name"], defaults=fields)


class Migration(migrations.Migration):
    dependencies = [("scheduler_app", "0001_initial")]

    operations = [migrations.RunPython(create_system_tasks, migrations.RunPython.noop)]
