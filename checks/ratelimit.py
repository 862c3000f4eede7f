"""The rate limiter: more than 10 requests a minute from one IP get 429, counted in Redis per IP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from checks.support import (
    all_keys, commands_text, crossed_minute, first_status, keys_of, requests_text, SCRIPTS, WRITES,
)
from grader.checking import CheckContext, check
from grader.outcome import CheckOutcome, failed, passed
from grader.probe import Reply, VirtualClient
from grader.proxy import Command

LIMIT = 10
ROUTE = "/products"  # the limiter guards every route; one route is enough, and a per-route limiter guards this one
TOO_MANY = 429
MIDDLEWARE_500 = (
    " (raising HTTPException inside @app.middleware(\"http\") becomes a 500: return "
    "JSONResponse(status_code=429) from the middleware instead)"
)


@dataclass
class Burst:
    client: VirtualClient
    replies: list[Reply]
    commands: list[Command]


async def blocked_burst(ctx: CheckContext, count: int = LIMIT + 1) -> Burst:
    """`count` requests from one fresh client; repeated from another fresh client when the burst straddled a
    clock-minute boundary (a minute-aligned window may reset in the middle of it)."""
    for _ in range(3):
        client = ctx.probe.client()
        started = time.time()
        mark = ctx.proxy.trace.mark()
        replies = [await client.get(ROUTE) for _ in range(count)]
        if not crossed_minute(started):
            break
    return Burst(client, replies, ctx.proxy.trace.since(mark))


def _threshold_problem(burst: Burst) -> str | None:
    """Why the burst does not show "1-10 served, 11th refused", or None when it does."""
    early = first_status(burst.replies[:LIMIT], TOO_MANY)
    if early is not None:
        return f"request {early} of {LIMIT + 1} from {burst.client.ip} already got 429: the limit is below {LIMIT}"
    last = burst.replies[LIMIT]
    if last.status == TOO_MANY:
        return None
    seen = last.status if last.error is None else last.error
    return (f"request {LIMIT + 1} from {burst.client.ip} got {seen}, expected 429"
            + (MIDDLEWARE_500 if last.status == 500 else ""))


def _burst_evidence(burst: Burst) -> dict[str, object]:
    return {"requests": requests_text(burst.replies), "redis": commands_text(burst.commands)}


async def counter_keys(ctx: CheckContext, ip: str, commands: list[Command]) -> list[str]:
    """The limiter's keys for client `ip`: keys that name the address, else the keys the limiter's commands
    touched (a counter shared by every client names none)."""
    named = [k for k in await all_keys(ctx.redis) if ip in k]
    if named:
        return named
    touched = {k for c in commands if c.name in WRITES or c.name in SCRIPTS for k in keys_of(c)}
    return sorted([k for k in touched if await _looks_like_counter(ctx, k)])


async def _looks_like_counter(ctx: CheckContext, key: str) -> bool:
    """A number (fixed window), or a sorted set / list of hits (sliding and moving windows) - not the cache."""
    kind = await ctx.redis.type(key)
    if kind == "string":
        return str(await ctx.redis.get(key)).lstrip("-").isdigit()
    return kind in ("zset", "list")


@check("ratelimit.threshold", title="Requests 1-10 from one client pass, the 11th gets 429", level="basic",
       requires=("app.uses_redis_url",))
async def threshold(ctx: CheckContext) -> CheckOutcome:
    burst = await blocked_burst(ctx)
    problem = _threshold_problem(burst)
    if problem:
        return failed(problem, **_burst_evidence(burst))
    return passed(f"requests 1-{LIMIT} from {burst.client.ip} were served and request {LIMIT + 1} got 429",
                  **_burst_evidence(burst))


@check("ratelimit.per_ip", title="While one client is blocked, another IP is still served", level="basic",
       requires=("ratelimit.threshold",))
async def per_ip(ctx: CheckContext) -> CheckOutcome:
    burst = await blocked_burst(ctx)
    problem = _threshold_problem(burst)
    if problem:
        return failed(f"could not block a client first: {problem}", **_burst_evidence(burst))
    other = ctx.probe.client()
    reply = await other.get(ROUTE)
    evidence = {"requests": requests_text(burst.replies[-2:] + [reply])}
    if reply.status == TOO_MANY:
        return failed(f"{other.ip} got 429 on its first request because {burst.client.ip} was blocked: the limiter "
                      "does not count per client IP", **evidence,
                      counter_keys=await counter_keys(ctx, burst.client.ip, burst.commands))
    return passed(f"{other.ip} was served ({reply.status}) while {burst.client.ip} was blocked", **evidence)


@check("ratelimit.window", title="The counter expires within 60 s and the client is served again",
       level="basic", requires=("ratelimit.threshold",))
async def window(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    mark = ctx.proxy.trace.mark()
    first = await client.get(ROUTE)
    keys = await counter_keys(ctx, client.ip, ctx.proxy.trace.since(mark))
    if not keys:
        return failed(f"after a request from {client.ip} no counter key could be found in Redis",
                      requests=[str(first)], redis=commands_text(ctx.proxy.trace.since(mark)))
    ttls = {k: await ctx.redis.ttl(k) for k in keys}
    endless = [k for k, t in ttls.items() if t == -1]
    evidence: dict[str, object] = {"counter_ttls": ttls, "redis": commands_text(ctx.proxy.trace.since(mark))}
    if endless:
        return failed(f"counter key '{endless[0]}' has no TTL after the first request from {client.ip}: the window "
                      "never ends, a blocked client stays blocked forever", **evidence)
    if any(t > 60 for t in ttls.values()):
        return failed(f"counter TTL is {max(ttls.values())} s, longer than the 60 s window", **evidence)
    rest = [await client.get(ROUTE) for _ in range(LIMIT)]
    if rest[-1].status != TOO_MANY:
        return failed(f"request {LIMIT + 1} from {client.ip} was not refused, so the window cannot be tested",
                      requests=requests_text([first] + rest), **evidence)
    for key in await counter_keys(ctx, client.ip, ctx.proxy.trace.since(mark)):
        await ctx.redis.pexpire(key, 1)  # the harness ends the window now instead of waiting a minute
    await asyncio.sleep(0.05)
    after = await client.get(ROUTE)
    evidence["requests"] = requests_text([rest[-1], after])
    if after.status == TOO_MANY:
        return failed(f"after the counter expired {client.ip} still gets 429", **evidence)
    return passed(f"the counter has TTL {max(ttls.values())} s and {client.ip} is served again once it expires",
                  **evidence)


@check("ratelimit.key_format", title="The counter key is rate:ip:<ip>", level="basic",
       requires=("app.uses_redis_url",))
async def key_format(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    mark = ctx.proxy.trace.mark()
    reply = await client.get(ROUTE)
    commands = ctx.proxy.trace.since(mark)
    expected = f"rate:ip:{client.ip}"
    touched = {k for c in commands for k in keys_of(c)}
    if expected in touched or await ctx.redis.exists(expected):
        return passed(f"the counter key is '{expected}'", key=expected)
    return failed(
        f"no key '{expected}' after a request from {client.ip}; the counter keys seen were: "
        + (", ".join(await counter_keys(ctx, client.ip, commands)) or "none"),
        requests=[str(reply)], redis=commands_text(commands),
    )
