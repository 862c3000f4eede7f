"""What the cache checks share: GET /products on an empty Redis, and finding the key that then holds the list."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from grader.api import (
    CheckContext,
    CheckOutcome,
    Command,
    Figure,
    Moment,
    Reply,
    VirtualClient,
    all_keys,
    command_label,
    commands_text,
    countdown_figure,
    failed,
    missing_route,
    passed,
    request_moment,
    strings_in,
    ttl_moment,
    ttl_seconds,
    value_text,
    writes_to,
)

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
    absent: str | None = None  # 'GET /products is not a route; the app has: ...' when the app lacks it


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
    with ctx.trace.recording() as seen:
        reply = await client.get(PRODUCTS)
    commands = list(seen)
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
    absent = missing_route(ctx.openapi, "get", PRODUCTS) if reply.status in (404, 405) else None
    return Populated(reply, commands, key, candidates, absent)


def after_first_fill(
    judge: Callable[[CheckContext, VirtualClient, Populated, str], Awaitable[CheckOutcome]],
) -> Callable[[CheckContext], Awaitable[CheckOutcome]]:
    """Put under @check (and @points_at): the check starts with a fresh client's first GET /products; when that
    wrote the list to no Redis key the check fails saying why, otherwise `judge` goes on with the client, what the
    first GET did and the key that holds the list."""

    @functools.wraps(judge)
    async def filled_first(ctx: CheckContext) -> CheckOutcome:
        client = ctx.probe.client()
        populated = await populate(ctx, client)
        if populated.key is None:
            return not_populated(populated)
        return await judge(ctx, client, populated, populated.key)

    return filled_first


def not_populated(populated: Populated) -> CheckOutcome:
    reply = populated.reply
    if populated.absent:
        return failed(populated.absent, requests=[str(reply)], body=reply.text[:300])
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


def fill_moments(populated: Populated, key: str, written: str = "written") -> list[Moment]:
    """A GET that found nothing cached, and its write of `key` (event `written`, or `refilled`), for a picture."""
    writes = writes_to(populated.commands, key)
    moments = [request_moment(populated.reply, "miss")]
    if writes:
        moments.append(Moment(writes[0].time, written, command_label(writes[0])))
    return moments


def life_figure(key: str, moments: Sequence[Moment], caption: str) -> Figure:
    """The cached list's life, from its first write, against the TTL the checks hold it to."""
    return countdown_figure(key, moments, ttl_limit_s=TTL_SECONDS, caption=caption)


async def judge_ttl(ctx: CheckContext, populated: Populated, when: str, before: Sequence[Moment] = ()) -> CheckOutcome:
    """`before`: the key's life before `populated` wrote it (a first fill and an expiry), for the picture."""
    key = populated.key
    assert key is not None
    pttl = await ctx.redis.pttl(key)
    moments = [*before, *fill_moments(populated, key, "refilled" if before else "written"),
               ttl_moment(time.monotonic(), ttl_seconds(pttl))]
    ttl_text = "no TTL (-1)" if pttl == -1 else f"TTL {pttl / 1000:.1f} s"
    history = ("first written, made to expire by the harness, then refilled by the next GET" if before
               else "written by the first GET")
    figure = life_figure(key, moments, f"'{key}' {history} {PRODUCTS}: {ttl_text} {when} "
                                       f"(expected {TTL_SECONDS} s).")
    evidence = {"key": key, "pttl_ms": pttl,
                "redis": commands_text(writes_to(populated.commands, key) or populated.commands, limit=8)}
    if pttl == -1:
        return failed(f"cache key '{key}' has no TTL {when} (TTL -1): it never expires, so stale data stays forever",
                      figure=figure, **evidence)
    if TTL_LOWEST_MS <= pttl <= TTL_HIGHEST_MS:
        return passed(f"cache key '{key}' has TTL {pttl / 1000:.1f} s {when}", figure=figure, **evidence)
    return failed(f"cache key '{key}' has TTL {pttl / 1000:.1f} s {when}, expected {TTL_SECONDS} s",
                  figure=figure, **evidence)

