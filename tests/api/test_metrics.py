"""GET /metrics: who may read it, what it costs, and that its figures are the database's."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import ScheduledTask, SchedulerInstance, TaskExecution
from scheduler_app.services import (
    execution_cancel,
    execution_run,
    executions_cleanup,
    task_request_run,
)
from scheduler_app.services.metrics import ENDPOINT_METRICS, RECENT_RUNS, quantile
from tests.factories import make_execution, make_sample_task, make_task, make_user

pytestmark = pytest.mark.django_db

TOKEN = "s3cret-metrics-token"
Status = TaskExecution.Status


@pytest.fixture
def token(settings: Any) -> str:
    settings.SCHEDULER_METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client: Client | None = None, **headers: str) -> Any:
    return (client or Client()).get("/metrics", headers=headers)


def bearer(value: str) -> dict[str, str]:
    return {"authorization": "Bearer " + value}


def samples(response: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus_client's parser."""
    text = response.content.decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


# Who may read it ---------------------------------------------------------------------


def test_the_right_bearer_token_reads_the_metrics(token: str) -> None:
    response = scrape(**bearer(token))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert "# TYPE scheduler_task_runs_total counter" in response.content.decode()
    assert response["Cache-Control"].startswith("max-age=0")


def test_the_path_answers_with_and_without_the_trailing_slash(token: str) -> None:
    assert Client().get("/metrics/", headers=bearer(token)).status_code == 200


def test_no_token_is_refused_with_a_challenge(token: str) -> None:
    response = scrape()

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert (
        "Authorization: Bearer <SCHEDULER_METRICS_TOKEN>" in response.content.decode()
    )


def test_a_wrong_token_is_refused(token: str) -> None:
    for wrong in ("nope", token + "x", token[:-1], ""):
        response = scrape(**bearer(wrong))
        assert response.status_code == 401, wrong
        assert "is not SCHEDULER_METRICS_TOKEN" in response.content.decode()
    assert scrape(authorization="Basic " + token).status_code == 401


def test_without_a_configured_token_only_staff_may_read(settings: Any) -> None:
    settings.SCHEDULER_METRICS_TOKEN = ""

    anonymous = scrape()
    with_a_token = scrape(**bearer("anything"))

    assert anonymous.status_code == 401
    assert "no SCHEDULER_METRICS_TOKEN is set" in anonymous.content.decode()
    assert with_a_token.status_code == 403
    assert "No SCHEDULER_METRICS_TOKEN is set" in with_a_token.content.decode()


def test_a_staff_session_that_may_view_tasks_reads_the_metrics_and_no_other(
    settings: Any,
) -> None:
    settings.SCHEDULER_METRICS_TOKEN = ""
    make_task(name="secret-task")
    staff, user_admin, other = Client(), Client(), Client()
    staff.force_login(make_user("ops", "view_scheduledtask", is_staff=True))
    # Staff who manage something else (users, say) see no task through this.
    user_admin.force_login(make_user("users-only", is_staff=True))
    other.force_login(make_user("someone", "view_scheduledtask"))

    assert scrape(staff).status_code == 200
    for refused in (scrape(user_admin), scrape(other)):
        assert refused.status_code == 403
        assert "Only staff users who may view the tasks" in refused.content.decode()
        assert "secret-task" not in refused.content.decode()


def test_only_get_and_head_are_allowed(token: str) -> None:
    assert Client().post("/metrics", headers=bearer(token)).status_code == 405
    assert Client().head("/metrics", headers=bearer(token)).status_code == 200


# What it costs ------------------------------------------------------------------------


def make_tasks_with_history(count: int, prefix: str) -> None:
    """`count` tasks, each with runs of every status (a bulk insert, as a history)."""
    now = timezone.now()
    tasks = ScheduledTask.objects.bulk_create(
        ScheduledTask(
            name="%s-%03d" % (prefix, number),
            task_type=ScheduledTask.TaskType.INTERVAL,
            interval_seconds=60,
            handler_path="scripts:example_task",
            next_run_at=now,
            last_run_at=now,
            # What the engine's counters say of the history below.
            success_count=2,
            fail_count=2,
            skipped_count=2,
            cancelled_count=2,
        )
        for number in range(count)
    )
    statuses = [Status.SUCCESS, Status.FAILED, Status.SKIPPED, Status.CANCELLED]
    TaskExecution.objects.bulk_create(
        TaskExecution(
            task=task,
            status=status,
            trigger_type=TaskExecution.TriggerType.MANUAL,
            created_at=now - dt.timedelta(seconds=number),
            finished_at=now,
            duration_ms=10 * number,
        )
        for task in tasks
        for number, status in enumerate(statuses * 2)
    )


