"""Operations pages: locks (with force release) and scheduler health, linked from the app index."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib import messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from scheduler_app.locks import get_lock_backend, lock_key, task_lock_key
from scheduler_app.models import AuditEntry, ScheduledTask, SchedulerInstance
from tests.admin.helpers import (
    TASK_CHANGELIST,
    scheduler_alive,
    sent_messages,
    staff_user,
)
from tests.factories import make_execution, make_live_run_holding_lock, make_task

pytestmark = pytest.mark.django_db

LOCKS = reverse("admin:scheduler_app_schedulerlock_changelist")
RELEASE = reverse("admin:scheduler_app_schedulerlock_release")
HEALTH = reverse("admin:scheduler_app_schedulerinstance_health")
APP_INDEX = reverse("admin:app_list", args=["scheduler_app"])
ADMIN_INDEX = reverse("admin:index")


@pytest.fixture(params=["database", "redis"])
def lock_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test against both lock backends (Redis skips locally when absent)."""
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    yield request.param


def hold_lock(
    task: ScheduledTask, owner: str = "host:7:abcdef", ttl: float = 120
) -> str:
    token = get_lock_backend().acquire(
        task_lock_key(task.pk), owner=owner, ttl_seconds=ttl
    )
    assert token
    return task_lock_key(task.pk)


# Locks


def test_locks_page_shows_who_holds_which_task_lock_and_for_how_long(
    admin_client: Client, lock_backend: str
) -> None:
    task = make_task(name="long_job")
    hold_lock(task, owner="worker-1:42:abcdef", ttl=120)

    content = admin_client.get(LOCKS).content.decode()

    assert (
        '<a href="%s">long_job</a>'
        % reverse("admin:scheduler_app_scheduledtask_change", args=[task.pk])
        in content
    )
    assert "worker-1:42:abcdef" in content
    assert "just now" in content
    assert "120 s" in content or "119 s" in content
    assert "%s?key=task%%3A%d" % (RELEASE, task.pk) in content


def test_locks_page_shows_the_leader_lease_without_a_release_button(
    admin_client: Client,
) -> None:
    leader = lock_key("leader", "")
    get_lock_backend().acquire(leader, owner="host:1:leader", ttl_seconds=30)

    content = admin_client.get(LOCKS).content.decode()

    assert "leader lease" in content
    assert "host:1:leader" in content
    assert "Force release" not in content


def test_locks_page_says_when_nothing_is_locked(admin_client: Client) -> None:
    assert "No lock is held." in admin_client.get(LOCKS).content.decode()


def test_release_asks_for_confirmation_first(admin_client: Client) -> None:
    key = hold_lock(make_task(name="stuck"))

    response = admin_client.get(RELEASE, {"key": key})

    assert response.status_code == 200
    content = response.content.decode()
    assert "The lock of task “stuck” is held by host:7:abcdef" in content
    assert 'name="key" value="%s"' % key in content
    assert get_lock_backend().get(key) is not None


def test_release_frees_the_lock_and_records_it(
    admin_client: Client, lock_backend: str
) -> None:
    task = make_task(name="stuck")
    key = hold_lock(task)

    response = admin_client.post(RELEASE, {"key": key, "reason": " host died "})

    assert response["Location"] == LOCKS
    assert get_lock_backend().get(key) is None
    assert sent_messages(response) == [
        (messages.SUCCESS, "Released the lock “%s”." % key)
    ]
    entry = AuditEntry.objects.get(task=task)
    assert (entry.action, entry.source, entry.actor_name, entry.reason) == (
        "release_lock",
        "admin",
        "admin",
        "host died",
    )
    assert entry.changes == {"lock": ["host:7:abcdef", ""]}


def test_release_with_a_required_reason_missing_shows_the_error_on_its_field(
    admin_client: Client, settings: Any
) -> None:
    settings.SCHEDULER_REQUIRE_REASON_FOR = "release_lock"
    task = make_task(name="stuck")
    key = hold_lock(task)

    response = admin_client.post(RELEASE, {"key": key, "reason": "  "})

    assert response.status_code == 200
    assert response.context["reason_error"].startswith("Say why (field “reason”)")
    content = response.content.decode()
    assert 'id="reason-error"' in content and 'name="reason"' in content
    assert get_lock_backend().get(key) is not None
    assert not AuditEntry.objects.exists()


def test_releasing_the_lock_of_a_live_run_warns_and_needs_the_explicit_answer(
    admin_client: Client, lock_backend: str
) -> None:
    task = make_task(name="busy")
    run = make_live_run_holding_lock(task)
    key = task_lock_key(task.pk)

    page = admin_client.get(RELEASE, {"key": key}).content.decode()
    unforced = admin_client.post(RELEASE, {"key": key})
    still_held = get_lock_backend().get(key) is not None
    forced = admin_client.post(RELEASE, {"key": key, "force": "1"})

    assert "is still going on web-1:7:live, whose heartbeat is fresh" in page
    assert 'name="force" value="1"' in page and "Release it anyway" in page
    [(level, text)] = sent_messages(unforced)
    assert level == messages.ERROR and "still running on web-1:7:live" in text
    assert still_held
    assert forced["Location"] == LOCKS and get_lock_backend().get(key) is None
    entry = AuditEntry.objects.get(task=task)
    assert entry.action == "release_lock"
    assert entry.changes == {"lock": ["web-1:7:live exec:%s" % run.pk, ""]}


