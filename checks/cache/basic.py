"""GET /products is cached in Redis (cache-aside) with a 60-second TTL."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from checks.cache.common import (
    PRODUCTS,
    Populated,
    after_first_fill,
    fill_moments,
    judge_ttl,
    life_figure,
    product_list,
)
from grader.api import (
    CheckContext,
    CheckOutcome,
    Moment,
    VirtualClient,
    check,
    commands_text,
    failed,
    parse_json,
    passed,
    points_at,
    raw_value,
    requests_text,
    shown_bytes,
    strings_in,
    ttl_moment,
    writes_to,
)


@check("cache.populates", title="The first GET /products writes the list to one Redis key", level="basic",
       requires=("app.uses_redis_url",),
       requirement="`GET /products` answers 200 with the product list and, on a cache miss, writes the list to one Redis key (cache-aside; a name like `products:all`)")
@points_at("GET /products", "set", "setex")
@after_first_fill
async def populates(ctx: CheckContext, client: VirtualClient, populated: Populated, key: str) -> CheckOutcome:
    writes = writes_to(populated.commands, key)
    return passed(
        f"the first GET {PRODUCTS} cached the list in Redis key '{key}'",
        key=key, redis=commands_text(writes or populated.commands, limit=5),
    )


@check("cache.ttl", title="The cached list expires after 60 seconds", level="basic",
       requires=("cache.populates",),
       requirement="The cached list is written with a TTL of 60 seconds (`SET key value EX 60`)")
@points_at("set", "setex", "expire")
@after_first_fill
async def ttl(ctx: CheckContext, client: VirtualClient, populated: Populated, key: str) -> CheckOutcome:
    return await judge_ttl(ctx, populated, "right after the first write")


def _rewritten(raw: bytes, token: str, shown: set[str]) -> str | None:
    """The cached JSON with one of the product strings the app showed (`shown`) replaced by `token`, or None when
    the value is not plain JSON (a pickle, compressed or binary value) or holds none of them: the trace decides
    then. A string the response did not show (a wrapper's "cached_at") would prove nothing when it stays unseen."""
    value = parse_json(raw)
    if value is None:
        return None

    def replace_first(node: Any) -> bool:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            if isinstance(v, str) and v in shown:
                node[k] = token
                return True
            if replace_first(v):
                return True
        return False

    return json.dumps(value) if replace_first(value) else None


@check("cache.serves_from_cache", title="A repeated GET /products is served from Redis", level="basic",
       requires=("cache.populates",),
       requirement="A repeated `GET /products` returns what Redis holds, without reading the database")
@points_at("GET /products", "get")
@after_first_fill
async def serves_from_cache(ctx: CheckContext, client: VirtualClient, populated: Populated, key: str) -> CheckOutcome:
    token = f"rg-cached-{uuid.uuid4().hex[:8]}"
    stored = await raw_value(ctx.redis, key) if await ctx.redis.type(key) == "string" else None
    shown = {text for text in strings_in(product_list(populated.reply.body) or []) if len(text) >= 3}
    changed = _rewritten(stored, token, shown) if stored is not None else None
    if changed is not None:
        # The harness edits the cached value in place (keeping its TTL): a response served from Redis shows it.
        await ctx.redis.set(key, changed, keepttl=True)
    with ctx.trace.recording() as seen:
        again = await client.get(PRODUCTS)
    commands = list(seen)
    rewrites = writes_to(commands, key)
    reads = [c for c in commands if key in c.args]
    evidence = {"key": key, "requests": requests_text([populated.reply, again]), "redis": commands_text(commands)}
    if stored is not None and changed is None:
        evidence["cached_value"] = shown_bytes(stored)
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
       level="basic", requires=("cache.populates",),
       requirement="Once the cached list has expired, the next `GET /products` writes it again, with a TTL of 60 seconds")
@points_at("set", "setex")
@after_first_fill
async def refill_after_expiry(ctx: CheckContext, client: VirtualClient, populated: Populated, key: str) -> CheckOutcome:
    await ctx.redis.pexpire(key, 1)  # the harness lets the key expire now instead of waiting a minute
    # The key's life so far, for the picture: its first fill, and the expiry the harness caused.
    before = [*fill_moments(populated, key), Moment(time.monotonic(), "expired", "made to expire by the harness")]
    for _ in range(100):
        if not await ctx.redis.exists(key):
            break
        await asyncio.sleep(0.01)
    with ctx.trace.recording() as seen:
        again = await client.get(PRODUCTS)
    refill = Populated(again, list(seen), key, [])
    if not again.ok:
        figure = life_figure(key, [*before, *fill_moments(refill, key, "refilled")],
                             f"'{key}' was made to expire by the harness; the next GET {PRODUCTS} answered "
                             f"{again.status or 'nothing'}.")
        return failed(f"after the cache expired, GET {PRODUCTS} answered {again.status or again.error}",
                      requests=[str(again)], body=again.text[:300], figure=figure)
    if not await ctx.redis.exists(key):
        figure = life_figure(key, [*before, *fill_moments(refill, key, "refilled"), ttl_moment(time.monotonic(), -2)],
                             f"'{key}' was made to expire by the harness; the next GET {PRODUCTS} did not write it "
                             "again (the key stayed missing).")
        return failed(f"after '{key}' expired, the next GET {PRODUCTS} did not write it again",
                      requests=[str(again)], redis=commands_text(refill.commands) or ["(no command)"], figure=figure)
    return await judge_ttl(ctx, refill, "after it expired and was refilled", before=before)
