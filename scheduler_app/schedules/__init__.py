"""Pure scheduling: when tasks fire, with crontab's semantics and DST rules. No models.

- schedule.py    the Schedule value (Schedule.of(task)): validate, trigger, fire times,
                 description; the messages for the non-cron fields; resolve_timezone
- cron.py        the crontab parser and the messages for bad expressions
- triggers.py    schedules as APScheduler triggers (the only module that knows it)
- fire_times.py  next fire times of a trigger, strictly increasing
- dst.py         repeated wall times and the instants a zone changes its offset
- describe.py    schedules in words, in the active language
"""

from .cron import MACROS, parse_crontab
from .describe import describe_cron, describe_interval
from .dst import dst_transitions_between
from .fire_times import next_fire_times
from .schedule import (
    RUN_DATE_MAX,
    RUN_DATE_MIN,
    RUN_DATE_RANGE,
    TASK_TYPES,
    Schedule,
    resolve_timezone,
)
from .triggers import Trigger, cron_trigger

__all__ = [
    "MACROS",
    "RUN_DATE_MAX",
    "RUN_DATE_MIN",
    "RUN_DATE_RANGE",
    "TASK_TYPES",
    "Schedule",
    "Trigger",
    "cron_trigger",
    "describe_cron",
    "describe_interval",
    "dst_transitions_between",
    "next_fire_times",
    "parse_crontab",
    "resolve_timezone",
]