def test_the_run_counts_do_not_drop_when_the_cleanup_deletes_old_runs(
    token: str,
) -> None:
    task = make_sample_task("add", name="kept", handler_kwargs={"a": "2"})
    lock = get_lock_backend().acquire(
        task_lock_key(task.pk), owner="other", ttl_seconds=60
    )
    execution_run(execution=task_request_run(task=task))  # skipped
    get_lock_backend().release(task_lock_key(task.pk), lock)
    execution_cancel(execution=make_execution(task, status=Status.PENDING))
    before = samples(scrape(**bearer(token)))
    TaskExecution.objects.update(created_at=timezone.now() - dt.timedelta(days=400))

    executions_cleanup(days=30)

    after = samples(scrape(**bearer(token)))
    assert TaskExecution.objects.count() == 0
    for status in ("skipped", "cancelled"):
        counted = value(before, "scheduler_task_runs_total", task="kept", status=status)
        assert counted == 1, status
        assert (
            value(after, "scheduler_task_runs_total", task="kept", status=status)
            == counted
        ), status


def test_a_scrape_costs_the_same_few_queries_at_10_and_at_200_tasks(
    token: str,
) -> None:
    counts = []
    for size, prefix in ((10, "small"), (200, "big")):
        ScheduledTask.objects.all().delete()
        make_tasks_with_history(size, prefix)
        with CaptureQueriesContext(connection) as queries:
            response = scrape(**bearer(token))
        assert response.status_code == 200
        found = samples(response)
        assert (
            value(
                found,
                "scheduler_task_runs_total",
                task="%s-000" % prefix,
                status="skipped",
            )
            == 2
        )
        counts.append(len(queries.captured_queries))

    assert counts[0] == counts[1] <= 5, counts


# What it says ------------------------------------------------------------------------


