"""Cache stampede: while requests stream in across the cached list's expiry, the database is loaded about once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import Any

from checks.cache.common import PRODUCTS, TTL_SECONDS, Populated, after_first_fill, product_list
from grader.api import (
    SCRIPTS,
    WRITES,
    CheckContext,
    CheckOutcome,
    Command,
    ExpirySeen,
    Figure,
    Reply,
    VirtualClient,
    check,
    commands_text,
    error,
    failed,
    first_moment,
    keys_of,
    parse_json,
    passed,
    raw_value,
    skipped,
    stampede_figure,
    strings_in,
)

STREAM_RATE = 100.0  # requests per second, the steady stream the course text describes
PER_CLIENT = 8  # requests per virtual client: below the limiter's 10 a minute, so no stream request is refused
# Traffic before the harness shortens the key's life: only so that the stream is flowing when the trace starts.
# The run-up to the expiry is the shortened life itself (>= FIRST_LIFE_S, 50+ requests), long after the stream's
# first clients have connected, so the lead-in is not part of what is judged: 0.1 s (10 requests) is enough, and
# each expiry spends 0.2 s less in the timing phase than with 0.3 s.
LEAD_IN_S = 0.1
# Traffic after the key's shortened life ran out. A stampede happens in the first load time after the expiry
# (~0.1 s); every write it causes is in the trace before the stream's last reply is in, however short the tail.
# 0.3 s is still three load times (30 requests at 100 req/s): a lock shows its many misses, no protection its
# many writes, and the check spends 0.2 s less in the timing phase every expiry.
TAIL_S = 0.3
MAX_WRITES = 3  # value writes tolerated per expiry (the course's "about once", with room for a lock race)
# XFetch recomputes before the key expires, each request deciding by chance: the number of recomputations has
# a long tail (with beta 1 about a quarter of expiries see 4+, more on a loaded machine). Writes while no
# request ever found the key missing are XFetch working as designed, so they get a little more room.
MAX_EARLY_WRITES = 5
EXPIRIES = 5  # conclusive expiries observed at most; the first conclusive pass ends the check
MAX_EXPIRIES = 8  # inconclusive ones included
# The first expiry comes with no run-up: a lock or single-flight needs none, so most submissions are judged
# in about a second. A pass ends the check early, and so does a fail only on evidence no correct strategy
# produces (see `Expiry.unprotected`), so a strategy that needs a run-up loses nothing by it.
FIRST_LIFE_S = 0.5
# A stampede only decides the check once this many expiries showed it (see `Expiry.unprotected`). The expiry
# that confirms one is as short as the first: XFetch's mean number of early draws over a life L,
# r*beta*delta*(1 - exp(-L/(beta*delta))), grows with beta*delta and is already >= 5 at L = FIRST_LIFE_S for any
# beta*delta >= 0.05, the bound `Expiry.unprotected` rests on; a longer run-up would add time, not certainty.
UNPROTECTED_EXPIRIES = 2
# How long the harness leaves the key to live in the later expiries, scaled by how long the app takes to load
# the database: XFetch recomputes inside the last beta*delta*ln(rate*beta*delta) seconds (delta = load time),
# so it must get a gradual run-up to the expiry, as it would at the end of a real 60 s TTL.
SHORT_LIFE_MIN_S = 2.0
SHORT_LIFE_MAX_S = 5.0
SHORT_LIFE_PER_LOAD_S = 25.0
EXPIRY_FIELD_WINDOW_S = (30.0, 70.0)  # an absolute expiry stored in the value lies this far ahead of now
# The first fill comes before the check's turn of the machine lock (lock="measuring"), which on a busy machine may
# come late: a list filled longer ago than this is filled again once it does, since an expiry the app keeps in the
# value must still lie EXPIRY_FIELD_WINDOW_S ahead (30 s of its 60 s) for _shorten_life to move it.
FILL_STALE_AFTER_S = 15.0
# The moment the list was computed lies TTL_SECONDS before the key's own expiry, give or take the database's load
# time and the app's way to the write.
COMPUTED_AT_SLACK_S = 3.0
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
    expires_at: float = 0.0  # time.monotonic() when the shortened life ran out (the trace's clock)
    miss_times: tuple[float, ...] = ()  # when the reads that found the key missing arrived

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

    @property
    def unprotected(self) -> bool:
        """Every request that found the key missing loaded the database, more of them than XFetch's tail allows,
        and nothing was recomputed ahead: misses >= writes > MAX_EARLY_WRITES.

        A lock cannot show it: its waiters do not load, so writes < misses (1 write for 8 misses in practice).
        XFetch can, but only by a chance that falls fast with the number of misses. Each of its requests that
        finds the key missing loads and writes; each that draws an early recompute writes too: writes >= misses,
        equal only when no request at all drew one during the key's shortened life. With requests at rate r and
        a load time delta kept in the value, the early draws over a life L form a Poisson process of mean
        N = r * beta * delta * (1 - exp(-L / (beta * delta))), N ~ r * beta * delta since L >= 0.5 s is several
        beta * delta (the expiry kept in the value moves with the TTL, so even the first expiry has that run-up).
        Six misses at 100 req/s mean the stampede lasted >= 0.05 s, about one load time, so delta >= ~0.05:
        with the fixture's beta 3 and delta 0.08, N = 24, P(no draw) = e^-24 ~ 4e-11; with the textbook beta 1 and
        delta 0.05, N = 5, P = e^-5 ~ 0.7 % in one expiry, and (e^-5)^2 ~ 4.5e-5 in two independent ones, which is
        why UNPROTECTED_EXPIRIES are asked for. Plain cache-aside shows it in every expiry (8 misses, 8 writes)."""
        return self.misses >= len(self.writes) > MAX_EARLY_WRITES

    @property
    def never_cached(self) -> bool:
        """The list was written on over half of the requests while none found it missing: the cache is not what
        answers. Decisive in one expiry: once XFetch or a lock wrote the list it lives a full TTL again (with a
        fresh expiry in the value), so neither writes again in the same expiry."""
        return self.misses == 0 and len(self.writes) > max(MAX_EARLY_WRITES, len(self.replies) // 2)

    def summary(self) -> str:
        return (f"key life {self.life_s:.2f} s: {len(self.writes)} writes ({self.early} before the expiry), "
                f"{self.misses} reads found the key missing, {len(self.replies)} requests: {self.verdict}")


def decided_fail(expiries: list[Expiry]) -> bool:
    """Whether the expiries seen so far already fail the check, whatever the later ones would show."""
    return (any(e.never_cached for e in expiries)
            or sum(e.unprotected for e in expiries) >= UNPROTECTED_EXPIRIES)


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


def _as_moment(stamp: object) -> list[tuple[float, Callable[[float], object]]]:
    """The moments (unix time) `stamp` may stand for, each with how to write a moved one the same way: a number of
    seconds or of milliseconds (as a JSON number, or as the text of one: a hash's field), or an ISO 8601 time (one
    without a zone may be local time or UTC)."""
    if isinstance(stamp, bool):
        return []
    if isinstance(stamp, (int, float)):
        kind = int if isinstance(stamp, int) else float
        return [(stamp / scale, lambda t, scale=scale: kind(t * scale)) for scale in (1.0, 1000.0)]
    if not isinstance(stamp, str) or not stamp or len(stamp) > 40:
        return []
    try:
        number = float(stamp)
    except ValueError:
        pass
    else:
        digits = stamp.strip().lstrip("-").isdigit()
        return [(number / scale, lambda t, scale=scale: str(int(t * scale)) if digits else repr(t * scale))
                for scale in (1.0, 1000.0)]
    try:
        parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00") if stamp.endswith("Z") else stamp)
    except ValueError:
        return []

    def iso(t: float, zone: tzinfo) -> str:
        """`t` as the time of day in `zone`, written as `stamp` was (with its zone, or without one)."""
        moved = datetime.fromtimestamp(t, zone)
        text = (moved if parsed.tzinfo is not None else moved.replace(tzinfo=None)).isoformat()
        return text[:-6] + "Z" if stamp.endswith("Z") and text.endswith("+00:00") else text

    if parsed.tzinfo is not None:
        return [(parsed.timestamp(), lambda t: iso(t, parsed.tzinfo))]  # type: ignore[arg-type]
    local = datetime.now().astimezone().tzinfo or timezone.utc
    as_utc = parsed.replace(tzinfo=timezone.utc).timestamp()
    return [(parsed.timestamp(), lambda t: iso(t, local)), (as_utc, lambda t: iso(t, timezone.utc))]


def _moved(stamp: object, life_s: float, remaining_s: float | None, now: float) -> tuple[object, str] | None:
    """`stamp` moved so that the app, reading it, believes the list expires `life_s` from now; None when it is not
    a moment the app's expiry may rest on. Two kinds are: an absolute expiry, about a minute ahead (XFetch's
    "expiry"); and the moment the list was computed, TTL_SECONDS before the key's own expiry (its expiry is that
    plus the TTL: "computed_at"), known by the key's remaining life `remaining_s`."""
    low, high = EXPIRY_FIELD_WINDOW_S
    for moment, write in _as_moment(stamp):
        if low <= moment - now <= high:
            return write(now + life_s), "an expiry"
        if remaining_s is not None and abs(moment - (now + remaining_s - TTL_SECONDS)) <= COMPUTED_AT_SLACK_S:
            return write(moment - (remaining_s - life_s)), "when it was computed"
    return None


