"""The rate limiter: more than 10 requests a minute from one IP get 429, counted in Redis per IP.

Only ratelimit.threshold judges that the limit is 10; the other checks judge their own property against the
limit the app itself enforces, so one wrong limit costs one check."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from checks.limited_route import on_limited_route
from checks.ratelimit_burst import LOAD_LATENCY_S, LOAD_REQUESTS, LoadBurst, lifted_evidence, load_burst
from checks.ratelimit_figures import race_picture
from grader.api import (
    EXPIRES,
    SCRIPTS,
    WRITES,
    CheckContext,
    CheckOutcome,
    Command,
    Fault,
    Reply,
    VirtualClient,
    all_keys,
    check,
    commands_text,
    crossed_minute,
    failed,
    first_status,
    keys_of,
    passed,
    points_at,
    requests_text,
    skipped,
)

LIMIT = 10
# The Redis calls a limiter makes: failures point at them in the student's code.
LIMITER_CALLS = ("eval", "evalsha", "register_script", "incr", "incrby")
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


async def sequential_burst(ctx: CheckContext, path: str, done: Callable[[list[Reply]], bool]) -> Burst:
    """Requests one after another from one fresh client until `done(replies)`; repeated from another fresh client,
    on an empty Redis, when they straddled a clock-minute boundary (a minute-aligned window may reset in the middle
    of them). Empty, because a limiter shared by every client would otherwise still count the first attempt."""
    for _ in range(3):
        await ctx.redis.flushall()
        client = ctx.probe.client()
        started = time.time()
        replies: list[Reply] = []
        with ctx.trace.recording() as commands:
            while not done(replies):
                replies.append(await client.get(path))
        if not crossed_minute(started):
            break
    return Burst(client, replies, list(commands))


async def blocked_burst(ctx: CheckContext, path: str, count: int = LIMIT + 1) -> Burst:
    """`count` requests from one fresh client (sequential_burst)."""
    return await sequential_burst(ctx, path, lambda replies: len(replies) >= count)


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


async def counter_keys(ctx: CheckContext, ip: str, commands: Sequence[Command]) -> list[str]:
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


# A hint of the check's own where what was seen calls for another fix than the rubric's hint describes.
HINT_TOO_EARLY = ("INCR returns the count including this request: serve while it is <= 10 and answer 429 when it "
                  "is > 10 (`count >= 10` or a limit of 9 refuses the 10th request).")
HINT_TOO_LATE = "Answer 429 from the 11th request within a minute: refuse when the count INCR returned is > 10."


@check("ratelimit.threshold", title="Requests 1-10 from one client pass, the 11th gets 429", level="basic",
       requires=("app.uses_redis_url",),
       requirement='More than 10 requests a minute from one IP get `429 Too Many Requests`: requests 1-10 are served, the 11th is refused')
@points_at(*LIMITER_CALLS)
@on_limited_route(judges_absence=True)
async def threshold(ctx: CheckContext, path: str) -> CheckOutcome:
    burst = await blocked_burst(ctx, path)
    problem = _threshold_problem(burst)
    if problem:
        early = first_status(burst.replies[:LIMIT], TOO_MANY) is not None
        last = burst.replies[LIMIT]
        hint = HINT_TOO_EARLY if early else (HINT_TOO_LATE if last.ok else None)
        return failed(problem, hint=hint, **_burst_evidence(burst))
    return passed(f"requests 1-{LIMIT} from {burst.client.ip} were served and request {LIMIT + 1} got 429",
                  **_burst_evidence(burst))


# Per-IP independence, the window's end and atomicity hold or not whatever the limit is: they are judged
# against the limit the app itself enforces (ratelimit.threshold alone judges whether that limit is 10).
PROBE_MAX = 3 * LIMIT  # sequential requests sent at most to find where the app starts refusing


@dataclass
class OwnLimit:
    """How many sequential requests from one fresh client the app served before it first refused one."""

    burst: Burst
    served: int
    refusal: Reply | None  # the first refused reply (any status but 2xx); None when none was refused

    def unjudgeable(self, what: str) -> str | None:
        """Why `what` cannot be judged from this burst, or None when it can."""
        ip = self.burst.client.ip
        if self.refusal is None:
            return (f"the app served all {PROBE_MAX} sequential requests from {ip} and refused none, so {what} "
                    "cannot be judged (see ratelimit.threshold)")
        if self.served == 0:
            seen = self.refusal.status if self.refusal.error is None else self.refusal.error
            return (f"the app refused the very first request from {ip} ({seen}), so {what} cannot be judged "
                    "(see ratelimit.threshold)")
        return None

    @property
    def summary(self) -> str:
        assert self.refusal is not None
        seen = self.refusal.status if self.refusal.error is None else self.refusal.error
        return f"{self.served} served, then {seen}"


async def own_limit(ctx: CheckContext, path: str) -> OwnLimit:
    """Sequential requests from one fresh client until the first refusal, at most PROBE_MAX (sequential_burst)."""
    burst = await sequential_burst(
        ctx, path, lambda replies: len(replies) >= PROBE_MAX or bool(replies and not replies[-1].ok))
    replies = burst.replies
    refusal = replies[-1] if not replies[-1].ok else None
    served = len(replies) - 1 if refusal is not None else len(replies)
    return OwnLimit(burst, served, refusal)


def _own_limit_key(path: str) -> tuple[str, str]:
    return ("ratelimit.own_limit", path)


async def known_own_limit(ctx: CheckContext, path: str) -> OwnLimit:
    """own_limit() as ratelimit.per_ip measured it in this grading, or measured now when it did not (--only). The
    sequential limit is what the app does, not what Redis holds, so it holds for the whole grading (a burst that
    disagrees with it has it measured again: see atomic_under_load), and the sequential requests stay out of the
    timing checks' turns."""
    return await ctx.once(_own_limit_key(path), lambda: own_limit(ctx, path))


