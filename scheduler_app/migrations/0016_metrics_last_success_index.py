# Each task's latest success, for GET /metrics (the index's comment in models.py).
#
# On PostgreSQL the index is built CONCURRENTLY: a plain CREATE INDEX would
# block every insert and update of the executions table (fires, claims, ends)
# for as long as the build takes on a big history. That cannot run inside a
# transaction, hence atomic = False. SQLite builds it the ordinary way.

from django.db import migrations, models

INDEX = models.Index(
    condition=models.Q(("status", "success")),
    fields=["task", "-created_at"],
    name="exec_task_success_idx",
)


def create_index(apps, schema_editor):
    model = apps.get_model("scheduler_app", "TaskExecution")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.create_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.add_index(model, INDEX)


def drop_index(apps, schema_editor):
    model = apps.get_model("scheduler_app", "TaskExecution")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX.remove_sql(model, schema_editor, concurrently=True))
    else:
        schema_editor.remove_index(model, INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("scheduler_app", "0015_instance_kind_cli"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name="taskexecution", index=INDEX)
            ],
            database_operations=[migrations.RunPython(create_index, drop_index)],
        ),
    ]
