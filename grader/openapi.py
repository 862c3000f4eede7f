"""Reading an app's own /openapi.json: what its routes take, wherever the schema is declared."""

from __future__ import annotations

from typing import Any

MAX_REF_DEPTH = 20  # a $ref cycle must not loop forever


def resolve(schema: Any, openapi: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$ref`s followed (#/components/schemas/Name) and a lone `allOf` unwrapped; {} when it
    names nothing (or is not a schema at all)."""
    for _ in range(MAX_REF_DEPTH):
        if not isinstance(schema, dict):
            return {}
        if "$ref" in schema:
            name = str(schema["$ref"]).rsplit("/", 1)[-1]
            schema = ((openapi.get("components") or {}).get("schemas") or {}).get(name, {})
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            return schema
    return {}
