"""The pictures of the rate limiter's checks: the concurrent burst of ratelimit.atomic_under_load (a race) and
the counter's life in ratelimit.window (a countdown). They describe what the checks saw; verdicts are the
checks' own."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from grader.api import (
    SCRIPTS,
    WRITES,
    Command,
    Figure,
    Moment,
    Reply,
    command_label,
    countdown_figure,
    keys_of,
    race_figure,
    request_moment,
    ttl_moment,
)

WINDOW_S = 60
# How a limiter reads the count before deciding (a GET-then-SET limiter's race shows as several of these
# between two writes).
COUNT_READS = frozenset({"GET", "HGET", "ZCARD", "LLEN", "ZCOUNT"})


def _race_note(commands: Sequence[Command]) -> str:
    """What the limiter's commands show of the race, in words ("" when they show nothing particular)."""
    run, longest, read = 0, 0, ""
    for command in sorted(commands, key=lambda c: c.seq):
        if command.name in COUNT_READS:
            run, read = run + 1, command.name
        elif command.name in WRITES:
            # Reads between two writes all saw the same count; reads no write followed are refusals.
            longest, run = max(longest, run), 0
    if longest >= 2:
        return f"; {longest} {read}s read the same count before the next write"
    scripts = [c for c in commands if c.name in SCRIPTS]
    if scripts:
        return f"; each of the {len(scripts)} {scripts[0].name} calls read and wrote the count in one step"
    return ""


def race_picture(replies: Sequence[Reply], commands: Sequence[Command], ip: str, *, expected: int,
                 latency_s: float, lifted_at_s: float | None = None) -> Figure:
    """The concurrent burst from `ip` over the limiter's `commands` for it. `lifted_at_s`: when the delay was
    lifted (the outcome being settled), from the burst's start."""
    served = sum(1 for r in replies if r.ok)
    delayed = (f"every Redis reply delayed {latency_s * 1000:g} ms" if lifted_at_s is None else
               f"every Redis reply delayed {latency_s * 1000:g} ms for the first {lifted_at_s * 1000:.0f} ms")
    caption = (f"{len(replies)} requests at once from {ip}, {delayed}: "
               f"{served} served where one after another {expected} were" + _race_note(commands))
    return race_figure(replies, commands, expected_served=expected, latency_s=latency_s, caption=caption)


@dataclass
class CounterLife:
    """The life of a client's counter as ratelimit.window sees it: its first write, the TTLs read right after
    the first request (at `observed`), the requests, and the moment the harness made it expire."""

    ip: str
    keys: list[str]
    seen: Sequence[Command]  # the Redis commands since the first request
    ttls: dict[str, int]
    observed: float = field(default_factory=time.monotonic)
    expired: float | None = None

    def expire_now(self) -> None:
        self.expired = time.monotonic()

    def figure(self, replies: Sequence[Reply]) -> Figure:
        key = self.keys[0]
        moments = [request_moment(r) for r in replies]
        write = next((c for c in self.seen if (c.name in WRITES or c.name in SCRIPTS) and key in keys_of(c)), None)
        if write is not None:
            moments.append(Moment(write.time, "written", command_label(write)))
        moments += [ttl_moment(self.observed, ttl, f"{k}: TTL {ttl} s" if len(self.ttls) > 1 else "")
                    for k, ttl in self.ttls.items()]
        if self.expired is not None:
            moments.append(Moment(self.expired, "expired", "the harness made the counter expire"))
        return countdown_figure(key, moments, ttl_limit_s=WINDOW_S, caption=self._caption(replies))

    def _caption(self, replies: Sequence[Reply]) -> str:
        ttl = self.ttls[self.keys[0]]
        words = [f"Counter '{self.keys[0]}' of {self.ip}: "
                 + (f"TTL {ttl} s" if ttl >= 0 else "no TTL (-1)") + " right after the first request"]
        refused = next((n for n, r in enumerate(replies) if not r.ok), None)
        if refused is not None and (self.expired is None or refused < len(replies) - 1):
            last = replies[refused]
            words.append(f"{refused} requests served, then {last.status if last.error is None else 'no answer'}")
        elif len(replies) > 1:
            words.append(f"{len(replies)} requests served, none refused")
        if self.expired is not None and replies:
            after = replies[-1]
            words.append("the harness made it expire and the next request got "
                         + (str(after.status) if after.error is None else "no answer"))
        return "; ".join(words) + "."
