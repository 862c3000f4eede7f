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
    VirtualClient,
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

WRITE_METHODS = ("post", "put", "patch", "delete")  # in the order they are tried
REMOVALS = {"DEL", "UNLINK", "EXPIRE", "PEXPIRE", "GETDEL"}


@dataclass
class WriteEndpoint:
    method: str
    template: str  # the OpenAPI path, e.g. /products/{product_id}
    schema: dict[str, Any]  # its inputs as one object schema (properties, required)
    inputs: tuple[Field, ...] = ()  # where each input travels: a JSON body, the query string, a form


def write_endpoints(openapi: dict[str, Any]) -> list[WriteEndpoint]:
    """POST /products first (it needs no id), then PUT/PATCH /products/{id}, each with the inputs it declares (a
    JSON body, form fields or query parameters), and DELETE /products/{id} last (it needs none)."""
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
            if method == "delete":
                if "{" not in path or any(f.required for f in inputs) or json_body:
                    continue  # a DELETE of the whole list, or one that needs more than the id
            elif not inputs and not json_body:
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


def _product_id(products: list[Any], endpoint: WriteEndpoint, earlier: list[Write]) -> Any:
    """The id of the product to write through `endpoint`, from the listing; None when it shows none. A DELETE takes
    the product the check's POST made, when the listing shows it (else the last one): the app's own data stays
    whole."""
    listed = [p for p in products if isinstance(p, dict) and p.get("id") is not None]
    if endpoint.method == "delete":
        made = [p for p in listed if any(w.token in str(p) for w in earlier if w.endpoint.method == "post")]
        listed = made or listed[::-1]
    return listed[0].get("id") if listed else None


def _fill_path(template: str, product_id: Any) -> str | None:
    """/products/{id} with `product_id` (None when a path needs one and there is none)."""
    if "{" not in template:
        return template
    if product_id is None:
        return None
    head, _, rest = template.partition("{")
    return head + str(product_id) + rest.partition("}")[2]


@dataclass
class Write:
    """One write through the API and what the next GET /products showed."""

    endpoint: WriteEndpoint
    path: str
    body: dict[str, Any]
    reply: Reply
    commands: list[Command]  # the write request's own Redis commands (not the limiter's)
    token: str
    number: float
    after: Reply | None = None  # GET /products after it (None: the write was not accepted)
    after_commands: list[Command] | None = None
    removed: Any = None  # a DELETE's product id

    @property
    def label(self) -> str:
        return f"{self.endpoint.method.upper()} {self.path}"

    def shows(self, reply: Reply) -> bool:
        """Whether `reply` (a GET /products) shows this write: a deleted product is gone; a written one is there,
        by its strings, or by its number when the schema has no string field (an integer field gets it cut)."""
        if self.endpoint.method == "delete":
            return not any(isinstance(p, dict) and p.get("id") == self.removed for p in product_list(reply.body) or [])
        return self.token in reply.text or str(int(self.number)) in reply.text


async def _write(ctx: CheckContext, client: VirtualClient, endpoint: WriteEndpoint, products: list[Any],
                 earlier: list[Write]) -> Write | None:
    """Writes (or deletes) a product through `endpoint` (strings and numbers recognisable later); None when its path
    needs an id and the listing showed none. When accepted, GET /products follows."""
    product_id = _product_id(products, endpoint, earlier)
    path = _fill_path(endpoint.template, product_id)
    if path is None:
        return None
    token = f"rg-new-{uuid.uuid4().hex[:8]}"
    number = float(700_000 + uuid.uuid4().int % 100_000) + 0.5
    body = sample_body(endpoint.schema, ctx.openapi, token, number) if endpoint.method != "delete" else {}
    with ctx.trace.recording() as during_write:
        reply = await client.request(endpoint.method.upper(), path, **request_parts(endpoint.inputs, body))
    commands = [c for c in during_write if client.ip not in " ".join(c.args)]  # not the limiter's
    write = Write(endpoint, path, body, reply, commands, token, number, removed=product_id)
    if reply.ok:
        with ctx.trace.recording() as after_write:
            after = await client.get(PRODUCTS)
            if after.ok and not write.shows(after):
                # A background task may still be invalidating; a stale cache stays stale for a minute, not 300 ms.
                await asyncio.sleep(0.3)
                after = await client.get(PRODUCTS)
        write.after, write.after_commands = after, list(after_write)
    return write


