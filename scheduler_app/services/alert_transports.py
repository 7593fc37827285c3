"""One attempt at sending: an HTTP request (urllib) or an e-mail (Django's mail).

Each returns an `Outcome` and never raises on the other end's failure: a bad URL,
a refused connection, an answer that is not 2xx, no answer in time, an SMTP error
are an `Outcome` whose `error` names the target and says what happened. URLs are
shown without their password or query, and a Slack URL without its token.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils.translation import gettext as _

#: The User-Agent of the posts and pings.
USER_AGENT = "scheduler_app-alerts/1"
#: The most of an error answer's body quoted in the attempt's error.
ANSWER_CHARS = 200


@dataclass(frozen=True)
class Outcome:
    """How one attempt went: delivered or not, the HTTP status, the error, the time taken."""

    ok: bool
    status_code: int | None = None
    error: str = ""
    duration_ms: int = 0


def shown_url(url: str, *, secret_path: bool = False) -> str:
    """`url` fit for a log or an error: no password, no query, no Slack token.

    `secret_path`: the URL's last path segment is a key (a Slack-compatible
    incoming webhook, a ping URL's UUID) and is shown as "…".
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    netloc = host if port is None else "%s:%d" % (host, port)
    path = parts.path
    if (secret_path or host == "hooks.slack.com") and path.strip("/"):
        # The last segment of an incoming webhook's URL is its secret.
        path = path.rstrip("/").rsplit("/", 1)[0] + "/…"
    query = "?…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, "", "")) + query


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects are answers that are not 2xx: a POST followed as a GET delivers nothing."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _seconds(value: float) -> str:
    return "%g" % value


def http_request(
    method: str,
    url: str,
    *,
    timeout: float,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    shown: str | None = None,
) -> Outcome:
    """One `method` request to `url`: delivered when the answer is 2xx within `timeout`.

    `shown`: how errors name the URL (default: `shown_url(url)`).
    """
    started = time.monotonic()
    shown = shown or shown_url(url)
    where = {"method": method, "url": shown, "seconds": _seconds(timeout)}

    def outcome(ok: bool, status_code: int | None = None, error: str = "") -> Outcome:
        took = int((time.monotonic() - started) * 1000)
        return Outcome(ok=ok, status_code=status_code, error=error, duration_ms=took)

    if urlsplit(url).scheme not in ("http", "https"):
        return outcome(
            False,
            error=_("%(method)s %(url)s: not an http:// or https:// URL; give one.")
            % where,
        )
    try:
        request = urllib.request.Request(
            url,
            data=body,
            method=method,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
        )
        opener = urllib.request.build_opener(_NoRedirects)
        with opener.open(request, timeout=timeout) as response:
            return outcome(True, response.status)
    except urllib.error.HTTPError as exc:
        return outcome(False, exc.code, _answered(exc, where))
    except urllib.error.URLError as exc:
        return outcome(False, error=_unreachable(exc.reason, where))
    except (TimeoutError, HTTPException, OSError, ValueError) as exc:
        return outcome(False, error=_unreachable(exc, where))


def _answered(exc: urllib.error.HTTPError, where: dict[str, str]) -> str:
    error = _("%(method)s %(url)s answered %(code)d %(reason)s") % {
        **where,
        "code": exc.code,
        "reason": exc.reason,
    }
    try:
        answer = exc.read(ANSWER_CHARS * 4).decode("utf-8", "replace").strip()
    except (OSError, HTTPException):
        # The status says what matters; a body that does not come is not quoted.
        answer = ""
    if answer:
        error += ": " + answer[:ANSWER_CHARS]
    return error


def _unreachable(reason: object, where: dict[str, str]) -> str:
    """The error of a request that got no answer: why, in words."""
    if isinstance(reason, TimeoutError):
        return _("%(method)s %(url)s did not answer within %(seconds)s s") % where
    if isinstance(reason, ConnectionRefusedError):
        return _("%(method)s %(url)s: connection refused (is it up?)") % where
    if isinstance(reason, socket.gaierror):
        return _("%(method)s %(url)s: unknown host (%(reason)s)") % {
            **where,
            "reason": reason.strerror or reason,
        }
    if isinstance(reason, ssl.SSLError):
        return _("%(method)s %(url)s: TLS error (%(reason)s)") % {
            **where,
            "reason": reason.reason or reason,
        }
    if isinstance(reason, HTTPException | ConnectionResetError):
        return _("%(method)s %(url)s closed the connection without an answer") % where
    if isinstance(reason, OSError) and reason.strerror:
        detail: object = reason.strerror
    else:
        detail = reason
    return _("%(method)s %(url)s failed: %(reason)s") % {**where, "reason": detail}


def mail_send(
    *,
    subject: str,
    body: str,
    to: Sequence[str],
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> Outcome:
    """One e-mail to `to`, from DEFAULT_FROM_EMAIL, through Django's mail settings."""
    started = time.monotonic()

    def outcome(ok: bool, error: str = "") -> Outcome:
        took = int((time.monotonic() - started) * 1000)
        return Outcome(ok=ok, error=error, duration_ms=took)

    if not to:
        return outcome(
            False,
            _("No e-mail address to send to: give the addresses, comma-separated."),
        )
    connection = get_connection(timeout=timeout)
    message = EmailMessage(
        subject,
        body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=list(to),
        headers=dict(headers or {}),
        connection=connection,
    )
    host = getattr(connection, "host", None)
    server = "%s:%s" % (host, getattr(connection, "port", "")) if host else ""
    where = {
        "to": ", ".join(to),
        "server": server or type(connection).__module__,
        "seconds": _seconds(timeout),
    }
    try:
        message.send()
    except TimeoutError:
        return outcome(
            False,
            _(
                "E-mail to %(to)s: the mail server %(server)s did not answer within %(seconds)s s"
            )
            % where,
        )
    except ConnectionRefusedError:
        return outcome(
            False,
            _(
                "E-mail to %(to)s: the mail server %(server)s refused the connection (is it up?)"
            )
            % where,
        )
    except (smtplib.SMTPException, OSError, ValueError) as exc:
        return outcome(
            False,
            _("E-mail to %(to)s through %(server)s failed: %(reason)s")
            % {**where, "reason": _smtp_reason(exc)},
        )
    return outcome(True)


def _smtp_reason(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error
        message = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        return "%d %s" % (exc.smtp_code, message)
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return _("recipients refused: %(addresses)s") % {
            "addresses": ", ".join(sorted(exc.recipients))
        }
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
