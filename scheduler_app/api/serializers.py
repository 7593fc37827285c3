"""Serializers: separate read and write shapes; validation hands off to the services."""

from __future__ import annotations

from typing import Any

from django.core.validators import MaxLengthValidator
from django.db import models
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..choices import HealthState
from ..models import (
    Alert,
    AlertChannel,
    AlertDelivery,
    AuditEntry,
    ScheduledTask,
    SchedulerInstance,
    TaskExecution,
)
from ..services.params import MSG_PARAMETERS_NOT_OBJECT
from ..services.tasks import EDITABLE_FIELDS
from ..services.validation import INTEGER_BOUNDS, TEXT_FIELDS
from ..storable import storable_json

#: Fields of a task that the API never writes: `is_system` belongs to the system
#: (clearing it would make a system task deletable), the rest to the scheduler.
TASK_WRITE_FIELDS = tuple(name for name in EDITABLE_FIELDS if name != "is_system")
TASK_STATS_FIELDS = (
    "last_run_at",
    "next_run_at",
    "run_count",
    "success_count",
    "fail_count",
    "created_at",
    "updated_at",
)


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {},
        "example": {"days": "7", "since": "date.today() - timedelta(days=1)"},
    }
)
class ParametersField(serializers.JSONField):
    """Parameter name → expression (or JSON literal): an object, never null.

    An object is what the services take (run overrides are merged into it), so
    anything else is refused here, with the validation service's message; what
    the values may be is the service's to say.
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError(
                str(MSG_PARAMETERS_NOT_OBJECT), code="invalid"
            )
        return value


class BoundedIntegerField(serializers.IntegerField):
    """An integer field whose schema shows the service's bounds (INTEGER_BOUNDS).

    The bounds are task_validate's rule, so they are documented here, not checked:
    a value out of range gets the service's message, the same as in the admin.
    """

    def __init__(self, *, bounds: tuple[int, int], **kwargs: Any) -> None:
        kwargs.pop("min_value", None)
        kwargs.pop("max_value", None)
        # A PositiveIntegerField's MinValueValidator(0) comes in `validators`.
        kwargs["validators"] = [
            validator
            for validator in kwargs.get("validators", [])
            if not hasattr(validator, "limit_value")
        ]
        super().__init__(**kwargs)
        # Read by drf-spectacular for `minimum` / `maximum`; no validator is added.
        self.min_value, self.max_value = bounds


class DocumentedMaxLength(MaxLengthValidator):
    """The column's length, for the schema only (drf-spectacular reads `maxLength` from
    a MaxLengthValidator); it checks nothing, as the length is task_validate's rule."""

    def __call__(self, value: Any) -> None:
        return None


class LengthDocumentedCharField(serializers.CharField):
    """A text field whose schema shows its column's length, which it does not check.

    The length is task_validate's rule (on every database), so a longer value gets
    the service's message, the same as in the admin and the Python API.
    """

    def __init__(self, **kwargs: Any) -> None:
        longest = kwargs.pop("max_length", None)
        super().__init__(**kwargs)
        if longest is not None:
            self.validators.append(DocumentedMaxLength(longest))


#: The label and help of the task's parameters, as the model field has them.
PARAMETERS_LABEL = capfirst(
    ScheduledTask._meta.get_field("handler_kwargs").verbose_name
)
PARAMETERS_HELP = ScheduledTask._meta.get_field("handler_kwargs").help_text
CHANNELS_HELP = _(
    "The ids of the alert channels this task's alerts go to, e.g. [1, 3] (the "
    "admin lists them under Alert channels); empty: the default channels and "
    "SCHEDULER_ALERT_EMAILS / SCHEDULER_ALERT_WEBHOOK_URLS."
)