def test_the_figures_agree_with_the_database(token: str) -> None:
    works = make_sample_task("add", name="works", handler_kwargs={"a": "2"})
    breaks = make_sample_task("boom", name="breaks")
    idle = make_task(name="idle", status=ScheduledTask.Status.PAUSED)
    for _ in range(3):
        execution_run(execution=task_request_run(task=works))
    execution_run(execution=task_request_run(task=breaks))
    execution_run(execution=task_request_run(task=breaks))
    # A skip and a cancel through the execution path, as the engine counts them.
    lock = get_lock_backend().acquire(
        task_lock_key(works.pk), owner="other", ttl_seconds=60
    )
    execution_run(execution=task_request_run(task=works))
    get_lock_backend().release(task_lock_key(works.pk), lock)
    execution_cancel(execution=make_execution(breaks, status=Status.PENDING))
    make_execution(breaks, status=Status.PENDING)
    make_execution(works, status=Status.RUNNING)
    now = timezone.now()
    SchedulerInstance.objects.create(instance_id="host-a:1", is_leader=True)
    SchedulerInstance.objects.create(instance_id="host-b:2", is_leader=False)
    SchedulerInstance.objects.create(
        instance_id="gone:3", last_heartbeat_at=now - dt.timedelta(hours=1)
    )
    SchedulerInstance.objects.create(
        instance_id="worker:4", kind=SchedulerInstance.Kind.WORKER
    )
    ScheduledTask.objects.filter(pk=works.pk).update(
        health="up", next_run_at=now + dt.timedelta(minutes=5)
    )
    ScheduledTask.objects.filter(pk=breaks.pk).update(health="failing")

    found = samples(scrape(**bearer(token)))

    for task in ScheduledTask.objects.all():
        of_task = TaskExecution.objects.filter(task=task)
        runs = {
            "success": of_task.filter(status=Status.SUCCESS).count(),
            "failed": of_task.filter(status=Status.FAILED).count(),
            "skipped": of_task.filter(status=Status.SKIPPED).count(),
            "cancelled": of_task.filter(status=Status.CANCELLED).count(),
        }
        assert runs == {
            "success": task.success_count,
            "failed": task.fail_count,
            "skipped": task.skipped_count,
            "cancelled": task.cancelled_count,
        }, task.name
        for status, count in runs.items():
            assert (
                value(found, "scheduler_task_runs_total", task=task.name, status=status)
                == count
            ), (task.name, status)
        assert (
            value(found, "scheduler_task_health", task=task.name, state=task.health)
            == 1
        )
        last_success = (
            of_task.filter(status=Status.SUCCESS).order_by("-created_at").first()
        )
        assert value(
            found, "scheduler_task_last_success_timestamp_seconds", task=task.name
        ) == (last_success.finished_at.timestamp() if last_success else None)
        assert value(
            found, "scheduler_task_last_run_timestamp_seconds", task=task.name
        ) == (task.last_run_at.timestamp() if task.last_run_at else None)
        assert value(
            found, "scheduler_task_next_fire_timestamp_seconds", task=task.name
        ) == (task.next_run_at.timestamp() if task.next_run_at else None)
        durations = sorted(
            of_task.filter(
                status__in=TaskExecution.TIMED_STATUSES, duration_ms__isnull=False
            ).values_list("duration_ms", flat=True)
        )
        name = "scheduler_task_duration_seconds"
        assert value(found, name + "_count", task=task.name) == task.duration_count
        assert value(found, name + "_sum", task=task.name) == pytest.approx(
            task.duration_total_ms / 1000
        )
        for q in ("0", "0.5", "0.95", "1"):
            assert value(found, name, task=task.name, quantile=q) == (
                quantile(durations, float(q)) / 1000 if durations else None
            ), (task.name, q)
    assert runs and idle.name  # the paused task has no run, no next fire
    assert (
        value(found, "scheduler_task_runs_total", task="works", status="success") == 3
    )
    assert (
        value(found, "scheduler_task_runs_total", task="breaks", status="failed") == 2
    )
    assert value(found, "scheduler_executions", status="pending") == 1
    assert value(found, "scheduler_executions", status="running") == 1
    assert value(found, "scheduler_instances_alive", kind="scheduler") == 2
    assert value(found, "scheduler_instances_alive", kind="worker") == 1
    assert value(found, "scheduler_instances_alive", kind="cli") == 0
    assert value(found, "scheduler_leader", instance="host-a:1") == 1
    assert value(found, "scheduler_leader", instance="host-b:2") == 0
    assert value(found, "scheduler_leader", instance="gone:3") is None


def test_the_durations_are_those_of_the_latest_runs(token: str) -> None:
    task = make_task(name="steady")
    now = timezone.now()
    # The oldest runs are the slowest: the quantiles leave them out.
    for number in range(RECENT_RUNS + 10):
        make_execution(
            task,
            status=Status.SUCCESS,
            created_at=now - dt.timedelta(minutes=number),
            duration_ms=1000 + number * 100 if number >= RECENT_RUNS else 100 + number,
        )

    found = samples(scrape(**bearer(token)))

    name = "scheduler_task_duration_seconds"
    assert value(found, name, task="steady", quantile="0") == 0.1
    assert value(found, name, task="steady", quantile="1") == 0.119
    assert value(found, name, task="steady", quantile="0.5") == 0.109


def test_every_name_of_the_contract_is_served_and_nothing_else(token: str) -> None:
    make_tasks_with_history(2, "t")
    SchedulerInstance.objects.create(instance_id="host-a:1", is_leader=True)

    text = scrape(**bearer(token)).content.decode()

    families = {family.name: family for family in text_string_to_metric_families(text)}
    served = {
        (name + "_total" if family.type == "counter" else name, family.type)
        for name, family in families.items()
    }
    assert served == {(spec.name, spec.kind) for spec in ENDPOINT_METRICS}
    for spec in ENDPOINT_METRICS:
        base = spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
        for sample in families[base].samples:
            assert set(sample.labels) <= set(spec.labels), (spec.name, sample)


def test_a_scrape_registers_nothing_in_the_global_registry(token: str) -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    make_tasks_with_history(1, "global")

    assert scrape(**bearer(token)).status_code == 200
    assert set(REGISTRY._names_to_collectors) == before
    assert not any(name.startswith("scheduler_task") for name in before)


def test_task_names_that_need_escaping_come_back_as_they_are(token: str) -> None:
    odd = 'say "hi" \\ to\nall'
    make_task(name=odd, health="up")

    found = samples(scrape(**bearer(token)))

    assert value(found, "scheduler_task_health", task=odd, state="up") == 1
