"""The OpenAPI document as the service behaves.

- OpenAPI 3.0, which OGC API's ``oas30`` conformance class and its clients (OWSLib looks for
  ``application/vnd.oai.openapi+json;version=3.0``) expect, where FastAPI writes 3.1: the few JSON Schema
  forms 3.0 lacks are rewritten (:func:`as_openapi_30`).
- Security schemes and 401 answers only when the service has API keys.
- 422 answers are exception documents (service/errors.py), not FastAPI's validation error list.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from roadnet.settings import Settings

NULL = {"type": "null"}
EXCEPTION_REF = {"$ref": "#/components/schemas/ExceptionPublic"}


def as_openapi_30(node: Any) -> Any:
    """``node`` with JSON Schema 2020-12 forms rewritten as OpenAPI 3.0 has them: ``anyOf`` with
    ``null`` as ``nullable``, numeric ``exclusiveMinimum``/``exclusiveMaximum`` as the boolean forms,
    ``const`` as a one-value ``enum``; ``propertyNames`` (which 3.0 lacks) dropped.

    It walks the whole document: none of the service's own property names is one of these keywords.
    """
    if isinstance(node, list):
        return [as_openapi_30(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: as_openapi_30(value) for key, value in node.items()}
    if NULL in node.get("anyOf", []):
        others = [variant for variant in node.pop("anyOf") if variant != NULL]
        if len(others) == 1 and "$ref" not in others[0]:
            node.update(others[0])
        else:
            node["anyOf"] = others  # a $ref takes no siblings in 3.0: keep it in anyOf
        node["nullable"] = True
    for exclusive, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if type(node.get(exclusive)) in (int, float):
            node[inclusive], node[exclusive] = node[exclusive], True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    node.pop("propertyNames", None)
    return node


def openapi_document(
    app: FastAPI, description: str, tags: list[dict[str, str]], settings: Settings
) -> dict[str, Any]:
    """The service's OpenAPI document (see the module's docstring)."""
    document = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version="3.0.3",
        description=description,
        routes=app.routes,
        tags=tags,
    )
    for operations in document["paths"].values():
        for operation in operations.values():
            responses = operation["responses"]
            if "422" in responses:
                responses["422"]["content"] = {"application/json": {"schema": EXCEPTION_REF}}
            if not settings.api_keys:
                operation.pop("security", None)
                responses.pop("401", None)
    schemas = document["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    if not settings.api_keys:
        document["components"].pop("securitySchemes", None)
    return dict(as_openapi_30(document))