@check("cache.invalidation", title="After a product is written, GET /products shows the new data",
       level="advanced", requires=("cache.populates",),
       requirement="`POST /products`, `PUT`/`PATCH /products/{id}` and `DELETE /products/{id}` delete (or rewrite) the cached list, so the next `GET /products` shows the change")
@points_at("POST /products*", "PUT /products*", "PATCH /products*", "DELETE /products*", "delete", "unlink")
async def invalidation(ctx: CheckContext) -> CheckOutcome:
    """Every write route the app declares (POST /products, PUT, PATCH and DELETE /products/{id}) is tried in turn,
    each with the list cached in Redis just before it: one that leaves the cached list stale fails the check."""
    endpoints = write_endpoints(ctx.openapi)
    if not endpoints:
        return skipped(f"the app has no write endpoint under {PRODUCTS} (POST {PRODUCTS}, PUT/PATCH "
                       f"{PRODUCTS}/{{id}} taking a product, DELETE {PRODUCTS}/{{id}} in /openapi.json), so there is "
                       "nothing to invalidate",
                       applicable=False)
    client = ctx.probe.client()
    populated = await populate(ctx, client)
    if populated.key is None:
        return not_populated(populated)
    key = populated.key
    listing = populated.reply
    writes: list[Write] = []
    for endpoint in endpoints:
        if writes and writes[-1].after is not None:
            listing = writes[-1].after  # the GET after the last write cached the list again (cache-aside)
            if not await ctx.redis.exists(key):
                listing = await client.get(PRODUCTS)
        write = await _write(ctx, client, endpoint, product_list(listing.body) or [], writes)
        if write is None:
            continue
        writes.append(write)
        if write.after is not None and (not write.after.ok or not write.shows(write.after)):
            return _stale(write, key, populated.reply, writes)
    accepted = [w for w in writes if w.after is not None]
    if not accepted:
        return _no_write(endpoints, writes)
    return passed(f"after {' and '.join(w.label for w in accepted)}, GET {PRODUCTS} showed the change each time",
                  **_evidence(key, populated.reply, writes))


def _evidence(key: str, first: Reply, writes: list[Write]) -> dict[str, Any]:
    last = writes[-1]
    replies = [first, *(r for w in writes for r in (w.reply, w.after) if r is not None)]
    return {
        "key": key,
        "requests": requests_text(replies),
        "written": last.body,
        "redis_during_write": commands_text(last.commands) or ["(no command)"],
        "redis_after_write": commands_text(last.after_commands or []),
    }


def _stale(write: Write, key: str, first: Reply, writes: list[Write]) -> CheckOutcome:
    assert write.after is not None
    evidence = _evidence(key, first, writes)
    if not write.after.ok:
        return failed(f"after {write.label}, GET {PRODUCTS} answered {write.after.status or write.after.error}",
                      **evidence)
    return failed(f"after {write.label} was accepted ({write.reply.status}), GET {PRODUCTS} still served the old "
                  f"list from '{key}': {mismatch(write.commands, key)}", **evidence)


def _no_write(endpoints: list[WriteEndpoint], writes: list[Write]) -> CheckOutcome:
    attempts = [w.reply for w in writes]
    evidence = {"requests": requests_text(attempts), "bodies": [a.text[:200] for a in attempts]}
    crashed = [a for a in attempts if a.status is not None and a.status >= 500]
    if crashed:
        return failed(f"writing a product failed: {crashed[0]}", **evidence)
    tried = ", ".join(f"{e.method.upper()} {e.template}" for e in endpoints)
    return error(f"the harness could not write a product through {tried}", **evidence)


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
