"""GET /products is cached in Redis (cache-aside) with a 60-second TTL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from checks.support import (
    SCRIPTS,
    WRITES,
    all_keys,
    commands_text,
    keys_of,
    requests_text,
    strings_in,
    value_text,
    writes_to,
)
from grader.checking import CheckContext, check
from grader.outcome import CheckOutcome, error, failed, passed, skipped
from grader.probe import Reply, VirtualClient
from grader.proxy import Command

PRODUCTS = "/products"
TTL_SECONDS = 60
# Right after the write the TTL must read 55-60 s: generous below for a slow machine, exact above.
TTL_LOWEST_MS = 55_000
TTL_HIGHEST_MS = 60_000


@dataclass
class Populated:
    reply: Reply
    commands: list[Command]
    key: str | None  # the key that holds the list, found by its content
    candidates: list[str]


def product_list(body: Any) -> list[Any] | None:
    """The products in a /products answer: a list, or the one list inside an object ({"items": [...]})."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        lists = [v for v in body.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


async def populate(ctx: CheckContext, client: VirtualClient) -> Populated:
    """First GET /products on an empty Redis; find the key that now holds the list.

    Keys are never assumed: the list's key is the one whose content carries the product names the response
    showed (JSON, pickle or a wrapper all keep the strings), ignoring the limiter's keys (they name the client).
    """
    mark = ctx.proxy.trace.mark()
    reply = await client.get(PRODUCTS)
    commands = ctx.proxy.trace.since(mark)
    products = product_list(reply.body) or []
    markers = [s for s in strings_in(products) if len(s) >= 3][:5]
    candidates = [k for k in await all_keys(ctx.redis) if client.ip not in k]
    key = None
    for candidate in candidates:
        text = await value_text(ctx.redis, candidate)
        # JSON written with ensure_ascii escapes non-ASCII names: accept either spelling.
        if markers and all(m in text or json.dumps(m)[1:-1] in text for m in markers[:3]):
            key = candidate
            break
    return Populated(reply, commands, key, candidates)


def _not_populated(populated: Populated) -> CheckOutcome:
    reply = populated.reply
    if not reply.ok or product_list(reply.body) is None:
        return failed(
            f"GET {PRODUCTS} answered {reply.status if reply.error is None else reply.error}, expected 200 with the "
            "product list",
            requests=[str(reply)], body=reply.text[:300],
        )
    return failed(
        f"after the first GET {PRODUCTS} no Redis key holds the product list: the response was not cached",
        requests=[str(reply)],
        redis=commands_text(populated.commands) or ["(no command)"],
        keys_in_redis=populated.candidates,
    )


@check("cache.populates", title="The first GET /products writes the list to one Redis key", level="basic",
       requires=("app.uses_redis_url",))
async def populates(ctx: CheckContext) -> CheckOutcome:
    populated = await populate(ctx, ctx.probe.client())
    if populated.key is None:
        return _not_populated(populated)
    writes = writes_to(populated.commands, populated.key)
    return passed(
        f"the first GET {PRODUCTS} cached the list in Redis key '{populated.key}'",
        key=populated.key, redis=commands_text(writes or populated.commands, limit=5),
    )


@check("cache.ttl", title="The cached list expires after 60 seconds", level="basic",
       requires=("app.uses_redis_url",))
async def ttl(ctx: CheckContext) -> CheckOutcome:
    populated = await populate(ctx, ctx.probe.client())
    if populated.key is None:
        return _not_populated(populated)
    return await _judge_ttl(ctx, populated, "right after the first write")


async def _judge_ttl(ctx: CheckContext, populated: Populated, when: str) -> CheckOutcome:
    key = populated.key
    assert key is not None
    pttl = await ctx.redis.pttl(key)
    evidence = {"key": key, "pttl_ms": pttl, "redis": commands_text(writes_to(populated.commands, key) or populated.commands, limit=8)}
    if pttl == -1:
        return failed(f"cache key '{key}' has no TTL {when} (TTL -1): it never expires, so stale data stays forever",
                      **evidence)
    if TTL_LOWEST_MS <= pttl <= TTL_HIGHEST_MS:
        return passed(f"cache key '{key}' has TTL {pttl / 1000:.1f} s {when}", **evidence)
    return failed(f"cache key '{key}' has TTL {pttl / 1000:.1f} s {when}, expected {TTL_SECONDS} s", **evidence)


