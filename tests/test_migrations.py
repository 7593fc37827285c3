"""The migrations describe the models exactly: no change is waiting to be written.

The models' constraints are built from the choice enums (scheduler_app/choices.py);
a reordered or renamed member would show here as a migration to write.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_the_models_need_no_new_migration() -> None:
    # --check exits non-zero (SystemExit) when a migration is missing.
    call_command("makemigrations", "scheduler_app", "--check", "--dry-run", verbosity=0)
