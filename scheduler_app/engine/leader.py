"""Leader election: one instance fires; the lease lives in Redis (or the database) with a TTL."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..locks import LockBackend, get_lock_backend, lock_key

logger = logging.getLogger(__name__)

#: A leader stops firing once this share of the TTL has passed since its last
#: successful refresh, so it stops before anyone else can take the lease over.
SAFE_SHARE_OF_TTL = 0.8


class Leadership:
    """This instance's claim on the leader lease."""

    def __init__(
        self,
        *,
        owner: str,
        enabled: bool,
        ttl_seconds: float,
        backend: Callable[[], LockBackend] = get_lock_backend,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.owner = owner
        self.enabled = enabled
        self.ttl_seconds = float(ttl_seconds)
        self._backend = backend
        self._clock = clock
        self._token: str | None = None
        self._valid_until = 0.0

    @property
    def is_leader(self) -> bool:
        """True while the lease is held and surely not expired."""
        if not self.enabled:
            return True
        return self._token is not None and self._clock() < self._valid_until

    def refresh(self) -> bool:
        """Take the lease, or extend it if held; return whether this instance leads."""
        if not self.enabled:
            return True
        key = lock_key("leader", "")
        started = self._clock()
        backend = self._backend()
        was_leader = self.is_leader
        if self._token is not None and backend.extend(
            key, self._token, self.ttl_seconds
        ):
            self._valid_until = started + self.ttl_seconds * SAFE_SHARE_OF_TTL
            return True
        if self._token is not None:
            logger.warning("Lost the leader lease %s; stopped firing", key)
            self._token = None
        token = backend.acquire(key, owner=self.owner, ttl_seconds=self.ttl_seconds)
        if token is None:
            if was_leader:
                logger.warning("Another instance holds the leader lease %s now", key)
            return False
        self._token = token
        self._valid_until = started + self.ttl_seconds * SAFE_SHARE_OF_TTL
        logger.info("This instance (%s) is the leader now", self.owner)
        return True

    def release(self) -> None:
        """Give the lease up (clean shutdown) so a standby takes over at once."""
        if self.enabled and self._token is not None:
            self._backend().release(lock_key("leader", ""), self._token)
        self._token = None
        self._valid_until = 0.0