def _shorten_metadata(raw: str | bytes, life_s: float, remaining_s: float | None = None) -> tuple[str, str] | None:
    """XFetch may keep its own expiry inside the value ({"value": ..., "expiry": <unix time>}, or the moment the list
    was computed): then a shorter Redis TTL alone would make the key vanish while the app still believes it has a
    minute left. Each such moment in a JSON object, at any depth of objects (not inside lists: those are the
    products), is moved to match a life of `life_s` from now (see _moved). Returns (new value, what changed), or
    None when nothing looks like one."""
    value = parse_json(raw)
    if not isinstance(value, dict):
        return None
    now = time.time()
    changed: list[str] = []

    def move_in(node: dict[str, Any], path: str) -> None:
        for name, item in node.items():
            if isinstance(item, dict):
                move_in(item, f"{path}{name}.")
                continue
            moved = _moved(item, life_s, remaining_s, now)
            if moved is not None:
                node[name] = moved[0]
                changed.append(_change(f"{path}{name}", item, moved))

    move_in(value, "")
    return (json.dumps(value), ", ".join(changed)) if changed else None


def _change(name: str, old: object, moved: tuple[object, str]) -> str:
    return f"{name} ({moved[1]}): {old} -> {moved[0]}"


def _shorten_hash_fields(fields: dict[str, str], life_s: float,
                         remaining_s: float | None) -> tuple[dict[str, str], str] | None:
    """The fields of a hash that hold such a moment (see _moved), moved, and what changed; None when none does.
    XFetch's state may be a hash."""
    now = time.time()
    moved = {name: found for name, text in fields.items() if (found := _moved(text, life_s, remaining_s, now))}
    if not moved:
        return None
    return ({name: str(found[0]) for name, found in moved.items()},
            ", ".join(_change(name, fields[name], found) for name, found in moved.items()))


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
        try:
            while (due := start + n / STREAM_RATE) < self.stop_at:
                if n and n % PER_CLIENT == 0:
                    clients.append(self.ctx.probe.client())
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                tasks.append(asyncio.create_task(clients[-1].get(PRODUCTS)))
                n += 1
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()  # a no-op once done; a stream cut short leaves no request behind
            # Hundreds of clients per check: their sockets are closed now, not at the end of the run.
            for client in clients:
                await client.aclose()


