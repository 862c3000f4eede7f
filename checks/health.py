"""GET /health pings Redis, and says so when Redis is gone: at all (basic), and deliberately (advanced)."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from grader.api import (
    CheckContext,
    CheckOutcome,
    Reply,
    VirtualClient,
    check,
    commands_text,
    failed,
    missing_route,
    parse_json,
    passed,
    points_at,
    requests_text,
    skipped,
)

ROUTE = "/health"
# How long /health may take to answer while Redis is unreachable before it counts as hanging.
DOWN_ANSWER_TIMEOUT = 8.0
# Words of a body that says what is down (case-insensitive): Redis named, or the state named.
NAMES_REDIS = ("redis",)
NOT_FOUND = (404, 405)


def absent_route(ctx: CheckContext, reply: Reply) -> str | None:
    """'GET /health is not a route; the app has: ...' when the app answered 404/405 and its OpenAPI lacks the
    route (a route left out of the schema still counts as there)."""
    return missing_route(ctx.openapi, "get", ROUTE) if reply.status in NOT_FOUND else None


@dataclass
class DownAnswer:
    reply: Reply | None  # None: no answer within DOWN_ANSWER_TIMEOUT
    evidence: dict[str, object]

    @property
    def hangs(self) -> bool:
        return self.reply is None or self.reply.error is not None or self.reply.elapsed > DOWN_ANSWER_TIMEOUT


async def answer_while_down(ctx: CheckContext, client: VirtualClient, up: Reply) -> DownAnswer:
    """GET /health while the app's Redis connections are closed and new ones refused."""
    with ctx.proxy.unreachable():
        try:
            down: Reply | None = await asyncio.wait_for(client.get(ROUTE), DOWN_ANSWER_TIMEOUT + 2)
        except asyncio.TimeoutError:
            down = None
    evidence: dict[str, object] = {"requests": requests_text([up] + ([down] if down else [])),
                                   "healthy_body": up.text[:300]}
    if down is not None:
        evidence["unhealthy_body"] = down.text[:300]
    return DownAnswer(down, evidence)


def _leaves(value: Any, path: str = "") -> dict[str, str]:
    """A JSON value as path -> leaf ("redis" -> '"up"', "checks.0.ok" -> "true"); an empty list or object is a leaf."""
    if isinstance(value, dict) and value:
        return {k: v for name, item in value.items() for k, v in _leaves(item, f"{path}.{name}".lstrip(".")).items()}
    if isinstance(value, list) and value:
        return {k: v for i, item in enumerate(value) for k, v in _leaves(item, f"{path}.{i}".lstrip(".")).items()}
    return {path or "(body)": json.dumps(value, sort_keys=True)}


def _differ(a: dict[str, str], b: dict[str, str]) -> set[str]:
    return {path for path in a.keys() | b.keys() if a.get(path) != b.get(path)}


def stable_changes(healthy: str, healthy_again: str, down: str) -> tuple[list[str], list[str]]:
    """What a 2xx answer while Redis is down says differently from a healthy one: the (changed, volatile) parts.

    Volatile is what differs between two healthy answers (a timestamp, an uptime, a request id): a body that
    changes only there says nothing about Redis. JSON is compared field by field; other text as a whole, its digits
    ignored when two healthy answers differ only in them."""
    bodies = [parse_json(text) for text in (healthy, healthy_again, down)]
    if all(body is not None for body in bodies):
        first, again, now = (_leaves(body) for body in bodies)
        volatile = _differ(first, again)
        return sorted(_differ(first, now) - volatile), sorted(volatile)
    if healthy == healthy_again:
        return (["(body)"] if down != healthy else []), []
    digitless = [re.sub(r"\d+", "0", text) for text in (healthy, healthy_again, down)]
    if digitless[0] == digitless[1]:
        return (["(body)"] if digitless[2] != digitless[0] else []), ["(digits)"]
    return (["(body)"] if down != healthy else []), ["(body)"]  # no stable healthy answer to compare with


def _hangs(down: DownAnswer) -> CheckOutcome:
    return failed(f"with Redis unreachable GET {ROUTE} gave no answer within {DOWN_ANSWER_TIMEOUT:g} s (it hangs)",
                  **down.evidence)


