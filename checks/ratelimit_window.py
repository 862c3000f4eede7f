"""ratelimit.window: the counter's TTL is at most 60 s, runs down from the first request, and once it ran out the
client is served again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from checks.limited_route import on_limited_route
from checks.ratelimit import LIMITER_CALLS, PROBE_MAX, counter_keys
from checks.ratelimit_figures import CounterLife
from grader.api import (
    CheckContext,
    CheckOutcome,
    Command,
    Reply,
    VirtualClient,
    check,
    commands_text,
    failed,
    passed,
    points_at,
    requests_text,
    skipped,
)

# How long the window check waits after the first request before the next ones, so that a TTL each later request
# sets again (served or refused) shows: a TTL that runs down falls by all of this, one set again is back near full.
TTL_GAP_S = 0.3
# Counters whose key's TTL is the window itself (a fixed window: INCR on a string, HINCRBY on a hash). A sliding
# window keeps its requests as entries (a ZSET, a LIST) and may well refresh the key's TTL on every request: that
# TTL only clears an idle client's entries away. So may a token bucket, though it is a hash: its tokens come back
# with time, so a client sending 3 requests a minute is never blocked (see _token_bucket).
FIXED_WINDOW_TYPES = ("string", "hash")


@check("ratelimit.window", title="The counter expires within 60 s and the client is served again",
       level="basic", requires=("app.uses_redis_url",),
       requirement='The counter has a TTL of at most 60 seconds from the first request, after which the client is served again')
@points_at(*LIMITER_CALLS)
@on_limited_route()
async def window(ctx: CheckContext, path: str) -> CheckOutcome:
    client = ctx.probe.client()
    with ctx.trace.recording() as seen:
        return await _judge_window(ctx, path, client, seen, await client.get(path))


async def _judge_window(ctx: CheckContext, path: str, client: VirtualClient, seen: Sequence[Command],
                        first: Reply) -> CheckOutcome:
    """`seen`: the Redis commands since the first request, still recording (each read sees what has arrived)."""
    keys = await counter_keys(ctx, client.ip, list(seen))
    if not keys:
        return failed(f"after a request from {client.ip} no counter key could be found in Redis",
                      requests=[str(first)], redis=commands_text(seen))
    ttls = {k: await ctx.redis.ttl(k) for k in keys}
    life = CounterLife(client.ip, keys, seen, ttls)  # the counter's life so far, for the report's picture
    endless = [k for k, t in ttls.items() if t == -1]
    evidence: dict[str, object] = {"counter_ttls": ttls, "redis": commands_text(seen)}
    if endless:
        return failed(f"counter key '{endless[0]}' has no TTL after the first request from {client.ip}: the window "
                      "never ends, a blocked client stays blocked forever", figure=life.figure([first]), **evidence)
    if any(t > 60 for t in ttls.values()):
        return failed(f"counter TTL is {max(ttls.values())} s, longer than the 60 s window",
                      figure=life.figure([first]), **evidence)
    types = {k: await ctx.redis.type(k) for k in keys}
    fixed = [k for k in keys if types[k] in FIXED_WINDOW_TYPES]
    hashes = [k for k in fixed if types[k] == "hash"]
    fields = [{k: await ctx.redis.hgetall(k) for k in hashes}]  # after the first request, then the second
    readings = [await _ttl_reading(ctx, fixed)]
    await asyncio.sleep(TTL_GAP_S)
    rest = [first]
    while rest[-1].ok and len(rest) < PROBE_MAX:  # on to the app's own limit, whatever it is
        rest.append(await client.get(path))
        readings.append(await _ttl_reading(ctx, fixed))
        if len(rest) == 2:
            fields.append({k: await ctx.redis.hgetall(k) for k in hashes})
    buckets = [k for k in hashes if len(fields) == 2 and _token_bucket(fields[0][k], fields[1].get(k, {}))]
    if buckets:
        evidence["token_buckets"] = {k: fields[1][k] for k in buckets}
        readings = [_without(reading, buckets) for reading in readings]
    if rest[-1].ok:
        return skipped(f"the app refused none of {PROBE_MAX} sequential requests from {client.ip}, so the end of "
                       "its window cannot be seen (see ratelimit.threshold)",
                       requests=requests_text(rest), figure=life.figure(rest), **evidence)
    if len(rest) > 2 and (restarted := _restarted(readings[0], readings[-2])) is not None:
        return failed(f"a served request from {client.ip} starts the counter's TTL again ({restarted}): a client "
                      "sending 3 requests a minute is blocked after 10 all the same; set the TTL with the first "
                      "request only", figure=life.figure(rest), **evidence)
    if (restarted := _restarted(readings[0], readings[-1])) is not None:
        return failed(f"a refused request from {client.ip} starts the counter's TTL again ({restarted}): a client "
                      "that keeps retrying is never served again; set the TTL with the first request only",
                      figure=life.figure(rest), **evidence)
    for key in await counter_keys(ctx, client.ip, list(seen)):
        await ctx.redis.pexpire(key, 1)  # the harness ends the window now instead of waiting a minute
    life.expire_now()
    await asyncio.sleep(0.05)
    after = await client.get(path)
    evidence["requests"] = requests_text([rest[-1], after])
    figure = life.figure([*rest, after])
    if not after.ok:
        seen = after.status if after.error is None else after.error
        return failed(f"after the counter expired {client.ip} still gets {seen}", figure=figure, **evidence)
    return passed(f"the counter has TTL {max(ttls.values())} s and {client.ip} is served again once it expires "
                  f"(blocked after {len(rest) - 1} requests)", figure=figure, **evidence)


def _token_bucket(before: dict[str, str], after: dict[str, str]) -> bool:
    """Whether a limiter's hash, read after a client's first request and after its second, is a token bucket: one
    of its numbers went down (the tokens taken) and another went up (the clock it refills by). A fixed window's
    hash only counts up (HINCRBY), or down from a quota, without a clock."""
    moved = set()
    for name in before.keys() & after.keys():
        try:
            old, new = float(before[name]), float(after[name])
        except ValueError:
            continue
        moved.add("down" if new < old else "up" if new > old else "same")
    return {"down", "up"} <= moved


def _without(reading: _TtlReading, keys: Sequence[str]) -> _TtlReading:
    return _TtlReading(reading.started, {k: v for k, v in reading.pttls.items() if k not in keys}, reading.ended)


@dataclass(frozen=True)
class _TtlReading:
    """The fixed-window counters' PTTLs, read between `started` and `ended` (time.monotonic())."""

    started: float
    pttls: dict[str, int]
    ended: float


async def _ttl_reading(ctx: CheckContext, keys: Sequence[str]) -> _TtlReading:
    started = time.monotonic()
    pttls = {key: await ctx.redis.pttl(key) for key in keys}
    return _TtlReading(started, pttls, time.monotonic())


def _restarted(before: _TtlReading, after: _TtlReading) -> str | None:
    """What happened to a counter's TTL between two readings ("'rate:ip:x': 59990 ms, then 59995 ms after 0.31 s")
    when it was set again; None when it kept running down. Set again means it fell by less than half the time that
    can have passed between the two reads (at most `after.ended - before.started`): a TTL that runs down falls by
    all of the time that did pass, which is that less the two reads' own round trips, one set again is back near
    its full length. TTL_GAP_S lies between any two readings compared, so the margin is never below 0.15 s."""
    passed_ms = (after.ended - before.started) * 1000
    for key, old in before.pttls.items():
        new = after.pttls.get(key, -2)
        if old > 0 and new > old - passed_ms / 2:
            return f"'{key}': {old} ms, then {new} ms after {passed_ms / 1000:.2f} s"
    return None