class TaskSerializer(serializers.ModelSerializer):
    """A task as it is read: every field plus its statistics and latest execution."""

    url = serializers.HyperlinkedIdentityField(
        view_name="api:task-detail", lookup_url_kwarg="id_or_name"
    )
    success_rate = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text=_(
            "Successes / (successes + failures), null before any finished run."
        ),
    )
    avg_duration_ms = serializers.FloatField(
        source="average_duration_ms",
        read_only=True,
        allow_null=True,
        help_text=_(
            "Mean duration of the finished runs in milliseconds, e.g. 1250.5; null "
            "before any."
        ),
    )
    handler_kwargs = ParametersField(
        read_only=True, label=PARAMETERS_LABEL, help_text=PARAMETERS_HELP
    )
    last_execution_id = serializers.IntegerField(read_only=True, allow_null=True)
    last_execution_status = serializers.ChoiceField(
        choices=TaskExecution.Status.choices, read_only=True, allow_null=True
    )
    alert_channels = serializers.PrimaryKeyRelatedField[AlertChannel](
        many=True, read_only=True, help_text=CHANNELS_HELP
    )
    health = serializers.ChoiceField(
        choices=HealthState.choices,
        read_only=True,
        help_text=_(
            "What the schedule and the runs say of the task, kept by the "
            "scheduler: new, up, late, missed, failing, running_long or paused."
        ),
    )
    health_since = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text=_(
            "Since when the task is in its health state (null: never checked)."
        ),
    )

    class Meta:
        model = ScheduledTask
        fields = [
            "id",
            "url",
            *EDITABLE_FIELDS,
            "health",
            "health_since",
            *TASK_STATS_FIELDS,
            "version",
            "success_rate",
            "avg_duration_ms",
            "last_execution_id",
            "last_execution_status",
        ]
        read_only_fields = fields


class TaskStatusSerializer(serializers.ModelSerializer):
    """A task's id, status and version: the answer to pause and resume, which need
    no view right (the version is also the answer's ETag)."""

    class Meta:
        model = ScheduledTask
        fields = ["id", "status", "version"]
        read_only_fields = fields


class TextOnlyField(serializers.CharField):
    """A text field that takes text only (DRF's CharField turns 42 into "42")."""

    default_error_messages = {"invalid": _("Send text (a JSON string).")}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


REASON_HELP = _(
    "Why, kept in the task's audit trail, e.g. “paused until the supplier's API is "
    "back”; required for the operations SCHEDULER_REQUIRE_REASON_FOR names "
    "(400 on “reason” without it)."
)


class ReasonSerializer(serializers.Serializer):
    """The body of an operation that says why (pause, delete, release-lock)."""

    reason = TextOnlyField(required=False, allow_blank=True, help_text=REASON_HELP)


class TaskWriteSerializer(serializers.ModelSerializer):
    """A task as it is created or changed; the answer is a TaskSerializer.

    It checks the shape of each field only. Every rule is the service's:
    task_create / task_update validate the task as the admin form does, and the
    exception handler turns their TaskInvalid into a 400 naming each field.
    `reason` is not a task field: it goes to the change's audit entry.
    """

    reason = TextOnlyField(
        required=False, allow_blank=True, write_only=True, help_text=REASON_HELP
    )

    handler_kwargs = ParametersField(
        required=False, label=PARAMETERS_LABEL, help_text=PARAMETERS_HELP
    )
    # Ids only, checked by the service (an unknown id is its 400 naming the field).
    alert_channels = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        label=capfirst(ScheduledTask._meta.get_field("alert_channels").verbose_name),
        help_text=CHANNELS_HELP,
    )

    class Meta:
        model = ScheduledTask
        fields = [*TASK_WRITE_FIELDS, "reason"]
        extra_kwargs: dict[str, dict[str, Any]] = {
            # The service reports a taken name (constraint on save) with its message.
            "name": {"validators": []},
        }

    def build_standard_field(
        self, field_name: str, model_field: models.Field[Any, Any]
    ) -> tuple[type[serializers.Field], dict[str, Any]]:
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if field_name in INTEGER_BOUNDS:
            kwargs["bounds"] = INTEGER_BOUNDS[field_name]
            return BoundedIntegerField, kwargs
        if field_name in TEXT_FIELDS and issubclass(field_class, serializers.CharField):
            return LengthDocumentedCharField, kwargs
        return field_class, kwargs

    def to_representation(self, instance: ScheduledTask) -> dict[str, Any]:
        return dict(TaskSerializer(instance, context=self.context).data)


