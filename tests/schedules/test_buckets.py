"""Which slots of a grid a schedule fires in (schedules/buckets.py), checked against
the trigger's own fire times listed one by one."""

from __future__ import annotations

import datetime as dt

import pytest

from scheduler_app.schedules.buckets import Grid, fire_slots, fires_in_every_slot
from scheduler_app.schedules.fire_times import next_fire_times
from scheduler_app.schedules.schedule import Schedule

UTC = dt.UTC
START = dt.datetime(2026, 3, 20, tzinfo=UTC)


def listed_slots(schedule: Schedule, grid: Grid) -> dict[int, dt.datetime]:
    """slot -> its first fire, from every fire time in the grid (the slow way)."""
    after = grid.start - dt.timedelta(microseconds=1)
    trigger = schedule.trigger(start_at=grid.start)
    slots: dict[int, dt.datetime] = {}
    while True:
        times = next_fire_times(trigger, after=after, count=200)
        for moment in times:
            if moment >= grid.end:
                return slots
            slots.setdefault(grid.slot_of(moment), moment)
        if len(times) < 200:
            return slots
        after = times[-1]


@pytest.mark.parametrize(
    "cron",
    [
        "*/5 * * * *",
        "0 3 * * *",
        "*/5 9-17 * * 1-5",
        "0 * * * *",
        "30 2 * * *",  # the spring-forward gap in Europe/Paris on March 29
        "0 0 1 * *",
        "0,40 * * * *",  # a 40-minute gap: not in every 30-minute slot
        "15 */2 * * *",
    ],
)
@pytest.mark.parametrize("step", [900, 1800, 3600, 6 * 3600])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "Asia/Kolkata"])
def test_cron_slots_are_those_the_fire_times_fall_in(
    cron: str, step: int, zone: str
) -> None:
    # Three weeks over the end of March: Paris moves its clocks on the 29th.
    grid = Grid(start=START, step=step, count=int(21 * 86400 / step))
    schedule = Schedule(kind="cron", cron=cron, zone=zone)

    found = fire_slots(schedule, grid, range(grid.count))

    listed = listed_slots(schedule, grid)
    assert set(found) == set(listed)
    for slot, fire_at in found.items():
        assert fire_at is None or fire_at == listed[slot]


def test_only_the_slots_asked_about_are_answered() -> None:
    grid = Grid(start=START, step=3600, count=48)
    daily = Schedule(kind="cron", cron="0 3 * * *", zone="UTC")

    assert set(fire_slots(daily, grid, range(48))) == {3, 27}
    assert set(fire_slots(daily, grid, [0, 1, 2, 27, 99, -1])) == {27}
    assert fire_slots(daily, grid, []) == {}


def test_a_frequent_cron_fills_every_slot_without_a_trigger_call() -> None:
    grid = Grid(start=START, step=900, count=96)
    every_five = Schedule(kind="cron", cron="*/5 * * * *", zone="UTC")
    gappy = Schedule(kind="cron", cron="0,40 * * * *", zone="UTC")
    office = Schedule(kind="cron", cron="*/5 9-17 * * *", zone="UTC")

    assert fires_in_every_slot(every_five, grid)
    assert fire_slots(every_five, grid, range(96)) == dict.fromkeys(range(96))
    assert not fires_in_every_slot(gappy, grid)
    assert fires_in_every_slot(gappy, Grid(start=START, step=3600, count=24))
    assert not fires_in_every_slot(office, grid)


def test_a_zone_whose_offset_changes_over_the_grid_asks_the_trigger() -> None:
    # Paris falls back on 2026-10-25: the trigger says what the repeated hour holds.
    grid = Grid(start=dt.datetime(2026, 10, 24, tzinfo=UTC), step=3600, count=48)
    hourly = Schedule(kind="cron", cron="0 * * * *", zone="Europe/Paris")

    assert not fires_in_every_slot(hourly, grid)
    assert set(fire_slots(hourly, grid, range(48))) == set(listed_slots(hourly, grid))


def test_an_interval_counts_from_its_anchor() -> None:
    grid = Grid(start=START, step=3600, count=10)
    every_two_hours = Schedule(kind="interval", every_seconds=7200)
    anchor = START + dt.timedelta(hours=5, minutes=30)

    found = fire_slots(every_two_hours, grid, range(10), anchor=anchor)

    assert found == {
        slot: START + dt.timedelta(hours=slot, minutes=30) for slot in (1, 3, 5, 7, 9)
    }


def test_an_interval_without_an_anchor_is_answered_only_when_it_fills_every_slot() -> (
    None
):
    grid = Grid(start=START, step=3600, count=4)

    assert fire_slots(Schedule(kind="interval", every_seconds=600), grid, range(4)) == (
        dict.fromkeys(range(4))
    )
    assert (
        fire_slots(Schedule(kind="interval", every_seconds=7200), grid, range(4)) == {}
    )


def test_a_one_off_date_fires_in_its_slot_only() -> None:
    grid = Grid(start=START, step=3600, count=24)
    run_date = START + dt.timedelta(hours=7, minutes=15)
    one_off = Schedule(kind="date", run_date=run_date, zone="UTC")

    assert fire_slots(one_off, grid, range(24)) == {7: run_date}
    assert fire_slots(one_off, grid, range(7)) == {}


def test_manual_tasks_and_broken_schedules_fire_in_no_slot() -> None:
    grid = Grid(start=START, step=3600, count=24)

    assert fire_slots(Schedule(kind="manual"), grid, range(24)) == {}
    assert fire_slots(Schedule(kind="cron", cron="61 * * * *"), grid, range(24)) == {}
    assert (
        fire_slots(
            Schedule(kind="cron", cron="* * * * *", zone="Mars/Base"), grid, range(24)
        )
        == {}
    )


def test_jitter_does_not_change_the_slots() -> None:
    grid = Grid(start=START, step=3600, count=24)
    plain = Schedule(kind="cron", cron="0 3 * * *", zone="UTC")
    jittered = Schedule(kind="cron", cron="0 3 * * *", zone="UTC", jitter_seconds=3000)

    assert fire_slots(jittered, grid, range(24)) == fire_slots(plain, grid, range(24))
