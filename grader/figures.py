"""The figure a check attaches to its outcome (docs/figures.md): what it saw over time, as plain data the report
draws. Pure: it turns replies and commands into the document's shapes, rounds, caps and counts; it decides
nothing (a figure never changes a verdict) and reads or writes nothing.

Times come in as time.monotonic() readings (a Reply's `started`, a Command's `time` and `replied`: one clock)
and go out in milliseconds, or seconds where the member says so, from the figure's own zero.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from grader.probe import Reply
from grader.proxy_trace import Command

KINDS = ("race", "countdown", "stampede", "round_trips", "event_loop")
COUNTDOWN_EVENTS = ("written", "ttl", "expired", "refilled", "hit", "miss", "request")
VERDICTS = ("pass", "fail", "inconclusive")
# A report stays small whatever a submission sends: at most this many of each per figure.
MAX_REQUESTS = 100
MAX_COMMANDS = 200
MAX_EVENTS = 50
REPLY_PREVIEW = 40  # characters of a command's reply kept

Figure = dict[str, Any]
T = TypeVar("T")


def ms(seconds: float) -> float:
    """Seconds as milliseconds, rounded to 0.1 ms."""
    return round(seconds * 1000, 1)


def seconds(value: float) -> float:
    """Seconds rounded to 0.1 ms, like every time of a figure."""
    return round(value, 4)


def capped(items: Sequence[T], cap: int) -> tuple[list[T], bool]:
    """The first `cap` items, and whether any were left out."""
    return list(items[:cap]), len(items) > cap


def start_of(reply: Reply, default: float) -> float:
    """When the request was sent; `default` for a reply that does not know (built outside the probe)."""
    return reply.started if reply.started is not None else default


def first_moment(replies: Iterable[Reply] = (), commands: Iterable[Command] = ()) -> float | None:
    """The earliest start of a request or arrival of a command: a figure's natural zero (None when nothing)."""
    times = [r.started for r in replies if r.started is not None] + [c.time for c in commands]
    return min(times, default=None)


def reply_label(reply: Reply) -> str:
    """A request's bar label: its status, or "no answer"."""
    return str(reply.status) if reply.status is not None else "no answer"


def request_shape(reply: Reply, zero: float, lane: int, label: str | None = None) -> dict[str, Any]:
    """The document's `request`: when it was sent and answered, from `zero`, in lane `lane`."""
    start = start_of(reply, zero)
    return {
        "lane": lane,
        "start_ms": ms(start - zero),
        "end_ms": ms(start + reply.elapsed - zero),
        "status": reply.status,
        "label": reply_label(reply) if label is None else label,
    }


def reply_preview(reply: str | None) -> str:
    """A command's reply in at most REPLY_PREVIEW characters ("" when none was seen)."""
    if reply is None:
        return ""
    return reply if len(reply) <= REPLY_PREVIEW else reply[: REPLY_PREVIEW - 3] + "..."


# The arguments of a write a label shows: its options (EX 60, NX) and numbers, never the value it writes.
_OPTIONS = frozenset({"EX", "PX", "EXAT", "PXAT", "KEEPTTL", "NX", "XX", "GET"})


def command_label(command: Command) -> str:
    """A command in a few words: name, key, and its short options ("SET products:all EX 60", "SETEX k 60")."""
    after = 1  # the key; a script's arguments follow its name, numkeys and keys
    if command.name.startswith(("EVAL", "FCALL")) and len(command.args) > 1 and command.args[1].isdigit():
        after = 2 + int(command.args[1])
    rest = [a for a in command.args[after:] if a.upper() in _OPTIONS or a.lstrip("-").isdigit()][:4]
    return " ".join([command.name, command.key or "", *rest]).replace("  ", " ").strip()


def command_shape(command: Command, zero: float) -> dict[str, Any]:
    """The document's `command`: its arrival and reply times from `zero`, name, key and reply."""
    return {
        "at_ms": ms(command.time - zero),
        "end_ms": ms(command.replied - zero) if command.replied is not None else None,
        "name": command.name,
        "key": command.key,
        "reply": reply_preview(command.reply),
    }


def _requests(replies: Sequence[Reply], zero: float,
              label: Callable[[Reply], str] = reply_label) -> tuple[list[dict[str, Any]], bool]:
    """One lane per request, in the order they were sent; at most MAX_REQUESTS."""
    kept, cut = capped(replies, MAX_REQUESTS)
    return [request_shape(reply, zero, lane, label(reply)) for lane, reply in enumerate(kept)], cut


def _commands(commands: Sequence[Command], zero: float) -> tuple[list[dict[str, Any]], bool]:
    kept, cut = capped(commands, MAX_COMMANDS)
    return [command_shape(command, zero) for command in kept], cut


# ---- race ---------------------------------------------------------------------------------------------------


def race_figure(replies: Sequence[Reply], commands: Sequence[Command], *, expected_served: int,
                latency_s: float, caption: str) -> Figure:
    """Concurrent requests from one client (one lane each) over the limiter's commands for it."""
    zero = first_moment(replies, commands) or 0.0
    requests, cut_requests = _requests(replies, zero)
    shown, cut_commands = _commands(commands, zero)
    return {
        "kind": "race", "caption": caption, "truncated": cut_requests or cut_commands,
        "expected_served": expected_served, "served": sum(1 for r in replies if r.ok),
        "latency_injected_ms": ms(latency_s), "requests": requests, "commands": shown,
    }


# ---- countdown ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Moment:
    """One event in a key's life, at a time.monotonic() reading (see COUNTDOWN_EVENTS)."""

    at: float
    event: str
    label: str = ""
    ttl_s: float | None = None  # for "ttl": the observed TTL (-1 no expiry, -2 missing)
    status: int | None = None  # for a request: its HTTP status (None: no answer)

    def __post_init__(self) -> None:
        if self.event not in COUNTDOWN_EVENTS:
            raise ValueError(f"unknown countdown event {self.event!r}")


