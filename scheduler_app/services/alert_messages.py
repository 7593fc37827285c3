"""What an alert says on each kind of channel: the webhook's JSON, Slack's, the e-mail.

Pure formatting: an `Alert` (and its execution, loaded with it) in, the body out.
A summary is one message for many alerts (the storm control of
`services/alerts.py:alerts_deliver`). Links are absolute with SCHEDULER_SITE_URL,
or paths when it is empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.urls import NoReverseMatch, reverse
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ..choices import AlertKind, HealthState
from ..conf import app_settings
from ..models import Alert

#: What every e-mail subject starts with.
SUBJECT_PREFIX = "[scheduler]"
#: The most alerts a Slack summary lists one by one (the rest are counted).
SLACK_SUMMARY_LINES = 20
#: The most of an error a Slack message quotes (Slack cuts a section at 3000).
SLACK_ERROR_CHARS = 500
#: The most of a message a summary line carries.
SUMMARY_LINE_CHARS = 200

#: The subject of an e-mail alert, by kind (%(task)s: the task's name).
SUBJECTS: dict[str, Promise] = {
    AlertKind.FAILING: gettext_lazy("%(task)s is failing"),
    AlertKind.TIMED_OUT: gettext_lazy("%(task)s timed out"),
    AlertKind.ABANDONED: gettext_lazy("%(task)s: a run was abandoned"),
    AlertKind.RECOVERED: gettext_lazy("%(task)s recovered"),
    AlertKind.MISSED: gettext_lazy("%(task)s missed a run"),
    AlertKind.LATE: gettext_lazy("%(task)s is late"),
    AlertKind.RUNNING_LONG: gettext_lazy("%(task)s is running long"),
    AlertKind.SCHEDULER_DOWN: gettext_lazy("no scheduler heartbeat"),
    AlertKind.LEADER_CHANGED: gettext_lazy("the leading scheduler changed"),
    AlertKind.TAKEOVER: gettext_lazy("a standby scheduler took over"),
    AlertKind.TEST: gettext_lazy("test alert"),
}


# Links ------------------------------------------------------------------------------


def admin_link(viewname: str, pk: int | None) -> str:
    """The admin page `viewname` of `pk`, absolute with SCHEDULER_SITE_URL ("" if none)."""
    if pk is None:
        return ""
    try:
        path = reverse(viewname, args=[pk])
    except NoReverseMatch:
        return ""
    return app_settings.SCHEDULER_SITE_URL.strip().rstrip("/") + path


def task_link(alert: Alert) -> str:
    return admin_link("admin:scheduler_app_scheduledtask_change", alert.task_id)


def execution_link(alert: Alert) -> str:
    return admin_link("admin:scheduler_app_taskexecution_change", alert.execution_id)


# Words ------------------------------------------------------------------------------


def _label(choices: Any, value: str) -> str:
    try:
        return str(choices(value).label)
    except ValueError:
        return value


def kind_label(alert: Alert) -> str:
    return _label(AlertKind, alert.kind)


def subject_text(alert: Alert) -> str:
    """What the alert is about in a few words: "nightly-report is failing"."""
    template = SUBJECTS.get(alert.kind)
    if template is None or ("%(task)s" in str(template) and not alert.task_name):
        return _shorten(alert.message.splitlines()[0] if alert.message else "", 100)
    return str(template) % {"task": alert.task_name}


def _shorten(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def summary_text(alerts: Sequence[Alert]) -> str:
    return ngettext(
        "%(count)d alert, sent together so as not to flood this channel.",
        "%(count)d alerts, sent together so as not to flood this channel.",
        len(alerts),
    ) % {"count": len(alerts)}


# Webhook (JSON) -----------------------------------------------------------------------


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The JSON object of one alert, as the webhook posts it (and lists it in a summary)."""
    task: dict[str, Any] | None = None
    if alert.task_id is not None or alert.task_name:
        task = {
            "id": alert.task_id,
            "name": alert.task_name,
            "url": task_link(alert) or None,
        }
    execution: dict[str, Any] | None = None
    if alert.execution_id is not None and alert.execution is not None:
        execution = {
            "id": alert.execution_id,
            "status": alert.execution.status,
            "url": execution_link(alert) or None,
        }
    return {
        "event": "alert",
        "id": alert.pk,
        "kind": alert.kind,
        "message": alert.message,
        "task": task,
        "state": alert.state,
        "previous_state": alert.previous_state,
        "error": alert.error,
        "execution": execution,
        "details": alert.details,
        "created_at": alert.created_at.isoformat(),
    }


def webhook_payload(alerts: Sequence[Alert], *, summary: bool) -> dict[str, Any]:
    """The webhook's JSON: one alert's object, or a summary of several."""
    if not summary:
        [alert] = alerts
        return alert_payload(alert)
    return {
        "event": "summary",
        "count": len(alerts),
        "alerts": [alert_payload(alert) for alert in alerts],
        "message": summary_text(alerts),
    }