@check("ratelimit.per_ip", title="While one client is blocked, another IP is still served", level="basic",
       requires=("app.uses_redis_url",),
       requirement='The limit counts each client IP on its own: while one IP is blocked, another is served')
@points_at(*LIMITER_CALLS)
@on_limited_route()
async def per_ip(ctx: CheckContext, path: str) -> CheckOutcome:
    limit = await own_limit(ctx, path)  # measured now: the next request relies on this client being blocked

    async def measured() -> OwnLimit:
        return limit

    await ctx.once(_own_limit_key(path), measured)  # for ratelimit.atomic_under_load (known_own_limit)
    why = limit.unjudgeable("per-client counting")
    if why:
        return skipped(why, **_burst_evidence(limit.burst))
    assert limit.refusal is not None
    blocked = limit.burst.client.ip
    other = ctx.probe.client()
    reply = await other.get(path)
    evidence = {"requests": requests_text(limit.burst.replies[-2:] + [reply]), "own_limit": limit.summary}
    if reply.status == limit.refusal.status:
        return failed(f"{other.ip} got {reply.status} on its first request because {blocked} was blocked "
                      f"({limit.summary}): the limiter does not count per client IP", **evidence,
                      counter_keys=await counter_keys(ctx, blocked, limit.burst.commands))
    return passed(f"{other.ip} was served ({reply.status}) while {blocked} was blocked ({limit.summary})",
                  **evidence)


@check("ratelimit.key_format", title="The counter key is rate:ip:<ip>", level="basic",
       requires=("app.uses_redis_url",),
       requirement='The counter key is `rate:ip:<ip>`')
@points_at(*LIMITER_CALLS)
@on_limited_route()
async def key_format(ctx: CheckContext, path: str) -> CheckOutcome:
    client = ctx.probe.client()
    with ctx.trace.recording() as commands:
        reply = await client.get(path)
    expected = f"rate:ip:{client.ip}"
    touched = {k for c in commands for k in keys_of(c)}
    if expected in touched or await ctx.redis.exists(expected):
        return passed(f"the counter key is '{expected}'", key=expected)
    return failed(
        f"no key '{expected}' after a request from {client.ip}; the counter keys seen were: "
        + (", ".join(await counter_keys(ctx, client.ip, commands)) or "none"),
        requests=[str(reply)], redis=commands_text(commands),
    )


