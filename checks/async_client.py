"""The app uses the asyncio Redis client, so a slow Redis never stalls its event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from checks.serial_redis import one_at_a_time, settle
from grader.api import (
    CheckContext,
    CheckOutcome,
    Figure,
    Finding,
    Reply,
    app_imports,
    check,
    error,
    event_loop_figure,
    failed,
    passed,
    requests_text,
)

# Code outside the request path may use a synchronous client (a one-off seed script, the test suite): a file the
# app never imports (grader/static/imports.py), or one in a folder named so, or a file named so (test_x.py,
# x_test.py, conftest.py, seed.py, seed_data.py). Whole names: `latest_scores.py` is no test, and `contest.py` no
# conftest.
NOT_REQUEST_FOLDERS = ("tests", "test", "scripts", "seed", "seeds")


def _in_request_path(finding: Finding, imported: frozenset[str] | None) -> bool:
    """`imported`: the files the app imports (None: unknown, then the names alone decide)."""
    *folders, name = finding.file.split("/")
    stem = name.removesuffix(".py")
    outside = (any(folder in NOT_REQUEST_FOLDERS for folder in folders) or stem.startswith(("test_", "seed"))
               or stem.endswith("_test") or stem in ("conftest", "seed")
               or (imported is not None and finding.file not in imported))
    return not outside


def _where(findings: list[Finding]) -> list[str]:
    return [f"{f.file}:{f.line}: {f.text}" for f in findings]


# Libraries that decode bytes themselves and break on str: a client built for them needs no decode_responses.
# (fastapi-cache2's RedisBackend, given a decoding client, fails on every cached read.)
BYTES_BACKENDS = ("RedisBackend(",)


def _for_bytes_backend(ctx: CheckContext, finding: Finding) -> bool:
    """The client is built in a file that hands a client to a library that needs bytes (benefit of the doubt:
    the file shows it, the AST cannot tell which of its clients goes there)."""
    try:
        text = (ctx.workspace.root / finding.file).read_text(errors="replace")
    except OSError:
        return False
    return any(marker in text for marker in BYTES_BACKENDS)


@check("async.client", title="Uses redis.asyncio with decode_responses=True", level="basic", needs_app=False,
       requirement="The app uses `redis.asyncio` (never the synchronous client in a request), built with `decode_responses=True`")
async def client(ctx: CheckContext) -> CheckOutcome:
    facts = ctx.facts
    files = ctx.workspace
    imported = app_imports(files.root, files.app_dir, files.app_module) if files.app_module else None
    sync = [f for f in facts.sync_clients if _in_request_path(f, imported)]
    if sync:
        return failed(
            f"a synchronous Redis client is built at {_where(sync)[0]}: it blocks the event loop; use redis.asyncio",
            sync_clients=_where(sync), async_clients=_where(facts.async_clients), where=_where(sync),
        )
    if not facts.async_clients:
        libraries = sorted(facts.libraries & {"fastapi_limiter", "cashews", "aiocache", "slowapi", "limits"})
        if libraries:
            return passed(f"Redis is used through {', '.join(libraries)}, which builds its own asyncio client",
                          libraries=libraries)
        return failed("no redis.asyncio client is built anywhere in the code", libraries=sorted(facts.libraries))
    # decode_responses is invisible on the wire; it is judged where the code builds its own client.
    undecoded = [f for f in facts.missing_decode_responses if _in_request_path(f, imported)]
    for_library = [f for f in undecoded if _for_bytes_backend(ctx, f)]
    undecoded = [f for f in undecoded if f not in for_library]
    if undecoded:
        return failed(
            f"the asyncio client at {_where(undecoded)[0]} is built without decode_responses=True: every reply "
            "comes back as bytes",
            async_clients=_where(facts.async_clients), without_decode_responses=_where(undecoded),
            where=_where(undecoded),
        )
    extra = {"for_a_library_that_needs_bytes": _where(for_library)} if for_library else {}
    return passed(f"asyncio client with decode_responses=True at {_where(facts.async_clients)[0]}"
                  + (" (the one without it feeds a library that decodes bytes itself)" if for_library else ""),
                  async_clients=_where(facts.async_clients), **extra)


# ---- Advanced ---------------------------------------------------------------------------------------------

LATENCY_S = 0.1  # added to every Redis round trip while timing
# Before the first timed run, one untimed burst lets the app's connection pool grow to 10 connections (their
# setup costs round trips). A quarter of the latency keeps the 10 requests overlapping, so each needs a
# connection of its own, at a fraction of the full latency's cost.
WARM_UP_LATENCY_S = LATENCY_S / 4
# An app whose commands come one at a time with 10 requests in flight never uses a second connection: once this
# many have, the warm-up's latency is lifted (it would only make the app wait, one request after another). A
# non-blocking app has several commands out within the first round trip and keeps the latency to the end.
WARM_UP_ONE_AT_A_TIME = 4
CONCURRENT = 10
# The verdict is on "serialized round trips": how much longer 10 concurrent requests take than one, in units
# of the injected latency, less the same excess without latency (what the machine's CPU costs, which a loaded
# machine inflates). A non-blocking app waits for Redis concurrently: ~0. A blocking call serializes every
# request: >= 9 per blocking round trip, however many non-blocking round trips (an async limiter) surround it -
# which the plain ratio (concurrent / single) does not show: one async + one blocking round trip gives 5.5.
# The bands are far apart on purpose: a loaded machine moves the number a little, never across the gap.
PASS_BELOW = 3.0
FAIL_ABOVE = 6.0
ATTEMPTS = 3
SINGLE_SAMPLES = 2
CANDIDATE_ROUTES = ("/health", "/products")


async def _round_trip_route(ctx: CheckContext) -> tuple[str | None, list[str]]:
    """A route that answers 200 and sends Redis at least one command (so its time is bound by the latency).
    /products is asked twice so the cache is warm and its time does not include the database."""
    tried = []
    for route in CANDIDATE_ROUTES:
        client = ctx.probe.client()
        await client.get(route)
        with ctx.trace.recording() as sent:
            reply = await client.get(route)
        tried.append(f"{reply} with {len(sent)} Redis commands")
        if reply.ok and sent:
            return route, tried
    return None, tried


async def _singles(ctx: CheckContext, route: str, samples: int) -> list[float]:
    """The times of `samples` lone requests, one after another, each from a fresh client."""
    lone = [ctx.probe.client() for _ in range(samples)]
    times = [(await client.get(route)).elapsed for client in lone]
    for client in lone:
        await client.aclose()
    return times


@dataclass
class Burst:
    wall_s: float  # from the first request sent to the last reply in
    replies: list[Reply]
    lifted_at_s: float | None = None  # when the latency was lifted, from the burst's start; None: it never was


async def _burst(ctx: CheckContext, route: str, decided: Callable[[float], bool] = lambda _: False,
                 lift: Callable[[], object] = lambda: None) -> Burst:
    """CONCURRENT requests at once, each from its own fresh client (one request each: a per-IP limiter never
    bites). `decided(elapsed)` is asked while they run; the first time it holds, `lift()` is called and the
    burst goes on to its last reply."""
    clients = [ctx.probe.client() for _ in range(CONCURRENT)]
    started = time.monotonic()
    tasks = [asyncio.create_task(c.get(route)) for c in clients]
    lifted_at: list[float] = []

    def lift_now() -> None:
        lifted_at.append(time.monotonic() - started)
        lift()

    try:
        await settle(tasks, lambda: decided(time.monotonic() - started), lift_now)
        wall = time.monotonic() - started
        replies = [t.result() for t in tasks]
    finally:
        for task in tasks:
            task.cancel()  # a no-op once done; a check cut short leaves no request behind
        for client in clients:
            await client.aclose()  # dozens per check: free their sockets now
    return Burst(wall, replies, lifted_at[0] if lifted_at else None)


@dataclass
class Timing:
    single_s: float  # the fastest of a few lone requests, each from a fresh client
    concurrent_s: float  # wall time of CONCURRENT requests at once, each from its own fresh client
    replies: list[Reply]
    lifted_at_s: float | None = None  # see Burst

    @property
    def excess_s(self) -> float:
        return self.concurrent_s - self.single_s


async def _baseline(ctx: CheckContext, route: str) -> Timing:
    """No latency: what CONCURRENT requests cost this machine's CPU beyond one."""
    singles = await _singles(ctx, route, SINGLE_SAMPLES)
    burst = await _burst(ctx, route)
    return Timing(min(singles), burst.wall_s, burst.replies)