class RunRequestSerializer(serializers.Serializer):
    """Parameter overrides for one run; task_request_run checks them like the task's own."""

    kwargs = ParametersField(
        required=False,
        default=dict,
        help_text=_(
            'Parameter name → expression for this run only, e.g. {"days": "3"}; the '
            "task's other parameters keep their values."
        ),
    )


class RunResponseSerializer(serializers.ModelSerializer):
    """The pending execution a run request created."""

    url = serializers.HyperlinkedIdentityField(view_name="api:execution-detail")
    log_url = serializers.HyperlinkedIdentityField(view_name="api:execution-log")

    class Meta:
        model = TaskExecution
        fields = [
            "id",
            "url",
            "log_url",
            "task",
            "status",
            "trigger_type",
            "created_at",
        ]
        read_only_fields = fields


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField(source="progress_done", allow_null=True)
    total = serializers.IntegerField(source="progress_total", allow_null=True)
    percent = serializers.FloatField(source="progress_percent", allow_null=True)


class StoredJSONField(serializers.JSONField):
    """A JSON value as stored, made storable: a lone surrogate stored before that
    was done on the way in (SQLite keeps it as an escape) cannot be sent as UTF-8."""

    def to_representation(self, value: Any) -> Any:
        return super().to_representation(storable_json(value))


class ExecutionSerializer(serializers.ModelSerializer):
    """An execution in a list: everything but the log, traceback and result."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.JSONField: StoredJSONField,
    }

    url = serializers.HyperlinkedIdentityField(view_name="api:execution-detail")
    task_name = serializers.CharField(read_only=True)
    failure_kind = serializers.ChoiceField(
        choices=TaskExecution.FailureKind.choices,
        allow_blank=True,
        read_only=True,
        help_text=_("Why a failed run failed; empty for every other status."),
    )
    progress = ProgressSerializer(source="*", read_only=True)

    class Meta:
        model = TaskExecution
        fields = [
            "id",
            "url",
            "task",
            "task_name",
            "status",
            "failure_kind",
            "trigger_type",
            "scheduled_for",
            "attempt",
            "retry_of",
            "run_after",
            "created_at",
            "started_at",
            "finished_at",
            "duration_ms",
            "error_message",
            "kwargs_overrides",
            "kwargs",
            "progress",
            "instance_id",
            "cancel_requested",
            "requested_by",
        ]
        read_only_fields = fields


class ExecutionDetailSerializer(ExecutionSerializer):
    """An execution with its result, traceback and whole (capped) log."""

    log_url = serializers.HyperlinkedIdentityField(view_name="api:execution-log")

    class Meta(ExecutionSerializer.Meta):
        fields = [
            *ExecutionSerializer.Meta.fields,
            "result",
            "error_traceback",
            "log_output",
            "log_url",
        ]
        read_only_fields = fields


class ExecutionStatusSerializer(serializers.ModelSerializer):
    """An execution's id and status: the answer to cancel, which needs no view right."""

    class Meta:
        model = TaskExecution
        fields = ["id", "status"]
        read_only_fields = fields


