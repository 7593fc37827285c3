"""Admin forms: the task form with one input per handler parameter, run-with-parameters, preview."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.core import signing
from django.forms.models import construct_instance
from django.utils.html import escape
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from . import services
from .choices import AuditSource
from .exceptions import (
    ParameterError,
    ReasonInvalid,
    SchedulerError,
    StatusChangeForbidden,
    TaskChanged,
    TaskNotFound,
)
from .handlers.params import ParamSpec
from .handlers.registry import KIND_SCRIPT, HandlerInfo, get_handler, list_handlers
from .models import AlertChannel, ScheduledTask
from .schedules import Schedule
from .services.validation import INTEGER_BOUNDS, TEXT_FIELDS

#: Parameter inputs are named param_<parameter>, so they never clash with task fields.
PARAM_PREFIX = "param_"
#: The salt of the task form's signed record of what the page was opened with.
LOADED_STATE_SALT = "scheduler_app.task-form.loaded"
#: The longest handler description shown inside an <option>.
OPTION_DESCRIPTION_LENGTH = 90


def param_field_name(name: str) -> str:
    return PARAM_PREFIX + name


def handler_info(path: str) -> HandlerInfo | None:
    """The registry's description of a handler, or None when it is unknown or broken."""
    if not path:
        return None
    try:
        return get_handler(path)
    except SchedulerError:
        return None


def expression_text(value: Any) -> str:
    """How a stored parameter value reads in an expression input.

    Strings are expressions already; other JSON values are literals, written as
    the Python literal safe_eval reads back (7, True, None, [1, 2], {'a': 1}).
    """
    return value if isinstance(value, str) else repr(value)


def parameter_type_label(spec: ParamSpec) -> str:
    return "%s | None" % spec.type_name if spec.optional else spec.type_name


def parameter_help(spec: ParamSpec) -> str:
    """The help line under a parameter input: type, required or default, the script's help."""
    parts = [gettext("Type: %(type)s") % {"type": parameter_type_label(spec)}]
    if spec.required:
        parts.append(gettext("required"))
    elif spec.default_expression:
        parts.append(
            gettext("default: %(default)s") % {"default": spec.default_expression}
        )
    if spec.help_text:
        parts.append(str(spec.help_text))
    return " · ".join(parts)


def parameter_spec_dict(spec: ParamSpec) -> dict[str, Any]:
    """A parameter as the task form's script rebuilds its input (JSON endpoint)."""
    field = param_field_name(spec.name)
    return {
        **spec.to_dict(),
        "field": field,
        "id": "id_%s" % field,
        "label": str(spec.label or spec.name),
        "type_label": parameter_type_label(spec),
        "placeholder": spec.default_expression,
        "help": parameter_help(spec),
    }


class ParameterField(forms.CharField):
    """One handler parameter, entered as a safe_eval expression.

    A required parameter is marked as such, but a missing one is reported by the
    validation service (the same message as the API), not by the form.
    """

    def __init__(self, spec: ParamSpec, **kwargs: Any) -> None:
        kwargs.setdefault("label", spec.label or spec.name)
        # The admin renders help text unescaped; a script's TASK_INFO help is plain text.
        kwargs.setdefault("help_text", escape(parameter_help(spec)))
        widget = forms.TextInput(
            attrs={
                "class": "vTextField scheduler-param",
                "placeholder": spec.default_expression,
                "data-param": spec.name,
                "spellcheck": "false",
                "autocomplete": "off",
            }
        )
        super().__init__(required=spec.required, strip=True, widget=widget, **kwargs)

    def validate(self, value: Any) -> None:
        if value in self.empty_values:
            return
        super().validate(value)


def parameter_fields(info: HandlerInfo | None) -> dict[str, ParameterField]:
    if info is None:
        return {}
    return {param_field_name(spec.name): ParameterField(spec) for spec in info.params}


