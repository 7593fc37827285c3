"""API views: thin wrappers that call the same services as the admin and the CLI."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, cast

from django.db.models import QuerySet
from django.http import HttpRequest, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from .. import selectors, services
from ..choices import AuditSource
from ..exceptions import ExecutionNotFound, SchedulerError, TaskNotFound
from ..handlers.registry import list_handlers
from ..locks import task_lock_key
from ..models import Alert, AuditEntry, ScheduledTask, TaskExecution
from . import serializers
from .exceptions import error_body, errors_by_field
from .filters import (
    AlertFilter,
    AllExecutionsFilter,
    AuditFilter,
    ExecutionFilter,
    OrderingFilter,
    SearchFilter,
    TaskFilter,
)
from .pagination import AuditCursorPagination, ExecutionCursorPagination
from .permissions import (
    PAUSE_TASK,
    RELEASE_LOCK,
    RUN_TASK,
    VIEW_EXECUTION,
    VIEW_TASK,
    ActionPermissions,
    RequiredPermissions,
)

#: Words the task routes use themselves: a task so named is reachable by id only.
RESERVED_TASK_NAMES = ["executions", "handlers", "locks", "registered"]
ID_OR_NAME = OpenApiParameter(
    "id_or_name",
    {
        "type": "string",
        "pattern": "^[^/]+$",
        "not": {"enum": RESERVED_TASK_NAMES},
    },
    OpenApiParameter.PATH,
    description=(
        "The task's id or its name. A purely numeric value is looked up as an id "
        "first, then as a name. A task named %s is reachable by its id only."
        % ", ".join(RESERVED_TASK_NAMES)
    ),
)
EXECUTION_ID = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The execution's id."
)
ALERT_ID = OpenApiParameter(
    "alert_id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The alert's id."
)
CONFLICT = OpenApiResponse(description="The object's state does not allow this.")
BAD_REQUEST = OpenApiResponse(
    description="A field is refused, e.g. “reason” missing where it is required."
)
REASON = OpenApiParameter(
    "reason",
    str,
    OpenApiParameter.QUERY,
    required=False,
    description="Why (kept in the audit trail); the body's “reason” does the same.",
)
IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description=(
        'The task\'s ETag as a GET returned it (e.g. "3"): the change is refused '
        "with 412 if the task changed since. Without it, the change applies to the "
        "fields sent, whatever else changed."
    ),
)
PRECONDITION_FAILED = OpenApiResponse(
    description="If-Match named another version: the task changed since; nothing saved."
)
#: An If-Match value: "*", or a list of entity-tags (W/"..." weak, "..." strong).
IF_MATCH_VALUE = re.compile(r'\s*(?:\*|(?:W/)?"[^"]*"(?:\s*,\s*(?:W/)?"[^"]*")*)\s*')
STRONG_TAG = re.compile(r'(?<!W/)"([^"]*)"')
MSG_IF_MATCH = gettext_lazy(
    "If-Match: send the task's ETag exactly as a GET returned it, quotes "
    'included (e.g. If-Match: "3"), or leave the header out.'
)


def if_match_version(request: Request, task: ScheduledTask) -> int | None:
    """The version an If-Match header asks `task` to be at; None without one ("*").

    The tags are compared strongly and exactly: a weak one, "03" or a tag that
    is no version of ours never matches (0, which no task has), so the change is
    refused with 412, as HTTP says. Of a list, the tag of the task's version as
    loaded is the one asked for; the service checks it again under the lock.
    """
    header = request.headers.get("If-Match")
    if header is None:
        return None
    if IF_MATCH_VALUE.fullmatch(header) is None:
        raise SchedulerError(str(MSG_IF_MATCH), code="invalid_if_match")
    if header.strip() == "*":
        return None
    tags = set(STRONG_TAG.findall(header))
    return task.version if str(task.version) in tags else 0


CANCEL_RUNS = OpenApiParameter(
    "cancel_runs",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description=(
        "true: cancel the task's pending runs and ask its running ones to stop, then "
        "delete it. Without it, a task with runs pending or running answers 409."
    ),
)
FORCE = OpenApiParameter(
    "force",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description=(
        "true: release the lock even though the run holding it is still going on a "
        "live instance (it keeps running). Without it, that case answers 409 "
        "(code lock_holder_alive)."
    ),
)
MSG_TRUE_OR_FALSE = gettext_lazy("%(name)s: use true or false.")


SLOW_OVER = OpenApiParameter(
    "slow_over",
    OpenApiTypes.NUMBER,
    OpenApiParameter.QUERY,
    description="Only the tasks whose average is over this many seconds, slowest first.",
)
MSG_SECONDS = gettext_lazy("%(name)s: use a number of seconds, 0 or more (e.g. 1.5).")


def seconds_asked(request: Request, name: str) -> float | None:
    """?<name>=<seconds> as a number, None without it; anything else is a 400."""
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise SchedulerError(str(MSG_SECONDS % {"name": name}), field=name)
    return seconds


def flag_asked(request: Request, name: str) -> bool:
    """Whether ?<name>=true came with the request; a value but true/false is a 400."""
    value = request.query_params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise SchedulerError(str(MSG_TRUE_OR_FALSE % {"name": name}), field=name)
    return value == "true"


#: The action options of a task's executions (`executions`, `history`).
TASK_EXECUTIONS: dict[str, Any] = {
    "detail": True,
    "methods": ["get"],
    "serializer_class": serializers.ExecutionSerializer,
    "filterset_class": ExecutionFilter,
    "filter_backends": [DjangoFilterBackend],
    "pagination_class": ExecutionCursorPagination,
}


def api_origin(request: Request, reason: str = "") -> services.Origin:
    """Who acts through the API: the request's user and API key, with `reason`."""
    return services.Origin.of_request(request, source=AuditSource.API, reason=reason)


