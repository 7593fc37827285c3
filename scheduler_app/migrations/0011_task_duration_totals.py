"""Running totals of run durations on the task (the average is their quotient).

The totals are filled from the executions kept so far (succeeded or failed runs
with a duration), as the engine adds them up from now on. The index serves the
executions of one task in the lists' order (newest id first).
"""

from django.db import migrations, models
from django.db.models import Count, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

#: The statuses whose runs count towards the average (those of ExecutionStatus).
TIMED_STATUSES = ["success", "failed"]


def fill_duration_totals(apps, schema_editor):
    ScheduledTask = apps.get_model("scheduler_app", "ScheduledTask")
    TaskExecution = apps.get_model("scheduler_app", "TaskExecution")
    timed = (
        TaskExecution.objects.using(schema_editor.connection.alias)
        .filter(
            task=OuterRef("pk"),
            status__in=TIMED_STATUSES,
            duration_ms__isnull=False,
        )
        .order_by()
        .values("task")
    )
    ScheduledTask.objects.using(schema_editor.connection.alias).update(
        duration_total_ms=Coalesce(
            Subquery(timed.annotate(total=Sum("duration_ms")).values("total")), 0
        ),
        duration_count=Coalesce(
            Subquery(
                timed.annotate(count=Count("pk")).values("count"),
                output_field=IntegerField(),
            ),
            0,
        ),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler_app", "0010_missed_status"),
    ]

    operations = [
        migrations.AddField(
            model_name="scheduledtask",
            name="duration_count",
            field=models.PositiveIntegerField(
                default=0,
                help_text="How many finished runs the total duration adds up, e.g. 5.",
                verbose_name="timed runs",
            ),
        ),
        migrations.AddField(
            model_name="scheduledtask",
            name="duration_total_ms",
            field=models.PositiveBigIntegerField(
                default=0,
                help_text="Sum of the durations of the finished runs, e.g. 12500.",
                verbose_name="total duration (ms)",
            ),
        ),
        migrations.RunPython(fill_duration_totals, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="taskexecution",
            index=models.Index(fields=["task", "-id"], name="exec_task_id_idx"),
        ),
    ]
