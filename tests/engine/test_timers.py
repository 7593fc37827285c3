"""The engine loop's timers: due at the first call, then by their period, at `now`."""

from __future__ import annotations

from scheduler_app.engine.timers import Deadline, Every

#: Monotonic seconds are arbitrary: only their differences mean anything.
START = 5000.0


def at(seconds: float) -> float:
    return START + seconds


def test_every_is_due_at_the_first_call_then_every_period() -> None:
    timer = Every(10)

    assert [timer.due(at(s)) for s in (0, 5, 9.9, 10, 15, 20.5)] == [
        True,
        False,
        False,
        True,
        False,
        True,
    ]
    assert timer.next_at == at(30.5)


def test_soon_makes_it_due_at_once() -> None:
    timer = Every(10)
    timer.due(at(0))

    timer.soon()

    assert timer.due(at(1)) and not timer.due(at(2))


def test_soon_then_bounds_the_time_after_the_next_one() -> None:
    timer = Every(60)
    timer.due(at(0))

    timer.soon(then=at(20))

    assert timer.due(at(5))
    assert timer.next_at == at(20)
    assert timer.due(at(20))
    assert timer.next_at == at(80)  # the bound applies once


def test_restart_puts_the_next_time_off() -> None:
    timer = Every(0.25)
    timer.due(at(0))

    timer.restart(at(0), seconds=1)

    assert not timer.due(at(0.5)) and timer.due(at(1))


def test_a_deadline_passes_at_its_time_and_never_without_one() -> None:
    deadline = Deadline()
    assert not deadline.passed(at(100))

    deadline.at = at(5)

    assert not deadline.passed(at(4.9)) and deadline.passed(at(5))
