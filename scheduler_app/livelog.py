"""Live logs through Redis: a run's lines in a capped list and on a pub/sub channel.

With REDIS_URL set, the execution path binds a `RedisLogSink` (from `sink_for`)
beside the row sink. Every publisher flush (SCHEDULER_LOG_PUBLISH_INTERVAL) sends
the lines written since the previous one in a single transaction:

- RPUSH to the list `<prefix>log:<id>`, trimmed to SCHEDULER_LOG_BUFFER_MAX_LINES
  lines and to half of SCHEDULER_LOG_MAX_BYTES (the share of the run's own tail);
- the line count ("end") and progress to the hash `<prefix>log:<id>:meta`;
- both keys expire SCHEDULER_LOG_REDIS_TTL seconds after the last write, and a
  minute after the run ends (the row holds the final log by then);
- PUBLISH of the batch (JSON: first, lines, progress_done, progress_total, and
  finished, true for the last batch of a run) on the channel `<prefix>log:<id>`.

The list always holds one unbroken run of lines ending with the latest, so it
covers the line numbers end - LLEN .. end - 1, numbered as in the row's log
(`tasklog.StoredLog`). Readers on any machine (`read`) ask for the lines from an
offset on and take anything older than the list from the row, which the run
then only updates every SCHEDULER_LOG_ROW_FLUSH_INTERVAL seconds.

Redis trouble never reaches the run. Lines that could not be pushed stay pending
(at most as many, and as many bytes, as the list keeps) and go out with the next push that works;
meanwhile the row is updated at the full rate again and readers use it. If Redis
lost the list (a restart without persistence), the next push starts it afresh
and readers take the earlier lines from the row.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import redis
from django.utils.translation import ngettext

from .conf import app_settings
from .redis_client import get_redis
from .tasklog import LogLines, StoredLog, utf8_size

logger = logging.getLogger(__name__)

#: Seconds a live-log command may take: the publisher thread serves every run in
#: the process, and readers are web requests; neither may hang on Redis.
TIMEOUT_SECONDS = 2.0
#: After a failure, Redis is left alone for this long (pending lines wait).
RETRY_SECONDS = 2.0
#: A finished run's keys linger this long for readers still holding a `running` row.
FINISHED_TTL_SECONDS = 60

# Atomically: the window the list covers and its lines from ARGV[1] on.
# Returns false when Redis holds nothing for this run.
_READ_SCRIPT = """
local meta = redis.call('HMGET', KEYS[2], 'end', 'done', 'total')
if not meta[1] then return false end
local last = tonumber(meta[1])
local first = last - redis.call('LLEN', KEYS[1])
local from = math.max(tonumber(ARGV[1]), first)
local lines = {}
if from < last then lines = redis.call('LRANGE', KEYS[1], from - first, -1) end
return {first, last, meta[2] or '', meta[3] or '', lines}
"""


def log_key(execution_id: int) -> str:
    """The list of an execution's live lines; also the name of its channel."""
    return "%slog:%d" % (app_settings.SCHEDULER_REDIS_PREFIX, execution_id)


def channel(execution_id: int) -> str:
    """The pub/sub channel each batch of an execution's lines is published on."""
    return log_key(execution_id)


def _meta_key(execution_id: int) -> str:
    return log_key(execution_id) + ":meta"


def _client(url: str) -> redis.Redis:
    return get_redis(url, timeout=TIMEOUT_SECONDS)