def reason_asked(request: Request) -> str:
    """The `reason` of the request's body ({"reason": "..."}), else of ?reason=."""
    # Not `request.data or {}`: a body of false or [] is refused, not read as none.
    body = serializers.ReasonSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    return str(
        body.validated_data.get("reason") or request.query_params.get("reason", "")
    )


def _is_ascii_number(value: str) -> bool:
    return value.isascii() and value.isdigit()


def task_from_url(value: str) -> ScheduledTask:
    """The task a URL names, by id or name; TaskNotFound (404) otherwise."""
    if "\x00" in value:
        raise TaskNotFound(
            _("No task “%(name)s”.") % {"name": value.replace("\x00", "")}
        )
    if value.isdigit() and not _is_ascii_number(value):
        # task_get() would take "²" for a number and fail on int(); such a value
        # can only be a name.
        task = ScheduledTask.objects.filter(name=value).first()
        if task is None:
            raise TaskNotFound(_("No task “%(name)s”.") % {"name": value})
        return task
    return services.task_get(value)


@extend_schema(tags=["tasks"])
@extend_schema_view(
    list=extend_schema(summary="List tasks"),
    retrieve=extend_schema(summary="Get a task", parameters=[ID_OR_NAME]),
    create=extend_schema(
        summary="Create a task",
        request=serializers.TaskWriteSerializer,
        responses={201: serializers.TaskSerializer},
    ),
    update=extend_schema(
        summary="Replace a task",
        parameters=[ID_OR_NAME, IF_MATCH],
        request=serializers.TaskWriteSerializer,
        responses={200: serializers.TaskSerializer, 412: PRECONDITION_FAILED},
    ),
    partial_update=extend_schema(
        summary="Change some of a task's fields (only those: nothing else is written)",
        parameters=[ID_OR_NAME, IF_MATCH],
        request=serializers.TaskWriteSerializer,
        responses={200: serializers.TaskSerializer, 412: PRECONDITION_FAILED},
    ),
    destroy=extend_schema(
        summary=(
            "Delete a task and its history (409: a system task, or runs pending or "
            "running without cancel_runs=true)"
        ),
        parameters=[ID_OR_NAME, CANCEL_RUNS, REASON, IF_MATCH],
        responses={
            204: None,
            400: BAD_REQUEST,
            409: CONFLICT,
            412: PRECONDITION_FAILED,
        },
    ),
)
class ScheduledTaskViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Scheduled tasks: CRUD, run / pause / resume, history, handlers and locks."""

    serializer_class = serializers.TaskSerializer
    permission_classes = [ActionPermissions]
    lookup_url_kwarg = "id_or_name"
    lookup_value_regex = "[^/]+"
    filter_backends = [DjangoFilterBackend, SearchFilter, OrderingFilter]
    filterset_class = TaskFilter
    search_fields = ["name", "description", "handler_path"]
    ordering_fields = ["name", "next_run_at", "last_run_at", "created_at", "health"]
    ordering = ["name"]
    action_permissions = {
        "run": [RUN_TASK],
        "trigger": [RUN_TASK],
        "pause": [PAUSE_TASK],
        "resume": [PAUSE_TASK],
        "enable": [PAUSE_TASK],
        "disable": [PAUSE_TASK],
        "executions": [VIEW_TASK, VIEW_EXECUTION],
        "history": [VIEW_TASK, VIEW_EXECUTION],
        "handlers": [VIEW_TASK],
        "stats": [VIEW_TASK],
        "registered": [VIEW_TASK],
        "locks": [VIEW_TASK],
        "lock": [VIEW_TASK],
        "release_lock": [RELEASE_LOCK],
    }

    def get_queryset(self) -> QuerySet[Any]:
        if self.action in ("executions", "history"):
            return selectors.executions_overview()
        return selectors.tasks_for_api().order_by("name", "pk")

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action in ("create", "update", "partial_update"):
            return serializers.TaskWriteSerializer
        # Extra actions set their own through @action(serializer_class=...).
        return self.serializer_class

    def get_object(self) -> ScheduledTask:
        task = task_from_url(self.kwargs[self.lookup_url_kwarg])
        self.check_object_permissions(self.request, task)
        return task

    def _with_stats(self, task: ScheduledTask) -> ScheduledTask:
        """The task again, annotated like the list (its latest execution)."""
        return selectors.tasks_for_api().get(pk=task.pk)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        task = self._with_stats(self.get_object())
        return Response(self.get_serializer(task).data)

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Any:
        # The ETag of every answer that shows one task: its version (If-Match).
        data = getattr(response, "data", None)
        if (
            self.action
            in (
                "retrieve",
                "create",
                "update",
                "partial_update",
                "pause",
                "resume",
                "enable",
                "disable",
            )
            and response.status_code in (200, 201)
            and isinstance(data, dict)
            and "version" in data
        ):
            response["ETag"] = '"%d"' % data["version"]
        return super().finalize_response(request, response, *args, **kwargs)

    def perform_create(self, serializer: BaseSerializer[Any]) -> None:
        fields = dict(serializer.validated_data)
        channels = fields.pop("alert_channels", None)
        reason = fields.pop("reason", "")
        task = ScheduledTask(**fields)
        serializer.instance = services.task_create(
            task=task, alert_channels=channels, origin=api_origin(self.request, reason)
        )

    def perform_update(self, serializer: BaseSerializer[Any]) -> None:
        task = cast(ScheduledTask, serializer.instance)
        changes = dict(serializer.validated_data)
        reason = changes.pop("reason", "")
        task = services.task_update(
            task=task,
            changes=changes,
            origin=api_origin(self.request, reason),
            expected_version=if_match_version(self.request, task),
        )
        serializer.instance = self._with_stats(task)

    def perform_destroy(self, instance: ScheduledTask) -> None:
        services.task_delete(
            task=instance,
            cancel_runs=flag_asked(self.request, "cancel_runs"),
            origin=api_origin(self.request, reason_asked(self.request)),
            expected_version=if_match_version(self.request, instance),
        )

    def _change_status(
        self,
        request: Request,
        change: Callable[..., ScheduledTask],
        *,
        asks_reason: bool,
    ) -> Response:
        """pause, resume, enable, disable: the service on the URL's task, with
        If-Match, and the request's reason for those that keep one."""
        task = self.get_object()
        reason = reason_asked(request) if asks_reason else ""
        return self._status_response(
            change(
                task=task,
                origin=api_origin(request, reason),
                expected_version=if_match_version(request, task),
            )
        )

    def _status_response(self, task: ScheduledTask) -> Response:
        # The id and the new status only: pausing does not need the view permission.
        return Response(serializers.TaskStatusSerializer(task).data)

    @extend_schema(
        summary="Request a run now (202: the scheduler starts it)",
        parameters=[ID_OR_NAME],
        request=serializers.RunRequestSerializer,
        responses={202: serializers.RunResponseSerializer},
    )
    @action(detail=True, methods=["post"])
    def run(self, request: Request, id_or_name: str) -> Response:
        return self._request_run(request)

    def _request_run(self, request: Request) -> Response:
        task = self.get_object()
        body = serializers.RunRequestSerializer(
            data=request.data, context={**self.get_serializer_context(), "task": task}
        )
        body.is_valid(raise_exception=True)
        try:
            execution = services.task_request_run(
                task=task,
                overrides=body.validated_data["kwargs"],
                origin=api_origin(request),
            )
        except services.TaskInvalid as exc:
            # The overrides came in as `kwargs`: their errors are named so.
            errors = errors_by_field(exc.errors, parameters_field="kwargs")
            raise ValidationError(errors) from exc
        data = serializers.RunResponseSerializer(
            execution, context=self.get_serializer_context()
        ).data
        # data["url"] is a DRF Hyperlink, a str subclass; WSGI wants exactly str
        # (runserver answered 500 to it after the run was created).
        return Response(
            data,
            status=status.HTTP_202_ACCEPTED,
            headers={"Location": str(data["url"])},
        )

    @extend_schema(
        summary="Request a run now: `run` by its other name (seed 001)",
        parameters=[ID_OR_NAME],
        request=serializers.RunRequestSerializer,
        responses={202: serializers.RunResponseSerializer},
    )
    @action(detail=True, methods=["post"])
    def trigger(self, request: Request, id_or_name: str) -> Response:
        return self._request_run(request)

    @extend_schema(
        summary="Pause a task (it stops firing; run-now still works; 409 if disabled)",
        parameters=[ID_OR_NAME, IF_MATCH],
        request=serializers.ReasonSerializer,
        responses={
            200: serializers.TaskStatusSerializer,
            400: BAD_REQUEST,
            409: CONFLICT,
            412: PRECONDITION_FAILED,
        },
    )
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, id_or_name: str) -> Response:
        return self._change_status(request, services.task_pause, asks_reason=True)

    @extend_schema(
        summary="Resume a paused task (it fires again from now on; 409 if disabled)",
        parameters=[ID_OR_NAME, IF_MATCH],
        request=None,
        responses={
            200: serializers.TaskStatusSerializer,
            409: CONFLICT,
            412: PRECONDITION_FAILED,
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, id_or_name: str) -> Response:
        return self._change_status(request, services.task_resume, asks_reason=False)

    @extend_schema(
        summary="Enable a disabled task (it fires again from now on; others unchanged)",
        parameters=[ID_OR_NAME, IF_MATCH],
        request=None,
        responses={200: serializers.TaskStatusSerializer, 412: PRECONDITION_FAILED},
    )
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, id_or_name: str) -> Response:
        return self._change_status(request, services.task_enable, asks_reason=False)

    @extend_schema(
        summary="Disable a task, whatever its status, until it is enabled again",
        parameters=[ID_OR_NAME, IF_MATCH],
        request=serializers.ReasonSerializer,
        responses={
            200: serializers.TaskStatusSerializer,
            400: BAD_REQUEST,
            412: PRECONDITION_FAILED,
        },
    )
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, id_or_name: str) -> Response:
        return self._change_status(request, services.task_disable, asks_reason=True)

    @extend_schema(
        summary="A task's executions, newest first",
        parameters=[ID_OR_NAME],
        responses=serializers.ExecutionSerializer(many=True),
    )
    @action(**TASK_EXECUTIONS)
    def executions(self, request: Request, id_or_name: str) -> Response:
        return self._task_executions()

    def _task_executions(self) -> Response:
        task = self.get_object()
        queryset = self.filter_queryset(self.get_queryset().filter(task=task))
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        summary="A task's executions, newest first: `executions` by its other name",
        parameters=[ID_OR_NAME],
        responses=serializers.ExecutionSerializer(many=True),
    )
    @action(**TASK_EXECUTIONS)
    def history(self, request: Request, id_or_name: str) -> Response:
        return self._task_executions()

    def _paginated(
        self, items: list[Any], serializer_class: type[BaseSerializer[Any]]
    ) -> Response:
        # DRF pages any sliceable sequence (Django's Paginator takes a list);
        # the stubs accept only a QuerySet.
        page: list[Any] | None = self.paginate_queryset(items)  # type: ignore[arg-type]
        data = serializer_class(
            page, many=True, context=self.get_serializer_context()
        ).data
        return self.get_paginated_response(data)

    @extend_schema(
        summary="Every allowed handler (scripts, then code), broken ones with their error",
        responses=serializers.HandlerSerializer(many=True),
    )
    @action(
        detail=False,
        methods=["get"],
        serializer_class=serializers.HandlerSerializer,
        filter_backends=[],
    )
    def handlers(self, request: Request) -> Response:
        return self._handlers_page()

    def _handlers_page(self) -> Response:
        return self._paginated(
            [info.to_dict() for info in list_handlers()], serializers.HandlerSerializer
        )

    @extend_schema(
        summary="The handlers (same as tasks/handlers; kept for older clients)",
        responses=serializers.HandlerSerializer(many=True),
    )
    @action(
        detail=False,
        methods=["get"],
        serializer_class=serializers.HandlerSerializer,
        filter_backends=[],
    )
    def registered(self, request: Request) -> Response:
        return self._handlers_page()

    @extend_schema(
        summary="Each task's durations over its latest finished runs (slowest first "
        "with ?slow_over=<seconds>)",
        parameters=[SLOW_OVER],
        responses=serializers.DurationStatsSerializer(many=True),
    )
    @action(
        detail=False,
        methods=["get"],
        serializer_class=serializers.DurationStatsSerializer,
        filter_backends=[],
    )
    def stats(self, request: Request) -> Response:
        return self._paginated(
            selectors.duration_stats(
                slow_over_seconds=seconds_asked(request, "slow_over")
            ),
            serializers.DurationStatsSerializer,
        )

    @extend_schema(
        summary="Every live lock: task locks and the leader lease",
        responses=serializers.LockSerializer(many=True),
    )
    @action(
        detail=False,
        methods=["get"],
        serializer_class=serializers.LockSerializer,
        filter_backends=[],
    )
    def locks(self, request: Request) -> Response:
        return self._paginated(selectors.locks_overview(), serializers.LockSerializer)

    @extend_schema(
        summary="The lock a running task holds, if any",
        parameters=[ID_OR_NAME],
        responses=serializers.TaskLockSerializer,
    )
    @action(
        detail=True, methods=["get"], serializer_class=serializers.TaskLockSerializer
    )
    def lock(self, request: Request, id_or_name: str) -> Response:
        task = self.get_object()
        lock = selectors.task_lock_overview(task)
        data = {"locked": lock is not None, "key": task_lock_key(task.pk), "lock": lock}
        return Response(serializers.TaskLockSerializer(data).data)

    @extend_schema(
        summary="Force-release a task's lock (when its holder is gone)",
        parameters=[ID_OR_NAME, FORCE],
        request=serializers.ReasonSerializer,
        responses={
            200: serializers.ReleaseLockSerializer,
            400: BAD_REQUEST,
            409: CONFLICT,
        },
    )
    @action(
        detail=True,
        methods=["post"],
        url_path="release-lock",
        serializer_class=serializers.ReleaseLockSerializer,
    )
    def release_lock(self, request: Request, id_or_name: str) -> Response:
        task = self.get_object()
        key = task_lock_key(task.pk)
        released = services.lock_force_release(
            key,
            origin=api_origin(request, reason_asked(request)),
            force=flag_asked(request, "force"),
        )
        return Response(
            serializers.ReleaseLockSerializer({"key": key, "released": released}).data
        )


