"""Task locks and the leader lease: one interface, Redis and database backends."""

from __future__ import annotations

import builtins
import datetime as dt
import json
import logging
import math
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import app_settings
from .db import locks as db_locks
from .db.clock import database_now
from .exceptions import TaskLocked
from .models import SchedulerLock
from .redis_client import get_redis

logger = logging.getLogger(__name__)

# Sized to the SchedulerLock columns, so PostgreSQL never rejects a value.
KEY_MAX_LENGTH = 255
OWNER_MAX_LENGTH = 200

TASK_LOCKED_MESSAGE = _(
    "Lock “%(key)s” is held by “%(owner)s” (expires in %(seconds)d s). Wait for "
    "that run to finish, or force-release the lock if its holder is gone."
)
TASK_LOCK_BUSY_MESSAGE = _(
    "Lock “%(key)s” was held and has just been released. Wait a moment and try again."
)


@dataclass(frozen=True)
class LockInfo:
    """A live lock as a backend reports it; `key` is the logical key (no prefix)."""

    key: str
    token: str
    owner: str
    acquired_at: dt.datetime
    expires_at: dt.datetime

    @property
    def ttl_seconds(self) -> float:
        """Seconds left before the lock expires, as of now (never negative)."""
        return max(0.0, (self.expires_at - timezone.now()).total_seconds())


class LockBackend(Protocol):
    """Where locks live. Every lock has a TTL and an owner token."""

    name: str

    def acquire(self, key: str, *, owner: str, ttl_seconds: float) -> str | None:
        """Take the lock for `ttl_seconds`; the token, or None if it is held."""

    def release(self, key: str, token: str) -> bool:
        """Release the lock if `token` still holds it; False otherwise."""

    def extend(self, key: str, token: str, ttl_seconds: float) -> bool:
        """Reset the TTL to `ttl_seconds` from now if `token` still holds the lock."""

    def get(self, key: str) -> LockInfo | None:
        """The live lock on `key`, or None."""

    def list(self, prefix: str = "") -> builtins.list[LockInfo]:
        """Live locks whose logical key starts with `prefix`, sorted by key."""

    def force_release(self, key: str) -> bool:
        """Release the lock whoever holds it (admin); True if one was held."""

    def acquire_many(
        self, owners: Mapping[str, str], *, ttl_seconds: float
    ) -> dict[str, str | None]:
        """`acquire` for several keys at once (key -> its owner): key -> token, or None if held."""

    def release_many(self, held: builtins.list[tuple[str, str]]) -> None:
        """`release` for several (key, token) pairs at once."""


def lock_key(kind: str, ident: object) -> str:
    """Build a logical lock key; every lock key in the project comes from here.

    `lock_key("task", 5)` is "task:5"; `lock_key("leader", "")` is the
    SCHEDULER_LEADER_LOCK_KEY setting, because the leader lease has a single key.
    """
    if not kind or ":" in kind:
        raise ValueError(f"Lock kind must be a word without ':', got {kind!r}")
    if kind == "leader":
        if ident not in ("", None):
            raise ValueError("The leader lease has a single key: pass ident=''.")
        return str(app_settings.SCHEDULER_LEADER_LOCK_KEY)
    return f"{kind}:{ident}"


def task_lock_key(task_id: int) -> str:
    """The key of the lock a task's run holds under the skip/replace policies."""
    return lock_key("task", task_id)


def task_id_of_lock_key(key: str) -> int | None:
    """The task a lock key belongs to ("task:5" -> 5), None for other locks."""
    prefix = lock_key("task", "")
    suffix = key[len(prefix) :] if key.startswith(prefix) else ""
    return int(suffix) if suffix.isdigit() else None


def _new_token() -> str:
    return secrets.token_hex(16)


def _check_ttl(ttl_seconds: float) -> float:
    ttl = float(ttl_seconds)
    if not ttl > 0:
        raise ValueError(f"A lock TTL must be positive, got {ttl_seconds!r}")
    return ttl


