"""Service test fixtures: the sample handlers' events, both lock backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sample_handlers import runs


@pytest.fixture(autouse=True)
def _reset_handlers() -> Iterator[None]:
    runs.reset()
    yield
    # Let any handler thread a test left blocked finish.
    runs.release.set()


@pytest.fixture(params=["database", "redis"])
def lock_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        request.getfixturevalue("redis_url")
    return request.param