def _rewritten(raw: str, token: str) -> str | None:
    """The cached JSON with one product string replaced by `token`, or None when the value is not plain JSON."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None

    def replace_first(node: Any) -> bool:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            if isinstance(v, str) and len(v) >= 3:
                node[k] = token
                return True
            if replace_first(v):
                return True
        return False

    return json.dumps(value) if replace_first(value) else None


@check("cache.serves_from_cache", title="A repeated GET /products is served from Redis", level="basic",
       requires=("app.uses_redis_url",))
async def serves_from_cache(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    populated = await populate(ctx, client)
    if populated.key is None:
        return _not_populated(populated)
    key = populated.key
    token = f"rg-cached-{uuid.uuid4().hex[:8]}"
    raw = await ctx.redis.get(key) if await ctx.redis.type(key) == "string" else None
    changed = _rewritten(raw, token) if raw is not None else None
    if changed is not None:
        # The harness edits the cached value in place (keeping its TTL): a response served from Redis shows it.
        await ctx.redis.set(key, changed, keepttl=True)
    mark = ctx.proxy.trace.mark()
    again = await client.get(PRODUCTS)
    commands = ctx.proxy.trace.since(mark)
    rewrites = writes_to(commands, key)
    reads = [c for c in commands if key in c.args]
    evidence = {"key": key, "requests": requests_text([populated.reply, again]), "redis": commands_text(commands)}
    if not again.ok:
        return failed(f"the repeated GET {PRODUCTS} answered {again.status or again.error}", **evidence)
    if changed is not None:
        if token in again.text:
            return passed(f"the repeated GET {PRODUCTS} returned the value the harness put in '{key}'", **evidence)
        return failed(
            f"the repeated GET {PRODUCTS} did not return what Redis holds in '{key}' (the harness changed it): it was "
            "served from the database" + (", and the list was written to Redis again" if rewrites else ""),
            **evidence,
        )
    # Not plain JSON (pickle, compressed, wrapped): prove the hit by the trace instead.
    if reads and not rewrites:
        return passed(f"the repeated GET {PRODUCTS} read '{key}' and wrote nothing (served from Redis)", **evidence)
    return failed(
        f"the repeated GET {PRODUCTS} " + ("wrote the list to Redis again: it came from the database" if rewrites
                                          else f"never read '{key}'"),
        **evidence,
    )


@check("cache.refill_after_expiry", title="After the cached list expires, the next GET /products refills it",
       level="basic", requires=("app.uses_redis_url",))
async def refill_after_expiry(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    populated = await populate(ctx, client)
    if populated.key is None:
        return _not_populated(populated)
    key = populated.key
    await ctx.redis.pexpire(key, 1)  # the harness lets the key expire now instead of waiting a minute
    for _ in range(100):
        if not await ctx.redis.exists(key):
            break
        await asyncio.sleep(0.01)
    mark = ctx.proxy.trace.mark()
    again = await client.get(PRODUCTS)
    refill = Populated(again, ctx.proxy.trace.since(mark), key, [])
    if not again.ok:
        return failed(f"after the cache expired, GET {PRODUCTS} answered {again.status or again.error}",
                      requests=[str(again)], body=again.text[:300])
    if not await ctx.redis.exists(key):
        return failed(f"after '{key}' expired, the next GET {PRODUCTS} did not write it again",
                      requests=[str(again)], redis=commands_text(refill.commands) or ["(no command)"])
    return await _judge_ttl(ctx, refill, "after it expired and was refilled")


# ---- Advanced: stampede -----------------------------------------------------------------------------------

STREAM_RATE = 100.0  # requests per second, the steady stream the course text describes
PER_CLIENT = 8  # requests per virtual client: below the limiter's 10 a minute, so no stream request is refused
LEAD_IN_S = 0.3  # traffic before the harness shortens the key's life
TAIL_S = 1.0  # traffic after the key's shortened life ran out
MAX_WRITES = 3  # value writes tolerated per expiry (XFetch recomputes early, and sometimes twice or thrice)
# The best of up to this many expiries counts: XFetch's early recomputations have a long tail (with beta 1
# about a quarter of expiries see 4+ writes, more on a loaded machine), a lock or no protection do not vary.
EXPIRIES = 5
# How long the harness leaves the key to live once traffic flows, scaled by how long the app takes to load
# the database: XFetch recomputes inside the last beta*delta*ln(rate*beta*delta) seconds (delta = load time),
# so it must get a gradual run-up to the expiry, as it would at the end of a real 60 s TTL.
SHORT_LIFE_MIN_S = 2.0
SHORT_LIFE_MAX_S = 5.0
SHORT_LIFE_PER_LOAD_S = 25.0
EXPIRY_FIELD_WINDOW_S = (30.0, 70.0)  # an absolute expiry stored in the value lies this far ahead of now
# A pause in the harness's own stream right where the key expires lets one request reload the list before
# the next one arrives, so an unprotected app would look protected: such an expiry is not counted.
MAX_STREAM_GAP_S = 0.06
CRITICAL_BEFORE_S = 0.1
CRITICAL_AFTER_S = 0.4
MAX_EXPIRIES = 10  # stalled expiries included


@dataclass
class Expiry:
    life_s: float
    writes: list[Command]
    replies: list[Reply]
    metadata: str | None  # what the harness rewrote inside the value, if anything
    max_gap_s: float  # the longest pause in the stream around the expiry (the harness's own stall)
    misses: int  # the app's reads of the key that found it missing
    early: int  # value writes before the key's shortened life ran out (XFetch recomputing ahead)

    @property
    def valid(self) -> bool:
        # A stream that paused around the expiry proves nothing either way (a pause longer than the database
        # load lets one request refill the key with nobody else missing it): such an expiry is repeated.
        return self.max_gap_s <= MAX_STREAM_GAP_S

    def summary(self) -> str:
        return (f"{len(self.writes)} writes ({self.early} before expiry), {self.misses} reads found it missing, "
                f"{len(self.replies)} requests, longest pause {self.max_gap_s * 1000:.0f} ms"
                + ("" if self.valid else " (the harness's stream stalled at the expiry: not counted)"))


def _is_value_write(command: Command, key: str, markers: list[str]) -> bool:
    """A write of the cached list itself - not a lock (SET NX, or another key) and not a read-only script.

    The list's own strings (product names) travel in every write of the value, whatever its wrapper; when
    none are known (compressed values), any plain write of the key without NX counts."""
    if command.dropped or key not in keys_of(command):
        return False
    if command.name not in WRITES and command.name not in SCRIPTS:
        return False
    if markers:
        return any(m in arg or json.dumps(m)[1:-1] in arg for arg in command.args for m in markers)
    return command.name in WRITES and "NX" not in (a.upper() for a in command.args[1:])


def _shorten_metadata(raw: str, life_s: float) -> tuple[str, str] | None:
    """XFetch may keep its own expiry time inside the value ({"value": ..., "expiry": <unix time>}): then
    a shorter Redis TTL alone would make the key vanish while the app still believes it has a minute left.
    Any top-level number that looks like an absolute expiry about a minute ahead (seconds or milliseconds)
    is moved to `life_s` from now. Returns (new value, what changed), or None when nothing looks like one."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    now = time.time()
    low, high = EXPIRY_FIELD_WINDOW_S
    changed = []
    for name, field_value in value.items():
        if isinstance(field_value, bool) or not isinstance(field_value, (int, float)):
            continue
        for scale in (1.0, 1000.0):
            ahead = field_value / scale - now
            if low <= ahead <= high:
                new = (now + life_s) * scale
                value[name] = int(new) if isinstance(field_value, int) else new
                changed.append(f"{name}: {field_value} -> {value[name]}")
                break
    return (json.dumps(value), ", ".join(changed)) if changed else None