@check(
    "health.redis_ping",
    title="GET /health pings Redis and reports it down when unreachable",
    level="basic",
    requires=("app.uses_redis_url",),
    requirement='`GET /health` sends Redis a `PING` and answers 200 while Redis is up; while Redis is unreachable it answers within 8 seconds with a status that is not 2xx (or a body that says Redis is down)')
@points_at("GET /health", "ping")
async def redis_ping(ctx: CheckContext) -> CheckOutcome:
    client = ctx.probe.client()
    with ctx.trace.recording() as commands:
        up = await client.get(ROUTE)
    absent = absent_route(ctx, up)
    if absent:
        return failed(absent, requests=[str(up)])
    if up.status != 200:
        return failed(
            f"GET {ROUTE} answered {up.status if up.error is None else up.error} while Redis was up, expected 200",
            requests=[str(up)], body=up.text[:300], redis=commands_text(commands),
        )
    if not any(c.name == "PING" for c in commands):
        return failed(
            f"GET {ROUTE} answered 200 but sent no PING to Redis, so it cannot know whether Redis is up",
            requests=[str(up)], redis=commands_text(commands) or ["(no command)"],
        )
    again = await client.get(ROUTE)  # what changes between two healthy answers says nothing about Redis
    down = await answer_while_down(ctx, client, up)
    if down.hangs:
        return _hangs(down)
    assert down.reply is not None
    if down.reply.ok:
        changed, volatile = stable_changes(up.text, again.text, down.reply.text)
        if not changed:
            only = f"differs from a healthy one only in what two healthy answers differ in too ({', '.join(volatile)})"
            return failed(f"with Redis unreachable GET {ROUTE} still reports healthy: it answered "
                          f"{down.reply.status}, and its body " + (only if volatile else "is the same"),
                          **down.evidence, healthy_body_again=again.text[:300])
    note = ""
    if down.reply.status == 500:
        # The promise of this check - it pings Redis and reports it down - is kept; answering with a deliberate
        # 503 instead of an unhandled error is health.graceful's.
        note = " (an unhandled error: it reports Redis down, but a deliberate 503 is better - see health.graceful)"
    return passed(
        f"GET {ROUTE} pings Redis (200 while up) and answers {down.reply.status} while Redis is unreachable{note}",
        **down.evidence,
    )


@check(
    "health.graceful",
    title="With Redis unreachable, GET /health answers a deliberate 503 that says Redis is down",
    level="advanced",
    requires=("app.uses_redis_url",),
    requirement='While Redis is unreachable, `GET /health` answers a deliberate `503` whose body names what is down (not an unhandled 500), even with the rate limiter in front of it')
@points_at("GET /health", "ping")
async def graceful(ctx: CheckContext) -> CheckOutcome:
    # Every request goes through the app's middleware, the rate limiter's included: a limiter that lets the
    # Redis error escape turns /health into a 500 before /health runs at all.
    client = ctx.probe.client()
    up = await client.get(ROUTE)
    absent = absent_route(ctx, up)
    if absent:
        return skipped(f"{absent} (see health.redis_ping)", requests=[str(up)])
    down = await answer_while_down(ctx, client, up)
    if down.hangs:
        return _hangs(down)
    reply = down.reply
    assert reply is not None
    if reply.status == 500:
        return failed(
            f"with Redis unreachable GET {ROUTE} answered 500 (an unhandled error): catch the Redis error and "
            "answer 503 saying Redis is down (a rate-limit middleware that lets the Redis error escape causes this "
            "too)", **down.evidence)
    if reply.status != 503:
        return failed(f"with Redis unreachable GET {ROUTE} answered {reply.status}, expected a 503", **down.evidence)
    if not any(word in reply.text.lower() for word in NAMES_REDIS):
        return failed(f"with Redis unreachable GET {ROUTE} answered 503, but its body does not say what is down "
                      f"(no mention of Redis): {reply.text[:120]!r}", **down.evidence)
    return passed(f"with Redis unreachable GET {ROUTE} answered 503: {reply.text[:120]}", **down.evidence)
