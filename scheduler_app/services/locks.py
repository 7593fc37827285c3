"""Locks, for operators: releasing one whose holder is gone."""

from __future__ import annotations

import logging

from ..locks import get_lock_backend

logger = logging.getLogger(__name__)


def lock_force_release(key: str, *, by: str) -> bool:
    """Release a lock whatever its owner (its holder is gone); True if one was held.

    For operators (admin, API) only: a live holder keeps running without its lock.
    """
    released = get_lock_backend().force_release(key)
    logger.warning("Lock %s force-released by %s (was held: %s)", key, by, released)
    return released
