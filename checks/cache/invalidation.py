"""Cache invalidation: once a product is written through the API, GET /products shows it."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from checks.cache.common import PRODUCTS, not_populated, populate, product_list
from grader.api import (
    CheckContext,
    CheckOutcome,
    Command,
    Field,
    Reply,
    check,
    commands_text,
    error,
    failed,
    operation_fields,
    passed,
    points_at,
    request_parts,
    requests_text,
    resolve,
    skipped,
)

WRITE_METHODS = ("post", "put", "patch")
REMOVALS = {"DEL", "UNLINK", "EXPIRE", "PEXPIRE", "GETDEL"}


@dataclass
class WriteEndpoint:
    method: str
    template: str  # the OpenAPI path, e.g. /products/{product_id}
    schema: dict[str, Any]  # its inputs as one object schema (properties, required)
    inputs: tuple[Field, ...] = ()  # where each input travels: a JSON body, the query string, a form


def write_endpoints(openapi: dict[str, Any]) -> list[WriteEndpoint]:
    """POST /products first (it needs no id), then PUT/PATCH /products/{id}, each with the inputs it declares (a
    JSON body, form fields or query parameters)."""
    found = []
    for path, operations in (openapi.get("paths") or {}).items():
        if not (path.rstrip("/") == PRODUCTS or path.startswith(PRODUCTS + "/{")) or path.count("/") > 2:
            continue
        for method in WRITE_METHODS:
            operation = (operations or {}).get(method)
            if not isinstance(operation, dict):
                continue
            inputs = tuple(operation_fields(openapi, operation))
            json_body = "application/json" in ((operation.get("requestBody") or {}).get("content") or {})
            if not inputs and not json_body:
                continue
            schema = {"properties": {f.name: f.schema for f in inputs}, "required": [f.name for f in inputs if f.required]}
            found.append(WriteEndpoint(method, path, schema, inputs))
    return sorted(found, key=lambda e: ("{" in e.template, WRITE_METHODS.index(e.method)))


def _sample(schema: dict[str, Any], openapi: dict[str, Any], name: str, token: str, number: float) -> Any:
    schema = resolve(schema, openapi)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        typed = [o for o in options if resolve(o, openapi).get("type") != "null"]
        schema = resolve(typed[0] if typed else options[0], openapi)
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "string":
        return token if "desc" not in name.lower() else f"{token} description"
    if kind == "integer":
        return int(number)
    if kind == "number":
        return number
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {p: _sample(s, openapi, p, token, number) for p, s in (schema.get("properties") or {}).items()
                if p in schema.get("required", [])}
    return token


def sample_body(schema: dict[str, Any], openapi: dict[str, Any], token: str, number: float) -> dict[str, Any]:
    """A body with every field of the schema (required or not, except ids), strings set to `token`, numbers to
    `number`: the product written is recognisable in any later listing."""
    properties = (schema.get("properties") or {})
    return {p: _sample(s, openapi, p, token, number) for p, s in properties.items()
            if p.lower() != "id" or p in schema.get("required", [])}


def _fill_path(template: str, products: list[Any]) -> str | None:
    """/products/{id} with the id of a product the listing showed, or None when it shows none."""
    if "{" not in template:
        return template
    ids = [p.get("id") for p in products if isinstance(p, dict) and p.get("id") is not None]
    if not ids:
        return None
    head, _, rest = template.partition("{")
    return head + str(ids[0]) + rest.partition("}")[2]


@check("cache.invalidation", title="After a product is written, GET /products shows the new data",
       level="advanced", requires=("cache.populates",),
       requirement="`POST /products` and `PUT`/`PATCH /products/{id}` delete (or rewrite) the cached list, so the next `GET /products` shows the change")
@points_at("POST /products*", "PUT /products*", "PATCH /products*", "delete", "unlink")
async def invalidation(ctx: CheckContext) -> CheckOutcome:
    endpoints = write_endpoints(ctx.openapi)
    if not endpoints:
        return skipped(f"the app has no write endpoint under {PRODUCTS} (POST {PRODUCTS}, PUT/PATCH "
                       f"{PRODUCTS}/{{id}} taking a product in /openapi.json), so there is nothing to invalidate",
                       applicable=False)
    client = ctx.probe.client()
    populated = await populate(ctx, client)
    if populated.key is None:
        return not_populated(populated)
    products = product_list(populated.reply.body) or []
    token = f"rg-new-{uuid.uuid4().hex[:8]}"
    number = float(700_000 + uuid.uuid4().int % 100_000) + 0.5
    attempts: list[Reply] = []
    written = None
    for endpoint in endpoints:
        path = _fill_path(endpoint.template, products)
        if path is None:
            continue
        body = sample_body(endpoint.schema, ctx.openapi, token, number)
        with ctx.trace.recording() as during_write:
            reply = await client.request(endpoint.method.upper(), path, **request_parts(endpoint.inputs, body))
        attempts.append(reply)
        write_commands = [c for c in during_write if client.ip not in " ".join(c.args)]  # not the limiter's
        if reply.ok:
            written = (endpoint, path, body)
            break
    if written is None:
        evidence = {"requests": requests_text(attempts), "bodies": [a.text[:200] for a in attempts]}
        crashed = [a for a in attempts if a.status is not None and a.status >= 500]
        if crashed:
            return failed(f"writing a product failed: {crashed[0]}", **evidence)
        tried = ", ".join(f"{e.method.upper()} {e.template}" for e in endpoints)
        return error(f"the harness could not write a product through {tried}", **evidence)
    endpoint, path, body = written
    key = populated.key

    def shows(reply: Reply) -> bool:
        # The written strings, or its number when the schema has no string field (an integer field gets it cut).
        return token in reply.text or str(int(number)) in reply.text

    with ctx.trace.recording() as after_write:
        after = await client.get(PRODUCTS)
        if after.ok and not shows(after):
            # A background task may still be invalidating; a stale cache stays stale for a minute, not 300 ms.
            await asyncio.sleep(0.3)
            after = await client.get(PRODUCTS)
    evidence = {
        "key": populated.key,
        "requests": requests_text([populated.reply, *attempts, after]),
        "written": body,
        "redis_during_write": commands_text(write_commands) or ["(no command)"],
        "redis_after_write": commands_text(after_write),
    }
    if not after.ok:
        return failed(f"after {endpoint.method.upper()} {path}, GET {PRODUCTS} answered {after.status or after.error}",
                      **evidence)
    if shows(after):
        return passed(f"after {endpoint.method.upper()} {path}, GET {PRODUCTS} showed the new product", **evidence)
    return failed(
        f"after {endpoint.method.upper()} {path} was accepted ({attempts[-1].status}), GET {PRODUCTS} still served "
        f"the old list from '{key}': {mismatch(write_commands, key)}",
        **evidence,
    )


def mismatch(commands: list[Command], key: str) -> str:
    """Why the write left the cached list in place, from the write request's own Redis commands."""
    removed = [c for c in commands if c.name in REMOVALS]
    if not commands:
        return "the write sent Redis nothing, so the cached list was not deleted or refreshed"
    if not removed:
        return (f"the write sent {', '.join(sorted({c.name for c in commands}))} but deleted no key; delete "
                f"'{key}' (or write the fresh list to it)")
    named = sorted({k for c in removed for k in c.args})
    if key in named:
        return f"the write deleted '{key}', but the next GET served the old list again (was it cached again?)"
    shown = "; ".join(str(c) for c in removed[:3])
    return f"the write sent {shown} while the cache key is '{key}'"
