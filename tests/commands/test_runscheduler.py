"""`manage.py runscheduler` refuses to start on bad settings, before doing anything."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


def test_bad_scheduler_settings_stop_the_scheduler_before_it_starts(
    settings: Any,
) -> None:
    settings.SCHEDULER_EXECUTOR = "bogus"

    with pytest.raises(
        SystemCheckError, match="SCHEDULER_EXECUTOR must be 'inline' or 'celery'"
    ):
        call_command("runscheduler", skip_checks=False)
