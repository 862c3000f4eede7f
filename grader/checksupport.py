"""Small helpers the checks share (check authors import them from grader.api): reading Redis the way a
student's code may have written it, and turning requests and commands into evidence a student can read."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from grader.openapi import resolve
from grader.outcome import CheckOutcome, Outcome
from grader.probe import Reply, VirtualClient
from grader.proxy import Command
from grader.static.snippet import code_evidence
from grader.text import first_items, more_text

# Command families, matched case-insensitively on the name the proxy recorded (redis-py 8 sends incr() as INCRBY).
WRITES = {"SET", "SETEX", "PSETEX", "SETNX", "MSET", "GETSET", "GETEX", "HSET", "HMSET", "HSETNX", "LPUSH", "RPUSH",
          "ZADD", "ZINCRBY", "SADD", "INCR", "INCRBY", "INCRBYFLOAT", "DECR", "DECRBY", "APPEND", "JSON.SET",
          "RESTORE", "COPY", "RENAME"}
SCRIPTS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"}
EXPIRES = {"EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"}
MAX_EVIDENCE = 25


def commands_text(commands: Iterable[Command], limit: int = MAX_EVIDENCE) -> list[str]:
    return first_items([str(c) + (f"  -> {c.reply}" if c.reply else "") for c in commands], limit)


def requests_text(replies: Iterable[Reply], limit: int = MAX_EVIDENCE) -> list[str]:
    return first_items([str(r) for r in replies], limit)


def keys_of(command: Command) -> list[str]:
    """The keys a command names: the first argument, or the declared keys of a script call."""
    if command.name in SCRIPTS:
        if len(command.args) >= 2 and command.args[1].isdigit():
            return list(command.args[2 : 2 + int(command.args[1])])
        return []
    if command.name == "MSET":
        return list(command.args[::2])
    return [command.args[0]] if command.args else []


def writes_to(commands: Iterable[Command], key: str) -> list[Command]:
    """Commands that (may) write `key`: plain writes of it, and scripts that declare it."""
    return [c for c in commands if (c.name in WRITES or c.name in SCRIPTS) and key in keys_of(c)]


async def all_keys(r: redis.asyncio.Redis) -> list[str]:
    return sorted([key async for key in r.scan_iter(count=1000)])


async def raw_value(r: redis.asyncio.Redis, key: str) -> bytes | None:
    """A string key's bytes as stored: a pickle or a compressed value is evidence, never a decoding error."""
    return await r.execute_command("GET", key, NEVER_DECODE=True)


def shown_bytes(raw: bytes, limit: int = 120) -> str:
    """A stored value for the evidence: its text when it is text, else what it is and its first bytes."""
    try:
        return raw.decode("utf-8")[:limit]
    except UnicodeDecodeError:
        kind = "a pickle" if raw[:1] == b"\x80" else "binary data"
        return f"{kind} of {len(raw)} bytes: {raw[:limit // 2]!r}"


async def value_text(r: redis.asyncio.Redis, key: str) -> str:
    """A key's content as text whatever its type (binary parts decoded leniently), for looking for known strings."""
    kind = await r.type(key)
    commands = {"string": ("GET",), "hash": ("HGETALL",), "list": ("LRANGE", 0, -1), "set": ("SMEMBERS",),
                "zset": ("ZRANGE", 0, -1)}
    if kind not in commands:
        return ""
    name, *rest = commands[kind]
    # Raw bytes on the wire (cashews and pickle-based caches store binary values): never a UnicodeDecodeError.
    raw = await r.execute_command(name, key, *rest, NEVER_DECODE=True)
    parts: list[Any] = [raw] if not isinstance(raw, (list, set, dict)) else (
        [x for pair in raw.items() for x in pair] if isinstance(raw, dict) else list(raw))
    return " ".join(p.decode("utf-8", errors="replace") if isinstance(p, bytes) else str(p)
                    for p in parts if p is not None)


