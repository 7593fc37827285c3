"""Live logs through Redis: pushed by the publisher, read by admin and API, outages."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.test import Client
from django.urls import reverse

from scheduler_app import livelog, selectors, task_log, task_progress, tasklog
from scheduler_app.models import TaskExecution
from scheduler_app.redis_client import get_redis
from scheduler_app.services import task_request_run
from scheduler_app.tasklog import LogPublisher, LogSnapshot, RunLog, bind
from tests.factories import make_execution, make_sample_task
from tests.helpers import run_in_thread, wait_until
from tests.sample_handlers import runs

pytestmark = [pytest.mark.redis, pytest.mark.django_db]

Status = TaskExecution.Status
CLOCK = lambda: dt.datetime(2024, 5, 17, 14, 30, 25)  # noqa: E731
# Nothing listens there: connections are refused at once.
CLOSED_PORT_URL = "redis://127.0.0.1:1/0"


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis presumed healthy, and a publisher whose thread never flushes by itself:
    the tests flush when they choose, on their own thread."""
    monkeypatch.setattr(livelog, "_health", livelog._Health())
    quiet = LogPublisher()
    quiet.interval = 60
    monkeypatch.setattr(tasklog, "publisher", quiet)


def flush() -> None:
    tasklog.publisher.flush_all()


@pytest.fixture
def live(redis_url: str, settings: Any) -> Iterator[Any]:
    settings.SCHEDULER_LOG_ROW_FLUSH_INTERVAL = 5
    yield settings


def line(text: str) -> str:
    return "[14:30:25] %s" % text


def running() -> TaskExecution:
    return make_execution(status=Status.RUNNING)


def row_sink(execution: TaskExecution) -> Callable[[LogSnapshot], None]:
    """What the execution path's row sink does: update the running row."""

    def sink(snapshot: LogSnapshot) -> None:
        TaskExecution.objects.filter(pk=execution.pk).update(
            log_output=snapshot.text,
            progress_done=snapshot.progress_done,
            progress_total=snapshot.progress_total,
        )

    return sink


def read(execution: TaskExecution, offset: int = 0) -> selectors.LogTail:
    execution.refresh_from_db()
    return selectors.execution_log_since(execution, offset)


def client() -> redis.Redis:
    return get_redis(livelog.app_settings.redis_url)


def lose_redis_keys(execution: TaskExecution) -> None:
    """What a Redis restart without persistence does to a run's live log."""
    key = livelog.log_key(execution.pk)
    client().delete(key, key + ":meta")


def test_lines_are_readable_from_redis_while_the_run_goes_on(live: Any) -> None:
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    sink = livelog.sink_for(execution.pk)
    with bind(run_log, sink=None, interval=60, line_sink=sink):
        task_log("one")
        task_log("two\nthree")
        task_progress(2, 8)
        flush()

        tail = read(execution)
        assert tail.lines == [line("one"), line("two"), "three"]
        assert (tail.offset, tail.finished, tail.status) == (3, False, "running")
        assert (tail.progress_done, tail.progress_total) == (2, 8)

        task_log("four")
        flush()
        later = read(execution, tail.offset)

    assert later.lines == [line("four")] and later.offset == 4
    # Nothing reached the row: every line came from Redis.
    assert TaskExecution.objects.get(pk=execution.pk).log_output == ""


def test_with_redis_the_row_is_only_a_fallback_updated_now_and_then(live: Any) -> None:
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    with bind(
        run_log,
        sink=row_sink(execution),
        interval=60,
        line_sink=livelog.sink_for(execution.pk),
    ):
        task_log("one")
        flush()
        task_log("two")
        flush()
        row = TaskExecution.objects.get(pk=execution.pk).log_output

        assert row == line("one")  # the next row update is 5 s after the first
        assert read(execution).lines == [line("one"), line("two")]


def test_keys_are_capped_expire_and_the_batch_is_published(live: Any) -> None:
    live.SCHEDULER_LOG_BUFFER_MAX_LINES = 4
    execution = running()
    pubsub = client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(livelog.channel(execution.pk))
    run_log = RunLog(max_lines=4, clock=CLOCK)
    with bind(
        run_log,
        sink=row_sink(execution),
        interval=60,
        line_sink=livelog.sink_for(execution.pk),
    ):
        task_log("first")
        flush()
        message = wait_until(lambda: pubsub.get_message(timeout=0.1))
        for number in range(2, 11):
            task_log("line %d" % number)
            flush()

        key = livelog.log_key(execution.pk)
        kept = [line("line %d" % n) for n in range(7, 11)]
        assert client().lrange(key, 0, -1) == kept
        assert 0 < client().ttl(key) <= live.SCHEDULER_LOG_REDIS_TTL
        assert 0 < client().ttl(key + ":meta") <= live.SCHEDULER_LOG_REDIS_TTL
    pubsub.close()

    assert json.loads(message["data"]) == {
        "first": 0,
        "lines": [line("first")],
        "progress_done": None,
        "progress_total": None,
        "finished": False,
    }
    # Ten lines: Redis keeps 7-10; the row (updated once) has the first.
    tail = read(execution)
    assert tail.lines == [line("first")] and tail.offset == 1
    assert read(execution, tail.offset).lines == []  # the row has not caught up yet
    assert read(execution, 6).lines == [line("line %d" % n) for n in range(7, 11)]


