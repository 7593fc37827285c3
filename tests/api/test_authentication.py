"""Authentication: API keys (two headers, ?api_key=) acting as their user; sessions."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from scheduler_app.models import UserAPIKey
from tests.api.conftest import VIEW_PERMISSIONS
from tests.factories import key_for, make_user

pytestmark = pytest.mark.django_db

TASKS = "/api/v1/tasks"
KEY_ADMIN_ADD = "/admin/scheduler_app/userapikey/add/"


@pytest.fixture
def key(superuser: User) -> str:
    return key_for(superuser)


def test_a_key_works_in_the_x_api_key_header(key: str) -> None:
    assert APIClient().get(TASKS, HTTP_X_API_KEY=key).status_code == 200


def test_a_key_works_in_the_authorization_header(key: str) -> None:
    assert (
        APIClient().get(TASKS, HTTP_AUTHORIZATION="Api-Key %s" % key).status_code == 200
    )


def test_a_key_works_in_the_query_string(key: str) -> None:
    assert APIClient().get(TASKS, {"api_key": key}).status_code == 200


def test_a_key_acts_as_its_user_with_exactly_their_permissions() -> None:
    reader = APIClient(HTTP_X_API_KEY=key_for(make_user("reader", *VIEW_PERMISSIONS)))
    stranger = APIClient(HTTP_X_API_KEY=key_for(make_user("stranger")))

    assert reader.get(TASKS).status_code == 200
    assert reader.post(TASKS, {}, format="json").status_code == 403
    assert stranger.get(TASKS).status_code == 403


@pytest.mark.parametrize(
    "bad_key",
    ["nope", "abcd1234.notthesecret", "a.b", "x\x00y", "../../etc", ""],
)
def test_an_unknown_or_malformed_key_is_401(key: str, bad_key: str) -> None:
    prefix = key.partition(".")[0]
    for candidate in (bad_key, prefix + ".wrongsecret"):
        response = APIClient().get(TASKS, HTTP_X_API_KEY=candidate or "  ")
        if not candidate.strip() and candidate == bad_key:
            # An empty header is no credential at all: 401 "not provided".
            assert response.status_code == 401
            continue
        assert response.status_code == 401, candidate
        assert response.json()["code"] == "authentication_failed"
        assert response["WWW-Authenticate"].startswith("Api-Key")


def test_a_revoked_key_is_401(superuser: User) -> None:
    api_key, key = UserAPIKey.objects.create_key(name="old", user=superuser)
    api_key.revoked = True
    api_key.save()

    assert APIClient().get(TASKS, HTTP_X_API_KEY=key).status_code == 401


def test_an_expired_key_is_401(superuser: User) -> None:
    key = key_for(superuser, expiry_date=timezone.now() - dt.timedelta(seconds=1))

    assert APIClient().get(TASKS, HTTP_X_API_KEY=key).status_code == 401


def test_a_key_whose_user_is_inactive_is_401(superuser: User) -> None:
    key = key_for(superuser)
    superuser.is_active = False
    superuser.save()

    response = APIClient().get(TASKS, HTTP_X_API_KEY=key)

    assert response.status_code == 401
    assert "inactive" in response.json()["detail"]


def test_a_key_is_stored_hashed(superuser: User) -> None:
    key = key_for(superuser)
    prefix, _dot, secret = key.partition(".")

    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM scheduler_app_userapikey")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)

    assert prefix in stored
    assert secret not in stored
    assert key not in stored
    assert UserAPIKey.objects.get(prefix=prefix).hashed_key.startswith("sha512$$")


def test_no_credentials_is_401_not_403(anonymous: APIClient) -> None:
    response = anonymous.get(TASKS)

    assert response.status_code == 401
    assert response.json() == {
        "detail": "Authentication credentials were not provided.",
        "code": "not_authenticated",
        "field": None,
        "errors": {},
    }
    assert response["WWW-Authenticate"] == 'Api-Key realm="api"'


def test_an_admin_session_reads_and_writes_with_csrf(superuser: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(superuser)
    body = {
        "name": "from-session",
        "task_type": "manual",
        "handler_path": "scripts:example_task",
    }

    assert client.get(TASKS).status_code == 200
    refused = client.post(TASKS, body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]

    page = client.get(TASKS, HTTP_ACCEPT="text/html")
    token = page.cookies["csrftoken"].value
    created = client.post(
        TASKS, body, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert created.status_code == 201, created.content


def test_the_browsable_api_renders_for_a_session(superuser: User) -> None:
    client = Client()
    client.force_login(superuser)

    response = client.get(TASKS + "/", HTTP_ACCEPT="text/html")

    assert response.status_code == 200
    assert b"Scheduled Task" in response.content or b"Task" in response.content
    assert b"/static/rest_framework/" in response.content


def test_api_keys_are_created_in_the_admin_and_shown_once(superuser: User) -> None:
    client = Client()
    client.force_login(superuser)

    response = client.post(
        KEY_ADMIN_ADD, {"name": "ci", "user": superuser.pk}, follow=True
    )

    assert response.status_code == 200
    [message] = [
        str(m) for m in get_messages(response.wsgi_request) if " is: " in str(m)
    ]
    api_key = UserAPIKey.objects.get(name="ci")
    shown = message.split("is: ")[1].split(". ")[0]
    assert shown.startswith(api_key.prefix + ".")
    assert APIClient().get(TASKS, HTTP_X_API_KEY=shown).status_code == 200
    assert (
        shown
        not in client.get(
            "/admin/scheduler_app/userapikey/%s/change/" % api_key.pk
        ).content.decode()
    )


def test_a_new_key_is_never_in_a_cookie_and_is_shown_once(superuser: User) -> None:
    client = Client()
    client.force_login(superuser)

    created = client.post(KEY_ADMIN_ADD, {"name": "ci", "user": superuser.pk})
    shown_page = client.get(created["Location"])
    again = client.get(created["Location"])

    assert created.status_code == 302
    api_key = UserAPIKey.objects.get(name="ci")
    found = re.search(
        r"The API key for ci is: (%s\.\S+?)\. " % re.escape(api_key.prefix),
        shown_page.content.decode(),
    )
    assert found, "the key is not on the page after its creation"
    shown = found.group(1)
    assert APIClient().get(TASKS, HTTP_X_API_KEY=shown).status_code == 200
    for response in (created, shown_page, again):
        for cookie in response.cookies.values():
            assert shown not in cookie.value, cookie.key
            assert api_key.prefix not in cookie.value, cookie.key
    assert "messages" not in client.cookies
    assert shown not in again.content.decode()


def _staff_with_key_permissions(username: str) -> User:
    return make_user(
        username,
        "add_userapikey",
        "change_userapikey",
        "view_userapikey",
        is_staff=True,
    )


def test_the_key_form_starts_with_the_signed_in_user(superuser: User) -> None:
    client = Client()
    client.force_login(superuser)

    form = client.get(KEY_ADMIN_ADD).context["adminform"].form

    assert form["user"].initial == superuser.pk


def test_staff_can_make_keys_only_for_themselves(superuser: User) -> None:
    staff = _staff_with_key_permissions("staffer")
    client = Client()
    client.force_login(staff)

    borrowed = client.post(KEY_ADMIN_ADD, {"name": "borrowed", "user": superuser.pk})
    own = client.post(KEY_ADMIN_ADD, {"name": "own", "user": staff.pk})

    assert borrowed.status_code == 200  # the form is redisplayed with an error
    assert not UserAPIKey.objects.filter(name="borrowed").exists()
    assert own.status_code == 302
    assert UserAPIKey.objects.get(name="own").user == staff


def test_staff_see_only_their_own_keys(superuser: User) -> None:
    key_for(superuser)
    staff = _staff_with_key_permissions("looker")
    key_for(staff)
    client = Client()
    client.force_login(staff)

    response = client.get("/admin/scheduler_app/userapikey/")

    assert response.status_code == 200
    assert response.context["cl"].result_count == 1


def test_the_library_s_own_key_model_is_not_in_the_admin(superuser: User) -> None:
    client = Client()
    client.force_login(superuser)

    assert client.get("/admin/rest_framework_api_key/apikey/").status_code == 404
    assert client.get("/admin/scheduler_app/userapikey/").status_code == 200


def test_every_request_with_a_key_costs_one_query_for_the_key(
    key: str, django_assert_max_num_queries: Any
) -> None:
    with django_assert_max_num_queries(3):
        APIClient().get("/api/v1/tasks/handlers", HTTP_X_API_KEY=key)


def test_the_last_use_of_a_key_is_recorded_to_the_minute(superuser: User) -> None:
    import datetime as dt
    from unittest import mock

    from scheduler_app.models import UserAPIKey

    key = key_for(superuser)
    stored = UserAPIKey.objects.get()
    assert stored.last_used_at is None
    start = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)

    def call_at(when: dt.datetime) -> dt.datetime | None:
        with mock.patch(
            "scheduler_app.api.authentication.timezone.now", return_value=when
        ):
            assert (
                APIClient()
                .get("/api/v1/tasks/handlers", HTTP_X_API_KEY=key)
                .status_code
                == 200
            )
        return UserAPIKey.objects.get().last_used_at

    assert call_at(start) == start
    assert call_at(start + dt.timedelta(seconds=59)) == start  # no write per request
    assert call_at(start + dt.timedelta(seconds=61)) == start + dt.timedelta(seconds=61)


def test_the_admin_lists_when_each_key_was_last_used(superuser: User) -> None:
    from scheduler_app.models import UserAPIKey

    key = key_for(superuser)
    APIClient().get("/api/v1/tasks/handlers", HTTP_X_API_KEY=key)
    client = Client()
    client.force_login(superuser)

    listing = client.get("/admin/scheduler_app/userapikey/").content.decode()
    page = client.get(
        "/admin/scheduler_app/userapikey/%s/change/" % UserAPIKey.objects.get().pk
    )

    assert "Last used" in listing
    assert page.status_code == 200 and "Last used" in page.content.decode()
