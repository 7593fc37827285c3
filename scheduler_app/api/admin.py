"""Admin for API keys: each acts as a user; the plain key is shown once, at creation."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import ForeignKey, QuerySet
from django.forms import ModelChoiceField
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from ..models import UserAPIKey

# The library's own key model authenticates as nobody; this project's keys are
# UserAPIKey, so the unused one is kept out of the admin to avoid confusion.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(UserAPIKey)
class UserAPIKeyAdmin(APIKeyModelAdmin):
    # The library's tuples are inferred as fixed-length; these only add a column.
    list_display = (*APIKeyModelAdmin.list_display, "user", "last_used_at")  # type: ignore[assignment]
    list_select_related = ["user"]
    search_fields = (  # type: ignore[assignment]
        *APIKeyModelAdmin.search_fields,
        "user__username",
    )

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if obj is None else (*fields, "last_used_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserAPIKey]:
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(user=request.user)

    def formfield_for_foreignkey(
        self, db_field: ForeignKey[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelChoiceField | None:
        # A key acts with its user's permissions: only a superuser may make one
        # for someone else, or a staff user could borrow a superuser's rights.
        if db_field.name == "user":
            # A new key is for whoever makes it, unless a superuser picks another.
            kwargs["initial"] = request.user.pk
        if db_field.name == "user" and not request.user.is_superuser:
            related_model = db_field.related_model
            # A string ("self") only until the app registry resolves the relation.
            assert not isinstance(related_model, str), "relations resolve at startup"
            kwargs["queryset"] = related_model._default_manager.filter(
                pk=request.user.pk
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