class DatabaseLockBackend:
    """Locks as `SchedulerLock` rows: one row per key, unique on `key`.

    Their times are the database server's (`db.clock.database_now`), so instances
    whose clocks disagree still agree on when a lock expires.

    Each call commits at once in autocommit mode. Inside a caller's transaction
    the writes join it (the insert in a savepoint) and other processes see them
    only when the caller commits, so take locks outside long transactions.
    """

    name = "database"

    def acquire(self, key: str, *, owner: str, ttl_seconds: float) -> str | None:
        """Insert a new row or take over an expired one; None if a live row exists."""
        ttl = _check_ttl(ttl_seconds)
        if len(key) > KEY_MAX_LENGTH:
            raise ValueError(f"Lock key over {KEY_MAX_LENGTH} characters: {key!r}")
        token = _new_token()
        now = database_now()
        fields = {
            "token": token,
            "owner": owner[:OWNER_MAX_LENGTH],
            "acquired_at": now,
            "expires_at": now + dt.timedelta(seconds=ttl),
        }
        # The insert first: a free key (released locks are deleted) is the common
        # case, and costs one write instead of two.
        try:
            # A savepoint, so a duplicate key does not poison the caller's transaction.
            with transaction.atomic():
                SchedulerLock.objects.create(key=key, **fields)
            return token
        except IntegrityError:
            pass
        # The conditional update is atomic per row: of several racers taking over
        # the same expired row, PostgreSQL re-checks expires_at after the first
        # commits and SQLite serializes writers, so exactly one sees one row.
        taken = SchedulerLock.objects.filter(key=key, expires_at__lte=now).update(
            **fields
        )
        return token if taken == 1 else None

    def acquire_many(
        self, owners: Mapping[str, str], *, ttl_seconds: float
    ) -> dict[str, str | None]:
        """Take several locks (key -> owner) in one statement.

        One insert that takes over expired rows (`db.locks.ACQUIRE_MANY`, an
        `INSERT ... ON CONFLICT (key) DO UPDATE ... WHERE expires_at <= now`) inserts
        the free keys, takes the expired ones and leaves live ones alone, atomically
        per row. Inside the caller's transaction, as the execution path's batched
        claim uses it.
        """
        ttl = _check_ttl(ttl_seconds)
        if not owners:
            return {}
        for key in owners:
            if len(key) > KEY_MAX_LENGTH:
                raise ValueError(f"Lock key over {KEY_MAX_LENGTH} characters: {key!r}")
        keys = sorted(owners)  # one order everywhere: no deadlock between two callers
        now = database_now()
        tokens = {key: _new_token() for key in keys}
        taken = db_locks.acquire_many(
            locks=[(key, tokens[key], owners[key][:OWNER_MAX_LENGTH]) for key in keys],
            acquired_at=now,
            expires_at=now + dt.timedelta(seconds=ttl),
        )
        return {key: tokens[key] if key in taken else None for key in keys}

    def release_many(self, held: builtins.list[tuple[str, str]]) -> None:
        """Delete the rows the (key, token) pairs hold, expired or not (one prepared DELETE)."""
        db_locks.release_many(held=held)

    def release(self, key: str, token: str) -> bool:
        """Delete the row if `token` holds it; False if it expired or changed hands."""
        now = database_now()
        released, _counts = SchedulerLock.objects.filter(
            key=key, token=token, expires_at__gt=now
        ).delete()
        if not released:
            # The owner's own expired row is dead weight; it would be taken over
            # anyway, but clearing it keeps the table small. Still report False,
            # as Redis does, because the lock was lost before the release.
            SchedulerLock.objects.filter(key=key, token=token).delete()
        return released > 0

    def extend(self, key: str, token: str, ttl_seconds: float) -> bool:
        """Move expires_at to now + ttl if `token` holds a live lock on `key`."""
        ttl = _check_ttl(ttl_seconds)
        now = database_now()
        changed = SchedulerLock.objects.filter(
            key=key, token=token, expires_at__gt=now
        ).update(expires_at=now + dt.timedelta(seconds=ttl))
        return changed == 1

    def get(self, key: str) -> LockInfo | None:
        """The live lock on `key`, or None (an expired row counts as free)."""
        live = SchedulerLock.objects.filter(key=key, expires_at__gt=database_now())
        row = live.first()
        return self._info(row) if row is not None else None

    def list(self, prefix: str = "") -> builtins.list[LockInfo]:
        """Live locks whose key starts with `prefix`, sorted by key."""
        rows = SchedulerLock.objects.filter(
            key__startswith=prefix, expires_at__gt=database_now()
        ).order_by("key")
        return [self._info(row) for row in rows]

    def force_release(self, key: str) -> bool:
        """Delete the row whoever holds it; True if the lock was live."""
        released, _counts = SchedulerLock.objects.filter(
            key=key, expires_at__gt=database_now()
        ).delete()
        if not released:
            SchedulerLock.objects.filter(key=key).delete()
        return released > 0

    @staticmethod
    def _info(row: SchedulerLock) -> LockInfo:
        return LockInfo(
            key=row.key,
            token=row.token,
            owner=row.owner,
            acquired_at=row.acquired_at.astimezone(dt.UTC),
            expires_at=row.expires_at.astimezone(dt.UTC),
        )