async def _warm_up(ctx: CheckContext, route: str) -> None:
    with ExitStack() as latency, ctx.trace.recording() as seen:
        latency.enter_context(ctx.proxy.latency(WARM_UP_LATENCY_S))
        await _burst(ctx, route, lambda _: one_at_a_time(seen, WARM_UP_ONE_AT_A_TIME), latency.close)


def _serialized(concurrent_s: float, single_s: float, baseline: Timing) -> float:
    """Round trips serialized: the excess of the concurrent requests over a lone one with latency, less the same
    excess without latency, in units of the latency."""
    return max(0.0, concurrent_s - single_s - max(0.0, baseline.excess_s)) / LATENCY_S


async def _timed(ctx: CheckContext, route: str, baseline: Timing) -> Timing:
    """One lone request, the concurrent burst, then the other lone requests - all with LATENCY_S added - unless
    what they could show is already known.

    The serialized round trips only grow as the burst goes on, and only grow when a later lone request is faster
    (the verdict takes the fastest). So once the burst has run longer than the first lone request, the baseline's
    excess and FAIL_ABOVE latencies together, the run is above FAIL_ABOVE whatever follows: the latency is lifted
    then (the requests still out finish without it) and no more lone requests are timed. A blocking app is judged
    in about one lone request plus FAIL_ABOVE latencies instead of waiting out every serialized round trip.
    Likewise a lone request waits for at least one delayed round trip (the route sends Redis a command), so when
    even one that fast would leave the run below PASS_BELOW, the others are not timed either: a blocking app
    never gets there, its ten requests take ten delayed round trips at least."""
    with ExitStack() as latency:
        latency.enter_context(ctx.proxy.latency(LATENCY_S))
        singles = await _singles(ctx, route, 1)
        decided_after_s = singles[0] + max(0.0, baseline.excess_s) + FAIL_ABOVE * LATENCY_S
        burst = await _burst(ctx, route, lambda elapsed: elapsed > decided_after_s, latency.close)
        fastest_possible_s = min(LATENCY_S, singles[0])
        settled = (_serialized(burst.wall_s, singles[0], baseline) > FAIL_ABOVE
                   or _serialized(burst.wall_s, fastest_possible_s, baseline) < PASS_BELOW)
        if not settled:
            singles += await _singles(ctx, route, SINGLE_SAMPLES - 1)
    return Timing(min(singles), burst.wall_s, burst.replies, burst.lifted_at_s)