class _Stream:
    """~STREAM_RATE requests a second on a fixed schedule (open loop: a slow app does not slow the stream
    down) until `stop_at`, each virtual client sending at most PER_CLIENT; remembers when each was sent."""

    def __init__(self, ctx: CheckContext):
        self.ctx = ctx
        self.stop_at = float("inf")
        self.sent: list[float] = []

    async def run(self) -> list[Reply]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: list[asyncio.Task[Reply]] = []
        client = self.ctx.probe.client()
        n = 0
        while (due := start + n / STREAM_RATE) < self.stop_at:
            if n and n % PER_CLIENT == 0:
                client = self.ctx.probe.client()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            self.sent.append(loop.time())
            tasks.append(asyncio.create_task(client.get(PRODUCTS)))
            n += 1
        return list(await asyncio.gather(*tasks))

    def max_gap(self, begin: float, end: float) -> float:
        times = [t for t in self.sent if begin <= t <= end]
        if len(times) < 2:
            return end - begin
        return max(b - a for a, b in zip([begin, *times], [*times, end]))


async def _one_expiry(ctx: CheckContext, key: str, markers: list[str], life_s: float) -> Expiry:
    """Traffic flows; the harness shortens the key's life to `life_s`; traffic goes on until TAIL_S after it."""
    loop = asyncio.get_running_loop()
    stream = _Stream(ctx)
    task = asyncio.create_task(stream.run())
    await asyncio.sleep(LEAD_IN_S)
    mark = ctx.proxy.trace.mark()
    metadata = None
    raw = await ctx.redis.get(key) if await ctx.redis.type(key) == "string" else None
    shortened = _shorten_metadata(raw, life_s) if raw is not None else None
    if shortened is not None:
        await ctx.redis.set(key, shortened[0], px=int(life_s * 1000))
        metadata = shortened[1]
    else:
        await ctx.redis.pexpire(key, int(life_s * 1000))
    expires_at = loop.time() + life_s
    stream.stop_at = expires_at + TAIL_S
    replies = await task
    commands = ctx.proxy.trace.since(mark)
    writes = [c for c in commands if _is_value_write(c, key, markers)]
    misses = sum(1 for c in commands if c.name in ("GET", "GETEX", "HGETALL", "MGET") and key in c.args
                 and c.reply in ("nil", "_", "%0", "*0"))
    gap = stream.max_gap(expires_at - CRITICAL_BEFORE_S, expires_at + CRITICAL_AFTER_S)
    early = sum(1 for c in writes if c.time < expires_at)
    return Expiry(life_s, writes, replies, metadata, gap, misses, early)


