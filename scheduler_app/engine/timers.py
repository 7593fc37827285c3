"""Timers of the engine loop: "is it time for this step?" asked with a monotonic `now`.

Housekeeping deadlines (heartbeat, lease refresh, recovery, polls) are kept in
seconds of a monotonic clock, so a step of the wall clock (NTP, an operator,
a virtual machine resumed) neither stops them nor makes them all due at once.
Fire times stay wall-clock: they are the engine's datetimes, not these.

They read no clock of their own: every step is given `now` (the engine's
monotonic reading, or the seconds a test injects), and the timers compare
against it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Every:
    """Due at the first call, then every `seconds`; `soon()` makes it due again at once."""

    seconds: float
    next_at: float | None = None
    #: Set by soon(then=...): the time after the next one is no later than this.
    _then: float | None = None

    def due(self, now: float) -> bool:
        """Whether it is time; if so, the next time is `seconds` from `now`."""
        if self.next_at is not None and now < self.next_at:
            return False
        next_at = now + self.seconds
        if self._then is not None:
            next_at, self._then = min(next_at, self._then), None
        self.next_at = next_at
        return True

    def soon(self, *, then: float | None = None) -> None:
        """Be due at the next call, and (with `then`) again by `then` at the latest."""
        self.next_at = None
        self._then = then

    def restart(self, now: float, *, seconds: float | None = None) -> None:
        """Not due again before `seconds` (by default its period) from `now`."""
        period = self.seconds if seconds is None else seconds
        self.next_at = now + period


@dataclass
class Deadline:
    """A point in monotonic time to act at, or None: nothing to wait for."""

    at: float | None = None

    def passed(self, now: float) -> bool:
        return self.at is not None and now >= self.at
