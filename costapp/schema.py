"""OpenAPI schema hooks: document the error answers every endpoint can give.

DRF answers 400 (a bad parameter or body, naming it), 401 (no or bad token), 403 (not allowed)
and 404 (unknown object or page) with a JSON body such as `{"detail": "..."}` or, for a
validation error, `{"field": ["..."]}`. drf-spectacular documents only the success codes, so
this hook adds the error codes to every operation, which lets clients (and the schemathesis
test) rely on the schema for every status code.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": "An error: `detail` says what went wrong, or one key per invalid field.",
    "properties": {"detail": {"type": "string"}, "parameter": {"type": "string"}},
    "additionalProperties": True,
}
ERRORS = {
    "400": "Bad request: the named parameter or field is invalid.",
    "401": "Authentication credentials were not provided or are invalid.",
    "403": "You do not have permission to see this.",
    "404": "Not found.",
}


def add_error_responses(result, generator, request, public):
    """drf-spectacular POSTPROCESSING_HOOKS entry: add 400/401/403/404 to every operation."""
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Error", ERROR_SCHEMA)
    ref = {"$ref": "#/components/schemas/Error"}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            for code, description in ERRORS.items():
                responses.setdefault(
                    code,
                    {"description": description, "content": {"application/json": {"schema": ref}}},
                )
    return result