def test_releasing_a_lock_already_gone_says_so(admin_client: Client) -> None:
    key = task_lock_key(make_task().pk)

    response = admin_client.post(RELEASE, {"key": key})

    assert sent_messages(response) == [
        (
            messages.WARNING,
            "The lock “%s” was no longer held; nothing to release." % key,
        )
    ]


def test_only_task_locks_can_be_released(admin_client: Client) -> None:
    leader = lock_key("leader", "")
    get_lock_backend().acquire(leader, owner="host:1:leader", ttl_seconds=30)

    response = admin_client.post(RELEASE, {"key": leader})

    assert sent_messages(response)[0][0] == messages.ERROR
    assert get_lock_backend().get(leader) is not None


def test_release_needs_the_release_lock_permission(client: Client) -> None:
    user = staff_user("view_scheduledtask", "change_scheduledtask")
    client.force_login(user)
    key = hold_lock(make_task())

    assert "Force release" not in client.get(LOCKS).content.decode()
    assert client.get(RELEASE, {"key": key}).status_code == 403
    assert client.post(RELEASE, {"key": key}).status_code == 403
    assert get_lock_backend().get(key) is not None


def test_release_works_with_only_the_release_lock_permission(client: Client) -> None:
    client.force_login(staff_user("view_scheduledtask", "release_lock_scheduledtask"))
    key = hold_lock(make_task())

    client.post(RELEASE, {"key": key})

    assert get_lock_backend().get(key) is None


# Health


def test_health_page_shows_instances_leader_heartbeat_age_and_version(
    admin_client: Client,
) -> None:
    now = timezone.now()
    SchedulerInstance.objects.create(
        instance_id="web-1:10:aaaaaa",
        hostname="web-1",
        pid=10,
        version="9.9.9",
        is_leader=True,
        last_heartbeat_at=now - dt.timedelta(seconds=4),
    )
    SchedulerInstance.objects.create(
        instance_id="web-2:11:bbbbbb",
        hostname="web-2",
        pid=11,
        version="9.9.8",
        last_heartbeat_at=now - dt.timedelta(minutes=10),
    )

    response = admin_client.get(HEALTH)

    content = response.content.decode()
    assert response.context["status"].leader == "web-1:10:aaaaaa"
    assert "Leader: <code>web-1:10:aaaaaa</code>" in " ".join(content.split())
    assert "9.9.9" in content and "9.9.8" in content
    assert "4 s ago" in content
    assert "600 s ago" in content
    assert 'data-status="failed">Gone<' in content
    assert 'data-status="success">Running<' in content


def test_health_page_says_degraded_and_why(admin_client: Client) -> None:
    SchedulerInstance.objects.create(
        instance_id="web-1:10:aaaaaa",
        is_leader=False,
        last_heartbeat_at=timezone.now(),
        degraded_reason="Redis at redis://r:6379/0 is unreachable since 2026-03-02 (x)",
    )

    content = admin_client.get(HEALTH).content.decode()

    assert 'data-status="failed">Degraded<' in content
    assert "web-1:10:aaaaaa: Redis at redis://r:6379/0 is unreachable" in content
    assert "No scheduler instance holds the leader lease" in content


def test_health_page_lists_celery_workers_beside_scheduler_instances(
    admin_client: Client,
) -> None:
    now = timezone.now()
    SchedulerInstance.objects.create(
        instance_id="celery@work-1:20:cccccc",
        kind="worker",
        hostname="work-1",
        pid=20,
        last_heartbeat_at=now - dt.timedelta(seconds=2),
    )
    SchedulerInstance.objects.create(
        instance_id="celery@work-2:21:dddddd",
        kind="worker",
        hostname="work-2",
        pid=21,
        last_heartbeat_at=now - dt.timedelta(minutes=5),
    )

    response = admin_client.get(HEALTH)

    content = " ".join(response.content.decode().split())
    status = response.context["status"]
    assert status.instances == [] and status.worker_count == 1
    assert "1 Celery worker process alive" in content
    workers = content.split('id="scheduler-workers"', 1)[1].split(
        'id="scheduler-due"', 1
    )[0]
    assert "<code>celery@work-1:20:cccccc</code>" in workers
    assert 'data-status="running">Alive<' in workers
    assert 'data-status="failed">Gone<' in workers
    # Workers fire nothing: without a scheduler the page still says so.
    assert "Not running" in content
    assert "No scheduler is running." in content


def test_health_page_says_how_to_start_workers_when_none_ever_ran(
    admin_client: Client, settings: Any
) -> None:
    settings.SCHEDULER_EXECUTOR = "celery"

    content = admin_client.get(HEALTH).content.decode()

    assert "0 Celery worker processes alive" in content
    assert "celery -A config worker -Q scheduler" in content


