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
       requires=("cache.populates",))
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
       requires=("cache.populates",))
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
       level="basic", requires=("cache.populates",))
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
# Traffic after the key's shortened life ran out. A stampede happens in the first load time after the expiry
# (~0.1 s); every write it causes is in the trace before the stream's last reply is in, however short the tail.
TAIL_S = 0.5
MAX_WRITES = 3  # value writes tolerated per expiry (the course's "about once", with room for a lock race)
# XFetch recomputes before the key expires, each request deciding by chance: the number of recomputations has
# a long tail (with beta 1 about a quarter of expiries see 4+, more on a loaded machine). Writes while no
# request ever found the key missing are XFetch working as designed, so they get a little more room.
MAX_EARLY_WRITES = 5
EXPIRIES = 5  # conclusive expiries observed at most; the first conclusive pass ends the check
MAX_EXPIRIES = 8  # inconclusive ones included
# The first expiry comes with no run-up: a lock or single-flight needs none, so most submissions are judged
# in about a second. Only a pass ends the check early, so a strategy that needs a run-up loses nothing by it.
FIRST_LIFE_S = 0.5
# How long the harness leaves the key to live in the later expiries, scaled by how long the app takes to load
# the database: XFetch recomputes inside the last beta*delta*ln(rate*beta*delta) seconds (delta = load time),
# so it must get a gradual run-up to the expiry, as it would at the end of a real 60 s TTL.
SHORT_LIFE_MIN_S = 2.0
SHORT_LIFE_MAX_S = 5.0
SHORT_LIFE_PER_LOAD_S = 25.0
EXPIRY_FIELD_WINDOW_S = (30.0, 70.0)  # an absolute expiry stored in the value lies this far ahead of now
READS = {"GET", "GETEX", "HGET", "HGETALL", "EXISTS", "TYPE"}
EMPTY_REPLIES = {"nil", "_", "%0", "*0", ":0", "+none"}

PASS, FAIL, UNSURE = "pass", "fail", "inconclusive"


@dataclass
class Expiry:
    """One expiry of the cached list while traffic flows, as the trace shows it.

    Every request that finds the key missing and has no protection loads the database and writes the list:
    writes == misses, however few there are (a loaded machine may let only 2-3 requests miss). That is why
    the verdict reads both numbers, not the write count alone."""

    writes: list[Command]
    early: int  # value writes before the key's shortened life ran out (XFetch recomputing ahead)
    misses: int  # the app's reads of the key that found it missing
    replies: list[Reply]
    metadata: str | None  # what the harness rewrote inside the value, if anything
    life_s: float  # how long the harness left the key to live once traffic flowed

    @property
    def verdict(self) -> str:
        total = len(self.writes)
        if self.misses == 0 and 1 <= total <= MAX_EARLY_WRITES:
            # Nobody found it missing: it was recomputed before it expired (XFetch; a recompute decided just
            # before the expiry may write just after it), or the app's reads are invisible (inside a script).
            return PASS
        if self.misses >= 2 and total < self.misses and total <= MAX_WRITES:
            return PASS  # several requests missed it, fewer loaded the database (a lock, or single-flight)
        if total > (MAX_EARLY_WRITES if self.misses == 0 else MAX_WRITES):
            return FAIL
        return UNSURE  # e.g. 2 misses and 2 writes: too few requests missed it to tell protection from luck

    def summary(self) -> str:
        return (f"key life {self.life_s:.2f} s: {len(self.writes)} writes ({self.early} before the expiry), {self.misses} reads found the key "
                f"missing, {len(self.replies)} requests: {self.verdict}")


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