def test_earlier_lines_than_redis_keeps_come_from_the_row(live: Any) -> None:
    live.SCHEDULER_LOG_BUFFER_MAX_LINES = 6
    live.SCHEDULER_LOG_ROW_FLUSH_INTERVAL = 0
    execution = running()
    run_log = RunLog(max_lines=6, clock=CLOCK)
    with bind(
        run_log,
        sink=row_sink(execution),
        interval=60,
        line_sink=livelog.sink_for(execution.pk),
    ):
        for number in range(10):
            task_log("line %d" % number)
            flush()

        tail = read(execution)

    # The row keeps 0-2 and 7-9; Redis keeps 4-9: only line 3 is missing.
    assert tail.lines[:3] == [line("line %d" % n) for n in range(3)]
    assert tail.lines[3].startswith("[... 1 lines dropped: ")
    assert tail.lines[4:] == [line("line %d" % n) for n in range(4, 10)]
    assert tail.offset == 10


def test_a_redis_outage_loses_no_line_and_never_fails_the_run(
    live: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(livelog, "RETRY_SECONDS", 0)
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    sink = livelog.sink_for(execution.pk)
    assert sink is not None
    with bind(run_log, sink=row_sink(execution), interval=60, line_sink=sink):
        task_log("before")
        flush()
        seen = read(execution)

        real_client = livelog._client
        down = lambda url: real_client(CLOSED_PORT_URL)  # noqa: E731
        monkeypatch.setattr(livelog, "_client", down)
        task_log("during 1")
        flush()
        task_log("during 2")
        flush()

        # Redis is down: the row carries the live view at the full rate.
        assert sink.snapshot_every() == 0
        during = read(execution, seen.offset)
        assert during.lines == [line("during 1"), line("during 2")]

        monkeypatch.setattr(livelog, "_client", real_client)
        task_log("after")
        flush()
        after = read(execution, during.offset)

    assert after.lines == [line("after")] and after.offset == 4
    assert read(execution).lines == [
        line("before"),
        line("during 1"),
        line("during 2"),
        line("after"),
    ]
    assert client().lrange(livelog.log_key(execution.pk), 0, -1) == [
        line("before"),
        line("during 1"),
        line("during 2"),
        line("after"),
    ]
    assert sink.snapshot_every() == 5
    outage = [
        record.getMessage()
        for record in caplog.records
        if record.name == "scheduler_app.livelog"
    ]
    assert len(outage) == 2
    assert outage[0].startswith("Live logs: Redis is unavailable")
    assert outage[1] == "Live logs: Redis is back"


def test_when_redis_loses_the_list_readers_wait_for_the_row(live: Any) -> None:
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    with bind(
        run_log,
        sink=row_sink(execution),
        interval=60,
        line_sink=livelog.sink_for(execution.pk),
    ):
        task_log("one")
        task_log("two")
        flush()
        lose_redis_keys(execution)
        task_log("three")
        flush()

        # Redis now holds line 2 only; the row (updated at the first flush) has 0-1.
        assert read(execution).lines == [line("one"), line("two"), line("three")]

        task_log("four")
        flush()
        lose_redis_keys(execution)
        task_log("five")
        flush()
        # Redis holds line 4 only, the row stops at line 1: a client at 3 waits.
        waiting = read(execution, 3)
        assert (waiting.lines, waiting.offset) == ([], 3)
        assert read(execution, 4).lines == [line("five")]


def test_the_run_end_sends_the_last_lines_and_lets_the_keys_expire_soon(
    live: Any,
) -> None:
    execution = running()
    pubsub = client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(livelog.channel(execution.pk))
    run_log = RunLog(max_lines=100, clock=CLOCK)
    sink = livelog.sink_for(execution.pk)
    with bind(run_log, sink=None, interval=60, line_sink=sink):
        task_log("last words")
    flush()

    key = livelog.log_key(execution.pk)
    assert client().lrange(key, 0, -1) == [line("last words")]
    assert 0 < client().ttl(key) <= livelog.FINISHED_TTL_SECONDS
    message = wait_until(lambda: pubsub.get_message(timeout=0.1))
    pubsub.close()
    assert json.loads(message["data"])["lines"] == [line("last words")]
    assert json.loads(message["data"])["finished"] is True


def test_a_run_that_logs_nothing_costs_redis_nothing(live: Any) -> None:
    execution = running()
    sink = livelog.sink_for(execution.pk)
    with bind(RunLog(max_lines=100), sink=None, interval=60, line_sink=sink):
        flush()
    flush()

    assert client().exists(livelog.log_key(execution.pk) + ":meta") == 0


def test_a_finished_run_is_read_from_its_row(live: Any) -> None:
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    sink = livelog.sink_for(execution.pk)
    with bind(run_log, sink=None, interval=60, line_sink=sink):
        task_log("live")
        flush()
    TaskExecution.objects.filter(pk=execution.pk).update(
        status=Status.SUCCESS, log_output="final"
    )

    assert read(execution).lines == ["final"]


def test_the_api_log_endpoint_tails_lines_from_redis(
    live: Any, admin_client: Client
) -> None:
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    url = "/api/v1/tasks/executions/%d" % execution.pk
    sink = livelog.sink_for(execution.pk)
    with bind(run_log, sink=None, interval=60, line_sink=sink):
        task_log("from a worker")
        task_progress(1, 4)
        flush()

        body = admin_client.get(url + "/log", {"offset": 0}).json()
        detail = admin_client.get(url).json()

    assert body == {
        "offset": 1,
        "lines": [line("from a worker")],
        "finished": False,
        "status": "running",
        "progress": {"done": 1, "total": 4, "percent": 25.0},
    }
    assert detail["log_output"] == line("from a worker")


def test_the_admin_live_log_tails_lines_from_redis(
    live: Any, admin_client: Client
) -> None:
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    sink = livelog.sink_for(execution.pk)
    with bind(run_log, sink=None, interval=60, line_sink=sink):
        task_log("one")
        task_log("two")
        flush()

        page = admin_client.get(
            reverse("admin:scheduler_app_taskexecution_change", args=[execution.pk])
        ).content.decode()
        data = admin_client.get(
            reverse("admin:scheduler_app_taskexecution_log", args=[execution.pk]),
            {"offset": 1},
        ).json()
        download = admin_client.get(
            reverse(
                "admin:scheduler_app_taskexecution_log_download", args=[execution.pk]
            )
        ).content.decode()

    assert 'data-offset="2"' in page and line("two") in page
    assert (data["lines"], data["offset"]) == ([line("two")], 2)
    assert download == "%s\n%s" % (line("one"), line("two"))


def test_complete_text_adds_what_redis_has_beyond_the_row(live: Any) -> None:
    execution = running()
    run_log = RunLog(max_lines=100, clock=CLOCK)
    sink = livelog.sink_for(execution.pk)
    with bind(run_log, sink=None, interval=60, line_sink=sink):
        for number in range(4):
            task_log("line %d" % number)
        flush()

    assert livelog.complete_text(execution.pk, line("line 0")) == "\n".join(
        line("line %d" % n) for n in range(4)
    )
    client().ltrim(livelog.log_key(execution.pk), 2, -1)  # Redis lost lines 0-1
    assert livelog.complete_text(execution.pk, "") == "\n".join(
        ["[2 log lines lost: Redis was unavailable]", line("line 2"), line("line 3")]
    )


@pytest.mark.django_db(transaction=True)
def test_a_run_on_the_execution_path_is_tailed_from_redis(
    live: Any, admin_client: Client
) -> None:
    # Needs the execution path to bind livelog.sink_for(...) (services/runs.py).
    live.SCHEDULER_LOG_PUBLISH_INTERVAL = 0.05
    runs.reset()
    task = make_sample_task("log_then_block", name="log-then-block")
    execution = task_request_run(task=task)
    key = livelog.log_key(execution.pk)

    thread = run_in_thread(execution)
    try:
        wait_until(lambda: client().lrange(key, 0, -1))
        body = admin_client.get(
            "/api/v1/tasks/executions/%d/log" % execution.pk, {"offset": 0}
        ).json()
    finally:
        runs.release.set()
        thread.join(10)

    assert body["status"] == "running" and body["lines"][0].endswith("first line")
    assert body["progress"] == {"done": 1, "total": 4, "percent": 25.0}
    execution.refresh_from_db()
    assert execution.status == Status.SUCCESS
    assert execution.log_output.splitlines()[-1].endswith("released")
    wait_until(lambda: 0 < client().ttl(key) <= livelog.FINISHED_TTL_SECONDS)


def test_without_redis_there_is_no_sink_and_nothing_to_read(settings: Any) -> None:
    settings.REDIS_URL = ""

    assert livelog.sink_for(1) is None
    assert livelog.read(1, 0) is None