class StrictIntegerField(serializers.IntegerField):
    """Digits only: DRF's IntegerField also takes "1.0" in a query string."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not (
            data.isascii() and data.lstrip("-").isdigit()
        ):
            self.fail("invalid")
        value: int = super().to_internal_value(data)
        return value


class LogQuerySerializer(serializers.Serializer):
    offset = StrictIntegerField(
        min_value=0,
        default=0,
        help_text=_(
            "Lines already read: pass back the `offset` of the previous answer."
        ),
    )


class LogTailSerializer(serializers.Serializer):
    """New log lines and where to continue; poll until `finished`."""

    offset = serializers.IntegerField(
        help_text=_("Lines written so far: the offset to pass next time.")
    )
    lines = serializers.ListField(child=serializers.CharField())
    finished = serializers.BooleanField()
    status = serializers.ChoiceField(choices=TaskExecution.Status.choices)
    progress = ProgressSerializer(source="*")


class ParameterSpecSerializer(serializers.Serializer):
    name = serializers.CharField()
    type_name = serializers.CharField()
    optional = serializers.BooleanField()
    # Declared fields shadow Field attributes of the same name only in the stubs:
    # DRF's metaclass takes them off the class.
    required = serializers.BooleanField()  # type: ignore[assignment]
    default = serializers.JSONField(allow_null=True)
    default_expression = serializers.CharField(allow_blank=True)
    label = serializers.CharField(allow_blank=True)  # type: ignore[assignment]
    help_text = serializers.CharField(allow_blank=True)  # type: ignore[assignment]
    kind = serializers.CharField()


class HandlerSerializer(serializers.Serializer):
    """A handler from the registry; a broken one carries its error."""

    path = serializers.CharField()
    kind = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    params = ParameterSpecSerializer(many=True)
    accepts_var_kwargs = serializers.BooleanField()
    is_async = serializers.BooleanField()
    schedule = serializers.JSONField(allow_null=True)
    broken = serializers.BooleanField()
    error = serializers.CharField(allow_blank=True)
    enabled = serializers.BooleanField()


class DurationStatsSerializer(serializers.Serializer):
    """A task's durations over its latest finished runs (selectors.duration_stats)."""

    task = serializers.IntegerField(source="task_id")
    name = serializers.CharField()
    count = serializers.IntegerField()
    total_ms = serializers.IntegerField()
    min_ms = serializers.IntegerField(allow_null=True)
    max_ms = serializers.IntegerField(allow_null=True)
    avg_ms = serializers.FloatField(allow_null=True)


class LockSerializer(serializers.Serializer):
    key = serializers.CharField()
    owner = serializers.CharField(allow_blank=True)
    acquired_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    ttl_seconds = serializers.FloatField()
    task_id = serializers.IntegerField(allow_null=True)
    task_name = serializers.CharField(allow_null=True)


class TaskLockSerializer(serializers.Serializer):
    locked = serializers.BooleanField()
    key = serializers.CharField()
    lock = LockSerializer(allow_null=True)


class ReleaseLockSerializer(serializers.Serializer):
    key = serializers.CharField()
    released = serializers.BooleanField(
        help_text=_("Whether a live lock was held (and is now gone).")
    )


class InstanceSerializer(serializers.Serializer):
    instance_id = serializers.CharField()
    kind = serializers.ChoiceField(choices=SchedulerInstance.Kind.choices)
    hostname = serializers.CharField(allow_blank=True)
    pid = serializers.IntegerField(allow_null=True)
    version = serializers.CharField(allow_blank=True)
    is_leader = serializers.BooleanField()
    alive = serializers.BooleanField()
    started_at = serializers.DateTimeField()
    last_heartbeat_at = serializers.DateTimeField()
    heartbeat_age_seconds = serializers.FloatField()
    stopped_at = serializers.DateTimeField(allow_null=True)
    degraded_reason = serializers.CharField(
        allow_blank=True,
        help_text=_(
            "What keeps this instance from doing its work, as its last heartbeat "
            "said (empty while it can)."
        ),
    )