def request_moment(reply: Reply, event: str = "request", label: str | None = None) -> Moment:
    """A request as a countdown event, at the time it was answered (what it saw is what the key held then)."""
    at = start_of(reply, 0.0) + reply.elapsed
    shown = f"{reply.method} {reply.path} -> {reply_label(reply)}" if label is None else label
    return Moment(at, event, shown, status=reply.status)


def ttl_seconds(pttl_ms: int) -> float:
    """PTTL's answer in seconds; -1 (no expiry) and -2 (no key) keep their meaning."""
    return float(pttl_ms) if pttl_ms < 0 else pttl_ms / 1000


def ttl_moment(at: float, ttl_s: float, label: str = "") -> Moment:
    """An observed TTL in seconds (-1 no expiry, -2 missing)."""
    ttl = float(ttl_s) if ttl_s < 0 else round(ttl_s, 3)
    return Moment(at, "ttl", label or (f"TTL {ttl:g} s" if ttl >= 0 else "no TTL" if ttl == -1 else "key missing"),
                  ttl_s=ttl)


def countdown_figure(key: str, moments: Iterable[Moment], *, ttl_limit_s: float | None, caption: str) -> Figure:
    """A key's life on a time axis in seconds from its first write (from the first event when none is a write)."""
    ordered = sorted(moments, key=lambda m: m.at)
    written = [m.at for m in ordered if m.event == "written"]
    zero = written[0] if written else ordered[0].at if ordered else 0.0
    kept, cut = capped(ordered, MAX_EVENTS)
    events = [{"at_s": seconds(m.at - zero), "event": m.event, "ttl_s": m.ttl_s, "status": m.status,
               "label": m.label} for m in kept]
    return {"kind": "countdown", "caption": caption, "truncated": cut, "key": key, "ttl_limit_s": ttl_limit_s,
            "events": events}


# ---- stampede -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpirySeen:
    """One expiry of a cached value under a stream of requests, as time.monotonic() readings."""

    verdict: str  # one of VERDICTS
    early_writes: int
    requests: int
    zero: float  # the expiry's traffic start
    expired_at: float  # when the key's shortened life ran out
    write_times: Sequence[float]  # the value writes (database loads)
    miss_times: Sequence[float]  # the reads that found the key missing


def stampede_figure(expiries: Sequence[ExpirySeen], *, max_writes: int, max_early_writes: int,
                    caption: str) -> Figure:
    """One entry per expiry, in order. The write and miss times of all expiries share MAX_COMMANDS (the counts
    stay whole)."""
    budget = MAX_COMMANDS
    truncated = False
    shown = []
    for index, expiry in enumerate(expiries, 1):
        times: dict[str, list[float]] = {}
        for name, values in (("write_ms", expiry.write_times), ("miss_ms", expiry.miss_times)):
            kept, cut = capped(sorted(values), budget)
            budget -= len(kept)
            truncated = truncated or cut
            times[name] = [ms(t - expiry.zero) for t in kept]
        if expiry.verdict not in VERDICTS:
            raise ValueError(f"unknown expiry verdict {expiry.verdict!r}")
        shown.append({"index": index, "writes": len(expiry.write_times), "early_writes": expiry.early_writes,
                      "misses": len(expiry.miss_times), "requests": expiry.requests, "verdict": expiry.verdict,
                      "expired_at_ms": ms(expiry.expired_at - expiry.zero), **times})
    return {"kind": "stampede", "caption": caption, "truncated": truncated, "max_writes": max_writes,
            "max_early_writes": max_early_writes, "expiries": shown}


# ---- round_trips --------------------------------------------------------------------------------------------


def round_trip_groups(commands: Sequence[Command]) -> list[list[Command]]:
    """Commands grouped by round trip: those that arrived in one read of their connection (the proxy stamps a
    read's commands with one arrival time), in order of arrival."""
    groups: dict[tuple[int, float], list[Command]] = {}
    for command in sorted(commands, key=lambda c: c.seq):
        groups.setdefault((command.conn, command.time), []).append(command)
    return list(groups.values())


def round_trips_figure(commands: Sequence[Command], *, pipelined: bool, caption: str) -> Figure:
    """The commands grouped by round trip (one pipeline = one group; N single commands = N groups)."""
    ordered = sorted(commands, key=lambda c: c.seq)
    zero = ordered[0].time if ordered else 0.0
    budget = MAX_COMMANDS
    groups = []
    for number, group in enumerate(round_trip_groups(ordered), 1):
        if budget == 0:
            break
        kept, _ = capped(group, budget)
        budget -= len(kept)
        groups.append({"round_trip": number, "at_ms": ms(group[0].time - zero),
                       "commands": [command_shape(c, zero) for c in kept]})
    return {"kind": "round_trips", "caption": caption, "truncated": len(ordered) > MAX_COMMANDS,
            "pipelined": pipelined, "commands_total": len(ordered), "groups": groups}


# ---- event_loop ---------------------------------------------------------------------------------------------


def event_loop_figure(replies: Sequence[Reply], *, latency_s: float, serialized: float, max_serialized: float,
                      caption: str) -> Figure:
    """Concurrent requests, one lane each, sent while every Redis reply was delayed by `latency_s`."""
    zero = first_moment(replies) or 0.0
    requests, cut = _requests(replies, zero, lambda r: f"{r.method} {r.path}" if r.status is not None else "no answer")
    return {"kind": "event_loop", "caption": caption, "truncated": cut, "latency_injected_ms": ms(latency_s),
            "serialized_round_trips": round(serialized, 2), "max_serialized": max_serialized, "requests": requests}
