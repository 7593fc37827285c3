"""API key authentication: a valid key authenticates its request as the key's user."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from ..models import UserAPIKey

#: `Authorization: Api-Key <key>`, the scheme djangorestframework-api-key documents.
KEYWORD = "Api-Key"
HEADER = "HTTP_X_API_KEY"
QUERY_PARAMETER = "api_key"

# Keys are "<prefix>.<secret>" of letters and digits; anything else cannot match,
# and is refused before it reaches the database (PostgreSQL rejects NUL bytes).
KEY_FORMAT = re.compile(r"^[A-Za-z0-9]{1,8}\.[A-Za-z0-9]{1,150}$")

MSG_INVALID_KEY = _(
    "Invalid API key: it is unknown, revoked or expired. Create a new key in the "
    "admin (API keys)."
)
MSG_INACTIVE_USER = _("The user of this API key is inactive.")


def key_from_request(request: Request) -> str | None:
    """The API key a request carries (Authorization, X-Api-Key, ?api_key=), or None."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    keyword, _space, key = authorization.partition(" ")
    if keyword.lower() == KEYWORD.lower() and key.strip():
        return key.strip()
    header = request.META.get(HEADER, "").strip()
    if header:
        return header
    # The seed's curl examples pass the key in the URL; headers keep it out of logs.
    return request.query_params.get(QUERY_PARAMETER, "").strip() or None


class ApiKeyAuthentication(BaseAuthentication):
    """Authenticate as the key's user; no key means "not this scheme" (None)."""

    def authenticate(
        self, request: Request
    ) -> tuple[AbstractBaseUser, UserAPIKey] | None:
        key = key_from_request(request)
        if key is None:
            return None
        api_key = self._usable_key(key)
        if not api_key.user.is_active:
            raise exceptions.AuthenticationFailed(MSG_INACTIVE_USER)
        api_key.record_use(timezone.now())
        return api_key.user, api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) to a request with no credentials.
        return '%s realm="api"' % KEYWORD

    @staticmethod
    def _usable_key(key: str) -> UserAPIKey:
        if not KEY_FORMAT.match(key):
            raise exceptions.AuthenticationFailed(MSG_INVALID_KEY)
        prefix = key.partition(".")[0]
        api_key = (
            UserAPIKey.objects.get_usable_keys()
            .select_related("user")
            .filter(prefix=prefix)
            .first()
        )
        if api_key is None or api_key.has_expired or not api_key.is_valid(key):
            raise exceptions.AuthenticationFailed(MSG_INVALID_KEY)
        return api_key


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describe the three ways to pass a key in the OpenAPI schema (any one will do)."""

    target_class = ApiKeyAuthentication
    name = ["ApiKeyHeader", "ApiKeyAuthorization", "ApiKeyQuery"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "`Api-Key <key>`",
            },
            {"type": "apiKey", "in": "query", "name": QUERY_PARAMETER},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        return [{name: []} for name in self.name]
