"""API fixtures: users with chosen permissions, their API keys and clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from scheduler_app.models import UserAPIKey
from tests.factories import make_user

VIEW_PERMISSIONS = ["view_scheduledtask", "view_taskexecution"]


def key_for(user: User, **fields: Any) -> str:
    """Create an API key for `user` and return the plain key (shown only once)."""
    _api_key, key = UserAPIKey.objects.create_key(
        name="key of %s" % user.username, user=user, **fields
    )
    return key


def key_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=key)
    return client


@pytest.fixture
def superuser() -> User:
    return make_user("root", superuser=True, email="root@example.com")


@pytest.fixture
def api(superuser: User) -> APIClient:
    """A client authenticated by the API key of a superuser."""
    return key_client(key_for(superuser))


@pytest.fixture
def viewer() -> APIClient:
    """Staff with the view permissions only: reads work, every write is 403."""
    return key_client(key_for(make_user("viewer", *VIEW_PERMISSIONS, is_staff=True)))


@pytest.fixture
def nobody() -> APIClient:
    """An authenticated user without any permission: every endpoint is 403."""
    return key_client(key_for(make_user("nobody")))


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def client_with() -> Callable[..., APIClient]:
    """A client whose user holds exactly the given permission codenames."""
    counter = iter(range(1000))

    def build(*codenames: str) -> APIClient:
        return key_client(key_for(make_user("user-%d" % next(counter), *codenames)))

    return build
