"""task_log & co. outside the execution path: buffer, cap, binding, fallbacks."""

from __future__ import annotations

import datetime as dt
import logging
import threading

import pytest

from scheduler_app import task_extend_lock, task_log, task_progress
from scheduler_app.exceptions import ExecutionCancelled
from scheduler_app.tasklog import (
    LogLines,
    LogPublisher,
    LogSnapshot,
    RunLog,
    StoredLog,
    bind,
    publisher,
)

CLOCK = lambda: dt.datetime(2024, 5, 17, 14, 30, 25)  # noqa: E731


def test_task_log_joins_arguments_like_print_with_a_time_prefix() -> None:
    run_log = RunLog(max_lines=100, clock=CLOCK)
    with bind(run_log, sink=None, interval=0.3):
        task_log("处理进度:", 50, "%", "已完成")

    assert run_log.text() == "[14:30:25] 处理进度: 50 % 已完成"


def test_outside_a_run_task_log_just_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="scheduler_app.task"):
        task_log("hello", 1)

    assert caplog.records[-1].getMessage() == "hello 1"


def test_print_console_forces_or_silences_the_echo(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run_log = RunLog(max_lines=100, clock=CLOCK, echo=False)
    with (
        caplog.at_level(logging.INFO, logger="scheduler_app.task"),
        bind(run_log, sink=None, interval=0.3),
    ):
        task_log("quiet")
        task_log("loud", print_console=True)

    assert [record.getMessage() for record in caplog.records] == ["[14:30:25] loud"]
    assert run_log.text().splitlines() == ["[14:30:25] quiet", "[14:30:25] loud"]


def test_cap_keeps_first_and_last_lines_and_counts_the_dropped() -> None:
    run_log = RunLog(max_lines=4, clock=CLOCK)
    for number in range(10):
        run_log.write(str(number))

    lines = run_log.text().splitlines()
    assert lines[:2] == ["[14:30:25] 0", "[14:30:25] 1"]
    assert (
        "6 lines dropped" in lines[2] and "SCHEDULER_LOG_BUFFER_MAX_LINES=4" in lines[2]
    )
    assert lines[3:] == ["[14:30:25] 8", "[14:30:25] 9"]
    assert run_log.dropped == 6


def test_publisher_flushes_only_logs_that_changed() -> None:
    run_log = RunLog(max_lines=10, clock=CLOCK)
    received: list[LogSnapshot] = []
    with bind(run_log, sink=received.append, interval=60):
        task_log("one")
        task_progress(3, 10)
        publisher.flush_all()
        publisher.flush_all()

    assert received == [LogSnapshot("[14:30:25] one", 3, 10)]


def test_writes_from_many_threads_are_all_kept() -> None:
    run_log = RunLog(max_lines=10_000, clock=CLOCK)

    def writer(n: int) -> None:
        for i in range(200):
            run_log.write("%d-%d" % (n, i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(run_log.text().splitlines()) == 1600


def test_a_cancelled_run_stops_the_handler_at_its_next_call() -> None:
    run_log = RunLog(max_lines=10)
    run_log.cancelled = True
    with bind(run_log, sink=None, interval=0.3):
        with pytest.raises(ExecutionCancelled):
            task_log("still here?")
        with pytest.raises(ExecutionCancelled):
            task_progress(1, 2)


def test_progress_refuses_negative_numbers() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        task_progress(-1, 10)


def test_task_extend_lock_calls_the_runs_extender_with_the_seconds() -> None:
    asked: list[float | None] = []

    def extender(seconds: float | None) -> bool:
        asked.append(seconds)
        return seconds != 5  # the third call finds the lock lost

    run_log = RunLog(max_lines=10)
    run_log.lock_extender = extender

    with bind(run_log, sink=None, interval=0.3):
        held = [task_extend_lock(), task_extend_lock(120), task_extend_lock(5)]

    assert held == [True, True, False]
    assert asked == [None, 120.0, 5.0]


def test_outside_a_run_task_extend_lock_is_false_and_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="scheduler_app.task"):
        assert task_extend_lock() is False

    assert "outside a run" in caplog.records[-1].getMessage()


def test_task_extend_lock_stops_a_cancelled_run_and_refuses_bad_seconds() -> None:
    run_log = RunLog(max_lines=10)
    run_log.lock_extender = lambda seconds: True
    with bind(run_log, sink=None, interval=0.3):
        with pytest.raises(ValueError, match="positive number of seconds"):
            task_extend_lock(0)
        run_log.cancelled = True
        with pytest.raises(ExecutionCancelled):
            task_extend_lock()


def test_listener_sees_every_line_as_it_is_written() -> None:
    run_log = RunLog(max_lines=10, clock=CLOCK)
    seen: list[str] = []
    run_log.add_listener(seen.append)

    run_log.write("a")
    run_log.write("b")

    assert seen == ["[14:30:25] a", "[14:30:25] b"]


def test_a_message_with_newlines_counts_as_several_lines() -> None:
    run_log = RunLog(max_lines=4, clock=CLOCK)
    run_log.write("a\nb\nc")
    run_log.write("d\ne")

    assert run_log.text().splitlines() == [
        "[14:30:25] a",
        "b",
        "[... 1 lines dropped (2 bytes): the log keeps the first 2 and the last 2 "
        "lines of a run, at most SCHEDULER_LOG_BUFFER_MAX_LINES=4 lines and "
        "SCHEDULER_LOG_MAX_BYTES=1048576 bytes ...]",
        "[14:30:25] d",
        "e",
    ]
    assert StoredLog.parse(run_log.text()).end == 5


def test_lines_since_gives_the_new_lines_and_starts_after_a_gap() -> None:
    run_log = RunLog(max_lines=4, clock=CLOCK)
    run_log.write("0")
    run_log.set_progress(1, 9)

    assert run_log.lines_since(0) == LogLines(0, ("[14:30:25] 0",), 1, 9)
    assert run_log.lines_since(1) == LogLines(1, (), 1, 9)

    for number in range(1, 7):
        run_log.write(str(number))
    # Kept: 0-1 and 5-6. A reader at 1 cannot get 1-4 in one unbroken run.
    batch = run_log.lines_since(1)
    assert (batch.first, batch.end) == (5, 7)
    assert batch.lines == ("[14:30:25] 5", "[14:30:25] 6")
    assert run_log.lines_since(6).lines == ("[14:30:25] 6",)


def test_stored_log_reads_lines_by_number_and_counts_the_dropped_ones_skipped() -> None:
    run_log = RunLog(max_lines=4, clock=CLOCK)
    for number in range(10):
        run_log.write(str(number))
    stored = StoredLog.parse(run_log.text())

    assert stored.end == 10
    assert stored.lines(1, 2) == ["[14:30:25] 1"]
    assert stored.lines(9) == ["[14:30:25] 9"]
    assert stored.lines(10) == [] and stored.lines(3, 3) == []
    middle = stored.lines(1, 5)
    assert middle[0] == "[14:30:25] 1"
    assert middle[1].startswith("[... 3 lines dropped: the log keeps the first 2")
    # The whole gap: the marker as written; part of it: only the lines are known.
    assert stored.lines(0)[2].startswith(
        "[... 6 lines dropped (78 bytes): "
    )  # 6 x "[14:30:25] n\n"
    assert stored.lines(2, 4)[0].startswith("[... 2 lines dropped: the log keeps")


class RecordingLineSink:
    def __init__(self, every: float) -> None:
        self.every = every
        self.batches: list[LogLines] = []
        self.closed = False

    def __call__(self, batch: LogLines) -> None:
        self.batches.append(batch)

    def snapshot_every(self) -> float:
        return self.every

    def close(self, batch: LogLines) -> None:
        self.batches.append(batch)
        self.closed = True


def test_with_a_line_sink_the_text_sink_runs_only_as_often_as_it_asks() -> None:
    quiet = LogPublisher()
    quiet.interval = 60
    run_log = RunLog(max_lines=10, clock=CLOCK)
    texts: list[LogSnapshot] = []
    lines = RecordingLineSink(every=3600)
    quiet.register(run_log, texts.append, interval=60, line_sink=lines)

    run_log.write("one")
    quiet.flush_all()
    run_log.write("two")
    quiet.flush_all()
    quiet.flush_all()

    assert [snapshot.text for snapshot in texts] == ["[14:30:25] one"]
    assert [batch.lines for batch in lines.batches] == [
        ("[14:30:25] one",),
        ("[14:30:25] two",),
        (),  # called on every flush, so lines it could not send get retried
    ]
    lines.every = 0
    quiet.flush_all()
    assert texts[-1].text == "[14:30:25] one\n[14:30:25] two"


def quiet_publisher_with_line_sink() -> tuple[LogPublisher, RunLog, RecordingLineSink]:
    """A publisher that flushes only when told, publishing one run's log to a line sink."""
    quiet = LogPublisher()
    quiet.interval = 60
    run_log = RunLog(max_lines=10, clock=CLOCK)
    lines = RecordingLineSink(every=0)
    quiet.register(run_log, None, interval=60, line_sink=lines)
    return quiet, run_log, lines


def test_a_line_sink_gets_the_last_lines_then_is_closed_when_the_run_ends() -> None:
    quiet, run_log, lines = quiet_publisher_with_line_sink()
    run_log.write("last")

    quiet.unregister(run_log)
    assert not lines.closed
    quiet.flush_all()

    assert lines.batches[-1].lines == ("[14:30:25] last",) and lines.closed
    assert quiet.live_logs() == []


def test_a_run_that_wrote_nothing_leaves_its_line_sink_alone() -> None:
    # Most runs are silent: ending one must not wake the publisher to close a sink
    # that never sent anything.
    quiet, run_log, lines = quiet_publisher_with_line_sink()

    quiet.unregister(run_log)
    quiet.flush_all()

    assert not lines.closed and lines.batches == []
    assert quiet.live_logs() == []


def test_log_lines_are_made_storable_and_counted() -> None:
    run_log = RunLog(max_lines=10)

    first = run_log.write("x\x00y")
    run_log.write("plain")
    run_log.write("caf" + b"\xe9".decode("utf-8", "surrogateescape"))

    assert first.endswith("] x\ufffdy")
    assert run_log.altered_lines == 2
    run_log.text().encode("utf-8")  # every sink can take it
    assert "\x00" not in run_log.text()


# --- The byte cap (SCHEDULER_LOG_MAX_BYTES): issue 14 ---------------------------

MIB = 1024 * 1024


def test_a_long_run_of_1_kb_lines_is_kept_within_the_byte_cap() -> None:
    # 200,000 lines of 1 KB (200 MB) under the default caps: the line cap of
    # 20,000 lines alone would keep 20 MB.
    run_log = RunLog(max_lines=20_000, max_bytes=MIB, clock=CLOCK)
    body = "x" * 1000
    for number in range(200_000):
        run_log.write("%06d %s" % (number, body))
        assert run_log.retained_bytes <= MIB

    text = run_log.text()
    assert len(text.encode()) <= MIB
    stored = StoredLog.parse(text)
    assert stored.end == 200_000  # every line written is numbered
    assert stored.head[0].startswith("[14:30:25] 000000 ")
    assert stored.tail[-1].startswith("[14:30:25] 199999 ")
    # Both halves are unbroken runs: the numbers go on by one.
    kept = [int(line.split()[1]) for line in stored.head + stored.tail]
    assert kept == [
        *range(len(stored.head)),
        *range(200_000 - len(stored.tail), 200_000),
    ]
    assert stored.marker == (
        "[... %d lines dropped (%d bytes): the log keeps the first %d and the last %d "
        "lines of a run, at most SCHEDULER_LOG_BUFFER_MAX_LINES=20000 lines and "
        "SCHEDULER_LOG_MAX_BYTES=1048576 bytes ...]"
        % (
            run_log.dropped,
            run_log.dropped_bytes,
            len(stored.head),
            len(stored.tail),
        )
    )
    assert run_log.dropped == 200_000 - len(stored.head) - len(stored.tail)
    assert run_log.dropped_bytes == run_log.dropped * len("[14:30:25] 000000 \n" + body)
    # The line numbers readers use still work across the gap.
    assert stored.lines(199_999) == [stored.tail[-1]]
    assert run_log.lines_since(199_999).lines == (stored.tail[-1],)
    assert run_log.lines_since(10).first == 200_000 - len(stored.tail)


def test_one_huge_line_is_cut_as_it_is_written() -> None:
    run_log = RunLog(max_lines=20_000, max_bytes=MIB, clock=CLOCK)
    seen: list[str] = []
    run_log.add_listener(seen.append)

    line = run_log.write("y" * (50 * MIB))
    run_log.write("after")

    kept = (MIB - 400) // 4  # a quarter of what is left beside the marker line
    assert run_log.retained_bytes <= MIB // 2
    assert run_log.cut_lines == 1
    assert line == seen[0] and line.startswith("[14:30:25] yyy")
    cut = 50 * MIB - kept
    assert line == "[14:30:25] " + "y" * kept + (
        " [... %d characters cut: a log line keeps at most %d bytes, a quarter of "
        "SCHEDULER_LOG_MAX_BYTES=1048576 ...]" % (cut, kept)
    )
    assert run_log.text() == line + "\n[14:30:25] after"
    assert StoredLog.parse(run_log.text()).end == 2


def test_a_huge_message_of_many_lines_is_kept_and_numbered_line_by_line() -> None:
    run_log = RunLog(max_lines=20_000, max_bytes=64 * 1024, clock=CLOCK)

    echoed = run_log.write("\n".join("line %d" % n for n in range(300_000)))

    assert run_log.retained_bytes <= 64 * 1024
    stored = StoredLog.parse(run_log.text())
    assert stored.end == 300_000
    assert stored.head[:2] == ["[14:30:25] line 0", "line 1"]
    assert stored.tail[-1] == "line 299999"
    assert len(echoed.encode()) <= 64 * 1024  # the echo is its start only
    assert echoed.startswith("[14:30:25] line 0\nline 1\n")


def test_non_ascii_lines_are_cut_by_their_utf8_bytes() -> None:
    run_log = RunLog(max_lines=100, max_bytes=8192, clock=CLOCK)

    line = run_log.write("处" * 10_000)  # 30,000 bytes of UTF-8

    start = line.split(" [... ")[0]
    assert len(start.encode()) <= len("[14:30:25] ") + 8192 // 4
    assert "characters cut" in line
    assert run_log.retained_bytes <= 8192
    run_log.text().encode("utf-8")  # no character was split


def test_the_byte_cap_keeps_the_first_and_last_lines_of_a_small_log() -> None:
    run_log = RunLog(
        max_lines=1000, max_bytes=400 + 20 * 14, clock=CLOCK
    )  # 14: "[14:30:25] nn\n"
    for number in range(10, 60):
        run_log.write(str(number))

    stored = StoredLog.parse(run_log.text())
    assert stored.head == ["[14:30:25] %d" % n for n in range(10, 20)]
    assert stored.tail == ["[14:30:25] %d" % n for n in range(50, 60)]
    assert "30 lines dropped (420 bytes)" in stored.marker
    assert len(run_log.text().encode()) <= 400 + 20 * 14