def _is_miss(command: Command, key: str) -> bool:
    return command.name in READS and bool(command.args) and command.args[0] == key and command.reply in EMPTY_REPLIES


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
    down) until `stop_at`, each virtual client sending at most PER_CLIENT."""

    def __init__(self, ctx: CheckContext):
        self.ctx = ctx
        self.stop_at = float("inf")

    async def run(self) -> list[Reply]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: list[asyncio.Task[Reply]] = []
        clients = [self.ctx.probe.client()]
        n = 0
        while (due := start + n / STREAM_RATE) < self.stop_at:
            if n and n % PER_CLIENT == 0:
                clients.append(self.ctx.probe.client())
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            tasks.append(asyncio.create_task(clients[-1].get(PRODUCTS)))
            n += 1
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            # Hundreds of clients per check: their sockets are closed now, not at the end of the run.
            for client in clients:
                await client.aclose()


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
    # The trace's clock is time.monotonic(), like the loop's: the key can expire no earlier than this.
    expires_at = time.monotonic() + life_s
    if shortened is not None:
        await ctx.redis.set(key, shortened[0], px=int(life_s * 1000))
        metadata = shortened[1]
    else:
        await ctx.redis.pexpire(key, int(life_s * 1000))
    stream.stop_at = loop.time() + life_s + TAIL_S
    replies = await task
    commands = ctx.proxy.trace.since(mark)
    writes = [c for c in commands if _is_value_write(c, key, markers)]
    early = sum(1 for c in writes if c.time < expires_at)
    misses = sum(1 for c in commands if _is_miss(c, key))
    return Expiry(writes, early, misses, replies, metadata, life_s)


@check("cache.stampede", title="A burst across the cache expiry loads the database about once", level="advanced",
       requires=("cache.populates",), timeout=120.0, timing=True)
async def stampede(ctx: CheckContext) -> CheckOutcome:
    populated = await populate(ctx, ctx.probe.client())
    if populated.key is None:
        return _not_populated(populated)
    key = populated.key
    markers = [s for s in strings_in(product_list(populated.reply.body) or []) if len(s) >= 3][:3]
    # The first GET loaded the database: its time bounds the app's load time (XFetch's delta).
    run_up_life_s = min(SHORT_LIFE_MAX_S, max(SHORT_LIFE_MIN_S, SHORT_LIFE_PER_LOAD_S * populated.reply.elapsed))
    expiries: list[Expiry] = []
    for attempt in range(MAX_EXPIRIES):
        if not await ctx.redis.exists(key):
            await ctx.probe.client().get(PRODUCTS)  # refill, so every expiry starts from a warm key
        expiry = await _one_expiry(ctx, key, markers, FIRST_LIFE_S if attempt == 0 else run_up_life_s)
        expiries.append(expiry)
        if expiry.verdict == PASS or sum(e.verdict != UNSURE for e in expiries) >= EXPIRIES:
            break
        if sum(r.status == 429 for r in expiry.replies) > len(expiry.replies) // 10:
            break  # a limiter shared by every client refuses the stream: nothing to measure (see below)
    verdicts = [e.verdict for e in expiries]
    shown = next((e for e in expiries if e.verdict == PASS), None) or max(expiries, key=lambda e: len(e.writes))
    statuses: dict[str, int] = {}
    for r in shown.replies:
        seen = str(r.status) if r.error is None else "no answer"
        statuses[seen] = statuses.get(seen, 0) + 1
    evidence: dict[str, object] = {
        "key": key,
        "expiries": [e.summary() for e in expiries],
        "tolerated": f"{MAX_WRITES} writes ({MAX_EARLY_WRITES} when no read ever found the key missing)",
        "stream": f"{STREAM_RATE:g} req/s, {PER_CLIENT} per client",
        "statuses": statuses,
        "writes": commands_text(shown.writes, limit=12),
    }
    if shown.metadata:
        evidence["expiry_in_value_moved"] = shown.metadata
    failures = [r for r in shown.replies if not r.ok]
    refused = [r for r in failures if r.status == 429]
    if shown.replies and len(refused) > len(shown.replies) // 10:
        # Each stream client sends at most 8 requests, so only a limiter shared by every client refuses them:
        # ratelimit.per_ip grades that defect; this check cannot measure anything and does not count.
        return skipped(f"the rate limiter refused {len(refused)} of {len(shown.replies)} stream requests, though no "
                       f"client sent more than {PER_CLIENT}: it does not count per client (see ratelimit.per_ip), so "
                       "the stampede cannot be measured", applicable=False, **evidence)
    if shown.replies and len(failures) > len(shown.replies) // 10:
        return failed(f"during the stream across the expiry {len(failures)} of {len(shown.replies)} GET {PRODUCTS} "
                      f"failed ({failures[0]})", **evidence)
    if PASS in verdicts:
        return passed(f"with ~{STREAM_RATE:g} req/s flowing across the expiry of '{key}', the list was written "
                      f"{len(shown.writes)} time(s) while {shown.misses} read(s) found it missing: the database was "
                      "loaded about once", **evidence)
    if FAIL not in verdicts:
        return error(f"in {len(expiries)} expiries of '{key}' too few requests found it missing to tell whether the "
                     "app protects the database (the machine may be too busy)", **evidence)
    failing = [e for e in expiries if e.verdict == FAIL]
    counts = " / ".join(str(len(e.writes)) for e in failing)
    why = ("the list is written again on nearly every request, so the cache is never what answers"
           if all(e.misses == 0 and len(e.writes) > len(e.replies) // 2 for e in failing)
           else "every request that found the key missing loaded the database (a cache stampede)")
    return failed(
        f"with ~{STREAM_RATE:g} req/s flowing across the expiry of '{key}', the list was written {counts} times in "
        f"{len(failing)} expiries (at most {MAX_WRITES} expected): {why}",
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
       level="advanced", requires=("cache.populates",))
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