# The value is JSON: {"token", "owner", "acquired_at"}; the key's PTTL is the expiry.
# Both scripts compare the stored token with ARGV[1] before touching the key, in one
# atomic step, so a holder whose lock expired and was taken cannot free the new one.
_RELEASE_SCRIPT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, data = pcall(cjson.decode, raw)
if ok and type(data) == 'table' and data['token'] == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""

# The batch forms, one script call (one command to pack) for a whole batch rather
# than a pipelined command per key: packing commands was most of what a batch cost.
# ARGV[1] is the TTL in ms, ARGV[i + 1] the value for KEYS[i]; 1 for each key taken.
_ACQUIRE_MANY_SCRIPT = """
local taken = {}
for i, key in ipairs(KEYS) do
    if redis.call('SET', key, ARGV[i + 1], 'NX', 'PX', ARGV[1]) then
        taken[i] = 1
    else
        taken[i] = 0
    end
end
return taken
"""

# ARGV[i] is the token expected in KEYS[i]; returns how many keys were deleted.
_RELEASE_MANY_SCRIPT = """
local freed = 0
for i, key in ipairs(KEYS) do
    local raw = redis.call('GET', key)
    if raw then
        local ok, data = pcall(cjson.decode, raw)
        if ok and type(data) == 'table' and data['token'] == ARGV[i] then
            freed = freed + redis.call('DEL', key)
        end
    end
end
return freed
"""