class _Health:
    """Whether Redis answered live-log commands lately, shared by the whole process.

    After a failure nothing is sent to Redis for RETRY_SECONDS, so a dead server
    costs one timeout per pause rather than one per run and flush.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.failing = False
        self._retry_at = 0.0

    def may_try(self) -> bool:
        return not self.failing or time.monotonic() >= self._retry_at

    def failed(self, error: Exception) -> None:
        with self._lock:
            if not self.failing:
                logger.warning(
                    "Live logs: Redis is unavailable (%s); lines are kept and sent "
                    "when it is back, and the execution rows carry the live log "
                    "meanwhile",
                    error,
                )
            self.failing = True
            self._retry_at = time.monotonic() + RETRY_SECONDS

    def succeeded(self) -> None:
        with self._lock:
            if self.failing:
                logger.info("Live logs: Redis is back")
            self.failing = False


_health = _Health()


def _number(value: str) -> int | None:
    return int(value) if value else None


class RedisLogSink:
    """tasklog's line sink for one execution: pushes its lines to Redis.

    Called on the publisher thread only, one batch at a time; never raises on
    Redis errors (the run's own RunLog keeps the log for the row).
    """

    def __init__(
        self,
        execution_id: int,
        *,
        url: str,
        max_lines: int,
        ttl_seconds: int,
        row_every: float,
        max_bytes: int = 512 * 1024,
    ) -> None:
        self.execution_id = execution_id
        self._url = url
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._ttl_seconds = ttl_seconds
        self._row_every = row_every
        # Lines not in Redis yet, ending at line number _pending_end, and their
        # bytes (UTF-8, one each for the separator): at most what the list keeps.
        self._pending: deque[str] = deque()
        self._pending_sizes: deque[int] = deque()
        self._pending_bytes = 0
        self._pending_end = 0
        # The bytes of the lines in the Redis list, newest last (pushed ones only):
        # how many lines LTRIM keeps so the list stays within max_bytes.
        self._listed_sizes: deque[int] = deque()
        self._listed_bytes = 0
        # Where the list ends, as of the last push that worked; -1 before the first
        # push, which clears anything a reused id may have left.
        self._pushed_end = -1
        self._progress: tuple[int | None, int | None] = (None, None)
        self._progress_sent = True

    # The Redis names, built when first needed: most runs write no line at all.
    @functools.cached_property
    def key(self) -> str:
        return log_key(self.execution_id)

    @functools.cached_property
    def meta_key(self) -> str:
        return _meta_key(self.execution_id)

    @functools.cached_property
    def channel(self) -> str:
        return channel(self.execution_id)

    def __call__(self, batch: LogLines) -> None:
        self._take(batch)
        if self._pending or not self._progress_sent:
            self._push(self._ttl_seconds, finished=False)

    def snapshot_every(self) -> float:
        """The row is a fallback while Redis works, the live view when it does not."""
        return 0.0 if _health.failing else self._row_every

    def close(self, batch: LogLines) -> None:
        """Send the last lines and let the keys expire soon: the row has the log now."""
        self._take(batch)
        if self._pushed_end < 0 and not self._pending and self._progress_sent:
            return  # a silent run: nothing in Redis, nothing to do
        self._push(FINISHED_TTL_SECONDS, finished=True)

    def _take(self, batch: LogLines) -> None:
        if batch.first != self._pending_end:
            # The run's buffer dropped lines since the previous batch (its cap):
            # the list restarts after the gap and readers take the rest from the row.
            self._pending.clear()
            self._pending_sizes.clear()
            self._pending_bytes = 0
        for line in batch.lines:
            size = utf8_size(line) + 1
            self._pending.append(line)
            self._pending_sizes.append(size)
            self._pending_bytes += size
            while len(self._pending) > 1 and (
                len(self._pending) > self._max_lines
                or self._pending_bytes > self._max_bytes
            ):
                # Older than the list could keep: the push restarts the list.
                self._pending.popleft()
                self._pending_bytes -= self._pending_sizes.popleft()
        self._pending_end = batch.end
        progress = (batch.progress_done, batch.progress_total)
        if progress != self._progress:
            self._progress, self._progress_sent = progress, False

    def _push(self, ttl_seconds: int, *, finished: bool) -> None:
        if not _health.may_try():
            return
        lines = list(self._pending)
        first = self._pending_end - len(lines)
        done, total = self._progress
        listed = self._listed_after(
            list(self._pending_sizes), restart=first != self._pushed_end
        )
        try:
            with _client(self._url).pipeline(transaction=True) as pipe:
                if first != self._pushed_end:
                    # The list must stay one unbroken run of lines.
                    pipe.delete(self.key)
                if lines:
                    pipe.rpush(self.key, *lines)
                    pipe.ltrim(self.key, -len(listed), -1)
                pipe.hset(
                    self.meta_key,
                    mapping={
                        "end": self._pending_end,
                        "done": "" if done is None else done,
                        "total": "" if total is None else total,
                    },
                )
                pipe.expire(self.key, ttl_seconds)
                pipe.expire(self.meta_key, ttl_seconds)
                pipe.publish(
                    self.channel,
                    json.dumps(
                        {
                            "first": first,
                            "lines": lines,
                            "progress_done": done,
                            "progress_total": total,
                            "finished": finished,
                        }
                    ),
                )
                pipe.execute()
        except redis.RedisError as error:
            _health.failed(error)
            return
        _health.succeeded()
        self._pending.clear()
        self._pending_sizes.clear()
        self._pending_bytes = 0
        self._listed_sizes = listed
        self._listed_bytes = sum(listed)
        self._pushed_end = self._pending_end
        self._progress_sent = True

    def _listed_after(self, pushed: list[int], *, restart: bool) -> deque[int]:
        """The sizes of the lines the list holds once `pushed` are added and trimmed.

        The newest lines, at most max_lines of them and max_bytes (always the
        newest one).
        """
        listed = deque() if restart else deque(self._listed_sizes)
        total = 0 if restart else self._listed_bytes
        listed.extend(pushed)
        total += sum(pushed)
        while len(listed) > 1 and (
            len(listed) > self._max_lines or total > self._max_bytes
        ):
            total -= listed.popleft()
        return listed


def sink_for(execution_id: int) -> RedisLogSink | None:
    """The Redis line sink for a run about to start; None when Redis is not configured.

    Pass it to `tasklog.bind(..., line_sink=...)` beside the row sink.
    """
    url = app_settings.redis_url
    if not url:
        return None
    return RedisLogSink(
        execution_id,
        url=url,
        max_lines=app_settings.SCHEDULER_LOG_BUFFER_MAX_LINES,
        # The run's own buffer keeps half its bytes for the tail: so does the list.
        max_bytes=max(1, app_settings.SCHEDULER_LOG_MAX_BYTES // 2),
        ttl_seconds=app_settings.SCHEDULER_LOG_REDIS_TTL,
        row_every=app_settings.SCHEDULER_LOG_ROW_FLUSH_INTERVAL,
    )


@dataclass(frozen=True)
class LiveWindow:
    """What Redis holds of a running execution's log.

    The list covers lines `first`..`end`-1; `lines` are those from the reader's
    offset on (from `first` when the offset is older than the list).
    """

    first: int
    end: int
    lines: list[str]
    progress_done: int | None
    progress_total: int | None


def read(execution_id: int, offset: int) -> LiveWindow | None:
    """The live lines of an execution from line `offset` on, in one atomic read.

    None when Redis is not configured, unreachable, or holds nothing for this run
    (it never ran here, its keys expired or Redis lost them): read the row then.
    """
    url = app_settings.redis_url
    if not url or not _health.may_try():
        return None
    client = _client(url)
    try:
        found = client.register_script(_READ_SCRIPT)(
            keys=[log_key(execution_id), _meta_key(execution_id)], args=[max(0, offset)]
        )
    except redis.RedisError as error:
        _health.failed(error)
        return None
    _health.succeeded()
    if not found:
        return None
    first, end, done, total, lines = found
    return LiveWindow(int(first), int(end), list(lines), _number(done), _number(total))


def complete_text(execution_id: int, row_text: str) -> str:
    """The row's log text, completed with the later lines Redis holds.

    For a run whose process died: its row was last updated up to
    SCHEDULER_LOG_ROW_FLUSH_INTERVAL before, Redis has lines up to the last flush.
    Lines in neither are replaced by a marker saying how many.
    """
    stored = StoredLog.parse(row_text)
    window = read(execution_id, stored.end)
    if window is None or not window.lines:
        return row_text
    lines = [row_text] if row_text else []
    if window.first > stored.end:
        lost = window.first - stored.end
        lines.append(
            ngettext(
                "[%(count)d log line lost: Redis was unavailable]",
                "[%(count)d log lines lost: Redis was unavailable]",
                lost,
            )
            % {"count": lost}
        )
    lines.extend(window.lines)
    return "\n".join(lines)