def test_health_page_counts_no_celery_workers_with_the_inline_executor(
    admin_client: Client,
) -> None:
    content = admin_client.get(HEALTH).content.decode()

    assert "Celery worker" not in content
    assert 'id="scheduler-workers"' not in content


def test_health_page_lists_tasks_due_in_the_next_hour(admin_client: Client) -> None:
    now = timezone.now()
    make_task(name="soon", next_run_at=now + dt.timedelta(minutes=20))
    make_task(name="later", next_run_at=now + dt.timedelta(hours=3))
    make_task(name="paused", status="paused", next_run_at=now + dt.timedelta(minutes=5))

    response = admin_client.get(HEALTH)

    assert [task.name for task in response.context["due_tasks"]] == ["soon"]
    assert "in 19 minutes" in response.content.decode().replace("\xa0", " ")


def test_health_page_says_how_to_start_a_scheduler_when_none_ever_ran(
    admin_client: Client,
) -> None:
    content = admin_client.get(HEALTH).content.decode()

    assert "Not running" in content
    assert "python manage.py runscheduler" in content


@pytest.mark.parametrize("url", [LOCKS, HEALTH])
def test_operations_pages_need_the_task_view_permission(
    client: Client, url: str
) -> None:
    client.force_login(staff_user("view_taskexecution"))

    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", [ADMIN_INDEX, APP_INDEX, TASK_CHANGELIST])
def test_admin_index_app_index_and_task_list_link_to_the_operations_pages(
    admin_client: Client, url: str
) -> None:
    content = admin_client.get(url).content.decode()

    assert 'href="%s"' % HEALTH in content
    assert 'href="%s"' % LOCKS in content


def test_the_admin_index_links_operations_only_for_who_may_view_tasks(
    client: Client,
) -> None:
    client.force_login(staff_user("view_taskexecution"))

    content = client.get(ADMIN_INDEX).content.decode()

    assert 'id="scheduler-operations"' not in content


def test_every_admin_page_is_named_after_the_product_and_has_a_favicon(
    admin_client: Client, settings: Any
) -> None:
    default = admin_client.get(ADMIN_INDEX).content.decode()
    settings.ADMIN_SITE_HEADER = "Acme <jobs>"
    named = admin_client.get(TASK_CHANGELIST).content.decode()

    assert "Scheduled tasks</a>" in default and "Django administration" not in default
    assert "scheduler_app/favicon.svg" in default
    assert "Acme &lt;jobs&gt;" in named and "Acme <jobs>" not in named


def test_favicon_ico_leads_to_the_admin_s_icon(client: Client) -> None:
    # What a browser asks for on pages without an icon link (the API's, /health/).
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"].endswith("scheduler_app/favicon.svg")


def test_the_locks_admin_is_a_page_not_a_row_of_the_model_list(
    admin_client: Client,
) -> None:
    content = admin_client.get(APP_INDEX).content.decode()

    assert "model-schedulerlock" not in content
    assert "model-schedulerinstance" in content


def _dashboard(content: str) -> str:
    return content.split('id="scheduler-dashboard"', 1)[1].split("</div>\n</div>", 1)[0]


def test_the_admin_index_dashboard_sums_up_health_failures_runs_and_what_is_due(
    admin_client: Client,
) -> None:
    now = timezone.now()
    failing = make_task(name="nightly <b>", health="failing")
    make_task(name="fine", health="up", next_run_at=now + dt.timedelta(hours=2))
    make_execution(failing, status="failed", error_message="boom")
    make_execution(
        failing, status="failed", created_at=now - dt.timedelta(days=2)
    )  # older than the day: not counted
    make_execution(
        failing,
        status="running",
        started_at=now - dt.timedelta(minutes=30),
        instance_id="host:1:abc",
    )
    scheduler_alive()

    board = _dashboard(admin_client.get(ADMIN_INDEX).content.decode())
    board = board.replace("\xa0", " ")

    assert "Running" in board
    assert 'href="%s?health__exact=failing"' % TASK_CHANGELIST in board
    assert "1 failure in the last 24 hours" in board
    assert "nightly &lt;b&gt;" in board and "nightly <b>" not in board
    assert "started 30 minutes ago" in board
    assert "fine" in board.split('id="dashboard-due"', 1)[1]
    assert "Celery worker" not in board  # the inline executor has none


def test_the_dashboard_costs_the_same_queries_for_few_and_many_tasks(
    admin_client: Client,
) -> None:
    def queries(count: int) -> int:
        for _ in range(count):
            task = make_task(next_run_at=timezone.now() + dt.timedelta(hours=1))
            make_execution(task, status="failed")
            make_execution(task, status="running", started_at=timezone.now())
        with CaptureQueriesContext(connection) as captured:
            admin_client.get(ADMIN_INDEX)
        return len(captured.captured_queries)

    assert queries(2) == queries(20)


def test_the_dashboard_is_for_who_may_view_the_tasks(client: Client) -> None:
    client.force_login(staff_user("view_taskexecution"))

    assert 'id="scheduler-dashboard"' not in client.get(ADMIN_INDEX).content.decode()