_EXTEND_SCRIPT = """
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local ok, data = pcall(cjson.decode, raw)
if ok and type(data) == 'table' and data['token'] == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def _ttl_ms(ttl_seconds: float) -> int:
    # Redis counts in whole milliseconds; round up so a tiny TTL is not zero.
    return max(1, math.ceil(_check_ttl(ttl_seconds) * 1000))


class RedisLockBackend:
    """Locks as Redis keys: SET NX PX to take, owner-checked Lua to release/extend.

    Every Redis key is SCHEDULER_REDIS_PREFIX + "lock:" + the logical key. The
    prefix is read on each call, so a changed setting applies at once.
    """

    name = "redis"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._release = client.register_script(_RELEASE_SCRIPT)
        self._extend = client.register_script(_EXTEND_SCRIPT)
        self._acquire_many = client.register_script(_ACQUIRE_MANY_SCRIPT)
        self._release_many = client.register_script(_RELEASE_MANY_SCRIPT)

    @staticmethod
    def namespace() -> str:
        """The Redis key prefix shared by every lock."""
        return f"{app_settings.SCHEDULER_REDIS_PREFIX}lock:"

    def redis_key(self, key: str) -> str:
        """The Redis key holding the lock on logical `key`."""
        return self.namespace() + key

    def acquire(self, key: str, *, owner: str, ttl_seconds: float) -> str | None:
        """SET NX PX: the token if the key was free, None if it is held."""
        px = _ttl_ms(ttl_seconds)
        token = _new_token()
        value = json.dumps(
            {
                "token": token,
                "owner": owner[:OWNER_MAX_LENGTH],
                "acquired_at": timezone.now().isoformat(),
            }
        )
        if self.client.set(self.redis_key(key), value, nx=True, px=px):
            return token
        return None

    def release(self, key: str, token: str) -> bool:
        """Delete the key if `token` holds it; False if it expired or changed hands."""
        return bool(self._release(keys=[self.redis_key(key)], args=[token]))

    def acquire_many(
        self, owners: Mapping[str, str], *, ttl_seconds: float
    ) -> dict[str, str | None]:
        """SET NX PX for each key, in one script call (atomic, one round trip)."""
        px = _ttl_ms(ttl_seconds)
        keys = sorted(owners)
        if not keys:
            return {}
        acquired_at = timezone.now().isoformat()
        tokens = {key: _new_token() for key in keys}
        values = [
            json.dumps(
                {
                    "token": tokens[key],
                    "owner": owners[key][:OWNER_MAX_LENGTH],
                    "acquired_at": acquired_at,
                }
            )
            for key in keys
        ]
        prefix = self.namespace()
        taken = self._acquire_many(
            keys=[prefix + key for key in keys], args=[px, *values]
        )
        return {
            key: tokens[key] if ok else None
            for key, ok in zip(keys, taken, strict=False)
        }

    def release_many(self, held: builtins.list[tuple[str, str]]) -> None:
        """The owner-checked release of each (key, token), in one script call."""
        if not held:
            return
        prefix = self.namespace()
        self._release_many(
            keys=[prefix + key for key, _token in held],
            args=[token for _key, token in held],
        )

    def extend(self, key: str, token: str, ttl_seconds: float) -> bool:
        """PEXPIRE to `ttl_seconds` from now if `token` still holds the key."""
        px = _ttl_ms(ttl_seconds)
        return bool(self._extend(keys=[self.redis_key(key)], args=[token, px]))

    def get(self, key: str) -> LockInfo | None:
        """The live lock on `key`, or None."""
        pipe = self.client.pipeline()
        pipe.get(self.redis_key(key))
        pipe.pttl(self.redis_key(key))
        raw, pttl = pipe.execute()
        return self._info(key, raw, pttl)

    def list(self, prefix: str = "") -> builtins.list[LockInfo]:
        """Live locks whose logical key starts with `prefix`, sorted by key (SCAN)."""
        namespace = self.namespace()
        match = _GLOB_SPECIAL.sub(r"\\\1", namespace + prefix) + "*"
        redis_keys = sorted(set(self.client.scan_iter(match=match, count=500)))
        if not redis_keys:
            return []
        pipe = self.client.pipeline(transaction=False)
        for redis_key in redis_keys:
            pipe.get(redis_key)
            pipe.pttl(redis_key)
        replies = pipe.execute()
        infos = []
        for index, redis_key in enumerate(redis_keys):
            raw, pttl = replies[2 * index], replies[2 * index + 1]
            info = self._info(redis_key[len(namespace) :], raw, pttl)
            if info is not None:
                infos.append(info)
        return infos

    def force_release(self, key: str) -> bool:
        """Delete the key whoever holds it; True if it existed."""
        return bool(self.client.delete(self.redis_key(key)))

    @staticmethod
    def _info(key: str, raw: str | None, pttl: int) -> LockInfo | None:
        # pttl is -2 when the key vanished between SCAN and GET (expired/released).
        if raw is None or pttl == -2:
            return None
        try:
            data: dict[str, Any] = json.loads(raw)
            acquired_at = dt.datetime.fromisoformat(data["acquired_at"])
            token, owner = str(data["token"]), str(data.get("owner", ""))
        except (ValueError, TypeError, KeyError):
            logger.warning("Ignoring lock key %s: its value is not a lock record", key)
            return None
        now = timezone.now()
        # -1 (no expiry) never comes from this module; show such a key as expiring now.
        expires_at = now + dt.timedelta(milliseconds=max(pttl, 0))
        return LockInfo(
            key=key,
            token=token,
            owner=owner,
            acquired_at=acquired_at.astimezone(dt.UTC),
            expires_at=expires_at.astimezone(dt.UTC),
        )


_database_backend = DatabaseLockBackend()
_redis_backends: dict[str, RedisLockBackend] = {}
_redis_backends_lock = threading.Lock()


def get_lock_backend() -> LockBackend:
    """Redis when REDIS_URL is set, else the database; one Redis client per URL."""
    url = app_settings.redis_url
    if not url:
        return _database_backend
    backend = _redis_backends.get(url)
    if backend is None:
        with _redis_backends_lock:
            backend = _redis_backends.get(url)
            if backend is None:
                backend = _redis_backends[url] = RedisLockBackend(get_redis(url))
    return backend


@contextmanager
def task_lock_context(
    key: str,
    *,
    owner: str,
    ttl_seconds: float | None = None,
    backend: LockBackend | None = None,
) -> Iterator[str]:
    """Hold the lock on `key` for the block and yield its token.

    Raises TaskLocked when someone else holds it. The lock is released in
    `finally`, by token, so a lock that expired and was taken is left alone.
    """
    backend = backend or get_lock_backend()
    ttl = app_settings.SCHEDULER_TASK_LOCK_TTL if ttl_seconds is None else ttl_seconds
    token = backend.acquire(key, owner=owner, ttl_seconds=ttl)
    if token is None:
        holder = backend.get(key)
        if holder is None:
            raise TaskLocked(TASK_LOCK_BUSY_MESSAGE % {"key": key})
        raise TaskLocked(
            TASK_LOCKED_MESSAGE
            % {"key": key, "owner": holder.owner, "seconds": round(holder.ttl_seconds)}
        )
    try:
        yield token
    finally:
        if not backend.release(key, token):
            logger.warning(
                "Lock %s (%s) had expired or changed hands before its release",
                key,
                backend.name,
            )
