"""OpenAPI schema post-processing: every operation documents its error responses."""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error: a message, a machine code, and the fields at fault.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "code": {
            "type": "string",
            "description": "e.g. invalid, not_found, permission_denied, "
            "system_task_protected, invalid_state",
        },
        "field": {
            "type": "string",
            "nullable": True,
            "description": "The first field at fault, e.g. cron_expression or "
            "handler_kwargs.days.",
        },
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Every problem, by field (non_field_errors for the rest).",
        },
    },
    "required": ["detail", "code", "field", "errors"],
}
ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_DESCRIPTIONS = {
    "400": "Invalid input: `errors` names each field and what is wrong.",
    "401": "No credentials, or an unknown, revoked or expired API key.",
    "403": "The user (or the API key's user) lacks the permission.",
    "404": "No such object.",
    "409": "The object's state does not allow this.",
}


def add_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    """A drf-spectacular POSTPROCESSING_HOOK: add 400/401/403/404 and the Error body.

    Optional query parameters are marked `allowEmptyValue`: as in HTML forms
    (the browsable API's filter form sends every field), an empty value means
    the parameter was not given.
    """
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = (
        ERROR_SCHEMA
    )
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "query" and not parameter.get("required"):
                    parameter["allowEmptyValue"] = True
            responses = operation.setdefault("responses", {})
            for code in ("400", "401", "403", "404"):
                responses.setdefault(code, {"description": ERROR_DESCRIPTIONS[code]})
            for code, response in responses.items():
                if code.startswith("4") and "content" not in response:
                    response["content"] = {"application/json": {"schema": ERROR_REF}}
                    if not response.get("description"):
                        response["description"] = ERROR_DESCRIPTIONS.get(code, "")
    return result
