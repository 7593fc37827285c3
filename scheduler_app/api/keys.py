"""API keys that act as a user: stored hashed, managed in the admin."""

from __future__ import annotations

import datetime

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from rest_framework_api_key.models import AbstractAPIKey

#: A key's last use is written again only once this much older (requests are many).
LAST_USE_PRECISION = datetime.timedelta(minutes=1)


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

    last_used_at = models.DateTimeField(
        _("last used"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "When a request last authenticated with this key (to the minute). A key "
            "unused for long is a candidate for revoking."
        ),
    )

    class Meta:
        app_label = "scheduler_app"
        ordering = ("-created",)
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def record_use(self, now: datetime.datetime) -> None:
        """Note that the key was used at `now`: at most one write a minute per key."""
        if (
            self.last_used_at is not None
            and now - self.last_used_at < LAST_USE_PRECISION
        ):
            return
        UserAPIKey.objects.filter(pk=self.pk).update(last_used_at=now)
        self.last_used_at = now
