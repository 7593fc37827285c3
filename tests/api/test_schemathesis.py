"""Schema-driven run: schemathesis sends what the OpenAPI schema allows, and what it
forbids, to every operation through the real WSGI application and checks each answer."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from django.contrib.auth.models import User
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from config.wsgi import application
from scheduler_app.api.views import RESERVED_TASK_NAMES
from scheduler_app.choices import AuditAction
from scheduler_app.locks import get_lock_backend, task_lock_key
from scheduler_app.models import Alert, AuditEntry, ScheduledTask, TaskExecution
from scheduler_app.services.alerts import alerts_record
from scheduler_app.services.audit import CLI, audit_record
from tests.factories import key_for, make_execution

# Per operation and generation mode: about 40 s for the 20 operations on 2 cores.
# API_FUZZ_EXAMPLES=200 API_FUZZ_RANDOM=1 (with --timeout=0) explores further.
MAX_EXAMPLES = int(os.environ.get("API_FUZZ_EXAMPLES", "25"))
RANDOM = os.environ.get("API_FUZZ_RANDOM") == "1"
CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _seed() -> dict[str, list[str]]:
    """Tasks (one locked), executions with a log, pending ones to cancel, an alert,
    an audit entry; their ids.

    Called before each operation, because the one before may have renamed,
    paused or deleted what it found.
    """
    for index in range(3):
        task, created = ScheduledTask.objects.get_or_create(
            name="fuzz-%d" % index,
            defaults={
                "task_type": "interval",
                "interval_seconds": 60,
                "handler_path": "scripts:data_sync",
                "handler_kwargs": {"days": "3"},
            },
        )
        if created:
            make_execution(
                task, status="success", log_output="[00:00:01] one\n[00:00:02] two"
            )
            make_execution(task, status="pending")
    get_lock_backend().acquire(task_lock_key(task.pk), owner="fuzz", ttl_seconds=600)
    if not Alert.objects.exists():
        alerts_record(kind="test", message="fuzz", destinations=[])
    if not AuditEntry.objects.exists():
        audit_record(
            origin=CLI,
            action=AuditAction.UPDATE,
            tasks=[task],
            changes={"description": ["", "fuzz"]},
        )
    tasks = ScheduledTask.objects.values_list("pk", "name")
    return {
        "id_or_name": [str(pk) for pk, _name in tasks] + [name for _pk, name in tasks],
        "id": [str(pk) for pk in TaskExecution.objects.values_list("pk", flat=True)],
        "alert_id": [str(pk) for pk in Alert.objects.values_list("pk", flat=True)],
    }


_TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=40)
_SCHEDULES = st.one_of(
    st.fixed_dictionaries(
        {
            "task_type": st.just("interval"),
            "interval_seconds": st.integers(1, 2**31 - 1),
        }
    ),
    st.fixed_dictionaries(
        {
            "task_type": st.just("cron"),
            "cron_expression": st.sampled_from(
                [
                    "0 2 * * *",
                    "*/5 * * * *",
                    "30 9 * * 1-5",
                    "@daily",
                    "0 0 1 1 *",
                    "5 4 3 2 1 0",
                ]
            ),
        }
    ),
    st.fixed_dictionaries({"task_type": st.just("manual")}),
)
#: Bodies a person would send: random names, texts and values on valid schedules,
#: so the 201/200 paths are explored too, not only the 400s of random bodies.
VALID_BODIES = st.builds(
    lambda name, schedule, extra, kwargs: {
        "name": name,
        "handler_path": "scripts:data_sync",
        "handler_kwargs": kwargs,
        **schedule,
        **extra,
    },
    name=_TEXT.filter(lambda text: text.strip() != ""),
    schedule=_SCHEDULES,
    extra=st.fixed_dictionaries(
        {},
        optional={
            "description": _TEXT,
            "timezone": st.sampled_from(
                ["", "UTC", "Asia/Shanghai", "America/New_York"]
            ),
            "status": st.sampled_from(["active", "paused", "disabled"]),
            "overlap_policy": st.sampled_from(["skip", "replace"]),
            "timeout_seconds": st.integers(0, 2**31 - 1),
            "jitter_seconds": st.integers(0, 2**31 - 1),
            # Not a task field: the change's audit reason (write-only).
            "reason": _TEXT,
        },
    ),
    kwargs=st.fixed_dictionaries(
        {},
        optional={
            "days": st.integers(-(10**9), 10**9).map(str),
            "target": _TEXT.map(repr),
            "options": st.dictionaries(_TEXT, st.integers() | _TEXT, max_size=3),
        },
    ),
)


def _strategy(
    operation: Any, mode: GenerationMode, known: dict[str, list[str]]
) -> st.SearchStrategy[schemathesis.Case]:
    """Generated cases, plus cases aimed at rows that exist and with valid bodies.

    Generated ids alone nearly always miss, and would leave every body and query
    of a detail operation untried behind a 404; random task bodies are always 400.
    """
    strategies = [operation.as_strategy(generation_mode=mode)]
    names = [name for name in known if "{%s}" % name in operation.path and known[name]]
    targets: st.SearchStrategy[dict[str, str]] = st.just({})
    if names:
        targets = st.sampled_from(sorted(known[names[0]])).map(lambda v: {names[0]: v})
        strategies.insert(
            0,
            targets.flatmap(
                lambda path: operation.as_strategy(
                    generation_mode=mode, path_parameters=path
                )
            ),
        )
    writes_a_task = operation.method.upper() in ("POST", "PUT", "PATCH") and (
        operation.path.rstrip("/") in ("/api/v1/tasks", "/api/v1/tasks/{id_or_name}")
    )
    if writes_a_task and mode is GenerationMode.POSITIVE:
        strategies.insert(
            0,
            st.tuples(targets, VALID_BODIES).flatmap(
                lambda args: operation.as_strategy(
                    generation_mode=mode,
                    path_parameters=args[0] or None,
                    body=args[1],
                    media_type="application/json",
                )
            ),
        )
    return st.one_of(*strategies)


def _describe(exc: BaseException) -> str:
    """The failure with those it groups (Hypothesis and schemathesis nest them)."""
    parts = ["%s: %s" % (type(exc).__name__, str(exc)[:3000])]
    for inner in getattr(exc, "exceptions", ()):
        parts.append("  - " + _describe(inner).replace("\n", "\n    "))
    return "\n".join(parts)


def _fuzz(
    operation: Any, mode: GenerationMode, headers: dict[str, str], counts: Counter[int]
) -> None:
    """Send an operation its generated cases, check every answer, raise on failure."""

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        # The same examples every run, so CI cannot turn red by chance.
        derandomize=not RANDOM,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation, mode, _seed()))
    def check(case: schemathesis.Case) -> None:
        response = case.call(headers=headers)
        counts[response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    check()


# Transactional: the WSGI application closes the connection after each request, as
# in production, so the rows it reads must be committed. No serialized_rollback:
# its flush skips post_migrate, which would leave the transactional tests after
# this one without content types and with a stale ContentType cache.
@pytest.mark.django_db(transaction=True)
def test_no_request_the_schema_describes_gets_an_unexpected_answer(
    superuser: User,
) -> None:
    headers = {"X-Api-Key": key_for(superuser)}
    schema = schemathesis.openapi.from_wsgi(
        "/api/v1/schema/?format=json", application, headers=headers
    )

    @schema.hook("filter_path_parameters")
    def names_no_fixed_route(
        context: Any, path_parameters: dict[str, Any] | None
    ) -> bool:
        # tasks/handlers and friends are routes of their own (the schema says so).
        return (path_parameters or {}).get("id_or_name") not in RESERVED_TASK_NAMES

    failures: dict[str, str] = {}
    answers: dict[str, Counter[int]] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = "%s (%s)" % (operation.label, mode.value)
            # Every operation runs; the failures are reported together below.
            try:
                _fuzz(operation, mode, headers, answers.setdefault(label, Counter()))
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
                failures[label] = _describe(exc)

    assert not failures, "\n\n".join("%s:\n%s" % item for item in failures.items())
    # The key was accepted every time, and every operation succeeded at least once
    # in positive mode, so the run did reach past authentication and lookups.
    assert not any(401 in counts for counts in answers.values()), answers
    unreached = [
        label
        for label, counts in answers.items()
        if label.endswith("(positive)")
        and not any(200 <= code < 300 for code in counts)
    ]
    assert not unreached, answers
