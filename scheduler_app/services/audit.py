"""The audit trail: who changed a task or acted on it, from where, what, and why.

Every service function that changes a task or operates on it takes an `origin`
(an Origin: the user, the API key's name, the entry point, the reason) and
records one AuditEntry per task it changed with audit_record, in the
transaction of the change: a change that rolls back leaves no entry, and no
change goes unrecorded. The entry points build the Origin (Origin.of_request
for the admin and the API; CLI, PYTHON, SYNC and IMPORT for the others) and
write nothing themselves.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django.utils import timezone
from django.utils.translation import gettext_lazy

from ..choices import AuditAction, AuditSource
from ..conf import app_settings
from ..exceptions import ReasonInvalid
from ..models import AuditEntry, ScheduledTask, UserAPIKey
from ..storable import is_unstorable

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpRequest
    from rest_framework.request import Request

#: The operations SCHEDULER_REQUIRE_REASON_FOR may name: those that stop a task
#: or take something from it, which the next person wants explained.
REASON_ACTIONS = (
    AuditAction.PAUSE,
    AuditAction.DISABLE,
    AuditAction.DELETE,
    AuditAction.RELEASE_LOCK,
)
#: The longest reason kept; a longer one is refused, not cut.
REASON_MAX_LENGTH = 1000

MSG_REASON_REQUIRED = gettext_lazy(
    "Say why (field “reason”): this installation requires a reason to %(action)s "
    "(SCHEDULER_REQUIRE_REASON_FOR)."
)
MSG_REASON_UNSTORABLE = gettext_lazy(
    "The reason holds a NUL character or a lone surrogate, which cannot be "
    "stored; remove it."
)
MSG_REASON_TOO_LONG = gettext_lazy(
    "The reason is %(length)d characters long; keep it to %(limit)d."
)


@dataclass(frozen=True)
class Origin:
    """Who asks for a change or an operation, through which entry point, and why."""

    source: AuditSource
    #: The signed-in user (admin) or the API key's user; None for trusted code
    #: (the CLI, the Python API, the schedule sync, the importer).
    user: AbstractBaseUser | AnonymousUser | None = None
    #: The name of the API key the request authenticated with.
    api_key: str = ""
    reason: str = ""

    @classmethod
    def of_request(
        cls, request: HttpRequest | Request, *, source: AuditSource, reason: str = ""
    ) -> Origin:
        """The origin of an admin or API request: its user and API key."""
        user = getattr(request, "user", None)
        auth = getattr(request, "auth", None)
        return cls(
            source=source,
            user=user if user is not None and user.is_authenticated else None,
            api_key=auth.name if isinstance(auth, UserAPIKey) else "",
            reason=(reason or "").strip(),
        )

    def because(self, reason: str | None) -> Origin:
        """This origin with `reason` (stripped) as the reason."""
        return replace(self, reason=(reason or "").strip())

    @property
    def username(self) -> str:
        if self.user is None or not self.user.is_authenticated:
            return ""
        return str(self.user.get_username())

    @property
    def label(self) -> str:
        """Who, for a run's `requested_by`: "alice (admin)", "alice (api, key ci)",
        or the source alone for trusted code ("cli"). Stored, so not translated."""
        if not self.username:
            return str(self.source)
        if self.api_key:
            return "%s (%s, key %s)" % (self.username, self.source, self.api_key)
        return "%s (%s)" % (self.username, self.source)


#: The origins of trusted code, which names no user.
CLI = Origin(source=AuditSource.CLI)
PYTHON = Origin(source=AuditSource.PYTHON)
SYNC = Origin(source=AuditSource.SYNC)
IMPORT = Origin(source=AuditSource.IMPORT)


def reason_required(action: AuditAction) -> bool:
    """Whether SCHEDULER_REQUIRE_REASON_FOR makes `action` say why."""
    required = app_settings.SCHEDULER_REQUIRE_REASON_FOR
    if isinstance(required, str):
        required = required.split(",")
    return str(action) in {str(each).strip() for each in required}


def reason_check(origin: Origin, *, action: AuditAction) -> None:
    """Refuse (ReasonInvalid, on field "reason") a reason that is missing though
    required for `action`, too long, or holds a character no database stores.
    Call before changing anything."""
    if is_unstorable(origin.reason):
        raise ReasonInvalid(str(MSG_REASON_UNSTORABLE), field="reason", code="invalid")
    if len(origin.reason) > REASON_MAX_LENGTH:
        raise ReasonInvalid(
            MSG_REASON_TOO_LONG
            % {"length": len(origin.reason), "limit": REASON_MAX_LENGTH},
            field="reason",
            code="reason_too_long",
        )
    if not origin.reason and reason_required(action):
        raise ReasonInvalid(
            MSG_REASON_REQUIRED % {"action": AuditAction(action).label.lower()},
            field="reason",
            code="reason_required",
        )


def audit_changes(
    before: Mapping[str, str], after: Mapping[str, str]
) -> dict[str, list[Any]]:
    """Field name -> [before, after] for the fields that differ between two
    task_snapshot()s (their JSON text decoded back to values)."""
    return {
        name: [json.loads(before[name]), json.loads(after[name])]
        for name in after
        if name in before and before[name] != after[name]
    }


def audit_record(
    *,
    origin: Origin,
    action: AuditAction,
    tasks: Iterable[ScheduledTask],
    changes: Mapping[str, list[Any]] | None = None,
    run_id: int | None = None,
    at: dt.datetime | None = None,
) -> list[AuditEntry]:
    """Record `action` on each of `tasks` by `origin` (one statement); call it in
    the transaction of the change, after the change (a deleted task keeps its
    name, not its link)."""
    at = at or timezone.now()
    user = origin.user if origin.username else None
    entries = [
        AuditEntry(
            at=at,
            task=task if task.pk is not None else None,
            task_name=task.name,
            actor=user,  # type: ignore[misc]
            actor_name=origin.username,
            api_key_name=origin.api_key,
            source=origin.source,
            action=action,
            changes=dict(changes or {}),
            reason=origin.reason,
            run_id=run_id,
        )
        for task in tasks
    ]
    return AuditEntry.objects.bulk_create(entries)


def audit_cleanup(*, now: dt.datetime | None = None) -> int:
    """Delete the entries older than SCHEDULER_AUDIT_DAYS; returns how many."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=app_settings.SCHEDULER_AUDIT_DAYS)
    deleted, _per_model = AuditEntry.objects.older_than(cutoff).delete()
    return deleted