class HandlerSelect(forms.Select):
    """A select of the registry's handlers; broken ones are listed, disabled, with their error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handlers: dict[str, HandlerInfo] = {}

    def create_option(
        self,
        name: str,
        value: Any,
        label: int | str,
        selected: bool,
        index: int,
        subindex: int | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        option = super().create_option(
            name, value, label, selected, index, subindex=subindex, attrs=attrs
        )
        info = self.handlers.get(str(value))
        if info is not None:
            option["attrs"]["title"] = info.error if info.broken else info.description
            option["attrs"]["data-description"] = info.description
            if info.broken:
                option["attrs"]["data-broken"] = info.error
                # The task's current handler stays selectable, so saving other
                # fields does not drop it; the service then reports it broken.
                if not selected:
                    option["attrs"]["disabled"] = True
        return option


def _option_label(info: HandlerInfo) -> str:
    if info.broken:
        detail = gettext("broken: %(error)s") % {"error": info.error}
    else:
        detail = info.description
    if len(detail) > OPTION_DESCRIPTION_LENGTH:
        detail = detail[: OPTION_DESCRIPTION_LENGTH - 1] + "…"
    head = "%s (%s)" % (info.name, info.path) if info.name != info.path else info.path
    return "%s — %s" % (head, detail) if detail else head


def handler_choices(current: str) -> tuple[list[Any], dict[str, HandlerInfo]]:
    """Choices for the handler select: the allowed handlers, grouped by where they live.

    Scripts, then the handlers registered in code. The current value, when it is not
    one of them (a handler that is no longer allowed, or gone), stays selectable in a
    group of its own, labelled with why, so the page shows what the task holds.
    """
    infos = {info.path: info for info in list_handlers()}
    scripts = [
        (path, _option_label(info))
        for path, info in infos.items()
        if info.kind == KIND_SCRIPT
    ]
    registered = [
        (path, _option_label(info))
        for path, info in infos.items()
        if info.kind != KIND_SCRIPT
    ]
    choices: list[Any] = [("", "---------")]
    if scripts:
        choices.append((gettext("Scripts (the scripts folder)"), scripts))
    if registered:
        choices.append((gettext("Registered in code"), registered))
    if current and current not in infos:
        try:
            get_handler(current)
        except SchedulerError as exc:
            label = "%s — %s" % (current, exc.message)
        else:  # allowed, but not listed (e.g. registered since the list was read)
            label = current
        choices.append((gettext("Current value"), [(current, label)]))
    return choices, infos


def add_service_errors(
    form: forms.BaseForm, exc: services.TaskInvalid, parameter_names: Iterable[str]
) -> None:
    """Show each problem the validation service found on the input it concerns."""
    names = set(parameter_names)
    for error in exc.errors:
        field: str | None = error.field
        if isinstance(error, ParameterError):
            if field in names:
                field = param_field_name(field)
            elif "handler_kwargs" in form.fields:
                field = "handler_kwargs"
            else:
                field = None
        elif field not in form.fields:
            field = None
        form.add_error(field, error.message)


class ScheduledTaskForm(forms.ModelForm):
    """The task form. `for_handler()` adds one input per parameter of the chosen handler.

    The parameter inputs and "other parameters" (JSON, for **kwargs handlers) are
    stored together in `handler_kwargs`. All checks are the validation service's.
    """

    #: The task's version and fields when the page was opened (hidden; signed).
    loaded_version = forms.IntegerField(required=False, widget=forms.HiddenInput)
    loaded_state = forms.CharField(required=False, widget=forms.HiddenInput)
    handler_path = forms.CharField(
        label=_("Handler"),
        widget=HandlerSelect(attrs={"class": "scheduler-handler-select"}),
        help_text=_(
            "A script from the scripts folder (scripts:<file>), or a function or task "
            "class registered in code with @scheduler_app.handler."
        ),
    )

    #: Why (not a task field): kept in the change's audit entry; required for a
    #: pause or disable when SCHEDULER_REQUIRE_REASON_FOR says so.
    reason = forms.CharField(
        label=_("Reason"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_(
            "Why you make this change, e.g. “paused until the supplier's API is back”; "
            "kept in the task's audit trail."
        ),
    )

    #: The parameters that have an input (set by for_handler).
    parameter_names: tuple[str, ...] = ()
    #: Who submits the form (set by the admin): a new status needs their permission.
    actor: Any = None

    class Meta:
        model = ScheduledTask
        # What a caller may set (services.EDITABLE_FIELDS); the run counters and
        # run times are the engine's, never the form's.
        fields = list(services.EDITABLE_FIELDS)
        labels = {"handler_kwargs": _("Other parameters (JSON)")}
        widgets = {"alert_channels": forms.CheckboxSelectMultiple}
        help_texts = {
            "handler_kwargs": _(
                "Only for parameters without an input above (a handler that takes "
                '**kwargs), e.g. {"extra": "7"}.'
            )
        }

    class Media:
        js = ["scheduler_app/task_form.js"]

    @classmethod
    def for_handler(cls, info: HandlerInfo | None) -> type[ScheduledTaskForm]:
        """A form class with one declared input per parameter of `info`'s handler."""
        attrs: dict[str, Any] = {
            **parameter_fields(info),
            "parameter_names": tuple(spec.name for spec in info.params) if info else (),
            "__module__": cls.__module__,
        }
        return type(cls.__name__, (cls,), attrs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.is_bound:
            current = self.data.get(self.add_prefix("handler_path"), "")
        else:
            current = self.initial.get("handler_path") or ""
        for name in (*INTEGER_BOUNDS, *TEXT_FIELDS):
            if name in self.fields:
                # The bounds and lengths are task_validate's, with its message; the
                # model field's own (MinValueValidator(0), MaxLengthValidator)
                # would answer first. A text input keeps its maxlength attribute.
                field = self.fields[name]
                field.validators = [
                    validator
                    for validator in field.validators
                    if not hasattr(validator, "limit_value")
                ]
        if "alert_channels" in self.fields:
            channels = self.fields["alert_channels"]
            channels.label_from_instance = channel_label  # type: ignore[attr-defined]
            if hasattr(channels, "queryset"):
                channels.queryset = channels.queryset.order_by("name")
        choices, infos = handler_choices(str(current))
        widget = self.fields["handler_path"].widget
        widget.choices = choices
        widget.handlers = infos
        stored = (
            self.instance.handler_kwargs
            if isinstance(self.instance.handler_kwargs, dict)
            else {}
        )
        for name in self.parameter_names:
            if name in stored:
                self.initial[param_field_name(name)] = expression_text(stored[name])
        self.initial["handler_kwargs"] = {
            key: value
            for key, value in stored.items()
            if key not in self.parameter_names
        }
        if self.instance.pk is not None:
            # What the page shows, to refuse saving over a change made meanwhile.
            self.initial["loaded_version"] = self.instance.version
            self.initial["loaded_state"] = signing.dumps(
                services.task_snapshot(self.instance),
                salt=LOADED_STATE_SALT,
                compress=True,
            )

    def _loaded(self) -> tuple[int | None, dict[str, str] | None]:
        """The version and field values the page was opened with (None: unknown)."""
        try:
            seen = signing.loads(
                self.cleaned_data.get("loaded_state") or "", salt=LOADED_STATE_SALT
            )
        except signing.BadSignature:
            seen = None
        return self.cleaned_data.get("loaded_version"), seen

    def _collect_kwargs(self) -> Any:
        """The parameter inputs merged into "other parameters" (the JSON).

        JSON that is no object is handed on as it is, for the validation service
        to refuse with its message.
        """
        extras = self.cleaned_data.get("handler_kwargs")
        if extras in (None, ""):
            extras = {}
        if not isinstance(extras, Mapping):
            return extras
        # An input wins over the same name in the JSON; an empty input leaves it.
        kwargs = dict(extras)
        for name in self.parameter_names:
            text = self.cleaned_data.get(param_field_name(name))
            if text:
                kwargs[name] = text
        return kwargs

    def clean_run_date(self) -> Any:
        """The stored run date when the inputs show it unchanged.

        The inputs show whole seconds: a run date stored with a fraction of a
        second (set through the API or the Python API) comes back without it, and
        would count as changed (a changed run date must lie ahead).
        """
        value = self.cleaned_data.get("run_date")
        stored = self.instance.run_date if self.instance.pk else None
        if value and stored and value == stored.replace(microsecond=0):
            return stored
        return value

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if self.errors:
            return cleaned
        cleaned["handler_kwargs"] = self._collect_kwargs()
        # ModelForm copies cleaned_data onto the instance only after clean(); do it
        # now so the submitted values are validated, not the stored ones.
        version, seen = self._loaded()
        if self.instance.pk is not None and version is not None:
            try:
                # Locks the row until the admin's transaction (and the save) ends.
                services.task_check_version(
                    task=self.instance, expected_version=version, seen=seen
                )
            except (TaskChanged, TaskNotFound) as exc:  # changed, or deleted, meanwhile
                self.add_error(None, exc.message)
                return cleaned
        stored_status = self.instance.status if self.instance.pk is not None else ""
        task = construct_instance(
            self, self.instance, self._meta.fields, self._meta.exclude
        )
        if stored_status:
            try:
                services.task_status_reason_check(
                    old_status=stored_status,
                    new_status=task.status,
                    origin=services.Origin(
                        source=AuditSource.ADMIN, reason=cleaned.get("reason") or ""
                    ),
                )
            except ReasonInvalid as exc:
                self.add_error("reason", exc.message)
        channels = cleaned.get("alert_channels")
        try:
            services.task_validate(
                task=task,
                actor=self.actor,
                alert_channels=None if channels is None else list(channels),
            )
        except services.TaskInvalid as exc:
            add_service_errors(self, exc, self.parameter_names)
        except StatusChangeForbidden as exc:
            self.add_error("status" if "status" in self.fields else None, exc.message)
        return cleaned

    def _save_m2m(self) -> None:
        """Nothing: the task's channels (its one relation) are stored by the service,
        which the admin gives them to (task_create / task_update)."""


def channel_label(channel: AlertChannel) -> str:
    """A channel among the task form's choices: its name, kind, and if it is off."""
    label = "%s (%s)" % (channel.name, channel.get_kind_display())
    if not channel.enabled:
        label = gettext("%(channel)s — disabled: gets no alert") % {"channel": label}
    return label


class RunWithParametersForm(forms.Form):
    """One run of a task with some parameters replaced; prefilled with the task's own."""

    parameter_names: tuple[str, ...] = ()

    @classmethod
    def for_handler(cls, info: HandlerInfo | None) -> type[RunWithParametersForm]:
        attrs: dict[str, Any] = {
            **parameter_fields(info),
            "parameter_names": tuple(spec.name for spec in info.params) if info else (),
            "__module__": cls.__module__,
        }
        return type(cls.__name__, (cls,), attrs)

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        task: ScheduledTask,
        **kwargs: Any,
    ) -> None:
        self.task = task
        stored = task.handler_kwargs if isinstance(task.handler_kwargs, dict) else {}
        initial = {
            param_field_name(name): expression_text(stored[name])
            for name in self.parameter_names
            if name in stored
        }
        super().__init__(data, initial=initial, **kwargs)

    def overrides(self) -> dict[str, str]:
        """The inputs that differ from the task's own values (empty ones keep the task's)."""
        stored = (
            self.task.handler_kwargs
            if isinstance(self.task.handler_kwargs, dict)
            else {}
        )
        changed = {}
        for name in self.parameter_names:
            text = self.cleaned_data.get(param_field_name(name))
            if text and (name not in stored or text != expression_text(stored[name])):
                changed[name] = text
        return changed