def strings_in(value: Any) -> list[str]:
    """Every string found in a JSON value, in order (names of products, users...)."""
    found: list[str] = []
    if isinstance(value, str):
        found.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(strings_in(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(strings_in(item))
    return found


async def burst(client: VirtualClient, path: str, count: int) -> list[Reply]:
    """`count` requests one after another from one client."""
    return [await client.get(path) for _ in range(count)]


def crossed_minute(started: float) -> bool:
    """Some limiters key their window on the clock minute (…:{now//60}): a burst that straddles a minute
    boundary resets mid-burst. Such a burst proves nothing and is repeated from a fresh address."""
    return int(started // 60) != int(time.time() // 60)


def first_status(replies: Sequence[Reply], status: int) -> int | None:
    """1-based position of the first reply with `status`, or None."""
    return next((i for i, r in enumerate(replies, 1) if r.status == status), None)


# ---- Requests built from what the app's /openapi.json declares -------------------------------------------

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass(frozen=True)
class Field:
    """One input of a route: where it travels (a JSON body, the query string, a form) and its schema."""

    name: str
    where: str  # "json" | "query" | "form"
    schema: dict[str, Any]
    required: bool


def openapi_operation(openapi: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    """The operation `method path` as the app declares it, with or without a trailing slash (a router's "/")."""
    paths = openapi.get("paths") or {}
    for candidate in (path, path.rstrip("/") + "/", path.rstrip("/") or "/"):
        operation = (paths.get(candidate) or {}).get(method.lower())
        if isinstance(operation, dict):
            return operation
    return None


def operation_fields(openapi: dict[str, Any], operation: dict[str, Any]) -> list[Field]:
    """Every input of an operation: its JSON body's properties, its form fields, its query parameters."""
    fields: list[Field] = []
    content = (operation.get("requestBody") or {}).get("content") or {}
    for media, where in (("application/json", "json"), *((t, "form") for t in FORM_TYPES)):
        if media not in content:
            continue
        body = resolve((content[media] or {}).get("schema"), openapi)
        required = set(body.get("required") or [])
        fields += [Field(name, where, resolve(prop, openapi), name in required)
                   for name, prop in (body.get("properties") or {}).items()]
        break
    for parameter in operation.get("parameters") or []:
        parameter = resolve(parameter, openapi) if "$ref" in parameter else parameter
        if parameter.get("in") == "query":
            fields.append(Field(parameter["name"], "query", resolve(parameter.get("schema"), openapi),
                                bool(parameter.get("required"))))
    return fields


def request_parts(fields: Sequence[Field], values: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments sending `values` where the fields travel: json=..., params=..., data=...
    A value named by no field goes into the JSON body (what a route without a schema most likely reads)."""
    where = {f.name: f.where for f in fields}
    parts: dict[str, dict[str, Any]] = {}
    for name, value in values.items():
        parts.setdefault(where.get(name, "json"), {})[name] = value
    keyword = {"json": "json", "query": "params", "form": "data"}
    return {keyword[w]: v for w, v in parts.items()}


def declared_routes(openapi: dict[str, Any]) -> list[str]:
    """'GET /products', 'POST /score'... as the app's /openapi.json lists them."""
    return [f"{method.upper()} {path}" for path, operations in (openapi.get("paths") or {}).items()
            for method in (operations or {}) if method in ("get", "post", "put", "patch", "delete")]


def missing_route(openapi: dict[str, Any], method: str, path: str) -> str | None:
    """'GET /products is not a route; the app has: ...' when the app's /openapi.json lists routes but not this one;
    None when it has the route or publishes no schema (then nothing can be said)."""
    if not openapi.get("paths") or openapi_operation(openapi, method, path) is not None:
        return None
    routes = declared_routes(openapi)
    shown = ", ".join(routes[:12]) + (f" ({more_text(len(routes) - 12)})" if len(routes) > 12 else "")
    return f"{method.upper()} {path} is not a route; the app has: {shown or '(none)'}"


# ---- Evidence that points at the code ---------------------------------------------------------------------


def points_at(*names: str) -> Callable[[Callable[..., Awaitable[CheckOutcome]]], Callable[..., Awaitable[CheckOutcome]]]:
    """Put under @check: a failure gets `where` evidence, 'file.py:N: <source line>' for the Redis calls and routes
    named ("zadd", "GET /top"; see StaticFacts.located), which the reports and the CI annotations show on the line.
    A name ending in '*' matches every route that starts with it ("POST /products*")."""

    def decorate(func: Callable[..., Awaitable[CheckOutcome]]) -> Callable[..., Awaitable[CheckOutcome]]:
        @functools.wraps(func)
        async def located(ctx: Any) -> CheckOutcome:
            outcome = await func(ctx)
            if outcome.outcome == Outcome.FAILED and "where" not in outcome.evidence:
                wanted = [r for n in names if n.endswith("*") for r in ctx.facts.routes if r.startswith(n[:-1])]
                where = ctx.facts.located(*[n for n in names if not n.endswith("*")], *wanted)
                if where:
                    outcome.evidence = {"where": where, **outcome.evidence,
                                        **code_evidence(ctx.workspace.root, where)}
            return outcome

        return located

    return decorate
