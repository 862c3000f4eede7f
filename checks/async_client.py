"""The app uses the asyncio Redis client, so a slow Redis never stalls its event loop."""

from __future__ import annotations

import asyncio
import time

from checks.support import requests_text
from grader.checking import CheckContext, check
from grader.outcome import CheckOutcome, error, failed, passed
from grader.probe import Reply
from grader.static import Finding

# Code outside the request path may use a synchronous client (a one-off seed script, the test suite).
NOT_REQUEST_PATH = ("tests/", "test_", "seed", "scripts/", "conftest")


def _in_request_path(finding: Finding) -> bool:
    return not any(part in finding.file for part in NOT_REQUEST_PATH)


def _where(findings: list[Finding]) -> list[str]:
    return [f"{f.file}:{f.line}: {f.text}" for f in findings]


@check("async.client", title="Uses redis.asyncio with decode_responses=True", level="basic")
async def client(ctx: CheckContext) -> CheckOutcome:
    facts = ctx.facts
    sync = [f for f in facts.sync_clients if _in_request_path(f)]
    if sync:
        return failed(
            f"a synchronous Redis client is built at {_where(sync)[0]}: it blocks the event loop; use redis.asyncio",
            sync_clients=_where(sync), async_clients=_where(facts.async_clients),
        )
    if not facts.async_clients:
        libraries = sorted(facts.libraries & {"fastapi_limiter", "cashews", "aiocache", "slowapi", "limits"})
        if libraries:
            return passed(f"Redis is used through {', '.join(libraries)}, which builds its own asyncio client",
                          libraries=libraries)
        return failed("no redis.asyncio client is built anywhere in the code", libraries=sorted(facts.libraries))
    # decode_responses is invisible on the wire; it is judged where the code builds its own client.
    undecoded = [f for f in facts.missing_decode_responses if _in_request_path(f)]
    if undecoded:
        return failed(
            f"the asyncio client at {_where(undecoded)[0]} is built without decode_responses=True: every reply "
            "comes back as bytes",
            async_clients=_where(facts.async_clients), without_decode_responses=_where(undecoded),
        )
    return passed(f"asyncio client with decode_responses=True at {_where(facts.async_clients)[0]}",
                  async_clients=_where(facts.async_clients))


# ---- Advanced ---------------------------------------------------------------------------------------------

LATENCY_S = 0.15  # added to every Redis round trip while timing
CONCURRENT = 10
# Ratio = wall time of 10 concurrent requests / time of one. Non-blocking ≈ 1-2, blocking ≈ 10. The gap
# between the bands is wide on purpose: a loaded machine moves a ratio a little, never across the gap.
PASS_BELOW = 4.0
FAIL_ABOVE = 6.0
ATTEMPTS = 3
SINGLE_SAMPLES = 3
CANDIDATE_ROUTES = ("/health", "/products")


async def _round_trip_route(ctx: CheckContext) -> tuple[str | None, list[str]]:
    """A route that answers 200 and sends Redis at least one command (so its time is bound by the latency).
    /products is asked twice so the cache is warm and its time does not include the database."""
    tried = []
    for route in CANDIDATE_ROUTES:
        client = ctx.probe.client()
        await client.get(route)
        mark = ctx.proxy.trace.mark()
        reply = await client.get(route)
        sent = ctx.proxy.trace.since(mark)
        tried.append(f"{reply} with {len(sent)} Redis commands")
        if reply.ok and sent:
            return route, tried
    return None, tried


async def _timed_single(ctx: CheckContext, route: str) -> float:
    """The fastest of a few lone requests, each from a fresh client: the one-request baseline."""
    times = []
    for _ in range(SINGLE_SAMPLES):
        reply = await ctx.probe.client().get(route)
        times.append(reply.elapsed)
    return min(times)


async def _timed_concurrent(ctx: CheckContext, route: str) -> tuple[float, list[Reply]]:
    clients = [ctx.probe.client() for _ in range(CONCURRENT)]  # one request each: the limiter never bites
    started = time.monotonic()
    replies = await asyncio.gather(*(c.get(route) for c in clients))
    return time.monotonic() - started, list(replies)


@check("async.event_loop", title="10 concurrent requests take about one request's time, not ten",
       level="advanced", requires=("app.uses_redis_url",), timeout=150.0)
async def event_loop(ctx: CheckContext) -> CheckOutcome:
    route, tried = await _round_trip_route(ctx)
    if route is None:
        return error("no route answered 200 while sending Redis a command, so the event loop cannot be timed",
                     tried=tried)
    ctx.proxy.latency = LATENCY_S
    runs: list[dict[str, object]] = []
    best: float | None = None
    try:
        # Untimed: lets the app's connection pool grow to 10 connections, whose setup costs round trips too.
        await _timed_concurrent(ctx, route)
        for _ in range(ATTEMPTS):
            single = await _timed_single(ctx, route)
            wall, replies = await _timed_concurrent(ctx, route)
            if not all(r.ok for r in replies):
                bad = next(r for r in replies if not r.ok)
                return failed(f"with {LATENCY_S * 1000:.0f} ms Redis latency, concurrent GET {route} failed: {bad}",
                              requests=requests_text(replies), runs=runs)
            ratio = wall / single
            runs.append({"single_s": round(single, 3), "concurrent_s": round(wall, 3), "ratio": round(ratio, 2)})
            best = ratio if best is None else min(best, ratio)
            if ratio < PASS_BELOW or ratio > FAIL_ABOVE:
                break  # clearly on one side; repeat only in the gap between the bands
    finally:
        ctx.proxy.latency = 0.0
    assert best is not None
    evidence = {"route": route, "latency_s": LATENCY_S, "concurrent": CONCURRENT, "runs": runs,
                "pass_below": PASS_BELOW, "fail_above": FAIL_ABOVE}
    last = runs[-1]
    summary = (f"{CONCURRENT} concurrent GET {route} took {last['concurrent_s']} s vs {last['single_s']} s for "
               f"one (ratio {best:.1f}, with {LATENCY_S * 1000:.0f} ms Redis latency)")
    # Still in the gap after every attempt: the midpoint decides (never happened in calibration, see README).
    if best < (PASS_BELOW + FAIL_ABOVE) / 2:
        return passed(f"{summary}: requests wait for Redis concurrently", **evidence)
    return failed(f"{summary}: the requests were served one after another - a blocking Redis call stalls the "
                  "event loop", **evidence)