class SchedulePreviewForm(forms.Form):
    """The schedule fields of the task form, read the way the task form reads them."""

    task_type = forms.ChoiceField(choices=ScheduledTask.TaskType.choices)
    cron_expression = forms.CharField(required=False, strip=True)
    interval_seconds = forms.IntegerField(required=False)
    run_date = forms.SplitDateTimeField(required=False)
    timezone = forms.CharField(required=False, strip=True)

    def schedule(self) -> Schedule:
        """The schedule the valid form's fields describe."""
        data = self.cleaned_data
        return Schedule(
            kind=data["task_type"],
            cron=data["cron_expression"],
            every_seconds=data["interval_seconds"],
            run_date=data["run_date"],
            zone=data["timezone"],
        )


class AlertChannelForm(forms.ModelForm):
    """An alert channel. The signing secret is a password input that never shows the
    stored value: left blank on a change, the stored secret is kept. All checks are
    the channel service's (services/channels.py)."""

    clear_secret = forms.BooleanField(
        label=_("Remove the signing secret"),
        required=False,
        help_text=_("Tick to send unsigned from now on."),
    )

    class Meta:
        model = AlertChannel
        fields = [
            "name",
            "kind",
            "target",
            "secret",
            "timeout_seconds",
            "is_default",
            "enabled",
        ]
        widgets = {
            "secret": forms.PasswordInput(
                render_value=False, attrs={"autocomplete": "new-password"}
            ),
            "target": forms.Textarea(attrs={"rows": 2, "cols": 60}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stored_secret = self.instance.secret if self.instance.pk else ""
        secret = self.fields.get("secret")
        if secret is None:  # read-only page (view permission only)
            return
        if self._stored_secret:
            secret.help_text = _(
                "A secret is stored (it is never shown again). Leave this blank to "
                "keep it, or enter a new one to replace it. Webhook: the key of the "
                "X-Scheduler-Signature header (sha256=HMAC-SHA256 of the body)."
            )
        else:
            secret.help_text = _(
                "Webhook: the key of the X-Scheduler-Signature header "
                "(sha256=HMAC-SHA256 of the body); blank: not signed. Once saved it "
                "is never shown again."
            )
            self.fields.pop("clear_secret")

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if not cleaned.get("secret"):
            # Blank keeps the stored secret, unless asked to remove it.
            cleaned["secret"] = (
                "" if cleaned.get("clear_secret") else self._stored_secret
            )
        if self.errors:
            return cleaned
        channel = construct_instance(self, self.instance, self._meta.fields)
        try:
            services.channel_validate(channel=channel)
        except services.ChannelInvalid as exc:
            for error in exc.errors:
                field = error.field if error.field in self.fields else None
                self.add_error(field, error.message)
        return cleaned

    def validate_unique(self) -> None:
        """Nothing: a taken name is the service's to report (channel_validate)."""
