"""Shared fixtures. Redis tests skip locally when no server answers; under CI=true they fail."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test.client import ClientHandler
from django.utils import timezone, translation
from rest_framework.test import APIClient

from tests.factories import key_client, key_for, make_user
from tests.processes import Processes
from tests.receivers import WebhookReceiver

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _redis_available(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False
    return True


def pytest_sessionstart(session: pytest.Session) -> None:
    if IN_CI and not _redis_available(TEST_REDIS_URL):
        raise pytest.UsageError(
            f"CI=true but Redis at {TEST_REDIS_URL} does not answer: the Redis tests "
            "must run in CI. Start Redis or fix TEST_REDIS_URL."
        )


@pytest.fixture
def redis_url(settings: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis URL with a per-test key prefix; REDIS_URL is set for the app too."""
    if not _redis_available(TEST_REDIS_URL):
        pytest.skip(f"no Redis at {TEST_REDIS_URL}")
    settings.REDIS_URL = TEST_REDIS_URL
    settings.SCHEDULER_REDIS_PREFIX = f"test-{uuid.uuid4().hex[:8]}:"
    yield TEST_REDIS_URL
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    keys = list(client.scan_iter(f"{settings.SCHEDULER_REDIS_PREFIX}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def processes(transactional_db: None) -> Iterator[Processes]:
    """The subprocesses of this test (tests/processes.py); all are stopped at teardown.

    They use this test's database, so the fixture depends on transactional_db: the
    processes are gone before the tables are flushed (and before PostgreSQL drops
    the test database).
    """
    with Processes() as started:
        yield started


@pytest.fixture(autouse=True)
def _language_reset() -> Iterator[None]:
    """Each test starts in the default language and zone: a request through the
    test client leaves its language active in the thread (LocaleMiddleware does
    not deactivate it), and the next test's messages came out in Chinese."""
    yield
    translation.deactivate()
    timezone.deactivate()


@pytest.fixture(autouse=True)
def _wsgi_header_types(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail a test-client request whose response a WSGI server would refuse.

    WSGI (PEP 3333) wants header names and values of type `str` exactly;
    `runserver` (wsgiref) answers 500 to anything else, such as a DRF `Hyperlink`
    (a `str` subclass), while the test client passes it through unchecked.
    """
    handle = ClientHandler.__call__

    def checked(self: ClientHandler, environ: dict[str, object]) -> object:
        response = handle(self, environ)
        wrong = [
            (name, type(value).__name__)
            for name, value in response.items()
            if type(name) is not str or type(value) is not str
        ]
        assert not wrong, "headers that are not of type str: %r" % wrong
        return response

    monkeypatch.setattr(ClientHandler, "__call__", checked)


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP server on 127.0.0.1 that records requests (tests/receivers.py)."""
    with WebhookReceiver() as receiver:
        yield receiver


@pytest.fixture
def superuser() -> User:
    return make_user("root", superuser=True, email="root@example.com")


@pytest.fixture
def api(superuser: User) -> APIClient:
    """A client authenticated by the API key of a superuser."""
    return key_client(key_for(superuser))
