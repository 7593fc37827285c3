"""`GET /metrics`: the scheduler's figures in Prometheus' text format.

Readable with the bearer token SCHEDULER_METRICS_TOKEN (`Authorization: Bearer
<token>`, compared in constant time) or by a logged-in staff user who may view
the tasks; anyone else
gets 401 (no or a wrong token) or 403 (logged in, not staff) with a message
saying what to send. The figures and the names are services/metrics.py's.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from ..conf import app_settings
from ..services.metrics import metrics_exposition

#: What a logged-in staff user needs besides: the figures name every task.
VIEW_PERMISSION = "scheduler_app.view_scheduledtask"
#: The WWW-Authenticate header of a 401.
CHALLENGE = 'Bearer realm="metrics"'


def _bearer_token(request: HttpRequest) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None without one)."""
    scheme, _space, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _refusal(request: HttpRequest) -> HttpResponse | None:
    """None when the request may read the metrics, else the answer that says why not."""
    user = getattr(request, "user", None)
    if (
        user is not None
        and user.is_active
        and user.is_staff
        # The figures name every task: whoever may view the tasks.
        and user.has_perm(VIEW_PERMISSION)
    ):
        return None
    expected = app_settings.SCHEDULER_METRICS_TOKEN
    given = _bearer_token(request)
    if given is not None and expected:
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return _answer(
            401,
            _(
                "The bearer token is not SCHEDULER_METRICS_TOKEN: send "
                "Authorization: Bearer <the value of SCHEDULER_METRICS_TOKEN>."
            ),
        )
    if given is not None:
        return _answer(
            403,
            _(
                "No SCHEDULER_METRICS_TOKEN is set, so no bearer token is accepted: "
                "set it in the web process's environment, or log in as a staff user."
            ),
        )
    if user is not None and user.is_authenticated:
        return _answer(
            403,
            _(
                "Only staff users who may view the tasks may read the metrics: log "
                "in as one, or send Authorization: Bearer <SCHEDULER_METRICS_TOKEN>."
            ),
        )
    if expected:
        message = _(
            "The metrics need a token: send Authorization: Bearer "
            "<SCHEDULER_METRICS_TOKEN>, or log in as a staff user."
        )
    else:
        message = _(
            "The metrics need a staff login: no SCHEDULER_METRICS_TOKEN is set (set "
            "it to let Prometheus scrape with Authorization: Bearer <token>)."
        )
    return _answer(401, message)


def _answer(status: int, message: str) -> HttpResponse:
    response = HttpResponse(
        message + "\n", status=status, content_type="text/plain; charset=utf-8"
    )
    if status == 401:
        response["WWW-Authenticate"] = CHALLENGE
    return response


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    refused = _refusal(request)
    if refused is not None:
        return refused
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