# ---- Advanced ---------------------------------------------------------------------------------------------

SCRIPT_PROBES = 3  # requests whose limiter traffic is inspected for a script call (all below the limit)
CRASH_PROBES = 3
COUNTING = WRITES | {"ZREMRANGEBYSCORE"}  # commands that change a counter (EXPIRE-family ones are separate)


def _names_ip(command: Command, ip: str) -> bool:
    """A script call run for client `ip`: one of its keys or arguments names the address (args[0] is the
    script body, its sha or the function name, never the client)."""
    return any(ip in arg for arg in command.args[1:])


def _separate(commands: list[Command], ip: str) -> list[Command]:
    """Counter commands for `ip` sent outside any script: what a non-Lua limiter does instead."""
    return [c for c in commands if c.name not in SCRIPTS and c.name not in ("MULTI", "EXEC")
            and any(ip in k for k in keys_of(c))]


def _limiter_scripts(per_request: list[list[Command]], ip: str, keys: list[str],
                     everything: list[Command]) -> list[list[Command]]:
    """The script calls of each request that are the limiter's. Tied to the request: the script names the
    client's address or declares one of its counter keys. When none is tied but every request ran a script and
    no command outside a script names the client, the scripts are the limiter's (its keys name no client and
    hold no plain count - a hashed key, a token bucket in a hash)."""
    ran = [[c for c in commands if c.name in SCRIPTS] for commands in per_request]
    tied = [[c for c in found if _names_ip(c, ip) or set(keys_of(c)) & set(keys)] for found in ran]
    if not any(tied) and all(ran) and not _separate(everything, ip):
        return ran
    return tied


@check("ratelimit.lua", title="The check-and-increment runs as one Lua script per request", level="advanced",
       requires=("app.uses_redis_url",),
       requirement='The check-and-increment runs as one Lua script (`EVAL`, `EVALSHA` or `FCALL`) per request, not as separate `INCR`/`GET`/`SET`/`EXPIRE` commands')
@points_at(*LIMITER_CALLS)
@on_limited_route()
async def lua(ctx: CheckContext, path: str) -> CheckOutcome:
    client = ctx.probe.client()
    per_request: list[tuple[Reply, list[Command]]] = []
    for _ in range(SCRIPT_PROBES):
        with ctx.trace.recording() as commands:
            reply = await client.get(path)
        per_request.append((reply, list(commands)))
    everything = [c for _, commands in per_request for c in commands]
    keys = await counter_keys(ctx, client.ip, everything)
    evidence: dict[str, object] = {
        "requests": requests_text(r for r, _ in per_request),
        "redis": commands_text(everything),
    }
    scripts = _limiter_scripts([commands for _, commands in per_request], client.ip, keys, everything)
    missing = [n for n, found in enumerate(scripts, 1) if not found]
    if missing:
        instead = _separate(everything, client.ip) or [c for c in everything if set(keys_of(c)) & set(keys)]
        atomic_only = any(c.in_multi for c in instead)
        what = (" ran instead: " + "; then ".join(str(c) for c in instead[:4])) if instead else (
            " sent no command naming the client's counter")
        ran_some = any(c.name in SCRIPTS for c in per_request[missing[0] - 1][1])
        return failed(
            f"request {missing[0]} from {client.ip} ran "
            + ("Lua scripts, but none naming the client or its counter;" if ran_some
               else "no Lua script (EVAL/EVALSHA/FCALL) for its counter;")
            + what + (" (MULTI/EXEC is atomic, but it is not a Lua script: the check and the increment still "
                      "happen in two steps)" if atomic_only else ""),
            counter_keys=keys, **evidence,
        )
    # The script runs, but the count must not also change outside it (check in Lua, increment outside = race).
    outside = [c for c in _separate(everything, client.ip) if c.name in COUNTING]
    if outside:
        return failed(
            f"a Lua script runs for {client.ip}, but the counter is also changed outside it: {outside[0]} - "
            "the check and the increment must both happen inside the script",
            counter_keys=keys, **evidence,
        )
    script = scripts[0][0]
    return passed(
        f"each of {SCRIPT_PROBES} requests from {client.ip} ran one {script.name} for its counter "
        f"({', '.join(keys_of(script)) or 'keys passed as arguments'})",
        counter_keys=keys, **evidence,
    )