def _picture(timed: Timing, route: str, serialized: float) -> Figure:
    """The concurrent requests of one timed run, as bars: overlapping, or a staircase."""
    lifted = (f" (at least: the delay was lifted after {timed.lifted_at_s:.2f} s, once the result could no longer "
              "change)" if timed.lifted_at_s is not None else "")
    caption = (f"{CONCURRENT} concurrent GET {route} with {LATENCY_S * 1000:.0f} ms added to every Redis reply took "
               f"{timed.concurrent_s:.2f} s{lifted}, one alone {timed.single_s:.2f} s: {serialized:.1f} round trips "
               f"serialized (above {FAIL_ABOVE:g} the requests wait for each other's Redis calls).")
    return event_loop_figure(timed.replies, latency_s=LATENCY_S, serialized=serialized, max_serialized=FAIL_ABOVE,
                             caption=caption)


def _answered(reply: Reply) -> bool:
    """A 429 counts: a limiter shared by every client (ratelimit.per_ip's defect) answers it after its own Redis
    round trip, which is just as good for timing the event loop."""
    return reply.status is not None and (reply.ok or reply.status == 429)


def _run(timed: Timing, baseline: Timing, serialized: float) -> dict[str, object]:
    run: dict[str, object] = {
        "single_s": round(timed.single_s, 3), "concurrent_s": round(timed.concurrent_s, 3),
        "ratio": round(timed.concurrent_s / timed.single_s, 2), "no_latency_excess_s": round(baseline.excess_s, 3),
        "serialized_round_trips": round(serialized, 2)}
    if timed.lifted_at_s is not None:
        run["latency_lifted_at_s"] = round(timed.lifted_at_s, 3)
    return run