class SchedulerStatusSerializer(serializers.Serializer):
    running = serializers.BooleanField(
        help_text=_("Whether any scheduler instance has a fresh heartbeat.")
    )
    leader = serializers.CharField(allow_null=True)
    degraded = serializers.BooleanField(
        help_text=_(
            "Whether a scheduler runs but cannot do its work now (a dependency "
            "is unreachable, or nobody leads); degraded_reasons says why."
        )
    )
    degraded_reasons = serializers.ListField(
        child=serializers.CharField(),
        help_text=_("Why the scheduler is degraded, one line each (empty if not)."),
    )
    instances = InstanceSerializer(
        many=True, help_text=_("Scheduler instances (runscheduler processes).")
    )
    workers = InstanceSerializer(
        many=True,
        help_text=_(
            "Celery worker processes that run executions (SCHEDULER_EXECUTOR=celery)."
        ),
    )
    worker_count = serializers.IntegerField(
        help_text=_("How many Celery worker processes have a fresh heartbeat.")
    )
    task_count = serializers.IntegerField()
    task_counts = serializers.DictField(child=serializers.IntegerField())
    health = serializers.DictField(
        source="health_counts",
        child=serializers.IntegerField(),
        help_text=_(
            "How many tasks are in each health state (new, up, late, missed, "
            "failing, running_long, paused), every state present, e.g. "
            '{"up": 12, "failing": 1, ...}.'
        ),
    )
    execution_counts = serializers.DictField(child=serializers.IntegerField())
    pending_backlog = serializers.IntegerField(
        help_text=_(
            "Pending runs whose time has come (not the fires staged ahead of "
            "their time, nor retries still waiting for their delay)."
        )
    )
    checked_at = serializers.DateTimeField()


class AlertDeliverySerializer(serializers.ModelSerializer):
    """An alert on its way to one channel. The target is left out: a webhook URL
    (Slack's above all) is a credential; the channel names where it went."""

    channel_name = serializers.SerializerMethodField(
        help_text=_("The channel's name; null for the settings' addresses and URLs.")
    )

    class Meta:
        model = AlertDelivery
        fields = [
            "id",
            "channel",
            "channel_name",
            "channel_kind",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "sent_at",
        ]
        read_only_fields = fields

    def get_channel_name(self, delivery: AlertDelivery) -> str | None:
        return delivery.channel.name if delivery.channel is not None else None


class AlertSerializer(serializers.ModelSerializer):
    """An alert as decided, with how its deliveries went."""

    deliveries = AlertDeliverySerializer(many=True, read_only=True)
    # Declared: a read-only model field loses allow_blank, and the schema the "".
    state = serializers.ChoiceField(
        choices=HealthState.choices,
        allow_blank=True,
        read_only=True,
        help_text=_("The task's health the alert tells of; empty for system alerts."),
    )
    previous_state = serializers.ChoiceField(
        choices=HealthState.choices,
        allow_blank=True,
        read_only=True,
        help_text=_("The task's health before; empty for system alerts."),
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "kind",
            "task",
            "task_name",
            "state",
            "previous_state",
            "message",
            "error",
            "execution",
            "details",
            "created_at",
            "deliveries",
        ]
        read_only_fields = fields


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "type": "array",
            "items": {},
            "minItems": 2,
            "maxItems": 2,
        },
        "example": {"status": ["active", "paused"]},
    }
)
class ChangesField(StoredJSONField):
    """Field name → [before, after], as the audit entry recorded it."""


class AuditEntrySerializer(serializers.ModelSerializer):
    """One change to a task or operation on it: who, from where, what, why."""

    task = serializers.PrimaryKeyRelatedField[ScheduledTask](
        read_only=True,
        allow_null=True,
        help_text=_("The task's id; null once the task is deleted (task_name stays)."),
    )
    actor = serializers.CharField(
        source="actor_name",
        read_only=True,
        help_text=_(
            "The username as it was; empty for trusted code (the command line, the "
            "Python API, the schedule sync, an import)."
        ),
    )
    api_key = serializers.CharField(
        source="api_key_name",
        read_only=True,
        help_text=_("The name of the API key the request came with; empty otherwise."),
    )
    changes = ChangesField(
        read_only=True,
        help_text=_("Each changed field's [before, after]; empty for operations."),
    )
    run_id = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text=_("The run it concerns (run now, cancel), or null."),
    )

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "task",
            "task_name",
            "actor",
            "api_key",
            "source",
            "action",
            "changes",
            "reason",
            "run_id",
        ]
        read_only_fields = fields