HINT_FEWER_UNDER_LOAD = ("Under concurrent load the limiter served fewer requests than one after another: look at "
                         "the statuses - an error or a timeout under load (a pool too small, a blocking call) "
                         "refuses requests the limit would serve.")


@check("ratelimit.atomic_under_load",
       title="50 concurrent requests from one IP: as many served as when sent one by one, the rest refused",
       level="advanced", requires=("app.uses_redis_url",), timing=True, lock="measuring",
       requirement='50 concurrent requests from one IP get exactly as many served as when sent one by one (10), the rest `429`: no race between reading and writing the counter')
@points_at(*LIMITER_CALLS)
@on_limited_route()
async def atomic_under_load(ctx: CheckContext, path: str) -> CheckOutcome:
    # The limit the app enforces on sequential requests is the yardstick: an atomic limiter serves exactly as
    # many when they arrive at once, whatever that limit is (ratelimit.threshold judges whether it is 10).
    limit = await known_own_limit(ctx, path)
    why = limit.unjudgeable("what concurrent requests should get")
    if why:
        return skipped(why, requests=requests_text(limit.burst.replies, limit=12))
    burst = await _timed_burst(ctx, path, limit.served)
    if _served(burst) != limit.served:
        # The yardstick may be ratelimit.per_ip's, measured before Redis went away (health.graceful) and a fault
        # (ratelimit.crash_safe), possibly beside another grading's load: a burst that disagrees with it is judged
        # against the limit as the app enforces it now, and only a submission that would fail pays for that.
        now = await own_limit(ctx, path)
        if now.served != limit.served:
            limit = now
            why = limit.unjudgeable("what concurrent requests should get")
            if why:
                return skipped(why, requests=requests_text(limit.burst.replies, limit=12))
            burst = await _timed_burst(ctx, path, limit.served)
    client, replies, commands = burst.client, burst.replies, burst.commands
    served = _served(burst)
    statuses: dict[str, int] = {}
    for r in replies:
        status = str(r.status) if r.error is None else "no answer"
        statuses[status] = statuses.get(status, 0) + 1
    evidence = {
        "sequential": f"{limit.summary} (from {limit.burst.client.ip}, one request at a time)",
        "statuses": statuses,
        "peak_in_flight": burst.peak_in_flight,
        "latency_injected_s": LOAD_LATENCY_S,
        **lifted_evidence(burst),
        "requests": requests_text(replies, limit=12),
        "redis": commands_text(commands, limit=15),
    }
    figure = race_picture(replies, commands, client.ip, expected=limit.served, latency_s=LOAD_LATENCY_S,
                          lifted_at_s=burst.lifted_at_s)
    at_once = (f"{LOAD_REQUESTS} concurrent requests from {client.ip} ({burst.peak_in_flight} in flight at "
               f"once): {served} served")
    if served == limit.served:
        return passed(f"{at_once}, as many as one after another; the others got {_others(statuses)}",
                      figure=figure, **evidence)
    message = f"{at_once}, but one after another the app served {limit.served}"
    if served > limit.served:
        return failed(message + " - concurrent requests read the same count before any of them wrote it back "
                      "(a race)", figure=figure, **evidence)
    message += f"; the others got {_others(statuses)}"
    if statuses.get("500"):
        message += MIDDLEWARE_500
    return failed(message, hint=HINT_FEWER_UNDER_LOAD, figure=figure, **evidence)