async def _one_expiry(ctx: CheckContext, key: str, markers: list[str], life_s: float) -> Expiry:
    """Traffic flows; the harness shortens the key's life to `life_s`; traffic goes on until TAIL_S after it."""
    loop = asyncio.get_running_loop()
    stream = _Stream(ctx)
    task = asyncio.create_task(stream.run())
    try:
        await asyncio.sleep(LEAD_IN_S)
        with ctx.trace.recording() as seen:
            metadata, expires_at = await _shorten_life(ctx, key, life_s)
            stream.stop_at = loop.time() + life_s + TAIL_S
            replies = await task
    finally:
        if not task.done():  # the check ended early: the stream must not outlive it
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    commands = list(seen)
    writes = [c for c in commands if _is_value_write(c, key, markers)]
    early = sum(1 for c in writes if c.time < expires_at)
    misses = sum(1 for c in commands if _is_miss(c, key))
    miss_times = tuple(c.time for c in commands if _is_miss(c, key))
    return Expiry(writes, early, misses, replies, metadata, life_s, expires_at, miss_times)


async def _shorten_life(ctx: CheckContext, key: str, life_s: float) -> tuple[str | None, float]:
    """The key is left `life_s` to live (and an expiry kept in its value, or in its hash's fields, is moved to match):
    returns what changed in the value, and the earliest time the key can expire.
    """
    kind = await ctx.redis.type(key)
    remaining_ms = await ctx.redis.pttl(key)
    remaining_s = remaining_ms / 1000 if remaining_ms > 0 else None
    # The trace's clock is time.monotonic(), like the loop's: the key can expire no earlier than this.
    expires_at = time.monotonic() + life_s
    if kind == "string":
        # The value's bytes as stored: a pickle is not text (json.loads of it is a ValueError, not a crash).
        shortened = _shorten_metadata(await raw_value(ctx.redis, key), life_s, remaining_s)
        if shortened is not None:
            await ctx.redis.set(key, shortened[0], px=int(life_s * 1000))
            return shortened[1], expires_at
    elif kind == "hash":
        moved_fields = _shorten_hash_fields(await ctx.redis.hgetall(key), life_s, remaining_s)
        if moved_fields is not None:
            async with ctx.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=moved_fields[0])
                pipe.pexpire(key, int(life_s * 1000))
                await pipe.execute()
            return moved_fields[1], expires_at
    await ctx.redis.pexpire(key, int(life_s * 1000))
    return None, expires_at


