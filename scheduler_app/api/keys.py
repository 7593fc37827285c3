"""API keys that act as a user: stored hashed, managed in the admin."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey


class UserAPIKey(AbstractAPIKey):
    """A key whose requests run as `user`, with exactly that user's permissions.

    Only a hash of the key is stored (`hashed_key`); the plain key is shown once,
    when the key is created in the admin.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_keys",
        verbose_name=_("user"),
        help_text=_(
            "Requests made with this key act as this user, with their permissions; "
            "e.g. a “ci-bot” user allowed to view and run tasks."
        ),
    )

    class Meta:
        app_label = "scheduler_app"
        ordering = ("-created",)
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