@check("cache.stampede", title="A burst across the cache expiry loads the database about once", level="advanced",
       requires=("app.uses_redis_url",), timeout=120.0)
async def stampede(ctx: CheckContext) -> CheckOutcome:
    populated = await populate(ctx, ctx.probe.client())
    if populated.key is None:
        return _not_populated(populated)
    key = populated.key
    markers = [s for s in strings_in(product_list(populated.reply.body) or []) if len(s) >= 3][:3]
    # The first GET loaded the database: its time bounds the app's load time (XFetch's delta).
    life_s = min(SHORT_LIFE_MAX_S, max(SHORT_LIFE_MIN_S, SHORT_LIFE_PER_LOAD_S * populated.reply.elapsed))
    expiries: list[Expiry] = []
    for _ in range(MAX_EXPIRIES):
        if not await ctx.redis.exists(key):
            await ctx.probe.client().get(PRODUCTS)  # refill, so every expiry starts from a warm key
        expiry = await _one_expiry(ctx, key, markers, life_s)
        expiries.append(expiry)
        counted = [e for e in expiries if e.valid]
        if (expiry.valid and len(expiry.writes) <= MAX_WRITES) or len(counted) >= EXPIRIES:
            break
    counted = [e for e in expiries if e.valid]
    if not counted:
        return error(f"the harness could not keep a steady stream of requests across the expiry (paused up to "
                     f"{max(e.max_gap_s for e in expiries) * 1000:.0f} ms): the machine is too busy to judge this",
                     expiries=[e.summary() for e in expiries])
    best = min(counted, key=lambda e: len(e.writes))
    counts = [len(e.writes) for e in counted]
    statuses: dict[str, int] = {}
    for r in best.replies:
        seen = str(r.status) if r.error is None else "no answer"
        statuses[seen] = statuses.get(seen, 0) + 1
    evidence: dict[str, object] = {
        "key": key,
        "value_writes_per_expiry": counts,
        "tolerated": MAX_WRITES,
        "key_life_s": round(life_s, 2),
        "stream": f"{STREAM_RATE:g} req/s, {len(best.replies)} requests, {PER_CLIENT} per client",
        "statuses": statuses,
        "writes": commands_text(best.writes, limit=12),
        "expiries": [e.summary() for e in expiries],
    }
    if best.metadata:
        evidence["expiry_in_value_moved"] = best.metadata
    failures = [r for r in best.replies if not r.ok]
    if best.replies and len(failures) > len(best.replies) // 10:
        return failed(f"during the stream across the expiry {len(failures)} of {len(best.replies)} GET {PRODUCTS} "
                      f"failed ({failures[0]})", **evidence)
    if len(best.writes) <= MAX_WRITES:
        return passed(f"with ~{STREAM_RATE:g} req/s flowing across the expiry of '{key}', the list was written "
                      f"{len(best.writes)} time(s): the database was loaded about once", **evidence)
    return failed(
        f"with ~{STREAM_RATE:g} req/s flowing across the expiry of '{key}', the list was written "
        f"{' / '.join(map(str, counts))} times in {len(counts)} expiries (at most {MAX_WRITES} expected): every "
        "request that found the key missing loaded the database (a cache stampede)",
        **evidence,
    )