def stampede_picture(expiries: list[Expiry], key: str) -> Figure:
    """Each observed expiry: when the list was written and when reads found it missing, from its traffic start."""
    seen = [ExpirySeen(e.verdict, e.early, len(e.replies), first_moment(e.replies) or e.expires_at - e.life_s,
                       e.expires_at, [c.time for c in e.writes], e.miss_times) for e in expiries]
    writes = " / ".join(str(len(e.writes)) for e in expiries)
    misses = " / ".join(str(e.misses) for e in expiries)
    caption = (f"{len(expiries)} expiries of '{key}' with ~{STREAM_RATE:g} requests/s flowing: the list was written "
               f"{writes} times while {misses} reads found it missing (at most {MAX_WRITES} writes tolerated).")
    return stampede_figure(seen, max_writes=MAX_WRITES, max_early_writes=MAX_EARLY_WRITES, caption=caption)


@check("cache.stampede", title="A burst across the cache expiry loads the database about once", level="advanced",
       requires=("cache.populates",), timeout=120.0, timing=True, lock="measuring",
       requirement='When the cached list expires under load, the database is read about once (a lock with `SET NX PX`, or probabilistic early recomputation)')
@after_first_fill
async def stampede(ctx: CheckContext, client: VirtualClient, populated: Populated, key: str) -> CheckOutcome:
    filled_at = time.monotonic()  # the first GET, just made, wrote the list
    markers = [s for s in strings_in(product_list(populated.reply.body) or []) if len(s) >= 3][:3]
    # The first GET loaded the database: its time bounds the app's load time (XFetch's delta).
    run_up_life_s = min(SHORT_LIFE_MAX_S, max(SHORT_LIFE_MIN_S, SHORT_LIFE_PER_LOAD_S * populated.reply.elapsed))
    expiries: list[Expiry] = []
    # The first fill above runs beside other gradings' timing checks; the expiries are what this check times.
    async with ctx.measuring():
        if time.monotonic() - filled_at > FILL_STALE_AFTER_S:
            await ctx.redis.delete(key)  # the loop fills it again
        for _ in range(MAX_EXPIRIES):
            if not await ctx.redis.exists(key):
                await ctx.probe.client().get(PRODUCTS)  # refill, so every expiry starts from a warm key
            confirming = all(e.unprotected for e in expiries)  # the first expiry too (nothing to confirm yet)
            expiry = await _one_expiry(ctx, key, markers, FIRST_LIFE_S if confirming else run_up_life_s)
            expiries.append(expiry)
            if expiry.verdict == PASS or sum(e.verdict != UNSURE for e in expiries) >= EXPIRIES:
                break
            if decided_fail(expiries):
                break  # evidence no later expiry can outweigh (no correct strategy produces it)
            if sum(r.status == 429 for r in expiry.replies) > len(expiry.replies) // 10:
                break  # a limiter shared by every client refuses the stream: nothing to measure (see below)
    verdicts = [e.verdict for e in expiries]
    figure = stampede_picture(expiries, key)
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
                       "the stampede cannot be measured", applicable=False, figure=figure, **evidence)
    if shown.replies and len(failures) > len(shown.replies) // 10:
        return failed(f"during the stream across the expiry {len(failures)} of {len(shown.replies)} GET {PRODUCTS} "
                      f"failed ({failures[0]})", figure=figure, **evidence)
    if PASS in verdicts:
        return passed(f"with ~{STREAM_RATE:g} req/s flowing across the expiry of '{key}', the list was written "
                      f"{len(shown.writes)} time(s) while {shown.misses} read(s) found it missing: the database was "
                      "loaded about once", figure=figure, **evidence)
    if FAIL not in verdicts:
        return error(f"in {len(expiries)} expiries of '{key}' too few requests found it missing to tell whether the "
                     "app protects the database (the machine may be too busy)", figure=figure,
                     **evidence)
    failing = [e for e in expiries if e.verdict == FAIL]
    counts = " / ".join(str(len(e.writes)) for e in failing)
    why = ("the list is written again on nearly every request, so the cache is never what answers"
           if all(e.misses == 0 and len(e.writes) > len(e.replies) // 2 for e in failing)
           else "every request that found the key missing loaded the database (a cache stampede)")
    return failed(
        f"with ~{STREAM_RATE:g} req/s flowing across the expiry of '{key}', the list was written {counts} times in "
        f"{len(failing)} expiries (at most {MAX_WRITES} expected): {why}",
        figure=figure, **evidence,
    )