async def _timed_burst(ctx: CheckContext, path: str, expected: int) -> LoadBurst:
    async with ctx.measuring():  # the sequential limit before it is no timing; the concurrent burst is
        return await load_burst(ctx, path, expected)


def _served(burst: LoadBurst) -> int:
    return sum(1 for r in burst.replies if r.ok)


def _others(statuses: dict[str, int]) -> str:
    """The refused part of a burst, e.g. "40 x 429"."""
    refused = [f"{count} x {status}" for status, count in sorted(statuses.items()) if not status.startswith("2")]
    return ", ".join(refused) or "nothing else"


async def _with_lost_expiry(ctx: CheckContext, path: str, client: VirtualClient,
                            fault: Fault) -> tuple[list[Reply], list[Command]]:
    """CRASH_PROBES requests from `client` while `fault` drops the expiry it matches."""
    with ctx.proxy.fault(fault), ctx.trace.recording() as commands:
        replies = [await client.get(path) for _ in range(CRASH_PROBES)]
    return replies, list(commands)


@check("ratelimit.crash_safe", title="A lost EXPIRE never leaves a counter without a TTL", level="advanced",
       requires=("app.uses_redis_url",),
       requirement='A counter never lives without a TTL, even when the expiry after the increment is lost (set both in one script)')
@points_at(*LIMITER_CALLS)
@on_limited_route()
async def crash_safe(ctx: CheckContext, path: str) -> CheckOutcome:
    client = ctx.probe.client()
    ip = client.ip
    # The fault: the first EXPIRE-family command on this client's counter, sent on its own (inside MULTI the
    # proxy never drops), is answered with an error and never reaches Redis - as if the app died between
    # the increment and the expiry. Later requests may repair the TTL: a limiter that does is crash safe.
    replies, commands = await _with_lost_expiry(
        ctx, path, client, Fault(lambda c: c.name in EXPIRES and bool(c.args) and ip in c.args[0], times=1))
    keys = await counter_keys(ctx, ip, commands)
    if keys and not any(ip in k for k in keys):
        # The counter does not name the address (hashed or shared): drop the first expiry of those keys instead.
        await ctx.redis.flushall()
        client = ctx.probe.client()
        named = set(keys)
        replies, commands = await _with_lost_expiry(
            ctx, path, client, Fault(lambda c: c.name in EXPIRES and bool(c.args) and c.args[0] in named, times=1))
        keys = await counter_keys(ctx, client.ip, commands)
    dropped = [c for c in commands if c.dropped]
    evidence: dict[str, object] = {
        "requests": requests_text(replies),
        "redis": commands_text(commands),
        "dropped": [str(c) for c in dropped],
    }
    if not keys:
        return failed(f"after {CRASH_PROBES} requests from {client.ip} no counter key could be found in Redis",
                      **evidence)
    ttls = {k: await ctx.redis.ttl(k) for k in keys}
    evidence["counter_ttls"] = ttls
    endless = [k for k, t in ttls.items() if t == -1]
    if endless and not dropped:
        return failed(f"counter '{endless[0]}' has no TTL at all (TTL -1) after {CRASH_PROBES} requests from "
                      f"{client.ip}: nothing ever expires it, so a blocked client stays blocked forever", **evidence)
    if endless:
        return failed(
            f"'{dropped[0]}' was lost (the proxy answered it with an error, as if the app crashed after the "
            f"increment) and counter '{endless[0]}' is left with TTL -1: {client.ip} would stay blocked forever - "
            "set the TTL in the same Lua script as the increment",
            **evidence,
        )
    how = (f"the dropped '{dropped[0]}' was repaired by a later request" if dropped
           else "no separate EXPIRE was sent, so nothing could be lost between increment and expiry")
    return passed(f"every counter key of {client.ip} has a TTL ({how})", **evidence)
