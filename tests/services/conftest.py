"""Service test fixtures: the sample handlers' events, both lock backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.services import sample_handlers


@pytest.fixture(autouse=True)
def _reset_handlers() -> Iterator[None]:
    sample_handlers.reset()
    yield
    # Let any handler thread a test left blocked finish.
    sample_handlers.release.set()


@pytest.fixture(params=["database", "redis"])
def lock_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param
