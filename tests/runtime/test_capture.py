"""runtime/capture.py: prints of a bound run go to its log, a line at a time."""

from __future__ import annotations

import io

from scheduler_app import tasklog
from scheduler_app.runtime.capture import PARTIAL_LINE_MAX_CHARS, RunStream


def test_lines_go_to_the_bound_run_and_a_partial_line_is_written_at_the_end() -> None:
    fallback = io.StringIO()
    stream = RunStream(fallback)
    run_log = tasklog.RunLog(max_lines=100)
    stream.write("outside\n")
    with tasklog.bind(run_log, sink=None, interval=1):
        stream.write("one\ntw")
        stream.write("o\nthree")
        stream.end_of_run()

    assert fallback.getvalue() == "outside\n"
    assert [line.split("] ", 1)[1] for line in run_log.text().splitlines()] == [
        "one",
        "two",
        "three",
    ]


def test_a_partial_line_is_not_held_beyond_its_limit() -> None:
    stream = RunStream(io.StringIO())
    run_log = tasklog.RunLog(max_lines=100)
    with tasklog.bind(run_log, sink=None, interval=1):
        for _ in range(3):
            stream.write("y" * (PARTIAL_LINE_MAX_CHARS // 2 + 1))
        held = stream._pending()

        assert len(run_log.text().splitlines()) == 1  # the first two, as one line
        assert sum(len(text) for _log, text in held.values()) < PARTIAL_LINE_MAX_CHARS