# ---- Advanced: invalidation -------------------------------------------------------------------------------

WRITE_METHODS = ("post", "put", "patch")


@dataclass
class WriteEndpoint:
    method: str
    template: str  # the OpenAPI path, e.g. /products/{product_id}
    schema: dict[str, Any]


def _resolve_schema(schema: dict[str, Any], openapi: dict[str, Any]) -> dict[str, Any]:
    for _ in range(20):
        if "$ref" not in schema:
            break
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = openapi.get("components", {}).get("schemas", {}).get(name, {})
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _resolve_schema(schema["allOf"][0], openapi)
    return schema


def write_endpoints(openapi: dict[str, Any]) -> list[WriteEndpoint]:
    """POST /products first (it needs no id), then PUT/PATCH /products/{id}, each with a JSON body schema."""
    found = []
    for path, operations in (openapi.get("paths") or {}).items():
        if not (path.rstrip("/") == PRODUCTS or path.startswith(PRODUCTS + "/{")) or path.count("/") > 2:
            continue
        for method in WRITE_METHODS:
            operation = (operations or {}).get(method)
            if not isinstance(operation, dict):
                continue
            try:
                schema = operation["requestBody"]["content"]["application/json"]["schema"]
            except (KeyError, TypeError):
                continue
            found.append(WriteEndpoint(method, path, _resolve_schema(schema, openapi)))
    return sorted(found, key=lambda e: ("{" in e.template, WRITE_METHODS.index(e.method)))


def _sample(schema: dict[str, Any], openapi: dict[str, Any], name: str, token: str, number: float) -> Any:
    schema = _resolve_schema(schema, openapi)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        typed = [o for o in options if _resolve_schema(o, openapi).get("type") != "null"]
        schema = _resolve_schema(typed[0] if typed else options[0], openapi)
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
       level="advanced", requires=("app.uses_redis_url",))
async def invalidation(ctx: CheckContext) -> CheckOutcome:
    endpoints = write_endpoints(ctx.openapi)
    if not endpoints:
        return skipped(f"the app has no write endpoint under {PRODUCTS} (POST {PRODUCTS}, PUT/PATCH "
                       f"{PRODUCTS}/{{id}} with a JSON body in /openapi.json), so there is nothing to invalidate",
                       applicable=False)
    client = ctx.probe.client()
    populated = await populate(ctx, client)
    if populated.key is None:
        return _not_populated(populated)
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
        reply = await client.request(endpoint.method.upper(), path, json=body)
        attempts.append(reply)
        if reply.ok:
            written = (endpoint, path, body)
            break
    if written is None:
        evidence = {"requests": requests_text(attempts), "bodies": [a.text[:200] for a in attempts]}
        crashed = [a for a in attempts if a.status is not None and a.status >= 500]
        if crashed:
            return failed(f"writing a product failed: {crashed[0]}", **evidence)
        return error(f"the harness could not write a product through {', '.join(f'{e.method.upper()} {e.template}' for e in endpoints)}",
                     **evidence)
    endpoint, path, body = written
    mark = ctx.proxy.trace.mark()
    after = await client.get(PRODUCTS)
    def shows(reply: Reply) -> bool:
        # The written strings, or its number when the schema has no string field (an integer field gets it cut).
        return token in reply.text or str(int(number)) in reply.text

    if after.ok and not shows(after):
        # A background task may still be invalidating; a stale cache stays stale for a minute, not 300 ms.
        await asyncio.sleep(0.3)
        after = await client.get(PRODUCTS)
    evidence = {
        "key": populated.key,
        "requests": requests_text([populated.reply, *attempts, after]),
        "written": body,
        "redis_after_write": commands_text(ctx.proxy.trace.since(mark)),
    }
    if not after.ok:
        return failed(f"after {endpoint.method.upper()} {path}, GET {PRODUCTS} answered {after.status or after.error}",
                      **evidence)
    if shows(after):
        return passed(f"after {endpoint.method.upper()} {path}, GET {PRODUCTS} showed the new product", **evidence)
    return failed(
        f"after {endpoint.method.upper()} {path} was accepted ({attempts[-1].status}), GET {PRODUCTS} still served "
        f"the old list from '{populated.key}': the cached list was not deleted or refreshed",
        **evidence,
    )