@extend_schema(tags=["executions"])
@extend_schema_view(
    list=extend_schema(
        summary="Executions of every task, newest first", operation_id="executions_list"
    ),
    retrieve=extend_schema(
        summary="An execution with its result, traceback and log",
        operation_id="executions_retrieve",
        parameters=[EXECUTION_ID],
    ),
)
class TaskExecutionViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Executions: history, one run's details, its live log, cancel."""

    serializer_class = serializers.ExecutionDetailSerializer
    permission_classes = [ActionPermissions]
    lookup_value_regex = "[^/]+"
    filter_backends = [DjangoFilterBackend]
    filterset_class = AllExecutionsFilter
    pagination_class = ExecutionCursorPagination
    action_permissions = {"cancel": [RUN_TASK]}

    def get_queryset(self) -> QuerySet[TaskExecution]:
        if self.action == "list":
            return selectors.executions_overview()
        return selectors.executions_with_task_name()

    def get_serializer_class(self) -> type[BaseSerializer[Any]]:
        if self.action == "list":
            return serializers.ExecutionSerializer
        return self.serializer_class

    def get_object(self) -> TaskExecution:
        value = self.kwargs[self.lookup_field]
        execution = None
        if _is_ascii_number(value):
            execution = self.get_queryset().filter(pk=int(value)).first()
        if execution is None:
            raise ExecutionNotFound(
                _("No execution #%(id)s.") % {"id": value.replace("\x00", "")}
            )
        self.check_object_permissions(self.request, execution)
        return execution

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        execution = selectors.execution_with_live_log(self.get_object())
        return Response(self.get_serializer(execution).data)

    @extend_schema(
        summary="Log lines after an offset, for live tailing",
        operation_id="executions_log",
        parameters=[EXECUTION_ID, serializers.LogQuerySerializer],
        responses=serializers.LogTailSerializer,
    )
    @action(detail=True, methods=["get"], filter_backends=[])
    def log(self, request: Request, pk: str) -> Response:
        query = serializers.LogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        tail = selectors.execution_log_since(
            self.get_object(), query.validated_data["offset"]
        )
        return Response(serializers.LogTailSerializer(tail).data)

    @extend_schema(
        summary="Cancel a pending run or stop a running one (409 when finished)",
        operation_id="executions_cancel",
        parameters=[EXECUTION_ID],
        request=None,
        responses={200: serializers.ExecutionStatusSerializer, 409: CONFLICT},
    )
    @action(detail=True, methods=["post"], filter_backends=[])
    def cancel(self, request: Request, pk: str) -> Response:
        execution = services.execution_cancel(
            execution=self.get_object(), origin=api_origin(request)
        )
        # The id and the new status only: cancelling does not need the view permission.
        return Response(serializers.ExecutionStatusSerializer(execution).data)


