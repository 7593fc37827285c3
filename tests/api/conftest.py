"""API fixtures: users with chosen permissions, their API keys and clients."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from tests.factories import key_client, key_for, make_user

VIEW_PERMISSIONS = ["view_scheduledtask", "view_taskexecution"]


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
