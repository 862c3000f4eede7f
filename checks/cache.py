"""GET /products is cached in Redis (cache-aside) with a 60-second TTL."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from checks.support import all_keys, commands_text, requests_text, strings_in, value_text, writes_to
from grader.checking import CheckContext, check
from grader.outcome import CheckOutcome, failed, passed
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
