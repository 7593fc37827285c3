"""`manage.py ensure_admin`: make sure someone can log into the admin, and say how."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

PASSWORD_FILE = ".admin-password"


class Command(BaseCommand):
    help = (
        "Create a superuser (ADMIN_USERNAME / ADMIN_PASSWORD, or a generated password kept "
        "in .admin-password) when none exists, and print the login."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        password_file = Path(settings.BASE_DIR) / PASSWORD_FILE
        existing = User.objects.filter(is_superuser=True).order_by("pk").first()
        if existing is not None:
            if password_file.exists():
                login = password_file.read_text().strip()
                self.stdout.write(
                    "Admin login: %s (as generated into %s; if it was changed since, "
                    "use `manage.py changepassword`)" % (login, PASSWORD_FILE)
                )
            else:
                self.stdout.write(
                    "Admin login: superuser “%s” (use `manage.py changepassword %s` "
                    "if the password is lost)"
                    % (existing.get_username(), existing.get_username())
                )
            return
        username = settings.ADMIN_USERNAME
        password = settings.ADMIN_PASSWORD
        if not password:
            password = secrets.token_urlsafe(12)
            # Created owner-only, so the password is never readable by others, even briefly.
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write("%s / %s\n" % (username, password))
            password_file.chmod(0o600)
        User.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.SUCCESS("Created admin login: %s / %s" % (username, password))
        )