@check("async.event_loop", title="10 concurrent requests take about one request's time, not ten",
       level="advanced", requires=("app.uses_redis_url",), timeout=150.0, timing=True,
       requirement="No Redis call blocks the event loop: 10 concurrent requests take about as long as one")
async def event_loop(ctx: CheckContext) -> CheckOutcome:
    route, tried = await _round_trip_route(ctx)
    if route is None:
        return error("no route answered 200 while sending Redis a command, so the event loop cannot be timed",
                     tried=tried)
    runs: list[dict[str, object]] = []
    best: float | None = None
    figure: Figure | None = None  # the run the verdict rests on, drawn
    shown: Timing | None = None
    for _ in range(ATTEMPTS):
        baseline = await _baseline(ctx, route)  # no latency: what 10 requests cost this machine's CPU
        if not runs:
            await _warm_up(ctx, route)
        timed = await _timed(ctx, route, baseline)
        serialized = _serialized(timed.concurrent_s, timed.single_s, baseline)
        bad = next((r for r in timed.replies + baseline.replies if not _answered(r)), None)
        if bad is not None:
            return failed(f"concurrent GET {route} failed: {bad}", route=route, runs=runs,
                          requests=requests_text(timed.replies), figure=_picture(timed, route, serialized))
        runs.append(_run(timed, baseline, serialized))
        if best is None or serialized < best:
            best, figure, shown = serialized, _picture(timed, route, serialized), timed
        if serialized < PASS_BELOW or serialized > FAIL_ABOVE:
            break  # clearly on one side; repeat only in the gap between the bands
    assert best is not None and shown is not None
    evidence = {"route": route, "latency_s": LATENCY_S, "concurrent": CONCURRENT, "runs": runs,
                "pass_below": PASS_BELOW, "fail_above": FAIL_ABOVE}
    took = (f"were not all answered after {shown.lifted_at_s:.3f} s (the delay was then lifted, the result being "
            f"certain)" if shown.lifted_at_s is not None else f"took {shown.concurrent_s:.3f} s")
    summary = (f"with {LATENCY_S * 1000:.0f} ms added to every Redis round trip, {CONCURRENT} concurrent GET {route} "
               f"{took} and one took {shown.single_s:.3f} s (ratio {shown.concurrent_s / shown.single_s:.1f}, "
               f"{best:.1f} round trips serialized)")
    # Still in the gap after every attempt: the midpoint decides.
    if best < (PASS_BELOW + FAIL_ABOVE) / 2:
        return passed(f"{summary}: the requests waited for Redis concurrently", figure=figure, **evidence)
    return failed(f"{summary}: the requests waited for Redis one after another - a blocking Redis call stalls "
                  "the event loop", figure=figure, **evidence)
