"""One shared Redis client per URL for locks, notifications and live logs."""

from __future__ import annotations

import threading

import redis

_clients: dict[tuple[str, float], redis.Redis] = {}
_lock = threading.Lock()


def get_redis(url: str, *, timeout: float = 5) -> redis.Redis:
    """A client (with its own connection pool) for `url`, created once per process.

    `timeout` bounds connecting and each command (seconds); code that must never
    wait long on Redis (live logs) asks for a short one and gets its own pool.
    """
    client = _clients.get((url, timeout))
    if client is None:
        with _lock:
            client = _clients.get((url, timeout))
            if client is None:
                client = _clients[(url, timeout)] = redis.Redis.from_url(
                    url,
                    decode_responses=True,
                    # Text that cannot be encoded (lone surrogates in a log line)
                    # is stored with a replacement character rather than refused.
                    encoding_errors="replace",
                    socket_connect_timeout=timeout,
                    socket_timeout=timeout,
                    health_check_interval=30,
                )
    return client
