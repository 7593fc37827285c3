"""The audit trail in the admin: its read-only list and entry page, the task page's
trail, and "paused by" in the task list."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from scheduler_app.choices import AuditAction, AuditSource
from scheduler_app.models import AuditEntry, ScheduledTask
from scheduler_app.services.audit import CLI, Origin, audit_record
from tests.admin.helpers import (
    HOSTILE,
    HOSTILE_ESCAPED,
    TASK_CHANGELIST,
    count_queries,
    staff_user,
    task_url,
)
from tests.factories import make_task, make_user

pytestmark = pytest.mark.django_db

AUDIT_CHANGELIST = reverse("admin:scheduler_app_auditentry_changelist")


def entry_url(view: str, entry: AuditEntry) -> str:
    return reverse("admin:scheduler_app_auditentry_%s" % view, args=[entry.pk])


def record(
    task: ScheduledTask,
    action: AuditAction = AuditAction.UPDATE,
    *,
    user: User | None = None,
    source: AuditSource = AuditSource.ADMIN,
    reason: str = "",
    api_key: str = "",
    **fields: Any,
) -> AuditEntry:
    origin = Origin(source=source, user=user, api_key=api_key, reason=reason)
    [entry] = audit_record(origin=origin, action=action, tasks=[task], **fields)
    return entry


def listed(response: Any) -> list[AuditEntry]:
    assert response.status_code == 200, response.status_code
    return list(response.context["cl"].result_list)


@pytest.fixture
def alice() -> User:
    return make_user("alice", is_staff=True)


# The list


def test_the_list_shows_who_did_what_to_which_task_and_why(
    admin_client: Client, alice: User
) -> None:
    task = make_task(name="nightly")
    record(
        task,
        AuditAction.UPDATE,
        user=alice,
        source=AuditSource.API,
        api_key="ci",
        reason="new window",
        changes={"cron_expression": ["0 2 * * *", "0 3 * * *"]},
    )

    response = admin_client.get(AUDIT_CHANGELIST)

    page = response.content.decode()
    assert len(listed(response)) == 1
    assert task_url("change", task) in page
    assert "alice" in page and "API key “ci”" in page
    assert "API" in page and "Update" in page
    assert (
        "<code>cron_expression</code>: &quot;0 2 * * *&quot; → &quot;0 3 * * *&quot;"
        in page
    )
    assert "new window" in page


def test_a_deleted_task_s_entries_keep_its_name_without_a_link(
    admin_client: Client,
) -> None:
    task = make_task(name="gone-task")
    entry = record(task, AuditAction.PAUSE)
    url = task_url("change", task)
    ScheduledTask.objects.filter(pk=task.pk).delete()

    page = admin_client.get(AUDIT_CHANGELIST).content.decode()

    assert AuditEntry.objects.get(pk=entry.pk).task_id is None
    assert "gone-task" in page and "deleted" in page
    assert url not in page


def test_trusted_code_is_shown_by_its_entry_point(admin_client: Client) -> None:
    audit_record(origin=CLI, action=AuditAction.RUN_NOW, tasks=[make_task()])

    assert (
        "<em>Command line</em>" in admin_client.get(AUDIT_CHANGELIST).content.decode()
    )


def test_the_list_filters_on_task_user_action_source_and_date(
    admin_client: Client, alice: User
) -> None:
    bob = make_user("bob")
    one, two = make_task(name="one"), make_task(name="two-task")
    old = record(
        one, AuditAction.PAUSE, user=alice, at=timezone.now() - dt.timedelta(days=40)
    )
    by_bob = record(two, AuditAction.DISABLE, user=bob, source=AuditSource.API)
    by_cli = record(two, AuditAction.RESUME, source=AuditSource.CLI)

    def ids(**query: Any) -> set[int]:
        return {entry.pk for entry in listed(admin_client.get(AUDIT_CHANGELIST, query))}

    week_ago = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week_ago -= dt.timedelta(days=7)
    assert ids() == {old.pk, by_bob.pk, by_cli.pk}
    assert ids(task__id__exact=one.pk) == {old.pk}
    assert ids(task_q="two") == {by_bob.pk, by_cli.pk}
    assert ids(actor="alice") == {old.pk}
    assert ids(actor="-") == {by_cli.pk}
    assert ids(action__exact="disable") == {by_bob.pk}
    assert ids(source__exact="cli") == {by_cli.pk}
    assert ids(at__gte=str(week_ago)) == {
        by_bob.pk,
        by_cli.pk,
    }
    assert ids(q="bob") == {by_bob.pk}


def test_the_list_searches_reasons(admin_client: Client) -> None:
    task = make_task()
    frozen = record(task, AuditAction.PAUSE, reason="deploy freeze")
    record(task, AuditAction.RESUME, reason="done")

    assert [
        e.pk for e in listed(admin_client.get(AUDIT_CHANGELIST, {"q": "freeze"}))
    ] == [frozen.pk]


def test_the_list_never_counts_the_trail_and_its_queries_stay_flat(
    admin_client: Client,
) -> None:
    task = make_task()
    record(task, AuditAction.PAUSE)
    few = count_queries(admin_client, AUDIT_CHANGELIST)
    for _ in range(30):
        record(make_task(), AuditAction.PAUSE, reason="r")

    with CaptureQueriesContext(connection) as context:
        response = admin_client.get(AUDIT_CHANGELIST)

    assert response.status_code == 200
    assert len(context.captured_queries) == few
    assert not any(
        "COUNT(" in query["sql"].upper() for query in context.captured_queries
    )


def test_the_next_page_starts_after_the_last_entry_shown(admin_client: Client) -> None:
    task = make_task()
    entries = [record(task, AuditAction.RUN_NOW) for _ in range(105)]

    first = listed(admin_client.get(AUDIT_CHANGELIST))
    second = listed(admin_client.get(AUDIT_CHANGELIST, {"p": 2, "after": first[-1].pk}))

    assert len(first) == 100
    assert [e.pk for e in first + second] == [e.pk for e in reversed(entries)]


# Read-only


def test_entries_cannot_be_added_changed_or_deleted(
    admin_client: Client,
) -> None:
    entry = record(make_task(), AuditAction.PAUSE, reason="kept")

    add = admin_client.get(reverse("admin:scheduler_app_auditentry_add"))
    posted = admin_client.post(entry_url("change", entry), {"reason": "rewritten"})
    delete = admin_client.post(entry_url("delete", entry), {"post": "yes"})
    page = admin_client.get(AUDIT_CHANGELIST)

    assert add.status_code == 403
    assert posted.status_code == 403
    assert delete.status_code == 403
    assert AuditEntry.objects.get(pk=entry.pk).reason == "kept"
    assert page.context["action_form"] is None  # no bulk delete either


def test_the_trail_needs_its_own_view_permission(client: Client) -> None:
    entry = record(make_task(), AuditAction.PAUSE)
    client.force_login(staff_user("view_scheduledtask"))

    assert client.get(AUDIT_CHANGELIST).status_code == 403
    assert client.get(entry_url("change", entry)).status_code == 403

    client.force_login(staff_user("view_auditentry", username="auditor"))
    assert client.get(AUDIT_CHANGELIST).status_code == 200
    assert client.get(entry_url("change", entry)).status_code == 200


def test_the_entry_page_shows_each_change_before_and_after(
    admin_client: Client, alice: User
) -> None:
    entry = record(
        make_task(),
        AuditAction.UPDATE,
        user=alice,
        changes={
            "handler_kwargs": [{"days": "7"}, {"days": "3"}],
            "timeout_seconds": [0, 60],
        },
        run_id=12,
    )

    page = admin_client.get(entry_url("change", entry)).content.decode()

    assert "Update of “%s” at " % entry.task_name in page
    assert '<table class="scheduler-audit-changes">' in page
    assert "<td><code>handler_kwargs</code></td>" in page
    assert "{&quot;days&quot;: &quot;7&quot;}" in page
    assert "{&quot;days&quot;: &quot;3&quot;}" in page
    assert '<pre class="scheduler-pre">0</pre>' in page
    assert '<pre class="scheduler-pre">60</pre>' in page
    assert reverse("admin:scheduler_app_taskexecution_change", args=[12]) in page


def test_hostile_text_is_escaped_everywhere(admin_client: Client) -> None:
    user = make_user(HOSTILE[:30])
    task = make_task(name=HOSTILE, status=ScheduledTask.Status.PAUSED)
    entry = record(
        task,
        AuditAction.PAUSE,
        user=user,
        api_key=HOSTILE[:30],
        reason=HOSTILE,
        changes={HOSTILE: [HOSTILE, "<b>x</b>"]},
    )

    pages = [
        admin_client.get(AUDIT_CHANGELIST).content.decode(),
        admin_client.get(entry_url("change", entry)).content.decode(),
        admin_client.get(task_url("change", task)).content.decode(),
        admin_client.get(TASK_CHANGELIST).content.decode(),
    ]

    for page in pages:
        assert HOSTILE not in page
        assert "<b>x</b>" not in page
    assert HOSTILE_ESCAPED in pages[0] and HOSTILE_ESCAPED in pages[1]
    assert HOSTILE_ESCAPED in pages[2] and HOSTILE_ESCAPED in pages[3]


# The task page


def test_the_task_page_shows_its_latest_20_entries_and_links_all_of_them(
    admin_client: Client, alice: User
) -> None:
    task = make_task()
    other = make_task(name="other")
    record(other, AuditAction.PAUSE, reason="not this one")
    first = record(task, AuditAction.CREATE, user=alice, reason="the oldest")
    for index in range(20):
        record(task, AuditAction.UPDATE, changes={"description": ["", "v%d" % index]})
    record(task, AuditAction.PAUSE, user=alice, reason="deploy freeze")

    page = admin_client.get(task_url("change", task)).content.decode()

    trail = page.split('id="scheduler-audit-trail"', 1)[1]
    assert "Audit trail (latest 20)" in trail
    assert trail.count("<tr>") == 21  # the header and 20 entries
    assert "deploy freeze" in trail and "alice" in trail and "Pause" in trail
    assert "&quot;v19&quot;" in trail and "&quot;v0&quot;" not in trail
    assert "the oldest" not in trail and "not this one" not in trail
    assert entry_url("change", first) not in trail
    link = "%s?task__id__exact=%d" % (AUDIT_CHANGELIST, task.pk)
    assert link in trail and "All changes of this task" in trail
    assert len(listed(admin_client.get(link))) == 22


def test_the_task_page_shows_no_trail_without_the_permission(client: Client) -> None:
    task = make_task()
    record(task, AuditAction.PAUSE, reason="secret reason")
    client.force_login(staff_user("view_scheduledtask"))

    page = client.get(task_url("change", task)).content.decode()

    assert "scheduler-audit-trail" not in page and "secret reason" not in page


def test_the_task_page_s_queries_do_not_grow_with_its_trail(
    admin_client: Client,
) -> None:
    task = make_task()
    record(task, AuditAction.PAUSE)
    few = count_queries(admin_client, task_url("change", task))
    for _ in range(30):
        record(task, AuditAction.UPDATE, changes={"description": ["a", "b"]})

    assert count_queries(admin_client, task_url("change", task)) == few


# The task list: who paused or disabled a task, and why


def row_html(page: str, name: str) -> str:
    start = page.index(">%s</a></th>" % name)
    return page[start : page.index("</tr>", start)]


def test_the_task_list_says_who_paused_or_disabled_a_task_and_why(
    admin_client: Client, alice: User
) -> None:
    bob = make_user("bob")
    paused = make_task(name="paused-task", status=ScheduledTask.Status.PAUSED)
    disabled = make_task(name="disabled-task", status=ScheduledTask.Status.DISABLED)
    by_cli = make_task(name="cli-task", status=ScheduledTask.Status.PAUSED)
    active = make_task(name="active-task")
    record(paused, AuditAction.PAUSE, user=bob, reason="old reason")
    record(paused, AuditAction.RESUME, user=bob)
    record(paused, AuditAction.PAUSE, user=alice, reason="deploy freeze")
    record(paused, AuditAction.UPDATE, user=bob, changes={"description": ["", "x"]})
    record(disabled, AuditAction.DISABLE, user=bob)
    record(by_cli, AuditAction.PAUSE, source=AuditSource.CLI)
    record(active, AuditAction.PAUSE, user=alice, reason="stale")
    record(
        active, AuditAction.UPDATE, user=bob, changes={"status": ["paused", "active"]}
    )

    page = admin_client.get(TASK_CHANGELIST).content.decode()

    assert "paused by alice: deploy freeze" in row_html(page, "paused-task")
    assert 'title="deploy freeze"' in row_html(page, "paused-task")
    assert "disabled by bob</small>" in row_html(page, "disabled-task")
    assert "paused by Command line" in row_html(page, "cli-task")
    assert "scheduler-status-by" not in row_html(page, "active-task")


def test_who_paused_a_task_and_why_is_shown_only_to_who_may_read_the_trail(
    client: Client, alice: User
) -> None:
    paused = make_task(name="paused-task", status=ScheduledTask.Status.PAUSED)
    record(paused, AuditAction.PAUSE, user=alice, reason="SECRET-REASON")
    client.force_login(staff_user("view_scheduledtask"))

    page = client.get(TASK_CHANGELIST).content.decode()

    assert "paused-task" in page
    assert "SECRET-REASON" not in page and "paused by" not in page


def test_a_status_set_through_the_form_is_told_too(
    admin_client: Client, alice: User
) -> None:
    task = make_task(name="formed", status=ScheduledTask.Status.DISABLED)
    record(task, AuditAction.PAUSE, user=alice, reason="earlier")
    record(
        task,
        AuditAction.UPDATE,
        user=alice,
        reason="retired",
        changes={"status": ["paused", "disabled"]},
    )

    page = admin_client.get(TASK_CHANGELIST).content.decode()

    assert "disabled by alice: retired" in row_html(page, "formed")


def test_the_task_list_tells_it_in_the_user_s_language(
    admin_client: Client, alice: User
) -> None:
    task = make_task(name="frozen", status=ScheduledTask.Status.PAUSED)
    record(task, AuditAction.PAUSE, user=alice, reason="deploy freeze")

    page = admin_client.get(TASK_CHANGELIST, HTTP_ACCEPT_LANGUAGE="zh-hans")

    assert page.status_code == 200
    assert "deploy freeze" in row_html(page.content.decode(), "frozen")


def test_paused_by_costs_no_query_per_task(admin_client: Client, alice: User) -> None:
    def pause_tasks(count: int) -> None:
        for _ in range(count):
            task = make_task(status=ScheduledTask.Status.PAUSED)
            record(task, AuditAction.PAUSE, user=alice, reason="freeze")

    pause_tasks(2)
    with CaptureQueriesContext(connection) as few:
        small = admin_client.get(TASK_CHANGELIST)
    pause_tasks(18)
    with CaptureQueriesContext(connection) as many:
        large = admin_client.get(TASK_CHANGELIST)

    assert small.content.decode().count("paused by alice: freeze") == 2
    assert large.content.decode().count("paused by alice: freeze") == 20
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_cell_names_five_changes_and_counts_the_others(admin_client: Client) -> None:
    changes = {"field_%d" % index: [index, index + 1] for index in range(8)}
    entry = record(make_task(), AuditAction.CREATE, changes=changes)

    cell = admin_client.get(AUDIT_CHANGELIST).content.decode()
    page = admin_client.get(entry_url("change", entry)).content.decode()

    assert "<code>field_4</code>: 4 → 5" in cell
    assert "<code>field_5</code>" not in cell and "and 3 more fields" in cell
    assert "<td><code>field_7</code></td>" in page


def test_the_user_filter_lists_recorded_names_and_takes_any_value(
    admin_client: Client, alice: User
) -> None:
    make_user("never-acted")
    record(make_task(), AuditAction.PAUSE, user=alice)

    page = admin_client.get(AUDIT_CHANGELIST)
    nul = admin_client.get(AUDIT_CHANGELIST, {"actor": "a\x00b"})

    assert "?actor=alice" in page.content.decode()
    assert "never-acted" not in page.content.decode()
    assert nul.status_code == 200  # PostgreSQL refuses NUL in text: no 500
    assert list(nul.context["cl"].result_list) == []
