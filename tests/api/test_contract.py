"""API contract: error JSON, optional slashes, JSON 404s, schema and docs offline."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from rest_framework.test import APIClient

from scheduler_app.services.validation import INTEGER_BOUNDS
from tests.factories import make_task

pytestmark = pytest.mark.django_db


def test_validation_errors_have_detail_code_field_and_errors(api: APIClient) -> None:
    response = api.post("/api/v1/tasks", {"task_type": "interval"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"detail", "code", "field", "errors"}
    assert body["code"] == "invalid"
    assert body["errors"]["name"] == ["This field is required."]
    assert body["errors"]["handler_path"] == ["This field is required."]
    assert body["field"] == "name"
    assert body["detail"].startswith("name: This field is required.")


def test_a_malformed_json_body_is_a_400_parse_error(api: APIClient) -> None:
    response = api.post("/api/v1/tasks", "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_an_unknown_format_is_a_json_404(api: APIClient) -> None:
    response = api.get("/api/v1/tasks", {"format": "xml"})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_wrong_method_is_405_json(api: APIClient) -> None:
    response = api.delete("/api/v1/tasks")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nothing-here",
        "/api/v1/tasks/1/nonsense/deeper",
        # A newline: "." in a route's pattern matches anything else.
        "/api/v1/tasks/a%2F%0A/lock/",
        "/api/v1/nothing%0Ahere",
    ],
)
def test_an_unknown_api_url_is_a_json_404(api: APIClient, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writing_to_an_unknown_api_url_is_a_json_404_not_a_csrf_page(
    method: str,
) -> None:
    # A client with an API key sends no CSRF token; a path the fuzzing found.
    client = APIClient(enforce_csrf_checks=True)
    response = getattr(client, method)("/api/v1/tasks/handler-parameters%2F/")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("slash", ["", "/"])
def test_post_works_with_and_without_the_trailing_slash(
    api: APIClient, slash: str
) -> None:
    task = make_task()

    response = api.post("/api/v1/tasks/%d/pause%s" % (task.pk, slash))

    assert response.status_code == 200  # no APPEND_SLASH redirect


def test_the_schema_is_served_as_openapi_3_and_needs_authentication(
    api: APIClient, anonymous: APIClient
) -> None:
    response = api.get("/api/v1/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in (
        "/api/v1/tasks/",
        "/api/v1/tasks/{id_or_name}/run/",
        "/api/v1/tasks/executions/{id}/log/",
        "/api/v1/tasks/{id_or_name}/release-lock/",
        "/api/v1/scheduler/status/",
    ):
        assert path in paths
    run = paths["/api/v1/tasks/{id_or_name}/run/"]["post"]
    assert run["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "RunRequestRequest"
    )
    assert set(run["responses"]) >= {"202", "400", "401", "403", "404"}
    assert {"ApiKeyHeader", "ApiKeyQuery"} <= set(
        schema["components"]["securitySchemes"]
    )
    assert anonymous.get("/api/v1/schema/").status_code == 401


def test_the_schema_says_what_the_server_accepts(api: APIClient) -> None:
    schema = api.get("/api/v1/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    executions = schema["paths"]["/api/v1/tasks/executions/"]["get"]
    [task_filter] = [p for p in executions["parameters"] if p["name"] == "task"]

    # An id: "1.5" is refused, so the schema must not say `number`.
    assert task_filter["schema"] == {"type": "integer"}
    assert api.get("/api/v1/tasks/executions/", {"task": "1.5"}).status_code == 400
    # Parameters are an object, never null, in every shape of a task.
    for name in ("TaskWriteRequest", "PatchedTaskWriteRequest", "Task"):
        parameters = components[name]["properties"]["handler_kwargs"]
        assert parameters["type"] == "object", name
        assert not parameters.get("nullable"), name
    overrides = components["RunRequestRequest"]["properties"]["kwargs"]
    assert overrides["type"] == "object" and not overrides.get("nullable")
    # The service's bounds (INTEGER_BOUNDS), whatever the database.
    for field, (low, high) in INTEGER_BOUNDS.items():
        bounds = components["TaskWriteRequest"]["properties"][field]
        assert (bounds["minimum"], bounds["maximum"]) == (low, high), field


def test_null_parameters_are_refused_as_the_schema_says(api: APIClient) -> None:
    task = make_task()

    created = api.post(
        "/api/v1/tasks",
        {
            "name": "n",
            "task_type": "manual",
            "handler_path": "scripts:data_sync",
            "handler_kwargs": None,
        },
        format="json",
    )
    run = api.post("/api/v1/tasks/%d/run" % task.pk, {"kwargs": None}, format="json")

    assert created.status_code == run.status_code == 400
    assert created.json()["field"] == "handler_kwargs"
    assert run.json()["field"] == "kwargs"


@pytest.mark.parametrize("path", ["/api/v1/docs/", "/api/v1/redoc/"])
def test_the_docs_pages_use_local_assets_only(api: APIClient, path: str) -> None:
    response = api.get(path)

    assert response.status_code == 200
    page = response.content.decode()
    assert "/static/drf_spectacular_sidecar/" in page
    assert "cdn.jsdelivr.net" not in page and "unpkg.com" not in page


def test_the_swagger_ui_assets_ship_with_the_project() -> None:
    found = finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")

    assert found and Path(found).stat().st_size > 100_000


def test_the_api_root_links_the_lists_status_and_docs(
    api: APIClient, anonymous: APIClient
) -> None:
    links = api.get("/api/v1/").json()

    assert links["tasks"] == "http://testserver/api/v1/tasks"
    assert links["scheduler/status"] == "http://testserver/api/v1/scheduler/status"
    assert links["docs"] == "http://testserver/api/v1/docs"
    assert links["redoc"] == "http://testserver/api/v1/redoc"
    assert anonymous.get("/api/v1/").status_code == 401


def test_the_browsable_api_root_describes_the_api(api: APIClient) -> None:
    page = api.get("/api/v1/", HTTP_ACCEPT="text/html").content.decode()

    assert "The scheduled tasks API, version 1." in page
    assert "Api-Key" in page


@pytest.mark.parametrize(
    "path", ["/api/v1/tasks", "/api/v1/tasks/{task}", "/api/v1/tasks/{task}/run"]
)
def test_options_describes_an_endpoint(api: APIClient, path: str) -> None:
    task = make_task()

    response = api.options(path.format(task=task.pk))

    assert response.status_code == 200
    assert response.json()["name"]