@extend_schema(tags=["alerts"])
@extend_schema_view(
    list=extend_schema(
        summary="Alerts, newest first, with their deliveries",
        operation_id="alerts_list",
    ),
    retrieve=extend_schema(
        summary="An alert with its deliveries", operation_id="alerts_retrieve"
    ),
)
class AlertViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Alerts (read-only): what people were told, and how its deliveries went."""

    serializer_class = serializers.AlertSerializer
    permission_classes = [ActionPermissions]
    lookup_url_kwarg = "alert_id"
    lookup_value_regex = "[0-9]+"
    filter_backends = [DjangoFilterBackend]
    filterset_class = AlertFilter

    def get_queryset(self) -> QuerySet[Alert]:
        return selectors.alerts_overview()


@extend_schema(tags=["audit"])
@extend_schema_view(
    list=extend_schema(
        summary=(
            "The audit trail, newest first: who changed or operated a task, from "
            "where, what, and why"
        ),
        operation_id="audit_list",
    ),
)
class AuditEntryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The audit trail (read-only; needs scheduler_app.view_auditentry)."""

    serializer_class = serializers.AuditEntrySerializer
    # ModelPermissions: reading needs the model's view permission (VIEW_AUDIT).
    permission_classes = [ActionPermissions]
    filter_backends = [DjangoFilterBackend]
    filterset_class = AuditFilter
    pagination_class = AuditCursorPagination

    def get_queryset(self) -> QuerySet[AuditEntry]:
        return selectors.audit_entries()


class SchedulerStatusView(APIView):
    """Whether a scheduler runs, its leader and instances, and task counts."""

    permission_classes = [RequiredPermissions]
    required_permissions = [VIEW_TASK]

    @extend_schema(
        tags=["scheduler"],
        summary="Scheduler health: instances, leader, Celery workers, task counts",
        responses=serializers.SchedulerStatusSerializer,
    )
    def get(self, request: Request) -> Response:
        return Response(
            serializers.SchedulerStatusSerializer(selectors.scheduler_status()).data
        )


@csrf_exempt  # it changes nothing; without this a POST or DELETE got the HTML CSRF page
def not_found(request: HttpRequest, path: str = "") -> JsonResponse:
    """JSON 404 for any URL under /api/v1/ that names no endpoint, whatever the method."""
    return JsonResponse(
        error_body(
            detail=_("No API endpoint at %(path)s; see /api/v1/docs/.")
            % {"path": request.path},
            code="not_found",
        ),
        status=404,
    )
