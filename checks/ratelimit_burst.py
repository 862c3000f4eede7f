"""The concurrent burst of ratelimit.atomic_under_load: LOAD_REQUESTS requests at once from one client while every
Redis round trip is delayed, so that a GET-then-SET limiter's race window spans every overlapping request.

The delay is there to widen race windows; it is lifted as soon as the evidence shows it can no longer change what
is judged (the number served), so a blocking app is not waited out one delayed round trip after another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from checks.serial_redis import one_at_a_time, settle
from grader.api import SCRIPTS, CheckContext, Command, Reply, VirtualClient, crossed_minute

LOAD_REQUESTS = 50
# During the concurrent burst every Redis round trip is delayed a little: a GET-then-SET limiter's race window
# then spans every overlapping request whatever the machine's speed, while an atomic limiter still counts
# exactly (latency changes when a command runs, never what it does).
LOAD_LATENCY_S = 0.05
# Limiter scripts seen counting one by one, one command at a time, before the delay is lifted (see
# `counted_one_by_one`): at 50 ms a round trip, 0.2 s of a blocking app's burst instead of all of it.
COUNTED_ONE_BY_ONE = 4


@dataclass
class LoadBurst:
    client: VirtualClient
    replies: list[Reply]
    seen: list[Command]  # every Redis command sent during the burst
    peak_in_flight: int
    started: float  # time.time() when the first request was sent
    lifted_at_s: float | None = None  # when the delay was lifted, from the burst's start; None: it never was
    lifted_because: str | None = None

    @property
    def commands(self) -> list[Command]:
        """The limiter's own commands for this client (connection setup of the app's pool is noise here)."""
        return limiter_commands(self.seen, self.client.ip)


def limiter_commands(seen: Sequence[Command], ip: str) -> list[Command]:
    return [c for c in seen if any(ip in a for a in c.args)]


def counted_one_by_one(seen: Sequence[Command], ip: str) -> bool:
    """Whether the burst so far shows a limiter the delay cannot make race, nor make fail: every command naming
    the client is a script whose reply is the count going up by one (1, 2, 3, ... - each request read and
    advanced it in one step), and the app sent every command one at a time (its event loop waits on each, as a
    synchronous client makes it). Then a request's count is decided by one atomic command, so no delay can make
    two requests read the same count, and the app uses one connection at a time, so no pool runs out of them:
    the delay only makes each request wait for the ones before it. Lifting it changes when the rest run, not how
    many are served (only a wait the grader's own delay would have caused, a timeout, is spared)."""
    limiter = sorted(limiter_commands(seen, ip), key=lambda c: c.seq)
    answered = [c for c in limiter if c.reply is not None]
    if len(answered) < COUNTED_ONE_BY_ONE or any(c.name not in SCRIPTS for c in limiter):
        return False
    if [c.reply for c in answered] != [f":{n}" for n in range(1, len(answered) + 1)]:
        return False
    return one_at_a_time(seen, COUNTED_ONE_BY_ONE)


def _decided(replies: Sequence[Reply], expected: int) -> str | None:
    """Why the number served is already settled against `expected` (more served, or too many refused to reach
    it), or None. Once it is, the delay can change nothing the verdict reads."""
    served = sum(1 for r in replies if r.ok)
    refused = len(replies) - served
    if served > expected:
        return f"{served} served, more than {expected}"
    if refused > LOAD_REQUESTS - expected:
        return f"{refused} refused, so fewer than {expected} can be served"
    return None


async def load_burst(ctx: CheckContext, path: str, expected: int) -> LoadBurst:
    """LOAD_REQUESTS concurrent requests from one fresh client on an empty Redis; repeated from another fresh
    client when they straddled a clock-minute boundary (a minute-aligned window may reset in the middle).
    `expected`: how many the app served one after another."""
    for _ in range(3):
        await ctx.redis.flushall()  # earlier requests left counters (a shared one would count them)
        burst = await _one_burst(ctx, path, expected)
        if not crossed_minute(burst.started):
            break
    return burst


async def _one_burst(ctx: CheckContext, path: str, expected: int) -> LoadBurst:
    client = ctx.probe.client()
    ctx.probe.peak_in_flight = ctx.probe.in_flight
    started, clock = time.time(), time.monotonic()
    burst = LoadBurst(client, [], [], 0, started)
    with ExitStack() as latency, ctx.trace.recording() as seen:
        latency.enter_context(ctx.proxy.latency(LOAD_LATENCY_S))
        tasks = [asyncio.create_task(client.get(path)) for _ in range(LOAD_REQUESTS)]

        def decided() -> bool:
            burst.lifted_because = _decided([t.result() for t in tasks if t.done()], expected) or (
                "the limiter's scripts counted one by one, one command at a time"
                if counted_one_by_one(seen, client.ip) else None)
            return burst.lifted_because is not None

        def lift() -> None:
            burst.lifted_at_s = time.monotonic() - clock
            latency.close()

        try:
            await settle(tasks, decided, lift)
        finally:
            for task in tasks:
                task.cancel()  # a no-op once done; a check cut short leaves no request behind
        burst.replies = [t.result() for t in tasks]
    burst.seen = list(seen)
    burst.peak_in_flight = ctx.probe.peak_in_flight
    return burst


def lifted_evidence(burst: LoadBurst) -> dict[str, object]:
    """When and why the delay was lifted, for the check's evidence ({} when it never was)."""
    if burst.lifted_at_s is None:
        return {}
    return {"latency_lifted": f"after {burst.lifted_at_s:.2f} s: {burst.lifted_because}"}