# Slack ------------------------------------------------------------------------------


def _slack_escape(text: str) -> str:
    """Slack's mrkdwn takes &, < and > as markup: these three are escaped, nothing else."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    if url.startswith(("http://", "https://")):
        return "<%s|%s>" % (url, _slack_escape(label))
    return "%s: `%s`" % (_slack_escape(label), url)


def _slack_links(alert: Alert) -> str:
    links = []
    if task_link(alert):
        links.append(_slack_link(task_link(alert), _("Open the task")))
    if execution_link(alert):
        links.append(_slack_link(execution_link(alert), _("Open the run")))
    return " · ".join(links)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def slack_payload(alerts: Sequence[Alert], *, summary: bool) -> dict[str, Any]:
    """An incoming webhook's message: `text` (the notification's) and mrkdwn blocks."""
    if not summary:
        [alert] = alerts
        title = "%s %s" % (SUBJECT_PREFIX, subject_text(alert))
        text = "*%s*\n%s" % (_slack_escape(title), _slack_escape(alert.message))
        if alert.error:
            error = _shorten(alert.error, SLACK_ERROR_CHARS).replace("```", "'''")
            text += "\n```%s```" % _slack_escape(error)
        links = _slack_links(alert)
        if links:
            text += "\n" + links
        fallback = _slack_escape("%s: %s" % (title, alert.message))
        return {"text": fallback, "blocks": [_section(text)]}
    title = "%s %s" % (SUBJECT_PREFIX, summary_subject(alerts))
    lines = []
    for alert in alerts[:SLACK_SUMMARY_LINES]:
        line = "• *%s* %s" % (
            _slack_escape(kind_label(alert)),
            _slack_escape(_shorten(alert.message, SUMMARY_LINE_CHARS)),
        )
        if task_link(alert):
            line += " " + _slack_link(task_link(alert), alert.task_name or _("task"))
        lines.append(line)
    more = len(alerts) - SLACK_SUMMARY_LINES
    if more > 0:
        lines.append(
            ngettext("… and %(count)d more.", "… and %(count)d more.", more)
            % {"count": more}
        )
    blocks = [_section("*%s*\n%s" % (_slack_escape(title), summary_text(alerts)))]
    # Ten lines a section keeps each well under Slack's 3000 characters.
    for start in range(0, len(lines), 10):
        blocks.append(_section("\n".join(lines[start : start + 10])))
    fallback = _slack_escape("%s: %s" % (title, summary_text(alerts)))
    return {"text": fallback, "blocks": blocks}


# E-mail -----------------------------------------------------------------------------


def summary_subject(alerts: Sequence[Alert]) -> str:
    return ngettext("%(count)d alert", "%(count)d alerts", len(alerts)) % {
        "count": len(alerts)
    }


def _alert_lines(alert: Alert) -> list[str]:
    lines = [alert.message, ""]
    if alert.task_name:
        lines.append(_("Task: %(name)s") % {"name": alert.task_name})
    if alert.state:
        if alert.previous_state:
            lines.append(
                _("Health: %(previous)s → %(state)s")
                % {
                    "previous": _label(HealthState, alert.previous_state),
                    "state": _label(HealthState, alert.state),
                }
            )
        else:
            lines.append(
                _("Health: %(state)s") % {"state": _label(HealthState, alert.state)}
            )
    lines.append(_("Kind: %(kind)s") % {"kind": kind_label(alert)})
    lines.append(
        _("Decided at: %(at)s")
        % {"at": alert.created_at.strftime("%Y-%m-%d %H:%M:%S %Z")}
    )
    if task_link(alert):
        lines.append(_("The task: %(url)s") % {"url": task_link(alert)})
    if execution_link(alert):
        lines.append(_("The run: %(url)s") % {"url": execution_link(alert)})
    if alert.error:
        lines += ["", _("Error:"), alert.error]
    return lines


def email_message(alerts: Sequence[Alert], *, summary: bool) -> tuple[str, str]:
    """The subject and the plain-text body of the e-mail of one alert, or a summary."""
    if not summary:
        [alert] = alerts
        subject = "%s %s" % (SUBJECT_PREFIX, subject_text(alert))
        return subject, "\n".join(_alert_lines(alert)) + "\n"
    subject = "%s %s" % (SUBJECT_PREFIX, summary_subject(alerts))
    lines = [summary_text(alerts), ""]
    for alert in alerts:
        name = alert.task_name or _("(system)")
        lines.append(
            "- [%s] %s: %s"
            % (kind_label(alert), name, _shorten(alert.message, SUMMARY_LINE_CHARS))
        )
        if task_link(alert):
            lines.append("  " + task_link(alert))
    return subject, "\n".join(lines) + "\n"
